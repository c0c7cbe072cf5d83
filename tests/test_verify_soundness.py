"""Soundness of the verifier (`checkers.verify.verify_ordering`) against independent oracles.

On random small ReLU networks (float32 weights, up to 3 hidden layers of 16 neurons),
random boxes (strict and non-strict sides, sometimes cut by a half-space) and random
Ordering requirements (strict and non-strict Order atoms, Linear atoms with tight bounds,
1-3 disjuncts), a verdict must never contradict:

- HOLDS: Z3 on the exact real network, without any of the verifier's bounds
  (`z3_decide(hidden=None)`), finds no real counterexample; and 20,000 float32 points of
  the region (corners and their inner neighbours included) replayed on the torch model
  all meet the requirement.
- VIOLATED: the witness is a float32 point of the region and its float32 scores,
  recomputed by the model, violate the requirement; Z3 does not say "unsat" unless the
  violation is float32-only (the exact real network meets the requirement at the witness).
- UNKNOWN / TIMEOUT: allowed, counted (printed with -s), and a minority.

Where the falsifier decided, the branch and bound runs again alone, so that its own
verdicts and witnesses meet the same oracles. Deterministic cases show the float32 side:
a property that holds for the real network (Z3: "unsat") but fails in float32, because
rounding ties the scores, is never HOLDS; with a comfortable margin it is.
"""

from __future__ import annotations

import collections
import itertools
import time
from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from checkers import z3check
from checkers.attack import inner_float32
from checkers.bounds import crown_hidden_bounds
from checkers.plnet import PLNet, from_module
from checkers.semantics import compile_ordering, holds, in_part
from checkers.verdict import Status, Verdict
from checkers.verify import VerifyOptions, _Part, _Search, verify_ordering
from checkers.z3check import z3_decide
from spec import ir
from nets import random_mlp

OPTIONS = VerifyOptions(timeout=5.0)
Z3_HOLDS_MS = 20_000  # Z3's budget to confirm a HOLDS
Z3_VIOLATED_MS = 3_000  # ... and to look for a real counterexample behind a VIOLATED
DENSE = 20_000
BNB_TIMEOUT = 1.0  # branch and bound alone, on properties the falsifier refuted


@st.composite
def cases(draw: st.DrawFn) -> tuple[nn.Sequential, ir.Property]:
    """A network and a property on it: a box around a random centre and an Ordering whose
    atoms are often (not always) oriented as the scores at the centre are, so that both
    verdicts occur."""
    n_in, n_out = draw(st.integers(2, 4)), draw(st.integers(2, 5))
    widths = draw(st.lists(st.integers(2, 16), min_size=1, max_size=3))
    module = random_mlp(draw(st.integers(0, 2**31)), n_in, widths, n_out)
    centre = draw(st.lists(st.floats(-1, 1, width=32), min_size=n_in, max_size=n_in))
    radius = draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0]), min_size=n_in, max_size=n_in))
    strict = draw(st.lists(st.booleans(), min_size=2 * n_in, max_size=2 * n_in))
    box = ir.Box(
        tuple(c - r for c, r in zip(centre, radius, strict=True)), tuple(c + r for c, r in zip(centre, radius, strict=True)),
        tuple(s and r > 0 for s, r in zip(strict[:n_in], radius, strict=True)),
        tuple(s and r > 0 for s, r in zip(strict[n_in:], radius, strict=True)),
    )
    halfspaces: tuple[ir.HalfSpace, ...] = ()
    if draw(st.integers(0, 3)) == 0:  # sometimes a half-space through the box
        i, j = sorted(draw(st.permutations(range(n_in)))[:2])
        ci, cj = draw(st.sampled_from([1.0, -1.0, 0.5, 2.0])), draw(st.sampled_from([1.0, -1.0, -0.5, 3.0]))
        shift = draw(st.sampled_from([-0.5, 0.0, 0.5])) * (abs(ci) * radius[i] + abs(cj) * radius[j])
        halfspaces = (ir.HalfSpace(((i, ci), (j, cj)), ci * centre[i] + cj * centre[j] + shift, draw(st.booleans())),)
    lo32, hi32 = inner_float32(torch.tensor(box.lower, dtype=torch.float64), torch.tensor(box.upper, dtype=torch.float64))
    probe = lo32 + torch.rand(256, n_in, generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))) * (hi32 - lo32)
    with torch.no_grad():
        y0 = module(torch.tensor([centre], dtype=torch.float32))[0].tolist()
        ys = module(torch.cat([torch.tensor([centre]), probe])).to(torch.float64)
    disjuncts = []
    for _ in range(draw(st.integers(1, 3))):
        atoms: list[ir.Atom] = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.integers(0, 2)) > 0:
                a, b = draw(st.permutations(range(n_out)))[:2]
                if draw(st.integers(0, 3)) > 0 and y0[a] < y0[b]:  # mostly true at the centre
                    a, b = b, a
                atoms.append(ir.Order(a, b, draw(st.booleans())))
            else:  # a bound near the largest value seen in the box: tight, often needs splitting
                picked = sorted(draw(st.sets(st.integers(0, n_out - 1), min_size=1, max_size=2)))
                coeffs = tuple((i, draw(st.sampled_from([1.0, -1.0, 0.5, -2.0, 0.75]))) for i in picked)
                seen = float((ys[:, [i for i, _ in coeffs]] @ torch.tensor([c for _, c in coeffs], dtype=torch.float64)).max())
                offset = draw(st.sampled_from([-0.01, 0.0, 1e-6, 1e-3, 0.01, 0.1, 1.0]))
                atoms.append(ir.Linear(coeffs, seen + offset * (1 + abs(seen)), draw(st.booleans())))
        disjuncts.append(tuple(atoms))
    prop = ir.Property("p", "net", ir.Region((ir.RegionPart(box, halfspaces),)), ir.Ordering(tuple(disjuncts)))
    return module, prop


