"""Issue 8: n-dimensional float-rounding traps (n = 2..8): balls and region faces within 1e-7 of a hyperplane.

The network's decision boundary is the hyperplane y0 = p with y0 = w . x (weights +-2^a) or
y0 = v . relu(D x + 2) (a diagonal +-1 first layer; relu is active on the whole domain), and
y1 = p a constant (zero weights: y1 is exactly the float32 bias p). Label 0 is strictly ahead iff
y0 > p, a tie being a change.

The oracle. The float32 computation of w . x is NOT exact here (n products of full-precision
inputs are summed with rounding, in an order BLAS picks), so the oracle does not recompute it.
Instead it evaluates the float32 model itself, alone (batch 1, as every replay does), at the
one point that decides: float32 rounding is monotone (a product by a constant, a sum and a ReLU
are each non-decreasing in their arguments, and the summation order does not depend on the
values), so y0 is monotone in each x_i, the way the sign of its weight says, and its least value
over the float32 points of a box (an l_inf ball, or a region with strict or non-strict faces) is
at the box's worst float32 corner: per coordinate the least (w_i > 0) or greatest (w_i < 0)
float32 value inside, found with rationals (`fractions.Fraction`). The property truly holds iff
y0 > p there (compared exactly: both are float32 numbers). The traps put that corner within 1e-7
(or a few ulps) of the boundary on either side, ties included.

Checkers: GloRo (`certify` and `CertifiedClassifier`, l_inf), FGP, the exact verifier, the guard (a region face) and
`find_counterexample`. None may certify or prove what is not truly so; a VIOLATED verdict or a
witness must replay to a point that truly lies in the ball or region and truly violates.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from checkers.fgp import FGP
from checkers.guard import compile_guard
from checkers.lipschitz import CertifiedClassifier, as_lipschitz, certify
from checkers.strategies import float32_inside
from checkers.testing import find_counterexample
from checkers.verdict import Status, Witness
from checkers.verify import VerifyOptions, verify_property
from spec import ir

torch.set_num_threads(1)  # tiny models: threads only contend
VERIFY = VerifyOptions(timeout=1, attack_starts=4, attack_steps=5)  # UNKNOWN at the time limit is fine here
NEAR = st.one_of(st.just(0.0), st.floats(-1e-7, 1e-7), st.sampled_from([1e-7, -1e-7, 5.9604645e-08, -5.9604645e-08]))
DOMAIN = 2.0
# p within an ulp or two of y0 at the reference corner (the traps), and a few further off (robust by 2^4 to 2^20
# ulps, ~1e-6 to 0.1: cases a sound checker may certify, so that the traps are not passed by refusing everything)
ULPS = st.sampled_from([-1, 0, 0, 1, -1, 0, 1, 16, -16, -(2**10), -(2**16), -(2**20)])


def _network(n: int) -> ir.Network:
    return ir.Network("net", (n,), (2,), ("a", "b"), tuple(f"x{i}" for i in range(n)),
                      ir.Box((-DOMAIN,) * n, (DOMAIN,) * n, (False,) * n, (False,) * n))


def _f32_step(v: float, toward: float, k: int = 1) -> float:
    """v (a float32) moved k float32 steps toward `toward` (through the ordinals of the float32 values)."""
    bits = int(np.array(v, dtype=np.float32).view(np.uint32))
    ordinal = bits if bits < 2**31 else -(bits - 2**31)  # -0.0 and 0.0 share the ordinal 0
    ordinal += k if toward > v else -k
    out = ordinal if ordinal >= 0 else 2**31 - ordinal
    return float(np.array(out, dtype=np.uint32).view(np.float32))


def _least_float32(bound: Fraction, strict: bool = False) -> float:
    """The least float32 value > bound (strict) or >= bound, exactly."""
    v = float(np.float32(float(bound)))
    while Fraction(v) < bound or (strict and Fraction(v) == bound):
        v = _f32_step(v, np.inf)
    while Fraction(below := _f32_step(v, -np.inf)) > bound or (not strict and Fraction(below) == bound):
        v = below
    return v


def _greatest_float32(bound: Fraction, strict: bool = False) -> float:
    return -_least_float32(-bound, strict)


class Trap:
    """The model, its y0 weight signs, and the oracle's corner."""

    def __init__(self, signs: list[int], exps: list[int], relu: bool, p: float = 0.0) -> None:
        n = len(signs)
        self.signs = signs
        last = nn.Linear(n, 2)
        layers: list[nn.Module] = []
        with torch.no_grad():
            if relu:  # h = relu(d_i x_i + 2) > 0 on the domain, y0 = sum v_i h_i, sign(v_i d_i) = signs[i]
                first = nn.Linear(n, n)
                d = [1.0 if i % 2 else -1.0 for i in range(n)]
                first.weight.copy_(torch.diag(torch.tensor(d)))
                first.bias.fill_(2.0)
                layers += [first, nn.ReLU()]
                row = [s * di * 2.0**a for s, di, a in zip(signs, d, exps, strict=True)]
            else:
                row = [s * 2.0**a for s, a in zip(signs, exps, strict=True)]
            last.weight.copy_(torch.tensor([row, [0.0] * n]))
            last.bias.copy_(torch.tensor([0.0, p]))
        self.model = nn.Sequential(*layers, last).eval()
        self.last = last

    def set_p(self, p: float) -> None:
        with torch.no_grad():
            self.last.bias[1] = p

    @property
    def p(self) -> float:
        return float(self.last.bias[1].detach())

    def y0(self, x: list[float]) -> float:
        with torch.no_grad():
            return float(self.model(torch.tensor([x], dtype=torch.float32))[0, 0])

    def corner(self, lower: list[Fraction], upper: list[Fraction], lower_strict: list[bool] | None = None,
               upper_strict: list[bool] | None = None) -> list[float]:
        """The worst float32 point of the box: where y0 is least."""
        n = len(self.signs)
        ls, us = lower_strict or [False] * n, upper_strict or [False] * n
        return [_least_float32(lower[i], ls[i]) if s > 0 else _greatest_float32(upper[i], us[i])
                for i, s in enumerate(self.signs)]

    def violates(self, w: Witness) -> bool:
        """The witness's point, replayed alone, has label 0 not strictly ahead (exactly)."""
        with torch.no_grad():
            y = self.model(torch.tensor([list(w.x)], dtype=torch.float32))[0].tolist()
        return Fraction(y[0]) <= Fraction(y[1])


