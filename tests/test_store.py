"""The results store and resumable sweeps."""

import json
from dataclasses import replace

import numpy as np
import pytest

from memlab.evaluate import EvalSpec
from memlab.experiments import (Profile, Setting, get_profile, model_spec,
                                run_models)
from memlab.grid import coarse_grid, first_memorizing, refine_grid, transition_band
from memlab.store import Store, make_key
from memlab.train import Protocol


def test_put_get_roundtrip_and_corruption_is_detected(tmp_path):
    store = Store(tmp_path)
    store.put("k1", {"a": 1}, {"x": np.arange(3, dtype=np.float32)})
    record, arrays = store.get("k1")
    assert record["a"] == 1 and arrays["x"].tolist() == [0, 1, 2]
    assert store.get("missing") is None
    # truncated JSON: reported, moved aside, treated as missing
    (tmp_path / "k1.json").write_text('{"a": 1, "key": "k1"')
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert store.get("k1") is None
    assert (tmp_path / "k1.json.corrupt").exists() and not (tmp_path / "k1.json").exists()
    # arrays changed behind the JSON's back
    store.put("k2", {"a": 2}, {"x": np.zeros(2)})
    np.savez_compressed(tmp_path / "k2.npz", x=np.ones(2))
    with pytest.warns(UserWarning, match="do not match the hash"):
        assert store.get("k2") is None
    # a JSON without its arrays (a partial entry)
    store.put("k3", {"a": 3})
    (tmp_path / "k3.npz").unlink()
    with pytest.warns(UserWarning, match="partial entry"):
        assert store.get("k3") is None


def test_a_store_reads_matching_entries_from_other_profiles_folders(tmp_path):
    from memlab.sweep import profile_store
    Store(tmp_path / "paper_small").put("k", {"a": 1}, {"x": np.ones(2)})
    Store(tmp_path / "paper_small").put("c", {"step": 5}, kind=".ckpt")
    store = profile_store("paper", tmp_path)
    assert store.also == [tmp_path / "paper_small"]
    assert store.get("k")[0]["a"] == 1
    assert store.get("c", ".ckpt") is None                  # checkpoints belong to their own folder
    store.put("k", {"a": 2})                                # writes go to the profile's own folder
    assert store.get("k")[0]["a"] == 2 and Store(tmp_path / "paper_small").get("k")[0]["a"] == 1
    assert profile_store("x", tmp_path / "nothing").also == []


def test_keys_change_with_everything_that_determines_a_result():
    base = get_profile("ci")
    key = make_key(model_spec(base, 0, 10))
    assert key == make_key(model_spec(base, 0, 10))
    assert key != make_key(model_spec(base, 1, 10))
    assert key != make_key(model_spec(base, 0, 11))
    assert key != make_key(model_spec(replace(base, protocol=replace(base.protocol, n_dup=11)), 0, 10))
    assert key != make_key(model_spec(replace(base, setting=replace(base.setting, d=31)), 0, 10))
    assert "evaluation" not in model_spec(base, 0, 10)                  # an evaluation has its own entry
    assert len(model_spec(base, 0, 10)["code"]) == 16


def test_transition_band_and_refinement():
    Ms = [10, 20, 30, 40, 50]
    assert transition_band(Ms, [0, 0.05, 0.3, 0.95, 1]) == (20, 40)
    assert transition_band(Ms, [0.2, 0.5, 0.9, 1, 1]) == (0, 30)
    assert transition_band(Ms, [0, 0, 0, 0.2, 0.5]) == (30, 50)
    assert refine_grid(20, 40, Ms, 10) == [22, 24, 25, 27, 29, 31, 33, 35, 36, 38]
    assert first_memorizing([30, 10, 20], [0.6, 0.0, 0.5]) == 20
    assert first_memorizing([10], [0.4]) is None
    assert coarse_grid(200) == list(range(20, 201, 20))


