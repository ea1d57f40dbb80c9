"""The docs show the code as it is: the state diagram, the table and every setting."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from tp4emu.core import Config

ROOT = Path(__file__).parent.parent
GUIDE = (ROOT / "docs" / "guide.md").read_text()


def _gen_docs():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_sections_are_current() -> None:
    assert _gen_docs().render(GUIDE) == GUIDE, "run: .venv/bin/python scripts/gen_docs.py"


def test_every_setting_is_documented() -> None:
    for f in dataclasses.fields(Config):
        assert f"| `{f.name}` | `" in GUIDE, f.name
