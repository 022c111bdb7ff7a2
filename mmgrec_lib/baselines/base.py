r"""The small interface every baseline recommender implements.

A :class:`Recommender` is a ``torch.nn.Module`` built for a fixed ``(n_users, n_items)`` and one config
dataclass. It exposes

* ``fit(dataset, loop, generator) -> FitResult``: train from scratch on ``dataset.train`` with the generic
  early-stopping loop of :mod:`mmgrec_lib.training`, validating ``recall@10`` on ``dataset.val``;
* ``score(users) -> (B, n_items)``: a float score for every item (higher is better);
* ``recommend(users, k, exclude=None) -> (B, k)``: top-``k`` item ids;
* ``save(path)`` / ``Recommender.load(path)``: an atomic, self-describing file (class, config, sizes, weights).

Pairwise (BPR) models subclass :class:`BPRRecommender` and implement only ``reset_parameters`` and
``bpr_loss``; all randomness (initialisation, shuffling, negatives) comes from the ``torch.Generator``
handed to ``fit``, whose state the loop checkpoints, so an interrupted and resumed run is exact.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import RecDataset
from ..data.sparse import rows_mask
from ..evaluation import evaluate
from ..training.sampling import BPRSampler
from ..training.loop import FitResult, LoopConfig, fit as fit_loop, require_validation
from ..training.optim import adam
from ..data.device import resolve_device
from ..utils import atomic_save, check_ids, check_unknown, load_checkpoint

FORMAT = "mmgrec-recommender/1"


class Recommender(torch.nn.Module):
    """Base class: a scorer over all items for a batch of users.

    Args:
        n_users: number of users (ids ``0 .. n_users - 1``).
        n_items: number of items (ids ``0 .. n_items - 1``).
        config: the model's config dataclass (``config_class``); ``None`` uses its defaults.
        **overrides: config fields to override, e.g. ``MF(943, 1682, dim=32)``.
    """

    config_class: ClassVar[type]

    def __init__(self, n_users: int, n_items: int, config: Any = None, **overrides: Any) -> None:
        super().__init__()
        if int(n_users) <= 0 or int(n_items) <= 0:
            raise ValueError(f"{type(self).__name__}: n_users ({n_users}) and n_items ({n_items}) must be > 0")
        config = self.config_class() if config is None else config
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__}: config must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        check_unknown(overrides, [f.name for f in dataclasses.fields(self.config_class)], type(self).__name__)
        self.config = dataclasses.replace(config, **overrides)
        self.n_users, self.n_items = int(n_users), int(n_items)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataset(cls, dataset: RecDataset, config: Any = None, **overrides: Any) -> "Recommender":
        """Build a model sized for ``dataset`` (subclasses add what they need, e.g. item features)."""
        return cls(dataset.n_users, dataset.n_items, config, **overrides)

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live (follows ``.to(...)``)."""
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return resolve_device(self.config.device)

    def _place(self) -> None:
        """Move the module to ``config.device`` (call at the end of a subclass ``__init__``)."""
        self.to(resolve_device(self.config.device))

    def _init_tensors(self) -> dict[str, torch.Tensor]:
        """Constructor tensors that ``save`` must store besides the ``state_dict`` (e.g. item features)."""
        return {}

    # ------------------------------------------------------------------ the interface
    def score(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``users``: ``(B,)`` long -> ``(B, n_items)`` float on ``self.device``
        (inference: subclasses compute it without gradients)."""
        raise NotImplementedError

    def fit(self, dataset: RecDataset, loop: LoopConfig | None = None,
            generator: torch.Generator | None = None) -> FitResult:
        """Train on ``dataset.train``, validating ``recall@10`` on ``dataset.val``; see subclasses."""
        raise NotImplementedError

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int,
                  exclude: sp.spmatrix | torch.Tensor | None = None) -> torch.Tensor:
        """Top-``k`` item ids per user, best first: ``(B, k)`` long.

        Args:
            users: ``(B,)`` user ids.
            k: list length, ``1 <= k <= n_items``.
            exclude: items never recommended: a sparse ``(n_users, n_items)`` matrix (rows are taken for
                ``users``, e.g. ``dataset.train``) or a bool ``(B, n_items)`` tensor. If fewer than ``k``
                items remain, the list is filled with excluded items at the end (their score is ``-inf``).
        """
        users = self._check_users(users)
        if not 1 <= int(k) <= self.n_items:
            raise ValueError(f"k must be in [1, {self.n_items}], got {k}")
        scores = self.score(users)                                                # (B, I)
        if exclude is not None:
            scores = scores.masked_fill(self._exclude_mask(exclude, users, scores.device), -torch.inf)
        return torch.topk(scores, int(k), dim=1).indices                          # (B, k)

    def save(self, path: str | Path) -> Path:
        """Write class, config, sizes and weights atomically to ``path`` (read back with :meth:`load`)."""
        state = {
            "format": FORMAT,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": dataclasses.asdict(self.config),
            "n_users": self.n_users, "n_items": self.n_items,
            "init_tensors": {k: v.detach().cpu() for k, v in self._init_tensors().items()},
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        return atomic_save(state, path)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "Recommender":
        """Rebuild a model saved with :meth:`save`. ``Recommender.load`` dispatches on the stored class;
        ``MF.load`` additionally checks the file holds an ``MF``. ``device`` overrides ``config.device``."""
        state = load_checkpoint(path)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path} is not a saved recommender (format {FORMAT!r})")
        module, _, name = state["class"].rpartition(".")
        model_cls = getattr(importlib.import_module(module), name)
        if not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {name}, not a {cls.__name__}")
        config = model_cls.config_class(**state["config"])
        if device is not None:
            config = dataclasses.replace(config, device=device)
        model = model_cls(state["n_users"], state["n_items"], config, **state["init_tensors"])
        model.load_state_dict(state["state_dict"])
        model.eval()
        return model

    # ------------------------------------------------------------------ checks
    def _check_users(self, users: torch.Tensor | np.ndarray | list) -> torch.Tensor:
        """``(B,)`` integer ids in ``[0, n_users)`` -> long tensor on ``self.device``; a clear error otherwise."""
        users = torch.as_tensor(users)
        if users.ndim != 1 or users.is_floating_point() or users.dtype == torch.bool:
            raise ValueError(f"{type(self).__name__}: users must be a 1-D integer tensor, got dtype "
                             f"{users.dtype} and shape {tuple(users.shape)}")
        return check_ids(users, self.n_users, "user", type(self).__name__).to(self.device)

    def _check_dataset(self, dataset: RecDataset) -> None:
        if (dataset.n_users, dataset.n_items) != (self.n_users, self.n_items):
            raise ValueError(f"{type(self).__name__} was built for {self.n_users} users x {self.n_items} items; "
                             f"dataset {dataset.name!r} has {dataset.n_users} x {dataset.n_items}")

    def _exclude_mask(self, exclude, users: torch.Tensor, device: torch.device) -> torch.Tensor:
        if sp.issparse(exclude):
            if exclude.shape != (self.n_users, self.n_items):
                raise ValueError(f"exclude matrix has shape {exclude.shape}, expected ({self.n_users}, {self.n_items})")
            return rows_mask(exclude, users.cpu().numpy(), device)                  # (B, I)
        mask = torch.as_tensor(exclude, device=device).bool()
        if mask.shape != (len(users), self.n_items):
            raise ValueError(f"exclude mask has shape {tuple(mask.shape)}, expected ({len(users)}, {self.n_items})")
        return mask

    def _validate(self, dataset: RecDataset) -> dict[str, float]:
        """The monitored validation metrics: full-ranking ``recall@10`` (and ``ndcg@10``) on ``dataset.val``."""
        return evaluate(self.score, dataset, "val", ks=(10,), device=self.device).mean()

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, config={self.config}"


class BPRRecommender(Recommender):
    r"""A recommender trained with the BPR loss on uniformly sampled negatives.

    Per epoch, every training pair :math:`(u, i)` is visited once in random order with a negative
    :math:`j` (:class:`~mmgrec_lib.training.sampling.BPRSampler`), in minibatches of ``config.batch_size``; Adam
    with ``config.lr`` minimises ``bpr_loss``. Subclasses implement :meth:`reset_parameters` (drawing from
    the generator) and :meth:`bpr_loss`; :meth:`prepare` may cache dataset-dependent tensors (a graph).
    """

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        raise NotImplementedError

    def prepare(self, dataset: RecDataset) -> None:
        """Hook called at the start of ``fit`` (e.g. to build the training graph)."""

    def bpr_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Mean BPR loss (with regularisation) of a batch of triples, each ``(B,)`` on ``self.device``."""
        raise NotImplementedError

    def fit(self, dataset: RecDataset, loop: LoopConfig | None = None,
            generator: torch.Generator | None = None) -> FitResult:
        """Re-initialise from ``generator`` and train with early stopping on validation ``recall@10``.

        Args:
            dataset: a :class:`RecDataset` of this model's size.
            loop: epochs, patience, eval cadence, checkpoint (resumable) and progress bar.
            generator: a CPU ``torch.Generator``: the only source of randomness (required).

        Raises:
            ValueError: an empty validation split (nothing to early-stop on), before any training.
        """
        if generator is None:
            raise TypeError(f"{type(self).__name__}.fit needs an explicit torch.Generator (seeded) for reproducibility")
        loop = loop or LoopConfig()
        self._check_dataset(dataset)
        require_validation(dataset, f"{type(self).__name__}.fit")
        self.reset_parameters(generator)
        self.prepare(dataset)
        sampler = BPRSampler(dataset.train)
        optimizer = adam(self.parameters(), self.config.lr)
        bs, dev = int(self.config.batch_size), self.device

        def train_epoch(epoch: int, gen: torch.Generator) -> dict:
            self.start_epoch(gen)                                                  # hook (e.g. a pruned graph)
            users, pos, neg = sampler.epoch_triples(gen)                           # 3 x (E,)
            total = torch.zeros((), device=dev)
            for start in range(0, len(users), bs):
                u, i, j = (t[start:start + bs].to(dev) for t in (users, pos, neg))  # (B,) each
                loss = self.bpr_loss(u, i, j)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(u)
            return {"loss": float(total) / len(users)}

        try:
            return fit_loop(self, optimizer, train_epoch, lambda: self._validate(dataset), loop, generator,
                            desc=type(self).__name__)
        finally:
            self.finish_fit()

    def start_epoch(self, generator: torch.Generator) -> None:
        """Hook at the start of every training epoch, before its triples are drawn from ``generator`` (draws
        from it are checkpointed with the loop, so a resumed run stays exact). Default: nothing."""

    def finish_fit(self) -> None:
        """Hook when ``fit`` returns or fails (e.g. drop training-only state). Default: nothing."""


def init_normal_(param: torch.Tensor, std: float, generator: torch.Generator | None) -> None:
    """``param ~ N(0, std^2)`` drawn on the CPU from ``generator`` (device-agnostic and reproducible)."""
    with torch.no_grad():
        param.copy_(torch.randn(param.shape, generator=generator) * std)


def init_xavier_uniform_(param: torch.Tensor, generator: torch.Generator | None) -> None:
    """Xavier/Glorot uniform init of ``param`` (fans: its last two dims, as PyG's ``glorot``; a 2-D weight is
    ``(fan_out, fan_in)``), drawn on the CPU from ``generator``."""
    bound = (6.0 / (param.shape[-2] + param.shape[-1])) ** 0.5
    with torch.no_grad():
        param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)


