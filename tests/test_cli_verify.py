"""`certspec verify` and `certspec vnnlib` on models, and the model files of checkers.models.

The ACAS Xu tests read ../shared/data/acasxu and skip when it is absent; they use quick
instances only (N1,1/phi1 is proven in about a second, N2,1/phi2 is falsified at once).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import spec
from checkers.cli import main
from checkers.models import load_model, open_model, save_model
from checkers.semantics import compile_ordering, holds, in_part
from conftest import EXAMPLES, shared_data
from spec import ir
from spec.errors import ModelError
from spec.vnnlib import read_vnnlib

ACAS = EXAMPLES / "acasxu" / "acasxu.prop"
TIMEOUT = "30"

TWO_NETWORKS = """\
network a : real[2] -> real[2]
  domain x[*] in [0, 1]
network b : real[2] -> real[2]
  domain x[*] in [0, 1]
ensemble e = vote(a: 1, b: 1)

property pa: require y[0] above y[1] for a
property pv: require y[1] above y[0] for a
property pb: require y[0] above y[1] for b
property pe: require y[0] above y[1] for e
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checkers.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def acas_net(name: str) -> Path:
    return shared_data("acasxu", f"ACASXU_run2a_{name}_batch_2000.onnx")


@pytest.fixture
def two_networks(tmp_path: Path) -> tuple[Path, Path]:
    """A spec with networks a and b and an ensemble, and a model for a: y = (x0 + 1, 0)."""
    prop = tmp_path / "two.prop"
    prop.write_text(TWO_NETWORKS)
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([1.0, 0.0]))
    model = tmp_path / "a.pt"
    save_model(nn.Sequential(layer), (2,), model)
    return prop, model


def verify_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, object]]]:
    code = main(["verify", *args, "--json", "--timeout", TIMEOUT])
    captured = capsys.readouterr()
    return code, json.loads(captured.out)


# ---------------------------------------------------------------- verify on ACAS Xu


def test_phi1_holds_on_n11(capsys: pytest.CaptureFixture[str]) -> None:
    code, results = verify_json(capsys, str(ACAS), "--model", f"acas={acas_net('1_1')}", "--property", "phi1")
    assert code == 0
    assert len(results) == 1
    assert results[0]["property"] == "phi1"
    assert results[0]["status"] == "HOLDS"
    assert results[0]["witness"] is None
    assert isinstance(results[0]["seconds"], float)


def test_phi2_is_violated_on_n21_with_a_witness_that_replays(capsys: pytest.CaptureFixture[str]) -> None:
    path = acas_net("2_1")
    code, results = verify_json(capsys, str(ACAS), "--model", str(path), "--property", "phi2")  # NAME= left out
    assert code == 1
    (result,) = results
    assert result["status"] == "VIOLATED"
    witness = result["witness"]
    assert isinstance(witness, dict)
    loaded = spec.load_file(ACAS)
    prop, network = loaded.property("phi2"), loaded.network("acas")
    x = torch.tensor([witness["x"]], dtype=torch.float32)
    assert x.tolist() == [witness["x"]]  # the values are float32 numbers, printed exactly
    assert bool(in_part(prop.region.parts[witness["part"]], x)[0])
    assert network.input_norm is not None
    assert witness["x_raw"] == pytest.approx(list(network.input_norm.to_raw(tuple(witness["x"]))))
    with torch.no_grad():
        y = load_model(path)(x)
    # float32 sums depend on the batch the witness was found in: a batch of one agrees closely
    assert y[0].tolist() == pytest.approx(witness["y"], rel=1e-5, abs=1e-6)
    assert isinstance(prop.requirement, ir.Ordering)
    assert not bool(holds(compile_ordering(prop.requirement, network.n_outputs), y)[0])


def test_text_output_shows_the_witness_in_both_units(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", str(ACAS), "--model", f"acas={acas_net('2_1')}", "--property", "phi2",
                 "--timeout", TIMEOUT])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert re.fullmatch(r"phi2: VIOLATED \(\d+\.\d\d s\)", lines[0])
    assert lines[1].startswith("  x     = rho=") and lines[1].endswith("(normalised)")
    assert lines[2].startswith("  x raw = rho=")
    assert lines[3].startswith("  y     = COC=")


