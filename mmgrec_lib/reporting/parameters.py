"""Notebook parameters: the type each parameter expects (from its default in the ``parameters`` cell) and
the check a notebook runs right after that cell, so that a bad ``papermill -p`` stops the run at once.

papermill only *warns* about a parameter that the notebook does not declare, and injects any value it is
given; the runner (:mod:`mmgrec_lib.cli`) checks profile files before it starts a kernel, and
:func:`check_parameters` does the same inside the kernel for runs started with plain ``papermill``::

    # the cell right after the parameters cell (papermill puts its injected cell in between)
    from mmgrec_lib.reporting.parameters import check_parameters
    check_parameters(globals())

Type rules (:func:`type_problem`): a parameter whose default is an ``int`` accepts an ``int``; ``float``
accepts ``int`` and ``float``; ``bool``, ``str``, ``list`` and ``dict`` accept only themselves (``True`` is
no ``int``); a ``None`` default, or one that is not a literal, accepts anything.
"""
from __future__ import annotations

import ast
from typing import Any, Mapping

__all__ = ["ParameterError", "ANY", "expected_type", "type_problem", "declared_parameters", "check_parameters",
           "INJECTED_MARKER"]

#: the first line of the cell papermill injects (``translate_parameters(..., comment="Parameters")``)
INJECTED_MARKER = "# Parameters"


class ParameterError(ValueError):
    """A notebook parameter that the notebook does not declare, or a value of the wrong type."""


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: the expected "type" of a parameter whose default says nothing (``None`` or an expression)
ANY = _Any()
_NAMES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}
_UNPARSED = object()


def expected_type(default: Any, annotation: str | None = None) -> type | _Any:
    """The type a parameter expects: its annotation when it names a plain type (``int``, ``float``, ``bool``,
    ``str``, ``list``, ``dict``), else the type of its default value; :data:`ANY` for a ``None`` default, an
    unparsed one or any other type."""
    if annotation and annotation.strip() in _NAMES:
        return _NAMES[annotation.strip()]
    if default is None or default is _UNPARSED:
        return ANY
    for t in (bool, int, float, str, list, dict):          # bool first: True is also an int
        if type(default) is t:
            return t
    if type(default) is tuple:
        return list
    return ANY


def type_problem(value: Any, expected: type | _Any) -> str | None:
    """``None`` when ``value`` fits ``expected`` (see the module's rules), else what is wrong, for a message."""
    if expected is ANY:
        return None
    if expected is float:
        ok = type(value) in (int, float)
    elif expected is list:
        ok = type(value) in (list, tuple)
    else:
        ok = type(value) is expected
    if ok:
        return None
    got = type(value).__name__
    text = f"expected {'int or float' if expected is float else expected.__name__}, got {got}"
    if isinstance(value, str) and expected in (int, float):
        try:
            float(value)
            text += " (a number in quotes; in YAML write 1e-3 as 1.0e-3, which YAML 1.1 otherwise reads as a string)"
        except ValueError:
            pass
    return text


def literal(source: str) -> Any:
    """The value of a literal expression's source (``"3"``, ``'"cpu"'``, ``"[1, 2]"``), or a private marker
    when it is not a literal (an expression; then any value is accepted)."""
    try:
        return ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _UNPARSED


def declared_parameters(source: str) -> dict[str, tuple[Any, str | None]]:
    """Names assigned at the top level of a parameters cell's ``source`` -> ``(default, annotation)``
    (``default`` is the literal value, or a marker meaning "accept anything")."""
    out: dict[str, tuple[Any, str | None]] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"the parameters cell is not valid Python ({exc})") from exc
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in _names(target):
                    out[name] = (literal(ast.unparse(node.value)) if len(node.targets) == 1
                                 and isinstance(target, ast.Name) else _UNPARSED, None)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = literal(ast.unparse(node.value)) if node.value is not None else _UNPARSED
            out[node.target.id] = (value, ast.unparse(node.annotation))
    return out


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names(elt)]
    return []


def _is_injected(source: str) -> bool:
    """Whether ``source`` looks like papermill's injected cell: the ``# Parameters`` line, then assignments."""
    lines = [ln for ln in source.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != INJECTED_MARKER:
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return all(isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
               for n in tree.body)


def check_parameters(namespace: Mapping[str, Any], history: list[str] | None = None) -> dict[str, Any]:
    """Stop a notebook run whose injected parameters the notebook does not declare, or whose values have the
    wrong type; return the injected parameters (``{}`` when none were injected).

    Call it in the cell right after the ``parameters`` cell, as ``check_parameters(globals())``. The cells
    are read from IPython's input history (``In``; or ``history``): when the cell before this one is the
    cell papermill injected (it starts with ``# Parameters``), the cell before that is the ``parameters``
    cell, and every injected name must be assigned there, with a value of its default's type (see the
    module's rules). Without an injected cell (an interactive run, papermill without ``-p``) nothing is
    checked. So: do not begin a ``parameters`` cell with the comment ``# Parameters``.

    Raises:
        ParameterError: unknown names (listed with the declared ones), or wrong-typed values.
    """
    cells = list(history if history is not None else namespace.get("In") or namespace.get("_ih") or [])
    if len(cells) < 3 or not _is_injected(cells[-2]):
        return {}
    injected_src, declared_src = cells[-2], cells[-3]
    declared = declared_parameters(declared_src)
    injected = {name: value for name, (value, _) in declared_parameters(injected_src).items()}
    unknown = sorted(set(injected) - set(declared))
    problems = []
    if unknown:
        problems.append(f"unknown parameter(s) {unknown}: the parameters cell declares {sorted(declared)} "
                        f"(papermill only warns about these; check the spelling)")
    for name in sorted(set(injected) & set(declared)):
        value = namespace.get(name, injected[name])
        default, annotation = declared[name]
        problem = type_problem(value, expected_type(default, annotation))
        if problem:
            problems.append(f"parameter {name} = {value!r}: {problem} (its default is {default!r})")
    if problems:
        raise ParameterError("papermill parameters rejected: " + "; ".join(problems))
    return {name: namespace.get(name, value) for name, value in injected.items()}
