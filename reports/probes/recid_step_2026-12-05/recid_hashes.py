"""End-to-end hashes of short Graph RQ-VAE trainings, to show that session 36's step changes leave Rec-ID runs bit
for bit as they were.

Usage, from the repository root (or a worktree at another commit: put it first on ``PYTHONPATH``), with
``eval "$(.venv/bin/mmgrec env)"`` and ``MMGREC_DATA`` set:

    python reports/probes/recid_step_2026-12-05/recid_hashes.py THREADS > hashes.json

Split seed 0. ml100k: the alternating schedule with eq. 5's encoder (3 epochs, then 5 RQ-only epochs, L = 128),
the same with the LightGCN-style encoder, and the two-stage schedule (3 BPR epochs, 5 RQ-VAE epochs). TikTok: the
alternating schedule (2 epochs, 5 RQ-only epochs, L = 256; its items lack some modalities, so the feature mask
matters). Each entry: the SHA-256 (16 hex digits) of the semantic IDs, item and user representations, the model's
state and the training history (losses, validation metrics; times left out)."""
import hashlib
import json
import sys

import torch

from mmgrec_lib.data import load_dataset
from mmgrec_lib.tokenizer import GraphRQVAEConfig, assign_recids
from mmgrec_lib.training.loop import cpu_threads

CASES = {
    "ml100k_alternate_sage": ("ml100k", dict(epochs=3, rq_epochs=5, codebook_size=128)),
    "ml100k_alternate_lightgcn": ("ml100k", dict(epochs=3, rq_epochs=5, codebook_size=128, encoder="lightgcn")),
    "ml100k_two_stage_sage": ("ml100k", dict(epochs=3, rq_epochs=5, codebook_size=128, schedule="two_stage")),
    "tiktok_alternate_sage": ("tiktok", dict(epochs=2, rq_epochs=5, codebook_size=256)),
}


def run_hash(run) -> str:
    h = hashlib.sha256()
    tensors = [run.semantic, run.item_emb, run.user_emb] + [v for v in (run.model_state or {}).values() if torch.is_tensor(v)]
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    for row in run.history:
        h.update(json.dumps({k: v for k, v in row.items() if not k.endswith("_s")}, sort_keys=True,
                            default=str).encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    out, data = {"threads": threads}, {}
    with cpu_threads(threads):
        for name, (dataset, fields) in CASES.items():
            if dataset not in data:
                data[dataset] = load_dataset(dataset, seed=0)
            run = assign_recids(data[dataset], GraphRQVAEConfig(seed=0, device="cpu", **fields), progress=False)
            out[name] = run_hash(run)
            print(name, out[name], file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
