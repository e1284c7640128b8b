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
# # The phase transition
#
# The paper's central observation (its Figures 2, 6 and 7): train GMM denoisers of growing
# capacity $M$ on the same $N$ samples, and they switch *sharply* from generalizing (their
# samples are new points of the data distribution) to memorizing (their samples are
# training points). This chapter trains them, with the paper's protocol or a cheaper one
# (a *profile*), and measures where the switch happens. The book has it twice:
# {doc}`with the cheap ci profile <phase_transition>`, trained in minutes and stored (the
# {doc}`appendix on profiles <profiles>` compares it with the paper's protocol), and
# {doc}`with the paper's own profile <phase_transition_paper>`, read from the results store.

# %% tags=["parameters"]
profile: str = "ci"  # which profile to show: ci (computed here in minutes) or paper (from stored results)
n_seeds: int = 0  # how many of the profile's seeds to show (0 for all of them)
train_missing: bool = True  # train the models that are not in the results store (False: show what is stored)

# %%
import warnings

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.patches import Patch
from IPython.display import Markdown
from myst_nb import glue

from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets here: tqdm prints text bars

import torch
from scipy import stats

from memlab.denoisers import ideal, memorizing, partially_memorizing
from memlab.evaluate import stored_model
from memlab.experiments import PROFILES, get_profile, phase_transitions
from memlab.figures import publish, table_text, use_style
from memlab.loss import loss_per_time
from memlab.metrics import near_counts
from memlab.schedule import REPRESENTATIVE_INDEX, representative_time, time_grid
from memlab.streams import generator
from memlab.sweep import profile_store

use_style()
prof = get_profile(profile)
if not 0 <= n_seeds <= len(prof.seeds):
    raise ValueError(f"n_seeds={n_seeds} must lie in [0, {len(prof.seeds)}] for profile {profile!r}")
seeds = prof.seeds[:n_seeds or None]
setting, protocol = prof.setting, prof.protocol
N = setting.N
params = {"profile": prof.to_dict(), "seeds": list(seeds)}
glue("profile", Markdown(f"`{profile}`"), display=False)
glue("refine", prof.refine, display=False)
for name, value in {"N": N, "d": setting.d, "K": setting.K, "steps": protocol.steps, "n_dup": protocol.n_dup,
                    "peak_lr": protocol.peak_lr, "n_samples": prof.evaluation.n_samples}.items():
    glue(name, value, display=False)

# %% [markdown]
# This page shows the **{glue:md}`profile:myst`** profile: $N$ = {glue:text}`N` training samples of
# a $K$ = {glue:text}`K` component mixture in dimension $d$ = {glue:text}`d`, trained for
# {glue:text}`steps` steps with {glue:text}`n_dup` noise draws per sample and a peak learning
# rate of {glue:text}`peak_lr`. Every figure's provenance file names the profile. The
# protocol against the paper's:

# %%
paper_protocol = PROFILES["paper"].protocol.to_dict()
pd.DataFrame({"this profile": protocol.to_dict(), "paper": paper_protocol}).map(table_text)

# %% [markdown]
# Each seed draws its own data and trains the coarse grid $M = N/10, 2N/10, \dots, N$;
# the transition band is located on it (from the last $M$ with memorization ratio below 0.1
# to the first at or above 0.9), and up to {glue:text}`refine` more capacities (those not already
# on the coarse grid) refine the band. Trained
# models come from the results store when their key (data, protocol, seed, and the code that
# trains) matches, and are trained otherwise; their evaluation likewise, keyed by the model and
# the code that evaluates. {glue:md}`missing_seeds_text:myst`

# %%
store = profile_store(prof.name)
found = phase_transitions([(prof, seed, store) for seed in seeds], train_missing=train_missing)
runs = [run for run in found if run is not None]
missing = [seed for seed, run in zip(seeds, found) if run is None]
if not runs:
    raise LookupError(f"no seed of profile {profile!r} is stored in {store.root}: run `python -m memlab.sweep "
                      f"--profile {profile}` (resumable) or build with train_missing=True")