def test_a_torch_checkpoint_verifies_like_the_onnx_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from checkers.plnet import from_module

    net = from_module(load_model(acas_net("1_1")), (5,))
    layers: list[nn.Module] = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        linear = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(w)
            linear.bias.copy_(b)
        layers += [linear] if k == len(net.weights) - 1 else [linear, nn.ReLU()]
    checkpoint = tmp_path / "n11.pt"
    save_model(nn.Sequential(*layers), (5,), checkpoint)
    code, results = verify_json(capsys, str(ACAS), "--model", f"acas={checkpoint}", "--property", "phi1")
    assert (code, results[0]["status"]) == (0, "HOLDS")


# ---------------------------------------------------------------- vnnlib (VNN-COMP style)


def test_vnnlib_unsat(capsys: pytest.CaptureFixture[str]) -> None:
    prop = shared_data("acasxu", "prop_1.vnnlib")
    assert main(["vnnlib", str(acas_net("1_1")), str(prop), "--timeout", TIMEOUT]) == 0
    assert capsys.readouterr().out == "unsat\n"


def test_vnnlib_sat_prints_an_assignment_in_the_box() -> None:
    prop_path = shared_data("acasxu", "prop_2.vnnlib")
    result = run("vnnlib", str(acas_net("2_1")), str(prop_path), "--timeout", TIMEOUT)
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first == "sat"
    body = "\n".join(rest)
    assert body.startswith("((X_0 ") and body.endswith("))")
    pairs = re.findall(r"\((X|Y)_(\d+) (\S+?)\)", body)
    xs = [float(v) for kind, _, v in pairs if kind == "X"]
    ys = [float(v) for kind, _, v in pairs if kind == "Y"]
    assert [int(i) for kind, i, _ in pairs if kind == "X"] == list(range(5))
    assert len(ys) == 5
    prop = read_vnnlib(prop_path).properties[0]
    assert any(bool(in_part(part, torch.tensor([xs], dtype=torch.float64))[0]) for part in prop.region.parts)
    assert isinstance(prop.requirement, ir.Ordering)
    assert not bool(holds(compile_ordering(prop.requirement, 5), torch.tensor([ys]))[0])


# ---------------------------------------------------------------- ensembles, networks without a model


