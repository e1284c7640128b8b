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
# # When the modes overlap
#
# The paper's account of the transition rests on two approximations of the training loss
# (Theorems 3.1 and 3.2), and both rest on sparse softmaxes: in high dimension, with the true
# means on the sphere of radius $\sqrt d$ and unit component variance, a noisy point belongs
# clearly to one component and is close to one training point. This chapter (one of the book's
# own experiments, not in the paper) takes that premise away step by step: it shrinks the radius
# of the true means from $\sqrt d$ toward 0, where all $K$ components coincide and the data is a
# single Gaussian, and asks what happens to the sparsity of the softmaxes, to the accuracy of the
# two loss approximations, and to where and how sharply trained denoisers start to memorize.

# %% tags=["parameters"]
profile: str = "ci"  # whose setting and protocol: ci (computed here in minutes) or paper (from stored results)
seed: int = 0  # data and noise seed of the trained models
separations: list = [1.0, 0.5, 0.0]  # radius of the true means as a fraction of sqrt(d) (1: the paper's)
train_missing: bool = True  # train the models that are not in the results store (False: leave them out)
refine: bool = False  # also train the refinement inside each transition band (twice the training)
n_noise: int = 4  # noise draws per training point and grid time for the Monte Carlo losses
mc_seed: int = 1000  # seed of the Monte Carlo noise

# %%
import math
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown
from matplotlib import pyplot as plt
from myst_nb import glue
from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets here: tqdm prints text bars

from memlab.denoisers import ideal, memorizing, posterior_weights
from memlab.experiments import get_profile, phase_transitions
from memlab.figures import publish, use_style
from memlab.gmm import Problem
from memlab.loss import weighting
from memlab.scaling import capacity_grid, crossing, hypothesis_losses, weighted_gap
from memlab.schedule import REPRESENTATIVE_INDEX, alpha, sigma, time_grid
from memlab.streams import generator
from memlab.sweep import profile_store
from memlab.theory import crossover, generalizing_excess

use_style()
prof = get_profile(profile)
if not separations or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0 <= c <= 1
                              for c in separations):
    raise ValueError(f"separations={separations!r} must be a non-empty list of numbers in [0, 1]")
if not n_noise >= 1:
    raise ValueError(f"n_noise={n_noise} must be >= 1")
separations = sorted({float(c) for c in separations}, reverse=True)
N, d, K, var = prof.setting.N, prof.setting.d, prof.setting.K, prof.setting.var
times = time_grid()
rep = REPRESENTATIVE_INDEX


def setting_at(c: float):
    """The profile's setting with the true means at radius c sqrt(d) (c = 1: the paper's, whose
    models the phase-transition chapter has stored)."""
    return replace(prof.setting, radius=None if c == 1 else c * math.sqrt(d))


settings = {c: setting_at(c) for c in separations}
problems: dict[float, Problem] = {c: s.problem(seed) for c, s in settings.items()}
params = {"profile": prof.to_dict(), "seed": seed, "separations": separations, "refine": refine,
          "n_noise": n_noise, "mc_seed": mc_seed}
glue("profile", Markdown(f"`{profile}`"), display=False)
for name, value in {"N": N, "d": d, "K": K, "seed": seed, "n_separations": len(separations)}.items():
    glue(name, value, display=False)

# %% [markdown]
# Profile **{glue:md}`profile:myst`**: $N$ = {glue:text}`N` training points in dimension $d$ =
# {glue:text}`d` from $K$ = {glue:text}`K` components, seed {glue:text}`seed`, at
# {glue:text}`n_separations` radii $r = c\sqrt d$ of the true means. Each radius draws its data
# from the same random numbers, so only the distances between the means change.
#
# ## How much the components overlap
#
# Two components whose means are $\Delta$ apart are told apart from a clean sample with error
# $\Phi(-\Delta/2\sigma_*)$; random means on the sphere of radius $r$ are about $\sqrt 2\, r$
# apart. Measured on this draw: the distance between the true means (in units of $\sigma_*$),
# and the probability that the true mixture assigns a training point to another component than
# its own, $1 - \mathbb E_i[p(k_i \mid x_i)]$ (it is $1 - 1/K$ when the means coincide).

