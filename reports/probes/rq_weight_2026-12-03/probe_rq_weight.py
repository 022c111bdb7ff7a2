"""Probe: the RQ-loss weight of the paper's alternating Graph RQ-VAE (GraphRQVAEConfig.rq_weight; issue 11, lever 1:
"an RQ-loss weight" beside the two-stage schedule). The paper rung of notebook 09's full profile for the dataset,
with rq_weight W instead of 1 (eq. 10 as written), trained to notebook 09's budget (same run keys as a ladder rung
{recid: {rq_weight: W}} on the paper rung, so a ladder rerun reuses it). Reports the first stage's dot-product
validation Recall@10 and Rec-ID statistics, the generator's validation and test metrics, test top-10 coverage and
the paired Wilcoxon p against the paper rung (rq_weight 1, loaded or trained). Usage, from the repository root:
probe_rq_weight.py <dataset> <W> [<W> ...]; writes result_<dataset>.json beside this file."""
import json, sys, time
from pathlib import Path
import torch
import yaml
from mmgrec_lib.data import load_dataset
from mmgrec_lib.evaluation import list_diagnostics, paired_test
from mmgrec_lib.experiments import Rung, rung_configs, run_generator, load_or_assign_recids
from mmgrec_lib.experiments.analysis import top_k_lists
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.training import LoopConfig
torch.set_num_threads(1)
ds_name, weights = sys.argv[1], [float(w) for w in sys.argv[2:]]
prof = [p for p in yaml.safe_load(open("notebooks/09_accuracy_ladder.yaml"))["full"] if p["DATASET"] == ds_name][0]
ds = load_dataset(ds_name, seed=0)
recid_base = GraphRQVAEConfig(codebook_size=prof["CODEBOOK_SIZE"], epochs=prof["RECID_EPOCHS"],
                              rq_epochs=prof["RECID_RQ_EPOCHS"], seed=0, device="cpu")
gen_base = GeneratorConfig(model=ModelConfig(finetune_item_emb=prof["FINETUNE_ITEM_EMB"]),
                           train=TrainConfig(targets_per_input=8, seed=0, device="cpu"))
loop = LoopConfig(epochs=prof["EPOCHS"], patience=prof["PATIENCE"], eval_every=prof["EVAL_EVERY"], monitor="recall@10")
rungs = [Rung.from_dict({"name": "paper", "note": "paper-faithful"})] + [
    Rung.from_dict({"name": f"rq_weight_{w:g}", "recid": {"rq_weight": w}, "base": "paper",
                    "note": f"alternate schedule with the RQ loss weighted {w:g}"}) for w in weights]
configs = rung_configs(recid_base, gen_base, loop, rungs)
out_path = Path(__file__).with_name(f"result_{ds_name}.json")
out = json.loads(out_path.read_text()) if out_path.exists() else {"dataset": ds_name, "rungs": {}}
runs = {}
for rung, (rc, gc, lp) in zip(rungs, configs):
    t0 = time.time()
    recids, recid_path, _ = load_or_assign_recids(ds, rc, runs_dir="runs", progress=False)
    run = run_generator(ds, recids, gc, lp, runs_dir="runs")
    runs[rung.name] = run
    lists = top_k_lists({rung.name: run}, ds, k=10, beam_width=gc.train.beam_width)[rung.name]
    st = recids.stats
    out["rungs"][rung.name] = {
        "rq_weight": rc.rq_weight, "recid_run": Path(recid_path).name,
        "generator_run": Path(run.checkpoint).name, "resumed": run.fit.resumed_from > 0,
        **{k: st.get(k) for k in ("val_recall@10", "unique_semantic_frac", "max_group_size", "total_sec")},
        "val_recall@10_generator": run.fit.best_score, "best_epoch": run.fit.best_epoch,
        "test": run.test.mean(), "coverage@10": list_diagnostics(lists, ds)["coverage"],
        "generator_seconds": run.train_seconds, "wall_seconds": time.time() - t0}
    if rung.name != "paper":
        out["rungs"][rung.name].update({f"p_{m}_vs_paper": paired_test(runs["paper"].test, run.test, m)["p_wilcoxon"]
                                        for m in ("ndcg@10", "recall@10")})
    out_path.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(rung.name, json.dumps(out["rungs"][rung.name], default=float), flush=True)
