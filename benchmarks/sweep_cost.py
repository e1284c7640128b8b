"""Benchmark: what a located M_pt costs (not a test).

Measures, in one run on this machine:
(a) the model-steps per located M_pt (steps x the sum of the capacities trained) of the paper's
    two-stage grid and of the adaptive search (memlab.grid), on every two-stage grid in the
    results store: the adaptive search run against the stored models alone (allowed: the M the
    grid trained; it must find the grid's M_pt), and at the resolution of one M (its stages
    read the stored curve, interpolated: a projection of its cost, not a result);
(b) the throughput of a tiny sweep of adaptive searches (8 settings of the ci protocol, shortened
    to --steps) run as the sweep's Dask tasks on `cores()` one-thread workers, against the same
    searches one after another in a single process of `cores()` torch threads.

    python benchmarks/sweep_cost.py [--steps 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from memlab.experiments import PROFILES, Setting, cores, phase_transition
from memlab.grid import adaptive_search, first_memorizing
from memlab.store import Store
from memlab.sweep import main as sweep_main
from memlab.sweep import stored_grids


def search_costs() -> list[dict]:
    """(a): model-steps of each search on each stored grid."""
    rows = []
    for grid in stored_grids():
        Ms, ratios = sorted(grid["ratios"]), grid["ratios"]
        curve = lambda stage: list(np.interp(stage, Ms, [ratios[M] for M in Ms]))
        found, stages = adaptive_search(lambda stage: [ratios[M] for M in stage], grid["N"], allowed=Ms)
        projected, fine = adaptive_search(curve, grid["N"])
        rows.append({"run": grid["run"], "grid_M_pt": first_memorizing(Ms, [ratios[M] for M in Ms]),
                     "adaptive_M_pt": found, "grid_model_steps": grid["steps"] * sum(Ms),
                     "adaptive_model_steps": grid["steps"] * sum(map(sum, stages)),
                     "adaptive_models": sum(map(len, stages)), "grid_models": len(Ms),
                     "every_M_model_steps": grid["steps"] * sum(map(sum, fine)), "every_M_M_pt": projected})
    return rows


def sweep_throughput(steps: int) -> dict:
    """(b): models per second of the tiny adaptive sweep on Dask workers and in one process."""
    import memlab.experiments as E

    base = replace(PROFILES["ci"], name="bench", protocol=replace(PROFILES["ci"].protocol, steps=steps),
                   search="adaptive", checkpoint_every=steps)
    settings = [Setting(N, d, 3) for N in (20, 30) for d in (20, 30, 40, 50)]
    E.SWEEPS["bench"] = E.Sweep("bench", base, tuple((s, (0,)) for s in settings))
    out = {"settings": len(settings), "steps": steps, "workers": cores()}
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        sweep_main(["--scaling", "bench", "--workers", str(cores()), "--store", str(Path(root) / "dask")])
        out["dask_seconds"] = time.perf_counter() - start
        torch.set_num_threads(cores())
        start = time.perf_counter()
        serial = [phase_transition(replace(base, setting=s), 0, Store(Path(root) / "one" / "bench"), progress=False)
                  for s in settings]
        out["single_process_seconds"] = time.perf_counter() - start
        dask = [phase_transition(replace(base, setting=s), 0, Store(Path(root) / "dask" / "bench"), progress=False,
                                 train_missing=False) for s in settings]
    out["models"] = sum(len(run["records"]) for run in serial)
    out["same_M_pt"] = [a["M_pt"] for a in serial] == [b["M_pt"] for b in dask]
    out["dask_vs_single_process"] = out["single_process_seconds"] / out["dask_seconds"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of the tiny sweep's models")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    costs = search_costs()
    for row in costs:
        print(f"{row['run']:<36} M_pt grid {row['grid_M_pt']} adaptive {row['adaptive_M_pt']}: "
              f"{row['adaptive_model_steps'] / row['grid_model_steps']:.2f} of the grid's model-steps "
              f"({row['adaptive_models']} models, not {row['grid_models']}); at every M "
              f"{row['every_M_model_steps'] / row['grid_model_steps']:.2f}")
    ratio = [r["adaptive_model_steps"] / r["grid_model_steps"] for r in costs]
    print(f"adaptive / grid model-steps: median {np.median(ratio):.2f}, range {min(ratio):.2f}-{max(ratio):.2f}; "
          f"same M_pt on {sum(r['grid_M_pt'] == r['adaptive_M_pt'] for r in costs)} of {len(costs)} grids")
    speed = sweep_throughput(args.steps)
    print(f"tiny adaptive sweep ({speed['settings']} settings, {speed['models']} models, {speed['steps']} steps): "
          f"Dask {speed['dask_seconds']:.1f} s on {speed['workers']} one-thread workers, one process of "
          f"{speed['workers']} threads {speed['single_process_seconds']:.1f} s: "
          f"{speed['dask_vs_single_process']:.2f}x; same M_pt: {speed['same_M_pt']}")
    if args.json:
        args.json.write_text(json.dumps({"search_costs": costs, "sweep_throughput": speed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
