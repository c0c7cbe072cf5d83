"""The `certspec` command line.

    certspec show FILE [--json]      check a .prop or .vnnlib file and print its IR
    certspec fmt FILE                print the canonical text of a .prop file
    certspec check FILE...           check files; print one summary line each
    certspec export FILE --property NAME [-o OUT]   write one property as VNN-LIB
    certspec verify SPEC --model [NAME=]PATH... [--property NAME...] [--timeout S] [--json]
                                     decide properties on models (.onnx, .pt, .pth)
    certspec vnnlib NET PROP.vnnlib [--timeout S]   VNN-COMP style: sat / unsat / unknown / timeout
    certspec guard SPEC --model [NAME=]PATH -o OUT.pt [--property NAME...] [--json]
                                     wrap a model in a guard enforcing safe-ordering properties

A user's mistake (a malformed file, an unknown name, a bad argument, a model file that
cannot be read or does not fit its network) prints `file:line:col: message` with the
source line and a caret (or `certspec: error: message`), and exits with status 2; it
never prints a traceback. File names and values from the user are shown with control
characters escaped (`spec.errors.printable`). Every file is read through
`checkers.userfiles` (regular files only, within stated size limits) and every output path
(-o, --plot, --save) is checked before the work. Ctrl-C exits 130 with one line, from the
first import on (the subcommands' imports of torch included); a closed stdout pipe
(`certspec show --json F | head`) exits 141 (or 0) without a word.

Exit status of `verify`: 0 when every verdict is HOLDS, 1 when any is VIOLATED, 3
otherwise (some UNKNOWN or TIMEOUT and none VIOLATED), 2 for a user error. `vnnlib`
exits 0 whenever it prints an answer (the answer is its first line), 2 for an error.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

INTERRUPTED = "certspec: interrupted"
try:  # Ctrl-C while the command starts gives the one line a later Ctrl-C gives (torch comes later, in main)
    import spec
    from checkers.finite import dumps
    from checkers.userfiles import SPEC, check_file, check_output, load_spec, read_file, write_output
    from spec.errors import ModelError, SpecError, UsageError, did_you_mean, printable
    from spec.ir import Network, Property, Spec, spec_str
    from spec.irjson import spec_data
except KeyboardInterrupt:
    print(INTERRUPTED, file=sys.stderr)
    raise SystemExit(130) from None

if TYPE_CHECKING:
    from checkers.verdict import Verdict

EXIT_HOLDS = 0
EXIT_VIOLATED = 1
EXIT_USER_ERROR = 2
EXIT_UNDECIDED = 3
DEFAULT_TIMEOUT = 60.0
THREADS_HELP = (
    "torch threads (default 1: the verifier runs many small tensor operations, for which extra threads "
    "cost more than they give; raise it for large convolutional models)"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _show(args: argparse.Namespace) -> int:
    loaded = load_spec(args.file)
    if args.json:
        print(dumps(spec_data(loaded)))
    else:
        print(spec_str(loaded), end="")
    return 0


def _fmt(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = read_file(path, SPEC)
    module = spec.parse(spec.decode(data, str(path)).text, str(path))
    spec.lower(module)  # a file that does not check is not formatted
    print(spec.pretty(module), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    for name in args.files:
        loaded = load_spec(name)
        print(f"{printable(name)}: ok ({len(loaded.networks)} networks, {len(loaded.ensembles)} ensembles, "
              f"{len(loaded.properties)} properties)")
    return 0


def _find_property(loaded: Spec, name: str | None, file: str) -> Property:
    if name is None:
        if len(loaded.properties) != 1:
            names = ", ".join(p.name for p in loaded.properties)
            raise UsageError(f"{file} has {len(loaded.properties)} properties ({names}): choose one with --property")
        return loaded.properties[0]
    for prop in loaded.properties:
        if prop.name == name:
            return prop
    raise UsageError(f"{file} has no property {name!r}{did_you_mean(name, [p.name for p in loaded.properties])}")


def _export(args: argparse.Namespace) -> int:
    from spec.vnnlib import dump_vnnlib

    loaded = load_spec(args.file)
    if args.output:
        check_output(args.output, "-o")
    prop = _find_property(loaded, args.property, args.file)
    text = dump_vnnlib(prop, loaded.network(prop.target))
    if args.output:
        write_output(args.output, "-o", lambda p: p.write_text(text, encoding="utf-8"))
    else:
        print(text, end="")
    return 0


# ---------------------------------------------------------------- verify


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"the time limit must be a positive number of seconds, got {text!r}")
    return value


def _model_args(values: list[str], loaded: Spec, file: str) -> dict[str, str]:
    """--model values as {network name: path}; NAME= may be left out when the spec has one network."""
    names = [n.name for n in loaded.networks]
    ensembles = {e.name: e for e in loaded.ensembles}
    chosen: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not (sep and _NAME.fullmatch(name)):
            if len(names) != 1:
                raise UsageError(
                    f"--model {value}: {file} declares {len(names)} networks ({', '.join(names)}): "
                    "say which one with --model NAME=PATH"
                )
            name, path = names[0], value
        if not path:
            raise UsageError(f"--model {value}: no model file after {name}=")
        if name in ensembles:
            members = ", ".join(ensembles[name].members)
            raise UsageError(f"--model {value}: {name} is an ensemble; give a model for each member ({members})")
        if name not in names:
            raise UsageError(f"--model {value}: {file} has no network {name!r}{did_you_mean(name, names)}")
        if name in chosen:
            raise UsageError(f"--model {value}: network {name} already has the model {chosen[name]}")
        chosen[name] = path
    return chosen


def _load_models(paths: dict[str, str], loaded: Spec) -> dict[str, Any]:
    """Each model loaded and checked against the sizes of its declared network."""
    from checkers.models import open_model

    modules = {}
    for name, path in paths.items():
        network = loaded.network(name)
        model = open_model(path)
        try:
            m = model.n_outputs() if model.n_inputs == network.n_inputs else None
        except ModelError as err:
            raise ModelError(f"{path}: {err.message}") from None
        except Exception as err:  # the layers do not run on a sample of the declared shape
            raise ModelError(f"{path}: the model does not run on one input of shape "
                             f"{list(model.input_shape)} ({type(err).__name__}: {err})") from None
        if m != network.n_outputs:
            got = f"{model.n_inputs} inputs to {m} scores" if m is not None else f"{model.n_inputs} inputs"
            raise ModelError(
                f"{path}: the model maps {got}, but network {name} is declared "
                f"real[{network.n_inputs}] -> real[{network.n_outputs}]"
            )
        modules[name] = model.module
    return modules


def _chosen_properties(loaded: Spec, names: list[str] | None, file: str) -> list[Property]:
    if not loaded.properties:
        raise UsageError(f"{file} has no properties to verify")
    if not names:
        return list(loaded.properties)
    return [_find_property(loaded, name, file) for name in dict.fromkeys(names)]


@contextmanager
def _progress_bar(name: str, enabled: bool) -> Iterator[Callable[[float], None] | None]:
    """A tqdm bar on stderr, updated with the fraction of the region decided; None when disabled."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=name, file=sys.stderr, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")

    def update(fraction: float) -> None:
        bar.n = int(max(0.0, min(fraction, 1.0)) * 1000)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _finite(values: Sequence[float]) -> list[float | str]:
    """Floats for JSON: a non-finite value becomes the string 'inf', '-inf' or 'nan'."""
    return [v if math.isfinite(v) else str(v) for v in values]


