"""The overall comparison (notebook 04, Table 2): aggregation over seeds, the strongest baseline, improvement,
p-values, Markdown marking, the tuned settings of notebook 10 and the run keys shared with notebook 09."""
from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmgrec_lib.evaluation import EvalResult
from mmgrec_lib.experiments.overall import (GAIN_COLUMNS, METRICS, OVERALL_COLUMNS, applicable_baselines,
                                            baseline_checkpoint, chosen_overrides, gain_sentences, gain_table,
                                            improvement_pct, marked_markdown, overall_runs, overall_table,
                                            seed_run_table, settings_note, split_note, strongest_baselines)
from mmgrec_lib.experiments.runs import ModelRun
from mmgrec_lib.training.loop import FitResult, LoopConfig

# ---------------------------------------------------------------------- fake runs
#: mean level of each model per metric: mmgrec beats lightgcn on the @10 metrics and loses on the @20 ones
LEVEL = {"mostpop": {"recall@10": 0.10, "ndcg@10": 0.10, "recall@20": 0.15, "ndcg@20": 0.12},
         "lightgcn": {"recall@10": 0.20, "ndcg@10": 0.25, "recall@20": 0.30, "ndcg@20": 0.28},
         "mf": {"recall@10": 0.15, "ndcg@10": 0.26, "recall@20": 0.25, "ndcg@20": 0.27},
         "mmgrec": {"recall@10": 0.24, "ndcg@10": 0.28, "recall@20": 0.22, "ndcg@20": 0.22}}


def _run(name: str, seed: int, users: int = 60) -> ModelRun:
    rng = np.random.default_rng(100 * seed + len(name))
    per_user = pd.DataFrame({m: np.clip(LEVEL[name][m] + rng.normal(0, 0.1, users), 0, 1) for m in METRICS},
                            index=pd.RangeIndex(users, name="user"))
    fit = FitResult(history=[{"epoch": 1}], best_epoch=1, best_score=0.1 + seed, stopped_early=False, resumed_from=0)
    return ModelRun(name, None, fit, EvalResult(per_user, "test", (10, 20), name), train_seconds=1.5)


def _per_seed(seeds=(0, 1, 2), models=("mostpop", "lightgcn", "mf", "mmgrec")) -> dict:
    return {s: {m: _run(m, s) for m in models} for s in seeds}


def test_schemas_match_the_shared_schema_file():
    """The columns of /tmp/prompts/schemas.md (issue 14), spelled out."""
    assert OVERALL_COLUMNS == ["dataset", "model", "n_seeds", "recall@10", "recall@10_std", "ndcg@10", "ndcg@10_std",
                               "recall@20", "recall@20_std", "ndcg@20", "ndcg@20_std", "strongest"]
    assert GAIN_COLUMNS == ["dataset", "metric", "strongest_baseline", "baseline_mean", "mmgrec_mean",
                            "improvement_pct", "p_users_max", "p_seeds", "n_seeds"]
    per_seed = _per_seed()
    assert list(overall_table(per_seed, "tiny").columns) == OVERALL_COLUMNS
    assert list(gain_table(per_seed, "tiny").columns) == GAIN_COLUMNS


def test_overall_table_means_stds_and_strongest():
    per_seed = _per_seed()
    table = overall_table(per_seed, "tiny")
    assert list(table["model"]) == ["mostpop", "lightgcn", "mf", "mmgrec"]      # per_seed's order: MMGRec last
    assert (table["dataset"] == "tiny").all() and (table["n_seeds"] == 3).all()
    row = table.set_index("model").loc["mf"]
    vals = [per_seed[s]["mf"].test["ndcg@10"] for s in (0, 1, 2)]
    assert row["ndcg@10"] == pytest.approx(np.mean(vals))
    assert row["ndcg@10_std"] == pytest.approx(np.std(vals, ddof=1))
    means = table.set_index("model")
    for m in METRICS:                                          # strongest: the best baseline mean, never MMGRec
        expected = means.drop(index="mmgrec")[m].idxmax()
        assert strongest_baselines(table)[m] == expected
        assert m in means.loc[expected, "strongest"].split(",")
    assert means.loc["mmgrec", "strongest"] == "" and means.loc["mostpop", "strongest"] == ""
    one = overall_table(_per_seed(seeds=(0,)), "tiny")
    assert one["recall@10_std"].isna().all() and (one["n_seeds"] == 1).all()


