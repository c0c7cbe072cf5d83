"""FGP: projections, tolerances, witnesses, errors, and soundness against the exact verifier and attacks."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import spec
from checkers.attack import pgd as box_pgd
from checkers.fgp import FGP, FGPOptions, FGPResult
from checkers.fgp.witness import candidates, linf_step
from checkers.semantics import compile_ordering, decision
from checkers.verdict import Status
from checkers.verify import VerifyOptions, verify_property
from spec import ir
from spec.errors import ModelError, UsageError
from tests.nets import random_mlp

torch.set_num_threads(1)


def unit_box(n: int) -> ir.Box:
    return ir.Box((0.0,) * n, (1.0,) * n, (False,) * n, (False,) * n)


def exact_distance(x: tuple[float, ...], x0: torch.Tensor, norm: ir.Norm) -> Fraction:
    diffs = [Fraction(v) - Fraction(float(c)) for v, c in zip(x, x0.tolist(), strict=True)]
    if norm is ir.Norm.LINF:
        return max(abs(d) for d in diffs)
    return sum((d * d for d in diffs), Fraction(0))


def assert_witness(module: nn.Module, result: FGPResult, x0: torch.Tensor, eps: float, norm: ir.Norm) -> None:
    """A VIOLATED result's witness: float32, in the ball and [0, 1]^n, and the float32 prediction changes."""
    w = result.verdict.witness
    assert w is not None
    bound = Fraction(eps) if norm is ir.Norm.LINF else Fraction(eps) ** 2
    assert exact_distance(w.x, x0, norm) <= bound
    x = torch.tensor(w.x, dtype=torch.float32)
    assert bool(((x >= 0) & (x <= 1)).all())
    assert torch.equal(x.to(torch.float64), torch.tensor(w.x, dtype=torch.float64))  # float32 values
    with torch.no_grad():
        y = module(x[None])
    assert int(decision(y, ir.Decide.ARGMAX)[0]) != result.label
    assert tuple(y[0].tolist()) == w.y


def robust_spec(n: int, m: int, x0: torch.Tensor, eps: float, norm: ir.Norm) -> tuple[ir.Property, ir.Network]:
    point = ", ".join(repr(float(v)) for v in x0.tolist())
    text = (f"network net : real[{n}] -> real[{m}]\n  domain x[*] in [0, 1]\n"
            f"property p: robust eps {eps!r} norm {norm.value} at [{point}]\n")
    loaded = spec.load(text)
    return loaded.properties[0], loaded.network("net")


def sampled_witness(module: nn.Module, x0: torch.Tensor, eps: float, norm: ir.Norm, label: int, seed: int) -> bool:
    """Random points of the ball (and, for linf, PGD in its box) whose float32 prediction differs from label."""
    gen = torch.Generator().manual_seed(seed)
    n = x0.numel()
    d = torch.randn(2000, n, generator=gen, dtype=torch.float64)
    if norm is ir.Norm.LINF:
        pts = x0 + eps * (torch.rand(2000, n, generator=gen, dtype=torch.float64) * 2 - 1)
        pts = torch.cat([pts, x0 + eps * d.sign()])
    else:
        r = torch.rand(2000, 1, generator=gen, dtype=torch.float64) ** (1 / n)
        pts = x0 + eps * 0.999 * d / d.norm(dim=1, keepdim=True) * torch.cat([r[:1000], torch.ones(1000, 1)])
    pts = pts.clamp(0, 1).to(torch.float32)
    if norm is ir.Norm.LINF:
        others = [j for j in range(3) if j != label]
        from spec.ir import Order, Ordering

        rows = compile_ordering(Ordering((tuple(Order(label, j, True) for j in others),)), 3)
        lo, hi = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
        pts = torch.cat([pts, box_pgd(module, rows, lo, hi, starts=8, steps=20, generator=gen)])
    with torch.no_grad():
        y = module(pts)
    return bool((decision(y, ir.Decide.ARGMAX) != label).any())


