"""The linear law's statistics and the hypothesis's crossover, against closed forms and coverage."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from memlab.gmm import make_problem
from memlab.scaling import (approximate_gaps, capacity_grid, crossing, eq21_ratio, fit_weighting, hypothesis_losses, linear_law,
                            normalised, predicted, regression, same_ratio_weighting, soft_crossover)
from memlab.schedule import psi, time_grid
from memlab.theory import crossover

times = time_grid()


def test_crossing_interpolates_the_root_of_a_linear_gap():
    m = torch.linspace(0.1, 1.0, 10, dtype=torch.float64)
    assert crossing(m, 0.73 - m) == pytest.approx(0.73, abs=1e-12)
    assert np.isnan(crossing(m, 2 - m))                                # never below zero
    assert crossing(m, -m) == pytest.approx(0.1)                       # below from the start


def test_soft_crossover_closed_form_and_its_hard_limit():
    m = torch.tensor([0.4, 0.9], dtype=torch.float64)
    gap = torch.tensor([0.3, -0.1], dtype=torch.float64)
    w = torch.exp(-gap**2 / 0.05)
    assert float(soft_crossover(m, gap, 0.05)) == pytest.approx(float((m * w).sum() / w.sum()), rel=1e-12)
    grid = torch.linspace(0, 1, 21, dtype=torch.float64)
    assert float(soft_crossover(grid, 0.65 - grid, 1e-5)) == pytest.approx(0.65, abs=1e-9)
    with pytest.raises(ValueError, match=r"tau=0 must be > 0"):
        soft_crossover(grid, grid, 0)


@pytest.mark.parametrize("C", [1.0, 1.5, 2.0])
def test_eq21_sees_a_weighting_only_through_its_ratio(C):
    gen = torch.Generator().manual_seed(0)
    lam = torch.rand(26, generator=gen, dtype=torch.float64)
    assert 1 - eq21_ratio(lam) / C == pytest.approx(float(crossover(lam, times, C)), rel=1e-12)
    assert eq21_ratio(7 * lam) == pytest.approx(eq21_ratio(lam), rel=1e-12)
    two = same_ratio_weighting(lam)
    assert eq21_ratio(two) == pytest.approx(eq21_ratio(lam), rel=1e-10)
    assert int((two > 0).sum()) == 2 and bool((two >= 0).all()) and float(two.mean()) == pytest.approx(1.0)
    assert float(crossover(two, times, C)) == pytest.approx(float(crossover(lam, times, C)), rel=1e-10)


def test_weightings_must_be_nonnegative_and_not_zero():
    with pytest.raises(ValueError, match="must be >= 0 and not all zero"):
        normalised(torch.zeros(26))
    with pytest.raises(ValueError, match="must be >= 0 and not all zero"):
        normalised(-torch.ones(26))


def test_fitted_weighting_recovers_the_ratio_not_the_weighting():
    """Gaps from the approximations (per coordinate: C (1 - M/N) - 1/(psi + 1)) and targets made by
    a known weighting: the fit reproduces the targets and the known ratio, with another weighting."""
    a = 1 / (psi(times) + 1)
    truth = torch.zeros(26, dtype=torch.float64)
    truth[[8, 20]] = torch.tensor([1.0, 3.0], dtype=torch.float64)
    ms, gaps = [], []
    for N, C in ((50, 1.2), (100, 1.5), (150, 1.8), (200, 2.0)):
        m = torch.tensor(capacity_grid(N), dtype=torch.float64) / N
        ms.append(m)
        gaps.append(C * (1 - m)[:, None] - a[None, :])
    targets = predicted(ms, gaps, truth, tau=0.05)
    lam = fit_weighting(ms, gaps, targets, tau=0.05, entropy=0.0, steps=3000)
    assert float((predicted(ms, gaps, lam, 0.05) - targets).pow(2).mean()) < 1e-6
    assert eq21_ratio(lam) == pytest.approx(eq21_ratio(truth), abs=2e-3)
    assert float((normalised(lam) - normalised(truth)).abs().max()) > 1.0     # not the same weighting
    with pytest.raises(ValueError, match="one capacity grid, gap table and target per setting"):
        fit_weighting(ms, gaps[:2], targets)


def test_approximate_gaps_are_theorem_3_2_minus_theorem_3_1():
    m = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    gaps = approximate_gaps(m, C=2.0, times=times, var=0.5)
    closed = 2.0 * (1 - m)[:, None] - 1 / (psi(times) * 0.5 + 1)[None, :]
    torch.testing.assert_close(gaps, closed, rtol=1e-12, atol=1e-12)


def _entropy_of_p(m, gap, tau):
    p = torch.softmax(-gap.pow(2) / tau, -1)
    return float(-(p * torch.log(p)).sum())


def test_paper_estimator_finds_the_one_dimensional_optimum_of_its_objective():
    """On the approximate losses the objective sees lambda only through r = E[lambda/(psi+1)]/E[lambda]
    (gap(M) = C (1 - M/N) - r), so its optimum over lambda is the optimum over r of
    (P(r) - y)^2 + eps H(r), found here by a grid search (independent of the fit's Adam). The fit
    recovers a planted weighting's ratio with eps = 0, and that optimum with the paper's eps; the
    entropy term sharpens p~ (lower H) instead of spreading lambda."""
    C, tau, eps = 2.0, 1 / 20, 1e-3
    ms = [torch.tensor(capacity_grid(N), dtype=torch.float64) / N for N in (30, 50, 100, 200)]
    gaps = [approximate_gaps(m, C, times) for m in ms]
    truth = torch.exp(-((times - 0.6) / 0.1) ** 2)
    targets = predicted(ms, gaps, truth, tau)
    r_true = eq21_ratio(truth)

    r = torch.linspace(0.2, 0.6, 401, dtype=torch.float64)           # step 1e-3
    gap_of = lambda m, x: C * (1 - m) - x
    objective = [np.mean([(float(soft_crossover(m, gap_of(m, x), tau)) - float(y)) ** 2
                          + eps * _entropy_of_p(m, gap_of(m, x), tau) for m, y in zip(ms, targets)]) for x in r]
    r_opt = float(r[int(np.argmin(objective))])

    plain = fit_weighting(ms, gaps, targets, tau, entropy=0.0)
    assert eq21_ratio(plain) == pytest.approx(r_true, abs=1e-3)
    sparse = fit_weighting(ms, gaps, targets, tau, entropy=eps)
    assert eq21_ratio(sparse) == pytest.approx(r_opt, abs=2e-3)            # grid step + Adam's tolerance
    entropies = [np.mean([_entropy_of_p(m, (g * normalised(lam) / 26).sum(-1), tau) for m, g in zip(ms, gaps)])
                 for lam in (plain, sparse)]
    assert entropies[1] <= entropies[0] + 1e-9
    with pytest.raises(ValueError, match="entropy=-1 must be >= 0"):
        fit_weighting(ms, gaps, targets, entropy=-1)


def test_linear_law_matches_polyfit_and_its_interval_covers():
    rng = np.random.default_rng(0)
    N = np.repeat([20.0, 30.0, 40.0, 50.0], 2)
    y = 3 + 0.8 * N + rng.normal(0, 2, N.size)
    law = linear_law(N, y)
    slope, intercept = np.polyfit(N, y, 1)
    assert law["slope"] == pytest.approx(slope, rel=1e-10) and law["intercept"] == pytest.approx(intercept, rel=1e-10)
    assert law["origin_slope"] == pytest.approx(float(N @ y / (N @ N)), rel=1e-12)
    # 95% intervals cover the truth in 95% of repetitions: 400 repetitions, SE 0.011, allow 3.6 SE
    hits = np.array([[law["slope_lo"] <= 0.8 <= law["slope_hi"], law["origin_lo"] <= 0.8 <= law["origin_hi"]]
                     for law in (linear_law(N, 0.8 * N + rng.normal(0, 2, N.size)) for _ in range(400))])
    assert 0.91 <= hits[:, 0].mean() <= 0.99 and 0.91 <= hits[:, 1].mean() <= 0.99
    need = r"a line with a confidence interval needs at least 3 runs at at least 2 distinct N"
    with pytest.raises(ValueError, match=need + r"; got 3 runs at N = 20$"):
        linear_law(np.array([20.0, 20.0, 20.0]), [16, 15, 17])
    with pytest.raises(ValueError, match=need + r"; got 2 runs at N = 20, 30$"):
        linear_law(pd.Series([20, 30]), [16, 24])                           # plain numbers, no numpy repr


def test_regression_matches_least_squares_and_linregress():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"N": rng.choice([50, 100, 150, 200], 40), "d": rng.choice([30, 40, 50, 60], 40), "K": 3})
    table["y"] = 0.8 + 1e-4 * table.N - 2e-3 * table.d + rng.normal(0, 0.02, 40)
    reg = regression(table, "y", ["N", "d", "K"])
    assert list(reg.index) == ["intercept", "N", "d"]                          # K does not vary: left out
    X = np.column_stack([np.ones(40), table.N, table.d])
    np.testing.assert_allclose(reg["estimate"], np.linalg.lstsq(X, table.y, rcond=None)[0], rtol=1e-10)
    one = regression(table, "y", ["N"])
    ref = stats.linregress(table.N, table.y)
    assert one.loc["N", "se"] == pytest.approx(ref.stderr, rel=1e-10)
    assert one.loc["N", "p"] == pytest.approx(ref.pvalue, rel=1e-8)
    with pytest.raises(ValueError, match=r"^3 runs cannot fit 3 coefficients \(intercept, N, d\) with intervals: "
                                         r"that needs at least 4 runs \(one residual degree of freedom\)$"):
        regression(table.iloc[:3], "y", ["N", "d"])                         # zero residual degrees of freedom
    with pytest.raises(ValueError, match=r"^2 runs cannot fit 3 coefficients"):
        regression(table.iloc[:2], "y", ["N", "d"])


def test_regression_refuses_confounded_factors():
    """The paper sweep's first stored runs: d = 50 exactly where N = 200, so N and d cannot be told apart
    (least squares would give intervals of +-1e11 and a divide-by-zero warning)."""
    table = pd.DataFrame({"N": [200, 50, 50, 50, 50, 50], "d": [50, 30, 30, 30, 30, 30], "K": [12, 3, 3, 6, 6, 9],
                          "y": [0.78, 0.82, 0.80, 0.80, 0.84, 0.80]})
    with pytest.raises(ValueError, match=r"^6 runs in 4 settings cannot separate the 4 coefficients "
                                         r"\(intercept, N, d, K\): N and d are confounded, .* \(the design has rank 3 "
                                         r"< 4\); separating them needs runs at 4 or more settings"):
        regression(table, "y", ["N", "d", "K"])
    assert list(regression(table, "y", ["N", "K"]).index) == ["intercept", "N", "K"]   # without d: identifiable
    table["d"] = 2 * table["N"] - 7 * table["K"]                           # a combination of three factors
    with pytest.raises(ValueError, match=r"N, d and K are confounded"):
        regression(table, "y", ["N", "d", "K"])


def test_hypothesis_losses_pmem_of_all_points_is_the_memorizing_denoiser():
    problem = make_problem(24, 6, 2, torch.Generator().manual_seed(0))
    losses = hypothesis_losses(problem, [6, 12, 24], n_noise=3, seed=5)
    assert losses["pmem"].shape == (3, 26) and losses["ideal"].shape == (26,)
    # the same points in another order (a random subset of all N): equal up to summation rounding
    torch.testing.assert_close(losses["pmem"][-1], losses["mem"], rtol=1e-12, atol=1e-20)
    # at the smallest time pmem_M returns memorized points: its loss falls as M grows
    assert bool((losses["pmem"][:, -1].diff() < 0).all())


def test_hypothesis_losses_draw_a_fresh_training_subset_at_each_time():
    """As the paper's code: at each grid time pmem_1 is the denoiser of one training point drawn
    afresh. Its loss there equals that of one of the N single-point denoisers on the same noise,
    and over the 26 times more than one point is drawn (all equal: probability 5^-25)."""
    from memlab.denoisers import partially_memorizing
    from memlab.loss import loss_per_time
    from memlab.schedule import time_grid
    from memlab.streams import generator
    problem = make_problem(5, 4, 2, torch.Generator().manual_seed(1))
    pmem = hypothesis_losses(problem, [1, 3], n_noise=2, seed=7)["pmem"][0]
    single = torch.stack([loss_per_time(partially_memorizing(problem.train[j:j + 1], [1]), problem.train,
                                        time_grid(), 2, generator(7, "reference_loss")).mean(1)[0] for j in range(5)])
    match = (single - pmem).abs() <= 1e-12 * single.abs()                  # [5 points, 26 times]
    assert bool(match.any(0).all())
    assert len({int(j) for j in match.float().argmax(0)}) > 1
