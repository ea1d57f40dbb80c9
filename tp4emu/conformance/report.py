"""The reports of a run: a rich table in the terminal, Markdown, HTML, JUnit XML, JSON.

Every report holds the same things: the settings, one row per case (name,
group, clause, verdict, time, why), the PICS (what the IUT was seen to
support, section by section), and for each case that did not pass what was
expected, what was observed, and the case's log of TPDUs.
"""

from __future__ import annotations

import html
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .model import CaseResult, SuiteResult, Verdict

__all__ = [
    "STYLE",
    "render_console",
    "result_line",
    "to_html",
    "to_json",
    "to_junit",
    "to_markdown",
]

STYLE = {
    Verdict.PASS: "green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "yellow",
    Verdict.ERROR: "bold magenta",
    Verdict.SKIPPED: "dim",
}
"""Colours of the verdicts in the terminal."""

_NOT_PASSED = (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR)


def _counts(suite: SuiteResult) -> str:
    counts = suite.counts()
    return ", ".join(f"{counts[v]} {v.value}" for v in Verdict if counts[v])


def _when(suite: SuiteResult) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(suite.started))


def result_line(r: CaseResult) -> str:
    """One line per case, as the progress shows it."""
    return f"{r.verdict.value:<12} {r.info.name}  ({r.duration:.3f} s)  {r.reason}"


def _title(suite: SuiteResult) -> str:
    return f"tp4emu conformance: {suite.target} (class {suite.protocol_class}, tester {suite.role})"


# ---------------------------------------------------------------- terminal