seeds = tuple(run["seed"] for run in runs)
params["seeds"] = list(seeds)
coarse_only = [run["seed"] for run in runs if not run["refined"]]
unfinished = missing + coarse_only


def seed_list(seeds):
    """'Seed 1 is' or 'Seeds 1 and 2 are'."""
    names = ", ".join(map(str, seeds[:-1])) + " and " * (len(seeds) > 1) + str(seeds[-1])
    return f"Seed {names} is" if len(seeds) == 1 else f"Seeds {names} are"


glue("missing_seeds_text", Markdown(
    ({1: "The requested seed is shown.", 2: "Both requested seeds are shown."}.get(
        len(seeds), f"All {len(seeds)} requested seeds are shown.") if not unfinished else
     (f"{seed_list(missing)} not stored yet and not shown. " if missing else "")
     + (f"{seed_list(coarse_only)} shown on the coarse grid alone: the refinement is not stored yet, so "
        f"$M_{{pt}}$ is the coarse grid's. " if coarse_only else "")
     + f"`python -m memlab.sweep --profile {profile} --seeds {' '.join(map(str, sorted(unfinished)))}` "
     f"computes the rest, resumably.")), display=False)
rows = []
for run in runs:
    for r in run["records"]:
        rows.append({"seed": run["seed"], "M": r["M"], "M/N": r["M"] / N, "memorization": r["memorization"],
                     "lo": r["memorization_lo"], "hi": r["memorization_hi"], "var": r["var"],
                     "train loss": r["train_loss"][REPRESENTATIVE_INDEX],
                     "test loss": r["test_loss"][REPRESENTATIVE_INDEX],
                     "dist to train": float(np.mean(r["dist_train"])),
                     "dist to true": float(np.mean(r["dist_true"])),
                     "train seconds": r["group_seconds"]})
models = pd.DataFrame(rows)
m_pt = {run["seed"]: run["M_pt"] for run in runs}
ratios_pt = [m / N for m in m_pt.values() if m is not None]
glue("models_text", Markdown(f"{len(models)} models over {len(seeds)} seed{'s' * (len(seeds) > 1)}"),
     display=False)
grid_note = ("on its two-stage grid" if not coarse_only else
             f"seed{'s' * (len(coarse_only) > 1)} {', '.join(map(str, coarse_only))} on the coarse grid alone, "
             f"so to within $N/10$ = {N // 10}")
if not ratios_pt:
    mpt_text = "No seed memorizes at any capacity of its grid, so there is no $M_{pt}$."
elif len(ratios_pt) == 1:
    mpt_text = f"$M_{{pt}}/N$ = {ratios_pt[0]:.3f} (one seed, {grid_note})."
else:
    mpt_text = (f"$M_{{pt}}/N$ = {np.mean(ratios_pt):.3f} on average over the {len(ratios_pt)} seeds "
                f"(from {min(ratios_pt):.3f} to {max(ratios_pt):.3f}; "
                f"{'each ' + grid_note if not coarse_only else grid_note}).")
glue("mpt_text", Markdown(mpt_text), display=False)
for key, value in {"mpt_ratio_mean": np.mean(ratios_pt), "mpt_ratio_min": min(ratios_pt),
                   "mpt_ratio_max": max(ratios_pt)}.items() if ratios_pt else ():
    glue(key, float(value), display=False)  # for the intro's summary
glue("n_seeds_measured", len(ratios_pt), display=False)
pd.DataFrame({"seed": list(m_pt), "M_pt": list(m_pt.values()),
              "M_pt / N": [m / N if m is not None else None for m in m_pt.values()],
              "band": [run["band"] for run in runs],
              "grid": ["coarse and refined" if run["refined"] else "coarse only" for run in runs]}).set_index("seed")

# %%
fig, ax = plt.subplots()
for i, run in enumerate(runs):
    sub = models[models.seed == run["seed"]]
    ax.errorbar(sub["M/N"], sub["memorization"], yerr=[sub["memorization"] - sub["lo"], sub["hi"] - sub["memorization"]],
                fmt="o-", ms=3, capsize=2, color=f"C{i}", alpha=0.8, label=f"seed {run['seed']}")
    start, end = run["band"]
    ax.axvspan(start / N, end / N, color=f"C{i}", alpha=0.08)
