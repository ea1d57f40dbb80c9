"""What a conformance run is made of: cases, verdicts, results, the PICS, the settings.

Terms follow ISO/IEC 9646 (conformance testing methodology): a *test case*
has a purpose and a *verdict* (pass, fail, inconclusive); it is made of a
*preamble* (bringing the implementation under test, the IUT, into the state
the test needs), the *test body* and a *postamble* (back to idle); the
*PICS* (protocol implementation conformance statement) says what the IUT
supports — here, what it was *seen* to support during the run. The *upper
tester* is the IUT's user, driven by the test (here, optionally, through
the in-band commands of :mod:`tp4emu.conformance.apps`).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CaseFunction",
    "CaseInfo",
    "CaseResult",
    "Exchange",
    "Group",
    "PicsItem",
    "Role",
    "Row",
    "SuiteResult",
    "Target",
    "Timers",
    "Verdict",
    "parse_target",
]

Role = Literal["initiator", "responder"]
"""The tester's role: ``initiator`` sends the CR (the IUT is a server);
``responder`` listens and the IUT connects to it (the IUT is a client)."""

Row = tuple[str, str]
"""A row of the class 4 transition table, ``(state, input)`` by name:
``("AKWAIT", "T1")`` (the values of ``tp4emu.core.state``'s enums)."""

CaseFunction = Callable[[Any], Awaitable[None]]
"""A test case: an async function of its :class:`~tp4emu.conformance.session.Session`
(typed precisely where cases are registered: :func:`~tp4emu.conformance.registry.case`)."""


class Verdict(enum.Enum):
    """The outcome of one test case (ISO/IEC 9646-1 verdicts, plus error and skipped)."""

    PASS = "pass"
    """The IUT did what the clause requires."""
    FAIL = "fail"
    """The IUT did something the clause forbids, or not what it requires."""
    INCONCLUSIVE = "inconclusive"
    """Neither: the preamble could not be completed, an option the case tests
    was not negotiated, a timer was longer than the tester waits..."""
    ERROR = "error"
    """The tester itself failed (a bug, or the network gave an error)."""
    SKIPPED = "skipped"
    """Not run: the case needs something this run does not have (an upper
    tester, an application reply, a known timer)."""


class Group(enum.Enum):
    """Test groups, in the order a suite runs them (as ISO/IEC 9646 suites are grouped)."""

    ESTABLISHMENT = "establishment"
    DATA = "data transfer"
    FLOW = "flow control"
    EXPEDITED = "expedited data"
    RELEASE = "release"
    ERRORS = "error handling"
    INVALID = "invalid input"
    TIMERS = "timers"

    @property
    def order(self) -> int:
        """Position of the group in a run."""
        return list(Group).index(self)


@dataclass(frozen=True)
class CaseInfo:
    """A test case of the library: what it checks and how to run it."""

    name: str
    """Unique, dotted: ``c4.est.cr-cc`` (class 4) or ``c0.data.segmented`` (class 0)."""
    title: str
    """One line: what the IUT must do."""
    group: Group
    clause: str
    """The clauses checked: ``ISO 8073 6.5, 13.4`` or ``RFC 1006 6``."""
    protocol_class: int
    """4: class 4 over UDP (``udp://``); 0: RFC 1006 over TCP (``tcp://``)."""
    role: Role
    """The tester's role in the case."""
    purpose: str
    """The test purpose: the case function's docstring."""
    fn: CaseFunction
    rows: tuple[Row, ...] = ()
    """Rows of the class 4 transition table the case drives in the IUT
    (``tests/test_conformance_coverage.py`` checks that tp4emu takes them)."""
    maybe_rows: tuple[Row, ...] = ()
    """Rows the case drives depending on the IUT's timing or settings."""
    needs: frozenset[str] = frozenset()
    """What the case needs of the run: ``reply`` (an application that answers),
    ``echo`` (one that echoes), ``ut`` (the upper tester commands), ``max_tsdu``
    (the IUT's TSDU limit known)."""
    time_limit: float = 20.0
    """Hard bound of the case's duration (s), on top of the timers it waits for."""

    def __post_init__(self) -> None:
        if self.protocol_class not in (0, 4):
            raise ValueError(f"{self.name}: class must be 0 or 4")


@dataclass(frozen=True)
class Target:
    """The implementation under test: where it is and how it is reached."""

    scheme: Literal["udp", "tcp"]
    host: str
    port: int

    @property
    def protocol_class(self) -> int:
        """4 over UDP, 0 over TCP (RFC 1006)."""
        return 4 if self.scheme == "udp" else 0

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_target(text: str) -> Target:
    """``udp://HOST:PORT`` or ``tcp://HOST:PORT`` (``[V6]`` allowed).

    Raises:
        ValueError: anything else.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise ValueError(f"expected udp://HOST:PORT or tcp://HOST:PORT, got {text!r}")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 0xFFFF:
        raise ValueError(f"expected udp://HOST:PORT or tcp://HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"no host in {text!r}")
    return Target("udp" if scheme == "udp" else "tcp", host, int(port))


@dataclass(frozen=True)
class Timers:
    """What is known of the IUT's timers (None: unknown, measured by the timer cases).

    Retransmission times exclude the acknowledgement time the tester
    announces in its CR and CC (0x85): ISO 8073 12.2.1.1 has T1 cover the
    peer's acknowledgement delay, so a class 4 IUT may wait that much longer.
    """

    cr_retransmit: float | None = None
    """T1 of the IUT's CR."""
    retransmit: float | None = None
    """T1 of CC, DR and DT before any round-trip measurement."""
    max_retransmit: float | None = None
    """The longest T1 grows to by back-off."""
    retransmissions: int | None = None
    """N: retransmissions before giving up."""
    window: float | None = None
    """W: the AK re-sent on an idle connection."""
    inactivity: float | None = None
    """I: an IUT that receives nothing this long releases."""
    freeze: float | None = None
    """L: a released reference stays frozen this long."""
    confirm_timeout: float | None = None
    """An IUT's user that never answers a CR: refused after this long."""
    give_up_time: float | None = None
    """An IUT retransmitting DTs gives up only after this long without progress."""
    cr_timeout: float | None = None
    """Class 0: how long the IUT waits for the CR on a new TCP connection."""

    def known(self) -> dict[str, float | int]:
        """The timers given, by their command-line name."""
        out: dict[str, float | int] = {}
        for name, attr in TIMER_NAMES.items():
            value = getattr(self, attr)
            if value is not None:
                out[name] = value
        return out


TIMER_NAMES: dict[str, str] = {
    "T1": "retransmit",
    "T1-CR": "cr_retransmit",
    "T1-max": "max_retransmit",
    "N": "retransmissions",
    "W": "window",
    "I": "inactivity",
    "L": "freeze",
    "confirm": "confirm_timeout",
    "give-up": "give_up_time",
    "CR-wait": "cr_timeout",
}
"""Command-line names of the :class:`Timers` fields (``--timer T1=0.5``)."""


@dataclass(frozen=True)
class Exchange:
    """One line of a case's log: a TPDU sent or received, or an event."""

    at: float
    """Seconds since the case started."""
    direction: Literal["sent", "received", "event"]
    summary: str
    raw: bytes | None = None


@dataclass
class CaseResult:
    """The outcome of one case."""

    info: CaseInfo
    verdict: Verdict
    reason: str = ""
    """Why (for pass: what was seen)."""
    expected: str | None = None
    """The expectation that did not hold (fail, inconclusive)."""
    observed: list[str] = field(default_factory=list)
    """What arrived instead (TPDUs, as ``tp4emu decode`` shows them)."""
    log: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)
    """Timer values measured (s), counts..."""
    pics: list[PicsItem] = field(default_factory=list)
    """What the case saw the IUT support."""
    duration: float = 0.0
    started: float = 0.0
    """Wall-clock time (seconds since the epoch)."""


