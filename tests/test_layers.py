"""The package's layers, checked: each imports only from the layers below it.

    wire  ->  core, capture  ->  transport, conformance  ->  api (tp4emu/api.py,
    tp4emu/inherit.py, tp4emu/__init__.py)  ->  bench  ->  cli

``wire`` (codec) and ``core`` (sans-IO engines) do no I/O (tests/test_core_purity.py);
``capture`` reads and writes files but knows no socket; ``transport`` holds the
trio drivers; ``conformance`` the conformance tester, which plays the peer with raw
TPDUs: it may use ``wire`` and ``capture`` but never ``core``'s engines
(``test_conformance_plays_no_engine``); ``api`` the one ``open_endpoint`` and
``serve``; ``bench`` the benchmark suite (the public API against raw trio sockets);
``cli`` the command line and its applications. Imports are read from the source with
:mod:`ast`, ``TYPE_CHECKING`` blocks and function-level imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tp4emu"

LAYER = {
    "wire": 0,
    "core": 1,
    "capture": 1,
    "transport": 2,
    "conformance": 2,
    "api": 3,
    "bench": 4,
    "cli": 5,
    "__main__": 6,
}

API_MODULES = {"__init__", "api", "inherit"}
"""The modules of the package's top folder that make the API layer."""


def _room(path: Path) -> str:
    """The layer a file of the package belongs to: its top folder, or its module name."""
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return "api" if rel.stem in API_MODULES else rel.stem  # __init__.py re-exports the API


def _targets(path: Path) -> set[str]:
    """The rooms of tp4emu that *path* imports from."""
    rel = path.relative_to(PACKAGE)
    return _targets_of(path.read_text(encoding="utf-8"), list(rel.parts[:-1]))


def _targets_of(source: str, here: list[str]) -> set[str]:
    """The rooms imported by *source*, a module of package ``tp4emu.<here...>``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # "from . import x" at the top of the package
                    parts = [alias.name for alias in node.names]
            elif node.module and node.module.split(".")[0] == "tp4emu":
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add("api" if parts[0] in API_MODULES else parts[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                bits = alias.name.split(".")
                if bits[0] == "tp4emu" and len(bits) > 1:
                    found.add("api" if bits[1] in API_MODULES else bits[1])
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_file_has_a_layer() -> None:
    assert {_room(p) for p in FILES} <= set(LAYER)
    assert {"wire", "core", "capture", "transport", "cli"} <= {_room(p) for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_down(path: Path) -> None:
    room = _room(path)
    for target in _targets(path):
        assert target in LAYER, f"{path}: imports an unknown room {target!r}"
        if target == room:
            continue
        assert LAYER[target] < LAYER[room], f"{path} ({room}) imports {target}: not a lower layer"


def test_conformance_plays_no_engine() -> None:
    """The tester builds every TPDU itself: it imports nothing of core (nor transport)."""
    for path in sorted((PACKAGE / "conformance").rglob("*.py")):
        assert _targets(path) <= {"wire", "capture", "conformance"}, path


def test_the_checker_sees_upward_imports() -> None:
    # a core module importing the trio driver or the CLI must be caught
    source = "from ..transport import udp\nfrom tp4emu.cli import apps\nfrom .state import State\n"
    assert _targets_of(source, ["core"]) == {"transport", "cli", "core"}
    assert _targets_of("from . import api\n", []) == {"api"}
    assert _targets_of("from ..inherit import inherited_connection\n", ["cli"]) == {"api"}