def render_console(suite: SuiteResult, console: Console, *, details: bool = True) -> None:
    """The results table (by group), the PICS and (with *details*) what went wrong."""
    table = Table(title=_title(suite), title_justify="left", show_lines=False)
    table.add_column("case", no_wrap=True)
    table.add_column("clause", max_width=30, overflow="ellipsis", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("why", ratio=1)
    group = None
    for r in suite.results:
        if r.info.group is not group:
            if group is not None:
                table.add_section()
            group = r.info.group
            table.add_row(Text(f"{group.value} (class {r.info.protocol_class})", style="bold"))
        table.add_row(
            r.info.name,
            r.info.clause.removeprefix("ISO 8073 "),
            Text(r.verdict.value, style=STYLE[r.verdict]),
            f"{r.duration:.2f}",
            r.reason,
        )
    console.print(table)
    console.print(f"{_counts(suite)} in {suite.duration:.1f} s", style="bold")
    pics = suite.pics_table()
    if pics:
        ptable = Table(title="PICS: what the IUT was seen to support", title_justify="left")
        ptable.add_column("section", no_wrap=True)
        ptable.add_column("item")
        ptable.add_column("value")
        ptable.add_column("seen in", style="dim", no_wrap=True)
        for section, items in pics.items():
            for item, (value, case) in items.items():
                ptable.add_row(section, item, value, case)
        console.print(ptable)
    if details:
        for r in suite.results:
            if r.verdict in _NOT_PASSED:
                console.print(Text(f"\n{r.verdict.value}: {r.info.name}", style=STYLE[r.verdict]))
                for line in _detail_lines(r):
                    console.print(Text(line), soft_wrap=True)


def _detail_lines(r: CaseResult) -> Iterator[str]:
    yield f"  {r.info.title} [{r.info.clause}]"
    yield f"  why: {r.reason}"
    if r.expected:
        yield f"  expected: {r.expected}"
    for o in r.observed:
        yield f"  observed: {o}"
    for n in r.notes:
        yield f"  note: {n}"
    for e in r.log:
        arrow = {"sent": ">>", "received": "<<", "event": "--"}[e.direction]
        yield f"    {e.at:9.4f} {arrow} {e.summary}"


# ---------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(suite: SuiteResult) -> str:
    """The run as a Markdown page."""
    out = [f"# {_title(suite)}", ""]
    out.append(f"Run {_when(suite)}, {suite.duration:.1f} s: **{_counts(suite)}**.")
    out.append("")
    out.append("| setting | value |")
    out.append("|---|---|")
    for key, value in suite.settings.items():
        out.append(f"| {key} | {_md(str(value))} |")
    out += ["", "## Results", "", "| case | group | clause | verdict | s | why |"]
    out.append("|---|---|---|---|---:|---|")
    for r in suite.results:
        verdict = f"**{r.verdict.value}**" if r.verdict in _NOT_PASSED else r.verdict.value
        out.append(
            f"| `{r.info.name}` | {r.info.group.value} | {_md(r.info.clause)} | {verdict} "
            f"| {r.duration:.2f} | {_md(r.reason)} |"
        )
    pics = suite.pics_table()
    out += ["", "## PICS: what the IUT was seen to support", ""]
    if not pics:
        out.append("(nothing seen)")
    for section, items in pics.items():
        out += [f"### {section}", "", "| item | value | seen in |", "|---|---|---|"]
        for item, (value, case) in items.items():
            out.append(f"| {_md(item)} | {_md(value)} | `{case}` |")
        out.append("")
    bad = [r for r in suite.results if r.verdict in _NOT_PASSED]
    if bad:
        out += ["## Details", ""]
        for r in bad:
            out += [f"### `{r.info.name}`: {r.verdict.value}", "", "```"]
            out += list(_detail_lines(r))
            out += ["```", ""]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.pass { color: #070; } .fail { color: #b00; font-weight: bold; }
.inconclusive { color: #a60; } .error { color: #909; font-weight: bold; } .skipped { color: #888; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
"""


def to_html(suite: SuiteResult) -> str:
    """The run as one standalone HTML page."""
    e = html.escape
    rows = []
    for r in suite.results:
        v = r.verdict.value
        rows.append(
            f"<tr><td><code>{e(r.info.name)}</code></td><td>{e(r.info.group.value)}</td>"
            f"<td>{e(r.info.clause)}</td><td class='{v}'>{v}</td><td>{r.duration:.2f}</td>"
            f"<td>{e(r.reason)}</td></tr>"
        )
    settings = "".join(
        f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in suite.settings.items()
    )
    pics_rows = "".join(
        f"<tr><td>{e(section)}</td><td>{e(item)}</td><td>{e(value)}</td>"
        f"<td><code>{e(case)}</code></td></tr>"
        for section, items in suite.pics_table().items()
        for item, (value, case) in items.items()
    )
    details = "".join(
        f"<details><summary class='{r.verdict.value}'>{e(r.info.name)}: {e(r.verdict.value)}"
        f"</summary><pre>{e(chr(10).join(_detail_lines(r)))}</pre></details>"
        for r in suite.results
        if r.verdict in _NOT_PASSED
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{e(_title(suite))}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(_title(suite))}</h1><p>Run {e(_when(suite))}, {suite.duration:.1f} s: "
        f"<b>{e(_counts(suite))}</b>.</p>"
        f"<table><tr><th>setting</th><th>value</th></tr>{settings}</table>"
        "<h2>Results</h2><table><tr><th>case</th><th>group</th><th>clause</th><th>verdict</th>"
        f"<th>s</th><th>why</th></tr>{''.join(rows)}</table>"
        "<h2>PICS: what the IUT was seen to support</h2><table><tr><th>section</th><th>item</th>"
        f"<th>value</th><th>seen in</th></tr>{pics_rows}</table>"
        f"<h2>Details</h2>{details or '<p>Every case passed or was skipped.</p>'}"
        "</body></html>\n"
    )


# ---------------------------------------------------------------- JUnit, JSON


def to_junit(suite: SuiteResult) -> str:
    """The run as JUnit XML (one testsuite; inconclusive and skipped cases are skipped)."""
    counts = suite.counts()
    root = ET.Element("testsuites")
    ts = ET.SubElement(
        root,
        "testsuite",
        name=_title(suite),
        tests=str(len(suite.results)),
        failures=str(counts[Verdict.FAIL]),
        errors=str(counts[Verdict.ERROR]),
        skipped=str(counts[Verdict.SKIPPED] + counts[Verdict.INCONCLUSIVE]),
        time=f"{suite.duration:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(suite.started)),
    )
    props = ET.SubElement(ts, "properties")
    for key, value in suite.settings.items():
        ET.SubElement(props, "property", name=key, value=str(value))
    for r in suite.results:
        tc = ET.SubElement(
            ts,
            "testcase",
            classname=f"conformance.class{r.info.protocol_class}.{r.info.group.name.lower()}",
            name=r.info.name,
            time=f"{r.duration:.3f}",
        )
        body = "\n".join(_detail_lines(r))
        if r.verdict is Verdict.FAIL:
            ET.SubElement(tc, "failure", message=r.reason, type="fail").text = body
        elif r.verdict is Verdict.ERROR:
            ET.SubElement(tc, "error", message=r.reason, type="error").text = body
        elif r.verdict in (Verdict.SKIPPED, Verdict.INCONCLUSIVE):
            ET.SubElement(tc, "skipped", message=f"{r.verdict.value}: {r.reason}")
        if r.log:
            ET.SubElement(tc, "system-out").text = body
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _result_json(r: CaseResult) -> dict[str, Any]:
    return {
        "name": r.info.name,
        "title": r.info.title,
        "group": r.info.group.value,
        "clause": r.info.clause,
        "class": r.info.protocol_class,
        "role": r.info.role,
        "verdict": r.verdict.value,
        "reason": r.reason,
        "expected": r.expected,
        "observed": r.observed,
        "notes": r.notes,
        "measurements": r.measurements,
        "duration": r.duration,
        "log": [
            {
                "at": e.at,
                "direction": e.direction,
                "summary": e.summary,
                "hex": e.raw.hex() if e.raw is not None else None,
            }
            for e in r.log
        ],
    }


def to_json(suite: SuiteResult) -> str:
    """The run as JSON: settings, counts, every result with its log, the PICS."""
    doc = {
        "target": suite.target,
        "class": suite.protocol_class,
        "role": suite.role,
        "started": suite.started,
        "duration": suite.duration,
        "settings": suite.settings,
        "counts": {v.value: n for v, n in suite.counts().items()},
        "results": [_result_json(r) for r in suite.results],
        "pics": [
            {"section": p.section, "item": p.item, "value": p.value, "case": p.case}
            for p in suite.pics
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