def _in_box(x: tuple[float, ...], lower: list[Fraction], upper: list[Fraction], ls: list[bool], us: list[bool]) -> bool:
    return all((Fraction(v) > lo if s else Fraction(v) >= lo) and (Fraction(v) < hi if t else Fraction(v) <= hi)
               for v, lo, hi, s, t in zip(x, lower, upper, ls, us, strict=True))


def _check_the_oracle(trap: Trap, worst: list[float], lower: list[Fraction], upper: list[Fraction],
                      data: st.DataObject, ls: list[bool] | None = None, us: list[bool] | None = None) -> None:
    """Monotonicity, spot-checked: float32 points of the box (corners, faces, anything; strict sides
    excluded) are no lower than `worst`."""
    n = len(worst)
    ls, us = ls or [False] * n, us or [False] * n
    low = trap.y0(worst)
    for _ in range(4):
        x = [data.draw(st.one_of(st.just(w), st.floats(*float32_inside(float(lo), float(hi)), width=32)))
             for w, lo, hi in zip(worst, lower, upper, strict=True)]
        x = [v if _in_box((v,), [lo], [hi], [a], [b]) else w
             for v, w, lo, hi, a, b in zip(x, worst, lower, upper, ls, us, strict=True)]
        assert trap.y0(x) >= low, (x, worst)


def _p_near(trap: Trap, reference: list[float], ulps: int) -> float:
    """p: y0 at the reference corner, moved `ulps` float32 steps (the boundary sits within a few ulps of it)."""
    y = trap.y0(reference)
    return _f32_step(y, np.inf if ulps > 0 else -np.inf, abs(ulps))


# centre coordinates: float32 in [-1, 1], tiny ones included (their ball's box rounds in float64)
coordinates = st.floats(-1, 1, width=32)
trap_parts = st.integers(2, 8).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n),
    st.one_of(st.lists(st.just(0), min_size=n, max_size=n), st.lists(st.integers(-1, 1), min_size=n, max_size=n)),
    st.booleans(),
    st.lists(coordinates, min_size=n, max_size=n)))


@settings(max_examples=80, deadline=None)
@given(parts=trap_parts, eps=st.sampled_from([0.125, 0.1, 0.3]), delta=NEAR, ulps=ULPS,
       data=st.data())
