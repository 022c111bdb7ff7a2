"""Notebook 11's study (not the paper's method): MMGRec distilled from an external teacher and the hybrid re-ranking
on top, over seeds, recorded in the seed-run ledger so that a fresh machine reads it back."""
from __future__ import annotations

import pandas as pd
import pytest

from mmgrec_lib.experiments.ladder import seed_table
from mmgrec_lib.experiments.ledger import RunLedger
from mmgrec_lib.experiments.teacher_study import (hybrid_path, hybrid_run, teacher_generator_config,
                                                  teacher_study)
from mmgrec_lib.generator import GeneratorConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig

TINY_KW = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
RECID = GraphRQVAEConfig(dim=8, codebook_size=4, epochs=2, rq_epochs=2, rq_hidden_dim=8, rq_latent_dim=4, device="cpu")
GEN = GeneratorConfig.from_dict(dict(d_model=16, n_layers=1, n_heads=2, max_len=5, beam_width=20, device="cpu"))
LOOP = LoopConfig(epochs=1, patience=0, monitor="recall@10")
BASE_LOOP = LoopConfig(epochs=2, patience=5, eval_every=1, monitor="recall@10")
TEACHER = {"dim": 8}


@pytest.fixture()
def synthetic(monkeypatch):
    """``load_dataset("synthetic", seed=s)`` at the tiny size (the study loads its datasets by name)."""
    import mmgrec_lib.data as data
    real = data.load_dataset
    monkeypatch.setattr(data, "load_dataset", lambda name, seed=0, **kw: real(name, seed=seed, **{**TINY_KW, **kw}))
    return lambda seed=0: real("synthetic", seed=seed, **TINY_KW)


def _study(tmp_path, runs="runs", seeds=(0,), **kw):
    return teacher_study("synthetic", list(seeds), RECID, GEN, LOOP, BASE_LOOP, "lightgcn", TEACHER, 1.0, 1.0,
                         beams=(20, 30), weights=(0.0, 0.5, 1.0), runs_dir=tmp_path / runs,
                         ledger=tmp_path / "ledgers" / "seed_runs_synthetic.jsonl", **kw)


def test_the_distilled_config_names_the_reference_baseline_run():
    gc = teacher_generator_config(GEN, "lightgcn", TEACHER, BASE_LOOP, 3.0, 0.5)
    assert gc.train.distill_weight == 3.0 and gc.train.distill_temperature == 0.5
    assert gc.train.distill_teacher == ('lightgcn {"config": {"dim": 8}, "loop": {"epochs": 2, "eval_every": 1, '
                                        '"monitor": "recall@10", "patience": 5}}')
    with pytest.raises(ValueError, match="weight must be > 0"):
        teacher_generator_config(GEN, "lightgcn", TEACHER, BASE_LOOP, 0.0, 1.0)


def test_study_runs_every_model_records_them_and_a_fresh_machine_reads_them_back(tmp_path, synthetic):
    per_seed, chosen = _study(tmp_path)
    assert list(per_seed[0]) == ["mmgrec", "mmgrec_teacher", "hybrid", "lightgcn"]
    run, hybrid = per_seed[0]["mmgrec_teacher"], per_seed[0]["hybrid"]
    assert run.model.teacher_items.shape == (60, 8)                   # distilled from the 8-dim LightGCN run
    assert hybrid.checkpoint == hybrid_path(run, (20, 30), (0.0, 0.5, 1.0)) and not hybrid.checkpoint.exists()
    assert chosen.loc[0, "hybrid_beam"] in (20, 30) and chosen.loc[0, "hybrid_weight"] in (0.0, 0.5, 1.0)
    line = RunLedger(tmp_path / "ledgers" / "seed_runs_synthetic.jsonl").get(hybrid.checkpoint.stem)
    assert line["hybrid_of"] == run.checkpoint.stem and line["hybrid_beam"] == chosen.loc[0, "hybrid_beam"]
    table = seed_table(per_seed)
    assert list(table["model"]) == ["mmgrec", "mmgrec_teacher", "hybrid", "lightgcn"]
    # a fresh machine: nothing on disk, everything read back from the ledger (nothing trains)
    again, chosen_again = _study(tmp_path, runs="fresh")
    assert not (tmp_path / "fresh").exists()
    assert all(r.model is None for r in again[0].values())
    pd.testing.assert_frame_equal(chosen, chosen_again)
    pd.testing.assert_frame_equal(seed_table(again), table)


