"""The DSL a test case is written in: one :class:`Session` per case run.

A case is an async function of its session::

    @case("c4.est.cr-cc", group=Group.ESTABLISHMENT, clause="ISO 8073 6.5, 13.4", ...)
    async def cr_answered(s: Session) -> None:
        \"\"\"A CR is answered with a CC of class 4 that echoes our reference.\"\"\"
        await s.send(s.c4_cr())
        await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 4,
                                   "src_ref": NONZERO}, bind={"ref": "src_ref"})
        await s.send(AK(s["ref"], 0, 15), checksum=True)
        await s.expect_silence(0.3)

The verbs:

* :meth:`Session.send` — TPDUs built with :mod:`tp4emu.wire` (a datagram
  each, or concatenated; TPKT-framed over TCP), or raw octets.
* :meth:`Session.expect` — the next TPDU must match a :class:`Pattern`
  (types, fields with :mod:`~tp4emu.conformance.match` wildcards, values to
  bind), within a time: ``timeout=`` (from now), ``at=`` (t ± the tolerance,
  from ``since``, by default the last send) or ``window=(lo, hi)``.
  :meth:`Session.expect_all` takes several in any order.
* :meth:`Session.expect_silence` — nothing (but what is ignored) for a time.
* :meth:`Session.expect_close` — the TCP connection is closed by the IUT.
* :meth:`Session.preamble` / :meth:`Session.postamble` — blocks whose
  failure makes the verdict inconclusive / only adds a note.
* :meth:`Session.fail`, :meth:`Session.inconclusive`, :meth:`Session.skip`,
  :meth:`Session.note`, :meth:`Session.measure`, :meth:`Session.pics`.

Arrivals are taken in order. By default the first arrival that is not
ignored must match; ``skip=True`` waits past those that do not (they are
kept as observed, for the report). What a case declares *benign*
(:attr:`Session.benign`: e.g. a duplicate AK, a DT retransmitted after it
was acknowledged) is skipped by every expectation it does not match.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import trio

from ..wire import TPDU, TPDUError, decode, encode_one, encode_tpkt
from ..wire.describe import format_tpdu
from .apps import APPS, App
from .links import Arrival, TcpLink, UdpLink
from .match import describe_fields, mismatches
from .model import CaseInfo, Exchange, PicsItem, Verdict
from .settings import Settings

__all__ = [
    "CaseEnd",
    "Fail",
    "Inconclusive",
    "Observed",
    "Pattern",
    "Session",
    "Skip",
]


class CaseEnd(Exception):
    """A verdict reached before the case function returned."""

    verdict = Verdict.FAIL

    def __init__(
        self, reason: str, *, expected: str | None = None, observed: Sequence[str] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected
        self.observed = list(observed)


class Fail(CaseEnd):
    """Verdict fail."""

    verdict = Verdict.FAIL


class Inconclusive(CaseEnd):
    """Verdict inconclusive."""

    verdict = Verdict.INCONCLUSIVE


class Skip(CaseEnd):
    """Not run (a need of the case is not met)."""

    verdict = Verdict.SKIPPED


@dataclass(frozen=True)
class Observed:
    """One thing that arrived from the IUT: a TPDU, or what stands for one."""

    at: float
    """``trio.current_time()`` of its arrival."""
    kind: Literal["tpdu", "undecodable", "bad", "eof", "reset"]
    tpdu: TPDU | None = None
    raw: bytes = b""
    error: str = ""
    source: tuple[str, int] | None = None

    def summary(self) -> str:
        """One line, as ``tp4emu decode`` shows a TPDU."""
        if self.tpdu is not None:
            return format_tpdu(self.tpdu)
        if self.kind == "undecodable":
            return f"undecodable {self.raw[:24].hex()}: {self.error}"
        if self.kind == "bad":
            return f"not a TPKT stream: {self.error}"
        return "TCP connection closed by the IUT" if self.kind == "eof" else "TCP connection reset"


Ignore = tuple[type, ...] | Callable[[Observed], bool]
"""What an expectation passes over: TPDU types, or a predicate."""

_DEFAULT: Any = object()


class Pattern:
    """An expected TPDU: one of *kinds*, whose *fields* match; *bind* names values to keep.

    ``bind={"ref": "src_ref"}`` keeps the TPDU's ``src_ref`` as ``s["ref"]``.
    *checksum*: True (present and valid), False (absent), None (not checked),
    or the session's default (class 4: as the connection uses it; every
    received TPDU whose checksum is wrong fails unless None).
    """

    def __init__(
        self,
        *kinds: type,
        fields: Mapping[str, Any] | None = None,
        bind: Mapping[str, str] | None = None,
        checksum: bool | None = _DEFAULT,
        label: str = "",
    ) -> None:
        if not kinds:
            raise TypeError("a Pattern needs at least one TPDU type")
        self.kinds = kinds
        self.fields = dict(fields or {})
        self.bind = dict(bind or {})
        self.checksum = checksum
        self.label = label

    def describe(self, bindings: Mapping[str, Any]) -> str:
        """What is expected, in words."""
        names = " or ".join(k.__name__ for k in self.kinds)
        text = f"{names} {describe_fields(self.fields, bindings)}".strip()
        return f"{text} ({self.label})" if self.label else text

    def problems(
        self, item: Observed, bindings: Mapping[str, Any], default_checksum: bool | None
    ) -> list[str]:
        """Why *item* does not match (empty: it does)."""
        tpdu = item.tpdu
        if tpdu is None:
            return [item.summary()]
        if not isinstance(tpdu, self.kinds):
            return [f"a {type(tpdu).__name__}"]
        out = mismatches(tpdu, self.fields, bindings)
        want = default_checksum if self.checksum is _DEFAULT else self.checksum
        if want is not None or tpdu.checksum_ok is False:
            if tpdu.checksum_ok is False and want is not None:
                out.append("checksum: invalid")
            elif want is True and tpdu.checksum_ok is None:
                out.append("checksum: absent, expected one")
            elif want is False and tpdu.checksum_ok is not None:
                out.append("checksum: present, expected none")
        return out


def _as_pattern(what: tuple[Any, ...], **kw: Any) -> Pattern:
    if len(what) == 1 and isinstance(what[0], Pattern):
        if any(v not in (None, _DEFAULT, "") for v in kw.values()):
            raise TypeError("give either a Pattern or types with fields, not both")
        return what[0]
    return Pattern(
        *what,
        fields=kw.get("fields"),
        bind=kw.get("bind"),
        checksum=kw.get("checksum", _DEFAULT),
        label=kw.get("label") or "",
    )


class Session:
    """The state and the verbs of one case run (see the module docstring)."""

    def __init__(
        self,
        info: CaseInfo,
        settings: Settings,
        link: UdpLink | TcpLink,
        *,
        our_ref: int,
        stale: Callable[[TPDU], bool] | None = None,
    ) -> None:
        self.info = info
        self.settings = settings
        self.link = link
        self.app: App = APPS[settings.app]
        self.our_ref = our_ref
        """The tester's transport reference in this case (never reused in a run)."""
        self.vars: dict[str, Any] = {}
        """Values bound by expectations (``s["ref"]``)."""
        self.log: list[Exchange] = []
        self.notes: list[str] = []
        self.measurements: dict[str, float] = {}
        self.pics_items: list[PicsItem] = []
        self.outcome = "as expected"
        """What a pass saw, in a few words (set by the case)."""
        self.t0 = trio.current_time()
        self.last_sent = self.t0
        """When the tester last sent something (``trio.current_time()``)."""
        self.last_at = self.t0
        """When the last matched TPDU arrived."""
        self.extended: bool | None = None
        """Class 4: the format DTs, EDs and AKs are decoded in (None: inferred)."""
        self.checksum: bool | None = None
        """Class 4: whether the IUT's TPDUs must carry a valid checksum (None: not checked)."""
        self.benign: Callable[[Observed], bool] | None = None
        """Arrivals every expectation passes over unless they match it."""
        self._stale = stale
        self._pending: deque[Observed] = deque()
        self.observed: list[Observed] = []
        """Everything that arrived in this case."""
        self.claimed: set[int] = set()
        """Responder: the SRC-REFs of the IUT's CRs this case took on."""

    # ----------------------------------------------------------- basics

    @property
    def protocol_class(self) -> int:
        """4 (UDP) or 0 (TCP)."""
        return self.info.protocol_class

    def __getitem__(self, name: str) -> Any:
        return self.vars[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.vars[name] = value

    def tol(self, t: float) -> float:
        """The timing tolerance around *t* (settings: max(4 ms, 12.5 %) by default)."""
        return self.settings.tol(t)

    def elapsed(self) -> float:
        """Seconds since the case started."""
        return trio.current_time() - self.t0

    def _rel(self, at: float) -> float:
        return at - self.t0

    def _log(
        self,
        at: float,
        direction: Literal["sent", "received", "event"],
        text: str,
        raw: bytes | None = None,
    ) -> None:
        self.log.append(Exchange(round(self._rel(at), 6), direction, text, raw))

    def event(self, text: str) -> None:
        """A line in the case's log (not a TPDU)."""
        self._log(trio.current_time(), "event", text)

    def note(self, text: str) -> None:
        """A remark for the report."""
        self.notes.append(text)

    def measure(self, name: str, value: float) -> None:
        """A value measured (a timer in s, a count), for the report and the PICS."""
        self.measurements[name] = round(float(value), 6)

    def pics(self, section: str, item: str, value: object) -> None:
        """State what the IUT was seen to support (``section``: classes, formats,
        options, parameters, timers, behaviour)."""
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        self.pics_items.append(PicsItem(section, item, text, self.info.name))

    def fail(
        self, reason: str, *, expected: str | None = None, observed: Sequence[str] = ()
    ) -> NoReturn:
        """End with verdict fail."""
        raise Fail(reason, expected=expected, observed=observed)

    def inconclusive(self, reason: str) -> NoReturn:
        """End with verdict inconclusive."""
        raise Inconclusive(reason)

    def skip(self, reason: str) -> NoReturn:
        """End as skipped (not applicable to this IUT)."""
        raise Skip(reason)

    def require(self, *needs: str) -> None:
        """Skip the case unless the run has each need: ``reply``, ``echo``, ``ut``, ``max_tsdu``."""
        for need in needs:
            if need == "reply" and not self.app.replies:
                self.skip(f"needs an application that answers (--app {self.app.name} does not)")
            if need == "echo" and not self.app.echoes:
                self.skip(f"needs an echoing application (--app {self.app.name} does not echo)")
            if need == "ut" and not self.settings.upper_tester:
                self.skip("needs the upper tester commands (--upper-tester)")
            if need == "max_tsdu" and self.settings.max_tsdu is None:
                self.skip("needs the IUT's largest TSDU (--max-tsdu)")

    @contextlib.asynccontextmanager
    async def preamble(self, what: str = "preamble") -> AsyncIterator[None]:
        """A block bringing the IUT into the tested state: its failure is inconclusive."""
        try:
            yield
        except Fail as exc:
            raise Inconclusive(
                f"{what} failed: {exc.reason}", expected=exc.expected, observed=exc.observed
            ) from None

    @contextlib.asynccontextmanager
    async def postamble(self, what: str = "postamble") -> AsyncIterator[None]:
        """A block bringing the IUT back to idle: its failure is only noted."""
        try:
            yield
        except (Fail, Inconclusive) as exc:
            self.note(f"{what}: {exc.reason}")

    # ----------------------------------------------------------- sending

    async def send(
        self,
        *items: TPDU | bytes,
        checksum: bool | None = None,
        concat: bool = False,
        frame: bool = True,
    ) -> float:
        """Send TPDUs (or raw octets) to the IUT; returns when (``trio.current_time()``).

        Over UDP each item is one datagram, or all one datagram with *concat*.
        Over TCP each TPDU is framed in a TPKT (*frame*), raw octets go as
        they are. *checksum*: class 4 TPDUs carry the checksum (default: as
        the connection uses it, :attr:`checksum`; True before one is open).
        """
        use = checksum if checksum is not None else (self.checksum is not False)
        if self.protocol_class == 0:
            use = False
        out: list[tuple[bytes, bool, str]] = []  # (payload, raw, shown)
        for item in items:
            if isinstance(item, (bytes, bytearray)):
                octets = bytes(item)
                more = "..." if len(octets) > 24 else ""
                out.append((octets, True, f"raw {octets[:24].hex()}{more}"))
            else:
                payload = encode_one(item, checksum=use)
                out.append(
                    (payload, False, format_tpdu(decode(payload)[0]) if use else format_tpdu(item))
                )
        if concat and len(out) > 1:
            out = [(b"".join(p for p, _, _ in out), False, " + ".join(t for _, _, t in out))]
        at = trio.current_time()
        for payload, raw, text in out:
            if isinstance(self.link, TcpLink):
                if self.link.stream is None:
                    await self.connect()
                at = await self.link.send(payload if raw or not frame else encode_tpkt(payload))
            else:
                at = await self.link.send(payload)
            self._log(at, "sent", text, payload)
        self.last_sent = at
        return at

    async def connect(self) -> None:
        """TCP, initiator: open the connection to the target (the first send does it too).

        Raises:
            Inconclusive: the target does not accept TCP connections.
        """
        link = self.link
        assert isinstance(link, TcpLink)
        target = self.settings.target
        try:
            await link.connect(target.host, target.port, self.settings.response_time * 5)
        except OSError as exc:
            self.inconclusive(f"cannot open a TCP connection to {target}: {exc}")
        self.event(f"TCP connection {link.local} -> {link.peer}")

    async def close(self, *, abort: bool = False) -> None:
        """TCP: close our side of the connection (a reset with *abort*)."""
        if isinstance(self.link, TcpLink) and self.link.stream is not None:
            await self.link.close(abort=abort)
            self.event("TCP connection reset by the tester" if abort else "TCP close by the tester")

    async def half_close(self) -> None:
        """TCP: send our FIN (a normal release in RFC 1006), keep reading."""
        if isinstance(self.link, TcpLink) and self.link.stream is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await self.link.stream.send_eof()
            self.event("TCP FIN sent by the tester")

    # ----------------------------------------------------------- receiving

    def _convert(self, arrival: Arrival) -> list[Observed]:
        src = arrival.source
        if arrival.kind != "data":
            return [
                Observed(
                    arrival.at, arrival.kind, raw=arrival.payload, error=arrival.error, source=src
                )
            ]
        try:
            tpdus = decode(arrival.payload, extended=self.extended)
        except TPDUError as exc:
            return [
                Observed(arrival.at, "undecodable", raw=arrival.payload, error=str(exc), source=src)
            ]
        if self.protocol_class == 0:
            tpdus = tpdus[:1]  # class 0: a TPDU runs to the end of its TPKT
        return [Observed(arrival.at, "tpdu", t, arrival.payload, source=src) for t in tpdus]

    async def _fill(self, deadline: float) -> bool:
        """Wait for one arrival (until *deadline*); False when none came."""
        while True:
            arrival = await self.link.receive(deadline)
            if arrival is None:
                return False
            items = self._convert(arrival)
            if self._stale is not None:
                fresh = [i for i in items if i.tpdu is None or not self._stale(i.tpdu)]
                if not fresh:
                    continue  # a previous case's connection
                items = fresh
            self._take_in(items)
            return True

    def _take_in(self, items: list[Observed]) -> None:
        if isinstance(self.link, UdpLink) and self.link.peer is None and items:
            source = items[0].source
            assert source is not None
            self.link.adopt(source)
            self.event(f"the IUT is {source[0]}:{source[1]}")
        for item in items:
            self._log(item.at, "received", item.summary(), item.raw or None)
            self.observed.append(item)
            self._pending.append(item)

    def carry_in(self, items: list[Observed]) -> None:
        """Responder: arrivals a previous case left (the IUT's next CR), oldest first."""
        self._take_in(items)

    def forget(self, test: Callable[[Observed], bool]) -> None:
        """Drop the arrivals not yet taken that *test* picks (they stay in the log)."""
        self._pending = deque(i for i in self._pending if not test(i))

    async def next(self, deadline: float) -> Observed | None:
        """The next arrival not yet taken, or None by *deadline* (``trio.current_time()``)."""
        if not self._pending and not await self._fill(deadline):
            return None
        return self._pending.popleft()

    def _passes_over(self, item: Observed, ignore: Ignore) -> bool:
        if callable(ignore) and not isinstance(ignore, tuple):
            if ignore(item):
                return True
        elif item.tpdu is not None and isinstance(item.tpdu, ignore):
            return True
        return self.benign is not None and self.benign(item)

    def _window(
        self,
        timeout: float | None,
        at: float | None,
        window: tuple[float | None, float | None] | None,
        since: float | None,
    ) -> tuple[float, float | None, float, str]:
        """(deadline, earliest, reference, text) of an expectation."""
        ref = self.last_sent if since is None else since
        if at is not None:
            tol = self.tol(at)
            lo: float | None = at - tol
            hi = at + tol
            return ref + hi, lo, ref, f"at {at:.3f} s ± {tol * 1000:.1f} ms"
        if window is not None:
            lo, hi_ = window
            hi = hi_ if hi_ is not None else (timeout or self.settings.response_time)
            text = f"between {lo or 0:.3f} and {hi:.3f} s"
            return ref + hi, lo, ref, text
        wait = self.settings.response_time if timeout is None else timeout
        return trio.current_time() + wait, None, ref, f"within {wait:.3f} s"

    async def expect(
        self,
        *what: Any,
        fields: Mapping[str, Any] | None = None,
        bind: Mapping[str, str] | None = None,
        checksum: bool | None = _DEFAULT,
        label: str = "",
        timeout: float | None = None,
        at: float | None = None,
        window: tuple[float | None, float | None] | None = None,
        since: float | None = None,
        ignore: Ignore = (),
        skip: bool = False,
        missing: Literal["fail", "inconclusive"] = "fail",
    ) -> Any:
        """The next TPDU must match; returns it (and binds its *bind* fields).

        Args:
            what: TPDU types (with *fields*, *bind*, *checksum*, *label*), or a :class:`Pattern`.
            timeout: how long to wait from now (default: ``response_time``).
            at: the time it must arrive at, from *since*, ± the tolerance.
            window: ``(earliest, latest)`` from *since* (either None: open).
            since: the reference of *at* and *window* (default: the last send).
            ignore: TPDU types, or a predicate, to pass over.
            skip: pass over anything that does not match (it stays in the report).
            missing: the verdict when nothing matching comes: fail, or
                inconclusive (a timer longer than the tester waits).
        """
        pattern = _as_pattern(what, fields=fields, bind=bind, checksum=checksum, label=label)
        deadline, earliest, ref, when = self._window(timeout, at, window, since)
        want = pattern.describe(self.vars)
        passed: list[str] = []
        while True:
            item = await self.next(deadline)
            if item is None:
                reason = f"no {want} {when}"
                if passed:
                    reason += f" (passed over: {len(passed)})"
                if missing == "inconclusive":
                    raise Inconclusive(reason, expected=want, observed=passed)
                raise Fail(reason, expected=want, observed=passed)
            problems = pattern.problems(item, self.vars, self.checksum)
            if problems:
                if self._passes_over(item, ignore) or skip:
                    passed.append(item.summary())
                    continue
                raise Fail(
                    f"expected {want}, got {item.summary()} ({'; '.join(problems)})",
                    expected=want,
                    observed=[*passed, item.summary()],
                )
            offset = item.at - ref
            if earliest is not None and offset < earliest:
                raise Fail(
                    f"{type(item.tpdu).__name__} came at {offset:.3f} s, expected {when}",
                    expected=f"{want} {when}",
                    observed=[*passed, f"{item.summary()} at {offset:.3f} s"],
                )
            assert item.tpdu is not None
            for name, attr in pattern.bind.items():
                self.vars[name] = getattr(item.tpdu, attr)
            self.last_at = item.at
            return item.tpdu

    async def expect_all(
        self,
        patterns: Sequence[Pattern],
        *,
        timeout: float | None = None,
        ignore: Ignore = (),
    ) -> list[Any]:
        """Each pattern matched once, in any order; returns the TPDUs in the patterns' order."""
        deadline = trio.current_time() + (
            self.settings.response_time if timeout is None else timeout
        )
        found: list[Any] = [None] * len(patterns)
        passed: list[str] = []
        while any(f is None for f in found):
            waiting = [p for p, f in zip(patterns, found, strict=True) if f is None]
            want = "; ".join(p.describe(self.vars) for p in waiting)
            item = await self.next(deadline)
            if item is None:
                raise Fail(f"no {want}", expected=want, observed=passed)
            for i, p in enumerate(patterns):
                if found[i] is None and not p.problems(item, self.vars, self.checksum):
                    found[i] = item.tpdu
                    for name, attr in p.bind.items():
                        self.vars[name] = getattr(item.tpdu, attr)
                    self.last_at = item.at
                    break
            else:
                if self._passes_over(item, ignore):
                    passed.append(item.summary())
                    continue
                raise Fail(
                    f"expected {want}, got {item.summary()}",
                    expected=want,
                    observed=[*passed, item.summary()],
                )
        return found

    async def expect_silence(
        self, seconds: float | None = None, *, ignore: Ignore = (), label: str = ""
    ) -> None:
        """Nothing arrives (but what is ignored) for *seconds* (default: ``silence``)."""
        wait = self.settings.silence if seconds is None else seconds
        start = trio.current_time()
        deadline = start + wait
        while True:
            item = await self.next(deadline)
            if item is None:
                return
            if self._passes_over(item, ignore):
                continue
            what = f"silence for {wait:.3f} s" + (f" ({label})" if label else "")
            raise Fail(
                f"expected {what}, got {item.summary()} at {item.at - start:.3f} s",
                expected=what,
                observed=[item.summary()],
            )

    async def expect_close(
        self,
        *,
        timeout: float | None = None,
        allow: Iterable[type] = (),
        label: str = "",
    ) -> list[TPDU]:
        """TCP: the IUT closes the connection (FIN or reset) within *timeout*; the
        TPDUs of types *allow* may come first (returned)."""
        allowed = tuple(allow)
        deadline = trio.current_time() + (
            self.settings.response_time if timeout is None else timeout
        )
        before: list[TPDU] = []
        want = "the TCP close" + (f" ({label})" if label else "")
        if allowed:
            want += f", after any of {', '.join(a.__name__ for a in allowed)}"
        while True:
            item = await self.next(deadline)
            if item is None:
                raise Fail(
                    f"expected {want}: the connection stayed open",
                    expected=want,
                    observed=[format_tpdu(t) for t in before],
                )
            if item.kind in ("eof", "reset"):
                self.last_at = item.at
                return before
            if item.tpdu is not None and isinstance(item.tpdu, allowed):
                before.append(item.tpdu)
                continue
            if self._passes_over(item, ()):
                continue
            raise Fail(
                f"expected {want}, got {item.summary()}", expected=want, observed=[item.summary()]
            )

    async def wait_for(self, pattern: Pattern, timeout: float) -> Any:
        """The first arrival matching *pattern* within *timeout*, passing over the rest; None
        if none (no verdict: for measurements)."""
        deadline = trio.current_time() + timeout
        while True:
            item = await self.next(deadline)
            if item is None:
                return None
            if not pattern.problems(item, self.vars, self.checksum):
                assert item.tpdu is not None
                for name, attr in pattern.bind.items():
                    self.vars[name] = getattr(item.tpdu, attr)
                self.last_at = item.at
                return item.tpdu

    async def drain(self, seconds: float) -> list[Observed]:
        """Take whatever arrives within *seconds* (no verdict)."""
        deadline = trio.current_time() + seconds
        out: list[Observed] = []
        while (item := await self.next(deadline)) is not None:
            out.append(item)
        return out

    async def sleep(self, seconds: float) -> None:
        """Let time pass (what arrives meanwhile is kept for the next expectation)."""
        await trio.sleep(seconds)
