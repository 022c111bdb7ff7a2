"""Parallel sweeps: serial, local process pool and a Dask LocalCluster give the same results; errors are clear."""
from __future__ import annotations

import pandas as pd
import pytest

from mmgrec_lib.experiments import notebook_executor, run_sweep, sweep_generators

TINY_RECID = dict(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4, device="cpu")
TINY_GEN = dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu")


def _tasks(runs_dir) -> dict[str, dict]:
    base = {"dataset": "synthetic", "dataset_kwargs": {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0},
            "recid": TINY_RECID, "loop": {"epochs": 1, "patience": 0}, "runs_dir": str(runs_dir)}
    return {"relation": {**base, "generator": TINY_GEN},
            "sinusoidal": {**base, "generator": {**TINY_GEN, "attention": "sinusoidal"}},
            "memory": {**base, "generator": {**TINY_GEN, "user_memory": True}}}


RESULT = ["val_recall@10", "best_epoch", "test_recall@10", "test_ndcg@10", "test_recall@20", "recid_val_recall@10",
          "unique_semantic_frac"]


def test_local_pool_and_dask_cluster_equal_the_serial_sweep(tmp_path):
    distributed = pytest.importorskip("distributed")
    serial = sweep_generators(_tasks(tmp_path / "serial"), executor="serial", progress=False)
    assert list(serial["task"]) == ["relation", "sinusoidal", "memory"]
    assert serial["test_recall@10"].notna().all() and (serial["train_seconds"] >= 0).all()
    pool = sweep_generators(_tasks(tmp_path / "pool"), executor=None, progress=False)
    pd.testing.assert_frame_equal(serial[RESULT], pool[RESULT])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        dask = sweep_generators(_tasks(tmp_path / "dask"), executor=client, progress=False)
    pd.testing.assert_frame_equal(serial[RESULT], dask[RESULT])
    # finished runs are reused: a second serial sweep over the same folder trains nothing new
    again = sweep_generators(_tasks(tmp_path / "serial"), executor="serial", progress=False)
    assert again["recid_reused"].all()
    pd.testing.assert_frame_equal(serial[RESULT], again[RESULT])


def _boom(spec: dict) -> dict:
    if spec["x"] == 2:
        raise ValueError("x is two")
    return {"y": spec["x"] * 10}


def test_run_sweep_reports_the_failing_task_and_rejects_bad_arguments(capsys):
    table = run_sweep(_boom, {"a": {"x": 1}, "b": {"x": 3}}, executor="serial")
    assert list(table["y"]) == [10, 30]
    err = capsys.readouterr().err
    assert "[2/2] b: done" in err and "sweep: 2 task(s)" in err
    with pytest.raises(ValueError, match="x is two"):
        run_sweep(_boom, {"a": {"x": 2}}, executor="serial", progress=False)
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="task 'b' failed: x is two"):
        run_sweep(_boom, {"a": {"x": 1}, "b": {"x": 2}}, executor=pool, progress=False)
    with pytest.raises(TypeError, match="executor"):
        run_sweep(_boom, {"a": {"x": 1}}, executor=42)
    with pytest.raises(ValueError, match="no tasks"):
        run_sweep(_boom, {})
    with pytest.raises(ValueError, match="lacks"):
        sweep_generators({"t": {"dataset": "synthetic"}})


def test_notebook_executor_maps_the_parameter_and_rejects_others():
    assert notebook_executor("local") is None and notebook_executor("serial") == "serial"
    for bad in ("dask", "", None):
        with pytest.raises(ValueError, match="EXECUTOR must be 'local' or 'serial'"):
            notebook_executor(bad)


