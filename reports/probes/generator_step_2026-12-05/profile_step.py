"""Where a generator training step's time goes: ml100k, notebook 03's rung (``distill_lgc_w3``), split seed 0.

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set:

    python reports/probes/generator_step_2026-12-05/profile_step.py THREADS STEPS

Trains 3 warm-up steps, times STEPS steps by the clock (``ms/step``), then runs STEPS more under the torch
profiler and prints, per step, the self time of the aten operators grouped by the nearest library frame (a
function of ``mmgrec_lib``) or autograd node (backward) or optimiser step that called them, with the largest
operators of each group. The profiler's per-operator times are indicative only: the clock gives the step.
The steps are those of ``run_epoch`` (grouped targets, length chunks, gradient clipping, Adam), without dropout's
per-epoch reseeding.
"""
import collections
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from mmgrec_lib.generator.training import (accumulate_gradients, batch_indices, build_generator, length_chunks,
                                           make_optimizer, training_groups, training_pairs)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_hashes import rung_setup  # noqa: E402  (notebook 03's rung, as the hash probe builds it)

threads, n_steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
ds, recids, gc, _ = rung_setup("ml100k", "distill_lgc_w3")
model = build_generator(ds, recids.table, recids.user_emb, recids.item_emb, gc).train()
cfg = gc.train
opt = make_optimizer(model, cfg)
users, items = training_pairs(ds)
g = torch.Generator().manual_seed(0)
counts = torch.bincount(users, minlength=model.n_users)
g_users, g_items = training_groups(counts, users, items, cfg.targets_per_input, g)
n_targets = (g_items >= 0).sum(1)
lengths = (counts[g_users] - n_targets).clamp(max=model.config.max_len)
batches = batch_indices(lengths, cfg.batch_size, g, False, sizes=n_targets)


def step(idx: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    accumulate_gradients(model, g_users[idx], g_items[idx], length_chunks(lengths[idx]), g,
                         distill_weight=cfg.distill_weight, distill_temperature=cfg.distill_temperature)
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()


for idx in batches[:3]:
    step(idx)
t0 = time.perf_counter()
for idx in batches[3:3 + n_steps]:
    step(idx)
print(f"threads {threads}: {(time.perf_counter() - t0) / n_steps * 1e3:.1f} ms/step (clock, {n_steps} steps)")

with profile(activities=[ProfilerActivity.CPU], with_stack=True) as p:     # stacks: the Python frames
    for idx in batches[3 + n_steps:3 + 2 * n_steps]:
        step(idx)
by_op = collections.defaultdict(float)                     # (group, operator) -> ms
for e in p.events():
    if not e.name.startswith("aten::"):
        continue
    q, where = e.cpu_parent, "<other>"
    while q is not None:
        if "mmgrec_lib" in q.name or q.name.startswith(("autograd::engine::evaluate_function", "Optimizer")):
            where = q.name
            break
        q = q.cpu_parent
    by_op[(where, e.name)] += e.self_cpu_time_total / 1e3
by_group = collections.defaultdict(float)
for (where, _), ms in by_op.items():
    by_group[where] += ms
print(f"profiled self time: {sum(by_group.values()) / n_steps:.1f} ms/step")
for where, ms in sorted(by_group.items(), key=lambda kv: -kv[1])[:30]:
    top = sorted(((m, n) for (w, n), m in by_op.items() if w == where), reverse=True)[:6]
    print(f"{ms / n_steps:6.2f} ms/step  {where[-75:]:75s} | "
          + ", ".join(f"{n[6:]} {m / n_steps:.1f}" for m, n in top))
