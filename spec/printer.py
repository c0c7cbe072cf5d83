"""AST to canonical text: `parse(pretty(module)) == module` for every AST.

Parentheses appear exactly where the grammar's precedence needs them. Comments are not
part of the AST, so the canonical text has none.
"""

from __future__ import annotations

import math

from spec import syntax as s
from spec.parser import quote

_EXPR_LEVEL = {"*": 2}  # a Sum is level 1


def number(value: float) -> str:
    """A float literal that the grammar reads back to the same float."""
    if math.isinf(value):
        return "1e999"
    return repr(float(value))


def expr(e: s.Expr, level: int = 0) -> str:
    """Print `e`, in parentheses when its precedence is below `level`."""
    if isinstance(e, s.Number):
        return number(e.value)
    if isinstance(e, s.Name):
        return e.name
    if isinstance(e, s.Index):
        return f"{e.base}[{'*' if e.index is None else e.index}]"
    if isinstance(e, s.Neg):
        text, mine = "-" + expr(e.operand, 3), 3
    elif isinstance(e, s.Sum):
        text = expr(e.first, 2) + "".join(f" {op} {expr(term, 2)}" for op, term in e.rest)  # a Sum term: (...)
        mine = 1
    else:
        mine = _EXPR_LEVEL[e.op]
        text = f"{expr(e.left, mine)} {e.op} {expr(e.right, mine + 1)}"
    return f"({text})" if mine < level else text


def vector(v: s.Vector) -> str:
    return "[" + ", ".join(expr(i) for i in v.items) + "]"


def label_set(items: tuple[s.Expr, ...]) -> str:
    return "{" + ", ".join(expr(i) for i in items) + "}"


def value(v: s.Expr | s.Vector) -> str:
    return vector(v) if isinstance(v, s.Vector) else expr(v)


def interval(i: s.Interval) -> str:
    lo, hi = "(" if i.lower_open else "[", ")" if i.upper_open else "]"
    return f"{expr(i.subject)} in {lo}{expr(i.lower)}, {expr(i.upper)}{hi}"


def cond(c: s.Cond, level: int = 0) -> str:
    """Print a condition; levels: or 1, and 2, not 3, atoms 4."""
    if isinstance(c, s.Or):
        text, mine = f"{cond(c.left, 1)} or {cond(c.right, 2)}", 1
    elif isinstance(c, s.And):
        text, mine = f"{cond(c.left, 2)} and {cond(c.right, 3)}", 2
    elif isinstance(c, s.Not):
        text, mine = f"not {cond(c.operand, 3)}", 3
    else:
        text, mine = _atom(c), 4
    return f"({text})" if mine < level else text


def _atom(c: s.Cond) -> str:
    if isinstance(c, s.Compare):
        return f"{expr(c.left)} {c.op} {expr(c.right)}"
    if isinstance(c, s.Interval):
        return interval(c)
    if isinstance(c, s.Predicted):
        return f"predicted in {label_set(c.labels)}"
    if isinstance(c, s.Rank):
        others = expr(c.others[0]) if len(c.others) == 1 else label_set(c.others)
        return f"{expr(c.subject)} {c.relation} {others}"
    if isinstance(c, s.Position):
        return f"{expr(c.subject)} is {'not ' if c.negated else ''}{c.which}"
    raise TypeError(f"not a condition: {c!r}")


def _clause(c: s.Clause) -> str:
    if isinstance(c, s.Labels):
        return "labels " + ", ".join(n.name for n in c.names)
    if isinstance(c, s.Inputs):
        return "inputs " + ", ".join(n.name for n in c.names)
    if isinstance(c, s.Domain):
        return "domain " + ", ".join(interval(i) for i in c.intervals)
    if isinstance(c, s.Normalize):
        return f"normalize {c.which} mean {value(c.mean)} range {value(c.range)}"
    return f"decide {c.rule}"


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def _member(m: s.Member | s.Alpha) -> str:
    if isinstance(m, s.Alpha):
        return f"alpha {expr(m.value)}"
    return m.name + (f": {expr(m.weight)}" if m.weight is not None else "")


def _body(b: s.OrderingBody | s.RobustBody) -> list[str]:
    if isinstance(b, s.OrderingBody):
        lines = [f"  when {cond(b.when)}"] if b.when is not None else []
        return [*lines, f"  require {cond(b.require)}"]
    kind = {"local": "", "top": f" top {b.k}"}.get(b.kind)
    if kind is None:
        kind = " within " + ", ".join(label_set(st) for st in b.sets)
    centres = f"over {b.dataset.name}" if b.dataset is not None else "at " + ", ".join(vector(p) for p in b.points)
    return [f"  robust{kind} eps {expr(b.eps)} norm {b.norm} {centres}"]


def item(i: s.Item) -> str:
    if isinstance(i, s.NetworkDecl):
        head = f"network {i.name} : real[{_dims(i.input_shape)}] -> real[{_dims(i.output_shape)}]"
        return "\n".join([head, *("  " + _clause(c) for c in i.clauses)])
    if isinstance(i, s.ConstDecl):
        return f"const {i.name} = {expr(i.value)}"
    if isinstance(i, s.DatasetDecl):
        return f"dataset {i.name} = {i.source}"
    if isinstance(i, s.EnsembleDecl):
        return f"ensemble {i.name} = {i.kind}({', '.join(_member(m) for m in i.members)})"
    desc = f" {quote(i.description)}" if i.description is not None else ""
    target = [f"  for {i.target.name}"] if i.target is not None else []
    return "\n".join([f"property {i.name}{desc}:", *_body(i.body), *target])


def pretty(module: s.Module) -> str:
    """The canonical text of a module (items separated by a blank line)."""
    return "\n\n".join(item(i) for i in module.items) + ("\n" if module.items else "")
