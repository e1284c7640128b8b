"""Deterministic DDIM on the 26-point grid (SPEC 7).

From x_0.999 = z ~ N(0, I), 25 steps to t = 0.001; the output is the state at t = 0.001:
    x_{l+1} = (sigma_{l+1}/sigma_l) x_l + (alpha_{l+1} - (sigma_{l+1}/sigma_l) alpha_l) xhat0(x_l, t_l).
"""

from __future__ import annotations

from torch import Tensor

from memlab.denoisers import GMM, xhat0
from memlab.schedule import alpha, check_times, sigma, time_grid


def ddim(gmm: GMM, z: Tensor, times: Tensor | None = None) -> Tensor:
    """DDIM samples [R, B, d] of R models from start noise z [B, d] (shared) or [R, B, d].

    times: [T] descending (default: the 26-point grid); z is the state at times[0].
    """
    times = time_grid(z.dtype, z.device) if times is None else times
    check_times(times)
    if times.ndim != 1 or times.numel() < 2 or not bool((times[1:] < times[:-1]).all()):
        raise ValueError("times must be a 1-D descending sequence of at least two times")
    x = z.expand(gmm.R, *z.shape[-2:]) if z.ndim == 2 else z
    for t, t_next in zip(times[:-1], times[1:]):
        ratio = sigma(t_next) / sigma(t)
        x = ratio * x + (alpha(t_next) - ratio * alpha(t)) * xhat0(x, t, gmm)
    return x
