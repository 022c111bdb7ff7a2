"""Runs, studies and analyses the notebooks call: keyed, resumable, reused by run key (``runs``)."""
from .ablations import (ABLATIONS, Variant, ablation_runs, ablation_seed_table, ablation_table, ablation_tasks,
                        choose_value, hyper_table, hyper_tasks, seed_ablation_tasks, select_variants, sweep_ablations,
                        sweep_hyper)
from .analysis import (BASELINE_NAMES, baseline_overrides, beam_width_table, example_recommendations, example_users,
                       gap_summary, list_table, split_lists, split_users, test_users, top_k_lists)
from .ladder import (LADDER_BASE_PARAMS, Rung, built_chain, chosen_rung, hybrid_rung, ladder_bases, prior_rung, ladder_tasks,
                     profile_bases, profile_rung_config, rung_configs, run_ladder, settled_rungs, seed_runs, seed_table, validation_coverage,
                     with_budget)
from .tuning import baseline_spec, baseline_task, grid_points, tune_baseline
from .sweep import (generator_spec, generator_study_tasks, generator_task, local_workers, notebook_executor, recid_task,
                    run_after, run_sweep, sweep_generators)
from .overall import (applicable_baselines, chosen_overrides, gain_table, marked_markdown, overall_runs,
                      overall_table, seed_run_table, split_note)
from .runs import (ModelRun, codebook_size_sweep, load_or_assign_recids, loop_key,
                   recid_run_path, results_table, run_baselines, run_generator, run_generator_variants, run_key,
                   study_variants, variant_configs, baseline_teacher)
from .teachers import parse_teacher_spec, teacher_spec, teacher_vectors

__all__ = ["ABLATIONS", "Variant", "ablation_runs", "ablation_seed_table", "ablation_table", "ablation_tasks",
           "choose_value", "hyper_table", "hyper_tasks", "seed_ablation_tasks", "select_variants", "sweep_ablations",
           "sweep_hyper",
           "BASELINE_NAMES", "baseline_overrides", "beam_width_table", "example_recommendations", "example_users",
           "gap_summary", "list_table", "split_lists", "split_users", "test_users", "top_k_lists", "Rung", "built_chain",
           "chosen_rung",
           "hybrid_rung", "ladder_bases", "LADDER_BASE_PARAMS", "profile_bases", "profile_rung_config", "prior_rung", "validation_coverage", "ladder_tasks", "settled_rungs",
           "rung_configs", "with_budget", "seed_table", "run_ladder", "baseline_spec", "baseline_task", "grid_points",
           "tune_baseline", "generator_spec", "generator_task", "local_workers", "notebook_executor", "recid_task",
           "run_after", "run_sweep", "sweep_generators", "ModelRun", "codebook_size_sweep",
           "load_or_assign_recids", "loop_key", "recid_run_path", "results_table", "run_baselines",
           "run_generator", "run_generator_variants", "run_key", "seed_runs", "applicable_baselines",
           "chosen_overrides", "gain_table", "marked_markdown", "overall_runs", "overall_table", "seed_run_table",
           "split_note", "generator_study_tasks", "study_variants", "variant_configs", "baseline_teacher",
           "parse_teacher_spec", "teacher_spec", "teacher_vectors"]
