# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Softmax sparsity in high dimension
#
# The paper's theory rests on one mechanism. Every denoiser of the laboratory is a softmax
# over components: the ideal denoiser weighs the $K$ true means, the memorizing one the $N$
# training points. In high dimension the softmax weights concentrate on a single entry (or on
# the memorized points of a single component), so the denoisers act as nearest-neighbour
# lookups, and their losses take the simple forms of Theorems 3.1 and 3.2. The paper's
# Lemmas D.1 and D.2 make "concentrate" quantitative; this chapter checks them, measures the
# sparsity inside the laboratory across dimension $d$ and time $t$, predicts it, and finds
# where it (and with it the loss approximations) breaks. Nothing is trained, so everything
# runs at the paper's $N$ and $K$.

# %% tags=["parameters"]
N: int = 200  # training samples (paper: 200)
K: int = 12  # components of the true mixture (paper: 12)
var_star: float = 1.0  # component variance sigma*^2 of the data (paper: 1)
dims: list = [2, 5, 10, 20, 50, 100, 200, 500, 1000]  # data dimensions d of the sweep (paper: 50)
m_ratio: float = 0.5  # capacity M/N of the partially memorizing denoiser
seed: int = 0  # seed of the data draw and of the noise, score-vector and extra-draw streams (memlab.streams)
n_noise: int = 8  # noise draws per training point and grid time
n_draws: int = 5  # independent data draws for the representative-time losses and C
n_vectors: int = 4000  # random score vectors per length n in the lemma figures
tolerance: float = 0.1  # relative error up to which an approximation counts as holding

# %%
import math

import numpy as np
import pandas as pd
import torch
from matplotlib import colors, ticker
from matplotlib import pyplot as plt
from IPython.display import Markdown
from myst_nb import glue

from memlab.denoisers import ideal, logits, memorizing, partially_memorizing, xhat0
from memlab.figures import publish, use_style
from memlab.gmm import make_problem
from memlab.loss import loss_per_time
from memlab.metrics import (effective_number, set_deviation, set_gap, softmax_deviation, top_gap,
                            top_mass)
from memlab.schedule import noisy, psi, representative_time, time_grid
from memlab.streams import generator
from memlab.sparsity import (expected_max_normal, gap_moments_ideal, gap_moments_memorizing,
                             nearest_neighbour_c, nominal_xhat0, runner_up_gap)
from memlab.theory import generalizing_excess, set_bound, softmax_bound

use_style()
dims = sorted({int(d) for d in dims})
M = round(m_ratio * N)
if K < 2:
    raise ValueError(f"K={K} must be >= 2: the ideal softmax needs a competitor to the true component")
if not dims or dims[0] < 1:
    raise ValueError(f"dims={dims} must be a non-empty list of dimensions >= 1")
if not 1 <= M < N:
    raise ValueError(f"m_ratio={m_ratio} must give a capacity M = round(m_ratio N) in [1, N - 1], got M={M}")
if not 0 < tolerance < 1:
    raise ValueError(f"tolerance={tolerance} must lie in (0, 1)")
if min(n_noise, n_vectors, n_draws) < 1:
    raise ValueError(f"n_noise={n_noise}, n_vectors={n_vectors} and n_draws={n_draws} must be >= 1")
params = dict(N=N, K=K, var_star=var_star, dims=dims, m_ratio=m_ratio, seed=seed, n_noise=n_noise,
              n_draws=n_draws, n_vectors=n_vectors, tolerance=tolerance)
NORMS = {"1": 1.0, "2": 2.0, "inf": math.inf}
P_TEXT = {"1": "$p = 1$", "2": "$p = 2$", "inf": "$p = \\infty$"}
eps = torch.finfo(torch.float64).eps                   # every softmax of this chapter is computed in float64


def rounding_tolerance(n: int, dtype: torch.dtype = torch.float64) -> float:
    """n eps: the worst-case rounding error of the softmax's normalizing sum of n terms, up to which a
    deviation above its bound is counted as rounding, not as a violation."""
    return n * torch.finfo(dtype).eps


def bound_check(table: pd.DataFrame, name: str, gap: str) -> str:
    """One sentence: does deviation <= bound + tolerance hold in every row of a lemma table?"""
    excess = table["deviation"] - table["bound"]
    beyond, above = excess > table["tolerance"], excess > 0
    if beyond.any():
        return (f"{name} fails for {int(beyond.sum())} of {len(table)} vectors by more than the rounding "
                f"tolerance (by up to {excess.max():.1e}).")
    text = f"{name} holds for all {len(table)} vectors up to rounding"
    if above.any():
        families = " and ".join(sorted(set(table.loc[above, "family"])))
        text += (f": the deviation exceeds it in {int(above.sum())} of them, by at most {excess.max():.1e} "
                 f"({(excess / table['bound']).max():.1e} relative), less than the tolerance; all are {families} "
                 f"vectors at gaps of at least {table.loc[above, gap].min():.1f}, where the bound is at most "
                 f"{table.loc[above, 'bound'].max():.1e}")
    return text + "."


def join_words(items: list) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
times = time_grid()
t_rep = representative_time()
for name, value in dict(N=N, K=K, M=M, n_noise=n_noise, n_draws=n_draws, n_vectors=n_vectors, d_min=dims[0],
                        d_max=dims[-1], t_rep=float(t_rep), psi_rep=float(psi(t_rep)), tolerance=tolerance).items():
    glue(name, value, display=False)

# %% [markdown]
# ## The lemma on random score vectors
#
# For a score vector $v \in \mathbb R^n$ with its largest entry at $k$ and gap $\gamma$ to the
# runner-up, Lemma D.1 bounds the distance of the softmax from the one-hot vector $e_k$:
#
# $$\lVert \mathrm{softmax}(v/T) - e_k \rVert_p \le 2 (n - 1)\, e^{-\gamma/T} \qquad (p \ge 1).$$
#
# Only $v/T$ enters, so we set $T = 1$ below and let the scale of $v$ play the temperature. The
# left side is at most $2^{1/p}$ (two probability vectors), so the bound says nothing while
# $2(n-1)e^{-\gamma} \ge 2^{1/p}$, that is for $\gamma \le \log(2^{1 - 1/p}(n-1))$: below
# $\log(n - 1)$ for $p = 1$. Two families of vectors probe it: Gaussian vectors of random scale
# (typical scores), and the *tied* vector $v = (0, -\gamma, \dots, -\gamma)$, in which every loser
# sits at the runner-up's score. The tied vector has the smallest top weight
# $1/(1 + (n-1)e^{-\gamma})$ of all vectors with gap $\gamma$, hence the largest deviation for
# $p = 1$ and $p = \infty$, which depend on the top weight alone.

# %%
vector_gen = generator(seed, "vectors")
tied_gaps = torch.linspace(0.0, 30.0, 301, dtype=torch.float64)
lemma_rows = []
fig, axes = plt.subplots(2, 3, figsize=(12, 6.6), sharex=True, sharey=True)
for row, n in enumerate((K, N)):
    scale = torch.exp(torch.empty(n_vectors, 1, dtype=torch.float64).uniform_(
        math.log(0.03), math.log(100.0), generator=vector_gen))
    v = scale * torch.randn(n_vectors, n, generator=vector_gen, dtype=torch.float64)
    gap = top_gap(v)
    tied = torch.cat([torch.zeros(len(tied_gaps), 1, dtype=torch.float64),
                      -tied_gaps[:, None].expand(-1, n - 1)], dim=1)
    for col, (p_name, p) in enumerate(NORMS.items()):
        ax = axes[row, col]
        dev, dev_tied = softmax_deviation(v, 1.0, p), softmax_deviation(tied, 1.0, p)
        vacuous = math.log(2 ** (1 - (0 if math.isinf(p) else 1 / p)) * (n - 1))
        ax.axvspan(0, vacuous, color="0.9", label="bound vacuous")
        ax.scatter(gap, dev, s=3, alpha=0.3, color="C0", label="Gaussian vectors", rasterized=True)
        ax.plot(tied_gaps, dev_tied, color="C1", label="tied vector")
        ax.plot(tied_gaps, softmax_bound(tied_gaps, n), "k--", label=r"bound $2(n-1)e^{-\gamma}$")
        ax.set_yscale("log")
        ax.set_ylim(1e-13, 1e3)
        ax.set_xlim(0, 30)
        ax.set_title(f"n = {n}, p = {p_name.replace('inf', '∞')}")
        lemma_rows += [{"n": n, "p": p_name, "family": "gaussian", "gap": float(g), "deviation": float(e),
                        "bound": float(b), "tolerance": rounding_tolerance(n)}
                       for g, e, b in zip(gap, dev, softmax_bound(gap, n))]
        lemma_rows += [{"n": n, "p": p_name, "family": "tied", "gap": float(g), "deviation": float(e),
                        "bound": float(b), "tolerance": rounding_tolerance(n)}
                       for g, e, b in zip(tied_gaps, dev_tied, softmax_bound(tied_gaps, n))]
