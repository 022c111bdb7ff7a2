"""Baseline recommenders under one interface (:class:`Recommender`): MostPop, MF-BPR, LightGCN, VBPR, the CF
graph encoders GraphSAGE, GAT, NGCF and the multimodal MMGCN, GRCN, LATTICE, FREEDOM, InvRL and LightGT (Table 2).

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
from .graphsage import GraphSAGE, GraphSAGEConfig
from .gat import GAT, GATConfig
from .ngcf import NGCF, NGCFConfig
from .mmgcn import MMGCN, MMGCNConfig
from .lattice import LATTICE, LATTICEConfig
from .freedom import FREEDOM, FREEDOMConfig
from .grcn import GRCN, GRCNConfig
from .lightgt import LightGT, LightGTConfig
from .invrl import InvRL, InvRLConfig

__all__ = ["Recommender", "BPRRecommender", "MostPop", "MostPopConfig", "MF", "MFConfig",
           "LightGCN", "LightGCNConfig", "VBPR", "VBPRConfig", "content_features", "GraphSAGE", "GraphSAGEConfig",
           "GAT", "GATConfig", "NGCF", "NGCFConfig", "MMGCN", "MMGCNConfig", "LATTICE", "LATTICEConfig", "FREEDOM",
           "FREEDOMConfig", "GRCN", "GRCNConfig", "LightGT", "LightGTConfig", "InvRL", "InvRLConfig", "BASELINES",
           "config_fields", "reads_modalities"]

BASELINES = {"mostpop": MostPop, "mf": MF, "lightgcn": LightGCN, "vbpr": VBPR, "graphsage": GraphSAGE, "gat": GAT,
             "ngcf": NGCF, "mmgcn": MMGCN, "lattice": LATTICE, "freedom": FREEDOM, "grcn": GRCN, "lightgt": LightGT,
             "invrl": InvRL}


def config_fields(name: str) -> set[str]:
    """The config fields of baseline ``name`` (a :data:`BASELINES` key); an unknown name raises ``ValueError``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return set(BASELINES[name].config_class.__dataclass_fields__)


def reads_modalities(name: str) -> bool:
    """Whether baseline ``name`` reads modality features: its config chooses them (a ``modalities`` field)."""
    return "modalities" in config_fields(name)