def test_linf_step_is_the_linf_projection() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        g = torch.randn(6, generator=gen, dtype=torch.float64)
        x0 = torch.rand(6, generator=gen, dtype=torch.float64)
        h = 0.3 - float(g @ x0)  # g.x0 + h = 0.3 > 0
        room = torch.full((6,), 10.0, dtype=torch.float64)
        t = linf_step(g, 0.3, room)
        assert t == pytest.approx(0.3 / float(g.abs().sum()), rel=1e-12)  # no domain: |v| / ||g||_1
        lo, hi = torch.zeros(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
        point = candidates(g, h, x0, 5.0, ir.Norm.LINF, lo, hi)[0]
        assert float(g @ point) + h == pytest.approx(0.0, abs=1e-12) or bool(((point == lo) | (point == hi)).all())
        assert bool(((point >= lo) & (point <= hi)).all())
        # the linf distance is the smallest t: any smaller step leaves the hyperplane unreached
        reach = torch.where(g > 0, x0 - lo, hi - x0)
        t_dom = linf_step(g, 0.3, reach)
        if t_dom != float("inf"):
            assert float((point - x0).abs().max()) == pytest.approx(t_dom, rel=1e-9)
            smaller = x0 - g.sign() * torch.minimum(torch.full_like(reach, t_dom * 0.999), reach)
            assert float(g @ smaller) + h > 0


def test_linf_projection_is_not_the_l2_one() -> None:
    g = torch.tensor([3.0, 1.0], dtype=torch.float64)
    x0 = torch.tensor([0.5, 0.5], dtype=torch.float64)
    h = 0.4 - float(g @ x0)
    lo, hi = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    linf = candidates(g, h, x0, 0.2, ir.Norm.LINF, lo, hi)[0]
    l2 = candidates(g, h, x0, 0.2, ir.Norm.L2, lo, hi)[0]
    assert torch.allclose(linf, x0 - 0.1)  # |v| / ||g||_1 = 0.4 / 4 along -sign(g)
    assert float((l2 - x0).abs().max()) > 0.1  # the l2 projection lies farther in linf: outside a 0.1 linf ball


def test_errors_name_the_offending_value() -> None:
    net = random_mlp(0, 3, [4], 2)
    fgp = FGP(net, 3, domain=unit_box(3))
    with pytest.raises(UsageError, match=r"eps=-0.1 must be"):
        fgp.check(torch.full((3,), 0.5), -0.1)
    with pytest.raises(UsageError, match=r"shape \[4\]"):
        fgp.check(torch.zeros(4), 0.1)
    with pytest.raises(UsageError, match=r"x\[1\]=2.0 is not in"):
        fgp.check(torch.tensor([0.5, 2.0, 0.5]), 0.1)
    with pytest.raises(UsageError, match=r"shape \[2, 5\]"):
        fgp.certify(torch.zeros(2, 5), 0.1)
    with pytest.raises(ModelError, match=r"FGP needs a ReLU network.*Tanh"):
        FGP(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), 3)


def float32_trap() -> nn.Sequential:
    """Scores A = x + 0.5 and B = relu(x + 2^24) - 2^24: A - B = 0.5 over the reals, but float32 rounds
    x + 2^24 to an even integer, so B = 2 > A at x = 1.2 (and B = 0 < A at x = 1)."""
    first, second = nn.Linear(1, 2), nn.Linear(2, 2)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [1.0]]))
        first.bias.copy_(torch.tensor([0.0, 2.0**24]))
        second.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        second.bias.copy_(torch.tensor([0.5, -(2.0**24)]))
    return nn.Sequential(first, nn.ReLU(), second).eval()


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
def test_robust_over_the_reals_is_not_enough(norm: ir.Norm) -> None:
    net = float32_trap()
    x0 = torch.tensor([1.0])
    with torch.no_grad():
        assert net(torch.tensor([[1.2]]))[0].argmax() == 1 and net(x0[None])[0].argmax() == 0
    dom = ir.Box((0.5,), (1.5,), (False,), (False,))
    result = FGP(net, 1, domain=dom).check(x0, 0.4, norm)
    assert result.status is not Status.HOLDS
    if result.status is Status.VIOLATED:
        w = result.verdict.witness
        assert w is not None and 1.0 < w.x[0] <= 1.4
        assert result.radius < abs(w.x[0] - 1.0)


