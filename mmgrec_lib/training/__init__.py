"""Training machinery shared by every model: the generic epoch loop (``loop``) and BPR sampling (``sampling``)."""
from .loop import FitResult, LoopConfig, cpu_threads, extend_patience, fit, require_validation
from .sampling import BPRSampler

__all__ = ["BPRSampler", "FitResult", "LoopConfig", "cpu_threads", "extend_patience", "fit", "require_validation"]
