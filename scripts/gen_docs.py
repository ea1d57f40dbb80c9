"""Refresh the generated sections of docs/guide.md from the code.

Run: .venv/bin/python scripts/gen_docs.py  (tests/test_docs.py fails when they are stale)

A generated section sits between ``<!-- generated:NAME -->`` and ``<!-- /generated -->``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tp4emu.core.class0 import table_markdown as class0_table  # noqa: E402
from tp4emu.core.state import mermaid, table_markdown  # noqa: E402

GUIDE = ROOT / "docs" / "guide.md"


def config_table() -> str:
    """Markdown table of every Config field, its default and its docstring."""
    tree = ast.parse((ROOT / "tp4emu" / "core" / "config.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for i, node in enumerate(cls.body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            doc = ""
            nxt = cls.body[i + 1] if i + 1 < len(cls.body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                doc = " ".join(str(nxt.value.value).split())
            rows.append(f"| `{node.target.id}` | `{ast.unparse(node.value)}` | {doc} |")
    return "\n".join(rows) + "\n"


SECTIONS = {
    "states": lambda: "```mermaid\n" + mermaid() + "```\n",
    "transitions": table_markdown,
    "config": config_table,
    "class0": class0_table,
}


def render(text: str) -> str:
    """*text* with every generated section refreshed."""

    def repl(m: re.Match[str]) -> str:
        return f"<!-- generated:{m[1]} -->\n{SECTIONS[m[1]]()}<!-- /generated -->"

    return re.sub(r"<!-- generated:(\w+) -->\n.*?<!-- /generated -->", repl, text, flags=re.S)


if __name__ == "__main__":
    GUIDE.write_text(render(GUIDE.read_text()))
