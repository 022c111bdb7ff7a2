"""External distillation teachers for the generator (not the paper's method).

The generator can distil a dot-product ranking into its loss (``TrainConfig.distill_weight``). By default the
teacher is its own first stage (the Graph RQ-VAE's ``h_u·h_i``). A trained baseline can be the teacher instead,
e.g. the tuned LightGCN, whose ranking is stronger than the first stage's. ``TrainConfig.distill_teacher`` then
holds a *teacher spec*: the baseline's name with its config fields and training loop, as one canonical string
(:func:`teacher_spec`), so the generator's run key names exactly which baseline run taught it.
:func:`~mmgrec_lib.experiments.runs.run_generator` loads or trains that run (same seed as the generator,
:func:`~mmgrec_lib.experiments.runs.baseline_teacher`) and hands its vectors (:func:`teacher_vectors`) to
training.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

import torch

from ..generator.config import teacher_spec_string

#: loop fields a teacher spec may set (the rest keep ``LoopConfig``'s defaults, as in the notebooks' baseline runs)
TEACHER_LOOP_FIELDS = ("epochs", "eval_every", "patience", "monitor")


def teacher_spec(model: str, config: Mapping[str, Any] | None = None, loop: Mapping[str, Any] | None = None) -> str:
    """The canonical ``distill_teacher`` string of baseline ``model`` with config fields ``config`` trained under
    the loop fields ``loop`` (:data:`TEACHER_LOOP_FIELDS`), e.g.
    ``'lightgcn {"config": {"lr": 0.005}, "loop": {"epochs": 400, "eval_every": 5, "patience": 20}}'``. A ``device``
    field is left out: where the teacher trains does not change which run it is (as in the baselines' run keys)."""
    from ..baselines import BASELINES
    if model not in BASELINES:
        raise ValueError(f"distill_teacher: unknown baseline {model!r}; expected one of {sorted(BASELINES)}")
    loop = dict(loop or {})
    unknown = sorted(set(loop) - set(TEACHER_LOOP_FIELDS))
    if unknown:
        raise ValueError(f"distill_teacher {model!r}: unknown loop field(s) {unknown}; expected some of "
                         f"{list(TEACHER_LOOP_FIELDS)}")
    BASELINES[model].config_class(**dict(config or {}))                     # unknown config fields raise here
    return teacher_spec_string({"model": model, "config": dict(config or {}), "loop": loop})


def parse_teacher_spec(spec: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(model, config, loop)`` of a :func:`teacher_spec` string; a ``ValueError`` names what is wrong."""
    model, _, rest = str(spec).partition(" ")
    try:
        body = json.loads(rest) if rest else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"distill_teacher {spec!r}: not '<baseline> <JSON>' ({exc.msg})") from None
    if not isinstance(body, dict) or set(body) - {"config", "loop"}:
        raise ValueError(f"distill_teacher {spec!r}: the JSON part must be an object with 'config' and 'loop'")
    config, loop = dict(body.get("config", {})), dict(body.get("loop", {}))
    if teacher_spec(model, config, loop) != spec:                              # checks the names, and canonical form
        raise ValueError(f"distill_teacher {spec!r} is not in canonical form: build it with teacher_spec()")
    return model, config, loop


def teacher_vectors(model, n_users: int, check_users: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(users (U, d), items (I, d))`` vectors whose dot products are ``model``'s scores. ``model`` needs
    ``embeddings()`` returning either the stacked ``(U + I, d)`` node vectors or a ``(users, items)`` pair.
    The first ``check_users`` users' scores are compared with ``model.score``: a model that ranks by anything
    but that dot product is refused."""
    if not callable(getattr(model, "embeddings", None)):
        raise ValueError(f"{type(model).__name__} has no embeddings(): it cannot be a dot-product teacher")
    model.eval()
    with torch.no_grad():
        emb = model.embeddings()
        users, items = emb if isinstance(emb, (tuple, list)) else (emb[:n_users], emb[n_users:])
        users, items = users.detach().float().cpu(), items.detach().float().cpu()
        probe = torch.arange(min(check_users, users.shape[0]))
        want = model.score(probe.to(next(model.parameters()).device)).float().cpu()     # (P, I)
    got = users[probe] @ items.T                                                          # (P, I)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise ValueError(f"{type(model).__name__}: its scores are not the dot products of its embeddings(), so "
                         "they cannot stand in for it as a teacher")
    return users, items


__all__ = ["TEACHER_LOOP_FIELDS", "parse_teacher_spec", "teacher_spec", "teacher_vectors"]
