"""Step 2 of the old-code check: train the first two epochs of split seed 1's run with the code of commit cbcfe7b
(the commit the seed-run ledger names for generator_ml100k_2cee44d65f), one thread, on the Rec-ID run of the runs
cache (linked into /tmp/oldruns, which the old code reads and would write), and print the epoch losses, the run
keys it computes and the config fields the old code does not have (all at their defaults). Usage:
    git worktree add --detach /tmp/wt_cbc cbcfe7b; mkdir -p /tmp/oldruns
    ln -s $PWD/runs/recid_ml100k_L128_c6542c8db8.* /tmp/oldruns/
    eval "$(.venv/bin/mmgrec env)"; (cd /tmp/wt_cbc && PYTHONPATH=/tmp/wt_cbc python <this file>)"""
import json, dataclasses, torch
from mmgrec_lib.data import load_dataset
from mmgrec_lib.tokenizer import GraphRQVAEConfig
from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
from mmgrec_lib.training.loop import LoopConfig
from mmgrec_lib.experiments.runs import load_or_assign_recids, generator_run_path, recid_run_path
from mmgrec_lib.generator.training import train_generator
torch.set_num_threads(1)
cfg = json.load(open("/tmp/prof/cfg.json"))
def build(cls, d, **over):
    names = {f.name for f in dataclasses.fields(cls)}
    dropped = {k: v for k, v in d.items() if k not in names}
    print(cls.__name__, "fields not in old code:", dropped)
    kw = {k: v for k, v in d.items() if k in names}
    kw.update(over)
    if "val_ks" in kw: kw["val_ks"] = tuple(kw["val_ks"])
    return cls(**kw)
seed = 1
rc = build(GraphRQVAEConfig, cfg["recid"], seed=seed)
gc = GeneratorConfig(model=build(ModelConfig, cfg["gen"]["model"]), train=build(TrainConfig, cfg["gen"]["train"], seed=seed))
lp = build(LoopConfig, cfg["loop"])
ds = load_dataset("ml100k", seed=seed)
print("recid path", recid_run_path("/tmp/oldruns", ds, rc).name)
rec, path, reused = load_or_assign_recids(ds, rc, runs_dir="/tmp/oldruns", progress=False)
print("recids reused", reused, path.name)
print("generator path", generator_run_path("/tmp/oldruns", ds, (rec.config if isinstance(rec.config, dict) else rec.config.to_dict()), gc, lp).name)
lp2 = dataclasses.replace(lp, epochs=2, eval_every=100, patience=0, checkpoint=None)
model, res = train_generator(ds, rec.table, rec.user_emb, rec.item_emb, gc, lp2)
print(json.dumps([{k: v for k, v in r.items() if k in ("epoch", "loss")} for r in res.history]))
