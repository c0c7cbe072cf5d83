"""The semantic pass: a parsed module is checked and lowered to the IR in one walk.

Every user mistake raises a SpecError subclass with the span of the offending text:
unknown names (with a suggestion), duplicates, reserved words, indices out of range,
empty intervals, eps <= 0, k out of range, a label in two affinity sets, a region that is
empty once normalised and clipped to the domain.
"""

from __future__ import annotations

import dataclasses
import math

from spec import canon
from spec import syntax as s
from spec.conditions import every_input, interval_subjects, label_index, region_parts, requirement_dnf
from spec.errors import CheckError, ScopeError, Span, did_you_mean
from spec.ir import (
    Affinity,
    Box,
    Dataset,
    Decide,
    Ensemble,
    EnsembleKind,
    Local,
    Network,
    Normalization,
    Property,
    Region,
    RegionPart,
    Robust,
    RobustKind,
    Spec,
    TopK,
    Norm,
    validate,
)
from spec.linear import Scope, constant
from spec.parser import keywords

MAX_INPUTS = 1 << 22  # inputs of one network (3x224x224 images are 150,528); CERTSPEC_MAX_INPUTS overrides
MAX_OUTPUTS = 1 << 20  # outputs of one network; CERTSPEC_MAX_OUTPUTS overrides


def _declared_names(module: s.Module) -> None:
    seen: dict[str, s.Item] = {}
    reserved = keywords()
    for item in module.items:
        if item.name in reserved:
            raise ScopeError(f"{item.name!r} is a reserved word and cannot name a declaration", item.span)
        if item.name in seen:
            first = seen[item.name].span
            raise ScopeError(f"{item.name!r} is already declared at line {first.line}", item.span)
        seen[item.name] = item


def _constants(module: s.Module) -> dict[str, float]:
    consts: dict[str, float] = {}
    declared = {item.name: item for item in module.items if isinstance(item, s.ConstDecl)}
    for item in module.items:
        if isinstance(item, s.ConstDecl):
            _used_before_definition(item.value, consts, declared)
            consts[item.name] = constant(item.value, Scope(dict(consts)), "constant")
    return consts


def _used_before_definition(e: s.Expr, consts: dict[str, float], declared: dict[str, s.ConstDecl]) -> None:
    """A constant may use only the constants above it: name a later one precisely."""
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, s.Name) and node.name not in consts and node.name in declared:
            line = declared[node.name].span.line
            raise ScopeError(f"constant {node.name!r} is used before its definition at line {line}", node.span)
        if isinstance(node, s.Neg):
            stack.append(node.operand)
        elif isinstance(node, s.BinOp):
            stack += [node.right, node.left]
        elif isinstance(node, s.Sum):
            stack += [term for _, term in reversed(node.rest)] + [node.first]


def _vector(v: s.Expr | s.Vector, n: int, scope: Scope, what: str) -> tuple[float, ...]:
    if isinstance(v, s.Vector):
        if len(v.items) != n:
            raise CheckError(f"{what} has {len(v.items)} value{'s' * (len(v.items) != 1)}; expected {n}", v.span)
        return tuple(constant(e, scope, what.removeprefix("the ")) for e in v.items)
    return (constant(v, scope, what.removeprefix("the ")),) * n


def _names(names: tuple[s.Name, ...], n: int, what: str, span: Span, consts: dict[str, float]) -> dict[str, int]:
    if len(names) != n:
        given = "labels" if what == "labels" else "input names"
        raise CheckError(f"{len(names)} {given} given for {n} {'outputs' if what == 'labels' else 'inputs'}", span)
    out: dict[str, int] = {}
    reserved = keywords()
    for i, name in enumerate(names):
        if name.name in reserved:
            raise ScopeError(f"{name.name!r} is a reserved word", name.span)
        if name.name in out:
            raise ScopeError(f"{what[:-1]} {name.name!r} is given twice", name.span)
        if name.name in consts:
            raise ScopeError(f"{name.name!r} is both a constant and one of the {what}", name.span)
        out[name.name] = i
    return out


def _check_shape(decl: s.NetworkDecl, dims: tuple[int, ...], span: Span | None, what: str, limit: int) -> None:
    """Every dimension is at least 1 and the size at most `limit`, checked before anything
    of that size is built (the size is multiplied out only up to the limit)."""
    where = span or decl.span
    if any(d < 1 for d in dims):
        raise CheckError(f"every dimension must be at least 1, got {list(dims)}", where)
    size = 1
    for d in dims:
        size *= d
        if size > limit:
            break
    else:
        return
    exact = math.prod(dims) if len(dims) <= 32 else None  # each dimension has at most 100 digits
    shown = f"{exact} {what}" if exact is not None and exact < 10**30 else f"more than 10**30 {what}"
    name = f"MAX_{what.upper()}"
    raise CheckError(
        f"network {decl.name} has {shown}, more than {name} = {limit}: "
        f"set the environment variable CERTSPEC_{name} to raise the limit",
        where,
    )


