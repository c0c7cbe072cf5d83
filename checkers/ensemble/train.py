"""Training the members of a cascade the way Wong et al. (2018) do: each on what the earlier ones do not certify.

Member 1 trains on the whole training set; member k+1 on the training points that no
earlier member certifies correctly (at the training eps); when fewer than `min_points`
remain, a member trains on the whole set. Members are small LipschitzNets (Linear layers,
MinMax) trained with the GloRo loss (`checkers.lipschitz.train`), so on one CPU thread
each takes seconds on digits.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from checkers.lipschitz.certify import certify
from checkers.lipschitz.network import LipschitzNet
from checkers.lipschitz.train import TrainOptions, dense_model, train
from spec.errors import UsageError


@dataclass(frozen=True)
class MemberTraining:
    """eps: l2 training radius; epochs, width, depth of each member; seed of member 1 (member k: seed + k)."""

    eps: float = 0.3
    epochs: int = 100
    width: int = 128
    depth: int = 2
    seed: int = 0
    min_points: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.width < 2 or self.width % 2 or self.depth < 1 or self.min_points < 1:
            raise UsageError(f"epochs={self.epochs!r} >= 1, width={self.width!r} even >= 2, depth={self.depth!r} >= 1 "
                             f"and min_points={self.min_points!r} >= 1 are needed")


def train_cascade_members(names: Sequence[str], x: torch.Tensor, labels: torch.Tensor, n_classes: int,
                          options: MemberTraining, progress: bool | None = None) -> dict[str, LipschitzNet]:
    """One LipschitzNet per name, in cascade order (see the module docstring)."""
    if not names:
        raise UsageError("no members to train")
    show = sys.stderr.isatty() if progress is None else progress
    nets: dict[str, LipschitzNet] = {}
    todo = torch.ones(len(x), dtype=torch.bool)
    for k, name in enumerate(names):
        use = todo if int(todo.sum()) >= options.min_points else torch.ones_like(todo)
        torch.manual_seed(options.seed + k)
        net = dense_model(x.shape[1], n_classes, options.width, options.depth)
        train(net, x[use], labels[use], TrainOptions(eps=options.eps, epochs=options.epochs, loss="gloro",
                                                      seed=options.seed + k), progress=show)
        cert = certify(net, x, options.eps)
        todo &= ~(cert.certified & (cert.prediction == labels))
        nets[name] = net
    return nets
