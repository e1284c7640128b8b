"""The Monte Carlo denoising loss against closed forms and the orthogonality decomposition."""

import math

import pytest
import torch

from memlab.denoisers import ideal, memorizing, xhat0
from memlab.gmm import make_problem
from memlab.loss import loss_per_time, sample_loss, weighted, weighting
from memlab.schedule import noisy, psi, time_grid


def test_single_gaussian_mmse_matches_closed_form(gen):
    """K = 1: the ideal denoiser's expected loss is exactly d var / (psi var + 1) at every t.

    Per-sample losses are i.i.d. (fresh data, one noise draw), so 5 standard errors bound the gap.
    """
    d, var = 6, 0.8
    problem = make_problem(20_000, d, 1, gen, var=var)
    times = time_grid()[[0, 8, 16, 25]]
    per = loss_per_time(ideal(problem), problem.train, times, 1, gen)[0]      # [N, T]
    expected = d * var / (psi(times) * var + 1)
    se = per.std(0) / math.sqrt(per.shape[0])
    assert bool(((per.mean(0) - expected).abs() <= 5 * se).all()), (per.mean(0), expected, se)


def test_eps_units_are_psi_times_x0_units(gen):
    problem = make_problem(50, 5, 3, gen)
    gmm = ideal(problem)
    t = time_grid()[torch.randint(26, (50,), generator=gen)]
    z = torch.randn(3, 50, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(sample_loss(gmm, problem.train, t, z, "eps"),
                               psi(t) * sample_loss(gmm, problem.train, t, z, "x0"))


def test_loss_decomposes_around_the_memorizing_denoiser(gen):
    """L(xhat) = E||xhat - xmem||^2 + L(xmem): the cross term has mean zero (orthogonality).

    Checked on 200,000 pairs (sample, noise) with a tolerance of 5 standard errors of the cross term.
    """
    problem = make_problem(20, 2, 3, gen)
    x0 = problem.train
    t = torch.tensor(0.5, dtype=torch.float64)
    z = torch.randn(10_000, 20, 2, generator=gen, dtype=torch.float64)
    xt = noisy(x0, t, z).reshape(-1, 2)
    target = x0.repeat(10_000, 1)
    x_ideal = xhat0(xt, t, ideal(problem))[0]
    x_mem = xhat0(xt, t, memorizing(x0))[0]
    lhs = (x_ideal - target).pow(2).sum(-1)
    rhs = (x_ideal - x_mem).pow(2).sum(-1) + (x_mem - target).pow(2).sum(-1)
    gap = lhs - rhs
    assert abs(float(gap.mean())) <= 5 * float(gap.std()) / math.sqrt(gap.numel())
    # the cross term is not trivially zero pointwise: the test has power
    assert float(gap.std()) > 0.1
    # and loss_per_time gives the same L(ideal) for the same noise stream
    per = loss_per_time(ideal(problem), x0, t[None], 10_000, torch.Generator().manual_seed(99))
    z2 = torch.randn(10_000, 20, 2, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    direct = sample_loss(ideal(problem), x0, t, z2)
    torch.testing.assert_close(per[..., 0], direct)


def test_chunking_does_not_change_the_loss(gen, monkeypatch):
    problem = make_problem(40, 3, 2, gen)
    gmm = memorizing(problem.train)
    times = time_grid()[::5]
    whole = loss_per_time(gmm, problem.train, times, 8, torch.Generator().manual_seed(5))
    monkeypatch.setattr("memlab.loss._CHUNK_ELEMENTS", 40 * 40 * 3)   # 3 noise draws per chunk
    torch.testing.assert_close(loss_per_time(gmm, problem.train, times, 8, torch.Generator().manual_seed(5)), whole)


def test_weightings_and_their_errors():
    times = time_grid()
    torch.testing.assert_close(weighting("psi", times), (1 - times**2) / times**2)
    assert weighted(torch.ones(3, 26), weighting("uniform", times)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="weighting='snr' must be one of 'psi', 'uniform'"):
        weighting("snr", times)
    with pytest.raises(ValueError, match="units='x' must be 'x0' or 'eps'"):
        sample_loss(None, torch.zeros(2, 2), 0.5, torch.zeros(1, 2, 2), "x")
    with pytest.raises(ValueError, match="n_noise=0 must be a positive int"):
        loss_per_time(None, torch.zeros(2, 2), times, 0, torch.Generator())
