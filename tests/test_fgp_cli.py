"""`certspec certify --method fgp`: text, --json, data sets, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import onnx
from onnx import TensorProto, helper, numpy_helper

from checkers.cli import main
from checkers.models import save_model
from tests.nets import random_mlp

torch.set_num_threads(1)

SPEC = """network small : real[4] -> real[3]
  domain x[*] in [0, 1]

property near: robust eps 0.01 norm linf at [0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.3, 0.7]
property far: robust eps 0.9 norm l2 at [0.5, 0.5, 0.5, 0.5]
property top2: robust top 2 eps 0.1 norm l2 at [0.5, 0.5, 0.5, 0.5]
"""


def maxpool_model() -> onnx.ModelProto:
    """x (1, 1, 2, 2) -> MaxPool 1x2 -> flatten (2) -> 3 scores: a layer FGP cannot handle."""
    w = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "s")
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[1, 2]),
             helper.make_node("Reshape", ["p", "s"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_empty_tensor_value_info("y")], [w, shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    prop = tmp_path / "small.prop"
    prop.write_text(SPEC)
    model = tmp_path / "small.pt"
    save_model(random_mlp(12, 4, [16, 16], 3, scale=3.0), (4,), model)
    return str(prop), str(model)


def test_fgp_json_is_clean(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    prop, model = files
    assert main(["certify", prop, "--model", model, "--method", "fgp", "--json"]) == 0
    out = capsys.readouterr()
    results = json.loads(out.out)  # stdout is the JSON and nothing else
    assert "skips top2" in out.err
    assert [r["property"] for r in results] == ["near", "far"]
    near, far = results
    assert near["points"] == 2 and near["method"] == "fgp" and near["clean_accuracy"] is None
    assert near["statuses"] == ["robust", "robust"] and near["radii"] == [0.01, 0.01]
    assert far["statuses"] == ["not_robust"] and far["witnesses"][0] is not None
    witness = torch.tensor(far["witnesses"][0])
    assert float((witness - 0.5).norm()) <= 0.9
    assert far["decided_rate"] == 1.0


def test_fgp_text_and_lower_bound(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    prop, model = files
    assert main(["certify", prop, "--model", model, "--method", "fgp", "--property", "far", "--lower-bound",
                 "--radii"]) == 0
    out = capsys.readouterr().out
    assert "far: local l2 eps 0.9, 1 points (FGP): robust 0, not robust 1" in out
    radius = float(out.split("radius ")[-1])
    assert 0 < radius < 0.9


def test_fgp_errors(files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prop, model = files
    assert main(["certify", prop, "--model", model, "--method", "fgp", "--property", "top2"]) == 2
    assert "not local robustness" in capsys.readouterr().err
    pooled = tmp_path / "pool.onnx"
    onnx.save(maxpool_model(), str(pooled))
    code = main(["certify", prop, "--model", str(pooled), "--method", "fgp", "--property", "near"])
    err = capsys.readouterr().err
    assert code == 2 and "FGP needs a ReLU network" in err and "MaxPool" in err and "Traceback" not in err
    assert main(["certify", prop, "--model", model, "--method", "fgp", "--device", "nowhere"]) == 2
    assert "'nowhere' is not a torch device" in capsys.readouterr().err


def test_fgp_over_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prop = tmp_path / "d.prop"
    prop.write_text("network d : real[64] -> real[10]\n  domain x[*] in [0, 1]\ndataset test = digits_test\n"
                    "property r: robust eps 0.02 norm l2 over test\n")
    model = tmp_path / "d.pt"
    save_model(random_mlp(1, 64, [16], 10), (64,), model)
    assert main(["certify", str(prop), "--model", str(model), "--method", "fgp", "--json", "--timeout", "0.5"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["points"] == 360 and r["clean_accuracy"] is not None
    assert r["vra"] <= r["clean_accuracy"] and r["vra"] <= r["certified_rate"]
