"""The linear law of the memorization threshold and the paper's account of it (eqs. 20-23, SPEC 8).

- `hypothesis_losses`: Monte Carlo training losses, per grid time, of pmem_M (M training points,
  a fresh random subset at each time as in the paper's code) on a grid of M, of the ideal and of the memorizing denoiser, with common noise.
- `crossing`: where a weighted loss gap (pmem minus ideal) first turns <= 0: the hypothesis's M*/N.
- `soft_crossover`: the paper's smoothed argmin, sum_M (M/N) softmax_M(-gap(M)^2 / tau).
- `approximate_gaps`: the gap of the approximate losses (Theorems 3.2 minus 3.1), what the paper fits on.
- `fit_weighting`: the paper's fitted weighting lambda~ on the grid times (eqs. 22-23), on any gaps:
  the approximate ones (the paper's estimator) or Monte Carlo ones (the book's extension).
- `where_weight_sits`: the peak and mean time of a weighting.
- `same_ratio_weighting`: a very different weighting that eq. 21 cannot tell from a given one.
- `linear_law`, `regression`: least squares with confidence intervals.

Gaps are in units of d var (per coordinate, per unit of variance) and weightings are
normalised to E_t[lambda] = 1, so that tau = 1/20 means the same thing in every setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from memlab.denoisers import ideal, memorizing, partially_memorizing
from memlab.gmm import Problem
from memlab.loss import loss_per_time
from memlab.schedule import psi, time_grid
from memlab.streams import generator
from memlab.theory import generalizing_excess, memorizing_excess


CAPACITY_STEPS = 50
"""Steps of the hypothesis's capacity grid: M = N/50, 2N/50, ..., N (our choice; fewer distinct M when N < 50)."""


def capacity_grid(N: int, n: int = CAPACITY_STEPS) -> list[int]:
    """M = N/n, 2N/n, ..., N (rounded, distinct): where the hypothesis looks for its crossing.

    There are min(N, n) of them: below N = n, rounding merges steps smaller than one M."""
    return sorted({max(1, round(N * j / n)) for j in range(1, n + 1)})


def hypothesis_losses(problem: Problem, Ms: Sequence[int], n_noise: int, seed: int) -> dict[str, Tensor]:
    """Training losses (x0 units, mean over the N training points) at every grid time.

    Returns 'pmem' [len(Ms), T], 'ideal' [T], 'mem' [T]; all three see the same noise (stream
    "reference_loss" of `seed`). pmem_M's M points are drawn afresh at each time, as the paper's
    code does (stream ("reference_loss", 1) of `seed`), one subset per time shared by every M.
    """
    times = time_grid()

    def mc(model):
        return loss_per_time(model, problem.train, times, n_noise, generator(seed, "reference_loss")).mean(1)

    noise, subsets = generator(seed, "reference_loss"), generator(seed, "reference_loss", 1)
    pmem = torch.cat([loss_per_time(partially_memorizing(problem.train, list(Ms), subsets), problem.train,
                                    t[None], n_noise, noise).mean(1) for t in times], dim=-1)
    return {"pmem": pmem, "ideal": mc(ideal(problem))[0], "mem": mc(memorizing(problem.train))[0]}


def normalised(lam: Tensor) -> Tensor:
    """lambda / E_t[lambda], after checking it is a weighting (>= 0, not all zero)."""
    if bool((lam < 0).any()) or not bool((lam > 0).any()):
        raise ValueError("a weighting lambda must be >= 0 and not all zero")
    return lam / lam.mean()


def weighted_gap(losses: dict[str, Tensor], lam: Tensor, d: int, var: float = 1.0) -> Tensor:
    """E_t[lambda (L_t(pmem_M) - L_t(ideal))] / (d var) for each M: [len(Ms)]."""
    return ((losses["pmem"] - losses["ideal"]) * normalised(lam)).mean(-1) / (d * var)


def crossing(m: Tensor, gap: Tensor) -> float:
    """The first M/N (linearly interpolated) where gap turns <= 0; nan if it never does."""
    below = (gap <= 0).nonzero()
    if len(below) == 0:
        return float("nan")
    j = int(below[0])
    if j == 0:
        return float(m[0])
    return float(m[j - 1] + (m[j] - m[j - 1]) * gap[j - 1] / (gap[j - 1] - gap[j]))


def _soft_argmin(gap: Tensor, tau: float) -> Tensor:
    """p~ = softmax_M(-gap(M)^2 / tau): the paper's smoothed argmin over the capacity grid."""
    if not tau > 0:
        raise ValueError(f"tau={tau} must be > 0")
    return torch.softmax(-gap.pow(2) / tau, dim=-1)