def test_ladder_tasks_land_on_the_ladders_run_keys(tmp_path):
    """Pre-training a ladder's rungs through a sweep: run_ladder then finds (reuses) exactly those runs."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import Rung, ladder_tasks, run_ladder
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    rc, gc = GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN)
    loop = LoopConfig(epochs=1, patience=0, monitor="recall@10", progress=False)
    rungs = [Rung("paper"), Rung("mem", generator={"user_memory": True})]
    swept = sweep_generators(ladder_tasks("synthetic", 0, rc, gc, loop, rungs, tmp_path, kwargs), executor="serial",
                             progress=False)
    table, runs, _ = run_ladder(load_dataset("synthetic", seed=0, **kwargs), rc, gc, loop, rungs, runs_dir=tmp_path,
                                greedy=False)
    assert [str(runs[n].checkpoint) for n in ("paper", "mem")] == list(swept["checkpoint"])
    assert list(table["val_recall@10"]) == list(swept["val_recall@10"])
    assert all(runs[n].fit.resumed_from > 0 for n in runs)                       # loaded, not retrained


def test_settled_rungs_are_those_no_keep_decision_changes():
    from mmgrec_lib.experiments import Rung, settled_rungs
    rungs = [Rung("paper"), Rung("a", generator={"user_memory": True}), Rung("b", generator={"dropout": 0.2}),
             Rung("on_paper", base="paper", generator={"dropout": 0.3}), Rung("on_b", base="b"),
             Rung("on_a", base="a"), Rung("on_on_paper", base="on_paper")]
    assert settled_rungs(rungs, greedy=False) == [r.name for r in rungs]
    # greedy: "b" goes on whatever "a"'s validation keeps, and so does everything built on "b"
    assert settled_rungs(rungs, greedy=True) == ["paper", "a", "on_paper", "on_a", "on_on_paper"]
    assert settled_rungs(rungs[:1], greedy=True) == ["paper"]


def test_greedy_ladder_tasks_land_on_the_greedy_ladders_run_keys(tmp_path):
    """A greedy ladder's settled rungs pre-trained through a sweep: run_ladder(greedy=True) reuses exactly those."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import Rung, ladder_tasks, run_ladder
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    rc, gc = GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN)
    loop = LoopConfig(epochs=1, patience=0, monitor="recall@10", progress=False)
    rungs = [Rung("paper"), Rung("mem", generator={"user_memory": True}), Rung("drop", generator={"dropout": 0.3}),
             Rung("side", base="paper", generator={"dropout": 0.2})]
    tasks = ladder_tasks("synthetic", 0, rc, gc, loop, rungs, tmp_path, kwargs, greedy=True)
    assert list(tasks) == ["paper", "mem", "side"]
    swept = sweep_generators(tasks, executor="serial", progress=False)
    _, runs, _ = run_ladder(load_dataset("synthetic", seed=0, **kwargs), rc, gc, loop, rungs, runs_dir=tmp_path,
                            greedy=True)
    assert [str(runs[n].checkpoint) for n in tasks] == list(swept["checkpoint"])
    assert all(runs[n].fit.resumed_from > 0 for n in tasks)                      # loaded, not retrained
    assert runs["drop"].fit.resumed_from == 0                                    # trained by the ladder itself


def test_notebook03_tasks_land_on_its_serial_run_keys(tmp_path):
    """Notebook 03's runs trained first through a sweep (main run, study variants, codebook-size sweep):
    its serial calls then load every one of them; a task that would train the same run as another appears once."""
    import dataclasses

    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import (codebook_size_sweep, generator_study_tasks, load_or_assign_recids,
                                        run_generator, run_generator_variants, study_variants)
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    rc, gc = GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN)
    loop = LoopConfig(epochs=1, patience=0, monitor="recall@10", progress=False)
    variants = {k: v for k, v in study_variants(False, 2).items() if k in ("base", "N = 20")}
    tasks = generator_study_tasks("synthetic", 0, rc, gc, loop, tmp_path, variants=variants, study_loop=loop,
                                  sizes=[4, 8])
    # the study's base and the sweep's L = 4 are the main run itself
    assert set(tasks) == {"main", "study: N = 20", "L = 8"}
    swept = sweep_generators({n: {**t, "dataset_kwargs": kwargs} for n, t in tasks.items()}, executor="serial",
                             progress=False)
    ds = load_dataset("synthetic", seed=0, **kwargs)
    recids, _, _ = load_or_assign_recids(ds, rc, runs_dir=tmp_path)
    runs = {"main": run_generator(ds, recids, gc, loop, runs_dir=tmp_path),
            **run_generator_variants(ds, recids, gc, variants, loop, runs_dir=tmp_path)}
    _, sweep_runs = codebook_size_sweep(ds, rc, gc, [4, 8], loop, runs_dir=tmp_path)
    loaded = {str(r.checkpoint) for r in [*runs.values(), *sweep_runs.values()]}
    assert loaded == set(swept["checkpoint"])
    assert all(r.fit.resumed_from > 0 for r in [*runs.values(), *sweep_runs.values()])     # loaded, not retrained
    assert dataclasses.replace(rc, codebook_size=8).to_dict() == tasks["L = 8"]["recid"]


