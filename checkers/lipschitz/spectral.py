"""Sound float64 upper bounds on spectral norms, and the power iteration used in training.

Soundness claim of every `*_upper` function: the returned float is >= the exact
(real-arithmetic) quantity for the exact values of the given float tensors. Rounding of
our own float64 arithmetic is accounted for explicitly: every float64 matrix product
carries the classical bound |fl(AB) - AB| <= gamma_n |A||B| (any summation order, FMA or
not; gamma_n = n u / (1 - n u), u = 2^-53) plus an absolute term for underflow, and every
scalar step is rounded up with `math.nextafter`.

The spectral norm of a dense matrix W is bounded by Gram iteration (Delattre et al.,
"Efficient bound of Lipschitz constant for convolutional layers by Gram iteration", 2023):
with H_0 = W and H_{t+1} = H_t H_t^T, ||W||_2^(2^T) = ||H_T||_2 <= ||H_T||_F. The
computed iterates differ from the exact ones; we bound backwards through the computed
ones instead: ||H_t||_2^2 = ||H_t H_t^T||_2 <= ||fl(H_t H_t^T)||_2 + gamma_n ||H_t||_F^2,
so b_T = min(||H_T||_F, sqrt(||H_T||_1 ||H_T||_inf)) (rounded up) and b_t = sqrt(b_{t+1} + gamma_n F_t^2) bound ||H_t||_2.
Every iterate is rescaled by an exact power of two. The bound converges from above to
sigma_max (overestimate at most rank^(1/2^(T+1))), unlike power iteration, which
converges from BELOW and is therefore only a training signal (`power_step`).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

U64 = 2.0**-53
U32 = 2.0**-24
GRAM_STEPS = 10
_TINY = 2.0**-1000  # covers underflow in a float64 product or sum of squares (scaled to max |entry| ~ 1)


def gamma(n: int, unit: float = U64) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of an n-term float inner product."""
    if n * unit >= 0.5:
        raise ValueError(f"gamma_{n} is not defined for unit roundoff {unit!r}")
    return up(n * unit / (1 - n * unit))


def up(value: float) -> float:
    """The next float above `value`: an upper bound on the exact result of one rounded operation."""
    return math.nextafter(value, math.inf)


def down(value: float) -> float:
    return math.nextafter(value, -math.inf)


def mul_up(*values: float) -> float:
    """An upper bound on the exact product of nonnegative floats."""
    out = 1.0
    for v in values:
        out = up(out * v)
    return out


def sqrt_up(value: float) -> float:
    return up(math.sqrt(value))


def _exact64(matrix: torch.Tensor) -> torch.Tensor:
    """The matrix in float64 on the CPU (exact for float32/float64 inputs), as 2-D."""
    if not matrix.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {matrix.dtype}")
    m = matrix.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(m).all():
        raise ValueError("the matrix has non-finite entries: no finite Lipschitz bound")
    return m.reshape(m.shape[0], -1) if m.dim() != 2 else m


def _scale_exponent(m: torch.Tensor) -> int:
    """e such that max |m| * 2^-e lies in [0.5, 1) (0 for a zero matrix)."""
    biggest = float(m.abs().max()) if m.numel() else 0.0
    return math.frexp(biggest)[1] if biggest > 0 else 0


def frobenius_upper(m: torch.Tensor) -> float:
    """An upper bound on ||m||_F for a float64 matrix whose entries are at most 1 in magnitude."""
    n = m.numel()
    if n == 0:
        return 0.0
    s = float((m * m).sum())
    s = up(up(s * (1 + gamma(n + 1))) + n * _TINY)
    return sqrt_up(s)


def inf_norm_upper(m: torch.Tensor) -> float:
    """An upper bound on the largest row sum of |m| (float64; rows of at most n terms)."""
    if m.numel() == 0:
        return 0.0
    s = float(m.abs().sum(dim=1).max())
    return up(up(s * (1 + gamma(m.shape[1] + 1))) + m.shape[1] * _TINY)


def _last_upper(h: torch.Tensor) -> float:
    """A bound on ||h||_2: min of the Frobenius norm and sqrt(||h||_1 ||h||_inf).

    (A computed Gram iterate need not be exactly symmetric, so both norms are taken.)
    """
    return min(frobenius_upper(h), sqrt_up(mul_up(inf_norm_upper(h), inf_norm_upper(h.T))))


