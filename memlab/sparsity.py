"""Softmax sparsity inside the laboratory: the nominal denoiser and the predicted logit gaps.

In high dimension the posterior softmax p = softmax(w) of a GMM denoiser puts almost all
its mass on one component (Lemma D.1), so the denoiser acts as the *nominal* one, which
replaces p by the one-hot vector of its largest entry. How sparse p is depends on the gap
gamma between the largest logit and the runner-up. For x_t = alpha_t x_i + sigma_t z, x_i a
training point of component k, our own derivation (the paper's Appendix E text was not
available to us) gives, per competitor, a gap that is approximately Gaussian:

    ideal denoiser, competitor mean mu_l (radius r = ||mu||, psi~ = alpha^2 / v, v = alpha^2 var + sigma^2):
        gap_l = (alpha^2 ||mu_k - mu_l||^2 + 2 alpha <mu_k - mu_l, eta>) / (2 v),   eta ~ N(0, v I)
        mean  = psi~ r^2,        sd = sqrt(psi~^2 r^4 / d + psi~ r^2)
    memorizing denoiser, competitor x_j of the same component:
        gap_j = psi_t ||x_i - x_j||^2 / 2 + sqrt(psi_t) <x_i - x_j, z>
        mean  = psi_t d var,     sd = sqrt(d (3/2 psi_t^2 var^2 + psi_t var))

where sd is the spread of the part that varies between competitors (the rest is shared
and does not move the argmax). The runner-up is the closest of m competitors, so its gap
is about mean - sd E[max of m standard normals] (`runner_up_gap`); the leading order
`mean` is the gap to a *typical* competitor. Axes: R models, B points, M components, d.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from memlab.denoisers import GMM, logits
from memlab.schedule import alpha, psi, sigma

_QUADRATURE = torch.linspace(-12.0, 12.0, 4801, dtype=torch.float64)
"""Nodes of the trapezoidal rule for E[max of m normals]; the integrand is below 1e-30 outside."""


def _counts(m: Tensor | int, name: str = "m") -> Tensor:
    m = torch.as_tensor(m)
    if m.is_floating_point() or m.is_complex() or m.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {m.dtype}")
    if m.numel() and int(m.min()) < 1:
        raise ValueError(f"{name}={int(m.min())} must be >= 1 (the number of competitors)")
    return m


def expected_max_normal(m: Tensor | int) -> Tensor:
    """E[max of m i.i.d. N(0, 1)] [...] for integer counts m [...] >= 1 (float64).

    = int x m phi(x) Phi(x)^(m-1) dx, by the trapezoidal rule on [-12, 12] (error < 1e-12
    for m up to 10^6). m = 1 gives 0, m = 2 gives 1/sqrt(pi).
    """
    m = _counts(m).to(torch.float64)
    x = _QUADRATURE
    log_phi = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
    log_density = torch.log(m)[..., None] + log_phi + (m[..., None] - 1) * torch.special.log_ndtr(x)
    return torch.trapezoid(x * torch.exp(log_density), x, dim=-1)


def _dimension(d: int | Tensor) -> Tensor:
    d = torch.as_tensor(d, dtype=torch.float64)
    if d.numel() and not bool((d >= 1).all()):
        raise ValueError(f"d={d.min().item()} must be >= 1")
    return d


def gap_moments_ideal(t: Tensor, d: int | Tensor, var: float = 1.0,
                      radius: float | None = None) -> tuple[Tensor, Tensor]:
    """(mean, sd) [broadcast of t and d] of the ideal denoiser's logit gap to one other component.

    mean = psi~ r^2, sd = sqrt(psi~^2 r^4 / d + psi~ r^2), with psi~ = alpha_t^2 / (alpha_t^2 var
    + sigma_t^2) = psi_t / (psi_t var + 1) and r the norm of the means (default sqrt(d)). The
    mean is exact for a mean drawn uniformly from the sphere; sd is the spread between
    competitors given x_t (expected over x_t).
    """
    if not var > 0:
        raise ValueError(f"var={var} must be > 0 for the ideal denoiser")
    d = _dimension(d)
    r2 = d if radius is None else torch.as_tensor(float(radius) ** 2, dtype=torch.float64)
    a = alpha(t)
    psi_eff = a**2 / (a**2 * var + sigma(t) ** 2)
    return psi_eff * r2, torch.sqrt(psi_eff**2 * r2**2 / d + psi_eff * r2)


def gap_moments_memorizing(t: Tensor, d: int | Tensor, var: float = 1.0) -> tuple[Tensor, Tensor]:
    """(mean, sd) [broadcast of t and d] of the memorizing denoiser's logit gap to a same-component point.

    For x_t = alpha_t x_i + sigma_t z and another training point x_j of x_i's component:
    mean = psi_t d var (exact), sd = sqrt(d (3/2 psi_t^2 var^2 + psi_t var)), the spread
    between competitors given x_i and z. A point of another component is farther:
    its mean gap is psi_t (d var + r^2).
    """
    if not var > 0:
        raise ValueError(f"var={var} must be > 0")
    d = _dimension(d)
    p = psi(t)
    return p * d * var, torch.sqrt(d * (1.5 * p**2 * var**2 + p * var))


def runner_up_gap(mean: Tensor, sd: Tensor, m: Tensor | int) -> Tensor:
    """Expected gap to the runner-up [broadcast of the inputs]: mean - sd E[max of m normals].

    The smallest of m independent competitor gaps N(mean, sd^2); m >= 1 integers.
    """
    return mean - sd * expected_max_normal(m)


def nearest_neighbour_c(t: Tensor, d: int | Tensor, m: Tensor | int, var: float = 1.0) -> Tensor:
    """The constant C of Theorem 3.2 predicted by a one-hot (nearest-neighbour) softmax.

    C = 2 - sqrt(6 / d) E[max of m normals] / sqrt(1 + 2 / (3 psi_t var)) [broadcast of t, d, m].

    A training point x_i that pmem_M does not hold is sent to the memorized point x_j of
    its component that is nearest to x_t / alpha_t, at squared distance
    var (||g_i||^2 + ||g_j||^2 - 2 <g_i, g_j>) ~ 2 d var minus the selection effect of the
    best of m candidates, whose j-dependent part has sd sqrt(6 d) var (the noise adds
    4 d var / psi_t to the selection score). The excess is this distance on the (1 - M/N)
    points pmem lacks, so C is the distance over d var; C -> 2 as d -> infinity.
    """
    if not var > 0:
        raise ValueError(f"var={var} must be > 0")
    shrink = torch.sqrt(1 + 2 / (3 * psi(t) * var))
    return 2 - torch.sqrt(6 / _dimension(d)) * expected_max_normal(m) / shrink


def nominal_xhat0(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """The nominal (nearest-component) denoiser [R, B, d]: xhat0 with p replaced by e_k.

    k = argmax_i w_i(x); returns mu_k + (alpha_t s2 / v_t)(x - alpha_t mu_k)
    = (sigma_t^2 / v_t) mu_k + (alpha_t s2 / v_t) x. x: [B, d] or [R, B, d]; t: scalar or [B].
    Its distance to xhat0 is (sigma_t^2 / v_t) ||sum_i p_i (mu_i - mu_k)||.
    """
    k = logits(x, t, gmm).argmax(-1)                                          # [R, B]; checks x and t
    x = x.expand(gmm.R, *x.shape) if x.ndim == 2 else x
    t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[1])
    mu_k = torch.gather(gmm.means, 1, k[..., None].expand(*k.shape, gmm.means.shape[-1]))
    a, s2 = alpha(t), sigma(t) ** 2                                           # [B]
    v = a**2 * gmm.var[:, None] + s2                                          # [R, B]
    return (s2 / v)[..., None] * mu_k + (a * gmm.var[:, None] / v)[..., None] * x
