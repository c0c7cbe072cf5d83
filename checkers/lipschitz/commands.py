"""`certspec certify` and `certspec train`: the Lipschitz certifier and certified training on the command line.

    certspec certify SPEC --model [NAME=]PATH [--property NAME...] [--radii] [--plot OUT.png] [--json]
    certspec certify SPEC --model [NAME=]PATH --method fgp [--timeout S] [--lower-bound] [--device D] [--json]
    certspec train SPEC -o OUT.pt [--eps E] [--epochs N] [--loss gloro|trades|emma] [--layer chord|linear]

`certify` runs every robustness property (or those named) over its data set or points and
prints clean accuracy, verified robust accuracy (VRA: correct and certified; for top-k and
affinity, the label lies in the certified set), rejection rate (not certified) and the
per-input certified radii (a summary; all of them with --radii or --json). Exit 0.
`train` trains a certifiably robust LipschitzNet on the training split of the spec's data
set (digits_test -> digits_train) and writes a checkpoint `certify` reads.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch

from checkers.finite import dumps
from checkers.userfiles import check_output, load_spec, write_output
from spec import ir
from spec.errors import ModelError, UsageError, printable


def _robust_properties(loaded: ir.Spec, names: list[str] | None, file: str) -> list[ir.Property]:
    from checkers.cli import _find_property

    if names:
        props = [_find_property(loaded, n, file) for n in dict.fromkeys(names)]
        for p in props:
            if not isinstance(p.requirement, ir.Robust):
                raise UsageError(f"property {p.name} is not a robustness property: the certifier decides "
                                 "`robust ...` properties (use certspec verify for the others)")
        return props
    props = [p for p in loaded.properties if isinstance(p.requirement, ir.Robust)]
    if not props:
        raise UsageError(f"{file} has no robustness properties to certify")
    return props


def _points(loaded: ir.Spec, prop: ir.Property, network: ir.Network) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The centres (normalised units) and, for a data set, their labels."""
    from checkers.lipschitz.data import load_dataset

    req = prop.requirement
    assert isinstance(req, ir.Robust)
    if req.dataset is None:
        return torch.tensor(req.points, dtype=torch.float32), None
    source = {d.name: d.source for d in loaded.datasets}[req.dataset]
    x, labels = load_dataset(source)
    if x.shape[1] != network.n_inputs:
        raise UsageError(f"data set {source!r} has {x.shape[1]} features, network {network.name} takes "
                         f"{network.n_inputs}")
    if network.input_norm is not None:
        mean = torch.tensor(network.input_norm.mean, dtype=torch.float32)
        scale = torch.tensor(network.input_norm.range, dtype=torch.float32)
        x = (x - mean) / scale
    return x, labels


def _robust_jobs(loaded: ir.Spec, props: list[ir.Property], models: dict[str, Any]
                 ) -> Iterator[tuple[ir.Property, ir.Robust, ir.Network, Any, torch.Tensor, torch.Tensor | None]]:
    """Per robustness property: (property, requirement, network, its model, centres, labels or None).

    The one loop head of `certspec certify` (gloro and fgp); ModelError when the network has no model."""
    from checkers.models import no_model

    for prop in props:
        if prop.target not in models:
            raise no_model(prop)
        req = prop.requirement
        assert isinstance(req, ir.Robust)
        network = loaded.network(prop.target)
        x, labels = _points(loaded, prop, network)
        yield prop, req, network, models[prop.target], x, labels


def _kind_name(kind: ir.RobustKind) -> str:
    if isinstance(kind, ir.TopK):
        return f"top {kind.k}"
    if isinstance(kind, ir.Affinity):
        return "affinity"
    return "local"


def _summary(prop: ir.Property, cert: Any, labels: torch.Tensor | None) -> dict[str, Any]:
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    n = len(cert.prediction)
    radii = [round(float(r), 6) for r in cert.radius]
    out: dict[str, Any] = {
        "property": prop.name, "network": prop.target, "kind": _kind_name(req.kind), "eps": req.eps,
        "norm": req.norm.value, "points": n,
        "certified_rate": float(cert.certified.float().mean()) if n else 0.0,
        "rejection_rate": float((~cert.certified).float().mean()) if n else 0.0,
        "clean_accuracy": None, "vra": None,
        "predictions": cert.prediction.tolist(), "certified_k": cert.k.tolist(), "radii": radii,
    }
    if labels is not None and n:
        out["clean_accuracy"] = float((cert.prediction == labels).float().mean())
        out["vra"] = float(cert.contains(labels).float().mean())
    return out


