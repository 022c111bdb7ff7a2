"""The run ledger: finished grid points recorded by run key, read back on a machine without their checkpoints."""
from __future__ import annotations

import json
import shutil

import pytest

from mmgrec_lib.experiments import tune_baseline
from mmgrec_lib.experiments.ledger import RunLedger, machine_tag

KWARGS = {"n_users": 40, "n_items": 60, "mean_items_per_user": 8.0}
LOOP = {"epochs": 4, "patience": 0, "eval_every": 2}
BASE = {"dim": 8, "batch_size": 64, "device": "cpu"}


def test_ledger_records_sorted_lines_and_reads_them_back(tmp_path):
    path = tmp_path / "ledgers" / "grid.jsonl"
    book = RunLedger(path)
    assert len(book) == 0 and book.get("a") is None
    book.record("b_key", {"val": 0.5, "nan": float("nan"), "n": 3}, commit="abc")
    RunLedger(path).record("a_key", {"val": 0.25}, commit="abc")         # another writer meanwhile
    book.record("c_key", {"val": 0.75}, commit="abc")                    # keeps the other writer's line
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["key"] for r in lines] == ["a_key", "b_key", "c_key"]
    again = RunLedger(path)
    assert "b_key" in again and again.get("b_key") == {"val": 0.5, "nan": None, "n": 3}
    assert lines[1]["commit"] == "abc" and lines[1]["recorded"] and lines[1]["machine"] == machine_tag()
    assert "torch" in lines[1]["machine"]
    RunLedger(path).record("b_key", {"val": 0.5, "n": 3, "seconds": 2.0}, commit="def")  # read back: other seconds
    assert json.loads(path.read_text().splitlines()[1]) == lines[1]           # the line stays its run's
    RunLedger(path).record("b_key", {"val": 0.6}, commit="def", replace=True)  # replaced only when asked
    assert json.loads(path.read_text().splitlines()[1]) == {"key": "b_key", "val": 0.6, "recorded": lines[1]["recorded"],
                                                            "commit": "def", "machine": machine_tag()}


def test_annotate_adds_only_missing_fields_and_needs_a_recorded_run(tmp_path):
    path = tmp_path / "l.jsonl"
    RunLedger(path).record("k", {"val": 0.5}, commit="abc")
    before = path.read_text()
    RunLedger(path).annotate("k", {"val": 0.9, "commit": "zzz"})              # nothing new: the file is untouched
    assert path.read_text() == before
    RunLedger(path).annotate("k", {"val": 0.9, "variant": "full"})
    line = json.loads(path.read_text())
    assert line["val"] == 0.5 and line["variant"] == "full" and line["commit"] == "abc"
    with pytest.raises(KeyError, match=r"l.jsonl: no run 'other'"):
        RunLedger(path).annotate("other", {"variant": "x"})


def test_ledger_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2: not JSON"):
        RunLedger(bad)
    bad.write_text('{"nokey": 1}\n')
    with pytest.raises(ValueError, match=r"line 1: expected an object with a string 'key'"):
        RunLedger(bad)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        RunLedger(tmp_path)
    with pytest.raises(ValueError, match="non-empty string"):
        RunLedger(tmp_path / "ok.jsonl").record("", {})


def test_tune_baseline_reads_points_without_checkpoints_from_the_ledger(tmp_path):
    runs, ledger = tmp_path / "runs", tmp_path / "ledgers" / "baseline_grid_synthetic.jsonl"
    grid = {"lr": [0.001, 0.05]}
    first, chosen = tune_baseline("synthetic", "mf", grid, LOOP, runs, base=BASE, dataset_kwargs=KWARGS,
                                  executor="serial", progress=False, ledger=ledger)
    assert list(first["source"]) == ["run", "run"] and len(RunLedger(ledger)) == 2
    shutil.rmtree(runs)                                                      # a fresh machine: no checkpoints
    again, chosen_again = tune_baseline("synthetic", "mf", grid, LOOP, runs, base=BASE, dataset_kwargs=KWARGS,
                                        executor="serial", progress=False, ledger=ledger)
    assert list(again["source"]) == ["ledger", "ledger"] and chosen_again == chosen
    assert not runs.exists() or not any(runs.glob("*.pt"))                   # nothing was trained
    cols = ["val_recall@10", "best_epoch", "epochs_run", "test_recall@10", "test_ndcg@20", "chosen"]
    assert again[cols].equals(first[cols])
    # a point not in the ledger (a new grid value) trains; a checkpoint present wins over the ledger
    wider, _ = tune_baseline("synthetic", "mf", {"lr": [0.001, 0.05, 0.01]}, LOOP, runs, base=BASE,
                             dataset_kwargs=KWARGS, executor="serial", progress=False, ledger=ledger)
    assert list(wider["source"]) == ["ledger", "ledger", "run"] and len(RunLedger(ledger)) == 3
    # the ledger's facts equal a retrained run's (bit-deterministic on one thread)
    fresh, _ = tune_baseline("synthetic", "mf", grid, LOOP, tmp_path / "other", base=BASE, dataset_kwargs=KWARGS,
                             executor="serial", progress=False)
    assert list(fresh["val_recall@10"]) == list(again["val_recall@10"])


