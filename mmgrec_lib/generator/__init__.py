"""Stage 2, the generator: a relation-aware Transformer that writes Rec-IDs (``model``), its training and
evaluation (``training``) and constrained beam search / exact scoring over the Rec-ID trie (``decoding``)."""
from .decoding import beam_search, exact_scores
from .model import MMGRecGenerator
from .training import GeneratorConfig, evaluate_generator, train_generator

__all__ = ["GeneratorConfig", "MMGRecGenerator", "beam_search", "evaluate_generator", "exact_scores",
           "train_generator"]
