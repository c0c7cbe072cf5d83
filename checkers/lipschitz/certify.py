"""The GloRo certifier (Leino, Wang & Fredrikson 2021): local, relaxed top-k and affinity robustness.

For scores y = w_i . h(x) + b_i with a body h whose l2 Lipschitz constant is at most K_sub,
y_j - y_i is (K_sub ||w_j - w_i||)-Lipschitz: K_ji = K_sub * table[j, i], from the m x m
table of `checkers.lipschitz.network.constants` (work O(batch * m) per batch; no
(batch, features, classes) tensor is ever built).

Guarantee (what `certified` means): for the float32 model as it runs, at every float32
input x' with ||x' - x|| <= eps (in the requested norm), the certified set (the top-1
label for local robustness, the top-k set for relaxed top-k) is exactly the top-k set of
the scores at x', every label in it strictly above every label outside (a tie is NOT
certified). The proof: in real arithmetic y_jl(x') - y_i(x') >= y_jl(x) - y_i(x) - eps K_jl,i;
the float32 scores differ from the real ones by at most err0 + err1 ||x||_2 (see
`float_error`), so a pair difference moves by at most sqrt(2) times that, at x and at x'
(||x'|| <= ||x|| + eps); all of it, plus float64 rounding of the comparison (a relative
2^-50 on the difference, 1e-10 on the subtracted terms), is subtracted before comparing with 0.

l_inf balls are certified through ||d||_2 <= sqrt(n) ||d||_inf: an l_inf ball of radius eps lies
in the l2 ball of radius sqrt(n) eps (sqrt(n) rounded up); radii are reported in the requested norm.

Relaxed top-k: with the top K labels j_1..j_K of y and T_k = {j_1..j_k},
m_k = min_{l<=k, i not in T_k} (y_jl - y_i - eps K_jl,i - slack); the smallest k with m_k > 0
is reported (per-k guarantee: T_k is the top-k set everywhere in the ball). Affinity:
only k = 1 (a single label) and sets T_k contained in one affinity set count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


import torch

from checkers.lipschitz.network import Constants, LipschitzNet, constants, sqrt_dim
from spec import ir
from spec.errors import UsageError

_REL = 1e-10  # relative float64 rounding slack on the subtracted terms
_DIFF = 2.0**-50  # relative float64 rounding slack on a difference of float32 scores


@dataclass(frozen=True)
class Certificates:
    """Per-input results (all tensors on the model's device, batch B).

    prediction (B,) long: argmax of the float32 scores; scores (B, m) float32;
    k (B,) long: size of the certified top-k set (0: not certified; 1: the prediction itself);
    certified (B,) bool: k > 0; top (B, K) long: the top-K labels, best first;
    radius (B,) float64: every ball of smaller radius (in the requested norm) is certified
    for some allowed k (0 when none).
    """

    scores: torch.Tensor
    prediction: torch.Tensor
    k: torch.Tensor
    certified: torch.Tensor
    top: torch.Tensor
    radius: torch.Tensor

    def contains(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the label lies in the certified set (False when not certified)."""
        K = self.top.shape[1]
        rank = torch.arange(K, device=self.top.device)[None, :]
        inside = (self.top == labels[:, None]) & (rank < self.k[:, None])
        return inside.any(dim=1)


def _validate(net: LipschitzNet, x: torch.Tensor, eps: float) -> None:
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps={eps!r} must be a finite number >= 0")
    if x.dim() != 2 or x.shape[1] != net.n_inputs:
        raise UsageError(f"inputs of shape {list(x.shape)}: the network takes (batch, {net.n_inputs})")


def _allowed(kind: ir.RobustKind, top: torch.Tensor, m: int) -> torch.Tensor:
    """(B, K) bool: T_k may be certified (Affinity: k = 1, or T_k inside one affinity set)."""
    B, K = top.shape
    if not isinstance(kind, ir.Affinity):
        return torch.ones(B, K, dtype=torch.bool, device=top.device)
    group = torch.full((m,), -1, dtype=torch.long, device=top.device)
    for s, labels in enumerate(kind.sets):
        group[list(labels)] = s
    g = group[top]  # (B, K)
    same = (g == g[:, :1]) & (g[:, :1] >= 0)
    allowed = same.cumprod(dim=1).bool()
    allowed[:, 0] = True
    return allowed


def kind_depth(kind: ir.RobustKind, m: int) -> int:
    """How many top labels the kind looks at: 1, k, or the largest affinity set."""
    if isinstance(kind, ir.TopK):
        if not 1 <= kind.k <= m:
            raise UsageError(f"top k={kind.k!r} must be between 1 and the number of classes {m}")
        return kind.k
    if isinstance(kind, ir.Affinity):
        for labels in kind.sets:
            if any(not 0 <= j < m for j in labels):
                raise UsageError(f"affinity set {list(labels)} names a label outside 0..{m - 1}")
        return max([1, *(len(s) for s in kind.sets)])
    return 1


def _min_outside(rows: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """(B, K): entry k is min over l <= k and labels i outside T_k = {top[:, 0..k]} of rows[:, l, i]."""
    B, K, m = rows.shape
    if K == 1:  # local robustness: every label but the prediction
        return rows[:, 0].scatter(1, top, math.inf).amin(dim=1, keepdim=True)
    outside = torch.ones(B, m, dtype=torch.bool, device=rows.device)
    index = torch.arange(B, device=rows.device)
    out = []
    for k in range(K):
        outside[index, top[:, k]] = False
        out.append(rows[:, : k + 1].masked_fill(~outside[:, None, :], math.inf).amin(dim=(1, 2)))
    return torch.stack(out, dim=1)


def pair_rows(y: torch.Tensor, top: torch.Tensor, ktab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(y_jl - y_i, K_jl,i) for each of the top labels j_l: two (B, K, m) tensors (K = top.shape[1])."""
    yj = y.gather(1, top)  # (B, K)
    return yj[:, :, None] - y[:, None, :], ktab[top]


def margins(y: torch.Tensor, top: torch.Tensor, ktab: torch.Tensor, rad: float | torch.Tensor) -> torch.Tensor:
    """(B, K) m_k = min_{l<=k, i not in T_k} (y_jl - y_i - rad K_jl,i): the training form (no float slack),
    differentiable in y and ktab. Memory O(B K m)."""
    diff, kt = pair_rows(y, top, ktab)
    return _min_outside(diff - rad * kt, top)


class inference:  # lower case: used like a function, `with inference(net):`
    """Eval mode, no gradients and TF32 off (CUDA; `device`: the inputs' device, None: any) for the
    duration; the previous state is restored.

    Modes are only switched (and restored) for modules that are training: `net.eval()` walks
    every module through `named_modules`, a cost that shows next to a small network's forward pass.
    """

    def __init__(self, net: LipschitzNet, device: torch.device | None = None) -> None:
        self.net = net
        self.training: list[torch.nn.Module] = []
        self.cuda = device is None or device.type == "cuda"  # the TF32 flags only matter there
        self.flags = (False, False)
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        stack: list[torch.nn.Module | None] = [self.net]
        while stack:
            module = stack.pop()
            if module is not None:
                if module.training:
                    module.training = False
                    self.training.append(module)
                stack.extend(module._modules.values())
        if self.cuda:
            self.flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.no_grad.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.no_grad.__exit__(None, None, None)
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.flags
        for module in self.training:
            module.training = True
        self.training = []


def certify(net: LipschitzNet, x: torch.Tensor, eps: float, norm: ir.Norm = ir.Norm.L2,
            kind: ir.RobustKind | None = None) -> Certificates:
    """Run the model on x (B, n) float32 and certify each input for a ball of radius eps (see the module docstring)."""
    _validate(net, x, eps)
    with inference(net, x.device):
        y = net(x)
        return certify_scores(net, x, y, eps, norm, kind)


def certified_predict(net: LipschitzNet, x: torch.Tensor, eps: float,
                      norm: ir.Norm = ir.Norm.L2) -> tuple[torch.Tensor, torch.Tensor]:
    """Certified inference (GloRo's predict-or-abstain) for local robustness at one eps: the fast path.

    Returns (prediction (B,) long, certified (B,) bool), with the guarantee of `certify`'s local
    certificate (the argmax is the same label, strictly ahead, at every float32 input of the ball)
    but no radius, top-k or affinity: nine float32 operations on (B, m) or (B,) after the forward pass.
    With N_ji <= -(rad K_ji + s_fixed) (1 + 2^-20) in float32 (N_jj = +inf: i = j drops out), the test is
        min_i fl(N_ji + fl(y_j - y_i) (1 - 2^-22)) > v = fl(fl(||x||_2) s_norm)  and  v < v_max,
    where s_fixed + s_norm ||x||_2 bounds the float32 error terms s0 + s1 rad of `certify_scores`.
    Rounding (u = 2^-24): y_j - y_i of two float32 numbers is rounded with relative error <= u, so the
    scaled difference p never exceeds the real one when that is positive (and is <= 0 when it is
    not); a computed sum g > v >= 0 has a real value N + p >= g / (1 + u), covered by the (n + 8) 2^-23
    of s_norm; the norm's and the product's rounding likewise (see `_predict_terms`).
    """
    _validate(net, x, eps)
    c: Constants = constants(net)
    rad = eps * (1.0 if norm is ir.Norm.L2 else sqrt_dim(c.n_inputs)) * (1 + _REL)
    with inference(net, x.device):
        y = net(x)
        neg_table, s_norm, v_max = _predict_terms(c, rad, y.device)
        best, prediction = y.max(dim=1)
        gap = torch.add(neg_table.index_select(0, prediction), best[:, None] - y, alpha=1 - 2.0**-22)
        v = x.norm(dim=1).mul_(s_norm)
        return prediction, gap.amin(dim=1).clamp_(max=v_max) > v  # and v < v_max


def _predict_terms(c: Constants, rad: float, device: torch.device) -> tuple[torch.Tensor, float, float]:
    """(N, s_norm, v_max) of `certified_predict` for one radius, N float32 on the device (cached on the constants).

    The float32 norm of n entries is within (n/2 + 1) 2^-24 of the real one, less what squares below
    float32's smallest subnormal lose (entries under 4e-23: at most sqrt(n) 4e-23 in all, added to
    s_fixed); the product with s_norm (itself rounded to float32) and the division by 1 + u of the
    sum's rounding add 3 u: s_norm carries (n + 8) 2^-23. N is rounded to float32 with 2^-20 to spare,
    and s_fixed >= 2^-100 keeps every certified p a normal float32 (relative error bounds hold).
    v < v_max keeps the ball inside ||x'||_2 <= max_norm (no float32 overflow; -1 when no ball fits).
    """
    cache = c.__dict__.setdefault("_predict", {})
    key = (rad, device)
    if key not in cache:
        s_norm = _SQRT2 * 2 * c.err1 * (1 + (c.n_inputs + 8) * 2.0**-23) * (1 + _REL) ** 2
        underflow = math.sqrt(c.n_inputs) * 4e-23
        s_fixed = max(2.0**-100, (_SQRT2 * (2 * c.err0 + c.err1 * rad) + s_norm * underflow) * (1 + _REL) ** 2)
        kt = _scaled_table(c, torch.device("cpu")) * rad * (1 + _REL)
        neg = (-((kt + s_fixed) * (1 + 2.0**-20))).fill_diagonal_(math.inf).to(torch.float32)
        room = (c.max_norm - rad - underflow) * (1 - 1e-9)
        v_max = s_norm * room * (1 - (c.n_inputs + 16) * 2.0**-23) if room > 0 else -1.0
        if len(cache) > 16:
            cache.clear()
        cache[key] = (neg.to(device), s_norm, v_max)
    return cache[key]  # type: ignore[no-any-return]


def certify_scores(net: LipschitzNet, x: torch.Tensor, y: torch.Tensor, eps: float, norm: ir.Norm = ir.Norm.L2,
                   kind: ir.RobustKind | None = None) -> Certificates:
    """Certify scores y = net(x) already computed (by the float32 model, in eval mode, TF32 off)."""
    _validate(net, x, eps)
    kind = ir.Local() if kind is None else kind
    c: Constants = constants(net)
    m = int(y.shape[1])
    depth = kind_depth(kind, m)
    scale = 1.0 if norm is ir.Norm.L2 else sqrt_dim(c.n_inputs)
    rad = eps * scale * (1 + _REL)  # the l2 radius to certify
    y64 = y.detach().to(torch.float64)
    ktab = _scaled_table(c, y.device)
    xnorm = x.detach().to(torch.float64).norm(dim=1) * (1 + _REL)
    s0 = _SQRT2 * (2 * c.err0 + 2 * c.err1 * xnorm) * (1 + _REL)  # (B,) error at x and at the ball's centre term
    s1 = _SQRT2 * c.err1 * (1 + _REL)  # error growth per unit of l2 radius
    top = y.detach().topk(depth, dim=1).indices
    diff, kt = pair_rows(y64, top, ktab)
    # per pair, the largest l2 radius r with diff - r K - s0 - s1 r > 0 (float64 slack: _DIFF, _REL, 1e-9)
    num = diff * (1 - _DIFF) - s0[:, None, None]
    per_pair = torch.where(num > 0, num / (kt * (1 + _REL) + s1), torch.zeros((), dtype=num.dtype, device=num.device))
    per_k = _min_outside(per_pair, top).masked_fill(~_allowed(kind, top, m), 0.0) * (1 - 1e-9)  # (B, K)
    # and the whole ball inside ||x'|| <= max_norm, where the float32 error bound holds (no overflow)
    per_k = torch.minimum(per_k, ((c.max_norm - xnorm) * (1 - 1e-9)).clamp_min(0.0)[:, None])
    ok = per_k > rad
    k = torch.where(ok.any(dim=1), ok.to(torch.int8).argmax(dim=1) + 1, 0)
    radius = per_k.amax(dim=1) / scale
    return Certificates(y, top[:, 0], k, k > 0, top, radius)


_SQRT2 = math.sqrt(2.0) * (1 + 2.0**-50)


def _scaled_table(c: Constants, device: torch.device) -> torch.Tensor:
    """K_ji = body * table (rounded up), on the device: cached on the (immutable) constants object."""
    cache = c.__dict__.setdefault("_scaled", {})
    if device not in cache:
        cache[device] = (c.table * (c.body * (1 + _REL)) * (1 + _REL)).to(device)
    return cache[device]  # type: ignore[no-any-return]
