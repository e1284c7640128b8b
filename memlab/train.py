"""Training R GMM denoisers at once, with the paper's protocol (SPEC 6).

Each model r has M_r learnable means and one learnable scale s (variance s^2), weights 1/M.
One step: all N training points, one grid time per point, N_dup noise draws per point (the
same noisy batch for every model); eps-prediction loss (1/(N N_dup)) sum ||epshat - z||^2;
Adam; learning rate warmed up linearly over the first 10% of steps to the peak, then decayed
linearly to the final rate; the applied step is the debiased EMA(0.99) of the Adam updates.

The gradient is written out by hand and evaluated in cache-sized blocks of the batch, so
that the [B, M] logits never leave the cache (see PERFORMANCE.md); `loss_and_grad` is
checked against autograd in the tests. Models never interact: training R models together
gives the same numbers as training each alone with the same seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from memlab.denoisers import GMM
from memlab.gmm import Problem, sample_means, sample_mixture
from memlab.schedule import alpha, noisy, sigma, time_grid

Init = Literal["pmem", "gaussian", "sphere", "data"]
INITS = ("pmem", "gaussian", "sphere", "data")


@dataclass(frozen=True)
class Protocol:
    """Every number of the training protocol; defaults are the paper's (SPEC 6)."""

    steps: int = 50_000        # optimisation steps (paper: 50,000)
    n_dup: int = 100           # noise draws per training point per step (paper: 100)
    peak_lr: float = 1e-3      # learning rate after warm-up (paper: 1e-3)
    final_lr: float = 1e-6     # learning rate at the last step (paper: 1e-6)
    warmup: float = 0.1        # fraction of steps of linear warm-up from 0 (paper: 0.1)
    beta1: float = 0.9         # Adam (paper: 0.9)
    beta2: float = 0.999       # Adam (paper: 0.999)
    adam_eps: float = 1e-8     # Adam (paper: 1e-8)
    ema: float = 0.99          # decay of the debiased EMA of the updates (paper's code: 0.99)
    clip_norm: float = 1e9     # global gradient-norm clip per model (paper's code: 1e9, i.e. off)
    init: Init = "pmem"        # initial means: M random training points (paper), or an ablation
    init_var: float = 1e-6     # initial variance s^2 (paper: 1e-6)
    dtype: Literal["float32", "float64"] = "float32"  # our choice: float32 for speed, float64 for tests

    def __post_init__(self):
        for name in ("steps", "n_dup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Protocol.{name}={value!r} must be a positive int")
        for name in ("peak_lr", "adam_eps", "clip_norm", "init_var"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Protocol.{name}={getattr(self, name)!r} must be > 0")
        if not 0 <= self.final_lr <= self.peak_lr:
            raise ValueError(f"Protocol.final_lr={self.final_lr} must lie in [0, peak_lr={self.peak_lr}]")
        for name in ("warmup", "beta1", "beta2", "ema"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"Protocol.{name}={getattr(self, name)!r} must lie in [0, 1)")
        if self.init not in INITS:
            raise ValueError(f"Protocol.init={self.init!r} must be one of {INITS}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"Protocol.dtype={self.dtype!r} must be 'float32' or 'float64'")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(protocol: Protocol, k: int) -> float:
    """Learning rate of step k = 0..steps-1: linear 0 -> peak over the warm-up, then -> final."""
    warm = int(protocol.warmup * protocol.steps)
    if k < warm:
        return protocol.peak_lr * k / warm
    rest = max(protocol.steps - 1 - warm, 1)
    return protocol.peak_lr + (protocol.final_lr - protocol.peak_lr) * (k - warm) / rest


BLOCK_ELEMENTS = 1 << 17
"""Our choice: rows of the noisy batch per block are BLOCK_ELEMENTS // M, so a [rows, M]
float32 logits block is 512 KiB and stays in cache. Changes rounding only, not results."""


def loss_and_grad(means: Tensor, scale: Tensor, x: Tensor, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eps loss of one GMM denoiser and its gradient, written out by hand.

    loss = (1/B) sum_b ||epshat(x_b, t_b) - z_b||^2 at the noisy points x_b = alpha x0_b + sigma z_b;
    means [M, d], scale [] (variance scale^2), x [B, d], t [B], z [B, d].
    Returns (loss [], d loss / d means [M, d], d loss / d scale []).

    With v = alpha^2 s2 + sigma^2, c1 = sigma^2 / v, c2 = alpha s2 / v, m = p @ means:
      xhat0 = c1 m + c2 x,  g = d loss / d xhat0 = -(2 alpha / sigma) (epshat - z) / B,
      d/dp_i = c1 <g, mu_i>,  d/dw_i = p_i (c1 <g, mu_i> - c1 <g, m>),
      w_i = <[alpha x / v, -alpha^2 / (2 v)], [mu_i, ||mu_i||^2]> (one product for the logits).
    The [B, M] work runs in blocks of rows that stay in cache.
    """
    M, d = means.shape
    B = x.shape[0]
    var = scale**2
    a, sg = alpha(t)[:, None], sigma(t)[:, None]                             # [B, 1]
    v = a**2 * var + sg**2
    c1, c2 = sg**2 / v, a * var / v
    xs = torch.cat([x * (a / v), -(a**2) / (2 * v)], dim=1)                  # [B, d+1]
    base = (x * (1 - a * c2) / sg - z)                                       # epshat - z = base - (a c1 / sg) m
    k_m = a * c1 / sg
    k_g = -2 * a / (sg * B)
    aug = torch.cat([means, (means**2).sum(1, keepdim=True)], dim=1)          # [M, d+1]
    g_aug = torch.zeros_like(aug)
    g_direct = torch.zeros_like(means)
    total = torch.zeros((), dtype=means.dtype)
    gms, gxs = [], []
    rows = max(1, BLOCK_ELEMENTS // M)
    for lo in range(0, B, rows):
        blk = slice(lo, lo + rows)
        xs_b = xs[blk]
        w = xs_b @ aug.T                                                     # [b, M] logits
        p = torch.softmax(w, dim=1)
        m = p @ means                                                        # [b, d]
        r = torch.addcmul(base[blk], k_m[blk], m, value=-1)                  # epshat - z
        total += r.pow(2).sum()
        g = r * k_g[blk]                                                     # d loss / d xhat0
        gm = torch.linalg.vecdot(g, m)[:, None]                              # d / d c1
        gms.append(gm)
        gxs.append(torch.linalg.vecdot(g, x[blk])[:, None])                 # d / d c2
        c1g = c1[blk] * g
        gw = c1g @ means.T                                                   # d / d p
        gw.sub_(c1[blk] * gm).mul_(p)                                        # d / d w
        gxs[-1] = torch.cat([gxs[-1], -torch.linalg.vecdot(gw, w)[:, None]], dim=1)
        g_aug.addmm_(gw.T, xs_b)
        g_direct.addmm_(p.T, c1g)
    gm = torch.cat(gms)
    gx, gwv = torch.cat(gxs).unbind(1)
    gv = gwv[:, None] / v                                                    # d / d v through w = u / v
    gx = gx[:, None]
    # v, c1, c2 depend on s2: dv/ds2 = a^2, dc1/dv = -c1/v, dc2/ds2 = a/v - c2 a^2 / v
    g_var = ((gv - gm * c1 / v - gx * c2 / v) * a**2 + gx * a / v).sum()
    g_means = g_direct + g_aug[:, :d] + 2 * g_aug[:, d:] * means
    return total / B, g_means, g_var * 2 * scale


def initial_means(problem: Problem, M: int, protocol: Protocol, generator: torch.Generator) -> Tensor:
    """Initial means [M, d] by protocol.init: 'pmem' = M distinct random training points (paper);
    'gaussian' = N(0, I); 'sphere' = uniform on the sphere of radius sqrt(d); 'data' = fresh draws
    of the true mixture."""
    N, d = problem.train.shape
    if protocol.init == "pmem":
        if M > N:
            raise ValueError(f"init='pmem' needs M <= N, got M={M}, N={N}")
        return problem.train[torch.randperm(N, generator=generator)[:M]]
    if protocol.init == "gaussian":
        return torch.randn(M, d, generator=generator, dtype=torch.float64)
    if protocol.init == "sphere":
        return sample_means(M, d, generator)
    return sample_mixture(problem.means, problem.var, M, generator)[0]


def model_seed(seed: int, M: int) -> int:
    """The seed of model M's initialisation: it depends on (seed, M) only, not on the other models."""
    return seed * 1_000_003 + M


@dataclass
class TrainState:
    """Everything needed to resume: parameters, Adam and EMA state, step count. Padded [R, Mmax, d]."""

    Ms: list[int]
    means: Tensor                 # [R, Mmax, d]
    scale: Tensor                 # [R], the learned standard deviation s
    m_means: Tensor               # Adam first moments
    v_means: Tensor               # Adam second moments
    e_means: Tensor               # EMA of the updates
    m_scale: Tensor
    v_scale: Tensor
    e_scale: Tensor
    step: int = 0
    losses: list[list[float]] = field(default_factory=list)   # [logged steps][R] training loss
    seconds: float = 0.0

    def gmm(self) -> GMM:
        mask = torch.arange(self.means.shape[1])[None, :] < torch.tensor(self.Ms)[:, None]
        return GMM(self.means.double(), self.scale.double() ** 2, mask)

    def tensors(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("means", "scale", "m_means", "v_means", "e_means",
                                              "m_scale", "v_scale", "e_scale")}


def init_state(problem: Problem, Ms: Sequence[int], protocol: Protocol, seed: int) -> TrainState:
    """Initial state of the models with capacities Ms (each initialised from model_seed(seed, M))."""
    Ms = [int(M) for M in Ms]
    if not Ms or any(M < 1 for M in Ms):
        raise ValueError(f"capacities Ms={Ms} must be a non-empty list of positive ints")
    dtype = protocol.torch_dtype
    means = torch.zeros(len(Ms), max(Ms), problem.d, dtype=dtype)
    for r, M in enumerate(Ms):
        gen = torch.Generator().manual_seed(model_seed(seed, M))
        means[r, :M] = initial_means(problem, M, protocol, gen).to(dtype)
    scale = torch.full((len(Ms),), math.sqrt(protocol.init_var), dtype=dtype)
    zeros, zs = torch.zeros_like(means), torch.zeros_like(scale)
    return TrainState(Ms, means, scale, zeros, zeros.clone(), zeros.clone(), zs, zs.clone(), zs.clone())


def noise_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step `step`'s times and noise: one stream per step, shared by all models,
    so a run resumed from a checkpoint draws exactly what an uninterrupted run would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + 7919 * step + 1)


def train(problem: Problem, state: TrainState, protocol: Protocol, seed: int, until: int | None = None,
          log_every: int = 100, progress: bool = True) -> TrainState:
    """Advance `state` (in place) to step `until` (default: protocol.steps) and return it."""
    until = protocol.steps if until is None else min(until, protocol.steps)
    dtype = protocol.torch_dtype
    x0_all = problem.train.to(dtype)
    grid = time_grid(dtype)
    N, d = x0_all.shape
    b1, b2, ema = protocol.beta1, protocol.beta2, protocol.ema
    bar = tqdm(total=protocol.steps, initial=state.step, desc=f"training {len(state.Ms)} models", disable=not progress,
               mininterval=2.0)
    start = time.perf_counter()
    while state.step < until:
        k = state.step
        gen = noise_generator(seed, k)
        t = grid[torch.randint(len(grid), (N,), generator=gen)].repeat(protocol.n_dup)
        z = torch.randn(protocol.n_dup * N, d, generator=gen, dtype=dtype)
        x = noisy(x0_all.repeat(protocol.n_dup, 1), t, z)                 # shared by all models
        lr = learning_rate(protocol, k)
        n = k + 1
        losses = []
        for r, M in enumerate(state.Ms):
            loss, g_means, g_scale = loss_and_grad(state.means[r, :M], state.scale[r], x, t, z)
            losses.append(float(loss))
            norm = torch.sqrt(g_means.pow(2).sum() + g_scale**2)
            if norm > protocol.clip_norm:
                g_means, g_scale = g_means * (protocol.clip_norm / norm), g_scale * (protocol.clip_norm / norm)
            for p, g, m1, m2, e in ((state.means[r, :M], g_means, state.m_means[r, :M], state.v_means[r, :M],
                                     state.e_means[r, :M]),
                                    (state.scale[r:r + 1], g_scale, state.m_scale[r:r + 1],
                                     state.v_scale[r:r + 1], state.e_scale[r:r + 1])):
                m1.mul_(b1).add_(g, alpha=1 - b1)
                m2.mul_(b2).addcmul_(g, g, value=1 - b2)
                update = -lr * (m1 / (1 - b1**n)) / (torch.sqrt(m2 / (1 - b2**n)) + protocol.adam_eps)
                e.mul_(ema).add_(update, alpha=1 - ema)
                p.add_(e / (1 - ema**n))
        state.step += 1
        if state.step % log_every == 0 or state.step == until:
            state.losses.append(losses)
            bar.set_postfix(loss=f"{min(losses):.3g}..{max(losses):.3g}", refresh=False)
        bar.update(1)
    bar.close()
    state.seconds += time.perf_counter() - start
    return state