def test_degenerate_network_duplicate_and_dead_neurons() -> None:
    torch.manual_seed(0)
    base = random_mlp(3, 2, [6, 6], 3)
    first = base[0]
    dup = nn.Linear(2, 8)
    with torch.no_grad():  # duplicate two neurons and add two dead rows
        dup.weight.copy_(torch.cat([first.weight, first.weight[:1], torch.zeros(1, 2)]))
        dup.bias.copy_(torch.cat([first.bias, first.bias[:1], torch.zeros(1)]))
    mid = nn.Linear(8, 6)
    with torch.no_grad():
        mid.weight.copy_(torch.cat([base[2].weight, torch.zeros(6, 2)], dim=1))
        mid.bias.copy_(base[2].bias)
    net = nn.Sequential(dup, nn.ReLU(), mid, nn.ReLU(), base[4]).eval()
    fgp = FGP(net, 2, domain=unit_box(2))
    for x0 in torch.rand(8, 2, generator=torch.Generator().manual_seed(1)):
        for norm in (ir.Norm.L2, ir.Norm.LINF):
            result = fgp.check(x0, 0.15, norm)
            if result.status is Status.HOLDS:
                assert not sampled_witness(net, x0.double(), 0.15, norm, result.label, 0)
            elif result.status is Status.VIOLATED:
                assert_witness(net, result, x0.double(), 0.15, norm)


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
def test_lower_bound_radius_is_certified(norm: ir.Norm) -> None:
    net = random_mlp(5, 3, [12, 12], 3)
    fgp = FGP(net, 3, domain=unit_box(3), options=FGPOptions(lower_bound=True))
    radii = []
    for i, x0 in enumerate(torch.rand(6, 3, generator=torch.Generator().manual_seed(2))):
        result = fgp.check(x0, 0.5, norm)
        radii.append(result.radius)
        assert 0 <= result.radius <= 0.5
        if result.radius > 0:
            assert not sampled_witness(net, x0.double(), result.radius * 0.999, norm, result.label, i)
        if result.status is Status.VIOLATED:
            assert_witness(net, result, x0.double(), 0.5, norm)
            w = result.verdict.witness
            assert w is not None and float(exact_distance(w.x, x0.double(), norm)) >= result.radius ** (
                1 if norm is ir.Norm.LINF else 2)
    assert max(radii) > 0  # the bound is not vacuous


def test_eps_zero_and_timeout() -> None:
    net = random_mlp(1, 3, [8], 3)
    fgp = FGP(net, 3, domain=unit_box(3))
    assert fgp.check(torch.full((3,), 0.5), 0.0).status is Status.HOLDS
    wide = random_mlp(2, 20, [64, 64], 3)
    slow = FGP(wide, 20, domain=unit_box(20), options=FGPOptions(timeout=0.05, batch=1, lower_bound=True,
                                                                      attack_starts=0))
    result = slow.check(torch.full((20,), 0.5), 1.0, ir.Norm.LINF)
    assert result.status in (Status.TIMEOUT, Status.UNKNOWN)
    assert result.radius < 1.0


def near_boundary(net: nn.Module, n: int, eps: float, seed: int) -> torch.Tensor:
    """A float32 centre in [0, 1]^n at a random distance (up to 2 eps) from a decision boundary, when one is found."""
    gen = torch.Generator().manual_seed(seed)
    pts = torch.rand(64, n, generator=gen)
    with torch.no_grad():
        labels = net(pts).argmax(dim=1)
    other = (labels != labels[0]).nonzero().flatten()
    if not len(other):
        return pts[0].to(torch.float64)
    a, b = pts[0], pts[int(other[0])]
    for _ in range(30):
        mid = (a + b) / 2
        with torch.no_grad():
            same = bool(net(mid[None]).argmax(dim=1)[0] == labels[0])
        a, b = (mid, b) if same else (a, mid)
    d = torch.randn(n, generator=gen)
    offset = d / d.norm() * eps * 2 * float(torch.rand(1, generator=gen))
    return (a + offset).clamp(0, 1).to(torch.float32).to(torch.float64)


