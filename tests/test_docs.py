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


def test_security_page_names_only_real_tests_and_settings() -> None:
    import re

    page = (ROOT / "docs" / "security.md").read_text()
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    named_tests = set(re.findall(r"`(test_\w+)`", page))
    assert len(named_tests) >= 20
    for name in sorted(named_tests):
        assert f"def {name}(" in sources, f"docs/security.md names a missing test: {name}"
    for path in re.findall(r"`?(tests/test_\w+\.py)`?", page):
        assert (ROOT / path).exists(), path
    fields = {f.name for f in dataclasses.fields(Config)}
    for setting in re.findall(r"\| `(\w+)`(?: \(`[^`]*`\))? \|$", page, re.M):
        assert setting in fields, f"docs/security.md names an unknown setting: {setting}"
    for setting in ("max_unvalidated", "amplification_factor", "receive_buffer_budget"):
        assert f"`{setting}`" in page
