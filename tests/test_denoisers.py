"""The GMM denoiser against independent references (float64 throughout)."""

import math

import pytest
import torch

from memlab.denoisers import GMM, eps_hat, ideal, memorizing, partially_memorizing, score, xhat0
from memlab.gmm import log_density, make_problem, sample_mixture
from memlab.schedule import alpha, noisy, sigma, time_grid


def test_1d_denoiser_matches_quadrature(gen):
    """d = 1: E[X0 | Xt = x] by trapezoid quadrature over x0 (error ~1e-10 on this grid)."""
    means = torch.tensor([[-2.0], [0.5], [3.0]], dtype=torch.float64)
    var = 0.3
    gmm = GMM(means[None], torch.tensor([var], dtype=torch.float64))
    x0 = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    prior = sum(torch.exp(-(x0 - m) ** 2 / (2 * var)) for m in means[:, 0])
    for t in (0.05, 0.36, 0.8, 0.999):
        t = torch.tensor(t, dtype=torch.float64)
        x = torch.linspace(-4, 4, 9, dtype=torch.float64)
        like = torch.exp(-(x[:, None] - alpha(t) * x0) ** 2 / (2 * sigma(t) ** 2))
        post = prior * like
        expected = torch.trapezoid(post * x0, x0, dim=1) / torch.trapezoid(post, x0, dim=1)
        got = xhat0(x[:, None], t, gmm)[0, :, 0]
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)


def test_denoiser_matches_self_normalised_monte_carlo(gen):
    """d = 4: posterior mean by importance sampling from the prior, tolerance 5 standard errors."""
    problem = make_problem(10, 4, 3, gen, var=0.5)
    gmm = ideal(problem)
    t = torch.tensor(0.7, dtype=torch.float64)
    x = noisy(problem.test[:3], t, torch.randn(3, 4, generator=gen, dtype=torch.float64))
    prior, _ = sample_mixture(problem.means, problem.var, 400_000, gen)
    logw = -((x[:, None, :] - alpha(t) * prior) ** 2).sum(-1) / (2 * sigma(t) ** 2)   # [3, S]
    w = torch.softmax(logw, dim=1)
    est = w @ prior                                                                     # [3, d]
    # delta-method standard error of a self-normalised estimate: sqrt(sum w^2 (x0 - est)^2)
    se = torch.sqrt((w[..., None] ** 2 * (prior - est[:, None, :]) ** 2).sum(1))
    got = xhat0(x, t, gmm)[0]
    assert bool(((got - est).abs() <= 5 * se).all()), (got, est, se)
    assert float(se.max()) < 0.05, "the Monte Carlo reference is too noisy to test anything"


def test_tweedie_score_equals_autograd_of_log_density(gen):
    """(alpha xhat0 - x)/sigma^2 = grad log p_t(x), p_t = mixture N(alpha mu, alpha^2 s2 + sigma^2)."""
    problem = make_problem(10, 6, 4, gen, var=0.7)
    gmm = ideal(problem)
    for t in (0.001, 0.2, 0.36, 0.9):
        t = torch.tensor(t, dtype=torch.float64)
        x = (alpha(t) * problem.test[:20] + sigma(t) * torch.randn(20, 6, generator=gen, dtype=torch.float64))
        x.requires_grad_(True)
        logp = log_density(x, alpha(t) * problem.means, alpha(t) ** 2 * problem.var + sigma(t) ** 2)
        (grad,) = torch.autograd.grad(logp.sum(), x)
        torch.testing.assert_close(score(x.detach(), t, gmm)[0], grad, rtol=1e-7, atol=1e-7)


def test_eps_hat_is_consistent_with_xhat0(gen):
    """x = alpha xhat0 + sigma epshat, the defining identity of the eps form."""
    problem = make_problem(30, 5, 3, gen)
    gmm = memorizing(problem.train)
    t = time_grid()[:, None].expand(26, 4).reshape(-1)
    x = torch.randn(t.shape[0], 5, generator=gen, dtype=torch.float64)
    rebuilt = alpha(t)[:, None] * xhat0(x, t, gmm)[0] + sigma(t)[:, None] * eps_hat(x, t, gmm)[0]
    torch.testing.assert_close(rebuilt, x, rtol=1e-12, atol=1e-10)


