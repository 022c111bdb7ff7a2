r"""The MMGRec generator: an encoder-decoder Transformer that reads a user's items and writes a Rec-ID.

Paper sections 3.3-3.4. Read top to bottom:

1. ``sinusoidal_positions``  -- fixed positional encodings (decoder; optional encoder variant).
2. ``RelationAwareSelfAttention`` -- eq. 14-19. Per head ``h`` (``d_h = D / H``)::

       Q_h, K_h, V_h = E W^Q_h, E W^K_h, E W^V_h                      (B, H, N, d_h)
       s^Q, s^K, s^V = MLP(h_u)                                        (B, 3)   one scalar per matrix
       Q_u, K_u, V_u = s^Q E U^Q, s^K E U^K, s^V E U^V                 (B, N, D) U shared across heads
       scores_h = Q_h K_hᵀ / sqrt(d_h) + Q_u K_uᵀ / sqrt(D)            (B, H, N, N)
       out_h    = softmax(scores_h) (V_h + [V_u]_h)                    [V_u]_h = head h's column block

   i.e. eq. 19's ``E (W^V + W_u^V)`` with ``W^V = [W^V_1 ... W^V_H]``. Each dot product is scaled by the
   square root of its own dimension (the paper's ``sqrt(D)`` with full-width heads); with ``s = 0`` this is
   exactly standard multi-head attention (tested against ``nn.MultiheadAttention``).
3. ``EncoderLayer`` -- attention sublayer + feed-forward sublayer, residual + LayerNorm after each (post-LN,
   as in the paper and in ``nn.TransformerDecoderLayer``'s default). ``DecoderLayer`` -- the standard decoder
   layer (``nn.TransformerDecoderLayer``), its training-mode attention computed by ``packed_attention``: the
   same products without ``nn.MultiheadAttention``'s copies (same values and gradients).
4. ``MMGRecGenerator`` -- input embedding (eq. 13), encoder, standard decoder over Rec-ID tokens, per-level
   output head, loss, and ``recommend`` (constrained beam search, :mod:`mmgrec_lib.generator.decoding`).
5. Optional, not the paper's: knowledge distillation of the first stage's dot-product ranking into the loss
   (``teacher_log_conditionals``, ``distill_kl``, ``grouped_logsumexp``; training only, never in decoding).
6. Optional, not the paper's: an output head tied to the RQ-VAE codebooks (``ModelConfig.tie_output``,
   ``tied_codewords``, ``output_weights``: training and decoding alike), per-target loss weights and the set
   loss over a row's targets (:meth:`MMGRecGenerator.loss`).

Vocabulary: level ``l`` owns the token ids ``[offset_l, offset_l + card_l)`` (offsets are cumulative
cardinalities), then ``BOS`` and ``PAD``; no integer is shared across levels. The head produces logits over
all level tokens and each level reads only its own slice.

Encoder inputs: a user's training items (CSR rows kept as buffers), the target item removed for a training
pair (u, i) (the paper insists; the authors' code forgot, which lets the model copy the answer), a random
subset of ``max_len`` items when the user has more (fresh from the passed ``torch.Generator`` in training,
a hash of (seed, user, item) at inference so a user's input does not depend on the batch), kept in CSR order,
padded and masked. Users with no remaining item get one unmasked zero (PAD) vector, so attention is defined.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..tokenizer.recid import RecIDTable
from .config import ATTENTION_MODES, ITEM_EMBEDDINGS, ModelConfig
from .decoding import beam_search
from .dropout import FastDropout
from .history import UserHistory
from ..utils import check_ids

_HASH_P = 2147483647  # Mersenne prime 2^31 - 1


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """``(n, d)`` fixed sinusoidal encodings (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]                               # (n, 1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``softmax(q kᵀ / sqrt(d) + bias) v`` for ``q, k, v (B, H, N, d)`` and an additive ``bias`` broadcast to
    ``(B, H, N, N)``, by the same operations as the math path of ``F.scaled_dot_product_attention`` (which
    PyTorch takes on CPU when the mask needs a gradient, as the relation term does): ``q`` and ``k`` each scaled
    by ``d^-1/4``, the bias added (in place: the product's backward does not read its output), a softmax, the
    product with ``v``. So values and gradients are bit for bit SDPA's (tested).

    Left out: SDPA's guard for rows whose every score is ``-inf`` (its ``_safe_softmax`` zeroes them, at two more
    passes over the scores). The encoder never builds such a row: it always keeps one key
    (:meth:`MMGRecGenerator.encoder_inputs`)."""
    s = math.sqrt(1.0 / math.sqrt(q.shape[-1]))
    scores = torch.matmul(q * s, k.transpose(-2, -1) * s)                                 # (B, H, N, N)
    return torch.matmul(torch.softmax(scores.add_(bias), dim=-1), v)                      # (B, H, N, d)


# ====================================================================== encoder
class RelationAwareSelfAttention(nn.Module):
    """Multi-head self-attention with the user-specific relation term of eq. 14-19.

    Args:
        d_model: ``D``.
        n_heads: ``H`` (``D`` must be divisible by ``H``).
        d_user: size of the user representation ``h_u``; ``None`` gives standard attention (no MLP, no U).
        dropout: dropout on the attention weights.
        mlp_hidden: hidden width of the MLP ``h_u -> (s^Q, s^K, s^V)`` (default ``d_model``).
    """

    def __init__(self, d_model: int, n_heads: int, d_user: int | None = None, dropout: float = 0.0,
                 mlp_hidden: int | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)          # rows: [W^Q_1..W^Q_H; W^K_1..; W^V_1..]ᵀ
        self.out = nn.Linear(d_model, d_model)              # concat heads -> D
        self.relation = d_user is not None
        if self.relation:
            hidden = mlp_hidden or d_model
            self.user_mlp = nn.Sequential(nn.LayerNorm(d_user), nn.Linear(d_user, hidden), nn.ReLU(),
                                          nn.Linear(hidden, 3))          # h_u -> (s^Q, s^K, s^V)
            self.U = nn.Parameter(torch.empty(3, d_model, d_model))     # U^Q, U^K, U^V (D x D each)
            for c in range(3):
                nn.init.xavier_uniform_(self.U.data[c])

    def user_scalars(self, h_u: torch.Tensor) -> torch.Tensor:
        """``(B, D_u) -> (B, 3)``: the MLP(h_u) scalars of eq. 18 for Q, K, V."""
        return self.user_mlp(h_u)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, h_u: torch.Tensor | None = None) -> torch.Tensor:
        """x: ``(B, N, D)``; pad: ``(B, N)`` bool, True = padding; h_u: ``(B, D_u)``. Returns ``(B, N, D)``."""
        B, N, D = x.shape
        H, dh = self.n_heads, D // self.n_heads
        if self.relation:
            if h_u is None:
                raise ValueError("relation-aware attention needs the user representations h_u")
            # one product for [E W^Q, E W^K, E W^V, E U^Q, E U^K, E U^V]: W^{QKV}'s rows, then U's columns
            u_rows = self.U.permute(0, 2, 1).reshape(3 * D, D)                  # (3D, D): rows of U^{Q,K,V}ᵀ
            qkv_u = F.linear(x, torch.cat([self.qkv.weight, u_rows]),
                             torch.cat([self.qkv.bias, self.qkv.bias.new_zeros(3 * D)]))   # (B, N, 6D)
            q, k, v, eq, ek, ev = qkv_u.split(D, dim=-1)                        # 6 x (B, N, D)
            s = self.user_scalars(h_u)                                          # (B, 3): s^Q, s^K, s^V
            # Q_u K_uᵀ / sqrt(D) = s^Q s^K (E U^Q)(E U^K)ᵀ / sqrt(D): one scale per user
            rel = (eq * (s[:, 0] * s[:, 1] / math.sqrt(D))[:, None, None]) @ ek.transpose(1, 2)   # (B, N, N)
            bias = rel.masked_fill(pad[:, None, :], float("-inf"))[:, None]     # (B, 1, N, N), same for all heads
            v = v + s[:, 2, None, None] * ev                                    # (B, N, D): E (W^V + W_u^V)
        else:
            q, k, v = self.qkv(x).split(D, dim=-1)                              # 3 x (B, N, D)
            bias = torch.zeros(B, 1, 1, N, dtype=x.dtype, device=x.device)
            bias = bias.masked_fill(pad[:, None, None, :], float("-inf"))       # (B, 1, 1, N) key mask
        q, k, v = (t.view(B, N, H, dh).transpose(1, 2) for t in (q, k, v))      # 3 x (B, H, N, dh)
        p = self.dropout if self.training else 0.0
        if bias.requires_grad and not p and x.device.type == "cpu":            # what SDPA's math path computes
            y = math_attention(q, k, v, bias)                                   # (B, H, N, dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)   # (B, H, N, dh)
        return self.out(y.transpose(1, 2).reshape(B, N, D))                     # (B, N, D)


class EncoderLayer(nn.Module):
    """(Relation-aware) self-attention + feed-forward; residual then LayerNorm around each sublayer.
    ``d_user``: size of ``h_u`` for relation-aware attention, ``None`` for standard attention."""

    def __init__(self, config: ModelConfig, d_user: int | None) -> None:
        super().__init__()
        D, dff = config.d_model, config.ffn
        self.attn = RelationAwareSelfAttention(D, config.n_heads, d_user, config.attn_dropout)
        self.ff = nn.Sequential(nn.Linear(D, dff), nn.ReLU(), FastDropout(config.dropout), nn.Linear(dff, D))
        self.norm1, self.norm2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.drop1, self.drop2 = FastDropout(config.dropout), FastDropout(config.dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, h_u: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(x + self.drop1(self.attn(x, pad, h_u)))                  # (B, N, D)
        return self.norm2(x + self.drop2(self.ff(x)))                           # (B, N, D)


# ====================================================================== decoder
def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = blocked) as ``0`` / ``-inf``, as ``nn.MultiheadAttention`` converts it; a float
    mask as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    return mask


def _plain(attn: nn.MultiheadAttention) -> bool:
    """Whether :func:`packed_attention` computes ``attn``: batch-first, one packed projection with a bias, no
    extra key / value biases or zero attention."""
    return (attn.batch_first and attn._qkv_same_embed_dim and attn.in_proj_bias is not None
            and attn.bias_k is None and not attn.add_zero_attn)


def packed_attention(attn: nn.MultiheadAttention, x: torch.Tensor, memory: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """``attn(x, kv, kv, need_weights=False)`` of a batch-first ``nn.MultiheadAttention`` in training mode, with
    ``kv = x`` (self-attention, ``memory=None``) or ``kv = memory``: ``(B, L, E) -> (B, L, E)``. ``mask``: an
    additive mask broadcast to ``(B, H, L, S)``.

    The same products as ``F.multi_head_attention_forward``, on the same inputs in its ``(L, B)`` row order, so
    the same values and gradients bit for bit (tested). What it leaves out: the packed projection's copy into
    a ``(3, L, B, E)`` (self) or ``(2, S, B, E)`` (cross) tensor and the backward of the selects that split it
    (a zero-filled buffer per select); q, k and v are views of the projection here. The cross-attention query
    keeps MHA's own views: its gradient then reaches the product in MHA's layout, so the bias gradient sums in
    MHA's order."""
    B, L, E = x.shape
    H = attn.num_heads
    dh = E // H
    xt = x.transpose(0, 1)                                                     # (L, B, E), as MHA reads it
    if memory is None:
        q, k, v = F.linear(xt, attn.in_proj_weight, attn.in_proj_bias).split(E, dim=-1)   # 3 x (L, B, E)
        q = q.view(L, B, H, dh).permute(1, 2, 0, 3)                            # (B, H, L, dh)
    else:
        w_q, w_kv = attn.in_proj_weight.split([E, 2 * E])
        b_q, b_kv = attn.in_proj_bias.split([E, 2 * E])
        q = F.linear(xt, w_q, b_q).view(L, B * H, dh).transpose(0, 1).view(B, H, L, dh)    # (B, H, L, dh)
        k, v = F.linear(memory.transpose(0, 1), w_kv, b_kv).split(E, dim=-1)  # 2 x (S, B, E)
    S = k.shape[0]
    k, v = (t.view(S, B, H, dh).permute(1, 2, 0, 3) for t in (k, v))          # 2 x (B, H, S, dh)
    y = F.scaled_dot_product_attention(q, k, v, mask, attn.dropout, is_causal)  # (B, H, L, dh)
    y = F.linear(y.permute(2, 0, 1, 3).reshape(L * B, E), attn.out_proj.weight, attn.out_proj.bias)
    return y.view(L, B, E).transpose(0, 1)                                      # (B, L, E)