def exact_outputs(net: PLNet, x: list[Fraction]) -> list[Fraction]:
    """The real network's scores at x, in exact rational arithmetic."""
    h = x
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        z = [sum((Fraction(c) * v for c, v in zip(row, h, strict=True)), Fraction(bias))
             for row, bias in zip(w.tolist(), b.tolist(), strict=True)]
        h = z if k == len(net.weights) - 1 else [max(v, Fraction(0)) for v in z]
    return h


def exact_holds(req: ir.Ordering, y: list[Fraction]) -> bool:
    def atom(a: ir.Atom) -> bool:
        if isinstance(a, ir.Order):
            return y[a.hi] > y[a.lo] if a.strict else y[a.hi] >= y[a.lo]
        value = sum((Fraction(c) * y[i] for i, c in a.coeffs), Fraction(0))
        return value < Fraction(a.bound) if a.strict else value <= Fraction(a.bound)

    return any(all(atom(a) for a in conj) for conj in req.disjuncts)


def dense_points(box: ir.Box, count: int, seed: int = 0) -> torch.Tensor:
    """float32 points of the box: every corner of its float32 hull, the neighbours inside, uniform ones."""
    lo, hi = inner_float32(torch.tensor(box.lower, dtype=torch.float64), torch.tensor(box.upper, dtype=torch.float64))
    n = lo.numel()
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float32)
    corners = lo + bits * (hi - lo)
    inward = torch.nextafter(corners, (lo + hi).expand_as(corners) / 2)
    gen = torch.Generator().manual_seed(seed)
    uniform = lo + torch.rand(count - 2 * len(bits), n, generator=gen) * (hi - lo)
    return torch.cat([corners, inward, uniform.clamp(lo, hi)])


def check_verdict(module: nn.Sequential, net: PLNet, prop: ir.Property, verdict: Verdict,
                  counts: collections.Counter[str], tag: str = "") -> None:
    """Hold a verdict on `prop` against the oracles; count what happened under `tag`."""
    req, part = prop.requirement, prop.region.parts[0]
    assert isinstance(req, ir.Ordering)
    rows = compile_ordering(req, net.n_outputs)
    counts[tag + verdict.status.value] += 1
    if verdict.status is Status.HOLDS:
        result, x = z3_decide(net, part, req, timeout_ms=Z3_HOLDS_MS, hidden=None)
        assert result != "sat", f"HOLDS, but Z3 finds a real counterexample at {x}"
        counts[tag + ("holds, z3 unsat" if result == "unsat" else "holds, z3 unknown")] += 1
        points = dense_points(part.box, DENSE)
        points = points[in_part(part, points)]
        with torch.no_grad():
            ok = holds(rows, module(points))
        assert ok.all(), f"HOLDS, but the float32 model violates it at {points[~ok][0].tolist()}"
    elif verdict.status is Status.VIOLATED:
        witness = verdict.witness
        assert witness is not None
        x = torch.tensor([witness.x], dtype=torch.float32)
        assert tuple(x[0].tolist()) == witness.x, "the witness is not a float32 point"
        assert bool(in_part(part, x)[0]), "the witness lies outside the region"
        with torch.no_grad():
            y = module(x)
        assert not bool(holds(rows, y)[0]), "the witness does not replay: its float32 scores meet the requirement"
        assert y[0].tolist() == list(witness.y)
        real_ok = exact_holds(req, exact_outputs(net, [Fraction(v) for v in witness.x]))
        result, _ = z3_decide(net, part, req, timeout_ms=Z3_VIOLATED_MS)
        # unsat only for a float32-only violation: the real network meets the requirement at the witness
        assert result != "unsat" or real_ok, "Z3 says unsat, yet the real network violates it at the witness"
        counts[tag + (f"violated, float32 only, z3 {result}" if real_ok else f"violated, z3 {result}")] += 1


