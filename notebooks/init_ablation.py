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
# # Does the initialisation matter?
#
# The paper starts every trained model from *partial memorization*: its $M$ means are $M$
# distinct training points and its variance is tiny ($10^{-6}$), so at step 0 the model
# already is the partially memorizing denoiser $\mathrm{pmem}_M$ of the previous chapter. That
# choice could decide the outcome: a model that starts as a memorizer may simply stay one.
# This chapter (one of the book's own experiments, not in the paper) trains the same
# capacities near the transition from other starts, with the same data, noise and protocol:
# means drawn from $\mathcal{N}(0, I)$, uniform on the sphere of radius $\sqrt{d}$ (where the
# true component means lie), or fresh samples of the data distribution, each with the small
# and with a unit initial variance.

# %% tags=["parameters"]
profile: str = "ci"  # whose setting and protocol: ci (computed here in minutes) or paper (from stored results)
seed: int = 0  # data and noise seed
capacities: list = [0.7, 0.8, 0.9]  # capacities M as fractions of N (near the transition)
init_vars: list = [1e-6, 1.0]  # initial variances s^2 of each start (the profile's, 1e-6, is always added)
train_missing: bool = True  # train the models that are not in the results store (False: fail instead)

# %%
import warnings

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown
from matplotlib import pyplot as plt
from myst_nb import glue
from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets here: tqdm prints text bars

from memlab.denoisers import ideal
from memlab.experiments import ablation, cores, get_profile, model_spec, train_models
from memlab.figures import publish, use_style
from memlab.loss import loss_per_time
from memlab.schedule import REPRESENTATIVE_INDEX, time_grid
from memlab.store import make_key
from memlab.streams import generator
from memlab.sweep import profile_store
from memlab.train import INITS, init_state

use_style()
prof = get_profile(profile)
N = prof.setting.N
models = ablation(prof, capacities, init_vars)
Ms = sorted({M for _, M in models})
init_vars = sorted({variant.protocol.init_var for variant, _ in models})
starts = list(dict.fromkeys((variant.protocol.init, variant.protocol.init_var) for variant, _ in models))
names = {"pmem": "training points (paper)", "gaussian": "N(0, I)", "sphere": "sphere", "data": "data distribution"}


def label(init: str, var: float) -> str:
    return f"{names[init]}, s² = {var:g}"


params = {"profile": prof.to_dict(), "seed": seed, "Ms": Ms, "starts": starts}
glue("profile", Markdown(f"`{profile}`"), display=False)
glue("n_models", len(starts) * len(Ms), display=False)
glue("n_starts", len(starts), display=False)
glue("Ms_text", Markdown(", ".join(map(str, Ms))), display=False)
glue("N", N, display=False)
glue("seed", seed, display=False)

# %% [markdown]
# Profile **{glue:md}`profile:myst`** ($N$ = {glue:text}`N`), capacities $M$ = {glue:md}`Ms_text:myst`:
# {glue:text}`n_starts` starts, {glue:text}`n_models` models, trained on the same noise (one
# batch of them per core). Models already in the results store are reused (the paper's start
# at capacities of the phase-transition chapter's grid is that chapter's model).

# %%
problem = prof.setting.problem(seed)
store = profile_store(prof.name)
records = train_models(models, seed, store, progress=False, problem=problem, train_missing=train_missing,
                       workers=cores())
# (entries stored before the loss curve was kept have none: NaN)
curves = [store.get(make_key(model_spec(variant, seed, M)))[1].get("loss_curve", np.full(1, np.nan))
          for variant, M in models]

# The training objective at step 0 (eps loss averaged over the grid times, which the trainer
# samples uniformly), by Monte Carlo on the same noise for every start.
variants = {(variant.protocol.init, variant.protocol.init_var): variant for variant, _ in models}
initial = torch.cat([loss_per_time(init_state(problem, Ms, variants[start].protocol, seed).gmm(), problem.train,
                                   time_grid(), prof.evaluation.n_noise, generator(seed, "reference_loss"),
                                   units="eps").mean((1, 2)) for start in starts])