def soundness_case(seed: int, n: int, widths: list[int], eps: float, norm: ir.Norm) -> None:
    net = random_mlp(seed, n, widths, 3, scale=2.0)
    x0 = near_boundary(net, n, eps, seed)
    result = FGP(net, n, domain=unit_box(n), options=FGPOptions(timeout=5.0)).check(x0, eps, norm)
    if result.status is Status.VIOLATED:
        assert_witness(net, result, x0, eps, norm)
        return
    prop, network = robust_spec(n, 3, x0, eps, norm)
    exact = verify_property(net, prop, network, VerifyOptions(timeout=10.0))
    if result.status is Status.HOLDS:
        assert exact.status is not Status.VIOLATED, (exact.witness, result)
        assert not sampled_witness(net, x0, eps, norm, result.label, seed)


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), depth=st.integers(1, 2), width=st.integers(2, 8),
       eps=st.sampled_from([0.01, 0.05, 0.1, 0.2]), linf=st.booleans())
def test_fgp_never_contradicts_the_verifier_or_attacks(seed: int, n: int, depth: int, width: int, eps: float,
                                                        linf: bool) -> None:
    soundness_case(seed, n, [width] * depth, eps, ir.Norm.LINF if linf else ir.Norm.L2)


@pytest.mark.slow
@settings(max_examples=150)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 6), width=st.integers(4, 16), eps=st.floats(0.005, 0.3),
       linf=st.booleans())
def test_fgp_soundness_many_networks(seed: int, n: int, width: int, eps: float, linf: bool) -> None:
    soundness_case(seed, n, [width, width], eps, ir.Norm.LINF if linf else ir.Norm.L2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_verdicts_on_cuda() -> None:
    net = random_mlp(4, 4, [16, 16], 3)
    x = torch.rand(6, 4, generator=torch.Generator().manual_seed(3))
    cpu = FGP(net, 4, domain=unit_box(4)).certify(x, 0.1, ir.Norm.L2)
    gpu = FGP(net, 4, domain=unit_box(4), device="cuda").certify(x, 0.1, ir.Norm.L2)
    assert torch.equal(cpu.prediction, gpu.prediction)
    for a, b in zip(cpu.results, gpu.results, strict=True):
        assert (a.status is Status.HOLDS) == (b.status is Status.HOLDS) or Status.TIMEOUT in (a.status, b.status)


def hidden_boundary() -> nn.Sequential:
    """Two inputs; score A = 1, score B = 10 relu(relu(x0 - 0.5) + x1 - 0.6): B is 0 in the centre's region
    (x0 = x1 = 0.3), so only regions two flips away carry the decision boundary."""
    first, second, last = nn.Linear(2, 2), nn.Linear(2, 1), nn.Linear(1, 2)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        first.bias.copy_(torch.tensor([-0.5, 0.0]))
        second.weight.copy_(torch.tensor([[1.0, 1.0]]))
        second.bias.copy_(torch.tensor([-0.6]))
        last.weight.copy_(torch.tensor([[0.0], [10.0]]))
        last.bias.copy_(torch.tensor([1.0, 0.0]))
    return nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), last).eval()


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
def test_boundary_only_in_neighbouring_regions(norm: ir.Norm) -> None:
    net = hidden_boundary()
    x0 = torch.tensor([0.3, 0.3], dtype=torch.float64)
    fgp = FGP(net, 2, domain=unit_box(2))
    # B > A needs x0' + x1' > 1.2 with x0' > 0.5: linf distance 0.3, l2 distance 0.3 sqrt(2)
    far = fgp.check(x0, 0.29, norm)
    assert far.status is Status.HOLDS and far.regions > 1
    near = fgp.check(x0, 0.45, norm)
    assert near.status is Status.VIOLATED
    assert_witness(net, near, x0, 0.45, norm)
    bound = FGP(net, 2, domain=unit_box(2), options=FGPOptions(lower_bound=True)).check(x0, 0.45, norm)
    true_radius = 0.3 if norm is ir.Norm.LINF else 0.3 * 2**0.5
    assert 0.25 < bound.radius <= true_radius
