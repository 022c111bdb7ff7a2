"""Experiment helpers: reused runs report the training time they really took."""
import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _fixtures import make_tiny_dataset
from mmgrec_lib.experiments.runs import run_baselines, training_seconds
from mmgrec_lib.training import FitResult, LoopConfig


def test_reused_run_reports_original_training_time(tmp_path):
    ds = make_tiny_dataset()
    loop = LoopConfig(epochs=3, patience=0, progress=False)
    first = run_baselines(ds, ["mf"], loop=loop, runs_dir=tmp_path, overrides={"mf": {"device": "cpu"}})["mf"]
    again = run_baselines(ds, ["mf"], loop=loop, runs_dir=tmp_path, overrides={"mf": {"device": "cpu"}})["mf"]
    assert again.fit.resumed_from == 3 and len(again.fit.epoch_seconds) == 3
    assert again.train_seconds == sum(first.fit.epoch_seconds)
    assert again.test.mean() == first.test.mean()


def test_training_seconds_unknown_for_old_checkpoints():
    old = FitResult(history=[{"epoch": 1}], best_epoch=1, best_score=0.0, stopped_early=False, resumed_from=1)
    assert math.isnan(training_seconds(old, 0.1))
    fresh = FitResult(history=[{"epoch": 1}], best_epoch=1, best_score=0.0, stopped_early=False, resumed_from=0)
    assert training_seconds(fresh, 2.5) == 2.5


def test_generator_variants_change_config_and_loop_fields(monkeypatch):
    from mmgrec_lib.experiments import runs as experiments
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.training import LoopConfig

    seen = []

    def fake_run_generator(dataset, recid_run, config, loop, runs_dir=None, ks=(10, 20)):
        seen.append((config, loop))
        return config.model.max_len

    base = GeneratorConfig.from_dict(device="cpu")
    monkeypatch.setattr(experiments, "run_generator", fake_run_generator)
    out = experiments.run_generator_variants(None, None, base, {"base": {}, "n20": {"max_len": 20, "epochs": 3}},
                                             LoopConfig(epochs=9, progress=False))
    assert out == {"base": 50, "n20": 20}
    assert seen[0] == (base, LoopConfig(epochs=9, progress=False))
    assert seen[1][0] == base.replace(max_len=20) and seen[1][1].epochs == 3
    with pytest.raises(TypeError, match="unknown parameter"):
        experiments.run_generator_variants(None, None, base, {"x": {"layers": 3}})


def test_codebook_size_sweep_chooses_best_generator_validation_smallest_on_ties(monkeypatch):
    from types import SimpleNamespace

    from mmgrec_lib.experiments import runs as experiments
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig

    val = {16: 0.2, 32: 0.3, 64: 0.3}
    monkeypatch.setattr(experiments, "load_or_assign_recids", lambda ds, rc, runs_dir=None, progress=True: (
        SimpleNamespace(L=rc.codebook_size, stats={"unique_semantic_frac": rc.codebook_size / 100,
                                                   "val_recall@10": 0.1}), None, True))

    def fake_run_generator(dataset, recids, config, loop, runs_dir=None, ks=(10, 20)):
        test = SimpleNamespace(mean=lambda: {"recall@10": 1.0 - val[recids.L], "ndcg@10": 0.0})
        return SimpleNamespace(fit=SimpleNamespace(best_score=val[recids.L], best_epoch=1), test=test)

    monkeypatch.setattr(experiments, "run_generator", fake_run_generator)
    df, runs = experiments.codebook_size_sweep(None, GraphRQVAEConfig(), None, [64, 16, 32])
    assert df["codebook_size"].tolist() == [16, 32, 64] and sorted(runs) == [16, 32, 64]
    assert df["chosen"].tolist() == [False, True, False]         # best validation; the smaller of the tie
    assert df["test_recall@10"].tolist() == [0.8, 0.7, 0.7]      # reported, not used for the choice
    with pytest.raises(ValueError, match="no codebook sizes"):
        experiments.codebook_size_sweep(None, GraphRQVAEConfig(), None, [])