def test_properties_without_a_model_or_on_an_ensemble_are_unknown(
    two_networks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    prop, model = two_networks
    code, results = verify_json(capsys, str(prop), "--model", f"a={model}")
    by_name = {r["property"]: r for r in results}
    assert [r["property"] for r in results] == ["pa", "pv", "pb", "pe"]
    assert by_name["pa"]["status"] == "HOLDS"
    assert by_name["pv"]["status"] == "VIOLATED"
    witness = by_name["pv"]["witness"]
    assert isinstance(witness, dict) and witness["x_raw"] is None  # no input normalisation
    assert by_name["pb"]["status"] == "UNKNOWN" and "no model for network b" in str(by_name["pb"]["reason"])
    assert by_name["pe"]["status"] == "UNKNOWN" and "ensemble" in str(by_name["pe"]["reason"])
    assert code == 1


def test_exit_status_3_when_undecided_and_none_violated(
    two_networks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    prop, model = two_networks
    code, results = verify_json(capsys, str(prop), "--model", f"a={model}", "--property", "pa", "--property", "pe")
    assert [r["status"] for r in results] == ["HOLDS", "UNKNOWN"]
    assert code == 3


# ---------------------------------------------------------------- user errors: exit 2, a message, no traceback


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("acas={tmp}/missing.onnx", "certspec: error: {tmp}/missing.onnx: no such file"),
        ("acs={n11}", "has no network 'acs' (did you mean 'acas'?)"),
        ("acas={tmp}/small.pt", "{tmp}/small.pt: the model maps 5 inputs to 3 scores, but network acas is declared "
                                "real[5] -> real[5]"),
        ("acas={tmp}/corrupt.onnx", "{tmp}/corrupt.onnx: not a readable ONNX model"),
        ("acas={tmp}/model.txt", "unknown model format '.txt'"),
    ],
)
def test_model_errors_exit_2(model: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n11 = acas_net("1_1")
    save_model(nn.Sequential(nn.Linear(5, 3)), (5,), tmp_path / "small.pt")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07\x12\x04junk" + bytes(range(256)))
    assert main(["verify", str(ACAS), "--model", model.format(tmp=tmp_path, n11=n11), "--property", "phi1"]) == 2
    captured = capsys.readouterr()
    assert message.format(tmp=tmp_path) in captured.err
    assert captured.out == ""


def test_missing_and_corrupt_models_from_the_command_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model at all \xff\xfe")
    for model, message in ((tmp_path / "missing.onnx", "no such file"), (corrupt, "not a readable ONNX model")):
        result = run("verify", str(ACAS), "--model", f"acas={model}", "--json")
        assert result.returncode == 2
        assert result.stderr.startswith(f"certspec: error: {model}: {message}")
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    result = run("vnnlib", str(corrupt), str(EXAMPLES / "acasxu" / "acasxu.prop"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_chosen_property_whose_network_has_no_model_is_an_error(
    two_networks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    prop, model = two_networks
    assert main(["verify", str(prop), "--model", f"a={model}", "--property", "pb"]) == 2
    err = capsys.readouterr().err
    assert "property pb is about network b, which has no model: give --model b=PATH" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{model}"], "declares 2 networks (a, b): say which one with --model NAME=PATH"),
        (["--model", "e={model}"], "e is an ensemble; give a model for each member (a, b)"),
        (["--model", "a={model}", "--model", "a={model}"], "network a already has the model"),
        (["--model", "a={model}", "--property", "pz"], "has no property 'pz'"),
    ],
)
def test_bad_model_names_exit_2(
    args: list[str], message: str, two_networks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    prop, model = two_networks
    assert main(["verify", str(prop), *(a.format(model=model) for a in args)]) == 2
    assert message in capsys.readouterr().err


def test_swapped_vnnlib_arguments_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    net, prop = acas_net("1_1"), shared_data("acasxu", "prop_1.vnnlib")
    assert main(["vnnlib", str(prop), str(net)]) == 2
    assert "the network comes first" in capsys.readouterr().err


# ---------------------------------------------------------------- checkers.models


def test_save_then_load_gives_the_same_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 10))
    save_model(conv, (1, 8, 8), tmp_path / "conv.pth")
    loaded = open_model(tmp_path / "conv.pth")
    assert loaded.input_shape == (1, 8, 8)
    x = torch.rand(7, 64)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), conv(x.reshape(7, 1, 8, 8)))
    dense = nn.Sequential(nn.Linear(5, 20), nn.ReLU(), nn.Linear(20, 3))
    save_model(dense, (5,), tmp_path / "dense.pt")
    again = load_model(tmp_path / "dense.pt")
    with torch.no_grad():
        assert torch.equal(again(x[:, :5]), dense(x[:, :5]))
    save_model(loaded.module, (1, 8, 8), tmp_path / "again.pt")  # the leading reshape is dropped
    assert torch.equal(load_model(tmp_path / "again.pt")(x), loaded.module(x))


class _Payload:
    """Unpickling this would create a file: a checkpoint holding it must be refused unopened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    layer = nn.Linear(2, 2)
    bad = tmp_path / "bad.pt"
    torch.save({"input_shape": [2], "layers": [["linear", 2, 2]],
                "state_dict": {"0.weight": layer.weight.detach(), "0.bias": _Payload(marker)}}, bad)
    with pytest.raises(ModelError, match=r"bad\.pt: refused: the checkpoint holds a pickled object"):
        load_model(bad)
    assert not marker.exists()
    whole = tmp_path / "whole.pt"
    torch.save(nn.Sequential(layer), whole)
    with pytest.raises(ModelError, match=r"refused: .*torch\.nn\.modules\.container\.Sequential"):
        load_model(whole)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"0.weight": torch.zeros(2, 2)}, "must be a dict with exactly the keys"),
        ({"input_shape": [2], "layers": [["dense", 2, 2]], "state_dict": {}}, "unknown kind 'dense'"),
        ({"input_shape": [2], "layers": [["linear", 2]], "state_dict": {}}, "linear takes 2 integers"),
        ({"input_shape": [0], "layers": [["relu"]], "state_dict": {}}, "input_shape dimension must be"),
        ({"input_shape": [2], "layers": [["linear", 2, 10**9]], "state_dict": {}}, "missing ['0.bias', '0.weight']"),
        ({"input_shape": [2], "layers": [["linear", 2, 3]],
          "state_dict": {"0.weight": torch.zeros(3, 3), "0.bias": torch.zeros(3)}}, "has shape [3, 3]"),
        ({"input_shape": [3], "layers": [["linear", 2, 3]],
          "state_dict": {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(3)}}, "do not fit input_shape [3]"),
    ],
)
def test_malformed_checkpoints_are_model_errors(data: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save(data, path)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_counterexample_in_exact_arithmetic_only_is_in_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """y0 = 0.75 x ties y1 = c (a float32) only at x = c / 0.75, strictly between the region's two float32
    numbers (its ends), where fl(0.75 x) falls on either side of c: UNKNOWN, exit status 3, and the exact
    point in `exact_witness` (JSON) and in the reason (text). (See test_verify's twin.)"""
    prop = tmp_path / "tie.prop"
    prop.write_text("network n : real[1] -> real[2]\n  domain x[*] in [0, 2]\n"
                    "property p:\n  when x[0] in [1.2000001668930054, 1.200000286102295]\n"
                    "  require y[0] > y[1] or y[1] > y[0]\n")
    layer = nn.Linear(1, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.75], [0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.9000001549720764]))
    model = tmp_path / "tie.pt"
    save_model(nn.Sequential(layer), (1,), model)
    code, results = verify_json(capsys, str(prop), "--model", f"n={model}")
    assert code == 3
    assert results[0]["status"] == "UNKNOWN"
    assert results[0]["exact_witness"] == ["15099497/12582912"]
    assert results[0]["witness"] is None
    assert main(["verify", str(prop), "--model", f"n={model}", "--timeout", TIMEOUT]) == 3
    assert "x = (15099497/12582912)" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["gloro", "fgp"])
