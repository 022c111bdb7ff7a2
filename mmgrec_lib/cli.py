"""``mmgrec``: the batch runner that regenerates the reports with papermill.

Each notebook ``notebooks/NN_name.ipynb`` has a profile file ``notebooks/NN_name.yaml``::

    smoke:            # a list of runs; each run is a dict of parameters for the notebook
      - {}            # {} = the saved defaults (the smoke profile)
    full:
      - {DATASET: ml100k, EPOCHS: 300}
      - {DATASET: tiktok, EPOCHS: 300}

``mmgrec reports --profile full`` executes every run with papermill (working directory ``notebooks/``),
injects ``REPORTS_DIR`` (``reports`` for full, ``reports/smoke`` otherwise) and writes executed copies
to ``<REPORTS_DIR>/executed/<notebook>__<dataset>.ipynb``. Parameter names are checked against each
notebook's ``parameters`` cell before anything runs; failures are summarised at the end.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PROFILES = ("smoke", "full")
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Run:
    notebook: Path
    params: dict
    output: Path

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items() if k != "REPORTS_DIR")
        return f"{self.notebook.stem} [{extra}]"


def list_notebooks(notebooks_dir: Path = NOTEBOOKS) -> list[Path]:
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path: Path) -> dict:
    """Names and defaults of a notebook's ``parameters`` cell (via papermill's inspector)."""
    import papermill as pm

    params = pm.inspect_notebook(str(path))
    if not params:
        raise ValueError(f"{path}: no cell tagged 'parameters'; papermill cannot parametrise it")
    return params


def load_profile(notebook: Path, profile: str) -> list[dict]:
    """The list of parameter dicts for ``profile`` from the notebook's YAML file."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    spec_path = notebook.with_suffix(".yaml")
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: profile file missing (needs '{profile}:' with a list of runs)")
    try:
        spec = yaml.safe_load(spec_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{spec_path}: not valid YAML: {exc}") from exc
    runs = spec.get(profile)
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"{spec_path}: '{profile}' must be a list of parameter mappings")
    return runs


def plan(profile: str, only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS,
         reports_dir: Path | None = None, datasets: list[str] | None = None) -> list[Run]:
    """Build the list of runs, validating every parameter name against the notebooks."""
    reports = Path(reports_dir) if reports_dir else (REPO / "reports" if profile == "full" else REPO / "reports" / "smoke")
    notebooks = list_notebooks(notebooks_dir)
    if only:
        unknown = [o for o in only if not any(nb.stem == o or nb.stem.startswith(o) for nb in notebooks)]
        if unknown:
            raise ValueError(f"--only {unknown}: no such notebook; known: {[nb.stem for nb in notebooks]}")
        notebooks = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
    runs = []
    for nb in notebooks:
        known = notebook_parameters(nb)
        for params in load_profile(nb, profile):
            bad = sorted(set(params) - set(known))
            if bad:
                raise ValueError(f"{nb.with_suffix('.yaml')}: unknown parameter(s) {bad} for {nb.name}; "
                                 f"its parameters cell defines {sorted(known)}")
            full = {**params, "REPORTS_DIR": str(reports)}
            dataset = params.get("DATASET") or _default(known.get("DATASET"))
            if datasets and dataset not in datasets:
                continue
            tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(params.get("RUN_TAG") or dataset or "default"))
            runs.append(Run(nb, full, reports / "executed" / f"{nb.stem}__{tag}.ipynb"))
    return runs


def _default(param: dict | None):
    if not param:
        return None
    try:
        return yaml.safe_load(param.get("default", "null"))
    except yaml.YAMLError:
        return None


def execute(runs: list[Run], kernel: str = "python3", log_output: bool = False) -> list[tuple[Run, str]]:
    """Run every notebook; return ``(run, error message)`` for the failures."""
    import papermill as pm
    from tqdm.auto import tqdm

    failures = []
    bar = tqdm(runs, desc="notebooks", unit="nb")
    for run in bar:
        bar.set_postfix_str(run.label)
        run.output.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        try:
            pm.execute_notebook(str(run.notebook), str(run.output), parameters=run.params, kernel_name=kernel,
                                cwd=str(run.notebook.parent), progress_bar=False, log_output=log_output)
            tqdm.write(f"ok    {run.label}  ({time.time() - start:.0f}s) -> {_rel(run.output)}")
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell traceback
            msg = _short_error(exc)
            failures.append((run, msg))
            tqdm.write(f"FAIL  {run.label}  ({time.time() - start:.0f}s): {msg}\n      see {_rel(run.output)}")
    return failures


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _short_error(exc: Exception) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def update_readme(readme: Path = REPO / "README.md", tables_dir: Path = REPO / "reports" / "tables") -> bool:
    """Replace the README's results section with the Markdown tables found in ``reports/tables``."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if RESULTS_START not in text or RESULTS_END not in text:
        return False
    parts = []
    for md in sorted(tables_dir.glob("*.md")):
        stamp = time.strftime("%Y-%m-%d", time.gmtime(md.stat().st_mtime))
        parts.append(f"#### `{md.stem}` ({stamp})\n\n{md.read_text().strip()}\n")
    body = "\n".join(parts) if parts else "_No tables yet: run `make reports`._\n"
    head, rest = text.split(RESULTS_START, 1)
    _, tail = rest.split(RESULTS_END, 1)
    readme.write_text(f"{head}{RESULTS_START}\n{body}\n{RESULTS_END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmgrec", description="MMGRec workbench: regenerate reports.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reports", help="run the notebooks with papermill for a profile")
    rep.add_argument("--profile", choices=PROFILES, default="smoke", help="parameter profile (default: smoke)")
    rep.add_argument("--only", action="append", help="notebook name or prefix (repeatable), e.g. 00 or 01_recid")
    rep.add_argument("--dataset", action="append", help="only runs on this dataset (repeatable)")
    rep.add_argument("--reports-dir", type=Path, help="override the reports folder")
    rep.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    rep.add_argument("--dry-run", action="store_true", help="validate and list the runs, execute nothing")
    rep.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")
    sub.add_parser("list", help="list notebooks and their parameters")
    sub.add_parser("readme", help="refresh the README results section from reports/tables")
    args = parser.parse_args(argv)

    if args.command == "list":
        for nb in list_notebooks():
            params = notebook_parameters(nb)
            print(f"{nb.name}")
            for name, p in params.items():
                print(f"    {name} = {p['default']}    # {p.get('help', '')}")
        return 0
    if args.command == "readme":
        print("README updated" if update_readme() else "README has no results markers; nothing done")
        return 0
    try:
        runs = plan(args.profile, args.only, reports_dir=args.reports_dir, datasets=args.dataset)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mmgrec: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print("mmgrec: no runs match", file=sys.stderr)
        return 2
    if args.dry_run:
        for r in runs:
            print(f"{r.label} -> {_rel(r.output)}")
        return 0
    os.environ.setdefault("MPLBACKEND", "Agg")
    start = time.time()
    failures = execute(runs, kernel=args.kernel, log_output=args.log_output)
    if args.profile == "full" and args.reports_dir is None:
        update_readme()
    print(f"\n{len(runs) - len(failures)} of {len(runs)} notebook runs succeeded in {time.time() - start:.0f}s")
    for run, msg in failures:
        print(f"  FAILED {run.label}: {msg}\n         executed copy: {_rel(run.output)}")
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
