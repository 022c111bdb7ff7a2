"""A generic epoch loop: early stopping on a validation metric, tqdm progress, atomic resumable checkpoints.

Every trainable stage (baselines, Graph RQ-VAE, the generator) plugs two callables into
:func:`fit`: ``train_epoch(epoch, generator) -> dict of losses`` and ``validate() -> dict of metrics``.
All randomness inside ``train_epoch`` must come from the ``torch.Generator`` it is handed; its state is
checkpointed, so a run interrupted after epoch *e* and resumed gives exactly the uninterrupted result.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..data.progress import progress_bar
from ..utils import CheckpointError, atomic_save, check_fields, load_checkpoint


@dataclass
class LoopConfig:
    """Epoch-loop settings shared by every trainer.

    Args:
        epochs: maximum number of epochs.
        patience: stop after this many validations without improvement (the paper stops after 20 epochs
            without improvement, i.e. ``20 / eval_every`` validations). ``0`` disables.
        eval_every: validate every this many epochs (and at the last epoch).
        monitor: key of the ``validate()`` dict to maximise (e.g. ``"recall@10"``).
        checkpoint: path of the resumable checkpoint (``None``: no checkpointing).
        resume: continue from ``checkpoint`` when it exists.
        progress: show a tqdm bar.
        cpu_threads: torch CPU threads while training (restored afterwards; :func:`cpu_threads`). Any fixed
            count gives a bitwise reproducible run on CPU: above one thread torch's deterministic algorithms
            are switched on, since gathers with repeated indices otherwise add their gradients across threads
            in a varying order (and tiny differences flip argmin code assignments). LightGCN and the BPR stage
            of the two-stage Graph RQ-VAE give the same numbers at 1 and 2 threads; the alternating Graph
            RQ-VAE and the generator do not (their matrix products block sums differently), so the thread
            count is part of a run's key. ``None`` keeps torch's setting (and its non-determinism).
    """

    epochs: int = 100
    patience: int = 20
    eval_every: int = 1
    monitor: str = "recall@10"
    checkpoint: str | Path | None = None
    resume: bool = True
    progress: bool = True
    cpu_threads: int | None = 1

    def __post_init__(self) -> None:
        check_fields(self)
        if self.epochs < 0 or self.patience < 0 or self.eval_every < 1:
            raise ValueError(f"LoopConfig: epochs ({self.epochs}) and patience ({self.patience}) must be >= 0, "
                             f"eval_every ({self.eval_every}) >= 1")


@dataclass
class FitResult:
    history: list[dict]          # one row per epoch: {"epoch", losses..., metrics... (when validated)}
    best_epoch: int
    best_score: float
    stopped_early: bool
    resumed_from: int            # epochs already done when this call started (0 = fresh run)
    epoch_seconds: list[float] = field(default_factory=list)   # wall time per epoch, checkpointed with the run


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Temporarily set ``torch.set_num_threads(n)`` (no-op for ``None``). With ``n > 1`` torch's deterministic
    algorithms are switched on too (``warn_only``; restored afterwards): without them, gathers with repeated
    indices (a BPR batch's users, the history's items) accumulate their gradients with unordered atomic adds
    across threads, so two runs differ at float rounding (tested on LightGCN).

    Where this switches them on it also turns off their companion setting
    ``torch.utils.deterministic.fill_uninitialized_memory`` (restored afterwards), which writes NaN into every
    tensor ``torch.empty`` hands out: a pass over memory that every kernel then overwrites, so results do not
    change (tested, bit for bit), while the passes cost a few percent of a training step."""
    if n is None:
        yield
        return
    n = int(n)
    before = torch.get_num_threads()
    det_before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    fill_before = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(n)
    if n > 1 and not det_before:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(det_before, warn_only=warn_before)
        torch.utils.deterministic.fill_uninitialized_memory = fill_before


