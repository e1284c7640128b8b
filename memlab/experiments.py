"""Profiles, the two-stage capacity grid, and resumable sweeps over the results store (SPEC 6).

A sweep trains the models it does not find in the store (all capacities of a seed at once,
checkpointing as it goes) and stores one entry per model: its learned parameters, under a key of
what determines them (setting, seed, M, protocol and the code that trains). Each model's
evaluation is a second entry, under a key of the model's key, the evaluation's spec and the code
that evaluates: a changed evaluation re-evaluates the stored models without retraining them. Because models
never interact and each model's initialisation and noise depend only on (seed, M), an entry
is the same whichever other models it was trained with (up to float rounding: a batch pads
its models to its largest M, which changes the order of some sums, and 50,000 steps grow that
to a few tenths of a percent; the profiles appendix audits it); so a sweep that stops keeps
every finished model, and a resumed one trains only what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, get_args

import numpy as np
import torch

from memlab.evaluate import EvalSpec, evaluate_stored
from memlab.gmm import Problem, make_problem
from memlab.grid import adaptive_pt, bracket, coarse_grid, first_memorizing, next_stage, refine_grid, transition_band
from memlab.store import Store, code_fingerprint, make_key
from memlab.streams import generator
from memlab.train import INITS, Protocol, TrainState, init_state, keep_freed_memory, train

@dataclass(frozen=True)
class Setting:
    """The data: N samples of a K-component mixture in dimension d (SPEC 2)."""

    N: int = 200       # training samples (paper's main setting: 200)
    d: int = 50        # dimension (paper: 50)
    K: int = 12        # true components (paper: 12)
    var: float = 1.0   # sigma*^2 (paper: 1)
    radius: float | None = None  # norm of the true means; None: sqrt(d) (paper). The overlapping-modes chapter shrinks it

    def problem(self, seed: int) -> Problem:
        """The data of seed `seed` (means, training and held-out sets)."""
        return make_problem(self.N, self.d, self.K, generator(seed, "data"), var=self.var, radius=self.radius)

    def spec(self) -> dict:
        """The fields for a result's key; radius only when set, so that entries stored before
        the field existed keep their keys."""
        return {k: v for k, v in asdict(self).items() if not (k == "radius" and v is None)}


Search = Literal["grid", "adaptive"]
SEARCHES: tuple[Search, ...] = get_args(Search)


@dataclass(frozen=True)
class Profile:
    """A named choice of setting, protocol, seeds and evaluation, saved with every figure."""

    name: str
    setting: Setting
    protocol: Protocol
    seeds: tuple[int, ...]
    evaluation: EvalSpec = field(default_factory=EvalSpec)
    refine: int = 10                  # extra capacities inside the transition band (SPEC 6: about 10)
    checkpoint_every: int = 2_000     # steps between checkpoints (our choice)
    search: Search = "grid"           # how M_pt is located: the paper's two-stage grid, or memlab.grid's adaptive search
    per_stage: int = 1                # models per stage of the adaptive search (more: fewer stages, more training)

    def __post_init__(self):
        if self.search not in SEARCHES:
            raise ValueError(f"search={self.search!r} must be one of {list(SEARCHES)}")
        if isinstance(self.per_stage, bool) or not isinstance(self.per_stage, int) or self.per_stage < 1:
            raise ValueError(f"per_stage={self.per_stage!r} must be a positive int")

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", Setting(200, 50, 12), Protocol(), seeds=(0, 1, 2)),
    # The paper's protocol on the ci profile's small setting: the reference the ci protocol must match.
    "paper_small": Profile("paper_small", Setting(50, 30, 3), Protocol(), seeds=(0, 1, 2)),
    # The cheapest protocol that still shows the transition, chosen by measurement (the
    # phase-transition chapter compares it with paper_small): the paper's steps and learning
    # rate, which the learned variance needs to grow (a tenth of the steps, or a larger rate,
    # leave it near 1e-3 and every model memorizing), with 10 noise draws per sample instead
    # of 100, two seeds and a shorter refinement.
    "ci": Profile("ci", Setting(50, 30, 3), Protocol(n_dup=10), seeds=(0, 1), refine=5, checkpoint_every=10_000),
    # The ci protocol (10 noise draws per sample) at the paper's main setting: the candidate fast
    # protocol of the paper sweep, a tenth of the exact protocol's cost, to be compared with
    # `paper` model by model before it stands in for it (issue 16).
    "paper_fast": Profile("paper_fast", Setting(200, 50, 12), Protocol(n_dup=10), seeds=(0, 1, 2)),
}


@dataclass(frozen=True)
class Sweep:
    """Many settings trained with one profile's protocol (the linear-scaling chapter).

    Each (setting, seeds) pair runs the two-stage grid of `base` on that setting; the entries go
    to `base`'s store folder, so a model shared with the phase-transition chapter is trained once.
    """

    name: str
    base: Profile
    runs: tuple[tuple[Setting, tuple[int, ...]], ...]

    def profile(self, setting: Setting) -> Profile:
        """The base profile on `setting`."""
        return replace(self.base, setting=setting)

    def to_dict(self) -> dict:
        return {"name": self.name, "base": self.base.to_dict(),
                "runs": [{"setting": asdict(s), "seeds": list(seeds)} for s, seeds in self.runs]}


PAPER_GRID: dict[str, tuple[int, ...]] = {"N": (50, 100, 150, 200), "d": (30, 40, 50, 60), "K": (3, 6, 9, 12)}
"""The paper's sweep (its Figure 3): every (N, d, K) of this grid, 4 x 4 x 4 = 64 settings."""