@pytest.mark.slow
def test_sweep_resumes_and_never_recomputes(tmp_path, monkeypatch):
    """A tiny profile: the first run stores every model; a second run trains nothing; an
    interrupted run resumes from its checkpoint and gives the same numbers."""
    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0,),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    store = Store(tmp_path / "a")
    first = run_models(profile, 0, [3, 12], store, progress=False)
    assert [r["M"] for r in first] == [3, 12] and len(first[0]["train_loss"]) == 26

    import memlab.experiments as E
    calls = []
    monkeypatch.setattr(E, "train", lambda *a, **k: calls.append(1))
    again = run_models(profile, 0, [3, 12], store, progress=False)
    assert calls == [] and again == first
    monkeypatch.undo()

    # interrupted after the first checkpoint: the next run resumes from step 7
    other = Store(tmp_path / "b")
    real_train = E.train

    def dies_after_first_segment(problem, state, *args, **kwargs):
        if state.step >= 7:
            raise KeyboardInterrupt
        return real_train(problem, state, *args, **kwargs)

    monkeypatch.setattr(E, "train", dies_after_first_segment)
    with pytest.raises(KeyboardInterrupt):
        run_models(profile, 0, [3, 12], other, progress=False)
    monkeypatch.undo()
    ckpts = list((tmp_path / "b").glob("*.ckpt.json"))
    assert len(ckpts) == 1 and json.loads(ckpts[0].read_text())["step"] == 7
    resumed = run_models(profile, 0, [3, 12], other, progress=False)
    for a, b in zip(first, resumed):
        assert a["memorization"] == b["memorization"] and a["train_loss"] == b["train_loss"]
        assert a["var"] == b["var"]
    assert not list((tmp_path / "b").glob("*.ckpt.*"))


@pytest.mark.slow
def test_a_deadline_stops_at_a_checkpoint_and_the_rerun_finishes(tmp_path):
    import time

    from memlab.experiments import OutOfTime

    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0,),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    straight = run_models(profile, 0, [3, 12], Store(tmp_path / "a"), progress=False)
    store = Store(tmp_path / "b")
    with pytest.raises(OutOfTime, match=r"stopped at step 7 of 20 .*rerun to resume"):
        run_models(profile, 0, [3, 12], store, progress=False, deadline=time.monotonic())
    assert json.loads(next((tmp_path / "b").glob("*.ckpt.json")).read_text())["step"] == 7
    resumed = run_models(profile, 0, [3, 12], store, progress=False)
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in straight]
    arrays = store.get(make_key(model_spec(profile, 0, 3)))[1]
    assert set(arrays) == {"means", "scale", "loss_curve"} and arrays["means"].shape == (3, 3)


