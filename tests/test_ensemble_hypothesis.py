"""Hypothesis on tiny real ensembles (linear GloRo members, the real torch modules and certifiers):
it finds a counterexample to the cascade's published certificate, and none to the sound certifiers."""

from __future__ import annotations

import torch
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from checkers.ensemble import Cascade, GloRoMember, Vote
from checkers.ensemble.casa import in_ball
from checkers.lipschitz import Linear, LipschitzNet
from spec import ir

torch.set_num_threads(1)
coord = st.floats(-1, 1, allow_nan=False, width=32)


def _member(w: list[float], b: list[float], name: str) -> GloRoMember:
    head = Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(w, dtype=torch.float32).reshape(2, 2))
        head.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return GloRoMember(LipschitzNet((2,), [], head), name)


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[GloRoMember], float, torch.Tensor, torch.Tensor]:
    """Two or three linear members on R^2 (two labels), eps, a point x and x' in its l2 ball."""
    k = draw(st.integers(2, 3))
    members = [_member(draw(st.lists(coord, min_size=4, max_size=4)), draw(st.lists(coord, min_size=2, max_size=2)),
                       f"m{i}") for i in range(k)]
    eps = draw(st.floats(0.05, 0.5))
    x = torch.tensor([draw(st.lists(coord, min_size=2, max_size=2))], dtype=torch.float32)
    d = torch.tensor([draw(st.lists(coord, min_size=2, max_size=2))], dtype=torch.float64)
    d = d / d.norm().clamp(min=1e-12) * eps * draw(st.floats(0, 0.999))
    return members, eps, x, (x.to(torch.float64) + d).to(torch.float32)


def _broken(certs_label: torch.Tensor, certified: torch.Tensor, label_adv: torch.Tensor, x: torch.Tensor,
            xa: torch.Tensor, eps: float) -> bool:
    return bool(certified.item() and in_ball(xa, x, eps, ir.Norm.L2).item() and label_adv.item() != certs_label.item())


def test_hypothesis_finds_a_cascade_counterexample() -> None:
    def breaks(case: tuple[list[GloRoMember], float, torch.Tensor, torch.Tensor]) -> bool:
        members, eps, x, xa = case
        cascade = Cascade(members, eps)
        claim = cascade.certify_published_unsound(x)
        return _broken(claim.prediction, claim.certified, cascade.predict(xa), x, xa, eps)

    no_shrink = settings(max_examples=5000, database=None, deadline=None, phases=[Phase.generate])  # shrinking: 15 s
    members, eps, x, xa = find(cases(), breaks, settings=no_shrink)
    cascade = Cascade(members, eps)  # the example found replays on the real cascade
    assert cascade.certify_published_unsound(x).certified.item()
    assert cascade.predict(xa).item() != cascade.predict(x).item()
    assert not cascade.certify_agreement(x).certified.item()  # the sound certifier does not claim it


@settings(max_examples=300, deadline=None)
@given(cases())
def test_agreement_checked_cascade_is_never_broken(case: tuple[list[GloRoMember], float, torch.Tensor, torch.Tensor]) -> None:
    members, eps, x, xa = case
    cascade = Cascade(members, eps)
    claim = cascade.certify_agreement(x)
    assert not _broken(claim.prediction, claim.certified, cascade.predict(xa), x, xa, eps)


@settings(max_examples=300, deadline=None)
@given(cases(), st.lists(st.integers(1, 3), min_size=3, max_size=3))
def test_vote_is_never_broken(case: tuple[list[GloRoMember], float, torch.Tensor, torch.Tensor], weights: list[int]) -> None:
    members, eps, x, xa = case
    vote = Vote(members, eps, weights=weights[: len(members)])
    claim = vote.certify(x)
    assert not _broken(claim.prediction, claim.certified, vote.predict(xa), x, xa, eps)
