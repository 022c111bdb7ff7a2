"""Report artefacts: tables and figures (``tables``), dataset/training plots (``plots``), Rec-ID figures
(``recid_plots``) and the ipywidgets explorer (``widgets``, imported on demand)."""
from .tables import reports_paths, save_figure, save_table, to_markdown

__all__ = ["reports_paths", "save_figure", "save_table", "to_markdown"]