@pytest.mark.slow
@pytest.mark.parametrize("stop_workers, resume_workers", [(1, 2), (2, 1), (2, 2)])
@pytest.mark.parametrize("two_starts", [False, True])
def test_a_run_resumes_its_checkpoints_whatever_the_batching(tmp_path, monkeypatch, stop_workers, resume_workers,
                                                             two_starts):
    """A run stopped with some workers and resumed with others (models of one start, or of two
    starts with the same M as in the ablation) resumes every checkpoint as it was batched; with
    the same workers the parts resume in the workers, not one after another here."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import memlab.experiments as E

    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0,),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    other = replace(profile, protocol=replace(profile.protocol, init="gaussian", init_var=1.0))
    models = [(profile, M) for M in (3, 5, 8, 12)] + ([(other, M) for M in (3, 8)] if two_starts else [])
    monkeypatch.setattr(E, "worker_pool", ThreadPoolExecutor)         # workers as threads: cheap, observable
    store = Store(tmp_path / "s")
    with pytest.raises(E.OutOfTime, match="stopped at step 7 of 20"):
        E.train_models(models, 0, store, progress=False, deadline=time.monotonic(), workers=stop_workers)
    stopped = sorted(record["Ms"] for record in store.checkpoints().values())
    assert len(stopped) == stop_workers
    real_train, threads = E.train, []

    def train(problem, state, *args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real_train(problem, state, *args, **kwargs)

    monkeypatch.setattr(E, "train", train)
    records = E.train_models(models, 0, store, progress=False, workers=resume_workers)
    assert sorted(map(list, {tuple(r["group_Ms"]) for r in records})) == stopped    # each resumed as batched
    assert store.checkpoints() == {} and len(threads) == 2 * stop_workers            # steps 7-14, 14-20
    if stop_workers == resume_workers == 2:
        assert not any(threads)
    straight = E.train_models(models, 0, Store(tmp_path / "t"), progress=False, workers=stop_workers)
    assert [r["train_loss"] for r in records] == [r["train_loss"] for r in straight]


@pytest.mark.slow
def test_models_of_several_initialisations_trained_together_equal_each_trained_alone(tmp_path):
    from memlab.experiments import train_models

    base = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2, dtype="float64"), seeds=(0,),
                   evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    variants = [replace(base, protocol=replace(base.protocol, init=init, init_var=var))
                for init, var in (("pmem", 1e-6), ("gaussian", 1.0), ("sphere", 1e-6))]
    models = [(variants[0], 3), (variants[1], 12), (variants[2], 5), (variants[1], 3)]
    together = train_models(models, 0, Store(tmp_path / "a"), progress=False)
    for (profile, M), record in zip(models, together):
        alone = run_models(profile, 0, [M], Store(tmp_path / "b"), progress=False)[0]
        assert record["spec"] == alone["spec"] and record["M"] == M
        np.testing.assert_allclose(record["train_loss"], alone["train_loss"], rtol=1e-9)
        np.testing.assert_allclose(record["var"], alone["var"], rtol=1e-9)
    assert len({json.dumps(r["spec"], sort_keys=True) for r in together}) == 4          # four distinct keys

    other = replace(base, protocol=replace(base.protocol, peak_lr=2e-2))
    with pytest.raises(ValueError, match="must share setting, evaluation and protocol up to init"):
        train_models([(base, 3), (other, 3)], 0, Store(tmp_path / "c"), progress=False)
    with pytest.raises(LookupError, match=r"\(init, init_var, M\)=\[\('pmem', 1e-06, 4\).*--ablation tiny --seeds 0"):
        train_models([(variants[0], 4), (variants[1], 4)], 0, Store(tmp_path / "c"), progress=False,
                     train_missing=False)


@pytest.mark.slow
def test_the_command_line_runs_a_profile_then_its_ablation_into_the_store(tmp_path, monkeypatch, capsys):
    import torch

    import memlab.experiments as E
    from memlab.sweep import main

    threads = torch.get_num_threads()
    tiny = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0, 1),
                   evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7, refine=2)
    monkeypatch.setitem(E.PROFILES, "tiny", tiny)
    assert main(["--profile", "tiny", "--ablation", "tiny", "--seeds", "1", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("transition: profile=tiny") < out.index("ablation: profile=tiny")
    models = E.ablation(tiny)
    assert len(models) == 4 * 2 * 3                               # inits x variances x capacities 0.7-0.9 N
    for profile, M in models:
        assert Store(tmp_path / "tiny").get(make_key(model_spec(profile, 1, M))) is not None
    with pytest.raises(ValueError, match=r"capacities=\[1.5\] must be a non-empty list of fractions of N"):
        E.ablation(tiny, capacities=[1.5])
    assert main(["--profile", "tiny", "--seeds", "0", "--capacities", "7", "5", "--store", str(tmp_path / "c")]) == 0
    assert "capacities: profile=tiny" in capsys.readouterr().out
    assert [r["M"] for r in E.run_models(tiny, 0, [5, 7], Store(tmp_path / "c" / "tiny"), train_missing=False)] == [5, 7]
    assert main(["--profile", "tiny", "--seeds", "0", "--workers", "2", "--store", str(tmp_path)]) == 0
    split = E.phase_transition(tiny, 0, Store(tmp_path / "tiny"), progress=False, train_missing=False)
    torch.set_num_threads(1)
    try:
        alone = E.phase_transition(tiny, 0, Store(tmp_path / "alone"), progress=False)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(split["records"], alone["records"]):
        # Other batches pad differently: float32 rounding, grown by 20 steps at rate 1e-2 (measured: 2.5e-5).
        assert a["M"] == b["M"] and a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)


@pytest.mark.parametrize("argv, message", [
    ([], "name a --profile, an --ablation, a --scaling sweep, or several"),
    (["--scaling", "ci", "--seeds", "7"], "--seeds=[7] selects no run of the 'ci' sweep; its seeds are [0, 1]"),
    (["--profile", "ci", "--minutes", "0"], "--minutes=0.0 must be > 0"),
    (["--profile", "ci", "--threads", "0"], "--threads=0 must be >= 1"),
    (["--profile", "ci", "--device", "tpu"], "--device='tpu' must be 'cpu' or, on a machine with a GPU, 'cuda'"),
    (["--profile", "nope"], "invalid choice: 'nope'"),
    (["--profile", "ci", "--workers", "0"], "--workers=0 must be >= 1, and more than 1 only with --device cpu"),
    (["--profile", "ci", "--scheduler", "localhost"], "--scheduler='localhost' must be a Dask scheduler address"),
    (["--scaling", "ci", "--capacities", "5"], "--capacities needs a --profile to train them with"),
    (["--profile", "ci", "--capacities", "0", "51"], "--capacities=[0, 51] must lie in 1..N=50"),
])
def test_sweep_command_line_refuses_bad_arguments(argv, message, capsys):
    from memlab.sweep import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_sweep_command_line_runs_the_chosen_seeds_of_a_scaling_sweep_in_its_order(monkeypatch, tmp_path):
    import memlab.sweep as S

    calls = []
    monkeypatch.setattr(S, "phase_transition", lambda profile, seed, store, **kw: calls.append(
        (profile.setting.N, profile.setting.d, profile.setting.K, seed)) or {"M_pt": None, "band": None, "records": []})
    assert S.main(["--scaling", "paper", "--seeds", "1", "--store", str(tmp_path)]) == 0
    from memlab.experiments import get_sweep

    runs = [(s.N, s.d, s.K, seed) for s, seeds in get_sweep("paper").runs for seed in seeds]
    assert calls == [run for run in runs if run[3] == 1] and len(calls) == 66
    assert calls[:4] == [(N, 50, 12, 1) for N in (50, 100, 150, 200)]      # the paper's main d and K first


def test_sweeps_share_the_store_of_their_profile():
    from memlab.experiments import SWEEPS, get_sweep

    chapter = get_profile("ci")
    shared = get_sweep("ci").profile(chapter.setting)
    assert shared.name == "ci"
    assert model_spec(shared, 0, 40) == model_spec(chapter, 0, 40)         # the same entry as the chapter's
    assert len([s for s, _ in SWEEPS["paper"].runs if s.N <= 200]) == 64
    with pytest.raises(ValueError, match=r"sweep='big' must be one of \['ci', 'paper', 'paper_fast'\]"):
        get_sweep("big")


@pytest.mark.slow
def test_parallel_phase_transitions_equal_serial_ones_and_read_stored_jobs_in_place(tmp_path, monkeypatch):
    """Jobs trained in two one-thread worker processes give the numbers of the same jobs run
    here with one thread; a second call finds everything stored and starts no process."""
    import torch

    import memlab.experiments as E

    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0, 1),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    wide = replace(profile, setting=replace(profile.setting, N=16))
    jobs = [(profile, 0), (wide, 1), (profile, 1)]
    parallel = E.phase_transitions([(p, s, Store(tmp_path / "pool")) for p, s in jobs], workers=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = [E.phase_transition(p, s, Store(tmp_path / "here"), progress=False) for p, s in jobs]
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(parallel, serial):
        assert a["M_pt"] == b["M_pt"] and a["band"] == b["band"]
        assert [r["train_loss"] for r in a["records"]] == [r["train_loss"] for r in b["records"]]
        assert [r["var"] for r in a["records"]] == [r["var"] for r in b["records"]]
    assert [r["spec"]["setting"]["N"] for r in parallel[1]["records"]][:1] == [16]

    monkeypatch.setattr(E, "worker_pool", None)                       # no pool may start now
    assert E.phase_transitions([(p, s, Store(tmp_path / "pool")) for p, s in jobs]) == parallel
    assert E.phase_transitions([(p, 2, Store(tmp_path / "pool")) for p, _ in jobs[:1]],
                               train_missing=False) == [None]
    with pytest.raises(ValueError, match=r"workers=0 must be a positive int"):
        E.phase_transitions([(profile, 3, Store(tmp_path / "pool"))], workers=0)

    monkeypatch.setattr(E, "refine_grid", lambda *_: [3])               # a refinement (tiny runs all memorize)
    coarse = E.phase_transition(profile, 3, Store(tmp_path / "pool"), progress=False, refine=False)
    shown = E.phase_transitions([(profile, 3, Store(tmp_path / "pool"))], train_missing=False)[0]
    assert shown == coarse and not shown["refined"] and parallel[0]["refined"]      # refinement not stored yet


def test_radius_enters_the_key_only_when_set():
    """Entries stored before Setting had a radius keep their keys; a set radius changes the data."""
    base = Setting(12, 3, 2)
    assert "radius" not in base.spec() and base.spec() == {"N": 12, "d": 3, "K": 2, "var": 1.0}
    assert replace(base, radius=0.5).spec()["radius"] == 0.5
    near = replace(base, radius=0.5).problem(0)
    assert np.allclose(near.means.norm(dim=1).numpy(), 0.5)
    assert np.allclose(base.problem(0).means.norm(dim=1).numpy(), 3 ** 0.5)


@pytest.mark.slow
def test_a_changed_evaluation_reevaluates_the_stored_models_without_training_them(tmp_path, monkeypatch):
    """Models and evaluations are separate entries: a new EvalSpec evaluates the stored parameters
    (even with train_missing=False), and a model evaluated alone from its stored float32 parameters
    gets the numbers of the batch it was trained in."""
    import torch

    import memlab.experiments as E
    from memlab.denoisers import GMM
    from memlab.evaluate import evaluate

    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0,),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    store = Store(tmp_path / "s")
    first = run_models(profile, 0, [3, 12], store, progress=False)
    monkeypatch.setattr(E, "train", lambda *a, **k: pytest.fail("a stored model was retrained"))
    more = replace(profile, evaluation=EvalSpec(n_samples=20, n_noise=3))
    again = run_models(more, 0, [3, 12], store, progress=False, train_missing=False)
    assert [r["group_seconds"] for r in again] == [r["group_seconds"] for r in first]     # the same trained models
    assert [len(r["train_loss"]) for r in again] == [26, 26] and again[0]["evaluation"]["n_samples"] == 20
    assert again[0]["train_loss"] != first[0]["train_loss"]                                 # evaluated anew
    assert len(list((tmp_path / "s").glob("*.eval.json"))) == 4 and len(list((tmp_path / "s").glob("*.npz"))) == 6
    # evaluated one at a time from the store = evaluated as one padded batch (float64 rounding)
    arrays = [store.get(make_key(model_spec(profile, 0, M)))[1] for M in (3, 12)]
    means = torch.zeros(2, 12, 3, dtype=torch.float64)
    means[0, :3], means[1] = torch.from_numpy(arrays[0]["means"]), torch.from_numpy(arrays[1]["means"])
    var = torch.from_numpy(np.concatenate([a["scale"] for a in arrays])).double() ** 2
    mask = torch.arange(12)[None, :] < torch.tensor([3, 12])[:, None]
    together = evaluate(GMM(means, var, mask), profile.setting.problem(0), more.evaluation, 0)
    for alone, batched in zip(again, together):
        assert alone["memorization"] == batched["memorization"] and alone["var"] == batched["var"]
        np.testing.assert_allclose(alone["train_loss"], batched["train_loss"], rtol=1e-12)
        np.testing.assert_allclose(alone["test_loss"], batched["test_loss"], rtol=1e-12)


def test_the_code_in_a_key_is_the_code_that_runs(tmp_path):
    """Editing any function, class or constant on the path from Setting to a stored model changes
    the training code in its key; on the path of the evaluation, the evaluation's; a docstring,
    a type hint, a figure or a sweep's list of settings changes neither (package copies, each
    imported in a fresh interpreter)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import memlab

    here = Path(memlab.__file__).parent
    edits = {   # name: (file, old, new, changes training code, changes evaluation code)
        "none": ("figures.py", "", "", False, False),
        "Setting.problem": ("experiments.py", 'generator(seed, "data")', 'generator(seed + 0, "data")', True, False),
        "make_problem": ("gmm.py", "N_TEST = 100", "N_TEST = 101", True, False),   # the eval key holds the model key
        "learning_rate": ("train.py", "return protocol.peak_lr * k / warm", "return protocol.peak_lr * k / warm / 1",
                          True, False),
        "_stack": ("experiments.py", "width = max(", "width = 0 + max(", True, False),
        "evaluate": ("evaluate.py", "spec.level)", "spec.level * 1)", False, True),
        "ddim": ("sampling.py", "ratio = sigma(t_next) / sigma(t)", "ratio = sigma(t_next) / sigma(t) * 1", False, True),
        "unreached": ("sampling.py", "def ddim(", "def unused():\n    return 1\n\n\ndef ddim(", False, False),
        "a docstring": ("train.py", "Advance `state` (in place", "Advance the state (in place", False, False),
        "a type hint": ("train.py", "log_every: int = 100", "log_every: float = 100", False, False),
        "figures": ("figures.py", "\nimport", "\ndef extra():\n    return 1\n\n\nimport", False, False),
        "SWEEPS": ("experiments.py", "for N in (20, 30, 40)]", "for N in (20, 30, 41)]", False, False),
    }
    probe = ("from memlab.experiments import training_code, evaluation_spec; from memlab.evaluate import EvalSpec;"
             "print(training_code(), evaluation_spec('k', EvalSpec())['code'])")
    codes = {}
    for name, (file, old, new, *_) in edits.items():
        copy = tmp_path / name.replace(" ", "_") / "memlab"
        shutil.copytree(here, copy, ignore=shutil.ignore_patterns("__pycache__"))
        source = (copy / file).read_text()
        assert source.count(old) >= 1, (name, old)
        (copy / file).write_text(source.replace(old, new, 1))
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": str(copy.parent), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
        codes[name] = out.stdout.split()
    base = codes["none"]
    for name, (*_, trains, evaluates) in edits.items():
        assert (codes[name][0] != base[0], codes[name][1] != base[1]) == (trains, evaluates), name


