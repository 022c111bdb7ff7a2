"""Probe: the generative + dense hybrid (re-ranking the beam, mmgrec_lib.experiments.hybrid) on the generator
distilled from the tuned LightGCN (reports/probes/teacher_2026-12-03, seed 0), re-ranked with (a) the
first stage's h_u h_i (the ladder's hybrid_rerank row) and (b) the teacher's own LightGCN vectors. Only inference:
the generator run and the LightGCN run are loaded from their checkpoints. Weight chosen on validation, test read
once per representation and beam. Usage: probe_hybrid.py [dataset] (run from the repository root, after
probe_teacher.py <dataset> 3 1)."""
import json, sys, time
import torch
import yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation import list_diagnostics, paired_test
from mmgrec_lib.experiments import Rung, rung_configs, chosen_overrides, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.analysis import top_k_lists
from mmgrec_lib.experiments.ladder import _kept_lists
from mmgrec_lib.experiments.runs import run_baselines
from mmgrec_lib.experiments.hybrid import hybrid_sweep
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig
torch.set_num_threads(1)
ds_name = sys.argv[1] if len(sys.argv) > 1 else "ml100k"
prof = [p for p in yaml.safe_load(open("notebooks/04_overall_comparison.yaml"))["full"] if p["DATASET"] == ds_name][0]
ds = load_dataset(ds_name, seed=0)
bl = LoopConfig(epochs=400, patience=20, eval_every=5, monitor="recall@10")
gl = LoopConfig(epochs=400, patience=4, eval_every=5, monitor="recall@10")
ov, _ = chosen_overrides(ds, ["lightgcn"], {"lightgcn": prof["GRIDS"]["lightgcn"]}, {"lightgcn": {"dim": 64}}, gl,
                         "runs", seed=0, device="cpu", ledger=f"reports/ledgers/baseline_grid_{ds_name}.jsonl",
                         search={"lightgcn": "grid" if "lightgcn" in prof.get("FULL_GRID", ["lightgcn"]) else "staged"}, top=2, final_loop=bl)
recid_base = GraphRQVAEConfig(codebook_size=prof["CODEBOOK_SIZE"], epochs=60, rq_epochs=200, seed=0, device="cpu")
gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=prof["FINETUNE_ITEM_EMB"]),
                           train=TrainConfig(targets_per_input=8, seed=0, device="cpu"))
(rc, gc, lp), = rung_configs(recid_base, gen_base, LoopConfig(epochs=prof["EPOCHS"], patience=prof["PATIENCE"],
                              eval_every=prof["EVAL_EVERY"], monitor="recall@10"), [Rung.from_dict(prof["MMGREC_RUNG"])])
teacher = {"model": "lightgcn", "config": dict(ov["lightgcn"]),
           "loop": {"epochs": 400, "patience": 20, "eval_every": 5, "monitor": "recall@10"}}
gc = gc.replace(distill_weight=3.0, distill_temperature=1.0, distill_teacher=teacher)
recids, _, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
run = run_generator(ds, recids, gc, lp, runs_dir="runs")
assert run.fit.resumed_from > 0, "the distilled generator was trained, not loaded: run probe_teacher.py first"
model = run.model
reprs = {"first_stage": (recids.user_emb, recids.item_emb),
         "lightgcn_teacher": (model.teacher_users.cpu(), model.teacher_items.cpu())}
lgc = run_baselines(ds, ["lightgcn"], loop=bl, seed=0, overrides={"lightgcn": dict(ov["lightgcn"])},
                    runs_dir="runs")["lightgcn"]
assert lgc.fit.resumed_from > 0, "the LightGCN teacher was trained, not loaded"
out = {"dataset": ds_name, "generator_run": str(run.checkpoint), "generator_test": run.test.mean(),
       "lightgcn_run": str(lgc.checkpoint), "lightgcn_val_recall@10": lgc.fit.best_score,
       "lightgcn_test": lgc.test.mean(), "hybrids": {}}
lists = top_k_lists({"generator": run, "lightgcn": lgc}, ds, k=10, beam_width=gc.train.beam_width)
out.update({f"{n}_coverage@10": list_diagnostics(lists[n], ds)["coverage"] for n in ("generator", "lightgcn")})
for name, (hu, hi) in reprs.items():
    for beam in (20, 40, 80):
        t0 = time.time()
        table, w, test = hybrid_sweep(model, hu, hi, ds, weights=(0.0, 0.25, 0.5, 0.75, 1.0), beam=beam)
        out["hybrids"][f"{name} beam {beam}"] = {
            "validation": table.to_dict("records"), "chosen_weight": w, "test": test.mean(),
            "coverage@10": list_diagnostics(_kept_lists(test, ds), ds)["coverage"],
            **{f"p_{m}_vs_{ref}": paired_test(other.test, test, m)["p_wilcoxon"]
               for ref, other in (("generator", run), ("lightgcn", lgc)) for m in ("ndcg@10", "recall@10")},
            "seconds": time.time() - t0}
        print(name, beam, json.dumps(out["hybrids"][f"{name} beam {beam}"], default=float), flush=True)
open(f"reports/probes/hybrid_teacher_2026-12-03/result_{ds_name}.json", "w").write(json.dumps(out, indent=1, default=float))