# %%
def own_component_probability(problem: Problem) -> float:
    """E_i[p(k_i | x_i)] under the true mixture, at the grid's smallest time (t = 0.001)."""
    p = posterior_weights(problem.train, times[-1:].expand(N), ideal(problem))[0]
    return float(p[torch.arange(N), problem.train_labels].mean())


overlap = pd.DataFrame([{
    "c": c, "radius": c * math.sqrt(d),
    "min distance / sigma*": float(torch.pdist(problems[c].means).min()) / math.sqrt(var) if K > 1 else np.nan,
    "mean distance / sigma*": float(torch.pdist(problems[c].means).mean()) / math.sqrt(var) if K > 1 else np.nan,
    "misassigned": 1 - own_component_probability(problems[c])} for c in separations]).set_index("c")
overlap

# %% [markdown]
# ## Sparsity of the softmaxes
#
# The mean weight of the top component in the posterior softmax of the ideal denoiser (over the
# $K$ true components) and of the memorizing denoiser (over the $N$ training points), for noisy
# training points $x_t = \alpha_t x_i + \sigma_t z$ at every grid time ({glue:text}`n_noise`
# draws each). A top weight near 1 is a sparse, one-hot softmax.

# %%
glue("n_noise", n_noise, display=False)


def top_weight(problem: Problem) -> dict[str, np.ndarray]:
    """Mean top posterior weight [T] of the ideal and the memorizing denoiser on noisy training points."""
    g = generator(mc_seed, "reference_loss")
    out = {"ideal": [], "memorizing": []}
    for t in times:
        z = torch.randn(n_noise, N, d, generator=g, dtype=problem.train.dtype)
        x = (alpha(t) * problem.train + sigma(t) * z).reshape(-1, d)
        for name, gmm in (("ideal", ideal(problem)), ("memorizing", memorizing(problem.train))):
            out[name].append(float(posterior_weights(x, t, gmm)[0].max(-1).values.mean()))
    return {name: np.array(v) for name, v in out.items()}


tops = {c: top_weight(problems[c]) for c in separations}
sparsity = pd.DataFrame([{"c": c, "t": float(t), "ideal top weight": tops[c]["ideal"][j],
                          "memorizing top weight": tops[c]["memorizing"][j]}
                         for c in separations for j, t in enumerate(times)])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
colors = plt.cm.viridis(np.linspace(0, 0.9, len(separations)))
for ax, name in zip(axes, ("ideal", "memorizing")):
    for color, c in zip(colors, separations):
        ax.plot(times, tops[c][name], "o-", ms=2.5, color=color, label=f"c = {c:g}")
    ax.axvline(float(times[rep]), color="k", ls=":", lw=1)
    ax.set_xlabel("time t")
    ax.set_title(f"{name} denoiser")
axes[0].set_ylabel("mean top softmax weight")
axes[1].legend()
publish(fig, "fig-overlapping-modes-sparsity", sparsity, params)
at_rep = sparsity[np.isclose(sparsity.t, float(times[rep]))].set_index("c")
glue("t_rep", float(times[rep]), display=False)
glue("sparsity_text", Markdown(
    f"At the representative time the ideal denoiser's top weight falls from "
    f"{at_rep['ideal top weight'].iloc[0]:.3f} at c = {separations[0]:g} to "
    f"{at_rep['ideal top weight'].iloc[-1]:.3f} at c = {separations[-1]:g}, while the memorizing denoiser's "
    + (f"stays at {at_rep['memorizing top weight'].min():.3f}: "
       if f"{at_rep['memorizing top weight'].min():.3f}" == f"{at_rep['memorizing top weight'].max():.3f}" else
       f"stays between {at_rep['memorizing top weight'].min():.3f} and {at_rep['memorizing top weight'].max():.3f}: ")
    + "training points are about $\\sqrt{2d}\\,\\sigma_*$ apart whatever the means do, so only the ideal "
    "denoiser's softmax feels the overlap."), display=False)