# ---------------------------------------------------------------------- accuracy ladder (issue 11)
def test_ladder_rungs_are_cumulative_and_checked():
    from mmgrec_lib.experiments import Rung, rung_configs
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    rungs = [Rung("a"), Rung("b", recid={"schedule": "two_stage"}), Rung("c", generator={"user_memory": True, "epochs": 3})]
    cfgs = rung_configs(GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(epochs=1), rungs)
    assert [c[0].schedule for c in cfgs] == ["alternate", "two_stage", "two_stage"]
    assert [c[1].model.user_memory for c in cfgs] == [False, False, True]
    assert [c[2].epochs for c in cfgs] == [1, 1, 3]
    with pytest.raises(TypeError, match="bogus"):
        rung_configs(GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(), [Rung("x", recid={"bogus": 1})])
    with pytest.raises(ValueError, match="unique"):
        rung_configs(GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(), [Rung("x"), Rung("x")])
    with pytest.raises(TypeError):
        Rung.from_dict({"name": "x", "recids": {}})


def test_ladder_bases_set_only_the_ladders_parameters():
    """Scripts that train a rung outside notebook 09 get its run keys from ``ladder_bases``: the named fields set,
    every other field at its default."""
    from mmgrec_lib.experiments import ladder_bases
    from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    rc, gc, lp = ladder_bases(128, 60, 200, True, 60, 5, 2, targets_per_input=4, seed=3, device="cpu")
    assert rc == GraphRQVAEConfig(codebook_size=128, epochs=60, rq_epochs=200, seed=3, device="cpu")
    assert gc.key_settings() == GeneratorConfig(model=ModelConfig(finetune_item_emb=True), train=TrainConfig(
        targets_per_input=4, seed=3, device="cpu")).key_settings()
    assert lp == LoopConfig(epochs=60, patience=5, eval_every=2, monitor="recall@10")


def test_a_rung_can_build_on_a_named_earlier_rung():
    """``base``: the rung's changes go on top of that rung's configuration; the rungs after it continue from
    the row above it, as if it were not there; an unknown or later name is refused before anything trains."""
    from mmgrec_lib.experiments import Rung, rung_configs
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    rungs = [Rung("a"), Rung("b", recid={"schedule": "two_stage"}), Rung("c", recid={"encoder": "lightgcn"}),
             Rung.from_dict({"name": "d", "base": "b", "generator": {"distill_weight": 1.0}}),
             Rung("e", generator={"user_memory": True})]
    cfgs = rung_configs(GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(epochs=1), rungs)
    assert [c[0].encoder for c in cfgs] == ["sage", "sage", "lightgcn", "sage", "lightgcn"]
    assert [c[0].schedule for c in cfgs] == ["alternate", "two_stage", "two_stage", "two_stage", "two_stage"]
    assert [c[1].train.distill_weight for c in cfgs] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert [c[1].model.user_memory for c in cfgs] == [False, False, False, False, True]
    with pytest.raises(ValueError, match="not an earlier rung"):
        rung_configs(GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(), [Rung("a", base="b"), Rung("b")])


def test_a_training_budget_goes_on_top_of_the_chosen_rung():
    """``with_budget``: an empty budget is the rung itself (the same configs, so the same run keys); a budget's
    generator and loop fields go on top of everything the rung changes; an unknown field or a budget that is not a
    mapping is refused before anything trains."""
    from mmgrec_lib.experiments import Rung, rung_configs, with_budget
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    bases = GraphRQVAEConfig(), GeneratorConfig(), LoopConfig(epochs=60, patience=5)
    rung = Rung("w3", recid={"schedule": "two_stage"}, generator={"distill_weight": 3.0})
    assert with_budget(rung, {}) == [rung]
    plain = rung_configs(*bases, [rung])[-1]
    budget = {"lr": 2e-3, "lr_schedule": "cosine", "schedule_epochs": 28, "epochs": 28, "user_sample_cap": 64}
    rungs = with_budget(rung, budget)
    assert [r.name for r in rungs] == ["w3", "w3+budget"] and not rungs[1].base
    rc, gc, lp = rung_configs(*bases, rungs)[-1]
    assert rc == plain[0]                                                   # the Rec-ID run is the rung's
    assert gc.train.distill_weight == 3.0                                   # the rung's changes stay
    assert (gc.train.lr, gc.train.lr_schedule, gc.train.schedule_epochs, gc.train.user_sample_cap) == \
        (2e-3, "cosine", 28, 64)
    assert (lp.epochs, lp.patience) == (28, 5)                              # a loop field; the others stay
    assert gc.replace(lr=1e-3, lr_schedule="constant", schedule_epochs=0, user_sample_cap=0).key_settings() == \
        plain[1].key_settings()                                             # nothing else changed
    with pytest.raises(TypeError, match="bogus"):
        rung_configs(*bases, with_budget(rung, {"bogus": 1}))
    with pytest.raises(TypeError, match="mapping"):
        with_budget(rung, [("epochs", 28)])


