"""The isotropic shared-variance GMM denoiser, for R models at once (SPEC 4).

For means mu_1..mu_M, variance s2 and equal weights 1/M, the posterior mean of X_0 given
X_t = x is

    v_t    = alpha_t^2 s2 + sigma_t^2
    w_i(x) = -||x - alpha_t mu_i||^2 / (2 v_t),        p = softmax(w)
    xhat0  = sum_i p_i [mu_i + (alpha_t s2 / v_t)(x - alpha_t mu_i)]
           = (sigma_t^2 / v_t) sum_i p_i mu_i + (alpha_t s2 / v_t) x
    epshat = (x - alpha_t xhat0) / sigma_t

Axes: R models, B points, M components, d dimension. Models with different M share one
tensor by padding: `mask[r, i]` is False for the padding components of model r.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from memlab.gmm import Problem
from memlab.schedule import alpha, check_times, sigma


@dataclass(frozen=True)
class GMM:
    """R isotropic GMMs with equal weights: the parameters of R denoisers."""

    means: Tensor               # [R, M, d]
    var: Tensor                 # [R], the shared component variance s2 >= 0
    mask: Tensor | None = None  # [R, M] bool, True for real components; None = all real

    def __post_init__(self):
        if self.means.ndim != 3:
            raise ValueError(f"means must have shape [R, M, d], got {tuple(self.means.shape)}")
        if self.var.shape != self.means.shape[:1]:
            raise ValueError(f"var must have shape [R]={tuple(self.means.shape[:1])}, got {tuple(self.var.shape)}")
        if bool((self.var < 0).any()):
            raise ValueError(f"var must be >= 0, got {self.var.tolist()}")
        if self.mask is not None:
            if self.mask.shape != self.means.shape[:2] or self.mask.dtype != torch.bool:
                raise ValueError(f"mask must be a bool tensor of shape [R, M]={tuple(self.means.shape[:2])}")
            if not bool(self.mask.any(dim=1).all()):
                raise ValueError("every model needs at least one component (a row of mask is all False)")

    @property
    def R(self) -> int:
        return self.means.shape[0]

    @property
    def sizes(self) -> Tensor:
        """The number of components M of each model, [R]."""
        if self.mask is None:
            return torch.full((self.R,), self.means.shape[1])
        return self.mask.sum(dim=1)

    def select(self, r: int) -> GMM:
        """Model r alone (padding removed), as a GMM with R = 1."""
        keep = slice(None) if self.mask is None else self.mask[r]
        return GMM(self.means[r, keep][None], self.var[r:r + 1])


def _broadcast(x: Tensor, t: Tensor | float, gmm: GMM) -> tuple[Tensor, Tensor]:
    """x as [R, B, d] and t as [B] (scalar t is broadcast)."""
    if x.shape[-1] != gmm.means.shape[-1]:
        raise ValueError(f"x has dimension {x.shape[-1]}, the model has d={gmm.means.shape[-1]}")
    if x.ndim == 2:
        x = x.expand(gmm.R, *x.shape)
    if x.ndim != 3 or x.shape[0] != gmm.R:
        raise ValueError(f"x must have shape [B, d] or [R={gmm.R}, B, d], got {tuple(x.shape)}")
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    check_times(t)
    return x, t.expand(x.shape[1])


def logits(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """Softmax logits [R, B, M] of the posterior over components, up to a per-point constant.

    w_i = (alpha_t <x, mu_i> - alpha_t^2 ||mu_i||^2 / 2) / v_t, which differs from
    -||x - alpha_t mu_i||^2 / (2 v_t) by -||x||^2 / (2 v_t), the same for every i: the
    softmax and the gaps between logits are unchanged. Padding components get -inf.
    x: [B, d] or [R, B, d]; t: scalar or [B].
    """
    x, t = _broadcast(x, t, gmm)
    a = alpha(t)                                                           # [B]
    v = a**2 * gmm.var[:, None] + sigma(t) ** 2                            # [R, B]
    w = a[:, None] * (x @ gmm.means.transpose(1, 2))                       # [R, B, M]
    w = w - (a**2)[:, None] * (gmm.means**2).sum(-1)[:, None, :] / 2
    w = w / v[..., None]
    if gmm.mask is not None:
        w = w.masked_fill(~gmm.mask[:, None, :], float("-inf"))
    return w


def posterior_weights(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """p = softmax(w) [R, B, M], the posterior probability of each component given x_t."""
    return torch.softmax(logits(x, t, gmm), dim=-1)


def xhat0(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """The posterior mean E[X_0 | X_t = x] [R, B, d]; x: [B, d] or [R, B, d], t: scalar or [B]."""
    x, t = _broadcast(x, t, gmm)
    p = posterior_weights(x, t, gmm)
    a, s2 = alpha(t), sigma(t) ** 2                                        # [B]
    v = a**2 * gmm.var[:, None] + s2                                       # [R, B]
    return (s2 / v)[..., None] * (p @ gmm.means) + (a * gmm.var[:, None] / v)[..., None] * x


def eps_hat(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """The noise prediction (x - alpha_t xhat0) / sigma_t [R, B, d]."""
    x, t = _broadcast(x, t, gmm)
    return (x - alpha(t)[:, None] * xhat0(x, t, gmm)) / sigma(t)[:, None]


def score(x: Tensor, t: Tensor | float, gmm: GMM) -> Tensor:
    """Tweedie: grad log p_t(x) = (alpha_t xhat0 - x) / sigma_t^2 [R, B, d]."""
    x, t = _broadcast(x, t, gmm)
    return (alpha(t)[:, None] * xhat0(x, t, gmm) - x) / sigma(t)[:, None] ** 2


def ideal(problem: Problem) -> GMM:
    """The generalizing denoiser: the true mixture (M = K, mu = mu*, s2 = sigma*^2); R = 1."""
    return GMM(problem.means[None], torch.full((1,), problem.var, dtype=problem.means.dtype))


def memorizing(train: Tensor) -> GMM:
    """The empirical denoiser: the N training points as means, s2 = 0; R = 1."""
    return GMM(train[None], torch.zeros(1, dtype=train.dtype))


def partially_memorizing(train: Tensor, Ms: Sequence[int], generator: torch.Generator | None = None) -> GMM:
    """The empirical denoisers of M training points, one model per M in Ms: the first M, or with
    `generator` the first M of a random permutation (the paper's code draws such a subset afresh
    at each time; the first M of i.i.d. points have the same distribution).

    Returns R = len(Ms) models padded to max(Ms) components, s2 = 0.
    """
    N = train.shape[0]
    Ms = list(Ms)
    if not Ms or any(isinstance(M, bool) or not isinstance(M, int) or not 1 <= M <= N for M in Ms):
        raise ValueError(f"every M must be an int in [1, N={N}], got {Ms}")
    top = max(Ms)
    points = train if generator is None else train[torch.randperm(N, generator=generator)]
    means = points[:top].expand(len(Ms), top, train.shape[1])
    mask = torch.arange(top)[None, :] < torch.tensor(Ms)[:, None]
    return GMM(means, torch.zeros(len(Ms), dtype=train.dtype), mask)
