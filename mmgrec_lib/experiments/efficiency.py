r"""Inference cost against catalogue size (paper section 5.4, Fig. 5, extended): what notebook 07 and
``mmgrec bench decode`` measure, with one timing code for both.

Per catalogue, top-``k`` lists (training items excluded) for the same users by

* **MMGRec constrained beam search** (:func:`~mmgrec_lib.generator.decoding.beam_search`) at batch 1 and at a
  large batch, beam width 10 and 20;
* **exact inner-product retrieval** (MF-style: ``u · v_i`` for every item, then top-``k``) with torch:
  :class:`ExactInnerProduct` computes the scores in item chunks and merges running top-``k`` lists, so no
  tensor of size batch x catalogue exists beyond one chunk;
* **faiss** ``IndexFlatIP`` (exact, brute force) and one approximate index (IVF-Flat or HNSW) with its
  recall@10 against the exact lists (faiss cannot exclude per query: it searches ``k`` + the batch's longest
  history and drops the excluded items).

Timing: every method is warmed up once, then timed ``reps`` times with the methods interleaved (the order
rotates each repetition) in one process; the table keeps the median (and min/max) milliseconds per user.
Batch-1 methods are timed over ``n_single`` users called one at a time. Thread counts are fixed for all
methods (:func:`set_threads`) and reported.

Memory, two figures per method: ``structure_mb``, the bytes of what the method keeps between calls (beam:
trie tables + the encoder's item vectors + weights; exact: the item vectors; faiss: the serialised index) and
``peak_mb``, the *extra* resident memory of one call: the method runs once in a forked copy of the process
(Linux), whose peak resident set (``VmHWM`` in ``/proc/self/status``, reset after fork) minus its resident set
before the call is reported. ``nan`` where ``fork`` or ``/proc`` is unavailable.
"""
from __future__ import annotations

import ctypes
import gc
import math
import os
import select
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.sparse import csr_pairs
from ..generator.config import ModelConfig
from ..generator.decoding import beam_search
from ..generator.model import MMGRecGenerator
from ..tokenizer.recid import RecIDTable, disambiguate
from ..tokenizer.trie import PrefixTrie

#: columns of :func:`bench_catalogue`'s table, in order
COLUMNS = ("catalogue", "fraction", "n_items", "method", "family", "batch", "beam", "params", "ms_per_user",
           "ms_per_user_min", "ms_per_user_max", "reps", "users", "threads", "build_s", "structure_mb",
           "peak_mb", "recall@10", "trie_build_s", "trie_nodes")


# ====================================================================== setup
def set_threads(n: int) -> int:
    """Use ``n`` intra-op threads in torch and faiss (when installed); returns ``n``."""
    torch.set_num_threads(int(n))
    try:
        import faiss
        faiss.omp_set_num_threads(int(n))
    except ImportError:                                                  # pragma: no cover
        pass
    return int(n)


def synthetic_codes(n_items: int, codebook_size: int = 256, levels: int = 3, seed: int = 0) -> np.ndarray:
    """``(n_items, levels + 1)`` unique Rec-IDs: i.i.d. uniform semantic tokens (a best case for collisions:
    real codes cluster) and the popularity token over random popularity counts (paper eq. 11-12)."""
    rng = np.random.default_rng(seed)
    semantic = rng.integers(0, codebook_size, (n_items, levels))
    return disambiguate(semantic, rng.zipf(1.5, n_items).clip(max=10**6))


def random_history(n_users: int, n_items: int, per_user: int, seed: int = 0) -> sp.csr_matrix:
    """``(n_users, n_items)`` CSR: ``min(per_user, n_items)`` distinct random items per user."""
    rng = np.random.default_rng(seed)
    per = min(per_user, n_items)
    cols = np.stack([rng.choice(n_items, per, replace=False) for _ in range(n_users)]) if per else \
        np.zeros((n_users, 0), dtype=np.int64)
    rows = np.repeat(np.arange(n_users), per)
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols.reshape(-1))), shape=(n_users, n_items))


@dataclass
class Catalogue:
    """One catalogue to benchmark: a generator over it and the vectors of inner-product retrieval.

    ``user_vecs (n_users, d)`` / ``item_vecs (n_items, d)``: what the MF-style methods rank with (for a trained
    MMGRec model, the Graph RQ-VAE ``h_u`` / ``h_i`` the generator itself reads); ``history``: the training
    items excluded from every list (also the generator's encoder input); ``trie_build_s``: median seconds to
    build the Rec-ID trie of this catalogue.
    """

    name: str
    model: MMGRecGenerator
    user_vecs: torch.Tensor
    item_vecs: torch.Tensor
    history: sp.csr_matrix
    fraction: float = float("nan")
    trie_build_s: float = float("nan")
    info: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.item_vecs.shape[0])