def branch_and_bound_only(module: nn.Sequential, net: PLNet, prop: ir.Property, timeout: float,
                          base: VerifyOptions = OPTIONS) -> Verdict:
    """The verifier's branch and bound without its falsifier, so that its own witnesses are exercised."""
    req, part = prop.requirement, prop.region.parts[0]
    assert isinstance(req, ir.Ordering)
    options = VerifyOptions(**{**base.__dict__, "timeout": timeout})
    search = _Search(module, net, req, options, time.monotonic() + timeout)
    lower, upper = torch.tensor(part.box.lower, dtype=torch.float64), torch.tensor(part.box.upper, dtype=torch.float64)
    return search.prove(_Part(0, part, lower, upper), None)


def check_property(module: nn.Sequential, prop: ir.Property, counts: collections.Counter[str],
                   options: VerifyOptions = OPTIONS) -> None:
    net = from_module(module, (len(prop.region.parts[0].box.lower),))
    verdict = verify_ordering(module, net, prop, options)
    check_verdict(module, net, prop, verdict, counts)
    if verdict.status is Status.VIOLATED and "falsifier" in verdict.reason:
        alone = branch_and_bound_only(module, net, prop, BNB_TIMEOUT, options)
        assert alone.status is not Status.HOLDS, "branch and bound proves what the falsifier refuted"
        check_verdict(module, net, prop, alone, counts, "b&b alone: ")


def run_soundness(max_examples: int, budget: float, options: VerifyOptions = OPTIONS) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    start = time.monotonic()

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(cases())
    def one(case: tuple[nn.Sequential, ir.Property]) -> None:
        if time.monotonic() - start > budget:
            counts["skipped (time budget)"] += 1
            return
        check_property(*case, counts, options)

    torch.set_num_threads(1)
    one()
    print(dict(counts))
    decided = counts["holds"] + counts["violated"]
    undecided = counts["unknown"] + counts["timeout"]
    assert decided > 0 and undecided < decided / 2, f"too many undecided verdicts: {dict(counts)}"
    assert counts["holds"] > 0 and counts["violated"] > 0, f"one verdict never occurs: {dict(counts)}"
    assert counts["holds, z3 unknown"] <= counts["holds"] / 10, f"Z3 could not check the HOLDS: {dict(counts)}"
    return counts


def test_verifier_never_contradicts_z3_and_float32_replay() -> None:
    run_soundness(max_examples=150, budget=60.0)


@pytest.mark.slow
def test_verifier_never_contradicts_z3_and_float32_replay_more() -> None:
    run_soundness(max_examples=500, budget=160.0)


def test_relu_phase_branching_never_contradicts_z3_and_float32_replay() -> None:
    """The same oracles with the branch and bound on ReLU phases (what 784-input images get),
    forced on the small networks by relu_split_inputs=0."""
    run_soundness(max_examples=150, budget=60.0, options=VerifyOptions(**{**OPTIONS.__dict__, "relu_split_inputs": 0}))


# ---------------------------------------------------------------- float32 versus the reals


def two_scores(a: float, b: float) -> nn.Sequential:
    """y0 = a * x0, y1 = b * x0 in float32 (a 1-layer network, no bias)."""
    lin = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[a], [b]]))
    return nn.Sequential(lin).eval()


