"""The data: an isotropic K-component Gaussian mixture with means on a sphere (SPEC 2).

x = mu*_k + sigma* z with k ~ Uniform{1..K} drawn independently per sample, z ~ N(0, I_d),
and each mean a standard Gaussian vector rescaled to norm `radius` (sqrt(d) by default).
All randomness comes from a caller-supplied `torch.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

N_TEST = 100
"""Size of the held-out set (SPEC 2)."""


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer")
    return value


def sample_means(K: int, d: int, generator: torch.Generator, radius: float | None = None,
                 dtype: torch.dtype = torch.float64) -> Tensor:
    """K means [K, d], uniform on the sphere of radius `radius` (default sqrt(d))."""
    _positive_int("K", K)
    _positive_int("d", d)
    radius = math.sqrt(d) if radius is None else radius
    if not radius >= 0:
        raise ValueError(f"radius={radius} must be >= 0")
    g = torch.randn(K, d, generator=generator, dtype=torch.float64)
    return (radius * g / g.norm(dim=1, keepdim=True)).to(dtype)


def sample_mixture(means: Tensor, var: float, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n samples x [n, d] of the mixture, with their component labels [n] (int64).

    x_i = means[k_i] + sqrt(var) z_i, k_i ~ Uniform{0..K-1} independently.
    """
    _positive_int("n", n)
    if not var >= 0:
        raise ValueError(f"var={var} must be >= 0")
    K, d = means.shape
    labels = torch.randint(K, (n,), generator=generator)
    z = torch.randn(n, d, generator=generator, dtype=torch.float64).to(means.dtype)
    return means[labels] + math.sqrt(var) * z, labels


@dataclass(frozen=True)
class Problem:
    """One draw of the data: the true mixture and its training and held-out samples."""

    means: Tensor        # [K, d] true means mu*
    var: float           # sigma*^2, the true component variance
    train: Tensor        # [N, d] training samples x_1..x_N
    train_labels: Tensor  # [N] component of each training sample
    test: Tensor         # [N_TEST, d] held-out samples
    test_labels: Tensor  # [N_TEST]

    @property
    def N(self) -> int:
        return self.train.shape[0]

    @property
    def d(self) -> int:
        return self.train.shape[1]

    @property
    def K(self) -> int:
        return self.means.shape[0]


def make_problem(N: int, d: int, K: int, generator: torch.Generator, var: float = 1.0,
                 radius: float | None = None, n_test: int = N_TEST,
                 dtype: torch.dtype = torch.float64) -> Problem:
    """Draw means, N training and n_test held-out samples, in that order, from `generator`."""
    _positive_int("N", N)
    means = sample_means(K, d, generator, radius, dtype)
    train, train_labels = sample_mixture(means, var, N, generator)
    test, test_labels = sample_mixture(means, var, n_test, generator)
    return Problem(means, var, train, train_labels, test, test_labels)


def log_density(x: Tensor, means: Tensor, var: float | Tensor) -> Tensor:
    """log p(x) [...] of the equal-weight isotropic mixture N(means_k, var I), x [..., d].

    Written from the Gaussian density directly (not through the denoiser), so that
    the score test via autograd is an independent check of Tweedie's formula.
    """
    d = x.shape[-1]
    var = torch.as_tensor(var, dtype=x.dtype)
    sq = ((x[..., None, :] - means) ** 2).sum(-1)                       # [..., K]
    log_comp = -sq / (2 * var) - 0.5 * d * torch.log(2 * math.pi * var)
    return torch.logsumexp(log_comp, dim=-1) - math.log(means.shape[0])