def init_xavier_linear_(layer: torch.nn.Linear, generator: torch.Generator | None) -> None:
    """Xavier uniform weight (from ``generator``) and zero bias of a linear layer."""
    init_xavier_uniform_(layer.weight, generator)
    if layer.bias is not None:
        with torch.no_grad():
            layer.bias.zero_()


# ---------------------------------------------------------------------------------------------- per-step seeds
SEED_STRIDE = 0x9E3779B97F4A7C15         # golden-ratio stride: per-step seeds far apart
STEP_SEED_BUFFERS = ("step_seed", "step_count")


def register_step_seed(module: torch.nn.Module, names: tuple[str, str] = STEP_SEED_BUFFERS) -> None:
    """Add the buffers ``names`` (a seed drawn from the ``fit`` generator, a step counter) to ``module``: the
    source of every training-step random draw (dropout, sampling). They are in the ``state_dict``, which the
    training loop checkpoints, so a resumed run continues the same stream."""
    for name in names:
        module.register_buffer(name, torch.zeros((), dtype=torch.long))


def reset_step_seed(module: torch.nn.Module, generator: torch.Generator | None,
                    names: tuple[str, str] = STEP_SEED_BUFFERS) -> None:
    """Draw a fresh seed from ``generator`` and restart the step counter."""
    seed, count = (getattr(module, n) for n in names)
    seed.fill_(int(torch.randint(2 ** 62, (), generator=generator)))
    count.zero_()


