"""VNN-COMP benchmarks: our verifier on the instances of ../shared/data/BENCHMARK/expected.csv.

    python bench/vnncomp.py acasxu|mnistfc [--only 1_1/prop_1 ...] [--timeout 120] [--marabou PATH | --no-marabou]

(`python bench/acasxu.py ...` is `python bench/vnncomp.py acasxu ...`.)

One thread (torch.set_num_threads(1)). For each instance: the network, the property, the
expected verdict, ours, our seconds (load + verify), and the best competition time. Then
the totals: instances decided, WRONG verdicts (a verdict contradicting the expected one:
must be 0; the exit status is 1 otherwise), our total time, the summed best times and
the ratio. `--only` keeps the instances whose `NET/PROP` name (e.g. `1_1/prop_1` for ACAS
Xu, `256x2/prop_0_0.03` for mnistfc) contains one of the given strings with no digit right
before or after it, so `prop_1` does not pick `prop_10`. UNKNOWN and TIMEOUT are counted,
never wrong; a WRONG verdict makes the exit status 1.

The peer: when Marabou's command-line binary is found (`--marabou PATH`, or `Marabou` on
PATH; install it outside the repository, see ../shared/peers/README.md), it runs on the
same instances with the same limit under `timeout -s KILL` and OMP_NUM_THREADS=1, and its
verdicts, times and the ratio of total times (ours / Marabou's) are printed as well.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CERTSPEC_SHARED", ROOT.parent / "shared")) / "data"
BENCHMARKS = ("acasxu", "mnistfc")
VERDICTS = {"holds": "holds", "violated": "violated"}


@dataclass(frozen=True)
class Instance:
    network: str  # file name
    prop: str  # file name
    expected: str  # holds / violated
    best_time: float

    @property
    def name(self) -> str:
        """`1_1/prop_1` or `256x2/prop_0_0.03`, the name `--only` matches."""
        net = re.sub(r"^ACASXU_run2a_|_batch_2000\.onnx$|^mnist-net_|\.onnx$", "", self.network)
        return f"{net}/{self.prop.removesuffix('.vnnlib')}"


@dataclass(frozen=True)
class Outcome:
    verdict: str  # holds / violated / unknown / timeout / error
    seconds: float


def read_instances(data: Path) -> list[Instance]:
    with (data / "expected.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [Instance(r["network"], r["property"], r["expected"], float(r["best_time_s"])) for r in rows]


def selected(instances: list[Instance], only: list[str] | None) -> list[Instance]:
    if not only:
        return instances
    patterns = [re.compile(rf"(?<!\d){re.escape(s)}(?!\d)") for s in only]
    return [i for i in instances if any(p.search(i.name) for p in patterns)]


def ours(data: Path, inst: Instance, timeout: float) -> Outcome:
    from checkers.models import load_model
    from checkers.verify import VerifyOptions, verify_property
    from spec.errors import SpecError
    from spec.vnnlib import read_vnnlib

    start = time.monotonic()
    try:
        module = load_model(data / inst.network)
        loaded = read_vnnlib(data / inst.prop)
        verdict = verify_property(module, loaded.properties[0], loaded.networks[0], VerifyOptions(timeout=timeout))
    except SpecError as err:
        print(f"  {inst.name}: {err}", file=sys.stderr)
        return Outcome("error", time.monotonic() - start)
    return Outcome(verdict.status.value, time.monotonic() - start)


def marabou(binary: str, data: Path, inst: Instance, timeout: float) -> Outcome:
    """Marabou's verdict (sat = violated, unsat = holds) under a hard kill at `timeout` seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = ["timeout", "-s", "KILL", f"{timeout:g}", binary, str(data / inst.network), str(data / inst.prop),
               "--verbosity", "0"]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.monotonic() - start
    if result.returncode in (124, 137, -9):
        return Outcome("timeout", seconds)
    words = [line.strip().lower() for line in result.stdout.splitlines()]
    for word in words:
        if word in ("sat", "unsat"):
            return Outcome("violated" if word == "sat" else "holds", seconds)
    if "timeout" in words:
        return Outcome("timeout", seconds)
    return Outcome("unknown", seconds)


def wrong(expected: str, got: str) -> bool:
    return got in VERDICTS and got != expected


def find_marabou(args: argparse.Namespace) -> str | None:
    if args.no_marabou:
        return None
    if args.marabou:
        if not (Path(args.marabou).is_file() and os.access(args.marabou, os.X_OK)):
            sys.exit(f"vnncomp.py: error: --marabou {args.marabou}: not an executable file")
        return str(args.marabou)
    return shutil.which("Marabou")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", choices=BENCHMARKS, help="the folder of ../shared/data to run")
    parser.add_argument("--data", type=Path, help=f"the benchmark's folder (default {SHARED}/BENCHMARK)")
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="instances whose NET/PROP name contains TEXT")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per instance, for every tool")
    parser.add_argument("--marabou", help="Marabou's binary (default: `Marabou` on PATH, if any)")
    parser.add_argument("--no-marabou", action="store_true", help="do not run Marabou even if it is found")
    args = parser.parse_args(argv)
    args.data = args.data or SHARED / args.benchmark
    if not (args.data / "expected.csv").is_file():
        sys.exit(f"vnncomp.py: error: {args.data / 'expected.csv'} is absent (the shared benchmark data)")
    instances = selected(read_instances(args.data), args.only)
    if not instances:
        sys.exit(f"vnncomp.py: error: no instance matches {args.only}")
    torch.set_num_threads(1)
    peer = find_marabou(args)
    print(f"{len(instances)} instances, {args.timeout:g} s each, one thread"
          + (f"; peer: {peer}" if peer else "; Marabou not run" if args.no_marabou
             else "; no Marabou binary found (give --marabou PATH)"))
    header = f"{'network':<8} {'property':<13} {'expected':<9} {'ours':<9} {'seconds':>8} {'best_s':>8}"
    print(header + (f"  {'marabou':<9} {'seconds':>8}" if peer else ""), flush=True)
    our_total = best_total = peer_total = 0.0
    decided = errors = peer_decided = peer_errors = 0
    for inst in instances:
        mine = ours(args.data, inst, args.timeout)
        our_total += mine.seconds
        best_total += inst.best_time
        decided += mine.verdict in VERDICTS
        errors += wrong(inst.expected, mine.verdict)
        net, prop = inst.name.split("/")
        mark = "  WRONG" if wrong(inst.expected, mine.verdict) else ""
        line = f"{net:<8} {prop:<13} {inst.expected:<9} {mine.verdict:<9} {mine.seconds:8.2f} {inst.best_time:8.2f}"
        if peer:
            theirs = marabou(peer, args.data, inst, args.timeout)
            peer_total += theirs.seconds
            peer_decided += theirs.verdict in VERDICTS
            peer_errors += wrong(inst.expected, theirs.verdict)
            line += f"  {theirs.verdict:<9} {theirs.seconds:8.2f}"
            mark += "  MARABOU WRONG" if wrong(inst.expected, theirs.verdict) else ""
        print(line + mark, flush=True)
    print()
    print(f"ours:    {decided}/{len(instances)} decided, {errors} wrong, {our_total:.2f} s in total")
    print(f"best competition times: {best_total:.2f} s in total; ours / best = {ratio(our_total, best_total)}")
    if peer:
        print(f"marabou: {peer_decided}/{len(instances)} decided, {peer_errors} wrong, {peer_total:.2f} s in total; "
              f"ours / marabou = {ratio(our_total, peer_total)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