def _print_summary(s: dict[str, Any], show_radii: bool) -> None:
    head = f"{s['property']}: {s['kind']} {s['norm']} eps {s['eps']:g}, {s['points']} points:"
    acc = "" if s["clean_accuracy"] is None else f" clean accuracy {100 * s['clean_accuracy']:.1f}%, VRA {100 * s['vra']:.1f}%,"
    radii = sorted(s["radii"])
    med = radii[len(radii) // 2] if radii else math.nan
    print(f"{head}{acc} rejected {100 * s['rejection_rate']:.1f}%, radius median {med:.4f} "
          f"(min {radii[0] if radii else math.nan:.4f}, max {radii[-1] if radii else math.nan:.4f})", flush=True)
    if show_radii:
        for i, (p, k, r) in enumerate(zip(s["predictions"], s["certified_k"], s["radii"], strict=True)):
            print(f"  {i}: predicted {p}, certified top-{k}" if k else f"  {i}: predicted {p}, not certified", end="")
            print(f", radius {r:.6f}")


def _load(paths: dict[str, str], loaded: ir.Spec) -> dict[str, Any]:
    from checkers.cli import _load_models
    from checkers.lipschitz.network import as_lipschitz

    nets = {}
    for name, module in _load_models(paths, loaded).items():
        network = loaded.network(name)
        if network.decide is not ir.Decide.ARGMAX:
            raise UsageError(f"network {name} decides by argmin: the GloRo certifier certifies argmax predictions")
        try:
            nets[name] = as_lipschitz(module, network.input_shape)
        except ModelError as err:
            raise ModelError(f"{paths[name]}: {err.message}") from None
    return nets


def _plot(path: str, curves: list[tuple[str, list[float], list[float]]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'certspec[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, eps, vra in curves:
        ax.plot(eps, [100 * v for v in vra], label=label)
    ax.set_xlabel("eps")
    ax.set_ylabel("verified robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        write_output(path, "--plot", lambda p: fig.savefig(p, dpi=120))
    finally:
        plt.close(fig)


def certify_command(args: argparse.Namespace) -> int:
    from checkers.cli import _model_args, _threads
    from checkers.lipschitz.certify import certify

    if args.method == "fgp":  # fast geometric projections (checkers.fgp), local robustness of ReLU networks
        from checkers.fgp.commands import fgp_command

        return fgp_command(args)
    with _threads(args.threads):
        loaded = load_spec(args.spec)
        if args.plot:
            check_output(args.plot, "--plot")  # before the work
        props = _robust_properties(loaded, args.property, args.spec)
        nets = _load(_model_args(args.model, loaded, args.spec), loaded)
        results, curves = [], []
        for prop, req, _, net, x, labels in _robust_jobs(loaded, props, nets):
            cert = certify(net, x, req.eps, req.norm, req.kind)
            summary = _summary(prop, cert, labels)
            results.append(summary)
            if not args.json:
                _print_summary(summary, args.radii)
            if args.plot and labels is not None:
                grid = [req.eps * 2 * i / 40 for i in range(41)] if req.eps > 0 else [0.0]
                vra = [float(certify(net, x, e, req.norm, req.kind).contains(labels).float().mean())
                       for e in grid]
                curves.append((f"{prop.name} ({_kind_name(req.kind)}, {req.norm.value})", grid, vra))
        if args.plot:
            if not curves:
                raise UsageError("--plot needs a robustness property over a labelled data set")
            _plot(args.plot, curves)
        if args.json:
            print(dumps(results))
    return 0


def _training_eps(loaded: ir.Spec, props: list[ir.Property], network: ir.Network) -> float:
    """The largest eps among the properties, as an l2 radius (l_inf eps times sqrt(n))."""
    from checkers.lipschitz.network import sqrt_dim

    values = []
    for p in props:
        req = p.requirement
        assert isinstance(req, ir.Robust)
        values.append(req.eps if req.norm is ir.Norm.L2 else req.eps * sqrt_dim(network.n_inputs))
    return max(values)


def train_command(args: argparse.Namespace) -> int:
    from checkers.cli import _threads
    from checkers.lipschitz.certify import certify
    from checkers.lipschitz.checkpoint import save_lipschitz
    from checkers.lipschitz.data import load_dataset, training_source
    from checkers.lipschitz.train import TrainOptions, dense_model, train

    with _threads(args.threads):
        torch.manual_seed(args.seed)
        loaded = load_spec(args.spec)
        check_output(args.output, "-o")  # before the training
        props = [p for p in _robust_properties(loaded, args.property, args.spec)
                 if isinstance(p.requirement, ir.Robust) and p.requirement.dataset is not None]
        if not props:
            raise UsageError(f"{args.spec} has no robustness property over a data set to train on")
        targets = {p.target for p in props}
        if len(targets) != 1:
            raise UsageError(f"the properties are about several networks ({', '.join(sorted(targets))}): "
                             "choose them with --property")
        network = loaded.network(props[0].target)
        first = props[0].requirement
        assert isinstance(first, ir.Robust)
        assert first.dataset is not None
        source = {d.name: d.source for d in loaded.datasets}[first.dataset]
        x, labels = load_dataset(training_source(source))
        if x.shape[1] != network.n_inputs or int(labels.max()) >= network.n_outputs:
            raise UsageError(f"data set {source!r} does not fit network {network.name}")
        eps = args.eps if args.eps is not None else _training_eps(loaded, props, network)
        options = TrainOptions(eps=eps, epochs=args.epochs, loss=args.loss, seed=args.seed, lr=args.lr)
        net = dense_model(network.n_inputs, network.n_outputs, args.width, args.depth, chord=args.layer == "chord")
        history = train(net, x, labels, options, progress=sys.stderr.isatty())
        write_output(args.output, "-o", lambda p: save_lipschitz(net, p))
        test_x, test_labels = load_dataset(source)
        cert = certify(net, test_x, eps)
        acc = float((cert.prediction == test_labels).float().mean())
        vra = float(cert.contains(test_labels).float().mean())
        print(f"wrote {printable(args.output)}: trained on {training_source(source)} ({len(x)} samples, eps {eps:g} l2, "
              f"loss {args.loss}, final loss {history[-1]:.4f}); on {source}: clean accuracy {100 * acc:.1f}%, "
              f"VRA at eps {eps:g} {100 * vra:.1f}%")
    return 0


def add_commands(sub: Any, count: Any, threads_help: str) -> None:
    """Add `certify` and `train` to the CLI's subparsers (count: the CLI's positive-integer argument type)."""
    cert = sub.add_parser(
        "certify", help="certify robustness properties with the Lipschitz (GloRo) certifier",
        description="Certify each robustness property (or those named) over its data set or points: clean "
        "accuracy, verified robust accuracy, rejection rate and per-input certified radii. Sound for the "
        "float32 model (see checkers.lipschitz.certify). Exit 0, or 2 for a user error.",
    )
    cert.add_argument("spec", metavar="SPEC", help="a .prop file")
    cert.add_argument("--model", action="append", required=True, metavar="[NAME=]PATH",
                      help="the model of network NAME (.pt/.pth/.onnx); NAME= may be left out with one network")
    cert.add_argument("--property", action="append", metavar="NAME", help="certify only this property (repeatable)")
    cert.add_argument("--radii", action="store_true", help="print every input's prediction and certified radius")
    cert.add_argument("--plot", metavar="OUT.png", help="plot VRA against eps (needs matplotlib: certspec[plot])")
    cert.add_argument("--threads", type=count, default=1, metavar="N", help=threads_help)
    cert.add_argument("--json", action="store_true", help="print one JSON list of results and nothing else")
    cert.add_argument("--method", choices=("gloro", "fgp"), default="gloro",
                      help="gloro: Lipschitz certificates (default); fgp: fast geometric projections for ReLU "
                      "networks (local robustness: robust / not robust with a witness / unknown / timeout per point)")
    cert.add_argument("--timeout", type=_positive, default=2.0, metavar="SECONDS",
                      help="fgp: time limit per point (default 2)")
    cert.add_argument("--lower-bound", action="store_true", help="fgp: search for the largest certified radius up to eps")
    cert.add_argument("--device", default="cpu", help="fgp: torch device (cpu, cuda; default cpu)")
    cert.set_defaults(run=certify_command)
    tr = sub.add_parser(
        "train", help="train a certifiably robust model on the spec's data set",
        description="Train a LipschitzNet (CHORD or Linear layers, MinMax activations) with a GloRo-family "
        "loss on the training split of the data set the robustness properties name, and write a checkpoint.",
    )
    tr.add_argument("spec", metavar="SPEC", help="a .prop file with robustness properties over a data set")
    tr.add_argument("-o", "--output", required=True, metavar="OUT.pt", help="the checkpoint to write")
    tr.add_argument("--property", action="append", metavar="NAME", help="train for these properties (repeatable)")
    tr.add_argument("--eps", type=_nonnegative, default=None, help="l2 training eps (default: the largest of the properties)")
    tr.add_argument("--epochs", type=count, default=200, metavar="N", help="epochs (default 200)")
    tr.add_argument("--loss", choices=("gloro", "trades", "emma"), default="gloro", help="default gloro")
    tr.add_argument("--layer", choices=("chord", "linear"), default="chord", help="dense layer kind (default chord)")
    tr.add_argument("--width", type=count, default=128, help="hidden width, even (default 128)")
    tr.add_argument("--depth", type=count, default=3, help="hidden layers (default 3)")
    tr.add_argument("--lr", type=_positive, default=3e-3, help="peak learning rate (default 0.003)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    tr.add_argument("--threads", type=count, default=1, metavar="N", help=threads_help)
    tr.set_defaults(run=train_command)


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"eps must be a finite number >= 0, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value

