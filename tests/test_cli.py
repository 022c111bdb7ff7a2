"""The batch runner: profile validation, planning, execution and the failure summary."""
import json
import os

import nbformat
import pytest

from mmgrec_lib import cli


def _notebook(path, body="with open(f'{REPORTS_DIR}/out.txt', 'w') as fh:\n    fh.write(str(X))"):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("X = 1  # a number\nDATASET = 'tiny'  # dataset\nREPORTS_DIR = 'out'  # outputs")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def nbdir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    _notebook(d / "00_demo.ipynb")
    (d / "00_demo.yaml").write_text("smoke:\n  - {}\nfull:\n  - {X: 2, DATASET: a}\n  - {X: 3, DATASET: b}\n")
    return d


def test_plan_injects_reports_dir_and_names_outputs(nbdir, tmp_path):
    runs = cli.plan("full", notebooks_dir=nbdir, reports_dir=tmp_path / "rep")
    assert [r.params["X"] for r in runs] == [2, 3]
    assert all(r.params["REPORTS_DIR"] == str(tmp_path / "rep") for r in runs)
    assert [r.output.name for r in runs] == ["00_demo__a.ipynb", "00_demo__b.ipynb"]
    assert [r.params["DATASET"] for r in cli.plan("full", notebooks_dir=nbdir, datasets=["b"])] == ["b"]


def test_unknown_parameter_is_named(nbdir):
    (nbdir / "00_demo.yaml").write_text("full:\n  - {X: 2, EPOCHZ: 3}\n")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['EPOCHZ'\]"):
        cli.plan("full", notebooks_dir=nbdir)


def test_missing_profile_file_and_unknown_notebook(nbdir):
    (nbdir / "00_demo.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="00_demo.yaml"):
        cli.plan("smoke", notebooks_dir=nbdir)
    with pytest.raises(ValueError, match="no such notebook"):
        cli.plan("smoke", only=["99"], notebooks_dir=nbdir)


def test_notebook_without_parameters_cell(nbdir):
    nb = nbformat.read(nbdir / "00_demo.ipynb", as_version=4)
    nb.cells[0].metadata["tags"] = []
    nbformat.write(nb, nbdir / "00_demo.ipynb")
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        cli.plan("smoke", notebooks_dir=nbdir)


def test_execute_runs_and_reports_failures(nbdir, tmp_path):
    _notebook(nbdir / "01_broken.ipynb", body="raise RuntimeError('boom')")
    (nbdir / "01_broken.yaml").write_text("smoke:\n  - {}\n")
    rep = tmp_path / "rep"
    rep.mkdir()
    runs = cli.plan("smoke", notebooks_dir=nbdir, reports_dir=rep)
    failures = cli.execute(runs)
    assert (rep / "out.txt").read_text() == "1"
    assert (rep / "executed" / "00_demo__tiny.ipynb").is_file()
    assert len(failures) == 1 and "RuntimeError: boom" in failures[0][1]
    executed = json.loads((rep / "executed" / "01_broken__tiny.ipynb").read_text())
    assert any(o.get("ename") == "RuntimeError" for c in executed["cells"] for o in c.get("outputs", []))


def test_readme_results_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n{cli.RESULTS_START}\nold\n{cli.RESULTS_END}\ntail\n")
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "baselines_x.md").write_text("| a |\n|---|\n| 1 |\n")
    assert cli.update_readme(readme, tables)
    text = readme.read_text()
    assert "baselines_x" in text and "old" not in text and text.endswith("tail\n")


def test_table_date_is_its_last_commit(tmp_path):
    import subprocess
    import time

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_DATE": "2001-02-03T12:00:00Z",
                            "GIT_COMMITTER_DATE": "2001-02-03T12:00:00Z", "GIT_AUTHOR_NAME": "t",
                            "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    git("init", "-q")
    table = tmp_path / "t.md"
    table.write_text("| a |\n")
    git("add", "t.md")
    git("commit", "-q", "-m", "t")
    assert cli.table_date(table) == "2001-02-03"               # committed and unchanged: the commit's date
    table.write_text("| b |\n")
    assert cli.table_date(table) == time.strftime("%Y-%m-%d", time.gmtime())   # rewritten: today


