"""Lipschitz certification: sound layer bounds, the GloRo certifier, losses and certified training.

    >>> net = LipschitzNet((64,), [Linear(64, 128), MinMax()], Linear(128, 10))
    >>> cert = certify(net, x, eps=0.3)            # per-input prediction, certified flag, radius
    >>> clf = CertifiedClassifier(net, eps=0.3)    # certified inference: predict or abstain, fast
    >>> label, ok = clf(x)

See `layers` (bounds), `network` (constants, float32 error), `certify` (GloRo), `losses`, `train`.
"""

from checkers.lipschitz.certify import Certificates, CertifiedClassifier, certify
from checkers.lipschitz.layers import (
    AvgPool2d, ChordLinear, Conv2d, Flatten, GroupSort, Linear, LiResNetBlock, MinMax, NormalizedLinear, ReLU,
)
from checkers.lipschitz.network import LipschitzNet, as_lipschitz, constants

__all__ = [
    "AvgPool2d", "Certificates", "CertifiedClassifier", "ChordLinear", "Conv2d", "Flatten", "GroupSort",
    "LiResNetBlock", "Linear", "LipschitzNet", "MinMax", "NormalizedLinear", "ReLU", "as_lipschitz", "certify",
    "constants",
]