def test_strongest_takes_the_first_row_among_ties():
    table = pd.DataFrame({"model": ["a", "b", "mmgrec"], **{m: [0.2, 0.2, 0.3] for m in METRICS}})
    assert set(strongest_baselines(table).values()) == {"a"}
    with pytest.raises(ValueError, match="no baseline"):
        strongest_baselines(table[table["model"] == "mmgrec"])


def test_gain_table_improvement_sign_and_p_values():
    per_seed = _per_seed()
    gain = gain_table(per_seed, "tiny").set_index("metric")
    table = overall_table(per_seed, "tiny").set_index("model")
    for m in METRICS:
        r = gain.loc[m]
        b = r["strongest_baseline"]
        assert r["baseline_mean"] == pytest.approx(table.loc[b, m]) and r["mmgrec_mean"] == pytest.approx(table.loc["mmgrec", m])
        assert r["improvement_pct"] == pytest.approx(100 * (r["mmgrec_mean"] - r["baseline_mean"]) / r["baseline_mean"])
        users = [stats.wilcoxon(per_seed[s]["mmgrec"].test.per_user[m], per_seed[s][b].test.per_user[m]).pvalue
                 for s in per_seed]
        assert r["p_users_max"] == pytest.approx(max(users))
        seeds = stats.ttest_rel([per_seed[s]["mmgrec"].test[m] for s in per_seed],
                                [per_seed[s][b].test[m] for s in per_seed]).pvalue
        assert r["p_seeds"] == pytest.approx(seeds) and r["n_seeds"] == 3
    assert gain.loc["recall@10", "improvement_pct"] > 0 and gain.loc["ndcg@20", "improvement_pct"] < 0
    assert gain.loc["recall@10", "strongest_baseline"] == "lightgcn"
    text = gain_sentences(gain.reset_index())
    assert "above the strongest baseline lightgcn" in text[0] and "below" in text[3]
    one = gain_table(_per_seed(seeds=(0,)), "tiny")
    assert one["p_seeds"].isna().all() and one["p_users_max"].notna().all()
    assert np.isnan(improvement_pct(0.3, 0.0)) and improvement_pct(0.3, 0.2) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="mmgrec"):
        gain_table(_per_seed(models=("mostpop", "mf")), "tiny")


def test_marked_markdown_underlines_the_strongest_baseline_and_bolds_the_best():
    table = overall_table(_per_seed(), "tiny")
    marked = marked_markdown(table)
    assert list(marked.columns) == OVERALL_COLUMNS and list(marked["model"]) == list(table["model"])
    marked = marked.set_index("model")
    assert marked.loc["mmgrec", "recall@10"].startswith("**") and "<u>" not in marked.loc["mmgrec", "recall@10"]
    assert marked.loc["lightgcn", "recall@10"] == f"<u>{table.set_index('model').loc['lightgcn', 'recall@10']:.4f}</u>"
    assert marked.loc["lightgcn", "recall@20"].startswith("**<u>")                  # strongest and best overall
    assert "*" not in marked.loc["mostpop", "recall@10"] and "<u>" not in marked.loc["mostpop", "recall@10"]
    assert marked.loc["mf", "recall@10_std"] == f"{table.set_index('model').loc['mf', 'recall@10_std']:.4f}"


def test_seed_run_table_has_one_row_per_seed_and_model():
    per_seed = _per_seed(seeds=(0, 1))
    runs = seed_run_table(per_seed, "tiny")
    assert len(runs) == 8 and list(runs[["seed", "model"]].iloc[-1]) == [1, "mmgrec"]
    assert runs.loc[(runs["seed"] == 1) & (runs["model"] == "mf"), "recall@10"].item() == \
        pytest.approx(per_seed[1]["mf"].test["recall@10"])


