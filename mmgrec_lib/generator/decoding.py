r"""Constrained beam search over Rec-IDs, and exact scoring of every Rec-ID (for checking the search).

**Normalisation (one rule, used everywhere).** At each level the log-softmax runs over that level's *full*
token range -- the model's own conditional distribution, exactly what the cross-entropy loss trains. Tokens
that do not extend a valid Rec-ID, and excluded items at the last level, are then set to ``-inf`` *without*
renormalising. The score of a Rec-ID is therefore its model log-likelihood

.. math:: \log p(t_1, \dots, t_M \mid u) = \sum_{l=1}^{M} \log p(t_l \mid t_{<l}, u),

identical in :func:`beam_search` and :func:`exact_scores`; it never depends on which other items are valid or
excluded. (Renormalising over allowed tokens would hand every item whose prefix has a single continuation,
e.g. a semantic prefix without collisions whose popularity token is forced, a free factor of 1, a bias
unrelated to the user.) It is also what Hugging Face's prefix-constrained generation and GENRE do.

**Beam search.** The users of a batch are encoded once and the encoder output is reused at every level
(shared by a user's beams, see :meth:`MMGRecGenerator.decode`). The loop
runs over the ``M`` levels only. Each beam carries its trie node; the allowed next tokens are
``children[level][node] >= 0`` (and, by default, the child must still have at least one non-excluded item
below it, so no beam is spent on a prefix whose items the user has all consumed). At the last level the
user's training items (and any extra ``exclude``, e.g. validation items at test time) are masked. Fewer than
``k`` valid candidates give ``-1`` items with ``-inf`` scores. With a width at least the number of valid
prefixes at every level (e.g. ``n_items``) the search is exhaustive, so its top-K equals :func:`exact_scores`'s.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from ..utils import eval_mode

# The decoder needs from the model only its public interface (no import of the model module, so the model
# can call the decoder): ``check_users``, ``encode``, ``decode``, ``start_decoding``, ``decode_step``,
# ``reorder_decoding``, ``level_logits``, ``n_users``, ``n_items``,
# ``n_levels``, ``cardinalities``, ``codes``, ``trie`` (:class:`~mmgrec_lib.tokenizer.trie.PrefixTrie`) and
# ``history`` (:class:`~mmgrec_lib.generator.history.UserHistory`).
GeneratorLike = torch.nn.Module


# ---------------------------------------------------------------------- exclusion masks
def exclusion_pairs(model: GeneratorLike, users: torch.Tensor, exclude=None,
                    exclude_train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicated (row in batch, item) pairs never to recommend: ``(E,)``, ``(E,)`` long tensors.

    Args:
        users: ``(B,)`` user ids (on the model's device).
        exclude: extra exclusions: a ``(n_users, n_items)`` sparse matrix (rows taken for ``users``) or a
            ``(B, n_items)`` bool tensor.
        exclude_train: also exclude the model's history (training items).
    """
    dev, I, B = users.device, model.n_items, users.shape[0]
    rows, items = [], []
    if exclude_train and B:
        r, i = model.history.pairs(users)                                              # (nnz_b,), (nnz_b,)
        rows.append(r)
        items.append(i)
    if exclude is not None:
        if sp.issparse(exclude):
            if exclude.shape != (model.n_users, I):
                raise ValueError(f"exclude matrix has shape {exclude.shape}; expected ({model.n_users}, {I})")
            sub = sp.csr_matrix(exclude)[users.cpu().numpy()].tocoo()
            rows.append(torch.from_numpy(sub.row.astype(np.int64)).to(dev))
            items.append(torch.from_numpy(sub.col.astype(np.int64)).to(dev))
        else:
            ex = torch.as_tensor(exclude, device=dev)
            if ex.dtype != torch.bool or ex.shape != (B, I):
                raise ValueError(f"exclude tensor must be bool of shape ({B}, {I}), got {ex.dtype} {tuple(ex.shape)}")
            r, c = torch.nonzero(ex, as_tuple=True)
            rows.append(r)
            items.append(c)
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    key = torch.unique(torch.cat(rows) * I + torch.cat(items))
    return key // I, key % I


