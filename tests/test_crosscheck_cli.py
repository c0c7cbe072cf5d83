"""`certspec crosscheck SPEC --model ...` on orderings and robustness at points: every checker, contradictions shown."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from checkers.cli import main
from checkers.models import load_model, save_model
from checkers.strategies import build_network

SPEC = """network net : real[2] -> real[3]
  domain x[*] in [-1, 1]
property order: when x[0] in [-0.5, 0.5] require y[0] > y[1] or y[2] >= y[1]
property cap: when x[0] >= 0 require y[0] - 2 * y[1] <= 0.25
property robust_pts: robust eps 0.05 norm l2 at [0.5, 0.5], [-0.25, 0.75]
property robust_big: robust eps 0.9 norm linf at [0, 0]
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    (tmp_path / "s.prop").write_text(SPEC, encoding="utf-8")
    save_model(build_network(2, [6], 3, "relu", 7), (2,), tmp_path / "model.pt")
    return tmp_path / "s.prop", tmp_path / "model.pt"


ARGS = ["--examples", "50", "--steps", "10", "--timeout", "5"]


def test_every_checker_runs_and_none_is_contradicted(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec_file, model = files
    assert main(["crosscheck", str(spec_file), "--model", f"net={model}", *ARGS, "--json"]) == 0
    out = {r["property"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(out) == {"order", "cap", "robust_pts", "robust_big"}
    order = out["order"]["checkers"]
    assert {k for k, v in order.items() if v["ran"] == "ran"} == {"guard", "verifier", "hypothesis", "pgd"}
    assert order["gloro"]["ran"].startswith("not a local robustness")
    assert out["cap"]["checkers"]["guard"]["ran"] != "ran"  # a linear output constraint cannot be guarded
    pts = out["robust_pts"]["checkers"]
    assert {k for k, v in pts.items() if v["ran"] == "ran"} == {"gloro", "fgp", "verifier", "hypothesis", "pgd"}
    big = out["robust_big"]["checkers"]  # a ball over the whole domain: the label changes somewhere
    assert pts["guard"]["ran"] == "guard: l2 balls are not boxes" and big["guard"]["ran"] == "ran"
    assert big["verifier"]["holds"] == [] and big["gloro"]["holds"] == []
    assert big["pgd"]["witnesses"] or big["hypothesis"]["witnesses"]
    assert all(r["contradictions"] == [] for r in out.values())


def test_a_wrong_certificate_is_reported_with_its_witness(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A GloRo that certifies everything (a stale constant of 0) is caught: exit 1, the witness in the table and JSON."""
    gloro = importlib.import_module("checkers.lipschitz.certify")  # the package re-exports the function's name

    real = gloro.certify

    def stale(net, x, eps, norm=None, kind=None):  # type: ignore[no-untyped-def]
        cert = real(net, x, eps, norm) if norm is not None else real(net, x, eps)
        return gloro.Certificates(cert.scores, cert.prediction, cert.k.clamp(min=1), torch.ones_like(cert.certified),
                                  cert.top, cert.radius)

    monkeypatch.setattr(gloro, "certify", stale)
    spec_file, model = files
    args = ["crosscheck", str(spec_file), "--model", f"net={model}", "--property", "robust_big", *ARGS]
    assert main(args) == 1
    text = capsys.readouterr().out
    assert "CONTRADICTION: robust_big / gloro claims HOLDS on target 0" in text
    assert "x = [" in text and "scores = [" in text
    assert main([*args, "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    bad = report["contradictions"]
    assert bad and {c["checker"] for c in bad} == {"gloro"}
    x = torch.tensor([bad[0]["x"]], dtype=torch.float32)
    module = load_model(model)
    with torch.no_grad():  # the witness replays: the label at the centre (0, 0) is not strictly ahead at x
        y0, y = module(torch.zeros(1, 2)), module(x)
    label = int(y0.argmax())
    assert any(float(y[0, j]) >= float(y[0, label]) for j in range(3) if j != label)


def test_user_errors(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    spec_file, _ = files
    assert main(["crosscheck", str(spec_file), "--property", "order"]) == 2
    assert "no model for network net: give --model net=PATH" in capsys.readouterr().err


def test_cached_checker_views_follow_weights_changed_in_place() -> None:
    """GloRo and FGP views are cached per model; an in-place weight change must not leave a stale one (unsound)."""
    from checkers.crosscheck.props import PropertyOptions, check_property
    from spec import ir

    lin = torch.nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        lin.bias.zero_()
    model = torch.nn.Sequential(lin).eval()
    network = ir.Network("net", (1,), (2,), ("a", "b"), ("x",), ir.Box((-1.0,), (1.0,), (False,), (False,)))
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(network.domain),)),
                       ir.Robust(ir.Local(), 0.1, ir.Norm.L2, ((0.5,),)))
    options = PropertyOptions(examples=5, checkers=("gloro", "fgp", "pgd"))
    first = check_property(model, prop, network, options)
    assert first.holds["gloro"] == [0] and first.holds["fgp"] == [0]
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([-0.5, 0.5]))  # the boundary moves to x = 0.5: the centre is now a tie
    second = check_property(model, prop, network, options)
    assert second.holds["gloro"] == [] and second.holds["fgp"] == []
    assert second.witnesses["pgd"] and not second.contradictions


def test_affinity_over_a_data_set_is_checked_at_its_points(capsys: pytest.CaptureFixture[str]) -> None:
    """Top-k and affinity over a data set (here affinity over digits_test): GloRo's certified sets at each of the
    360 points, attacked by the falsifiers (the verifier does not read CHORD layers and says so)."""
    root = Path(__file__).resolve().parents[1] / "examples" / "digits"
    spec_file = root / "digits.prop"
    assert main(["crosscheck", str(spec_file), "--model", f"digits={root / 'digits.pt'}", "--property",
                 "affine_digits", "--examples", "5", "--steps", "3", "--json"]) == 0
    out = {r["property"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(out) == {"affine_digits"}
    for r in out.values():
        assert r["targets"] == 360 and r["contradictions"] == []
        assert r["checkers"]["gloro"]["ran"] == "ran" and len(r["checkers"]["gloro"]["holds"]) > 150
        assert r["checkers"]["hypothesis"]["ran"] == r["checkers"]["pgd"]["ran"] == "ran"
        assert "ChordLinear" in r["checkers"]["verifier"]["ran"]
