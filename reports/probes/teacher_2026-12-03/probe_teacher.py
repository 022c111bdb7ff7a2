"""Probe: distillation from the tuned LightGCN (external teacher) on one dataset, seed 0, notebook 04's MMGRec
settings. Usage: probe_teacher.py <dataset> <distill_weight> <distill_temperature> (run from the repository root)."""
import sys, json, time
import torch
from mmgrec_lib.data import load_dataset
from mmgrec_lib.experiments import Rung, rung_configs, chosen_overrides, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.ladder import validation_coverage
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig
import yaml
torch.set_num_threads(1)
ds_name, weight, tau = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
prof = [p for p in yaml.safe_load(open("notebooks/04_overall_comparison.yaml"))["full"] if p["DATASET"] == ds_name][0]
ds = load_dataset(ds_name, seed=0)
bl = LoopConfig(epochs=400, patience=20, eval_every=5, monitor="recall@10")
gl = LoopConfig(epochs=400, patience=4, eval_every=5, monitor="recall@10")
full = prof.get("FULL_GRID", ["lightgcn"])
ov, src = chosen_overrides(ds, ["lightgcn"], {"lightgcn": prof["GRIDS"]["lightgcn"]}, {"lightgcn": {"dim": 64}}, gl,
                           "runs", seed=0, device="cpu", ledger=f"reports/ledgers/baseline_grid_{ds_name}.jsonl",
                           search={"lightgcn": "grid" if "lightgcn" in full else "staged"}, top=2, final_loop=bl)
print("teacher", ov["lightgcn"], src["lightgcn"], flush=True)
recid_base = GraphRQVAEConfig(codebook_size=prof["CODEBOOK_SIZE"], epochs=60, rq_epochs=200, seed=0, device="cpu")
gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=prof["FINETUNE_ITEM_EMB"]),
                           train=TrainConfig(targets_per_input=8, seed=0, device="cpu"))
rung = Rung.from_dict(prof["MMGREC_RUNG"])
(rc, gc, lp), = rung_configs(recid_base, gen_base, LoopConfig(epochs=prof["EPOCHS"], patience=prof["PATIENCE"],
                              eval_every=prof["EVAL_EVERY"], monitor="recall@10"), [rung])
teacher = {"model": "lightgcn", "config": dict(ov["lightgcn"]),
           "loop": {"epochs": 400, "patience": 20, "eval_every": 5, "monitor": "recall@10"}}
gc = gc.replace(distill_weight=weight, distill_temperature=tau, distill_teacher=teacher)
recids, _, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
t0 = time.time()
run = run_generator(ds, recids, gc, lp, runs_dir="runs")
cov = validation_coverage(run.model, ds)
out = {"dataset": ds_name, "rung": rung.name, "weight": weight, "tau": tau, "val_recall@10": run.fit.best_score,
       "best_epoch": run.fit.best_epoch, "epochs": len(run.fit.history), "val_coverage@10": cov,
       **{f"test_{k}": v for k, v in run.test.mean().items()}, "seconds": time.time() - t0}
print(json.dumps(out), flush=True)
open(f"reports/probes/teacher_2026-12-03/result_{ds_name}_{weight}_{tau}.json", "w").write(json.dumps(out))