class _NetworkBuilder:
    """Lowers one network declaration; keeps the scope its properties use."""

    def __init__(self, decl: s.NetworkDecl, consts: dict[str, float]) -> None:
        self.decl = decl
        _check_shape(decl, decl.input_shape, decl.input_span, "inputs", canon.size_limit("MAX_INPUTS", MAX_INPUTS))
        _check_shape(decl, decl.output_shape, decl.output_span, "outputs", canon.size_limit("MAX_OUTPUTS", MAX_OUTPUTS))
        n, m = math.prod(decl.input_shape), math.prod(decl.output_shape)
        self.scope = Scope(consts, decl.name, n_inputs=n, n_outputs=m)
        clauses: dict[type, s.Clause] = {}
        for c in decl.clauses:
            key: object = (type(c), c.which) if isinstance(c, s.Normalize) else type(c)
            if key in clauses:
                raise CheckError(f"this clause is given twice in network {decl.name}", c.span)
            clauses[key] = c  # type: ignore[index]
        self.clauses = clauses

    def _clause(self, key: object) -> s.Clause | None:
        return self.clauses.get(key)  # type: ignore[call-overload,no-any-return]

    def _norm(self, which: str, size: int) -> Normalization | None:
        c = self._clause((s.Normalize, which))
        if not isinstance(c, s.Normalize):
            return None
        mean = _vector(c.mean, size, self.scope, f"the {which} mean")
        rng = _vector(c.range, size, self.scope, f"the {which} range")
        for r in rng:
            if not r > 0:
                raise CheckError(f"range={r!r} must be > 0", c.range.span)
        return Normalization(mean, rng)

    def build(self) -> Network:
        sc, decl = self.scope, self.decl
        labels, inputs = self._clause(s.Labels), self._clause(s.Inputs)
        if isinstance(labels, s.Labels):
            sc.labels = _names(labels.names, sc.n_outputs, "labels", labels.span, sc.consts)
        if isinstance(inputs, s.Inputs):
            sc.inputs = _names(inputs.names, sc.n_inputs, "inputs", inputs.span, sc.consts)
            clash = next((x for x in inputs.names if x.name in sc.labels), None)
            if clash is not None:
                raise ScopeError(f"{clash.name!r} is both an input and a label", clash.span)
        decide = self._clause(s.DecideRule)
        rule = Decide(decide.rule) if isinstance(decide, s.DecideRule) else Decide.ARGMAX
        partial = Network(
            decl.name, decl.input_shape, decl.output_shape,
            tuple(labels_of(sc.labels, sc.n_outputs, "y")), tuple(labels_of(sc.inputs, sc.n_inputs, "x")),
            Box.unbounded(sc.n_inputs), rule, self._norm("inputs", sc.n_inputs), self._norm("outputs", sc.n_outputs),
        )
        return dataclasses.replace(partial, domain=self._domain(partial))

    def _domain(self, net: Network) -> Box:
        domain = self._clause(s.Domain)
        box = Box.unbounded(net.n_inputs)
        if not isinstance(domain, s.Domain):
            return box
        for interval in domain.intervals:
            for subject in () if every_input(interval) else interval_subjects(interval, self.scope):
                if (
                    subject.kinds() != {"x"}
                    or len(subject.coeffs) != 1
                    or next(iter(subject.coeffs.values())) != 1.0
                    or subject.const
                ):
                    raise CheckError("a domain interval must bound one input", interval.span)
            (part,) = region_parts(interval, self.scope, net)
            box = box.intersect(part.box)
            if box.is_empty():
                raise CheckError("the domain is empty", interval.span)
        return box


def labels_of(names: dict[str, int], n: int, var: str) -> list[str]:
    out = [f"{var}[{i}]" for i in range(n)]
    for name, i in names.items():
        out[i] = name
    return out


