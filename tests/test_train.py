"""The trainer: hand-written gradient, the Adam + EMA step, R models at once, determinism, resume."""

import math
import os
import platform
import subprocess
import sys

import pytest
import torch

import memlab.train as T
from memlab.denoisers import GMM
from memlab.gmm import make_problem
from memlab.loss import sample_loss
from memlab.schedule import noisy, time_grid
from memlab.streams import generator
from memlab.train import Protocol, init_state, learning_rate, loss_and_grad, train


@pytest.fixture
def small():
    return make_problem(30, 4, 3, torch.Generator().manual_seed(3))


def autograd_loss(means, scale, x0, t, z):
    """The eps loss through the library's denoiser, differentiated by autograd (the reference)."""
    gmm = GMM(means[None], (scale**2)[None])
    return sample_loss(gmm, x0, t, z[None], "eps").mean()


@pytest.mark.parametrize("scale", [1e-3, 0.05, 0.8])
def test_hand_written_gradient_equals_autograd(small, scale, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    means = (small.train[:7] + 0.3 * torch.randn(7, 4, generator=gen, dtype=torch.float64)).requires_grad_(True)
    s = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    t = time_grid()[torch.randint(26, (30,), generator=gen)]
    z = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    ref = autograd_loss(means, s, small.train, t, z)
    ref.backward()
    monkeypatch.setitem(T.BLOCK_ELEMENTS, "cpu", 2 * 9 * 4)   # 4 rows per block: exercises the blocking
    # model 0 is the one under test, padded to 9 means; model 1 is another model beside it
    padded = torch.cat([means.detach(), torch.zeros(2, 4, dtype=torch.float64)])
    batch = torch.stack([padded, small.train[:9]])
    mask = torch.tensor([[True] * 7 + [False] * 2, [True] * 9])
    loss, g_means, g_scale = loss_and_grad(batch, mask, torch.stack([s.detach(), s.detach() * 2]),
                                           noisy(small.train, t, z), t, z)
    torch.testing.assert_close(loss[0], ref.detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(g_means[0, :7], means.grad, rtol=1e-7, atol=1e-9 * float(means.grad.abs().max()))
    assert torch.equal(g_means[0, 7:], torch.zeros(2, 4, dtype=torch.float64))      # padding gets no gradient
    torch.testing.assert_close(g_scale[0], s.grad, rtol=1e-7, atol=0)


def test_learning_rate_schedule():
    p = Protocol(steps=1000, peak_lr=1e-3, final_lr=1e-6, warmup=0.1)
    assert learning_rate(p, 0) == 0.0
    assert learning_rate(p, 50) == pytest.approx(5e-4)
    assert learning_rate(p, 100) == pytest.approx(1e-3)
    assert learning_rate(p, 999) == pytest.approx(1e-6)
    assert learning_rate(p, 550) == pytest.approx((1e-3 + 1e-6) / 2, rel=1e-2)


def test_step_matches_torch_adam_with_an_ema_of_updates(small):
    """Ten steps of the trainer against torch.optim.Adam on autograd gradients of the same
    noisy batches, followed by the debiased EMA(0.99) of the Adam updates (SPEC 6)."""
    proto = Protocol(steps=10, n_dup=3, warmup=0.2, dtype="float64")
    state = init_state(small, [6], proto, seed=5)
    means = state.means[0].clone()
    scale = state.scale.clone()
    shadow = [torch.zeros_like(means, requires_grad=True), torch.zeros_like(scale, requires_grad=True)]
    adam = torch.optim.Adam(shadow, lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    ema = [torch.zeros_like(means), torch.zeros_like(scale)]
    grid = time_grid()
    for k in range(10):
        gen = generator(5, "train_noise", k)
        t = grid[torch.randint(26, (30,), generator=gen)].repeat(3)
        z = torch.randn(90, 4, generator=gen, dtype=torch.float64)
        m_ = means.clone().requires_grad_(True)
        s_ = scale.clone().requires_grad_(True)
        autograd_loss(m_, s_[0], small.train.repeat(3, 1), t, z).backward()
        for group in adam.param_groups:
            group["lr"] = learning_rate(proto, k)
        with torch.no_grad():
            shadow[0].copy_(means), shadow[1].copy_(scale)
        shadow[0].grad, shadow[1].grad = m_.grad, s_.grad
        adam.step()
        with torch.no_grad():
            for i, p in enumerate((means, scale)):
                ema[i] = 0.99 * ema[i] + 0.01 * (shadow[i] - p)
                p += ema[i] / (1 - 0.99 ** (k + 1))
    train(small, state, proto, seed=5, progress=False)
    torch.testing.assert_close(state.means[0], means, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(state.scale, scale, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("group_elements", [1, 1 << 40], ids=["one-at-a-time", "padded-batch"])
def test_r_models_together_equal_one_by_one(small, group_elements, monkeypatch):
    monkeypatch.setattr(T, "GROUP_ELEMENTS", group_elements)
    proto = Protocol(steps=40, n_dup=4, peak_lr=1e-2, dtype="float64")
    Ms = [3, 10, 30]
    together = train(small, init_state(small, Ms, proto, seed=1), proto, seed=1, progress=False)
    for r, M in enumerate(Ms):
        alone = train(small, init_state(small, [M], proto, seed=1), proto, seed=1, progress=False)
        # the same numbers up to float64 rounding (padding and blocking change the summation order,
        # and 40 Adam steps amplify 1e-16 to ~1e-12); cross-talk between models would be O(1)
        torch.testing.assert_close(together.means[r, :M], alone.means[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(together.scale[r], alone.scale[0], rtol=1e-9, atol=0)
        assert not together.means[r, M:].any()                                           # padding stays zero
    assert not torch.equal(together.means, init_state(small, Ms, proto, seed=1).means)    # it trained


def test_same_seed_same_numbers_other_seed_other_numbers(small):
    proto = Protocol(steps=20, n_dup=2, peak_lr=1e-2)
    a = train(small, init_state(small, [5, 12], proto, seed=0), proto, seed=0, progress=False)
    b = train(small, init_state(small, [5, 12], proto, seed=0), proto, seed=0, progress=False)
    c = train(small, init_state(small, [5, 12], proto, seed=1), proto, seed=1, progress=False)
    assert torch.equal(a.means, b.means) and torch.equal(a.scale, b.scale) and a.losses == b.losses
    assert not torch.equal(a.means, c.means)


def test_stopping_and_resuming_gives_the_same_numbers(small):
    proto = Protocol(steps=30, n_dup=2, peak_lr=1e-2)
    straight = train(small, init_state(small, [4, 9], proto, seed=2), proto, seed=2, progress=False)
    half = train(small, init_state(small, [4, 9], proto, seed=2), proto, seed=2, until=13, progress=False)
    assert half.step == 13
    resumed = train(small, half, proto, seed=2, progress=False)
    assert torch.equal(resumed.means, straight.means) and torch.equal(resumed.scale, straight.scale)


@pytest.mark.parametrize("init", ["pmem", "gaussian", "sphere", "data"])
def test_initialisations(small, init):
    proto = Protocol(init=init, init_var=1e-2)
    state = init_state(small, [8], proto, seed=0)
    means = state.means[0].double()
    dist_to_train = torch.cdist(means, small.train).amin(1)
    if init == "pmem":
        assert float(dist_to_train.max()) < 1e-6                       # training points (float32)
        assert len({tuple(m.tolist()) for m in means}) == 8            # distinct
    elif init == "sphere":
        torch.testing.assert_close(means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    else:
        assert float(dist_to_train.min()) > 1e-3
    assert math.isclose(float(state.scale[0]) ** 2, 1e-2, rel_tol=1e-6)


@pytest.mark.parametrize("init", ["gaussian", "data"])
def test_random_initialisations_draw_their_own_law(small, init):
    """Each random init against the first two moments of its own law, within 5 Monte Carlo standard
    errors (M = 4000 draws): 'gaussian' is N(0, I), mean 0 and E||m||^2 = d; 'data' is the true
    mixture, mean the average true mean and E||m||^2 = mean ||mu*_k||^2 + d sigma*^2. The two laws
    differ by many standard errors here (checked), so swapping the branches fails."""
    M, d = 4000, small.d
    means = init_state(small, [M], Protocol(init=init), seed=0).means[0].double()
    laws = {"gaussian": (torch.zeros(d, dtype=torch.float64), float(d)),
            "data": (small.means.mean(0), float((small.means ** 2).sum(1).mean()) + d * small.var)}
    (mean_g, sq_g), (mean_x, sq_x) = laws["gaussian"], laws["data"]
    mean, sq = laws[init]
    sq_norm = (means ** 2).sum(1)
    se_mean, se_sq = means.std(0) / math.sqrt(M), float(sq_norm.std()) / math.sqrt(M)
    assert float((mean_g - mean_x).abs().max() / se_mean.max()) > 10 and abs(sq_g - sq_x) / se_sq > 10
    assert bool(((means.mean(0) - mean).abs() < 5 * se_mean).all()), (means.mean(0), mean)
    assert abs(float(sq_norm.mean()) - sq) < 5 * se_sq, (float(sq_norm.mean()), sq)


def test_protocol_refuses_bad_values():
    with pytest.raises(ValueError, match=r"Protocol.steps=0 must be a positive int"):
        Protocol(steps=0)
    with pytest.raises(ValueError, match=r"Protocol.init='zeros' must be one of"):
        Protocol(init="zeros")
    with pytest.raises(ValueError, match=r"Protocol.final_lr=0.1 must lie in \[0, peak_lr=0.001\]"):
        Protocol(final_lr=0.1)
    with pytest.raises(ValueError, match=r"Protocol.ema=1.0 must lie in \[0, 1\)"):
        Protocol(ema=1.0)


def test_noise_drawn_ahead_by_threads_is_the_same_noise():
    proto = Protocol(n_dup=3)
    grid = time_grid(torch.float32)
    plain = list(T.draws(proto, 4, 10, range(5, 45), grid, 2))
    ahead = list(T.draws(proto, 4, 10, range(5, 45), grid, 2, workers=3, lookahead=7))
    assert len(plain) == len(ahead) == 40
    assert all(torch.equal(a, b) for pa, pb in zip(plain, ahead) for a, b in zip(pa, pb))
    assert not torch.equal(plain[0][1], plain[1][1])


FAULTS_PER_STEP = """
import resource, torch
from memlab.gmm import make_problem
from memlab.train import Protocol, init_state, keep_freed_memory, train
import memlab                                  # importing the package leaves the allocator alone
torch.set_num_threads(1)
if TUNE:
    keep_freed_memory()
problem = make_problem(50, 30, 3, torch.Generator().manual_seed(0))
protocol = Protocol(n_dup=10)
state = init_state(problem, list(range(5, 51, 5)), protocol, seed=0)
train(problem, state, protocol, seed=0, until=10, progress=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
train(problem, state, protocol, seed=0, until=60, progress=False)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator tuning is glibc's")
def test_training_reuses_its_memory_instead_of_faulting_it_in_every_step():
    """keep_freed_memory keeps freed memory in the process: with glibc's default allocator (not
    called, or MEMLAB_MALLOC=default) a ci-size step (10 models, N = 50, N_dup = 10) page-faults
    hundreds of times (measured about 500: 2 MB of fresh pages), with memlab's about never once warmed up."""
    def faults(tune, **env):
        out = subprocess.run([sys.executable, "-c", f"TUNE = {tune}" + FAULTS_PER_STEP], capture_output=True,
                             text=True, check=True, env={**os.environ, **env})
        return float(out.stdout)

    assert faults(False, MEMLAB_MALLOC="") > 100                  # import alone changes nothing
    assert faults(True, MEMLAB_MALLOC="default") > 100
    assert faults(True, MEMLAB_MALLOC="") < 10