def test_stage_points_cross_lr_and_reg_first_then_one_field_at_a_time():
    from mmgrec_lib.experiments.tuning import choose_point, search_points, stage_points
    grid = {"lr": [1, 2], "reg": [3, 4], "n_layers": [2, 3], "dropout": [0.0, 0.3, 0.5]}
    first = stage_points(grid)
    assert first == [{"lr": 1, "reg": 3, "n_layers": 2, "dropout": 0.0}, {"lr": 1, "reg": 4, "n_layers": 2, "dropout": 0.0},
                     {"lr": 2, "reg": 3, "n_layers": 2, "dropout": 0.0}, {"lr": 2, "reg": 4, "n_layers": 2, "dropout": 0.0}]
    second = stage_points(grid, first[2])
    assert second == [{"lr": 2, "reg": 3, "n_layers": 3, "dropout": 0.0}, {"lr": 2, "reg": 3, "n_layers": 2, "dropout": 0.3},
                      {"lr": 2, "reg": 3, "n_layers": 2, "dropout": 0.5}]
    assert search_points(grid, "staged") == 7 and search_points(grid, "grid") == 24
    assert stage_points({"lr": [1, 2]}, {"lr": 1}) == []                     # primary fields only: one stage
    assert stage_points({"knn_k": [5, 10]}) == [{"knn_k": 5}] and stage_points({"knn_k": [5, 10]}, {"knn_k": 5}) == [{"knn_k": 10}]
    assert choose_point([0.1, 0.3, 0.3]) == 1 and choose_point([None, float("nan"), 0.0]) == 2
    with pytest.raises(ValueError, match="lacks the grid field"):
        stage_points(grid, {"lr": 1})
    with pytest.raises(ValueError, match="search must be one of"):
        search_points(grid, "random")


def test_staged_tuning_trains_the_stages_and_notebook_04_finds_the_same_choice(tmp_path):
    from mmgrec_lib.data import load_dataset
    from mmgrec_lib.experiments import chosen_overrides
    from mmgrec_lib.training import LoopConfig
    runs, ledger = tmp_path / "runs", tmp_path / "grid.jsonl"
    grid = {"lr": [0.001, 0.05], "reg": [0.0, 0.01], "dim": [8, 4]}
    base = {"batch_size": 64, "device": "cpu"}
    table, chosen = tune_baseline("synthetic", "mf", grid, LOOP, runs, base=base, dataset_kwargs=KWARGS,
                                  executor="serial", progress=False, ledger=ledger, search="staged")
    assert list(table["stage"]) == [1, 1, 1, 1, 2] and len(RunLedger(ledger)) == 5
    assert set(table.loc[table["stage"] == 1, "dim"]) == {8} and table.loc[4, "dim"] == 4
    best1 = table[table["stage"] == 1]["val_recall@10"].idxmax()
    assert (table.loc[4, "lr"], table.loc[4, "reg"]) == (table.loc[best1, "lr"], table.loc[best1, "reg"])
    assert table["chosen"].sum() == 1 and table.loc[table["chosen"], "val_recall@10"].iloc[0] == table["val_recall@10"].max()
    ds = load_dataset("synthetic", seed=0, **KWARGS)
    loop = LoopConfig(**LOOP, monitor="recall@10", progress=False)
    shutil.rmtree(runs)
    over, src = chosen_overrides(ds, ["mf"], {"mf": grid}, {"mf": {"batch_size": 64}}, loop, runs, ledger=ledger,
                                 search="staged")
    assert over["mf"] == chosen and "5 points, staged" in src["mf"]
    full, src = chosen_overrides(ds, ["mf"], {"mf": grid}, {"mf": {"batch_size": 64}}, loop, runs, ledger=ledger)
    assert "lr" not in full["mf"] and "5 of 8 runs finished" in src["mf"]          # the full grid is not done
    per_model, src = chosen_overrides(ds, ["mf"], {"mf": grid}, {"mf": {"batch_size": 64}}, loop, runs,
                                      ledger=ledger, search={"mf": "staged"})
    assert per_model["mf"] == chosen
    with pytest.raises(ValueError, match="search must be one of"):
        chosen_overrides(ds, ["mf"], {"mf": grid}, {}, loop, runs, search={"mf": "random"})
    with pytest.raises(ValueError, match="search must be one of"):
        tune_baseline("synthetic", "mf", grid, LOOP, runs, search="random", executor="serial")


