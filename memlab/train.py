"""Training R GMM denoisers at once, with the paper's protocol (SPEC 6).

Each model r has M_r learnable means and one learnable scale s (variance s^2), weights 1/M.
One step: all N training points, one grid time per point, N_dup noise draws per point (the
same noisy batch for every model); eps-prediction loss (1/(N N_dup)) sum ||epshat - z||^2;
Adam; learning rate warmed up linearly over the first 10% of steps to the peak, then decayed
linearly to the final rate; the applied step is the debiased EMA(0.99) of the Adam updates.

All R models run as one padded batch ([R, M_max, d] means with a mask), so a step costs a
few dozen tensor operations whatever R is; the gradient is written out by hand and evaluated
in blocks of the batch that stay in cache on the CPU (see PERFORMANCE.md), the whole batch at
once on a GPU; `loss_and_grad` is checked against autograd in the tests. The noise is drawn
on the CPU on every device, so a GPU run sees the same noise as a CPU run. Models never
interact: training R models together gives the same numbers (up to rounding) as training
each alone with the same seed.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from memlab.denoisers import GMM
from memlab.gmm import Problem, sample_means, sample_mixture
from memlab.schedule import alpha, noisy, sigma, time_grid
from memlab.streams import generator

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


BLOCK_ELEMENTS = {"cpu": 1 << 17, "cuda": 1 << 27}
"""Our choice: the batch is processed in blocks of rows so that one [R, rows, M] logits block
has about this many elements: 512 KiB in float32 on the CPU (it stays in cache, see
PERFORMANCE.md), the whole batch at once on a GPU. Changes rounding only, not results."""


def loss_and_grad(means: Tensor, mask: Tensor, scale: Tensor, x: Tensor, t: Tensor,
                  z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Eps losses of R GMM denoisers and their gradients, written out by hand.

    means [R, M, d] (model r uses the rows where mask [R, M] is True; the others must be zero),
    scale [R] (variance scale^2); x [B, d] = alpha x0 + sigma z, t [B], z [B, d], shared by all models.
    loss_r = (1/B) sum_b ||epshat_r(x_b, t_b) - z_b||^2. Returns (loss [R], d loss / d means
    [R, M, d], zero on padding, d loss / d scale [R]).

    Per model, with v = alpha^2 s2 + sigma^2, c1 = sigma^2 / v, c2 = alpha s2 / v, m = p @ means:
      xhat0 = c1 m + c2 x,  g = d loss / d xhat0 = -(2 alpha / sigma) (epshat - z) / B,
      d/dp_i = c1 <g, mu_i>,  d/dw_i = p_i (c1 <g, mu_i> - c1 <g, m>),
      w_i = <[alpha x / v, -alpha^2 / (2 v)], [mu_i, ||mu_i||^2]> (one product for the logits).
    """
    R, M, d = means.shape
    B = x.shape[0]
    var = (scale**2)[:, None, None]                                          # [R, 1, 1]
    a, sg = alpha(t)[None, :, None], sigma(t)[None, :, None]                 # [1, B, 1]
    v = a**2 * var + sg**2                                                   # [R, B, 1]
    c1, c2 = sg**2 / v, a * var / v
    k_m = a * c1 / sg                                                        # epshat - z = base - k_m m
    k_g = -2 * a / (sg * B)
    aug = torch.cat([means, (means**2).sum(2, keepdim=True)], dim=2)         # [R, M, d+1]
    pad = ~mask[:, None, :]
    low = torch.finfo(means.dtype).min                                       # exp(low - max) = 0, 0 * low = 0
    g_aug = torch.zeros_like(aug)
    g_direct = torch.zeros_like(means)
    total = torch.zeros(R, dtype=means.dtype, device=means.device)
    g_var = torch.zeros(R, dtype=means.dtype, device=means.device)
    block = BLOCK_ELEMENTS["cpu" if means.device.type == "cpu" else "cuda"]
    rows = max(1, block // (R * M))
    for lo in range(0, B, rows):
        blk = slice(lo, lo + rows)
        xb, a_b, sg_b, v_b, c1_b, c2_b = x[blk], a[:, blk], sg[:, blk], v[:, blk], c1[:, blk], c2[:, blk]
        xs = torch.cat([xb * (a_b / v_b), (-(a_b**2) / (2 * v_b)).expand(R, -1, 1)], dim=2)   # [R, b, d+1]
        w = torch.bmm(xs, aug.transpose(1, 2)).masked_fill_(pad, low)       # [R, b, M] logits
        p = torch.softmax(w, dim=2)
        m = torch.bmm(p, means)                                              # [R, b, d]
        r = (xb * (1 - a_b * c2_b) / sg_b - z[blk]).sub_(k_m[:, blk] * m)    # epshat - z
        total += r.pow(2).sum((1, 2))
        g = r.mul_(k_g[:, blk])                                              # d loss / d xhat0
        gm = torch.linalg.vecdot(g, m)[..., None]                            # d / d c1
        gx = torch.linalg.vecdot(g, xb)[..., None]                           # d / d c2
        c1g = c1_b * g
        gw = torch.bmm(c1g, means.transpose(1, 2))                           # d / d p
        gw.sub_(c1_b * gm).mul_(p)                                           # d / d w
        gv = -torch.linalg.vecdot(gw, w)[..., None] / v_b                    # d / d v through w = u / v
        # v, c1, c2 depend on s2: dv/ds2 = a^2, dc1/dv = -c1/v, dc2/ds2 = a/v - c2 a^2 / v
        g_var += ((gv - gm * c1_b / v_b - gx * c2_b / v_b) * a_b**2 + gx * a_b / v_b).sum((1, 2))
        g_aug.baddbmm_(gw.transpose(1, 2), xs)
        g_direct.baddbmm_(p.transpose(1, 2), c1g)
    g_means = g_direct + g_aug[..., :d] + 2 * g_aug[..., d:] * means
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

    @property
    def mask(self) -> Tensor:
        """[R, Mmax]: True where model r has a mean."""
        return torch.arange(self.means.shape[1])[None, :] < torch.tensor(self.Ms)[:, None]

    def gmm(self) -> GMM:
        """The trained models as one padded GMM, in float64 on the CPU."""
        return GMM(self.means.cpu().double(), self.scale.cpu().double() ** 2, self.mask)

    def tensors(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("means", "scale", "m_means", "v_means", "e_means",
                                              "m_scale", "v_scale", "e_scale")}


def init_state(problem: Problem, Ms: Sequence[int], protocol: Protocol, seed: int,
               device: str | torch.device = "cpu") -> TrainState:
    """Initial state of the models with capacities Ms on `device`; model M is initialised from stream
    "init" of (seed, M), so it depends on (seed, M) only, not on the other models."""
    Ms = [int(M) for M in Ms]
    if not Ms or any(M < 1 for M in Ms):
        raise ValueError(f"capacities Ms={Ms} must be a non-empty list of positive ints")
    dtype = protocol.torch_dtype
    means = torch.zeros(len(Ms), max(Ms), problem.d, dtype=dtype)
    for r, M in enumerate(Ms):
        gen = generator(seed, "init", M)
        means[r, :M] = initial_means(problem, M, protocol, gen).to(dtype)
    scale = torch.full((len(Ms),), math.sqrt(protocol.init_var), dtype=dtype)
    means, scale = means.to(device), scale.to(device)
    zeros, zs = torch.zeros_like(means), torch.zeros_like(scale)
    return TrainState(Ms, means, scale, zeros, zeros.clone(), zeros.clone(), zs, zs.clone(), zs.clone())


GROUP_ELEMENTS = 1 << 21
"""Our choice, measured (PERFORMANCE.md): on the CPU, models are trained as one padded batch
while the [R, B, M_max] logits have at most this many elements (small problems, where the
cost per operation dominates), and one at a time above it (large problems, where padding would
waste compute). A GPU always takes all models at once."""


def model_groups(Ms: Sequence[int], B: int, device: torch.device) -> list[slice]:
    """Which models `train` evaluates together: slices of the model list."""
    if device.type != "cpu" or B * len(Ms) * max(Ms) <= GROUP_ELEMENTS:
        return [slice(0, len(Ms))]
    return [slice(r, r + 1) for r in range(len(Ms))]


def draws(protocol: Protocol, seed: int, N: int, steps: range, grid: Tensor, d: int,
          device: torch.device = torch.device("cpu"), workers: int = 0, lookahead: int = 32):
    """The grid times [B] and noise [B, d] of each step in `steps`, on `device`, drawn on the CPU
    from stream "train_noise" of (seed, step): one stream per step, shared by all models, so a run
    resumed from a checkpoint draws exactly what an uninterrupted run would. With workers > 0 a pool of threads draws `lookahead` steps
    ahead (for a GPU, so that the CPU's random numbers do not hold it up); the numbers are the same."""
    pin = device.type == "cuda"

    def draw(k: int) -> tuple[Tensor, Tensor]:
        gen = generator(seed, "train_noise", k)
        t = grid[torch.randint(len(grid), (N,), generator=gen)].repeat(protocol.n_dup)
        z = torch.randn(protocol.n_dup * N, d, generator=gen, dtype=grid.dtype)
        return (t.pin_memory(), z.pin_memory()) if pin else (t, z)

    def moved(tz: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return tuple(a.to(device, non_blocking=pin) for a in tz)

    if workers == 0:
        yield from map(moved, map(draw, steps))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending = deque(pool.submit(draw, k) for k in steps[:lookahead])
        for k in steps[lookahead:]:
            done = pending.popleft().result()
            pending.append(pool.submit(draw, k))
            yield moved(done)
        while pending:
            yield moved(pending.popleft().result())


def train(problem: Problem, state: TrainState, protocol: Protocol, seed: int, until: int | None = None,
          log_every: int = 100, progress: bool = True) -> TrainState:
    """Advance `state` (in place, on its device) to step `until` (default: protocol.steps) and return it."""
    until = protocol.steps if until is None else min(until, protocol.steps)
    dtype, device = protocol.torch_dtype, state.means.device
    grid = time_grid(dtype)
    N, d = problem.train.shape
    x0 = problem.train.to(dtype).repeat(protocol.n_dup, 1).to(device)
    mask = state.mask.to(device)
    groups = model_groups(state.Ms, protocol.n_dup * N, device)
    b1, b2, ema = protocol.beta1, protocol.beta2, protocol.ema
    bar = tqdm(total=protocol.steps, initial=state.step, desc=f"training {len(state.Ms)} models", disable=not progress,
               mininterval=2.0)
    start = time.perf_counter()
    workers = 0 if device.type == "cpu" else 8
    batches = draws(protocol, seed, N, range(state.step, until), grid, d, device, workers)
    while state.step < until:
        k = state.step
        t, z = next(batches)
        x = noisy(x0, t, z)
        loss, g_means, g_scale = torch.empty_like(state.scale), torch.zeros_like(state.means), torch.empty_like(state.scale)
        for b in groups:
            Mb = max(state.Ms[b])
            loss[b], g_means[b, :Mb], g_scale[b] = loss_and_grad(state.means[b, :Mb], mask[b, :Mb], state.scale[b],
                                                                 x, t, z)
        norm = torch.sqrt(g_means.pow(2).sum((1, 2)) + g_scale**2)
        clip = torch.where(norm > protocol.clip_norm, protocol.clip_norm / norm, torch.ones_like(norm))
        lr, n = learning_rate(protocol, k), k + 1
        for p, g, m1, m2, e in ((state.means, g_means * clip[:, None, None], state.m_means, state.v_means,
                                 state.e_means),
                                (state.scale, g_scale * clip, state.m_scale, state.v_scale, state.e_scale)):
            m1.mul_(b1).add_(g, alpha=1 - b1)
            m2.mul_(b2).addcmul_(g, g, value=1 - b2)
            update = (m1 / (1 - b1**n)).div_(torch.sqrt(m2 / (1 - b2**n)).add_(protocol.adam_eps)).mul_(-lr)
            e.mul_(ema).add_(update, alpha=1 - ema)
            p.add_(e / (1 - ema**n))
        state.step += 1
        if state.step % log_every == 0 or state.step == until:
            losses = loss.tolist()
            state.losses.append(losses)
            bar.set_postfix(loss=f"{min(losses):.3g}..{max(losses):.3g}", refresh=False)
        bar.update(1)
    bar.close()
    state.seconds += time.perf_counter() - start
    return state


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>


def keep_freed_memory() -> None:
    """Tune this process's C allocator for training, where it is glibc's (Linux); called where
    training starts (experiments.train_models and its worker processes), never at import.

    A training step allocates and frees the same tensors of a few MB every step, and glibc by
    default gives freed memory back to the system (trim) and maps large blocks afresh (mmap),
    so every step pays for page faults on memory it had a moment ago (hundreds per step at the
    ci profile's size). Keeping freed memory for reuse changes where the memory comes from, not
    the numbers trained; the performance appendix measures how much faster a step gets.
    Elsewhere (macOS, musl), or with the environment variable MEMLAB_MALLOC=default, nothing is changed.
    """
    if os.environ.get("MEMLAB_MALLOC") == "default":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (ImportError, OSError, AttributeError):
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # blocks up to 32 MiB (glibc's limit) come from the reusable heap
    mallopt(_M_TRIM_THRESHOLD, 1 << 30)   # keep up to 1 GiB of freed heap instead of returning it
