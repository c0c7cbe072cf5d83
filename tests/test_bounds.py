"""Property tests of the sound bounds the verifier rests on (checkers.bounds, checkers.floaterror)
and of the model folding (checkers.plnet.from_module).

On random small ReLU networks (float32 weights) and random boxes:
(a) the forward and CROWN hidden-layer bounds contain the pre-activations of sampled
    points, and CROWN is within the forward bounds;
(b) `spec_upper_bounds` is above rows @ f(x) + consts at sampled points and box corners;
(c) float32 execution stays within `output_error` and `row_error` of the real network,
    also on a network with large weights where the rounding error is visible;
(d) `input_sensitivity` is above the gradient's size at sampled points;
(e) `from_module` folds conv / pooling / batch norm / flatten models exactly and refuses
    layers that are not affine or ReLU.
Sampled values are computed in float64; comparisons allow 1e-12 relative for its rounding.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from checkers.attack import inner_float32
from checkers.bounds import crown_hidden_bounds, hidden_bounds, input_sensitivity, spec_upper_bounds
from checkers.floaterror import output_error, row_error
from checkers.plnet import PLNet, from_module
from spec.errors import ModelError
from nets import random_mlp

SAMPLES = 2000
REL = 1e-12  # float64 rounding of the sampled values themselves

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def nets_and_boxes(draw: st.DrawFn, scale: float = 1.0) -> tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor]:
    """A network and a batch of 3 boxes (lower, upper) (3, n) in float64."""
    n_in, n_out = draw(st.integers(2, 4)), draw(st.integers(2, 5))
    widths = draw(st.lists(st.integers(1, 16), min_size=0, max_size=3))
    module = random_mlp(draw(st.integers(0, 2**31)), n_in, widths, n_out, scale)
    centre = torch.tensor(draw(st.lists(st.floats(-2, 2), min_size=3 * n_in, max_size=3 * n_in)), dtype=torch.float64)
    radius = torch.tensor(draw(st.lists(st.sampled_from([0.0, 1e-3, 0.05, 0.3, 1.0, 3.0]), min_size=3 * n_in,
                                        max_size=3 * n_in)), dtype=torch.float64)
    lower, upper = (centre - radius).reshape(3, n_in), (centre + radius).reshape(3, n_in)
    return module, from_module(module, (n_in,)), lower, upper


def samples(lower: torch.Tensor, upper: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """(B, count + 2^n, n) float64 points of each box: its corners, then uniform ones."""
    gen = torch.Generator().manual_seed(seed)
    batch, n = lower.shape
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)
    corners = lower[:, None, :] + bits[None] * (upper - lower)[:, None, :]
    uniform = lower[:, None, :] + torch.rand(batch, count, n, generator=gen, dtype=torch.float64) * (upper - lower)[:, None, :]
    return torch.cat([corners, uniform], dim=1)


def float32_samples(lower: torch.Tensor, upper: torch.Tensor, count: int) -> torch.Tensor:
    """(B, K, n) float32 points of each box (its inner float32 box, corners included; outside
    only when the box holds no float32 point)."""
    lo, hi = inner_float32(lower, upper)
    return samples(lo.to(torch.float64), hi.to(torch.float64), count).to(torch.float32).clamp(lo[:, None], hi[:, None])


def pre_activations(net: PLNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Hidden pre-activations in float64 of points x (..., n)."""
    out, h = [], x.to(torch.float64)
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        z = h @ w.T + b
        out.append(z)
        h = torch.relu(z)
    return out


def slack(values: torch.Tensor) -> torch.Tensor:
    return REL * (1.0 + values.abs())


@SETTINGS
@given(nets_and_boxes())
def test_hidden_bounds_contain_sampled_preactivations(case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor]) -> None:
    torch.set_num_threads(1)
    _, net, lower, upper = case
    forward, crown = hidden_bounds(net, lower, upper), crown_hidden_bounds(net, lower, upper)
    points = samples(lower, upper, SAMPLES)
    for k, z in enumerate(pre_activations(net, points)):
        for bounds in (forward, crown):
            lo, up = bounds.lower[k][:, None, :], bounds.upper[k][:, None, :]
            assert (z >= lo - slack(z)).all(), f"layer {k}: a pre-activation below its lower bound"
            assert (z <= up + slack(z)).all(), f"layer {k}: a pre-activation above its upper bound"
        assert (crown.lower[k] >= forward.lower[k]).all() and (crown.upper[k] <= forward.upper[k]).all()
        assert (crown.lower[k] <= crown.upper[k] + slack(crown.upper[k])).all()


