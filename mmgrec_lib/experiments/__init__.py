"""Runs, studies and analyses the notebooks call: keyed, resumable, reused by run key (``runs``)."""
from .runs import (ModelRun, codebook_size_sweep, load_or_assign_recids, loop_key, recid_run_path, results_table,
                   run_baselines, run_generator, run_generator_variants, run_key)

__all__ = ["ModelRun", "codebook_size_sweep", "load_or_assign_recids", "loop_key", "recid_run_path",
           "results_table", "run_baselines", "run_generator", "run_generator_variants", "run_key"]
