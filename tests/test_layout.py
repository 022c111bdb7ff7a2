"""The package layout: pipeline folders, no import cycle, the data layer imports nothing else of the library."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "mmgrec_lib"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> library modules it imports (at any depth in the file, TYPE_CHECKING blocks included)."""
    modules = {_module(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                candidates = [n for n in names if n in modules] or [target]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            for c in candidates:
                while c and c not in modules:
                    c = c.rsplit(".", 1)[0] if "." in c else ""
                if c.startswith("mmgrec_lib") and c != mod:
                    deps.add(c)
        graph[mod] = deps
    return graph


def test_pipeline_folders_exist():
    for folder in ("data", "tokenizer", "generator", "baselines", "evaluation", "training", "experiments", "reporting"):
        assert (PKG / folder / "__init__.py").is_file(), folder


def test_data_imports_nothing_else_of_the_library():
    bad = {m: sorted(d for d in deps if not d.startswith("mmgrec_lib.data"))
           for m, deps in _imports().items() if m.startswith("mmgrec_lib.data")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_no_import_cycle_between_modules():
    graph = {m: {d for d in deps if not graph_parent(m, d)} for m, deps in _imports().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def graph_parent(mod: str, dep: str) -> bool:
    """A package's ``__init__`` re-exporting its own submodules is not a cycle (``a.b`` importing ``a`` runs
    ``a/__init__`` first, which is fine as long as ``a/__init__`` does not need ``a.b`` half-built)."""
    return mod.startswith(dep + ".")


def test_cli_imports_nothing_of_the_library_at_module_level():
    tree = ast.parse((PKG / "cli.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not [n for n in top if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("mmgrec_lib"))]


def test_every_config_checks_field_types_and_names_the_field():
    import pytest

    from mmgrec_lib.baselines import LightGCNConfig, MFConfig, MostPopConfig, VBPRConfig
    from mmgrec_lib.generator import GeneratorConfig, ModelConfig, TrainConfig
    from mmgrec_lib.tokenizer import GraphRQVAEConfig
    from mmgrec_lib.training import LoopConfig

    cases = [(GraphRQVAEConfig, {"codebook_size": "64"}, r"GraphRQVAEConfig: codebook_size = '64' \(str\); expected int"),
             (LightGCNConfig, {"dim": "64"}, r"LightGCNConfig: dim = '64'"),
             (MFConfig, {"lr": "fast"}, r"MFConfig: lr = 'fast' \(str\); expected float"),
             (VBPRConfig, {"dim": 6.5}, r"VBPRConfig: dim = 6.5"),
             (MostPopConfig, {"device": 0}, r"MostPopConfig: device = 0"),
             (LoopConfig, {"epochs": "three"}, r"LoopConfig: epochs = 'three' \(str\); expected int"),
             (LoopConfig, {"progress": 1}, r"LoopConfig: progress = 1 \(int\); expected bool"),
             (ModelConfig, {"n_layers": True}, r"ModelConfig: n_layers = True \(bool\); expected int"),
             (TrainConfig, {"grad_clip": "1"}, r"TrainConfig: grad_clip = '1' \(str\); expected float or None")]
    for cls, kwargs, message in cases:
        with pytest.raises(TypeError, match=message):
            cls(**kwargs)
    with pytest.raises(TypeError, match="ModelConfig: d_model"):
        GeneratorConfig.from_dict(d_model="64")
    assert MFConfig(lr=1).lr == 1.0 and isinstance(MFConfig(lr=1).lr, float)       # ints are fine for floats
    assert TrainConfig(val_ks=[20, 10]).val_ks == (10, 20)


def test_every_source_file_compiles_without_warnings():
    """Invalid escape sequences in docstrings (``"\\m"`` in LaTeX) warn on Python 3.12+ and will be errors later."""
    import warnings
    root = PKG.parent
    paths = [*PKG.rglob("*.py"), *(root / "tests").glob("*.py"), *(root / "notebooks").glob("*.py")]
    bad = []
    for path in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compile(path.read_text(), str(path), "exec")
        bad += [f"{path.relative_to(root)}:{w.lineno}: {w.message}" for w in caught]
    assert not bad, bad