def test_split_note_says_what_the_seed_changes():
    assert "fixed" in split_note(SimpleNamespace(info={"split": {"method": "given", "seed": None}}))
    assert "generates" in split_note(SimpleNamespace(info={"source": "make_synthetic", "split": {"seed": 1}}))
    assert "own per-user random" in split_note(SimpleNamespace(info={"split": {"seed": 1}}))


def test_settings_note_names_tuned_default_and_skipped_models():
    note = settings_note({"mf": "tuned on validation (notebook 10, 2 points): lr=0.005", "mostpop": "library defaults"},
                         {"mmgcn": "no features"})
    assert "notebook 10 (its chosen grid point): mf" in note and "defaults" in note and "left out" in note


# ---------------------------------------------------------------------- tuned settings and run keys (tiny data)
KWARGS = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}


def test_chosen_overrides_follow_notebook_10s_tuning_runs(tmp_path):
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import run_baselines, tune_baseline
    loop_fields = {"epochs": 2, "patience": 0, "eval_every": 1, "monitor": "recall@10"}
    base = {"mf": {"dim": 8, "batch_size": 64}}
    grid = {"lr": [0.001, 0.05]}
    tuned, chosen = tune_baseline("synthetic", "mf", grid, loop_fields, tmp_path, base={"device": "cpu", **base["mf"]},
                                  dataset_kwargs=KWARGS, executor="serial", progress=False)
    ds = load_dataset("synthetic", seed=0, **KWARGS)
    loop = LoopConfig(**loop_fields, progress=False)
    overrides, sources = chosen_overrides(ds, ["mostpop", "mf"], {"mf": grid, "lattice": {"knn_k": [5]}}, base, loop,
                                          tmp_path)
    assert overrides["mf"] == chosen and sources["mf"].startswith("tuned on validation (notebook 10, 2 points): lr=")
    assert overrides["mostpop"] == {} and sources["mostpop"] == "library defaults (no grid)"
    # the key is run_baselines' own
    run = run_baselines(ds, ["mf"], loop=loop, overrides={"mf": chosen}, runs_dir=tmp_path)["mf"]
    assert baseline_checkpoint(ds, "mf", chosen, loop, 0, tmp_path) == run.checkpoint and run.fit.resumed_from > 0
    # a grid point without a run, or runs that would train further under a longer loop: the defaults
    more, src = chosen_overrides(ds, ["mf"], {"mf": {"lr": [0.001, 0.05, 0.1]}}, base, loop, tmp_path)
    assert more["mf"] == {"device": "cpu", "dim": 8, "batch_size": 64} and "2 of 3 runs finished" in src["mf"]
    longer, src = chosen_overrides(ds, ["mf"], {"mf": grid}, base, LoopConfig(epochs=4, patience=0), tmp_path)
    assert "lr" not in longer["mf"] and "0 of 2" in src["mf"]
    none, src = chosen_overrides(ds, ["mf"], {"mf": grid}, base, loop, None)
    assert "lr" not in none["mf"]
    with pytest.raises(ValueError, match="unknown baseline"):
        chosen_overrides(ds, ["nope"], {}, base, loop, tmp_path)


def test_chosen_overrides_read_notebook_10s_ledger_where_checkpoints_are_missing(tmp_path):
    import shutil
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import tune_baseline
    loop_fields = {"epochs": 2, "patience": 0, "eval_every": 1, "monitor": "recall@10"}
    base = {"mf": {"dim": 8, "batch_size": 64}}
    grid = {"lr": [0.001, 0.05]}
    runs, ledger = tmp_path / "runs", tmp_path / "baseline_grid_synthetic.jsonl"
    _, chosen = tune_baseline("synthetic", "mf", grid, loop_fields, runs, base={"device": "cpu", **base["mf"]},
                              dataset_kwargs=KWARGS, executor="serial", progress=False, ledger=ledger)
    shutil.rmtree(runs)                                                      # a fresh machine
    ds = load_dataset("synthetic", seed=0, **KWARGS)
    loop = LoopConfig(**loop_fields, progress=False)
    without, src = chosen_overrides(ds, ["mf"], {"mf": grid}, base, loop, runs)
    assert "lr" not in without["mf"] and "0 of 2" in src["mf"]
    overrides, src = chosen_overrides(ds, ["mf"], {"mf": grid}, base, loop, runs, ledger=ledger)
    assert overrides["mf"] == chosen and src["mf"].startswith("tuned on validation (notebook 10, 2 points)")
    with pytest.raises(ValueError, match="needs runs_dir"):
        chosen_overrides(ds, ["mf"], {"mf": grid}, base, loop, None, ledger=ledger)