class DecoderLayer(nn.TransformerDecoderLayer):
    """``nn.TransformerDecoderLayer`` (post-LN, batch-first) whose training-mode attention sublayers run
    :func:`packed_attention`: the layer's own parameters and products, without ``nn.MultiheadAttention``'s
    copies, so the same values and gradients bit for bit. Anything else (eval mode, where MHA may take its
    fused inference path; pre-LN; target padding or memory masks) goes to ``nn.TransformerDecoderLayer``."""

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> torch.Tensor:
        if (not self.training or self.norm_first or not (_plain(self.self_attn) and _plain(self.multihead_attn))
                or tgt_mask is None or tgt_key_padding_mask is not None or memory_mask is not None or memory_is_causal):
            return super().forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                                   memory_key_padding_mask, tgt_is_causal, memory_is_causal)
        x = tgt                                                                     # (B, L, D)
        sa_mask = None if tgt_is_causal else _additive_mask(tgt_mask, x.dtype)[None, None]   # (1, 1, L, L)
        x = self.norm1(x + self.dropout1(packed_attention(self.self_attn, x, None, sa_mask, tgt_is_causal)))
        kp = None
        if memory_key_padding_mask is not None:                                     # (B, S) -> (B, H, 1, S)
            B, S = memory_key_padding_mask.shape
            kp = _additive_mask(memory_key_padding_mask, x.dtype).view(B, 1, 1, S).expand(
                B, self.multihead_attn.num_heads, 1, S)
        x = self.norm2(x + self.dropout2(packed_attention(self.multihead_attn, x, memory, kp)))
        return self.norm3(x + self._ff_block(x))                                    # (B, L, D)