def y0_above_y1(lower: float, upper: float) -> ir.Property:
    box = ir.Box((lower,), (upper,), (False,), (False,))
    return ir.Property("p", "net", ir.Region((ir.RegionPart(box),)), ir.Ordering(((ir.Order(0, 1, True),),)))


B = 1.5
A = float(torch.nextafter(torch.tensor(B), torch.tensor(2.0)))  # the next float32 above 1.5


def test_real_but_not_float32_property_is_never_holds() -> None:
    """y0 = A x > y1 = 1.5 x for every real x in [1.5, 1.9] (A > 1.5), but A x - 1.5 x = x 2^-23 is
    under one float32 ulp of the scores there, so float32 rounding ties them at some inputs."""
    torch.set_num_threads(1)
    module, prop = two_scores(A, B), y0_above_y1(1.5, 1.9)
    net = from_module(module, (1,))
    part, req = prop.region.parts[0], prop.requirement
    assert isinstance(req, ir.Ordering)
    assert z3_decide(net, part, req, timeout_ms=5000) == ("unsat", None)  # the real network meets it
    xs = torch.linspace(1.5, 1.9, 10_001, dtype=torch.float32)[:, None]
    with torch.no_grad():
        ties = ~holds(compile_ordering(req, 2), module(xs))
    assert ties.any(), "the construction must make float32 tie somewhere"
    verdict = verify_ordering(module, net, prop, VerifyOptions(timeout=10.0))
    assert verdict.status in (Status.VIOLATED, Status.UNKNOWN, Status.TIMEOUT), verdict
    if verdict.status is Status.VIOLATED:
        assert verdict.witness is not None
        x = torch.tensor([verdict.witness.x], dtype=torch.float32)
        assert 1.5 <= verdict.witness.x[0] <= 1.9
        with torch.no_grad():
            y = module(x)[0]
        assert float(y[0]) == float(y[1])
    alone = branch_and_bound_only(module, net, prop, 3.0)  # the proof side, without the falsifier
    assert alone.status is not Status.HOLDS, alone


def test_real_but_not_float32_property_behind_a_relu_is_never_holds() -> None:
    """The same tie one ReLU layer deep: h = relu(x0), y0 = A h, y1 = 1.5 h."""
    torch.set_num_threads(1)
    first = nn.Linear(1, 1)
    with torch.no_grad():
        first.weight.fill_(1.0)
        first.bias.fill_(0.0)
    module = nn.Sequential(first, nn.ReLU(), *two_scores(A, B)).eval()
    prop = y0_above_y1(1.5, 1.9)
    net = from_module(module, (1,))
    verdict = verify_ordering(module, net, prop, VerifyOptions(timeout=10.0))
    assert verdict.status is not Status.HOLDS, verdict
    assert branch_and_bound_only(module, net, prop, 3.0).status is not Status.HOLDS


def test_comfortable_margin_holds() -> None:
    """The control: with y0 = 1.515 x, y1 = 1.5 x the float32 margin is far below the gap."""
    torch.set_num_threads(1)
    module, prop = two_scores(1.515, B), y0_above_y1(1.5, 1.9)
    net = from_module(module, (1,))
    part, req = prop.region.parts[0], prop.requirement
    assert isinstance(req, ir.Ordering)
    assert z3_decide(net, part, req, timeout_ms=5000) == ("unsat", None)
    verdict = verify_ordering(module, net, prop, VerifyOptions(timeout=10.0))
    assert verdict.status is Status.HOLDS, verdict
    assert branch_and_bound_only(module, net, prop, 3.0).status is Status.HOLDS


def test_region_touching_a_half_space_at_one_corner_is_not_dropped() -> None:
    """The box [-500, -499] x [499, 500] meets x0 - x1 <= -1000 only at its corner (-500, 500),
    where the (constant) scores violate y0 > y1: the part must not be skipped as outside the
    half-space (a relative tolerance on a negative bound once pushed the test the wrong way)."""
    torch.set_num_threads(1)
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([0.0, 1.0]))
    module = nn.Sequential(lin).eval()
    net = from_module(module, (2,))
    box = ir.Box((-500.0, 499.0), (-499.0, 500.0), (False, False), (False, False))
    part = ir.RegionPart(box, (ir.HalfSpace(((0, 1.0), (1, -1.0)), -1000.0, False),))
    prop = ir.Property("p", "net", ir.Region((part,)), ir.Ordering(((ir.Order(0, 1, True),),)))
    assert bool(in_part(part, torch.tensor([[-500.0, 500.0]]))[0])
    assert isinstance(prop.requirement, ir.Ordering)
    assert z3_decide(net, part, prop.requirement, timeout_ms=5000)[0] == "sat"
    verdict = verify_ordering(module, net, prop, VerifyOptions(timeout=5.0))
    assert verdict.status is not Status.HOLDS, verdict
    assert branch_and_bound_only(module, net, prop, 3.0).status is not Status.HOLDS