def _result(prop: Property, network: Network, verdict: Verdict, seconds: float) -> dict[str, Any]:
    witness = None
    if verdict.witness is not None:
        w = verdict.witness
        raw = network.input_norm.to_raw(w.x) if network.input_norm is not None else None
        witness = {"x": _finite(w.x), "x_raw": None if raw is None else _finite(raw), "y": _finite(w.y),
                   "part": w.part}
    return {"property": prop.name, "network": prop.target, "status": verdict.status.name,
            "seconds": round(seconds, 4), "reason": verdict.reason, "witness": witness,
            "exact_witness": verdict.stats.get("exact_witness")}  # a real-only counterexample, as rationals


def _named(names: Sequence[str], values: Sequence[float | str]) -> str:
    return ", ".join(f"{n}={v!r}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(names, values, strict=True))


def _print_result(result: dict[str, Any], network: Network) -> None:
    reason = f": {result['reason']}" if result["status"] in ("UNKNOWN", "TIMEOUT") and result["reason"] else ""
    print(f"{result['property']}: {result['status']} ({result['seconds']:.2f} s){reason}", flush=True)
    witness = result["witness"]
    if witness is not None:
        print(f"  x     = {_named(network.input_names, witness['x'])}  (normalised)")
        if witness["x_raw"] is not None:
            print(f"  x raw = {_named(network.input_names, witness['x_raw'])}")
        print(f"  y     = {_named(network.labels, witness['y'])}", flush=True)


def _exit_status(statuses: list[str]) -> int:
    if "VIOLATED" in statuses:
        return EXIT_VIOLATED
    return EXIT_HOLDS if all(s == "HOLDS" for s in statuses) else EXIT_UNDECIDED


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set for the command, and restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _decide(module: Any, prop: Property, network: Network, timeout: float, show_progress: bool) -> Verdict:
    from checkers.verify import VerifyOptions, verify_property

    with _progress_bar(prop.name, show_progress) as progress:
        return verify_property(module, prop, network, VerifyOptions(timeout=timeout), progress=progress)


def _verify(args: argparse.Namespace) -> int:
    with _threads(args.threads):
        return _verify_all(args)


def _verify_all(args: argparse.Namespace) -> int:
    from checkers.models import no_model
    from checkers.verdict import Status, Verdict

    loaded = load_spec(args.spec)
    paths = _model_args(args.model, loaded, args.spec)
    props = _chosen_properties(loaded, args.property, args.spec)
    ensembles = {e.name for e in loaded.ensembles}
    if args.property:  # a property asked for by name must be decidable: its network needs a model
        for prop in props:
            if prop.target not in ensembles and prop.target not in paths:
                raise no_model(prop)
    modules = _load_models(paths, loaded)
    show_progress = not args.json and sys.stderr.isatty()
    results, statuses = [], []
    for prop in props:
        network = loaded.network(prop.target)
        start = time.monotonic()
        if prop.target in ensembles:
            verdict = Verdict(Status.UNKNOWN, reason=f"{prop.target} is an ensemble: the verifier decides "
                                                     "properties of single networks")
        elif prop.target not in modules:
            verdict = Verdict(Status.UNKNOWN, reason=f"no model for network {prop.target} "
                                                     f"(give --model {prop.target}=PATH)")
        else:
            try:
                verdict = _decide(modules[prop.target], prop, network, args.timeout, show_progress)
            except ModelError as err:
                raise ModelError(f"{paths[prop.target]}: {err.message}") from None
        result = _result(prop, network, verdict, time.monotonic() - start)
        results.append(result)
        statuses.append(result["status"])
        if not args.json:
            _print_result(result, network)
    if args.json:
        print(dumps(results))
    return _exit_status(statuses)


# ---------------------------------------------------------------- vnnlib

_ANSWERS = {"HOLDS": "unsat", "VIOLATED": "sat", "UNKNOWN": "unknown", "TIMEOUT": "timeout"}


def _vnnlib(args: argparse.Namespace) -> int:
    with _threads(args.threads):
        return _vnnlib_answer(args)


def _vnnlib_answer(args: argparse.Namespace) -> int:
    from checkers.verdict import Status
    from spec.vnnlib import read_vnnlib

    if Path(args.network).suffix == ".vnnlib" and Path(args.vnnlib).suffix != ".vnnlib":
        raise UsageError(f"the network comes first: certspec vnnlib {args.vnnlib} {args.network}")
    check_file(args.vnnlib, SPEC)
    loaded = read_vnnlib(args.vnnlib)
    prop, network = loaded.properties[0], loaded.networks[0]
    module = _load_models({network.name: args.network}, loaded)[network.name]
    try:
        verdict = _decide(module, prop, network, args.timeout, show_progress=False)
    except ModelError as err:
        raise ModelError(f"{args.network}: {err.message}") from None
    print(_ANSWERS[verdict.status.name])
    if verdict.status is Status.VIOLATED and verdict.witness is not None:
        w = verdict.witness
        pairs = [*(f"(X_{i} {v!r})" for i, v in enumerate(w.x)), *(f"(Y_{j} {v!r})" for j, v in enumerate(w.y))]
        print("(" + "\n ".join(pairs) + ")")
    return 0


# ---------------------------------------------------------------- guard


def _requirement_spans(path: str) -> dict[str, Any]:
    """For a .prop file: each property's span, narrowed to its first comparison with a constant."""
    from spec import syntax as s

    if Path(path).suffix == ".vnnlib":
        return {}
    module = spec.parse(spec.decode(read_file(path, SPEC), path).text, path)
    spans: dict[str, Any] = {}
    for item in module.items:
        if not isinstance(item, s.PropertyDecl):
            continue
        spans[item.name] = item.span
        stack: list[Any] = [item.body.require] if isinstance(item.body, s.OrderingBody) else []
        while stack:
            node = stack.pop()
            if isinstance(node, s.Interval) or (
                isinstance(node, s.Compare) and any(isinstance(e, s.Number) for e in (node.left, node.right))
            ):
                spans[item.name] = node.span
                break
            if isinstance(node, s.And | s.Or):
                stack += [node.right, node.left]
            elif isinstance(node, s.Not):
                stack.append(node.operand)
    return spans


def _guard_properties(loaded: Spec, network: str, names: list[str] | None, file: str) -> tuple[list[Property], list[str]]:
    """The properties to guard (named, or every safe-ordering property of the network) and those skipped."""
    from spec.ir import Ordering

    if names:
        chosen = [_find_property(loaded, name, file) for name in dict.fromkeys(names)]
        for prop in chosen:
            if prop.target != network:
                raise UsageError(f"property {prop.name} is about {prop.target}, not {network} (the model given)")
        return chosen, []
    mine = [p for p in loaded.properties if p.target == network]
    chosen = [p for p in mine if isinstance(p.requirement, Ordering)]
    if not chosen:
        raise UsageError(f"{file} has no safe-ordering property about network {network} to guard")
    return chosen, [p.name for p in mine if p not in chosen]


def _guard(args: argparse.Namespace) -> int:
    from checkers.guard import GuardOptions, compile_guard, save_guard

    loaded = load_spec(args.spec)
    check_output(args.output, "-o")  # before the work
    paths = _model_args(args.model, loaded, args.spec)
    if len(paths) != 1:
        raise UsageError(f"a guard wraps one network: give one --model NAME=PATH, not {len(paths)}")
    name, path = next(iter(paths.items()))
    props, skipped = _guard_properties(loaded, name, args.property, args.spec)
    module = _load_models(paths, loaded)[name]
    options = GuardOptions(max_combinations=args.max_combinations)
    guarded = compile_guard(props, module, loaded.network(name), options, _requirement_spans(args.spec))
    write_output(args.output, "-o", lambda p: save_guard(guarded, p, model_file=path))
    layer = guarded.guard
    summary = {"network": name, "model": path, "output": args.output, "guarded": list(layer.names),
               "always_true": [p.name for p in props if p.name not in layer.names], "skipped_robust": skipped,
               "combinations": layer.count}
    if args.json:
        print(dumps(summary))
    else:
        print(f"{printable(args.output)}: {name} ({printable(path)}) guarded by {len(layer.names)} properties: "
              f"{', '.join(layer.names)}")
        if summary["always_true"]:
            print(f"  always true, nothing to enforce: {', '.join(summary['always_true'])}")
        if skipped:
            print(f"  skipped (robustness, not a guard's business): {', '.join(skipped)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with the user's text in its error line shown `printable` (no raw escape sequences)."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="certspec", description="Properties of neural classifiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="check a .prop or .vnnlib file and print its IR")
    show.add_argument("file")
    show.add_argument("--json", action="store_true", help="print the IR as JSON")
    show.set_defaults(run=_show)
    fmt = sub.add_parser("fmt", help="print the canonical text of a .prop file (comments are not kept)")
    fmt.add_argument("file")
    fmt.set_defaults(run=_fmt)
    check = sub.add_parser("check", help="check files and print a summary line each")
    check.add_argument("files", nargs="+")
    check.set_defaults(run=_check)
    export = sub.add_parser("export", help="write one property as VNN-LIB (the violation it forbids)")
    export.add_argument("file")
    export.add_argument("--property", help="the property's name (needed when the file has several)")
    export.add_argument("-o", "--output", help="write here instead of standard output")
    export.set_defaults(run=_export)
    verify = sub.add_parser(
        "verify", help="decide properties on models: exit 0 all hold, 1 some violated, 3 otherwise, 2 user error",
        description="Decide each property (or those chosen) on the model of its network. Prints one line per "
        "property: name, HOLDS / VIOLATED / UNKNOWN / TIMEOUT, seconds, and a violation's witness. "
        "Exit status: 0 when every verdict is HOLDS, 1 when any is VIOLATED, 3 otherwise (UNKNOWN or "
        "TIMEOUT), 2 for a user error.",
    )
    verify.add_argument("spec", metavar="SPEC", help="a .prop or .vnnlib file (a .vnnlib file's network is `net`)")
    verify.add_argument(
        "--model", action="append", required=True, metavar="[NAME=]PATH",
        help="the model (.onnx, .pt or .pth) of network NAME; NAME= may be left out when SPEC declares one "
        "network. Repeat for several networks.",
    )
    verify.add_argument("--property", action="append", metavar="NAME",
                        help="decide only this property (repeatable); default: every property")
    verify.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit per property (default {DEFAULT_TIMEOUT:g})")
    verify.add_argument("--threads", type=_count, default=1, metavar="N", help=THREADS_HELP)
    verify.add_argument("--json", action="store_true", help="print one JSON list of results and nothing else")
    verify.set_defaults(run=_verify)
    vnnlib = sub.add_parser(
        "vnnlib", help="VNN-COMP style: print sat / unsat / unknown / timeout and a counterexample",
        description="Decide a VNN-LIB property on an ONNX network. The first line is sat (violated, followed "
        "by the assignment ((X_0 v) ... (Y_0 v) ...)), unsat (holds), unknown or timeout. Exit status 0 "
        "with an answer, 2 for an error.",
    )
    vnnlib.add_argument("network", metavar="NET", help="the network (.onnx, or a .pt/.pth checkpoint)")
    vnnlib.add_argument("vnnlib", metavar="PROP.vnnlib", help="the VNN-LIB property (the violation it states)")
    vnnlib.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"time limit (default {DEFAULT_TIMEOUT:g})")
    vnnlib.add_argument("--threads", type=_count, default=1, metavar="N", help=THREADS_HELP)
    vnnlib.set_defaults(run=_vnnlib)
    guard = sub.add_parser(
        "guard", help="wrap a model in a guard that enforces safe-ordering properties; write it as a checkpoint",
        description="Compile safe-ordering properties into a guard around the model of one network and save "
        "both as a torch checkpoint (read with torch.load(weights_only=True), or checkers.guard.load_guard). "
        "Default: every safe-ordering property of that network. A requirement that re-ranking cannot "
        "enforce (a score against a constant) is an error. Exit 0 on success, 2 for a user error.",
    )
    guard.add_argument("spec", metavar="SPEC", help="a .prop or .vnnlib file")
    guard.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH",
                       help="the model (.onnx, .pt or .pth) of network NAME (NAME= may be left out when SPEC "
                       "declares one network)")
    guard.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="where to write the guarded model")
    guard.add_argument("--property", action="append", metavar="NAME",
                       help="guard only this property (repeatable); default: every safe-ordering property")
    guard.add_argument("--max-combinations", type=_count, default=256, metavar="K",
                       help="combinations of disjuncts tried per input (default 256)")
    guard.add_argument("--json", action="store_true", help="print a JSON summary")
    guard.set_defaults(run=_guard)
    from checkers.lipschitz.commands import add_commands  # certify, train: the Lipschitz certifier

    add_commands(sub, _count, THREADS_HELP)
    from checkers.crosscheck.commands import add_command as add_crosscheck  # ensembles, certifiers vs attacks

    add_crosscheck(sub, _count, THREADS_HELP)
    return parser


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what `yes | head -1` reports for `yes`