SWEEPS: dict[str, Sweep] = {
    # The paper's 64 settings with its 2 seeds, and N up to 400 at its main d and K with 3 seeds.
    # A run trains in this order (on a CPU: hours per run at N >= 100), so the paper's main d and K
    # come first: their line M_pt(N) is the chapter's headline, and its N = 200 runs are the paper profile's.
    "paper": Sweep("paper", PROFILES["paper"], tuple(
        [(Setting(N, 50, 12), (0, 1)) for N in PAPER_GRID["N"]]
        + [(Setting(N, d, K), (0, 1)) for N in PAPER_GRID["N"] for d in PAPER_GRID["d"] for K in PAPER_GRID["K"]
           if (d, K) != (50, 12)]
        + [(Setting(N, 50, 12), (0, 1, 2)) for N in (300, 400)])),
    # The paper's sweep at the fast protocol (paper_fast: 10 noise draws per sample) with the adaptive
    # search: the headline line M_pt(N) at the paper's main d and K first (3 seeds at N = 200, its
    # Figure 7), then the paper's 64 settings with one seed.
    "paper_fast": Sweep("paper_fast", replace(PROFILES["paper_fast"], search="adaptive"), tuple(
        [(Setting(N, 50, 12), (0, 1, 2) if N == 200 else (0,)) for N in (50, 100, 150, 200, 300, 400)]
        + [(Setting(N, d, K), (0,)) for N in PAPER_GRID["N"] for d in PAPER_GRID["d"] for K in PAPER_GRID["K"]
           if (d, K) != (50, 12)])),
    # The ci profile's setting at four sample sizes (N = 50 is the phase-transition chapter's, with
    # its two seeds; one seed below: a third less training than two, and still a line to fit),
    # and at N = 30 one seed each of another d and K; about 10 minutes on 2 cores on a slow day.
    "ci": Sweep("ci", PROFILES["ci"], tuple(
        [(Setting(N, 30, 3), (0,)) for N in (20, 30, 40)] + [(Setting(50, 30, 3), (0, 1))]
        + [(Setting(30, d, K), (0,)) for d, K in ((20, 3), (40, 3), (30, 6))])),
}


def get_sweep(name: str) -> Sweep:
    if name not in SWEEPS:
        raise ValueError(f"sweep={name!r} must be one of {sorted(SWEEPS)}")
    return SWEEPS[name]


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} must be one of {sorted(PROFILES)}")
    return PROFILES[name]


def model_spec(profile: Profile, seed: int, M: int) -> dict:
    """Everything that determines one trained model's parameters; its hash is the model entry's key."""
    return {"setting": profile.setting.spec(), "seed": seed, "M": M, "protocol": profile.protocol.to_dict(),
            "code": training_code()}


