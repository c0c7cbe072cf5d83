"""Sound Lipschitz bounds: every layer's bound is above sampled ratios and Jacobian norms, and stays fresh."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from checkers.lipschitz import Linear, LipschitzNet, MinMax, ReLU, as_lipschitz, constants
from checkers.lipschitz.layers import LipschitzLayer
from checkers.lipschitz.spectral import conv_matrix, conv_patch_upper, spectral_upper
from spec.errors import ModelError
from tests.lipschitz_nets import conv_net, double, layer_zoo, prepared, seeded

torch.set_num_threads(1)
NAMES = sorted(layer_zoo())


@settings(max_examples=60)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), seed=st.integers(0, 2**20),
       exponent=st.integers(-300, 300), rank=st.integers(1, 40))
def test_spectral_upper_is_above_and_close_to_the_svd(rows: int, cols: int, seed: int, exponent: int, rank: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(rows, rank, generator=gen, dtype=torch.float64) @ torch.randn(rank, cols, generator=gen,
                                                                                  dtype=torch.float64))
    w = w * 2.0**exponent
    exact = float(torch.linalg.matrix_norm(w, 2))
    bound = spectral_upper(w)
    assert bound >= exact
    assert bound <= exact * (1 + 1e-3) + 1e-300


@pytest.mark.parametrize("q", [torch.eye(5), torch.linalg.qr(torch.randn(50, 50, generator=torch.Generator().manual_seed(1)))[0]])
def test_spectral_upper_is_tight_on_orthogonal_matrices(q: torch.Tensor) -> None:
    exact = float(torch.linalg.matrix_norm(q.to(torch.float64), 2))
    assert exact <= spectral_upper(q) <= exact * (1 + 1e-4)


def test_spectral_upper_rejects_non_finite_weights() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        spectral_upper(torch.tensor([[1.0, math.inf]]))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15)
@given(seed=st.integers(0, 2**16))
def test_layer_bound_covers_sampled_ratios_and_jacobian(name: str, seed: int) -> None:
    layer, shape = prepared(name, seed)
    assert isinstance(layer, LipschitzLayer)
    bound = layer.lipschitz_bound()
    ref = double(layer)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, *shape, generator=gen, dtype=torch.float64)
    scales = 10.0 ** torch.randint(-4, 1, (16,) + (1,) * len(shape), generator=gen)
    d = torch.randn(16, *shape, generator=gen, dtype=torch.float64) * scales
    with torch.no_grad():
        num = (ref(x + d) - ref(x)).flatten(1).norm(dim=1)
    ratios = num / d.flatten(1).norm(dim=1)
    assert float(ratios.max()) <= bound * (1 + 1e-9)
    jac = torch.autograd.functional.jacobian(lambda v: ref(v[None])[0], x[0])
    jac = jac.reshape(-1, x[0].numel())
    assert float(torch.linalg.matrix_norm(jac, 2)) <= bound * (1 + 1e-9)


@pytest.mark.parametrize("name", ["linear", "conv_s2_p0", "liresnet", "chord", "normlinear"])
def test_estimate_approaches_the_bound_from_below(name: str) -> None:
    layer, _ = prepared(name, 3)
    bound = layer.lipschitz_bound()
    for _ in range(200):
        estimate = float(layer.lipschitz_estimate().detach())
    assert estimate <= bound * (1 + 1e-5)
    assert estimate >= 0.95 * bound  # the sound bound is tight, not a blanket over-estimate


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv_bounds_cover_the_exact_operator(stride: int, padding: int) -> None:
    w = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(stride * 7 + padding))
    for size in (4, 7):
        exact = float(torch.linalg.matrix_norm(conv_matrix(w, (2, size, size), (stride, stride), (padding, padding)), 2))
        assert exact <= conv_patch_upper(w, (stride, stride))
        assert exact <= spectral_upper(conv_matrix(w, (2, size, size), (stride, stride), (padding, padding)))


def test_network_bound_covers_sampled_ratios_of_score_differences() -> None:
    net = conv_net(5)
    c = constants(net)
    ref = double(net)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 36, generator=gen, dtype=torch.float64)
    d = torch.randn(64, 36, generator=gen, dtype=torch.float64) * 0.1
    with torch.no_grad():
        dy = ref(x + d) - ref(x)
    m = dy.shape[1]
    pair = (dy[:, :, None] - dy[:, None, :]).abs()
    ktab = c.table * c.body
    assert bool((pair <= ktab[None] * d.norm(dim=1)[:, None, None] * (1 + 1e-9) + 1e-12).all())
    assert m == 5


def test_cached_bound_changes_when_weights_change() -> None:
    layer, _ = prepared("linear", 0)
    assert isinstance(layer, Linear)
    before = layer.lipschitz_bound()
    with torch.no_grad():
        layer.weight.mul_(2.0)  # in place: the version counter moves
    assert layer.lipschitz_bound() == pytest.approx(2 * before, rel=1e-9)
    layer.load_state_dict({"weight": layer.weight * 0.25, "bias": layer.bias})
    assert layer.lipschitz_bound() == pytest.approx(0.5 * before, rel=1e-9)
    layer.weight = nn.Parameter(layer.weight.detach() * 4)  # a new tensor
    assert layer.lipschitz_bound() == pytest.approx(2 * before, rel=1e-9)


def test_network_constants_follow_an_optimiser_step() -> None:
    net = conv_net(2)
    first = constants(net)
    assert constants(net) is first  # cached while nothing changes
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net.train()
    loss = net(torch.rand(4, 36)).square().sum() + net.body_estimate()
    loss.backward()
    opt.step()
    net.eval()
    second = constants(net)
    assert second is not first
    assert second.body != first.body or not torch.equal(second.table, first.table)


def test_constants_follow_writes_no_version_counter_sees() -> None:
    """`.data` writes and numpy views change no version counter: the values are compared, so nothing goes stale."""
    from checkers.lipschitz import ChordLinear

    net = LipschitzNet((4,), [ChordLinear(4, 8), MinMax()], Linear(8, 3))
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    first = constants(net)
    net[-1].weight.data.mul_(2.0)  # the head's row differences double
    second = constants(net)
    assert torch.allclose(second.table, 2 * first.table, rtol=1e-6)
    # a rearrangement that keeps every sum (a checksum would miss it) but not the spectral norm
    with torch.no_grad():
        net[-1].weight.copy_(torch.tensor([[1.0] * 8, [0.0] * 8, [0.0] * 8]))
    before = net[-1].lipschitz_bound()
    net[-1].weight.data.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 0, 0, 0],
                                            [0, 0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]))
    assert net[-1].lipschitz_bound() == pytest.approx(math.sqrt(6), rel=1e-6) and before == pytest.approx(math.sqrt(8), rel=1e-6)
    # CHORD's derived weight (used by the forward pass) follows a write through numpy
    with torch.no_grad():
        out = net[0](x)
    net[0].weight.detach().numpy()[:, :2] *= -1.0
    with torch.no_grad():
        assert not torch.equal(net[0](x), out)
        assert torch.equal(net[0](x), torch.nn.functional.linear(x, net[0]._derive(), net[0].bias))
    third = constants(net)
    assert third is not second and constants(net) is third


def test_a_replaced_or_reconfigured_layer_is_seen() -> None:
    net = conv_net(3)
    conv = next(layer for layer in net.body if type(layer).__name__ == "Conv2d")
    first = constants(net)
    conv.padding = (conv.padding[0] + 1, conv.padding[1] + 1)  # a new configuration: not the bounded operator
    assert constants(net) is not first
    index = next(k for k, layer in enumerate(net) if isinstance(layer, MinMax))
    net[index] = nn.Tanh()
    with pytest.raises(ModelError, match=r"Tanh\(\).*no known Lipschitz bound"):
        constants(net)


def test_unknown_layers_are_errors_not_one() -> None:
    with pytest.raises(ModelError, match=r"Tanh\(\).*no known Lipschitz bound"):
        LipschitzNet((4,), [Linear(4, 4), nn.Tanh()], Linear(4, 2))
    with pytest.raises(ModelError, match=r"MaxPool2d.*no known Lipschitz bound"):
        as_lipschitz(nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, 1), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)),
                     (1, 6, 6))
    with pytest.raises(ModelError, match="even number of channels"):
        LipschitzNet((3,), [MinMax()], Linear(3, 2))


def test_as_lipschitz_keeps_the_function() -> None:
    plain = seeded(4, nn.Sequential(nn.Conv2d(1, 2, 3, 1, 1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(18, 3)))
    net = as_lipschitz(plain, (1, 6, 6))
    x = torch.rand(5, 36)
    assert torch.equal(net(x), plain(x.reshape(5, 1, 6, 6)))
    assert isinstance(net.body[1], ReLU)
