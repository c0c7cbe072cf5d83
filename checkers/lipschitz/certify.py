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

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass


import torch

from checkers.lipschitz.layers import LipschitzLayer
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


def _check_eps(eps: float) -> None:
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps={eps!r} must be a finite number >= 0")


def _validate(net: LipschitzNet, x: torch.Tensor, eps: float) -> None:
    _check_eps(eps)
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


class CertifiedClassifier:
    """Certified inference (GloRo's predict-or-abstain) for local robustness at one radius: the fast path.

        clf = CertifiedClassifier(net, eps=0.3)
        label, certified = clf(x)  # (B,) long, (B,) bool

    `certified` carries `certify`'s local guarantee (the label is the argmax, strictly ahead, at every
    float32 input of the ball) and is the same decision, without radii, top-k or affinity. The
    classifier runs its own frozen copy of `net` (eval mode, no gradients, TF32 off on CUDA), taken
    with its constants when it is built, so a call checks no weights: later changes to `net` do not
    reach it (build a new one). Build it on the device it will run on (the copy stays there).

    After the forward pass, seven float32 operations on (B, m) or (B,) tensors decide: for the top
    label j, with R (m, m) and alpha from `_decision_terms`,
        min_i fl(R_ji + alpha fl(y_j - y_i)) > fl(||x||_2)
    (the diagonal R_jj = W_max, at d_j = 0, bounds the norm: the ball stays where the float32 error
    bound holds). The proof that this implies certify's condition is in `_decision_terms`.
    """

    def __init__(self, net: LipschitzNet, eps: float, norm: ir.Norm = ir.Norm.L2) -> None:
        if not isinstance(net, LipschitzNet):
            raise UsageError(f"certified inference needs a LipschitzNet, got {type(net).__name__}")
        _check_eps(eps)
        self.eps, self.norm = float(eps), norm
        self._net = copy.deepcopy(net).eval().requires_grad_(False)
        c = constants(self._net)
        for layer in self._net.modules():
            if isinstance(layer, LipschitzLayer):
                layer.freeze()  # nobody else holds these weights: no per-call check
        rad = eps * (1.0 if norm is ir.Norm.L2 else sqrt_dim(c.n_inputs)) * (1 + _REL)
        self.device = self._net.head.effective_weight().device
        rows, self._alpha = _decision_terms(c, rad)
        self._rows = rows.to(self.device)
        self._cuda = self.device.type == "cuda"

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(label (B,) long, certified (B,) bool) for inputs x (B, n) float32 on the classifier's device."""
        with self._running(x):
            y = self._net(x)
            best, label = y.max(dim=1)
            gap = torch.add(self._rows.index_select(0, label), best[:, None] - y, alpha=self._alpha)
            return label, gap.amin(dim=1) > torch.linalg.vector_norm(x, dim=1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Plain inference on the same frozen copy: the labels alone (B,) long, nothing certified."""
        with self._running(x):
            label: torch.Tensor = self._net(x).argmax(dim=1)
            return label

    @contextlib.contextmanager
    def _running(self, x: torch.Tensor) -> Iterator[None]:
        """Check the inputs; no gradients, and TF32 off on CUDA (restored after)."""
        if x.dim() != 2 or x.shape[1] != self._net.n_inputs or x.dtype != torch.float32 or x.device != self.device:
            raise UsageError(f"inputs of shape {list(x.shape)}, {x.dtype} on {x.device}: the classifier takes "
                             f"(batch, {self._net.n_inputs}) float32 on {self.device}")
        with torch.no_grad():
            if not self._cuda:
                yield
                return
            flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            try:
                yield
            finally:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def _decision_terms(c: Constants, rad: float) -> tuple[torch.Tensor, float]:
    """(R (m, m) float32, alpha) of `CertifiedClassifier` for an l2 radius `rad`.

    certify_scores certifies j against i when, in real arithmetic, d_i = y_j - y_i exceeds
        A_ji + S ||x||_2,  A_ji = rad K_ji + sqrt2 (2 err0 + err1 rad),  S = 2 sqrt2 err1
    (times its float64 slack), with the ball inside ||x'||_2 <= max_norm. Here, with u = 2^-24,
    S' = S (1 + (n + 8) 2^-23) (at least 2^-100), U = sqrt(n) 2^-72 (what squares below float32's
    subnormals can take from the float32 norm w) and A'_ji = A_ji + S' U, every entry rounded down:
        R_ji <= -A'_ji / S' and <= -2^-100 (i != j),   alpha <= (1 - 2^-22) / S'.
    Proof, for a computed g_i = fl(R_ji + fl(alpha d_i)) (or fused) > w >= 0, i != j: the sum is
    rounded with relative error <= u, so R_ji + q_i >= g_i / (1 + u) > w / (1 + u) >= 0, hence
    q_i > 2^-100 (normal: relative rounding) and d_i > 0; q_i <= alpha d_i (1 + u)^2 <= d_i / S',
    so d_i > A'_ji + S' w / (1 + u) >= A_ji + S ||x||_2, as w >= (||x||_2 - U)(1 - (n/2 + 1) u).
    On the diagonal d_j = 0 exactly and g_j = R_jj = W_max: certified inputs have w < W_max, which
    keeps ||x||_2 + rad below max_norm (and A + S' W_max below 2^127, so that a difference or
    product that overflows to inf is one that truly exceeds the threshold). A tie (d_i = 0) gives
    g_i = R_ji < 0, and NaN or inf scores or inputs compare False: not certified.
    """
    n = c.n_inputs
    s = max(_SQRT2 * 2 * c.err1 * (1 + (n + 8) * 2.0**-23) * (1 + _REL) ** 2, 2.0**-100)
    under = math.sqrt(n) * 2.0**-72
    fixed = (_SQRT2 * (2 * c.err0 + c.err1 * rad) + s * under) * (1 + _REL) ** 2
    a = (_scaled_table(c, torch.device("cpu")) * rad * (1 + _REL) + fixed).fill_diagonal_(0.0)
    worst = float(a.max()) * (1 + _REL)
    room = ((c.max_norm - rad) * (1 - 1e-9) / (1 + _REL) - under) * (1 - (n + 16) * 2.0**-23)
    w_max = min(room, (2.0**127 - worst) / s * (1 - 1e-9), (2.0**127 - worst / s) * (1 - 1e-9))
    rows = torch.minimum(_down32(-(a / s) * (1 + _REL)), torch.tensor(-(2.0**-100)))
    rows.fill_diagonal_(float(_down32(torch.tensor(w_max if w_max > 0 else -1.0, dtype=torch.float64))))
    alpha = float(_down32(torch.tensor((1 - 2.0**-22) / s * (1 - _REL), dtype=torch.float64)))
    return rows, alpha


def _down32(t: torch.Tensor) -> torch.Tensor:
    """A float64 tensor rounded to float32 toward -inf."""
    f = t.to(torch.float32)
    return torch.where(f.to(torch.float64) > t, torch.nextafter(f, torch.tensor(-math.inf)), f)


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
