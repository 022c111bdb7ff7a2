"""MMGRec workbench: multimodal generative recommendation (Liu et al.).

Modules: ``data`` (datasets), ``evaluation`` (full-ranking metrics), ``baselines``, ``training``
(epoch loop), ``recid`` (Rec-ID tables and trie), ``graph_rqvae`` (Rec-ID assignment) and
``generator`` (relation-aware Transformer and constrained beam search).
"""
__version__ = "0.1.0"