def test_every_run_has_its_list_coverage_recorded_and_read_back(tmp_path, synthetic):
    import json
    import math
    from mmgrec_lib.evaluation import list_diagnostics
    from mmgrec_lib.experiments.analysis import split_lists
    per_seed, _ = _study(tmp_path)
    ds, path = synthetic(0), tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    book = RunLedger(path)
    cov = {name: run.test.extra["coverage@10"] for name, run in per_seed[0].items()}
    assert all(0 < c <= 1 for c in cov.values()), cov
    for name in ("mmgrec", "lightgcn"):                   # the plain runs: the model's own test top-10 lists
        want = list_diagnostics(split_lists(per_seed[0][name].model, ds, "test", 10, 20), ds)["coverage"]
        assert cov[name] == pytest.approx(want)
    for name, run in per_seed[0].items():                 # recorded on each run's line
        assert book.get(run.checkpoint.stem)["test_coverage@10"] == pytest.approx(cov[name])
    table = seed_table(per_seed, extras=("coverage@10",))
    assert table.set_index("model")["coverage@10_mean"].to_dict() == pytest.approx(cov)
    assert (table["coverage@10_seeds"] == 1).all()
    # a fresh machine reads them back
    again, _ = _study(tmp_path, runs="fresh")
    assert {n: r.test.extra["coverage@10"] for n, r in again[0].items()} == pytest.approx(cov)
    # a line recorded before coverage existed: computed again from the models on disk (the hybrid's from the
    # distilled generator with the recorded beam and weight), the same value
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "test_coverage@10"}, sort_keys=True) + "\n"
                            for r in rows))
    third, _ = _study(tmp_path)
    assert {n: r.test.extra["coverage@10"] for n, r in third[0].items()} == pytest.approx(cov)
    # and on a fresh machine without it: NaN, not a guess
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "test_coverage@10"}, sort_keys=True) + "\n"
                            for r in rows))
    fourth, _ = _study(tmp_path, runs="fresh2")
    assert all(math.isnan(r.test.extra["coverage@10"]) for r in fourth[0].values())
    table4 = seed_table(fourth, extras=("coverage@10",))
    assert math.isnan(table4.loc[0, "coverage@10_mean"]) and table4.loc[0, "coverage@10_seeds"] == 0


def test_hybrid_chooses_on_validation_and_needs_the_teacher_vectors(tmp_path, synthetic):
    per_seed, _ = _study(tmp_path)
    ds, run = synthetic(0), per_seed[0]["mmgrec_teacher"]
    hybrid, table = hybrid_run(ds, run, beams=(20, 30), weights=(0.0, 0.5, 1.0))    # no ledger: computed again
    assert len(table) == 6 and table["chosen"].sum() == 1
    best = table.loc[table["chosen"]].iloc[0]
    assert best["val_recall@10"] == table["val_recall@10"].max() == hybrid.fit.best_score
    assert hybrid.test.mean() == pytest.approx(per_seed[0]["hybrid"].test.mean())   # deterministic
    with pytest.raises(ValueError, match="teacher vectors"):
        hybrid_run(ds, per_seed[0]["mmgrec"], beams=(20,), weights=(1.0,))     # distilled from its own first stage
    with pytest.raises(ValueError, match="beams must be"):
        hybrid_run(ds, run, beams=(10,), weights=(1.0,))                          # narrower than k = 20
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        hybrid_run(ds, run, beams=(20,), weights=(1.5,))


def test_a_recorded_distilled_run_without_its_hybrid_is_trained_again(tmp_path, synthetic):
    per_seed, chosen = _study(tmp_path)
    path = tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    lines = [ln for ln in path.read_text().splitlines() if "_hybrid_" not in ln]
    path.write_text("\n".join(lines) + "\n")                                      # interrupted before the hybrid
    again, chosen_again = _study(tmp_path, runs="fresh")
    assert again[0]["mmgrec_teacher"].model is None                                # the stand-in in the table...
    assert (tmp_path / "fresh").exists()                                           # ...but its model was retrained
    pd.testing.assert_frame_equal(chosen, chosen_again)                            # same seed: same hybrid