def test_baseline_specs_land_on_run_baselines_keys(tmp_path):
    """Notebook 00's models trained first through a sweep: run_baselines then loads each of them."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import baseline_spec, baseline_task, run_baselines, run_sweep
    from mmgrec_lib.training import LoopConfig
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    loop = LoopConfig(epochs=2, patience=0, eval_every=1, monitor="recall@10")
    overrides = {"mf": {"dim": 8, "device": "cpu"}, "mostpop": {}}
    swept = run_sweep(baseline_task, {m: baseline_spec("synthetic", 0, m, c, loop, tmp_path, kwargs)
                                      for m, c in overrides.items()}, executor="serial", progress=False)
    runs = run_baselines(load_dataset("synthetic", seed=0, **kwargs), list(overrides), loop=loop, seed=0,
                         overrides=overrides, runs_dir=tmp_path)
    assert [str(runs[m].checkpoint) for m in overrides] == list(swept["checkpoint"])
    assert runs["mf"].fit.resumed_from > 0                                       # loaded, not retrained


def test_local_workers_follow_the_runner_budget(monkeypatch):
    from mmgrec_lib.experiments import local_workers
    monkeypatch.delenv("MMGREC_WORKERS", raising=False)
    assert local_workers(1) >= 1
    monkeypatch.setenv("MMGREC_WORKERS", "3")
    assert local_workers(1) == 3
    monkeypatch.setenv("MMGREC_WORKERS", "zero")
    with pytest.raises(ValueError, match="MMGREC_WORKERS='zero'"):
        local_workers(1)


def test_tune_baseline_chooses_on_validation_and_reuses_runs(tmp_path, capsys):
    from mmgrec_lib.experiments import grid_points, tune_baseline
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="non-empty list"):
        grid_points({"a": []})
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    loop = {"epochs": 4, "patience": 0, "eval_every": 2}
    table, chosen = tune_baseline("synthetic", "mf", {"lr": [0.001, 0.05]}, loop, tmp_path,
                                  base={"dim": 8, "batch_size": 64, "device": "cpu"}, dataset_kwargs=kwargs,
                                  executor="serial", progress=False)
    assert list(table["lr"]) == [0.001, 0.05] and table["chosen"].sum() == 1
    best = table.loc[table["chosen"]].iloc[0]
    assert best["val_recall@10"] == table["val_recall@10"].max() and chosen["lr"] == best["lr"]
    assert chosen["dim"] == 8
    again, _ = tune_baseline("synthetic", "mf", {"lr": [0.001, 0.05]}, loop, tmp_path,
                             base={"dim": 8, "batch_size": 64, "device": "cpu"}, dataset_kwargs=kwargs,
                             executor="serial", progress=False)
    assert list(again["val_recall@10"]) == list(table["val_recall@10"])
    with pytest.raises(ValueError, match="unknown config field"):
        tune_baseline("synthetic", "mf", {"bogus": [1]}, loop, tmp_path, executor="serial")
    with pytest.raises(ValueError, match="unknown baseline"):
        tune_baseline("synthetic", "nope", {"lr": [1]}, loop, tmp_path, executor="serial")


def test_seed_runs_and_table_mean_std_and_p_values(tmp_path):
    from mmgrec_lib.experiments import seed_runs, seed_table
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    loop = LoopConfig(epochs=1, patience=0, progress=False)
    per_seed = seed_runs("synthetic", [0, 1], GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN),
                         loop, LoopConfig(epochs=2, patience=0, progress=False),
                         {"lightgcn": {"dim": 8, "device": "cpu"}}, runs_dir=tmp_path)
    assert sorted(per_seed) == [0, 1] and set(per_seed[0]) == {"mmgrec", "lightgcn"}
    assert per_seed[0]["mmgrec"].test.per_user.index.tolist() != per_seed[1]["mmgrec"].test.per_user.index.tolist() \
        or per_seed[0]["mmgrec"].test["recall@10"] != per_seed[1]["mmgrec"].test["recall@10"]   # another split
    table = seed_table(per_seed)
    mm = table.set_index("model").loc["mmgrec"]
    vals = [per_seed[s]["mmgrec"].test["ndcg@10"] for s in (0, 1)]
    assert mm["ndcg@10_mean"] == pytest.approx(sum(vals) / 2) and mm["seeds"] == 2
    assert mm["ndcg@10_std"] == pytest.approx(pd.Series(vals).std())
    assert 0 <= mm["p_ndcg@10_users_max"] <= 1
    assert table.set_index("model").loc["lightgcn"].isna()["p_ndcg@10_seeds"]
    with pytest.raises(ValueError, match="reference"):
        seed_table(per_seed, reference="mf")
    # extras: mean / std over the seeds that know the number, and how many those are
    per_seed[0]["mmgrec"].test.extra["coverage@10"] = 0.25
    per_seed[1]["mmgrec"].test.extra["coverage@10"] = 0.75
    per_seed[0]["lightgcn"].test.extra["coverage@10"] = 0.5                  # seed 1's lightgcn: not known
    extra = seed_table(per_seed, extras=("coverage@10",)).set_index("model")
    assert extra.loc["mmgrec", "coverage@10_mean"] == pytest.approx(0.5) and extra.loc["mmgrec", "coverage@10_seeds"] == 2
    assert extra.loc["mmgrec", "coverage@10_std"] == pytest.approx(pd.Series([0.25, 0.75]).std())
    assert extra.loc["lightgcn", "coverage@10_mean"] == 0.5 and extra.loc["lightgcn", "coverage@10_seeds"] == 1
    assert pd.isna(extra.loc["lightgcn", "coverage@10_std"])


def test_built_chain_follows_the_tables_built_on_column_not_the_rung_order():
    from mmgrec_lib.experiments import Rung, built_chain, ladder_bases, rung_configs
    rungs = [Rung("paper"), Rung("two_stage", recid={"schedule": "two_stage"}),
             Rung("user_memory", generator={"user_memory": True}),
             Rung("lever", base="user_memory", generator={"logit_adjust": 0.5})]
    # a greedy run that did not keep two_stage: user_memory went on top of paper
    table = pd.DataFrame({"rung": ["paper", "two_stage", "user_memory", "lever", "lightgcn"],
                          "built_on": ["", "paper", "paper", "user_memory", None]})
    chain = built_chain(rungs, table, "lever")
    assert [r.name for r in chain] == ["paper", "user_memory", "lever"] and not any(r.base for r in chain)
    bases = ladder_bases(8, 1, 1, False, 1, 0, 1)
    rc, gc, _ = rung_configs(*bases, chain)[-1]
    assert rc.schedule == "alternate" and gc.model.user_memory and gc.train.logit_adjust == 0.5
    # the plain cumulative reading would have carried two_stage along
    assert rung_configs(*bases, rungs[:3])[-1][0].schedule == "two_stage"
    with pytest.raises(KeyError, match="not in the ladder table"):
        built_chain(rungs, table, "missing")
    with pytest.raises(KeyError, match="not in the given ladder"):
        built_chain(rungs[2:], table, "user_memory")


def test_profile_rung_config_builds_a_committed_rung_from_a_profile_entry():
    """Scripts that retrain a committed rung read notebook 09's profile entry: its base parameters through
    ``profile_bases`` (the same as ``ladder_bases`` with them) and the rung's chain from the table."""
    from mmgrec_lib.experiments import LADDER_BASE_PARAMS, built_chain, ladder_bases, profile_bases, \
        profile_rung_config, rung_configs, Rung
    ladder = [{"name": "paper"}, {"name": "two_stage", "recid": {"schedule": "two_stage"}},
              {"name": "user_memory", "generator": {"user_memory": True}},
              {"name": "lever", "base": "user_memory", "generator": {"logit_adjust": 0.5}}]
    profile = {"DATASET": "x", "CODEBOOK_SIZE": 8, "RECID_EPOCHS": 1, "RECID_RQ_EPOCHS": 2, "FINETUNE_ITEM_EMB": True,
               "EPOCHS": 3, "PATIENCE": 0, "EVAL_EVERY": 1, "LADDER": ladder}
    table = pd.DataFrame({"rung": ["paper", "two_stage", "user_memory", "lever"],
                          "built_on": ["", "paper", "paper", "user_memory"]})
    bases = ladder_bases(8, 1, 2, True, 3, 0, 1)
    assert profile_bases(profile) == bases
    rc, gc, lp = profile_rung_config(profile, "lever", table)
    want = rung_configs(*bases, built_chain([Rung.from_dict(r) for r in ladder], table, "lever"))[-1]
    assert (rc, gc.key_settings(), lp) == (want[0], want[1].key_settings(), want[2])
    assert rc.schedule == "alternate" and gc.model.user_memory and gc.train.logit_adjust == 0.5 and lp.epochs == 3
    with pytest.raises(KeyError, match="EVAL_EVERY"):
        profile_bases({k: profile[k] for k in LADDER_BASE_PARAMS[:-1]})


