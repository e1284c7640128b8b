"""Command line: run a profile's phase-transition sweep into the results store, resumably.

    python -m memlab.sweep --profile paper --seeds 0 1 2 [--store results] [--threads N] [--device cuda]
    python -m memlab.sweep --scaling paper [--seeds 0] [--store results] [--threads N] [--device cuda]
    python -m memlab.sweep --ablation paper [--seeds 0]
    python -m memlab.sweep --profile paper --seeds 0 --workers 2
    python -m memlab.sweep --profile paper_fast --seeds 0 --capacities 127 135 142
    python -m memlab.sweep --scaling paper --workers 10 --scheduler tcp://host:8786

--profile runs one setting's seeds (the phase-transition chapter), or with --capacities M ...
trains those M; --ablation the initialisation ablation of a profile for its first seed or
--seeds (its chapter's default capacities and variances); --scaling every setting and seed
of a linear-scaling sweep (the linear-scaling chapter), or with --seeds only those seeds of
each setting. Given together they run in that order, and --seeds applies to each. --minutes
stops at the first checkpoint after that long.
--workers N deals each batch of models into N processes of one torch thread each (one per
core; faster than N threads): the workers of a Dask LocalCluster, or with --scheduler ADDRESS
those of a running Dask cluster (e.g. dask-jobqueue's on Slurm or PBS); checkpoints of another
batching are resumed as they were batched. With them, a --scaling sweep runs each (setting,
seed) of the two-stage grid as one task, and each model of an adaptive search's stage as one
task, submitting a run's next stage when its last one ends.

Interrupt it at any time: finished models are stored, the models in training are
checkpointed every `checkpoint_every` steps, and the next run picks up from there.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from pathlib import Path

import torch
from tqdm.auto import tqdm

from memlab.experiments import (PROFILES, SWEEPS, OutOfTime, Profile, ablation, get_profile, phase_transition,
                                phase_transitions, run_models, train_models, worker_pool)
from memlab.grid import next_stage
from memlab.store import Store

STORE = Path(__file__).resolve().parent.parent / "results"
"""The committed results store, one folder per profile."""


def profile_store(name: str, root: Path = STORE) -> Store:
    """Profile `name`'s folder of `root`, also reading matching entries from the other profiles'
    folders (the paper sweep's N = 50, d = 30, K = 3 runs are paper_small's, for example)."""
    others = sorted(p for p in root.iterdir() if p.is_dir() and p.name != name) if root.is_dir() else []
    return Store(root / name, also=others)


def stored_grids(root: Path = STORE) -> list[dict]:
    """Every refined two-stage grid stored under `root` for the profiles and sweeps of memlab.experiments,
    a model shared by two of them counted once: {"run": a label, "N", "steps", "ratios": {M: memorization}}."""
    jobs = [(p, seed, profile_store(p.name, root)) for p in PROFILES.values() for seed in p.seeds]
    jobs += [(sweep.profile(s), seed, profile_store(sweep.base.name, root)) for sweep in SWEEPS.values()
             for s, seeds in sweep.runs for seed in seeds]
    grids = {}
    for (profile, seed, _), run in zip(jobs, phase_transitions(jobs, train_missing=False)):
        if run is not None and run["refined"] and run["search"] == "grid":
            grids.setdefault((profile.protocol, profile.setting, seed), {
                "run": f"{profile.name} N={profile.setting.N} d={profile.setting.d} K={profile.setting.K} seed {seed}",
                "N": profile.setting.N, "steps": profile.protocol.steps,
                "ratios": {r["M"]: r["memorization"] for r in run["records"]}})
    return list(grids.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES))
    parser.add_argument("--ablation", choices=sorted(PROFILES))
    parser.add_argument("--scaling", choices=sorted(SWEEPS))
    parser.add_argument("--seeds", type=int, nargs="*",
                        help="default: the profile's seeds (--profile), its first seed (--ablation), "
                             "each setting's seeds (--scaling)")
    parser.add_argument("--capacities", type=int, nargs="+", metavar="M",
                        help="with --profile: train these M for each seed instead of searching for M_pt "
                             "(e.g. another profile's grid, to compare the two model by model)")
    parser.add_argument("--workers", type=int, default=1,
                        help="train each batch of models in this many one-thread Dask worker processes (CPU only)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="train on the running Dask cluster at this address (tcp://host:8786) instead of a "
                             "LocalCluster; each batch is dealt into --workers parts")
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where to train: cpu (default) or cuda")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop at the first checkpoint after this many minutes (rerun to resume)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads={args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
    if args.device not in ("cpu", "cuda") or (args.device == "cuda" and not torch.cuda.is_available()):
        parser.error(f"--device={args.device!r} must be 'cpu' or, on a machine with a GPU, 'cuda'")
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes={args.minutes} must be > 0")
    if not (args.profile or args.ablation or args.scaling):
        parser.error("name a --profile, an --ablation, a --scaling sweep, or several")
    if args.workers < 1 or (args.workers > 1 and args.device != "cpu"):
        parser.error(f"--workers={args.workers} must be >= 1, and more than 1 only with --device cpu")
    if args.scheduler is not None and (args.device != "cpu" or "://" not in args.scheduler):
        parser.error(f"--scheduler={args.scheduler!r} must be a Dask scheduler address such as tcp://host:8786, "
                     "and only with --device cpu")
    if args.capacities is not None and not args.profile:
        parser.error("--capacities needs a --profile to train them with")
    if args.capacities is not None and (min(args.capacities) < 1 or max(args.capacities) > get_profile(args.profile).setting.N):
        parser.error(f"--capacities={args.capacities} must lie in 1..N={get_profile(args.profile).setting.N}")
    work = []                                                   # (what, profile, seed) in order
    if args.profile:
        profile = get_profile(args.profile)
        what = "transition" if args.capacities is None else "capacities"
        work += [(what, profile, seed) for seed in (profile.seeds if args.seeds is None else args.seeds)]
    if args.ablation:
        profile = get_profile(args.ablation)
        work += [("ablation", profile, seed) for seed in (profile.seeds[:1] if args.seeds is None else args.seeds)]
    runs = []                                                   # the scaling sweep's, in its order
    if args.scaling:
        sweep = SWEEPS[args.scaling]
        every = [(setting, seed) for setting, seeds in sweep.runs for seed in seeds]
        chosen = [(setting, seed) for setting, seed in every if args.seeds is None or seed in args.seeds]
        if not chosen:
            parser.error(f"--seeds={args.seeds} selects no run of the {args.scaling!r} sweep; "
                         f"its seeds are {sorted({seed for _, seed in every})}")
        runs = [("transition", sweep.profile(setting), seed) for setting, seed in chosen]
    stop_at = None if args.minutes is None else time.time() + 60 * args.minutes
    parallel = args.workers > 1 or args.scheduler is not None
    for what, profile, seed in work + (runs if not parallel else []):   # each batch dealt into the workers
        summary = _run(what, profile, seed, args.store, args.device, stop_at, args.workers, args.scheduler,
                       args.capacities)
        print(summary, flush=True)
        if summary.startswith("out of time"):
            return 0
    if runs and parallel:                   # a sweep's runs are many: Dask tasks
        import memlab.sweep as tasks        # by reference, also when this module runs as __main__
        staged = [run for run in runs if run[1].search == "adaptive"]
        with worker_pool(args.workers, args.scheduler) as pool:
            futures = [pool.submit(tasks._run, what, profile, seed, args.store, args.device, stop_at)
                       for what, profile, seed in runs if profile.search != "adaptive"]
            for line in _staged(staged, pool, args.store, args.device, stop_at, args.workers):
                print(line, flush=True)
            for future in tqdm(as_completed(futures), total=len(futures), desc=f"{args.scaling} sweep runs"):
                print(future.result(), flush=True)
    return 0


def _staged(runs: list, pool, root: Path, device: str, stop_at: float | None, window: int):
    """The adaptive searches of `runs` as Dask tasks of one model each: a run's next stage is
    submitted when its last one ends (memlab.grid.next_stage). At most `window` runs (one per
    worker) are in flight, taken in the sweep's order, so that its headline runs finish first: a
    worker freed while a run's next stage is on its way would otherwise start a later run's
    model, and a large one holds it for long. Yields each run's summary."""
    import memlab.sweep as tasks
    known = [{} for _ in runs]
    pending, left, stopped, finished_runs = {}, [0] * len(runs), set(), []   # pending: future -> (run, M)
    waiting = iter(range(len(runs)))
    bar = tqdm(total=0, desc="adaptive search: models", unit="model")

    def advance(i: int | None) -> None:
        """Submit run i's next stage; a run with none left is summarised and the next run started."""
        while i is not None:
            _, profile, seed = runs[i]
            stage = next_stage(known[i], profile.setting.N, profile.per_stage)
            for M in stage:
                pending[pool.submit(tasks._train_one, profile, seed, M, root, device, stop_at, priority=-i)] = (i, M)
            left[i] = len(stage)
            bar.total += len(stage)
            bar.refresh()
            if stage:
                return
            finished_runs.append(i)
            i = None if stop_at is not None and time.time() > stop_at else next(waiting, None)

    for _ in range(window):
        advance(next(waiting, None))
    while pending or finished_runs:
        while finished_runs:
            yield _run(*runs[finished_runs.pop(0)], root, device, stop_at)   # all stored: reads and summarises
        if not pending:
            break
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            i, M = pending.pop(future)
            ratio = future.result()
            bar.update()
            left[i] -= 1
            if isinstance(ratio, str):                      # out of time: this run stops here
                stopped.add(i)
                yield ratio
            else:
                known[i][M] = ratio
            if left[i] == 0 and i not in stopped:
                advance(i)
    bar.close()