def training_code() -> str:
    """The fingerprint of the code that draws the data and trains (memlab.store.code_fingerprint)."""
    return code_fingerprint(Setting, Protocol, _train_group)


def evaluation_spec(model_key: str, evaluation: EvalSpec) -> dict:
    """Everything that determines a stored model's evaluation; its hash is the evaluation entry's key."""
    return {"model": model_key, "evaluation": evaluation.to_dict(), "code": code_fingerprint(evaluate_stored)}


def _state_arrays(state: TrainState) -> dict[str, np.ndarray]:
    arrays = {k: v.cpu().numpy() for k, v in state.tensors().items()}
    arrays["losses"] = np.asarray(state.losses, dtype=np.float64).reshape(-1, len(state.Ms))
    return arrays


def _state_from(record: dict, arrays: dict[str, np.ndarray], device: str) -> TrainState:
    names = ("means", "scale", "m_means", "v_means", "e_means", "m_scale", "v_scale", "e_scale")
    tensors = {k: torch.from_numpy(arrays[k].copy()).to(device) for k in names}
    return TrainState(record["Ms"], **tensors, step=record["step"], losses=arrays["losses"].tolist(),
                      seconds=record["seconds"])


class OutOfTime(RuntimeError):
    """A sweep reached its deadline; its progress is checkpointed and the next run resumes it."""


def run_models(profile: Profile, seed: int, Ms: Sequence[int], store: Store, progress: bool = True,
               problem: Problem | None = None, train_missing: bool = True, device: str = "cpu",
               deadline: float | None = None, workers: int = 1, scheduler: str | None = None) -> list[dict]:
    """Records of the models (profile, seed, M) for M in Ms: from the store, training what is missing
    on `device` (or, with train_missing=False, raising LookupError that names what is missing).

    deadline: a time.monotonic() after which training stops at its next checkpoint (OutOfTime).
    workers, scheduler: see train_models.
    """
    return train_models([(profile, M) for M in Ms], seed, store, progress, problem, train_missing, device, deadline,
                        workers, scheduler)


def _training_part(profile: Profile) -> tuple:
    """What models trained as one batch must share: all but the protocol's initialisation."""
    return profile.setting, profile.evaluation, replace(profile.protocol, init="pmem", init_var=1.0)


def _stack(states: Sequence[TrainState]) -> TrainState:
    """One state holding the models of several (zero-padded to the largest M)."""
    width = max(s.means.shape[1] for s in states)
    padded = {k: torch.cat([torch.nn.functional.pad(getattr(s, k), (0, 0, 0, width - s.means.shape[1]))
                            for s in states]) for k in ("means", "m_means", "v_means", "e_means")}
    rest = {k: torch.cat([getattr(s, k) for s in states]) for k in ("scale", "m_scale", "v_scale", "e_scale")}
    return TrainState([M for s in states for M in s.Ms], **padded, **rest)


@contextmanager
def worker_pool(workers: int, scheduler: str | None = None):
    """A concurrent.futures executor on Dask: a LocalCluster of `workers` processes of one torch
    thread each, or the running Dask cluster at address `scheduler` (its workers set to one torch
    thread too), e.g. one of dask-jobqueue's on a Slurm or PBS machine room."""
    from distributed import Client, LocalCluster, WorkerPlugin

    class OneThread(WorkerPlugin):
        """Every worker (also one restarted after a crash) trains with one torch thread."""

        def setup(self, worker) -> None:
            _one_thread()

    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        with Client(scheduler or cluster) as client:
            client.register_plugin(OneThread())
            yield client.get_executor(pure=False)
    finally:
        if cluster is not None:
            cluster.close()


def _check_workers(workers) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be a positive int")


def _checkpointed(store: Store, specs: Sequence[dict], skip: set[str]) -> list[list[int]]:
    """Indices into specs of each checkpoint in the store (keys in skip aside) that holds only
    models of specs, in its own order: one that another batching left (a run stopped with other
    workers). A checkpoint names its models' keys; an older one only their M."""
    index = {make_key(spec): i for i, spec in enumerate(specs)}
    by_M = {}
    for i, spec in enumerate(specs):
        by_M.setdefault(spec["M"], []).append(i)
    parts = []
    for key, record in store.checkpoints().items():
        if key in skip:
            continue
        if "models" in record:
            part = [index.get(model) for model in record["models"]]
        else:
            part = [by_M[M][0] if len(by_M.get(M, ())) == 1 else None for M in record.get("Ms", ())]
        if part and None not in part and make_key({"group": [specs[i] for i in part]}) == key:
            parts.append(part)
    return parts


