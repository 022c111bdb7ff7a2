"""Stage 2, the generator: its settings (``config``), a relation-aware Transformer that writes Rec-IDs
(``model``), the users' histories (``history``), its training and evaluation (``training``) and constrained beam search / exact scoring over the Rec-ID trie (``decoding``), and popularity-corrected decoding (``prior``, not the paper's)."""
from .decoding import beam_search, exact_scores
from .model import MMGRecGenerator
from .prior import LogitAdjustment, PopularityPrior
from .config import GeneratorConfig, ModelConfig, TrainConfig
from .training import evaluate_generator, train_generator

__all__ = ["GeneratorConfig", "LogitAdjustment", "MMGRecGenerator", "ModelConfig", "PopularityPrior", "TrainConfig", "beam_search", "evaluate_generator", "exact_scores",
           "train_generator"]
