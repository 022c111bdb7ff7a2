"""Writing report artefacts: tables as CSV + Markdown, figures as PNG, under one reports folder.

Notebooks take ``REPORTS_DIR`` as a parameter (saved default: ``../reports/smoke``, git-ignored; the
full profile of the batch runner injects ``../reports``) and call these helpers, so every number in a
committed table comes from the run that wrote it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ..data.paths import atomic_write


def reports_paths(reports_dir: str | os.PathLike) -> dict[str, Path]:
    """Create and return ``{"root", "tables", "figures", "executed"}`` under ``reports_dir``."""
    root = Path(reports_dir)
    out = {"root": root, "tables": root / "tables", "figures": root / "figures", "executed": root / "executed"}
    for p in out.values():
        p.mkdir(parents=True, exist_ok=True)
    return out


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode()))


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A GitHub Markdown table (no ``tabulate`` dependency). A ``|`` inside a cell is escaped and a line break
    becomes a space, so a note such as ``p(i|u)`` stays in its column."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")

    def fmt(v) -> str:
        if isinstance(v, float):
            return format(v, floatfmt) if abs(v) >= 1e-4 or v == 0 else f"{v:.2e}"
        return cell(str(v))
    cols = [cell(str(c)) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, name: str, reports_dir: str | os.PathLike, caption: str = "") -> Path:
    """Write ``tables/<name>.csv`` and ``tables/<name>.md`` (with an optional caption line)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"table name {name!r} must use letters, digits, '_', '-', '.' only")
    tables = reports_paths(reports_dir)["tables"]
    csv = tables / f"{name}.csv"
    _write_text(csv, df.to_csv(index=False))
    md = (f"{caption}\n\n" if caption else "") + to_markdown(df)
    _write_text(tables / f"{name}.md", md)
    return csv


def save_figure(fig, name: str, reports_dir: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure to ``figures/<name>.png``."""
    path = reports_paths(reports_dir)["figures"] / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