class AliveChildren:
    """The candidates a user may not take, as indices: which (beam, slot) entries of a level's candidate rows
    lead only to excluded items. Nothing of size batch × items or batch × candidates is built: cost O(excluded
    pairs) to build and O(excluded pairs × beams) per level, whatever the catalogue's size.

    A child of level ``l`` (a node of level ``l + 1``) is dead for a user when all of the
    :meth:`PrefixTrie.items_below` items under it are excluded for that user (only with ``prune``); at the last
    level the children are items, dead when excluded. Each dead (row, child) pair is mapped once to the child's
    parent node and its slot in the parent's candidate row (:meth:`PrefixTrie.children_of`); at decoding time
    a pair disables the slot of every beam of its row that sits on that parent.
    """

    def __init__(self, trie, rows: torch.Tensor, items: torch.Tensor, prune: bool = True) -> None:
        self.levels = trie.n_levels
        self.dead: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # per level: (row, parent, slot)
        for lvl in range(self.levels):
            last = lvl == self.levels - 1
            if last:
                r, child = rows, items                                                 # (E,), (E,)
            elif prune:
                node = trie.item_node(lvl + 1)[items]                                  # (E,) the items' nodes
                n = trie.items_below(lvl + 1).shape[0]
                keys, counts = torch.unique(rows * n + node, return_counts=True)       # (K,) per (row, node)
                gone = counts == trie.items_below(lvl + 1)[keys % n]                   # every item excluded
                r, child = keys[gone] // n, keys[gone] % n
            else:
                r = child = rows[:0]
            parent, slot = trie.children_of(lvl, dense=trie.padded(lvl) is None)     # the decoder's layout
            self.dead.append((r, parent[child], slot[child]))

    def __call__(self, level: int, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``node (B, W)``: the beams' nodes at ``level`` -> ``(b, w, slot)`` index tensors of the dead candidates."""
        row, parent, slot = self.dead[level]
        hit = node[row] == parent[:, None]                                              # (E_dead, W)
        e, w = hit.nonzero(as_tuple=True)
        return row[e], w, slot[e]


# ---------------------------------------------------------------------- beam search
@torch.no_grad()
def beam_search(model: GeneratorLike, users: torch.Tensor, k: int, beam_width: int | None = None,
                exclude=None, exclude_train: bool = True, prune: bool = True,
                return_codes: bool = False, cache: bool = True, prior=None):
    """Batched constrained beam search.

    Args:
        model: an :class:`~mmgrec_lib.generator.MMGRecGenerator` (put in eval mode for the call).
        users: ``(B,)`` user ids.
        k: list length (``K``).
        beam_width: beams kept per user (``>= k``; default ``k``, the paper's setting).
        exclude: extra items never returned (see :func:`exclusion_pairs`).
        exclude_train: exclude the user's training items (default; required by the evaluation protocol).
        prune: drop prefixes whose items are all excluded (saves beams; never changes scores).
        return_codes: also return the ``(B, k, M)`` generated tokens (``-1`` rows for padding).
        cache: decode one new position per beam and level, reusing the encoder output's cross-attention
            keys/values and the earlier positions' self-attention keys/values
            (:meth:`MMGRecGenerator.decode_step`); ``False`` re-decodes the whole prefix at every level
            (:meth:`MMGRecGenerator.decode`). Same scores up to float rounding.
        prior: not the paper's: a :class:`~mmgrec_lib.generator.prior.PopularityPrior` whose term is added to
            every candidate at every level (popularity-corrected decoding); ``None``: the model's scores.

    Returns:
        ``items (B, k)`` long (``-1`` pads) and ``scores (B, k)`` summed log-probabilities (``-inf`` pads;
        with ``prior``, plus the prior's terms), best first; plus ``codes`` when asked.
    """
    beam_width = k if beam_width is None else int(beam_width)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if beam_width < k:
        raise ValueError(f"beam_width ({beam_width}) must be >= k ({k}): a beam search keeps only "
                         f"beam_width complete Rec-IDs")
    with eval_mode(model):
        users = model.check_users(users)
        Bu, M, dev = users.shape[0], model.n_levels, users.device
        rows, items = exclusion_pairs(model, users, exclude, exclude_train)
        alive = AliveChildren(model.trie, rows, items, prune)
        memory, mpad = model.encode(users)                                   # (Bu, n, D), (Bu, n): once
        state = model.start_decoding(memory, mpad) if cache else None        # cross-attention K/V: once
        if prior is not None:
            prior = prior.to(dev)
        node = torch.zeros(Bu, 1, dtype=torch.long, device=dev)              # trie node per beam
        score = torch.zeros(Bu, 1, device=dev)                               # summed log-prob per beam
        toks = torch.zeros(Bu, 1, 0, dtype=torch.long, device=dev)           # (Bu, W, l) tokens so far
        for lvl in range(M):
            W, card = node.shape[1], model.cardinalities[lvl]
            if cache:                                                        # (Bu, W, D): the new position only
                h = model.decode_step(state, toks[:, :, -1] if lvl else None)
            else:                                                            # the whole prefix again
                h = model.decode(memory, mpad, toks)[:, :, -1]
            logp = F.log_softmax(model.level_logits(h, lvl).float(), -1).view(Bu, W, card)  # full-range
            parent = node.clamp(min=0)                                       # (Bu, W); dead beams score -inf
            padded = model.trie.padded(lvl)
            if padded is None:                                               # candidates: every token
                cand = score[..., None] + logp                               # (Bu, W, C = card)
                full = model.trie.full(lvl)
                child = None if full and prior is None else model.trie.child_table(lvl)[parent]  # (Bu, W, card)
                if prior is not None:
                    cand += prior.step(lvl, parent, child)
                if not full:
                    cand.masked_fill_(child < 0, float("-inf"))
            else:                                                            # candidates: the node's children
                token = padded[0][parent].long()                             # (Bu, W, C) tokens, -1 pads
                cand = (score[..., None] + logp.gather(2, token.clamp(min=0))).masked_fill_(token < 0, float("-inf"))
                if prior is not None:
                    cand += prior.step(lvl, parent, padded[1][parent].long())
            b, w, dead = alive(lvl, parent)                                  # excluded / exhausted children
            cand[b, w, dead] = float("-inf")
            C = cand.shape[2]
            score, flat = cand.view(Bu, W * C).topk(min(beam_width, W * C), dim=1)   # (Bu, W'), best first
            beam = torch.div(flat, C, rounding_mode="floor")
            slot = flat - beam * C                                           # (Bu, W') slot in the beam's row
            if cache:
                model.reorder_decoding(state, beam)
            at = parent.gather(1, beam)                                      # (Bu, W') the chosen beams' nodes
            if padded is None:
                chosen, node = slot, model.trie.child_table(lvl)[at, slot]   # (Bu, W') token, next node / item
            else:
                chosen, node = padded[0][at, slot].long(), padded[1][at, slot].long()
            prev = toks.gather(1, beam[..., None].expand(-1, -1, lvl))       # (Bu, W', l)
            toks = torch.cat([prev, chosen.clamp(min=0)[..., None]], dim=2)  # (Bu, W', l + 1)
        valid = torch.isfinite(score)
        out_items = node.masked_fill(~valid, -1)
        codes = toks.masked_fill(~valid[..., None], -1)
        if out_items.shape[1] < k:                                           # tiny catalogues: pad to k
            extra = k - out_items.shape[1]
            out_items = torch.cat([out_items, out_items.new_full((Bu, extra), -1)], 1)
            score = torch.cat([score, score.new_full((Bu, extra), float("-inf"))], 1)
            codes = torch.cat([codes, codes.new_full((Bu, extra, M), -1)], 1)
        out = (out_items[:, :k], score[:, :k])
        return (*out, codes[:, :k]) if return_codes else out


# ---------------------------------------------------------------------- exact scoring
def _prefix_nodes(trie) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct length-``(M - 1)`` prefixes (nodes of the last trie level), in node order, with the items
    below them: ``prefix (P, M - 1)`` tokens, ``order (I,)`` items sorted by node and ``start (P + 1,)`` so that
    the items of node ``p`` are ``order[start[p]:start[p + 1]]``. Depends on the catalogue only."""
    M = trie.n_levels
    node = trie.item_node(M - 1)                                                       # (I,) last-level node
    P = trie.child_table(M - 1).shape[0]
    order = torch.argsort(node, stable=True)                                           # (I,) items by node
    start = torch.zeros(P + 1, dtype=torch.long, device=node.device)
    start[1:] = torch.cumsum(trie.items_below(M - 1), 0)
    prefix = trie.codes[order[start[:-1]], :M - 1]                                     # (P, M - 1): any item's
    return prefix, order, start


@torch.no_grad()
def exact_scores(model: GeneratorLike, users: torch.Tensor, exclude=None, exclude_train: bool = True,
                 items_per_step: int | None = None, chunk_size: int = 256, prior=None) -> torch.Tensor:
    """Log-likelihood of every item's Rec-ID for each user, teacher-forced: ``(B, n_items)``.

    Excluded items (training items; ``exclude``) get ``-inf``. The scores follow the module's one
    normalisation rule (full-range log-softmax per level, nothing renormalised), so they equal the scores
    :func:`beam_search` reports for the items it returns.

    Walks the trie instead of the items: each distinct length-``(M - 1)`` prefix (a node of the last trie
    level) is decoded once per user, teacher-forced with the cached incremental decoder
    (:meth:`MMGRecGenerator.decode_step`), ``chunk_size`` prefixes at a time laid side by side like beams.
    One pass over a prefix gives the logits of every level along it, so an item's score is the sum of its
    prefix's token log-probabilities and its own last token's. The first position (BOS) is decoded once per
    user and shared by all chunks. Cost ``O(B * n_prefixes * M)`` decoder positions (``n_prefixes <= n_items``;
    fewer when items collide on their semantic tokens); memory ``O(B * (n_items + chunk_size * card))``.

    Args:
        users: ``(B,)`` user ids.
        exclude, exclude_train: as in :func:`beam_search`.
        items_per_step: deprecated alias of ``chunk_size`` (the former implementation decoded this many
            Rec-IDs per step); when given it overrides ``chunk_size``.
        chunk_size: prefixes decoded per decoder call (memory ``B * chunk_size * max(card)`` floats per level).
        prior: as in :func:`beam_search`: each item's score gets the prior's whole term
            (:meth:`~mmgrec_lib.generator.prior.PopularityPrior.item_term`).
    """
    chunk = int(items_per_step if items_per_step is not None else chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    with eval_mode(model):
        users = model.check_users(users)
        Bu, M, dev = users.shape[0], model.n_levels, users.device
        trie, codes = model.trie, model.codes                                # (I, M)
        rows, items = exclusion_pairs(model, users, exclude, exclude_train)
        memory, mpad = model.encode(users)                                   # (Bu, n, D)
        state0 = model.start_decoding(memory, mpad)
        h0 = model.decode_step(state0, None)                                 # (Bu, 1, D): BOS, once per user
        logp0 = F.log_softmax(model.level_logits(h0[:, 0], 0).float(), -1)   # (Bu, card_0)
        out = logp0.index_select(1, codes[:, 0])                             # (Bu, I): level-0 term
        if M > 1:
            prefix, order, start = _prefix_nodes(trie)                       # (P, M-1), (I,), (P+1,)
            node_of = trie.item_node(M - 1)                                  # (I,)
            P = prefix.shape[0]
            for s in range(0, P, chunk):
                e = min(P, s + chunk)
                W = e - s
                state = {**state0, "keys": [k.expand(-1, W, -1, -1) for k in state0["keys"]],
                         "values": [v.expand(-1, W, -1, -1) for v in state0["values"]]}
                its = order[start[s]:start[e]]                               # (C,) items below these prefixes
                local = node_of[its] - s                                     # (C,) their prefix in the chunk
                along = torch.zeros(Bu, W, device=dev)                       # (Bu, W) prefix log-likelihoods
                for lvl in range(1, M):
                    tok = prefix[s:e, lvl - 1].expand(Bu, W)                 # (Bu, W) teacher-forced tokens
                    h = model.decode_step(state, tok)                        # (Bu, W, D)
                    logp = F.log_softmax(model.level_logits(h, lvl).float(), -1)          # (Bu, W, card_l)
                    if lvl < M - 1:                                          # the prefix's own next token
                        along += logp.gather(2, prefix[s:e, lvl][None, :, None].expand(Bu, -1, 1)).squeeze(2)
                    else:                                                    # each item's last token
                        last = logp[:, local, codes[its, M - 1]]             # (Bu, C)
                out[:, its] += along[:, local] + last
        if prior is not None:
            out += prior.to(dev).item_term()[None]
        out[rows, items] = float("-inf")
        return out


def beam_exact_overlap(model: GeneratorLike, users: torch.Tensor, k: int, beam_width: int,
                       exclude=None, exact: torch.Tensor | None = None) -> float:
    """Mean over users of ``|beam top-k ∩ exact top-k| / min(k, #valid items)``: 1.0 means the beam search
    found the exact top-k (set-wise). Pass ``exact`` (from :func:`exact_scores` for the same users and
    exclusions) to reuse it across beam widths."""
    users = model.check_users(users)
    beam_items, _ = beam_search(model, users, k, beam_width, exclude=exclude)
    scores = exact_scores(model, users, exclude=exclude) if exact is None else exact.to(users.device)
    if scores.shape != (users.shape[0], model.n_items):
        raise ValueError(f"exact scores have shape {tuple(scores.shape)}; expected ({users.shape[0]}, {model.n_items})")
    n_valid = torch.isfinite(scores).sum(1).clamp(max=k)                      # (B,)
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices                # (B, k)
    top = top.masked_fill(torch.arange(top.shape[1], device=top.device) >= n_valid[:, None], -2)
    hit = (beam_items[:, :, None] == top[:, None, :]).any(2) & (beam_items >= 0)   # (B, k)
    per_user = hit.sum(1).double() / n_valid.clamp(min=1).double()
    per_user = torch.where(n_valid > 0, per_user, torch.ones_like(per_user))
    return float(per_user.mean()) if per_user.numel() else float("nan")


__all__ = ["AliveChildren", "beam_search", "exact_scores", "beam_exact_overlap", "exclusion_pairs"]