@pytest.mark.slow
def test_a_dask_cluster_trains_stops_resumes_and_serves_by_address(tmp_path):
    """Real Dask workers: a LocalCluster run stopped at its deadline leaves one checkpoint per
    worker's part; a running cluster named by address resumes them with one torch thread per
    worker, and the models equal those of an uninterrupted run."""
    import time

    import torch
    from distributed import Client, LocalCluster

    import memlab.experiments as E

    profile = Profile("tiny", Setting(12, 3, 2), Protocol(steps=20, n_dup=2, peak_lr=1e-2), seeds=(0,),
                      evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7)
    models = [(profile, M) for M in (3, 5, 8, 12)]
    store = Store(tmp_path / "s")
    with pytest.raises(E.OutOfTime, match="stopped at step 7 of 20"):
        E.train_models(models, 0, store, progress=False, deadline=time.monotonic(), workers=2)
    assert sorted(record["Ms"] for record in store.checkpoints().values()) == [[3, 8], [5, 12]]
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster:
        resumed = E.train_models(models, 0, store, progress=False, workers=2, scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            assert set(client.run(torch.get_num_threads).values()) == {1}
    assert store.checkpoints() == {}
    straight = E.train_models(models, 0, Store(tmp_path / "t"), progress=False, workers=2)
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in straight]