def test_no_checker_certifies_an_n_dim_ball_whose_worst_corner_is_within_1e7_of_the_boundary(
        parts: tuple[list[int], list[int], bool, list[float]], eps: float, delta: float, ulps: int,
        data: st.DataObject) -> None:
    signs, exps, relu, centre = parts
    n = len(signs)
    trap = Trap(signs, exps, relu)
    c = [Fraction(v) for v in centre]
    # p: y0 at the worst corner of the ball of radius eps + delta (a few ulps from the real ball's corner)
    r = Fraction(eps) + Fraction(delta)
    trap.set_p(_p_near(trap, trap.corner([v - r for v in c], [v + r for v in c]), ulps))
    e = Fraction(eps)
    worst = trap.corner([v - e for v in c], [v + e for v in c])
    truly = trap.y0(worst) > trap.p and trap.y0(centre) > trap.p
    _check_the_oracle(trap, worst, [v - e for v in c], [v + e for v in c], data)
    network = _network(n)
    x = torch.tensor([centre], dtype=torch.float32)
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(network.domain),)), ir.Robust(ir.Local(), eps, ir.Norm.LINF,
                                                                                          (tuple(centre),)))
    lip = as_lipschitz(trap.model, (n,))
    cert = certify(lip, x, eps, ir.Norm.LINF)
    label, ok = CertifiedClassifier(lip, eps, ir.Norm.LINF)(x)
    fgp = FGP(trap.model, n, domain=network.domain).check(x[0].double(), eps, ir.Norm.LINF)
    verdict = verify_property(trap.model, prop, network, VERIFY)
    case = (signs, exps, relu, centre, eps, delta, ulps, trap.p, worst)
    if not truly:
        assert not bool(cert.certified[0]) or int(cert.prediction[0]) != 0, case
        assert not bool(ok[0]) or int(label[0]) != 0, case
        assert fgp.verdict.status is not Status.HOLDS, case
        assert verdict.status is not Status.HOLDS, case
    for w in (fgp.verdict.witness, verdict.witness, find_counterexample(trap.model, prop, network, examples=20,
                                                                         pgd_steps=10, data=data)):
        if w is not None:
            assert _in_box(w.x, [v - e for v in c], [v + e for v in c], [False] * n, [False] * n), (case, w)
            assert trap.violates(w), (case, w)
    assert fgp.verdict.status is not Status.VIOLATED or fgp.verdict.witness is not None, case
    assert verdict.status is not Status.VIOLATED or verdict.witness is not None, case
    if not truly and trap.y0(centre) > trap.p:  # PGD reaches the corner: the trap is found
        w = find_counterexample(trap.model, prop, network, examples=1, pgd_steps=10, data=data)
        assert w is not None, case


@settings(max_examples=80, deadline=None)
@given(parts=trap_parts, half=st.sampled_from([0.125, 0.1, 0.3]), deltas=st.lists(NEAR, min_size=8, max_size=8),
       strict=st.lists(st.booleans(), min_size=8, max_size=8), ulps=ULPS, data=st.data())
def test_an_n_dim_region_whose_faces_are_within_1e7_of_the_boundary(
        parts: tuple[list[int], list[int], bool, list[float]], half: float, deltas: list[float], strict: list[bool],
        ulps: int, data: st.DataObject) -> None:
    """`when x in box require y0 > y1`, the box's faces on y0's low side moved by up to 1e-7 (strict or not)."""
    signs, exps, relu, centre = parts
    n = len(signs)
    trap = Trap(signs, exps, relu)
    c, h = [Fraction(v) for v in centre], Fraction(half)
    lower, upper = [v - h for v in c], [v + h for v in c]
    trap.set_p(_p_near(trap, trap.corner(lower, upper), ulps))
    # move the faces that decide (the low side of y0) by up to 1e-7, inwards or outwards; the bounds are float64
    lo = [float(lower[i] + Fraction(deltas[i])) if signs[i] > 0 else float(lower[i]) for i in range(n)]
    hi = [float(upper[i] - Fraction(deltas[i])) if signs[i] < 0 else float(upper[i]) for i in range(n)]
    ls = [strict[i] and signs[i] > 0 for i in range(n)]
    us = [strict[i] and signs[i] < 0 for i in range(n)]
    lowf, upf = [Fraction(v) for v in lo], [Fraction(v) for v in hi]
    worst = trap.corner(lowf, upf, ls, us)
    truly = trap.y0(worst) > trap.p
    _check_the_oracle(trap, worst, lowf, upf, data, ls, us)
    network = _network(n)
    box = ir.Box(tuple(lo), tuple(hi), tuple(ls), tuple(us))
    prop = ir.Property("face", "net", ir.Region((ir.RegionPart(box),)), ir.Ordering(((ir.Order(0, 1, True),),)))
    case = (signs, exps, relu, centre, half, deltas[:n], strict[:n], ulps, trap.p, worst)
    verdict = verify_property(trap.model, prop, network, VERIFY)
    assert verdict.status is not (Status.HOLDS if not truly else Status.VIOLATED), (case, verdict)
    w = find_counterexample(trap.model, prop, network, examples=20, pgd_steps=10, data=data)
    for found in (w, verdict.witness):
        if found is not None:
            assert _in_box(found.x, lowf, upf, ls, us) and trap.violates(found), (case, found)
    if not truly and not any(ls) and not any(us):  # PGD's box is the region's: it reaches the corner
        assert w is not None, case
    guarded = compile_guard([prop], trap.model, network)
    with torch.no_grad():
        points = [worst, *([list(w.x)] if w is not None else [])]
        out = guarded.explain(torch.tensor(points, dtype=torch.float32))
    for k in range(len(points)):
        assert bool(out.abstained[k]) or Fraction(float(out.scores[k, 0])) > Fraction(float(out.scores[k, 1])), case


