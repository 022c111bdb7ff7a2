"""Issue 10, "a single ml100k generator training in at most 10 minutes": what a lower epoch cap or a shorter
patience would have cost the ml100k generator runs already trained, read from their validation curves (no training).

Usage, from the repository root: ``.venv/bin/python reports/probes/epoch_cap_2026-12-05/epoch_cap.py [RUNS_DIR]``
(default ``runs``). Writes ``result_epoch_cap.csv`` next to this file and prints it.

For every finished ml100k generator run in the runs folder (``generator_ml100k_*.pt``; their checkpoints keep
the per-epoch history), with a constant learning rate (so that a cap changes nothing before it): the validation
Recall@10 the run selected (its best) against the best it would have selected under an epoch cap C (the
validations at epochs <= C) or under early stopping with patience P validations (the run's own cap). A run
whose best epoch is <= C trains the same epochs up to C and selects the same weights, so its test metrics are
unchanged too; the others lose the difference printed here on validation (their test metrics under the cap
are not known without retraining).
"""
import glob
import sys
from pathlib import Path

import pandas as pd
import torch

from mmgrec_lib.experiments.ledger import RunLedger

CAPS = (24, 26, 28, 30)
PATIENCES = (3, 4)


def selected(val, cap=None, patience=None):
    """(best value, best epoch, last epoch trained) of early stopping over ``val`` [(epoch, value)], ties to the
    earlier epoch, as ``training.fit`` does."""
    best, best_epoch, bad, last = float("-inf"), 0, 0, 0
    for epoch, value in val:
        if cap and epoch > cap:
            break
        last = epoch
        if value > best:
            best, best_epoch, bad = value, epoch, 0
        else:
            bad += 1
            if patience and bad >= patience:
                break
    return best, best_epoch, last


def ledger_names(path: str = "reports/ledgers/seed_runs_ml100k.jsonl") -> dict[str, str]:
    """Run key -> what the seed-run ledger says the run is (an ablation variant, or the model of a plain run)."""
    return {r["key"]: r.get("variant") or r.get("model", "") for r in RunLedger(path).rows()}


def main(runs_dir: str = "runs") -> pd.DataFrame:
    rows, names = [], ledger_names()
    for path in sorted(glob.glob(f"{runs_dir}/generator_ml100k_*.pt")):
        if path.endswith(".decode.pt"):
            continue
        ck = torch.load(path, map_location="cpu", weights_only=False)
        history = ck["history"]
        val = [(r["epoch"], r["recall@10"]) for r in history if "recall@10" in r]
        if not val or not ck.get("finished") or len({r.get("lr") for r in history}) != 1:
            continue
        best, best_epoch, last = selected(val)
        seconds = sum(ck["epoch_seconds"]) / len(ck["epoch_seconds"])
        row = {"key": Path(path).stem, "ledger": names.get(Path(path).stem, ""), "eval_every": val[1][0] - val[0][0] if len(val) > 1 else None,
               "epochs_run": last, "best_epoch": best_epoch, "val_recall@10": round(best, 4),
               "s_per_epoch": round(seconds, 1)}
        for c in CAPS:
            b, e, _ = selected(val, cap=c)
            row[f"cap{c}_loss"] = round(best - b, 4)
        for p in PATIENCES:
            b, e, stop = selected(val, patience=p)
            row[f"patience{p}_loss"], row[f"patience{p}_stop"] = round(best - b, 4), stop
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    df = main(*sys.argv[1:])
    df.to_csv(Path(__file__).with_name("result_epoch_cap.csv"), index=False)
    pd.set_option("display.width", 250)
    print(df.to_string(index=False))
    loss_cols = [c for c in df.columns if c.endswith("_loss")]
    print(pd.DataFrame({"runs changed": (df[loss_cols] > 0).sum(), "mean loss": df[loss_cols].mean().round(4),
                        "max loss": df[loss_cols].max()}).to_string())