ax.axhline(0.5, color="k", ls=":", lw=1)
ax.set_xlabel("capacity M/N")
ax.set_ylabel("memorization ratio (95% Wilson interval)")
ax.legend(handles=ax.get_legend_handles_labels()[0] + [
    Patch(color="0.5", alpha=0.25, label="transition band\n(shaded in the seed's color)")])
publish(fig, "fig-phase-transition-memorization", models, params)

# %% [markdown]
# ```{glue:figure} fig-phase-transition-memorization
# :name: fig-phase-transition-memorization
#
# Memorization ratio of the trained models against capacity (each point: DDIM samples of one
# model, with its 95% Wilson interval; shaded: each seed's transition band). Profile
# {glue:md}`profile:myst`, {glue:md}`models_text:myst`.
# Files: {figure-files}`fig-phase-transition-memorization`.
# ```
#
# The first capacity that memorizes (ratio at least 1/2) is at {glue:md}`mpt_text:myst` The
# paper reports about 0.8 for its main setting.

# %% [markdown]
# ## Losses: the hypothesis behind the transition
#
# The paper explains the transition by the training loss of two reference denoisers that a
# model of capacity $M$ can represent: the partially memorizing denoiser $\mathrm{pmem}_M$ (the
# empirical denoiser of $M$ training points) and the ideal, generalizing denoiser. Its
# hypothesis is that training ends near the one with the lower training loss, so that models
# memorize once $\mathrm{pmem}_M$'s is lower. The references are not bounds on what training
# reaches: a trained model fits its own means and variance to the training points. Below, the
# trained models' training and held-out losses at the representative time, against Monte
# Carlo losses of $\mathrm{pmem}_M$ (of $M$ training points drawn at random, as in the paper's
# code), the ideal and the memorizing denoisers on the same data and noise (first seed).

# %%
seed0 = seeds[0]
problem = setting.problem(seed0)
t_rep = representative_time()
sub = models[models.seed == seed0]
Ms = [int(M) for M in sub["M"]]
n_noise = prof.evaluation.n_noise


def reference_loss(model, x0, stream):
    """Loss [R] at the representative time, on the noise stream of the trained models' evaluation."""
    per = loss_per_time(model, x0, time_grid(), n_noise, generator(seed0, stream))
    return per[..., REPRESENTATIVE_INDEX].mean(1)


pmem = partially_memorizing(problem.train, Ms, generator(seed0, "reference_loss", 1))
losses = pd.DataFrame({
    "M": Ms, "M/N": np.asarray(Ms) / N,
    "trained, train": sub["train loss"].to_numpy(), "trained, held-out": sub["test loss"].to_numpy(),
    "pmem, train": reference_loss(pmem, problem.train, "train_loss").numpy(),
    "pmem, held-out": reference_loss(pmem, problem.test, "test_loss").numpy(),
    "ideal, train": float(reference_loss(ideal(problem), problem.train, "train_loss")[0]),
    "ideal, held-out": float(reference_loss(ideal(problem), problem.test, "test_loss")[0]),
    "memorizing, train": float(reference_loss(memorizing(problem.train), problem.train, "train_loss")[0]),
})
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
ax.plot(losses["M/N"], losses["trained, train"], "o-", ms=4, label="trained")
ax.plot(losses["M/N"], losses["pmem, train"], "s--", ms=3, label=r"$\mathrm{pmem}_M$")
ax.axhline(losses["ideal, train"][0], color="C2", label="ideal")
ax.axhline(losses["memorizing, train"][0], color="C3", label="memorizing")
ax.set_title("training loss")
ax.set_xlabel("capacity M/N")
ax.set_ylabel(f"loss at t = {float(t_rep):.3f} (x0 units)")
ax.legend()
ax2.plot(losses["M/N"], losses["trained, held-out"], "o-", ms=4, label="trained")
ax2.plot(losses["M/N"], losses["pmem, held-out"], "s--", ms=3, label=r"$\mathrm{pmem}_M$")
ax2.axhline(losses["ideal, held-out"][0], color="C2", label="ideal")
ax2.set_title("held-out loss")
ax2.set_xlabel("capacity M/N")
ax2.legend()
publish(fig, "fig-phase-transition-losses", losses, {**params, "seed": seed0, "t": float(t_rep)})
gap = losses["pmem, train"] - losses["ideal, train"]
below = np.flatnonzero(gap.to_numpy() <= 0)
cross = float(losses["M/N"][below[0]]) if len(below) else None
mpt0 = m_pt[seed0] / N if m_pt[seed0] is not None else None
under = losses["trained, train"] < np.minimum(losses["pmem, train"], losses["ideal, train"])
cross_text = (
    (f"the partially memorizing denoiser's training loss first falls to the ideal denoiser's at $M/N$ = {cross:.3f}"
     if cross is not None else "the partially memorizing denoiser's training loss stays above the ideal "
     "denoiser's at every capacity of the grid")
    + (f", and the trained models first memorize at $M/N$ = {mpt0:.3f}" if mpt0 is not None else
       ", and no trained model memorizes") + ".")