# %% [markdown]
# ```{glue:figure} fig-overlapping-modes-sparsity
# :name: fig-overlapping-modes-sparsity
#
# Mean top softmax weight against time for each radius $c\sqrt d$ of the true means (dotted:
# the representative time $t$ = {glue:text}`t_rep:.3f`). Profile {glue:md}`profile:myst`, seed
# {glue:text}`seed`. Files: {figure-files}`fig-overlapping-modes-sparsity`.
# ```
#
# {glue:md}`sparsity_text:myst`
#
# ## The loss approximations
#
# Monte Carlo training losses (x0 units, mean over the training points, the same noise for
# every denoiser) of the ideal, the memorizing and the partially memorizing denoisers
# $\mathrm{pmem}_M$ on a grid of 50 capacities. Theorem 3.1 approximates the generalizing excess
# $L_t(\mathrm{ideal}) - L_t(\mathrm{mem})$ by $d\sigma_*^2/(\psi_t\sigma_*^2 + 1)$; Theorem 3.2
# the memorizing excess $L_t(\mathrm{pmem}_M) - L_t(\mathrm{mem})$ by $C(1 - M/N)\,d\sigma_*^2$
# with $C$ between 1 and 2, measured here at the representative time and averaged over
# $0.7 \le M/N \le 0.9$.

# %%
Ms = capacity_grid(N)
m = torch.tensor(Ms, dtype=torch.float64) / N
inside = (m >= 0.7) & (m <= 0.9)
theory_gen = generalizing_excess(times, d, var)
lams = {name: weighting(name, times) for name in ("psi", "uniform")}
mc, rows = {}, []
for c in separations:
    losses = hypothesis_losses(problems[c], Ms, n_noise, mc_seed)
    gen_ratio = (losses["ideal"] - losses["mem"]) / theory_gen
    C = float(((losses["pmem"][inside, rep] - losses["mem"][rep]) / ((1 - m[inside]) * d * var)).mean())
    mc[c] = {"losses": losses, "gen_ratio": gen_ratio, "C": C}
    rows.append({"c": c, "generalizing excess / Thm 3.1 at t_rep": float(gen_ratio[rep]),
                 "largest ratio over t": float(gen_ratio.max()), "at t": float(times[int(gen_ratio.argmax())]),
                 "largest excess above Thm 3.1 / var": float(((gen_ratio - 1) * theory_gen).max() / var),
                 "measured C": C,
                 **{f"hypothesis M*/N, {name}": crossing(m, weighted_gap(losses, lam, d, var))
                    for name, lam in lams.items()},
                 "eq. 21 M*/N, lambda = psi, measured C": float(crossover(lams["psi"], times, C, var))})
approximations = pd.DataFrame(rows).set_index("c")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for color, c in zip(colors, separations):
    axes[0].plot(times, mc[c]["gen_ratio"], "o-", ms=2.5, color=color, label=f"c = {c:g}")
axes[0].axhline(1, color="k", ls=":", lw=1)
axes[0].set_xlabel("time t")
axes[0].set_ylabel("generalizing excess / Theorem 3.1")
axes[0].legend()
axes[1].plot(separations, approximations["measured C"], "o-", color="C3")
axes[1].axhspan(1, 2, color="C3", alpha=0.1, label="Theorem 3.2: 1 <= C <= 2")
axes[1].set_xlabel("radius of the true means / sqrt(d)")
axes[1].set_ylabel(f"measured C (t = {float(times[rep]):.3f})")
axes[1].legend()
publish(fig, "fig-overlapping-modes-approximations",
        pd.DataFrame([{"c": c, "t": float(t), "generalizing ratio": float(mc[c]["gen_ratio"][j]), "C": mc[c]["C"]}
                      for c in separations for j, t in enumerate(times)]), params)
worst = approximations["largest ratio over t"].idxmax()
glue("approximations_text", Markdown(
    f"With the paper's separation (c = {separations[0]:g}) the measured generalizing excess is "
    f"{approximations['generalizing excess / Thm 3.1 at t_rep'].iloc[0]:.2f} times Theorem 3.1's at the "
    f"representative time. As the means approach each other the ideal denoiser must also guess the component, "
    f"which adds to its loss: the largest ratio over time and radii is "
    f"{approximations.loc[worst, 'largest ratio over t']:.2f}, at c = {worst:g} and t = "
    f"{approximations.loc[worst, 'at t']:.3f}. When the means coincide (c = 0) the data is one Gaussian, the "
    f"ideal denoiser is its linear shrinkage and the approximation holds again "
    + (f"(ratio {approximations.loc[0.0, 'generalizing excess / Thm 3.1 at t_rep']:.2f} at the representative time). "
       if 0.0 in approximations.index else "(c = 0 is not among this build's radii). ")
    + f"The measured $C$ goes from {approximations['measured C'].iloc[0]:.2f} to "
      f"{approximations['measured C'].iloc[-1]:.2f}."), display=False)
