"""Codebook size L = 128 against 256 for ml100k's MMGRec as notebook 03 trains it (rung distill_lgc_w3 under the
training budget MMGREC_BUDGET, fine-tuned item embeddings, 28 epochs), per split seed; one thread per run.

usage: probe_L.py SEED L [RUNS_DIR]   (writes result_L<L>_seed<SEED>.json beside this file)
From the repository root, with MMGREC_DATA set (the script pins the portable kernels itself).
"""
import dataclasses
import json
import sys
import time
from pathlib import Path

from mmgrec_lib.numerics import portable_numerics

portable_numerics()
import torch  # noqa: E402
import yaml  # noqa: E402

from mmgrec_lib.data import load_dataset  # noqa: E402
from mmgrec_lib.experiments import (Rung, load_or_assign_recids, profile_bases, run_generator, rung_configs,  # noqa: E402
                                    with_budget)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def main(seed: int, size: int, runs_dir: str) -> None:
    torch.set_num_threads(1)
    prof = yaml.safe_load((REPO / "notebooks" / "03_generator_training.yaml").read_text())["full"][0]
    assert prof["DATASET"] == "ml100k"
    ds = load_dataset("ml100k", seed=seed)
    rc, cfg, lp = rung_configs(*profile_bases({**prof, "CODEBOOK_SIZE": size}),
                               with_budget(Rung.from_dict(prof["MMGREC_RUNG"]), prof["MMGREC_BUDGET"]))[-1]
    rc, cfg = dataclasses.replace(rc, seed=seed), cfg.replace(seed=seed)       # split seed = Rec-ID and training seed
    t0 = time.perf_counter()
    recids, recid_path, reused = load_or_assign_recids(ds, rc, runs_dir=runs_dir, progress=False)
    run = run_generator(ds, recids, cfg, lp, runs_dir=runs_dir)
    out = {"seed": seed, "codebook_size": size, "recid_key": Path(recid_path).stem, "recid_reused": reused,
           "unique_semantic_frac": recids.stats.get("unique_semantic_frac"),
           "key": Path(run.checkpoint).stem if getattr(run, "checkpoint", None) else None,
           "val_recall@10": run.fit.best_score, "best_epoch": run.fit.best_epoch, "epochs_run": len(run.fit.history),
           "train_seconds": run.train_seconds, "wall_seconds": time.perf_counter() - t0,
           "test": {k: float(v) for k, v in run.test.mean().items()},
           "per_user": {k: [float(x) for x in run.test.per_user[k]] for k in ("recall@10", "ndcg@10")}}
    (HERE / f"result_L{size}_seed{seed}.json").write_text(json.dumps(out) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "per_user"}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else str(REPO / "runs"))