def test_certify_names_the_network_without_a_model(tmp_path: Path, method: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """certify (both methods) words a missing model as verify does: one helper, `checkers.models.no_model`."""
    prop = tmp_path / "two.prop"
    prop.write_text("network a : real[2] -> real[2]\nnetwork b : real[2] -> real[2]\n"
                    "property ra: robust eps 0.1 norm l2 at [0.5, 0.5] for a\n"
                    "property rb: robust eps 0.1 norm l2 at [0.5, 0.5] for b\n")
    model = tmp_path / "a.pt"
    save_model(nn.Sequential(nn.Linear(2, 2)), (2,), model)
    assert main(["certify", str(prop), "--model", f"a={model}", "--method", method]) == 2
    assert "property rb is about network b, which has no model: give --model b=PATH" in capsys.readouterr().err


# ---------------------------------------------------------------- checkpoints: format and sizes before tensors


def _deflated(source: Path, target: Path) -> None:
    """The archive of `source`, every entry deflated (torch.load reads such archives, and inflates them)."""
    with zipfile.ZipFile(source) as archive:
        entries = [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)


def test_a_checkpoint_that_inflates_past_the_limit_is_refused_before_torch_reads_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 MB deflated checkpoint inflated to 1.3 GB before its format was checked: the zip's entries are
    read first; here a 12 KB file that inflates to 4 MB against a limit of 1 MB."""
    plain, small = tmp_path / "plain.pt", tmp_path / "small.pt"
    zeros = nn.Linear(1000, 1000)
    nn.init.zeros_(zeros.weight)
    save_model(nn.Sequential(zeros), (1000,), plain)
    _deflated(plain, small)
    assert small.stat().st_size < 100_000
    assert load_model(small)(torch.zeros(1, 1000)).shape == (1, 1000)  # within the default limit: it loads
    monkeypatch.setenv("CERTSPEC_MAX_MODEL_BYTES", str(1 << 20))

    def not_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load ran before the archive was checked")

    monkeypatch.setattr(torch, "load", not_read)
    with pytest.raises(ModelError) as info:
        load_model(small)
    assert re.fullmatch(rf"{re.escape(str(small))}: the archive \(\d+ entries, [\d,]+ bytes\) has [\d,]+ bytes once "
                        r"inflated, more than the limit of 1,048,576 \(CERTSPEC_MAX_MODEL_BYTES; set that environment "
                        r"variable to raise it\)", str(info.value))


def test_older_checkpoint_formats_are_refused_unread(tmp_path: Path) -> None:
    """torch's pre-zip format allocates the storages its pickle declares before reading them: refused."""
    legacy = tmp_path / "legacy.pt"
    layer = nn.Linear(2, 2)
    torch.save({"input_shape": [2], "layers": [["linear", 2, 2]], "state_dict": dict(layer.state_dict())}, legacy,
               _use_new_zipfile_serialization=False)
    with pytest.raises(ModelError, match=r"legacy\.pt: not a torch checkpoint in the zip format torch\.save writes"):
        load_model(legacy)


@pytest.mark.parametrize(
    ("layers", "state", "message"),
    [  # weights that are views of one float (stride 0), as a pickle can write them: 4 bytes on disk
        ([["linear", 2000, 1000]], {"0.weight": (1000, 2000), "0.bias": (1000,)},
         "state_dict['0.weight'] (shape [1000, 2000]) has 2,000,000 values"),
        ([["linear", 900, 900], ["relu"], ["linear", 900, 900]],
         {"0.weight": (900, 900), "0.bias": (900,), "2.weight": (900, 900), "2.bias": (900,)},
         "the model's 4 weight tensors has 1,621,800 values"),
        ([["conv2d", 1, 1, 1, 1, 1000], ["flatten"]], {"0.weight": (1, 1, 1, 1), "0.bias": (1,)},
         "layer 0's output for one input (shape [1, 2001, 2001]) has 4,004,001 values"),
    ],
)
def test_declared_sizes_past_the_element_limit_are_refused_before_allocation(
        layers: list[list[object]], state: dict[str, tuple[int, ...]], message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny checkpoint may declare a 10^5 x 10^5 layer (its weight a stride-0 view of one float), or a
    padding of 10^5 on a 1 x 1 image: refused against CERTSPEC_MAX_ELEMENTS (lowered here to 10^6) before
    any tensor is converted, copied or run."""
    path = tmp_path / "huge.pt"
    shape = [1, 1, 1] if layers[0][0] == "conv2d" else [layers[0][1]]
    torch.save({"input_shape": shape, "layers": layers,
                "state_dict": {k: torch.zeros(1).expand(*v) for k, v in state.items()}}, path)
    assert path.stat().st_size < 10_000
    monkeypatch.setenv("CERTSPEC_MAX_ELEMENTS", "1000000")
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(info.value) == (f"{path}: {message}, more than the limit of 1,000,000 (CERTSPEC_MAX_ELEMENTS; set "
                               "that environment variable to raise it)")
    monkeypatch.setenv("CERTSPEC_MAX_ELEMENTS", "10000000")
    assert load_model(path) is not None  # a larger limit lets it load


def test_layer_lists_and_shared_references_past_the_limits_are_refused(tmp_path: Path) -> None:
    """A pickle repeats one object by reference: 20,000 layers cost a few bytes each in the file."""
    many = tmp_path / "many.pt"
    relu = ["relu"]
    torch.save({"input_shape": [2], "layers": [relu] * 20_000, "state_dict": {}}, many)
    with pytest.raises(ModelError, match=r"the layer list has 20,000 layers, more than the limit of 10,000 "
                                         r"\(CERTSPEC_MAX_LAYERS;"):
        load_model(many)
    nested: list[object] = [0]
    for _ in range(24):  # 2**24 leaves from 24 lists, each holding the one before twice
        nested = [nested, nested]
    bomb = tmp_path / "bomb.pt"
    torch.save({"input_shape": [2], "layers": [["relu"]], "state_dict": {}, "extra": nested}, bomb)
    assert bomb.stat().st_size < 10_000
    with pytest.raises(ModelError, match=r"bomb\.pt: the checkpoint's data holds more than 1,048,576 values"):
        load_model(bomb)


def test_sparse_weights_are_refused(tmp_path: Path) -> None:
    """A sparse tensor loads with weights_only=True and then breaks the first operator it meets (a torch
    NotImplementedError): a checkpoint's weights must be dense, plain and Lipschitz formats alike."""
    from checkers.lipschitz.checkpoint import save_lipschitz
    from tests.lipschitz_nets import conv_net

    plain, lipschitz = tmp_path / "plain.pt", tmp_path / "lip.pt"
    save_model(nn.Sequential(nn.Linear(2, 3)), (2,), plain)
    save_lipschitz(conv_net(3), lipschitz)
    for path, key in ((plain, "0.weight"), (lipschitz, "1.weight")):
        data = torch.load(path, weights_only=True)
        data["state_dict"][key] = data["state_dict"][key].to_sparse()
        torch.save(data, path)
        with pytest.raises(ModelError, match=rf"state_dict\['{re.escape(key)}'\] is a torch\.sparse_coo tensor: a "
                                             "checkpoint's weights must be dense"):
            load_model(path)
