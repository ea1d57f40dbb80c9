"""The library of test cases: the :func:`case` decorator, the list, the selection.

Cases live in :mod:`tp4emu.conformance.cases` (one module per class and
group); importing it registers them. :func:`all_cases` returns them in run
order: by group (:class:`~tp4emu.conformance.model.Group` order), then as
defined.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence

from .model import CaseInfo, Group, Role, Row
from .session import Session

CaseFn = Callable[[Session], Awaitable[None]]
"""A case function, as the decorator takes it."""

__all__ = ["CaseFn", "all_cases", "case", "parse_row", "select"]

_CASES: list[CaseInfo] = []


def parse_row(text: str) -> Row:
    """``"AKWAIT:T1"`` to ``("AKWAIT", "T1")``: a state name, a colon, an input value."""
    state, sep, inp = text.partition(":")
    if not sep or not state or not inp:
        raise ValueError(f"a row is STATE:INPUT, got {text!r}")
    return state, inp


def case(
    name: str,
    *,
    title: str,
    group: Group,
    clause: str,
    cls: int,
    role: Role = "initiator",
    rows: Iterable[str] = (),
    maybe_rows: Iterable[str] = (),
    needs: Iterable[str] = (),
    time_limit: float = 20.0,
) -> Callable[[CaseFn], CaseFn]:
    """Register the decorated async function as a test case (its docstring: the purpose).

    Args:
        name: unique dotted name (``c4.est.cr-cc``).
        title: what the IUT must do, in one line.
        group: the test group.
        clause: the clauses of ISO 8073 / RFC 1006 it checks.
        cls: 4 (UDP) or 0 (TCP).
        role: the tester's role.
        rows: ``"STATE:input"`` rows of the class 4 transition table it drives in the IUT.
        maybe_rows: rows it drives depending on the IUT's timing or settings.
        needs: ``reply``, ``echo``, ``ut``, ``max_tsdu`` (see :meth:`Session.require
            <tp4emu.conformance.session.Session.require>`).
        time_limit: seconds the case may take, besides the unknown timers it waits for.
    """

    def register(fn: CaseFn) -> CaseFn:
        if any(c.name == name for c in _CASES):
            raise ValueError(f"case {name!r} defined twice")
        _CASES.append(
            CaseInfo(
                name=name,
                title=title,
                group=group,
                clause=clause,
                protocol_class=cls,
                role=role,
                purpose=inspect.cleandoc(fn.__doc__ or title),
                fn=fn,
                rows=tuple(parse_row(r) for r in rows),
                maybe_rows=tuple(parse_row(r) for r in maybe_rows),
                needs=frozenset(needs),
                time_limit=time_limit,
            )
        )
        return fn

    return register


def all_cases() -> list[CaseInfo]:
    """Every case of the library, in run order."""
    from . import cases  # noqa: F401  (registers them)

    order = {c.name: i for i, c in enumerate(_CASES)}
    return sorted(_CASES, key=lambda c: (c.protocol_class != 4, c.group.order, order[c.name]))


def select(
    cases: Sequence[CaseInfo],
    patterns: Sequence[str] = (),
    *,
    protocol_class: int | None = None,
    role: Role | None = None,
) -> list[CaseInfo]:
    """The cases of *protocol_class* and *role* whose name or group matches a pattern.

    A pattern is a shell-style wildcard (``c4.est.*``, ``*checksum*``) matched
    against the name, or a group name (``timers``, ``"data transfer"``);
    several may be given (or one with commas). No pattern: every case.
    """
    wanted = [p.strip() for item in patterns for p in item.split(",") if p.strip()]
    out = []
    for c in cases:
        if protocol_class is not None and c.protocol_class != protocol_class:
            continue
        if role is not None and c.role != role:
            continue
        if wanted and not any(
            fnmatch.fnmatchcase(c.name, p) or p.lower() == c.group.value for p in wanted
        ):
            continue
        out.append(c)
    return out