if cross is not None and mpt0 is not None:
    cross_text += (" At this one time the two agree." if cross == mpt0 else
                   f" At this one time the losses cross {'later' if cross > mpt0 else 'earlier'} than the models "
                   f"switch, by {abs(cross - mpt0):.3f} in $M/N$.")
cross_text += (f" The trained models' own training loss is below both references at {int(under.sum())} of "
               f"{len(under)} capacities.")
glue("cross_text", Markdown(cross_text), display=False)

# %% [markdown]
# ```{glue:figure} fig-phase-transition-losses
# :name: fig-phase-transition-losses
#
# Training (left) and held-out (right) loss at the representative time of the trained
# models, of the partially memorizing denoisers with the same capacities, and of the ideal
# and memorizing denoisers; first seed, profile {glue:md}`profile:myst`.
# Files: {figure-files}`fig-phase-transition-losses`.
# ```
#
# On the first seed (on this grid), {glue:md}`cross_text:myst` A single time is not the
# paper's test: its prediction weighs the losses of all grid times, and
# {doc}`the linear-scaling chapter <linear_scaling>` tests it.
#
# ## Overfitting before memorization (the paper's Appendix G)
#
# The paper argues that a model stops generalizing only when it starts memorizing. Its samples
# say so; its held-out loss does not. At $M/N$ = {glue:text}`g_m:.2f`, the largest capacity of
# the first seed whose samples are all new (memorization ratio 0), the trained model's held-out
# loss at the representative time is already {glue:text}`g_held:.2f` times the ideal
# denoiser's, and its training loss {glue:text}`g_train:.2f` times the ideal's: it fits its
# training points better than the truth does and predicts new points worse, before any sample
# is a copy; and {glue:text}`g_near:.0%` of its learned means already sit near a training point
# by the 1/3 rule ({numref}`fig-phase-transition-parameters`, right). The build checks that
# the held-out excess is larger than three times the Monte Carlo error below.
#
# These losses use {glue:text}`n_noise` noise draws per point where the paper's code uses 100.
# Recomputed with 100 fresh draws, the trained models' losses at this time change by at most
# {glue:text}`draws_change:.2%` (the ratio above becomes {glue:text}`g_held_100:.2f`), and at
# every capacity the trained model's loss stays on the same side of the ideal's, on the
# training and on the held-out points (a check of the build): 20 draws do not change what the
# figure shows.

# %%
trained = [stored_model(store.get(r["key"])[1]) for r in next(run for run in runs if run["seed"] == seed0)["records"]]


def loss_100(model, x0, index):
    """Loss at the representative time with the paper's 100 noise draws (fresh stream "draws")."""
    return loss_per_time(model, x0, t_rep[None], 100, generator(seed0, "draws", index)).mean(1)[:, 0]


