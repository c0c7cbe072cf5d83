"""`certspec certify SPEC --model PATH --method fgp`: local robustness by fast geometric projections.

Each local robustness property (or those named) is decided at every point of its data set
or its `at [...]` points: ROBUST / NOT_ROBUST / UNKNOWN / TIMEOUT per point, clean
accuracy and VRA (correct and ROBUST) over a labelled data set, a certified radius per
point with --lower-bound, and the median time per point. Top-k and affinity properties
are for the GloRo certifier: left out (named on stderr) unless named with --property,
which is then an error. --json prints one JSON list and nothing else on stdout; a
progress bar runs on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from checkers.finite import dumps
from checkers.fgp.api import FGP, FGPBatch
from checkers.fgp.search import FGPOptions
from checkers.userfiles import load_spec
from checkers.verdict import Status
from spec import ir
from spec.errors import ModelError, UsageError

NAMES = {Status.HOLDS: "robust", Status.VIOLATED: "not_robust", Status.UNKNOWN: "unknown", Status.TIMEOUT: "timeout"}


def _local_properties(loaded: ir.Spec, names: list[str] | None, file: str) -> list[ir.Property]:
    from checkers.lipschitz.commands import _robust_properties

    props = _robust_properties(loaded, names, file)
    local = [p for p in props if isinstance(p.requirement, ir.Robust) and isinstance(p.requirement.kind, ir.Local)]
    skipped = [p.name for p in props if p not in local]
    if names and skipped:
        raise UsageError(f"property {skipped[0]} is not local robustness: FGP decides `robust eps ...` properties; "
                         "top-k and affinity robustness are for the GloRo certifier (--method gloro)")
    if skipped:
        print(f"certspec: FGP skips {', '.join(skipped)} (top-k / affinity: use --method gloro)", file=sys.stderr)
    if not local:
        raise UsageError(f"{file} has no local robustness property for FGP")
    return local


@contextmanager
def _bar(name: str, total: int, show: bool) -> Iterator[Callable[[int], None] | None]:
    if not show:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=name, file=sys.stderr, leave=False, unit="pt")
    try:
        yield lambda done: bar.update(done - bar.n)
    finally:
        bar.close()


def _summary(prop: ir.Property, batch: FGPBatch, labels: Any) -> dict[str, Any]:
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    n = len(batch.results)
    counts = {name: sum(r.status is s for r in batch.results) for s, name in NAMES.items()}
    seconds = [r.seconds for r in batch.results]
    out: dict[str, Any] = {
        "property": prop.name, "network": prop.target, "method": "fgp", "kind": "local", "eps": req.eps,
        "norm": req.norm.value, "points": n, **counts,
        "decided_rate": (counts["robust"] + counts["not_robust"]) / n if n else 0.0,
        "certified_rate": counts["robust"] / n if n else 0.0,
        "clean_accuracy": None, "vra": None,
        "median_seconds": statistics.median(seconds) if seconds else 0.0,
        "predictions": batch.prediction.tolist(),
        "statuses": [NAMES[r.status] for r in batch.results],
        "radii": [round(float(r), 6) for r in batch.radius],
        "witnesses": [None if r.verdict.witness is None else list(r.verdict.witness.x) for r in batch.results],
    }
    if labels is not None and n:
        correct = batch.prediction == labels
        out["clean_accuracy"] = float(correct.float().mean())
        out["vra"] = float((correct & batch.robust).float().mean())
    return out


def _print(s: dict[str, Any], show_radii: bool) -> None:
    head = f"{s['property']}: local {s['norm']} eps {s['eps']:g}, {s['points']} points (FGP):"
    acc = "" if s["clean_accuracy"] is None else f" clean accuracy {100 * s['clean_accuracy']:.1f}%, VRA {100 * s['vra']:.1f}%,"
    print(f"{head}{acc} robust {s['robust']}, not robust {s['not_robust']}, unknown {s['unknown']}, "
          f"timeout {s['timeout']}; median {1000 * s['median_seconds']:.1f} ms per point", flush=True)
    if show_radii:
        for i, (p, st, r) in enumerate(zip(s["predictions"], s["statuses"], s["radii"], strict=True)):
            print(f"  {i}: predicted {p}, {st.replace('_', ' ')}, radius {r:.6f}")


def fgp_command(args: argparse.Namespace) -> int:
    from checkers.cli import _load_models, _model_args, _threads
    from checkers.lipschitz.commands import _robust_jobs

    if args.plot:
        raise UsageError("--plot is for --method gloro (VRA against eps from Lipschitz certificates)")
    try:
        import torch

        torch.device(args.device)
    except RuntimeError:
        raise UsageError(f"--device {args.device!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    with _threads(args.threads):
        loaded = load_spec(args.spec)
        props = _local_properties(loaded, args.property, args.spec)
        modules = _load_models(_model_args(args.model, loaded, args.spec), loaded)
        options = FGPOptions(timeout=args.timeout, lower_bound=args.lower_bound)
        results = []
        for prop, req, network, model, x, labels in _robust_jobs(loaded, props, modules):
            try:
                fgp = FGP(model, network.n_inputs, domain=network.domain, decide=network.decide,
                          options=options, device=args.device)
            except ModelError as err:
                raise ModelError(f"network {prop.target}: {err.message}") from None
            with _bar(prop.name, len(x), not args.json and sys.stderr.isatty()) as progress:
                batch = fgp.certify(x, req.eps, req.norm, progress)
            summary = _summary(prop, batch, labels)
            results.append(summary)
            if not args.json:
                _print(summary, args.radii)
        if args.json:
            print(dumps(results))
    return 0
