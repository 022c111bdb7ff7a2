"""Baseline recommenders under one interface (:class:`Recommender`): MostPop, MF-BPR, LightGCN, VBPR.

Typical use::

    model = LightGCN.from_dataset(dataset, dim=64)
    result = model.fit(dataset, LoopConfig(epochs=400, patience=20, eval_every=5), torch.Generator().manual_seed(0))
    test = evaluate(model.score, dataset, "test")
"""
from .base import BPRRecommender, Recommender
from .lightgcn import LightGCN, LightGCNConfig
from .mf import MF, MFConfig
from .mostpop import MostPop, MostPopConfig
from .vbpr import VBPR, VBPRConfig, content_features

__all__ = ["Recommender", "BPRRecommender", "MostPop", "MostPopConfig", "MF", "MFConfig",
           "LightGCN", "LightGCNConfig", "VBPR", "VBPRConfig", "content_features", "BASELINES"]

BASELINES = {"mostpop": MostPop, "mf": MF, "lightgcn": LightGCN, "vbpr": VBPR}
