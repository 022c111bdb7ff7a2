"""Progress bars for every stage (the data layer is the lowest floor, so the helper lives here)."""
from __future__ import annotations

import os


def progress_bar(iterable=None, enabled: bool = True, **kwargs):
    """``tqdm.auto`` over ``iterable``; off when ``enabled`` is false or ``$TQDM_DISABLE`` is set.

    The batch runner sets ``TQDM_DISABLE=1`` for its kernels: a notebook bar is a widget whose saved output
    would show a frozen 0%, and ``tqdm.notebook`` itself ignores the variable.
    """
    from tqdm.auto import tqdm

    off = not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    return tqdm(iterable, disable=off, **kwargs)
