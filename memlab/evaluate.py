"""Evaluation of trained GMM denoisers (SPEC 6-7): what the phase-transition figures plot.

For each model: the memorization ratio of DDIM samples with its Wilson interval, the
training and held-out losses at every grid time (x0 units, Monte Carlo), the learned
variance, and the distances of the learned means to the nearest training point and to
the nearest true mean (the paper's Figure 6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from memlab.denoisers import GMM
from memlab.gmm import Problem
from memlab.loss import loss_per_time
from memlab.metrics import memorization_ratio, nearest_distance
from memlab.sampling import ddim
from memlab.schedule import time_grid
from memlab.streams import generator


@dataclass(frozen=True)
class EvalSpec:
    """How a trained model is evaluated."""

    n_samples: int = 50   # DDIM samples for the memorization ratio (paper: 50)
    n_noise: int = 20     # noise draws per point and grid time for the losses (our choice)
    level: float = 0.95   # confidence level of the Wilson interval (our choice)

    def __post_init__(self):
        for name in ("n_samples", "n_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EvalSpec.{name}={value!r} must be a positive int")
        if not 0 < self.level < 1:
            raise ValueError(f"EvalSpec.level={self.level} must lie in (0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(gmm: GMM, problem: Problem, spec: EvalSpec, seed: int) -> list[dict]:
    """One record per model r of gmm (R models): plain floats and lists, ready for JSON.

    The DDIM start noise and the loss noise are the streams "ddim", "train_loss" and "test_loss"
    of `seed` (memlab.streams), the same for every model, so models are compared on common
    random numbers, and a model evaluated alone gets the numbers it gets in a batch.
    """
    d = problem.d
    z = torch.randn(spec.n_samples, d, generator=generator(seed, "ddim"), dtype=torch.float64)
    ratio, lo, hi = memorization_ratio(ddim(gmm, z), problem.train, spec.level)
    times = time_grid()
    train_loss = loss_per_time(gmm, problem.train, times, spec.n_noise, generator(seed, "train_loss")).mean(1)  # [R, T]
    test_loss = loss_per_time(gmm, problem.test, times, spec.n_noise, generator(seed, "test_loss")).mean(1)
    records = []
    for r in range(gmm.R):
        means = gmm.select(r).means[0]
        records.append({
            "M": int(means.shape[0]),
            "memorization": float(ratio[r]), "memorization_lo": float(lo[r]), "memorization_hi": float(hi[r]),
            "train_loss": train_loss[r].tolist(), "test_loss": test_loss[r].tolist(),
            "var": float(gmm.var[r]),
            "dist_train": nearest_distance(means, problem.train).tolist(),
            "dist_true": nearest_distance(means, problem.means).tolist(),
        })
    return records


def stored_model(arrays: dict[str, np.ndarray]) -> GMM:
    """The GMM (R = 1, float64) of one stored model: its float32 learned means [M, d] and scale [1]."""
    return GMM(torch.from_numpy(arrays["means"]).double()[None], torch.from_numpy(arrays["scale"]).double() ** 2)


def evaluate_stored(arrays: dict[str, np.ndarray], problem: Problem, spec: EvalSpec, seed: int) -> dict:
    """evaluate() of one stored model: its float32 learned means [M, d] and scale [1], as trained."""
    means = torch.from_numpy(arrays["means"]).double()[None]
    return evaluate(GMM(means, torch.from_numpy(arrays["scale"]).double() ** 2), problem, spec, seed)[0]