def spectral_upper(matrix: torch.Tensor, steps: int = GRAM_STEPS) -> float:
    """A sound upper bound on the largest singular value of `matrix` (2-D, or flattened after dim 0).

    Args:
        matrix: any float tensor (rows = dim 0); its exact values are bounded.
        steps: Gram iterations (more is tighter: overestimate <= rank^(1/2^(steps+1))).
    Returns:
        a float >= sigma_max(matrix), computed in float64 with every rounding accounted for.
    """
    h = _exact64(matrix)
    if h.numel() == 0:
        return 0.0
    if h.shape[0] > h.shape[1]:
        h = h.T
    e0 = _scale_exponent(h)
    if e0 == 0 and float(h.abs().max()) == 0.0:
        return 0.0
    h = torch.ldexp(h, torch.tensor(-e0, dtype=torch.float64))
    frobs: list[float] = []  # F_t, the Frobenius bound of each iterate
    inner: list[int] = []  # the inner dimension of the product H_t H_t^T
    exps: list[int] = []  # H_{t+1} = fl(H_t H_t^T) * 2^-e_{t+1}
    for _ in range(steps):
        frobs.append(frobenius_upper(h))
        inner.append(h.shape[1])
        g = h @ h.T
        e = _scale_exponent(g)
        if float(g.abs().max()) == 0.0:
            break
        exps.append(e)
        h = torch.ldexp(g, torch.tensor(-e, dtype=torch.float64))
    else:
        frobs.append(frobenius_upper(h))
    bound = min(frobs[len(exps)], _last_upper(h))
    rows = h.shape[0]
    for t in range(len(exps) - 1, -1, -1):
        error = up(up(gamma(inner[t] + 1) * up(frobs[t] * frobs[t])) + rows * rows * inner[t] * _TINY)
        bound = sqrt_up(up(math.ldexp(bound, exps[t]) + error))
    return up(math.ldexp(bound, e0))


def abs_spectral_upper(matrix: torch.Tensor) -> float:
    """An upper bound on || |matrix| ||_2 (the entrywise absolute value), for rounding-error bounds."""
    return spectral_upper(matrix.detach().abs())


def conv_patch_upper(weight: torch.Tensor, stride: tuple[int, int]) -> float:
    """An upper bound on the l2 norm of a zero-padded 2-D convolution, for ANY input size.

    conv(x) at each output position is M @ patch(x), M = weight reshaped (C_out, C_in k_h k_w);
    each input pixel lies in at most ceil(k_h/s_h) * ceil(k_w/s_w) patches, so
    ||conv x||^2 <= ||M||^2 sum_p ||patch_p||^2 <= ||M||^2 ceil(k_h/s_h) ceil(k_w/s_w) ||x||^2.
    """
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    overlap = math.ceil(kh / stride[0]) * math.ceil(kw / stride[1])
    return mul_up(spectral_upper(weight.reshape(weight.shape[0], -1)), sqrt_up(float(overlap)))


def conv_matrix(weight: torch.Tensor, in_shape: tuple[int, int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
    """The exact float64 matrix (out_features, in_features) of a bias-free convolution.

    Each column is the convolution of one basis image: a single product per output, so the
    float64 result is exact for float32 (and float64) weights.
    """
    n = math.prod(in_shape)
    w = weight.detach().to(device="cpu", dtype=torch.float64)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    out = F.conv2d(basis, w, None, stride, padding)
    return out.reshape(n, -1).T.contiguous()


def power_step(op, adjoint, vector: torch.Tensor, iters: int = 1) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Warm-started power iteration on op^T op: an ESTIMATE of sigma_max from below.

    Args:
        op, adjoint: the linear map and its transpose (callables on tensors).
        vector: the previous right singular vector estimate (any nonzero tensor of op's input shape).
        iters: power iterations to run.
    Returns:
        (sigma, vector): sigma = ||op(v)|| with v the new unit vector, detached, so sigma is
        differentiable in op's parameters; it is <= sigma_max up to rounding. NOT a certificate.
    """
    v = vector.detach()
    with torch.no_grad():
        for _ in range(iters):
            v = adjoint(op(v))
            v = v / v.norm().clamp_min(1e-30)
    return op(v).norm(), v
