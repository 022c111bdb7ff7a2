"""Ablations (notebook 05) and the layer / head sweep (notebook 06): variants as data, tables, selection, reuse."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmgrec_lib.evaluation import EvalResult
from mmgrec_lib.experiments import ModelRun
from mmgrec_lib.experiments.ablations import (ABLATION_COLUMNS, ABLATION_SEED_COLUMNS, ABLATIONS, HYPER_COLUMNS,
                                              PAPER_ABLATIONS, Variant, ablation_reading, ablation_runs,
                                              ablation_seed_table, ablation_table, ablation_tasks, baseline_spec,
                                              choose_value, generator_spec, hyper_reading, hyper_table, hyper_tasks,
                                              seed_ablation_tasks, select_variants, sweep_ablations, sweep_hyper,
                                              variant_configs)
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import FitResult, LoopConfig

REPO = Path(__file__).resolve().parent.parent
TINY_KW = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
TINY_RECID = dict(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4, device="cpu")
TINY_GEN = dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu")
NAMES = {"3": ["full", "id_wo", "emb_wo"], "4": ["graph_rqvae", "hkmeans", "random_collision"],
         "5": ["no_pe", "sinusoidal_pe", "relation"]}


def _base():
    return (GraphRQVAEConfig(**TINY_RECID), GeneratorConfig.from_dict(TINY_GEN),
            LoopConfig(epochs=1, patience=0, monitor="recall@10"))


# ---------------------------------------------------------------------- variants
def test_variant_definitions_build_the_right_configs(tmp_path):
    assert {t: [a["name"] for a in ABLATIONS if a["table"] == t] for t in NAMES} == NAMES   # names fixed by the schema
    variants = select_variants([a["name"] for a in ABLATIONS])
    rc, gc, loop = _base()
    configs = {v.name: variant_configs(rc, gc, loop, v) for v in variants}
    assert configs["no_pe"][1].model.attention == "none"
    assert configs["sinusoidal_pe"][1].model.attention == "sinusoidal"
    assert configs["relation"][1].model.attention == "relation"
    assert configs["emb_wo"][1].model.item_embedding == "learned"
    assert all(configs[n][0] == rc and configs[n][2] == loop for n in configs)       # no Rec-ID or loop changes
    tasks = ablation_tasks("synthetic", 0, rc, gc, loop, variants, tmp_path, TINY_KW)
    assert tasks["random_collision"]["collision"] == "random" and tasks["random_collision"]["method"] == "graph_rqvae"
    assert tasks["hkmeans"]["method"] == "hkmeans" and tasks["id_wo"]["method"] == "id_wo"
    assert tasks["full"] == tasks["graph_rqvae"] == tasks["relation"]                 # the full model: one run
    assert tasks["full"]["generator"] == gc.flat() and tasks["full"]["recid"] == rc.to_dict()
    assert tasks["full"]["collision"] is None and tasks["full"]["method"] == "graph_rqvae"
    assert len({repr(sorted(t.items())) for t in tasks.values()}) == 7


def test_variant_checks_reject_bad_definitions():
    rc, gc, loop = _base()
    with pytest.raises(TypeError, match="unknown parameter"):
        Variant.from_dict({"name": "x", "table": "3", "bogus": 1})
    with pytest.raises(ValueError, match="no table"):
        Variant.from_dict({"name": "x"})
    with pytest.raises(ValueError, match="unknown method"):
        Variant.from_dict({"name": "x", "table": "4", "method": "kmeans"})
    with pytest.raises(ValueError, match="unknown collision"):
        Variant.from_dict({"name": "x", "table": "4", "collision": "popular"})
    with pytest.raises(ValueError, match="unknown ablation variant"):
        select_variants(["full", "nope"])
    with pytest.raises(ValueError, match="unique"):
        select_variants(["full", "full"])
    with pytest.raises(TypeError, match="unknown parameter"):
        variant_configs(rc, gc, loop, Variant.from_dict({"name": "x", "table": "5", "generator": {"layers": 3}}))
    assert Variant.from_dict({"name": "x", "table": 3}).table == "3"
    assert variant_configs(rc, gc, loop, Variant("x", "5", generator={"epochs": 7}))[2].epochs == 7   # a loop field


# ---------------------------------------------------------------------- the table
def _run(values: dict[str, list[float]], name: str = "m") -> ModelRun:
    per_user = pd.DataFrame(values, index=pd.Index(range(len(next(iter(values.values())))), name="user"))
    fit = FitResult(history=[], best_epoch=1, best_score=0.0, stopped_early=False, resumed_from=0)
    return ModelRun(name, None, fit, EvalResult(per_user, "test", (10, 20), name), 1.0)


def test_ablation_table_schema_p_values_and_paper_columns():
    rng = np.random.default_rng(0)
    base = {m: rng.random(30).tolist() for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")}
    full = _run(base)
    worse = _run({m: [v * 0.5 for v in vals] for m, vals in base.items()})
    same = _run(dict(base))                                      # equal values, but a separate run: p = 1, not NaN
    variants = select_variants(["full", "id_wo", "graph_rqvae", "hkmeans"])
    runs = {"full": full, "id_wo": worse, "graph_rqvae": full, "hkmeans": same}
    for dataset, column in (("tiktok", "TikTok"), ("ml100k", "MovieLens")):
        table = ablation_table(variants, runs, dataset)
        assert list(table.columns) == ABLATION_COLUMNS
        assert list(table["variant"]) == ["full", "id_wo", "graph_rqvae", "hkmeans"]
        assert list(table["table"]) == ["3", "3", "4", "4"] and (table["dataset"] == dataset).all()
        assert table.loc[[0, 2], ["p_recall@10", "p_ndcg@10"]].isna().all().all()   # the full model's rows
        expected = stats.wilcoxon(base["recall@10"], [v * 0.5 for v in base["recall@10"]]).pvalue
        assert table.loc[1, "p_recall@10"] == pytest.approx(expected)
        assert table.loc[3, "p_recall@10"] == 1.0
        assert table.loc[1, "recall@10"] == pytest.approx(np.mean(base["recall@10"]) * 0.5)
        assert (table.loc[1, "paper_recall@10"], table.loc[1, "paper_ndcg@10"]) == PAPER_ABLATIONS["id_wo"][column]
    other = ablation_table(variants, runs, "synthetic")
    assert other[["paper_recall@10", "paper_ndcg@10"]].isna().all().all()               # the paper has no such data
    reading = ablation_reading(ablation_table(variants, runs, "tiktok"))
    assert list(reading["variant"]) == ["id_wo", "hkmeans"]
    assert list(reading["below_full"]) == [True, False] and reading.loc[0, "paper_claim"]
    with pytest.raises(ValueError, match="reference"):
        ablation_table(variants, {"id_wo": worse}, "tiktok")


# ---------------------------------------------------------------------- over several seeds
def test_seed_ablation_tasks_vary_split_recids_and_generator_and_reuse_the_base_seed(tmp_path):
    rc, gc, loop = _base()
    variants = select_variants(["full", "hkmeans", "no_pe"])
    by_seed = seed_ablation_tasks("synthetic", [0, 2], rc, gc, loop, variants, tmp_path, TINY_KW)
    assert list(by_seed) == [0, 2]
    assert by_seed[0] == ablation_tasks("synthetic", 0, rc, gc, loop, variants, tmp_path, TINY_KW)   # base seed's runs
    for name, spec in by_seed[2].items():
        assert spec["seed"] == 2 and spec["recid"]["seed"] == 2 and spec["generator"]["seed"] == 2, name
        other = by_seed[0][name]
        assert {k: v for k, v in spec["recid"].items() if k != "seed"} == \
            {k: v for k, v in other["recid"].items() if k != "seed"}
        assert (spec["method"], spec["collision"], spec["loop"]) == (other["method"], other["collision"], other["loop"])
    for bad in ([], [1, 1]):
        with pytest.raises(ValueError, match="distinct seeds"):
            seed_ablation_tasks("synthetic", bad, rc, gc, loop, variants, tmp_path, TINY_KW)


def test_tiny_seed_study_end_to_end(tmp_path):
    """Notebook 05's seed section on tiny data: each seed's tasks sweep and load, the base seed's runs are those of
    the one-seed study, and the seed table pairs every variant with the full model of its own seed."""
    from mmgrec_lib.data import load_dataset
    rc, gc, loop = _base()
    variants = select_variants(["full", "no_pe", "relation"])
    by_seed = seed_ablation_tasks("synthetic", [0, 1], rc, gc, loop, variants, tmp_path, TINY_KW)
    per_seed = {}
    for s, tasks in by_seed.items():
        sweep_ablations(tasks, executor="serial", progress=False)
        per_seed[s] = ablation_runs(load_dataset("synthetic", seed=s, **TINY_KW), tasks)
    assert per_seed[0]["full"].checkpoint != per_seed[1]["full"].checkpoint
    table = ablation_seed_table(variants, per_seed, "synthetic")
    one = {s: ablation_table(variants, per_seed[s], "synthetic").set_index("variant") for s in per_seed}
    assert table.loc[1, "recall@10"] == pytest.approx(np.mean([one[s].loc["no_pe", "recall@10"] for s in (0, 1)]))
    assert table.loc[1, "p_ndcg@10_users_max"] == pytest.approx(max(one[s].loc["no_pe", "p_ndcg@10"] for s in (0, 1)))
    assert table.loc[2, "ours"] == "the full model" and pd.isna(table.loc[2, "p_recall@10_seeds"])


def test_ablation_seed_table_means_p_values_and_seed_counts():
    rng = np.random.default_rng(1)
    metrics = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
    variants = select_variants(["full", "id_wo", "graph_rqvae", "hkmeans"])
    per_seed, bases = {}, {}
    for s, mixed_factor in ((0, 0.9), (1, 1.2), (2, 0.8)):
        base = {m: rng.random(40).tolist() for m in metrics}
        full = _run(base)
        per_seed[s] = {"full": full, "graph_rqvae": full,
                       "id_wo": _run({m: [v * 0.5 for v in vals] for m, vals in base.items()}),
                       "hkmeans": _run({m: [v * mixed_factor for v in vals] for m, vals in base.items()})}
        bases[s] = base
    table = ablation_seed_table(variants, per_seed, "tiktok")
    assert list(table.columns) == ABLATION_SEED_COLUMNS
    assert list(table["variant"]) == ["full", "id_wo", "graph_rqvae", "hkmeans"] and (table["n_seeds"] == 3).all()
    full_means = [np.mean(bases[s]["recall@10"]) for s in range(3)]
    assert table.loc[0, "recall@10"] == pytest.approx(np.mean(full_means))
    assert table.loc[0, "recall@10_std"] == pytest.approx(np.std(full_means, ddof=1))
    assert table.loc[[0, 2], ["p_recall@10_seeds", "p_ndcg@10_users_max", "seeds_below"]].isna().all().all()
    assert list(table.loc[[0, 2], "ours"]) == ["the full model"] * 2
    worse = [np.mean(bases[s]["recall@10"]) * 0.5 for s in range(3)]
    assert table.loc[1, "p_recall@10_seeds"] == pytest.approx(stats.ttest_rel(worse, full_means).pvalue)
    per_user = [stats.wilcoxon(bases[s]["ndcg@10"], [v * 0.5 for v in bases[s]["ndcg@10"]]).pvalue for s in range(3)]
    assert table.loc[1, "p_ndcg@10_users_max"] == pytest.approx(max(per_user))
    assert (table.loc[1, "seeds_below"], table.loc[1, "seeds_above"]) == (3, 0)
    assert table.loc[1, "ours"] == "below the full model on every seed"
    assert (table.loc[3, "seeds_below"], table.loc[3, "seeds_above"]) == (2, 1)
    assert table.loc[3, "ours"] == "mixed: below on 2, above on 1 of 3 seeds"
    one = ablation_seed_table(variants, {0: per_seed[0]}, "tiktok")              # one seed: no std, no t-test
    assert one[["recall@10_std", "p_recall@10_seeds"]].isna().all().all() and one.loc[1, "seeds_below"] == 1
    with pytest.raises(ValueError, match="no run for"):
        ablation_seed_table(variants, {0: per_seed[0], 1: {"full": per_seed[1]["full"]}}, "tiktok")
    with pytest.raises(ValueError, match="no seeds"):
        ablation_seed_table(variants, {}, "tiktok")


# ---------------------------------------------------------------------- layers and heads
def test_choose_value_takes_the_best_validation_first_among_ties():
    rows = pd.DataFrame({"sweep": ["layers"] * 6, "model": ["mmgrec", "lightgt"] * 3, "value": [1, 1, 2, 2, 3, 3],
                         "val_recall@10": [0.1, 0.9, 0.3, 0.1, 0.3, 0.1]})
    assert choose_value(rows, "layers") == 2                       # 2 and 3 tie: the first (smaller) wins
    assert choose_value(rows, "layers", model="lightgt") == 1
    with pytest.raises(ValueError, match="no mmgrec rows"):
        choose_value(rows, "heads")


def test_hyper_tasks_set_layers_and_heads_for_both_models(tmp_path):
    rc, gc, loop = _base()
    mm = generator_spec("synthetic", 0, rc, gc, loop, tmp_path, TINY_KW)
    bl = baseline_spec("synthetic", 0, "lightgt", {"dim": 16, "device": "cpu"}, {"epochs": 1}, tmp_path, TINY_KW)
    layers = hyper_tasks("layers", [1, 2], 4, mm, bl)
    assert list(layers) == ["mmgrec layers=1", "lightgt layers=1", "mmgrec layers=2", "lightgt layers=2"]
    assert (layers["mmgrec layers=2"]["generator"]["n_layers"], layers["mmgrec layers=2"]["generator"]["n_heads"]) == (2, 4)
    assert layers["lightgt layers=1"]["config"] == {"dim": 16, "device": "cpu", "n_layers": 1, "n_heads": 4}
    heads = hyper_tasks("heads", [1, 8], 3, mm, None)
    assert list(heads) == ["mmgrec heads=1", "mmgrec heads=8"]
    assert (heads["mmgrec heads=8"]["generator"]["n_heads"], heads["mmgrec heads=8"]["generator"]["n_layers"]) == (8, 3)
    assert heads["mmgrec heads=8"]["fixed"] == 3 and heads["mmgrec heads=8"]["sweep"] == "heads"
    with pytest.raises(ValueError, match="divisible"):                         # 16 is not divisible by 3 heads
        hyper_tasks("heads", [3], 1, mm, None)
    with pytest.raises(ValueError, match="unknown sweep"):
        hyper_tasks("width", [1], 1, mm, None)
    rows = pd.DataFrame([{"sweep": "layers", "value": v, "fixed": 4, "model": m, "val_recall@10": 0.1 * v,
                          "test_recall@10": r, "test_ndcg@10": r / 2, "checkpoint": "x"}
                         for v, m, r in [(1, "mmgrec", 0.3), (1, "lightgt", 0.2), (2, "mmgrec", 0.1),
                                         (2, "lightgt", 0.2)]])
    table = hyper_table(rows, "tinyset")
    assert list(table.columns) == HYPER_COLUMNS and (table["dataset"] == "tinyset").all()
    assert list(table["best_val_recall@10"]) == list(rows["val_recall@10"])
    reading = hyper_reading(table)
    assert reading.loc[0, "mmgrec_above_lightgt"] == "1 of 2" and reading.loc[0, "mmgrec_best_val_value"] == 2


def test_figures_name_the_dataset_and_keep_legends_outside():
    import matplotlib
    matplotlib.use("Agg")
    from _figure_checks import assert_labelled, assert_legends_outside

    from mmgrec_lib.experiments.ablations import ablation_plot, hyper_plot
    rng = np.random.default_rng(1)
    base = {m: rng.random(20).tolist() for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")}
    full = _run(base)
    runs = {"full": full, "id_wo": _run({m: [v * 0.5 for v in vals] for m, vals in base.items()}), "relation": full,
            "no_pe": _run({m: [v * 0.9 for v in vals] for m, vals in base.items()})}
    fig = ablation_plot(ablation_table(select_variants(list(runs)), runs, "tinyset"), dataset="tinyset")
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "Table 5: self-attention"
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)
    other = {m: rng.random(20).tolist() for m in base}
    full1 = _run(other)
    runs1 = {"full": full1, "id_wo": _run({m: [v * 0.6 for v in vals] for m, vals in other.items()}),
             "relation": full1, "no_pe": _run({m: [v * 1.1 for v in vals] for m, vals in other.items()})}
    seeds = ablation_seed_table(select_variants(list(runs)), {0: runs, 1: runs1}, "tinyset")     # the seed table
    fig = ablation_plot(seeds, dataset="tinyset")
    assert len(fig.axes) == 2 and "mean ± std over 2 seeds" in fig._suptitle.get_text()
    kinds = [type(c).__name__ for c in fig.axes[0].containers]
    assert kinds.count("BarContainer") == 1 and kinds.count("ErrorbarContainer") == 1   # id_wo's bars, with std
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)
    table = pd.DataFrame([{"dataset": "tinyset", "sweep": s, "value": v, "fixed": 2, "model": m, "recall@10": 0.1 * v,
                           "ndcg@10": 0.05, "best_val_recall@10": 0.1} for s in ("layers", "heads")
                          for v in (1, 2, 4) for m in ("mmgrec", "lightgt")])
    fig = hyper_plot(table, dataset="tinyset")
    assert [ax.get_xlabel() for ax in fig.axes] == ["number of layers", "number of heads"]
    assert [ax.get_title() for ax in fig.axes] == ["heads = 2", "layers = 2"]
    assert_labelled(fig, "tinyset")
    assert_legends_outside(fig)


# ---------------------------------------------------------------------- runs reused by key
def test_tiny_sweeps_reuse_runs_by_key(tmp_path):
    from mmgrec_lib.data import load_dataset
    rc, gc, loop = _base()
    variants = select_variants(["full", "random_collision", "hkmeans", "relation"])
    tasks = ablation_tasks("synthetic", 0, rc, gc, loop, variants, tmp_path, TINY_KW)
    first = sweep_ablations(tasks, executor="serial", progress=False)
    assert list(first["task"]) == ["full", "random_collision", "hkmeans", "relation"]
    assert list(first["same_run_as"]) == ["", "", "", "full"]
    assert first.loc[3, "checkpoint"] == first.loc[0, "checkpoint"]
    assert len(set(first["checkpoint"])) == 3 and len(set(first["recid_path"])) == 3
    files = sorted(p.name for p in tmp_path.iterdir())
    again = sweep_ablations(tasks, executor="serial", progress=False)                # everything reused
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    cols = ["checkpoint", "val_recall@10", "test_recall@10", "test_ndcg@10"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    ds = load_dataset("synthetic", seed=0, **TINY_KW)
    runs = ablation_runs(ds, tasks)
    assert runs["full"] is runs["relation"] and all(r.fit.resumed_from > 0 for r in runs.values())   # loaded
    assert [str(runs[n].checkpoint) for n in tasks] == list(first["checkpoint"])
    table = ablation_table(variants, runs, ds.name)
    assert table["p_recall@10"].isna().tolist() == [True, False, False, True]
    assert table["recall@10"].tolist() == pytest.approx(first["test_recall@10"].tolist())
    # the layer sweep's point at the full model's settings is the full model's run
    mm = generator_spec("synthetic", 0, rc, gc, loop, tmp_path, TINY_KW)
    rows = sweep_hyper(hyper_tasks("layers", [1], 2, mm), executor="serial", progress=False)
    assert rows.loc[0, "checkpoint"] == first.loc[0, "checkpoint"]
    assert math.isclose(rows.loc[0, "test_recall@10"], first.loc[0, "test_recall@10"])


def test_ablation_sweep_records_its_variants_and_a_fresh_machine_reads_them_back(tmp_path):
    """Notebook 05 over sessions: every variant trained is recorded in the seed-run ledger with its ablation key;
    with the checkpoints (and Rec-IDs) gone, the same sweep trains nothing, and its table is the same."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments.ablations import ablation_key
    from mmgrec_lib.experiments.ledger import RunLedger
    rc, gc, loop = _base()
    ledger = tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    variants = select_variants(["full", "hkmeans", "relation"])
    tasks = ablation_tasks("synthetic", 0, rc, gc, loop, variants, tmp_path / "runs", TINY_KW)
    ds = load_dataset("synthetic", seed=0, **TINY_KW)
    first = sweep_ablations(tasks, executor="serial", progress=False, ledger=ledger)
    assert set(first["source"]) == {"run"} and "test_hits" not in first.columns
    book = RunLedger(ledger)
    assert len(book) == 2 and {book.get(k)["variant"] for k in first["run_key"]} == {"full", "hkmeans"}
    assert book.get(first.loc[1, "run_key"])["ablation_key"] == ablation_key(tasks["hkmeans"], ds)
    assert ablation_key(tasks["full"], ds) != ablation_key(tasks["hkmeans"], ds)
    cpu_free = {n: {**s, "generator": {**s["generator"], "device": "auto"}} for n, s in tasks.items()}
    assert ablation_key(cpu_free["full"], ds) == ablation_key(tasks["full"], ds)        # devices are not identity
    table = ablation_table(variants, ablation_runs(ds, tasks, ledger=ledger), ds.name)
    fresh = {n: {**s, "runs_dir": str(tmp_path / "fresh")} for n, s in tasks.items()}   # a new machine
    again = sweep_ablations(fresh, executor="serial", progress=False, ledger=ledger)
    assert set(again["source"]) == {"ledger"} and list(again["same_run_as"]) == ["", "", "full"]
    cols = ["task", "run_key", "val_recall@10", "best_epoch", "test_recall@10", "test_ndcg@10", "max_group_size"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    runs = ablation_runs(ds, fresh, ledger=ledger)
    assert not (tmp_path / "fresh").exists() and runs["full"].model is None and runs["full"] is runs["relation"]
    pd.testing.assert_frame_equal(ablation_table(variants, runs, ds.name), table)     # p-values included
    other = ablation_tasks("synthetic", 0, rc, gc, LoopConfig(epochs=2, patience=0, monitor="recall@10"),
                           variants[:1], tmp_path / "fresh", TINY_KW)
    assert _recorded(ledger, other, ds) is None                                         # another budget: not this run


def _recorded(ledger, tasks, ds):
    from mmgrec_lib.experiments.ablations import _recorded_variant
    from mmgrec_lib.experiments.ledger import RunLedger
    return _recorded_variant(RunLedger(ledger), next(iter(tasks.values())), ds)


# ---------------------------------------------------------------------- the full profiles reuse notebook 09's run
def _profiles(stem: str, profile: str) -> dict[str, dict]:
    from mmgrec_lib import cli
    nb = REPO / "notebooks" / f"{stem}.ipynb"
    defaults = {k: ast.literal_eval(v["default"]) for k, v in cli.notebook_parameters(nb).items()}
    return {r.get("DATASET", defaults["DATASET"]): {**defaults, **r} for r in cli.load_profile(nb, profile)}


@pytest.mark.parametrize("stem", ["05_ablations", "06_hyperparameters"])
def test_full_profiles_are_the_ladders_chosen_rung(stem):
    """The full model of notebooks 05 and 06 is the best-validating rung of the paper's method in notebook 09's ladder
    (ladder_<dataset>: the rungs whose note does not say "not the paper's" and that do not build on one that does;
    Tables 3-5 take the paper's components apart), built with the same configs (its changes on those of the rungs
    the table says it was built on), so its run key is 09's finished run."""
    from _fixtures import built_rung_config
    from mmgrec_lib.experiments.ladder import EXTRA_ROWS
    from mmgrec_lib.generator import ModelConfig, TrainConfig
    ladder = _profiles("09_accuracy_ladder", "full")
    for dataset, p in _profiles(stem, "full").items():
        csv = REPO / "reports" / "tables" / f"ladder_{dataset}.csv"
        if dataset not in ladder or not csv.is_file():
            continue
        table = pd.read_csv(csv)
        gen_rows = table[~table["rung"].isin(["lightgcn", *EXTRA_ROWS])].reset_index(drop=True)
        not_paper: set[str] = set()                       # a rung built on a rung that is not the paper's is not either
        for r in gen_rows.itertuples():
            if str(r.note).startswith("not the paper's") or r.built_on in not_paper:
                not_paper.add(r.rung)
        papers = gen_rows[~gen_rows["rung"].isin(not_paper)]
        assert len(papers) >= 1 and papers.index[0] == 0, dataset              # the paper-faithful rung first
        chosen = str(papers.loc[papers["val_recall@10"].idxmax(), "rung"])
        rc9, gc9, loop9 = built_rung_config(ladder[dataset], chosen, table)
        rc = GraphRQVAEConfig(codebook_size=p["CODEBOOK_SIZE"], schedule=p["RECID_SCHEDULE"], epochs=p["RECID_EPOCHS"],
                              rq_epochs=p["RECID_RQ_EPOCHS"], eval_every=p["RECID_EVAL_EVERY"],
                              patience=p["RECID_PATIENCE"], seed=p["SEED"], device=p["DEVICE"])
        gc = GeneratorConfig(model=ModelConfig(finetune_item_emb=p["FINETUNE_ITEM_EMB"]),
                             train=TrainConfig(targets_per_input=p["TARGETS_PER_INPUT"], seed=p["SEED"], device=p["DEVICE"]))
        loop = LoopConfig(epochs=p["EPOCHS"], patience=p["PATIENCE"], eval_every=p["EVAL_EVERY"], monitor="recall@10")
        assert (rc.to_dict(), gc.flat(), loop) == (rc9.to_dict(), gc9.flat(), loop9), dataset
        if stem == "06_hyperparameters":
            assert (gc.model.n_layers, gc.model.n_heads) == (2, p["DEFAULT_HEADS"])    # the default point is 09's run
            assert 2 in p["LAYER_VALUES"] and p["DEFAULT_HEADS"] in p["HEAD_VALUES"]


def _literal(text: str):
    """A config value as the tables print it: a Python literal (numbers, booleans), else the bare string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def test_hyperparameter_baseline_is_the_zoos_chosen_point():
    """Notebook 06 compares MMGRec with LightGT at notebook 10's chosen point per dataset: its BASELINE_CONFIG holds
    the fields of that point as baselines_<dataset> (notebook 10's table) reports them."""
    checked = 0
    for dataset, p in _profiles("06_hyperparameters", "full").items():
        csv = REPO / "reports" / "tables" / f"baselines_{dataset}.csv"
        if not csv.is_file():
            continue
        table = pd.read_csv(csv)
        row = table[table["model"] == p["BASELINE"]]
        assert len(row) == 1, f"{p['BASELINE']} not in {csv.name}"
        chosen = {k: _literal(v) for k, v in (item.split("=") for item in row["config"].iloc[0].split(", "))}
        assert {k: p["BASELINE_CONFIG"].get(k) for k in chosen} == chosen, dataset
        checked += 1
    assert checked == 2                                                   # both full-profile datasets


def test_hyper_sweep_records_its_runs_and_a_fresh_machine_reads_them_back(tmp_path):
    """Notebook 06 over sessions: every point trained is recorded in the ledger as it finishes; with the checkpoints
    gone, the same sweep trains nothing and returns the same rows, marked as read from the ledger."""
    rc, gc, loop = _base()
    ledger = tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    mm = generator_spec("synthetic", 0, rc, gc, loop, tmp_path / "runs", TINY_KW)
    base = baseline_spec("synthetic", 0, "lightgt", {"dim": 8, "device": "cpu"},
                         LoopConfig(epochs=1, patience=0), tmp_path / "runs", TINY_KW)
    tasks = hyper_tasks("heads", [1, 2], 1, mm, base)
    first = sweep_hyper(tasks, executor="serial", progress=False, ledger=ledger)
    assert list(first["task"]) == list(tasks) and set(first["source"]) == {"run"}
    assert "test_hits" not in first.columns
    from mmgrec_lib.experiments.ledger import RunLedger
    assert sorted(RunLedger(ledger).get(k)["model"] for k in first["run_key"]) == ["lightgt", "lightgt", "mmgrec",
                                                                                 "mmgrec"]
    fresh = {n: {**s, "runs_dir": str(tmp_path / "fresh")} for n, s in tasks.items()}   # a new machine
    again = sweep_hyper(fresh, executor="serial", progress=False, ledger=ledger)
    assert not (tmp_path / "fresh").exists() and set(again["source"]) == {"ledger"}
    cols = ["task", "model", "value", "fixed", "val_recall@10", "best_epoch", "test_recall@10", "test_ndcg@10"]
    pd.testing.assert_frame_equal(first[cols], again[cols])
    pd.testing.assert_frame_equal(hyper_table(first, "s"), hyper_table(again, "s"))


def test_ablation_key_ignores_later_fields_at_their_defaults_and_finds_lines_of_older_code(tmp_path):
    """A generator option added later (held at its default) changes neither ablation_key nor which ledger line a
    variant finds; a line that older code wrote (its key hashed every field that existed then, the later ones at
    their defaults included) is still found, and one written with a later field off its default is not."""
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments.ablations import ablation_key, ablation_keys
    from mmgrec_lib.experiments.runs import dataset_key, run_key
    from mmgrec_lib.generator.config import LATER_DEFAULTS
    from mmgrec_lib.generator.training import TRAINING_VERSION
    rc, gc, loop = _base()
    tasks = ablation_tasks("synthetic", 0, rc, gc, loop, select_variants(["full"]), tmp_path / "runs", TINY_KW)
    spec = tasks["full"]
    ds = load_dataset("synthetic", seed=0, **TINY_KW)
    newest = list(LATER_DEFAULTS)[-1]
    assert spec["generator"][newest] == LATER_DEFAULTS[newest]
    before_newest = {**spec, "generator": {k: v for k, v in spec["generator"].items() if k != newest}}
    assert ablation_key(before_newest, ds) == ablation_key(spec, ds)                  # the option did not exist

    def old_style(generator):                                 # how the key was formed until 2026-12-05
        def plain(part):
            return {k: plain(v) for k, v in part.items() if k != "device"} if isinstance(part, dict) else part
        what = plain({**{k: v for k, v in spec.items() if k not in ("runs_dir", "ks")}, "generator": generator})
        return f"ablation_{ds.name}_{run_key(dataset_key(ds), what, TRAINING_VERSION)}"

    keys = ablation_keys(spec, ds)
    assert keys[0] == ablation_key(spec, ds) and len(set(keys)) == len(keys)
    assert old_style(spec["generator"]) in keys                                        # every field present
    assert old_style(before_newest["generator"]) in keys                               # before the newest one
    on = {**spec, "generator": {**spec["generator"], newest: 1}}                       # the newest option in use
    assert ablation_key(on, ds) != ablation_key(spec, ds)
    assert old_style(before_newest["generator"]) not in ablation_keys(on, ds)          # older code could not run it
    ledger = tmp_path / "seed_runs_synthetic.jsonl"
    from mmgrec_lib.experiments.ledger import RunLedger
    book = RunLedger(ledger)
    book.record("generator_synthetic_0123456789", {"val_recall@10": 0.5, "best_epoch": 1})
    book.annotate("generator_synthetic_0123456789", {"ablation_key": old_style(before_newest["generator"]),
                                                     "variant": "full"})
    assert _recorded(ledger, tasks, ds) is not None                                    # the old line stands in


def test_a_variant_is_found_by_its_own_run_key_when_its_line_has_no_ablation_key(tmp_path):
    """A run another notebook recorded (no ablation_key on its line) stands in for the variants whose run key is
    known before training (Graph RQ-VAE Rec-IDs); derived Rec-IDs (HK-Means) still need their ablation_key."""
    import json as _json
    from mmgrec_lib.data import load_dataset
    rc, gc, loop = _base()
    ledger = tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    variants = select_variants(["full", "hkmeans"])
    tasks = ablation_tasks("synthetic", 0, rc, gc, loop, variants, tmp_path / "runs", TINY_KW)
    ds = load_dataset("synthetic", seed=0, **TINY_KW)
    first = sweep_ablations(tasks, executor="serial", progress=False, ledger=ledger)
    lines = [_json.loads(x) for x in ledger.read_text().splitlines()]
    for line in lines:                                            # as if notebook 06 or 09 had recorded them
        for k in ("ablation_key", "variant", "unique_semantic_frac", "max_group_size"):
            line.pop(k, None)
    ledger.write_text("".join(_json.dumps(x, sort_keys=True) + "\n" for x in lines))
    fresh = {n: {**s, "runs_dir": str(tmp_path / "fresh")} for n, s in tasks.items()}   # a new machine
    full = _recorded(ledger, {"full": fresh["full"]}, ds)
    assert full is not None and full[1].stem == first.loc[0, "run_key"]
    assert _recorded(ledger, {"hkmeans": fresh["hkmeans"]}, ds) is None
    assert _recorded(ledger, {"full": tasks["full"]}, ds) is None                       # its checkpoint is here
