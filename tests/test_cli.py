"""The batch runner: profile validation, planning, execution and the failure summary."""
import json

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
    (line,) = fig.axes[0].get_lines()
    assert list(line.get_xdata()) == [40.0] and fig.axes[0].get_xlabel() == "training seconds"
    assert list(fig.axes[1].get_lines()[0].get_xdata()) == [10.0, 40.0]
    with pytest.raises(ValueError, match="train_s"):
        plots.training_curves({"b": [{"epoch": 1, "loss": 1.0}]}, x="time")
    with pytest.raises(ValueError, match="x must be"):
        plots.training_curves(hist, x="step")


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