@pytest.mark.slow
def test_the_scaling_sweep_runs_each_setting_as_a_dask_task_and_resumes(tmp_path, monkeypatch, capsys):
    """--scaling with --workers 2: every (setting, seed) is a task of a LocalCluster; a run stopped
    by --minutes keeps each task's checkpoint, and the rerun finishes them and stores what a run
    read back here finds."""
    import memlab.experiments as E
    from memlab.sweep import main

    tiny = Profile("tiny", Setting(12, 3, 2), Protocol(steps=2000, n_dup=2, peak_lr=1e-2), seeds=(0,),
                   evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7, refine=2)
    monkeypatch.setitem(E.SWEEPS, "tiny", E.Sweep("tiny", tiny, ((Setting(12, 3, 2), (0,)), (Setting(10, 3, 2), (0,)))))
    assert main(["--scaling", "tiny", "--workers", "2", "--minutes", "1e-4", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("out of time") == 2
    assert len(Store(tmp_path / "tiny").checkpoints()) == 2
    assert main(["--scaling", "tiny", "--workers", "2", "--store", str(tmp_path)]) == 0
    finished = capsys.readouterr().out
    assert finished.count("transition: profile=tiny") == 2 and Store(tmp_path / "tiny").checkpoints() == {}
    for N in (12, 10):
        run = E.phase_transition(replace(tiny, setting=Setting(N, 3, 2)), 0, Store(tmp_path / "tiny"), progress=False,
                                 train_missing=False)
        assert f"setting=Setting(N={N}" in finished and f"M_pt={run['M_pt']} band={run['band']}" in finished


@pytest.mark.slow
def test_an_adaptive_sweep_runs_each_stage_as_dask_tasks_and_equals_the_serial_search(tmp_path, monkeypatch, capsys):
    """A sweep whose profile searches adaptively: each model of each stage is a Dask task, the next
    stage submitted when the last ends; stopped by --minutes and rerun, it trains the models the
    serial search trains, to the same numbers, and finds the same M_pt."""
    import memlab.experiments as E
    from memlab.grid import adaptive_search
    from memlab.sweep import main

    tiny = Profile("tiny", Setting(12, 3, 2), Protocol(steps=1000, n_dup=2, peak_lr=1e-2), seeds=(0,),
                   evaluation=EvalSpec(n_samples=8, n_noise=2), checkpoint_every=7, search="adaptive")
    settings = (Setting(12, 3, 2), Setting(10, 3, 2))
    monkeypatch.setitem(E.SWEEPS, "tiny", E.Sweep("tiny", tiny, tuple((s, (0,)) for s in settings)))
    assert main(["--scaling", "tiny", "--workers", "2", "--minutes", "1e-4", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("out of time") == 2
    assert main(["--scaling", "tiny", "--workers", "2", "--store", str(tmp_path)]) == 0
    finished = capsys.readouterr().out
    assert finished.count("transition: profile=tiny") == 2 and Store(tmp_path / "tiny").checkpoints() == {}
    for setting in settings:
        profile = replace(tiny, setting=setting)
        staged = E.phase_transition(profile, 0, Store(tmp_path / "tiny"), progress=False, train_missing=False)
        serial = E.phase_transition(profile, 0, Store(tmp_path / f"serial{setting.N}"), progress=False)
        assert [r["M"] for r in staged["records"]] == [r["M"] for r in serial["records"]]
        assert [r["train_loss"] for r in staged["records"]] == [r["train_loss"] for r in serial["records"]]
        ratios = {r["M"]: r["memorization"] for r in serial["records"]}
        assert adaptive_search(lambda Ms: [ratios[M] for M in Ms], setting.N)[0] == serial["M_pt"] == staged["M_pt"]
        assert f"setting=Setting(N={setting.N}" in finished and f"M_pt={staged['M_pt']}" in finished


def test_a_profile_names_a_bad_search():
    with pytest.raises(ValueError, match=r"search='bisect' must be one of \['grid', 'adaptive'\]"):
        replace(get_profile("ci"), search="bisect")
    with pytest.raises(ValueError, match="per_stage=0 must be a positive int"):
        replace(get_profile("ci"), per_stage=0)