def test_applicable_baselines_leave_out_multimodal_models_without_features():
    from mmgrec_lib.data import load_dataset
    ds = load_dataset("synthetic", seed=0, dims={}, **KWARGS)
    kept, skipped = applicable_baselines(ds, ["mostpop", "mf", "mmgcn"], {"mf": {"dim": 8}, "mmgcn": {"dim": 8}})
    assert kept == ["mostpop", "mf"] and list(skipped) == ["mmgcn"] and "modality features" in skipped["mmgcn"]


def test_parallel_tasks_land_on_the_seed_runs_keys(tmp_path, monkeypatch):
    """Training the runs through an executor first, then loading them: every run is reused, MMGRec comes last."""
    import concurrent.futures as cf

    import mmgrec_lib.data as data
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    real = data.load_dataset
    monkeypatch.setattr(data, "load_dataset", lambda name, seed=0, **kw: real(name, seed=seed, **{**KWARGS, **kw}))
    rc = GraphRQVAEConfig(dim=8, codebook_size=4, epochs=1, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4,
                          device="cpu")
    gc = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu"))
    loop, bloop = LoopConfig(epochs=1, patience=0, progress=False), LoopConfig(epochs=2, patience=0, progress=False)
    overrides = {"mf": {"dim": 8, "batch_size": 64, "device": "cpu"}}
    with cf.ThreadPoolExecutor(1) as pool:
        per_seed, swept = overall_runs("synthetic", [0, 1], rc, gc, loop, bloop, overrides, ["mostpop", "mf"],
                                       tmp_path, executor=pool, progress=False)
    assert sorted(per_seed) == [0, 1] and all(list(r) == ["mostpop", "mf", "mmgrec"] for r in per_seed.values())
    assert list(swept["task"]) == ["mostpop seed 0", "mf seed 0", "mostpop seed 1", "mf seed 1", "mmgrec seed 0",
                                   "mmgrec seed 1"]                     # baselines first
    for row in swept.itertuples():
        if row.model != "mostpop":                                            # MostPop keeps no checkpoint
            run = per_seed[row.seed][row.model]
            assert str(run.checkpoint) == row.checkpoint and run.fit.resumed_from > 0, row.task
    serial, none = overall_runs("synthetic", [0], rc, gc, loop, bloop, overrides, ["mf"], tmp_path)
    assert none is None and serial[0]["mf"].fit.resumed_from > 0
    with pytest.raises(ValueError, match="runs_dir"):
        overall_runs("synthetic", [0], rc, gc, loop, bloop, overrides, ["mf"], None, executor=None)


# ---------------------------------------------------------------------- the profiles
def _profile_runs(stem: str, profile: str) -> dict[str, dict]:
    from mmgrec_lib import cli
    nb = next(p for p in cli.list_notebooks() if p.stem.startswith(stem))
    defaults = {k: ast.literal_eval(v["default"]) for k, v in cli.notebook_parameters(nb).items()}
    return {r.get("DATASET", defaults["DATASET"]): {**defaults, **r} for r in cli.load_profile(nb, profile)}


