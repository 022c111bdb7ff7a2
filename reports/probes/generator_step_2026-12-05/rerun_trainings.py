"""Retrain the three two-thread ml100k generator runs of ``../generator_two_threads_2026-12-05`` (notebook 03's
configuration ``distill_lgc_w3``, ``cpu_threads`` 2, split seeds 0-2) with this session's code, into a scratch runs
folder, and compare them with that probe's last rerun (``result_ml100k_w3_threads2_nofill_seed<N>.json``, the
code before this session's change): validation curve, best epoch and test metrics must be equal bit for bit, and
the last and best weights equal those of the run file of the same key in ``runs/`` where it is there; the seconds
are new. The training itself is that probe's (``rerun_nofill.retrain``).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set, quiet machine:
    python reports/probes/generator_step_2026-12-05/rerun_trainings.py SCRATCH_DIR SEED...
Writes ``result_rerun_seed<N>.json`` here."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generator_two_threads_2026-12-05"))
from rerun_nofill import retrain, same_run  # noqa: E402  (that probe's training of the same runs; sets the kernels)

import torch  # noqa: E402


def rerun(seed: int, scratch: Path, before: dict, out_dir: Path) -> dict:
    """Retrain split seed ``seed`` into ``scratch``, compare it with ``before`` (a result file's dict) and with the
    run file of the same key in ``runs/``, and write ``out_dir / result_rerun_seed<N>.json``. Later probes call it
    with their own baseline and folder."""
    run, wall, reused = retrain(seed, scratch)
    new_file = sorted((p for p in scratch.glob("generator_ml100k_*.pt") if ".decode" not in p.name),
                      key=lambda p: p.stat().st_mtime)[-1]
    old_file = Path("runs") / new_file.name
    weights_equal = None
    if old_file.exists():
        a, b = (torch.load(f, map_location="cpu", weights_only=False) for f in (new_file, old_file))
        weights_equal = all(a[w].keys() == b[w].keys() and all(torch.equal(a[w][k], b[w][k]) for k in a[w])
                            for w in ("model", "best_model"))         # last and best weights
    out = {"seed": seed, "key": new_file.stem, "recids_reused": reused, "train_seconds": run.train_seconds,
           "wall_seconds": wall, "train_seconds_before": before["train_seconds"],
           "epochs_run": len(run.fit.history), "best_epoch": run.fit.best_epoch, "val_recall@10": run.fit.best_score,
           "test": run.test.mean(), "same_as_before_bit_for_bit": same_run(run, before),
           "weights_equal_to_runs_file": weights_equal}
    print(json.dumps(out, default=float), flush=True)
    (out_dir / f"result_rerun_seed{seed}.json").write_text(json.dumps(out, default=float, indent=1) + "\n")
    return out


if __name__ == "__main__":
    scratch, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]
    scratch.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    earlier = here.parent / "generator_two_threads_2026-12-05"
    for seed in seeds:
        rerun(seed, scratch, json.loads((earlier / f"result_ml100k_w3_threads2_nofill_seed{seed}.json").read_text()),
              here)