for ax in axes[1]:
    ax.set_xlabel(r"gap $\gamma / T$")
for ax in axes[:, 0]:
    ax.set_ylabel(r"$\|\mathrm{softmax}(v/T) - e_k\|_p$")
axes[0, 0].legend(loc="lower left")
lemma = pd.DataFrame(lemma_rows)
publish(fig, "fig-softmax-sparsity-lemma-d1", lemma, params)

# %%
lemma["ratio"] = lemma["deviation"] / lemma["bound"]
informative = lemma["bound"] < 1
tied_end = lemma[(lemma["family"] == "tied") & (lemma["gap"] == float(tied_gaps[-1])) & (lemma["n"] == N)]
for p_name in NORMS:
    glue(f"tied_ratio_{p_name}", float(tied_end.loc[tied_end["p"] == p_name, "ratio"].iloc[0]), display=False)
for label, n in (("K", K), ("N", N)):
    glue(f"vacuous_{label}", math.log(n - 1), display=False)
    typical = lemma[(lemma["family"] == "gaussian") & (lemma["n"] == n) & (lemma["p"] == "1") & informative]
    glue(f"gaussian_ratio_{label}", float(typical["ratio"].median()), display=False)
glue("tied_gap_max", float(tied_gaps[-1]), display=False)
glue("d1_check", Markdown(bound_check(lemma, "The bound", "gap")), display=False)
d1_beyond = int((lemma["deviation"] - lemma["bound"] > lemma["tolerance"]).sum())
glue("eps", eps, display=False)
glue("tol_K", rounding_tolerance(K), display=False)
glue("tol_N", rounding_tolerance(N), display=False)

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-lemma-d1
# :name: fig-softmax-sparsity-lemma-d1
#
# Lemma D.1 on random score vectors of length $n = K$ (top) and $n = N$ (bottom) for the
# norms $p = 1, 2, \infty$: the deviation of the softmax from one-hot against the gap $\gamma/T$,
# for {glue:text}`n_vectors` Gaussian vectors of random scale (dots) and the tied vector
# (orange), with the bound (dashed). In the grey region the bound exceeds the largest possible
# deviation $2^{1/p}$ and says nothing. Files:
# {figure-files}`fig-softmax-sparsity-lemma-d1`.
# ```
#
# We count a deviation as exceeding a bound only by more than the rounding tolerance $n\varepsilon$,
# the worst-case rounding error of the softmax's normalizing sum of $n$ terms ($\varepsilon$ =
# {glue:text}`eps:.2e` in float64: {glue:text}`tol_K:.1e` for $n = K$, {glue:text}`tol_N:.1e` for
# $n = N$; the data file lists it per row). {glue:md}`d1_check:myst` The bound is vacuous below a gap
# of $\log(n-1)$ for $p = 1$
# ({glue:text}`vacuous_K:.2f` for $n = K$, {glue:text}`vacuous_N:.2f` for $n = N$): a softmax is
# only guaranteed to be sparse when its winner leads by more than the logarithm of the number
# of entries. For $p = 1$ the bound is tight: at a gap of {glue:text}`tied_gap_max:.0f` the tied
# vector reaches {glue:text}`tied_ratio_1:.3f` of it. For $p = 2$ and $p = \infty$ it is loose by a
# factor of about two (the tied vector reaches {glue:text}`tied_ratio_2:.3f` and
# {glue:text}`tied_ratio_inf:.3f` of it), since then the losers' mass is counted once, not twice. For
# typical vectors the bound is pessimistic by roughly the number of entries: only the
# runner-up is near the top, so the deviation is about $2e^{-\gamma}$, not $2(n-1)e^{-\gamma}$; the
# median ratio of deviation to bound where the bound is informative is
# {glue:text}`gaussian_ratio_K:.3f` for $n = K$ and {glue:text}`gaussian_ratio_N:.4f` for $n = N$.
#
# Lemma D.2 is the version for a set: if a set $S$ of entries holds the maximum and leads every
# entry outside it by $\gamma_S$, the softmax differs from the softmax restricted to $S$ by at
# most $(1 + |S|)^{1/p} (n - |S|) e^{-\gamma_S/T}$. This is the statement needed for the partially
# memorizing denoiser, whose softmax at a training point it does not hold concentrates on the
# memorized points of that point's component. Below, $n = N$ and $|S|$ is the typical number of
# training points per component; Gaussian vectors have $S$ spread by a random scale and the rest
# $\gamma_S$ below it, and the *extreme* vector has one entry of $S$ at the top, the rest of $S$
# far below and every entry outside $S$ at $-\gamma_S$.

# %%
size = max(1, round(N / K))
set_gaps = torch.empty(n_vectors, 1, dtype=torch.float64).uniform_(0.0, 30.0, generator=vector_gen)
spread = torch.exp(torch.empty(n_vectors, 1, dtype=torch.float64).uniform_(
    math.log(0.03), math.log(10.0), generator=vector_gen))
v_in = spread * torch.randn(n_vectors, size, generator=vector_gen, dtype=torch.float64)
v_out = (v_in.amax(-1, keepdim=True) - set_gaps
         - spread * torch.randn(n_vectors, N - size, generator=vector_gen, dtype=torch.float64).abs())
v = torch.cat([v_in, v_out], dim=1)
in_S = torch.zeros(N, dtype=torch.bool)
in_S[:size] = True
S = in_S.expand(n_vectors, N)
extreme = torch.cat([torch.zeros(len(tied_gaps), 1, dtype=torch.float64),
                     torch.full((len(tied_gaps), size - 1), -1e3, dtype=torch.float64),
                     -tied_gaps[:, None].expand(-1, N - size)], dim=1)
S_extreme = in_S.expand(len(tied_gaps), N)
gap_S = set_gap(v, S)
set_rows = []
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
for ax, (p_name, p) in zip(axes, NORMS.items()):
    dev, dev_extreme = set_deviation(v, S, 1.0, p), set_deviation(extreme, S_extreme, 1.0, p)
    bound, bound_line = set_bound(gap_S, N, size, p), set_bound(tied_gaps, N, size, p)
    ax.scatter(gap_S, dev, s=3, alpha=0.3, color="C0", label="Gaussian vectors", rasterized=True)
    ax.plot(tied_gaps, dev_extreme, color="C1", label="extreme vector")
    ax.plot(tied_gaps, bound_line, "k--", label=r"bound $(1+|S|)^{1/p}(n-|S|)e^{-\gamma_S}$")
    ax.set_yscale("log")
    ax.set_ylim(1e-13, 1e4)
    ax.set_xlim(0, 30)
    ax.set_xlabel(r"set gap $\gamma_S / T$")
    ax.set_title(f"n = {N}, |S| = {size}, p = {p_name.replace('inf', '∞')}")
    set_rows += [{"p": p_name, "family": "gaussian", "gap_S": float(g), "deviation": float(e), "bound": float(b),
                  "tolerance": rounding_tolerance(N)} for g, e, b in zip(gap_S, dev, bound)]
    set_rows += [{"p": p_name, "family": "extreme", "gap_S": float(g), "deviation": float(e), "bound": float(b),
                  "tolerance": rounding_tolerance(N)} for g, e, b in zip(tied_gaps, dev_extreme, bound_line)]
