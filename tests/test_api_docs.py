"""The API reference builds from the docstrings, and no link of the docs is broken.

scripts/api_docs.py does the work (pdoc, then a link check of the HTML and of the
Markdown pages); this runs it into a temporary folder, so CI builds and checks it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def api_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_builds_and_its_links_resolve(
    api_docs: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "api"
    assert api_docs.build(out) == []  # no pdoc warning
    assert api_docs.check_html(out) == []
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    for module in api_docs.modules():
        assert module.replace(".", "/") + ".html" in pages, module
    assert "index.html" in pages and (out / "search.js").exists()
    top = (out / "tp4emu.html").read_text()
    assert 'id="open_endpoint"' in top and 'id="Config"' in top
    ladder = (out / "tp4emu" / "capture" / "ladder.html").read_text()
    assert 'id="to_svg"' in ladder and 'id="LadderBuilder"' in ladder
    # the reST habits translated: no stray tilde, no role left
    text = "".join(p.read_text() for p in out.rglob("*.html"))
    assert "~tp4emu." not in text and ":class:" not in text and ":func:" not in text


def test_the_markdown_links_resolve(api_docs: ModuleType) -> None:
    assert ROOT / "docs" / "glossary.md" in api_docs.MARKDOWN
    assert api_docs.check_markdown() == []


def test_the_checkers_catch_what_is_broken(
    api_docs: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "b.html").write_text('<h1 id="here">x</h1>')
    (tmp_path / "a.html").write_text(
        '<a href="b.html#here">ok</a><a href="b.html#gone">bad anchor</a>'
        '<a href="c.html">no file</a><a href="https://example.org/x">web</a>'
        '<a href="#top">self</a><span id="top"></span><script src="d.js"></script>'
    )
    assert api_docs.check_html(tmp_path) == [
        "a.html: b.html#gone: no id 'gone' there",
        "a.html: c.html: no such file",
        "a.html: d.js: no such file",
    ]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text(
        "# Why `--disable-protocol t125`\n\n## TP4 vs. TCP (RFC 1006)\n\n## Twice\n\n## Twice\n"
        '<a id="explicit"></a>\n```sh\n# not a heading\n```\n'
    )
    page = docs / "page.md"
    page.write_text(
        "[a](other.md#why---disable-protocol-t125) [b](other.md#tp4-vs-tcp-rfc-1006)\n"
        "[c](other.md#twice-1) [d](other.md#explicit) ![e](img/x.svg) [f](#local)\n"
        "[g](other.md#not-a-heading) [h](missing.md) `[i](in-code.md)`\n"
        "```\n[j](in-a-block.md)\n```\n"
        "[k]: other.md#nope\n"
        "## Local\n"
    )
    (docs / "img").mkdir()
    (docs / "img" / "x.svg").write_text("<svg/>")
    monkeypatch.setattr(api_docs, "ROOT", tmp_path)
    assert api_docs.check_markdown([page]) == [
        "docs/page.md: other.md#not-a-heading: no heading or id 'not-a-heading' there",
        "docs/page.md: missing.md: no such file",
        "docs/page.md: other.md#nope: no heading or id 'nope' there",
    ]


def test_sphinx_habits_translated(api_docs: ModuleType) -> None:
    text = "A :class:`~tp4emu.core.Config` and :py:func:`~x.y`, Example::\n\n    code\n\n::\n"
    assert api_docs.sphinx_to_pdoc(text) == (
        "A :class:`tp4emu.core.Config` and :py:func:`x.y`, Example:\n\n    code\n\n\n"
    )
