"""Probe (issue 10): a per-user sample cap (``user_sample_cap``) on top of the bounded cosine schedule of
``reports/probes/cosine_schedule_2026-12-06`` (``w3_cosine28``), on ml100k's chosen rung, against the chosen rung
(``distill_lgc_w3``) and ``w3_cosine28`` on the same Rec-ID runs. The cap keeps a heavy user's training groups (8
held-out targets each) until their targets reach ``c`` each epoch, a fresh draw every epoch: with ``c = 64`` an
ml100k epoch holds about 54% of the 80k training targets (48: 45%), so an epoch costs about half.

Usage, from the repository root, with ``MMGREC_DATA`` set (the cosine probe's script pins the portable kernels):
    python reports/probes/user_cap_2026-12-06/probe_cap.py RUNG SEED               # one thread, runs/
    python reports/probes/user_cap_2026-12-06/probe_cap.py RUNG SEED SCRATCH       # two threads, alone, into SCRATCH
RUNG: a name of ``VARIANTS`` below, or one of the cosine probe's (``distill_lgc_w3``, ``w3_cosine28``: their
result files are written here too, the same runs by key). One thread, as the cosine probe's runs; with SCRATCH, one
whole training on two threads into that runs folder (the cosine probe's ``time_two_threads.py``: the time a user
waits), on a quiet machine."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cosine_schedule_2026-12-06"))
import probe_rung  # noqa: E402  (notebook 09's seed-run configs, one thread, the portable kernels)
import time_two_threads  # noqa: E402

COSINE28 = probe_rung.VARIANTS["w3_cosine28"]          # lr 2e-3, cosine over 28 epochs, 28 at most
VARIANTS = {
    "w3_cos28_cap64": {**COSINE28, "user_sample_cap": 64},
    "w3_cos28_cap48": {**COSINE28, "user_sample_cap": 48},
    "w3_cos40_cap64": {**COSINE28, "user_sample_cap": 64, "schedule_epochs": 40, "epochs": 40},
}
probe_rung.VARIANTS.update(VARIANTS)

if __name__ == "__main__":
    if len(sys.argv) > 3:
        time_two_threads.main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), out_dir=Path(__file__).parent)
    else:
        probe_rung.main(sys.argv[1], int(sys.argv[2]), out_dir=Path(__file__).parent)
