"""Build the API reference from the docstrings (pdoc) and check the links of the docs.

Run: .venv/bin/python scripts/api_docs.py [OUT]   (default build/api; exit status 1 on a
broken link or a pdoc warning). tests/test_api_docs.py does the same into a temporary
folder, so ./scripts/test (and CI) builds and checks it every time.

* :func:`build` renders every module of tp4emu (but ``__main__``) into OUT with pdoc, the
  docstrings read as Google style (``Args:``, ``Raises:``) with reST roles. Two reST habits
  pdoc does not know are translated first: the ``~`` of ``:class:`~a.b.C``` (Sphinx: show
  only ``C``) is dropped, so the name links instead of showing a stray tilde, and a
  paragraph ending in ``::`` before a literal block ends in ``:``.
* :func:`check_html` follows every relative ``href`` and ``src`` of the generated pages: the
  file must exist and a ``#fragment`` must be an ``id`` in it.
* :func:`check_markdown` does the same for the links and images of README.md and the other
  Markdown pages (``docs/``, ``examples/``, ``benchmarks/``): a relative target must exist,
  and a ``#fragment`` into a Markdown page must be one of its headings (as GitHub makes their
  anchors) or an explicit ``id``. Links inside code are not links; web addresses are not
  followed (no network).
"""

from __future__ import annotations

import html.parser
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARKDOWN = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "examples" / "README.md",
    ROOT / "benchmarks" / "README.md",
]
"""The Markdown pages whose links are checked."""
TEMPLATES = Path(__file__).resolve().parent / "pdoc"
"""pdoc template overrides (module.html.jinja2: no links to private base classes)."""


def modules() -> list[str]:
    """Every module of the package, but ``__main__`` (importing it would run the CLI)."""
    import tp4emu

    names = ["tp4emu"]
    names += [m.name for m in pkgutil.walk_packages(tp4emu.__path__, "tp4emu.")]
    return [n for n in names if not n.endswith(".__main__")]


_ROLE_TILDE = re.compile(r"(:(?:py:)?[a-z]+:`)~")
_LITERAL_INTRO = re.compile(r"(?m)^(.*\S)::[ \t]*$")
_LITERAL_ALONE = re.compile(r"(?m)^[ \t]*::[ \t]*$")


def sphinx_to_pdoc(docstring: str) -> str:
    """*docstring* with the two reST habits pdoc does not know translated (see above)."""
    text = _ROLE_TILDE.sub(r"\1", docstring)
    text = _LITERAL_INTRO.sub(r"\1:", text)
    return _LITERAL_ALONE.sub("", text)


def build(out: Path) -> list[str]:
    """Render the API reference into *out*; return pdoc's warnings (none expected)."""
    import pdoc
    import pdoc.docstrings
    import pdoc.render

    original = pdoc.docstrings.convert

    def convert(docstring: str, docformat: str, source_file: Path | None) -> str:
        return original(sphinx_to_pdoc(docstring), docformat, source_file)

    pdoc.render.configure(
        docformat="google",
        show_source=False,
        footer_text="tp4emu API reference",
        template_directory=TEMPLATES,
    )
    pdoc.docstrings.convert = convert  # type: ignore[assignment]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pdoc.pdoc(*modules(), output_directory=out)
    finally:
        pdoc.docstrings.convert = original
    return [
        str(w.message)
        for w in caught
        if "has already been added" not in str(w.message)  # a package and its modules listed
    ]


# ---------------------------------------------------------------- HTML


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link", "area")) or (
                name == "src" and tag in ("img", "script", "iframe")
            ):
                self.links.append(value)


def _external(target: str) -> bool:
    parts = urlsplit(target)
    return bool(parts.scheme or parts.netloc)


def check_html(out: Path) -> list[str]:
    """Broken relative links of the HTML pages under *out*: ``"page: href: why"`` each."""
    parsed: dict[Path, _Links] = {}

    def page(path: Path) -> _Links:
        if path not in parsed:
            p = _Links()
            p.feed(path.read_text(encoding="utf-8"))
            parsed[path] = p
        return parsed[path]

    problems: list[str] = []
    pages = sorted(out.rglob("*.html"))
    if not pages:
        return [f"{out}: no HTML pages"]
    for path in pages:
        for href in page(path).links:
            if _external(href) or href.startswith("javascript:"):
                continue
            parts = urlsplit(href)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            where = f"{path.relative_to(out)}: {href}"
            if not target.exists():
                problems.append(f"{where}: no such file")
                continue
            if target.is_dir():
                target = target / "index.html"
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in page(target).ids:
                problems.append(f"{where}: no id {parts.fragment!r} there")
    return problems


# ---------------------------------------------------------------- Markdown

_FENCE = re.compile(r"^(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_HTML_ATTR = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
_HTML_ID = re.compile(r"""<[a-z]+\b[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.I)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"<[^>]+>", "", heading)  # inline HTML
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _prose(text: str) -> list[str]:
    """The lines of *text* outside fenced code, with code spans blanked."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line.strip())
        if fence is not None:
            if m and line.strip().startswith(fence):
                fence = None
            lines.append("")
            continue
        if m:
            fence = m.group(1)
            lines.append("")
            continue
        lines.append(_CODE_SPAN.sub(lambda c: " " * len(c.group(0)), line))
    return lines


def anchors(path: Path) -> set[str]:
    """The fragments a link into the Markdown page *path* may name."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line.strip())
        if fence is not None:
            if m and line.strip().startswith(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        h = _HEADING.match(line)
        if h:
            slug = github_anchor(h.group(2))
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
        found.update(_HTML_ID.findall(line))
    return found


def links(path: Path) -> list[str]:
    """The link and image targets of the Markdown page *path* (code excluded)."""
    out: list[str] = []
    for line in _prose(path.read_text(encoding="utf-8")):
        out += _LINK.findall(line)
        out += _HTML_ATTR.findall(line)
        ref = _REF_DEF.match(line)
        if ref:
            out.append(ref.group(1))
    return out


def check_markdown(paths: list[Path] | None = None) -> list[str]:
    """Broken relative links of the Markdown *paths* (default :data:`MARKDOWN`)."""
    problems: list[str] = []
    for path in paths if paths is not None else MARKDOWN:
        for target in links(path):
            if _external(target):
                continue
            parts = urlsplit(target)
            dest = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            where = f"{path.relative_to(ROOT)}: {target}"
            if not dest.exists():
                problems.append(f"{where}: no such file")
                continue
            fragment = unquote(parts.fragment)
            if fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                problems.append(f"{where}: no heading or id {parts.fragment!r} there")
    return problems


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "api"
    problems = [f"pdoc: {w}" for w in build(out)]
    problems += check_html(out)
    problems += check_markdown()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"API reference: {out / 'index.html'}" + (f"; {len(problems)} problems" if problems else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
