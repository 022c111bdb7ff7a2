"""Bad input, table-driven: every case is (name, a call that must fail, the exception type, a regex that the
message must match). A new loader or entry point joins by appending its cases to ``CASES``.

Each call gets a fresh temporary folder and pytest's ``monkeypatch`` (for environment variables), and builds
its tiny input itself; heavy imports stay inside the calls, so collecting this module is cheap.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmgrec_lib.data import DataError
from mmgrec_lib.reporting.parameters import ParameterError
from mmgrec_lib.utils import CheckpointError

from _fixtures import make_tiny_dataset


@dataclass(frozen=True)
class BadInput:
    name: str
    call: Callable[[Path, pytest.MonkeyPatch], Any]     # (fresh tmp folder, monkeypatch) -> must raise
    exc: type[BaseException]
    pattern: str                                         # re.search'ed in str(exception)


# ------------------------------------------------------------------------------------------- builders
def _notebook(folder: Path, yaml_text: str) -> Path:
    """A tiny notebook (parameters: EPOCHS int, LR float, NAME str, FLAG bool, SIZES list, EXTRA None) and
    its profile file; returns the notebooks folder."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("EPOCHS = 3  # epochs\nLR = 0.01\nNAME = 'x'\nFLAG = False\n"
                                       "SIZES = [1, 2]\nEXTRA = None\nREPORTS_DIR = 'out'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(EPOCHS)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    d = folder / "notebooks"
    d.mkdir()
    nbformat.write(nb, d / "00_demo.ipynb")
    (d / "00_demo.yaml").write_text(yaml_text)
    return d


def _plan(tmp: Path, yaml_text: str):
    from mmgrec_lib import cli
    return cli.build_plan("full", notebooks_dir=_notebook(tmp, yaml_text))


PAPERMILL_PARAMS_CELL = "EPOCHS = 3  # epochs\nLR = 0.01\nNAME = 'x'\nFLAG = False\nEXTRA = None"


def _papermill(injected: str, **values):
    """check_parameters as a notebook runs it: IPython's input history (parameters cell, papermill's injected
    cell, the check cell) and the globals after the injected cell."""
    from mmgrec_lib.reporting import check_parameters

    history = ["", "import os", PAPERMILL_PARAMS_CELL, f"# Parameters\n{injected}\n",
               "check_parameters(globals())"]
    namespace = {"EPOCHS": 3, "LR": 0.01, "NAME": "x", "FLAG": False, "EXTRA": None, **values, "In": history}
    return check_parameters(namespace)


def _mmssl(folder: Path, name: str = "tiktok", n_users: int = 6, n_items: int = 5) -> Path:
    d = folder / name
    d.mkdir(parents=True)
    for fname, pairs in (("trnMat.pkl", [(0, 0), (1, 1), (2, 2)]), ("valMat.pkl", [(0, 1)]), ("tstMat.pkl", [(1, 2)])):
        rows, cols = zip(*pairs)
        m = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
        (d / fname).write_bytes(pickle.dumps(m))
    for fname in ("image_feat.npy", "audio_feat.npy"):
        np.save(d / fname, np.zeros((n_items, 2), np.float16))
    return d


def _empty_val():
    ds = make_tiny_dataset()
    return type(ds).from_splits("tiny-noval", ds.n_users, ds.n_items, ds.train, sp.csr_matrix(ds.val.shape),
                                ds.test, source="tiny, validation emptied")


def _fit_empty_val():
    from mmgrec_lib.baselines import MF
    ds = _empty_val()
    return MF.from_dataset(ds, dim=4, device="cpu").fit(ds, _loop(2), torch.Generator().manual_seed(0))


def _loop(epochs: int, **kw):
    from mmgrec_lib.training import LoopConfig
    return LoopConfig(epochs=epochs, progress=False, **kw)


def _fit_nan_validation():
    from mmgrec_lib.training import fit
    model = torch.nn.Linear(1, 1)
    return fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda e, g: {"loss": 0.0},
               lambda: {"recall@10": float("nan")}, _loop(3), torch.Generator(), desc="tiny")


def _fit_from(tmp: Path, content: bytes | object):
    """A tiny fit resuming from ``runs/x.pt`` holding ``content`` (raw bytes, or an object torch-saved)."""
    from mmgrec_lib.training import fit
    ckpt = tmp / "runs" / "x.pt"
    ckpt.parent.mkdir()
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    else:
        torch.save(content, ckpt)
    model = torch.nn.Linear(1, 1)
    return fit(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda e, g: {"loss": 0.0},
               lambda: {"recall@10": 0.5}, _loop(2, checkpoint=ckpt), torch.Generator())