def _quiet_stdout() -> None:
    """The reader of stdout has gone (`certspec show --json F | head -c 20`): send what is left of the
    output, and Python's final flush, to /dev/null, so that nothing more is said (as Unix tools do)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (an io.StringIO under a test): nothing to silence
        pass


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C held back while the subcommands import torch, onnx and numpy, then raised as KeyboardInterrupt.

    An interrupt inside a C extension's import does not always surface as KeyboardInterrupt (numpy
    half-imported answers with a RecursionError); held for the second or so the imports take, it
    is handled like any later Ctrl-C. Not in the main thread (no signal handler there): not held."""
    import signal

    pending: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def _run(argv: Sequence[str] | None) -> int:
    """Parse, run, and flush stdout (so that a closed pipe shows here, not at exit); SpecError -> status 2."""
    with _sigint_held():
        parser = _parser()  # builds the subcommands: imports torch
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except SpecError as err:
        sys.stdout.flush()
        print(f"certspec: error: {err}" if err.span is None else str(err), file=sys.stderr)
        return EXIT_USER_ERROR
    sys.stdout.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The `certspec` command: its exit status. Everything, the heavy imports included, runs inside the
    handlers: Ctrl-C exits 130 with one line, a closed stdout pipe exits 141 quietly; never a traceback."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