axes[0].set_ylabel("distance to the softmax restricted to S")
axes[0].legend(loc="lower left")
set_lemma = pd.DataFrame(set_rows)
publish(fig, "fig-softmax-sparsity-lemma-d2", set_lemma, {**params, "set_size": size})
set_lemma["ratio"] = set_lemma["deviation"] / set_lemma["bound"]
extreme_end = set_lemma[(set_lemma["family"] == "extreme") & (set_lemma["gap_S"] == float(tied_gaps[-1]))]
glue("set_size", size, display=False)
glue("set_check", Markdown(bound_check(set_lemma, "The set bound", "gap_S")), display=False)
d2_beyond = int((set_lemma["deviation"] - set_lemma["bound"] > set_lemma["tolerance"]).sum())
# attained: at the largest gap the extreme vector's distance equals the bound to within the rounding tolerance
end = extreme_end.set_index("p")
attained = [p for p in NORMS if abs(end.loc[p, "deviation"] - end.loc[p, "bound"]) <= end.loc[p, "tolerance"]]
loose = [p for p in NORMS if p not in attained]
ratio_words = lambda ps: join_words([f"{end.loc[p, 'ratio']:.4f}" if p in attained else f"{end.loc[p, 'ratio']:.3f}"
                                     for p in ps])
tightness = []
if attained:
    tightness.append(
        f"For {join_words([P_TEXT[p] for p in attained])} the bound is attained: at a gap of {float(tied_gaps[-1]):.0f} "
        f"the extreme vector's distance equals it to within the rounding tolerance (ratio {ratio_words(attained)})"
        + (", since for $p = \\infty$ the factor $(1 + |S|)^{1/p}$ is 1 and the distance is the top entry's "
           "shortfall, the mass $(n-|S|)e^{-\\gamma_S}/(1 + (n-|S|)e^{-\\gamma_S})$ outside $S$"
           if "inf" in attained else "") + ".")
if loose:
    tightness.append(
        f"For {join_words([P_TEXT[p] for p in loose])} it is not: the extreme vector reaches only "
        f"{ratio_words(loose)} of the bound"
        + ("; for $p = 1$ the distance is twice the mass outside $S$, at most $2(n-|S|)e^{-\\gamma_S}$, so the "
           "factor $(1+|S|)$ costs a factor of about $(1 + |S|)/2$" if "1" in loose else "") + ".")
glue("set_tightness", Markdown(" ".join(tightness)), display=False)

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-lemma-d2
# :name: fig-softmax-sparsity-lemma-d2
#
# Lemma D.2 for a set $S$ of {glue:text}`set_size` entries among $n = N$: the distance between
# the softmax and the softmax restricted to $S$ against the set gap $\gamma_S$, for Gaussian
# vectors (dots) and the extreme vector (orange), with the bound (dashed). Files:
# {figure-files}`fig-softmax-sparsity-lemma-d2`.
# ```
#
# {glue:md}`set_check:myst` {glue:md}`set_tightness:myst`
#
# ## Inside the laboratory
#
# Now the softmax of the actual denoisers, at $x_t = \alpha_t x_i + \sigma_t z$ for every training
# point $x_i$ and {glue:text}`n_noise` noise draws $z$, at every grid time and at dimensions from
# {glue:text}`d_min` to {glue:text}`d_max` ($N$ = {glue:text}`N`, $K$ = {glue:text}`K`, means on the
# sphere of radius $\sqrt d$, $\sigma_*^2 = 1$). The logits $w$ already contain the factor
# $1/(2 v_t)$, so the lemmas apply with $T = 1$.
#
# ### Predicted gaps
#
# We could not obtain the text of the paper's Appendix E, so the predictions below are our
# own derivation, tested against the measurement.
#
# *Memorizing denoiser* ($s^2 = 0$, $v_t = \sigma_t^2$). The gap between the logit of $x_i$
# itself and that of another training point $x_j$ is
#
# $$\gamma_j = \frac{\lVert \alpha_t(x_i - x_j) + \sigma_t z\rVert^2 - \lVert \sigma_t z\rVert^2}{2\sigma_t^2}
#   = \frac{\psi_t}{2}\lVert x_i - x_j\rVert^2 + \sqrt{\psi_t}\,\langle x_i - x_j, z\rangle .$$
#
# For $x_j$ in the same component, $x_i - x_j = \sigma_*(g_i - g_j)$ with $g$ standard Gaussian,
# so $\mathbb E\gamma_j = \psi_t d \sigma_*^2$ exactly; a point of another component is farther
# ($\mathbb E\gamma_j = \psi_t(d\sigma_*^2 + r^2)$). The runner-up is the closest of the
# $m_i = N_{k(i)} - 1$ other points of $x_i$'s component. Given $x_i$ and $z$, the part of
# $\gamma_j$ that changes with $j$ is
# $\tfrac{\psi_t\sigma_*^2}{2}(\lVert g_j\rVert^2 - 2\langle g_i, g_j\rangle) - \sqrt{\psi_t}\sigma_*\langle g_j, z\rangle$,
# with variance $d(\tfrac32\psi_t^2\sigma_*^4 + \psi_t\sigma_*^2)$ on average. Treating the $m_i$
# competitors as independent Gaussians,
#
# $$\mathbb E\,\gamma \approx \psi_t d\sigma_*^2 - \sqrt{d\left(\tfrac32\psi_t^2\sigma_*^4 + \psi_t\sigma_*^2\right)}\; e_{m_i},
#   \qquad e_m = \mathbb E \max(Z_1, \dots, Z_m).$$
#
# *Ideal denoiser* ($s^2 = \sigma_*^2$, $v_t = \alpha_t^2\sigma_*^2 + \sigma_t^2$). With
# $\eta = \alpha_t\sigma_* g + \sigma_t z \sim N(0, v_t I)$, the gap between the true component $k$ and
# another one $l$ is
# $\gamma_l = (\alpha_t^2\lVert\mu_k - \mu_l\rVert^2 + 2\alpha_t\langle \mu_k - \mu_l, \eta\rangle)/(2v_t)$.
# With $\tilde\psi_t = \alpha_t^2/v_t = \psi_t/(\psi_t\sigma_*^2 + 1)$ and means of norm $r$,
# $\mathbb E\gamma_l = \tilde\psi_t r^2$, and the $l$-dependent part
# $-\tilde\psi_t\langle\mu_k, \mu_l\rangle - (\alpha_t/v_t)\langle \mu_l, \eta\rangle$ has variance
# $\tilde\psi_t^2 r^4/d + \tilde\psi_t r^2$, so with $K - 1$ competitors
#
# $$\mathbb E\,\gamma \approx \tilde\psi_t r^2 - \sqrt{\tilde\psi_t^2 r^4/d + \tilde\psi_t r^2}\; e_{K-1}.$$
#
# Both leading terms grow linearly in $d$ and the corrections only like $\sqrt d$: in high
# dimension the gap exceeds $\log n$ at every fixed $t$, and by Lemma D.1 the softmax becomes
# one-hot. The edge of sparsity is where the predicted gap falls to $\log(2(n-1))$, the point
# where Lemma D.1's bound reaches 1; for small $\psi_t$ (large $t$) the edge moves to large $d$.
# These formulas are `memlab.sparsity.gap_moments_memorizing`, `gap_moments_ideal` and
# `runner_up_gap`.

