#!/bin/bash
# quiet-machine rerun of throughput_bench, the same invocations as session 33's table
cd "$(dirname "$0")/../../.."
export TQDM_DISABLE=1
B=".venv/bin/mmgrec bench train --epochs 2"
O=${1:-/tmp/bench}; mkdir -p $O   # then: python reports/probes/step_levers_2026-12-05/bench_table.py CAPTION $O/*.csv
$B --threads 1 --csv $O/01_t1.csv
$B --threads 1 --stages graph_rqvae --recid-schedule two_stage --csv $O/02_t1_two.csv
$B --threads 1 --stages graph_rqvae --recid-schedule two_stage --recid-encoder lightgcn --csv $O/03_t1_two_lgc.csv
$B --threads 1 --stages graph_rqvae --recid-schedule joint --csv $O/04_t1_joint.csv
$B --threads 2 --csv $O/05_t2.csv
$B --threads 2 --stages graph_rqvae --recid-schedule two_stage --csv $O/06_t2_two.csv
$B --threads 2 --stages graph_rqvae --recid-schedule joint --csv $O/07_t2_joint.csv
MMGREC_NATIVE_ISA=1 $B --threads 2 --csv $O/08_t2_native.csv
MMGREC_NATIVE_ISA=1 $B --threads 1 --stages graph_rqvae,generator --csv $O/09_t1_native.csv
echo done