def test_full_profile_reuses_the_settings_of_notebooks_00_03_09_and_10():
    """Notebook 04's full profile copies the other notebooks' settings so that their runs are reused (by key); its
    MMGRec rung is notebook 09's run of that name (as its committed ladder built it) and notebook 03's main run, both
    under notebook 03's training budget (``MMGREC_BUDGET``; none: exactly notebook 09's run)."""
    from _fixtures import built_rung_config, rung_config
    from mmgrec_lib.baselines import BASELINES
    ours, base, gen, ladder, zoo = (_profile_runs(s, "full") for s in ("04", "00", "03", "09", "10"))
    assert set(ours) == {"ml100k", "tiktok"}
    for ds, o in ours.items():
        assert sorted(o["BASELINES"]) == sorted(BASELINES) and len(o["SEEDS"]) == 3
        b, g, lad, z = base[ds], gen[ds], ladder[ds], zoo[ds]
        assert (o["BASELINE_EPOCHS"], o["BASELINE_EVAL_EVERY"], o["BASELINE_PATIENCE"]) == \
            (b["EPOCHS"], b["EVAL_EVERY"], b["PATIENCE"]) == (z["EPOCHS"], z["EVAL_EVERY"], z["PATIENCE"]), ds
        assert (o["GRIDS"], o["BASE"], o["SEED"], o["GRID_PATIENCE"], o["SEARCH"], o["FULL_GRID"], o["FINAL_TOP"]) == \
            (z["GRIDS"], z["BASE"], z["SEED"], z["GRID_PATIENCE"], z["SEARCH"], z["FULL_GRID"], z["FINAL_TOP"]), ds
        keys = ("CODEBOOK_SIZE", "RECID_EPOCHS", "RECID_RQ_EPOCHS", "FINETUNE_ITEM_EMB", "EPOCHS", "PATIENCE",
                "EVAL_EVERY")
        assert {k: o[k] for k in keys} == {k: g[k] for k in keys} == {k: lad[k] for k in keys}, ds
        assert o["TARGETS_PER_INPUT"] == lad["TARGETS_PER_INPUT"], ds
        csv = Path(__file__).parents[1] / "reports" / "tables" / f"ladder_{ds}.csv"
        if csv.is_file():                                                   # 09's run of that rung, by key
            assert rung_config(o, o["MMGREC_RUNG"]["name"], [o["MMGREC_RUNG"]]) == \
                built_rung_config(lad, o["MMGREC_RUNG"]["name"], pd.read_csv(csv)), ds
        assert rung_config(g, g["MMGREC_RUNG"]["name"], [g["MMGREC_RUNG"]]) == \
            rung_config(o, o["MMGREC_RUNG"]["name"], [o["MMGREC_RUNG"]]), ds     # notebook 03's main run is it too
        assert o["MMGREC_BUDGET"] == g["MMGREC_BUDGET"], ds                      # with the same training budget
    # and that rung is the one notebook 09's committed ladder chose on validation
    from mmgrec_lib.experiments import chosen_rung
    checked = 0
    for ds, o in ours.items():
        csv = Path(__file__).parents[1] / "reports" / "tables" / f"ladder_{ds}.csv"
        if csv.is_file():
            assert o["MMGREC_RUNG"]["name"] == gen[ds]["MMGREC_RUNG"]["name"] == chosen_rung(pd.read_csv(csv)), ds
            checked += 1
    assert checked == 2                                                      # both ladders are committed


def test_chosen_rung_skips_the_reference_and_the_optional_rows():
    from mmgrec_lib.experiments import chosen_rung
    table = pd.DataFrame({"rung": ["paper", "a", "b", "hybrid_rerank", "prior_decoding", "lightgcn"],
                          "val_recall@10": [0.1, 0.3, 0.3, 0.5, 0.6, 0.7]})
    assert chosen_rung(table) == "a"                                           # first among ties
    with pytest.raises(ValueError, match="no trained rung"):
        chosen_rung(table[table["rung"].isin(["lightgcn", "hybrid_rerank"])])


def test_smoke_profile_is_small():
    for ds, o in _profile_runs("04", "smoke").items():
        assert len(o["SEEDS"]) == 2 and len(o["BASELINES"]) < 6 and o["EPOCHS"] <= 2 and o["BASELINE_EPOCHS"] <= 4, ds


def test_finalists_rank_best_first_ties_to_the_earlier_point():
    from mmgrec_lib.experiments.tuning import choose_point, finalists
    scores = [0.2, None, 0.3, float("nan"), 0.3, 0.1]
    assert finalists(scores, 3) == [2, 4, 0] and finalists(scores, 1) == [choose_point(scores)]
    assert finalists(scores, 10) == [2, 4, 0, 5, 1, 3]                      # missing and NaN last
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="top must be an integer >= 1"):
            finalists(scores, bad)


