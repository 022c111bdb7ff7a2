"""Stage 1, the tokenizer: items -> Rec-IDs.

``rqvae`` (residual quantiser), ``graph_rqvae`` (Graph RQ-VAE, the paper's tokenizer), ``alternatives``
(HK-Means, "ID w/o"), ``recid`` (collision token, Rec-ID table and prefix trie), ``run`` (:class:`RecIDRun`,
what every tokenizer returns) and ``stats`` (codebook statistics).
"""
from .graph_rqvae import GraphRQVAE, GraphRQVAEConfig, assign_recids
from .recid import RecIDTable, disambiguate
from .run import RecIDRun, build_recids

__all__ = ["GraphRQVAE", "GraphRQVAEConfig", "RecIDRun", "RecIDTable", "assign_recids", "build_recids",
           "disambiguate"]