def test_run_ladder_tabulates_every_rung_and_reuses_runs(tmp_path):
    from mmgrec_lib.experiments import Rung, run_baselines, run_ladder
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rc = GraphRQVAEConfig(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4,
                          device="cpu")
    gc = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu"))
    loop = LoopConfig(epochs=1, patience=0, progress=False)
    rungs = [Rung("paper"), Rung("lgc", recid={"encoder": "lightgcn", "schedule": "two_stage"}),
             Rung("mem", generator={"user_memory": True})]
    ref = run_baselines(ds, ["mostpop"], loop=loop, runs_dir=tmp_path)["mostpop"]
    table, runs, configs = run_ladder(ds, rc, gc, loop, rungs, runs_dir=tmp_path, reference=ref,
                                      reference_name="mostpop", greedy=False)
    assert list(table["rung"]) == ["paper", "lgc", "mem", "mostpop"]
    assert list(table["built_on"]) == ["", "paper", "lgc", ""] and table["kept"].iloc[:3].all()
    assert "best validation rung" in table["note"].iloc[3]
    assert configs["mem"][0].encoder == "lightgcn" and configs["mem"][1].model.user_memory
    assert np.isnan(table["p_ndcg@10_vs_base"].iloc[0]) and table["p_ndcg@10_vs_base"].iloc[1:].notna().all()
    assert table["coverage@10"].between(0, 1).all() and table["test_recall@20"].notna().all()
    assert set(runs) == {"paper", "lgc", "mem"}
    from mmgrec_lib.experiments import hybrid_rung, load_or_assign_recids
    recids, _, _ = load_or_assign_recids(ds, dataclasses.replace(rc, encoder="lightgcn", schedule="two_stage"),
                                         runs_dir=tmp_path)
    row, weights = hybrid_rung(ds, runs["mem"], recids, weights=(0.0, 1.0), beam=20)
    assert row["rung"] == "hybrid_rerank" and 0 <= row["coverage@10"] <= 1 and weights["chosen"].sum() == 1
    # popularity-corrected decoding: every rung x weight on validation, the best pair tested once
    from mmgrec_lib.experiments import prior_rung
    row, sweep = prior_rung(ds, runs, weights=(0.0, 0.5), beam=20)
    assert list(sweep["rung"]) == ["paper", "paper", "lgc", "lgc", "mem", "mem"] and sweep["chosen"].sum() == 1
    pick = sweep[sweep["chosen"]].iloc[0]
    assert pick["val_recall@10"] == sweep["val_recall@10"].max() == row["val_recall@10"]
    assert row["rung"] == "prior_decoding" and row["built_on"] == pick["rung"] and f"beta = {pick['weight']:g}" in row["note"]
    assert 0 <= row["coverage@10"] <= 1 and sweep["val_coverage@10"].between(0, 1).all()
    # weight 0 is each rung's own decoding: its validation Recall@10 is the run's best validation score
    for name, run in runs.items():
        own = sweep[(sweep["rung"] == name) & (sweep["weight"] == 0.0)]["val_recall@10"].iloc[0]
        assert own == pytest.approx(run.fit.best_score, abs=1e-12), name
    # the validation sweep is cached beside each checkpoint: a rerun decodes no validation list again
    from mmgrec_lib.experiments import debias
    calls = []
    real = debias.prior_evaluate
    def counting(model, dataset, split, *a, **k):
        calls.append(split)
        return real(model, dataset, split, *a, **k)
    debias.prior_evaluate = counting
    try:
        row2, sweep2 = prior_rung(ds, runs, weights=(0.0, 0.5), beam=20)
    finally:
        debias.prior_evaluate = real
    assert calls == ["test"]                                       # only the chosen pair's test read
    pd.testing.assert_frame_equal(sweep, sweep2)
    from mmgrec_lib.experiments.decode_cache import cache_path
    assert all(cache_path(r.checkpoint).is_file() for r in runs.values())  # the validation rows kept beside each run
    # a coverage floor, declared before test: only pairs whose validation coverage reaches it can be chosen
    floor = float(sweep["val_coverage@10"].median())
    row3, sweep3 = prior_rung(ds, runs, weights=(0.0, 0.5), beam=20, min_coverage=floor)
    assert (sweep3["meets_coverage"] == (sweep3["val_coverage@10"] >= floor)).all()
    pick3 = sweep3[sweep3["chosen"]].iloc[0]
    assert pick3["meets_coverage"] and pick3["val_recall@10"] == sweep3[sweep3["meets_coverage"]]["val_recall@10"].max()
    assert "coverage@10 >=" in row3["note"] and row3["built_on"] == pick3["rung"]
    row4, sweep4 = prior_rung(ds, runs, weights=(0.0, 0.5), beam=20, min_coverage=1.0)   # nobody covers everything
    assert not sweep4["meets_coverage"].any() and "no pair reached" in row4["note"]
    assert sweep4[sweep4["chosen"]].index[0] == sweep[sweep["chosen"]].index[0]
    with pytest.raises(ValueError, match="min_coverage"):
        prior_rung(ds, runs, weights=(0.0,), min_coverage=1.5)
    # the reference's validation coverage: its lists hold no training item, one row per validation user
    from mmgrec_lib.experiments import split_lists, validation_coverage
    lists = split_lists(ref.model, ds, "val", k=10)
    val_users = np.unique(ds.val.nonzero()[0])
    assert lists.shape == (len(val_users), 10)
    train = ds.train.tocsr()
    assert not any(train[u, i] for u, row_ in zip(val_users, lists.tolist()) for i in row_ if i >= 0)
    assert validation_coverage(ref.model, ds) == pytest.approx(len(np.unique(lists[lists >= 0])) / ds.n_items)
    # the rungs as sweep tasks (test_sweep.py checks that a sweep over them lands on the ladder's run keys)
    from mmgrec_lib.experiments import ladder_tasks
    tasks = ladder_tasks("synthetic", 0, rc, gc, loop, rungs, tmp_path, dataset_kwargs={"n_users": 30})
    assert set(tasks) == {"paper", "lgc", "mem"} and tasks["mem"]["generator"]["user_memory"] is True
    again, _, _ = run_ladder(ds, rc, gc, loop, rungs, runs_dir=tmp_path, reference=ref, reference_name="mostpop",
                             greedy=False)
    # a side rung on a named earlier rung: built on it, paired with it, never the base of later rows
    side = rungs[:2] + [Rung("side", base="paper", generator={"user_memory": True})] + rungs[2:]
    t2, runs2, configs2 = run_ladder(ds, rc, gc, loop, side, runs_dir=tmp_path, greedy=False)
    assert list(t2["built_on"]) == ["", "paper", "paper", "lgc"] and list(t2["kept"]) == [True, True, False, True]
    assert configs2["side"][0].encoder == "sage" and configs2["side"][1].model.user_memory
    assert runs2["mem"].checkpoint == runs["mem"].checkpoint                     # "mem" still builds on "lgc"
    cols = [c for c in table if "seconds" not in c]
    pd.testing.assert_frame_equal(table[cols], again[cols])


