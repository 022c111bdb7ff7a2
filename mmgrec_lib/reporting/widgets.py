"""Interactive explorers for the notebooks (``ipywidgets``; optional).

The builders return a widget and display nothing; the notebook shows it only when its ``INTERACTIVE``
parameter is true. Everything a widget shows is also available from a plain function
(:func:`mmgrec_lib.reporting.recid_plots.items_under_prefix`, :func:`~mmgrec_lib.reporting.recid_plots.poster_grid`), so the
batch reports never depend on widgets.
"""
from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd

from ..data.dataset import RecDataset
from .recid_plots import items_under_prefix, poster_grid, poster_paths, prefix_groups

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets

    from ..tokenizer.run import RecIDRun


def prefix_items_frame(run: "RecIDRun", dataset: RecDataset, prefix, max_items: int = 30) -> pd.DataFrame:
    """Items under a semantic ``prefix`` (most popular first): ``item``, ``title``, ``train_pop``, ``rec_id``."""
    pop = dataset.item_popularity()
    items = items_under_prefix(run.semantic, prefix, pop)[:max_items]
    codes = (run.codes if run.table is not None else run.semantic).numpy()
    return pd.DataFrame({"item": items.astype(int), "title": [dataset.title(int(i)) for i in items],
                         "train_pop": pop[items].astype(int),
                         "rec_id": [tuple(int(t) for t in codes[i]) for i in items]})


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def recid_explorer(run: "RecIDRun", dataset: RecDataset, max_items: int = 30, max_posters: int = 12,
                   posters: bool = True, max_prefixes: int = 500) -> "ipywidgets.VBox":
    """Pick a level and a semantic prefix of that length; see the items under it (titles, popularity,
    Rec-IDs) and, for datasets with posters, their thumbnails.

    Args:
        run: a Rec-ID run (``RecIDRun``; its ``semantic`` tokens define the tree).
        dataset: the dataset the run was built on (titles, popularity, poster paths).
        max_items: rows of the item table.
        max_posters: poster thumbnails shown (6 per row).
        posters: show posters when the dataset has any.
        max_prefixes: the dropdown lists the largest ``max_prefixes`` prefixes of the chosen level.

    Returns:
        An ``ipywidgets.VBox`` (level selector, prefix dropdown, item table, poster image); nothing is
        displayed. Requires ``ipywidgets``.
    """
    import ipywidgets as w

    n_levels = int(run.semantic.shape[1])
    show_posters = posters and any(p is not None for p in poster_paths(dataset))
    level = w.Dropdown(options=[(f"level {m} (prefix of {m} token{'s' if m > 1 else ''})", m)
                                for m in range(1, n_levels + 1)], value=1, description="level")
    prefix = w.Dropdown(options=[], description="prefix", layout=w.Layout(width="360px"))
    summary = w.HTML()
    table = w.HTML()
    image = w.Image(format="png")
    image.layout.display = "" if show_posters else "none"

    def fill_prefixes(change=None) -> None:
        groups = prefix_groups(run.semantic, level.value, min_size=1).head(max_prefixes)
        opts = [(f"{lab}  ({size} item{'s' if size > 1 else ''})", tuple(p))
                for p, lab, size in groups.itertuples(index=False)]
        n_all = len(prefix_groups(run.semantic, level.value, min_size=1))
        summary.value = (f"<b>{n_all}</b> distinct prefixes at level {level.value}"
                         + (f" (largest {max_prefixes} listed)" if n_all > max_prefixes else ""))
        prefix.options = opts
        if opts:
            prefix.value = opts[0][1]

    def show_items(change=None) -> None:
        if prefix.value is None:
            table.value, image.value = "", b""
            return
        df = prefix_items_frame(run, dataset, prefix.value, max_items)
        table.value = (f"<p>{len(items_under_prefix(run.semantic, prefix.value))} items under "
                       f"<code>{html.escape('-'.join(map(str, prefix.value)))}</code></p>"
                       + df.to_html(index=False, escape=True))
        if show_posters and len(df):
            items = df["item"].tolist()[:max_posters]
            rows = {f"{i // 6 + 1}": items[i:i + 6] for i in range(0, len(items), 6)}
            image.value = _figure_png(poster_grid(dataset, rows, per_row=6))
        else:
            image.value = b""

    level.observe(fill_prefixes, names="value")
    prefix.observe(show_items, names="value")
    fill_prefixes()
    show_items()
    return w.VBox([w.HBox([level, prefix]), summary, table, image])


__all__ = ["prefix_items_frame", "recid_explorer"]
