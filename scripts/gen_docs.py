"""Refresh the generated parts of the docs from the code.

Run: .venv/bin/python scripts/gen_docs.py  (tests/test_docs.py fails when they are stale)

A generated section sits between ``<!-- generated:NAME -->`` and ``<!-- /generated -->``
in one of PAGES (docs/guide.md: the state diagram, the transition tables, the settings,
open_endpoint's signature; docs/ladder.md: the demo's ladder diagrams in Mermaid;
docs/inetd.md and the guide: serve --exec's DR reasons and options;
docs/conformance.md: the case library and the rows each case drives). FILES
are written whole: the ladder diagrams as SVG in docs/img/, from the demo's story replayed
on the sans-IO engines (tp4emu/cli/replay.py), the same every time.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tp4emu.capture.ladder import Ladder, to_mermaid, to_svg  # noqa: E402
from tp4emu.cli.inetd import options_markdown, reasons_markdown  # noqa: E402
from tp4emu.cli.replay import replay_ladders  # noqa: E402
from tp4emu.core.class0 import table_markdown as class0_table  # noqa: E402
from tp4emu.conformance import all_cases  # noqa: E402
from tp4emu.conformance.coverage import NOT_DRIVABLE, claimed_rows  # noqa: E402
from tp4emu.core.state import TRANSITIONS, mermaid, table_markdown  # noqa: E402

DOCS = ROOT / "docs"
GUIDE = DOCS / "guide.md"
PAGES = [GUIDE, DOCS / "ladder.md", DOCS / "inetd.md", DOCS / "conformance.md"]


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


def _signature(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """*fn*'s decorators and signature, one parameter a line, its body ``...``."""
    a = fn.args
    params: list[str] = []

    def param(arg: ast.arg, default: ast.expr | None) -> str:
        text = arg.arg + (f": {ast.unparse(arg.annotation)}" if arg.annotation else "")
        return text + (f" = {ast.unparse(default)}" if default is not None else "")

    positional = a.posonlyargs + a.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults))
    defaults += a.defaults
    params += [param(arg, d) for arg, d in zip(positional, defaults, strict=True)]
    if a.vararg:
        params.append("*" + a.vararg.arg)
    elif a.kwonlyargs:
        params.append("*")
    params += [param(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)]
    if a.kwarg:
        params.append("**" + a.kwarg.arg)
    head = "".join(f"@{ast.unparse(d)}\n" for d in fn.decorator_list)
    body = "".join(f"    {p},\n" for p in params)
    returns = f" -> {ast.unparse(fn.returns)}" if fn.returns else ""
    return f"{head}def {fn.name}(\n{body}){returns}: ..."


def signatures(path: Path, name: str) -> str:
    """Every definition of function *name* in *path* (overloads first, as written)."""
    tree = ast.parse(path.read_text())
    defs = [
        n
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
    ]
    return "```python\n" + "\n\n".join(_signature(d) for d in defs) + "\n```\n"


@functools.cache
def ladders() -> dict[str, Ladder]:
    """The demo's story, replayed: ``{"tp4": ..., "tcp": ...}``."""
    return replay_ladders()


def ladder_mermaid(name: str) -> str:
    return "```mermaid\n" + to_mermaid(ladders()[name]) + "```\n"


def conformance_cases() -> str:
    """The case library as a Markdown table, in run order."""
    rows = ["| case | group | tester | clause | the IUT must | needs |", "|---|---|---|---|---|---|"]
    for c in all_cases():
        needs = ", ".join(sorted(c.needs))
        rows.append(
            f"| `{c.name}` | {c.group.value} | {c.role} | {c.clause} | {c.title} | {needs} |"
        )
    return "\n".join(rows) + "\n"


def conformance_rows() -> str:
    """Each row of the class 4 transition table with the cases that drive it."""
    claimed = claimed_rows(all_cases())
    out = ["| state | input | driven by |", "|---|---|---|"]
    for state, inp in TRANSITIONS:
        row = (state.value, inp.value)
        if row in NOT_DRIVABLE:
            who = f"not drivable: {NOT_DRIVABLE[row]}"
        else:
            who = ", ".join(f"`{n}`" for n in claimed.get(row, []))
        out.append(f"| {state.value} | {inp.value} | {who} |")
    return "\n".join(out) + "\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "states": lambda: "```mermaid\n" + mermaid() + "```\n",
    "transitions": table_markdown,
    "config": config_table,
    "class0": class0_table,
    "open_endpoint": lambda: signatures(ROOT / "tp4emu" / "api.py", "open_endpoint"),
    "ladder_tp4": lambda: ladder_mermaid("tp4"),
    "ladder_tcp": lambda: ladder_mermaid("tcp"),
    "inetd_reasons": reasons_markdown,
    "inetd_options": options_markdown,
    "conformance_cases": conformance_cases,
    "conformance_rows": conformance_rows,
}


def files() -> dict[Path, str]:
    """The files generated whole: path -> content."""
    return {
        DOCS / "img" / f"ladder-{name}.svg": to_svg(ladder) for name, ladder in ladders().items()
    }


def render(text: str) -> str:
    """*text* with every generated section refreshed."""

    def repl(m: re.Match[str]) -> str:
        return f"<!-- generated:{m[1]} -->\n{SECTIONS[m[1]]()}<!-- /generated -->"

    return re.sub(r"<!-- generated:(\w+) -->\n.*?<!-- /generated -->", repl, text, flags=re.S)


if __name__ == "__main__":
    for page in PAGES:
        page.write_text(render(page.read_text()))
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
