"""Figures for the teaching walkthrough (notebook 08), and the small tables they draw.

* :func:`level_purity` -- how well one Rec-ID level matches known item labels (e.g. planted clusters).
* :func:`tree_items` / :func:`recid_tree` -- a few items' Rec-IDs drawn as the prefix tree they share.
* :func:`beam_trace` / :func:`beam_steps` -- one user's constrained beam search, level by level: every valid
  candidate prefix with its summed log-probability and whether the beam kept it.
* :func:`pick_example_user` -- the user whose search the walkthrough shows.

:func:`beam_trace` repeats, for a single user and in plain Python, what
:func:`mmgrec_lib.generator.decoding.beam_search` does for a batch (same normalisation: log-softmax over the
level's full token range, invalid tokens removed without renormalising; same exclusions). It only reads the
model's public decoding calls (``encode``, ``decode``, ``level_logits``, ``codes``, ``cardinalities``), and a
test checks that its final beams equal ``beam_search``'s.

Figures follow :mod:`mmgrec_lib.reporting.plots`: the dataset name leads the title, every axis is labelled,
legends sit outside the data (right of the panels), constrained layout.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..data.dataset import RecDataset
from ..utils import eval_mode

if TYPE_CHECKING:  # pragma: no cover
    from ..generator.model import MMGRecGenerator

__all__ = ["level_purity", "tree_items", "recid_tree", "beam_trace", "beam_steps",
           "pick_example_user"]

KEPT, DROPPED, HIT = "C0", "0.75", "C2"


def _label(prefix: Sequence[int]) -> str:
    return "-".join(str(int(t)) for t in prefix)


def _codes(codes) -> np.ndarray:
    arr = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be (n_items, levels), got shape {arr.shape}")
    return arr.astype(np.int64)


def _titled(dataset: str, text: str) -> str:
    return f"{dataset}: {text}" if dataset else text


# ====================================================================== Rec-IDs
def level_purity(semantic, labels: np.ndarray, level: int = 0) -> float:
    """Share of items whose code at ``level`` is shared mostly with items of their own label.

    For each code, the items carrying it vote with their ``labels`` (e.g. the planted clusters of the synthetic
    data); purity is the number of items in the majority label of their code over all items. ``1.0``: every
    code holds items of one label only; about ``1 / n_labels`` for codes unrelated to the labels.
    """
    sem = _codes(semantic)
    labels = np.asarray(labels).astype(np.int64)
    if labels.shape != (sem.shape[0],):
        raise ValueError(f"labels must have shape ({sem.shape[0]},), got {labels.shape}")
    if not 0 <= level < sem.shape[1]:
        raise ValueError(f"level must lie in [0, {sem.shape[1]}), got {level}")
    code = sem[:, level]
    majority = sum(int(np.bincount(labels[code == c]).max()) for c in np.unique(code))
    return majority / len(labels)


def tree_items(codes, popularity: np.ndarray, n: int = 8, other: int = 2) -> np.ndarray:
    """Items whose Rec-IDs make an instructive small prefix tree.

    The branch is the level-1 code of the largest group of items sharing all semantic tokens (a collision
    group, separated only by the popularity token; ties: the more popular group). From that branch: the group
    itself, then the items sharing its first two tokens, then the rest of the branch, each by popularity, up to
    ``n - other`` items; then the ``other`` most popular items of other level-1 codes for contrast. Returned
    sorted by Rec-ID (the tree's leaf order).
    """
    arr = _codes(codes)
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.shape != (arr.shape[0],):
        raise ValueError(f"popularity must have shape ({arr.shape[0]},), got {pop.shape}")
    if n < 1 or not 0 <= other < n:
        raise ValueError(f"need n >= 1 and 0 <= other < n, got n={n}, other={other}")
    sem = arr[:, :-1]
    uniq, inverse, counts = np.unique(sem, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    group_pop = np.bincount(inverse, weights=pop)
    best = int(np.lexsort((-group_pop, -counts))[0])
    anchor = uniq[best]
    depth = (sem == anchor).cumprod(axis=1).sum(axis=1)                  # prefix length shared with the group
    branch = np.flatnonzero(depth >= 1)
    # deeper shared prefix first, then popularity, then item id
    branch = branch[np.lexsort((branch, -pop[branch], -depth[branch]))][:n - other]
    rest = np.flatnonzero(sem[:, 0] != anchor[0])
    rest = rest[np.lexsort((rest, -pop[rest]))]
    picked, seen = [], set()
    for i in rest:                                   # the most popular items of distinct other branches
        if len(picked) == other:
            break
        if sem[i, 0] not in seen:
            picked.append(int(i))
            seen.add(int(sem[i, 0]))
    items = np.concatenate([branch, np.asarray(picked, dtype=np.int64)])
    return items[np.lexsort(arr[items].T[::-1])]


def recid_tree(codes, items: Sequence[int], labels: Mapping[int, str] | None = None, dataset: str = "",
               title: str = "", popularity_level: bool = True) -> plt.Figure:
    """The Rec-IDs of ``items`` drawn as a prefix tree: root on the left, one column per token level, the items
    as leaves on the right. Items sharing a prefix share the path up to it; with ``popularity_level`` the last
    column is the popularity token (eq. 11-12) that separates items with identical semantic tokens.

    ``labels``: item -> leaf text (default ``"item <id>"``); the title is ``"<dataset>: <title>"``.
    """
    arr = _codes(codes)
    items = [int(i) for i in items]
    if not items:
        raise ValueError("no items to draw")
    M = arr.shape[1]
    leaves = sorted(items, key=lambda i: tuple(arr[i]))
    y_leaf = {tuple(arr[i]): float(len(leaves) - 1 - r) for r, i in enumerate(leaves)}
    ys: dict[tuple, float] = {}
    for depth in range(M, -1, -1):                    # a node sits at the mean height of its leaves
        for i in leaves:
            p = tuple(arr[i][:depth])
            if p not in ys:
                under = [y for leaf, y in y_leaf.items() if leaf[:depth] == p]
                ys[p] = float(np.mean(under))
    fig, ax = plt.subplots(figsize=(1.5 * M + 6.0, 0.42 * len(leaves) + 1.8), layout="constrained")
    for p, y in ys.items():
        if p:
            parent = p[:-1]
            ax.plot([len(parent), len(p)], [ys[parent], y], color="0.6", lw=1, zorder=1)
    for p, y in ys.items():
        depth = len(p)
        if depth == 0:
            ax.scatter([0], [y], s=200, color="k", zorder=2)
            continue
        pop_tok = popularity_level and depth == M
        ax.scatter([depth], [y], s=360, color="C1" if pop_tok else "C0", zorder=2)
        ax.text(depth, y, str(p[-1]), color="white", ha="center", va="center", fontsize=8, zorder=3)
    for i in leaves:
        text = (labels or {}).get(i, f"item {i}")
        ax.text(M + 0.25, y_leaf[tuple(arr[i])], f"{text}  ({_label(arr[i])})", va="center", fontsize=8)
    names = ["start\n(empty prefix)"] + [f"level {m}\n" + ("popularity" if popularity_level and m == M else "semantic")
                         for m in range(1, M + 1)]
    ax.set_xticks(range(M + 1), names)
    ax.set_yticks([])
    ax.set_xlim(-0.4, M + 2.5)
    ax.set_ylim(-0.8, len(leaves) - 0.2)
    ax.set_xlabel("Rec-ID token position (generated left to right)")
    ax.set_ylabel(f"{len(leaves)} items, sorted by Rec-ID")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Line2D([], [], marker="o", ls="", color="C0", markersize=10, label="semantic token (RQ-VAE code)")]
    if popularity_level:
        handles.append(Line2D([], [], marker="o", ls="", color="C1", markersize=10,
                              label="popularity token (rank in its collision group)"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(_titled(dataset, title or f"Rec-IDs of {len(leaves)} items as a prefix tree"))
    return fig


# ====================================================================== beam search, step by step
def _excluded(dataset: RecDataset, user: int, splits: Sequence[str]) -> set[int]:
    out: set[int] = set()
    for s in splits:
        m = dataset.split(s)
        out.update(m.indices[m.indptr[user]:m.indptr[user + 1]].tolist())
    return out


@torch.no_grad()
def beam_trace(model: "MMGRecGenerator", dataset: RecDataset, user: int, k: int, beam_width: int,
               exclude_splits: Sequence[str] = ("train", "val")) -> pd.DataFrame:
    """Every candidate prefix of one user's constrained beam search, level by level.

    At level ``l`` each kept beam (a prefix of length ``l - 1``) is extended by every token that leads to at
    least one item the user may still get (not in ``exclude_splits``; the trie constraint). A candidate's
    score is the summed log-probability ``log p(t_1..t_l | u)``; the ``beam_width`` best are kept. The
    ``k`` best kept candidates of the last level are the recommendations (``rank < k``).

    Returns one row per candidate: ``level`` (1-based), ``prefix`` (tuple), ``label`` (``"3-7"``), ``parent``,
    ``token``, ``step_logp`` (this level's log-probability), ``logp`` (summed), ``rank`` (0-based within the
    level, best first), ``kept``, ``item`` (the item at the last level, else -1) and ``items_below`` (allowed
    items under the prefix).
    """
    if k < 1 or beam_width < k:
        raise ValueError(f"need 1 <= k <= beam_width, got k={k}, beam_width={beam_width}")
    codes = model.codes.detach().cpu().numpy().astype(np.int64)                     # (I, M)
    I, M = codes.shape
    if not 0 <= int(user) < dataset.n_users:
        raise ValueError(f"user {user} out of range [0, {dataset.n_users})")
    banned = _excluded(dataset, int(user), exclude_splits)
    allowed = [i for i in range(I) if i not in banned]
    below: list[dict[tuple, int]] = [dict() for _ in range(M + 1)]                  # prefix -> allowed items
    for i in allowed:
        for depth in range(1, M + 1):
            p = tuple(int(t) for t in codes[i, :depth])
            below[depth][p] = below[depth].get(p, 0) + 1
    item_of = {tuple(int(t) for t in codes[i]): i for i in range(I)}
    rows = []
    with eval_mode(model):
        users = torch.tensor([int(user)], device=model.device)
        memory, mpad = model.encode(users)
        beams: list[tuple[tuple, float]] = [((), 0.0)]
        for lvl in range(M):
            toks = torch.tensor([[list(p) for p, _ in beams]], dtype=torch.long, device=model.device)
            toks = toks.view(1, len(beams), lvl)                                     # (1, W, l)
            h = model.decode(memory, mpad, toks)[:, :, -1]                           # (1, W, D)
            logp = F.log_softmax(model.level_logits(h, lvl).float(), -1)[0].cpu().numpy()   # (W, card)
            cands = []
            for w, (p, s) in enumerate(beams):
                for t in range(logp.shape[1]):
                    q = p + (t,)
                    if q in below[lvl + 1]:
                        cands.append((q, p, t, float(logp[w, t]), s + float(logp[w, t])))
            cands.sort(key=lambda c: -c[4])
            for r, (q, p, t, step, total) in enumerate(cands):
                rows.append({"level": lvl + 1, "prefix": q, "label": _label(q), "parent": p, "token": t,
                             "step_logp": step, "logp": total, "rank": r, "kept": r < beam_width,
                             "item": item_of[q] if lvl == M - 1 else -1, "items_below": below[lvl + 1][q]})
            beams = [(q, total) for q, _, _, _, total in cands[:beam_width]]
            if not beams:
                break
    return pd.DataFrame(rows, columns=["level", "prefix", "label", "parent", "token", "step_logp", "logp", "rank",
                                       "kept", "item", "items_below"])


def beam_steps(trace: pd.DataFrame, k: int, show: int | None = None, highlight: Sequence[int] = (),
               dataset: str = "", title: str = "") -> plt.Figure:
    """One panel per Rec-ID level: the ``show`` best candidate prefixes of :func:`beam_trace` (default: the
    kept ones and three more), their summed log-probability as bars (longer = more likely), kept beams in
    colour, dropped ones grey. In the last panel the labels name the item, the top ``k`` are the list and
    ``highlight`` items (e.g. the user's test items) are green. The title is ``"<dataset>: <title>"``."""
    if trace.empty:
        raise ValueError("empty trace: nothing to draw")
    levels = sorted(trace["level"].unique())
    width = int(trace.loc[trace["level"] == levels[0], "kept"].sum())
    show = show or width + 3
    highlight = {int(i) for i in highlight}
    fig, axes = plt.subplots(1, len(levels), figsize=(3.3 * len(levels) + 3.0, 0.32 * show + 1.8), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    shown = [trace[trace["level"] == lv].sort_values("rank").head(show) for lv in levels]
    lo = min(float(d["logp"].min()) for d in shown)
    lo = lo - 0.1 * max(abs(lo), 1.0)
    last = levels[-1]
    for ax, lv, d in zip(axes, levels, shown):
        y = np.arange(len(d))[::-1]
        colors = []
        for r in d.itertuples():
            if lv == last and r.item in highlight and r.rank < k:
                colors.append(HIT)
            else:
                colors.append(KEPT if r.kept else DROPPED)
        ax.barh(y, d["logp"] - lo, left=lo, color=colors, height=0.7)
        labels = [f"{r.label} → item {r.item}" if lv == last else r.label for r in d.itertuples()]
        ax.set_yticks(y, labels, fontsize=8)
        n_cand = int((trace["level"] == lv).sum())
        ax.set_title(f"level {lv}: {n_cand} valid candidates", fontsize=9)
        ax.set_xlabel("log p(prefix | user)")
        ax.set_xlim(lo, 0)
        if lv == levels[0]:
            ax.set_ylabel("candidate prefix (best first)")
    handles = [Patch(color=KEPT, label=f"kept in the beam (width {width})"), Patch(color=DROPPED, label="dropped")]
    if highlight:
        handles.append(Patch(color=HIT, label=f"in the top-{k} and a held-out test item"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(_titled(dataset, title or f"constrained beam search, level by level (width {width})"))
    return fig


def pick_example_user(model: "MMGRecGenerator", dataset: RecDataset, k: int, beam_width: int,
                      split: str = "test") -> tuple[int, bool]:
    """The first user (by id) with ``split`` items whose top-``k`` (beam ``beam_width``, training and
    validation items excluded) contains one of them; ``(user, True)``. When no user has a hit, the first user
    with ``split`` items and ``False``."""
    from ..generator.decoding import beam_search

    target = dataset.split(split)
    users = np.flatnonzero(np.diff(target.indptr) > 0)
    if users.size == 0:
        raise ValueError(f"no user has {split} items")
    exclude = dataset.val if split == "test" else None
    for chunk in np.array_split(users, max(1, int(np.ceil(users.size / 256)))):
        u = torch.from_numpy(chunk.astype(np.int64)).to(model.device)
        items, _ = beam_search(model, u, k, beam_width, exclude=exclude)
        for user, row in zip(chunk.tolist(), items.cpu().tolist()):
            truth = set(target.indices[target.indptr[user]:target.indptr[user + 1]].tolist())
            if truth & set(row):
                return int(user), True
    return int(users[0]), False