def _evaluate_lists(lists):
    from mmgrec_lib.evaluation import evaluate
    ds = make_tiny_dataset()
    full = torch.full((ds.n_users, 3), -1, dtype=torch.long)
    full[:, :len(lists)] = torch.tensor(lists)
    return evaluate(full, ds, "test", ks=(2,))


def _from_splits(train, features=None):
    from mmgrec_lib.data.dataset import RecDataset
    empty = sp.csr_matrix((3, 4))
    return RecDataset.from_splits("tiny", 3, 4, train, empty, empty, features=features or {}, source="tiny")


def _cache_not_creatable(tmp: Path, mp: pytest.MonkeyPatch):
    from mmgrec_lib.data.paths import cache_dir
    (tmp / "a-file").write_text("")
    mp.setenv("MMGREC_CACHE", str(tmp / "a-file" / "cache"))
    return cache_dir()


def _mmgcn_missing(tmp: Path, mp: pytest.MonkeyPatch, **kw):
    from mmgrec_lib.data.mmgcn import load_mmgcn
    mp.setenv("MMGREC_DATA", str(tmp / "env-folder"))
    return load_mmgcn(**kw)


def _ml100k_missing(tmp: Path, mp: pytest.MonkeyPatch, **kw):
    from mmgrec_lib.data.ml100k import load_ml100k
    mp.setenv("MMGREC_DATA", str(tmp / "env-folder"))
    return load_ml100k(features=(), progress=False, **kw)


def _mmssl_missing(tmp: Path, mp: pytest.MonkeyPatch, **kw):
    from mmgrec_lib.data import load_dataset
    mp.setenv("MMGREC_DATA", str(tmp / "env-folder"))
    return load_dataset("tiktok", **kw)


def _load_dataset(*args, **kw):
    from mmgrec_lib.data import load_dataset
    return load_dataset(*args, **kw)