# %%
def measure(problem, models, t, z):
    """Softmax statistics, nominal-denoiser discrepancy, lemma checks and per-point losses at one time.

    x_t = alpha_t x_i + sigma_t z for all N training points and the S draws z [S, N, d].
    The partially memorizing model is measured at the points it does not hold.
    """
    S_draws, d = z.shape[0], problem.d
    x = noisy(problem.train, t, z).reshape(-1, d)                               # [S N, d]
    x0 = problem.train.repeat(S_draws, 1)
    labels = problem.train_labels.repeat(S_draws)
    lacks = torch.arange(len(x)) % N >= M                                        # points pmem does not hold
    stats, losses, checks, violations = {}, {}, 0, 0
    for name, model in models.items():
        w = logits(x, t, model)[0]                                               # [S N, n]
        p = torch.softmax(w, -1)
        xh = xhat0(x, t, model)[0]
        losses[name] = (xh - x0).pow(2).sum(-1).view(S_draws, N).mean(0)        # [N]
        rows = lacks if name == "pmem" else slice(None)
        stats[f"{name} top mass"] = float(top_mass(p[rows]).mean())
        stats[f"{name} effective number"] = float(effective_number(p[rows]).mean())
        stats[f"{name} gap"] = float(top_gap(w[rows]).mean())
        stats[f"{name} nominal discrepancy"] = float(
            (nominal_xhat0(x, t, model)[0] - xh)[rows].pow(2).sum(-1).mean() / (d * var_star))
        # Lemma D.1 on every point, Lemma D.2 with S = the model's entries of x_i's component
        n = w.shape[-1]
        own = labels[:, None] == (torch.arange(K) if name == "ideal" else problem.train_labels[:n])[None, :]
        usable = own.gather(1, w.argmax(-1, keepdim=True))[:, 0] & ~own.all(-1)
        if name == "pmem":
            stats["pmem mass on own component"] = float((p * own)[lacks].sum(-1).mean())
        w_S, S_own = w[usable], own[usable]
        for q in NORMS.values():
            bound = softmax_bound(top_gap(w), n)
            violations += int((softmax_deviation(w, 1.0, q) > bound + rounding_tolerance(n, w.dtype)).sum())
            checks += len(w)
            if name != "ideal":                          # for the ideal denoiser S is the top entry alone
                set_b = set_bound(set_gap(w_S, S_own), n, S_own.sum(-1), q)     # |S| per point
                violations += int((set_deviation(w_S, S_own, 1.0, q) > set_b + rounding_tolerance(n, w.dtype)).sum())
                checks += len(w_S)
    stats["lemma checks"], stats["lemma violations"] = checks, violations
    return stats, losses

# %%
def laboratory(problem):
    """The chapter's three denoisers for one draw of the data."""
    return {"ideal": ideal(problem), "mem": memorizing(problem.train),
            "pmem": partially_memorizing(problem.train, [M])}


def competitor_counts(problem):
    """m for the predictions: per training point, the other points of its component [N]; per point
    that pmem lacks, the memorized points of its component [N - M]."""
    labels = problem.train_labels
    return torch.bincount(labels, minlength=K)[labels] - 1, torch.bincount(labels[:M], minlength=K)[labels[M:]]


def mean_prediction(predict, m):
    """The mean over points of predict(m); nan if a point has no competitor (m = 0): the formula does not apply."""
    return float(predict(m).mean()) if int(m.min()) >= 1 else float("nan")


def excess_summary(loss, t, d):
    """Theorem 3.1's relative error and the measured C, with standard errors over the training points.

    loss: per-point losses [N] of each denoiser. The SE of C is stratified: the M held points and
    the N - M lacked points are two populations.
    """
    excess_ideal, excess_pmem = loss["ideal"] - loss["mem"], loss["pmem"] - loss["mem"]
    theory = float(generalizing_excess(t, d, var_star))
    unit = (1 - M / N) * d * var_star
    held, lacked = excess_pmem[:M], excess_pmem[M:]
    se_pmem = math.sqrt((M / N) ** 2 * float(held.var()) / M + (1 - M / N) ** 2 * float(lacked.var()) / (N - M))
    return {"excess ideal": float(excess_ideal.mean()), "Theorem 3.1": theory,
            "relative error 3.1": float(excess_ideal.mean()) / theory - 1,
            "se 3.1": float(excess_ideal.std()) / math.sqrt(N) / theory,
            "excess pmem": float(excess_pmem.mean()), "C": float(excess_pmem.mean()) / unit, "se C": se_pmem / unit}


cell_rows = []
for d in dims:
    problem = make_problem(N, d, K, generator(seed, "data"), var=var_star)
    noise_gen = generator(seed, "reference_loss", d)
    models = laboratory(problem)
    m_mem, m_pmem = competitor_counts(problem)
    for t in times:
        z = torch.randn(n_noise, N, d, generator=noise_gen, dtype=torch.float64)
        stats, loss = measure(problem, models, t, z)
        cell_rows.append({
            "d": d, "t": float(t), "psi": float(psi(t)), **stats, **excess_summary(loss, t, d),
            "ideal gap typical": float(gap_moments_ideal(t, d, var_star)[0]),
            "ideal gap predicted": float(runner_up_gap(*gap_moments_ideal(t, d, var_star), K - 1)),
            "mem gap typical": float(gap_moments_memorizing(t, d, var_star)[0]),
            "mem gap predicted": mean_prediction(lambda m: runner_up_gap(*gap_moments_memorizing(t, d, var_star), m),
                                                 m_mem),
            "C predicted": mean_prediction(lambda m: nearest_neighbour_c(t, d, m, var_star), m_pmem),
        })
cells = pd.DataFrame(cell_rows)
cells["relative error 3.2, C=2"] = cells["C"] / 2 - 1
cells["relative error 3.2, C=1"] = cells["C"] - 1
glue("lab_checks", int(cells["lemma checks"].sum()), display=False)
glue("lab_violations", int(cells["lemma violations"].sum()), display=False)

# %% [markdown]
# ### Where the softmax is sparse
#
# The measured mean weight on the top entry and the effective number of active entries
# $\exp(H(p))$ (1 for a one-hot softmax, $n$ for a uniform one), over $(d, t)$, for the ideal
# denoiser ($n = K$), the memorizing denoiser ($n = N$) and the partially memorizing denoiser
# $\mathrm{pmem}_M$ ($M$ = {glue:text}`M`) at the training points it does not hold:

# %%
t_sorted = np.sort(times.numpy())
step = t_sorted[1] - t_sorted[0]
t_edges = np.concatenate([t_sorted - step / 2, [t_sorted[-1] + step / 2]])
log_d = np.log(np.array(dims, dtype=float))
half_steps = np.diff(log_d) / 2 if len(dims) > 1 else np.array([math.log(2)])
d_edges = np.exp(np.concatenate([[log_d[0] - half_steps[0]], log_d[:-1] + half_steps, [log_d[-1] + half_steps[-1]]]))


def heat(ax, column, title, **style):
    """A (t, d) heat map of one column of `cells`, dotted at the representative time; returns the mesh."""
    grid = cells.pivot(index="d", columns="t", values=column).loc[dims, t_sorted].to_numpy()
    mesh = ax.pcolormesh(t_edges, d_edges, grid, shading="flat", **style)
    ax.set_yscale("log")
    ax.set_yticks(dims, [str(d) for d in dims])
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.axvline(float(t_rep), color="0.6", ls=":", lw=1)
    ax.set_title(title, fontsize=10)
    ax.grid(False)
    return mesh


t_fine = torch.linspace(0.001, 0.999, 300, dtype=torch.float64)
d_fine = torch.logspace(math.log10(d_edges[0]), math.log10(d_edges[-1]), 300, dtype=torch.float64)
T_fine, D_fine = torch.meshgrid(t_fine, d_fine, indexing="xy")
m_typical = max(1, round(N / K) - 1)
edge = {"ideal": (runner_up_gap(*gap_moments_ideal(T_fine, D_fine, var_star), K - 1), math.log(2 * (K - 1))),
        "mem": (runner_up_gap(*gap_moments_memorizing(T_fine, D_fine, var_star), m_typical), math.log(2 * (N - 1)))}

fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True, sharey=True)
names = {"ideal": "ideal (n = K)", "mem": "memorizing (n = N)", "pmem": "pmem$_M$ at points it lacks (n = M)"}
for col, (key, label) in enumerate(names.items()):
    top = heat(axes[0, col], f"{key} top mass", label, cmap="viridis", vmin=0, vmax=1)
    eff = heat(axes[1, col], f"{key} effective number", "", cmap="magma_r", norm=colors.LogNorm(1, N))
    if key in edge:
        gap_fine, level = edge[key]
        for ax in axes[:, col]:
            ax.contour(T_fine, D_fine, gap_fine, levels=[level], colors="w", linestyles="--", linewidths=1.5)
for ax in axes[1]:
    ax.set_xlabel("time t")
for ax in axes[:, 0]:
    ax.set_ylabel("dimension d")
fig.colorbar(top, ax=axes[0], label="mean weight of the top entry")
fig.colorbar(eff, ax=axes[1], label="mean exp(entropy)")
heat_columns = ["d", "t", "psi"] + [f"{k} {q}" for k in names for q in ("top mass", "effective number")]
publish(fig, "fig-softmax-sparsity-heatmaps", cells[heat_columns + ["pmem mass on own component"]], params)

rep = cells[cells["t"] == float(t_rep)].set_index("d")


def first_from(holds):
    """The smallest d of the sweep from which `holds` (a bool Series indexed by d) is True for every larger d."""
    fails = [d for d in dims if not bool(holds.loc[d])]
    later = [d for d in dims if not fails or d > fails[-1]]
    return later[0] if later else float("nan")


glue("sparse_level", 1 - tolerance, display=False)
glue("ideal_sparse_from", first_from(rep["ideal top mass"] >= 1 - tolerance), display=False)
glue("mem_sparse_from", first_from(rep["mem top mass"] >= 1 - tolerance), display=False)
glue("ideal_top_dmin", float(rep.loc[dims[0], "ideal top mass"]), display=False)
glue("mem_top_dmin", float(rep.loc[dims[0], "mem top mass"]), display=False)
glue("pmem_own_dmax", float(rep.loc[dims[-1], "pmem mass on own component"]), display=False)
glue("pmem_own_dmin", float(rep.loc[dims[0], "pmem mass on own component"]), display=False)

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-heatmaps
# :name: fig-softmax-sparsity-heatmaps
#
# Sparsity of the three denoisers' softmax over time $t$ (columns of cells: the 26 grid times)
# and dimension $d$ (rows: the sweep). Top: mean weight of the largest entry; bottom: mean
# effective number of entries. Dashed white: the predicted edge, where the predicted runner-up
# gap equals $\log(2(n-1))$, i.e. where Lemma D.1's bound at the predicted gap reaches 1; dotted
# grey: the representative time. Files:
# {figure-files}`fig-softmax-sparsity-heatmaps`.
# ```
#
# The softmax is one-hot over most of the $(d, t)$ plane; it is dense at large $t$ (low
# signal-to-noise ratio $\psi_t$) and at small $d$, and the predicted edge tracks the measured
# one. At the representative time $t$ = {glue:text}`t_rep:.4f` the mean top weight is at least
# {glue:text}`sparse_level:.2f` from $d$ = {glue:text}`ideal_sparse_from` on for the ideal
# denoiser and from $d$ = {glue:text}`mem_sparse_from` on for the memorizing one; at
# $d$ = {glue:text}`d_min` it is only {glue:text}`ideal_top_dmin:.2f` and
# {glue:text}`mem_top_dmin:.2f`. The memorizing softmax over $N$ entries is sparse at smaller $d$
# than the ideal one over $K$, because its gap grows with $\psi_t d$ rather than
# $\psi_t d/(\psi_t\sigma_*^2 + 1)$. For the partially memorizing denoiser the mass on the
# memorized points of the right component (Lemma D.2's set) at the representative time is
# {glue:text}`pmem_own_dmin:.2f` at $d$ = {glue:text}`d_min` and {glue:text}`pmem_own_dmax:.4f` at
# $d$ = {glue:text}`d_max`; inside that set its softmax is close to one-hot as well (effective
# number near 1), which matters for the constant $C$ below.
#
# In all {glue:text}`lab_checks` checks of the lemmas on these softmaxes (every point, time,
# dimension and denoiser, $p = 1, 2, \infty$, and Lemma D.2 with $S$ the entries of the point's
# own component) the measured deviation exceeded the bound by more than the rounding tolerance
# $n\varepsilon$ in {glue:text}`lab_violations` cases.
#
# ### Measured against predicted gaps

# %%
shown = [times[6], t_rep, times[22]]                  # t = 0.759, the representative time, t = 0.121
gap_rows = []
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
for ax, (key, moments, m_line, title) in zip(axes, [
        ("ideal", gap_moments_ideal, K - 1, "ideal denoiser"),
        ("mem", gap_moments_memorizing, m_typical, "memorizing denoiser")]):
    for colour, t in enumerate(shown):
        at = cells[cells["t"] == float(t)]
        ratio = at[f"{key} gap"] / at[f"{key} gap typical"]
        ax.plot(at["d"], ratio, "o", color=f"C{colour}", label=f"measured, t = {float(t):.3f}")
        ax.plot(at["d"], at[f"{key} gap predicted"] / at[f"{key} gap typical"], "x", color=f"C{colour}", ms=7)
        mean, sd = moments(t, d_fine, var_star)
        ax.plot(d_fine, runner_up_gap(mean, sd, m_line) / mean, "-", color=f"C{colour}", lw=1)
        gap_rows += [{"denoiser": key, "t": float(t), "d": int(row["d"]), "measured gap": row[f"{key} gap"],
                      "typical gap": row[f"{key} gap typical"], "predicted runner-up gap": row[f"{key} gap predicted"]}
                     for _, row in at.iterrows()]
    ax.axhline(1, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(dims, [str(d) for d in dims], fontsize=8)
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_ylim(-0.5, 1.3)
    ax.set_xlabel("dimension d")
    ax.set_title(title)
axes[0].set_ylabel("gap / leading order (typical competitor)")
axes[0].legend(title="x: predicted (this draw); line: typical m")
publish(fig, "fig-softmax-sparsity-gaps", pd.DataFrame(gap_rows), params)

for key in ("ideal", "mem"):
    error = (rep[f"{key} gap predicted"] / rep[f"{key} gap"] - 1).abs()
    glue(f"{key}_gap_ok_from", first_from(error <= tolerance / 2), display=False)
    glue(f"{key}_gap_error_dmax", float(error.loc[dims[-1]]), display=False)
    glue(f"{key}_gap_typical_dmax", float(rep.loc[dims[-1], f"{key} gap"] / rep.loc[dims[-1], f"{key} gap typical"]),
         display=False)
glue("half_tolerance", tolerance / 2, display=False)

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-gaps
# :name: fig-softmax-sparsity-gaps
#
# The measured mean gap between the top logit and the runner-up (dots), divided by the
# leading-order gap to a typical competitor ($\tilde\psi_t r^2$ and $\psi_t d\sigma_*^2$), at three
# grid times, with the predicted runner-up gap for this draw's component sizes (crosses) and for
# typical sizes (lines). Files:
# {figure-files}`fig-softmax-sparsity-gaps`.
# ```
#
# The leading order overestimates the runner-up gap: the runner-up is the best of many
# competitors, not a typical one, and its advantage shrinks only like $1/\sqrt d$ (at
# $d$ = {glue:text}`d_max` the measured gap is still only {glue:text}`ideal_gap_typical_dmax:.3f`
# (ideal) and {glue:text}`mem_gap_typical_dmax:.3f` (memorizing) of the leading order at the
# representative time). The extreme-value correction fixes this: at the representative time the
# predicted runner-up gap is within {glue:text}`half_tolerance:.0%` of the measured one from
# $d$ = {glue:text}`ideal_gap_ok_from` on for the ideal denoiser and from
# $d$ = {glue:text}`mem_gap_ok_from` on for the memorizing one (at $d$ = {glue:text}`d_max`:
# {glue:text}`ideal_gap_error_dmax:.1%` and {glue:text}`mem_gap_error_dmax:.1%`). Below that,
# components overlap, competitors from other components enter, and the Gaussian picture of the
# competitors fails; the prediction even turns negative where the measured softmax is dense.
#
# ## Consequences for the denoisers and their losses
#
# ### The nominal denoiser
#
# Where the softmax is one-hot the denoiser is its *nominal* version, which replaces the
# softmax by the one-hot vector of its top entry: the nearest mean for the ideal denoiser, the
# nearest training point for the memorizing one. The two differ by
# $(\sigma_t^2/v_t)\lVert\sum_i p_i(\mu_i - \mu_k)\rVert \le (\sigma_t^2/v_t)(1 - p_k)\max_i\lVert\mu_i - \mu_k\rVert$,
# and Lemma D.1 bounds $1 - p_k$ by $(n-1)e^{-\gamma}$. Measured as
# $\mathbb E\lVert \hat x_0^{\mathrm{nominal}} - \hat x_0\rVert^2 / (d\sigma_*^2)$:

# %%
floor = 1e-16
for key in names:
    cells[f"log10 {key} nominal discrepancy"] = np.log10(cells[f"{key} nominal discrepancy"].clip(lower=floor))
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharex=True, sharey=True)
for ax, (key, label) in zip(axes, names.items()):
    mesh = heat(ax, f"log10 {key} nominal discrepancy", label, cmap="cividis", vmin=-16, vmax=0)
    ax.contour(*np.meshgrid(t_sorted, dims), cells.pivot(index="d", columns="t", values=f"{key} nominal discrepancy")
               .loc[dims, t_sorted].to_numpy(), levels=[tolerance**2], colors="w", linewidths=1.5)
    ax.set_xlabel("time t")
