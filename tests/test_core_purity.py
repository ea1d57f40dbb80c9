"""The sans-IO core and the wire codec import no I/O or clock module.

Every module of ``tp4emu.core`` and ``tp4emu.wire`` is imported (it must
import cleanly), then its source is parsed with :mod:`ast` and every
``import``/``from ... import`` (at any depth, ``TYPE_CHECKING`` blocks
included) and every ``__import__``/``importlib.import_module`` call with a
literal name is checked against the forbidden set.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import tp4emu.core
import tp4emu.wire

FORBIDDEN = frozenset({"trio", "socket", "time", "asyncio"})


def _modules() -> list[str]:
    names = []
    for pkg in (tp4emu.core, tp4emu.wire):
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _imported_names(tree: ast.AST) -> set[str]:
    """Top-level names of every absolute module *tree* imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if name in {"__import__", "import_module"} and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value.split(".")[0])
    return found


def test_module_discovery_sees_the_engine() -> None:
    for name in (
        "tp4emu.core.state",
        "tp4emu.core.connection",
        "tp4emu.core.endpoint",
        "tp4emu.core.config",
        "tp4emu.core.events",
        "tp4emu.core.errors",
        "tp4emu.core.stats",
        "tp4emu.wire.tpdu",
        "tp4emu.wire.params",
        "tp4emu.wire.checksum",
    ):
        assert name in MODULES


def test_the_checker_catches_forbidden_imports() -> None:
    source = (
        "import time\n"
        "import os.path\n"
        "from socket import socket\n"
        "from . import trio\n"
        "def f():\n"
        "    import asyncio.events\n"
        "    __import__('trio')\n"
    )
    assert _imported_names(ast.parse(source)) & FORBIDDEN == {"time", "socket", "asyncio", "trio"}


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_no_io_or_clock(name: str) -> None:
    module = importlib.import_module(name)
    path = Path(module.__file__ or "")
    assert path.suffix == ".py", f"{name}: no Python source to check"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = _imported_names(tree) & FORBIDDEN
    assert not bad, f"{name} imports {sorted(bad)}"