def test_real_notebooks_have_profiles():
    for nb in cli.list_notebooks():
        params = cli.notebook_parameters(nb)
        assert "REPORTS_DIR" in params and "SEED" in params, nb
        for profile in cli.PROFILES:
            for run in cli.load_profile(nb, profile):
                assert set(run) <= set(params), (nb, run)


def test_training_curves_use_one_colour_per_model():
    import matplotlib
    matplotlib.use("Agg")
    from mmgrec_lib.reporting import plots

    hist = {"pop": [{"epoch": 0, "recall@10": 0.1}],                       # no loss: must not shift colours
            "mf": [{"epoch": 1, "loss": 1.0, "recall@10": 0.2}, {"epoch": 2, "loss": 0.5, "recall@10": 0.3}]}
    fig = plots.training_curves(hist)
    left = {l.get_label(): l.get_color() for l in fig.axes[0].get_lines()}
    right = {l.get_label(): l.get_color() for l in fig.axes[1].get_lines()}
    assert right["mf"] == left["mf"]


def test_training_curves_against_time_use_cumulative_training_seconds():
    import matplotlib
    matplotlib.use("Agg")
    import pytest

    from mmgrec_lib.reporting import plots

    hist = {"a": [{"epoch": 1, "loss": 1.0, "train_s": 10.0},
                  {"epoch": 2, "loss": 0.5, "train_s": 30.0, "recall@10": 0.3}]}
    fig = plots.training_curves(hist, x="time")
    (line,) = [l for l in fig.axes[0].get_lines() if l.get_gid() != plots.BEST_EPOCH_GID]
    assert list(line.get_xdata()) == [40.0] and fig.axes[0].get_xlabel() == "cumulative training seconds"
    assert list(fig.axes[1].get_lines()[0].get_xdata()) == [10.0, 40.0]
    best = [l for l in fig.axes[0].get_lines() if l.get_gid() == plots.BEST_EPOCH_GID]
    assert [list(b.get_xdata()) for b in best] == [[40.0]]                  # best epoch at its training time
    with pytest.raises(ValueError, match="train_s"):
        plots.training_curves({"b": [{"epoch": 1, "loss": 1.0}]}, x="time")
    with pytest.raises(ValueError, match="x must be"):
        plots.training_curves(hist, x="step")


def test_training_curves_name_the_dataset_and_mark_the_best_epoch():
    import matplotlib
    matplotlib.use("Agg")
    from _figure_checks import assert_labelled, assert_legends_outside

    from mmgrec_lib.reporting import plots

    hist = {"mf": [{"epoch": e, "loss": 1.0 / e, **({"recall@10": r} if r is not None else {})}
                   for e, r in zip(range(1, 7), [None, 0.2, None, 0.3, None, 0.3])],    # tie: the first max counts
            "pop": [{"epoch": 0, "recall@10": 0.1}]}
    fig = plots.training_curves(hist, dataset="tinyset")
    assert_labelled(fig, "tinyset")
    assert fig.axes[1].get_ylabel().startswith("training loss")
    assert_legends_outside(fig)
    assert all(float(t).is_integer() for ax in fig.axes for t in ax.get_xticks())   # whole epochs
    best = {l.get_color(): (list(l.get_xdata()), list(l.get_ydata()))
            for l in fig.axes[0].get_lines() if l.get_gid() == plots.BEST_EPOCH_GID}
    colours = {l.get_label(): l.get_color() for l in fig.axes[0].get_lines() if l.get_gid() != plots.BEST_EPOCH_GID}
    assert best[colours["mf"]] == ([4], [0.3]) and best[colours["pop"]] == ([0], [0.1])
    loss_star = [l for l in fig.axes[1].get_lines() if l.get_gid() == plots.BEST_EPOCH_GID]
    assert [list(l.get_ydata()) for l in loss_star] == [[0.25]]              # mf's loss at epoch 4
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "best epoch (max validation recall@10)" in legend and {"mf", "pop"} <= set(legend)


