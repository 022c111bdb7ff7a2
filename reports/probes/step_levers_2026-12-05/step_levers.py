"""Issue 10: what is left to win in an alternating Graph RQ-VAE step at the paper size (35.6k users x 18.4k items,
the bench's synthetic dataset), and at what price in float rounding.

Usage, from the repository root, after ``eval "$(.venv/bin/mmgrec env)"`` (each variant runs in its own process, because the kernel settings are read at a
library's first call; variants interleave, REPEATS rounds):

    .venv/bin/python reports/probes/step_levers_2026-12-05/step_levers.py [THREADS] [REPEATS]

Per variant: milliseconds per alternating step (BPR step + RQ-VAE step, schedule "alternate", k = 1, default
config) over 30 steps after 10 warm-up steps, and a SHA-256 of the model's tensors after those 40 steps (equal
hash = the same run bit for bit). Variants:

* ``base``: the code as it is (the entry points' AVX2 kernels: ``mmgrec env``);
* ``fused_adam``: ``torch.optim.Adam(fused=True)`` instead of the ``foreach`` kernels;
* ``fused_layer``: eq. 5's first layer as one product ``x [W2; W1]^T`` split in two (instead of two products);
* ``fused_both``: both;
* ``aten_avx512``: torch's own element-wise kernels at AVX-512 (``ATEN_CPU_CAPABILITY=avx512``), MKL and oneDNN
  still pinned to AVX2;
* ``onednn_all``: oneDNN unpinned (``ONEDNN_MAX_CPU_ISA=ALL``);
* ``mkl_avx512``: MKL's AVX-512 branch (``MKL_CBWR=AVX512``), the rest pinned;
* ``hugepages``: glibc's malloc on transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``).

Also printed: the share of nodes the BPR step's last layer reaches through one and two hops (how much of the
first layer a batch really needs), and whether fused Adam equals the foreach Adam on tests/test_optim.py's inputs.
"""
import json
import os
import subprocess
import sys
import time

VARIANTS = {"base": {}, "fused_adam": {}, "fused_layer": {}, "fused_both": {},
            "aten_avx512": {"ATEN_CPU_CAPABILITY": "avx512"}, "onednn_all": {"ONEDNN_MAX_CPU_ISA": "ALL"},
            "mkl_avx512": {"MKL_CBWR": "AVX512"}, "hugepages": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}}


def child(variant: str, threads: int) -> None:
    import torch
    import torch.nn.functional as F
    from mmgrec_lib.experiments.throughput import PAPER_SCALE, bench_dataset
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.tokenizer import graph_rqvae as G
    from mmgrec_lib.training.loop import cpu_threads

    if variant in ("fused_adam", "fused_both"):
        def adam(params, lr, weight_decay=0.0, decoupled=False):
            cls = torch.optim.AdamW if decoupled else torch.optim.Adam
            return cls(params, lr=lr, weight_decay=weight_decay, fused=True)
        G.adam = adam
    if variant in ("fused_layer", "fused_both"):
        plain = G.MeanSAGEConv._eq5

        def eq5(self, x, mean, root):
            if isinstance(self.in_channels, int) and self.in_channels > self.out_channels and root is x:
                p, r = F.linear(x, torch.cat([self.lin_l.weight, self.lin_r.weight])).split(self.out_channels, 1)
                return mean(p) + self.lin_l.bias + r                            # W2 mean(x) + b + W1 x
            return plain(self, x, mean, root)
        G.MeanSAGEConv._eq5 = eq5

    ds = bench_dataset(**PAPER_SCALE)
    tr = G._Trainer(ds, GraphRQVAEConfig(epochs=1, seed=0, device="cpu"), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    with cpu_threads(threads):
        tr.model.train()
        it = tr._triples(gen)
        steps = [next(it) for _ in range(40)]
        for b, (u, i, j) in enumerate(steps[:10]):
            tr._alternate_step(u, i, j, gen, b)
        t0 = time.perf_counter()
        for b, (u, i, j) in enumerate(steps[10:], start=10):
            tr._alternate_step(u, i, j, gen, b)
        ms = (time.perf_counter() - t0) / 30 * 1000
    from e2e_hashes import digest                                     # this folder's state hash
    print(json.dumps({"variant": variant, "ms_per_step": round(ms, 1), "hash": digest(tr.model)}), flush=True)


def reach() -> dict:
    import torch
    from mmgrec_lib.experiments.throughput import PAPER_SCALE, bench_dataset
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.tokenizer.graph_rqvae import _Trainer

    from mmgrec_lib.data.sparse import csr_rows

    ds = bench_dataset(**PAPER_SCALE)
    tr = _Trainer(ds, GraphRQVAEConfig(epochs=1), torch.device("cpu"))

    def hop(rows):                                                    # rows and their neighbours, sorted
        return torch.unique(torch.cat([rows, csr_rows(tr.adj, rows).col_indices()]))
    u, i, j = next(tr._triples(torch.Generator().manual_seed(0)))
    nodes = torch.unique(torch.cat([u, i + ds.n_users, j + ds.n_users]))
    one = hop(nodes)
    return {"nodes": tr.adj.shape[0], "batch_nodes": nodes.numel(), "one_hop": one.numel(), "two_hops": hop(one).numel()}


def fused_adam_equal() -> dict:
    import torch
    sys.path.insert(0, "tests")
    from test_optim import _train
    out = {}
    for name, kw in {"adam": {}, "adam_l2": {"weight_decay": 1e-2}}.items():
        a = _train(lambda g: torch.optim.Adam(g, lr=1e-3, fused=True, **kw), steps=40)
        b = _train(lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True, **kw), steps=40)
        out[name] = f"{sum(not torch.equal(x, y) for x, y in zip(a, b))} of {len(a)} tensors differ"
    return out


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        sys.exit()
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if os.environ.get("MKL_CBWR") != "AVX2":
        sys.exit('run it after: eval "$(.venv/bin/mmgrec env)"  (the entry points\' kernel and allocator settings)')
    base_env = dict(os.environ, TQDM_DISABLE="1")
    rows = []
    for r in range(repeats):
        for name, extra in VARIANTS.items():
            res = subprocess.run([sys.executable, __file__, "--child", name, str(threads)], env={**base_env, **extra},
                                 capture_output=True, text=True)
            line = [x for x in res.stdout.splitlines() if x.startswith("{")]
            row = json.loads(line[-1]) if line else {"variant": name, "error": res.stderr[-500:]}
            rows.append({"round": r, "threads": threads, **row})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"reach": reach(), "fused_adam_vs_foreach": fused_adam_equal()}), flush=True)