def fit(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_epoch: Callable[[int, torch.Generator], dict],
    validate: Callable[[], dict],
    config: LoopConfig,
    generator: torch.Generator,
    desc: str = "train",
    extra_state: Callable[[], dict] | None = None,
    load_extra_state: Callable[[dict], None] | None = None,
) -> FitResult:
    """Run epochs with early stopping; restore the best weights into ``model`` before returning.

    ``extra_state``/``load_extra_state`` let a trainer checkpoint additional objects (e.g. a scheduler).

    Raises:
        ValueError: ``validate()`` returned NaN for ``config.monitor`` (an empty validation split does):
            no epoch could be chosen. Trainers check the split first with :func:`require_validation`.
        CheckpointError: (a ``ValueError``) ``config.checkpoint`` exists but cannot be resumed; the message
            names it and says to delete it or to run with ``resume=False`` (which overwrites it).
    """
    with cpu_threads(config.cpu_threads):
        return _fit(model, optimizer, train_epoch, validate, config, generator, desc, extra_state, load_extra_state)


def _fit(model, optimizer, train_epoch, validate, config, generator, desc, extra_state, load_extra_state) -> FitResult:
    ckpt = Path(config.checkpoint) if config.checkpoint else None
    history: list[dict] = []
    epoch_seconds: list[float] = []
    start, best_score, best_epoch, bad = 0, -math.inf, -1, 0
    best_state = copy.deepcopy(model.state_dict())
    resumed_from = 0
    if ckpt is not None and config.resume and ckpt.is_file():
        state = _load_resumable(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        history, start = state["history"], state["epoch"]
        epoch_seconds = list(state.get("epoch_seconds", []))
        best_score, best_epoch, bad = state["best_score"], state["best_epoch"], state["bad"]
        best_state = state["best_model"]
        if load_extra_state is not None and "extra" in state:
            load_extra_state(state["extra"])
        resumed_from = start
        # a run that stopped early, or already reached ``config.epochs``, is done; one that merely finished a
        # shorter ``epochs`` budget is extended
        if state.get("stopped_early") or start >= config.epochs:
            model.load_state_dict(best_state)
            return FitResult(history, best_epoch, best_score, state["stopped_early"], resumed_from, epoch_seconds)

    stopped_early = False
    bar = progress_bar(range(start, config.epochs), config.progress, desc=desc, leave=False,
               initial=start, total=config.epochs)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in train_epoch(epoch, generator).items()}}
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            model.eval()
            with torch.no_grad():
                metrics = validate()
            row.update({k: float(v) for k, v in metrics.items()})
            if config.monitor not in metrics:
                raise KeyError(f"validate() returned {sorted(metrics)}; monitor {config.monitor!r} missing")
            score = float(metrics[config.monitor])
            if math.isnan(score):
                raise ValueError(f"{desc}: validate() returned NaN for the monitored {config.monitor!r} after epoch "
                                 f"{epoch + 1}, so there is no best epoch to keep; an empty validation split gives "
                                 f"NaN metrics (every user needs held-out validation items to be ranked)")
            if score > best_score:
                best_score, best_epoch, bad = score, epoch + 1, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            bar.set_postfix({config.monitor: f"{score:.4f}", "best": f"{best_score:.4f}"})
            stopped_early = config.patience > 0 and bad >= config.patience
        epoch_seconds.append(time.perf_counter() - t0)       # kept apart from the (deterministic) history
        history.append(row)
        if ckpt is not None:
            _save(ckpt, model, optimizer, generator, history, epoch_seconds, epoch + 1, best_score, best_epoch, bad,
                  best_state, extra_state, finished=stopped_early or epoch + 1 == config.epochs, stopped_early=stopped_early)
        if stopped_early:
            break
    bar.close()
    if best_epoch < 0:  # never validated (epochs == 0): keep current weights
        best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return FitResult(history, best_epoch, best_score, stopped_early, resumed_from, epoch_seconds)


_CHECKPOINT_KEYS = ("model", "optimizer", "generator", "history", "epoch", "best_score", "best_epoch", "bad",
                    "best_model")


def _load_resumable(path: Path) -> dict:
    """The checkpoint at ``path``, or a :class:`~mmgrec_lib.utils.CheckpointError` (a ``ValueError``) that
    names it and the two ways out (delete it, or ``resume=False``)."""
    way_out = f"delete {path} to retrain from scratch, or run with LoopConfig(resume=False) to overwrite it"
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; or run with LoopConfig(resume=False) to overwrite it") from exc
    missing = [k for k in _CHECKPOINT_KEYS if k not in state] if isinstance(state, dict) else list(_CHECKPOINT_KEYS)
    if missing:
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint of this loop (missing {missing}): "
                              f"{way_out}")
    return state