rows = []
for (variant, M), record, curve, loss0 in zip(models, records, curves, initial.tolist()):
    init, var = variant.protocol.init, variant.protocol.init_var
    rows.append({"init": init, "init var": var, "start": label(init, var), "M": M, "M/N": M / N,
                 "initial loss": loss0, "final loss": float(np.mean(curve[-10:])),
                 "held-out loss": record["test_loss"][REPRESENTATIVE_INDEX],
                 "memorization": record["memorization"], "lo": record["memorization_lo"],
                 "hi": record["memorization_hi"], "learned var": record["var"],
                 "dist to train": float(np.median(record["dist_train"])),
                 "dist to true": float(np.median(record["dist_true"]))})
table = pd.DataFrame(rows)
is_paper = (table.init == "pmem") & (table["init var"] == prof.protocol.init_var)
paper_start = table[is_paper].set_index("M")
for column, name in (("initial loss", "initial ratio"), ("final loss", "final ratio")):
    table[name] = table[column] / table["M"].map(paper_start[column])
table["memorization difference"] = table["memorization"] - table["M"].map(paper_start["memorization"])
# the ideal denoiser's held-out loss at the representative time, which a generalizing model reaches
ideal_test = float(loss_per_time(ideal(problem), problem.test, time_grid(), prof.evaluation.n_noise,
                                 generator(seed, "test_loss"))[0, :, REPRESENTATIVE_INDEX].mean())
table["held-out / ideal"] = table["held-out loss"] / ideal_test
random_starts = table[table.init != "pmem"]
glue("parameters_text", Markdown(
    f"The random starts end with a learned variance of {random_starts['learned var'].median():.3g} and their means "
    f"at a median distance of {random_starts['dist to train'].median():.3g} from the nearest training point "
    f"(medians over their models), against {table[is_paper]['learned var'].median():.3g} and "
    f"{table[is_paper]['dist to train'].median():.3g} for the paper's start; the data's component variance is "
    f"{prof.setting.var:g}."), display=False)
table.drop(columns=["start", "lo", "hi"]).set_index(["init", "init var", "M"])

# %% [markdown]
# The table: each model's training loss (eps units, the training objective averaged over the
# grid times) at step 0 and over its last 1,000 steps (and both as
# ratios to the paper's start at the same $M$), its held-out loss at the representative time
# (x0 units, and as a ratio to the ideal denoiser's), its memorization ratio and the difference
# from the paper's start, its learned variance, and the median distance of its means to the
# nearest training point and to the nearest true component mean. {glue:md}`parameters_text:myst`
#
# ## Loss curves
#
# The training loss of every model during training (logged every 100 steps; each start's
# loss at step 0 is in the table above).

# %%
fig, axes = plt.subplots(1, len(Ms), figsize=(4.2 * len(Ms), 3.6), sharey=True, squeeze=False)
curve_rows = []
for ax, M in zip(axes[0], Ms):
    for (variant, M_r), curve in zip(models, curves):
        if M_r != M:
            continue
        init, var = variant.protocol.init, variant.protocol.init_var
        steps = 100 * np.arange(1, len(curve) + 1)
        smooth = pd.Series(curve).rolling(10, min_periods=1).mean()                # over 1,000 steps
        ax.plot(steps, smooth, color=f"C{INITS.index(init)}", ls=("-", "--", ":", "-.")[init_vars.index(var) % 4],
                lw=1.2, label=label(init, var))
        curve_rows += [{"init": init, "init var": var, "M": M, "step": int(k), "training loss": float(v)}
                       for k, v in zip(steps, curve)]
    ax.set_yscale("log")
    ax.set_title(f"M = {M} (M/N = {M / N:.2f})")
    ax.set_xlabel("step")
axes[0][0].set_ylabel("training loss (eps units)")
fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4)
publish(fig, "fig-init-ablation-loss-curves", pd.DataFrame(curve_rows), params)

# %% [markdown]
# ```{glue:figure} fig-init-ablation-loss-curves
# :name: fig-init-ablation-loss-curves
#
# Training loss against step for each start (mean over 1,000 steps; colour: where the means
# start; line style: the initial variance), one panel per capacity; the data file has every
# logged value. Profile {glue:md}`profile:myst`, seed {glue:text}`seed`. Files:
# {figure-files}`fig-init-ablation-loss-curves`.
# ```
#
# {glue:md}`curves_text:myst`