def _record_many(args):
    path, start = args
    for i in range(start, start + 20):
        RunLedger(path).record(f"k{i:03d}", {"val": i}, commit="x")


def test_ledger_writers_in_parallel_processes_keep_every_line(tmp_path):
    import multiprocessing
    path = tmp_path / "grid.jsonl"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_record_many, [(path, 0), (path, 100)])
    assert len(RunLedger(path)) == 40


def test_ledger_summary_and_the_cli_per_model(tmp_path, capsys):
    from mmgrec_lib import cli
    path = tmp_path / "grid.jsonl"
    book = RunLedger(path)
    book.record("mf_a", {"model": "mf", "point": "mf lr=0.001", "val_recall@10": 0.20}, commit="x")
    book.record("mf_b", {"model": "mf", "point": "mf lr=0.005", "val_recall@10": 0.22}, commit="x")
    book.record("mf_c", {"model": "mf", "point": "lr=0.001", "phase": "final", "val_recall@10": 0.24}, commit="x")
    book.record("pop", {"model": "mostpop", "point": "mostpop ", "val_recall@10": 0.1}, commit="x")
    rows = {r["model"]: r for r in RunLedger(path).summary()}
    assert rows["mf"]["grid_points"] == 2 and rows["mf"]["best_val"] == 0.22 and rows["mf"]["best_point"] == "mf lr=0.005"
    assert rows["mf"]["finals"] == 1 and rows["mf"]["best_final"] == "lr=0.001" and rows["mf"]["best_final_val"] == 0.24
    assert rows["mostpop"]["finals"] == 0 and rows["mostpop"]["best_final_val"] is None
    assert cli.main(["ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "best 0.2200 (mf lr=0.005); 1 finalist(s) continued, best 0.2400 (lr=0.001)" in out
    assert cli.main(["ledger", str(tmp_path / "missing.jsonl")]) == 1
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert cli.main(["ledger", str(tmp_path / "bad.jsonl")]) == 1
    assert "bad.jsonl, line 1: not JSON" in capsys.readouterr().err


def test_the_cli_summarises_a_seed_run_ledger_per_model(tmp_path, capsys):
    from mmgrec_lib import cli
    from mmgrec_lib.experiments.recorded import encode_hits, is_seed_run_ledger, seed_run_summary
    import torch
    path = tmp_path / "seed_runs_x.jsonl"
    book = RunLedger(path)
    hits = encode_hits(torch.zeros(3, 20, dtype=torch.bool))
    for key, model, r10, secs in (("a", "mf", 0.2, 10.0), ("b", "mf", 0.3, 20.0), ("c", "mmgrec", 0.25, 600.0)):
        book.record(key, {"model": model, "test_recall@10": r10, "test_ndcg@10": r10 / 2, "train_seconds": secs,
                          "test_hits": hits}, commit="abc")
    book.record("d", {"model": "mmgrec", "test_recall@10": 0.1, "test_ndcg@10": 0.05, "train_seconds": 5.0,
                      "test_hits": hits}, commit="abc")
    book.annotate("d", {"variant": "hkmeans", "model": "changed?"})          # an ablation variant of notebook 05
    assert RunLedger(path).get("d")["model"] == "mmgrec" and RunLedger(path).get("d")["variant"] == "hkmeans"
    assert is_seed_run_ledger(RunLedger(path)) and not is_seed_run_ledger(RunLedger(tmp_path / "none.jsonl"))
    rows = {r["model"]: r for r in seed_run_summary(RunLedger(path))}
    assert rows["mmgrec (hkmeans)"]["runs"] == 1 and rows["mmgrec"]["runs"] == 1        # variants count apart
    assert rows["mf"]["runs"] == 2 and rows["mf"]["recall@10"] == pytest.approx(0.25)
    assert rows["mf"]["train_seconds"] == 30.0 and rows["mmgrec"]["commits"] == ["abc"]
    assert cli.main(["ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 recorded runs, 0.2 h of training" in out
    assert "mf           2 run(s), mean test Recall@10 0.2500, NDCG@10 0.1250; 30 s" in out
