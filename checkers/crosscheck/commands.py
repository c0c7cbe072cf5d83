"""`certspec crosscheck`: every checker's claims on a spec's properties against every other checker's witnesses.

    certspec crosscheck SPEC [--model NAME=PATH]... [--property NAME]... [--train] [--save DIR]
                             [--steps N] [--examples N] [--timeout S] [--threads N] [--json]

Robustness over a data set, and of an ensemble, is handled here (below). Every other
property of a network (orderings, local robustness at points) goes to
`checkers.crosscheck.per_property`: the guard, GloRo, FGP, the exact verifier and the
falsifiers on each, contradictions with their replayed witnesses (its models are never
trained: --model NAME=PATH or SPEC's folder/NAME.pt).

Models: --model NAME=PATH, else SPEC's folder/NAME.pt when it exists, else (or with
--train) the missing networks are trained: as the members of the spec's first cascade
(`checkers.ensemble.train`: each on what the earlier ones do not certify), on the training
split of the properties' data set, at the largest l2 eps. --save DIR writes them.

Prints one row per checker and property: points, clean accuracy, claimed VRA (certified and
correct), the certified-and-accurate points a replayed attack point breaks, and accuracy
under attack; then the contradictions with their witnesses (all of them with --json).
Exit 0 when no checker declared sound is contradicted (the UNSOUND cascade certifier's
contradictions are expected), 1 when one is (a soundness bug), 2 for a user error.
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from checkers.finite import dumps
from checkers.crosscheck.core import Case, Row, attack_case, check_case
from checkers.ensemble import AttackOptions, GloRoMember, from_ir
from checkers.ensemble.base import Single
from checkers.lipschitz.network import LipschitzNet
from checkers.userfiles import check_output, load_spec, write_output
from spec import ir
from spec.errors import ModelError, UsageError, printable


def _properties(loaded: ir.Spec, names: list[str] | None, file: str) -> list[ir.Property]:
    from checkers.cli import _find_property

    props = [_find_property(loaded, n, file) for n in dict.fromkeys(names)] if names else list(loaded.properties)
    if not props:
        raise UsageError(f"{file} has no properties to cross-check")
    return props


def _over_data(loaded: ir.Spec, p: ir.Property) -> bool:
    """Local robustness over a data set, or any robustness of an ensemble: the certifier-against-attack rows;
    the rest, top-k and affinity over a network's data set included (at its points), per property."""
    req = p.requirement
    if not isinstance(req, ir.Robust):
        return False
    return any(e.name == p.target for e in loaded.ensembles) or (
        req.dataset is not None and isinstance(req.kind, ir.Local))


def _needed(loaded: ir.Spec, props: list[ir.Property]) -> list[str]:
    """The networks the properties need, cascade members first and in cascade order."""
    ensembles = {e.name: e for e in loaded.ensembles}
    order: list[str] = []
    for e in sorted(ensembles.values(), key=lambda e: e.kind is not ir.EnsembleKind.CASCADE):
        if any(p.target == e.name for p in props):
            order += [m for m in e.members if m not in order]
    order += [p.target for p in props if p.target not in ensembles and p.target not in order]
    return order


def _train(loaded: ir.Spec, props: list[ir.Property], names: list[str], show: bool) -> dict[str, LipschitzNet]:
    from checkers.ensemble.train import MemberTraining, train_cascade_members
    from checkers.lipschitz.data import load_dataset, training_source
    from checkers.lipschitz.network import sqrt_dim

    over = [p for p in props if isinstance(p.requirement, ir.Robust) and p.requirement.dataset is not None]
    if not over:
        raise UsageError(f"no model for {', '.join(names)} and no property over a data set to train it on: "
                         "give --model NAME=PATH")
    sources = {d.name: d.source for d in loaded.datasets}
    first = over[0].requirement
    assert isinstance(first, ir.Robust)
    assert first.dataset is not None
    network = loaded.network(names[0])
    x, labels = load_dataset(training_source(sources[first.dataset]))
    if x.shape[1] != network.n_inputs or int(labels.max()) >= network.n_outputs:
        raise UsageError(f"data set {sources[first.dataset]!r} does not fit network {network.name}")
    eps = 0.0
    for p in over:
        r = p.requirement
        assert isinstance(r, ir.Robust)
        eps = max(eps, r.eps if r.norm is ir.Norm.L2 else r.eps * sqrt_dim(network.n_inputs))
    if show:
        print(f"training {', '.join(names)} as cascade members (l2 eps {eps:g})", file=sys.stderr)
    return train_cascade_members(names, x, labels, network.n_outputs, MemberTraining(eps=eps), progress=show)


