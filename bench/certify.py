"""Benchmark of the GloRo certifier: digits VRA, certified vs plain inference time, memory at 1,000 classes.

    python bench/certify.py [--model examples/digits/digits.pt] [--repeats 200] [--device cpu|cuda]

Prints (1) clean accuracy and VRA on digits_test at l2 eps 0.3, 0.5, 1.0 for local, top-2
and affinity robustness; (2) the time of certified inference over plain inference at batch
1,024, measured interleaved in the same run (median of the per-repeat ratios; goal <= 1.10):
certified inference is a `CertifiedClassifier` call (GloRo's predict-or-abstain at one eps, what
a deployed certified model runs; built once, outside the timing), plain inference its `predict`
(the forward pass and argmax of the same frozen copy); the full `certify` (radii, top-k,
affinity, on the network itself) is timed beside it; (3) peak memory of certifying 1,000
classes at batch 256, against plain inference in the same run (CPU: peak resident memory of a
fresh process each; CUDA: max_memory_allocated), next to the
size a (batch, features, classes) tensor would have.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checkers.lipschitz import CertifiedClassifier, Linear, LipschitzNet, MinMax, certify  # noqa: E402
from checkers.lipschitz.data import load_dataset  # noqa: E402
from checkers.models import open_model  # noqa: E402
from spec import ir  # noqa: E402

AFFINITY = ir.Affinity(((1, 7), (3, 8), (5, 6)))


def accuracy_table(net: LipschitzNet) -> None:
    x, labels = load_dataset("digits_test")
    clean = float((certify(net, x, 0.0).prediction == labels).float().mean())
    print(f"digits_test (360 points): clean accuracy {100 * clean:.1f}%")
    print(f"{'eps (l2)':>9} {'local VRA':>10} {'top-2 VRA':>10} {'affinity VRA':>13}")
    for eps in (0.3, 0.5, 1.0):
        row = [float(certify(net, x, eps, kind=k).contains(labels).float().mean())
               for k in (ir.Local(), ir.TopK(2), AFFINITY)]
        print(f"{eps:>9} {100 * row[0]:>9.1f}% {100 * row[1]:>9.1f}% {100 * row[2]:>12.1f}%")


def time_ratio(net: LipschitzNet, repeats: int, device: str) -> None:
    x, _ = load_dataset("digits_test")
    x = x.repeat(3, 1)[:1024].to(device)
    net = net.to(device).eval()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    classifier = CertifiedClassifier(net, 0.3)  # built once, as a deployed model is

    def plain() -> None:  # plain inference on the same (frozen) model: its predictions
        classifier.predict(x)

    def certified() -> None:
        classifier(x)

    def full() -> None:
        certify(net, x, 0.3)

    runs = {"plain": plain, "certified": certified, "certify": full}
    for f in runs.values():  # warm-up (the constants are computed once and cached)
        f()
    times = _interleaved(runs, repeats, sync)
    p, c, full_time = (statistics.median(times[name]) for name in runs)
    paired = {name: _paired_ratio(times, name) for name in ("certified", "certify")}
    print(f"batch 1024 on {device}: plain {1e3 * p:.3f} ms, certified inference {1e3 * c:.3f} ms, "
          f"ratio {paired['certified']:.3f} (goal <= 1.10); full certify (radii, top-k) {1e3 * full_time:.3f} ms, "
          f"ratio {paired['certify']:.3f} (medians of {repeats} paired repeats)")
    if device == "cuda":
        graph_ratio(plain, certified, repeats)


def _interleaved(runs: Mapping[str, Callable[[], object]], repeats: int, sync: Callable[[], None]
                 ) -> dict[str, list[float]]:
    """Seconds of each run, `repeats` times, the runs back to back in each repeat (synchronised around each)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, f in runs.items():
            sync()
            t = time.perf_counter()
            f()
            sync()
            times[name].append(time.perf_counter() - t)
    return times


def _paired_ratio(times: dict[str, list[float]], name: str) -> float:
    """Median over repeats of time(name) / time(plain): robust to a noisy machine, as the pairs ran back to back."""
    return statistics.median(t / q for t, q in zip(times[name], times["plain"], strict=True))


def graph_ratio(plain: Callable[[], None], certified: Callable[[], None], repeats: int) -> None:
    """Both paths captured as CUDA graphs (a deployed GPU model's launch overhead gone): replay times."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            plain()
            certified()
    torch.cuda.current_stream().wait_stream(stream)
    graphs = {"plain": torch.cuda.CUDAGraph(), "certified": torch.cuda.CUDAGraph()}
    for name, f in (("plain", plain), ("certified", certified)):
        with torch.cuda.graph(graphs[name]):
            f()
    times = _interleaved({name: g.replay for name, g in graphs.items()}, repeats, torch.cuda.synchronize)
    ratio = _paired_ratio(times, "certified")
    print(f"  as CUDA graphs: plain {1e6 * statistics.median(times['plain']):.1f} us, certified inference "
          f"{1e6 * statistics.median(times['certified']):.1f} us, ratio {ratio:.3f}")


def _wide_net() -> LipschitzNet:
    torch.manual_seed(0)
    return LipschitzNet((512,), [Linear(512, 512), MinMax()], Linear(512, 1000))


def _child(mode: str) -> None:
    torch.set_num_threads(1)
    net = _wide_net()
    x = torch.rand(256, 512)
    if mode == "certify":
        certify(net, x, 0.1)
    else:
        with torch.no_grad():
            net(x)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory(device: str) -> None:
    anchors = 256 * 512 * 1000 * 4 / 2**20
    if device == "cuda":
        net = _wide_net().cuda()
        x = torch.rand(256, 512, device="cuda")
        peaks = {}
        for mode in ("plain", "certify"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            if mode == "certify":
                certify(net, x, 0.1)
            else:
                with torch.no_grad():
                    net(x)
            peaks[mode] = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peaks = {mode: int(subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                          check=True).stdout.split()[-1]) / 1024
                 for mode in ("plain", "certify")}
    what = "extra peak allocated" if device == "cuda" else "peak resident memory of the process"
    print(f"1000 classes, 512 features, batch 256 on {device}: {what}: plain {peaks['plain']:.1f} MiB, "
          f"certified {peaks['certify']:.1f} MiB (a (batch, features, classes) float32 tensor alone: {anchors:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "examples" / "digits" / "digits.pt"))
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    torch.set_num_threads(1)
    net = open_model(args.model).module
    assert isinstance(net, LipschitzNet)
    accuracy_table(net)
    time_ratio(net, args.repeats, args.device)
    memory(args.device)


if __name__ == "__main__":
    main()
