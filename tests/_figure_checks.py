"""Cheap checks that a report figure reads well: titles, axis labels, legends outside the data area."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.transforms import Bbox


def titles(fig: plt.Figure) -> str:
    """The figure title and every panel title, one per line."""
    parts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    return "\n".join(parts + [ax.get_title() for ax in fig.axes])


def data_axes(fig: plt.Figure) -> list:
    """Visible axes that hold data (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.axison and not hasattr(ax, "_colorbar")]


def legends(fig: plt.Figure) -> list:
    return list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]


def assert_legends_outside(fig: plt.Figure) -> None:
    """Every legend exists outside every axes: the drawn bounding boxes do not overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legs = legends(fig)
    assert legs, "the figure has no legend"
    for leg in legs:
        lb = leg.get_window_extent(renderer)
        for ax in fig.axes:
            if not ax.axison:
                continue
            inter = Bbox.intersection(lb, ax.get_window_extent(renderer))
            assert inter is None or inter.width * inter.height < 1.0, \
                f"legend {[t.get_text() for t in leg.get_texts()][:3]} overlaps axes {ax.get_title()!r}"


def assert_labelled(fig: plt.Figure, dataset: str | None = None) -> None:
    """Every data panel has x and y labels; the dataset (when given) is in the figure title."""
    for ax in data_axes(fig):
        assert ax.get_xlabel().strip(), f"no x label on {ax.get_title()!r}"
        assert ax.get_ylabel().strip(), f"no y label on {ax.get_title()!r}"
    if dataset is not None:
        assert fig._suptitle is not None and dataset in fig._suptitle.get_text()