def train_models(models: Sequence[tuple[Profile, int]], seed: int, store: Store, progress: bool = True,
                 problem: Problem | None = None, train_missing: bool = True, device: str = "cpu",
                 deadline: float | None = None, workers: int = 1, scheduler: str | None = None) -> list[dict]:
    """run_models for models of several profiles that differ only in the protocol's init and
    init_var (the initialisation ablation): the missing ones are trained as one batch.

    With workers > 1 (on the CPU) the models are dealt, in order of M, into `workers` parts, and
    the missing models of each part train as one batch in a process of one torch thread (one
    per core: small models share threads out poorly). The parts depend only on the models and
    `workers`, so a run resumed with the same `workers` finds its checkpoints; a checkpoint of
    missing models batched otherwise (a run stopped with other `workers`) is resumed first, as
    it was batched, so no training is lost. The processes are Dask workers: a LocalCluster's, or
    those of the running cluster at address `scheduler`.
    """
    _check_workers(workers)
    if len({_training_part(profile) for profile, _ in models}) > 1:
        raise ValueError("models trained together must share setting, evaluation and protocol up to init "
                         f"and init_var; got profiles {sorted({profile.name for profile, _ in models})}")
    specs = [model_spec(profile, seed, M) for profile, M in models]
    keys = [make_key(spec) for spec in specs]
    dealt = (workers > 1 or scheduler is not None) and device == "cpu"
    todo = [i for i, key in enumerate(keys) if store.get(key) is None] if train_missing else []
    if todo:
        order = sorted(range(len(models)), key=lambda i: (models[i][1], i))
        parts = [[i for i in order[j::workers] if i in todo] for j in range(workers)] if dealt else [todo]
        batches = {make_key({"group": [specs[i] for i in part]}) for part in parts if part}   # resumed below
        for part in _checkpointed(store, [specs[i] for i in todo], skip=batches):
            train_models([models[todo[j]] for j in part], seed, store, progress, problem, True, device, deadline)
    if todo and dealt:
        stored = [[store.get(keys[i]) is not None for i in part] for part in parts]
        busy = [[models[i] for i in part] for part, done in zip(parts, stored) if not all(done)]
        if busy:                                    # even one part: every part trains with one thread
            with worker_pool(len(busy), scheduler) as pool:
                for future in [pool.submit(train_models, part, seed, store, progress, problem, True, device, deadline)
                               for part in busy]:
                    future.result()
    first = models[0][0]
    problem = first.setting.problem(seed) if problem is None else problem
    found = [store.get(key) for key in keys]
    todo = [i for i, entry in enumerate(found) if entry is None]
    if todo and not train_missing:
        missing = [(models[i][0].protocol.init, models[i][0].protocol.init_var, models[i][1]) for i in todo]
        one_start = len({(profile.protocol.init, profile.protocol.init_var) for profile, _ in models}) == 1
        what = f"M={[M for *_, M in missing]}" if one_start else f"(init, init_var, M)={missing}"
        raise LookupError(f"profile {first.name!r}, seed {seed}: no stored result for {what} in {store.root} "
                          f"(training code {training_code()}); run `python -m memlab.sweep "
                          f"--{'profile' if one_start else 'ablation'} {first.name} --seeds {seed}` to compute them")
    if todo:
        keep_freed_memory()
        _train_group([models[i] for i in todo], [keys[i] for i in todo], [specs[i] for i in todo], seed, store,
                     problem, progress, device, deadline)
        found = [store.get(key) for key in keys]
    return [_evaluated(profile, seed, key, *entry, problem, store)
            for (profile, _), key, entry in zip(models, keys, found)]