def _train_one(profile: Profile, seed: int, M: int, root: Path, device: str, stop_at: float | None) -> float | str:
    """One model of an adaptive search (a Dask task): its memorization ratio, or 'out of time: ...'."""
    deadline = None if stop_at is None else time.monotonic() + stop_at - time.time()
    try:
        return run_models(profile, seed, [M], profile_store(profile.name, root), device=device,
                          deadline=deadline)[0]["memorization"]
    except OutOfTime as stop:
        return f"out of time: {stop}"


def _run(what: str, profile: Profile, seed: int, root: Path, device: str, stop_at: float | None, workers: int = 1,
         scheduler: str | None = None, capacities: list[int] | None = None) -> str:
    """One run of the sweep (a Dask task or here): its summary, or 'out of time: ...' at the deadline
    `stop_at` (time.time(), so that it holds on every machine of a cluster)."""
    store = profile_store(profile.name, root)
    deadline = None if stop_at is None else time.monotonic() + stop_at - time.time()
    start = time.perf_counter()
    try:
        if what in ("ablation", "capacities"):
            models = ablation(profile) if what == "ablation" else [(profile, M) for M in sorted(set(capacities))]
            records = train_models(models, seed, store, device=device, deadline=deadline, workers=workers,
                                   scheduler=scheduler)
            summary = ("M:ratio " + " ".join(f"{r['M']}:{r['memorization']:.2f}" for r in records)
                       if what == "capacities" else "init/init_var/M:ratio " + " ".join(
                f"{r['spec']['protocol']['init']}/{r['spec']['protocol']['init_var']:g}/{r['M']}:"
                f"{r['memorization']:.2f}" for r in records))
        else:
            result = phase_transition(profile, seed, store, device=device, deadline=deadline, workers=workers,
                                      scheduler=scheduler)
            summary = f"M_pt={result['M_pt']} band={result['band']}\n  M:ratio " + " ".join(
                f"{r['M']}:{r['memorization']:.2f}" for r in result["records"])
    except OutOfTime as stop:
        return f"out of time: {stop}"
    return (f"{what}: profile={profile.name} setting={profile.setting} seed={seed} "
            f"({time.perf_counter() - start:.0f} s)\n  {summary}")


if __name__ == "__main__":
    sys.exit(main())