def soft_crossover(m: Tensor, gap: Tensor, tau: float) -> Tensor:
    """The paper's smoothed argmin of gap^2 over the capacity grid: sum_M (M/N) softmax(-gap^2 / tau)."""
    return (m * _soft_argmin(gap, tau)).sum(-1)


def approximate_gaps(m: Tensor, C: float, times: Tensor | None = None, var: float = 1.0) -> Tensor:
    """[len(m), T]: the approximate excess loss of pmem_M (Theorem 3.2) minus the ideal's (Theorem 3.1),
    over d var, at M/N = m and every grid time: C (1 - M/N) - 1/(psi_t var + 1). No N, d or K in it."""
    times = time_grid() if times is None else times
    return memorizing_excess(m, 1, C, var)[:, None] / var - generalizing_excess(times, 1, var)[None, :] / var


def fit_weighting(m: Sequence[Tensor], gaps_per_time: Sequence[Tensor], targets: Tensor, tau: float = 1 / 20,
                  entropy: float = 1e-3, steps: int = 3000, lr: float = 0.05) -> Tensor:
    """The fitted weighting lambda~ [T] (normalised to mean 1) of paper eqs. 22-23.

    Setting s contributes its capacity grid m[s] (M/N) and per-time gaps [len(m[s]), T] (over d var:
    `approximate_gaps` for the paper's estimator, Monte Carlo ones for the book's variant).
    lambda~ = T softmax(theta) minimises mean_s (soft_crossover_s - target_s)^2 + entropy * mean_s H(p~_s),
    p~_s the smoothed argmin over M of setting s: the entropy term makes p~ sparse, as the paper's.
    Adam from the uniform weighting (theta = 0), `steps` steps of rate `lr`.
    """
    if len(m) != len(gaps_per_time) or len(m) != len(targets) or len(m) == 0:
        raise ValueError(f"need one capacity grid, gap table and target per setting: got {len(m)}, "
                         f"{len(gaps_per_time)}, {len(targets)}")
    if entropy < 0:
        raise ValueError(f"entropy={entropy} must be >= 0")
    T = gaps_per_time[0].shape[-1]
    theta = torch.zeros(T, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        q = torch.softmax(theta, 0)
        p = [_soft_argmin((g * q).sum(-1), tau) for g in gaps_per_time]
        pred = torch.stack([(ms * ps).sum() for ms, ps in zip(m, p)])
        spread = torch.stack([-(ps * torch.log(ps.clamp_min(1e-300))).sum() for ps in p]).mean()
        loss = (pred - targets).pow(2).mean() + entropy * spread
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (T * torch.softmax(theta, 0)).detach()


def predicted(m: Sequence[Tensor], gaps_per_time: Sequence[Tensor], lam: Tensor, tau: float = 1 / 20) -> Tensor:
    """soft_crossover of every setting under the weighting lam [T]."""
    q = normalised(lam) / len(lam)
    return torch.stack([soft_crossover(ms, (g * q).sum(-1), tau) for ms, g in zip(m, gaps_per_time)])


def eq21_ratio(lam: Tensor, times: Tensor | None = None, var: float = 1.0) -> float:
    """E_t[lambda / (psi_t var + 1)] / E_t[lambda]: the only thing eq. 21 sees of a weighting."""
    times = time_grid() if times is None else times
    return float((normalised(lam) / (psi(times) * var + 1)).mean())


def where_weight_sits(lam: Tensor, times: Tensor | None = None, var: float = 1.0) -> dict:
    """Where a weighting puts its mass on the grid: the time of its largest weight, its mean time
    E[lambda t] / E[lambda], the share of its mass on its two largest weights, and the time whose 1/(psi_t var + 1) equals its eq. 21 ratio (with
    var = 1 that is t = sqrt(ratio), since 1/(psi_t + 1) = t^2)."""
    times = time_grid() if times is None else times
    lam = normalised(lam)
    ratio = eq21_ratio(lam, times, var)
    a = 1 / (psi(times) * var + 1)
    top = torch.topk(lam, 2).indices
    return {"peak t": float(times[int(lam.argmax())]), "mean t": float((lam * times).mean()),
            "share of the top two times": float(lam[top].sum() / lam.sum()),
            "eq. 21 ratio": ratio, "t where 1/(psi+1) = ratio": float(times[int((a - ratio).abs().argmin())])}


def same_ratio_weighting(lam: Tensor, times: Tensor | None = None, var: float = 1.0) -> Tensor:
    """A weighting on just two grid times with the same eq. 21 ratio as lam (normalised to mean 1).

    The two times are the grid neighbours whose 1/(psi var + 1) bracket lam's ratio.
    """
    times = time_grid() if times is None else times
    target = eq21_ratio(lam, times, var)
    a = 1 / (psi(times) * var + 1)                                  # increases with t
    order = torch.argsort(a)
    j = int(torch.searchsorted(a[order], torch.tensor(target, dtype=a.dtype)))
    j = min(max(j, 1), len(a) - 1)
    lo, hi = int(order[j - 1]), int(order[j])
    w_hi = (target - float(a[lo])) / float(a[hi] - a[lo])
    out = torch.zeros_like(times)
    out[lo], out[hi] = 1 - w_hi, w_hi
    return normalised(out)


def linear_law(N: Sequence[float], M_pt: Sequence[float], level: float = 0.95) -> dict:
    """Least-squares line M_pt = a + b N, and the line through the origin M_pt = c N, with
    `level` confidence intervals (Student t on the residuals)."""
    N, y = np.asarray(N, dtype=float), np.asarray(M_pt, dtype=float)
    n = len(N)
    if n < 3 or len(set(N)) < 2:
        values = ", ".join(f"{v:g}" for v in sorted(set(N.tolist())))
        raise ValueError(f"a line with a confidence interval needs at least 3 runs at at least 2 distinct N; "
                         f"got {n} run{'s' if n != 1 else ''}" + (f" at N = {values}" if n else ""))
    fit = stats.linregress(N, y)
    q = stats.t.ppf((1 + level) / 2, n - 2)
    c = float(N @ y / (N @ N))
    c_se = float(np.sqrt(((y - c * N) ** 2).sum() / (n - 1) / (N @ N)))
    q0 = stats.t.ppf((1 + level) / 2, n - 1)
    return {"slope": fit.slope, "slope_lo": fit.slope - q * fit.stderr, "slope_hi": fit.slope + q * fit.stderr,
            "intercept": fit.intercept, "intercept_lo": fit.intercept - q * fit.intercept_stderr,
            "intercept_hi": fit.intercept + q * fit.intercept_stderr, "r2": fit.rvalue**2,
            "origin_slope": c, "origin_lo": c - q0 * c_se, "origin_hi": c + q0 * c_se, "n": n, "level": level}


def line_band(law: dict, N: np.ndarray, N_data: Sequence[float], M_data: Sequence[float]) -> tuple[np.ndarray, ...]:
    """The fitted line a + b N and its pointwise confidence band at the points N."""
    x, y = np.asarray(N_data, dtype=float), np.asarray(M_data, dtype=float)
    n = len(x)
    fit = law["intercept"] + law["slope"] * x
    s = np.sqrt(((y - fit) ** 2).sum() / (n - 2))
    half = stats.t.ppf((1 + law["level"]) / 2, n - 2) * s * np.sqrt(1 / n + (N - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    mid = law["intercept"] + law["slope"] * N
    return mid, mid - half, mid + half


def _listed(names: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else list(names))


def regression(table: pd.DataFrame, response: str, factors: Sequence[str], level: float = 0.95) -> pd.DataFrame:
    """Ordinary least squares of `response` on the `factors` that vary (plus an intercept):
    estimate, standard error, confidence interval and two-sided p-value per term.

    One row per run. Raises ValueError when the runs cannot estimate every term with an interval:
    fewer runs than terms plus one (no residual degrees of freedom), or factors confounded with
    one another (a linear combination of them and the intercept is constant over the runs).
    """
    varying = [f for f in factors if table[f].nunique() > 1]
    terms = ["intercept", *varying]
    X = np.column_stack([np.ones(len(table))] + [table[f].to_numpy(float) for f in varying])
    y = table[response].to_numpy(float)
    n, p = X.shape
    dof = n - p
    if dof < 1:
        raise ValueError(f"{n} runs cannot fit {p} coefficients ({', '.join(terms)}) with intervals: "
                         f"that needs at least {p + 1} runs (one residual degree of freedom)")
    scaled = X / np.linalg.norm(X, axis=0)                     # columns of unit length: a scale-free rank
    rank = int(np.linalg.matrix_rank(scaled))
    if rank < p:
        null = np.linalg.svd(scaled)[2][rank:]                   # combinations of the terms that vanish
        tangled = [t for t, w in zip(varying, np.abs(null).max(0)[1:]) if w > 1e-8]
        settings = len(table[varying].drop_duplicates())
        raise ValueError(f"{n} runs in {settings} settings cannot separate the {p} coefficients "
                         f"({', '.join(terms)}): {_listed(tangled)} are confounded, a linear combination of them being "
                         f"constant over these runs (the design has rank {rank} < {p}); separating them needs "
                         f"runs at {p} or more settings on which no factor is a linear function of the others")
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    cov = (resid @ resid / dof) * np.linalg.inv(X.T @ X)
    se = np.sqrt(np.diag(cov))
    q = stats.t.ppf((1 + level) / 2, dof)
    return pd.DataFrame({"estimate": beta, "se": se, "ci_lo": beta - q * se, "ci_hi": beta + q * se,
                         "p": 2 * stats.t.sf(np.abs(beta / se), dof)}, index=terms)