def test_metric_bars_name_metrics_split_and_dataset():
    import matplotlib
    matplotlib.use("Agg")
    import pandas as pd
    from _figure_checks import assert_labelled, assert_legends_outside

    from mmgrec_lib.reporting import plots

    table = pd.DataFrame({"model": ["a", "b"], "recall@10": [0.1, 0.2], "ndcg@10": [0.1, 0.3],
                          "recall@20": [0.2, 0.3], "ndcg@20": [0.2, 0.4]})
    fig = plots.metric_bars(table, dataset="tinyset", title="MMGRec and baselines")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test Recall@K / NDCG@K (K = 10, 20)"
    assert ax.get_title() == "tinyset: MMGRec and baselines"
    assert_labelled(fig)
    assert_legends_outside(fig)
    val = plots.metric_bars(table, metrics=("recall@10",), split="validation")
    assert val.axes[0].get_ylabel() == "validation Recall@K (K = 10)" and "validation" in val.axes[0].get_title()


@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_generator_profiles_reuse_the_runs_of_notebooks_00_and_01(profile):
    """Notebook 03 re-evaluates 00's baselines and 01's Rec-IDs: its copies of their settings must match,
    per dataset and profile, or the batch silently retrains them under different settings."""
    nbs = {nb.stem[:2]: nb for nb in cli.list_notebooks()}

    def runs(key):
        import ast
        defaults = {k: ast.literal_eval(v["default"]) for k, v in cli.notebook_parameters(nbs[key]).items()}
        return {r.get("DATASET", defaults["DATASET"]): {**defaults, **r} for r in cli.load_profile(nbs[key], profile)}

    base, recid, gen = runs("00"), runs("01"), runs("03")
    for dataset, g in gen.items():
        if dataset in base:
            b = base[dataset]
            assert (g["BASELINE_EPOCHS"], g["BASELINE_EVAL_EVERY"], g["BASELINE_PATIENCE"]) == \
                (b["EPOCHS"], b["EVAL_EVERY"], b["PATIENCE"]), dataset
        if dataset in recid:
            r = recid[dataset]
            assert (g["RECID_EPOCHS"], g["RECID_RQ_EPOCHS"], g["CODEBOOK_SIZE"]) == \
                (r["EPOCHS"], r["RQ_EPOCHS"], r["CODEBOOK_SIZE"]), dataset