@pytest.mark.parametrize("norm", list(ir.Norm))
def test_the_verifier_never_reports_a_witness_outside_a_ball_whose_centre_has_a_tiny_coordinate(norm: ir.Norm) -> None:
    """centre -+ eps rounds in float64 (2^-60 - 0.125 is -0.125, a float32 point just outside the ball): a witness
    must be in the ball exactly (`semantics.in_ball`), so the verifier once reported VIOLATED here, wrongly."""
    trap = Trap([1, 1], [0, 0], False, p=-0.125)
    with torch.no_grad():
        trap.last.weight[0, 1] = 0.0  # y0 = x0 > -0.125 at every float32 point of the ball below
    centre, eps = (2.0**-60, 0.0), 0.125  # the least float32 x0 in the ball is -0.12499999254 > -0.125
    network = _network(2)
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(network.domain),)), ir.Robust(ir.Local(), eps, norm, (centre,)))
    assert find_counterexample(trap.model, prop, network) is None
    verdict = verify_property(trap.model, prop, network, VERIFY)
    if verdict.witness is not None:
        e, c = Fraction(eps), [Fraction(v) for v in centre]
        d = [Fraction(v) - cv for v, cv in zip(verdict.witness.x, c, strict=True)]
        inside = all(abs(v) <= e for v in d) if norm is ir.Norm.LINF else sum(v * v for v in d) <= e * e
        assert inside and trap.violates(verdict.witness), verdict
    assert verdict.status is not Status.VIOLATED, verdict


def test_the_trap_bites_where_real_arithmetic_says_robust() -> None:
    """y0 = x0 + x1 + x2 at the worst corner (1, 2^-25, 2^-25): exactly 1 + 2^-24 > p = 1, but float32 rounds the
    sum to 1 (a tie: not robust), whatever the order. A checker that reasons in real arithmetic on the float32
    scores without a rounding margin would certify this ball; none may."""
    trap = Trap([1, 1, 1], [0, 0, 0], False, p=1.0)
    eps, tiny = 0.125, 2.0**-25
    corner = [1.0, tiny, tiny]
    centre = (1.125, 0.125 + tiny, 0.125 + tiny)  # exactly float32: the ball's worst float32 corner is `corner`
    assert [float(np.float32(v)) for v in centre] == list(centre)
    assert sum(Fraction(v) for v in corner) > 1 and trap.y0(corner) == 1.0
    network = _network(3)
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(network.domain),)), ir.Robust(ir.Local(), eps, ir.Norm.LINF,
                                                                                          (centre,)))
    x = torch.tensor([centre], dtype=torch.float32)
    lip = as_lipschitz(trap.model, (3,))
    assert not bool(certify(lip, x, eps, ir.Norm.LINF).certified[0])
    assert not bool(CertifiedClassifier(lip, eps, ir.Norm.LINF)(x)[1][0])
    assert FGP(trap.model, 3, domain=network.domain).check(x[0].double(), eps, ir.Norm.LINF).verdict.status is not Status.HOLDS
    assert verify_property(trap.model, prop, network, VERIFY).status is not Status.HOLDS
    w = find_counterexample(trap.model, prop, network)
    assert w is not None and trap.violates(w)