axes[0].set_ylabel("dimension d")
fig.colorbar(mesh, ax=axes, label=r"log$_{10}$ E||nominal - exact||$^2$ / (d $\sigma_*^2$)")
publish(fig, "fig-softmax-sparsity-nominal", cells[["d", "t"] + [f"{k} nominal discrepancy" for k in names]],
        {**params, "floor": floor})
for key in names:
    glue(f"{key}_nominal_ok_from", first_from(rep[f"{key} nominal discrepancy"] <= tolerance**2), display=False)
    glue(f"{key}_nominal_dmin", float(rep.loc[dims[0], f"{key} nominal discrepancy"]), display=False)
glue("tolerance_squared", tolerance**2, display=False)

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-nominal
# :name: fig-softmax-sparsity-nominal
#
# Mean squared distance between the nominal (nearest-neighbour) and the exact denoiser, in units
# of $d\sigma_*^2$, over $(t, d)$ (floored at $10^{-16}$); the white line is the level
# {glue:text}`tolerance_squared:.2g`, an RMS error of {glue:text}`tolerance:.0%` of $\sigma_*$ per
# coordinate. Files:
# {figure-files}`fig-softmax-sparsity-nominal`.
# ```
#
# The picture follows the sparsity maps: wherever the softmax is one-hot the nominal denoiser
# is the exact one to many digits. At the representative time the discrepancy is below
# {glue:text}`tolerance_squared:.2g` from $d$ = {glue:text}`ideal_nominal_ok_from` on for the ideal
# denoiser, from $d$ = {glue:text}`mem_nominal_ok_from` on for the memorizing one and from
# $d$ = {glue:text}`pmem_nominal_ok_from` on for $\mathrm{pmem}_M$; at $d$ = {glue:text}`d_min` it is
# {glue:text}`ideal_nominal_dmin:.3f`, {glue:text}`mem_nominal_dmin:.3f` and
# {glue:text}`pmem_nominal_dmin:.3f`. The ideal denoiser is the most forgiving: its softmax only
# moves the part $(\sigma_t^2/v_t)\sum_i p_i\mu_i$ of its output, and $\sigma_t^2/v_t$ is small at
# small $t$, so even a dense softmax changes its output little there; the memorizing denoisers,
# with $s^2 = 0$, return the softmax average itself.
#
# ### The loss approximations of Theorems 3.1 and 3.2
#
# Theorem 3.1 approximates the ideal denoiser's excess training loss over the memorizing one by
# $d\sigma_*^2/(\psi_t\sigma_*^2 + 1)$; Theorem 3.2 approximates that of $\mathrm{pmem}_M$ by
# $C(1 - M/N)d\sigma_*^2$, so the measured constant is
# $\hat C = (L(\mathrm{pmem}_M) - L(\mathrm{mem}))/((1 - M/N)d\sigma_*^2)$, and the relative error of
# Theorem 3.2 with a given $C$ is $\hat C/C - 1$. Both excesses are Monte Carlo estimates with the
# same noise for all denoisers.
#
# A prediction for $C$ follows from sparsity. Where the softmax of $\mathrm{pmem}_M$ is one-hot, a
# training point $x_i$ that it does not hold is sent to the memorized point $x_j$ of its component
# nearest to $x_t/\alpha_t = x_i + z/\sqrt{\psi_t}$, at squared distance
# $\sigma_*^2(\lVert g_i\rVert^2 + \lVert g_j\rVert^2 - 2\langle g_i, g_j\rangle)$, which is
# $2d\sigma_*^2$ for a typical $x_j$ but less for the selected one: the $j$-dependent part has
# standard deviation $\sqrt{6d}\,\sigma_*^2$, and the noise adds $4d\sigma_*^2/\psi_t$ to the variance of
# the selection score. For $m_i$ candidates (the memorized points of $x_i$'s component), with the
# memorizing loss near zero,
#
# $$C \approx 2 - \sqrt{\frac{6}{d}}\;\frac{e_{m_i}}{\sqrt{1 + 2/(3\psi_t\sigma_*^2)}} ,$$
#
# which tends to 2 as $d \to \infty$, but only like $1/\sqrt d$ (`memlab.sparsity.nearest_neighbour_c`).
# It is the paper's "one memorized point dominates" case, and it does not give $C = 2$ at
# moderate $d$: the dominant point is the *nearest* of several, not a typical one.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
mesh = heat(axes[0], "relative error 3.1", "Theorem 3.1: relative error", cmap="RdBu_r",
            norm=colors.TwoSlopeNorm(0, -0.5, 0.5))
fig.colorbar(mesh, ax=axes[0], label="relative error (clipped to ±0.5)")
mesh_c = heat(axes[1], "C", r"Theorem 3.2: measured $\hat C$", cmap="viridis", vmin=0, vmax=2)
fig.colorbar(mesh_c, ax=axes[1], label=r"$\hat C$")
T_grid, D_grid = np.meshgrid(t_sorted, dims)
rel31_grid = cells.pivot(index="d", columns="t", values="relative error 3.1").loc[dims, t_sorted].to_numpy()
c_grid = cells.pivot(index="d", columns="t", values="C").loc[dims, t_sorted].to_numpy()
axes[0].contour(T_grid, D_grid, np.abs(rel31_grid), levels=[tolerance], colors="k", linewidths=1.5)
axes[1].contour(T_grid, D_grid, c_grid, levels=[2 * (1 - tolerance)], colors="w", linewidths=1.5)
axes[1].contour(T_grid, D_grid, np.abs(c_grid - 1), levels=[tolerance], colors="C1", linewidths=1.5,
                linestyles="--")
for ax in axes:
    ax.set_xlabel("time t")
