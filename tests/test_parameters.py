"""Notebook parameters (issue 13, rows 1-2): the type rules shared by the runner and the in-notebook check,
and ``check_parameters`` stopping a plain ``papermill -p`` run with an unknown or wrong-typed parameter."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from mmgrec_lib.reporting.parameters import (ANY, INJECTED_MARKER, ParameterError, check_parameters,
                                             declared_parameters, expected_type, literal, type_problem)

PARAMS = 'EPOCHS = 3  # epochs\nLR = 0.01\nNAME = "x"\nFLAG = False\nSIZES = [1, 2]\nEXTRA = None\nDERIVED = 2 * 3'
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("default,value,ok", [
    ("3", 4, True), ("3", 4.0, False), ("3", True, False), ("3", "4", False),
    ("0.01", 1, True), ("0.01", 0.5, True), ("0.01", False, False), ("0.01", "1e-3", False),
    ("False", True, True), ("False", 0, False), ('"cpu"', "cuda", True), ('"cpu"', 1, False),
    ("[1, 2]", [3], True), ("[1, 2]", "1,2", False), ("None", "anything", True), ("None", 3, True),
    ("2 * 3", "anything", True), ("{'a': 1}", {"b": 2}, True), ("{'a': 1}", [1], False),
])
def test_type_rules(default, value, ok):
    assert (type_problem(value, expected_type(literal(default))) is None) == ok


def test_annotations_name_the_type():
    assert expected_type(None, "int") is int and expected_type(literal("3"), "float") is float
    assert expected_type(literal("3"), "Optional[int]") is int      # unknown annotation: the default decides
    assert expected_type(literal("x + 1")) is ANY


def test_declared_parameters_reads_defaults_and_annotations():
    declared = declared_parameters(PARAMS + "\nK: int = 5\nA = B = 1")
    assert declared["EPOCHS"][0] == 3 and declared["NAME"][0] == "x" and declared["K"] == (5, "int")
    assert expected_type(*declared["DERIVED"]) is ANY and expected_type(*declared["A"]) is ANY
    with pytest.raises(ParameterError, match="not valid Python"):
        declared_parameters("X = (")


def _history(injected: str | None):
    cells = ["", "import os", PARAMS]
    if injected is not None:
        cells.append(f"{INJECTED_MARKER}\n{injected}\n")
    return cells + ["from mmgrec_lib.reporting import check_parameters\ncheck_parameters(globals())"]


def test_check_parameters_accepts_declared_names_of_the_right_type():
    ns = {"EPOCHS": 5, "LR": 1, "In": _history("EPOCHS = 5\nLR = 1\n")}
    assert check_parameters(ns) == {"EPOCHS": 5, "LR": 1}


def test_check_parameters_names_unknown_and_wrong_typed_parameters():
    ns = {"EPOCHS": "three", "EPOCHZ": 5, "In": _history('EPOCHS = "three"\nEPOCHZ = 5\n')}
    with pytest.raises(ParameterError) as info:
        check_parameters(ns)
    msg = str(info.value)
    assert "unknown parameter(s) ['EPOCHZ']" in msg and "'DERIVED', 'EPOCHS', 'EXTRA'" in msg
    assert "parameter EPOCHS = 'three': expected int, got str (its default is 3)" in msg


def test_nothing_injected_nothing_checked():
    assert check_parameters({"In": _history(None)}) == {}               # interactive run, papermill without -p
    assert check_parameters({}) == {}                                      # not under IPython
    # a cell that merely starts with the marker but is no plain list of assignments is not papermill's
    assert check_parameters({"In": ["", PARAMS, "# Parameters\nprint(1)", "check_parameters(globals())"]}) == {}


def test_project_notebooks_parameters_cells_do_not_start_with_papermills_marker():
    """check_parameters tells papermill's injected cell by its first line: a parameters cell must not
    start with the same comment."""
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(cells) == 1, path.name
        first = next((ln.strip() for ln in "".join(cells[0]["source"]).splitlines() if ln.strip()), "")
        assert first != INJECTED_MARKER, path.name


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("EPOCHS = 3  # epochs\nNAME = 'x'")
    params.metadata["tags"] = ["parameters"]
    check = nbformat.v4.new_code_cell("from mmgrec_lib.reporting import check_parameters\n"
                                      "check_parameters(globals())")
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), params, check,
                nbformat.v4.new_code_cell("open('ran.txt', 'w').write(str(EPOCHS))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_papermill_run_with_an_unknown_parameter_stops_in_the_check_cell(tmp_path):
    """Row 2 end to end: plain papermill (the README's route) only warns about EPOCHZ; the check cell stops
    the run before any later cell, naming it. A good run passes the check."""
    pm = pytest.importorskip("papermill")
    nb = _notebook(tmp_path / "demo.ipynb")
    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(nb), str(tmp_path / "bad.ipynb"), parameters={"EPOCHZ": 5, "EPOCHS": "three"},
                            cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    assert info.value.ename == "ParameterError"
    assert "unknown parameter(s) ['EPOCHZ']" in info.value.evalue
    assert "parameter EPOCHS = 'three': expected int, got str" in info.value.evalue
    assert not (tmp_path / "ran.txt").exists()
    pm.execute_notebook(str(nb), str(tmp_path / "good.ipynb"), parameters={"EPOCHS": 7}, cwd=str(tmp_path),
                        progress_bar=False, kernel_name="python3")
    assert (tmp_path / "ran.txt").read_text() == "7"
