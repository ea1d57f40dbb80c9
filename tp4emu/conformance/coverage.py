"""Which rows of tp4emu's class 4 transition table the case library drives in an IUT.

Each case names the ``(state, input)`` rows of ``tp4emu.core.state.TRANSITIONS``
it drives (``rows``: always; ``maybe_rows``: depending on the IUT's timing or
settings). The few rows no case can drive from the wire are listed in
:data:`NOT_DRIVABLE` with the reason. ``tests/test_conformance_coverage.py``
checks that the two together cover the table, and that tp4emu, run as the
IUT, really takes each case's rows while the case runs.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import CaseInfo, Row

__all__ = ["NOT_DRIVABLE", "claimed_rows"]

NOT_DRIVABLE: dict[Row, str] = {
    ("WFCC", "send"): (
        "the IUT's user sends before the CC came: tp4emu's connect() returns only once OPEN, "
        "so its user cannot (the row queues data for an API that allows it)"
    ),
    ("CONFIRMING", "DR"): (
        "a DR must carry the IUT's reference, which a CONFIRMING IUT has not sent yet: only "
        "a sweep of all 65 535 references could reach the row"
    ),
    ("CLOSING", "disconnect"): (
        "the IUT's user closes a connection it is already releasing: no effect on the wire "
        "(action nothing), and tp4emu's API does not pass it on"
    ),
    ("REFWAIT", "disconnect"): (
        "the IUT's user closes a connection already released: no effect on the wire "
        "(action nothing), and tp4emu's API does not pass it on"
    ),
}
"""Rows of the class 4 table no case drives, and why."""


def claimed_rows(cases: Iterable[CaseInfo]) -> dict[Row, list[str]]:
    """Every row the cases name (``rows`` and ``maybe_rows``), with the cases naming it."""
    out: dict[Row, list[str]] = {}
    for c in cases:
        for row in (*c.rows, *c.maybe_rows):
            out.setdefault(row, []).append(c.name)
    return out