def _models(args: argparse.Namespace, loaded: ir.Spec, props: list[ir.Property], show: bool) -> dict[str, LipschitzNet]:
    from checkers.cli import _load_models, _model_args
    from checkers.lipschitz.checkpoint import save_lipschitz
    from checkers.lipschitz.network import as_lipschitz

    paths = _model_args(args.model or [], loaded, args.spec)
    needed = _needed(loaded, props)
    if not args.train:
        for name in needed:
            default = Path(args.spec).parent / f"{name}.pt"
            if name not in paths and default.is_file():
                paths[name] = str(default)
    nets: dict[str, LipschitzNet] = {}
    for name, module in _load_models({n: p for n, p in paths.items() if n in needed}, loaded).items():
        try:
            nets[name] = as_lipschitz(module, loaded.network(name).input_shape)
        except ModelError as err:
            raise ModelError(f"{paths[name]}: {err.message}") from None
    missing = [n for n in needed if n not in nets]
    if missing:
        nets.update(_train(loaded, props, missing, show))
        if args.save:
            try:
                Path(args.save).mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(f"--save {printable(args.save)}: cannot make the directory: "
                                 f"{err.strerror or err}") from None
            for name in missing:
                write_output(Path(args.save) / f"{name}.pt", "--save", functools.partial(save_lipschitz, nets[name]))
    for name in needed:
        if loaded.network(name).decide is not ir.Decide.ARGMAX:
            raise UsageError(f"network {name} decides by argmin: the GloRo certifier certifies argmax predictions")
    return nets


def _cases(loaded: ir.Spec, props: list[ir.Property], nets: dict[str, LipschitzNet]) -> list[Case]:
    from checkers.lipschitz.commands import _points

    ensembles = {e.name: e for e in loaded.ensembles}
    members = {name: GloRoMember(net, name) for name, net in nets.items()}
    cases = []
    for p in props:
        req = p.requirement
        assert isinstance(req, ir.Robust)
        if not isinstance(req.kind, ir.Local):
            raise UsageError(f"property {p.name}: crosscheck compares ensembles on local robustness (top-k and "
                             "affinity robustness are cross-checked on networks)")
        network = loaded.network(p.target)
        if p.target in ensembles:
            target = from_ir(ensembles[p.target], members, req.eps, req.norm)
        else:
            target = Single([members[p.target]], req.eps, req.norm)
        x, labels = _points(loaded, p, network)
        key = (req.dataset or f"points of {p.name}", req.eps, req.norm.value)
        cases.append(Case(p, target, x, labels, network.domain, key))
    return cases


