"""Report artefacts: tables and figures (``tables``), dataset/training plots (``plots``), Rec-ID figures
(``recid_plots``), the ipywidgets explorer (``widgets``, imported on demand) and the notebooks' parameter
check (``parameters``)."""
from .parameters import ParameterError, check_parameters
from .tables import reports_paths, save_figure, save_table, to_markdown

__all__ = ["ParameterError", "check_parameters", "reports_paths", "save_figure", "save_table", "to_markdown"]
