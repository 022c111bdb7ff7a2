"""The efficiency benchmark (notebook 07, ``mmgrec bench decode``): correct lists from every method, the
expected table, the crossover and claim arithmetic, and the CLI. No wall-time assertions."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from _fixtures import make_tiny_dataset
from mmgrec_lib import cli
from mmgrec_lib.experiments import efficiency as eff
from mmgrec_lib.generator import MMGRecGenerator, ModelConfig
from mmgrec_lib.generator.decoding import beam_search
from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate

faiss = pytest.importorskip("faiss")
TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2, dim_feedforward=32, max_len=8)


def _dense_top_k(user_vecs, item_vecs, history, users, k):
    scores = user_vecs[users] @ item_vecs.T
    scores[torch.from_numpy(history[users.numpy()].toarray() > 0)] = float("-inf")
    top = scores.topk(k, dim=1)
    return top.indices.masked_fill(torch.isneginf(top.values), -1)


@pytest.mark.parametrize("chunk_elems", [1, 37, 1 << 22])
def test_exact_inner_product_equals_dense_top_k(chunk_elems):
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(12, 8, generator=g), torch.randn(300, 8, generator=g)
    history = eff.random_history(12, 300, 25, seed=1)
    users = torch.tensor([0, 3, 5, 11])
    got = eff.ExactInnerProduct(U, V, history, chunk_elems)(users, 10)
    assert torch.equal(got, _dense_top_k(U, V, history, users, 10))
    # a user with fewer allowed items than k gets -1 pads
    full = sp.csr_matrix(np.ones((1, 300)))
    full[0, [4, 9]] = 0
    full.eliminate_zeros()
    out = eff.ExactInnerProduct(U[:1], V, full, 64)(torch.tensor([0]), 5)
    assert sorted(out[0, :2].tolist()) == [4, 9] and (out[0, 2:] == -1).all()


def test_exact_inner_product_holds_nothing_of_size_batch_times_catalogue():
    from torch.utils._python_dispatch import TorchDispatchMode

    g = torch.Generator().manual_seed(0)
    B, n = 32, 20_000
    U, V = torch.randn(B, 8, generator=g), torch.randn(n, 8, generator=g)
    search = eff.ExactInnerProduct(U, V, eff.random_history(B, n, 10), chunk_elems=1 << 14)
    largest = [0]

    class Largest(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor) and t is not V:
                    largest[0] = max(largest[0], t.numel())
            return out

    with Largest():
        search(torch.arange(B), 10)
    assert largest[0] <= 1 << 14                                   # one chunk of scores, never (B, n)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_faiss_search_drops_training_items(kind):
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(20, 8, generator=g), torch.randn(500, 8, generator=g)
    history = eff.random_history(20, 500, 30, seed=2)
    users = torch.arange(20)
    exact = eff.ExactInnerProduct(U, V, history)(users, 10)
    index, build = eff.build_faiss(V, kind, nprobe=4)
    search = eff.FaissSearch(index, U, history)
    found = search(users, 10)
    assert found.shape == (20, 10) and build >= 0
    hist = history.tocsr()
    for u in range(20):
        assert not set(found[u].tolist()) & set(hist.indices[hist.indptr[u]:hist.indptr[u + 1]].tolist())
    if kind == "flat":
        assert torch.equal(found, exact)
        assert eff.faiss_params(kind, index) == ""
    else:                                                          # tuning reaches the target recall
        recall = eff.tune_faiss(kind, index, search, users, exact, 10, 0.95)
        assert recall >= 0.95 and eff.recall_against(search(users, 10), exact) == recall
        assert eff.faiss_params(kind, index)


def test_subset_catalogue_keeps_the_weights_and_restricts_the_catalogue():
    ds = make_tiny_dataset(n_users=20, n_items=60)
    rng = np.random.default_rng(0)
    table = RecIDTable(disambiguate(rng.integers(0, 4, (ds.n_items, 2)), ds.item_popularity()))
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(ds.n_users, 8, generator=g), torch.randn(ds.n_items, 8, generator=g)
    model = MMGRecGenerator(table, U, V, ds.train, TINY, finetune_item_emb=True).eval()
    users = torch.arange(ds.n_users)
    whole = eff.subset_catalogue(model, np.arange(ds.n_items)[::-1], U, V, ds.train, "tiny", 1.0)
    assert torch.equal(beam_search(whole.model, users, 5, 8)[0], beam_search(model, users, 5, 8)[0])
    items = np.sort(rng.choice(ds.n_items, 25, replace=False))
    part = eff.subset_catalogue(model, items, U, V, ds.train, "tiny", 25 / 60)
    assert part.n_items == 25 and part.model.n_items == 25 and part.trie_build_s >= 0
    assert torch.equal(part.model.codes, model.codes[torch.from_numpy(items)])
    assert torch.equal(part.item_vecs, V[torch.from_numpy(items)])
    found = beam_search(part.model, users, 5, 8)[0]
    hist = sp.csr_matrix(ds.train)[:, items]
    for u in range(ds.n_users):
        assert not set(found[u].tolist()) & set(hist[u].indices.tolist())


def test_bench_catalogue_returns_the_expected_table():
    cat = eff.synthetic_catalogue(400, TINY, codebook_size=8, levels=2, dim=8, n_users=12, history_len=5)
    assert cat.n_items == 400 and cat.model.n_items == 400 and cat.info["vectors"] == "standard normal"
    df = eff.bench_catalogue(cat, torch.arange(12), torch.arange(2), k=5, beams=(5, 8), reps=2, peak=False)
    assert list(df.columns) == list(eff.COLUMNS)
    assert len(df) == 2 * 2 + 2 + 2 * 2                              # beams x batches, exact, faiss flat + ivf
    assert set(df["family"]) == {"mmgrec beam", "exact matmul", "faiss flat", "faiss ivf"}
    assert set(df["batch"]) == {1, 12} and (df["reps"] == 2).all() and (df["n_items"] == 400).all()
    assert (df["ms_per_user"] > 0).all() and (df["ms_per_user_min"] <= df["ms_per_user_max"]).all()
    assert (df["structure_mb"] > 0).all() and df["peak_mb"].isna().all()
    big = df[df["batch"] == 12].set_index("family")["recall@10"]
    assert big["exact matmul"] == 1.0 and big["faiss flat"] == 1.0 and big["faiss ivf"] >= 0.9
    assert df[df["family"] == "mmgrec beam"]["recall@10"].isna().all()
    wide = eff.wide_table(df)
    assert len(wide) == 1 and "beam 8, batch 12" in wide and "trie_build_s" in wide
    mem = eff.memory_table(df)
    assert {"mmgrec beam structure_mb", "peak_mb beam 8", "faiss ivf recall@10", "trie_nodes"} <= set(mem)


def test_synthetic_vectors_follow_the_given_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    like = torch.randn(2000, 4, generator=g) * torch.tensor([5.0, 1.0, 0.5, 0.1]) + 3
    x = eff.gaussian_like(20_000, like, 99, g)
    assert x.shape == (20_000, 4)
    torch.testing.assert_close(x.mean(0), like.mean(0), atol=0.1, rtol=0)
    torch.testing.assert_close(x.std(0), like.std(0), atol=0.1, rtol=0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc (Linux)")
def test_peak_call_memory_sees_a_large_allocation():
    def allocate(n):
        t = torch.ones(n)                                              # n float32, touched
        return float(t.sum())

    big = eff.peak_call_mb(allocate, 12 * 2**20)                       # 48 MiB
    small = eff.peak_call_mb(allocate, 1000)
    assert 40 < big < 120 and small < 8


def _table(sizes, curves):
    rows = []
    for method, values in curves.items():
        for n, v in zip(sizes, values):
            batch = int(method.rsplit(" ", 1)[1])
            rows.append({"catalogue": "x", "n_items": n, "method": method, "family": method.split(",")[0],
                         "batch": batch, "ms_per_user": v, "recall@10": 0.95 if "ivf" in method else np.nan})
    return pd.DataFrame(rows)


def test_crossover_interpolates_in_log_log_and_names_the_cases():
    sizes = [1_000, 10_000, 100_000]
    df = _table(sizes, {"beam 20, batch 256": [2, 2, 2], "exact matmul, batch 256": [0.1, 1, 10],
                        "faiss flat, batch 256": [0.1, 0.2, 0.4], "faiss ivf, batch 256": [0.01, 0.01, 0.02],
                        "weird, batch 256": [1, 3, 1]})
    c = eff.crossover(df, "beam 20, batch 256", "exact matmul, batch 256")
    assert c["status"] == "crosses" and c["n_items"] == pytest.approx(20_000, rel=1e-6)   # 2 = n / 10^4
    assert eff.crossover(df, "beam 20, batch 256", "faiss flat, batch 256") == {"status": "never"}
    assert eff.crossover(df, "faiss ivf, batch 256", "beam 20, batch 256") == {"status": "always"}
    assert eff.crossover(df, "beam 20, batch 256", "weird, batch 256")["status"] == "mixed"
    lines = eff.efficiency_reading(df.drop(df.index[df["method"] == "weird, batch 256"]), 256, beam=20)
    text = "\n".join(lines)
    assert "cheaper from about 20,000 items on" in text
    assert "faiss ivf is cheaper than every beam search at batch 256 at every size measured" in text
    claims = eff.claim_checks(df, 256, 20, 1_000, 100_000)
    assert claims["holds"].tolist() == [True, True] and claims["value"].tolist() == pytest.approx([1.0, 5.0])
    cross = eff.crossover_table(df.drop(df.index[df["method"] == "weird, batch 256"]), beams=(20,))
    assert set(cross["against"]) == {"exact matmul", "faiss flat", "faiss ivf"}
    assert cross.set_index("against").loc["exact matmul", "crossover_items"] == 20_000


def test_cli_bench_decode_prints_the_tables(capsys, tmp_path):
    out = tmp_path / "bench.csv"
    code = cli.main(["bench", "decode", "--sizes", "300,600", "--batch", "6", "--single", "1", "--reps", "1",
                     "--beams", "10", "--codebook-size", "8", "--levels", "2", "--d-model", "16", "--layers", "1",
                     "--no-peak", "--csv", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "ms per user" in text and "beam 10, batch 6" in text and "exact matmul, batch 1" in text
    assert "threads" in text and "recall@10" in text
    df = pd.read_csv(out)
    assert list(df.columns) == list(eff.COLUMNS) and sorted(df["n_items"].unique()) == [300, 600]
    assert cli.main(["bench", "decode", "--sizes", "ten"]) == 2
    assert cli.main(["bench", "decode", "--beams", "5"]) == 2                   # beam narrower than k = 10
    assert "mmgrec bench decode" in capsys.readouterr().err


def test_efficiency_figure_is_labelled_with_legend_outside():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from _figure_checks import assert_labelled, assert_legends_outside
    from mmgrec_lib.reporting.efficiency_plots import efficiency_figure

    sizes = [1_000, 10_000]
    df = _table(sizes, {"beam 20, batch 256": [2, 2], "exact matmul, batch 256": [0.1, 1],
                        "beam 20, batch 1": [10, 10], "exact matmul, batch 1": [0.5, 5]})
    df["family"] = df["family"].str.replace("beam 20", "mmgrec beam")
    df["beam"] = np.where(df["family"] == "mmgrec beam", 20, np.nan)
    df["structure_mb"], df["peak_mb"] = 1.0, 0.5
    fig = efficiency_figure({"(a) real": df, "(b) synthetic": df}, dataset="tiktok")
    assert_labelled(fig, "tiktok")
    assert_legends_outside(fig)
    assert len(fig.axes) == 4
    plt.close(fig)


def test_median_over_sweeps_and_per_sweep_claims():
    import pandas as pd

    from mmgrec_lib.experiments import efficiency as eff

    def sweep(beam_small, beam_large, exact_large):
        rows = []
        for n, b, e in ((1000, beam_small, 0.01), (1_000_000, beam_large, exact_large)):
            for method, v in (("beam 20, batch 256", b), ("exact matmul, batch 256", e)):
                row = {c: float("nan") for c in eff.COLUMNS}
                row.update(catalogue="synthetic", n_items=n, method=method, ms_per_user=v, ms_per_user_min=v * 0.9,
                           ms_per_user_max=v * 1.1)
                rows.append(row)
        return pd.DataFrame(rows, columns=list(eff.COLUMNS))

    sweeps = [sweep(1.0, 1.4, 4.0), sweep(1.0, 1.0, 4.0), sweep(1.0, 1.1, 4.0)]
    med = eff.median_over_sweeps(sweeps)
    large = med[(med["n_items"] == 1_000_000) & (med["method"] == "beam 20, batch 256")].iloc[0]
    assert large["ms_per_user"] == pytest.approx(1.1) and large["sweeps"] == 3
    assert large["ms_per_user_min"] == pytest.approx(0.9) and large["ms_per_user_max"] == pytest.approx(1.54)
    claims = eff.claim_checks(med, 256, 20, 1000, 1_000_000, sweeps=sweeps)
    assert claims.loc[0, "value"] == pytest.approx(1.1) and bool(claims.loc[0, "holds"])
    assert claims.loc[0, "per_sweep"] == "1.40, 1.00, 1.10"
    with pytest.raises(ValueError, match="no sweeps"):
        eff.median_over_sweeps([])