def test_greedy_ladder_keeps_only_rungs_that_validate_at_least_as_well(tmp_path):
    from mmgrec_lib.experiments import Rung, run_ladder
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    ds = make_tiny_dataset(n_users=30, n_items=40, per_user=10)
    rc = GraphRQVAEConfig(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4,
                          device="cpu")
    gc = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu"))
    rungs = [Rung("paper"), Rung("frozen", generator={"lr": 1e-9}), Rung("lgc", recid={"encoder": "lightgcn"}),
             Rung("mem", generator={"user_memory": True})]
    table, _, configs = run_ladder(ds, rc, gc, LoopConfig(epochs=2, patience=0, progress=False), rungs,
                                   runs_dir=tmp_path)
    best, kept_name, kept_cfg = float("-inf"), None, None
    for n, row in table.iterrows():
        assert row["built_on"] == (kept_name or "")
        rc_n, gc_n, _ = configs[row["rung"]]
        if kept_cfg is not None:                       # built on the kept configuration, plus this rung's changes
            assert (gc_n.train.lr == 1e-9) == (row["rung"] == "frozen" or (kept_cfg[1].train.lr == 1e-9))
            assert (rc_n.encoder == "lightgcn") == (row["rung"] == "lgc" or kept_cfg[0].encoder == "lightgcn")
        assert row["kept"] == (n == 0 or row["val_recall@10"] >= best)
        if row["kept"]:
            best, kept_name, kept_cfg = max(best, row["val_recall@10"]), row["rung"], configs[row["rung"]]


