"""The GloRo certifier: certificates are never contradicted (PGD, sampling, float32), ties are not certified."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.lipschitz import CertifiedClassifier, Linear, LipschitzNet, ReLU, certify, constants
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


def _net_and_inputs(seed: int) -> tuple[LipschitzNet, torch.Tensor]:
    """A small ReLU (odd seeds) or MinMax network and 64 inputs in [0, 1)^6."""
    net = small_net(seed, act="relu" if seed % 2 else "minmax")
    return net, torch.rand(64, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
@settings(max_examples=12)
@given(seed=st.integers(0, 2**16))
def test_pgd_never_beats_a_local_certificate(norm: ir.Norm, seed: int) -> None:
    net, x = _net_and_inputs(seed)
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


@pytest.mark.parametrize("norm", [ir.Norm.L2, ir.Norm.LINF])
@settings(max_examples=12)
@given(seed=st.integers(0, 2**16))
def test_certified_inference_gives_the_local_certificate(norm: ir.Norm, seed: int) -> None:
    """The fast path (predict or abstain) decides exactly as the full certificate, and PGD never beats it."""
    net, x = _net_and_inputs(seed)
    radius = certify(net, x, 0.0, norm).radius
    for eps in (0.01, 0.05, *(float(r) * f for r in radius[:4] for f in (0.999, 1.001) if float(r) > 0)):
        cert = certify(net, x, eps, norm)
        label, ok = CertifiedClassifier(net, eps, norm)(x)
        assert torch.equal(label, cert.prediction)
        assert torch.equal(ok, cert.certified), eps
    eps = 0.05 if norm is ir.Norm.L2 else 0.02
    label, ok = CertifiedClassifier(net, eps, norm)(x)
    adv = _pgd(net, x, label, eps, norm)
    with torch.no_grad():
        after = net(adv).argmax(dim=1)
    assert bool((after == label)[ok].all())


def test_certified_inference_never_certifies_a_tie() -> None:
    net = _tied_net()
    x = torch.rand(20, 3)
    label, ok = CertifiedClassifier(net, 0.0)(x)
    y = certify(net, x, 0.0).scores
    tied = (y[:, 0] == y[:, 1]) & (label <= 1)
    assert bool(tied.any()) and not bool(ok[tied].any())


def test_certified_classifier_runs_a_frozen_copy() -> None:
    """Later changes to the network (even through .data) do not reach a built classifier, whose decisions stay
    those of the network it copied."""
    import copy

    net = small_net(5)
    x = torch.rand(64, 6, generator=torch.Generator().manual_seed(5))
    clf, before = CertifiedClassifier(net, 0.05), copy.deepcopy(net)
    for p in net.parameters():
        p.data.mul_(-3.0)
    label, ok = clf(x)
    cert = certify(before, x, 0.05)
    assert torch.equal(label, cert.prediction) and torch.equal(ok, cert.certified) and bool(ok.any())
    assert torch.equal(clf.predict(x), label)
    assert not torch.equal(certify(net, x, 0.05).prediction, label)


def test_certified_classifier_refuses_bad_inputs_and_abstains_on_non_finite_ones() -> None:
    net = small_net(1)
    with pytest.raises(UsageError, match=r"eps=-0.1 must be"):
        CertifiedClassifier(net, -0.1)
    with pytest.raises(UsageError, match=r"needs a LipschitzNet, got Sequential"):
        CertifiedClassifier(torch.nn.Sequential(torch.nn.Linear(6, 2)), 0.1)  # type: ignore[arg-type]
    clf = CertifiedClassifier(net, 0.0)
    for bad in (torch.rand(3, 5), torch.rand(6), torch.rand(3, 6, dtype=torch.float64)):
        with pytest.raises(UsageError, match=r"the classifier takes \(batch, 6\) float32 on cpu"):
            clf(bad)
    x = torch.rand(4, 6)
    x[0, 0], x[1, 2], x[2, 5] = math.nan, math.inf, -math.inf
    _, ok = clf(x)
    assert ok.tolist()[:3] == [False, False, False] and bool(ok[3]) == bool(certify(net, x[3:], 0.0).certified[0])


@settings(max_examples=200)
@given(value=st.one_of(st.floats(allow_nan=False, width=64), st.floats(-1e-40, 1e-40), st.floats(-1e39, 1e39)))
def test_down32_rounds_toward_minus_infinity(value: float) -> None:
    from fractions import Fraction

    from checkers.lipschitz.certify import _down32

    got = _down32(torch.tensor(value, dtype=torch.float64))
    assert got.dtype == torch.float32
    up = torch.nextafter(got, torch.tensor(math.inf))
    assert float(got) <= value
    if math.isfinite(float(up)) and math.isfinite(value):
        assert Fraction(float(up)) > Fraction(value)


def test_balls_reaching_float32_overflow_are_not_certified() -> None:
    """The float32 error bound needs finite values: inputs near max_norm (partial sums near 2^126) are refused."""
    head = Linear(2, 2)
    net = LipschitzNet((2,), [Linear(2, 2), ReLU()], head)
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2) * 1e30)
        net[0].bias.zero_()
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        head.bias.zero_()
    c = constants(net)
    assert 1e7 < c.max_norm < 1e9  # 2^126 / (1e30 * 1e30 ...): the second layer's sums overflow first
    x = torch.tensor([[c.max_norm * 0.5, 0.0], [c.max_norm * 2, 0.0]])
    cert = certify(net, x, 1.0)
    assert float(cert.radius[1]) == 0.0 and not bool(cert.certified[1])
    assert float(cert.radius[0]) <= c.max_norm * 0.5 + 1
    _, ok = CertifiedClassifier(net, 1.0)(x)
    assert not bool(ok[1])
    assert bool(ok[0]) == bool(cert.certified[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_certificates_are_sound_and_match_the_cpu() -> None:  # pragma: no cover - runs where a GPU is present
    """On the GPU (TF32 forced off by the certifier) the float32 error bound covers the scores, certified
    inference equals the full certificate, PGD never beats it, and the CPU's certificates differ at most at the edge."""
    import copy

    from checkers.lipschitz.certify import inference
    from checkers.lipschitz.data import load_dataset
    from checkers.models import open_model
    from tests.conftest import EXAMPLES

    for net, x in ((open_model(EXAMPLES / "digits" / "digits.pt").module, load_dataset("digits_test")[0]),
                   (conv_net(11), torch.rand(256, 36, generator=torch.Generator().manual_seed(2)) * 3)):
        assert isinstance(net, LipschitzNet)
        gnet = copy.deepcopy(net).cuda()
        flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        with inference(gnet):
            y = gnet(x.cuda()).double().cpu()
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
        c = constants(gnet)
        err = (y - double(net)(x.double())).norm(dim=1)
        assert bool((err <= c.err0 + c.err1 * x.double().norm(dim=1)).all())
        eps = 0.3 if x.shape[1] == 64 else 0.05
        cpu, gpu = certify(net, x, eps), certify(gnet, x.cuda(), eps)
        label, ok = CertifiedClassifier(gnet, eps)(x.cuda())
        assert torch.equal(ok, gpu.certified) and torch.equal(label, gpu.prediction)
        assert int((gpu.certified.cpu() != cpu.certified).sum()) <= 2
        adv = _pgd(gnet, x.cuda(), label, eps, ir.Norm.L2)
        with torch.no_grad():
            assert bool((gnet(adv).argmax(dim=1) == label)[ok].all())