def _train_group(models: Sequence[tuple[Profile, int]], keys: Sequence[str], specs: Sequence[dict], seed: int,
                 store: Store, problem: Problem, progress: bool, device: str, deadline: float | None) -> None:
    """Train `models` as one batch (resuming its checkpoint), checkpointing as it goes, and store
    each model's parameters (as trained: float32 in the paper's protocol) and training-loss curve under its key."""
    first = models[0][0]
    group = make_key({"group": list(specs)})
    resume = store.get(group, ".ckpt")
    if resume:
        state = _state_from(*resume, device)
    else:
        state = _stack([init_state(problem, [M], profile.protocol, seed, device) for profile, M in models])
    while state.step < first.protocol.steps:
        train(problem, state, first.protocol, seed, until=state.step + first.checkpoint_every, progress=progress)
        if state.step < first.protocol.steps:
            store.put(group, {"Ms": state.Ms, "models": list(keys), "step": state.step, "seconds": state.seconds},
                      _state_arrays(state), kind=".ckpt")
            if deadline is not None and time.monotonic() > deadline:
                raise OutOfTime(f"stopped at step {state.step} of {first.protocol.steps} (profile "
                                f"{first.name!r}, seed {seed}, M={state.Ms}); rerun to resume")
    losses = np.asarray(state.losses).reshape(-1, len(models))
    for r, ((profile, M), key, spec) in enumerate(zip(models, keys, specs)):
        record = {"spec": spec, "profile": profile.name, "M": M, "group_Ms": state.Ms, "group_seconds": state.seconds}
        store.put(key, record, {"means": state.means[r, :M].cpu().numpy(), "scale": state.scale[r:r + 1].cpu().numpy(),
                                "loss_curve": losses[:, r].astype(np.float32)})    # training loss every 100 steps
    store.drop(group, ".ckpt")


def _evaluated(profile: Profile, seed: int, key: str, record: dict, arrays: dict[str, np.ndarray],
               problem: Problem, store: Store) -> dict:
    """The model's record with its evaluation (evaluate_stored), from the store or computed and stored."""
    spec = evaluation_spec(key, profile.evaluation)
    entry = store.get(make_key(spec), ".eval")
    if entry is None:
        store.put(make_key(spec), {"spec": spec, **evaluate_stored(arrays, problem, profile.evaluation, seed)},
                  kind=".eval")
        entry = store.get(make_key(spec), ".eval")
    evaluation = {k: v for k, v in entry[0].items() if k not in ("spec", "key", "arrays_sha256")}
    return {**record, **evaluation, "evaluation": profile.evaluation.to_dict()}


def ablation(profile: Profile, capacities: Sequence[float] = (0.7, 0.8, 0.9),
             init_vars: Sequence[float] = (1e-6, 1.0)) -> list[tuple[Profile, int]]:
    """The initialisation ablation's models (SPEC 9): every init of the trainer with every initial
    variance in init_vars (and the profile's own), at the capacities M = c N for c in capacities."""
    if not capacities or not all(isinstance(c, (int, float)) and 0 < c <= 1 for c in capacities):
        raise ValueError(f"capacities={list(capacities)!r} must be a non-empty list of fractions of N in (0, 1]")
    if not all(isinstance(v, (int, float)) and v > 0 for v in init_vars):
        raise ValueError(f"init_vars={list(init_vars)!r} must be positive variances")
    Ms = sorted({max(1, round(c * profile.setting.N)) for c in capacities})
    variances = sorted({float(v) for v in init_vars} | {profile.protocol.init_var})
    return [(replace(profile, protocol=replace(profile.protocol, init=init, init_var=var)), M)
            for init in INITS for var in variances for M in Ms]