def test_bad_study_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no seeds"):
        _study(tmp_path, seeds=())
    with pytest.raises(ValueError, match="unknown baseline"):
        teacher_study("synthetic", [0], RECID, GEN, LOOP, BASE_LOOP, "lightgcnn", {}, 1.0, 1.0, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="needs runs_dir"):
        teacher_study("synthetic", [0], RECID, GEN, LOOP, BASE_LOOP, "lightgcn", {}, 1.0, 1.0, ledger=tmp_path / "l")


# ---------------------------------------------------------------------- the full profile reuses notebook 04's runs
def _profiles(stem: str) -> dict[str, dict]:
    import ast
    from pathlib import Path
    from mmgrec_lib import cli
    nb = Path(__file__).resolve().parent.parent / "notebooks" / f"{stem}.ipynb"
    defaults = {k: ast.literal_eval(v["default"]) for k, v in cli.notebook_parameters(nb).items()}
    return {r["DATASET"]: {**defaults, **r} for r in cli.load_profile(nb, "full")}


def test_full_profile_is_notebook_04s_mmgrec_and_notebook_10s_lightgcn():
    """The `mmgrec` and teacher rows are notebook 04's runs (same settings, so the same run keys), and the teacher is
    the LightGCN point notebook 10 chose (reports/tables/baselines_<dataset>.csv)."""
    from pathlib import Path
    ours, theirs = _profiles("11_external_teacher"), _profiles("04_overall_comparison")
    assert sorted(ours) == ["ml100k", "tiktok"]
    shared = ["SEEDS", "MMGREC_RUNG", "MMGREC_BUDGET", "CODEBOOK_SIZE", "RECID_EPOCHS", "RECID_RQ_EPOCHS", "FINETUNE_ITEM_EMB",
              "TARGETS_PER_INPUT", "EPOCHS", "PATIENCE", "EVAL_EVERY", "BASELINE_EPOCHS", "BASELINE_EVAL_EVERY",
              "BASELINE_PATIENCE", "DEVICE"]
    for dataset, p in ours.items():
        assert {k: p[k] for k in shared} == {k: theirs[dataset][k] for k in shared}, dataset
        assert p["TEACHER"] == "lightgcn" and p["TEACHER_CONFIG"]["dim"] == theirs[dataset]["BASE"]["lightgcn"]["dim"]
        csv = Path(__file__).resolve().parent.parent / "reports" / "tables" / f"baselines_{dataset}.csv"
        row = pd.read_csv(csv).set_index("model").loc["lightgcn"]
        chosen = {k: float(v) if "." in v or "e" in v else int(v)
                  for k, v in (item.split("=") for item in row["config"].split(", "))}
        assert {k: p["TEACHER_CONFIG"][k] for k in chosen} == chosen, dataset
        assert min(p["HYBRID_BEAMS"]) >= 20 and all(0 <= w <= 1 for w in p["HYBRID_WEIGHTS"])


def test_coverage_is_not_written_onto_another_realisation_of_the_run_key(tmp_path, synthetic):
    """The same run key trained again elsewhere can take another path: the coverage of the model at hand is
    neither read from nor written onto a ledger line that records other test numbers (records_run)."""
    import json
    from mmgrec_lib.evaluation import list_diagnostics
    from mmgrec_lib.experiments.analysis import split_lists
    from mmgrec_lib.experiments.recorded import list_coverage, records_run
    per_seed, _ = _study(tmp_path)
    ds, path = synthetic(0), tmp_path / "ledgers" / "seed_runs_synthetic.jsonl"
    run = per_seed[0]["mmgrec"]
    key = run.checkpoint.stem
    want = list_diagnostics(split_lists(run.model, ds, "test", 10, 20), ds)["coverage"]
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    for r in rows:                                        # the line now records another run under the same key
        if r["key"] == key:
            r["test_recall@10"] += 0.125
            r["test_coverage@10"] = 0.999
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    book = RunLedger(path)
    assert not records_run(book.get(key), run)
    assert records_run(book.get(per_seed[0]["lightgcn"].checkpoint.stem), per_seed[0]["lightgcn"])
    assert list_coverage(run, ds, book) == pytest.approx(want)          # the model's, not the line's 0.999
    assert RunLedger(path).get(key)["test_coverage@10"] == 0.999       # and the line keeps what it recorded
    for r in rows:                                        # without the field: still not written onto that line
        r.pop("test_coverage@10", None)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    assert list_coverage(run, ds, RunLedger(path)) == pytest.approx(want)
    assert "test_coverage@10" not in RunLedger(path).get(key)
