"""The Rec-ID explorer widget in a real browser: JupyterLab + headless Chromium driven by Playwright.

The test starts JupyterLab (loopback only, with a token, server root under ``tmp_path``), writes a small
explorer notebook there (tiny synthetic dataset, random Rec-IDs: no real data, seconds to run), opens it,
runs all cells, picks level 2 and one prefix in the widget's dropdowns and checks that the item table
rendered in the page lists exactly ``items_under_prefix(run.semantic, prefix, popularity)[:max_items]``.

It skips (with the reason) when Playwright is not importable or no Chromium binary can be found: CI installs
Debian's ``chromium`` (see ``.ci/run``); ``playwright install`` is never needed (``MMGREC_CHROMIUM`` may
point at another Chromium/Chrome binary). ``MMGREC_SCREENSHOT=1`` also saves a screenshot to
``reports/figures/explorer_browser.png`` (otherwise it goes under ``tmp_path`` only).
"""
from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mmgrec_lib.reporting.recid_plots import items_under_prefix, prefix_groups

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "reports" / "figures" / "explorer_browser.png"
NOTEBOOK = "explorer_browser.ipynb"
MAX_ITEMS = 30                 # recid_explorer's default table length
LEVEL = 2                      # the level picked in the widget
PREFIX_RANK = 1                # ... and the prefix: the second-largest of that level (the first is preselected)
SERVER_START_S = 120           # JupyterLab startup (20-40 s on a busy 2-core machine)
UI_TIMEOUT_MS = 90_000         # one page step (page load, kernel start + run all cells, widget update)


# ---------------------------------------------------------------------- the data (test process == notebook)
def make_explorer_data(seed: int = 0, n_items: int = 400, codebook_size: int = 8):
    """A tiny synthetic dataset and a Rec-ID run with random, collision-prone semantic codes (4 x 3 x 8),
    so level-2 prefixes hold ~33 items (more than the widget's 30-row table). Deterministic in ``seed``."""
    import numpy as np
    import torch

    from mmgrec_lib.data.synthetic import make_synthetic
    from mmgrec_lib.tokenizer.run import RecIDRun, build_recids

    dataset = make_synthetic(n_users=80, n_items=n_items, n_clusters=4, dims={"visual": 8},
                             mean_items_per_user=10.0, seed=seed, name="explorer-synthetic")
    rng = np.random.default_rng(seed)
    sem = np.stack([rng.integers(0, 4, n_items), rng.integers(0, 3, n_items),
                    rng.integers(0, codebook_size, n_items)], axis=1)
    config = {"codebook_size": codebook_size, "seed": seed, "collision": "popularity"}
    sem, table, stats = build_recids(sem, dataset.item_popularity(), "popularity", codebook_size, seed,
                                     config, None, {"dataset": dataset.name})
    run = RecIDRun(torch.zeros(dataset.n_users, 4), torch.zeros(n_items, 4), sem, table,
                   {"method": "random", **stats}, [], config, "random")
    return dataset, run


# ---------------------------------------------------------------------- the notebook
EXPLORER_CELL = """if INTERACTIVE:
    from IPython.display import display

    from mmgrec_lib.reporting.widgets import recid_explorer

    display(recid_explorer(run, dataset))"""


def explorer_notebook(interactive: bool):
    """The explorer notebook: a ``parameters`` cell (``INTERACTIVE = False``), papermill-style injected
    parameters (``INTERACTIVE = <interactive>``), the data cell (``make_explorer_data``'s own source, so the
    kernel builds exactly the test's data) and notebook 02's explorer cell."""
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_markdown_cell("# Rec-ID explorer (browser test)\nTiny synthetic data and random Rec-IDs."),
        v4.new_code_cell("INTERACTIVE = False  # show the explorer widget (needs a live kernel)",
                         metadata={"tags": ["parameters"]}),
        v4.new_code_cell(f"# Parameters\nINTERACTIVE = {bool(interactive)!r}\n",
                         metadata={"tags": ["injected-parameters"]}),
        v4.new_code_cell(inspect.getsource(make_explorer_data) + "\n\ndataset, run = make_explorer_data()\n"
                         "import sys\nprint('kernel prefix:', sys.prefix)"),
        v4.new_code_cell(EXPLORER_CELL),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def test_explorer_notebook_structure():
    """Cheap check (no browser): the parameters cell is tagged and off by default, the widget cell is notebook
    02's, and the notebook builds the same data as the test."""
    nb = explorer_notebook(interactive=True)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    params = next(c for c, t in zip(nb.cells, tags) if "parameters" in t)
    injected = next(c for c, t in zip(nb.cells, tags) if "injected-parameters" in t)
    assert "INTERACTIVE = False" in params.source and "INTERACTIVE = True" in injected.source
    assert nb.cells.index(injected) == nb.cells.index(params) + 1
    assert nb.cells[-1].source == EXPLORER_CELL
    nb02 = json.loads((REPO / "notebooks" / "02_collision_analysis.ipynb").read_text())
    assert "".join(nb02["cells"][-1]["source"]).strip() == EXPLORER_CELL