# ------------------------------------------------------------------------------------------- the table
CASES: list[BadInput] = [
    # 1. wrong-typed parameter in a profile file, through the runner (before any kernel starts)
    BadInput("runner: str for an int parameter",
             lambda t, m: _plan(t, "full:\n  - {EPOCHS: three}\n"), ValueError,
             r"00_demo\.yaml: EPOCHS: 'three' in run 1 of profile 'full' of 00_demo\.ipynb: expected int, got str "
             r"\(the parameters cell has EPOCHS = 3\)"),
    BadInput("runner: float for an int parameter",
             lambda t, m: _plan(t, "full:\n  - {EPOCHS: 3.5}\n"), ValueError,
             r"EPOCHS: 3\.5 .*expected int, got float"),
    BadInput("runner: YAML's 1e-3 is a string",
             lambda t, m: _plan(t, "full:\n  - {LR: 1e-3}\n"), ValueError,
             r"LR: '1e-3' .*expected int or float, got str \(a number in quotes; in YAML write 1e-3 as 1\.0e-3"),
    BadInput("runner: int for a bool parameter",
             lambda t, m: _plan(t, "full:\n  - {FLAG: 1}\n"), ValueError, r"FLAG: 1 .*expected bool, got int"),
    BadInput("runner: bool for an int parameter",
             lambda t, m: _plan(t, "full:\n  - {EPOCHS: true}\n"), ValueError,
             r"EPOCHS: True .*expected int, got bool"),
    BadInput("runner: int for a str parameter",
             lambda t, m: _plan(t, "full:\n  - {NAME: 7}\n"), ValueError, r"NAME: 7 .*expected str, got int"),
    BadInput("runner: str for a list parameter",
             lambda t, m: _plan(t, "full:\n  - {SIZES: '1,2'}\n"), ValueError,
             r"SIZES: '1,2' .*expected list, got str"),
    BadInput("runner: second run named",
             lambda t, m: _plan(t, "full:\n  - {EPOCHS: 2, EXTRA: [anything]}\n  - {EPOCHS: 2.0}\n"), ValueError,
             r"EPOCHS: 2\.0 in run 2 of profile 'full'"),
    # 2. plain papermill -p: unknown names and wrong types stop the notebook in its check cell
    BadInput("papermill: unknown parameter",
             lambda t, m: _papermill("EPOCHZ = 5", EPOCHZ=5), ParameterError,
             r"unknown parameter\(s\) \['EPOCHZ'\]: the parameters cell declares \['EPOCHS', 'EXTRA', 'FLAG', 'LR', "
             r"'NAME'\]"),
    BadInput("papermill: wrong type",
             lambda t, m: _papermill('EPOCHS = "three"', EPOCHS="three"), ParameterError,
             r"parameter EPOCHS = 'three': expected int, got str \(its default is 3\)"),
    # 3. empty validation split: a clear error before training, and from the loop itself
    BadInput("empty validation split: baseline fit", lambda t, m: _fit_empty_val(), ValueError,
             r"MF\.fit: dataset 'tiny-noval' has an empty validation split \(dataset\.val has no interactions\)"),
    BadInput("NaN validation metric: the loop", lambda t, m: _fit_nan_validation(), ValueError,
             r"tiny: validate\(\) returned NaN for the monitored 'recall@10' after epoch 1.*empty validation split"),
    # 4. features of other precisions: overflow named (explicit zeros: see test_explicit_zeros_are_counted)
    BadInput("float64 features overflowing float32",
             lambda t, m: _from_splits(sp.csr_matrix(np.eye(3, 4)),
                                       {"visual": np.array([[1.0], [1e300], [2.0], [0.0]])}),
             DataError, r"tiny: 'visual' features overflow float32 in 1 rows \(first: \[1\]\)"),
    # 5. a cache folder that cannot be created: named, with MMGREC_CACHE
    BadInput("MMGREC_CACHE not creatable", _cache_not_creatable, OSError,
             r"cache folder .*a-file/cache \(from MMGREC_CACHE\) cannot be created: .*set MMGREC_CACHE to a "
             r"writable folder"),
    # 6. a damaged checkpoint: named, with the ways out
    BadInput("corrupt checkpoint", lambda t, m: _fit_from(t, b"\x00\x01 not a checkpoint"), CheckpointError,
             r"checkpoint .*runs/x\.pt could not be read .*delete it and the run that wrote it retrains from "
             r"scratch; or run with LoopConfig\(resume=False\) to overwrite it"),
    BadInput("checkpoint of something else", lambda t, m: _fit_from(t, {"format": "other"}), CheckpointError,
             r"runs/x\.pt is not a training checkpoint of this loop .*delete .*runs/x\.pt to retrain from scratch, "
             r"or run with LoopConfig\(resume=False\)"),
    # 8. ranked lists: only -1 pads
    BadInput("ranked list with a negative id other than -1", lambda t, m: _evaluate_lists([3, -2, -1]), ValueError,
             r"ranked lists contain \d+ negative item id\(s\) other than the padding value -1 \(e\.g\. \[-2"),
    # 9. a known dataset name on other data
    BadInput("tiktok name on another folder",
             lambda t, m: (_mmssl(t), _load_dataset("tiktok", root=t)), DataError,
             r"tiktok: holds 6 users x 5 items, not the 9308 x 6710 of the MMSSL TikTok subset .*refusing to label "
             r"other data 'tiktok'"),
    BadInput("amazon-baby name on another folder through path=",
             lambda t, m: _load_dataset("amazon-baby", path=_mmssl(t, "copy")), DataError,
             r"copy: holds 6 users x 5 items, not the 19445 x 7050 .*refusing to label other data 'amazon-baby'"),
    # 10. missing folders: the advice fits the argument used
    BadInput("mmssl: missing folder under root=", lambda t, m: _mmssl_missing(t, m, root=t / "given"), DataError,
             r"given/tiktok: folder not found\. The folder passed as root= \(.*given\) should contain tiktok/"),
    BadInput("mmssl: missing folder under MMGREC_DATA", lambda t, m: _mmssl_missing(t, m), DataError,
             r"env-folder/tiktok: folder not found\. MMGREC_DATA \(now .*env-folder\) should point to the shared "
             r"data folder"),
    BadInput("mmgcn: missing folder under root=", lambda t, m: _mmgcn_missing(t, m, root=t / "given"), DataError,
             r"folder not found\. The folder passed as root= \(.*given\) should contain mmgrec-sample/tiktok/"),
    BadInput("mmgcn: missing path=", lambda t, m: _mmgcn_missing(t, m, path=t / "given"), DataError,
             r"given: folder not found \(the path= argument\)"),
    BadInput("ml100k: missing folder under root=", lambda t, m: _ml100k_missing(t, m, root=t / "given"), DataError,
             r"given: data folder not found\. The folder passed as root= \(.*given\) should contain ml-100k/"),
    BadInput("ml100k: missing folder under MMGREC_DATA", lambda t, m: _ml100k_missing(t, m), DataError,
             r"env-folder: data folder not found\. MMGREC_DATA \(now .*env-folder\) should point"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_with_a_clear_message(case, tmp_path, monkeypatch):
    with pytest.raises(case.exc, match=case.pattern) as info:
        case.call(tmp_path, monkeypatch)
    if "root=" in case.name:                                   # the advice fits the argument: no MMGREC_DATA
        assert "MMGREC_DATA" not in str(info.value)


def test_case_names_are_unique():
    assert len({c.name for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------------- behaviours
def test_explicit_zeros_are_counted_not_kept():
    """Row 4: explicit zeros in a sparse split are no interactions: dropped and counted in ``info``."""
    train = sp.csr_matrix((np.array([1.0, 0.0, 1.0]), (np.array([0, 1, 2]), np.array([0, 1, 2]))), shape=(3, 4))
    assert train.nnz == 3                                       # the zero is stored explicitly
    ds = _from_splits(train)
    assert ds.train.nnz == 2 and ds.info["explicit_zeros_dropped"]["train"] == 1


def test_float64_and_float16_features_are_cast_to_float32():
    """Row 4: features of any float precision within range become float32 (no overflow error)."""
    ds = _from_splits(sp.csr_matrix(np.eye(3, 4)), {"visual": np.array([[1.0], [3e38], [2.0], [0.0]]),
                                                    "textual": np.ones((4, 2), np.float16)})
    assert all(f.dtype == np.float32 for f in ds.features.values())
    assert np.isfinite(ds.features["visual"]).all()


def test_padding_minus_one_is_still_accepted():
    """Row 8: ``-1`` keeps padding short lists (the documented value)."""
    res = _evaluate_lists([3, -1, -1])
    assert len(res.per_user) > 0


def test_baseline_fit_fails_before_training_on_an_empty_validation_split(monkeypatch):
    """Row 3: the error comes before any epoch runs (nothing is spent, no checkpoint is written)."""
    from mmgrec_lib.baselines import MF
    calls = []
    monkeypatch.setattr(MF, "bpr_loss", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="empty validation split"):
        _fit_empty_val()
    assert calls == []


def test_graph_rqvae_fails_before_training_on_an_empty_validation_split():
    from mmgrec_lib.tokenizer.graph_rqvae import GraphRQVAEConfig, assign_recids
    with pytest.raises(ValueError, match=r"assign_recids .*dataset 'tiny-noval' has an empty validation split"):
        assign_recids(_empty_val(), GraphRQVAEConfig(epochs=1, rq_epochs=1, device="cpu"), progress=False)


def test_a_known_name_loads_its_reference_data(data_root):
    """Row 9, real data: the reference folders still load under their names."""
    from mmgrec_lib.data import load_dataset
    ds = load_dataset("tiktok", root=data_root)
    assert ds.name == "tiktok" and "reference" not in ds.info



def test_generator_fails_before_training_on_an_empty_validation_split():
    import numpy as np
    import scipy.sparse as sp
    import torch

    from _fixtures import make_tiny_dataset
    from mmgrec_lib.data.dataset import RecDataset
    from mmgrec_lib.generator import GeneratorConfig
    from mmgrec_lib.generator.training import train_generator
    from mmgrec_lib.tokenizer.recid import RecIDTable, disambiguate
    from mmgrec_lib.training import LoopConfig

    ds = make_tiny_dataset(n_users=20, n_items=30)
    no_val = sp.csr_matrix(ds.val.shape, dtype=np.float32)
    empty = RecDataset.from_splits("noval", ds.n_users, ds.n_items, ds.train, no_val, ds.test, source="tiny")
    table = RecIDTable(disambiguate(np.random.default_rng(0).integers(0, 4, (ds.n_items, 2)), ds.item_popularity()))
    with pytest.raises(ValueError, match="empty validation split"):
        train_generator(empty, table, torch.randn(ds.n_users, 8), torch.randn(ds.n_items, 8),
                        GeneratorConfig.from_dict(d_model=16, n_heads=2, device="cpu"), LoopConfig(epochs=1, progress=False))
