"""Re-ranking: the order the guard outputs, and the scores that realise it exactly.

All in decision space (s[a] > s[b] means a ranks before b), batched over inputs, with no
Python loop over inputs: the loops below run over labels or combinations.

The order. Each active property needs one of its disjuncts; a disjunct is a set of edges
"tail before head". For each input the guard tries combinations of disjuncts (one per
active property, in a fixed mixed-radix order, at most `combinations` of them) and among
every ranking that some combination allows it outputs the lexicographically smallest
sequence of original ranks: the original top label stays first whenever any allowed
ranking has it first, then the best possible second label, and so on (a stable
topological order; the measure of change is this lexicographic one). One greedy pass per
combination (Kahn's algorithm taking the best-ranked free label; a pass that gets stuck
found a cycle), then the smallest of the acyclic combinations' rankings.

Ties. Only when no strict ranking satisfies the properties (a cycle of non-strict
comparisons, such as `y[a] >= y[b]` in one property and `y[b] >= y[a]` in another) the
labels of such a cycle are tied: the fallback computes the strongly connected components
(reachability by repeated squaring) and ranks tie blocks the same way, comparing a block by
its best original rank and then by its size (smaller first).

The scores. The values of the output are the input's own sorted values v_1 >= v_2 >= ...
given to the labels in the chosen order, then shifted down by the least amount that makes
every step strict: w_1 = v_1 and w_k = min(v_k, next float below w_{k-1}) (a tied label
takes the value of its block's first label instead). Finite scores stay finite: no w_k goes
below its floor f_k, the float that leaves one finite float for each strict step after k
(f_m is the most negative finite float, each strict step up is the next float above), so
w_k = max(min(v_k, next float below w_{k-1}), f_k) and w_1 = max(v_1, f_1). The floors
bind only where values crowd the bottom of the range (two or more at -FLT_MAX, for
instance `[FLT_MAX] * 5` under argmin): those labels are lifted to the lowest floats
that keep the steps strict, instead of going to -inf. The shift is exact in the scores'
dtype (`next_below` is checked against `torch.nextafter`), so strict comparisons hold on
the returned tensor itself, not only before rounding.
"""

from __future__ import annotations

import math

import torch


def next_below(v: torch.Tensor) -> torch.Tensor:
    """The next representable value below finite v, elementwise, with plain arithmetic (exportable to ONNX).

    For |v| >= 2**(emin + p + 2): v - |v| * c with c = eps/2 + eps**2 (p the precision): the
    amount subtracted lies strictly between half a spacing and one and a half spacings
    below v, so round-to-nearest lands on the next float. Smaller normal v are scaled up by
    2**(p + 2) first (exact; the product would otherwise round in the subnormal range),
    and subnormals, zero and +-2**emin step by the smallest subnormal (below 2**emin the
    spacing stops halving). The largest negative float goes
    to -inf. Equal to torch.nextafter(v, -inf) (tested on every special value and on random
    bit patterns).
    """
    info = torch.finfo(v.dtype)
    precision = round(-math.log2(info.eps)) + 1
    c = info.eps / 2 + info.eps**2
    tiny = info.smallest_normal * info.eps
    scale = 2.0 ** (precision + 2)
    size = v.abs()
    large = v - size * c
    w = v.clamp(-info.smallest_normal * scale, info.smallest_normal * scale) * scale  # no overflow where unused
    small = (w - w.abs() * c) * (1.0 / scale)
    return torch.where(size >= info.smallest_normal * scale, large,
                       torch.where(size > info.smallest_normal, small, v - tiny))


def ranks(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted values descending, rank of each label): rank 0 is the decision, ties to the lowest index.

    Any sort will do (ONNX has no stable sort): runs of equal values are re-sorted by label.
    """
    values, order = torch.sort(s, dim=1, descending=True)
    m = s.shape[1]
    new_run = torch.cat([torch.ones_like(values[:, :1], dtype=torch.bool), values[:, 1:] != values[:, :-1]], dim=1)
    run = torch.cumsum(new_run.to(torch.long), dim=1)
    order = order.gather(1, (run * m + order).argsort(dim=1))
    positions = torch.arange(m, device=s.device).expand_as(order)
    return values, torch.empty_like(order).scatter_(1, order, positions)


def combinations(active: torch.Tensor, prop_first: torch.Tensor, prop_count: torch.Tensor, slots: int,
                 count: int, empty: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The disjunct of each active property in each combination tried.

    Returns (chosen (N, K, slots) disjunct indices, `empty` for an unused slot; valid (N, K)
    bool, False for a repeat; complete (N,) bool, False when an input has more than K
    combinations). Combination k takes digit (k // stride_p) % count_p for the p-th active
    property, properties in their declared order.
    """
    n_props = active.shape[1]
    order = torch.arange(n_props, 0, -1, device=active.device, dtype=torch.float32)
    key = active.to(torch.float32) * order  # declared order among the active ones, inactive last
    _, slot_prop = torch.topk(key, k=min(slots, n_props), dim=1)  # (N, S)
    used = active.gather(1, slot_prop)
    sizes = prop_count[slot_prop]
    never = (used & (sizes == 0)).any(dim=1)  # an active property with no satisfiable disjunct
    used = used & (sizes > 0)
    radix = torch.where(used, sizes, torch.ones_like(sizes))
    # strides in float64, capped past `count` (where every digit is 0): no int64 overflow
    products = [torch.ones_like(radix[:, 0], dtype=torch.float64)]
    for j in range(radix.shape[1]):  # a loop over slots (ONNX has no cumulative product)
        products.append(products[-1] * radix[:, j])
    stride = torch.stack(products[:-1], dim=1).clamp(max=count + 1.0).to(torch.long)
    total = products[-1].clamp(max=count + 1.0).to(torch.long)
    k = torch.arange(count, device=active.device).view(1, count, 1)
    digit = torch.div(k, stride.unsqueeze(1), rounding_mode="floor") % radix.unsqueeze(1)  # (N, K, S)
    chosen = torch.where(used.unsqueeze(1), prop_first[slot_prop].unsqueeze(1) + digit,
                         torch.full_like(digit, empty))
    valid = (k.squeeze(2) < total.unsqueeze(1)) & ~never.unsqueeze(1)
    return chosen, valid, total <= count


