"""The closed forms of the paper's approximations."""

import pytest
import torch

from memlab.loss import weighting
from memlab.schedule import representative_time, time_grid
from memlab.theory import crossover, generalizing_excess, memorizing_excess


def test_crossover_uniform_weighting_is_one_minus_mean_t_squared():
    """With lambda = 1, 1/(psi + 1) = t^2, so M*/N = 1 - mean(t^2)/C (computed here in numpy)."""
    times = time_grid()
    mean_t2 = float((times.numpy() ** 2).mean())
    for C in (1.0, 2.0):
        assert abs(float(crossover(weighting("uniform", times), times, C)) - (1 - mean_t2 / C)) < 1e-12


def test_crossover_is_invariant_to_scaling_lambda_and_near_one_for_psi():
    times = time_grid()
    lam = weighting("psi", times)
    assert float(crossover(lam, times, 1.0)) == pytest.approx(float(crossover(7.3 * lam, times, 1.0)), abs=1e-12)
    # psi weights t = 0.001 by 1e6, where the generalizing excess vanishes: M*/N -> 1
    assert float(crossover(lam, times, 1.0)) > 0.999


def test_crossover_equates_the_two_weighted_excess_losses():
    times = time_grid()
    lam = torch.rand(26, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for C in (1.0, 1.5, 2.0):
        m = crossover(lam, times, C, var=1.3)
        gen = (lam * generalizing_excess(times, 40, 1.3)).mean()
        mem = lam.mean() * memorizing_excess(m, 40, C, 1.3)
        assert abs(float(gen - mem)) < 1e-10


def test_representative_excess_and_errors():
    t = representative_time()
    assert abs(float(generalizing_excess(t, 50)) - 50 * float(t) ** 2) < 1e-12   # 1/(psi+1) = t^2
    assert float(memorizing_excess(0.25, 50, 2.0)) == 75.0
    with pytest.raises(ValueError, match="C=0 must be > 0"):
        crossover(torch.ones(26), time_grid(), 0)


def test_coinciding_means_make_theorem_3_1_exact_for_the_ideal_loss():
    """With all K means at the origin (radius 0, the overlapping-modes chapter's limit) the data is
    N(0, var I), the ideal denoiser is the linear shrinkage (alpha var / v) x, and its loss is
    d var / (psi var + 1) exactly. Monte Carlo over n points: the squared error is (mmse / d) chi^2_d,
    so the mean has relative sd sqrt(2 / (d n)) = 0.7%; the tolerance is 4 sd."""
    from memlab.denoisers import ideal
    from memlab.gmm import make_problem
    from memlab.loss import loss_per_time

    d, n, var = 10, 4000, 2.0
    problem = make_problem(n, d, 3, torch.Generator().manual_seed(0), var=var, radius=0.0)
    times = time_grid()[[3, 16, 22]]
    measured = loss_per_time(ideal(problem), problem.train, times, 1, torch.Generator().manual_seed(1)).mean((0, 1))
    expected = generalizing_excess(times, d, var)
    assert torch.allclose(measured, expected, rtol=4 * (2 / (d * n)) ** 0.5)
