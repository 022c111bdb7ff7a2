#!/bin/bash
# interleaved before (f6dd48b, in a worktree at /tmp/wt_before: git worktree add --detach /tmp/wt_before f6dd48b) / after (f7a20f8) pairs: alternating Graph RQ-VAE, 2 threads, AVX2, 2 epochs
export TQDM_DISABLE=1
for r in 1 2 3; do
  for side in before after; do
    if [ $side = before ]; then dir=/tmp/wt_before; else dir=/work/main; fi
    (cd $dir && PYTHONPATH=$dir /work/main/.venv/bin/mmgrec bench train --stages graph_rqvae,lightgcn --threads 2 --epochs 2 2>&1 | grep -E "per epoch" | sed "s/^/$side round $r: /")
  done
done