def next_step_seed(module: torch.nn.Module, names: tuple[str, str] = STEP_SEED_BUFFERS) -> int:
    """The seed of the current training step, ``(seed + count * stride) mod 2^63``; advances the counter."""
    seed, count = (getattr(module, n) for n in names)
    out = (int(seed) + int(count) * SEED_STRIDE) % 2 ** 63
    count += 1
    return out


# ---------------------------------------------------------------------------------------------- graphs
def check_edge_index(edge_index: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """``(2, E)`` (user, item) pairs as a long tensor; a clear ``ValueError`` for a bad shape or ids."""
    edge_index = torch.as_tensor(edge_index, dtype=torch.long)
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be (2, E) (user, item) pairs, got shape {tuple(edge_index.shape)}")
    if edge_index.numel() and (edge_index.min() < 0 or edge_index[0].max() >= n_users
                               or edge_index[1].max() >= n_items):
        raise ValueError(f"edge_index has ids outside [0, {n_users}) x [0, {n_items})")
    return edge_index


def require_graph(model: Recommender) -> None:
    """Raise ``RuntimeError`` if ``model.edge_index`` holds no training pairs yet."""
    if model.edge_index.numel() == 0:
        name = type(model).__name__
        raise RuntimeError(f"{name} has no training graph: build it with {name}.from_dataset(...) or call fit()")


def weights_key(module: torch.nn.Module) -> tuple:
    """A key of the current parameter values (bumped by optimizer steps and ``load_state_dict``) for caches."""
    return tuple((p._version, p.data_ptr()) for p in module.parameters())


def check_positive(where: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first non-positive value (config validation)."""
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{where}: {name} must be > 0, got {value}")


def check_non_negative(where: str, **values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{where}: {name} must be >= 0, got {value}")


def check_fraction(where: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first value outside ``[0, 1)`` (a dropout rate)."""
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{where}: {name} must be in [0, 1), got {value}")


def check_below_one(where: str, **values: float) -> None:
    """Raise ``ValueError`` naming the first value not ``< 1`` (after :func:`check_non_negative`)."""
    for name, value in values.items():
        if not value < 1:
            raise ValueError(f"{where}: {name} must be < 1, got {value}")


def optional_tuple(values) -> tuple | None:
    """A config sequence field (e.g. ``modalities``) as a tuple, ``None`` kept."""
    return None if values is None else tuple(values)
