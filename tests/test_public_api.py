"""`operators` is the public API: every name in `__all__` comes from the
module the type checkers are told (the `TYPE_CHECKING` imports), loads on
first use, and importing a plain-Python core does not import Bytewax."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import operators

PACKAGE = Path(operators.__file__).parent


def _typed_imports() -> dict[str, str]:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    return {a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}  # type: ignore[misc]


def test_every_public_name_is_the_one_its_module_defines() -> None:
    typed = _typed_imports()
    assert sorted(typed) == sorted(operators.__all__) and len(set(operators.__all__)) == len(operators.__all__)
    for name, module in typed.items():
        assert getattr(operators, name) is getattr(importlib.import_module(module), name), name
    assert {"window", "WindowOperator", "interval_join", "match_pattern", "KeyedProcess", "Aggregate"} <= set(typed)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        operators.no_such_operator  # noqa: B018
    except AttributeError as ex:
        assert "no_such_operator" in str(ex)
    else:
        raise AssertionError("no AttributeError")


def test_the_cores_and_the_api_load_without_bytewax() -> None:
    code = ("import sys, operators; from operators import WindowOperator, IntervalJoin, CepOperator, KeyedProcess; "
            "import operators.windows.general, operators.time.timer_index; print('bytewax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "False"


def test_the_package_says_it_is_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
    assert 'operators = ["py.typed"]' in (PACKAGE.parent / "pyproject.toml").read_text()
