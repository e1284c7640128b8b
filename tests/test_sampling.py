"""DDIM against closed forms and the memorization limits."""

import math

import pytest
import torch

from memlab.denoisers import ideal, memorizing
from memlab.gmm import make_problem, sample_mixture
from memlab.metrics import memorization_ratio
from memlab.sampling import ddim
from memlab.schedule import alpha, sigma, time_grid


def test_ddim_on_one_gaussian_matches_the_exact_linear_recursion(gen):
    """K = 1: each DDIM step is affine, x -> A x + b, so the output law is N(m, s^2 I) in closed form.

    The recursion is computed here in scalars, independently of the sampler; the sample
    mean and variance of 100,000 draws must match it within 5 standard errors.
    """
    d, var = 3, 0.6
    problem = make_problem(1, d, 1, gen, var=var)
    mu = problem.means[0]
    times = time_grid()
    m, s = torch.zeros(d, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    for t, tn in zip(times[:-1], times[1:]):
        r = sigma(tn) / sigma(t)
        a, an = alpha(t), alpha(tn)
        v = a**2 * var + sigma(t) ** 2
        slope = r + (an - r * a) * a * var / v          # d xhat0 / dx = a var / v
        m = slope * m + (an - r * a) * (mu - a * var / v * a * mu)
        s = slope * s
    n = 100_000
    x = ddim(ideal(problem), torch.randn(n, d, generator=gen, dtype=torch.float64))[0]
    assert bool(((x.mean(0) - m).abs() <= 5 * s / math.sqrt(n)).all())
    assert abs(float(x.var(0).mean()) - float(s**2)) <= 5 * float(s**2) * math.sqrt(2 / (n * d))


def test_ddim_with_the_ideal_denoiser_reproduces_the_mixture_moments(gen):
    """On a fine grid the DDIM ODE is exact: mean and covariance of the mixture.

    40,000 samples: standard error of the mean ~0.006, of a covariance entry ~0.01; the
    tolerance 0.05 adds the O(1/steps) discretisation error of 2,000 steps.
    """
    problem = make_problem(10, 3, 4, gen)
    times = torch.cat([torch.linspace(0.99999, 0.9, 500, dtype=torch.float64)[:-1],
                       torch.linspace(0.9, 0.001, 1500, dtype=torch.float64)])
    x = ddim(ideal(problem), torch.randn(40_000, 3, generator=gen, dtype=torch.float64), times)[0]
    ref, _ = sample_mixture(problem.means, problem.var, 400_000, gen)
    torch.testing.assert_close(x.mean(0), ref.mean(0), rtol=0, atol=0.05)
    torch.testing.assert_close(torch.cov(x.T), torch.cov(ref.T), rtol=0, atol=0.05)


def test_memorizing_denoiser_memorizes_and_ideal_does_not(paper_problem, gen):
    """Paper setting N=200, d=50, K=12, on the 26-point grid with 200 samples."""
    z = torch.randn(200, 50, generator=gen, dtype=torch.float64)
    mem, _, _ = memorization_ratio(ddim(memorizing(paper_problem.train), z), paper_problem.train)
    gen_ratio, _, hi = memorization_ratio(ddim(ideal(paper_problem), z), paper_problem.train)
    assert float(mem) == 1.0
    assert float(gen_ratio) <= 0.02 and float(hi) < 0.05


def test_ddim_refuses_an_ascending_grid():
    problem = make_problem(5, 2, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="descending"):
        ddim(ideal(problem), torch.zeros(3, 2, dtype=torch.float64), time_grid().flip(0))
