"""Certified training: a LipschitzNet trained with a GloRo-family loss under an eps schedule.

    >>> net = dense_model(64, 10)
    >>> train(net, x, labels, TrainOptions(eps=0.5))

Each step runs the body's warm-started power iteration once per layer (the training
estimate of K); the final model is certified with the SOUND bounds (`certify`), so a
poor estimate costs accuracy, never soundness.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from checkers.lipschitz.layers import ChordLinear, Linear, MinMax, NormalizedLinear
from checkers.lipschitz.losses import LOSSES, EpsSchedule, bottom_logit, emma_loss, gloro_loss, trades_loss, training_table
from checkers.lipschitz.network import LipschitzNet
from spec.errors import UsageError


@dataclass(frozen=True)
class TrainOptions:
    """eps: the l2 training radius; epochs, batch, lr (Adam, cosine decay); loss: gloro / trades / emma;
    warmup: fraction of training over which eps ramps up; trades_lambda; seed."""

    eps: float = 0.5
    epochs: int = 150
    batch: int = 128
    lr: float = 3e-3
    loss: str = "trades"
    warmup: float = 0.3
    trades_lambda: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UsageError(f"loss {self.loss!r} must be one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name}={getattr(self, name)!r} must be >= 1")
        if not self.lr > 0:
            raise UsageError(f"lr={self.lr!r} must be > 0")
        EpsSchedule(self.eps, self.warmup)  # validates eps and warmup


def dense_model(n_inputs: int, n_classes: int, width: int = 128, depth: int = 3, chord: bool = False) -> LipschitzNet:
    """Linear (or CHORD) layers with MinMax activations and a Linear head."""
    if width < 2 or width % 2 or depth < 1:
        raise UsageError(f"width={width!r} must be even and >= 2, depth={depth!r} >= 1")
    body: list[nn.Module] = []
    size = n_inputs
    for _ in range(depth):
        body += [ChordLinear(size, width) if chord else Linear(size, width), MinMax()]
        size = width
    return LipschitzNet((n_inputs,), body, Linear(size, n_classes))


def normalized_model(n_inputs: int, n_classes: int, width: int = 128, depth: int = 3) -> LipschitzNet:
    """As dense_model, with a NormalizedLinear head (unit rows)."""
    net = dense_model(n_inputs, n_classes, width, depth)
    return LipschitzNet((n_inputs,), net.body, NormalizedLinear(width, n_classes))


def step_loss(net: LipschitzNet, x: torch.Tensor, labels: torch.Tensor, eps: float, options: TrainOptions) -> torch.Tensor:
    y = net(x)
    ktab = training_table(net)
    if options.loss == "emma":
        return emma_loss(y, ktab, eps, labels)
    y_bot = bottom_logit(y, ktab, eps)
    if options.loss == "gloro":
        return gloro_loss(y, y_bot, labels)
    return trades_loss(y, y_bot, labels, options.trades_lambda)


def train(net: LipschitzNet, x: torch.Tensor, labels: torch.Tensor, options: TrainOptions,
          progress: bool | None = None, report: Callable[[int, float], None] | None = None) -> list[float]:
    """Train in place; returns the mean loss of each epoch. progress: a tqdm bar on stderr (default: on a tty)."""
    if x.dim() != 2 or x.shape[1] != net.n_inputs or len(x) != len(labels):
        raise UsageError(f"training inputs {list(x.shape)} and labels {list(labels.shape)} do not fit a network "
                         f"of {net.n_inputs} inputs")
    gen = torch.Generator().manual_seed(options.seed)
    schedule = EpsSchedule(options.eps, options.warmup)
    opt = torch.optim.Adam(net.parameters(), lr=options.lr)
    steps_per_epoch = (len(x) + options.batch - 1) // options.batch
    total = options.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr, total_steps=total, pct_start=0.1)
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=options.epochs, desc="train", file=sys.stderr, leave=False)
    history: list[float] = []
    step = 0
    net.train()
    try:
        for epoch in range(options.epochs):
            order = torch.randperm(len(x), generator=gen)
            losses = []
            for start in range(0, len(x), options.batch):
                idx = order[start:start + options.batch]
                loss = step_loss(net, x[idx], labels[idx], schedule(step / total), options)
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sched.step()
                step += 1
                losses.append(float(loss.detach()))
            history.append(sum(losses) / len(losses))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history[-1]:.3f}", eps=f"{schedule(step / total):.3f}")
            if report is not None:
                report(epoch, history[-1])
    finally:
        if bar is not None:
            bar.close()
        net.eval()
    return history