again = pd.DataFrame({"trained, train": [float(loss_100(g, problem.train, 0)) for g in trained],
                      "trained, held-out": [float(loss_100(g, problem.test, 1)) for g in trained]})
ideal_100 = {"train": float(loss_100(ideal(problem), problem.train, 0)),
             "held-out": float(loss_100(ideal(problem), problem.test, 1))}
change = max(float((again[c] / losses[c] - 1).abs().max()) for c in again)
for part in ideal_100:
    if not ((again[f"trained, {part}"] < ideal_100[part]) == (losses[f"trained, {part}"] < losses[f"ideal, {part}"])).all():
        raise AssertionError(f"the text says 100 noise draws keep every trained {part} loss on the same side of "
                             f"the ideal's as 20 draws; they do not (first seed, profile {profile!r})")
zero = np.flatnonzero(sub["memorization"].to_numpy() == 0)
if not len(zero):
    raise LookupError(f"no model of seed {seed0} has memorization ratio 0: Appendix G needs one (profile {profile!r})")
g = int(zero[-1])
g_held = float(losses["trained, held-out"][g] / losses["ideal, held-out"][0])
if g_held - 1 <= 3 * change:
    raise AssertionError(f"the text says the held-out loss exceeds the ideal's before memorization; at M/N = "
                         f"{losses['M/N'][g]:.2f} it is {g_held:.3f} times it, within 3 x {change:.3f} of 1")
for key, value in {"g_m": losses["M/N"][g], "g_held": g_held, "g_held_100": again["trained, held-out"][g] / ideal_100["held-out"],
                   "g_train": losses["trained, train"][g] / losses["ideal, train"][0], "draws_change": change,
                   "n_noise": n_noise}.items():
    glue(key, value if key == "n_noise" else float(value), display=False)

# %% [markdown]
# ## What the learned parameters look like (the paper's Figure 6)
#
# As the paper draws it: the learned variance and the *average* distance of the learned means
# to the nearest training point and to the nearest true mean, against $M$ on linear axes, with
# least-squares lines (their $R^2$ in the legend). On the right, the share of the learned means
# near a training point and near a true mean, by the 1/3 rule of the memorization test (nearest
# closer than a third of the runner-up and of the nearest of the other kind), as the
# authors' code counts them.
#
# On the first seed, per unit of $M/N$, the learned variance changes by
# {glue:text}`fit_var_slope:.3f` ($R^2$ = {glue:text}`fit_var_r2:.2f`), the average distance to
# the nearest training point by {glue:text}`fit_train_slope:.2f` ($R^2$ =
# {glue:text}`fit_train_r2:.2f`) and the average distance to the nearest true mean by
# {glue:text}`fit_true_slope:.2f` ($R^2$ = {glue:text}`fit_true_r2:.2f`).

# %%
near = []
for run in runs:
    data = setting.problem(run["seed"])
    for r in run["records"]:
        counts = near_counts(torch.from_numpy(store.get(r["key"])[1]["means"]).double(), data.train, data.means)
        near.append({"seed": run["seed"], "M": r["M"], "near a training point": counts[0] / r["M"],
                     "near a true mean": counts[1] / r["M"]})
near = pd.DataFrame(near)
fits = pd.DataFrame([{"seed": seed, "quantity": q, **stats.linregress(part["M"], part[q])._asdict()}
                     for seed, part in models.groupby("seed") for q in ("var", "dist to train", "dist to true")])
fits["R^2"] = fits.pop("rvalue") ** 2
fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
for i, seed in enumerate(seeds):
    part, counted = models[models.seed == seed], near[near.seed == seed]
    for ax, q, marker in ((axes[0], "var", "o"), (axes[1], "dist to train", "o"), (axes[1], "dist to true", "s")):
        line = fits[(fits.seed == seed) & (fits.quantity == q)].iloc[0]
        ax.plot(part["M"], part[q], marker, ms=3, color=f"C{i}", label=f"{q}, seed {seed}")
        ax.plot(part["M"], line.intercept + line.slope * part["M"], "-" if marker == "o" else "--", lw=1,
                color=f"C{i}", label=f"line, $R^2$ = {line['R^2']:.2f}")
    for q, style in (("near a training point", "o-"), ("near a true mean", "s--")):
        axes[2].plot(counted["M"], counted[q], style, ms=3, color=f"C{i}", label=f"{q}, seed {seed}")