@SETTINGS
@given(nets_and_boxes(), st.integers(1, 3))
def test_input_sensitivity_above_sampled_gradients(
    case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor], n_rows: int,
) -> None:
    torch.set_num_threads(1)
    _, net, lower, upper = case
    rows = torch.randn(n_rows, net.n_outputs, generator=torch.Generator().manual_seed(n_rows), dtype=torch.float64)
    bound = input_sensitivity(net, rows, lower, crown_hidden_bounds(net, lower, upper))
    points = samples(lower, upper, 200).requires_grad_(True)
    h = points
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        h = h @ w.T + b
        h = torch.relu(h) if k < len(net.weights) - 1 else h
    grads = torch.stack([torch.autograd.grad((h @ row).sum(), points, retain_graph=True)[0] for row in rows])
    size = grads.abs().sum(dim=0)  # (B, K, n): sum over rows of |d row / d x_j|
    assert (size <= bound[:, None, :] * (1 + REL) + REL).all()


@SETTINGS
@given(nets_and_boxes(), st.integers(0, 2**31))
def test_crown_bounds_with_inherited_parent_bounds_contain_child_samples(
    case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor], seed: int,
) -> None:
    """Branch and bound passes the parent box's bounds down: intersected, they stay sound."""
    torch.set_num_threads(1)
    _, net, lower, upper = case
    parent = crown_hidden_bounds(net, lower, upper)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(2, *lower.shape, generator=gen, dtype=torch.float64)
    child_lo = lower + u[0] * (upper - lower)
    child_hi = child_lo + u[1] * (upper - child_lo)
    child = crown_hidden_bounds(net, child_lo, child_hi, parent)
    for k, z in enumerate(pre_activations(net, samples(child_lo, child_hi, SAMPLES))):
        assert (z >= child.lower[k][:, None, :] - slack(z)).all() and (z <= child.upper[k][:, None, :] + slack(z)).all()
        assert (child.lower[k] >= parent.lower[k]).all() and (child.upper[k] <= parent.upper[k]).all()


@SETTINGS
@given(nets_and_boxes(), st.integers(1, 4), st.integers(0, 2**31))
def test_spec_upper_bounds_above_samples(
    case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor], n_rows: int, seed: int,
) -> None:
    torch.set_num_threads(1)
    _, net, lower, upper = case
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(n_rows, net.n_outputs, generator=gen, dtype=torch.float64)
    consts = torch.randn(n_rows, generator=gen, dtype=torch.float64)
    for hidden in (None, hidden_bounds(net, lower, upper)):
        bound, coeffs = spec_upper_bounds(net, lower, upper, rows, consts, hidden)
        assert bound.shape == (lower.shape[0], n_rows) and coeffs.shape == (lower.shape[0], n_rows, net.n_inputs)
        values = net.forward(samples(lower, upper, SAMPLES).reshape(-1, net.n_inputs)) @ rows.T + consts
        values = values.reshape(lower.shape[0], -1, n_rows)
        assert (values <= bound[:, None, :] + slack(values)).all()


