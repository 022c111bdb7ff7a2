"""The generator's settings: :class:`ModelConfig` (what the network is; it flows into
:class:`~mmgrec_lib.generator.model.MMGRecGenerator` and its blocks) and :class:`TrainConfig` (how it is
optimised and evaluated), paired in :class:`GeneratorConfig`. Epochs, patience and checkpoints live in
:class:`~mmgrec_lib.training.LoopConfig`. Every field is type-checked at construction."""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..utils import check_fields

ATTENTION_MODES = ("relation", "sinusoidal", "none")
ITEM_EMBEDDINGS = ("graph", "learned")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")


def teacher_spec_string(spec: Mapping[str, Any]) -> str:
    """The canonical ``distill_teacher`` string of a teacher given as ``{"model": ..., "config": {...}, "loop":
    {...}}``: ``'<model> {"config": ..., "loop": ...}'`` with sorted keys and without a config ``device`` (so equal
    teachers key runs alike, wherever they train).
    Names are checked by :func:`mmgrec_lib.experiments.teachers.teacher_spec`, which builds the same string."""
    unknown = sorted(set(spec) - {"model", "config", "loop"})
    if unknown or not isinstance(spec.get("model"), str):
        raise ValueError(f"TrainConfig: distill_teacher as a mapping needs 'model' (a baseline name) and optionally "
                         f"'config' and 'loop'; got keys {sorted(spec)}")
    config = {k: v for k, v in dict(spec.get("config") or {}).items() if k != "device"}
    body = {"config": config, "loop": dict(spec.get("loop") or {})}
    return f"{spec['model']} " + json.dumps(body, sort_keys=True)