axes[0].set_ylabel("dimension d")
publish(fig, "fig-softmax-sparsity-approximations",
        cells[["d", "t", "psi", "excess ideal", "Theorem 3.1", "relative error 3.1", "se 3.1", "excess pmem", "C",
               "se C", "C predicted", "relative error 3.2, C=2", "relative error 3.2, C=1"]],
        {**params, "M": M})

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-approximations
# :name: fig-softmax-sparsity-approximations
#
# Left: relative error of Theorem 3.1 over $(t, d)$; the black line bounds the region where it is
# within {glue:text}`tolerance:.0%`. Right: the measured constant $\hat C$ of Theorem 3.2
# ($M$ = {glue:text}`M` of $N$ = {glue:text}`N`); above the white line $\hat C$ is at least
# {glue:text}`c_level:.2f`, i.e. the paper's $C = 2$ is within {glue:text}`tolerance:.0%`; inside
# the dashed orange line the code's $C = 1$ is. Files:
# {figure-files}`fig-softmax-sparsity-approximations`.
# ```

# %% [markdown]
# At the representative time we repeat the two excess losses on {glue:text}`n_draws` independent
# draws of the data (means, training set and noise), so that the verdicts below do not hang on
# one draw: $\hat C$ varies from draw to draw with the component sizes by more than the Monte Carlo
# error within a draw.

# %%
draw_rows = []
for d in dims:
    draws_gen = generator(seed, "draws", d)
    for draw in range(n_draws):
        problem = make_problem(N, d, K, draws_gen, var=var_star)
        noise_seed = int(torch.randint(2**62, (), generator=draws_gen))      # one noise stream for all models
        loss = {name: loss_per_time(model, problem.train, t_rep[None], n_noise,
                                    torch.Generator().manual_seed(noise_seed))[0, :, 0]
                for name, model in laboratory(problem).items()}
        _, m_pmem = competitor_counts(problem)
        draw_rows.append({"d": d, "draw": draw, **excess_summary(loss, t_rep, d), "C predicted": mean_prediction(
            lambda m: nearest_neighbour_c(t_rep, d, m, var_star), m_pmem)})
draws = pd.DataFrame(draw_rows)
draws["relative error 3.2, C=2"] = draws["C"] / 2 - 1
by_d = draws.groupby("d")
rep_draws = by_d[["relative error 3.1", "C", "C predicted", "relative error 3.2, C=2"]].mean()
# SE over draws; with a single draw, the within-draw SE
rep_draws["se C"] = by_d["C"].std() / math.sqrt(n_draws) if n_draws > 1 else by_d["se C"].mean()
rep_draws["se 3.1"] = by_d["relative error 3.1"].std() / math.sqrt(n_draws) if n_draws > 1 else by_d["se 3.1"].mean()

fig, ax = plt.subplots()
ax.plot(draws["d"], draws["C"], ".", color="C0", alpha=0.4, label="one data draw")
ax.errorbar(rep_draws.index, rep_draws["C"], yerr=2 * rep_draws["se C"], fmt="o", ms=5, color="C0",
            label=r"measured $\hat C$, mean of draws ($\pm 2$ SE)")
ax.plot(rep_draws.index, rep_draws["C predicted"], "x", ms=8, color="C1",
        label="nearest-neighbour prediction, mean of draws")
m_held = max(1, round(M / K))
ax.plot(d_fine, nearest_neighbour_c(t_rep, d_fine, m_held, var_star), "-", color="C1", lw=1,
        label=f"nearest-neighbour prediction, m = {m_held}")
ax.axhline(2, color="k", ls=":", lw=1)
ax.axhline(1, color="k", ls=":", lw=1)
ax.axhspan(2 * (1 - tolerance), 2, color="C2", alpha=0.15, label=f"C = 2 within {tolerance:.0%}")
ax.set_xscale("log")
ax.set_xticks(dims, [str(d) for d in dims], fontsize=8)
ax.xaxis.set_minor_locator(ticker.NullLocator())
ax.set_ylim(0, 2.2)
ax.set_xlabel("dimension d")
ax.set_ylabel(f"C of Theorem 3.2 at t = {float(t_rep):.3f}")
ax.legend(loc="lower right")
publish(fig, "fig-softmax-sparsity-measured-c", draws, {**params, "M": M, "t": float(t_rep), "m_line": m_held})

# %%
# the representative-time verdicts, and the dimension at which the nearest-neighbour C reaches 2 (1 - tolerance)
rep = cells[cells["t"] == float(t_rep)].set_index("d")
glue("c_level", 2 * (1 - tolerance), display=False)
glue("d31_rep", first_from(rep_draws["relative error 3.1"].abs() <= tolerance), display=False)
glue("d32_rep", first_from(rep_draws["relative error 3.2, C=2"].abs() <= tolerance), display=False)
e_held = float(expected_max_normal(m_held))
shrink_rep = math.sqrt(1 + 2 / (3 * float(psi(t_rep)) * var_star))
glue("d32_predicted", 6 * (e_held / (shrink_rep * 2 * tolerance)) ** 2, display=False)
glue("m_held", m_held, display=False)
glue("e_held", e_held, display=False)
d_paper = min(dims, key=lambda d: abs(d - 50))
glue("d_paper", d_paper, display=False)
for label, d in (("dmin", dims[0]), ("paper", d_paper), ("dmax", dims[-1])):
    glue(f"C_{label}", float(rep_draws.loc[d, "C"]), display=False)
    glue(f"C_se_{label}", float(rep_draws.loc[d, "se C"]), display=False)
    glue(f"rel31_{label}", float(rep_draws.loc[d, "relative error 3.1"]), display=False)
    glue(f"rel32_{label}", float(rep_draws.loc[d, "relative error 3.2, C=2"]), display=False)
c1_dims = [d for d in dims if abs(rep_draws.loc[d, "C"] - 1) <= tolerance]
glue("c1_dims", Markdown(", ".join(str(d) for d in c1_dims) if c1_dims else "none of the sweep"), display=False)
glue("C_spread_paper", float(draws.loc[draws["d"] == d_paper, "C"].std()), display=False)
glue("pmem_eff_paper", float(rep.loc[d_paper, "pmem effective number"]), display=False)
glue("C_single_paper", float(rep.loc[d_paper, "C"]), display=False)
gap_trusted_from = first_from((rep["mem gap predicted"] / rep["mem gap"] - 1).abs() <= tolerance / 2)
trusted = [d for d in dims if d >= gap_trusted_from]
glue("c_pred_error", float((rep_draws.loc[trusted, "C"] - rep_draws.loc[trusted, "C predicted"]).abs().max())
     if trusted else float("nan"), display=False)
glue("c_trusted_from", trusted[0] if trusted else float("nan"), display=False)


def holds_up_to(column, ok):
    """Per d: the largest grid time t such that `ok(value)` holds at t and at every smaller grid time (nan if none)."""
    out = {}
    for d in dims:
        series = cells[cells["d"] == d].set_index("t")[column].loc[t_sorted]
        bad = np.flatnonzero(~ok(series.to_numpy()))
        last = (bad[0] - 1) if len(bad) else len(t_sorted) - 1
        out[d] = float(t_sorted[last]) if last >= 0 else float("nan")
    return pd.Series(out)


