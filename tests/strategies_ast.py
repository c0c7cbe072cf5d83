"""Hypothesis strategies for ASTs of the property language (spec/syntax.py).

Every strategy generates only ASTs that the grammar can express (grammars/properties.lark):
numbers are finite and non-negative (a minus sign is a `Neg`), names are identifiers that
are not reserved words, lists the grammar writes as `x ("," x)*` have at least one item.
The ASTs are purely syntactic: they need not pass `spec.lower`.
"""

from __future__ import annotations

from hypothesis import strategies as st

from spec import syntax as s
from spec.parser import keywords

_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_REST = _FIRST + "0123456789"

# Short names hit keywords and near-keywords (`in`, `is`, `at`, `inx`, `l2`...) often.
names = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_FIRST),
    st.text(_REST, max_size=6),
).filter(lambda n: n not in keywords())

dims = st.integers(min_value=0, max_value=10**30)
small_ints = st.integers(min_value=0, max_value=10**30)

numbers = st.builds(
    s.Number,
    st.one_of(
        st.floats(min_value=0.0, allow_nan=False, allow_infinity=False).map(abs),
        st.integers(min_value=0, max_value=1000).map(float),
    ),
)
name_exprs = st.builds(s.Name, names)
indices = st.builds(s.Index, names, st.one_of(st.none(), small_ints))

exprs = st.recursive(
    st.one_of(numbers, name_exprs, indices),
    lambda inner: st.one_of(
        st.builds(s.Neg, inner),
        st.builds(s.BinOp, st.just("*"), inner, inner),
        st.builds(s.Sum, inner, st.lists(st.tuples(st.sampled_from(["+", "-"]), inner), min_size=1, max_size=4).map(tuple)),
    ),
    max_leaves=8,
)


def tuples(elements: st.SearchStrategy, min_size: int = 1, max_size: int = 3) -> st.SearchStrategy:
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


vectors = st.builds(s.Vector, tuples(exprs, max_size=4))

# ---------------------------------------------------------------- conditions

intervals = st.builds(s.Interval, exprs, exprs, exprs, st.booleans(), st.booleans())

atoms = st.one_of(
    st.builds(s.Compare, st.sampled_from(["<", "<=", ">", ">="]), exprs, exprs),
    intervals,
    st.builds(s.Predicted, tuples(exprs)),
    st.builds(s.Rank, st.sampled_from(["above", "below"]), exprs, tuples(exprs)),
    st.builds(s.Position, st.sampled_from(["first", "last"]), st.booleans(), exprs),
)

conds = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.builds(s.And, inner, inner),
        st.builds(s.Or, inner, inner),
        st.builds(s.Not, inner),
    ),
    max_leaves=6,
)

# ---------------------------------------------------------------- declarations

values = st.one_of(exprs, vectors)

clauses = st.one_of(
    st.builds(s.Labels, tuples(name_exprs, max_size=4)),
    st.builds(s.Inputs, tuples(name_exprs, max_size=4)),
    st.builds(s.Domain, tuples(intervals)),
    st.builds(s.Normalize, st.sampled_from(["inputs", "outputs"]), values, values),
    st.builds(s.DecideRule, st.sampled_from(["argmax", "argmin"])),
)

networks = st.builds(
    s.NetworkDecl, names, tuples(dims), tuples(dims), tuples(clauses, min_size=0, max_size=5)
)
consts = st.builds(s.ConstDecl, names, exprs)
datasets = st.builds(s.DatasetDecl, names, names)

members = st.one_of(
    st.builds(s.Member, names, st.none()),
    st.builds(s.Member, names, exprs),
    st.builds(s.Alpha, exprs),
)
ensembles = st.builds(
    s.EnsembleDecl, names, st.sampled_from(["cascade", "vote", "selective"]), tuples(members, max_size=4)
)

orderings = st.builds(s.OrderingBody, st.one_of(st.none(), conds), conds)


@st.composite
def robust_bodies(draw: st.DrawFn) -> s.RobustBody:
    kind = draw(st.sampled_from(["local", "top", "within"]))
    k = draw(small_ints) if kind == "top" else None
    sets = draw(tuples(tuples(exprs))) if kind == "within" else ()
    if draw(st.booleans()):
        points, dataset = draw(tuples(vectors)), None
    else:
        points, dataset = (), draw(name_exprs)
    return s.RobustBody(kind, draw(exprs), draw(st.sampled_from(["l2", "linf"])), k, sets, points, dataset)


# Descriptions: any text without a newline, quotes and backslashes included.
descriptions = st.one_of(
    st.none(),
    st.text(st.characters(blacklist_characters="\n\x00", blacklist_categories=("Cs",))),
    st.text('"\\ab \t'),
)

properties = st.builds(
    s.PropertyDecl,
    names,
    st.one_of(orderings, robust_bodies()),
    descriptions,
    st.one_of(st.none(), name_exprs),
)

items = st.one_of(networks, consts, datasets, ensembles, properties)
modules = st.builds(s.Module, tuples(items, min_size=0, max_size=5))