def phase_transition(profile: Profile, seed: int, store: Store, progress: bool = True,
                     train_missing: bool = True, device: str = "cpu", deadline: float | None = None,
                     refine: bool = True, workers: int = 1, scheduler: str | None = None) -> dict:
    """M_pt of one seed by the profile's search, with the records of the models it trained.

    "grid": the two-stage grid: coarse grid, transition band ("band"), refinement (unless
    refine=False: the coarse grid alone, half the training of the ci profile); "refined" says
    whether the refinement was run. "adaptive": the stages of memlab.grid.next_stage, each
    trained in turn; "band" is the final bracket (M_pt - 1 or below, M_pt). workers, scheduler:
    each stage's, see train_models."""
    problem = profile.setting.problem(seed)
    run = lambda Ms: run_models(profile, seed, Ms, store, progress, problem, train_missing, device, deadline,
                                workers, scheduler)
    if profile.search == "adaptive":
        records = {}
        while stage := next_stage({M: r["memorization"] for M, r in records.items()}, profile.setting.N,
                                  profile.per_stage):
            records.update((r["M"], r) for r in run(stage))
        known = {M: r["memorization"] for M, r in records.items()}
        return {"seed": seed, "band": bracket(known, profile.setting.N), "records": [records[M] for M in sorted(records)],
                "refined": True, "M_pt": adaptive_pt(known, profile.setting.N), "search": "adaptive"}
    coarse = coarse_grid(profile.setting.N)
    coarse_records = run(coarse)
    start, end = transition_band(coarse, [r["memorization"] for r in coarse_records])
    fine = refine_grid(start, end, coarse, profile.refine) if refine else []
    records = sorted(coarse_records + (run(fine) if fine else []), key=lambda r: r["M"])
    return {"seed": seed, "band": (start, end), "records": records, "refined": refine, "search": "grid",
            "M_pt": first_memorizing([r["M"] for r in records], [r["memorization"] for r in records])}


def cores() -> int:
    """The number of cores this process may run on (the default number of workers)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _one_thread() -> None:
    torch.set_num_threads(1)
    keep_freed_memory()



def phase_transitions(jobs: Sequence[tuple[Profile, int, Store]], train_missing: bool = True,
                      workers: int | None = None, refine: bool = True, scheduler: str | None = None) -> list[dict | None]:
    """phase_transition (on the CPU) of each job (profile, seed, store), in the order given. With
    train_missing False, a job whose refinement is not stored gives its coarse grid alone
    ("refined" False), and one whose coarse grid is not stored gives None.

    Jobs whose models are all stored are read here; the others train in `workers` Dask worker
    processes (default: one per available core) of one torch thread each, largest N first, or on
    the running Dask cluster at address `scheduler`. The ci models are
    so small that a step is mostly the fixed cost of its tensor operations, which threads share out
    poorly (benchmarks/train_throughput.py measures the gain; the ci linear-scaling chapter went
    from 12m26s to 8m16s on two cores). Every job trains with one thread whatever the number of
    workers, so the numbers do not depend on it.
    """
    results: list[dict | None] = [None] * len(jobs)
    todo = []
    for i, (profile, seed, store) in enumerate(jobs):
        try:
            results[i] = phase_transition(profile, seed, store, progress=False, train_missing=False, refine=refine)
        except LookupError:
            if train_missing:
                todo.append(i)
            elif refine:
                try:
                    results[i] = phase_transition(profile, seed, store, progress=False, train_missing=False,
                                                  refine=False)
                except LookupError:
                    pass
    if not todo:
        return results
    workers = cores() if workers is None else workers
    _check_workers(workers)
    todo.sort(key=lambda i: -jobs[i][0].setting.N)
    with worker_pool(min(workers, len(todo)), scheduler) as pool:
        futures = {i: pool.submit(phase_transition, *jobs[i], progress=False, refine=refine) for i in todo}
        for i, future in futures.items():
            results[i] = future.result()
    return results


def audit(profile: Profile, seed: int, M: int, store: Store, scratch: Store) -> dict:
    """Recompute one stored model from scratch (into `scratch`) and compare it with the stored entry.

    Returns the stored and recomputed memorization ratio and variance, and the largest
    relative difference of the training losses over the grid times.
    """
    stored = run_models(profile, seed, [M], store, progress=False, train_missing=False)[0]
    again = run_models(profile, seed, [M], scratch, progress=False)[0]
    rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(stored["train_loss"], again["train_loss"]))
    return {"M": M, "seed": seed, "stored_memorization": stored["memorization"],
            "recomputed_memorization": again["memorization"], "stored_var": stored["var"],
            "recomputed_var": again["var"], "max_rel_train_loss_diff": rel,
            "recompute_seconds": again["group_seconds"]}