def run(args: argparse.Namespace) -> tuple[list[Row], int]:
    show = sys.stderr.isatty() and not args.json
    loaded = load_spec(args.spec)
    if args.save:
        check_output(args.save, "--save", folder=True)  # before the training
    props = [p for p in _properties(loaded, args.property, args.spec) if _over_data(loaded, p)]
    if not props:
        return [], 0
    nets = _models(args, loaded, props, show)
    cases = _cases(loaded, props, nets)
    options = AttackOptions(steps=args.steps)
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=2 * len(cases), desc="crosscheck", file=sys.stderr, leave=False)
    pool: dict[tuple[str, float, str], list[tuple[str, torch.Tensor]]] = {}
    try:
        for case in cases:
            pool.setdefault(case.key, []).extend(attack_case(case, options))
            if bar is not None:
                bar.update(1)
        rows: list[Row] = []
        for case in cases:
            rows += check_case(case, pool[case.key])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    bad = any(r.sound and r.broken for r in rows)
    return rows, 1 if bad else 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _print(rows: list[Row]) -> None:
    head = ("property", "checker", "sound", "points", "clean acc", "claimed VRA", "broken (of cert. & accurate)",
            "acc. under attack")
    table = [head]
    for r in rows:
        broken = f"{r.broken_accurate} of {r.certified_accurate} ({_pct(r.broken_fraction())})" \
            if r.clean_accuracy is not None else f"{r.broken} of {r.certified}"
        table.append((r.property, r.checker, "yes" if r.sound else "NO", str(r.points), _pct(r.clean_accuracy),
                      _pct(r.claimed_vra), broken, _pct(r.accuracy_under_attack)))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        if not r.contradictions:
            continue
        what = "expected: this certifier is UNSOUND" if not r.sound else "SOUNDNESS BUG"
        print(f"\n{r.property} / {r.checker}: {len(r.contradictions)} certified points broken ({what}); first ones:")
        for c in r.contradictions[:3]:
            print(f"  point {c.index}: certified {c.label}, but {c.label_adv} at x' found by {c.found_by}: "
                  f"x' = [{', '.join(f'{v:.6g}' for v in c.x_adv[:6])}{', ...' if len(c.x_adv) > 6 else ''}]")


def crosscheck_command(args: argparse.Namespace) -> int:
    from checkers.cli import _threads
    from checkers.crosscheck.per_property import print_reports, report_json, run_properties

    with _threads(args.threads):
        rows, code = run(args)
        reports = run_properties(args)
    if args.json:
        out: list[dict[str, Any]] = []
        for r in rows:
            d = asdict(r)
            d["broken_fraction"] = r.broken_fraction()
            out.append(d)
        out += [report_json(r) for r in reports]
        print(dumps(out))
    else:
        if rows:
            _print(rows)
        if reports:
            print_reports(reports, blank=bool(rows))
    return max(code, 1 if any(r.contradictions for r in reports) else 0)


def add_command(sub: Any, count: Any, threads_help: str) -> None:
    """Add `crosscheck` to the CLI's subparsers."""
    cc = sub.add_parser(
        "crosscheck", help="cross-check certifiers against attacks; exit 1 if a sound certifier is contradicted",
        description="Run every checker on the robustness properties (the cascade's published certifier, which is "
        "UNSOUND, the agreement-checked cascade, voting, selective ensembles, GloRo on networks) and replay every "
        "attack point (CasA, PGD) on every target. Exit 0 when no sound checker is contradicted, 1 when one is, "
        "2 for a user error.",
    )
    cc.add_argument("spec", metavar="SPEC", help="a .prop file with robustness properties over a data set")
    cc.add_argument("--model", action="append", metavar="NAME=PATH",
                    help="the model of network NAME (default: SPEC's folder/NAME.pt, else trained)")
    cc.add_argument("--property", action="append", metavar="NAME", help="only this property (repeatable)")
    cc.add_argument("--train", action="store_true", help="train every network, even when a model file exists")
    cc.add_argument("--save", metavar="DIR", help="write the trained networks to DIR/NAME.pt")
    cc.add_argument("--steps", type=count, default=100, metavar="N", help="PGD steps per attack (default 100)")
    cc.add_argument("--examples", type=count, default=200, metavar="N",
                    help="Hypothesis points per target of a per-property check (default 200)")
    cc.add_argument("--timeout", type=float, default=30.0, metavar="S",
                    help="seconds for the exact verifier and FGP per property or centre (default 30)")
    cc.add_argument("--threads", type=count, default=1, metavar="N", help=threads_help)
    cc.add_argument("--json", action="store_true", help="print one JSON list of rows and nothing else")
    cc.set_defaults(run=crosscheck_command)