# ====================================================================== the model
class MMGRecGenerator(nn.Module):
    """Encoder-decoder Transformer generating Rec-IDs (paper section 3.3).

    Args:
        table: the :class:`RecIDTable` (``M`` levels, ``I`` items).
        user_repr: ``(n_users, D_u)`` Graph RQ-VAE user representations ``h_u`` (kept frozen).
        item_repr: ``(I, D_i)`` Graph RQ-VAE item representations ``h_i`` (input embedding, eq. 13).
        history: ``(n_users, I)`` CSR training interactions: the encoder input and the items excluded
            from recommendations.
        config: the :class:`~mmgrec_lib.generator.config.ModelConfig` (default: its defaults);
        distill_teacher: keep ``item_repr`` frozen as the distillation teacher's ``h_i`` (see :meth:`loss`; a
            non-persistent copy only where the item table is trained, else the frozen table itself); needs
            ``h_u`` and ``h_i`` of one size.
        teacher: not the paper's: an external distillation teacher's ``(users (U, d), items (I, d))`` vectors
            (kept frozen as the non-persistent buffers ``teacher_users`` / ``teacher_items``), scored
            ``users·items`` in place of ``h_u·h_i``; with it ``distill_teacher`` keeps nothing more.
        codebooks: ``(M - 1, L, d_code)`` the RQ-VAE codewords of the semantic tokens (row ``[l, k]``: token
            ``k`` of level ``l``; :meth:`~mmgrec_lib.tokenizer.run.RecIDRun.semantic_codebooks`), required by
            ``config.tie_output`` (kept frozen as the non-persistent buffer ``codewords``, standardised by
            :func:`tied_codewords`) and ignored without it.
        **overrides: its fields to change, e.g. ``d_model=32``.

    Representations and the history/trie are *non-persistent* buffers: a ``state_dict`` holds only trained
    weights (plus ``item_table`` when fine-tuned); rebuild the model from the same inputs before loading it.
    """

    def __init__(self, table: RecIDTable, user_repr: torch.Tensor, item_repr: torch.Tensor,
                 history: sp.spmatrix, config: ModelConfig | None = None, *, distill_teacher: bool = False,
                 codebooks: torch.Tensor | None = None,
                 teacher: tuple[torch.Tensor, torch.Tensor] | None = None, **overrides) -> None:
        super().__init__()
        config = dataclasses.replace(config or ModelConfig(), **overrides)
        self.config = config
        I, M = table.n_items, table.n_levels
        user_repr = _check_repr(user_repr, None, "user_repr")
        item_repr = _check_repr(item_repr, I, "item_repr")
        history = sp.csr_matrix(history)
        if history.shape != (user_repr.shape[0], I):
            raise ValueError(f"history has shape {history.shape}; expected (n_users={user_repr.shape[0]} from "
                             f"user_repr, n_items={I} from the Rec-ID table)")
        history.sort_indices()
        self.n_users, self.n_items, self.n_levels = user_repr.shape[0], I, M
        self.cardinalities = list(table.cardinalities)
        d_model, n_layers, n_heads = config.d_model, config.n_layers, config.n_heads

        # ---- fixed data: user vectors, training history (CSR) and the Rec-ID trie (move with .to())
        self.register_buffer("user_repr", user_repr, persistent=False)                        # (U, D_u)
        self.history = UserHistory(history)                                                    # (U, I) CSR
        self.trie = table.trie.shared()                                                        # codes + trie
        cards = torch.tensor(self.cardinalities)
        self.register_buffer("offsets", torch.cumsum(cards, 0) - cards, persistent=False)      # (M,)
        n_tok = int(cards.sum())
        self.bos, self.pad_token = n_tok, n_tok + 1

        # ---- encoder input embedding (eq. 13)
        if config.item_embedding == "graph":
            if config.finetune_item_emb:
                self.item_table = nn.Parameter(item_repr.clone())                              # (I, D_i)
            else:
                self.register_buffer("item_table", item_repr.clone(), persistent=False)        # (I, D_i)
            d_in = item_repr.shape[1]
        else:
            self.item_table = nn.Parameter(torch.randn(I, d_model))                            # (I, D)
            d_in = d_model
        self.item_proj = nn.Linear(d_in, d_model) if d_in != d_model else nn.Identity()
        self.input_norm = nn.LayerNorm(d_model)
        self.input_drop = FastDropout(config.dropout)
        self.register_buffer("enc_pe", sinusoidal_positions(config.max_len, d_model), persistent=False)  # (N, D)
        d_user = user_repr.shape[1] if config.attention == "relation" else None
        self.encoder = nn.ModuleList(EncoderLayer(config, d_user) for _ in range(n_layers))

        # ---- decoder over Rec-ID tokens
        self.token_emb = nn.Embedding(n_tok + 2, d_model, padding_idx=self.pad_token)          # levels + BOS + PAD
        self.register_buffer("dec_pe", sinusoidal_positions(M, d_model), persistent=False)    # (M, D)
        self.dec_drop = FastDropout(config.dropout)
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, config.ffn, config.dropout, batch_first=True)
            for _ in range(n_layers))
        for layer in self.decoder:                     # attention-weight dropout separately from the rest
            layer.self_attn.dropout = layer.multihead_attn.dropout = config.attn_dropout
            for name in ("dropout", "dropout1", "dropout2", "dropout3"):   # CPU-cheap random source
                setattr(layer, name, FastDropout(config.dropout))
        if config.tie_output:       # not the paper's: semantic levels' rows P c~_{l,k}, the last level's free
            tied = tied_codewords(_check_codebooks(codebooks, self.cardinalities))             # (n_sem, d_code)
            self.register_buffer("codewords", tied, persistent=False)                         # frozen
            self.code_proj = nn.Linear(tied.shape[1], d_model, bias=False)                     # P: d_code -> D
            bound = 1.0 / math.sqrt(d_model)                                                   # nn.Linear's bias init
            self.code_bias = nn.Parameter(torch.empty(tied.shape[0]).uniform_(-bound, bound))  # (n_sem,) b
            self.head = nn.Linear(d_model, self.cardinalities[-1])                             # last level only
        else:
            self.code_proj = None
            self.head = nn.Linear(d_model, n_tok)                                              # all level tokens
        self.register_buffer("causal", torch.triu(torch.ones(M, M, dtype=torch.bool), 1), persistent=False)
        # ---- optional (not the paper's): h_u as one more memory token for the decoder's cross-attention
        self.user_token = (nn.Sequential(nn.Linear(user_repr.shape[1], d_model), nn.LayerNorm(d_model))
                           if config.user_memory else None)
        # ---- optional (not the paper's): the distillation teacher's h_i as built, when the item table changes
        if teacher is not None:                        # an external teacher's vectors (e.g. a tuned LightGCN's)
            t_users, t_items = _check_teacher(teacher, user_repr.shape[0], I)
            self.register_buffer("teacher_users", t_users, persistent=False)                   # (U, d)
            self.register_buffer("teacher_items", t_items, persistent=False)                   # (I, d)
        elif distill_teacher:
            if user_repr.shape[1] != item_repr.shape[1]:
                raise ValueError(f"distillation scores h_u·h_i: user_repr has {user_repr.shape[1]} columns but "
                                 f"item_repr has {item_repr.shape[1]}")
            if config.item_embedding != "graph" or config.finetune_item_emb:
                self.register_buffer("teacher_items", item_repr.clone(), persistent=False)     # (I, D_i)

        # Xavier for every weight matrix (paper 4.3); embeddings and U (initialised per D x D slice) keep theirs.
        for name, p in self.named_parameters():
            if p.dim() == 2 and name not in ("item_table", "token_emb.weight"):
                nn.init.xavier_uniform_(p)

    # ------------------------------------------------------------------ helpers
    @property
    def codes(self) -> torch.Tensor:
        """``(I, M)`` Rec-IDs on the model's device."""
        return self.trie.codes

    @property
    def device(self) -> torch.device:
        return self.trie.codes.device

    def set_history(self, history: sp.spmatrix) -> None:
        """Replace the encoder-input / excluded interactions (e.g. train + val for a final test run)."""
        self.history.replace(history)

    def check_users(self, users: torch.Tensor) -> torch.Tensor:
        """User ids (any shape) -> flat long tensor on the model's device; clear error when out of range."""
        return check_ids(users, self.n_users, "user").to(self.device).reshape(-1)

    def check_items(self, items: torch.Tensor) -> torch.Tensor:
        """Item ids (any shape) -> flat long tensor on the model's device; clear error when out of range."""
        return check_ids(items, self.n_items, "item").to(self.device).reshape(-1)

    def _hash_keys(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Deterministic pseudo-random keys in [0, 1) per (inference_seed, user, item): ``(B, L)``."""
        x = (users[:, None] % _HASH_P * 1000003 + items % _HASH_P * 7919 + self.config.inference_seed % _HASH_P) % _HASH_P
        for mult in (1103515245, 48271, 69621):           # multiply-mod-xorshift rounds; all < 2^62
            x = (x * mult) % _HASH_P
            x = x ^ (x >> 13)
        return x.double() / _HASH_P

    # ------------------------------------------------------------------ encoder
    def encoder_inputs(self, users: torch.Tensor, exclude_items: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ids ``(B, n)`` (``n <= max_len``; PAD id = ``n_items``) and padding mask ``(B, n)``.

        ``exclude_items``: ``(B,)`` or ``(B, T)`` (``-1`` = none) items left out of each user's input.

        Vectorised over the batch: gather CSR rows into ``(B, L)``, mask the target, rank random keys to keep
        ``max_len`` items, then a stable sort moves the kept items to the front in CSR order.
        """
        B, dev = users.shape[0], users.device
        ids, keep = self.history.padded(users)                                     # (B, L), (B, L)
        L = ids.shape[1]
        if exclude_items is not None:                                               # leave the target(s) out
            excl = exclude_items[:, None] if exclude_items.dim() == 1 else exclude_items   # (B, T)
            col = self.history.positions(users, excl)                               # (B, T), -1 = not there
            hit = col >= 0
            keep[torch.arange(B, device=dev)[:, None].expand_as(col)[hit], col[hit]] = False
        if B and int(keep.sum(1).max()) > self.config.max_len:                             # subset of max_len items
            if generator is not None:
                keys = torch.rand(B, L, generator=generator, dtype=torch.float64).to(dev)
            else:
                keys = self._hash_keys(users, ids)
            keys = keys.masked_fill(~keep, 2.0)                                     # dropped/padding rank last
            rank = keys.argsort(dim=1, stable=True).argsort(dim=1)                         # (B, L)
            keep &= rank < self.config.max_len
        order = torch.sort((~keep).to(torch.int32), dim=1, stable=True).indices    # kept first, CSR order
        n = max(1, int(keep.sum(1).max())) if B else 1
        order = order[:, :n]
        pad = ~keep.gather(1, order)                                                # (B, n)
        ids = ids.gather(1, order).masked_fill(pad, self.n_items)                   # (B, n)
        pad[:, 0] &= ~pad.all(1)          # empty input: attend to one PAD (zero) vector instead of nothing
        return ids, pad

    def embed_items(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` item ids (``n_items`` = PAD -> zero vector) -> ``(B, n, D)`` encoder input."""
        real = (ids < self.n_items)[..., None]                                      # (B, n, 1)
        e = F.embedding(ids.clamp(max=self.n_items - 1), self.item_table) * real    # (B, n, D_i)
        x = self.input_norm(self.item_proj(e))                                      # (B, n, D)
        if self.config.attention == "sinusoidal":
            x = x + self.enc_pe[: ids.shape[1]]
        return self.input_drop(x)

    def encode(self, users: torch.Tensor, exclude_items: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``(B, n, D)`` and its padding mask ``(B, n)`` for a batch of users."""
        ids, pad = self.encoder_inputs(users, exclude_items, generator)
        x = self.embed_items(ids)
        h_u = self.user_repr[users] if self.config.attention == "relation" else None      # (B, D_u)
        for layer in self.encoder:
            x = layer(x, pad, h_u)
        if self.user_token is not None:                                             # memory = [h_u token; E]
            u = self.user_token(self.user_repr[users])[:, None]                     # (B, 1, D)
            x = torch.cat([u, x], dim=1)                                            # (B, 1 + n, D)
            pad = torch.cat([pad.new_zeros(pad.shape[0], 1), pad], dim=1)           # (B, 1 + n)
        return x, pad

    # ------------------------------------------------------------------ decoder
    def decode(self, memory: torch.Tensor, memory_pad: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        """Decoder states for ``[BOS] + prefix`` (level-local tokens); position ``j`` predicts level ``j``.

        ``prefix (B, l) -> (B, l + 1, D)``: one sequence per user (teacher forcing).
        ``prefix (B, W, l) -> (B, W, l + 1, D)``: ``W`` beams per user share one copy of the user's
        ``memory``. The beams are laid side by side along the sequence axis, ``(B, W * (l + 1), D)``, with a
        block-diagonal causal mask, so self-attention never crosses beams while cross-attention (independent
        per query) projects each user's encoder output once instead of once per beam. Same result as
        repeating ``memory`` W times, without the W-fold cost.
        """
        beams = prefix.dim() == 3
        if not beams:
            prefix = prefix[:, None]                                                # (B, 1, l)
        B, W, l = prefix.shape
        bos = prefix.new_full((B, W, 1), self.bos)
        tok = torch.cat([bos, prefix + self.offsets[:l]], dim=2)                   # (B, W, l + 1) global ids
        x = self.token_emb(tok) + self.dec_pe[: l + 1]                              # (B, W, l + 1, D)
        x = self.dec_drop(x).reshape(B, W * (l + 1), -1)                           # (B, W(l+1), D)
        if W == 1:
            mask = self.causal[: l + 1, : l + 1]                                    # (l+1, l+1)
        else:
            beam = torch.arange(W, device=tok.device).repeat_interleave(l + 1)      # (W(l+1),)
            pos = torch.arange(l + 1, device=tok.device).repeat(W)
            mask = (beam[:, None] != beam[None, :]) | (pos[None, :] > pos[:, None])  # True = blocked
        for layer in self.decoder:
            x = layer(x, memory, tgt_mask=mask, memory_key_padding_mask=memory_pad, tgt_is_causal=W == 1)
        x = x.view(B, W, l + 1, -1)
        return x if beams else x[:, 0]

    # ------------------------------------------------------------------ incremental decoding (inference)
    def start_decoding(self, memory: torch.Tensor, memory_pad: torch.Tensor) -> dict:
        """State for :meth:`decode_step`: per decoder layer the cross-attention keys and values of the encoder
        output (projected once, not once per level) and an empty self-attention cache."""
        B, n, D = memory.shape
        H = self.config.n_heads
        cross = []
        for layer in self.decoder:
            w, b = layer.multihead_attn.in_proj_weight, layer.multihead_attn.in_proj_bias
            k = F.linear(memory, w[D:2 * D], b[D:2 * D]).view(B, n, H, D // H).transpose(1, 2)    # (B, H, n, dh)
            v = F.linear(memory, w[2 * D:], b[2 * D:]).view(B, n, H, D // H).transpose(1, 2)      # (B, H, n, dh)
            cross.append((k, v))
        mask = torch.zeros(B, 1, 1, n, dtype=memory.dtype, device=memory.device)
        mask = mask.masked_fill(memory_pad[:, None, None, :], float("-inf"))                     # (B, 1, 1, n)
        return {"cross": cross, "mask": mask, "keys": [None] * len(self.decoder),
                "values": [None] * len(self.decoder), "length": 0}

    def decode_step(self, state: dict, tokens: torch.Tensor | None) -> torch.Tensor:
        """Decoder states ``(B, W, D)`` for one more position of each of ``W`` beams: the same values as
        :meth:`decode` at that position, computing only the new token (self-attention keys and values of the
        earlier positions come from ``state``, which is extended in place). ``tokens``: ``(B, W)`` level-local
        tokens chosen at the previous level (``None`` at the first step: BOS). Eval mode only (no dropout)."""
        if self.training:
            raise RuntimeError("decode_step is for inference: put the model in eval mode")
        l = state["length"]
        B = state["mask"].shape[0]
        tok = (torch.full((B, 1), self.bos, dtype=torch.long, device=self.device) if tokens is None
               else tokens + self.offsets[l - 1])                                              # (B, W) global ids
        x = self.token_emb(tok) + self.dec_pe[l]                                               # (B, W, D)
        W, D, H = tok.shape[1], self.config.d_model, self.config.n_heads
        dh = D // H
        for i, layer in enumerate(self.decoder):
            sa = layer.self_attn
            q, k, v = F.linear(x, sa.in_proj_weight, sa.in_proj_bias).split(D, -1)             # 3 x (B, W, D)
            keys = k[:, :, None] if state["keys"][i] is None else torch.cat([state["keys"][i], k[:, :, None]], 2)
            values = v[:, :, None] if state["values"][i] is None else torch.cat([state["values"][i], v[:, :, None]], 2)
            state["keys"][i], state["values"][i] = keys, values                                # (B, W, l + 1, D)
            scores = torch.einsum("bwhd,bwthd->bwht", q.view(B, W, H, dh),
                                  keys.view(B, W, l + 1, H, dh)) / math.sqrt(dh)               # (B, W, H, l + 1)
            y = torch.einsum("bwht,bwthd->bwhd", scores.softmax(-1), values.view(B, W, l + 1, H, dh))
            x = layer.norm1(x + sa.out_proj(y.reshape(B, W, D)))                               # (B, W, D)
            ca = layer.multihead_attn
            qc = F.linear(x, ca.in_proj_weight[:D], ca.in_proj_bias[:D]).view(B, W, H, dh).transpose(1, 2)
            kc, vc = state["cross"][i]                                                         # (B, H, n, dh)
            y = F.scaled_dot_product_attention(qc, kc, vc, attn_mask=state["mask"])           # (B, H, W, dh)
            x = layer.norm2(x + ca.out_proj(y.transpose(1, 2).reshape(B, W, D)))
            x = layer.norm3(x + layer.linear2(layer.activation(layer.linear1(x))))
        state["length"] = l + 1
        return x

    @staticmethod
    def reorder_decoding(state: dict, beam: torch.Tensor) -> None:
        """Keep the self-attention caches of the beams ``beam (B, W')`` (indices into the current beams)."""
        for i, keys in enumerate(state["keys"]):
            idx = beam[:, :, None, None].expand(-1, -1, *keys.shape[2:])
            state["keys"][i] = keys.gather(1, idx)
            state["values"][i] = state["values"][i].gather(1, idx)

    def level_logits(self, hidden: torch.Tensor, level: int) -> torch.Tensor:
        """``(..., D)`` decoder states -> ``(..., card_level)`` logits over that level's tokens only."""
        return F.linear(hidden, *self.output_weights(level))

    def output_weights(self, level: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The output head's ``weight (V, D)`` and ``bias (V,)`` over one level's tokens (``V = card_level``)
        or, with ``level=None``, over all level tokens in vocabulary order (``V = Σ_l card_l``).

        Free rows of ``head`` by default. With ``tie_output`` (not the paper's) the rows of the semantic
        levels are ``P c̃_{l,k}`` (``code_proj`` applied to the frozen standardised codewords, so logits are
        ``h · (P c̃_{l,k}) + b_{l,k}``) with their own bias ``code_bias``; the last level's rows are ``head``'s.
        """
        if self.code_proj is None:
            if level is None:
                return self.head.weight, self.head.bias
            lo = int(self.offsets[level])
            hi = lo + self.cardinalities[level]
            return self.head.weight[lo:hi], self.head.bias[lo:hi]
        if level is None:
            return (torch.cat([self.code_proj(self.codewords), self.head.weight]),
                    torch.cat([self.code_bias, self.head.bias]))
        if level == self.n_levels - 1:
            return self.head.weight, self.head.bias
        lo = int(self.offsets[level])                                                # semantic tokens come first
        hi = lo + self.cardinalities[level]
        return self.code_proj(self.codewords[lo:hi]), self.code_bias[lo:hi]

    # ------------------------------------------------------------------ distillation teacher (not the paper's)
    def teacher_item_repr(self) -> torch.Tensor:
        """``(I, D_i)`` the item vectors the teacher scores with: an external teacher's (``teacher``), else the
        frozen Graph RQ-VAE item representations: the copy kept with ``distill_teacher=True`` where the item
        table is trained, else the frozen item table itself."""
        if "teacher_items" in self._buffers:
            return self.teacher_items
        if self.config.item_embedding == "graph" and not self.config.finetune_item_emb:
            return self.item_table
        raise ValueError("distillation needs the Graph RQ-VAE item representations as built, but this model "
                         "trains its item table: build it with distill_teacher=True")

    @torch.no_grad()
    def teacher_log_conditionals(self, users: torch.Tensor, items: torch.Tensor,
                                 temperature: float = 1.0) -> list[torch.Tensor]:
        r"""The teacher's per-level distributions along each target's Rec-ID (no gradient).

        With ``p_T(i | u) ∝ exp(h_u·h_i / τ)`` over all items (an external teacher's vectors in place of
        ``h_u``, ``h_i`` where the model was built with ``teacher``), level ``l`` of a target with Rec-ID
        ``(t_1 .. t_M)`` gets, for every child token ``t`` of the target's prefix node::

            p_T(t | t_<l, u) = Σ_{i under (t_<l, t)} p_T(i | u) / Σ_{i under t_<l} p_T(i | u)

        computed in log space: the log-mass under every trie node by grouped logsumexp from the items up
        (:func:`grouped_logsumexp`), then a log-softmax over the prefix node's children. All items are in the
        support, the user's other training items included. Cost ``O(P × I)``.

        Args:
            users, items: ``(P,)`` each: the targets' users and items.
            temperature: ``τ``.

        Returns:
            per level ``l`` a ``(P, card_l)`` tensor of ``log p_T(t | t_<l, u)``, ``-inf`` on tokens that do not
            extend the target's prefix.
        """
        h_i = self.teacher_item_repr()                                              # (I, D)
        h_u = self.teacher_users if "teacher_users" in self._buffers else self.user_repr   # (U, D)
        users, row = torch.unique(users, return_inverse=True)                      # (P',), (P,): targets share users
        scores = h_u[users] @ h_i.T / temperature                                   # (P', I)
        # log-mass below each node of levels 1..M (level M: the items themselves)
        below = {self.n_levels: scores}
        for lvl in range(self.n_levels - 1, 0, -1):
            parent, _ = self.trie.children_of(lvl, dense=True)                      # (n_nodes_{lvl+1},)
            below[lvl] = grouped_logsumexp(below[lvl + 1], parent,
                                           self.trie.child_table(lvl).shape[0])     # (P, n_nodes_lvl)
        out = []
        for lvl in range(self.n_levels):
            child = self.trie.child_table(lvl)[self.trie.item_node(lvl)[items]]     # (P, card_lvl), -1 = none
            z = below[lvl + 1][row[:, None], child.clamp(min=0)].masked_fill(child < 0, float("-inf"))
            out.append(torch.log_softmax(z, dim=1))                                 # (P, card_lvl)
        return out

    @staticmethod
    def distill_kl(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        """``KL(p_T || p_S)`` per row over the teacher's support: ``(P, C)`` log-probabilities each (teacher
        ``-inf`` off its support, where its probability is 0) -> ``(P,)``."""
        support = torch.isfinite(teacher)                                           # (P, C)
        log_t = teacher.masked_fill(~support, 0.0)
        log_s = student.masked_fill(~support, 0.0)                                  # -inf of a restricted softmax
        return (log_t.exp() * (log_t - log_s)).masked_fill(~support, 0.0).sum(1)

    def forward(self, users: torch.Tensor, items: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced logits for training pairs, the target item(s) left out of the encoder input.

        ``items (B,)``: one target per user row (the paper's sample ``(u, i)``); returns ``(B, M, Cmax)``.
        ``items (B, T)``: ``T`` targets (``-1`` = none) that share one encoder input from which *all* of them
        are left out, decoded side by side against one encoder pass (see :meth:`decode`); returns
        ``(B, T, M, Cmax)``. Row ``l`` holds level ``l``'s logits in columns ``[0, card_l)``, ``-inf`` beyond
        (:meth:`target_logits` without the padding).
        """
        levels = self.target_logits(users, items, generator)                        # M x (B, T, card_l)
        cmax = max(self.cardinalities)
        logits = torch.stack([F.pad(z, (0, cmax - z.shape[-1]), value=float("-inf")) for z in levels],
                             dim=2)                                                 # (B, T, M, Cmax)
        return logits[:, 0] if torch.as_tensor(items).dim() == 1 else logits

    def target_logits(self, users: torch.Tensor, items: torch.Tensor,
                      generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """:meth:`forward`'s logits level by level, unpadded: ``M`` tensors ``(B, T, card_l)`` (``T = 1`` for
        ``items (B,)``), what :meth:`loss` reads."""
        users = self.check_users(users)
        items = torch.as_tensor(items, dtype=torch.long).to(self.device)
        single = items.dim() == 1
        targets = items[:, None] if single else items                               # (B, T)
        if targets.dim() != 2 or targets.shape[0] != users.shape[0]:
            raise ValueError(f"items must be (B,) or (B, T) with B = {users.shape[0]} users; "
                             f"got shape {tuple(items.shape)}")
        self.check_items(targets[targets >= 0] if not single else targets)
        codes = self.codes[targets.clamp(min=0)]                                    # (B, T, M)
        memory, pad = self.encode(users, exclude_items=targets, generator=generator)  # (B, n, D), (B, n)
        h = self.decode(memory, pad, codes[..., :-1])                               # (B, T, M, D)
        return [self.level_logits(h_l, lvl) for lvl, h_l in enumerate(h.unbind(2))]   # M x (B, T, card_l)

    def loss(self, users: torch.Tensor, items: torch.Tensor, generator: torch.Generator | None = None,
             label_smoothing: float = 0.0, restricted: bool = False,
             weights: torch.Tensor | None = None, distill_weight: float = 0.0,
             distill_temperature: float = 1.0, set_loss: bool = False,
             adjust: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Mean cross-entropy over the ``M`` Rec-ID tokens of each target (each level's softmax runs over
        that level's range). ``items``: ``(B,)`` or ``(B, T)`` with ``-1`` padding, as in :meth:`forward`.

        ``adjust`` (not the paper's): ``adjust(level, prefix_nodes (P,)) -> (P, C_level)`` terms added to every
        level's logits before any loss term reads them, e.g. a
        :class:`~mmgrec_lib.generator.prior.LogitAdjustment` (the logit-adjusted loss); decoding never adds them.

        ``restricted``: each level's softmax runs over the tokens the trie allows after the target's prefix
        (the choices constrained beam search has there). ``weights``: ``(B,)`` per user row (shared by its
        targets) or, with ``(B, T)`` items, ``(B, T)`` per target (values at padding ignored): the loss is then
        the weighted mean over targets.

        ``set_loss`` (not the paper's) scores each row's targets as a set. With ``ℓ_{r,t} = Σ_l log p(t_l |
        t_<l, u_r)`` the full Rec-ID log-likelihood of target ``t`` of row ``r`` (``T_r`` targets)::

            loss = mean_rows  ( -logsumexp_t ℓ_{r,t} + log T_r ) / M

        i.e. ``-log`` of the targets' mean likelihood: small as soon as one of them is likely. A row with one
        target gives its usual cross-entropy summed over levels, so with one target per row this is the plain
        loss; the ``1 / M`` keeps the per-level scale of the plain loss. Rows without targets do not count;
        ``weights`` must then be ``(B,)`` per row (a weighted mean over rows). Combines with ``restricted``;
        not with label smoothing or distillation.

        ``distill_weight`` ``λ > 0`` (not the paper's) adds knowledge distillation from the first stage's
        dot-product ranking, with ``τ = distill_temperature``::

            loss = CE + λ τ² · (1 / M) Σ_l  mean_targets  KL( p_T(· | t_<l, u) || p_S(· | t_<l, u) )

        ``p_T``: :meth:`teacher_log_conditionals` (no gradient); ``p_S``: the same level softmax as the
        cross-entropy (restricted or not; not tempered: it is what decoding reads). The KL runs over the
        prefix's children (the teacher's support) and takes the same target weights as the cross-entropy, so
        the loss stays a (weighted) mean over targets. ``λ = 0`` computes exactly the cross-entropy alone.
        """
        if restricted and label_smoothing:
            raise ValueError("restricted loss and label smoothing cannot be combined (smoothing would put mass "
                             "on tokens the trie forbids)")
        if not (distill_weight >= 0 and distill_temperature > 0):
            raise ValueError(f"need distill_weight >= 0 and distill_temperature > 0, got {distill_weight} and "
                             f"{distill_temperature}")
        if set_loss and (label_smoothing or distill_weight):
            raise ValueError("set_loss cannot be combined with label smoothing or distillation")
        levels = self.target_logits(users, items, generator)                        # M x (B, T, card_l)
        items = torch.as_tensor(items, dtype=torch.long).to(self.device)
        T = 1 if items.dim() == 1 else items.shape[1]
        B = items.shape[0]
        items = items.reshape(-1)
        valid = items >= 0                                                          # (B*T,)
        logits = [z.reshape(-1, z.shape[-1])[valid] for z in levels]               # M x (P, card_l)
        targets = items[valid]
        codes = self.codes[targets]                                                 # (P, M)
        def level(lvl: int) -> torch.Tensor:                                        # (P, card_lvl) logits
            z = logits[lvl]
            if adjust is None and not restricted:
                return z
            prefix = self.trie.item_node(lvl)[targets]                              # (P,) the targets' prefixes
            if adjust is not None:                                                  # logit adjustment
                z = z + adjust(lvl, prefix)
            if restricted:                                                          # the trie's children only
                z = z.masked_fill(~self.trie.allowed(lvl, prefix), float("-inf"))
            return z

        if set_loss:
            return self._set_loss(level, codes, valid.view(B, T), weights)
        if weights is None:
            total = levels[0].new_zeros(())
            for lvl in range(self.n_levels):
                total = total + F.cross_entropy(level(lvl), codes[:, lvl], label_smoothing=label_smoothing)
            ce = total / self.n_levels
            w = None
        else:
            w = torch.as_tensor(weights, dtype=levels[0].dtype, device=self.device)
            if w.dim() == 1:                                                        # (B,) per row
                w = w.reshape(-1, 1).expand(-1, T).reshape(-1)[valid]              # (P,)
            elif w.shape == (B, T):                                                 # (B, T) per target
                w = w.reshape(-1)[valid]                                            # (P,)
            else:
                raise ValueError(f"weights must be (B,) = ({B},) per row or (B, T) = ({B}, {T}) per target; "
                                 f"got shape {tuple(w.shape)}")
            per_target = levels[0].new_zeros(targets.shape[0])
            for lvl in range(self.n_levels):
                per_target = per_target + F.cross_entropy(level(lvl), codes[:, lvl], reduction="none",
                                                          label_smoothing=label_smoothing)
            ce = (w * per_target).sum() / (w.sum().clamp_min(1e-12) * self.n_levels)
        if not distill_weight:
            return ce
        # ---- distillation (not the paper's): the targets' users, the teacher's and the student's levels
        target_users = self.check_users(users).reshape(-1, 1).expand(-1, T).reshape(-1)[valid]   # (P,)
        teacher = self.teacher_log_conditionals(target_users, targets, distill_temperature)    # M x (P, card_l)
        kl = levels[0].new_zeros(targets.shape[0])                                  # (P,) summed over levels
        for lvl in range(self.n_levels):
            kl = kl + self.distill_kl(teacher[lvl], F.log_softmax(level(lvl), dim=1))
        if w is None:
            kl_mean = kl.mean() / self.n_levels
        else:
            kl_mean = (w * kl).sum() / (w.sum().clamp_min(1e-12) * self.n_levels)
        return ce + distill_weight * distill_temperature ** 2 * kl_mean

    def _set_loss(self, level, codes: torch.Tensor, valid: torch.Tensor,
                  weights: torch.Tensor | None) -> torch.Tensor:
        """The set loss of :meth:`loss`: ``level(l)`` gives the ``(P, card_l)`` logits of the valid targets,
        ``codes (P, M)`` their Rec-IDs, ``valid (B, T)`` where they sit, ``weights`` ``(B,)`` or ``None``."""
        B, T = valid.shape
        nll = sum(F.cross_entropy(level(lvl), codes[:, lvl], reduction="none")
                  for lvl in range(self.n_levels))                                  # (P,) -ℓ
        ll = nll.new_full((B * T,), float("-inf")).masked_scatter(valid.reshape(-1), -nll).view(B, T)
        n_r = valid.sum(1)                                                          # (B,) targets per row
        rows = n_r > 0
        row_nll = torch.log(n_r[rows].to(ll.dtype)) - torch.logsumexp(ll[rows], dim=1)   # (R,) -log mean p
        if weights is None:
            return row_nll.mean() / self.n_levels
        w = torch.as_tensor(weights, dtype=ll.dtype, device=self.device)
        if w.shape != (B,):
            raise ValueError(f"set_loss takes per-row weights (B,) = ({B},); got shape {tuple(w.shape)}")
        w = w[rows]
        return (w * row_nll).sum() / (w.sum().clamp_min(1e-12) * self.n_levels)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int = 10, beam: int | None = None,
                  exclude: sp.spmatrix | torch.Tensor | None = None, prior=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` items by constrained beam search (width ``beam``, default ``k``).

        Returns items ``(B, k)`` (``-1`` where fewer than ``k`` valid items remain) and their summed
        log-probabilities ``(B, k)`` (``-inf`` for padding). Training items are never returned; ``exclude``
        adds more (a ``(n_users, I)`` sparse matrix or a ``(B, I)`` bool tensor). ``prior`` (not the paper's):
        a :class:`~mmgrec_lib.generator.prior.PopularityPrior` applied while decoding.
        """
        return beam_search(self, users, k, beam if beam is not None else k, exclude=exclude, prior=prior)


def grouped_logsumexp(x: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Row-wise logsumexp of ``x (P, C)`` within groups: column ``c`` belongs to group ``group[c]`` (``(C,)``
    long in ``[0, n_groups)``); returns ``(P, n_groups)`` (``-inf`` for an empty group). Stable: each group's
    maximum (``scatter_reduce`` amax) is taken out before ``exp`` and the ``scatter_add``."""
    P = x.shape[0]
    idx = group.to(x.device).expand(P, -1)                                          # (P, C)
    top = x.new_full((P, n_groups), float("-inf")).scatter_reduce(1, idx, x, "amax")   # (P, n_groups)
    top = top.masked_fill(~torch.isfinite(top), 0.0)                                # empty / all -inf groups
    mass = x.new_zeros((P, n_groups)).scatter_add(1, idx, (x - top.gather(1, idx)).exp())
    return top + mass.log()


def tied_codewords(codebooks: torch.Tensor) -> torch.Tensor:
    """``(M - 1, L, d)`` RQ-VAE codebooks -> ``(n_sem, d)`` the rows of the tied output head's codewords
    ``c̃_{l,k}`` in vocabulary order (level by level): each level centred on its mean codeword and divided by
    its RMS norm ``sqrt(mean_k ||c_{l,k} - mean||²)``. Centring changes no level softmax (it shifts all of a
    level's logits by one amount); the scaling gives the residual levels, whose codewords are several times
    smaller than the first level's, logits of one scale under the shared map ``P``."""
    c = codebooks - codebooks.mean(1, keepdim=True)                                 # (M-1, L, d)
    rms = c.pow(2).sum(2).mean(1).sqrt().clamp_min(1e-12)                          # (M-1,)
    return (c / rms[:, None, None]).reshape(-1, c.shape[2])


def _check_codebooks(codebooks, cardinalities: list[int]) -> torch.Tensor:
    """The codebooks tie_output needs, checked against the Rec-ID table: ``(M - 1, card_l, d)`` finite floats."""
    if codebooks is None:
        raise ValueError("tie_output needs the RQ-VAE codebooks of the Rec-ID run (RecIDRun.semantic_codebooks()); "
                         "pass codebooks=... (runs without RQ-VAE codebooks, e.g. HK-Means, cannot tie the output)")
    c = codebooks.detach().cpu() if isinstance(codebooks, torch.Tensor) else torch.as_tensor(np.asarray(codebooks))
    sem = cardinalities[:-1]
    if c.ndim != 3 or c.shape[0] != len(sem) or any(c.shape[1] != card for card in sem) or c.shape[2] == 0:
        raise ValueError(f"tie_output: codebooks must be (M - 1, L, d) with M - 1 = {len(sem)} semantic levels "
                         f"of cardinalities {sem}; got shape {tuple(c.shape)}")
    if not c.is_floating_point() or not torch.isfinite(c).all():
        raise ValueError("tie_output: codebooks must be finite floating-point vectors")
    return c.float()


def _check_teacher(teacher, n_users: int, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An external distillation teacher's ``(users (U, d), items (I, d))`` as float tensors, checked."""
    if not (isinstance(teacher, (tuple, list)) and len(teacher) == 2):
        raise ValueError("teacher must be a pair (user vectors (U, d), item vectors (I, d))")
    users, items = (torch.as_tensor(t).detach().cpu().float().clone() for t in teacher)
    if users.dim() != 2 or items.dim() != 2 or users.shape[1] != items.shape[1]:
        raise ValueError(f"teacher: need user vectors (U, d) and item vectors (I, d) of one width d, got shapes "
                         f"{tuple(users.shape)} and {tuple(items.shape)}")
    if users.shape[0] != n_users or items.shape[0] != n_items:
        raise ValueError(f"teacher: {users.shape[0]} user and {items.shape[0]} item vectors, but the model has "
                         f"{n_users} users and {n_items} items")
    if not (torch.isfinite(users).all() and torch.isfinite(items).all()):
        raise ValueError("teacher: the vectors hold NaN or infinite values")
    return users, items


def _check_repr(x, n_rows: int | None, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (rows, dim) matrix, got shape {tuple(t.shape)}")
    if n_rows is not None and t.shape[0] != n_rows:
        raise ValueError(f"{name} has {t.shape[0]} rows; expected {n_rows} (one per item of the Rec-ID table)")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {t.dtype}")
    t = t.float()
    bad = ~torch.isfinite(t)
    if bad.any():
        rows = torch.nonzero(bad.any(1)).reshape(-1)
        raise ValueError(f"{name} contains NaN or inf in {rows.numel()} rows (first: {rows[:5].tolist()})")
    return t


__all__: Sequence[str] = ("MMGRecGenerator", "RelationAwareSelfAttention", "EncoderLayer", "sinusoidal_positions",
                          "math_attention", "grouped_logsumexp", "tied_codewords", "ATTENTION_MODES", "ITEM_EMBEDDINGS")
