"""The suite's table (rich) and the lines under it."""

from __future__ import annotations

import math
from typing import Any

from .suite import FigureResult, SuiteResult

__all__ = ["fmt", "fmt_ratio", "render", "table"]


def fmt(x: float, unit: str = "") -> str:
    """A measured number with about three significant digits (``-``: not measured)."""
    if math.isnan(x):
        return "-"
    a = abs(x)
    if a == 0 or a >= 100:
        text = f"{x:.0f}"
    elif a >= 10:
        text = f"{x:.1f}"
    elif a >= 1:
        text = f"{x:.2f}"
    else:
        text = f"{x:.3g}"
    return f"{text} {unit}".rstrip()


def fmt_ratio(x: float) -> str:
    """A ratio: two decimals, three below 0.1."""
    if math.isnan(x):
        return "-"
    return f"{x:.3f}" if abs(x) < 0.095 else f"{x:.2f}"


def _range(lo: float, hi: float, form: Any = fmt) -> str:
    if math.isnan(lo):
        return "-"
    return f"{form(lo)}-{form(hi)}"


def _verdict(ok: bool | None) -> tuple[str, str]:
    if ok is None:
        return "", ""
    return ("✓", "green") if ok else ("✗", "red")


def _change(f: FigureResult, result: SuiteResult) -> tuple[str, str, str]:
    old = result.old(f.figure.name)
    if old is None:
        return "-", "-", ""
    median, rel = old
    if math.isnan(rel):
        return fmt(median, f.figure.unit), "-", ""
    better = rel > 0 if f.figure.higher_is_better else rel < 0
    style = "" if abs(rel) < 0.02 else ("green" if better else "red")
    return fmt(median, f.figure.unit), f"{100 * rel:+.1f} %", style


def table(result: SuiteResult) -> Any:
    """The rich Table of *result*'s figures."""
    from rich.table import Table
    from rich.text import Text

    t = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    t.add_column("figure")
    t.add_column("goal")
    t.add_column("median", justify="right")
    t.add_column("min-max", justify="right")
    t.add_column("baseline median", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column("ratio min-max", justify="right")
    t.add_column("goal?", justify="center")
    if result.compare is not None:
        t.add_column(f"old median{result.compare_label}", justify="right")
        t.add_column("change", justify="right")
    for f in result.figures:
        unit = f.figure.unit
        base = ""
        if f.baseline_label is not None:
            base = f"{f.baseline_label}: {fmt(f.baseline.median, unit)}"
        mark, style = _verdict(f.ok)
        cells: list[Any] = [
            f.title,
            f.goal_text,
            fmt(f.value.median, unit),
            _range(f.value.min, f.value.max),
            base,
            fmt_ratio(f.ratio.median) if f.figure.baseline else "",
            _range(f.ratio.min, f.ratio.max, fmt_ratio) if f.figure.baseline else "",
            Text(mark, style=style),
        ]
        if result.compare is not None:
            old, rel, rel_style = _change(f, result)
            cells += [old, Text(rel, style=rel_style)]
        t.add_row(*cells)
    return t


def _headline(result: SuiteResult) -> str:
    m = result.meta
    commit = (m.get("commit") or "no commit")[:10]
    if m.get("dirty"):
        commit += " (modified)"
    mach = m.get("machine", {})
    load = mach.get("loadavg_start")
    load_text = f", load {load[0]:.2f}" if load else ""
    runs = result.options.runs
    minutes = m.get("seconds", 0.0) / 60
    return (
        f"tp4emu bench: {commit}, {runs} run{'s' * (runs != 1)}, "
        f"{mach.get('nproc')} cores{load_text}, {minutes:.1f} min"
    )


def render(result: SuiteResult, console: Any) -> None:
    """Print the headline, the table and the notes on *console* (a rich Console)."""
    from rich.text import Text

    console.print(Text(_headline(result), style="bold"))
    console.print(table(result))
    notes = [
        "ratio: the median over the runs of tp4emu's sample / its baseline's in the same run; "
        "goal? is about the median (drops: every run); nothing is asserted",
    ]
    drops = result.kernel_drops
    if drops is not None:
        notes.append(f"kernel UDP receive-buffer drops (RcvbufErrors) over every sample: {drops}")
    for s in result.failed:
        notes.append(f"failed: {s.bench} {s.variant} run {s.run + 1}: {s.error}")
    for note in notes:
        console.print(Text(note, style="red" if note.startswith("failed") else "dim"))