axes[0].set_ylabel("learned variance $s^2$")
axes[1].set_ylabel("average distance of a learned mean")
axes[2].set_ylabel("share of the learned means (1/3 rule)")
for ax in axes:
    ax.set_xlabel("capacity M")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
publish(fig, "fig-phase-transition-parameters", models.merge(near, on=["seed", "M"]), params)
first = fits[fits.seed == seed0].set_index("quantity")
for q, name in (("var", "var"), ("dist to train", "train"), ("dist to true", "true")):
    glue(f"fit_{name}_r2", float(first.loc[q, "R^2"]), display=False)
    glue(f"fit_{name}_slope", float(first.loc[q, "slope"] * N), display=False)
glue("g_near", float(near[(near.seed == seed0) & (near.M == Ms[g])]["near a training point"].iloc[0]), display=False)
memorizes = models["memorization"] >= 0.5
mem, rest = models[memorizes], models[~memorizes]
if mem.empty or rest.empty:
    regimes_text = (f"All {len(models)} models shown memorize" if rest.empty else
                    f"None of the {len(models)} models shown memorizes") + " (ratio at least 1/2)."
else:
    reach = mem["dist to train"].max()
    close = int((rest["dist to train"] <= reach).sum())
    regimes_text = (
        f"The {len(mem)} models that memorize (ratio at least 1/2) have a median learned variance of "
        f"{mem['var'].median():.2g}, and their means lie on average {mem['dist to train'].median():.2g} from the nearest "
        f"training point (median over the models; at most {reach:.2g}). The {len(rest)} that do not memorize have a median learned variance of "
        f"{rest['var'].median():.2g}; {close or 'none'} of them have their means as close to training points as a memorizing "
        f"model's (average distance at most {reach:.2g})"
        + (", so what sets them apart is the variance, not where the means are." if close else "."))
glue("regimes_text", Markdown(regimes_text), display=False)

# %% [markdown]
# ```{glue:figure} fig-phase-transition-parameters
# :name: fig-phase-transition-parameters
#
# Left: the learned variance against capacity, with its least-squares line. Middle: average
# distance of the learned means to the nearest training point (circles, solid line) and to the
# nearest true mean (squares, dashed line). Right: the share of the learned means near a
# training point (solid) and near a true mean (dashed), by the 1/3 rule.
# {glue:md}`regimes_text:myst`
# Files: {figure-files}`fig-phase-transition-parameters`.
# ```
#
# ## Seeds
#
# Each seed draws its own data, initialisation and noise. The band between the lowest and
# highest memorization ratio over seeds, on the coarse grid that all seeds share:

# %%
shared = models.groupby("M").filter(lambda g: len(g) == len(seeds))
band = shared.groupby("M/N")["memorization"].agg(["min", "mean", "max"]).reset_index()
fig, ax = plt.subplots()
ax.fill_between(band["M/N"], band["min"], band["max"], alpha=0.3, label="min to max over seeds")
ax.plot(band["M/N"], band["mean"], "o-", ms=4, label="mean over seeds")
ax.set_xlabel("capacity M/N")
ax.set_ylabel("memorization ratio")
ax.legend()
publish(fig, "fig-phase-transition-seed-band", band, params)
glue("seed_band_text", Markdown(
    f"The widest spread is {float((band['max'] - band['min']).max()):.2f}." if len(seeds) > 1 else
    "Only one seed is shown, so there is no spread yet; the band is that seed's curve."), display=False)

# %% [markdown]
# ```{glue:figure} fig-phase-transition-seed-band
# :name: fig-phase-transition-seed-band
#
# The memorization ratio over seeds on the capacities all seeds trained: mean and the range
# from the lowest to the highest seed. {glue:md}`seed_band_text:myst`
# Files: {figure-files}`fig-phase-transition-seed-band`.
# ```
