"""Softmax sparsity inside the laboratory: the lemmas on the real posterior weights, the
nominal denoiser, and the predicted logit gaps and constant C (all float64)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memlab.denoisers import GMM, ideal, logits, memorizing, partially_memorizing, posterior_weights, xhat0
from memlab.gmm import make_problem
from memlab.metrics import set_deviation, set_gap, softmax_deviation, top_gap
from memlab.schedule import alpha, noisy, psi, representative_time, sigma
from memlab.sparsity import (expected_max_normal, gap_moments_ideal, gap_moments_memorizing, nearest_neighbour_c,
                             nominal_xhat0, runner_up_gap)
from memlab.theory import set_bound, softmax_bound

NORMS = [1.0, 2.0, math.inf]


def _noisy_training_points(problem, t, generator):
    """x_t = alpha_t x_i + sigma_t z for every training point x_i, [N, d]."""
    z = torch.randn(problem.train.shape, generator=generator, dtype=torch.float64)
    return noisy(problem.train, torch.tensor(t, dtype=torch.float64), z)


# --- Lemmas D.1 / D.2 on the laboratory's own softmax -------------------------------------

@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 200), t=st.floats(0.001, 0.999), seed=st.integers(0, 2**31 - 1),
       which=st.sampled_from(["ideal", "memorizing", "partially memorizing"]), p=st.sampled_from(NORMS))
def test_laboratory_softmax_never_exceeds_the_lemma_bounds(d, t, seed, which, p):
    """Lemma D.1 on p = softmax(w) of the actual denoisers at x_t (T = 1: w already holds 1/(2 v_t)),
    and Lemma D.2 with S = the model's components that belong to x_i's true component."""
    gen = torch.Generator().manual_seed(seed)
    problem = make_problem(40, d, 4, gen)
    M = 15
    model = {"ideal": ideal(problem), "memorizing": memorizing(problem.train),
             "partially memorizing": partially_memorizing(problem.train, [M])}[which]
    x = _noisy_training_points(problem, t, gen)
    w = logits(x, t, model)[0]                                                # [N, n]
    n = w.shape[-1]
    deviation = softmax_deviation(w, 1.0, p)
    assert bool((deviation <= softmax_bound(top_gap(w), n) * (1 + 1e-9) + 1e-12).all())
    component_of = {"ideal": torch.arange(4), "memorizing": problem.train_labels,
                    "partially memorizing": problem.train_labels[:M]}[which]
    S = problem.train_labels[:, None] == component_of[None, :]               # [N, n]
    holds_max = S.gather(1, w.argmax(-1, keepdim=True))[:, 0]                # Lemma D.2 needs argmax in S
    keep = holds_max & ~S.all(-1)
    for i in keep.nonzero()[:, 0].tolist():
        size = int(S[i].sum())
        bound = set_bound(set_gap(w[i], S[i]), n, size, p)
        assert float(set_deviation(w[i], S[i], 1.0, p)) <= float(bound) * (1 + 1e-9) + 1e-12


# --- the nominal denoiser -------------------------------------------------------------

def test_nominal_denoiser_matches_its_closed_form(gen):
    """k = the mean nearest to x / alpha_t; nominal = mu_k + (alpha s2 / v)(x - alpha mu_k)."""
    problem = make_problem(30, 7, 5, gen)
    t = torch.tensor(0.6, dtype=torch.float64)
    x = _noisy_training_points(problem, float(t), gen)
    model = ideal(problem)
    k = torch.cdist(x, alpha(t) * problem.means).argmin(-1)
    v = alpha(t) ** 2 * problem.var + sigma(t) ** 2
    expected = problem.means[k] + (alpha(t) * problem.var / v) * (x - alpha(t) * problem.means[k])
    assert torch.allclose(nominal_xhat0(x, t, model)[0], expected, rtol=0, atol=1e-12)


def test_nominal_denoiser_returns_the_training_point_at_small_noise(gen):
    problem = make_problem(50, 10, 4, gen)
    x = _noisy_training_points(problem, 0.01, gen)
    assert torch.equal(nominal_xhat0(x, 0.01, memorizing(problem.train))[0], problem.train)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.floats(0.001, 0.999), d=st.integers(1, 30),
       scale=st.floats(0.0, 3.0))
def test_nominal_denoiser_error_is_bounded_by_the_softmax_tail(seed, t, d, scale):
    """xhat0 - nominal = (sigma^2 / v) sum_i p_i (mu_i - mu_k), so its norm is at most
    (sigma^2 / v)(1 - p_k) max_i ||mu_i - mu_k||, for any x; checked for R = 2 padded models."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(2, 6, d, generator=gen, dtype=torch.float64) * 3
    var = torch.tensor([0.0, scale], dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    model = GMM(means, var, mask)
    x = torch.randn(20, d, generator=gen, dtype=torch.float64) * 3
    p = posterior_weights(x, t, model)                                        # [R, B, M]
    k = p.argmax(-1)
    p_k = p.gather(-1, k[..., None])[..., 0]
    mu_k = torch.gather(means, 1, k[..., None].expand(2, 20, d))
    spread = (means[:, None] - mu_k[:, :, None]).norm(dim=-1).masked_fill(~mask[:, None], 0).amax(-1)
    v = alpha(torch.tensor(t, dtype=torch.float64)) ** 2 * var[:, None] + t**2   # [R, 1]
    bound = (t**2 / v) * (1 - p_k) * spread
    gap = (xhat0(x, t, model) - nominal_xhat0(x, t, model)).norm(dim=-1)
    assert bool((gap <= bound * (1 + 1e-9) + 1e-12).all())


# --- E[max of m normals] --------------------------------------------------------------

def test_expected_max_normal_closed_forms_and_monte_carlo(gen):
    e = expected_max_normal(torch.tensor([1, 2, 3]))
    assert torch.allclose(e, torch.tensor([0.0, 1 / math.sqrt(math.pi), 1.5 / math.sqrt(math.pi)],
                                          dtype=torch.float64), rtol=0, atol=1e-12)
    # m = 16 by Monte Carlo: 200,000 maxima, sd about 0.53, so SE about 0.0012
    maxima = torch.randn(200_000, 16, generator=gen, dtype=torch.float64).amax(-1)
    se = float(maxima.std()) / math.sqrt(maxima.numel())
    assert abs(float(expected_max_normal(16)) - float(maxima.mean())) < 4 * se


def test_expected_max_normal_rejects_bad_counts():
    with pytest.raises(ValueError, match="m=0 must be >= 1"):
        expected_max_normal(torch.tensor([3, 0]))
    with pytest.raises(TypeError, match="m must hold integers"):
        expected_max_normal(torch.tensor(2.5))


# --- predicted gaps ---------------------------------------------------------------------

def test_ideal_gap_to_a_typical_component_has_the_predicted_mean(gen):
    """E[w_k - w_l] over random sphere means, points and noise = psi~ d exactly; 40 draws of the
    mixture, SE from their spread (the mean of one draw varies with its <mu_k, mu_l>)."""
    d, K, t = 20, 12, 0.5
    per_draw = []
    for _ in range(40):
        problem = make_problem(100, d, K, gen)
        w = logits(_noisy_training_points(problem, t, gen), t, ideal(problem))[0]       # [N, K]
        own = w.gather(1, problem.train_labels[:, None])
        others = torch.ones_like(w, dtype=torch.bool).scatter(1, problem.train_labels[:, None], False)
        per_draw.append(float((own - w)[others].mean()))
    per_draw = torch.tensor(per_draw, dtype=torch.float64)
    se = float(per_draw.std()) / math.sqrt(len(per_draw))
    mean, _ = gap_moments_ideal(torch.tensor(t, dtype=torch.float64), d)
    assert abs(float(per_draw.mean()) - float(mean)) < 4 * se


def test_memorizing_gap_moments_by_monte_carlo(gen):
    """gap_j = psi ||x_i - x_j||^2 / 2 + sqrt(psi) <x_i - x_j, z> for J same-component x_j, from
    the memorizing denoiser's logits: its mean (exact) and the competitors' variance given
    (x_i, z), averaged over B draws of (x_i, z); tolerances are 4 Monte Carlo SE."""
    d, t, B, J = 100, torch.tensor(0.4, dtype=torch.float64), 40, 500
    means, gaps, variances = [], [], []
    for _ in range(B):
        x_i = torch.randn(1, d, generator=gen, dtype=torch.float64)
        x_j = torch.randn(J, d, generator=gen, dtype=torch.float64)          # same component, var = 1
        x = noisy(x_i, t, torch.randn(1, d, generator=gen, dtype=torch.float64))
        w = logits(x, t, memorizing(torch.cat([x_i, x_j])))[0, 0]            # [1 + J]
        gap = w[0] - w[1:]
        gaps.append(gap)
        means.append(float(gap.mean()))
        variances.append(float(gap.var()))
    mean, sd = gap_moments_memorizing(t, d)
    all_gaps = torch.cat(gaps)                      # the mean: SE over all B J gaps, shared parts by draw
    se_mean = float(torch.tensor(means).std()) / math.sqrt(B)
    assert abs(float(all_gaps.mean()) - float(mean)) < 4 * se_mean
    variances = torch.tensor(variances)
    assert abs(float(variances.mean()) - float(sd) ** 2) < 4 * float(variances.std()) / math.sqrt(B)


def test_runner_up_gap_predicts_the_laboratory_in_high_dimension(gen):
    """At d = 400 the measured mean top gap of the ideal and memorizing softmax is within 2% of
    runner_up_gap (the Gaussian approximation errs by O(1/d) relative; MC SE is about 0.3%)."""
    d, K, N = 400, 12, 200
    t = representative_time()
    problem = make_problem(N, d, K, gen)
    x = _noisy_training_points(problem, float(t), gen)
    measured_ideal = float(top_gap(logits(x, t, ideal(problem))[0]).mean())
    predicted_ideal = float(runner_up_gap(*gap_moments_ideal(t, d), K - 1))
    assert measured_ideal == pytest.approx(predicted_ideal, rel=0.02)
    m = torch.bincount(problem.train_labels, minlength=K)[problem.train_labels] - 1
    measured_mem = float(top_gap(logits(x, t, memorizing(problem.train))[0]).mean())
    predicted_mem = float(runner_up_gap(*gap_moments_memorizing(t, d), m).mean())
    assert measured_mem == pytest.approx(predicted_mem, rel=0.02)
    # the leading-order gap to a typical competitor is measurably too large at this d
    assert float(gap_moments_memorizing(t, d)[0]) > 1.05 * measured_mem


@pytest.mark.parametrize("t", [0.3603, 0.9])
def test_nearest_neighbour_c_against_the_nearest_neighbour_model(gen, t):
    """Draw x_i, m candidates x_j of its component and z; pick the x_j nearest to x_t / alpha_t and
    measure ||x_i - x_j||^2 / (d var). d = 500, m = 8: the formula errs by O(1/d) (about 0.005)
    and 3,000 draws give an SE of about 0.002; tolerance 4 SE + 0.005. At t = 0.9 the noise
    term of the selection (the factor 1 / sqrt(1 + 2 / (3 psi))) moves C by about 0.05."""
    d, m, B, var = 500, 8, 3000, 1.0
    t = torch.tensor(t, dtype=torch.float64)
    g_i = torch.randn(B, 1, d, generator=gen, dtype=torch.float64)
    g_j = torch.randn(B, m, d, generator=gen, dtype=torch.float64)
    z = torch.randn(B, 1, d, generator=gen, dtype=torch.float64)
    target = g_i + z / math.sqrt(float(psi(t)) * var)                        # x_t / alpha_t, in units of sigma*
    j = (target - g_j).norm(dim=-1).argmin(-1)
    chosen = g_j[torch.arange(B), j]
    c = (g_i[:, 0] - chosen).pow(2).sum(-1) / d                               # ||x_i - x_j||^2 / (d var)
    se = float(c.std()) / math.sqrt(B)
    assert abs(float(c.mean()) - float(nearest_neighbour_c(t, d, m, var))) < 4 * se + 0.005


def test_nearest_neighbour_c_limits():
    t = representative_time()
    assert float(nearest_neighbour_c(t, 10**8, 8)) == pytest.approx(2.0, abs=1e-3)
    assert float(nearest_neighbour_c(t, 50, 1)) == pytest.approx(2.0, abs=1e-12)     # one candidate: no selection
    assert float(nearest_neighbour_c(t, 50, 30)) < float(nearest_neighbour_c(t, 50, 8)) < 2


def test_prediction_inputs_are_checked():
    t = representative_time()
    with pytest.raises(ValueError, match="var=0.0 must be > 0"):
        gap_moments_ideal(t, 10, var=0.0)
    with pytest.raises(ValueError, match="var=-1.0 must be > 0"):
        gap_moments_memorizing(t, 10, var=-1.0)
    with pytest.raises(ValueError, match="d=0.0 must be >= 1"):
        nearest_neighbour_c(t, 0, 8)
