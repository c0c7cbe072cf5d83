"""Lipschitz certification: sound layer bounds, the GloRo certifier, losses and certified training.

    >>> net = LipschitzNet((64,), [Linear(64, 128), MinMax()], Linear(128, 10))
    >>> cert = certify(net, x, eps=0.3)            # per-input prediction, certified flag, radius
    >>> label, ok = certified_predict(net, x, 0.3)  # certified inference: predict or abstain, fast

See `layers` (bounds), `network` (constants, float32 error), `certify` (GloRo), `losses`, `train`.
"""

from checkers.lipschitz.certify import Certificates, certified_predict, certify
from checkers.lipschitz.layers import (
    AvgPool2d, ChordLinear, Conv2d, Flatten, GroupSort, Linear, LiResNetBlock, MinMax, NormalizedLinear, ReLU,
)
from checkers.lipschitz.network import LipschitzNet, as_lipschitz, constants

__all__ = [
    "AvgPool2d", "Certificates", "ChordLinear", "Conv2d", "Flatten", "GroupSort", "LiResNetBlock", "Linear",
    "LipschitzNet", "MinMax", "NormalizedLinear", "ReLU", "as_lipschitz", "certified_predict", "certify",
    "constants",
]
