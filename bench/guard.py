"""Guards on ACAS Xu and on a 100-label hierarchy: soundness counts and cost ratios.

    python bench/guard.py            # everything (one torch thread)
    python bench/guard.py --quick    # fewer points and repeats

1. The data check of issue 4: the 18 shared ACAS Xu networks with their properties (phi2 on
   N2,x; phi3 and phi4 on every network; phi5 and phi6 on N1,1; phi7 on N1,9; phi8 on
   N2,9), 5,000 uniform points per network over the input domain plus 2,000 inside each
   assigned property's region. Counted with the exact semantics (checkers.semantics), not
   the guard's own code: unsafe outputs, needless top-1 changes (the top label changed
   although a ranking meeting every active property keeps it: brute force over the 120
   rankings), and changed top-1 predictions.
2. Guarded against unguarded forward time at batch 4,096 on every network (goal <= 1.5).
3. Cost per point of the hierarchy case (100 labels, 20 superclasses of 5, "if the top label
   is in superclass S, the top 5 are exactly S") at batch 1,024 (goal <= 50 us on CPU).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import spec  # noqa: E402
from checkers import semantics  # noqa: E402
from checkers.guard import Guarded, GuardLayer, Reason, compile_guard, compile_layer  # noqa: E402
from checkers.models import load_model  # noqa: E402
from spec import ir  # noqa: E402
from timing import best_times  # noqa: E402

ACAS_DIR = ROOT.parent / "shared" / "data" / "acasxu"
ACAS_SPEC = ROOT / "examples" / "acasxu" / "acasxu.prop"


def assignment(first: int, second: int) -> tuple[int, ...]:
    """The properties issue 4 assigns to network N<first>,<second>."""
    props = [3, 4]
    if first == 2:
        props.insert(0, 2)
    if (first, second) == (1, 1):
        props += [5, 6]
    if (first, second) == (1, 9):
        props.append(7)
    if (first, second) == (2, 9):
        props.append(8)
    return tuple(props)


NETWORKS = [(a, b) for a in (1, 2) for b in range(1, 10)]


def network_path(first: int, second: int, root: Path = ACAS_DIR) -> Path:
    return root / f"ACASXU_run2a_{first}_{second}_batch_2000.onnx"


def sample_box(box: ir.Box, count: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform float32 points in a (finite) box, clipped back inside after rounding to float32."""
    lo, hi = torch.tensor(box.lower, dtype=torch.float64), torch.tensor(box.upper, dtype=torch.float64)
    x = (lo + (hi - lo) * torch.rand(count, len(box.lower), generator=gen, dtype=torch.float64)).float()
    inside = torch.stack([x, lo.float().expand_as(x)]).amax(dim=0)
    return torch.stack([inside, hi.float().expand_as(x)]).amin(dim=0)


