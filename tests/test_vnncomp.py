"""The verifier on the shared VNN-COMP instances (../shared/data; skipped when absent).

Every instance listed here must be decided, with the verdict of expected.csv. The list
holds the instances that bench/vnncomp.py decides in about a second or less (most of
ACAS Xu) and the 28 mnistfc instances it decides (at most 5 s each); the slower ACAS
Xu ones run under the `slow` marker; the full runs, with times and the undecided
instances, are the benchmarks (`python bench/vnncomp.py acasxu|mnistfc`).
"""

from __future__ import annotations

import csv
import re
from fractions import Fraction

import pytest
import torch

from checkers.models import load_model
from checkers.verdict import Status, Verdict
from checkers.verify import VerifyOptions, verify_property
from conftest import SHARED_DATA, shared_data
from spec.vnnlib import read_vnnlib

# ACAS Xu instances bench/acasxu.py decides in 0.6 s or more (run under `slow`), and the
# one it does not decide (N1,1/phi5: it holds over the reals by less than the float32 rounding bound)
ACAS_SLOW = {"1_1/prop_3", "1_1/prop_6", "1_3/prop_2", "1_3/prop_3", "1_5/prop_2", "1_6/prop_2", "1_8/prop_2"}
ACAS_UNDECIDED = {"1_1/prop_5"}
# mnistfc: proven by CROWN at the root or by branching on ReLU phases, falsified by PGD or by a branch-and-bound candidate
MNIST_FAST = {
    "prop_10_0.03", "prop_11_0.03", "prop_11_0.05", "prop_12_0.03", "prop_2_0.03", "prop_2_0.05", "prop_4_0.03",
    "prop_4_0.05", "prop_6_0.03", "prop_8_0.03",
    "prop_0_0.03", "prop_10_0.05", "prop_13_0.03", "prop_5_0.03", "prop_6_0.05", "prop_9_0.03", "prop_0_0.05",
    "prop_12_0.05", "prop_13_0.05", "prop_14_0.03", "prop_14_0.05", "prop_1_0.05", "prop_3_0.05", "prop_5_0.05",
    "prop_7_0.03", "prop_7_0.05", "prop_8_0.05", "prop_9_0.05",
}


def instances(benchmark: str) -> list[tuple[str, str, str]]:
    """(network file, property file, expected) rows; empty when the data is absent."""
    path = SHARED_DATA / benchmark / "expected.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["network"], r["property"], r["expected"]) for r in rows]


def acas_name(network: str, prop: str) -> str:
    return network.removeprefix("ACASXU_run2a_").removesuffix("_batch_2000.onnx") + "/" + prop.removesuffix(".vnnlib")


def verdict(benchmark: str, network: str, prop: str) -> Verdict:
    torch.set_num_threads(1)
    module = load_model(shared_data(benchmark, network))
    loaded = read_vnnlib(shared_data(benchmark, prop))
    return verify_property(module, loaded.properties[0], loaded.networks[0], VerifyOptions(timeout=60.0))


def decide(benchmark: str, network: str, prop: str) -> str:
    return verdict(benchmark, network, prop).status.value


_INPUT_BOUND = re.compile(r"\(assert \((<=|>=) X_(\d+) ([-+0-9.eE]+)\)\)")


def outside_the_file(point: tuple[float, ...], text: str) -> list[int]:
    """The coordinates of `point` that break a bound `(assert (<= X_i c))` / `(>= X_i c)` of the
    file, compared exactly with the decimal as written (the mnistfc files are such boxes)."""
    bad = []
    for op, i, c in _INPUT_BOUND.findall(text):
        v, bound = Fraction(point[int(i)]), Fraction(c)
        if (v > bound) if op == "<=" else (v < bound):
            bad.append(int(i))
    return bad


ACAS = [(n, p, e) for n, p, e in instances("acasxu") if acas_name(n, p) not in ACAS_UNDECIDED]
ACAS_PARAMS = [pytest.param(n, p, e, id=acas_name(n, p),
                            marks=[pytest.mark.slow] if acas_name(n, p) in ACAS_SLOW else []) for n, p, e in ACAS]
MNIST_PARAMS = [pytest.param(n, p, e, id=p.removesuffix(".vnnlib"))
                for n, p, e in instances("mnistfc") if p.removesuffix(".vnnlib") in MNIST_FAST]


@pytest.mark.parametrize(("network", "prop", "expected"), ACAS_PARAMS or [pytest.param("", "", "", marks=pytest.mark.skip(
    reason=f"{SHARED_DATA / 'acasxu'} is absent: the shared benchmark data is not part of a user's clone"))])
def test_acasxu_instance_is_decided_as_expected(network: str, prop: str, expected: str) -> None:
    assert decide("acasxu", network, prop) == expected


@pytest.mark.parametrize(("network", "prop", "expected"), MNIST_PARAMS or [pytest.param("", "", "", marks=pytest.mark.skip(
    reason=f"{SHARED_DATA / 'mnistfc'} is absent: the shared benchmark data is not part of a user's clone"))])
def test_mnistfc_instance_is_decided_as_expected(network: str, prop: str, expected: str) -> None:
    found = verdict("mnistfc", network, prop)
    assert found.status.value == expected
    if found.status is Status.VIOLATED:  # the witness lies in the region as the file writes it, exactly
        assert found.witness is not None
        text = shared_data("mnistfc", prop).read_text()
        assert len(_INPUT_BOUND.findall(text)) == 2 * 784
        assert outside_the_file(found.witness.x, text) == []


def test_the_exact_face_check_sees_a_point_an_ulp_outside() -> None:
    """On prop_7_0.03 the double nearest a face's decimal lies outside it: that point is caught."""
    text = shared_data("mnistfc", "prop_7_0.03.vnnlib").read_text()
    faces = [(op, int(i), c) for op, i, c in _INPUT_BOUND.findall(text) if Fraction(float(c)) != Fraction(c)]
    i, c = next((i, c) for op, i, c in faces if (Fraction(float(c)) > Fraction(c)) == (op == "<="))
    point = [0.0] * 784
    point[i] = float(c)
    assert i in outside_the_file(tuple(point), text)


def test_the_lists_name_real_instances() -> None:
    """A renamed or removed instance must not silently drop out of the lists above."""
    acas = {acas_name(n, p) for n, p, _ in instances("acasxu")}
    mnist = {p.removesuffix(".vnnlib") for _, p, _ in instances("mnistfc")}
    if not acas or not mnist:
        pytest.skip(f"{SHARED_DATA} is absent: the shared benchmark data is not part of a user's clone")
    assert acas >= ACAS_SLOW | ACAS_UNDECIDED
    assert mnist >= MNIST_FAST