def time_trie_build(codes: torch.Tensor, cardinalities: Sequence[int], reps: int = 3) -> float:
    """Median seconds of :class:`PrefixTrie` construction over ``reps`` builds."""
    times = []
    for _ in range(max(1, reps)):
        start = time.perf_counter()
        PrefixTrie(codes, cardinalities)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gaussian_like(n: int, like: torch.Tensor | None, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, dim)`` Gaussian vectors: standard normal, or with the mean and covariance of the rows of ``like``
    (then ``dim`` is ``like``'s width)."""
    if like is None:
        return torch.randn(n, dim, generator=generator)
    x = like.double()
    mean = x.mean(0)
    cov = torch.cov(x.T) + 1e-6 * torch.eye(x.shape[1], dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    out = torch.empty(n, x.shape[1])
    for s in range(0, n, 1 << 16):                                       # in blocks: no float64 (n, d) copy
        z = torch.randn(min(n, s + (1 << 16)) - s, x.shape[1], generator=generator, dtype=torch.float64)
        out[s:s + z.shape[0]] = (mean + z @ chol.T).float()
    return out


def synthetic_catalogue(n_items: int, config: ModelConfig | None = None, codebook_size: int = 256, levels: int = 3,
                        dim: int = 64, n_users: int = 256, history_len: int = 20, seed: int = 0,
                        trie_reps: int = 3, like: tuple[torch.Tensor, torch.Tensor] | None = None) -> Catalogue:
    """An **untrained** generator of the given shape over ``n_items`` synthetic items (timing only: its lists
    mean nothing): random Rec-IDs (:func:`synthetic_codes`), Gaussian user/item vectors of width ``dim`` (the
    encoder's input vectors and the inner-product methods' vectors alike; with ``like = (user_vecs,
    item_vecs)``, e.g. a trained model's, drawn with their mean and covariance instead of standard normal)
    and ``history_len`` random training items per user."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.from_numpy(synthetic_codes(n_items, codebook_size, levels, seed))
    cards = [codebook_size] * levels + [int(codes[:, -1].max()) + 1]
    build = time_trie_build(codes, cards, trie_reps)
    table = RecIDTable(codes, cards)
    users = gaussian_like(n_users, like[0] if like is not None else None, dim, g)
    items = gaussian_like(n_items, like[1] if like is not None else None, dim, g)
    history = random_history(n_users, n_items, history_len, seed)
    torch.manual_seed(seed)
    model = MMGRecGenerator(table, users, items, history, config).eval()
    del table
    # the model keeps its own copy of the item vectors; rank with that one (no second copy of n_items x dim)
    return Catalogue("synthetic", model, model.user_repr, model.item_table, history, trie_build_s=build,
                     info={"vectors": "like a trained model's" if like is not None else "standard normal",
                           "history_len": history_len})


def subset_catalogue(model: MMGRecGenerator, items: np.ndarray, user_vecs: torch.Tensor, item_vecs: torch.Tensor,
                     history: sp.spmatrix, name: str = "", fraction: float = float("nan"),
                     trie_reps: int = 3) -> Catalogue:
    """The trained ``model`` restricted to the item subset ``items`` (a sub-dataset, as the paper's "1/8 Kwai":
    the Rec-IDs, encoder item vectors and training interactions of those items only; the same weights and
    codebook sizes). ``user_vecs`` / ``item_vecs`` are the full catalogue's inner-product vectors."""
    items = np.sort(np.asarray(items, dtype=np.int64))
    idx = torch.from_numpy(items)
    codes = model.codes.cpu()[idx]
    build = time_trie_build(codes, model.cardinalities, trie_reps)
    table = RecIDTable(codes, model.cardinalities)
    hist = sp.csr_matrix(history)[:, items]
    state = model.state_dict()
    if "item_table" in state:                                            # fine-tuned or learned item vectors
        state["item_table"] = state["item_table"][idx]
    sub = MMGRecGenerator(table, model.user_repr.cpu(), model.item_table.detach().cpu()[idx], hist, model.config)
    sub.load_state_dict(state)
    return Catalogue(name, sub.eval(), user_vecs, item_vecs[idx].contiguous(), hist, fraction=fraction,
                     trie_build_s=build)


# ====================================================================== retrieval methods
def _history_pairs(history: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch's training items as (row in batch, item) pairs (numpy)."""
    rows, items = csr_pairs(history[users])
    return rows.numpy(), items.numpy()


class ExactInnerProduct:
    """Top-``k`` by ``u · v_i`` over every item, training items excluded, in item chunks of at most
    ``chunk_elems`` scores (``batch x chunk``): each chunk's top-``k`` is merged into a running top-``k``."""

    def __init__(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor, history: sp.spmatrix,
                 chunk_elems: int = 1 << 22) -> None:
        self.users, self.items = user_vecs.float(), item_vecs.float().contiguous()
        self.history = sp.csr_matrix(history)
        self.chunk_elems = int(chunk_elems)

    @torch.no_grad()
    def __call__(self, users: torch.Tensor, k: int = 10) -> torch.Tensor:
        u = users.cpu().numpy()
        q = self.users[users]                                                      # (B, d)
        B, n = q.shape[0], self.items.shape[0]
        rows, cols = _history_pairs(self.history, u)
        order = np.argsort(cols, kind="stable")                                   # excluded pairs by item
        rows, cols = torch.from_numpy(rows[order]), torch.from_numpy(cols[order])
        chunk = max(k, self.chunk_elems // max(B, 1))
        best_v = torch.full((B, 0), float("-inf"))
        best_i = torch.zeros((B, 0), dtype=torch.long)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            scores = q @ self.items[s:e].T                                         # (B, C): one chunk
            lo, hi = torch.searchsorted(cols, torch.tensor([s, e])).tolist()
            if hi > lo:
                scores[rows[lo:hi], cols[lo:hi] - s] = float("-inf")
            v, i = scores.topk(min(k, e - s), dim=1)
            best_v, pos = torch.cat([best_v, v], 1).topk(min(k, best_v.shape[1] + v.shape[1]), dim=1)
            best_i = torch.cat([best_i, i + s], 1).gather(1, pos)
        return best_i.masked_fill(torch.isneginf(best_v), -1)


class FaissSearch:
    """Top-``k`` from a faiss index over the item vectors: searches ``k`` + the batch's longest history, drops
    each user's training items and keeps the first ``k`` (``-1`` pads)."""

    def __init__(self, index, user_vecs: torch.Tensor, history: sp.spmatrix) -> None:
        self.index, self.history = index, sp.csr_matrix(history)
        self.users = user_vecs.float().numpy()
        self.n_items = self.history.shape[1]

    def __call__(self, users: torch.Tensor, k: int = 10) -> torch.Tensor:
        u = users.cpu().numpy()
        B = u.size
        counts = self.history.indptr[u + 1] - self.history.indptr[u]
        kk = min(self.n_items, k + int(counts.max(initial=0)))
        _, found = self.index.search(np.ascontiguousarray(self.users[u]), kk)     # (B, kk), -1 = none
        rows, cols = _history_pairs(self.history, u)
        excluded = np.isin(np.arange(B)[:, None] * self.n_items + found, rows * self.n_items + cols)
        ok = (found >= 0) & ~excluded
        first = np.argsort(~ok, axis=1, kind="stable")[:, :k]                     # kept first, in rank order
        out = np.take_along_axis(found, first, 1)
        out[~np.take_along_axis(ok, first, 1)] = -1
        return torch.from_numpy(out.astype(np.int64))


def build_faiss(item_vecs: torch.Tensor, kind: str = "flat", nlist: int | None = None, nprobe: int = 16,
                hnsw_m: int = 32, ef_search: int = 64, seed: int = 0):
    """A faiss inner-product index over ``item_vecs``: ``"flat"`` (exact), ``"ivf"`` (IVF-Flat, ``nlist``
    lists, default ``sqrt(n)`` capped so that each list trains on >= 39 points; ``nprobe`` searched) or
    ``"hnsw"`` (``hnsw_m`` links, ``ef_search``). Returns ``(index, build seconds)``."""
    import faiss

    x = np.ascontiguousarray(item_vecs.float().numpy())
    n, d = x.shape
    start = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = int(nlist or max(1, min(round(math.sqrt(n)), n // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        train = x if n <= 256 * nlist else x[np.random.default_rng(seed).choice(n, 256 * nlist, replace=False)]
        index.train(train)
        index.nprobe = min(nprobe, nlist)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown faiss index {kind!r}; expected flat, ivf or hnsw")
    index.add(x)
    return index, time.perf_counter() - start


def faiss_params(kind: str, index) -> str:
    """The search settings of an index: ``""`` (flat), ``"nlist 100, nprobe 16"``, ``"M 32, efSearch 64"``."""
    if kind == "ivf":
        return f"nlist {index.nlist}, nprobe {index.nprobe}"
    if kind == "hnsw":
        return f"M {index.hnsw.nb_neighbors(1)}, efSearch {index.hnsw.efSearch}"
    return ""


def tune_faiss(kind: str, index, search: "FaissSearch", users: torch.Tensor, exact: torch.Tensor, k: int,
               target: float) -> float:
    """Smallest ``nprobe`` (IVF) / ``efSearch`` (HNSW) in a doubling sequence whose recall@k against ``exact``
    on ``users`` reaches ``target`` (the largest tried when none does); sets it on ``index``, returns the recall."""
    if kind == "ivf":
        values = [v for v in (2 ** i for i in range(20)) if v < index.nlist] + [index.nlist]
    elif kind == "hnsw":
        values = [16 * 2 ** i for i in range(8)]
    else:
        return recall_against(search(users, k), exact)
    for v in values:
        if kind == "ivf":
            index.nprobe = v
        else:
            index.hnsw.efSearch = v
        recall = recall_against(search(users, k), exact)
        if recall >= target:
            break
    return recall


def faiss_mb(index) -> float:
    import faiss
    return float(faiss.serialize_index(index).nbytes) / 2**20


def recall_against(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean over users of ``|found ∩ exact| / |exact|`` (``-1`` entries ignored)."""
    hits, total = 0, 0
    for f, e in zip(found.tolist(), exact.tolist()):
        e = {i for i in e if i >= 0}
        hits += len(e & {i for i in f if i >= 0})
        total += len(e)
    return hits / total if total else float("nan")


# ====================================================================== measuring
@dataclass
class Method:
    """One timed configuration: ``fn(users (B,)) -> (B, k)`` items, called with ``batch`` users at a time."""

    name: str
    family: str
    batch: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    beam: float = float("nan")
    build_s: float = 0.0
    structure_mb: float = float("nan")
    params: str = ""


def time_methods(methods: Sequence[Method], users: torch.Tensor, single: torch.Tensor, reps: int = 5
                 ) -> dict[str, list[float]]:
    """Milliseconds per user of each method over ``reps`` rounds, methods interleaved (the order rotates each
    round) after one untimed warm-up call each. Batch-1 methods run over ``single`` one user at a time, the
    others once on ``users[:batch]``."""
    for m in methods:                                                            # warm-up
        m.fn(single[:1] if m.batch == 1 else users[:m.batch])
    times: dict[str, list[float]] = {m.name: [] for m in methods}
    for r in range(reps):
        gc.collect()
        for m in list(methods[r % len(methods):]) + list(methods[:r % len(methods)]):
            if m.batch == 1:
                start = time.perf_counter()
                for u in single:
                    m.fn(u.view(1))
                times[m.name].append((time.perf_counter() - start) * 1e3 / len(single))
            else:
                batch = users[:m.batch]
                start = time.perf_counter()
                m.fn(batch)
                times[m.name].append((time.perf_counter() - start) * 1e3 / len(batch))
    return times


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_call_mb(fn: Callable, *args, timeout: float = 300.0) -> float:
    """Extra peak resident memory (MiB) of ``fn(*args)`` in a forked copy of this process: after one warm-up
    call (which faults in the libraries' code pages and lazy buffers) and ``malloc_trim``, the peak is reset
    (``/proc/self/clear_refs``) and the second call's ``VmHWM`` minus the ``VmRSS`` before it is reported (both
    from ``/proc/self/status``). ``nan`` where that is not available (no ``fork``, no ``/proc``) or the child
    fails or takes longer than ``timeout``."""
    if not hasattr(os, "fork") or not os.path.isfile("/proc/self/status"):
        return float("nan")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                                                 # child: measure and leave
        value = "nan"
        try:
            os.close(read_end)
            torch.set_num_threads(1)
            try:
                libc = ctypes.CDLL("libc.so.6")
                libc.mallopt(-3, 128 * 1024)         # M_MMAP_THRESHOLD fixed: big blocks are mmapped and counted
            except (OSError, AttributeError):
                libc = None
            fn(*args)                                # warm: faults in code pages, lazy buffers
            if libc is not None:
                libc.malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")                        # reset VmHWM to the current resident set
            before = _status_kb("VmRSS")
            fn(*args)
            value = repr((_status_kb("VmHWM") - before) / 1024)
        except BaseException:                                                    # noqa: BLE001
            value = "nan"
        finally:
            try:
                os.write(write_end, value.encode())
            finally:
                os._exit(0)
    os.close(write_end)
    data = b""
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        if ready:
            data = os.read(read_end, 64)
    finally:
        os.close(read_end)
        if not data:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        os.waitpid(pid, 0)
    try:
        return float(data.decode() or "nan")
    except ValueError:
        return float("nan")


def _tensor_mb(*tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def beam_structure_mb(model: MMGRecGenerator) -> float:
    """Trie tables and codes + the encoder's item vectors + weights (what beam search keeps between calls)."""
    weights = [p for name, p in model.named_parameters() if name != "item_table"]
    return _tensor_mb(*model.trie.buffers(), model.item_table, *weights)


def catalogue_methods(cat: Catalogue, users: torch.Tensor, k: int = 10, beams: Sequence[int] = (10, 20),
                      ann: str = "ivf", nprobe: int = 16, ef_search: int = 64, target_recall: float | None = 0.9,
                      chunk_elems: int = 1 << 22, seed: int = 0) -> list[Method]:
    """The timed configurations of one catalogue, at batch 1 and at ``len(users)``. The faiss indexes are
    built here (build time recorded); with ``target_recall`` the approximate index's ``nprobe`` / ``efSearch``
    is tuned on ``users`` (:func:`tune_faiss`), else ``nprobe`` / ``ef_search`` are used as given."""
    model, batch = cat.model, int(users.numel())
    structure = beam_structure_mb(model)
    methods = []
    for b in (1, batch):
        for w in beams:
            methods.append(Method(f"beam {w}, batch {b}", "mmgrec beam", b,
                                  (lambda w: lambda u: beam_search(model, u, k, w)[0])(w), beam=w,
                                  build_s=cat.trie_build_s, structure_mb=structure))
    exact = ExactInnerProduct(cat.user_vecs, cat.item_vecs, cat.history, chunk_elems)
    for b in (1, batch):
        methods.append(Method(f"exact matmul, batch {b}", "exact matmul", b, lambda u: exact(u, k),
                              structure_mb=_tensor_mb(cat.item_vecs)))
    reference = exact(users, k) if target_recall is not None else None
    for kind in ("flat", ann):
        index, build = build_faiss(cat.item_vecs, kind, nprobe=nprobe, ef_search=ef_search, seed=seed)
        search = FaissSearch(index, cat.user_vecs, cat.history)
        if kind != "flat" and target_recall is not None:
            tune_faiss(kind, index, search, users, reference, k, target_recall)
        params, mb = faiss_params(kind, index), faiss_mb(index)
        for b in (1, batch):
            methods.append(Method(f"faiss {kind}, batch {b}", f"faiss {kind}", b,
                                  (lambda s: lambda u: s(u, k))(search), build_s=build, structure_mb=mb,
                                  params=params))
    return methods


def bench_catalogue(cat: Catalogue, users: torch.Tensor, single: torch.Tensor, k: int = 10,
                    beams: Sequence[int] = (10, 20), reps: int = 5, ann: str = "ivf", nprobe: int = 16,
                    ef_search: int = 64, target_recall: float | None = 0.9, peak: bool = True,
                    chunk_elems: int = 1 << 22, seed: int = 0) -> pd.DataFrame:
    """Time every method on one catalogue (``users``: the large batch; ``single``: the batch-1 users); one
    row per method with the columns :data:`COLUMNS`. ``recall@10`` of the inner-product methods is measured
    against :class:`ExactInnerProduct` on ``users``."""
    batch = int(users.numel())
    methods = catalogue_methods(cat, users, k, beams, ann, nprobe, ef_search, target_recall, chunk_elems, seed)
    times = time_methods(methods, users, single, reps)
    exact_lists = next(m for m in methods if m.family == "exact matmul" and m.batch == batch).fn(users)
    rows = []
    threads = torch.get_num_threads()
    trie_nodes = sum(cat.model.trie.child_table(lvl).shape[0] for lvl in range(cat.model.n_levels))
    for m in methods:
        t = times[m.name]
        recall = float("nan")
        if m.family != "mmgrec beam":
            recall = recall_against(m.fn(users), exact_lists) if m.batch > 1 else float("nan")
        mem = peak_call_mb(m.fn, users[:m.batch] if m.batch > 1 else single[:1]) if peak else float("nan")
        rows.append({"catalogue": cat.name, "fraction": cat.fraction, "n_items": cat.n_items, "method": m.name,
                     "family": m.family, "batch": m.batch, "beam": m.beam, "params": m.params, "ms_per_user": statistics.median(t),
                     "ms_per_user_min": min(t), "ms_per_user_max": max(t), "reps": len(t),
                     "users": batch if m.batch > 1 else len(single), "threads": threads, "build_s": m.build_s,
                     "structure_mb": m.structure_mb, "peak_mb": mem, "recall@10": recall,
                     "trie_build_s": cat.trie_build_s, "trie_nodes": trie_nodes})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def bench_synthetic(sizes: Sequence[int], config: ModelConfig | None = None, batch: int = 256, n_single: int = 16,
                    codebook_size: int = 256, levels: int = 3, dim: int = 64, history_len: int = 20,
                    k: int = 10, beams: Sequence[int] = (10, 20), reps: int = 5, ann: str = "ivf",
                    nprobe: int = 16, ef_search: int = 64, target_recall: float | None = 0.9, peak: bool = True,
                    seed: int = 0, like: tuple[torch.Tensor, torch.Tensor] | None = None,
                    progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """:func:`bench_catalogue` on synthetic catalogues of each size (an untrained generator of the shape
    ``config`` / ``codebook_size`` / ``levels`` / ``dim``, vectors as :func:`synthetic_catalogue` with ``like``;
    timing only). One catalogue in memory at a time."""
    n_users = max(batch, n_single)
    catalogues = ((synthetic_catalogue(int(n), config, codebook_size, levels, dim, n_users, history_len, seed,
                                       like=like), f"{int(n):>9,} items done") for n in sizes)
    return _bench_each(catalogues, torch.arange(batch), torch.arange(n_single), k, beams, reps, ann, nprobe,
                       ef_search, target_recall, peak, seed, progress)


def median_over_sweeps(sweeps: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One table from repeated sweeps over the same catalogues (timings vary between runs more than within
    one): per (catalogue, size, method) the median of the sweeps' medians as ``ms_per_user``, the smallest
    minimum and the largest maximum; the other columns from the first sweep; ``sweeps`` counts them."""
    if not sweeps:
        raise ValueError("no sweeps to combine")
    keys = ["catalogue", "n_items", "method"]
    grouped = pd.concat(sweeps, ignore_index=True).groupby(keys, sort=False)
    out = sweeps[0].set_index(keys)
    out["ms_per_user"] = grouped["ms_per_user"].median()
    out["ms_per_user_min"] = grouped["ms_per_user_min"].min()
    out["ms_per_user_max"] = grouped["ms_per_user_max"].max()
    out["sweeps"] = len(sweeps)
    return out.reset_index()[list(COLUMNS) + ["sweeps"]]


def _bench_each(catalogues, users, single, k, beams, reps, ann, nprobe, ef_search, target_recall, peak, seed,
                progress) -> pd.DataFrame:
    """:func:`bench_catalogue` on each ``(catalogue, progress message)``, one catalogue in memory at a time."""
    frames = []
    for cat, message in catalogues:
        frames.append(bench_catalogue(cat, users, single, k, beams, reps, ann, nprobe, ef_search, target_recall,
                                      peak, seed=seed))
        if progress:
            progress(message)
        del cat
        gc.collect()
    return pd.concat(frames, ignore_index=True)


def bench_subsets(model: MMGRecGenerator, user_vecs: torch.Tensor, item_vecs: torch.Tensor, history: sp.spmatrix,
                  fractions: Sequence[float], users: torch.Tensor, single: torch.Tensor, name: str = "",
                  k: int = 10, beams: Sequence[int] = (10, 20), reps: int = 5, ann: str = "ivf", nprobe: int = 16,
                  ef_search: int = 64, target_recall: float | None = 0.9, peak: bool = True, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """:func:`bench_catalogue` on nested random item subsets (each fraction's items contain the smaller
    fractions'; one permutation drawn from ``seed``) of a trained model's catalogue."""
    perm = np.random.default_rng(seed).permutation(model.n_items)

    def catalogues():
        for f in sorted(fractions):
            items = perm[:max(1, int(round(f * model.n_items)))]
            yield (subset_catalogue(model, items, user_vecs, item_vecs, history, name, f),
                   f"{name} x {f:g} ({len(items):,} items) done")

    return _bench_each(catalogues(), users, single, k, beams, reps, ann, nprobe, ef_search, target_recall, peak,
                       seed, progress)


# ====================================================================== reading the numbers
def _keys(df: pd.DataFrame) -> pd.DataFrame:
    """``catalogue``, ``fraction`` (dropped when all missing), ``n_items`` and the trie facts per catalogue, in
    the table's catalogue order and by size."""
    keys = df.groupby(["catalogue", "n_items"], sort=False)[["fraction", "trie_build_s", "trie_nodes"]].first()
    keys = keys.reset_index()
    keys["_order"] = keys["catalogue"].map({c: i for i, c in enumerate(dict.fromkeys(df["catalogue"]))})
    keys = keys.sort_values(["_order", "n_items"], ignore_index=True).drop(columns="_order")
    return keys.drop(columns="fraction") if keys["fraction"].isna().all() else keys


def wide_table(df: pd.DataFrame, value: str = "ms_per_user") -> pd.DataFrame:
    """One row per catalogue (and size), one column per method (``value``, default the median ms per user),
    plus the trie build seconds."""
    wide = df.pivot_table(index=["catalogue", "n_items"], columns="method", values=value, sort=False).reset_index()
    wide = wide[["catalogue", "n_items"] + list(dict.fromkeys(df["method"]))]
    keys = _keys(df).drop(columns="trie_nodes")
    out = keys.merge(wide, on=["catalogue", "n_items"], how="left")
    out.columns.name = None
    return out


def memory_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per catalogue (and size): trie build seconds and nodes; per method family the memory kept
    between calls (``* structure_mb``); per large-batch method the extra peak of one call (``peak_mb *``); the
    faiss indexes' build seconds, settings and recall@10 against exact."""
    big = int(df["batch"].max())
    rows = []
    for (cat, n), g in df.groupby(["catalogue", "n_items"], sort=False):
        row = {"catalogue": cat, "n_items": n}
        for fam, gf in g.groupby("family", sort=False):
            row[f"{fam} structure_mb"] = gf["structure_mb"].iloc[0]
        for _, r in g[g["batch"] == big].iterrows():
            row[f"peak_mb {r['method'].rsplit(',', 1)[0]}"] = r["peak_mb"]
        for _, r in g[(g["batch"] == big) & g["family"].str.startswith("faiss")].iterrows():
            fam = r["family"]
            row[f"{fam} build_s"] = r["build_s"]
            if r["params"]:
                row[f"{fam} settings"] = r["params"]
            row[f"{fam} recall@10"] = r["recall@10"]
        rows.append(row)
    return _keys(df).merge(pd.DataFrame(rows), on=["catalogue", "n_items"], how="left")


def crossover_table(df: pd.DataFrame, beams: Sequence[int] = (10, 20)) -> pd.DataFrame:
    """For each catalogue, batch and beam width: where beam search becomes cheaper per user than each
    inner-product method at the same batch (:func:`crossover`; ``crossover_items`` rounded to two significant
    digits), and both costs at the largest size."""
    rows = []
    for cat, g in df.groupby("catalogue", sort=False):
        largest = int(g["n_items"].max())
        for b in sorted(g["batch"].unique()):
            refs = [m for m in dict.fromkeys(g["method"]) if not m.startswith("beam") and m.endswith(f", batch {b}")]
            for w in beams:
                bm = f"beam {w}, batch {b}"
                if bm not in set(g["method"]):
                    continue
                for ref in refs:
                    c = crossover(g, bm, ref)
                    n = c.get("n_items")
                    rows.append({"catalogue": cat, "batch": int(b), "beam": w, "against": ref.rsplit(",", 1)[0],
                                 "beam_cheaper": c["status"],
                                 "crossover_items": None if n is None else int(float(f"{n:.2g}")),
                                 "largest_items": largest, "beam_ms": _series(g, bm).get(largest, float("nan")),
                                 "against_ms": _series(g, ref).get(largest, float("nan"))})
    out = pd.DataFrame(rows)
    if len(out):
        out["crossover_items"] = out["crossover_items"].astype("Int64")       # 2 significant digits; <NA>: none
    return out


def environment_line() -> str:
    """Threads, CPUs, load average and library versions, for the record of a timed run."""
    try:
        import faiss
        fa = f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)"
    except ImportError:                                                  # pragma: no cover
        fa = "faiss not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"torch {torch.__version__} ({torch.get_num_threads()} threads), {fa}; {os.cpu_count()} CPUs, "
            f"1-minute load average {load:.2f}")


def _series(df: pd.DataFrame, method: str, value: str = "ms_per_user") -> pd.Series:
    sub = df[df["method"] == method].sort_values("n_items")
    return pd.Series(sub[value].to_numpy(), index=sub["n_items"].to_numpy())


def crossover(df: pd.DataFrame, method: str, reference: str) -> dict:
    """Where ``method`` becomes cheaper per user than ``reference`` (both method labels of ``df``).

    Returns ``{"status": ...}``: ``"never"`` (costlier at every size), ``"always"`` (cheaper at every size),
    ``"crosses"`` with ``"n_items"``, the catalogue size where the two log-log lines meet (interpolated
    between the last size where ``method`` is costlier and the first after which it stays cheaper), or
    ``"mixed"`` (no single crossing)."""
    a, b = _series(df, method), _series(df, reference)
    common = a.index.intersection(b.index)
    a, b = a[common], b[common]
    cheaper = (a < b).to_numpy()
    if not cheaper.size:
        return {"status": "no data"}
    if cheaper.all():
        return {"status": "always"}
    if not cheaper.any():
        return {"status": "never"}
    last_costlier = np.nonzero(~cheaper)[0].max()
    if last_costlier == cheaper.size - 1:
        return {"status": "mixed"}
    i, j = last_costlier, last_costlier + 1
    x = np.log(common[[i, j]].astype(float))
    r = np.log(a.iloc[[i, j]].to_numpy()) - np.log(b.iloc[[i, j]].to_numpy())    # log ratio: > 0, then < 0
    n = float(np.exp(x[0] + (x[1] - x[0]) * r[0] / (r[0] - r[1])))
    return {"status": "crosses" if not cheaper[:i].any() else "mixed", "n_items": n}


def efficiency_reading(df: pd.DataFrame, batch: int, beam: int = 20, label: str = "") -> list[str]:
    """Plain sentences computed from one benchmark table (``batch``: its large batch; ``beam``: the beam width
    the comparisons use). Says plainly when an approximate index is cheaper than beam search at every size."""
    lines = []
    sizes = sorted(df["n_items"].unique())
    lo, hi = sizes[0], sizes[-1]
    pre = f"{label}: " if label else ""

    def ms(method, n):
        s = _series(df, method)
        return float(s.get(n, float("nan")))

    beam_b = f"beam {beam}, batch {batch}"
    exact_b = f"exact matmul, batch {batch}"
    growth = ms(beam_b, hi) / ms(beam_b, lo)
    lines.append(f"{pre}beam {beam} at batch {batch}: {ms(beam_b, lo):.3g} ms/user at {lo:,} items, "
                 f"{ms(beam_b, hi):.3g} at {hi:,} ({growth:.2f}x); exact matmul top-10: {ms(exact_b, lo):.3g} -> "
                 f"{ms(exact_b, hi):.3g} ({ms(exact_b, hi) / ms(exact_b, lo):.1f}x).")
    for b in (1, batch):
        for ref in (f"exact matmul, batch {b}",
                    *[m for m in dict.fromkeys(df["method"]) if m.startswith("faiss") and m.endswith(f"batch {b}")]):
            c = crossover(df, f"beam {beam}, batch {b}", ref)
            what = {"always": "cheaper at every size measured", "never": "costlier at every size measured",
                    "mixed": "neither consistently cheaper nor costlier" + (
                        f" (last crossing near {c['n_items']:,.0f} items)" if "n_items" in c else ""),
                    "no data": "not measured"}.get(c["status"], None)
            if c["status"] == "crosses":
                what = f"cheaper from about {c['n_items']:,.0f} items on"
            lines.append(f"{pre}beam {beam} at batch {b} against {ref.rsplit(',', 1)[0]}: {what}; at {hi:,} items "
                         f"{ms(f'beam {beam}, batch {b}', hi):.3g} against {ms(ref, hi):.3g} ms/user.")
    approx = [m for m in dict.fromkeys(df["method"]) if m.startswith("faiss") and not m.startswith("faiss flat")
              and m.endswith(f"batch {batch}")]
    beams_b = [m for m in dict.fromkeys(df["method"]) if m.startswith("beam") and m.endswith(f"batch {batch}")]
    for ap in approx:
        cheaper_everywhere = all(
            (_series(df, ap) < _series(df, bm).reindex(_series(df, ap).index)).all() for bm in beams_b)
        rec = df[df["method"] == ap]["recall@10"]
        name = ap.rsplit(",", 1)[0]
        if cheaper_everywhere:
            lines.append(f"{pre}{name} is cheaper than every beam search at batch {batch} at every size measured "
                         f"(recall@10 against exact {rec.min():.2f}-{rec.max():.2f}).")
        else:
            lines.append(f"{pre}{name} is not cheaper than beam search at every size (recall@10 against exact "
                         f"{rec.min():.2f}-{rec.max():.2f}).")
    return lines


def claim_checks(df: pd.DataFrame, batch: int = 256, beam: int = 20, small: int = 1000, large: int = 1_000_000,
                 sweeps: Sequence[pd.DataFrame] | None = None) -> pd.DataFrame:
    """The two efficiency claims, checked on a synthetic table: beam time at ``batch`` grows at most 1.2x from
    ``small`` to ``large`` items; at ``large`` it is at least 2x faster than exact matmul top-10 at ``batch``.
    With ``sweeps`` (the repeated sweeps ``df`` combines, :func:`median_over_sweeps`), ``per_sweep`` lists the
    value each sweep alone gives, so the spread between runs is visible beside the verdict."""
    if sweeps:
        table = claim_checks(df, batch, beam, small, large)
        each = [claim_checks(s, batch, beam, small, large)["value"] for s in sweeps]
        table["per_sweep"] = [", ".join(f"{v[i]:.2f}" for v in each) for i in range(len(table))]
        return table
    beam_s = _series(df, f"beam {beam}, batch {batch}")
    exact_s = _series(df, f"exact matmul, batch {batch}")
    rows = []
    if small in beam_s.index and large in beam_s.index:
        g = beam_s[large] / beam_s[small]
        rows.append({"claim": f"beam {beam} time at batch {batch} grows at most 1.2x from {small:,} to {large:,} items",
                     "value": g, "holds": bool(g <= 1.2)})
    else:
        rows.append({"claim": f"beam time growth {small:,} -> {large:,}", "value": float("nan"), "holds": None})
    if large in beam_s.index and large in exact_s.index:
        s = exact_s[large] / beam_s[large]
        rows.append({"claim": f"at {large:,} items beam {beam} is at least 2x faster than exact matmul top-10 "
                              f"(batch {batch})", "value": s, "holds": bool(s >= 2)})
    else:
        rows.append({"claim": f"beam vs exact at {large:,}", "value": float("nan"), "holds": None})
    return pd.DataFrame(rows)


__all__ = ["COLUMNS", "Catalogue", "ExactInnerProduct", "FaissSearch", "Method", "bench_catalogue",
           "bench_subsets", "bench_synthetic", "beam_structure_mb", "build_faiss", "catalogue_methods",
           "claim_checks", "crossover", "median_over_sweeps", "efficiency_reading", "crossover_table", "environment_line", "memory_table", "faiss_params", "gaussian_like", "tune_faiss", "peak_call_mb", "random_history",
           "recall_against", "set_threads", "subset_catalogue", "synthetic_catalogue", "synthetic_codes",
           "time_methods", "time_trie_build", "wide_table"]