# %%
from_points = table[(table.init == "pmem") & ~is_paper]
glue("curves_text", Markdown(
    "Over the last 1,000 steps, "
    + (f"the other starts from training points end within {(from_points['final ratio'] - 1).abs().max():.1%} of "
       "the paper's start's training loss at the same capacity, " if len(from_points) else "")
    + f"the random starts between {random_starts['final ratio'].min():.2f} and "
      f"{random_starts['final ratio'].max():.2f} times it (at step 0 they were between "
      f"{random_starts['initial ratio'].min():.3g} and {random_starts['initial ratio'].max():.3g} times it)."),
    display=False)

# %% [markdown]
# ## Where the models end up
#
# The memorization ratio of each trained model (50 DDIM samples by default, with its 95%
# Wilson interval), by start and capacity.

# %%
fig, ax = plt.subplots()
offsets = np.linspace(-0.012, 0.012, len(starts))
for k, (init, var) in enumerate(starts):
    sub = table[(table.init == init) & (table["init var"] == var)]
    ax.errorbar(sub["M/N"] + offsets[k], sub["memorization"],
                yerr=[sub["memorization"] - sub["lo"], sub["hi"] - sub["memorization"]],
                fmt="o" if var == prof.protocol.init_var else "s", ms=4, capsize=2, color=f"C{INITS.index(init)}",
                mfc=None if var == prof.protocol.init_var else "white", label=label(init, var))
ax.axhline(0.5, color="k", ls=":", lw=1)
ax.set_xlabel("capacity M/N")
ax.set_ylabel("memorization ratio (95% Wilson interval)")
ax.legend()
publish(fig, "fig-init-ablation-memorization", table, params)
others = table[~is_paper]
apart = others[(others["lo"] > others["M"].map(paper_start["hi"])) | (others["hi"] < others["M"].map(paper_start["lo"]))]
paper_max, random_max = paper_start["memorization"].max(), random_starts["memorization"].max()
memorizing_Ms = [int(M) for M in paper_start.index[paper_start["memorization"] >= 0.5]]
n_close = int((random_starts["held-out / ideal"] <= 1.1).sum())
glue("memorization_text", Markdown(
    (f"The other starts from training points memorize like the paper's start (largest difference "
     f"{from_points['memorization difference'].abs().max():.2f}). " if len(from_points) else "")
    + (f"No random-start model memorizes at these capacities (their largest ratio is {random_max:.2f})"
       if random_max < 0.5 else f"The random starts reach a memorization ratio of at most {random_max:.2f}")
    + (f"; the paper's start memorizes at M = {', '.join(map(str, memorizing_Ms))}. " if memorizing_Ms else
       "; the paper's start memorizes at none of them. ")
    + f"The 95% intervals of {len(apart)} of the {len(others)} other models lie apart from the paper's start's at the "
      f"same capacity. "
    + (f"A generalizing model would reach the ideal denoiser's held-out loss at the representative time; "
       f"{n_close} of the {len(random_starts)} random-start models come within 10% of it (ratios "
       f"{random_starts['held-out / ideal'].min():.2f} to {random_starts['held-out / ideal'].max():.2f}), so "
       + ("they generalize where the paper's start memorizes." if n_close == len(random_starts) else
          "within the protocol's steps a random start reaches neither regime, and these runs do not say where its "
          "transition would be." if n_close == 0 else
          "the others reach neither regime within the protocol's steps.")
       if random_max < 0.5 <= paper_max else
       "The start does not decide whether these capacities memorize." if apart.empty else "")), display=False)

# %% [markdown]
# ```{glue:figure} fig-init-ablation-memorization
# :name: fig-init-ablation-memorization
#
# Memorization ratio of the trained models against capacity, by start (colour: where the
# means start; filled circles: the paper's initial variance, open squares: another). Profile
# {glue:md}`profile:myst`, seed {glue:text}`seed`. Files:
# {figure-files}`fig-init-ablation-memorization`.
# ```
#
# {glue:md}`memorization_text:myst`
