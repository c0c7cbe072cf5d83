"""Cross-check: the exact verifier finds no counterexample inside any certified ball."""

from __future__ import annotations

import pytest
import torch

from checkers.lipschitz import certify
from checkers.verdict import Status
from checkers.verify import VerifyOptions, verify_property
from spec import ir
from tests.lipschitz_nets import small_net

torch.set_num_threads(1)


def _network(n: int, m: int) -> ir.Network:
    return ir.Network("net", (n,), (m,), tuple(f"y{j}" for j in range(m)), tuple(f"x{i}" for i in range(n)),
                      ir.Box.unbounded(n))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_verifier_confirms_certified_balls(seed: int) -> None:
    net = small_net(seed, n=4, width=6, m=3)
    x = torch.rand(6, 4, generator=torch.Generator().manual_seed(seed))
    cert = certify(net, x, 0.0)
    network = _network(4, 3)
    checked = violated = 0
    for point, radius in zip(x, cert.radius, strict=True):
        if float(radius) <= 1e-3:
            continue
        eps = float(radius) * 0.999
        assert bool(certify(net, point[None], eps).certified[0])
        prop = ir.Property("p", "net", ir.Region((ir.RegionPart(ir.Box.unbounded(4)),)),
                           ir.Robust(ir.Local(), eps, ir.Norm.L2, points=(tuple(float(v) for v in point),)))
        verdict = verify_property(net, prop, network, VerifyOptions(timeout=20.0))
        assert verdict.status is not Status.VIOLATED, verdict.witness
        checked += 1
        centre = (tuple(float(v) for v in point),)
        big = ir.Property("q", "net", prop.region, ir.Robust(ir.Local(), 20 * eps, ir.Norm.L2, points=centre))
        if verify_property(net, big, network, VerifyOptions(timeout=20.0)).status is Status.VIOLATED:
            assert not bool(certify(net, point[None], 20 * eps).certified[0])
            violated += 1
    assert checked >= 2
    assert violated >= 1  # the check can fail: far larger balls do hold counterexamples