def test_notebook_09_profiles_build_their_rungs():
    """Every LADDER entry of notebook 09's profiles is a valid rung (YAML 1.1 turns a key ``on`` into True: such
    a slip must fail here, not in the batch run)."""
    import yaml
    from pathlib import Path
    from mmgrec_lib.experiments import Rung, rung_configs
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig
    profiles = yaml.safe_load((Path(__file__).parents[1] / "notebooks" / "09_accuracy_ladder.yaml").read_text())
    entries = [e for runs in profiles.values() for e in runs if "LADDER" in e]
    assert entries
    for entry in entries:
        rungs = [Rung.from_dict(r) for r in entry["LADDER"]]
        gen = GeneratorConfig.from_dict({"targets_per_input": 8})                  # the notebook's base
        assert len(rung_configs(GraphRQVAEConfig(), gen, LoopConfig(), rungs)) == len(rungs)


def test_longer_patience_continues_the_shorter_run_exactly(tmp_path):
    """A run asked with patience 6 starts from the finished patience-1 run (which stopped early) and ends
    exactly where a fresh patience-6 run ends: same history, best epoch, weights and test metrics."""
    import torch

    ds = make_tiny_dataset()
    over = {"mf": {"device": "cpu", "lr": 0.05}}
    short = LoopConfig(epochs=40, patience=1, eval_every=1, progress=False)
    long = dataclasses.replace(short, patience=6)
    first = run_baselines(ds, ["mf"], loop=short, runs_dir=tmp_path / "shared", overrides=over)["mf"]
    assert first.fit.stopped_early and len(first.fit.history) < 40          # the short run did stop early
    extended = run_baselines(ds, ["mf"], loop=long, runs_dir=tmp_path / "shared", overrides=over)["mf"]
    fresh = run_baselines(ds, ["mf"], loop=long, runs_dir=tmp_path / "fresh", overrides=over)["mf"]
    assert extended.fit.resumed_from == len(first.fit.history) > 0             # it did start from the short run
    assert fresh.fit.resumed_from == 0
    assert len(extended.fit.history) > len(first.fit.history)
    assert extended.fit.history == fresh.fit.history
    assert (extended.fit.best_epoch, extended.fit.best_score) == (fresh.fit.best_epoch, fresh.fit.best_score)
    for (k, a), b in zip(extended.model.state_dict().items(), fresh.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert extended.test.mean() == fresh.test.mean()
    assert len(extended.fit.epoch_seconds) == len(extended.fit.history)     # time of the whole run, both parts


def test_extend_epochs_needs_a_finished_source_and_keeps_an_early_stop(tmp_path):
    import torch

    from mmgrec_lib.training import extend_epochs
    from mmgrec_lib.utils import CheckpointError, atomic_save

    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        extend_epochs(tmp_path / "nothing.pt", tmp_path / "target.pt")
    state = {"model": {}, "optimizer": {}, "generator": torch.Generator().get_state(), "history": [], "epoch": 2,
             "best_score": 0.1, "best_epoch": 2, "bad": 0, "best_model": {}, "finished": False,
             "stopped_early": False}
    atomic_save(state, tmp_path / "running.pt")
    with pytest.raises(CheckpointError, match="running.pt.*not finished"):
        extend_epochs(tmp_path / "running.pt", tmp_path / "target.pt")
    atomic_save({**state, "finished": True}, tmp_path / "ran_out.pt")
    extended = torch.load(extend_epochs(tmp_path / "ran_out.pt", tmp_path / "a.pt"), weights_only=False)
    assert not extended["finished"] and extended["extended_from"] == "ran_out.pt"
    atomic_save({**state, "finished": True, "stopped_early": True}, tmp_path / "stopped.pt")
    extended = torch.load(extend_epochs(tmp_path / "stopped.pt", tmp_path / "b.pt"), weights_only=False)
    assert extended["finished"] and extended["stopped_early"]              # the longer run stops there too
    with pytest.raises(FileExistsError, match="b.pt"):
        extend_epochs(tmp_path / "stopped.pt", tmp_path / "b.pt")


def test_extend_patience_refuses_to_overwrite_and_names_a_missing_source(tmp_path):
    from mmgrec_lib.training import extend_patience
    from mmgrec_lib.utils import CheckpointError

    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        extend_patience(tmp_path / "nothing.pt", tmp_path / "target.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        extend_patience(tmp_path / "junk.pt", tmp_path / "target.pt")
    (tmp_path / "target.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="target.pt"):
        extend_patience(tmp_path / "nothing.pt", tmp_path / "target.pt")
