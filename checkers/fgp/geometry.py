"""The geometry of one FGP point: affine forms of activation regions, distances and tolerances.

Inside an activation region P (a sign pattern of every hidden neuron) each pre-activation
and each score is affine in the input: z = a.x + c. `Geometry.forms` computes these forms
for a batch of patterns at once (float64, on the network's device). The tests the search
makes on a form, with x0 the centre, eps the radius and [lo, hi] the box ball ∩ domain
(for linf that box IS ball ∩ domain; for l2 it encloses it):

- the hyperplane a.x + c = 0 meets the ball iff |a.x0 + c| <= eps ||a||_* (dual norm:
  l2 -> l2, linf -> l1), and meets the box iff min_box <= 0 <= max_box;
- a score difference g.x + h (label minus other) is positive on the whole ball iff its
  minimum there is positive: g.x0 + h - eps ||g||_* (l2: the ball; linf: the exact box
  minimum sum_i min(g_i lo_i, g_i hi_i) + h, which also accounts for the domain).

Float64 tolerance (stated, and tested): every form is a product of at most L matrices of
float64 numbers; the computed coefficients differ from the exact ones by at most
delta * M elementwise, with M the same product on |W| (every neuron active, so it bounds
every pattern) and delta = gamma_K, K = L * (widest layer + 2) + n + 4, gamma_K =
K u / (1 - K u), u = 2^-53 (Higham, eq. 3.5, applied per product and per evaluation).
Every quantity compared above (a value at x0, a box extreme, eps times a dual norm) then
errs by at most `tol = 2 delta (M.max(|lo|, |hi|) + |M_b| + eps ||M||_*)` per row; each
test is made in the direction that is conservative by that `tol` (a hyperplane is
"within eps" when it could be; a margin counts only when it clears tol).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from checkers.plnet import PLNet
from spec import ir

_U64 = 2.0**-53


def gamma64(k: int) -> float:
    ku = k * _U64
    return ku / (1.0 - ku)


@dataclass(frozen=True)
class Forms:
    """Affine forms for a batch of B patterns.

    neurons: (B, N, n) coefficients and (B, N) offsets of every hidden pre-activation, in
    layer order; gaps: (B, m, n) and (B, m) of label minus each score (row `label` is 0).
    """

    neuron_a: torch.Tensor
    neuron_c: torch.Tensor
    gap_g: torch.Tensor
    gap_h: torch.Tensor


class Geometry:
    """A PLNet on a device, with the magnitude forms its float64 tolerance needs.

    `sign` is +1 for argmax networks and -1 for argmin (scores negated, exactly), so the
    label is always the largest of the signed scores.
    """

    def __init__(self, net: PLNet, decide: ir.Decide, device: torch.device) -> None:
        sign = 1.0 if decide is ir.Decide.ARGMAX else -1.0
        self.weights = [w.to(device) for w in net.weights]
        self.biases = [b.to(device) for b in net.biases]
        self.weights[-1] = sign * self.weights[-1]
        self.biases[-1] = sign * self.biases[-1]
        self.device = device
        self.widths = [int(w.shape[0]) for w in self.weights[:-1]]
        self.n_hidden = sum(self.widths)
        self.n_inputs = net.n_inputs
        self.n_outputs = net.n_outputs
        widest = max([net.n_inputs, *[int(w.shape[0]) for w in self.weights]])
        self.delta = gamma64(len(self.weights) * (widest + 2) + net.n_inputs + 4)
        mags, mag_b = [], []
        m, mb = self.weights[0].abs(), self.biases[0].abs()
        for k in range(1, len(self.weights) + 1):
            mags.append(m)
            mag_b.append(mb)
            if k < len(self.weights):
                m, mb = self.weights[k].abs() @ m, self.weights[k].abs() @ mb + self.biases[k].abs()
        self.neuron_mag = torch.cat(mags[:-1]) if self.n_hidden else torch.zeros(0, net.n_inputs, dtype=torch.float64)
        self.neuron_mag_b = torch.cat(mag_b[:-1]) if self.n_hidden else torch.zeros(0, dtype=torch.float64)
        self.out_mag, self.out_mag_b = mags[-1], mag_b[-1]

    def pattern_at(self, x: torch.Tensor) -> torch.Tensor:
        """The activation pattern (N,) bool (pre-activation > 0) of the real network at x (n,)."""
        h = x.to(self.device, torch.float64)
        signs = []
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            z = w @ h + b
            signs.append(z > 0)
            h = torch.relu(z)
        return torch.cat(signs) if signs else torch.zeros(0, dtype=torch.bool, device=self.device)

    def forms(self, patterns: torch.Tensor, label: int) -> Forms:
        """The affine forms of B patterns (B, N) bool (True: the neuron passes its value)."""
        batch = patterns.shape[0]
        a = self.weights[0].expand(batch, -1, -1)
        c = self.biases[0].expand(batch, -1)
        neuron_a, neuron_c = [], []
        start = 0
        for k in range(1, len(self.weights)):
            neuron_a.append(a)
            neuron_c.append(c)
            active = patterns[:, start:start + self.widths[k - 1]].to(torch.float64)
            start += self.widths[k - 1]
            a = torch.matmul(self.weights[k], active[:, :, None] * a)
            c = (active * c) @ self.weights[k].T + self.biases[k]
        gap_g = a[:, label:label + 1, :] - a
        gap_h = c[:, label:label + 1] - c
        empty_a = torch.zeros(batch, 0, self.n_inputs, dtype=torch.float64, device=self.device)
        empty_c = torch.zeros(batch, 0, dtype=torch.float64, device=self.device)
        return Forms(
            torch.cat(neuron_a, dim=1) if neuron_a else empty_a,
            torch.cat(neuron_c, dim=1) if neuron_c else empty_c,
            gap_g, gap_h,
        )

    def tolerances(self, x0: torch.Tensor, eps: float, norm: ir.Norm, lo: torch.Tensor, hi: torch.Tensor,
                   label: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row float64 tolerances (N,) for the neurons and (m,) for the gaps (see the module docstring)."""
        reach = torch.maximum(lo.abs(), hi.abs())
        reach = torch.maximum(reach, x0.abs())

        def tol(mag: torch.Tensor, mag_b: torch.Tensor) -> torch.Tensor:
            dual = mag.sum(dim=1) if norm is ir.Norm.LINF else mag.norm(dim=1)
            return 2.0 * self.delta * (mag @ reach + mag_b + eps * dual) + 1e-300

        out_mag = self.out_mag + self.out_mag[label]
        out_mag_b = self.out_mag_b + self.out_mag_b[label]
        return tol(self.neuron_mag, self.neuron_mag_b), tol(out_mag, out_mag_b)


def dual_norm(a: torch.Tensor, norm: ir.Norm) -> torch.Tensor:
    """||a||_* over the last dimension: l2 for l2 balls, l1 for linf balls."""
    return a.abs().sum(dim=-1) if norm is ir.Norm.LINF else a.norm(dim=-1)


def box_range(a: torch.Tensor, c: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (in real arithmetic) min and max of a.x + c over the box [lo, hi]: (..., R) each."""
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    mid = torch.matmul(a, centre) + c
    spread = torch.matmul(a.abs(), radius)
    return mid - spread, mid + spread


def ball_min(a: torch.Tensor, c: torch.Tensor, x0: torch.Tensor, eps: float, norm: ir.Norm) -> torch.Tensor:
    """min of a.x + c over the ball ||x - x0|| <= eps (real arithmetic): a.x0 + c - eps ||a||_*."""
    return torch.matmul(a, x0) + c - eps * dual_norm(a, norm)