def _ensemble(decl: s.EnsembleDecl, nets: dict[str, Network], ensembles: set[str], consts: dict[str, float]) -> Ensemble:
    scope = Scope(consts)
    members = [m for m in decl.members if isinstance(m, s.Member)]
    alphas = [m for m in decl.members if isinstance(m, s.Alpha)]
    for m in members:
        if m.name in ensembles:
            raise CheckError(f"{m.name!r} is an ensemble; the members of an ensemble must be networks", m.span)
        if m.name not in nets:
            raise ScopeError(f"unknown network {m.name!r}{did_you_mean(m.name, nets)}", m.span)
        if m.weight is not None and decl.kind != "vote":
            raise CheckError(f"weights are only for vote ensembles, not {decl.kind}", m.weight.span)
    if len(members) < 2:
        raise CheckError(f"ensemble {decl.name} needs at least two members", decl.span)
    names = [m.name for m in members]
    for i, m in enumerate(members):
        if m.name in names[:i]:
            raise CheckError(f"network {m.name!r} is a member twice", m.span)
        first, this = nets[names[0]], nets[m.name]
        if (first.input_shape, first.output_shape) != (this.input_shape, this.output_shape):
            raise CheckError(f"network {m.name!r} does not have the shapes of {names[0]!r}", m.span)
    weighted = [m.weight is not None for m in members]
    if any(weighted) and not all(weighted):
        raise CheckError("give a weight to every member or to none", decl.span)
    weights = tuple(constant(m.weight, scope, "weight") if m.weight is not None else 1.0 for m in members)
    for m, w in zip(members, weights, strict=True):
        if not (w > 0 and math.isfinite(w)):
            raise CheckError(f"weight={w!r} must be > 0", m.span)
    alpha = _alpha(decl, alphas, scope)
    return Ensemble(decl.name, EnsembleKind(decl.kind), tuple(names), weights, alpha)


def _alpha(decl: s.EnsembleDecl, alphas: list[s.Alpha], scope: Scope) -> float | None:
    if decl.kind != "selective":
        if alphas:
            raise CheckError(f"alpha is only for selective ensembles, not {decl.kind}", alphas[0].span)
        return None
    if len(alphas) != 1 or decl.members[-1] is not alphas[0]:
        raise CheckError("a selective ensemble takes one `alpha VALUE`, after its members", decl.span)
    alpha = constant(alphas[0].value, scope, "alpha")
    if not 0 < alpha < 1:
        raise CheckError(f"alpha={alpha!r} must be in (0, 1)", alphas[0].span)
    return alpha


