"""Front-end cost: parse + check + lower of 1,000 properties, against a bare lark parse.

    python bench/parse.py [--properties 1000] [--repeat 5]

The peer is lark itself: the same grammar, LALR, building its parse tree and nothing
else. The goal is a ratio of at most 2 (our whole front end, including the semantic
checks and the lowering to the IR, costs at most twice the bare parse).
"""

from __future__ import annotations

import argparse
import random

import lark

import spec
from spec.parser import grammar_text
from timing import best_times

HEADER = """\
network acas : real[5] -> real[5]
  labels COC, WL, WR, SL, SR
  inputs rho, theta, psi, v_own, v_int
  domain rho in [0, 62000], theta in [-3.141593, 3.141593], psi in [-3.141593, 3.141593],
         v_own in [100, 1200], v_int in [0, 1200]
  normalize inputs mean [19791.091, 0, 0, 650, 600] range [60261, 6.283185307179586, 6.283185307179586, 1100, 1200]
  normalize outputs mean 7.5188840201005975 range 373.94992
  decide argmin

network digits : real[64] -> real[10]
  labels d0, d1, d2, d3, d4, d5, d6, d7, d8, d9
  domain x[*] in [0, 1]

dataset test = digits_test
"""

LABELS = ["COC", "WL", "WR", "SL", "SR"]
INPUTS = ["rho", "theta", "psi", "v_own", "v_int"]
BOUNDS = [(0, 60760), (-3.14, 3.14), (-3.14, 3.14), (100, 1200), (0, 1200)]


def _region(rng: random.Random) -> str:
    parts = []
    for name, (lo, hi) in zip(INPUTS, BOUNDS, strict=True):
        a, b = sorted(rng.uniform(lo, hi) for _ in range(2))
        parts.append(f"{name} in [{a:.6f}, {b:.6f}]" if rng.random() < 0.7 else f"{name} >= {a:.3f}")
    return " and ".join(parts)


def _requirement(rng: random.Random) -> str:
    a, b, c = rng.sample(LABELS, 3)
    return rng.choice([
        f"{a} is first",
        f"{a} is not first and {b} is not first",
        f"{a} above {{{b}, {c}}} or {b} above {{{a}, {c}}}",
        f"not ({a} is last)",
        f"{a} < {rng.uniform(0, 2000):.3f}",
        f"{a} - 2 * {b} <= {rng.uniform(-5, 5):.3f}",
    ])


def generate(n: int, seed: int = 0) -> str:
    """A file of `n` properties: 80% orderings over acas, 20% robustness over digits."""
    rng = random.Random(seed)
    out = [HEADER]
    for i in range(n):
        if rng.random() < 0.8:
            out.append(f'property p{i} "generated":\n  when {_region(rng)}\n  require {_requirement(rng)}\n  for acas\n')
        else:
            kind = rng.choice(["", "top 2 ", "within {d1, d7}, {d3, d8} "])
            out.append(f"property p{i}: robust {kind}eps {rng.uniform(0.1, 1):.3f} norm l2 over test for digits\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--properties", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    text = generate(args.properties)
    bare = lark.Lark(grammar_text(), parser="lalr")
    loaded = spec.load(text, "generated.prop")  # warm-up; builds our parser once
    assert len(loaded.properties) == args.properties
    t_bare, t_parse, t_ours = best_times(
        [lambda: bare.parse(text), lambda: spec.parse(text, "generated.prop"), lambda: spec.load(text, "generated.prop")],
        args.repeat,
    )
    print(f"{args.properties} properties, {len(text) / 1024:.0f} KiB, best of {args.repeat}")
    print(f"  bare lark parse (tree):          {t_bare * 1e3:8.1f} ms   1.00x")
    print(f"  certspec parse (AST):            {t_parse * 1e3:8.1f} ms   {t_parse / t_bare:.2f}x")
    print(f"  certspec parse + check + lower:  {t_ours * 1e3:8.1f} ms   {t_ours / t_bare:.2f}x   (goal <= 2.00x)")


if __name__ == "__main__":
    main()
