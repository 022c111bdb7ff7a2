#!/bin/bash
# Interleaved before/after epoch times of notebook 03's ml100k rung (distill_lgc_w3, split seed 0), one epoch per
# process, on a quiet machine: BEFORE and AFTER are two checkouts (worktrees) of the code to compare.
# Usage, from the repository root: reports/probes/generator_step_2026-12-05/epoch_times.sh BEFORE AFTER > result.jsonl
set -e
before=$1
after=$2
eval "$(.venv/bin/mmgrec env)"
export TQDM_DISABLE=1
py=$(pwd)/.venv/bin/python
script=reports/probes/generator_two_threads_2026-12-05/epoch_time.py
for setting in "2 3" "1 2"; do                      # threads, repetitions
  read -r threads reps <<< "$setting"
  for rep in $(seq "$reps"); do
    for side in before after; do
      dir=$([ "$side" = before ] && echo "$before" || echo "$after")
      line=$(cd "$dir" && PYTHONPATH="$dir" "$py" "$script" "$threads" 0 1 2>/dev/null | grep '"threads"')
      echo "{\"side\": \"$side\", \"rep\": $rep, \"run\": $line}"
    done
  done
done
