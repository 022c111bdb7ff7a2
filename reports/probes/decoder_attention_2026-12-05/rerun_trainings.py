"""Retrain two-thread ml100k generator runs of notebook 03's configuration (``distill_lgc_w3``, ``cpu_threads`` 2)
with this session's decoder layer, into a scratch runs folder, and compare each with session 37's rerun of the
same split seed (``../generator_step_2026-12-05/result_rerun_seed<N>.json``): epochs, best epoch, validation and
test metrics must be equal bit for bit, and the last and best weights equal those of the run file of the same key
in ``runs/``; the seconds are new. The retraining and the comparison are that probe's (``rerun``).

Usage, from the repository root, with ``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set, quiet machine:
    python reports/probes/decoder_attention_2026-12-05/rerun_trainings.py SCRATCH_DIR SEED...
Writes ``result_rerun_seed<N>.json`` here."""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EARLIER = HERE.parent / "generator_step_2026-12-05"
sys.path.insert(0, str(EARLIER))
from rerun_trainings import rerun  # noqa: E402

scratch = Path(sys.argv[1])
scratch.mkdir(parents=True, exist_ok=True)
for seed in (int(s) for s in sys.argv[2:]):
    rerun(seed, scratch, json.loads((EARLIER / f"result_rerun_seed{seed}.json").read_text()), HERE)