def check_float32_error(module: nn.Module, net: PLNet, lower: torch.Tensor, upper: torch.Tensor, seed: int) -> float:
    """Assert the float32 deviation bounds on float32 samples of each box; return the largest deviation seen."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(3, net.n_outputs, generator=gen, dtype=torch.float64)
    x = float32_samples(lower, upper, SAMPLES)
    batch, count, n = x.shape
    with torch.no_grad():
        y32 = module(x.reshape(-1, n)).to(torch.float64).reshape(batch, count, -1)
    y = net.forward(x.reshape(-1, n)).reshape(batch, count, -1)
    # a point box whose bound is no float32 value holds no float32 point: its samples are left out
    inside = ((x.double() >= lower[:, None]) & (x.double() <= upper[:, None])).all(dim=2, keepdim=True)
    deviation = torch.where(inside, y32 - y, torch.zeros_like(y))
    for hidden in (None, crown_hidden_bounds(net, lower, upper)):
        err = output_error(net, lower, upper, hidden)
        assert err.shape == (batch, net.n_outputs)
        assert (deviation.abs() <= err[:, None, :] + slack(y)).all(), "float32 output outside output_error"
        rerr = row_error(net, rows, lower, upper, hidden)
        projected = deviation @ rows.T
        assert (projected.abs() <= rerr[:, None, :] + slack(y).sum(dim=2, keepdim=True) * rows.abs().sum()).all(), (
            "float32 rows outside row_error"
        )
    return float(deviation.abs().max())


@SETTINGS
@given(nets_and_boxes(), st.integers(0, 2**31))
def test_float32_execution_within_error_bounds(
    case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor], seed: int,
) -> None:
    torch.set_num_threads(1)
    module, net, lower, upper = case
    check_float32_error(module, net, lower, upper, seed)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets_and_boxes(scale=100.0), st.integers(0, 2**31))
def test_float32_error_bounds_with_large_weights(
    case: tuple[nn.Sequential, PLNet, torch.Tensor, torch.Tensor], seed: int,
) -> None:
    torch.set_num_threads(1)
    module, net, lower, upper = case
    check_float32_error(module, net, lower * 100, upper * 100, seed)


def test_float32_error_is_visible_with_large_weights() -> None:
    """Not vacuous: with large weights float32 really deviates, and the bounds still hold."""
    torch.set_num_threads(1)
    module = random_mlp(7, 4, [16, 16, 16], 5, scale=100.0)
    net = from_module(module, (4,))
    lower = torch.tensor([[-50.0, -10.0, 0.0, 20.0]], dtype=torch.float64)
    upper = torch.tensor([[50.0, 30.0, 1.0, 90.0]], dtype=torch.float64)
    assert check_float32_error(module, net, lower, upper, 0) > 1e-3


class Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def conv_model(seed: int) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), bn, nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 4, 2, stride=1),
        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean.copy_(torch.randn(3, generator=gen))
        bn.running_var.copy_(torch.rand(3, generator=gen) + 0.5)
    return model.eval()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31))
def test_from_module_folds_conv_pool_batchnorm_flatten(seed: int) -> None:
    torch.set_num_threads(1)
    model = conv_model(seed)
    net = from_module(model, (2, 6, 6))
    assert (net.n_inputs, net.n_outputs) == (72, 5)
    x = torch.randn(64, 2, 6, 6, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        exact = model.double()(x.double())
        model.float()
        y32 = model(x).double()
    y = net.forward(x.reshape(64, -1))
    assert torch.allclose(y, exact, rtol=1e-9, atol=1e-9)
    lower, upper = x.reshape(64, -1).double().min(dim=0).values, x.reshape(64, -1).double().max(dim=0).values
    err = output_error(net, lower[None], upper[None])
    assert ((y32 - y).abs() <= err + slack(y)).all(), "float32 conv model outside output_error"


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.Sigmoid(), Scale()])
def test_from_module_refuses_non_affine_layers(layer: nn.Module) -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), layer, nn.Flatten(), nn.Linear(2 * 2 * 2, 3))
    with pytest.raises(ModelError):
        from_module(model, (1, 6, 6))


def test_float32_error_is_infinite_where_float32_could_overflow() -> None:
    """y0 = 1e20 relu(1e20 x) - 1e20 relu(1e20 x) + 1e36 is 1e36 in the reals but NaN in float32 (inf - inf):
    a relative bound (~1e33 here) would have let the verifier prove y0 > y1, so the box gets an infinite error."""
    first, last = nn.Linear(1, 2), nn.Linear(2, 2)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1e20], [1e20]]))
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[1e20, -1e20], [0.0, 0.0]]))
        last.bias.copy_(torch.tensor([1e36, 0.0]))
    model = nn.Sequential(first, nn.ReLU(), last).eval()
    assert bool(torch.isnan(model(torch.tensor([[1.5]]))[0, 0]))
    net = from_module(model, (1,))
    lo, hi = torch.tensor([[1.0], [0.0]]), torch.tensor([[2.0], [1e-30]])
    rows = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)  # y1 - y0 < 0
    err = row_error(net, rows, lo, hi)
    assert float(err[0, 0]) == float("inf") and float(output_error(net, lo, hi)[0, 0]) == float("inf")
    assert float(err[1, 0]) < float("inf")  # near 0 nothing overflows


def test_float32_error_covers_underflow() -> None:
    """At x = 0 with zero biases every value is exact, but products of tiny inputs underflow: the bound is never 0."""
    layer = nn.Linear(3, 2, bias=False)
    net = from_module(nn.Sequential(layer).eval(), (3,))
    zero = torch.zeros(1, 3)
    assert bool((output_error(net, zero, zero) >= 3 * 2.0**-149).all())
