"""Small seeded networks shared by the bound and verifier tests."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def random_mlp(seed: int, n_in: int, widths: list[int], n_out: int, scale: float = 1.0) -> nn.Sequential:
    """A float32 Linear/ReLU network with seeded uniform weights (torch's default scale) times `scale`."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    sizes = [n_in, *widths, n_out]
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            bound = 1.0 / a**0.5
            lin.weight.copy_((torch.rand(b, a, generator=gen) * 2 - 1) * bound * scale)
            lin.bias.copy_((torch.rand(b, generator=gen) * 2 - 1) * bound * scale)
        layers.append(lin)
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()
