"""The denoising loss, Monte Carlo and unreduced (SPEC 5).

L_{N,t}(xhat) = (1/N) sum_i E_z ||xhat(alpha_t x_i + sigma_t z, t) - x_i||^2   (x0 units)
and in eps units ||epshat - z||^2 = psi_t ||xhat0 - x_i||^2 pointwise, so training on the
eps loss is the x0 loss weighted by lambda(t) = psi_t. Functions here return values per
model, per sample (and per time); the caller weights and reduces.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from memlab.denoisers import GMM, eps_hat, xhat0
from memlab.schedule import noisy, psi

Units = Literal["x0", "eps"]
Weighting = Literal["psi", "uniform"]

_CHUNK_ELEMENTS = 1 << 23
"""Largest [R, B, M] logits tensor evaluated at once (64 MiB in float64)."""


def sample_loss(gmm: GMM, x0: Tensor, t: Tensor | float, z: Tensor, units: Units = "x0") -> Tensor:
    """Per-sample loss [R, N], averaged over S noise draws and summed over coordinates.

    x0: [N, d] clean samples; t: scalar or [N], one time per sample; z: [S, N, d] noise.
    x0 units: ||xhat0(x_t) - x0||^2; eps units: ||epshat(x_t) - z||^2.
    """
    if units not in ("x0", "eps"):
        raise ValueError(f"units={units!r} must be 'x0' or 'eps'")
    S, N, d = z.shape
    t = torch.as_tensor(t, dtype=x0.dtype).expand(N)
    xt = noisy(x0, t, z).reshape(S * N, d)
    tt = t.repeat(S)
    if units == "x0":
        err = xhat0(xt, tt, gmm) - x0.repeat(S, 1)
    else:
        err = eps_hat(xt, tt, gmm) - z.reshape(S * N, d)
    return err.pow(2).sum(-1).view(gmm.R, S, N).mean(1)


def loss_per_time(gmm: GMM, x0: Tensor, times: Tensor, n_noise: int, generator: torch.Generator,
                  units: Units = "x0") -> Tensor:
    """Monte Carlo loss [R, N, T] of R models at each of T times, n_noise draws per sample.

    The noise [n_noise, N, d] is drawn afresh for each time from `generator`, in time order,
    and shared by the R models; so two calls with equally seeded generators see the same
    noise (common random numbers make loss differences between denoisers precise).
    """
    if isinstance(n_noise, bool) or not isinstance(n_noise, int) or n_noise < 1:
        raise ValueError(f"n_noise={n_noise!r} must be a positive int")
    N, d = x0.shape
    chunk = max(1, _CHUNK_ELEMENTS // (gmm.R * N * gmm.means.shape[1]))
    out = []
    for t in times:
        z = torch.randn(n_noise, N, d, generator=generator, dtype=x0.dtype)
        parts = [sample_loss(gmm, x0, t, zc, units) * zc.shape[0] for zc in z.split(chunk)]
        out.append(torch.stack(parts).sum(0) / n_noise)
    return torch.stack(out, dim=-1)


def weighting(name: Weighting, times: Tensor) -> Tensor:
    """The loss weighting lambda(t) [T]: 'psi' (the eps-prediction loss) or 'uniform'."""
    if name == "psi":
        return psi(times)
    if name == "uniform":
        return torch.ones_like(times)
    raise ValueError(f"weighting={name!r} must be one of 'psi', 'uniform'")


def weighted(per_time: Tensor, lam: Tensor) -> Tensor:
    """E_t[lambda(t) L_t] [...] over a uniform time grid; per_time [..., T], lam [T]."""
    return (per_time * lam).mean(-1)
