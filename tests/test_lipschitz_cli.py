"""certspec train / certify on the digits example, and Lipschitz checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from checkers.cli import main
from checkers.lipschitz.checkpoint import FORMAT, build, save_lipschitz
from checkers.models import open_model
from spec.errors import ModelError
from tests.lipschitz_nets import conv_net

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "examples" / "digits" / "digits.prop")
MODEL = ROOT / "examples" / "digits" / "digits.pt"


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = conv_net(3)
    save_lipschitz(net, tmp_path / "n.pt")
    model = open_model(tmp_path / "n.pt")
    x = torch.rand(4, 36)
    assert torch.equal(model.module(x), net(x))
    data = torch.load(tmp_path / "n.pt", weights_only=True)
    data["layers"][0] = ["tanh"]
    with pytest.raises(ModelError, match="unknown kind 'tanh'"):
        build(data)
    data["format"] = "other"
    with pytest.raises(ModelError, match="unknown checkpoint format 'other'"):
        build(data)
    assert FORMAT.startswith("certspec-lipschitz")


def test_train_then_certify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.pt"
    assert main(["train", DIGITS, "-o", str(out), "--epochs", "2", "--width", "32", "--depth", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["certify", DIGITS, "--model", str(out), "--json", "--property", "robust_digits",
                 "--property", "top2_digits"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["property"] for r in results] == ["robust_digits", "top2_digits"]
    for r in results:
        assert r["points"] == 360
        assert len(r["radii"]) == 360
        assert r["rejection_rate"] == pytest.approx(1 - r["certified_rate"])
    assert results[0]["vra"] <= results[0]["clean_accuracy"]
    assert main(["certify", DIGITS, "--model", str(out), "--property", "eight_or_three"]) == 2
    assert "not a robustness property" in capsys.readouterr().err


def test_shipped_example_model_certifies(capsys: pytest.CaptureFixture[str]) -> None:
    if not MODEL.exists():
        pytest.skip("examples/digits/digits.pt is not built")
    assert MODEL.stat().st_size < 1_000_000
    assert main(["certify", DIGITS, "--model", str(MODEL), "--property", "robust_digits", "--radii"]) == 0
    text = capsys.readouterr().out
    assert "clean accuracy" in text
    assert "VRA" in text
    assert "radius" in text


def test_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    if not MODEL.exists():
        pytest.skip("examples/digits/digits.pt is not built")
    assert main(["certify", DIGITS, "--model", str(MODEL), "--property", "robust_digits", "--plot",
                 str(tmp_path / "v.png")]) == 0
    assert (tmp_path / "v.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("shape", "layers", "message"),
    [
        ([2000], [["linear", 2000, 1000]], "layer 0 (linear)'s weights has 2,000,000 values"),
        ([1000], [["chord", 1000, 1000, 0.001], ["linear", 1000, 2]],  # its weight, and the Gram matrix it factors
         "layer 0 (chord)'s weights has 2,000,000 values"),
        ([1, 1, 1], [["conv2d", 1, 1, 1, 1, 1000], ["flatten"], ["linear", 4004001, 2]],
         "layer 0 (conv2d)'s output for one input (shape [1, 2001, 2001]) has 4,004,001 values"),
        ([1, 1, 1], [["liresnet", 800, 1, "relu"], ["flatten"], ["linear", 800, 2]],
         "layer 0 (liresnet)'s weights has 1,280,000 values"),
        ([1000, 1000, 2], [["flatten"], ["linear", 2000000, 2]], "input_shape [1000, 1000, 2] has 2,000,000 values"),
    ],
)
def test_lipschitz_checkpoint_sizes_are_checked_before_the_layers_are_built(
        shape: list[int], layers: list[list[object]], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a layer allocates its weights (and the network runs once on a sample): a tiny description of
    a huge layer is refused against CERTSPEC_MAX_ELEMENTS (lowered here to 10^6) before anything is built."""
    monkeypatch.setenv("CERTSPEC_MAX_ELEMENTS", "1000000")
    data = {"format": FORMAT, "input_shape": shape, "layers": layers, "state_dict": {}}
    with pytest.raises(ModelError) as info:
        build(data)
    assert str(info.value) == (f"{message}, more than the limit of 1,000,000 (CERTSPEC_MAX_ELEMENTS; set that "
                               "environment variable to raise it)")
    data["layers"] = [["relu"]] * 10_001
    with pytest.raises(ModelError, match=r"10,001 layers, more than the limit of 10,000 \(CERTSPEC_MAX_LAYERS"):
        build(data)