approximations

# %% [markdown]
# ```{glue:figure} fig-overlapping-modes-approximations
# :name: fig-overlapping-modes-approximations
#
# Left: the measured generalizing excess over Theorem 3.1's approximation, against time, for
# each radius. Right: the measured constant $C$ of Theorem 3.2 against the radius. Profile
# {glue:md}`profile:myst`, seed {glue:text}`seed`. Files:
# {figure-files}`fig-overlapping-modes-approximations`.
# ```
#
# {glue:md}`approximations_text:myst`
#
# The table also gives the hypothesis's crossover at each radius (the first $M/N$ where the
# weighted training loss of $\mathrm{pmem}_M$ drops below the ideal denoiser's, under the
# training weighting $\lambda = \psi$ and the uniform one) and eq. 21 with the measured $C$.
#
# ## Where and how sharply the transition happens
#
# Trained models at every radius, with the protocol of profile {glue:md}`profile:myst`:
# {glue:md}`grid_text:myst` (the models at $c$ = 1 are the phase-transition chapter's).

# %%
store = profile_store(prof.name)
runs = dict(zip(separations, phase_transitions([(replace(prof, setting=settings[c]), seed, store)
                                                for c in separations], train_missing=train_missing, refine=refine)))
missing = [c for c, run in runs.items() if run is None]
if len(missing) == len(separations):
    raise LookupError(f"no radius of profile {profile!r}, seed {seed} is stored in {store.root}: "
                      f"build with train_missing=True")
runs = {c: run for c, run in runs.items() if run is not None}
refined = all(run["refined"] for run in runs.values())
glue("grid_text", Markdown(
    "the two-stage capacity grid of the phase-transition chapter" if refined else
    f"the coarse grid $M = N/10, \\dots, N$ of the phase-transition chapter, without its refinement (half the "
    f"training; `-p refine True` adds it), so $M_{{pt}}$ is known to within $N/10$ = {N / 10:g} (at $c$ = 1 it "
    f"can lie above the phase-transition chapter's, which is refined) and the capacities where the ratio "
    f"crosses 0.1, 0.5 and 0.9 are interpolated between grid points"), display=False)
model_rows, transition_rows = [], []
for c, run in runs.items():
    model_rows += [{"c": c, "M": r["M"], "M/N": r["M"] / N, "memorization": r["memorization"],
                    "lo": r["memorization_lo"], "hi": r["memorization_hi"], "learned var": r["var"]}
                   for r in run["records"]]
    start, end = run["band"]
    m_run = torch.tensor([r["M"] / N for r in run["records"]], dtype=torch.float64)
    ratio = torch.tensor([r["memorization"] for r in run["records"]], dtype=torch.float64)
    level = {q: crossing(m_run, q - ratio) for q in (0.1, 0.5, 0.9)}         # interpolated, first crossing
    transition_rows.append({"c": c, "M_pt/N": (run["M_pt"] or np.nan) / N, "band start / N": start / N,
                            "band end / N": end / N, "M/N at ratio 0.1": level[0.1], "M/N at ratio 0.5": level[0.5],
                            "M/N at ratio 0.9": level[0.9], "width 0.1 to 0.9": level[0.9] - level[0.1],
                            "models": len(run["records"])})
models = pd.DataFrame(model_rows)
transitions = pd.DataFrame(transition_rows).set_index("c").join(
    approximations[["hypothesis M*/N, psi", "hypothesis M*/N, uniform", "eq. 21 M*/N, lambda = psi, measured C"]])

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for color, c in zip(colors, separations):
    sub = models[models.c == c]
    if len(sub):
        axes[0].errorbar(sub["M/N"], sub["memorization"], yerr=[sub["memorization"] - sub["lo"],
                         sub["hi"] - sub["memorization"]], fmt="o-", ms=3, capsize=2, color=color, label=f"c = {c:g}")