def test_z3_finds_exact_counterexamples() -> None:
    """z3_decide's "sat" models are exact: in the region (strict sides, half-space) and the real
    network violates the requirement there; with stabilising bounds the answer is the same."""
    torch.set_num_threads(1)
    module = random_mlp(3, 2, [8, 8], 3)
    net = from_module(module, (2,))
    box = ir.Box((-0.5, 0.25), (0.5, 0.75), (True, False), (False, True))
    part = ir.RegionPart(box, (ir.HalfSpace(((0, 1.0), (1, 1.0)), 0.9, True),))
    y = exact_outputs(net, [Fraction(0), Fraction(1, 2)])  # a point of the part
    a, b = sorted(range(3), key=lambda i: y[i])[:2]  # y[a] <= y[b] there
    value = float(y[0] - 2 * y[2])
    violated_somewhere = (
        ir.Ordering(()),  # false
        ir.Ordering(((ir.Order(a, b, True),),)),
        ir.Ordering(((ir.Order(a, b, False), ir.Order(b, a, True)), (ir.Linear(((0, 1.0), (2, -2.0)), value - 0.1, False),))),
    )
    lower, upper = torch.tensor([box.lower], dtype=torch.float64), torch.tensor([box.upper], dtype=torch.float64)
    for req in violated_somewhere:
        for hidden in (None, crown_hidden_bounds(net, lower, upper)):
            result, x = z3_decide(net, part, req, timeout_ms=10_000, hidden=hidden)
            assert result == "sat" and x is not None
            for v, lo, hi, ls, us in zip(x, box.lower, box.upper, box.lower_strict, box.upper_strict, strict=True):
                assert (lo < v if ls else lo <= v) and (v < hi if us else v <= hi)
            assert x[0] + x[1] < Fraction(0.9)
            assert not exact_holds(req, exact_outputs(net, x))
    assert z3_decide(net, part, ir.Ordering(((),)), timeout_ms=1000) == ("unsat", None)  # "true" holds
    with pytest.raises(ValueError, match="prediction"):
        z3_decide(net, ir.RegionPart(box, (), (0,)), ir.Ordering(((),)), timeout_ms=1000)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.integers(1, 4), st.lists(st.integers(1, 16), min_size=1, max_size=3),
       st.lists(st.floats(-1, 1), min_size=4, max_size=4), st.sampled_from([0.0, 0.01, 0.3, 2.0]))
def test_z3_implied_bounds_contain_sampled_preactivations(
    seed: int, n_in: int, widths: list[int], centre: list[float], radius: float,
) -> None:
    """The bounds z3check feeds Z3 as implied facts must be sound, or "unsat" would be worthless."""
    torch.set_num_threads(1)
    net = from_module(random_mlp(seed, n_in, widths, 2), (n_in,))
    lo, hi = [Fraction(c - radius) for c in centre[:n_in]], [Fraction(c + radius) for c in centre[:n_in]]
    layers = [([[Fraction(c) for c in row] for row in w.tolist()], [Fraction(c) for c in b.tolist()])
              for w, b in zip(net.weights, net.biases, strict=True)]
    bounds = z3check._bounds(layers, lo, hi)
    lower = torch.tensor([float(v) for v in lo], dtype=torch.float64)
    upper = torch.tensor([float(v) for v in hi], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    x = lower + torch.rand(2000, n_in, generator=gen, dtype=torch.float64) * (upper - lower)
    x = torch.cat([x, lower[None], upper[None]])
    h = x
    for k, (w, b) in enumerate(zip(net.weights[:-1], net.biases[:-1], strict=True)):
        z = h @ w.T + b
        low = torch.tensor([float(v) for v in bounds[k][0]], dtype=torch.float64)
        up = torch.tensor([float(v) for v in bounds[k][1]], dtype=torch.float64)
        tol = 1e-12 * (1 + z.abs())
        assert (z >= low - tol).all() and (z <= up + tol).all()
        h = torch.relu(z)
