"""The `certspec` command line.

    certspec show FILE [--json]      check a .prop or .vnnlib file and print its IR
    certspec fmt FILE                print the canonical text of a .prop file
    certspec check FILE...           check files; print one summary line each
    certspec export FILE --property NAME [-o OUT]   write one property as VNN-LIB

A user's mistake (a malformed file, an unknown name, a bad argument) prints
`file:line:col: message` with the source line and a caret, and exits with status 2;
it never prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import spec
from spec.errors import SpecError, UsageError
from spec.ir import Property, Spec, spec_str
from spec.irjson import spec_data

EXIT_USER_ERROR = 2


def _show(args: argparse.Namespace) -> int:
    loaded = spec.load_file(args.file)
    if args.json:
        print(json.dumps(spec_data(loaded), indent=1))
    else:
        print(spec_str(loaded), end="")
    return 0


def _fmt(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{path}: cannot read the file: {err.strerror}") from None
    module = spec.parse(spec.decode(data, str(path)).text, str(path))
    spec.lower(module)  # a file that does not check is not formatted
    print(spec.pretty(module), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    for name in args.files:
        loaded = spec.load_file(name)
        print(f"{name}: ok ({len(loaded.networks)} networks, {len(loaded.ensembles)} ensembles, "
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
    from spec.errors import did_you_mean

    raise UsageError(f"{file} has no property {name!r}{did_you_mean(name, [p.name for p in loaded.properties])}")


def _export(args: argparse.Namespace) -> int:
    from spec.vnnlib import dump_vnnlib

    loaded = spec.load_file(args.file)
    prop = _find_property(loaded, args.property, args.file)
    text = dump_vnnlib(prop, loaded.network(prop.target))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certspec", description="Properties of neural classifiers.")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except SpecError as err:
        print(f"certspec: error: {err}" if err.span is None else str(err), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("certspec: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