axes[0].axhline(0.5, color="k", ls=":", lw=1)
axes[0].set_xlabel("capacity M/N")
axes[0].set_ylabel("memorization ratio (95% Wilson interval)")
axes[0].legend()
ax = axes[1]
ax.fill_between(transitions.index, transitions["M/N at ratio 0.1"], transitions["M/N at ratio 0.9"], color="C0",
                alpha=0.15, label="ratio 0.1 to 0.9 (trained, interpolated)")
ax.plot(transitions.index, transitions["M/N at ratio 0.5"], "o-", color="C0", label="ratio 1/2 (trained, interpolated)")
ax.plot(transitions.index, transitions["M_pt/N"], "x", color="C0", label="$M_{pt}/N$ (first trained M at ratio >= 1/2)")
ax.plot(transitions.index, transitions["hypothesis M*/N, psi"], "s--", color="C1", label=r"hypothesis, $\lambda = \psi$")
ax.plot(transitions.index, transitions["hypothesis M*/N, uniform"], "^--", color="C2", label="hypothesis, uniform")
ax.set_xlabel("radius of the true means / sqrt(d)")
ax.set_ylabel("M/N")
ax.legend()
publish(fig, "fig-overlapping-modes-transition", models.merge(transitions.reset_index(), on="c"), params)
paper_row = transitions.iloc[0]
half = transitions["M/N at ratio 0.5"].dropna()
m_pt = transitions["M_pt/N"].dropna()
glue("missing_text", Markdown("" if not missing else
                              f"Radii c = {missing} are not stored and are left out (build with train_missing=True)."),
     display=False)
def span(values: pd.Series) -> str:
    lo, hi = f"{values.min():.2f}", f"{values.max():.2f}"
    return lo if lo == hi else f"{lo} to {hi}"


def shift(values: pd.Series) -> str:
    """How far values (indexed by radius c) move across the radii, in words with numbers."""
    if len(values) < 2:
        return "is not measured at two radii"
    return (f"varies by {values.max() - values.min():.2f} (from {values.iloc[0]:.2f} at c = {values.index[0]:g} to "
            f"{values.iloc[-1]:.2f} at c = {values.index[-1]:g})")


width = transitions["width 0.1 to 0.9"]
extra = approximations["largest excess above Thm 3.1 / var"].max()
hyp = {name: transitions[f"hypothesis M*/N, {name}"] for name in ("psi", "uniform")}
glue("transition_text", Markdown(
    f"At c = {transitions.index[0]:g} the memorization ratio reaches 1/2 at $M/N$ = "
    f"{paper_row['M/N at ratio 0.5']:.2f} and climbs from 0.1 to 0.9 within {paper_row['width 0.1 to 0.9']:.2f} N "
    f"(interpolated between the trained capacities; $M_{{pt}}/N$ = {paper_row['M_pt/N']:.2f}). Over the radii, the "
    f"capacity of ratio 1/2 is {span(half)} N and the width {span(width)} N"
    + (f"; where the means coincide (c = 0), {transitions.loc[0.0, 'M/N at ratio 0.5']:.2f} N and "
       f"{transitions.loc[0.0, 'width 0.1 to 0.9']:.2f} N" if 0.0 in transitions.index else "")
    + f". The hypothesis puts the crossover at {span(hyp['psi'])} under the training weighting and at "
      f"{span(hyp['uniform'])} under the uniform one. "
    + f"Guessing the component adds at most {extra:.2f} $\\sigma_*^2$ to the ideal denoiser's excess loss (far "
      f"means are rarely confused, near ones cost little when confused), while both approximated excess losses grow "
      f"with $d\\sigma_*^2$ = {d * var:g}. Across the radii $M/N$ at ratio 1/2 {shift(half)} and "
      f"$M_{{pt}}/N$ {shift(m_pt)}."), display=False)
transitions

# %% [markdown]
# ```{glue:figure} fig-overlapping-modes-transition
# :name: fig-overlapping-modes-transition
#
# Left: memorization ratio of the trained models against capacity, one curve per radius of the
# true means. Right: the capacity where the ratio reaches 1/2 and the range where it climbs from
# 0.1 to 0.9 (interpolated between trained capacities), and $M_{pt}/N$, against the radius, with
# the hypothesis's crossover under two weightings. Profile {glue:md}`profile:myst`, seed
# {glue:text}`seed`. Files: {figure-files}`fig-overlapping-modes-transition`.
# ```
#
# {glue:md}`transition_text:myst` {glue:md}`missing_text:myst`
