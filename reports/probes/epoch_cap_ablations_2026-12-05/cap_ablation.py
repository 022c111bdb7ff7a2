"""Retrain one of notebook 05's ml100k ablation runs under an epoch cap of 28 (its full profile otherwise: at most
60 epochs, validated every 2, patience 5) and compare it with the uncapped run: whether the capped history is an
exact prefix of the uncapped one, which epoch each selects, and the paired test over test users.

The runs are the ablation runs of this machine that the cap changes (their best epoch is after 28;
``../epoch_cap_2026-12-05``): ``hkmeans`` (best 34), ``emb_wo`` and ``id_wo`` (best 38 each).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set:
    python reports/probes/epoch_cap_ablations_2026-12-05/cap_ablation.py ABLATION_KEY
The uncapped run must be in ``runs/`` and in the seed-run ledger. The capped run is trained into ``runs/`` (its own
key) on one thread, like the notebook's runs, and is not recorded in any ledger. Writes
``result_<variant>_seed<N>.json`` here.
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import yaml

from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation.significance import paired_test
from mmgrec_lib.experiments import seed_ablation_tasks, select_variants
from mmgrec_lib.experiments.ablations import ABLATIONS, ablation_key, ablation_runs, ablation_task
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.generator.training import TIME_KEYS
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig

CAP = 28
target = sys.argv[1]
torch.set_num_threads(1)
p = [q for q in yaml.safe_load(open("notebooks/05_ablations.yaml"))["full"] if q["DATASET"] == "ml100k"][0]
recid_base = GraphRQVAEConfig(codebook_size=p["CODEBOOK_SIZE"], schedule=p["RECID_SCHEDULE"], epochs=p["RECID_EPOCHS"],
                              rq_epochs=p["RECID_RQ_EPOCHS"], eval_every=p["RECID_EVAL_EVERY"],
                              patience=p["RECID_PATIENCE"], seed=0, device="cpu")
gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=p["FINETUNE_ITEM_EMB"]),
                           train=TrainConfig(targets_per_input=p["TARGETS_PER_INPUT"], seed=0, device="cpu"))
loop = LoopConfig(epochs=p["EPOCHS"], patience=p["PATIENCE"], eval_every=p["EVAL_EVERY"], monitor="recall@10")
variants = select_variants([a["name"] for a in ABLATIONS])
found = None
for seed, tasks in seed_ablation_tasks("ml100k", p["SEEDS"], recid_base, gen_base, loop, variants, "runs").items():
    ds = load_dataset("ml100k", seed=seed)
    for name, spec in tasks.items():
        if ablation_key(spec, ds) == target:
            found = seed, name, ds
if found is None:
    raise SystemExit(f"no ablation task of notebook 05's ml100k profile has the key {target}")
seed, name, ds = found
capped_loop = dataclasses.replace(loop, epochs=CAP)
spec_capped = seed_ablation_tasks("ml100k", [seed], recid_base, gen_base, capped_loop,
                                  select_variants([name]), "runs")[seed][name]
spec_full = seed_ablation_tasks("ml100k", [seed], recid_base, gen_base, loop, select_variants([name]), "runs")[seed]
t0 = time.time()
facts = ablation_task(spec_capped)
wall = time.time() - t0
capped = ablation_runs(ds, {name: spec_capped})[name]
uncapped = ablation_runs(ds, spec_full)[name]                       # its run file in runs/
strip = lambda h: [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in h]   # noqa: E731
a, b = strip(capped.fit.history), strip(uncapped.fit.history)
out = {"variant": name, "seed": seed, "ablation_key": target, "capped_run": facts["run_key"], "cap": CAP,
       "capped_seconds": wall, "history_is_prefix": a == b[:len(a)],
       "capped": {"best_epoch": capped.fit.best_epoch, "epochs_run": len(a), "val_recall@10": capped.fit.best_score,
                  **{f"test_{k}": v for k, v in capped.test.mean().items()}},
       "uncapped": {"best_epoch": uncapped.fit.best_epoch, "epochs_run": len(b),
                    "val_recall@10": uncapped.fit.best_score,
                    **{f"test_{k}": v for k, v in uncapped.test.mean().items()}},
       "paired": {m: paired_test(capped.test, uncapped.test, m) for m in ("recall@10", "ndcg@10", "recall@20",
                                                                         "ndcg@20")}}
text = json.dumps(out, indent=1, default=float)
(Path(__file__).parent / f"result_{name}_seed{seed}.json").write_text(text + "\n")
print(text)
