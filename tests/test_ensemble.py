"""Ensembles on hand-made and shipped members: selection, certificates, errors, and CasA against the shipped cascade."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import spec
from checkers.cli import main
from checkers.ensemble import (
    ABSTAIN, AttackOptions, Cascade, GloRoMember, MemberCerts, Selective, Vote, casa, from_ir, member_pgd,
)
from checkers.ensemble.casa import in_ball
from checkers.lipschitz import LipschitzNet
from checkers.lipschitz.data import load_dataset
from checkers.models import load_model
from spec import ir
from spec.errors import UsageError

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
CASCADE = ROOT / "examples" / "cascade"


class Fixed:
    """A member with given predictions and certificates (for the combination rules alone)."""

    def __init__(self, prediction: list[int], certified: list[bool], name: str = "f") -> None:
        self.name = name
        self.module = torch.nn.Identity()
        self.pred = torch.tensor(prediction)
        self.cert = torch.tensor(certified)

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm) -> MemberCerts:
        return MemberCerts(self.pred, self.cert, torch.nn.functional.one_hot(self.pred, 3).float())


X = torch.zeros(4, 2)


def test_cascade_selects_the_first_certified_member() -> None:
    a = Fixed([0, 0, 0, 0], [False, True, False, False])
    b = Fixed([1, 1, 1, 1], [True, True, False, False])
    c = Fixed([2, 2, 2, 0], [False, False, False, True])
    cascade = Cascade([a, b, c], 0.1)
    assert cascade.predict(X).tolist() == [1, 0, 2, 0]
    published = cascade.certify_published_unsound(X)
    assert published.selected.tolist() == [1, 0, 2, 2]
    assert published.certified.tolist() == [True, True, False, True]
    assert cascade(X).argmax(dim=1).tolist() == [1, 0, 2, 0]
    # agreement: only point 3 has all members agreeing (0) with the last member certified
    a3 = Fixed([0, 0, 0, 0], [False] * 4)
    assert Cascade([a3, Fixed([0, 1, 1, 0], [False] * 4), c], 0.1).certify_agreement(X).certified.tolist() == \
        [False, False, False, True]


def test_vote_certificate_counts_uncertified_weight_against_the_top() -> None:
    a = Fixed([0, 0, 0, 0], [True, True, True, False])
    b = Fixed([0, 1, 0, 0], [True, True, False, True])
    c = Fixed([1, 1, 0, 0], [False, True, False, True])
    uniform = Vote([a, b, c], 0.1).certify(X)
    assert uniform.prediction.tolist() == [0, 1, 0, 0]
    # point 0: C = 2 vs 0 + 1 -> certified; point 1: 2 vs 1 + 0 -> certified; point 2: 1 vs 0 + 2 -> no; point 3: 2 vs 1
    assert uniform.certified.tolist() == [True, True, False, True]
    weighted = Vote([a, b, c], 0.1, weights=[3, 1, 1]).certify(X)
    assert weighted.prediction.tolist() == [0, 0, 0, 0]
    assert weighted.certified.tolist() == [True, True, True, False]  # point 3: 2 vs 0 + 3


def test_selective_predicts_only_past_the_test_and_certifies_only_predictions() -> None:
    members = [Fixed([0, 0, 0, 0], [True, True, False, True], f"m{i}") for i in range(6)]
    sel = Selective(members, 0.1, alpha=0.05)
    assert sel.predict(X).tolist() == [0, 0, 0, 0]  # 6-0: p = 0.031
    assert sel.certify(X).certified.tolist() == [True, True, False, True]  # point 2: 0 certified, 6 uncertified
    five = Selective(members[:5], 0.1, alpha=0.05)
    assert five.predict(X).tolist() == [ABSTAIN] * 4  # the n <= 5 edge case
    assert not five.certify(X).certified.any()


def test_errors_name_the_offending_value() -> None:
    a, b = Fixed([0] * 4, [True] * 4), Fixed([0] * 4, [True] * 4)
    with pytest.raises(UsageError, match=r"eps=-0\.5"):
        Cascade([a, b], -0.5)
    with pytest.raises(UsageError, match="at least 2 members, got 1"):
        Vote([a], 0.1)
    with pytest.raises(UsageError, match="weight=0"):
        Vote([a, b], 0.1, weights=[1, 0])
    with pytest.raises(UsageError, match="3 weights for 2 members"):
        Vote([a, b], 0.1, weights=[1, 1, 1])
    with pytest.raises(UsageError, match="alpha=2"):
        Selective([a, b], 0.1, alpha=2)
    with pytest.raises(UsageError, match=r"member 1 \(Linear\) is not an ensemble member"):
        Cascade([a, torch.nn.Linear(2, 2)], 0.1)  # type: ignore[list-item]
    with pytest.raises(UsageError, match="GloRo member needs a LipschitzNet, got Linear"):
        GloRoMember(torch.nn.Linear(2, 2), "x")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="CasA attacks cascades, not Vote"):
        casa(Vote([a, b], 0.1), X)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="steps=0"):
        AttackOptions(steps=0)


@pytest.fixture(scope="module")
def shipped() -> tuple[ir.Spec, dict[str, GloRoMember], torch.Tensor, torch.Tensor]:
    loaded = spec.load_file(CASCADE / "cascade.prop")
    members = {}
    for name in ("a", "b", "c"):
        net = load_model(CASCADE / f"{name}.pt")
        assert isinstance(net, LipschitzNet)
        members[name] = GloRoMember(net, name)
    x, labels = load_dataset("digits_test")
    return loaded, members, x, labels


Shipped = tuple[ir.Spec, dict[str, GloRoMember], torch.Tensor, torch.Tensor]


def test_from_ir_builds_the_declared_ensembles(shipped: Shipped) -> None:
    loaded, members, _, _ = shipped
    stack = from_ir(loaded.ensembles[0], members, 0.3)
    voters = from_ir(loaded.ensembles[1], members, 0.3)
    assert isinstance(stack, Cascade)
    assert isinstance(voters, Vote)
    assert [m.name for m in stack.members] == ["a", "b", "c"]
    with pytest.raises(UsageError, match="no model for member 'c'"):
        from_ir(loaded.ensembles[0], {"a": members["a"], "b": members["b"]}, 0.3)


def test_casa_breaks_the_published_cascade_and_never_a_sound_certificate(
        shipped: tuple[ir.Spec, dict[str, GloRoMember], torch.Tensor, torch.Tensor]) -> None:
    loaded, members, x, _ = shipped
    domain = loaded.network("a").domain
    cascade = Cascade([members[n] for n in "abc"], 0.3)
    attack = casa(cascade, x, domain=domain)
    published = cascade.certify_published_unsound(x)
    broken = attack.broken & published.certified
    assert int(broken.sum()) >= 10  # the published certificate is wrong on real data
    # every success is a replayed witness: in the ball, in [0, 1], and the real cascade's label differs
    xa = attack.x_adv[broken]
    assert in_ball(xa, x[broken], 0.3, ir.Norm.L2).all()
    assert ((xa >= 0) & (xa <= 1)).all()
    assert (cascade.predict(xa) != cascade.predict(x[broken])).all()
    assert (attack.label_adv[broken] == cascade.predict(xa)).all()
    # the sound certificates are never broken, by CasA, PGD, or each other's witnesses
    agreement = cascade.certify_agreement(x)
    assert agreement.certified.any()
    assert not (agreement.certified & attack.broken).any()
    vote = Vote([members[n] for n in "abc"], 0.3)
    vote_cert = vote.certify(x)
    pgd = member_pgd(vote, x, AttackOptions(steps=50), domain=domain)
    assert pgd.broken.any()  # the attack does change the vote on uncertified points
    assert not (vote_cert.certified & pgd.broken).any()
    moved = vote.predict(attack.x_adv) != vote.predict(x)
    assert not (vote_cert.certified & moved & in_ball(attack.x_adv, x, 0.3, ir.Norm.L2)).any()


def test_crosscheck_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crosscheck", str(CASCADE / "cascade.prop"), "--json", "--steps", "50"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = {r["checker"]: r for r in json.loads(out)}
    published = rows["cascade, published certifier (UNSOUND)"]
    assert published["sound"] is False
    assert published["broken_accurate"] > 0
    assert published["contradictions"][0]["found_by"].startswith(("casa", "pgd"))
    assert len(published["contradictions"][0]["x_adv"]) == 64
    for name in ("cascade, agreement-checked", "vote"):
        assert rows[name]["sound"] is True
        assert rows[name]["broken"] == 0
        assert rows[name]["claimed_vra"] > 0.1
    assert rows["vote"]["accuracy_under_attack"] < rows["vote"]["clean_accuracy"]


def test_crosscheck_text_and_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crosscheck", str(CASCADE / "cascade.prop"), "--property", "voters_robust", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "voters_robust" in out
    assert "stack_robust" not in out
    assert main(["crosscheck", str(CASCADE / "cascade.prop"), "--property", "nope"]) == 2
    assert "has no property 'nope'" in capsys.readouterr().err
    assert main(["crosscheck", str(CASCADE / "cascade.prop"), "--model", "stack=x.pt"]) == 2
    assert "stack is an ensemble" in capsys.readouterr().err


def test_crosscheck_trains_missing_members(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (CASCADE / "cascade.prop").read_text(encoding="utf-8")
    (tmp_path / "c.prop").write_text(text, encoding="utf-8")  # no members beside it: they are trained
    assert main(["crosscheck", str(tmp_path / "c.prop"), "--property", "stack_robust", "--steps", "5",
                 "--save", str(tmp_path / "out"), "--json"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.pt", "b.pt", "c.pt"]
    assert json.loads(capsys.readouterr().out)[0]["points"] == 360


def test_crosscheck_shows_progress_on_a_terminal_only(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    args = ["crosscheck", str(CASCADE / "cascade.prop"), "--property", "voters_robust", "--steps", "2"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(args) == 0
    assert "crosscheck" in capsys.readouterr().err  # the tqdm bar
    assert main([*args, "--json"]) == 0
    assert capsys.readouterr().err == ""