# ---------------------------------------------------------------------- browser and server fixtures
def _find_chromium() -> str | None:
    env = os.environ.get("MMGREC_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    exe = _find_chromium()
    if exe is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set MMGREC_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, timeout=60_000,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (server and its kernels), SIGKILL after a bounded wait."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)        # kernels left behind, if any (same session/group)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture
def jupyterlab(tmp_path, request):
    """A JupyterLab server on 127.0.0.1 (token, no browser, root ``tmp_path/lab``, isolated settings);
    yields ``(base_url, token, root)`` and stops the server (and its kernels) at the end."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    root = tmp_path / "lab"
    root.mkdir()
    settings = tmp_path / "lab-settings"
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))   # no news toast, no web
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),      # kernelspecs: the venv's (sys-prefix)
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
           "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "jupyterlab.log").open("wb")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")                          # CI runs as root
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    request.addfinalizer(log.close)
    request.addfinalizer(lambda: _stop(proc))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{_tail(tmp_path / 'jupyterlab.log')}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jupyter lab not up after {SERVER_START_S} s:\n{_tail(tmp_path / 'jupyterlab.log')}")
        time.sleep(0.5)
    yield base, token, root


def _screenshot_flag() -> bool:
    return os.environ.get("MMGREC_SCREENSHOT", "").strip().lower() in {"1", "true", "yes"}


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------------- the browser test
_PREFIX_OPTIONS_JS = """(want) => {
  const s = document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea select');
  if (s.length < 2) return false;
  const got = Array.from(s[1].options).map(o => o.value);
  return got.length === want.length && got.every((v, i) => v === want[i]);
}"""


@pytest.mark.slow
def test_explorer_in_browser(browser, jupyterlab, tmp_path):
    import nbformat
    from playwright.sync_api import expect

    base, token, root = jupyterlab
    nbformat.write(explorer_notebook(interactive=True), root / NOTEBOOK)

    dataset, run = make_explorer_data()
    pop = dataset.item_popularity()
    groups = prefix_groups(run.semantic, LEVEL, min_size=1)
    assert len(groups) > PREFIX_RANK
    prefix, label, size = groups.iloc[PREFIX_RANK][["prefix", "label", "size"]]
    expected = [int(i) for i in items_under_prefix(run.semantic, prefix, pop)[:MAX_ITEMS]]
    assert size > MAX_ITEMS, "the data should exercise the table's truncation"
    # the widget's option labels (recid_explorer: f"{label}  ({size} item(s))")
    level_label = f"level {LEVEL} (prefix of {LEVEL} tokens)"
    prefix_labels = [f"{lab}  ({n} item{'s' if n > 1 else ''})" for lab, n in zip(groups["label"], groups["size"])]

    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    try:
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", wait_until="domcontentloaded")
        # the notebook is open and the front end is connected to its (idle) kernel: running cells before
        # that pops up a "Select Kernel" dialog (the toolbar's execution indicator says "idle" too early)
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(state="visible")
        expect(page.locator(".jp-StatusBar-TextItem[title^='Change kernel for']")).to_have_text(
            re.compile(r"^Python 3\b.* \| Idle$"), timeout=UI_TIMEOUT_MS)
        # Run > Run All Cells (the menu bar, as a user would)
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

        out = page.locator(".jp-NotebookPanel .jp-OutputArea")
        selects = out.locator("select")
        selects.nth(1).wait_for(state="attached")           # the widget rendered: level + prefix dropdowns
        selects.nth(0).select_option(value=level_label)
        # the prefix dropdown now lists exactly the level-2 prefixes, largest first
        page.wait_for_function(_PREFIX_OPTIONS_JS, arg=prefix_labels, timeout=UI_TIMEOUT_MS)
        selects.nth(1).select_option(value=prefix_labels[PREFIX_RANK])
        table = out.locator("table.dataframe")
        code = out.locator(".widget-html code")
        page.wait_for_function(
            "(want) => Array.from(document.querySelectorAll('.jp-OutputArea .widget-html code'))"
            ".some(c => c.textContent === want)", arg=label, timeout=UI_TIMEOUT_MS)
        assert code.first.inner_text() == label
        header = [t.strip() for t in table.locator("thead th").all_inner_texts()]
        assert header[:2] == ["item", "title"]
        shown = [int(t) for t in table.locator("tbody tr td:first-child").all_inner_texts()]
        assert shown == expected
        intro = out.locator(".widget-html p", has_text="items under").first.inner_text()
        assert intro.startswith(f"{size} items under")

        # the notebook ran in this environment (the venv's python3 kernelspec)
        expect(out.locator(".jp-OutputArea-output", has_text="kernel prefix:").first).to_have_text(
            f"kernel prefix: {sys.prefix}")

        # screenshot: the widget (dropdowns at the top, the whole 30-row table) in the JupyterLab page
        selects.first.evaluate("el => el.closest('.widget-vbox').scrollIntoView({block: 'start'})")
        shot = SCREENSHOT if _screenshot_flag() else tmp_path / "explorer_browser.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 0
    except Exception:
        try:
            page.screenshot(path=str(tmp_path / "failure.png"))
        except Exception:  # noqa: BLE001
            pass
        print(_tail(tmp_path / "jupyterlab.log"), file=sys.stderr)
        raise
    finally:
        context.close()
