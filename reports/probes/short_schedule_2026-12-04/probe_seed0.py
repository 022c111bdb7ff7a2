"""Probe (issue 10): notebook 09's w3_cosine16 rung (distill_lgc_w3 with a 16-epoch cosine schedule from lr 2e-3) on
ml100k, seed 0, timed; its run key is the ladder rung's. Usage, from the repository root: probe_seed0.py w3_cosine16"""
import json, sys, time
from pathlib import Path
from mmgrec_lib.numerics import portable_numerics
portable_numerics()
import torch, yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import Rung, rung_configs, run_generator, load_or_assign_recids
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig
torch.set_num_threads(1)
name = sys.argv[1]
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == "ml100k"][0]
ds = load_dataset("ml100k", seed=0)
recid_base = GraphRQVAEConfig(codebook_size=prof["CODEBOOK_SIZE"], epochs=prof["RECID_EPOCHS"],
                              rq_epochs=prof["RECID_RQ_EPOCHS"], seed=0, device="cpu")
gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=prof["FINETUNE_ITEM_EMB"]),
                           train=TrainConfig(targets_per_input=8, seed=0, device="cpu"))
loop = LoopConfig(epochs=prof["EPOCHS"], patience=prof["PATIENCE"], eval_every=prof["EVAL_EVERY"], monitor="recall@10")
rungs = [Rung.from_dict(r) for r in prof["LADDER"]]
configs = dict(zip([r.name for r in rungs], rung_configs(recid_base, gen_base, loop, rungs)))
rc, gc, lp = configs[name]
t0 = time.time()
recids, recid_path, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
t1 = time.time()
run = run_generator(ds, recids, gc, lp, runs_dir="runs")
print(json.dumps({"rung": name, "recid_run": Path(recid_path).name, "recid_wall": t1 - t0,
                  "generator_run": Path(run.checkpoint).name, "resumed_from": run.fit.resumed_from,
                  "train_seconds": run.train_seconds, "wall": time.time() - t1, "best_epoch": run.fit.best_epoch,
                  "val": run.fit.best_score, "test": run.test.mean()}, default=float), flush=True)
