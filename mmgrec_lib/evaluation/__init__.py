"""Evaluation: full-ranking metrics (``metrics``), paired significance tests (``significance``),
beyond-accuracy list facts (``lists``) and per-user metrics by group of users (``groups``). Knows no model: it
scores matrices, ranked lists or callables."""
from .groups import history_groups, metric_by_group
from .lists import list_diagnostics
from .metrics import EvalResult, evaluate, excluded_matrix, result_from_hits
from .significance import paired_test

__all__ = ["EvalResult", "evaluate", "excluded_matrix", "history_groups", "list_diagnostics", "metric_by_group", "result_from_hits",
           "paired_test"]
