"""Small seeded Lipschitz networks shared by the tests of checkers.lipschitz."""

from __future__ import annotations

import copy

import torch
from torch import nn

from checkers.lipschitz import (
    AvgPool2d, ChordLinear, Conv2d, Flatten, GroupSort, Linear, LipschitzNet, LiResNetBlock, MinMax, NormalizedLinear,
    ReLU,
)


def seeded(seed: int, module: nn.Module, scale: float = 1.0) -> nn.Module:
    """Overwrite every parameter with seeded normal values times `scale` (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale / max(1, p[0].numel()) ** 0.5)
    return module


def layer_zoo() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Every layer kind with the input shape (without batch) it is tested on."""
    return {
        "linear": (Linear(7, 5), (7,)),
        "linear_tall": (Linear(3, 9), (3,)),
        "conv_s1_p1": (Conv2d(2, 3, 3, 1, 1), (2, 6, 6)),
        "conv_s2_p0": (Conv2d(2, 4, 3, 2, 0), (2, 7, 7)),
        "conv_s2_p2": (Conv2d(1, 2, 4, 2, 2), (1, 5, 5)),
        "relu": (ReLU(), (6,)),
        "minmax": (MinMax(), (8,)),
        "minmax_conv": (MinMax(), (4, 3, 3)),
        "groupsort": (GroupSort(3), (9,)),
        "flatten": (Flatten(), (2, 3, 3)),
        "avgpool": (AvgPool2d(2), (2, 4, 4)),
        "avgpool_overlap": (AvgPool2d(3, 1), (1, 5, 5)),
        "liresnet": (LiResNetBlock(4, 3), (4, 5, 5)),
        "liresnet_relu": (LiResNetBlock(2, 3, "relu"), (2, 4, 4)),
        "chord": (ChordLinear(8, 5), (8,)),
        "chord_tall": (ChordLinear(4, 6), (4,)),
        "normlinear": (NormalizedLinear(6, 4), (6,)),
    }


def prepared(name: str, seed: int) -> tuple[nn.Module, tuple[int, ...]]:
    layer, shape = layer_zoo()[name]
    layer = seeded(seed, layer, scale=2.0 if name.startswith("liresnet") else 1.0)
    with torch.no_grad():
        layer(torch.zeros(1, *shape))  # convolutions learn their input size
    return layer.eval(), shape


def _exact_copy(layer: nn.Module) -> nn.Module:
    """Derived weights frozen at their float32 values (as the float32 layer uses them), in float64."""
    if isinstance(layer, ChordLinear | NormalizedLinear):
        plain = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            plain.weight.copy_(layer.effective_weight())
            plain.bias.copy_(layer.bias)
        return plain.to(torch.float64)
    copied = copy.deepcopy(layer).to(torch.float64)
    if isinstance(layer, LiResNetBlock):  # identity + (folded32 - identity) is folded32 again, exactly
        with torch.no_grad():
            copied.weight.copy_(layer.folded().to(torch.float64) - copied.identity)
    return copied


def double(module: nn.Module) -> nn.Module:
    """A float64 copy computing the same function on the exact weights the float32 model uses."""
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(_exact_copy(layer) for layer in module)).eval()
    return _exact_copy(module).eval()


def small_net(seed: int, n: int = 6, width: int = 8, m: int = 4, act: str = "relu") -> LipschitzNet:
    """A seeded Linear/activation/Linear network."""
    layers: list[nn.Module] = [Linear(n, width), ReLU() if act == "relu" else MinMax(), Linear(width, width),
                               ReLU() if act == "relu" else MinMax()]
    net = LipschitzNet((n,), layers, Linear(width, m))
    seeded(seed, net, scale=1.5)
    return net.eval()


def conv_net(seed: int) -> LipschitzNet:
    body: list[nn.Module] = [Conv2d(1, 4, 3, 1, 1), MinMax(), LiResNetBlock(4), AvgPool2d(2), Flatten(),
                             ChordLinear(36, 16), GroupSort(2)]
    net = LipschitzNet((1, 6, 6), body, NormalizedLinear(16, 5))
    seeded(seed, net, scale=1.0)
    return net.eval()