def acas_points(loaded: ir.Spec, props: list[ir.Property], uniform: int, per_property: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    chunks = [sample_box(loaded.network("acas").domain, uniform, gen)]
    for prop in props:
        parts = prop.region.parts
        for k, part in enumerate(parts):  # split the points among the parts
            share = per_property // len(parts) + (k < per_property % len(parts))
            chunks.append(sample_box(part.box, share, gen))
    return torch.cat(chunks)


@dataclass
class Counts:
    points: int = 0
    active: int = 0
    changed: int = 0
    top_changed: int = 0
    unsafe: int = 0
    needless_top: int = 0
    abstained: int = 0

    def add(self, other: Counts) -> None:
        for field in self.__dataclass_fields__:
            setattr(self, field, getattr(self, field) + getattr(other, field))


_PERMS = torch.tensor(list(itertools.permutations(range(5))))  # rankings of 5 labels, best first


@functools.cache
def _keeps_top(reqs: tuple[ir.Ordering, ...], top: int, decide: ir.Decide) -> bool:
    """Brute force: does some strict ranking meeting every requirement keep `top` first?"""
    scores = torch.empty(len(_PERMS), 5, dtype=torch.float64)
    levels = torch.arange(5, 0, -1, dtype=torch.float64) if decide is ir.Decide.ARGMAX else torch.arange(5, dtype=torch.float64)
    scores.scatter_(1, _PERMS, levels.expand(len(_PERMS), 5))
    ok = _PERMS[:, 0] == top
    for req in reqs:
        ok &= semantics.holds(semantics.compile_ordering(req, 5), scores)
    return bool(ok.any())


def check(guarded: Guarded, props: list[ir.Property], net: ir.Network, x: torch.Tensor) -> Counts:
    """Count, with the exact semantics, what the guard did on the points x."""
    with torch.no_grad():
        result = guarded.explain(x)
    y, out = result.original, result.scores
    before, after = semantics.decision(y, net.decide), semantics.decision(out, net.decide)
    counts = Counts(points=len(x), abstained=int(result.abstained.sum()))
    unsafe = torch.zeros(len(x), dtype=torch.bool)
    actives = []
    for prop in props:
        active = torch.zeros(len(x), dtype=torch.bool)
        for part in prop.region.parts:
            active |= semantics.in_part(part, x, before)
        actives.append(active)
        rows = semantics.compile_ordering(prop.requirement, net.n_outputs)  # type: ignore[arg-type]
        unsafe |= active & ~semantics.holds(rows, out) & ~result.abstained
    counts.unsafe = int(unsafe.sum())
    counts.active = int(torch.stack(actives).any(dim=0).sum())
    counts.changed = int((out != y).any(dim=1).sum())
    moved = (before != after) & ~result.abstained
    counts.top_changed = int(moved.sum())
    for b in moved.nonzero().flatten().tolist():
        reqs = tuple(p.requirement for p, a in zip(props, actives, strict=True) if a[b])
        counts.needless_top += _keeps_top(reqs, int(before[b]), net.decide)  # type: ignore[arg-type]
    return counts


def acas_guard(loaded: ir.Spec, first: int, second: int, root: Path = ACAS_DIR) -> tuple[Guarded, list[ir.Property]]:
    props = [loaded.property(f"phi{k}") for k in assignment(first, second)]
    return compile_guard(props, load_model(network_path(first, second, root)), loaded.network("acas")), props


def hierarchy_layer(labels: int = 100, group: int = 5) -> GuardLayer:
    """The hierarchy case: if the top label is in superclass S, the top |S| labels are exactly S."""
    net = ir.Network("h", (1,), (labels,), tuple(f"c{i}" for i in range(labels)), ("x",), ir.Box.unbounded(1))
    props = []
    for g in range(labels // group):
        members = range(group * g, group * g + group)
        atoms = tuple(ir.Order(a, b, True) for a in members for b in range(labels) if b not in members)
        part = ir.RegionPart(ir.Box.unbounded(1), (), tuple(members))
        props.append(ir.Property(f"super{g}", "h", ir.Region((part,)), ir.Ordering((atoms,))))
    return compile_layer(props, net)


def hierarchy_scores(batch: int, labels: int, seed: int) -> torch.Tensor:
    """Random scores with ties: a quarter of the values are rounded to one decimal."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(batch, labels, generator=gen)
    rounded = torch.rand(batch, labels, generator=gen) < 0.25
    return torch.where(rounded, (y * 10).round() / 10, y)


def run_acas(uniform: int, per_property: int, repeats: int) -> None:
    loaded = spec.load_file(ACAS_SPEC)
    net = loaded.network("acas")
    total = Counts()
    ratios = []
    print("network  properties   points  active  changed  top-1 changed  unsafe  needless  abstained  time ratio")
    for first, second in NETWORKS:
        guarded, props = acas_guard(loaded, first, second)
        x = acas_points(loaded, props, uniform, per_property, seed=10 * first + second)
        counts = check(guarded, props, net, x)
        total.add(counts)
        xb = sample_box(net.domain, 4096, torch.Generator().manual_seed(first * 100 + second))
        with torch.no_grad():
            plain, guard = best_times([lambda xb=xb, g=guarded: g.model(xb), lambda xb=xb, g=guarded: g(xb)], repeats,
                                      warmup=True)
        ratios.append(guard / plain)
        names = ",".join(str(k) for k in assignment(first, second))
        print(f"N{first},{second}    {names:10} {counts.points:8} {counts.active:7} {counts.changed:8} "
              f"{counts.top_changed:14} {counts.unsafe:7} {counts.needless_top:9} {counts.abstained:10}  "
              f"{guard / plain:5.2f} ({plain * 1e3:.2f} -> {guard * 1e3:.2f} ms)")
    ratios.sort()
    print(f"total    {'':10} {total.points:8} {total.active:7} {total.changed:8} {total.top_changed:14} "
          f"{total.unsafe:7} {total.needless_top:9} {total.abstained:10}")
    print(f"guarded / unguarded forward time at batch 4,096: median {ratios[len(ratios) // 2]:.2f}, "
          f"max {ratios[-1]:.2f} (goal <= 1.5)")


def run_hierarchy(repeats: int) -> None:
    layer = hierarchy_layer()
    y = hierarchy_scores(1024, 100, seed=0)
    x = torch.zeros(1024, 1)
    result = layer.explain(x, y)
    reranked = int((result.reason == Reason.RERANKED).sum())
    with torch.no_grad():
        seconds, sort = best_times([lambda: layer(x, y), lambda: torch.sort(y, dim=1, descending=True)], repeats,
                                   warmup=True)
    print(f"hierarchy (100 labels, 20 x 5, batch 1,024): {reranked} re-ranked, {seconds / 1024 * 1e6:.1f} us per point "
          f"(goal <= 50); {seconds / sort:.1f} x one torch.sort of the scores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 + 200 points per network, 5 repeats")
    args = parser.parse_args()
    torch.set_num_threads(1)
    uniform, per_property, repeats = (500, 200, 5) if args.quick else (5000, 2000, 20)
    if network_path(1, 1).exists():
        run_acas(uniform, per_property, repeats)
    else:
        print(f"{ACAS_DIR} is absent: ACAS Xu part skipped")
    run_hierarchy(repeats)


if __name__ == "__main__":
    main()