class _Lowering:
    def __init__(self, module: s.Module) -> None:
        _declared_names(module)
        self.consts = _constants(module)
        self.nets: dict[str, Network] = {}
        self.scopes: dict[str, Scope] = {}
        self.ensembles: dict[str, Ensemble] = {}
        self.datasets = {i.name: Dataset(i.name, i.source) for i in module.items if isinstance(i, s.DatasetDecl)}
        self.properties: list[Property] = []
        self.module = module
        self.coordinates = 0  # box coordinates held so far: a domain per network, a box per region part

    def _hold(self, count: int, span: Span) -> None:
        """Count `count` more box coordinates against MAX_COORDINATES (a file of 50 bytes per
        property must not hold a box of millions of inputs per property beyond the limit)."""
        limit = canon.size_limit("MAX_COORDINATES", canon.MAX_COORDINATES)
        self.coordinates += count
        if self.coordinates > limit:
            raise CheckError(
                f"the networks and regions of this file hold more than MAX_COORDINATES = {limit} box "
                "coordinates in all (inputs times region parts): set the environment variable "
                "CERTSPEC_MAX_COORDINATES to raise the limit",
                span,
            )

    def run(self) -> Spec:
        ens_names = {i.name for i in self.module.items if isinstance(i, s.EnsembleDecl)}
        for item in self.module.items:
            if isinstance(item, s.NetworkDecl):
                builder = _NetworkBuilder(item, self.consts)
                self._hold(builder.scope.n_inputs, item.input_span or item.span)
                self.nets[item.name] = builder.build()
                self.scopes[item.name] = builder.scope
        last_net: str | None = None
        for item in self.module.items:
            if isinstance(item, s.NetworkDecl):
                last_net = item.name
            elif isinstance(item, s.EnsembleDecl):
                self.ensembles[item.name] = _ensemble(item, self.nets, ens_names, self.consts)
            elif isinstance(item, s.PropertyDecl):
                self.properties.append(self._property(item, last_net))
        nets, ensembles, datasets = self.nets.values(), self.ensembles.values(), self.datasets.values()
        spec = Spec(tuple(nets), tuple(ensembles), tuple(datasets), tuple(self.properties))
        return validate(spec)

    def _target(self, decl: s.PropertyDecl, last_net: str | None) -> tuple[str, str]:
        """The target's name and the name of the network whose scope applies."""
        if decl.target is None:
            if last_net is None:
                raise CheckError(f"property {decl.name} comes before any network: declare one or add `for NAME`", decl.span)
            return last_net, last_net
        name = decl.target.name
        if name in self.nets:
            return name, name
        ens = next((i for i in self.module.items if isinstance(i, s.EnsembleDecl) and i.name == name), None)
        if ens is None:
            known = [*self.nets, *(i.name for i in self.module.items if isinstance(i, s.EnsembleDecl))]
            raise ScopeError(f"unknown network or ensemble {name!r}{did_you_mean(name, known)}", decl.target.span)
        if name not in self.ensembles:
            raise CheckError(f"ensemble {name} is declared after this property", decl.target.span)
        return name, self.ensembles[name].members[0]

    def _property(self, decl: s.PropertyDecl, last_net: str | None) -> Property:
        target, net_name = self._target(decl, last_net)
        net, scope = self.nets[net_name], self.scopes[net_name]
        everywhere = Region((RegionPart(net.domain),))  # the domain is not empty: its box is shared, not copied
        body = decl.body
        if isinstance(body, s.RobustBody):
            return Property(decl.name, target, everywhere, self._robust(body, net, scope), decl.description)
        region = everywhere
        if body.when is not None:
            region = canon.region(region_parts(body.when, scope, net), net.domain)
            if not region.parts:
                raise CheckError(f"the region of property {decl.name} is empty in the domain of {net.name}", body.when.span)
            self._hold(len(region.parts) * net.n_inputs, body.when.span)
        requirement = canon.ordering(requirement_dnf(body.require, scope, net))
        return Property(decl.name, target, region, requirement, decl.description)

    def _robust(self, body: s.RobustBody, net: Network, scope: Scope) -> Robust:
        eps = constant(body.eps, scope, "eps")
        if not (eps > 0 and math.isfinite(eps)):
            raise CheckError(f"eps={eps!r} must be > 0", body.eps.span)
        if net.input_norm is not None:
            ranges = set(net.input_norm.range)
            if len(ranges) != 1:
                raise CheckError(
                    f"eps is in raw units, but the input ranges of {net.name} differ, so the ball is not a ball "
                    "once normalised: normalise the inputs by one range",
                    body.eps.span,
                )
            raw, rng = eps, ranges.pop()
            eps = raw / rng
            if not (eps > 0 and math.isfinite(eps)):
                raise CheckError(
                    f"eps={raw!r} is {eps!r} once divided by the input range {rng!r}: out of range", body.eps.span
                )
        kind = self._robust_kind(body, net, scope)
        points = tuple(self._point(p, net, scope) for p in body.points)
        dataset = None
        if body.dataset is not None:
            dataset = body.dataset.name
            if dataset not in self.datasets:
                raise ScopeError(f"unknown data set {dataset!r}{did_you_mean(dataset, self.datasets)}", body.dataset.span)
        return Robust(kind, eps, Norm(body.norm), points, dataset)

    def _robust_kind(self, body: s.RobustBody, net: Network, scope: Scope) -> RobustKind:
        if body.kind == "top":
            k = body.k or 0
            if not 1 <= k < net.n_outputs:
                raise CheckError(f"k={k} is out of range: top-k needs 1 <= k < {net.n_outputs} for network {net.name}", body.span)
            return TopK(k)
        if body.kind == "local":
            return Local()
        seen: set[int] = set()
        sets = []
        for labels in body.sets:
            group = []
            for e in labels:
                i = label_index(e, scope)
                if i in seen:
                    raise CheckError(f"label {net.labels[i]!r} is in two affinity sets", e.span)
                seen.add(i)
                group.append(i)
            sets.append(tuple(sorted(group)))
        return Affinity(tuple(sets))

    def _point(self, p: s.Vector, net: Network, scope: Scope) -> tuple[float, ...]:
        raw = _vector(p, net.n_inputs, scope, "the point")
        norm = net.input_norm or Normalization.identity(net.n_inputs)
        point = tuple((v - m) / r for v, m, r in zip(raw, norm.mean, norm.range, strict=True))
        if not all(math.isfinite(v) for v in point):
            raise CheckError("the point is out of range once normalised (a coordinate is not a finite float)", p.span)
        box = net.domain
        for i, v in enumerate(point):
            lo, hi, ls, us = box.lower[i], box.upper[i], box.lower_strict[i], box.upper_strict[i]
            if v < lo or v > hi or (ls and v == lo) or (us and v == hi):
                name, span = net.input_names[i], p.items[i].span
                raise CheckError(f"the point lies outside the domain of network {net.name}: {name} = {raw[i]!r}", span)
        return point


def lower(module: s.Module) -> Spec:
    """Check a parsed module and lower it to a validated IR `Spec`."""
    return _Lowering(module).run()
