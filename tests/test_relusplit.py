"""The ReLU-phase branch and bound's own bounds (checkers.relusplit), against sampled points.

On random networks and boxes, domains fix random unstable neurons active or inactive;
for every sampled point that lies in a domain (its real pre-activations have the fixed
signs), the domain's refined pre-activation bounds contain its pre-activations, and the
domain's row bounds are above the rows. The verdicts themselves are checked against Z3
and float32 replay in tests/test_verify_soundness.py.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.bounds import crown_hidden_bounds
from checkers.plnet import from_module
from checkers.relusplit import _bounds, _Domains, _refine
from checkers.semantics import compile_ordering
from nets import random_mlp
from spec import ir

REL = 1e-12


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.integers(2, 4), st.lists(st.integers(2, 12), min_size=1, max_size=3),
       st.floats(0.05, 2.0), st.integers(0, 2**31))
def test_domain_bounds_contain_the_points_of_the_domain(seed: int, n: int, widths: list[int], width: float,
                                                        pick: int) -> None:
    torch.set_num_threads(1)
    net = from_module(random_mlp(seed, n, widths, 3), (n,))
    gen = torch.Generator().manual_seed(pick)
    centre = torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1
    lower, upper = centre - width / 2, centre + width / 2
    root = crown_hidden_bounds(net, lower[None], upper[None])
    domains = _Domains([t.expand(4, -1).clone() for t in root.lower], [t.expand(4, -1).clone() for t in root.upper],
                       [torch.zeros(4, t.shape[1], dtype=torch.float64) for t in root.lower])
    for k, (lo, up) in enumerate(zip(domains.lows, domains.ups, strict=True)):  # fix random unstable neurons
        unstable = (lo < 0) & (up > 0)
        phase = torch.where(torch.rand(lo.shape, generator=gen) < 0.5, 1.0, -1.0).to(torch.float64)
        chosen = unstable & (torch.rand(lo.shape, generator=gen) < 0.4)
        domains.fixed[k] = torch.where(chosen, phase, 0.0)
        domains.lows[k] = torch.where(chosen & (phase > 0), 0.0, lo)
        domains.ups[k] = torch.where(chosen & (phase < 0), 0.0, up)
    _refine(net, lower, upper, domains)
    req = ir.Ordering(((ir.Order(0, 1, True), ir.Order(0, 2, False)), (ir.Linear(((1, 1.0), (2, 2.0)), 0.5, True),)))
    rows = compile_ordering(req, 3)
    bound, _, _ = _bounds(net, lower[None].expand(4, -1), upper[None].expand(4, -1), rows, domains)

    x = lower + torch.rand(4000, n, generator=gen, dtype=torch.float64) * (upper - lower)
    pre, h = [], x
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        z = h @ w.T + b
        if k < len(net.weights) - 1:
            pre.append(z)
            h = torch.relu(z)
        else:
            h = z
    values = h @ rows.matrix.T + rows.consts  # (points, rows)
    for i in range(4):
        inside = torch.ones(x.shape[0], dtype=torch.bool)
        for k, z in enumerate(pre):
            fixed = domains.fixed[k][i]
            inside &= ((z >= 0) | (fixed <= 0)).all(dim=1) & ((z <= 0) | (fixed >= 0)).all(dim=1)
        for k, z in enumerate(pre):
            zin = z[inside]
            slack = REL * (1 + zin.abs())
            assert (zin >= domains.lows[k][i] - slack).all(), f"layer {k}: below the domain's lower bound"
            assert (zin <= domains.ups[k][i] + slack).all(), f"layer {k}: above the domain's upper bound"
        vin = values[inside]
        assert (vin <= bound[i] + REL * (1 + vin.abs())).all(), "a row above the domain's bound"