@dataclass(frozen=True)
class PicsItem:
    """One statement of the PICS: an item and what the IUT was seen to do."""

    section: str
    """``classes``, ``formats``, ``options``, ``parameters``, ``timers``, ``behaviour``."""
    item: str
    value: str
    case: str
    """The case that saw it."""


@dataclass
class SuiteResult:
    """A whole run: its settings, every case's result, the PICS."""

    target: str
    role: Role
    protocol_class: int
    started: float
    duration: float = 0.0
    results: list[CaseResult] = field(default_factory=list)
    pics: list[PicsItem] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[Verdict, int]:
        """How many cases got each verdict."""
        out = {v: 0 for v in Verdict}
        for r in self.results:
            out[r.verdict] += 1
        return out

    @property
    def ok(self) -> bool:
        """No case failed and the tester made no error."""
        return not any(r.verdict in (Verdict.FAIL, Verdict.ERROR) for r in self.results)

    def pics_table(self) -> dict[str, dict[str, tuple[str, str]]]:
        """The PICS by section then item: ``(value, case)``; the first case to see an item wins,
        a later different value is appended (``"yes; no"``: the IUT was not consistent)."""
        out: dict[str, dict[str, tuple[str, str]]] = {}
        for p in self.pics:
            section = out.setdefault(p.section, {})
            if p.item not in section:
                section[p.item] = (p.value, p.case)
            else:
                value, case = section[p.item]
                if p.value not in value.split("; "):
                    section[p.item] = (f"{value}; {p.value}", case)
        return out