def _same_run(a, b) -> None:
    """Two generator checkpoints hold the same run: weights, optimiser, best weights and history (times aside)."""
    import torch
    sa, sb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    for key in ("model", "best_model"):
        assert sa[key].keys() == sb[key].keys()
        assert all(torch.equal(sa[key][k], sb[key][k]) for k in sa[key] if torch.is_tensor(sa[key][k]))
    strip = lambda h: [{k: v for k, v in row.items() if not k.endswith("_s")} for row in h]    # noqa: E731
    assert strip(sa["history"]) == strip(sb["history"])
    assert (sa["epoch"], sa["best_epoch"], sa["best_score"], sa["stopped_early"]) == \
           (sb["epoch"], sb["best_epoch"], sb["best_score"], sb["stopped_early"])


@pytest.mark.parametrize("patience", [0, 1])
def test_notebook03_main_run_continues_from_its_study_base(tmp_path, patience):
    """When notebook 03's study budget is a prefix of the main run's (same loop but fewer epochs, validated
    alike), the main task trains the study's base first and continues from it: both runs equal their
    from-scratch runs bit for bit (patience 1 stops the runs early on this data), and the notebook's serial
    calls load them."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import (generator_study_tasks, load_or_assign_recids, run_generator,
                                        run_generator_variants)
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    kwargs = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
    rc, gc = GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN)
    loop = LoopConfig(epochs=5, patience=patience, eval_every=1, monitor="recall@10", progress=False)
    study_loop = LoopConfig(epochs=2, patience=patience, eval_every=1, monitor="recall@10", progress=False)
    variants = {"base": {}, "N = 20": {"max_len": 20}}
    tasks = generator_study_tasks("synthetic", 0, rc, gc, loop, tmp_path / "chained", variants=variants,
                                  study_loop=study_loop)
    assert list(tasks) == ["main", "study: N = 20"]                     # the base is trained by the main task
    assert tasks["main"]["prefix_loop"]["epochs"] == 2
    swept = sweep_generators({n: {**t, "dataset_kwargs": kwargs} for n, t in tasks.items()}, executor="serial",
                             progress=False)
    ds = load_dataset("synthetic", seed=0, **kwargs)
    recids, _, _ = load_or_assign_recids(ds, rc, runs_dir=tmp_path / "chained")
    main = run_generator(ds, recids, gc, loop, runs_dir=tmp_path / "chained")
    study = run_generator_variants(ds, recids, gc, variants, study_loop, runs_dir=tmp_path / "chained")
    assert str(main.checkpoint) == swept.loc[swept["task"] == "main", "checkpoint"].item()
    assert main.fit.resumed_from > 0 and all(r.fit.resumed_from > 0 for r in study.values())   # loaded
    import torch
    seconds = [torch.load(r.checkpoint, weights_only=False)["epoch_seconds"] for r in (main, study["base"])]
    assert seconds[0][:len(seconds[1])] == seconds[1]           # the main run's first epochs are the base's own
    # the same runs trained from scratch, one by one
    recids2, _, _ = load_or_assign_recids(ds, rc, runs_dir=tmp_path / "alone")
    alone_main = run_generator(ds, recids2, gc, loop, runs_dir=tmp_path / "alone")
    alone_base = run_generator(ds, recids2, gc, study_loop, runs_dir=tmp_path / "alone")
    _same_run(main.checkpoint, alone_main.checkpoint)
    _same_run(study["base"].checkpoint, alone_base.checkpoint)
    assert main.test.mean() == alone_main.test.mean()


def test_prefix_loops_must_validate_alike(tmp_path):
    from mmgrec_lib.experiments import generator_study_tasks
    from mmgrec_lib.experiments.runs import is_prefix_loop
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    long = LoopConfig(epochs=60, patience=5, eval_every=2)
    assert is_prefix_loop(LoopConfig(epochs=16, patience=5, eval_every=2), long)
    assert not is_prefix_loop(LoopConfig(epochs=15, patience=5, eval_every=2), long)     # 15 is not validated
    assert not is_prefix_loop(LoopConfig(epochs=16, patience=5, eval_every=1), long)     # other validations
    assert not is_prefix_loop(LoopConfig(epochs=16, patience=4, eval_every=2), long)
    assert not is_prefix_loop(LoopConfig(epochs=60, patience=5, eval_every=2), long)     # not shorter
    assert not is_prefix_loop(LoopConfig(epochs=16, patience=5, eval_every=2), long, eval_every=3)
    # TikTok's profile: the main run validates every epoch, the study every second one: no chaining
    rc, gc = GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN)
    tasks = generator_study_tasks("synthetic", 0, rc, gc, LoopConfig(epochs=30, eval_every=1), tmp_path,
                                  variants={"base": {}}, study_loop=LoopConfig(epochs=8, eval_every=2))
    assert set(tasks) == {"main", "study: base"} and "prefix_loop" not in tasks["main"]


def test_run_generator_rejects_a_start_that_is_not_a_prefix(tmp_path):
    from mmgrec_lib.experiments import run_generator
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.training import LoopConfig
    with pytest.raises(ValueError, match="start_from"):
        run_generator(None, None, GeneratorConfig.from_dict(TINY_GEN), LoopConfig(epochs=4, eval_every=2),
                      runs_dir=tmp_path, start_from=LoopConfig(epochs=3, eval_every=2))


def _timed_job(spec: dict) -> dict:
    import time
    start = time.monotonic()
    if spec.get("fail"):
        raise RuntimeError("boom")
    time.sleep(spec["sleep"])
    return {"start": start, "end": time.monotonic()}


def test_run_after_starts_a_job_when_its_own_needs_are_done():
    """A job waits for the jobs it needs only: ``c`` (needs the quick ``b``) starts while the slow ``a`` still runs;
    ``d`` (needs ``a``) after ``a``. Serially, the jobs run in their order."""
    import concurrent.futures as cf

    from mmgrec_lib.experiments import run_after
    jobs = {"a": (_timed_job, {"sleep": 0.6}, ()), "b": (_timed_job, {"sleep": 0.0}, ()),
            "c": (_timed_job, {"sleep": 0.0}, ("b",)), "d": (_timed_job, {"sleep": 0.0}, ("a",))}
    with cf.ThreadPoolExecutor(2) as pool:
        rows = run_after(jobs, executor=pool, progress=False)
    assert set(rows) == set(jobs)
    assert rows["c"]["start"] >= rows["b"]["end"] and rows["c"]["start"] < rows["a"]["end"]
    assert rows["d"]["start"] >= rows["a"]["end"]
    serial = run_after(jobs, executor="serial", progress=False)
    starts = [serial[n]["start"] for n in jobs]
    assert starts == sorted(starts)


def test_run_after_names_a_failing_job_and_rejects_bad_needs():
    import concurrent.futures as cf

    from mmgrec_lib.experiments import run_after
    with pytest.raises(ValueError, match="'b' needs \\['c'\\]"):
        run_after({"b": (_timed_job, {"sleep": 0}, ("c",)), "c": (_timed_job, {"sleep": 0}, ())}, "serial")
    with pytest.raises(TypeError, match="'x'"):
        run_after({"x": (None, {}, ())}, "serial")
    with cf.ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="'bad' failed: boom"):
        run_after({"ok": (_timed_job, {"sleep": 0}, ()), "bad": (_timed_job, {"fail": True}, ("ok",))}, pool,
                  progress=False)
