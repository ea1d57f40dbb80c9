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
    gen = _gen_docs()
    assert gen.render(GUIDE) == GUIDE, "run: .venv/bin/python scripts/gen_docs.py"
    for page in gen.PAGES:
        text = page.read_text()
        assert gen.render(text) == text, f"{page.name}: run .venv/bin/python scripts/gen_docs.py"


def test_generated_files_are_current() -> None:
    """docs/img/ladder-*.svg: the demo's story replayed, the same every time."""
    import xml.etree.ElementTree as ET

    files = _gen_docs().files()
    assert {p.name for p in files} == {"ladder-tp4.svg", "ladder-tcp.svg"}
    for path, text in files.items():
        assert path.exists(), f"{path}: run .venv/bin/python scripts/gen_docs.py"
        assert path.read_text() == text, f"{path.name}: run .venv/bin/python scripts/gen_docs.py"
        root = ET.fromstring(text.encode())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_ladder_page_shows_both_diagrams() -> None:
    page = (ROOT / "docs" / "ladder.md").read_text()
    assert "![TP4 over UDP" in page and "](img/ladder-tp4.svg)" in page
    assert "](img/ladder-tcp.svg)" in page
    assert page.count("```mermaid\nsequenceDiagram\n") == 2


def test_guide_shows_every_open_endpoint_signature() -> None:
    import ast

    source = (ROOT / "tp4emu" / "api.py").read_text()
    defs = [
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.FunctionDef) and n.name == "open_endpoint"
    ]
    assert len(defs) >= 3  # the overloads and the implementation
    section = GUIDE.split("<!-- generated:open_endpoint -->", 1)[1].split("<!-- /generated -->")[0]
    assert section.count("def open_endpoint(") == len(defs)
    assert section.count("@overload") == len(defs) - 1
    for name in ("local", "transport", "config", "pcap", "socket"):
        assert f"    {name}: " in section


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