validity = pd.DataFrame({
    "Theorem 3.1 holds for t <=": holds_up_to("relative error 3.1", lambda r: np.abs(r) <= tolerance),
    "Theorem 3.2, C = 2, holds for t <=": holds_up_to("relative error 3.2, C=2", lambda r: np.abs(r) <= tolerance),
    "Theorem 3.1 error at t_rep": rep_draws["relative error 3.1"],
    "C at t_rep": rep_draws["C"], "SE of C": rep_draws["se C"], "C predicted": rep_draws["C predicted"],
    "ideal top mass at t_rep": rep["ideal top mass"], "mem top mass at t_rep": rep["mem top mass"],
})
validity.index.name = "d"
glue("t31_paper", float(validity.loc[d_paper, "Theorem 3.1 holds for t <="]), display=False)
glue("t31_dmax", float(validity.loc[dims[-1], "Theorem 3.1 holds for t <="]), display=False)
glue("t32_dmax", float(validity.loc[dims[-1], "Theorem 3.2, C = 2, holds for t <="]), display=False)
# where the softmax of pmem spreads at the representative time, and what C is there (heat-map draw)
dense = [d for d in dims if rep.loc[d, "pmem effective number"] > 1 + tolerance]
others = [d for d in dims if d not in dense]
if dense:
    lower = bool(others) and max(rep.loc[dense, "C"]) < min(rep.loc[others, "C"])
    spreading = (
        f"Where the softmax of $\\mathrm{{pmem}}_M$ does spread (mean effective number above {1 + tolerance:g}), "
        f"$\\hat C$ is {'lower than at every $d$ where it does not' if lower else 'not always lower than where it does not'}"
        f": at the representative time this happens at $d$ = {join_words([str(d) for d in dense])} (effective number "
        f"{join_words([f'{e:.2f}' for e in rep.loc[dense, 'pmem effective number']])}, "
        f"$\\hat C$ = {join_words([f'{c:.2f}' for c in rep.loc[dense, 'C']])} in the heat-map draw)")
else:
    spreading = (f"At the representative time the softmax of $\\mathrm{{pmem}}_M$ has mean effective number at most "
                 f"{1 + tolerance:g} at every $d$ of the sweep")
glue("spreading_text", Markdown(spreading + "."), display=False)
lemma_failures = d1_beyond + d2_beyond + int(cells["lemma violations"].sum())
glue("lemma_summary", Markdown(
    "Lemmas D.1 and D.2 hold, up to floating-point rounding, on every vector we tried, random or from the laboratory"
    if lemma_failures == 0 else
    f"Lemmas D.1 and D.2 fail beyond rounding in {lemma_failures} of the vectors we tried"), display=False)
glue("set_attained", Markdown(join_words([P_TEXT[p] for p in attained]) if attained else "no $p$"), display=False)
shown = validity.round(3)
for column in ("Theorem 3.1 holds for t <=", "Theorem 3.2, C = 2, holds for t <="):
    shown[column] = [("never" if math.isnan(t) else f"{t:.3f}") for t in validity[column]]
shown

# %% [markdown]
# ```{glue:figure} fig-softmax-sparsity-measured-c
# :name: fig-softmax-sparsity-measured-c
#
# The measured constant $\hat C$ of Theorem 3.2 at the representative time against $d$
# ($M$ = {glue:text}`M`, $N$ = {glue:text}`N`), for each of {glue:text}`n_draws` data draws (dots)
# and their mean, with the nearest-neighbour prediction averaged over the same draws (crosses)
# and for {glue:text}`m_held` memorized points per component (line). Files:
# {figure-files}`fig-softmax-sparsity-measured-c`.
# ```
#
# **Theorem 3.1** needs both the ideal and the memorizing softmax to be one-hot. At the
# representative time it is within {glue:text}`tolerance:.0%` from $d$ = {glue:text}`d31_rep` on
# (its error is {glue:text}`rel31_dmin:.0%` at $d$ = {glue:text}`d_min`, {glue:text}`rel31_paper:.1%`
# at $d$ = {glue:text}`d_paper` and {glue:text}`rel31_dmax:.1%` at $d$ = {glue:text}`d_max`). Across
# time it fails at large $t$ for every $d$, because there the memorizing denoiser's softmax spreads
# and its loss is no longer zero: in the heat-map draw it holds at every grid time up to
# $t$ = {glue:text}`t31_paper:.3f` at $d$ = {glue:text}`d_paper` and up to $t$ = {glue:text}`t31_dmax:.3f`
# at $d$ = {glue:text}`d_max` (the table above lists every $d$; "never" means that an approximation
# fails already at the smallest grid time).
#
# **Theorem 3.2** is the weaker approximation. The measured $\hat C$ at the representative time
# (mean ± SE over the draws) rises from {glue:text}`C_dmin:.2f` at $d$ = {glue:text}`d_min` through
# {glue:text}`C_paper:.2f` ± {glue:text}`C_se_paper:.2f` at the paper's $d$ = {glue:text}`d_paper`
# (single draws spread by {glue:text}`C_spread_paper:.2f`) to {glue:text}`C_dmax:.3f`
# ± {glue:text}`C_se_dmax:.3f` at $d$ = {glue:text}`d_max`. With the paper's $C = 2$ the
# approximation is within {glue:text}`tolerance:.0%` at the representative time only from
# $d$ = {glue:text}`d32_rep` on (at $d$ = {glue:text}`d_paper` it is off by
# {glue:text}`rel32_paper:.0%`); the nearest-neighbour formula with {glue:text}`m_held` candidates
# ($e_m$ = {glue:text}`e_held:.3f`) puts the crossing at $d \approx$ {glue:text}`d32_predicted:.0f`,
# and from $d$ = {glue:text}`c_trusted_from` on (where the gap predictions hold too) it matches the
# measured $\hat C$ to within {glue:text}`c_pred_error:.3f`. At $d$ = {glue:text}`d_max` the
# approximation with $C = 2$ holds at every grid time up to $t$ = {glue:text}`t32_dmax:.3f`. The
# released code's $C = 1$ is within {glue:text}`tolerance:.0%` at the representative time only at
# $d$ = {glue:md}`c1_dims:myst`, where $\hat C$ passes through 1 on its way up.
#
# The measurement also refines the paper's heuristic for $C$ at finite $d$; it does not
# contradict the paper's bound. The paper reads $C$ between 1 and 2 as the softmax spreading over
# several memorized points ($C \to 1$) or one dominating ($C = 2$), and its Appendix C bounds the
# excess between $d\sigma_*^2 (1 - 3\varepsilon)$ and $2 d\sigma_*^2 (1 + 3\varepsilon)$ with
# $\varepsilon$ of order $\log d / \sqrt d$. The deficit from 2 measured here shrinks like
# $1/\sqrt d$, inside that slack: it says where in the bound's range $C$ sits, not that the
# bound fails. At $d$ = {glue:text}`d_paper` and the representative time the softmax of
# $\mathrm{pmem}_M$ is essentially one-hot (mean effective number {glue:text}`pmem_eff_paper:.2f` in
# the heat-map draw), yet $\hat C$ = {glue:text}`C_single_paper:.2f` in that draw: the deficit from 2
# comes from *which* point dominates,
# the nearest of several candidates, and it vanishes only like $1/\sqrt d$. {glue:md}`spreading_text:myst`
# Across time the softmax spreads at large $t$, where the right panel of the figure shows $\hat C$
# falling well below 1 as the approximations' premise, a sparse softmax, fails.
#
# ## Summary
#
# - {glue:md}`lemma_summary:myst`. Lemma D.1 is tight for $p = 1$ and Lemma D.2 is attained for
#   {glue:md}`set_attained:myst`; D.1 is vacuous for gaps below about $\log n$, and loose by a factor of about $n$ for
#   typical score vectors.
# - In the laboratory the logit gaps grow linearly in $d$ at every fixed $t$, with a
#   $\sqrt d$ extreme-value correction that we predict to within {glue:text}`half_tolerance:.0%`
#   from moderate $d$ on; the softmax is one-hot over most of the $(d, t)$ plane and dense only at
#   small $d$ or large $t$.
# - Theorem 3.1 holds within {glue:text}`tolerance:.0%` at the representative time from
#   $d$ = {glue:text}`d31_rep`; Theorem 3.2 with $C = 2$ only from $d$ = {glue:text}`d32_rep`, because
#   the measured $C$ approaches 2 like $2 - O(1/\sqrt d)$ (it is {glue:text}`C_paper:.2f` at
#   $d$ = {glue:text}`d_paper`), as the nearest-neighbour formula predicts.
