"""What we measure: memorization (SPEC 7) and softmax sparsity (SPEC 8, Appendix E).

A generated x is memorized when ||x - NN1||^2 <= c ||x - NN2||^2 with c = 1/9, NN1 and NN2
its nearest and second-nearest training points (Yoon et al. 2023). The memorization
ratio is the memorized fraction of B samples, with a Wilson score interval.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor

MEMORIZATION_C = 1 / 9
"""The ratio c of squared distances in the memorization rule (SPEC 7)."""


def nearest_two(x: Tensor, train: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distances [..., B] of x [..., B, d] to its nearest and second-nearest training point."""
    if train.shape[0] < 2:
        raise ValueError(f"the memorization rule needs at least 2 training points, got {train.shape[0]}")
    sq = torch.cdist(x, train.to(x.dtype), compute_mode="donot_use_mm_for_euclid_dist") ** 2   # [..., B, N]
    two = sq.topk(2, dim=-1, largest=False).values
    return two[..., 0], two[..., 1]


def memorized(x: Tensor, train: Tensor, c: float = MEMORIZATION_C) -> Tensor:
    """Bool [..., B]: ||x - NN1||^2 <= c ||x - NN2||^2."""
    d1, d2 = nearest_two(x, train)
    return d1 <= c * d2


def wilson_interval(k: Tensor, n: int, level: float = 0.95) -> tuple[Tensor, Tensor]:
    """Wilson score interval (lo, hi) for a binomial proportion k/n, k a tensor of counts."""
    if not 0 < level < 1:
        raise ValueError(f"level={level} must lie in (0, 1)")
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    zq = NormalDist().inv_cdf(0.5 + level / 2)
    phat = k.double() / n
    centre = (phat + zq**2 / (2 * n)) / (1 + zq**2 / n)
    half = zq / (1 + zq**2 / n) * torch.sqrt(phat * (1 - phat) / n + zq**2 / (4 * n**2))
    return (centre - half).clamp(0, 1), (centre + half).clamp(0, 1)


def memorization_ratio(x: Tensor, train: Tensor, level: float = 0.95) -> tuple[Tensor, Tensor, Tensor]:
    """(ratio, lo, hi) [...]: memorized fraction of the B samples x [..., B, d] and its interval."""
    flags = memorized(x, train)
    k = flags.sum(-1)
    lo, hi = wilson_interval(k, flags.shape[-1], level)
    return k.double() / flags.shape[-1], lo, hi


def top_gap(v: Tensor) -> Tensor:
    """gamma [...]: the largest minus the second-largest entry of v [..., n]."""
    two = v.topk(2, dim=-1).values
    return two[..., 0] - two[..., 1]


def set_gap(v: Tensor, S: Tensor) -> Tensor:
    """gamma_S [...]: max of v over S minus max over its complement; S [..., n] bool."""
    inf = torch.tensor(float("inf"), dtype=v.dtype)
    return v.masked_fill(~S, -inf).amax(-1) - v.masked_fill(S, -inf).amax(-1)


def _norm(u: Tensor, p: float) -> Tensor:
    if not p >= 1:
        raise ValueError(f"p={p} must be >= 1 (math.inf allowed)")
    return torch.linalg.vector_norm(u, ord=p, dim=-1)


def softmax_deviation(v: Tensor, T: float, p: float) -> Tensor:
    """||softmax(v/T) - e_k||_p [...], k the argmax of v [..., n] (Lemma D.1's left side)."""
    s = torch.softmax(v / T, dim=-1)
    e = torch.nn.functional.one_hot(v.argmax(-1), v.shape[-1]).to(s.dtype)
    return _norm(s - e, p)


def set_deviation(v: Tensor, S: Tensor, T: float, p: float) -> Tensor:
    """||softmax(v/T) - softmax(v/T restricted to S)||_p [...] (Lemma D.2's left side)."""
    s = torch.softmax(v / T, dim=-1)
    q = torch.softmax((v / T).masked_fill(~S, float("-inf")), dim=-1)
    return _norm(s - q, p)


def top_mass(p: Tensor) -> Tensor:
    """The largest probability [...] of a distribution p [..., n]."""
    return p.amax(-1)


def effective_number(p: Tensor) -> Tensor:
    """exp(entropy) [...] of p [..., n]: 1 for a one-hot p, n for the uniform one."""
    ent = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(-1)
    return torch.exp(ent)


def nearest_distance(points: Tensor, reference: Tensor) -> Tensor:
    """Euclidean distance [M] of each point [M, d] to its nearest reference point [n, d].

    The learned-means diagnostic of the paper's Figure 6: learned means against the training
    points (memorized means sit at distance ~0) and against the true means (generalizing
    means sit near a true mean).
    """
    return torch.cdist(points, reference.to(points.dtype),
                       compute_mode="donot_use_mm_for_euclid_dist").amin(-1)


def near_counts(means: Tensor, train: Tensor, true_means: Tensor, ratio: float = 1 / 3) -> tuple[int, int]:
    """How many learned means [M, d] lie near a training point and how many near a true mean, by
    the 1/3 rule of the paper's code (distances, not squared): a mean is near a training point when
    its nearest one is closer than `ratio` times both its second-nearest training point and its
    nearest true mean, and near a true mean likewise with the roles exchanged (one reference
    alone, when there is one, is never a runner-up)."""
    def two(reference):
        dist = torch.cdist(means, reference.to(means.dtype), compute_mode="donot_use_mm_for_euclid_dist")
        near = dist.topk(min(2, reference.shape[0]), dim=-1, largest=False).values
        return near[:, 0], near[:, 1] if near.shape[1] > 1 else torch.full_like(near[:, 0], float("inf"))

    to_train, runner_train = two(train)
    to_true, runner_true = two(true_means)
    near_train = (to_train < ratio * runner_train) & (to_train < ratio * to_true)
    near_true = (to_true < ratio * runner_true) & (to_true < ratio * to_train)
    return int(near_train.sum()), int(near_true.sum())
