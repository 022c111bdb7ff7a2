"""Evaluation: full-ranking metrics (``metrics``), paired significance tests (``significance``) and
beyond-accuracy list facts (``lists``). Knows no model: it scores matrices, ranked lists or callables."""
from .lists import list_diagnostics
from .metrics import EvalResult, evaluate, excluded_matrix
from .significance import paired_test

__all__ = ["EvalResult", "evaluate", "excluded_matrix", "list_diagnostics", "paired_test"]
