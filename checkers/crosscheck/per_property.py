"""`certspec crosscheck` on the properties of networks: every applicable checker per property (see `props`).

The properties handled here are the orderings and robustness at given points of a network,
and top-k / affinity robustness over a network's data set (at its points); local robustness
over a data set and every robustness of an ensemble is the row table of `commands`. Each
network needs a model: --model NAME=PATH, or SPEC's folder/NAME.pt (.onnx). Output: one line
per property and checker (what it claimed or found, or why it does not apply), then every
contradiction with its replayed witness.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from checkers.crosscheck.props import PropertyOptions, PropertyReport, check_property
from checkers.userfiles import load_spec
from spec import ir
from spec.errors import UsageError

ORDER = ("guard", "gloro", "fgp", "verifier", "hypothesis", "pgd")


def _selected(loaded: ir.Spec, names: list[str] | None, file: str) -> list[ir.Property]:
    from checkers.crosscheck.commands import _over_data, _properties

    return [p for p in _properties(loaded, names, file) if not _over_data(loaded, p)]


def _models(args: argparse.Namespace, loaded: ir.Spec, props: list[ir.Property]) -> dict[str, Any]:
    from checkers.cli import _load_models, _model_args

    paths = _model_args(args.model or [], loaded, args.spec)
    needed = list(dict.fromkeys(p.target for p in props))
    for name in needed:
        for suffix in (".pt", ".onnx"):
            default = Path(args.spec).parent / f"{name}{suffix}"
            if name not in paths and default.is_file():
                paths[name] = str(default)
    missing = [n for n in needed if n not in paths]
    if missing:
        raise UsageError(f"no model for network {missing[0]}: give --model {missing[0]}=PATH "
                         f"(or put {missing[0]}.pt beside {args.spec})")
    return _load_models({n: paths[n] for n in needed}, loaded)


def run_properties(args: argparse.Namespace) -> list[PropertyReport]:
    """The per-property cross-check of the selected properties (empty when none is of that kind)."""
    loaded = load_spec(args.spec)
    props = _selected(loaded, args.property, args.spec)
    if not props:
        return []
    models = _models(args, loaded, props)
    options = PropertyOptions(examples=args.examples, pgd_steps=min(args.steps, 100), timeout=args.timeout)
    show = sys.stderr.isatty() and not args.json
    reports = []
    for p in props:
        if show:
            print(f"crosscheck {p.name}", file=sys.stderr)
        p, opts = _at_points(loaded, p, options)
        reports.append(check_property(models[p.target], p, loaded.network(p.target), opts))
    return reports


def _at_points(loaded: ir.Spec, p: ir.Property, options: PropertyOptions) -> tuple[ir.Property, PropertyOptions]:
    """Robustness over a data set (top-k, affinity) as the same property at the data set's points (normalised
    units, as the certifier sees them), with at most ~2,000 Hypothesis points in all (at least 5 per centre)."""
    from checkers.lipschitz.commands import _points

    req = p.requirement
    if not isinstance(req, ir.Robust) or req.dataset is None:
        return p, options
    x, _ = _points(loaded, p, loaded.network(p.target))
    points = tuple(tuple(row) for row in x.tolist())
    examples = max(5, min(options.examples, 2000 // max(1, len(points))))
    return replace(p, requirement=replace(req, points=points, dataset=None)), replace(options, examples=examples)


def _summary(r: PropertyReport, name: str) -> str:
    if name not in r.ran:
        return "-"
    if not r.applied(name):  # the whole reason is in --json
        why = r.ran[name]
        return f"n/a: {why if len(why) <= 80 else why[:77] + '...'}"
    parts = []
    if name in r.holds:
        parts.append(f"HOLDS on {len(r.holds[name])} of {r.targets}")
    if name in r.witnesses:
        parts.append(f"{len(r.witnesses[name])} replayed witness(es)")
    if name in r.guard_witnesses and r.applied("guard"):
        parts.append(f"{len(r.guard_witnesses[name])} against the guard")
    return ", ".join(parts)


def print_reports(reports: list[PropertyReport], blank: bool = False) -> None:
    """The table (property, checker, what it said, contradictions), then the contradictions with their witnesses."""
    if blank:
        print()
    table = [("property", "checker", "result", "contradicted")]
    for r in reports:
        for name in ORDER:
            if name in r.ran:
                bad = sum(1 for c in r.contradictions if c.checker == name)
                table.append((r.property, name, _summary(r, name), str(bad) if name in r.holds else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in reports:
        for c in r.contradictions:
            print(f"\nCONTRADICTION: {c.property} / {c.checker} claims HOLDS on target {c.target}, but {c.found_by} "
                  f"found a replayed witness on the {c.on}:\n  x = {list(c.x)}\n  scores = {list(c.y)}")
        for note in r.notes:
            print(f"note: {r.property}: {note}")


def report_json(r: PropertyReport) -> dict[str, Any]:
    """One property's report as plain JSON data ("kind": "property")."""
    def witness(w: Any) -> dict[str, Any]:
        return {"x": list(w.x), "y": list(w.y), "target": w.part}

    return {
        "kind": "property", "property": r.property, "targets": r.targets,
        "checkers": {name: {"ran": r.ran[name], "holds": r.holds.get(name),
                            "witnesses": [witness(w) for w in r.witnesses.get(name, {}).values()],
                            "guard_witnesses": [witness(w) for w in r.guard_witnesses.get(name, {}).values()]}
                     for name in ORDER if name in r.ran},
        "contradictions": [{"checker": c.checker, "found_by": c.found_by, "target": c.target, "x": list(c.x),
                            "y": list(c.y), "on": c.on} for c in r.contradictions],
        "notes": r.notes,
    }
