"""The zoo's ordering against the paper's Table 2: relative differences to LightGCN and inversion flags."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mmgrec_lib.experiments.zoo import ORDER_COLUMNS, PAPER_TABLE2, paper_number, paper_ordering


def test_paper_numbers_are_the_quoted_table():
    assert paper_number("lightgcn", "tiktok", "recall@10") == 0.0988
    assert paper_number("lightgt", "ml100k", "ndcg@10") == 0.1771
    assert math.isnan(paper_number("mf", "tiktok", "recall@10"))             # not in the paper
    assert math.isnan(paper_number("lightgcn", "amazon-baby", "recall@10"))  # no paper column
    with pytest.raises(ValueError, match="recall@10 and ndcg@10"):
        paper_number("lightgcn", "tiktok", "recall@20")
    for cols in PAPER_TABLE2.values():                                       # R@10 >= N@10 on every dataset
        assert all(r >= n > 0 for r, n in cols.values())


def test_paper_ordering_flags_inversions_and_agreement():
    zoo = pd.DataFrame([{"model": "lightgcn", "recall@10": 0.10, "ndcg@10": 0.05},
                        {"model": "lightgt", "recall@10": 0.08, "ndcg@10": 0.04},   # paper: +23 % -> inversion
                        {"model": "gat", "recall@10": 0.095, "ndcg@10": 0.048},     # paper: -4 % -> agrees
                        {"model": "vbpr", "recall@10": 0.09, "ndcg@10": 0.045},     # paper: -39 % -> same side
                        {"model": "mf", "recall@10": 0.05, "ndcg@10": 0.02}])
    table = paper_ordering(zoo, "tiktok")
    assert list(table.columns) == ORDER_COLUMNS and len(table) == 8 and "lightgcn" not in set(table["model"])
    verdict = table[table["metric"] == "recall@10"].set_index("model")["verdict"]
    assert verdict["lightgt"] == "inversion" and verdict["gat"] == "agrees"
    assert verdict["vbpr"] == "same side, different margin" and verdict["mf"] == "not in the paper's Table 2"
    row = table[(table["model"] == "lightgt") & (table["metric"] == "recall@10")].iloc[0]
    assert row["ours_vs_reference"] == pytest.approx(-0.2) and row["paper_vs_reference"] == pytest.approx(0.1213 / 0.0988 - 1)
    assert row["paper_dataset"] == "TikTok"
    # a looser tolerance turns the inversion into agreement; a mapping works like a table
    loose = paper_ordering({r["model"]: r for r in zoo.to_dict("records")}, "tiktok", tolerance=0.5)
    assert set(loose.loc[loose["model"] == "lightgt", "verdict"]) == {"agrees"}


def test_paper_ordering_rejects_bad_input():
    zoo = pd.DataFrame([{"model": "mf", "recall@10": 0.1, "ndcg@10": 0.05}])
    with pytest.raises(ValueError, match="reference 'lightgcn' is not among"):
        paper_ordering(zoo, "tiktok")
    with pytest.raises(ValueError, match="lacks the metric"):
        paper_ordering(zoo.drop(columns="ndcg@10"), "tiktok", reference="mf")
    with pytest.raises(ValueError, match="no 'lightgcn' on 'amazon-baby'"):
        paper_ordering(pd.DataFrame([{"model": "lightgcn", "recall@10": 0.1, "ndcg@10": 0.05}]), "amazon-baby")
    with pytest.raises(ValueError, match="tolerance"):
        paper_ordering(zoo, "tiktok", reference="mf", tolerance=-1)


def test_modality_ablation_retrains_on_each_modality_alone(tmp_path):
    """One row per modality set, each its own keyed run; the all-modality row is the run run_baselines makes at
    the same config (so the zoo's chosen run is reused), and the p-values pair against it."""
    from _fixtures import make_tiny_dataset
    from mmgrec_lib.experiments.runs import run_baselines
    from mmgrec_lib.experiments.zoo import modality_ablation
    from mmgrec_lib.training.loop import LoopConfig

    ds = make_tiny_dataset()
    loop = LoopConfig(epochs=3, patience=0, eval_every=1, monitor="recall@10", progress=False)
    cfg = {"dim": 8, "n_layers": 1, "device": "cpu"}
    table = modality_ablation(ds, "mmgcn", cfg, loop, runs_dir=tmp_path, seed=0)
    assert list(table["modalities"]) == ["all (visual+textual)", "visual", "textual"]
    assert table.columns[1] == "val_recall@10" and table["val_recall@10"].between(0, 1).all()
    assert math.isnan(table["p_recall@10"].iloc[0]) and table["p_recall@10"].iloc[1:].between(0, 1).all()
    assert set(table["p_reference"]) == {"all (visual+textual)"}
    ckpts = sorted(tmp_path.glob("*mmgcn*.pt"))
    assert len(ckpts) == 3                                                    # three distinct keyed runs
    # the all-modality row equals run_baselines at that config (its checkpoint reused: no new file)
    again = run_baselines(ds, ["mmgcn"], loop=loop, seed=0, overrides={"mmgcn": cfg}, runs_dir=tmp_path)["mmgcn"]
    assert again.test["recall@10"] == pytest.approx(table["recall@10"].iloc[0])
    assert len(sorted(tmp_path.glob("*mmgcn*.pt"))) == 3
    # one modality alone differs from the sum (the runs really read different features)
    assert not (table["recall@10"].iloc[1] == table["recall@10"].iloc[0] == table["recall@10"].iloc[2])


def test_modality_ablation_rejects_what_it_cannot_ablate(tmp_path):
    from _fixtures import make_tiny_dataset
    from mmgrec_lib.experiments.zoo import modality_ablation
    from mmgrec_lib.training.loop import LoopConfig

    ds, loop = make_tiny_dataset(), LoopConfig(epochs=1, progress=False)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        modality_ablation(ds, "nope", {}, loop)
    with pytest.raises(ValueError, match="mf reads no modality features"):
        modality_ablation(ds, "mf", {}, loop)
    with pytest.raises(ValueError, match="config sets modalities"):
        modality_ablation(ds, "mmgcn", {"modalities": ("visual",)}, loop)
    one = make_tiny_dataset(dims={"visual": 8})
    with pytest.raises(ValueError, match="needs two or more"):
        modality_ablation(one, "mmgcn", {}, loop)


def test_reads_modalities_is_the_config_having_a_modalities_field():
    from mmgrec_lib.baselines import BASELINES, config_fields, reads_modalities
    readers = {m for m in BASELINES if reads_modalities(m)}
    assert {"vbpr", "mmgcn", "grcn", "lattice", "freedom", "lightgt", "invrl"} <= readers
    assert not readers & {"mostpop", "mf", "lightgcn", "graphsage", "gat", "ngcf"}
    assert {"lr", "reg"} <= config_fields("lightgcn")
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        reads_modalities("nope")