def tracing() -> bool:
    """Is the module being traced (torch.export, torch.compile, TorchScript/ONNX export)? Then no early exits."""
    jit_tracing = torch.jit.is_tracing()  # type: ignore[attr-defined,no-untyped-call]
    return bool(jit_tracing or torch.compiler.is_compiling() or torch.compiler.is_exporting())


def _eliminate(alive: torch.Tensor, vals: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
    """Keep the combinations (N, K) whose pick is the best among the live ones."""
    best = torch.where(alive, vals, torch.full_like(vals, torch.inf)).amin(dim=1, keepdim=True)
    return alive & found & (vals == best)


def strict_order(edges_flat: torch.Tensor, indegree: torch.Tensor, chosen: torch.Tensor, valid: torch.Tensor,
                 rank: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The lexicographically smallest strict ranking over the combinations.

    One greedy pass per combination (all in one batch): a combination whose greedy pass
    gets stuck has a cycle and is dropped; the best of the others is chosen afterwards (a
    combination that looks better early can still be cyclic, so there is no early pruning).
    edges_flat: (D+1)*m rows of m (edge counts: row d*m + a lists the heads of a in
    disjunct d); indegree: (D+1, m); chosen (N, K, S); valid (N, K); rank (N, m).
    Returns (found (N,), order (N, m) labels best first).
    """
    n, k_count, slots = chosen.shape
    rank_f = rank.to(torch.float32).unsqueeze(1).expand(n, k_count, m).reshape(n * k_count, m)
    flat = chosen.reshape(n * k_count, slots)
    pending = indegree[flat].sum(dim=1)  # (NK, m) unplaced tails before each label
    alive = valid.reshape(n * k_count).clone()
    poskey = rank_f + m  # unplaced labels end in rank order
    for step in range(m):
        key = pending * m + rank_f  # a free label (pending 0) keys by its rank, others >= m
        vals, pick = key.min(dim=1)
        alive = alive & (vals < m)
        poskey = poskey.scatter(1, pick.unsqueeze(1), torch.full_like(vals, step).unsqueeze(1))
        pending = pending.scatter(1, pick.unsqueeze(1), torch.full_like(vals, torch.inf).unsqueeze(1))
        pending = pending - edges_flat[flat * m + pick.unsqueeze(1)].sum(dim=1)
        if not tracing():  # eager: stop once no live combination has a constraint left
            blocked = ((pending > 0) & (pending < torch.inf)).any(dim=1)
            if not bool((blocked & alive).any()):
                break
    orders = poskey.argsort(dim=1).view(n, k_count, m)
    alive = alive.view(n, k_count)
    if k_count > 1:  # the lexicographically smallest sequence of ranks among the acyclic combinations
        seq = rank.unsqueeze(1).expand(n, k_count, m).gather(2, orders).to(torch.float32)
        for k in range(m):
            best = torch.where(alive, seq[:, :, k], torch.inf).amin(dim=1, keepdim=True)
            alive = alive & (seq[:, :, k] == best)
    found = alive.any(dim=1)
    first = alive.to(torch.int8).argmax(dim=1)  # the first live combination (all live ones agree)
    return found, orders[torch.arange(n, device=rank.device), first]


def table_order(active: torch.Tensor, rank: torch.Tensor, perm_order: torch.Tensor, perm_weight: torch.Tensor,
                perm_bad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The lexicographically smallest strict ranking, by checking every permutation at once (small m).

    active (N, P); rank (N, m); perm_order (m!, m) labels best first; perm_weight (m, m!)
    float64, m**(m-1-position); perm_bad (P, m!) 1 where a permutation breaks a property.
    The code rank @ perm_weight orders permutations exactly as their rank sequences do.
    """
    broken = active.to(torch.float32) @ perm_bad > 0  # (N, m!)
    code = rank.to(torch.float64) @ perm_weight
    best = torch.where(broken, torch.inf, code).argmin(dim=1)
    return ~broken.all(dim=1), perm_order[best]


def _closure(adj: torch.Tensor, m: int) -> torch.Tensor:
    """Reflexive-transitive closure of (N, m, m) bool adjacency by repeated squaring."""
    reach = adj | torch.eye(m, dtype=torch.bool, device=adj.device)
    steps = max(1, (m - 1).bit_length())
    for _ in range(steps):
        f = reach.to(torch.float32)
        reach = torch.bmm(f, f) > 0
    return reach


def tied_order(edges: torch.Tensor, strict: torch.Tensor, chosen: torch.Tensor, valid: torch.Tensor,
               rank: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fallback with tie blocks (cycles of non-strict edges). O(m^3 log m) per combination.

    edges (D+1, m, m) counts, strict (D+1, m, m) bool. Returns (found (N,), order (N, m),
    tied (N, m): True where a label is tied with the one before it).
    """
    n, k_count, slots = chosen.shape
    flat = chosen.reshape(n * k_count, slots)
    adj = edges[flat].sum(dim=1) > 0  # (NK, m, m)
    hard = strict[flat].any(dim=1)
    reach = _closure(adj, m)
    same = reach & reach.transpose(1, 2)
    ok = ~(hard & reach.transpose(1, 2)).any(dim=(1, 2))  # a strict edge inside a cycle: impossible
    alive = valid & ok.view(n, k_count)
    outside = (adj & ~same).to(torch.float32)
    same_f = same.to(torch.float32)
    rank_f = rank.to(torch.float32).unsqueeze(1).expand(n, k_count, m).reshape(n * k_count, m)
    best = torch.where(same, rank_f.unsqueeze(1), torch.full_like(same_f, m)).amin(dim=2)
    block_key = best * (m + 1) + same_f.sum(dim=2)  # (best rank in block, block size)
    pending = outside.sum(dim=1)
    step_of = torch.full_like(rank_f, m)
    big = float((m + 1) ** 2)
    for step in range(m):
        blocked = torch.bmm(same_f, pending.unsqueeze(2)).squeeze(2)  # tails before the whole block
        key = torch.where(blocked > 0, torch.full_like(blocked, big), block_key)
        key = torch.where(step_of < m, torch.full_like(key, torch.inf), key)
        vals, pick = key.min(dim=1)
        free = vals < big
        done = (step_of < m).all(dim=1)
        alive = _eliminate(alive, torch.where(done, torch.zeros_like(vals), vals).view(n, k_count),
                           (free | done).view(n, k_count))
        block = same[torch.arange(n * k_count, device=rank.device), pick] & free.unsqueeze(1)
        step_of = torch.where(block, torch.full_like(step_of, step), step_of)
        pending = pending - torch.bmm(block.to(torch.float32).unsqueeze(1), outside).squeeze(1)
    found = alive.any(dim=1)
    first = alive.to(torch.int8).argmax(dim=1)
    pick_rows = torch.arange(n, device=rank.device) * k_count + first
    steps = step_of[pick_rows]
    order = (steps * m + rank_f[pick_rows]).argsort(dim=1)
    sorted_steps = steps.gather(1, order)
    tied = torch.cat([torch.zeros_like(sorted_steps[:, :1], dtype=torch.bool),
                      sorted_steps[:, 1:] == sorted_steps[:, :-1]], dim=1)
    return found, order, tied


def next_above(v: torch.Tensor) -> torch.Tensor:
    """The next representable value above finite v (-next_below(-v): negation is exact)."""
    return -next_below(-v)


def floors(values: torch.Tensor, tied: torch.Tensor | None, m: int) -> list[torch.Tensor]:
    """The lowest finite value each position may take (N,) each: position k must stay above one float per
    strict step after it, so the last is the most negative finite float and each strict step up adds one."""
    lowest = torch.full_like(values[:, 0], torch.finfo(values.dtype).min)
    out = [lowest]
    for k in range(m - 1, 0, -1):  # out[-1] is position k's floor; position k - 1 sits one step above unless tied
        up = next_above(out[-1])
        out.append(up if tied is None else torch.where(tied[:, k], out[-1], up))
    return out[::-1]


def assign(values: torch.Tensor, order: torch.Tensor, tied: torch.Tensor | None, m: int) -> torch.Tensor:
    """Scores (N, m) giving label order[k] the k-th value, shifted to strictly decreasing (tied: equal).

    Finite values stay finite: the shift goes down (w_k = min(v_k, next float below w_{k-1})), but
    never below the floor that leaves one finite float per remaining strict step; where the values
    crowd the bottom of the range (several at the most negative float) those labels are lifted to
    the lowest floats that keep every step strict instead of going to -inf.
    """
    floor = floors(values, tied, m)
    columns = [torch.maximum(values[:, 0], floor[0])]
    for k in range(1, m):
        w = torch.maximum(torch.minimum(values[:, k], next_below(columns[-1])), floor[k])
        if tied is not None:
            w = torch.where(tied[:, k], columns[-1], w)
        columns.append(w)
    w_all = torch.stack(columns, dim=1)
    return torch.empty_like(w_all).scatter_(1, order, w_all)