def test_finalists_continue_to_the_full_patience_and_notebook_04_chooses_the_same(tmp_path):
    """continue_finalists gives the best grid points the full patience and chooses after that; chosen_overrides
    (notebook 04) finds the same choice from the checkpoints, and from the ledger on a fresh machine."""
    import shutil
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import tune_baseline
    from mmgrec_lib.experiments.ledger import RunLedger
    from mmgrec_lib.experiments.tuning import continue_finalists, finalists
    grid_fields = {"epochs": 8, "patience": 1, "eval_every": 1, "monitor": "recall@10"}
    final_loop = LoopConfig(**{**grid_fields, "patience": 3}, progress=False)
    base = {"mf": {"dim": 8, "batch_size": 64}}
    grid = {"lr": [0.001, 0.01, 0.05]}
    runs, ledger = tmp_path / "runs", tmp_path / "baseline_grid_synthetic.jsonl"
    shared = {"device": "cpu", **base["mf"]}
    table, _ = tune_baseline("synthetic", "mf", grid, grid_fields, runs, base=shared, dataset_kwargs=KWARGS,
                             executor="serial", progress=False, ledger=ledger)
    ds = load_dataset("synthetic", seed=0, **KWARGS)
    tops = finalists(list(table["val_recall@10"]), 2)
    configs = [{**shared, "lr": table["lr"].iloc[i]} for i in tops]
    finals, pick = continue_finalists(ds, "mf", configs, final_loop, runs, ledger=ledger, names=["a", "b"])
    assert list(finals["point"]) == ["a", "b"] and (finals["final_source"] == "run").all()
    assert (finals["final_val_recall@10"] >= table["val_recall@10"].iloc[tops].to_numpy() - 1e-12).all()
    assert pick == int(np.argmax(finals["final_val_recall@10"].to_numpy()))
    book = RunLedger(ledger)
    assert all(book.get(k)["phase"] == "final" for k in finals["final_run_key"])
    grid_loop = LoopConfig(**grid_fields, progress=False)
    args = (ds, ["mf"], {"mf": grid}, base, grid_loop)
    overrides, src = chosen_overrides(*args, runs, top=2, final_loop=final_loop)
    assert overrides["mf"] == configs[pick] and "best of 2 continued" in src["mf"]
    # a second call reads the finalists back (no training): same table, same choice
    again, pick2 = continue_finalists(ds, "mf", configs, final_loop, runs, ledger=ledger, names=["a", "b"])
    assert pick2 == pick and again["final_val_recall@10"].tolist() == finals["final_val_recall@10"].tolist()
    shutil.rmtree(runs)                                                      # a fresh machine: the ledger decides
    fresh, src = chosen_overrides(*args, runs, ledger=ledger, top=2, final_loop=final_loop)
    assert fresh["mf"] == configs[pick]
    read, pick3 = continue_finalists(ds, "mf", configs, final_loop, runs, ledger=ledger, names=["a", "b"])
    assert pick3 == pick and (read["final_source"] == "ledger").all()
    # a finalist without a continued run: the defaults, saying so
    missing, src = chosen_overrides(*args, runs, ledger=ledger, top=3, final_loop=final_loop)
    assert "lr" not in missing["mf"] and "2 of 3 continued runs finished" in src["mf"]
    with pytest.raises(ValueError, match="needs final_loop"):
        chosen_overrides(*args, runs, ledger=ledger, top=2)


def test_baseline_checkpoint_keys_every_model_as_the_built_model_without_building_it():
    """baseline_checkpoint builds only the config object; its key equals the one of the model built from the
    dataset (Recommender.__init__ does not change the config), for every baseline."""
    from _fixtures import make_tiny_dataset
    from mmgrec_lib.baselines import BASELINES
    from mmgrec_lib.experiments.runs import baseline_run_path
    ds = make_tiny_dataset()
    loop = LoopConfig(epochs=3)
    for name, cls in BASELINES.items():
        fields = {} if name == "mostpop" else {"device": "cpu", "dim": 8}
        built = cls.from_dataset(ds, **fields)
        assert baseline_checkpoint(ds, name, fields, loop, 0, "runs") == \
            baseline_run_path("runs", ds, name, built.config, loop, 0), name
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        baseline_checkpoint(ds, "nope", {}, loop, 0, "runs")
