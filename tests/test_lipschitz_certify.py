"""The GloRo certifier: certificates are never contradicted (PGD, sampling, float32), ties are not certified."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.lipschitz import Linear, LipschitzNet, ReLU, certify, constants
from checkers.lipschitz.certify import certify_scores
from checkers.lipschitz.losses import EpsSchedule, bottom_logit, emma_loss, gloro_loss, trades_loss, training_table
from spec import ir
from spec.errors import UsageError
from tests.lipschitz_nets import conv_net, double, small_net

torch.set_num_threads(1)


def _pgd(net: LipschitzNet, x: torch.Tensor, labels: torch.Tensor, eps: float, norm: ir.Norm, steps: int = 40,
         set_size: torch.Tensor | None = None, top: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient ascent on the best outside score minus the worst certified-set score."""
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(steps):
        y = net(x + delta)
        mask = torch.zeros_like(y, dtype=torch.bool)
        if top is None:
            mask[torch.arange(len(x)), labels] = True
        else:
            ranks = torch.arange(top.shape[1])[None, :] < set_size[:, None]
            mask.scatter_(1, top, ranks)
        inside = y.masked_fill(~mask, math.inf).min(dim=1).values
        outside = y.masked_fill(mask, -math.inf).max(dim=1).values
        (outside - inside).sum().backward()
        with torch.no_grad():
            g = delta.grad
            if norm is ir.Norm.L2:
                delta += eps / 8 * g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)
                delta *= (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
            else:
                delta += eps / 8 * g.sign()
                delta.clamp_(-eps, eps)
        delta.grad = None
    return (x + delta).detach()


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
@settings(max_examples=12)
@given(seed=st.integers(0, 2**16))
def test_pgd_never_beats_a_local_certificate(norm: ir.Norm, seed: int) -> None:
    net = small_net(seed, act="relu" if seed % 2 else "minmax")
    x = torch.rand(64, 6, generator=torch.Generator().manual_seed(seed))
    eps = 0.05 if norm is ir.Norm.L2 else 0.02
    cert = certify(net, x, eps, norm)
    adv = _pgd(net, x, cert.prediction, eps, norm)
    with torch.no_grad():
        y_adv = net(adv)
    robust_after = y_adv.argmax(dim=1) == cert.prediction
    assert bool(robust_after[cert.certified].all())
    # sampled points of the ball keep the label strictly ahead (no tie either)
    for _ in range(5):
        d = torch.randn_like(x)
        d = d / d.norm(dim=1, keepdim=True) * eps if norm is ir.Norm.L2 else d.sign() * eps
        with torch.no_grad():
            y = net(x + d)
        top = y.gather(1, cert.prediction[:, None])[:, 0]
        others = y.scatter(1, cert.prediction[:, None], -math.inf).max(dim=1).values
        assert bool((top > others)[cert.certified].all())


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 3))
def test_topk_certificates_hold_on_attacked_points(seed: int, k: int) -> None:
    net = small_net(seed, m=5)
    x = torch.rand(64, 6, generator=torch.Generator().manual_seed(seed + 1))
    cert = certify(net, x, 0.1, kind=ir.TopK(k))
    assert bool((cert.k <= k).all())
    chosen = cert.certified
    if not chosen.any():
        return
    adv = _pgd(net, x[chosen], cert.prediction[chosen], 0.1, ir.Norm.L2, set_size=cert.k[chosen], top=cert.top[chosen])
    with torch.no_grad():
        y = net(adv)
    for row, size, top in zip(y, cert.k[chosen], cert.top[chosen], strict=True):
        inside = row[top[:size]]
        outside = row[[i for i in range(5) if i not in top[:size].tolist()]]
        assert float(inside.min()) > float(outside.max())


def test_affinity_certifies_only_sets_inside_one_affinity_set() -> None:
    net = small_net(7, m=6)
    x = torch.rand(200, 6, generator=torch.Generator().manual_seed(3))
    sets = ((0, 1), (2, 3, 4))
    cert = certify(net, x, 0.05, kind=ir.Affinity(sets))
    topk = certify(net, x, 0.05, kind=ir.TopK(3))
    local = certify(net, x, 0.05)
    assert bool((cert.certified >= local.certified).all())  # a single label is always allowed
    assert bool((cert.certified <= topk.certified).all())
    for top, k in zip(cert.top, cert.k, strict=True):
        if k > 1:
            labels = set(top[:k].tolist())
            assert any(labels <= set(s) for s in sets)
    assert bool((cert.k > 1).any())  # the test exercises real set certificates


