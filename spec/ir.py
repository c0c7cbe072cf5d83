"""The property IR: what every back end reads.

All numbers are in the network's *normalised* units (the `normalize` block has been
applied). Input indices are flat (row-major over the input shape); output indices are
positions in the score vector.

Regions are a DNF: `Region.parts` are or-ed; each `RegionPart` is a box, and-ed with
half-spaces and, optionally, a condition on the network's own prediction. Requirements
are either an `Ordering` (a DNF of `Order` and `Linear` atoms, strictness kept) or a
`Robust` property. The closed set of node kinds is `REGION_KINDS`, `ATOM_KINDS` and
`REQUIREMENT_KINDS`; `validate` checks every invariant after lowering and in tests.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass

from spec.errors import IRError


class Decide(enum.Enum):
    """How a prediction is read off the scores."""

    ARGMAX = "argmax"
    ARGMIN = "argmin"


class Norm(enum.Enum):
    """The norm of a robustness ball."""

    L2 = "l2"
    LINF = "linf"


class EnsembleKind(enum.Enum):
    CASCADE = "cascade"
    VOTE = "vote"
    SELECTIVE = "selective"


def _num(value: float) -> str:
    return repr(float(value))


@dataclass(frozen=True)
class Box:
    """lower[i] <= x[i] <= upper[i]; a strict flag makes that side `<`. Bounds may be +-inf."""

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    lower_strict: tuple[bool, ...]
    upper_strict: tuple[bool, ...]

    @staticmethod
    def unbounded(n: int) -> Box:
        return Box((-math.inf,) * n, (math.inf,) * n, (False,) * n, (False,) * n)

    def is_empty(self) -> bool:
        return any(
            lo > hi or (lo == hi and (ls or us))
            for lo, hi, ls, us in zip(
                self.lower, self.upper, self.lower_strict, self.upper_strict, strict=True
            )
        )

    def intersect(self, other: Box) -> Box:
        """The box of points in both; at equal bounds a strict side wins."""
        lower, ls = [], []
        for a, sa, b, sb in zip(self.lower, self.lower_strict, other.lower, other.lower_strict, strict=True):
            if a > b or (a == b and sa):
                lower.append(a)
                ls.append(sa)
            else:
                lower.append(b)
                ls.append(sb)
        upper, us = [], []
        for a, sa, b, sb in zip(self.upper, self.upper_strict, other.upper, other.upper_strict, strict=True):
            if a < b or (a == b and sa):
                upper.append(a)
                us.append(sa)
            else:
                upper.append(b)
                us.append(sb)
        return Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))

    def contains(self, point: tuple[float, ...] | list[float]) -> bool:
        for v, lo, hi, ls, us in zip(
            point, self.lower, self.upper, self.lower_strict, self.upper_strict, strict=True
        ):
            if v < lo or v > hi or (ls and v == lo) or (us and v == hi):
                return False
        return True


@dataclass(frozen=True)
class HalfSpace:
    """sum(c * x[i] for i, c in coeffs) <= bound (`<` when strict); two or more terms."""

    coeffs: tuple[tuple[int, float], ...]
    bound: float
    strict: bool

    def holds(self, point: tuple[float, ...] | list[float]) -> bool:
        value = sum(c * point[i] for i, c in self.coeffs)
        return value < self.bound if self.strict else value <= self.bound


@dataclass(frozen=True)
class RegionPart:
    """One disjunct of a region: a box, and half-spaces, and the prediction in `predicted`.

    `predicted` is None when the prediction is unconstrained; otherwise the sorted labels
    the ORIGINAL prediction must be one of.
    """

    box: Box
    halfspaces: tuple[HalfSpace, ...] = ()
    predicted: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Region:
    """The union of its parts."""

    parts: tuple[RegionPart, ...]


@dataclass(frozen=True)
class Order:
    """y[hi] > y[lo] (strict) or y[hi] >= y[lo]: a raw score comparison."""

    hi: int
    lo: int
    strict: bool


@dataclass(frozen=True)
class Linear:
    """sum(c * y[i] for i, c in coeffs) < bound (strict) or <= bound.

    Never of the form y[a] - y[b] against 0 (that is an `Order`).
    """

    coeffs: tuple[tuple[int, float], ...]
    bound: float
    strict: bool


Atom = Order | Linear


@dataclass(frozen=True)
class Ordering:
    """A requirement on the scores: a DNF, `disjuncts` or-ed, each a tuple of and-ed atoms.

    The empty DNF is false; a DNF holding one empty conjunction is true.
    """

    disjuncts: tuple[tuple[Atom, ...], ...]


@dataclass(frozen=True)
class Local:
    """The prediction does not change inside the ball."""


@dataclass(frozen=True)
class TopK:
    """Relaxed top-k: some top-j set, j <= k, is the same everywhere in the ball."""

    k: int


@dataclass(frozen=True)
class Affinity:
    """The prediction may move only inside one affinity set (disjoint label sets)."""

    sets: tuple[tuple[int, ...], ...]


RobustKind = Local | TopK | Affinity


@dataclass(frozen=True)
class Robust:
    """Robustness of the prediction in a `norm` ball of radius `eps` (normalised units).

    The centres are `points` (normalised), or the inputs of the data set `dataset`.
    """

    kind: RobustKind
    eps: float
    norm: Norm
    points: tuple[tuple[float, ...], ...] = ()
    dataset: str | None = None


Requirement = Ordering | Robust


@dataclass(frozen=True)
class Normalization:
    """normalised = (raw - mean) / range, per coordinate."""

    mean: tuple[float, ...]
    range: tuple[float, ...]

    @staticmethod
    def identity(n: int) -> Normalization:
        return Normalization((0.0,) * n, (1.0,) * n)

    def to_raw(self, values: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(v * r + m for v, m, r in zip(values, self.mean, self.range, strict=True))


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    labels: tuple[str, ...]
    input_names: tuple[str, ...]
    domain: Box
    decide: Decide = Decide.ARGMAX
    input_norm: Normalization | None = None
    output_norm: Normalization | None = None

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        return math.prod(self.output_shape)


@dataclass(frozen=True)
class Ensemble:
    name: str
    kind: EnsembleKind
    members: tuple[str, ...]
    weights: tuple[float, ...]
    alpha: float | None = None


@dataclass(frozen=True)
class Dataset:
    """A data set named in the spec; `source` is resolved by the CLI or API."""

    name: str
    source: str


@dataclass(frozen=True)
class Property:
    name: str
    target: str
    region: Region
    requirement: Requirement
    description: str | None = None


@dataclass(frozen=True)
class Spec:
    networks: tuple[Network, ...] = ()
    ensembles: tuple[Ensemble, ...] = ()
    datasets: tuple[Dataset, ...] = ()
    properties: tuple[Property, ...] = ()

    def network(self, name: str) -> Network:
        """The network `name`, or for an ensemble its first member."""
        for net in self.networks:
            if net.name == name:
                return net
        for ens in self.ensembles:
            if ens.name == name:
                return self.network(ens.members[0])
        raise IRError(f"no network or ensemble named {name!r}")

    def property(self, name: str) -> Property:
        for prop in self.properties:
            if prop.name == name:
                return prop
        raise IRError(f"no property named {name!r}")


REGION_KINDS = (Box, HalfSpace, RegionPart, Region)
ATOM_KINDS = (Order, Linear)
REQUIREMENT_KINDS = (Ordering, Robust)
ROBUST_KINDS = (Local, TopK, Affinity)


# ---------------------------------------------------------------- validation


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise IRError(message)


def _finite(value: float, what: str) -> None:
    _check(math.isfinite(value), f"{what}={value!r} must be finite")


def _validate_box(box: Box, n: int, where: str) -> None:
    for field in (box.lower, box.upper, box.lower_strict, box.upper_strict):
        _check(len(field) == n, f"{where}: box has {len(field)} coordinates, expected {n}")
    _check(not any(math.isnan(v) for v in (*box.lower, *box.upper)), f"{where}: NaN bound")
    _check(math.inf not in box.lower and -math.inf not in box.upper, f"{where}: an infinite bound is on the wrong side")


def _validate_coeffs(coeffs: tuple[tuple[int, float], ...], n: int, where: str) -> None:
    indices = [i for i, _ in coeffs]
    _check(indices == sorted(set(indices)), f"{where}: coefficients must be sorted and unique")
    for i, c in coeffs:
        _check(0 <= i < n, f"{where}: index {i} out of range 0..{n - 1}")
        _finite(c, f"{where}: coefficient")
        _check(c != 0.0, f"{where}: zero coefficient")


def _validate_region(region: Region, net: Network, where: str) -> None:
    _check(len(region.parts) > 0, f"{where}: empty region")
    for part in region.parts:
        _validate_box(part.box, net.n_inputs, where)
        for h in part.halfspaces:
            _validate_coeffs(h.coeffs, net.n_inputs, where)
            _check(len(h.coeffs) >= 2, f"{where}: a one-term half-space must be a box bound")
            _finite(h.bound, f"{where}: half-space bound")
        if part.predicted is not None:
            labels = part.predicted
            _check(list(labels) == sorted(set(labels)), f"{where}: predicted labels unsorted")
            _check(all(0 <= i < net.n_outputs for i in labels), f"{where}: predicted label out of range")


def _validate_atom(atom: Atom, m: int, where: str) -> None:
    if isinstance(atom, Order):
        _check(0 <= atom.hi < m and 0 <= atom.lo < m, f"{where}: output index out of range")
        _check(atom.hi != atom.lo, f"{where}: an output compared with itself")
    else:
        _validate_coeffs(atom.coeffs, m, where)
        _finite(atom.bound, f"{where}: bound")


def _validate_robust(req: Robust, net: Network, where: str) -> None:
    _check(math.isfinite(req.eps) and req.eps > 0, f"{where}: eps={req.eps!r} must be > 0")
    _check((req.dataset is None) != (len(req.points) == 0), f"{where}: give points or a data set")
    for p in req.points:
        _check(len(p) == net.n_inputs, f"{where}: point has {len(p)} values, expected {net.n_inputs}")
    kind = req.kind
    if isinstance(kind, TopK):
        _check(1 <= kind.k < net.n_outputs, f"{where}: k={kind.k} must be in 1..{net.n_outputs - 1}")
    elif isinstance(kind, Affinity):
        seen: set[int] = set()
        for s in kind.sets:
            _check(len(s) > 0, f"{where}: empty affinity set")
            for i in s:
                _check(0 <= i < net.n_outputs, f"{where}: label index {i} out of range")
                _check(i not in seen, f"{where}: label {i} in two affinity sets")
                seen.add(i)


def validate(spec: Spec) -> Spec:
    """Check every invariant of the IR; raise IRError on the first broken one."""
    names = [
        *(n.name for n in spec.networks),
        *(e.name for e in spec.ensembles),
        *(d.name for d in spec.datasets),
        *(p.name for p in spec.properties),
    ]
    _check(len(names) == len(set(names)), "duplicate names in the spec")
    nets = {n.name: n for n in spec.networks}
    for net in spec.networks:
        _check(len(net.labels) == net.n_outputs, f"network {net.name}: wrong number of labels")
        _check(len(net.input_names) == net.n_inputs, f"network {net.name}: wrong number of input names")
        _validate_box(net.domain, net.n_inputs, f"network {net.name}")
        for norm, n in ((net.input_norm, net.n_inputs), (net.output_norm, net.n_outputs)):
            if norm is not None:
                _check(len(norm.mean) == n and len(norm.range) == n, f"network {net.name}: normalisation size")
                _check(all(r > 0 and math.isfinite(r) for r in norm.range), f"network {net.name}: range must be > 0")
    for ens in spec.ensembles:
        _check(len(ens.members) >= 2, f"ensemble {ens.name}: needs two or more members")
        _check(all(m in nets for m in ens.members), f"ensemble {ens.name}: unknown member")
        _check(len(ens.weights) == len(ens.members), f"ensemble {ens.name}: one weight per member")
        _check(all(w > 0 and math.isfinite(w) for w in ens.weights), f"ensemble {ens.name}: weights must be > 0")
        if ens.kind is EnsembleKind.SELECTIVE:
            _check(ens.alpha is not None and 0 < ens.alpha < 1, f"ensemble {ens.name}: alpha must be in (0, 1)")
    datasets = {d.name for d in spec.datasets}
    for prop in spec.properties:
        where = f"property {prop.name}"
        _check(prop.target in nets or any(e.name == prop.target for e in spec.ensembles), f"{where}: unknown target")
        net = spec.network(prop.target)
        _validate_region(prop.region, net, where)
        req = prop.requirement
        if isinstance(req, Ordering):
            for conj in req.disjuncts:
                for atom in conj:
                    _validate_atom(atom, net.n_outputs, where)
        else:
            _validate_robust(req, net, where)
            _check(req.dataset is None or req.dataset in datasets, f"{where}: unknown data set")
    return spec


# ---------------------------------------------------------------- printing


def _terms(coeffs: tuple[tuple[int, float], ...], var: str) -> str:
    return " + ".join(f"{_num(c)}*{var}[{i}]" for i, c in coeffs)


def atom_str(atom: Atom) -> str:
    if isinstance(atom, Order):
        return f"y[{atom.hi}] {'>' if atom.strict else '>='} y[{atom.lo}]"
    return f"{_terms(atom.coeffs, 'y')} {'<' if atom.strict else '<='} {_num(atom.bound)}"


def _bracket(lo: float, hi: float, ls: bool, us: bool) -> str:
    return f"{'(' if ls else '['}{_num(lo)}, {_num(hi)}{')' if us else ']'}"


def part_lines(part: RegionPart) -> Iterator[str]:
    b = part.box
    for i in range(len(b.lower)):
        if b.lower[i] != -math.inf or b.upper[i] != math.inf:
            yield f"x[{i}] in {_bracket(b.lower[i], b.upper[i], b.lower_strict[i], b.upper_strict[i])}"
    for h in part.halfspaces:
        yield f"{_terms(h.coeffs, 'x')} {'<' if h.strict else '<='} {_num(h.bound)}"
    if part.predicted is not None:
        yield f"predicted in {{{', '.join(str(i) for i in part.predicted)}}}"


def requirement_str(req: Requirement) -> str:
    if isinstance(req, Ordering):
        if not req.disjuncts:
            return "false"
        return "\n    or ".join(
            " and ".join(atom_str(a) for a in conj) if conj else "true" for conj in req.disjuncts
        )
    kind = req.kind
    what = (
        "local"
        if isinstance(kind, Local)
        else f"top {kind.k}"
        if isinstance(kind, TopK)
        else "within " + ", ".join("{" + ", ".join(map(str, s)) + "}" for s in kind.sets)
    )
    centres = f"over {req.dataset}" if req.dataset else f"at {len(req.points)} point(s)"
    return f"robust {what} eps {_num(req.eps)} norm {req.norm.value} {centres}"


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def spec_str(spec: Spec) -> str:
    """A stable, human-readable dump of the IR (normalised units, flat indices)."""
    out: list[str] = []
    for net in spec.networks:
        dims_in, dims_out = _dims(net.input_shape), _dims(net.output_shape)
        out.append(f"network {net.name}: real[{dims_in}] -> real[{dims_out}] {net.decide.value}")
        out.append(f"  labels {', '.join(net.labels)}")
        out.append(f"  inputs {', '.join(net.input_names)}")
        domain = list(part_lines(RegionPart(net.domain)))
        out.append(f"  domain {' and '.join(domain) if domain else 'unbounded'}")
        for which, norm in (("inputs", net.input_norm), ("outputs", net.output_norm)):
            if norm is not None:
                out.append(f"  normalize {which} mean {list(norm.mean)} range {list(norm.range)}")
    for ens in spec.ensembles:
        members = ", ".join(f"{m}: {_num(w)}" for m, w in zip(ens.members, ens.weights, strict=True))
        alpha = f", alpha {_num(ens.alpha)}" if ens.alpha is not None else ""
        out.append(f"ensemble {ens.name} = {ens.kind.value}({members}{alpha})")
    for ds in spec.datasets:
        out.append(f"dataset {ds.name} = {ds.source}")
    for prop in spec.properties:
        desc = f" {prop.description!r}" if prop.description else ""
        out.append(f"property {prop.name} for {prop.target}{desc}:")
        for k, part in enumerate(prop.region.parts):
            lines = list(part_lines(part)) or ["everywhere"]
            out.append(f"  {'when' if k == 0 else '  or'} " + " and ".join(lines))
        out.append(f"  require {requirement_str(prop.requirement)}")
    return "\n".join(out) + "\n"
