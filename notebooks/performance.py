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
# # Appendix: training throughput
#
# Later chapters train thousands of GMM denoisers, so the trainer is this book's hot path.
# This appendix runs the benchmark `benchmarks/train_throughput.py` while the book is built,
# on whatever machine builds it: the paper's protocol at its main setting (a batch of
# $N \times N_{dup}$ noisy points per step, the sizes listed in the table below) for the ten
# models of the coarse grid $M = N/10, \dots, N$, measured side by side against
#
# - a plain PyTorch loop that trains the same models one at a time with autograd,
#   `torch.optim.Adam` and the same EMA of the updates, and
# - the machine's float32 matrix-multiply peak (a $4096^3$ product).
#
# memlab's trainer shares one noisy batch across all models and writes the gradient out by
# hand (checked against autograd in the tests). On a large problem like this one it takes
# the models one at a time, in blocks of the batch whose $[B, M]$ logits stay in the CPU
# cache; on a small one, where the fixed cost of each tensor operation dominates, it
# evaluates all models as one padded $[R, B, M_{max}]$ batch (and on a GPU always does).

# %% tags=["parameters"]
steps: int = 6  # timed training steps per variant (more: steadier numbers, slower build)

# %%
import runpy
from pathlib import Path

import pandas as pd
from IPython.display import Markdown
from myst_nb import glue

import memlab

script = Path(memlab.__file__).resolve().parent.parent / "benchmarks" / "train_throughput.py"
result = runpy.run_path(str(script), run_name="benchmark")["main"](["--steps", str(steps)])
for key in ("speedup_vs_plain", "fraction_of_peak", "memlab_gflops", "plain_gflops", "matmul_peak_gflops",
            "memlab_model_steps_per_second", "plain_model_steps_per_second", "memlab_seconds_per_step",
            "paper_coarse_grid_hours_per_seed"):
    glue(key, float(result[key]), display=False)
glue("threads", int(result["threads"]), display=False)
for key in ("batched_vs_one_by_one", "batched_vs_plain", "ci_coarse_grid_minutes", "processes_vs_threads_N20",
            "processes_vs_threads_N50", "allocator_gain_N50"):
    glue(f"ci_{key}", float(result["ci"][key]), display=False)
glue("ci_processes", int(result["ci"]["processes"]), display=False)
ceiling = result["ceiling_vs_plain"]
glue("ceiling_text", Markdown(
    f"The plain loop already runs its products at {result['plain_fraction_of_peak']:.0%} of the peak, so on "
    f"this machine no trainer that computes the same products can be more than {ceiling:.1f} times as fast "
    f"as the plain loop" + (": a 5-fold speed-up is out of reach here, because at this size each product is "
                            "large enough to run near the peak even one model at a time." if ceiling < 5 else ".")),
    display=False)
setup = result["setting"]
print(f"N = {setup['N']}, d = {setup['d']}, N_dup = {setup['n_dup']}, M = {setup['Ms']}")
pd.DataFrame({
    "memlab (all models at once)": [result["memlab_seconds_per_step"], result["memlab_model_steps_per_second"],
                                    result["memlab_gflops"]],
    "plain loop (one model at a time)": [result["plain_seconds_per_step"], result["plain_model_steps_per_second"],
                                         result["plain_gflops"]],
}, index=["seconds per step (10 models)", "model-steps per second", "GFLOP/s"])

# %% [markdown]
# On the machine that built this page ({glue:text}`threads` threads), memlab trains
# {glue:text}`memlab_model_steps_per_second:.1f` model-steps per second, {glue:text}`speedup_vs_plain:.1f`
# times the plain loop's {glue:text}`plain_model_steps_per_second:.1f`. Its matrix products and
# memory-bound softmax together run at {glue:text}`memlab_gflops:.0f` GFLOP/s, that is
# {glue:text}`fraction_of_peak:.0%` of the measured float32 matrix-multiply peak of
# {glue:text}`matmul_peak_gflops:.0f` GFLOP/s (counting only the five matrix products of a
# step). {glue:md}`ceiling_text` At this speed the paper's 50,000 steps for one seed's coarse grid take
# {glue:text}`paper_coarse_grid_hours_per_seed:.1f` hours: why the `ci` profile exists, and why
# the paper-scale results are computed once, stored, and reused.
#
# At the `ci` profile's size ($N$ = 50, $d$ = 30, $N_{dup}$ = 10, ten models) the padded batch
# runs {glue:text}`ci_batched_vs_one_by_one:.1f` times as fast as the same trainer taking the
# models one at a time and {glue:text}`ci_batched_vs_plain:.1f` times as fast as the plain loop:
# {glue:text}`ci_ci_coarse_grid_minutes:.1f` minutes for a seed's coarse grid. Every step of
# so small a problem is mostly the fixed cost of its tensor operations, which threads share out
# poorly; so the chapters train independent runs (settings, seeds, radii) in separate
# processes of one thread each. {glue:text}`ci_processes` such processes side by side train
# {glue:text}`ci_processes_vs_threads_N20:.2f` times as many runs per second as one process
# with {glue:text}`ci_processes` threads at $N$ = 20, and {glue:text}`ci_processes_vs_threads_N50:.2f`
# times at $N$ = 50.
#
# A step of these small problems also allocates and frees the same few-megabyte tensors every
# time. By default the C library (glibc) hands freed memory back to the system and maps it
# afresh, so every step pays page faults for memory it had a moment before; memlab tells it to
# keep freed memory for reuse (`memlab/__init__.py`). One run at $N$ = 50 with the default
# allocator takes {glue:text}`ci_allocator_gain_N50:.2f` times as long per step as with memlab's
# (same numbers: only where the memory comes from changes).
