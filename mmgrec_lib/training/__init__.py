"""Training machinery shared by every model: the generic epoch loop (``loop``), BPR sampling (``sampling``) and
the optimisers (``optim``)."""
from .loop import FitResult, LoopConfig, cpu_threads, extend_epochs, extend_patience, fit, require_validation
from .optim import adam, sgd
from .sampling import BPRSampler

__all__ = ["BPRSampler", "FitResult", "LoopConfig", "cpu_threads", "extend_epochs", "extend_patience", "fit", "require_validation",
           "adam", "sgd"]