def _choice(where: str, name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{where}: unknown {name} {value!r}; expected one of {options}")


def _at_least_one(where: str, **values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise ValueError(f"{where}: {name} must be >= 1, got {v}")


def _fraction(where: str, **values: float) -> None:
    for name, v in values.items():
        if not 0.0 <= v < 1.0:
            raise ValueError(f"{where}: {name} must be in [0, 1), got {v}")


@dataclass
class ModelConfig:
    """The network (paper section 3.3).

    Args:
        d_model, n_layers, n_heads: Transformer size (encoder and decoder both get ``n_layers``).
        dim_feedforward: FFN width (``None``: ``4 * d_model``).
        dropout: dropout on inputs, FFN and residual branches.
        attn_dropout: dropout on the attention weights. Default 0: on CPU, PyTorch's fused attention kernel
            has no dropout, so any value here takes a slower path.
        max_len: ``N``, the number of input items per user (a random subset when a user has more).
        attention: ``"relation"`` (eq. 14-19, no positional encoding), ``"sinusoidal"`` (standard attention
            + sinusoidal PE) or ``"none"`` (standard attention, no PE).
        item_embedding: ``"graph"`` (Graph RQ-VAE ``h_i``, projected to ``d_model`` when needed) or
            ``"learned"`` (the "Emb w/o" ablation: a trainable table).
        finetune_item_emb: with ``"graph"``, train the item representations (else a frozen buffer).
        inference_seed: seed of the input subset drawn at inference for users with more than ``max_len``
            items (:func:`~mmgrec_lib.generator.training.build_generator` sets it to the training seed).
        user_memory: not the paper's: also give the decoder the user's representation ``h_u`` as one extra
            memory token (a learned projection of ``h_u``) beside the encoder output, so cross-attention reads
            the user directly (the paper's ``h_u`` only drives eq. 18's three scalars in the encoder).
        tie_output: not the paper's: tie the output head of the semantic levels to the Rec-ID run's RQ-VAE
            codebooks: the logit of token ``k`` of semantic level ``l`` is ``h · (P c̃_{l,k}) + b_{l,k}``, with
            ``c̃_{l,k}`` the codeword of that token, standardised per level (centred on the level's mean
            codeword, divided by the level's RMS norm: deeper residual codebooks are several times smaller), ``P``
            a learned ``d_model x d_code`` map shared by the levels and ``b`` a learned bias per token; the last
            (collision) level keeps its free head rows. The codebooks come from
            :meth:`~mmgrec_lib.tokenizer.run.RecIDRun.semantic_codebooks` (Graph RQ-VAE and "ID w/o" runs;
            HK-Means runs have none and raise). Items whose tokens share codewords nearby share output
            directions.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    dim_feedforward: int | None = None
    dropout: float = 0.1
    attn_dropout: float = 0.0
    max_len: int = 50
    attention: str = "relation"
    item_embedding: str = "graph"
    finetune_item_emb: bool = False
    inference_seed: int = 0
    user_memory: bool = False
    tie_output: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        where = "ModelConfig"
        _choice(where, "attention", self.attention, ATTENTION_MODES)
        _choice(where, "item_embedding", self.item_embedding, ITEM_EMBEDDINGS)
        _at_least_one(where, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                      max_len=self.max_len, dim_feedforward=self.ffn)
        if self.d_model % 2 or self.d_model % self.n_heads:
            raise ValueError(f"{where}: d_model ({self.d_model}) must be even and divisible by n_heads "
                             f"({self.n_heads})")
        _fraction(where, dropout=self.dropout, attn_dropout=self.attn_dropout)

    @property
    def ffn(self) -> int:
        """The FFN width in use."""
        return self.dim_feedforward or 4 * self.d_model


@dataclass
class TrainConfig:
    """Optimisation and evaluation of the generator.

    Args:
        targets_per_input: ``T``, training targets sharing one encoder input (1 = the paper's one sample per
            input; see :mod:`mmgrec_lib.generator.training`).
        bucket_by_length: batch samples of similar input length together (changes which samples share a step).
        length_chunks: within a step, run the encoder on chunks of similar input length and add up their
            gradients (the same gradient as one pass over the padded batch, less padding; see
            :func:`~mmgrec_lib.generator.training.length_chunks`).
        optimizer: ``"adam"`` (L2 via ``weight_decay``), ``"adamw"`` (decoupled) or ``"sgd"`` (the paper's;
            with ``momentum``). The paper: lr 1e-3, L2 1e-5, batch 500-3000.
        lr, weight_decay, momentum, batch_size, grad_clip (max gradient norm; ``None`` = off),
        label_smoothing: optimisation settings.
        beam_width: beams at validation/evaluation (``>= max(val_ks)``).
        val_ks: cut-offs computed at validation (the monitor, e.g. ``recall@10``, must be among them).
        eval_batch_size: users decoded at once.
        eval_every: when set, overrides ``LoopConfig.eval_every``.
        lr_schedule: ``"constant"`` (the paper) or ``"cosine"``: epoch ``e`` (1-based) trains at
            ``lr * (m + (1 - m) * (1 + cos(pi * (e - 1) / H)) / 2)`` with ``m = lr_min_ratio`` and ``H =
            schedule_epochs`` (after ``H`` epochs: ``lr * m``). Set per epoch from the epoch number alone, so a
            resumed run trains exactly as an uninterrupted one.
        schedule_epochs: ``H`` of the cosine schedule (required > 0 with ``"cosine"``).
        lr_min_ratio: ``m``, the final fraction of ``lr`` under ``"cosine"``.
        warmup_epochs: not the paper's: ``W``, a linear learning-rate warm-up over the first ``W`` epochs'
            optimiser steps: step ``s`` (counted from 1 over the run, ``S`` steps per epoch) trains at the
            schedule's rate times ``min(1, s / (W S))``. ``0`` = none (the paper). A function of the epoch and
            the step within it, so a resumed run trains exactly as an uninterrupted one.
        restricted_loss: not the paper's: each level's softmax runs over the tokens the trie allows after the
            target's prefix (what constrained beam search can choose), instead of over the whole level.
        user_weight_power: not the paper's: each training target weighs ``n_u ** -p`` (``n_u``: its user's
            training items; weights rescaled to mean 1 over the epoch's targets); ``0`` = every sample alike (the
            paper), ``1`` = every user alike. Counters heavy users dominating the loss (TikTok).
        distill_weight: not the paper's: ``λ`` of knowledge distillation from the first stage's dot-product
            ranking: the loss becomes ``CE + λ τ² · mean over targets and levels of KL(p_T || p_S)``, where the
            teacher ``p_T(i | u) ∝ exp(h_u·h_i / τ)`` (the Graph RQ-VAE representations the generator was built
            from, frozen) is turned into each level's distribution over the children of the target's prefix
            and ``p_S`` is the level's softmax that the cross-entropy uses (see
            :meth:`~mmgrec_lib.generator.model.MMGRecGenerator.loss`). ``0`` = off (the paper). Combines with
            ``label_smoothing`` (added to the smoothed CE), ``restricted_loss`` (the student's softmax over the
            trie's children) and ``user_weight_power`` (the KL is weighted like the CE). Needs ``h_u`` and
            ``h_i`` of the same size.
        distill_temperature: not the paper's: the teacher's temperature ``τ`` (> 0; inert while
            ``distill_weight`` is 0).
        distill_teacher: not the paper's: whose ranking is distilled. ``""`` (default): the first stage's
            ``h_u·h_i``, as above. Otherwise an external teacher: a baseline run given as
            ``{"model": "lightgcn", "config": {...}, "loop": {...}}`` (stored as its canonical string,
            :func:`teacher_spec_string`), which :func:`~mmgrec_lib.experiments.runs.run_generator` loads or
            trains with the generator's seed, or any name of vectors the caller passes to training
            (``teacher=(users, items)``). It is part of the run key, so it must identify the teacher. Inert
            while ``distill_weight`` is 0.
        target_pop_power: not the paper's: ``β >= 0`` of popularity-debiased targets: each training target
            ``(u, i)`` weighs ``pop(i) ** -β`` (``pop``: the item's training interactions), times the user weight
            of ``user_weight_power``, rescaled to mean 1 over the epoch's targets. ``0`` = off (the paper).
            Counters the generator learning the popular items' Rec-IDs above all.
        set_loss: not the paper's: with ``targets_per_input > 1``, score the held-out targets of a row as a set:
            the row's loss is ``-log((1 / T_r) Σ_t p(i_t | u))`` over its ``T_r`` targets (``p``: the full Rec-ID
            likelihood), divided by ``M`` -- a multi-positive objective satisfied by mass on any of them -- and
            the loss is the mean over rows (a row with one target gives its usual cross-entropy). See
            :meth:`~mmgrec_lib.generator.model.MMGRecGenerator.loss`. Combines with ``restricted_loss`` and
            ``user_weight_power`` (rows weighted by ``n_u ** -p``, mean 1 over the epoch's rows); not with
            ``label_smoothing``, ``distill_weight`` or ``target_pop_power``.
        logit_adjust: not the paper's: ``τ >= 0`` of the logit-adjusted loss (Menon et al. 2021) on the Rec-ID
            trie: in training, each level's logits get ``+τ log π(token | prefix)``, ``π`` the training popularity
            factorised over the trie (:class:`~mmgrec_lib.generator.prior.LogitAdjustment`); decoding reads the
            plain logits, so the model learns scores with ``τ`` of the popularity prior taken out (the training
            counterpart of popularity-corrected decoding). ``0`` = off (the paper). Applies to every loss term.
        user_sample_cap: not the paper's: ``c >= 0``; each epoch, a user's training groups (of
            ``targets_per_input`` held-out targets each) are kept in a random order until their targets reach
            ``c``, so a heavy user contributes about ``c`` targets per epoch instead of all of them (a fresh draw
            every epoch); inputs are still the whole history minus the group's targets. ``0`` = off (the paper).
            Sampling, not weighting: unlike ``user_weight_power`` it also shortens the epoch.
        seed: seeds the weight initialisation, the inference subsets and the default training generator.
        device: ``"auto"`` (cuda if available), ``"cpu"``, ``"cuda"``, ...
    """

    targets_per_input: int = 1
    bucket_by_length: bool = False
    length_chunks: bool = True
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.0
    batch_size: int = 512
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.0
    beam_width: int = 20
    val_ks: tuple[int, ...] = (10, 20)
    eval_batch_size: int = 256
    eval_every: int | None = None
    lr_schedule: str = "constant"
    schedule_epochs: int = 0
    lr_min_ratio: float = 0.05
    warmup_epochs: int = 0
    restricted_loss: bool = False
    user_weight_power: float = 0.0
    distill_weight: float = 0.0
    distill_temperature: float = 1.0
    distill_teacher: str = ""
    target_pop_power: float = 0.0
    set_loss: bool = False
    logit_adjust: float = 0.0
    user_sample_cap: int = 0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.distill_teacher, Mapping):                 # {model, config, loop}: its canonical string
            self.distill_teacher = teacher_spec_string(self.distill_teacher)
        check_fields(self)
        where = "TrainConfig"
        self.val_ks = tuple(sorted(self.val_ks))
        _choice(where, "optimizer", self.optimizer, OPTIMIZERS)
        _at_least_one(where, targets_per_input=self.targets_per_input, batch_size=self.batch_size,
                      beam_width=self.beam_width, eval_batch_size=self.eval_batch_size,
                      **({"eval_every": self.eval_every} if self.eval_every is not None else {}))
        if not self.val_ks or self.val_ks[0] < 1:
            raise ValueError(f"{where}: val_ks must be positive, got {self.val_ks}")
        if self.beam_width < self.val_ks[-1]:
            raise ValueError(f"{where}: beam_width ({self.beam_width}) must be >= the largest validation "
                             f"cut-off ({self.val_ks[-1]})")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"{where}: need lr > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        _fraction(where, label_smoothing=self.label_smoothing)
        if self.restricted_loss and self.label_smoothing:
            raise ValueError(f"{where}: restricted_loss and label_smoothing cannot be combined (smoothing would "
                             "put mass on tokens the trie forbids)")
        _choice(where, "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.lr_schedule == "cosine" and self.schedule_epochs < 1:
            raise ValueError(f"{where}: lr_schedule 'cosine' needs schedule_epochs >= 1, got {self.schedule_epochs}")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError(f"{where}: lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if self.warmup_epochs < 0:
            raise ValueError(f"{where}: warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if not 0.0 <= self.user_weight_power <= 2.0:
            raise ValueError(f"{where}: user_weight_power must be in [0, 2], got {self.user_weight_power}")
        if not 0.0 <= self.distill_weight < math.inf:
            raise ValueError(f"{where}: distill_weight must be finite and >= 0, got {self.distill_weight}")
        if not 0.0 < self.distill_temperature < math.inf:
            raise ValueError(f"{where}: distill_temperature must be finite and > 0, got {self.distill_temperature}")
        if not 0.0 <= self.target_pop_power < math.inf:
            raise ValueError(f"{where}: target_pop_power must be finite and >= 0, got {self.target_pop_power}")
        if self.user_sample_cap < 0:                        # its type (an int, not a bool): check_fields above
            raise ValueError(f"{where}: user_sample_cap must be >= 0, got {self.user_sample_cap!r}")
        if not 0.0 <= self.logit_adjust < math.inf:
            raise ValueError(f"{where}: logit_adjust must be finite and >= 0, got {self.logit_adjust}")
        if self.set_loss:
            if self.targets_per_input < 2:
                raise ValueError(f"{where}: set_loss needs targets_per_input > 1 (got {self.targets_per_input}; "
                                 "with one target per input it is the usual cross-entropy)")
            clash = {"label_smoothing": self.label_smoothing, "distill_weight": self.distill_weight,
                     "target_pop_power": self.target_pop_power}
            on = [name for name, v in clash.items() if v]
            if on:
                raise ValueError(f"{where}: set_loss cannot be combined with {', '.join(on)} (the set loss is a "
                                 "log-likelihood of whole rows: no smoothed or per-target terms)")


# fields added after the first saved runs, with the defaults that reproduce those runs: left out of run keys
# while they hold these values (so earlier finished runs are still found)
LATER_DEFAULTS: dict[str, Any] = {"user_memory": False, "restricted_loss": False, "user_weight_power": 0.0,
                                  "lr_schedule": "constant", "schedule_epochs": 0, "lr_min_ratio": 0.05,
                                  "distill_weight": 0.0, "distill_temperature": 1.0, "distill_teacher": "",
                                  "tie_output": False,
                                  "target_pop_power": 0.0, "set_loss": False, "warmup_epochs": 0,
                                  "logit_adjust": 0.0, "user_sample_cap": 0}


@dataclass
class GeneratorConfig:
    """The model's and the training's settings together. Notebooks and YAML give them as one flat mapping:
    :meth:`from_dict` sends each key to its part; :meth:`replace` changes flat keys; :meth:`flat` gives them
    back as one dict (run keys, tables)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        check_fields(self)

    @staticmethod
    def fields() -> tuple[str, ...]:
        """Every flat key: the model's fields, then the training's."""
        return tuple(f.name for part in (ModelConfig, TrainConfig) for f in dataclasses.fields(part))

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None = None, **more: Any) -> "GeneratorConfig":
        """Build from flat keys (``{"d_model": 32, "lr": 1e-3, ...}``); unknown keys raise ``TypeError`` naming
        them and the known ones."""
        return cls().replace(**{**(values or {}), **more})

    def replace(self, **changes: Any) -> "GeneratorConfig":
        """A copy with flat keys changed (``config.replace(max_len=20, lr=1e-2)``)."""
        model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
        train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(changes) - model_keys - train_keys)
        if unknown:
            raise TypeError(f"GeneratorConfig: unknown parameter(s) {unknown}; known: {sorted(model_keys | train_keys)}")
        return GeneratorConfig(
            dataclasses.replace(self.model, **{k: v for k, v in changes.items() if k in model_keys}),
            dataclasses.replace(self.train, **{k: v for k, v in changes.items() if k in train_keys}))

    def flat(self) -> dict[str, Any]:
        """All settings as one flat dict."""
        return {**dataclasses.asdict(self.model), **dataclasses.asdict(self.train)}

    def key_settings(self) -> dict[str, Any]:
        """:meth:`flat` without the later-added fields that hold their original defaults (run keys); the cosine
        schedule's own fields count only when it is on, the distillation temperature and teacher only when distillation
        is."""
        flat = self.flat()
        if flat["lr_schedule"] == "constant":
            flat.update(schedule_epochs=0, lr_min_ratio=LATER_DEFAULTS["lr_min_ratio"])
        if not flat["distill_weight"]:
            flat.update(distill_temperature=LATER_DEFAULTS["distill_temperature"],
                        distill_teacher=LATER_DEFAULTS["distill_teacher"])
        return {k: v for k, v in flat.items() if not (k in LATER_DEFAULTS and v == LATER_DEFAULTS[k])}


__all__ = ["ATTENTION_MODES", "LATER_DEFAULTS", "LR_SCHEDULES", "GeneratorConfig", "ITEM_EMBEDDINGS", "ModelConfig", "OPTIMIZERS", "TrainConfig"]
