"""Benchmark of FGP against the exact verifier (checkers.verify) on the same points.

    python bench/fgp.py [--points 40] [--eps 0.1] [--fgp-timeout 2] [--verifier-timeout 10] [--skip-mnistfc]

(a) digits: a small ReLU network (64-32-32-10) trained here on scikit-learn's digits
(digits_train, a few seconds), local robustness at the first --points images of
digits_test (l2, --eps); (b) the shared mnistfc 256x2 network at its 15 images, linf eps
0.03 and 0.05 (the 30 VNN-LIB boxes: FGP searches exactly the box, as centre = midpoint,
eps = half-width and domain = the box). For each: per-point verdicts of both, the median
time per point, the decided fraction, wrong verdicts against the other checker and
against expected.csv, and the ratio of median times (verifier / FGP) measured in the
same run. One torch thread.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import spec  # noqa: E402
from checkers.fgp import FGP, FGPOptions  # noqa: E402
from checkers.lipschitz.data import load_dataset  # noqa: E402
from checkers.verdict import Status  # noqa: E402
from checkers.verify import VerifyOptions, verify_property  # noqa: E402
from spec import ir  # noqa: E402

MNISTFC = ROOT.parent / "shared" / "data" / "mnistfc"
SHORT = {Status.HOLDS: "holds", Status.VIOLATED: "violated", Status.UNKNOWN: "unknown", Status.TIMEOUT: "timeout"}


def train_digits(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    x, y = load_dataset("digits_train")
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(150):  # full batch: 1,437 samples
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return net.eval()


class Tally:
    def __init__(self, name: str) -> None:
        self.name, self.times, self.statuses = name, [], []  # type: ignore[var-annotated]

    def add(self, status: Status, seconds: float) -> None:
        self.statuses.append(status)
        self.times.append(seconds)

    def decided(self) -> int:
        return sum(s in (Status.HOLDS, Status.VIOLATED) for s in self.statuses)

    def line(self) -> str:
        n = len(self.statuses)
        med = statistics.median(self.times) if self.times else float("nan")
        return (f"{self.name:>9}: decided {self.decided()}/{n} ({100 * self.decided() / max(n, 1):.0f}%), "
                f"holds {self.statuses.count(Status.HOLDS)}, violated {self.statuses.count(Status.VIOLATED)}, "
                f"median {1000 * med:.1f} ms per point, total {sum(self.times):.1f} s")


def contradiction(a: Status, b: Status | str) -> bool:
    b_status = b if isinstance(b, Status) else {"holds": Status.HOLDS, "violated": Status.VIOLATED}[b]
    return {a, b_status} == {Status.HOLDS, Status.VIOLATED}


def report(fgp: Tally, exact: Tally, wrong: int, extra: str = "") -> None:
    print(fgp.line())
    print(exact.line())
    ratio = statistics.median(exact.times) / max(statistics.median(fgp.times), 1e-9)
    print(f"  median time verifier / FGP = {ratio:.1f}x (goal >= 10x); contradictions between them: {wrong}{extra}")


def bench_digits(args: argparse.Namespace) -> None:
    start = time.monotonic()
    net = train_digits()
    x, labels = load_dataset("digits_test")
    acc = float((net(x).argmax(dim=1) == labels).float().mean())
    print(f"(a) digits 64-32-32-10, trained in {time.monotonic() - start:.1f} s, test accuracy {100 * acc:.1f}%; "
          f"{args.points} points, l2 eps {args.eps}")
    domain = ir.Box((0.0,) * 64, (1.0,) * 64, (False,) * 64, (False,) * 64)
    fgp = FGP(net, 64, domain=domain, options=FGPOptions(timeout=args.fgp_timeout))
    ours, exact, wrong = Tally("FGP"), Tally("verifier"), 0
    for i in range(args.points):
        result = fgp.check(x[i], args.eps, ir.Norm.L2)
        ours.add(result.status, result.seconds)
        point = ", ".join(repr(float(v)) for v in x[i].tolist())
        loaded = spec.load(f"network d : real[64] -> real[10]\n  domain x[*] in [0, 1]\n"
                           f"property p: robust eps {args.eps!r} norm l2 at [{point}]\n")
        t = time.monotonic()
        verdict = verify_property(net, loaded.properties[0], loaded.network("d"), VerifyOptions(timeout=args.verifier_timeout))
        exact.add(verdict.status, time.monotonic() - t)
        wrong += contradiction(result.status, verdict.status)
        if args.verbose:
            print(f"  {i}: FGP {SHORT[result.status]} ({1000 * result.seconds:.1f} ms, {result.regions} regions), "
                  f"verifier {SHORT[verdict.status]} ({time.monotonic() - t:.2f} s)")
    report(ours, exact, wrong)


def mnistfc_instances() -> list[tuple[str, str]]:
    with open(MNISTFC / "expected.csv") as f:
        return [(row["property"], row["expected"]) for row in csv.DictReader(f)]


def bench_mnistfc(args: argparse.Namespace) -> None:
    from checkers.models import load_model
    from spec.vnnlib import read_vnnlib

    if not (MNISTFC / "expected.csv").exists():
        print(f"(b) skipped: {MNISTFC} is absent")
        return
    module = load_model(MNISTFC / "mnist-net_256x2.onnx")
    n = 784
    print(f"(b) mnistfc 256x2 at its 15 images, linf eps 0.03 and 0.05 (FGP {args.fgp_timeout} s, "
          f"verifier {args.verifier_timeout} s per instance)")
    ours, exact = Tally("FGP"), Tally("verifier")
    wrong = wrong_fgp = wrong_exact = 0
    for prop_file, expected in mnistfc_instances():
        loaded = read_vnnlib(MNISTFC / prop_file)
        prop = loaded.properties[0]
        box = prop.region.parts[0].box
        lo, hi = torch.tensor(box.lower, dtype=torch.float64), torch.tensor(box.upper, dtype=torch.float64)
        centre, half = (lo + hi) / 2, float(((hi - lo) / 2).max())
        fgp = FGP(module, n, domain=ir.Box(box.lower, box.upper, (False,) * n, (False,) * n),
                  options=FGPOptions(timeout=args.fgp_timeout))
        req = prop.requirement
        assert isinstance(req, ir.Ordering)
        first = req.disjuncts[0][0]
        label = first.hi if isinstance(first, ir.Order) else -1  # the safe property: Y_label > Y_j for every j
        result = fgp.check(centre, half, ir.Norm.LINF)
        status = result.status if result.label == label else Status.UNKNOWN  # the centre is not the label's
        ours.add(status, result.seconds)
        t = time.monotonic()
        verdict = verify_property(module, prop, loaded.networks[0], VerifyOptions(timeout=args.verifier_timeout))
        exact.add(verdict.status, time.monotonic() - t)
        flipped = verdict.status  # read_vnnlib gives the safe property (the negation of the file's violation)
        wrong += contradiction(status, flipped)
        wrong_fgp += status in (Status.HOLDS, Status.VIOLATED) and contradiction(status, expected)
        wrong_exact += flipped in (Status.HOLDS, Status.VIOLATED) and contradiction(flipped, expected)
        if args.verbose:
            print(f"  {prop_file}: expected {expected}, FGP {SHORT[status]} ({result.seconds:.2f} s, "
                  f"{result.regions} regions), verifier {SHORT[flipped]} ({time.monotonic() - t:.1f} s)")
    report(ours, exact, wrong, f"; wrong against expected.csv: FGP {wrong_fgp}, verifier {wrong_exact}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=40)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--fgp-timeout", type=float, default=2.0)
    parser.add_argument("--verifier-timeout", type=float, default=10.0)
    parser.add_argument("--skip-mnistfc", action="store_true")
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.skip_digits:
        bench_digits(args)
    if not args.skip_mnistfc:
        bench_mnistfc(args)


if __name__ == "__main__":
    main()