def test_memorizing_denoiser_returns_training_point_at_small_t(paper_problem, gen):
    train = paper_problem.train
    t = torch.tensor(0.001, dtype=torch.float64)
    x = noisy(train, t, torch.randn(train.shape, generator=gen, dtype=torch.float64))
    torch.testing.assert_close(xhat0(x, t, memorizing(train))[0], train, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_at_zero_variance_and_smallest_time(paper_problem, dtype):
    """Log-sum-exp softmax: far-away points, var = 0 and t = 0.001 stay finite."""
    train = paper_problem.train.to(dtype)
    x = torch.cat([1e4 * torch.ones(1, 50, dtype=dtype), train[:5], torch.zeros(1, 50, dtype=dtype)])
    for gmm in (memorizing(train), partially_memorizing(train, [1, 7, 200]), ideal(paper_problem)):
        gmm = GMM(gmm.means.to(dtype), gmm.var.to(dtype), gmm.mask)
        for t in (0.001, 0.999):
            assert torch.isfinite(xhat0(x, t, gmm)).all()
            assert torch.isfinite(eps_hat(x, t, gmm)).all()


def test_r_models_at_once_equal_r_separate_evaluations(paper_problem, gen):
    train = paper_problem.train
    Ms = [3, 50, 120, 200]
    together = partially_memorizing(train, Ms)
    t = time_grid()[torch.randint(26, (64,), generator=gen)]
    x = noisy(train[:64], t, torch.randn(64, 50, generator=gen, dtype=torch.float64))
    batch = xhat0(x, t, together)
    for r, M in enumerate(Ms):
        alone = GMM(train[:M][None], torch.zeros(1, dtype=torch.float64))
        torch.testing.assert_close(batch[r], xhat0(x, t, alone)[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batch[r], xhat0(x, t, together.select(r))[0], rtol=1e-12, atol=1e-12)
    # distinct per-model inputs [R, B, d] too
    xs = torch.randn(4, 10, 50, generator=gen, dtype=torch.float64)
    per = xhat0(xs, 0.3, together)
    for r in range(4):
        torch.testing.assert_close(per[r], xhat0(xs[r], 0.3, together.select(r))[0])


def test_bad_input_is_refused_with_a_clear_message(paper_problem):
    train = paper_problem.train
    gmm = memorizing(train)
    with pytest.raises(ValueError, match=r"time t=0.0 is outside the open interval \(0, 1\)"):
        xhat0(train, 0.0, gmm)
    with pytest.raises(ValueError, match="x has dimension 3, the model has d=50"):
        xhat0(torch.zeros(2, 3, dtype=torch.float64), 0.5, gmm)
    with pytest.raises(ValueError, match=r"every M must be an int in \[1, N=200\], got \[0, 5\]"):
        partially_memorizing(train, [0, 5])
    with pytest.raises(ValueError, match="var must be >= 0"):
        GMM(train[None], torch.tensor([-1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="N=0 must be a positive integer"):
        make_problem(0, 5, 3, torch.Generator())
    with pytest.raises(TypeError, match="d must be an int"):
        make_problem(10, 5.0, 3, torch.Generator())


def test_means_lie_on_the_sphere_and_data_has_the_right_moments(gen):
    problem = make_problem(20_000, 8, 1, gen, var=2.0)
    assert math.isclose(float(problem.means.norm()), math.sqrt(8), rel_tol=1e-12)
    centred = problem.train - problem.means[0]
    # per-coordinate variance 2 estimated from 160,000 values: relative SE sqrt(2/160000) = 0.0035
    assert abs(float(centred.var()) - 2.0) < 5 * 2.0 * math.sqrt(2 / centred.numel())
