"""The training-throughput benchmark (``mmgrec bench train``): every stage yields a row with real timings."""
import math

import pytest

from mmgrec_lib import cli
from mmgrec_lib.experiments import throughput as tp
from mmgrec_lib.numerics import numerics_tag


def test_bench_dataset_has_about_the_asked_training_size():
    ds = tp.bench_dataset(400, 200, 4000)
    assert (ds.n_users, ds.n_items) == (400, 200)
    assert 0.6 * 4000 < ds.train.nnz <= 1.05 * 4000          # repeats of a (user, item) draw are dropped


def test_every_stage_is_timed():
    seen = []
    df = tp.bench_training(300, 120, 2000, epochs=1, report=seen.append)
    assert df["stage"].tolist() == list(tp.STAGES) == [r["stage"] for r in seen]
    assert list(df.columns) == list(tp.COLUMNS)
    assert (df["eval_s"] > 0).all()
    trained = df[df["stage"] != "evaluation"]
    assert (trained["train_s"] > 0).all() and math.isnan(df.loc[df["stage"] == "evaluation", "train_s"].iloc[0])
    assert (df["train_interactions"] > 1000).all() and (df["threads"] == 1).all()
    # the one-off k-means initialisation of the alternating Graph RQ-VAE is timed apart from its epochs
    setup = df.set_index("stage")["setup_s"]
    assert setup["graph_rqvae"] > 0 and setup["lightgcn"] == setup["generator"] == 0 and math.isnan(setup["evaluation"])
    assert set(df["kernels"]) == {numerics_tag()}                       # the kernels this process runs with


def test_two_stage_schedule_is_timed_on_request():
    df = tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_schedule="two_stage")
    assert df["detail"].iloc[0].startswith("two_stage") and df["train_s"].iloc[0] > 0
    assert df["setup_s"].iloc[0] == 0                                   # its BPR stage runs no RQ-VAE


def test_lightgcn_encoder_is_timed_on_request():
    df = tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_schedule="two_stage",
                           recid_encoder="lightgcn")
    assert df["detail"].iloc[0].startswith("two_stage, lightgcn encoder") and df["train_s"].iloc[0] > 0
    with pytest.raises(ValueError, match="encoder"):
        tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_encoder="gat")


def test_recid_batch_size_is_timed_on_request():
    df = tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_batch_size=500)
    assert "batch 500" in df["detail"].iloc[0] and df["train_s"].iloc[0] > 0
    with pytest.raises(ValueError, match="batch_size"):
        tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_batch_size=0)


def test_rq_every_is_timed_on_request():
    df = tp.bench_training(300, 120, 2000, stages=["graph_rqvae"], epochs=1, recid_rq_every=3)
    assert df["detail"].iloc[0].endswith("RQ step every 3 BPR steps") and df["train_s"].iloc[0] > 0


def test_breakdown_adds_the_phases_of_the_phased_stages():
    df = tp.bench_training(300, 120, 2000, stages=["lightgcn", "graph_rqvae", "generator"], epochs=1, breakdown=True)
    assert list(df.columns) == list(tp.COLUMNS) + ["phases"]
    phases = dict(zip(df["stage"], df["phases"]))
    assert phases["lightgcn"] == ""
    assert phases["graph_rqvae"].startswith("bpr_forward ") and "rq_optimizer " in phases["graph_rqvae"]
    assert [p.split()[0] for p in phases["generator"].split(", ")] == ["forward", "backward", "optimizer"]
    assert "phases" not in tp.bench_training(300, 120, 2000, stages=["evaluation"]).columns


def test_bad_arguments_fail_before_work():
    with pytest.raises(ValueError, match="unknown stage"):
        tp.bench_training(300, 120, 2000, stages=["lightgcn", "nope"])
    with pytest.raises(ValueError, match="interactions >= users"):
        tp.bench_dataset(300, 120, 100)


@pytest.mark.parametrize("argv, message", [
    (["--stages", "evaluation,foo"], "unknown stage"),
    (["--epochs", "0"], "--epochs"),
    (["--users", "5"], "--users"),
    (["--recid-batch-size", "0"], "--recid-batch-size"),
    (["--recid-rq-every", "0"], "--recid-rq-every"),
])
def test_cli_rejects_bad_arguments(argv, message, capsys):
    assert cli.main(["bench", "train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_an_unknown_encoder(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "train", "--recid-encoder", "gat"])
    assert exc.value.code == 2 and "--recid-encoder" in capsys.readouterr().err


def test_cli_prints_and_writes_the_table(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert cli.main(["bench", "train", "--users", "200", "--items", "80", "--interactions", "1200",
                     "--stages", "evaluation,lightgcn", "--epochs", "1", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lightgcn" in text and "s per epoch" in text and out.is_file()
    assert "ms per step" not in text


def test_cli_prints_the_breakdown_on_request(capsys):
    assert cli.main(["bench", "train", "--users", "200", "--items", "80", "--interactions", "1200",
                     "--stages", "graph_rqvae", "--epochs", "1", "--breakdown"]) == 0
    text = capsys.readouterr().out
    assert "ms per step: bpr_forward" in text
