"""Training and evaluation of the MMGRec generator (paper section 3.4) on top of :func:`training.fit`.

Samples: every training interaction ``(u, i)`` is one sample; the target ``i`` is left out of ``u``'s encoder
input and the loss is the cross-entropy of ``i``'s ``M`` Rec-ID tokens (plus, not the paper's, a distillation
term from the first stage's dot-product ranking when ``TrainConfig.distill_weight > 0``). Each epoch visits all
samples once in an order drawn from the ``torch.Generator`` handed to ``train_epoch``.

CPU savings, all settings of :class:`~mmgrec_lib.generator.config.TrainConfig`:

* ``targets_per_input = T > 1``: each epoch splits every user's training items at random into groups of
  ``t_u = clamp(n_u // 10, 1, T)`` items or fewer (sizes differ by at most one; ``n_u``: the user's training
  items); a group's items are all left out of one shared encoder input and decoded against it side by side.
  Every sample is still visited once per epoch and never sees itself in its input, but the encoder runs up
  to ``T`` times less often -- the encoder is most of the cost. The price: the input also lacks the other
  targets of the group, at most a tenth of the user's items (a form of item dropout); users with fewer than
  20 items keep one target per input. ``T = 1`` is the paper's scheme. A batch holds ``batch_size`` targets
  whatever the group sizes.
* ``length_chunks`` (on): each step runs the encoder on chunks of the batch whose input lengths lie in one
  power-of-two band and adds up their gradients -- the same gradient as one pass over the batch padded to its
  longest input, at a fraction of the padding where most histories are short (TikTok: median 2 items, a few
  users with hundreds).
* ``bucket_by_length`` (off by default): batches are cut from pools of 50 batches sorted by input length and
  then shuffled, so a batch pads to a similar length. It stays off: it changes which samples share a step, and
  on TikTok it cost validation recall (README, "How the defaults were chosen").

Exact resume: all randomness of an epoch derives from that generator (whose state :func:`training.fit`
checkpoints after every epoch):

* the sample order (``randperm``) and the input subsets of users with more than ``max_len`` items
  (``torch.rand``) are drawn from it directly;
* dropout draws from torch's global RNG, so each epoch first draws a 63-bit seed from the generator and runs
  inside ``torch.random.fork_rng`` seeded with it. The caller's global RNG state is restored afterwards.

Hence an interrupted run resumed from its checkpoint reproduces the uninterrupted run bit for bit (on the
same device and software). Validation runs the real constrained beam search (:mod:`mmgrec_lib.generator.decoding`)
through :func:`mmgrec_lib.evaluation.evaluate`; early stopping monitors ``LoopConfig.monitor``
(default ``recall@10``).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..data.dataset import RecDataset
from ..data.sparse import csr_pairs
from ..evaluation import EvalResult, evaluate, excluded_matrix
from .config import GeneratorConfig, TrainConfig
from .model import MMGRecGenerator
from .prior import LogitAdjustment
from ..tokenizer.recid import RecIDTable
from ..training.loop import FitResult, LoopConfig, fit, require_validation
from ..training.optim import adam, sgd
from ..training.timing import PhaseTimer, phase
from ..data.progress import progress_bar
from ..data.device import resolve_device
from ..utils import eval_mode, seeded_rng

TIME_KEYS = ("train_s", "val_s")  # the only history entries that differ between identical runs
# Bumped when a change to the training code changes what the same config trains (part of the run key, so
# saved runs of older code are not reused): 2 = FastDropout's random source; 3 = batches of batch_size
# targets (not batch_size // T inputs) and steps accumulated over length chunks (2026-12); 4 = the encoder's
# projections in one product, the relation term scaled once per user, per-level output logits and the distillation
# teacher once per distinct user (the same functions, different float rounding).
TRAINING_VERSION = 4
MAX_LEFT_OUT_DIVISOR = 10          # grouped targets: at most n_u // 10 of a user's items leave the input


# ---------------------------------------------------------------------- construction
def build_generator(dataset: RecDataset, table: RecIDTable, user_repr: torch.Tensor, item_repr: torch.Tensor,
                    config: GeneratorConfig, codebooks: torch.Tensor | None = None,
                    teacher: tuple[torch.Tensor, torch.Tensor] | None = None) -> MMGRecGenerator:
    """The model for ``dataset``'s training history, initialised from ``config.train.seed`` (global RNG
    untouched); its inference subsets are seeded by the same seed. With ``config.train.distill_weight > 0`` it
    keeps ``item_repr`` frozen as the distillation teacher's (``distill_teacher``). ``codebooks``: the Rec-ID
    run's RQ-VAE codebooks ``(M - 1, L, d)`` (:meth:`~mmgrec_lib.tokenizer.run.RecIDRun.semantic_codebooks`),
    required by ``config.model.tie_output`` and ignored without it. ``teacher``: an external distillation
    teacher's ``(user, item)`` vectors, required exactly when distillation is on and
    ``config.train.distill_teacher`` names one (not the paper's)."""
    t = config.train
    external = bool(t.distill_weight > 0 and t.distill_teacher)
    if external and teacher is None:
        raise ValueError(f"TrainConfig.distill_teacher names an external teacher ({t.distill_teacher!r}) but no "
                         "teacher vectors were given (teacher=(users, items); for a baseline run: "
                         "mmgrec_lib.experiments.runs.baseline_teacher)")
    if teacher is not None and not external:
        raise ValueError("teacher vectors were given, but distillation from an external teacher is off (it needs "
                         "TrainConfig.distill_weight > 0 and distill_teacher naming the teacher, which keys the run)")
    if table.n_items != dataset.n_items:
        raise ValueError(f"the Rec-ID table has {table.n_items} items but the dataset has {dataset.n_items}")
    with seeded_rng(config.train.seed):
        model = MMGRecGenerator(table, user_repr, item_repr, dataset.train, config.model,
                                distill_teacher=config.train.distill_weight > 0, codebooks=codebooks,
                                teacher=teacher, inference_seed=config.train.seed)
    return model.to(resolve_device(config.train.device))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return adam(params, config.lr, config.weight_decay)
    if config.optimizer == "adamw":
        return adam(params, config.lr, config.weight_decay, decoupled=True)
    return sgd(params, config.lr, config.momentum, config.weight_decay)


def training_pairs(dataset: RecDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training interaction as a sample: ``users (E,)``, ``items (E,)`` in (user, item) order."""
    return csr_pairs(dataset.train)


# ---------------------------------------------------------------------- one epoch
def shuffled_within(keys: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A permutation ``(n,)`` that keeps sorted integer ``keys`` ``(n,)`` (e.g. users) grouped and in order and
    shuffles the entries within each key: ``argsort(keys + u)`` with ``u ~ U[0, 1)`` in float64, one draw per entry
    from ``generator``."""
    return torch.argsort(keys.double() + torch.rand(keys.numel(), generator=generator, dtype=torch.float64))


def training_groups(history_counts: torch.Tensor, users: torch.Tensor, items: torch.Tensor, targets: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each user's training items at random into groups of at most ``targets`` items.

    Args:
        history_counts: ``(n_users,)`` training items per user.
        users, items: all training pairs, sorted by user (as :func:`training_pairs` returns them).
        targets: ``T``; a user with ``n`` items gets ``ceil(n / t)`` groups, ``t = clamp(n // 10, 1, T)``
            (at most a tenth of the items leave the input), whose sizes differ by at most one.

    Returns:
        ``group_users (G,)`` and ``group_items (G, T)`` (``-1`` pads the smaller groups). With ``T = 1``
        these are the pairs themselves, in their given order.
    """
    if targets == 1:
        return users, items[:, None]
    E = users.numel()
    order = shuffled_within(users, generator)
    u, it = users[order], items[order]                                    # random order within each user
    starts = torch.cumsum(history_counts, 0) - history_counts             # (n_users,)
    pos = torch.arange(E) - starts[u]                                     # rank within the user
    per = (history_counts // MAX_LEFT_OUT_DIVISOR).clamp(1, targets)        # (n_users,) targets per group
    n_groups = (history_counts + per - 1) // per                          # (n_users,)
    group = (torch.cumsum(n_groups, 0) - n_groups)[u] + pos % n_groups[u]  # round robin -> near-equal sizes
    slot = pos // n_groups[u]
    out = torch.full((int(n_groups.sum()), targets), -1, dtype=torch.long)
    out[group, slot] = it
    return torch.repeat_interleave(torch.arange(history_counts.numel()), n_groups), out


def capped_groups(group_users: torch.Tensor, n_targets: torch.Tensor, cap: int,
                  generator: torch.Generator) -> torch.Tensor:
    """Which training groups an epoch keeps under ``TrainConfig.user_sample_cap`` ``c`` (not the paper's): each
    user's groups in a random order (drawn from ``generator``), kept while the targets kept before them are fewer
    than ``c``. A user with at most ``c`` targets keeps every group; every user keeps at least one.

    Args:
        group_users: ``(G,)`` user of each group, grouped by user (as :func:`training_groups` returns them).
        n_targets: ``(G,)`` targets of each group.

    Returns:
        ``(G,)`` bool mask."""
    if cap < 1:
        raise ValueError(f"capped_groups: cap must be >= 1, got {cap}")
    G = group_users.numel()
    order = shuffled_within(group_users, generator)
    u, n = group_users[order], n_targets[order]                           # random order within each user
    done = torch.cumsum(n, 0) - n                                          # targets before each group, overall
    first = torch.ones(G, dtype=torch.bool)
    first[1:] = u[1:] != u[:-1]
    before = done - torch.cummax(torch.where(first, done, torch.zeros_like(done)), 0).values   # within its user
    keep = torch.zeros(G, dtype=torch.bool)
    keep[order] = before < cap
    return keep


def batch_indices(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                  bucket: bool = True, pool_batches: int = 50, sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Row indices of each batch of one epoch, drawn from ``generator``.

    ``sizes`` (default: 1 per row) counts the training targets of each row; a batch holds consecutive rows of a
    random permutation whose sizes add up to ``batch_size`` (the batch's last row may cross it). With
    ``bucket``, the permutation is cut into pools of ``pool_batches`` batches, each pool sorted (stably) by
    ``lengths`` and cut into batches, and the batches are shuffled, so a batch holds samples of similar length.
    """
    n = lengths.numel()
    perm = torch.randperm(n, generator=generator)
    if n == 0:
        return []
    sizes = torch.ones(n, dtype=torch.long) if sizes is None else sizes.long()
    if bucket:
        pool = (torch.cumsum(sizes[perm], 0) - 1) // (batch_size * pool_batches)
        key = pool * (int(lengths.max()) + 1) + lengths[perm]
        perm = perm[torch.argsort(key, stable=True)]
    batch = (torch.cumsum(sizes[perm], 0) - 1) // batch_size                # (n,) batch of each row, ascending
    counts = torch.bincount(batch)
    batches = list(perm.split(counts[counts > 0].tolist()))
    if not bucket:
        return batches
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def length_chunks(lengths: torch.Tensor, min_rows: int = 32) -> list[torch.Tensor]:
    """Positions ``0 .. B-1`` of a batch split into chunks of similar encoder-input length.

    Rows whose lengths lie in the same power-of-two band ``[2^k, 2^(k+1))`` share a chunk, so a chunk pads to at
    most about twice its real tokens (one batch padded to its longest input can cost ten times more where most
    histories are short); a chunk of fewer than ``min_rows`` rows joins the next longer one (a small chunk costs
    more in per-call overhead than its padding would).
    """
    order = torch.argsort(lengths, stable=True)
    band = torch.log2(lengths[order].clamp(min=1).double()).floor().long()              # (B,) ascending
    bounds = torch.nonzero(band[1:] != band[:-1]).reshape(-1) + 1
    chunks, start = [], 0
    for end in bounds.tolist() + [order.numel()]:
        if end - start >= min_rows or end == order.numel():
            chunks.append(order[start:end])
            start = end
    if len(chunks) > 1 and chunks[-1].numel() < min_rows:                                # a short tail joins
        chunks[-2:] = [torch.cat(chunks[-2:])]
    return [c for c in chunks if c.numel()]


def accumulate_gradients(model: MMGRecGenerator, users: torch.Tensor, items: torch.Tensor,
                         chunks: list[torch.Tensor], generator: torch.Generator | None = None,
                         label_smoothing: float = 0.0, restricted: bool = False,
                         weights: torch.Tensor | None = None, distill_weight: float = 0.0,
                         distill_temperature: float = 1.0, set_loss: bool = False,
                         adjust: LogitAdjustment | None = None,
                         timer: PhaseTimer | None = None) -> tuple[torch.Tensor, int]:
    """Back-propagate the batch's mean loss chunk by chunk: each chunk's mean loss is weighted by its share of
    the batch's targets (of their summed ``weights`` when given: ``(B,)`` per user row, or ``(B, T)`` per
    target with ``(B, T)`` items), so the gradients add up to those of the whole batch at once (one encoder
    pass per chunk, padded to the chunk's longest input; the decoder runs only the target slots the chunk
    fills). ``items``: ``(B,)`` or ``(B, T)`` with ``-1`` padding. The distillation term (``distill_weight``,
    ``distill_temperature``: see :meth:`~mmgrec_lib.generator.model.MMGRecGenerator.loss`) is a (weighted)
    mean over targets too, so the same shares keep it exact. With ``set_loss`` the loss is a (weighted) mean
    over the rows that hold targets, and the shares are the chunk's rows (their ``(B,)`` weights). ``adjust``:
    the logit adjustment passed to :meth:`~mmgrec_lib.generator.model.MMGRecGenerator.loss`. ``timer``: wall time of
    the chunks' forward and backward passes (:class:`~mmgrec_lib.training.timing.PhaseTimer`; benchmarks). Returns
    the summed (weighted) loss over targets (rows with ``set_loss``; detached, float64) and the number of
    targets (rows)."""
    terms = {"distill_weight": distill_weight, "distill_temperature": distill_temperature, "adjust": adjust}
    valid = items >= 0
    per_row = valid.sum(1) if items.dim() == 2 else valid.long()                       # (B,) targets per row
    units = (per_row > 0).long() if set_loss else per_row             # (B,) what the loss averages, per row
    count = int(units.sum())                                          # targets (rows with set_loss)
    if weights is None:
        mass = w_total = None
    elif weights.dim() == 2:                                          # (B, T) per target
        if set_loss or weights.shape != items.shape:
            raise ValueError(f"per-target weights must have the items' shape {tuple(items.shape)} (and not "
                             f"with set_loss); got {tuple(weights.shape)}")
        mass = weights.masked_fill(~valid, 0.0).sum(1)                                 # (B,)
        w_total = float(mass.sum())
    else:
        mass = weights * units                                                         # (B,)
        w_total = float(mass.sum())
    total = torch.zeros((), dtype=torch.float64, device=model.device)
    for part in chunks:
        u, i = users[part], items[part]
        w = None if weights is None else weights[part]
        n = int((i >= 0).sum())
        if n == 0:
            continue
        if i.dim() == 2:                           # groups fill their slots from the left: drop empty columns
            width = int((i >= 0).sum(1).max())
            i = i[:, :width]
            w = w[:, :width] if w is not None and w.dim() == 2 else w
        if weights is None:
            n_part = int(units[part].sum()) if set_loss else n
            with phase(timer, "forward"):
                loss = model.loss(u, i, generator=generator, label_smoothing=label_smoothing, restricted=restricted,
                                  set_loss=set_loss, **terms)
            with phase(timer, "backward"):
                (loss * (n_part / count)).backward()
            total += loss.detach().double() * n_part
        else:
            w_part = float(mass[part].sum())
            with phase(timer, "forward"):
                loss = model.loss(u, i, generator=generator, label_smoothing=label_smoothing, restricted=restricted,
                                  weights=w, set_loss=set_loss, **terms)
            with phase(timer, "backward"):
                (loss * (w_part / w_total)).backward()
            total += loss.detach().double() * w_part
    return total, count


def target_weights(config: TrainConfig, history_counts: torch.Tensor, item_counts: torch.Tensor,
                   group_users: torch.Tensor, group_items: torch.Tensor) -> torch.Tensor | None:
    """The epoch's loss weights (not the paper's), or ``None`` when every target weighs alike.

    Args:
        config: ``user_weight_power`` ``p``, ``target_pop_power`` ``β``, ``set_loss``.
        history_counts: ``(n_users,)`` training items per user ``n_u``; item_counts: ``(n_items,)`` training
            interactions per item ``pop(i)``.
        group_users, group_items: ``(G,)`` and ``(G, T)`` (``-1`` padding) from :func:`training_groups`.

    Returns:
        ``β > 0``: ``(G, T)`` per target ``n_u^-p · pop(i)^-β``, rescaled to mean 1 over the epoch's targets
        (``0`` at padding). Else with ``p > 0``: ``(G,)`` per row ``n_u^-p``, rescaled to mean 1 over the
        epoch's targets (over its rows with ``set_loss``, whose loss is a mean over rows).
    """
    p, beta = config.user_weight_power, config.target_pop_power
    n_targets = (group_items >= 0).sum(1)                                            # (G,)
    if beta:
        user = history_counts[group_users].double().clamp_min(1).pow(-p)            # (G,)
        pop = item_counts.double().clamp_min(1)[group_items.clamp(min=0)].pow(-beta)    # (G, T)
        w = (user[:, None] * pop).masked_fill(group_items < 0, 0.0)
        return (w * int(n_targets.sum()) / w.sum()).float()
    if not p:
        return None
    w = history_counts[group_users].double().clamp_min(1).pow(-p)                    # (G,)
    if config.set_loss:                                      # mean 1 over the epoch's rows
        return (w * group_users.numel() / w.sum()).float()
    return (w * int(n_targets.sum()) / (w * n_targets).sum()).float()


def run_epoch(model: MMGRecGenerator, optimizer: torch.optim.Optimizer, users: torch.Tensor, items: torch.Tensor,
              config: TrainConfig, generator: torch.Generator, progress: bool = False,
              epoch: int = 1, timer: PhaseTimer | None = None) -> dict[str, float]:
    """One pass over all training pairs ``(users, items)`` (sorted by user), in groups of
    ``config.targets_per_input`` and batches of about ``config.batch_size`` targets drawn from ``generator``;
    each batch's step accumulates its gradient over :func:`length_chunks`; loss weights from
    :func:`target_weights`; the logit adjustment of ``config.logit_adjust`` from the pairs' item counts; with
    ``config.user_sample_cap``, the groups :func:`capped_groups` keeps.
    ``epoch`` (1-based) places the steps in ``config.warmup_epochs``'s warm-up
    (:func:`warmup_factor`, which scales each parameter group's rate as the epoch starts). ``timer``: wall time per
    phase of each step (:class:`~mmgrec_lib.training.timing.PhaseTimer`; benchmarks). Returns
    ``{"loss": mean loss per target}`` (the cross-entropy, plus the distillation term when it is on; per row
    with ``set_loss``)."""
    dev = model.device
    dropout_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    counts = torch.bincount(users, minlength=model.n_users)                          # (n_users,)
    T = config.targets_per_input
    g_users, g_items = training_groups(counts, users, items, T, generator)           # (G,), (G, T)
    n_targets = (g_items >= 0).sum(1)                                                # (G,)
    if config.user_sample_cap:                                     # not the paper's: about c targets per user
        keep = capped_groups(g_users, n_targets, config.user_sample_cap, generator)
        g_users, g_items, n_targets = g_users[keep], g_items[keep], n_targets[keep]
    lengths = (counts[g_users] - n_targets).clamp(max=model.config.max_len)          # encoder input length
    batches = batch_indices(lengths, config.batch_size, generator, config.bucket_by_length, sizes=n_targets)
    item_counts = torch.bincount(items, minlength=model.n_items)                    # (n_items,) pop(i)
    row_weights = target_weights(config, counts, item_counts, g_users, g_items)  # None, (G,) per row or (G, T)
    adjust = LogitAdjustment(model.trie, item_counts, config.logit_adjust) if config.logit_adjust else None
    total = torch.zeros((), device=dev, dtype=torch.float64)
    model.train()
    warm = config.warmup_epochs and (epoch - 1) < config.warmup_epochs
    rates = [group["lr"] for group in optimizer.param_groups]        # the epoch's rates, which warm-up scales
    with seeded_rng(dropout_seed, dev):                       # dropout RNG: derived from the generator
        for step, idx in enumerate(progress_bar(batches, progress, desc="batches", leave=False)):
            if warm:
                factor = warmup_factor(config.warmup_epochs, epoch, step, len(batches))
                for group, rate in zip(optimizer.param_groups, rates):
                    group["lr"] = rate * factor
            u, i = g_users[idx].to(dev), g_items[idx].to(dev)
            i = i[:, 0] if T == 1 else i
            w = None if row_weights is None else row_weights[idx].to(dev)
            w = w[:, 0] if w is not None and T == 1 and w.dim() == 2 else w
            chunks = length_chunks(lengths[idx]) if config.length_chunks else [torch.arange(idx.numel())]
            optimizer.zero_grad(set_to_none=True)
            loss_sum, _ = accumulate_gradients(model, u, i, [c.to(dev) for c in chunks], generator,
                                               config.label_smoothing, config.restricted_loss, w,
                                               config.distill_weight, config.distill_temperature,
                                               set_loss=config.set_loss, adjust=adjust, timer=timer)
            with phase(timer, "optimizer"):
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
            total += loss_sum
            if timer is not None:
                timer.step()
    mean = float(total) / max(g_users.numel() if config.set_loss else int(n_targets.sum()), 1)
    if not np.isfinite(mean):
        raise FloatingPointError(f"generator training loss became {mean}; lower the learning rate or check "
                                 "the input representations")
    return {"loss": mean}


def warmup_factor(warmup_epochs: int, epoch: int, step: int, steps: int) -> float:
    """The linear warm-up's factor at 0-based ``step`` of 1-based ``epoch`` (``steps`` per epoch):
    ``min(1, s / (W * steps))`` with ``s`` the run's step count from 1; ``1`` without warm-up (``W = 0``)."""
    if warmup_epochs <= 0:
        return 1.0
    done = (epoch - 1) * steps + step + 1
    return min(1.0, done / (warmup_epochs * max(steps, 1)))


def epoch_lr(config: TrainConfig, epoch: int) -> float:
    """The learning rate of 1-based ``epoch`` under ``config.lr_schedule`` (a function of the epoch alone)."""
    if config.lr_schedule == "constant":
        return config.lr
    t = min(max(epoch - 1, 0) / config.schedule_epochs, 1.0)
    m = config.lr_min_ratio
    return config.lr * (m + (1 - m) * 0.5 * (1 + np.cos(np.pi * t)))


# ---------------------------------------------------------------------- train + evaluate
def train_generator(dataset: RecDataset, table: RecIDTable, user_repr: torch.Tensor, item_repr: torch.Tensor,
                    config: GeneratorConfig | None = None, loop: LoopConfig | None = None,
                    generator: torch.Generator | None = None,
                    codebooks: torch.Tensor | None = None,
                    teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
                    timer: PhaseTimer | None = None) -> tuple[MMGRecGenerator, FitResult]:
    """Train the generator with early stopping on validation ``loop.monitor`` (beam-search decoded).

    Args:
        dataset: splits (train: samples, encoder inputs and exclusions; val: early stopping).
        table: Rec-IDs of the ``dataset.n_items`` items.
        user_repr, item_repr: Graph RQ-VAE representations ``(n_users, D_u)``, ``(n_items, D_i)``.
        config: model/optimiser settings; loop: epochs, patience, checkpoint path, resume.
        generator: the CPU ``torch.Generator`` behind all training randomness (default: seeded with
            ``config.train.seed``). Its state is checkpointed; pass a fresh one seeded alike when resuming.
        codebooks: the Rec-ID run's RQ-VAE codebooks, for ``config.model.tie_output`` (see
            :func:`build_generator`).
        teacher: an external distillation teacher's ``(user, item)`` vectors (see :func:`build_generator`).
        timer: wall time per phase of every training step (:class:`~mmgrec_lib.training.timing.PhaseTimer`;
            benchmarks).

    Returns:
        the model with the best validation weights loaded, and the :class:`FitResult` (history rows hold
        ``loss``, the validation metrics, and ``train_s`` / ``val_s`` wall times).
    """
    config = config or GeneratorConfig()
    loop = loop or LoopConfig()
    if config.train.eval_every is not None:
        loop = dataclasses.replace(loop, eval_every=config.train.eval_every)
    require_validation(dataset, "train_generator (the generator early-stops on validation recall@10)")
    if user_repr.shape[0] != dataset.n_users:
        raise ValueError(f"user_repr has {user_repr.shape[0]} rows but the dataset has {dataset.n_users} users")
    generator = generator if generator is not None else torch.Generator().manual_seed(config.train.seed)
    model = build_generator(dataset, table, user_repr, item_repr, config, codebooks, teacher)
    optimizer = make_optimizer(model, config.train)
    users, items = training_pairs(dataset)

    def train_epoch(epoch: int, gen: torch.Generator) -> dict[str, float]:
        t0 = time.perf_counter()
        if config.train.lr_schedule != "constant" or config.train.warmup_epochs:   # warm-up scales the epoch's rate
            scale = epoch_lr(config.train, epoch + 1) / config.train.lr          # fit counts epochs from 0
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * scale
        out = run_epoch(model, optimizer, users, items, config.train, gen, progress=loop.progress, epoch=epoch + 1,
                        timer=timer)
        _sync(model.device)
        return {**out, "lr": optimizer.param_groups[0]["lr"], "train_s": time.perf_counter() - t0}

    def validate() -> dict[str, float]:
        t0 = time.perf_counter()
        res = evaluate_generator(model, dataset, "val", ks=config.train.val_ks, beam_width=config.train.beam_width,
                                 batch_size=config.train.eval_batch_size)
        return {**res.mean(), "val_s": time.perf_counter() - t0}

    result = fit(model, optimizer, train_epoch, validate, loop, generator, desc="generator")
    return model, result


def evaluate_generator(model: MMGRecGenerator, dataset: RecDataset, split: str = "test",
                       ks: Sequence[int] = (10, 20), beam_width: int | None = None, batch_size: int = 256,
                       name: str = "MMGRec", prior=None, keep_lists: bool = False) -> EvalResult:
    """Full-ranking metrics of beam-search recommendations (training items, and validation items when
    ``split="test"``, are excluded during decoding, so every list has ``max(ks)`` admissible items).

    ``beam_width`` defaults to ``max(ks)`` (the paper's beam = K). ``extra`` of the result holds
    ``inference_s_per_user`` (decoding only, averaged over evaluated users), ``inference_s``, ``users`` and
    ``beam_width``; with ``keep_lists`` also ``lists``, the ``(U_split, max(ks))`` ranked lists in user order.
    ``prior`` (not the paper's): a :class:`~mmgrec_lib.generator.prior.PopularityPrior` applied while decoding.
    """
    ks = tuple(sorted(int(k) for k in ks))
    kmax = ks[-1]
    beam_width = kmax if beam_width is None else int(beam_width)
    if beam_width < kmax:
        raise ValueError(f"beam_width ({beam_width}) must be >= the largest cut-off ({kmax})")
    if (model.n_users, model.n_items) != (dataset.n_users, dataset.n_items):
        raise ValueError(f"model is for {model.n_users} users x {model.n_items} items, dataset has "
                         f"{dataset.n_users} x {dataset.n_items}")
    exclude = excluded_matrix(dataset, split)
    clock = {"s": 0.0, "users": 0}
    kept: list[torch.Tensor] = []

    def rank(users: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        lists, _ = model.recommend(users, kmax, beam_width, exclude=exclude, prior=prior)
        _sync(model.device)
        clock["s"] += time.perf_counter() - t0
        clock["users"] += int(users.numel())
        if keep_lists:
            kept.append(lists.cpu())
        return lists.cpu()

    with eval_mode(model):
        res = evaluate(rank, dataset, split, ks, batch_size=batch_size, name=name)
    res.extra.update(inference_s=clock["s"], users=clock["users"], beam_width=beam_width,
                     inference_s_per_user=clock["s"] / max(clock["users"], 1))
    if keep_lists:
        res.extra["lists"] = torch.cat(kept) if kept else torch.zeros(0, kmax, dtype=torch.long)
    return res


@torch.no_grad()
def level_accuracy(model: MMGRecGenerator, dataset: RecDataset, split: str = "val", ks: Sequence[int] = (1, 5, 10),
                   batch_size: int = 1024) -> pd.DataFrame:
    """Teacher-forced token accuracy per Rec-ID level on the held-out pairs of ``split``: where the generator
    loses its targets.

    For every held-out pair ``(u, i)`` the encoder reads ``u``'s training items and the decoder is fed ``i``'s
    true prefix; row ``l`` gives the share of pairs whose level-``l`` token is among the ``k`` most likely
    tokens of that level (no trie constraint), the level's cardinality, and the mean cross-entropy. A beam of
    width ``B`` can only keep a target whose first-level token ranks within ``B``.
    """
    users, items = csr_pairs(dataset.split(split))
    ks = tuple(sorted(int(k) for k in ks))
    hits = torch.zeros(model.n_levels, len(ks), dtype=torch.float64)
    ce = torch.zeros(model.n_levels, dtype=torch.float64)
    with eval_mode(model):
        for s in range(0, users.numel(), batch_size):
            u, i = users[s:s + batch_size].to(model.device), items[s:s + batch_size].to(model.device)
            logits = model(u, i)                                                     # (B, M, Cmax)
            codes = model.codes[i]                                                   # (B, M)
            target = logits.gather(2, codes[:, :, None])                            # (B, M, 1)
            rank = (logits > target).sum(2)                                          # (B, M) 0 = top-1
            for c, k in enumerate(ks):
                hits[:, c] += (rank < k).sum(0).double().cpu()
            ce += (torch.logsumexp(logits, 2) - target[..., 0]).sum(0).double().cpu()
    n = max(users.numel(), 1)
    rows = []
    for lvl in range(model.n_levels):
        row = {"level": lvl + 1, "cardinality": model.cardinalities[lvl], "pairs": int(users.numel()),
               "cross_entropy": float(ce[lvl] / n)}
        row.update({f"top{k}_acc": float(hits[lvl, c] / n) for c, k in enumerate(ks)})
        rows.append(row)
    return pd.DataFrame(rows)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


__all__ = ["build_generator", "capped_groups", "make_optimizer", "training_pairs", "training_groups", "warmup_factor",
           "batch_indices", "run_epoch", "target_weights",
           "train_generator", "evaluate_generator", "level_accuracy", "TIME_KEYS"]