def test_executed_copy_has_inline_figures_and_no_progress_bars_even_under_agg(nbdir, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")           # what .ci/run and many shells set
    body = ("import matplotlib.pyplot as plt\nfrom mmgrec_lib.data.progress import progress_bar\n"
            "for _ in progress_bar(range(3), desc='bar'):\n    pass\n"
            "fig, ax = plt.subplots()\nax.plot([0, 1], [1, 0])\nplt.show()")
    _notebook(nbdir / "01_figure.ipynb", body=body)
    (nbdir / "01_figure.yaml").write_text("smoke:\n  - {}\n")
    rep = tmp_path / "rep"
    runs = cli.plan("smoke", only=["01"], notebooks_dir=nbdir, reports_dir=rep)
    assert cli.execute(runs, profile="smoke") == []
    executed = json.loads(runs[0].output.read_text())
    outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not any("bar" in str(o.get("text", "")) or "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs)
    import os
    assert os.environ["MPLBACKEND"] == "Agg"           # restored for the runner process
    times = json.loads((rep / cli.RUN_TIMES).read_text())
    assert times["01_figure__tiny"]["profile"] == "smoke" and "executed/01_figure__tiny.ipynb" in times["01_figure__tiny"]["writes"]


def test_plan_says_what_it_filters_out_and_why(nbdir, monkeypatch):
    monkeypatch.delenv("MMGREC_DATA", raising=False)
    _notebook(nbdir / "01_needs_data.ipynb")
    (nbdir / "01_needs_data.yaml").write_text("smoke:\n  - {DATASET: tiktok}\nfull:\n  - {DATASET: tiktok}\n")
    p = cli.build_plan("full", notebooks_dir=nbdir, datasets=["tiktok"])
    assert [r.notebook.stem for r in p.runs] == []
    reasons = {s.notebook.stem: s.reason for s in p.skipped}
    assert "not among --dataset" in reasons["00_demo"] and "MMGREC_DATA" in reasons["01_needs_data"]
    text = cli.describe(cli.build_plan("smoke", notebooks_dir=nbdir), "smoke")
    assert "run   00_demo" in text and "skip  01_needs_data" in text and "expected time: unknown" in text


def test_unknown_dataset_lists_the_valid_names(nbdir, capsys):
    with pytest.raises(ValueError, match=r"unknown dataset; valid names: ml100k, tiktok.*folder:"):
        cli.build_plan("full", notebooks_dir=nbdir, datasets=["movielens"])
    assert cli.main(["reports", "--dataset", "movielens", "--dry-run"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_folder_dataset_runs_each_notebook_once_with_a_safe_tag(nbdir, tmp_path):
    data = tmp_path / "my data"
    data.mkdir()
    (data / "interactions.csv").write_text("user,item\na,x\n")
    runs = cli.plan("full", notebooks_dir=nbdir, datasets=[f"folder:{data}"])
    assert len(runs) == 1 and runs[0].params["DATASET"] == f"folder:{data.resolve()}" and runs[0].params["X"] == 2
    assert runs[0].output.name == "00_demo__my-data.ipynb"
    with pytest.raises(ValueError, match="missing"):
        cli.plan("full", notebooks_dir=nbdir, datasets=[f"folder:{tmp_path / 'missing'}"])


def test_describe_estimates_from_recorded_times_and_names_rewrites(nbdir, tmp_path):
    rep = tmp_path / "rep"
    runs = cli.plan("full", notebooks_dir=nbdir, reports_dir=rep)
    cli.record_run_time(rep, runs[0], "full", 3600.0, ["tables/t_a.csv"])
    text = cli.describe(cli.build_plan("full", notebooks_dir=nbdir, reports_dir=rep), "full")
    assert "more than 60m00s" in text and "1 run(s) have no recorded time" in text
    assert (rep / cli.RUN_TIMES).stat().st_mode & 0o044      # readable by others, like the figures


def test_written_files_are_those_changed_during_the_run_on_its_dataset(tmp_path):
    """The files a run wrote are those new or modified since its own snapshot, on its dataset only; a file the
    notebook before finished just before this one started is not among them, however close in time."""
    import os
    rep = tmp_path / "rep"
    for sub in ("tables", "executed"):
        (rep / sub).mkdir(parents=True)
    prev = rep / "executed" / "03_x__ml100k.ipynb"
    prev.write_text("{}")
    kept = rep / "tables" / "kept_ml100k.csv"
    kept.write_text("a\n")
    before = cli._report_stamps(rep, "ml100k")
    assert set(before) == {"executed/03_x__ml100k.ipynb", "tables/kept_ml100k.csv"}
    (rep / "tables" / "t_ml100k.csv").write_text("new\n")                  # new during the run
    (rep / "tables" / "t_tiktok.csv").write_text("other dataset\n")        # another lane's file
    st = kept.stat()
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns + 1))                 # rewritten during the run
    assert cli._written_since(rep, before, "ml100k") == ["tables/kept_ml100k.csv", "tables/t_ml100k.csv"]


def test_wrong_typed_profile_value_is_named_before_any_kernel_starts(nbdir, monkeypatch, capsys):
    """Issue 13, row 1: a value of the wrong type for its parameter's default stops the plan, naming the YAML
    file, the notebook, the run, the parameter, the value and the expected type; nothing is executed."""
    (nbdir / "00_demo.yaml").write_text("full:\n  - {X: 2, DATASET: a}\n  - {X: three, DATASET: b}\n")
    with pytest.raises(ValueError, match=r"00_demo\.yaml: X: 'three' in run 2 of profile 'full' of "
                                         r"00_demo\.ipynb: expected int, got str \(the parameters cell has X = 1\)"):
        cli.build_plan("full", notebooks_dir=nbdir)
    monkeypatch.setattr(cli, "list_notebooks", lambda notebooks_dir=None: sorted(nbdir.glob("[0-9][0-9]_*.ipynb")))
    monkeypatch.setattr(cli, "execute", lambda *a, **k: pytest.fail("a kernel was started"))
    assert cli.main(["reports", "--profile", "full"]) == 2
    assert "expected int, got str" in capsys.readouterr().err


def test_profile_values_of_the_right_types_pass(nbdir):
    (nbdir / "00_demo.yaml").write_text("full:\n  - {X: 2, DATASET: a, REPORTS_DIR: elsewhere}\n")
    assert cli.plan("full", notebooks_dir=nbdir)[0].params["X"] == 2


def test_datasets_run_side_by_side_and_each_in_order(nbdir, tmp_path):
    """--jobs 2: the two datasets' notebooks overlap in time, a dataset's notebooks keep their order (01 reads
    what 00 wrote for its dataset), every kernel runs on one CPU thread and its own sweeps get the CPUs divided
    by the two lanes."""
    stamp = ("import os, time, json\nstart = time.time(); time.sleep(1.5)\n"
             "rec = {'start': start, 'end': time.time(), 'threads': os.environ.get('OMP_NUM_THREADS'), "
             "'workers': os.environ.get('MMGREC_WORKERS')}\n")
    _notebook(nbdir / "00_demo.ipynb", body=stamp + "open(f'{REPORTS_DIR}/{DATASET}_00.json', 'w').write(json.dumps(rec))")
    _notebook(nbdir / "01_next.ipynb", body=stamp + "prev = json.load(open(f'{REPORTS_DIR}/{DATASET}_00.json'))\n"
                                                      "open(f'{REPORTS_DIR}/{DATASET}_01.json', 'w').write("
                                                      "json.dumps({**rec, 'after': prev['end'] <= start}))")
    (nbdir / "01_next.yaml").write_text("full:\n  - {DATASET: a}\n  - {DATASET: b}\n")
    rep = tmp_path / "rep"
    rep.mkdir()
    runs = cli.plan("full", notebooks_dir=nbdir, reports_dir=rep)
    assert [[r.output.name for r in lane] for lane in cli.lanes(runs)] == \
        [["00_demo__a.ipynb", "01_next__a.ipynb"], ["00_demo__b.ipynb", "01_next__b.ipynb"]]
    assert "side by side: 2 datasets" in cli.describe(cli.Plan(runs, [], rep), "full", jobs=2)
    assert cli.execute(runs, jobs=2) == []
    rec = {f.stem: json.loads(f.read_text()) for f in rep.glob("*.json")}
    assert rec["a_01"]["after"] and rec["b_01"]["after"]
    assert {r["threads"] for r in rec.values()} == {"1"}
    assert {r["workers"] for r in rec.values()} == {str(max(1, (os.cpu_count() or 1) // 2))}
    a = (rec["a_00"]["start"], rec["a_01"]["end"])
    b = (rec["b_00"]["start"], rec["b_01"]["end"])
    assert max(a[0], b[0]) < min(a[1], b[1])                        # the two lanes overlapped


def test_schedule_estimate():
    assert cli._schedule_seconds([100.0, 60.0, 50.0], 2) == 110.0
    assert cli._schedule_seconds([100.0, 60.0], 1) == 160.0 and cli._schedule_seconds([], 2) == 0.0


def test_committed_readme_results_match_the_tables(tmp_path):
    """The README's results section is what ``mmgrec readme`` writes from ``reports/tables`` (a table regenerated
    without refreshing the README fails here); the headings' dates are left out, as they depend on git."""
    import re

    readme = cli.REPO / "README.md"
    tables = cli.REPO / "reports" / "tables"
    if not readme.is_file() or not tables.is_dir():
        pytest.skip("README.md or reports/tables missing (not a checkout of the repository)")
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text())
    assert cli.update_readme(copy, tables)

    def tables_in(text):                                  # {table name: its text}, in the section's order
        body = text.split(cli.RESULTS_START, 1)[1].split(cli.RESULTS_END, 1)[0]
        parts = re.split(r"^#### `([^`]+)` \([^)]*\)$", body, flags=re.M)
        return dict(zip(parts[1::2], parts[2::2]))
    want, have = tables_in(copy.read_text()), tables_in(readme.read_text())
    stale = [name for name in want if have.get(name) != want[name]] + [name for name in have if name not in want]
    assert list(want) == list(have) and not stale, f"README.md's results section is out of date for {stale}: " \
                                                   "run `mmgrec readme`"
