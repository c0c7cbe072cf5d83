"""Z3 on the exact two- and three-member constructions: the cascade's published certificate is refuted
(with the stated witnesses), voting and the agreement-checked cascade are proven sound."""

from __future__ import annotations

from fractions import Fraction

import pytest

from checkers.ensemble.z3proofs import THREE_MEMBER, TWO_MEMBER, Construction, LinearMember, counterexample, replay
from spec.errors import UsageError

CONSTRUCTIONS = [TWO_MEMBER, THREE_MEMBER]


@pytest.mark.parametrize("c", CONSTRUCTIONS, ids=lambda c: c.name)
def test_published_cascade_certificate_is_refuted(c: Construction) -> None:
    status, points = counterexample(c, "published-unsound")
    assert status == "sat"
    assert points is not None
    assert replay(c, "published-unsound", *points)  # counterexample() also replays; checked here independently


@pytest.mark.parametrize("c", CONSTRUCTIONS, ids=lambda c: c.name)
def test_stated_witness_satisfies_the_encoding(c: Construction) -> None:
    """The witnesses of ALGORITHMS.md (two members) and ours (three) are models of the Z3 formula, and replay."""
    status, points = counterexample(c, "published-unsound", pin=(c.x, c.x_adv))
    assert status == "sat"
    assert points == (c.x, c.x_adv)
    assert replay(c, "published-unsound", c.x, c.x_adv)


def test_stated_witnesses_are_the_documented_points() -> None:
    assert TWO_MEMBER.eps == Fraction(1, 10)
    assert TWO_MEMBER.x == (Fraction(1, 10), 0)
    assert TWO_MEMBER.x_adv == (Fraction(3, 20), 0)
    assert TWO_MEMBER.members[0] == LinearMember((Fraction(1), Fraction(0)), Fraction(0))
    assert THREE_MEMBER.x == (Fraction(3, 20), Fraction(-1, 20))
    assert THREE_MEMBER.x_adv == (Fraction(1, 10), Fraction(-3, 20))


@pytest.mark.parametrize("c", CONSTRUCTIONS, ids=lambda c: c.name)
@pytest.mark.parametrize("certifier", ["agreement", "vote"])
def test_sound_certifiers_are_proven(c: Construction, certifier: str) -> None:
    assert counterexample(c, certifier) == ("unsat", None)
    assert not replay(c, certifier, c.x, c.x_adv)  # the cascade's witness is not even claimed


@pytest.mark.parametrize("c", CONSTRUCTIONS, ids=lambda c: c.name)
def test_weighted_vote_is_proven(c: Construction) -> None:
    weights = [Fraction(2), Fraction(1), Fraction(1)][: len(c.members)]
    assert counterexample(c, "vote", weights) == ("unsat", None)


def test_a_heavier_first_member_changes_nothing_for_soundness() -> None:
    """Weight 3 on the first member: the vote now follows it, and is still certified only where sound."""
    weights = [Fraction(3), Fraction(1), Fraction(1)]
    assert counterexample(THREE_MEMBER, "vote", weights) == ("unsat", None)
    assert replay(THREE_MEMBER, "vote", (Fraction(1), Fraction(1)), (Fraction(1), Fraction(1)), weights) is False


def test_errors_name_the_bad_value() -> None:
    with pytest.raises(UsageError, match="certifier 'cascade'"):
        counterexample(TWO_MEMBER, "cascade")
    with pytest.raises(UsageError, match="weights"):
        counterexample(TWO_MEMBER, "vote", [Fraction(1)])
    with pytest.raises(UsageError, match="weights"):
        counterexample(TWO_MEMBER, "vote", [Fraction(1), Fraction(0)])