def _tied_net() -> LipschitzNet:
    head = Linear(3, 3)
    net = LipschitzNet((3,), [Linear(3, 3), ReLU()], head)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        head.bias.zero_()
    return net


def test_ties_are_never_certified() -> None:
    net = _tied_net()
    x = torch.rand(20, 3)
    cert = certify(net, x, 0.0)
    y = cert.scores
    tied = y[:, 0] == y[:, 1]
    assert bool(tied[cert.prediction <= 1].all())
    assert not bool(cert.certified[tied & (cert.prediction <= 1)].any())
    assert bool((cert.radius[tied & (cert.prediction <= 1)] == 0).all())


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16))
def test_radius_agrees_with_certification(seed: int) -> None:
    net = small_net(seed)
    x = torch.rand(32, 6, generator=torch.Generator().manual_seed(seed))
    radius = certify(net, x, 0.0).radius
    for r, factor in ((radius, 0.999), (radius, 1.001)):
        for i in range(len(x)):
            if float(r[i]) <= 0:
                continue
            got = certify(net, x[i:i + 1], float(r[i]) * factor).certified[0]
            assert bool(got) == (factor < 1)


def test_float32_error_bound_covers_the_model() -> None:
    net = conv_net(11)
    c = constants(net)
    ref = double(net)
    x = torch.rand(256, 36, generator=torch.Generator().manual_seed(2)) * 3
    with torch.no_grad():
        y = net(x).double()
        err = (y - ref(x.double())).norm(dim=1)
    bound = c.err0 + c.err1 * x.double().norm(dim=1)
    assert bool((err <= bound).all())
    assert bool((bound < 1e-3 * (1 + y.norm(dim=1))).all())  # and small next to the scores


def test_bad_arguments_name_the_value() -> None:
    net = small_net(0)
    with pytest.raises(UsageError, match=r"eps=-0\.1 must be"):
        certify(net, torch.zeros(2, 6), -0.1)
    with pytest.raises(UsageError, match=r"eps=nan"):
        certify(net, torch.zeros(2, 6), math.nan)
    with pytest.raises(UsageError, match=r"inputs of shape \[2, 5\]"):
        certify(net, torch.zeros(2, 5), 0.1)
    with pytest.raises(UsageError, match=r"top k=9"):
        certify(net, torch.zeros(2, 6), 0.1, kind=ir.TopK(9))


def test_many_classes_use_memory_linear_in_batch_times_classes() -> None:
    net = LipschitzNet((32,), [Linear(32, 64), ReLU()], Linear(64, 1000))
    x = torch.rand(256, 32)
    with torch.no_grad():
        y = net(x)
    cert = certify_scores(net, x, y, 0.01)
    assert cert.radius.shape == (256,)
    # top-5 over 1,000 classes: (B, 5, m) at most; a (B, features, classes) tensor would be 256 * 64 * 1000
    assert certify_scores(net, x, y, 0.01, kind=ir.TopK(5)).top.shape == (256, 5)


def test_losses_are_finite_and_bottom_logit_matches_local_margin() -> None:
    net = small_net(1, m=4)
    net.train()
    x = torch.rand(16, 6)
    labels = torch.randint(0, 4, (16,))
    y = net(x)
    ktab = training_table(net)
    bot = bottom_logit(y, ktab, 0.1)
    j = y.argmax(dim=1)
    expected = (y + 0.1 * ktab[j]).scatter(1, j[:, None], -math.inf).max(dim=1).values
    assert torch.allclose(bot, expected)
    for loss in (gloro_loss(y, bot, labels), trades_loss(y, bot, labels), emma_loss(y, ktab, 0.1, labels)):
        assert math.isfinite(float(loss.detach()))
        loss.backward(retain_graph=True)
    assert bottom_logit(y, ktab, 0.1, ir.TopK(2)).shape == (16,)


def test_eps_schedule_ramps_and_validates() -> None:
    s = EpsSchedule(0.5, warmup=0.5)
    assert s(0.0) == pytest.approx(0.005) and s(0.25) < s(0.4) < s(0.5) == 0.5 == s(1.0)
    assert EpsSchedule(0.5, warmup=0.5, kind="log")(0.0) == pytest.approx(0.005)
    with pytest.raises(UsageError, match=r"eps=-1"):
        EpsSchedule(-1.0)
