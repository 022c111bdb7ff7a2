r"""Full-ranking top-K evaluation (the paper's protocol) with per-user values for paired tests.

For each user with at least one item in the evaluated split, every item is a candidate except the
user's training items (and validation items when testing on ``"test"``). With :math:`T_u` the held-out
items and :math:`R_u^K` the top-K list,

.. math::

    \mathrm{Recall@K}(u) = \frac{|R_u^K \cap T_u|}{|T_u|}, \qquad
    \mathrm{NDCG@K}(u) = \frac{\sum_{r=1}^{K} [R_u^K[r] \in T_u] / \log_2(r+1)}
                              {\sum_{r=1}^{\min(|T_u|, K)} 1/\log_2(r+1)},

averaged over users. :func:`evaluate` accepts a score matrix (embedding models), ranked item lists
(generative models) or a callable returning either for a batch of users.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.dataset import RecDataset
from ..data.sparse import PairSet, rows_mask

#: the one value that pads a ranked list shorter than the cut-off
PAD = -1

Source = Union[torch.Tensor, np.ndarray, Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class EvalResult:
    """Per-user metrics (index: user id; columns ``recall@K``, ``ndcg@K``) and their means."""

    per_user: pd.DataFrame
    split: str
    ks: tuple[int, ...]
    name: str = ""
    extra: dict = field(default_factory=dict)

    def mean(self) -> dict[str, float]:
        return {c: float(self.per_user[c].mean()) for c in self.per_user.columns}

    def __getitem__(self, metric: str) -> float:
        return float(self.per_user[metric].mean())

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={v:.4f}" for k, v in self.mean().items())
        return f"EvalResult({self.name or 'model'}, {self.split}, users={len(self.per_user)}, {vals})"


def excluded_matrix(dataset: RecDataset, split: str) -> sp.csr_matrix:
    """Items never ranked for a user: training items, plus validation items when evaluating ``test``."""
    if split == "val":
        return dataset.train
    if split == "test":
        return (dataset.train + dataset.val).tocsr()
    raise ValueError(f"evaluate on 'val' or 'test', got {split!r}")


def _metrics_from_hits(hits: torch.Tensor, n_target: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """hits: (B, Kmax) bool in rank order; n_target: (B,) number of held-out items."""
    kmax = hits.shape[1]
    discounts = 1.0 / torch.log2(torch.arange(2, kmax + 2, dtype=torch.float64, device=hits.device))  # (Kmax,)
    cum_idcg = torch.cumsum(discounts, 0)
    out = {}
    h = hits.double()
    for k in ks:
        hk = h[:, :k]
        out[f"recall@{k}"] = hk.sum(1) / n_target
        ideal = cum_idcg[(torch.clamp(n_target, max=k) - 1).long()]
        out[f"ndcg@{k}"] = (hk * discounts[:k]).sum(1) / ideal
    return out


def evaluate(
    source: Source,
    dataset: RecDataset,
    split: str = "test",
    ks: Sequence[int] = (10, 20),
    batch_size: int = 1024,
    name: str = "",
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Full-ranking Recall@K and NDCG@K, per user and averaged.

    Args:
        source: one of
            * a float ``(n_users, n_items)`` score matrix (higher is better);
            * an integer ``(n_users, L)`` matrix of ranked item ids (``-1`` pads short lists, any other
              negative id is an error; a repeated item counts once, at its first position);
            * a callable ``f(users: LongTensor (B,)) -> Tensor`` returning either of the above for a batch.
            Excluded items (training items; validation items when testing) are masked from scores and
            dropped from ranked lists before the cut-off, so both kinds are judged identically.
        dataset: the :class:`RecDataset` that defines splits.
        split: ``"val"`` or ``"test"``.
        ks: cut-offs.
    """
    ks = tuple(sorted(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    device = torch.device(device)
    target = dataset.split(split)
    excl = excluded_matrix(dataset, split)
    users = np.nonzero(np.diff(target.indptr) > 0)[0]
    held_out = PairSet(target)                          # hits by membership: no dense (B, I) target mask
    kmax = ks[-1]
    cols: dict[str, list[torch.Tensor]] = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
    hit_rows: list[torch.Tensor] = []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        bt = torch.from_numpy(batch).long()
        out = source(bt) if callable(source) and not isinstance(source, (torch.Tensor, np.ndarray)) else source[batch]
        out = torch.as_tensor(out).to(device)
        ex = rows_mask(excl, batch, device)                                 # (B, I)
        if out.is_floating_point():
            if out.shape != (len(batch), dataset.n_items):
                raise ValueError(f"score matrix batch has shape {tuple(out.shape)}, expected ({len(batch)}, "
                                 f"{dataset.n_items})")
            scores = out.masked_fill(ex, -torch.inf)
            top = torch.topk(scores, min(kmax, dataset.n_items), dim=1).indices  # (B, K)
            valid = torch.isfinite(torch.gather(scores, 1, top))
        else:
            lists = out.long()
            if lists.ndim != 2 or lists.shape[0] != len(batch):
                raise ValueError(f"ranked lists batch has shape {tuple(lists.shape)}, expected ({len(batch)}, L)")
            if lists.numel() and int(lists.max()) >= dataset.n_items:
                raise ValueError(f"ranked lists contain item id {int(lists.max())} >= n_items={dataset.n_items}")
            if lists.numel() and int(lists.min()) < PAD:
                bad = lists[lists < PAD]
                raise ValueError(f"ranked lists contain {bad.numel()} negative item id(s) other than the padding "
                                 f"value {PAD} (e.g. {bad[:3].tolist()}); only {PAD} pads a short list")
            ok = lists >= 0
            ok &= ~torch.gather(ex, 1, lists.clamp(min=0))
            # a repeated item counts once, at its first position (stable sort keeps first occurrences first)
            srt, idx = torch.sort(lists, dim=1, stable=True)
            repeat = torch.zeros_like(ok)
            repeat[:, 1:] = srt[:, 1:] == srt[:, :-1]
            ok &= ~torch.zeros_like(ok).scatter_(1, idx, repeat)
            # drop excluded/padding entries, keep order (stable sort on "not ok")
            order = torch.sort((~ok).int(), dim=1, stable=True).indices
            lists, ok = torch.gather(lists, 1, order), torch.gather(ok, 1, order)
            if lists.shape[1] < kmax:
                pad = kmax - lists.shape[1]
                lists = torch.cat([lists, lists.new_full((len(batch), pad), 0)], 1)
                ok = torch.cat([ok, ok.new_zeros((len(batch), pad))], 1)
            top, valid = lists[:, :kmax].clamp(min=0), ok[:, :kmax]
        hits = held_out.contains(bt, top.to(device)) & valid                 # (B, K)
        n_target = held_out.counts[bt].to(device).double()                  # (B,)
        hit_rows.append(hits.cpu())
        for key, val in _metrics_from_hits(hits, n_target, ks).items():
            cols[key].append(val.cpu())
    per_user = pd.DataFrame({k: torch.cat(v).numpy() if v else np.zeros(0) for k, v in cols.items()},
                            index=pd.Index(users, name="user"))
    hits = torch.cat(hit_rows) if hit_rows else torch.zeros(0, kmax, dtype=torch.bool)
    return EvalResult(per_user=per_user, split=split, ks=ks, name=name, extra={"hits": hits})


def result_from_hits(dataset: RecDataset, split: str, hits: torch.Tensor, ks: Sequence[int],
                     name: str = "") -> EvalResult:
    """The :class:`EvalResult` that :func:`evaluate` returned, rebuilt from its ``extra["hits"]``.

    ``hits``: ``(U, max(ks))`` bool, row ``u`` for the ``u``-th user (ascending id) with items in ``split``,
    column ``r`` true when rank ``r`` of that user's list held a held-out item. The metrics come from the same
    code as in :func:`evaluate` (each row on its own), so they are equal bit for bit.
    """
    ks = tuple(sorted(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    target = dataset.split(split)
    users = np.nonzero(np.diff(target.indptr) > 0)[0]
    hits = torch.as_tensor(hits)
    if hits.dtype != torch.bool or hits.shape != (len(users), ks[-1]):
        raise ValueError(f"hits must be a bool ({len(users)}, {ks[-1]}) matrix: one row per user with {split} "
                         f"items in {dataset.name}, one column per rank up to {ks[-1]}; got {hits.dtype} "
                         f"{tuple(hits.shape)}")
    n_target = PairSet(target).counts[torch.from_numpy(users).long()].double()
    cols = {key: val.numpy() for key, val in _metrics_from_hits(hits, n_target, ks).items()}
    per_user = pd.DataFrame({f"{m}@{k}": cols[f"{m}@{k}"] for k in ks for m in ("recall", "ndcg")},
                            index=pd.Index(users, name="user"))
    return EvalResult(per_user=per_user, split=split, ks=ks, name=name, extra={"hits": hits})