def extend_patience(source: str | Path, target: str | Path) -> Path:
    """Start the run at ``target`` from the checkpoint at ``source`` of the same run with a shorter patience.

    Patience only decides when a run stops: with everything else equal (model, data, seed, ``epochs``,
    ``eval_every``, ``monitor``, threads), the run with patience ``p`` passes through exactly the states of the
    run with patience ``P > p`` until it stops. Its checkpoint (current weights, optimiser, generator, history,
    best weights and the count of validations without improvement) is therefore a valid resume point of the
    longer run: this copies it to ``target`` with the stop undone, and :func:`fit` with ``resume`` continues from
    there, giving the result of an uninterrupted run with patience ``P`` (tested). A source that ran out of
    ``epochs`` without stopping is copied as it is (the longer run ends there too). The caller is responsible
    for the "everything else equal"; the run keys of :mod:`mmgrec_lib.experiments.runs` are.

    Raises:
        FileNotFoundError: ``source`` is missing.
        CheckpointError: ``source`` is unreadable or not a checkpoint of this loop.
        FileExistsError: ``target`` exists (it would be overwritten).
    """
    source, target = Path(source), Path(target)
    if target.exists():
        raise FileExistsError(f"extend_patience: target checkpoint {target} exists; it is not overwritten")
    state = _load_resumable(source)
    if state.get("stopped_early"):
        state["stopped_early"] = False
        state["finished"] = False
    state["extended_from"] = str(source.name)
    return atomic_save(state, target)


def extend_epochs(source: str | Path, target: str | Path) -> Path:
    """Start the run at ``target`` from the finished checkpoint at ``source`` of the same run with fewer ``epochs``.

    The ``epochs`` budget only decides where a run ends (and that its last epoch is validated): with everything
    else equal (model, data, seed, ``patience``, ``eval_every``, ``monitor``, threads, and a training epoch that
    does not read the budget), the longer run passes through exactly the states of the shorter one, so the
    shorter run's checkpoint is a resume point of the longer run *when the shorter run's last epoch is also one
    the longer run validates* (its ``epochs`` a multiple of ``eval_every``) or it stopped early. This copies
    it to ``target``, and :func:`fit` with ``resume`` continues from there to the result of an uninterrupted
    longer run (tested); a source that stopped early stays stopped (the longer run stops there too). The caller
    is responsible for the "everything else equal" and the validation schedule:
    :func:`~mmgrec_lib.experiments.runs.is_prefix_loop` checks it for the run keys of
    :mod:`mmgrec_lib.experiments.runs`.

    Raises:
        FileNotFoundError: ``source`` is missing.
        CheckpointError: ``source`` is unreadable, not a checkpoint of this loop, or not finished (an
            interrupted run is resumed under its own key, not extended).
        FileExistsError: ``target`` exists (it would be overwritten).
    """
    source, target = Path(source), Path(target)
    if target.exists():
        raise FileExistsError(f"extend_epochs: target checkpoint {target} exists; it is not overwritten")
    state = _load_resumable(source)
    if not state.get("finished"):
        raise CheckpointError(f"extend_epochs: checkpoint {source} is not finished (epoch {state['epoch']}); "
                              f"resume it under its own budget first")
    if not state.get("stopped_early"):
        state["finished"] = False
    state["extended_from"] = str(source.name)
    return atomic_save(state, target)


def require_validation(dataset, where: str) -> None:
    """Raise ``ValueError`` when ``dataset.val`` holds no interactions: early stopping on validation metrics
    (and keeping the best epoch's weights) needs some. Call before training, so nothing is spent first."""
    if int(dataset.val.nnz) == 0:
        raise ValueError(f"{where}: dataset {dataset.name!r} has an empty validation split (dataset.val has no "
                         f"interactions), so validation metrics are NaN and no epoch can be chosen; split the "
                         f"data with a validation share (e.g. random_split's default 80/10/10)")


def _save(path, model, optimizer, generator, history, epoch_seconds, epoch, best_score, best_epoch, bad, best_state,
          extra_state, finished, stopped_early) -> None:
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
        "history": history, "epoch_seconds": epoch_seconds, "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch, "bad": bad,
        "best_model": best_state, "finished": finished, "stopped_early": stopped_early,
    }
    if extra_state is not None:
        state["extra"] = extra_state()
    atomic_save(state, path)
