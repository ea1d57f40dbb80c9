"""A small packetdrill-like harness for the sans-IO core.

One :class:`~tp4emu.core.Endpoint` is driven by a fake peer at explicit times:
the script injects hand-built TPDUs (or raw bytes), moves the clock forward
(running every timer that expires on the way, one deadline at a time), and
asserts exactly which datagrams the endpoint emits, decoded and/or byte for
byte, and when. Nothing sleeps and nothing does I/O::

    s = Script(Config(...))
    listener = s.endpoint.listen(b"srv")
    s.send(CR(src_ref=0x0101, params=...), at=0.0)
    s.expect_nothing()
    conn = s.endpoint.accept(listener)
    s.call(conn.confirm)                 # user call at the current time
    cc = s.expect(CC, at=0.0)            # a type: returns the decoded TPDU
    s.advance(to=0.5)
    s.expect(cc, at=0.5)                 # a TPDU: compared field for field
    s.send(AK(cc.src_ref, 0, 15), at=0.6)
    s.expect_nothing()

Rules:

* Every datagram the endpoint emits is recorded with the time it was
  produced; :meth:`Script.expect` takes them in order.
  :meth:`Script.expect_nothing` checks that none is left unchecked.
* ``datagrams_to_send`` is called after every injected datagram, every user
  call made through :meth:`Script.call`, every timer run and every
  :meth:`Script.flush`, with the current time (the endpoint produces its
  pending AKs then, unless ``Script.acks`` is False: then they wait and may
  ride, concatenated, in the next DT's datagram).
* ``at=`` on an input first advances the clock to that time: timers that
  expire at exactly ``at`` run *before* the input.
* Decoded TPDUs compare equal ignoring ``checksum_ok``; ``expect`` also checks
  that the checksum is present and valid (``checksum=True``, the default),
  absent (``checksum=False``) or does not check it (``checksum=None``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from tp4emu.core import Config, Connection, Endpoint, Event, Listener, State
from tp4emu.wire import (
    AK,
    CC,
    CR,
    TPDU,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    Param,
    TpduSize,
    checksum_octets,
    decode,
    encode_one,
)

__all__ = [
    "PEER",
    "PEER_REF",
    "Emitted",
    "Script",
    "ScriptError",
    "open_as_initiator",
    "open_as_responder",
    "peer_cr",
    "with_checksum",
]

PEER: tuple[str, int] = ("192.0.2.1", 10200)
"""The fake peer's default address."""

T = TypeVar("T")
_EPS = 1e-9


class ScriptError(AssertionError):
    """An expectation of the script did not hold."""


@dataclass(frozen=True)
class Emitted:
    """A datagram the endpoint produced: when, what, to whom."""

    at: float
    raw: bytes
    to: Hashable

    @property
    def tpdus(self) -> list[TPDU]:
        """The datagram decoded (normal/extended format inferred from the LI)."""
        return decode(self.raw)

    def __repr__(self) -> str:
        try:
            shown: object = self.tpdus
        except Exception as exc:  # pragma: no cover - only in failure messages
            shown = f"<undecodable: {exc}>"
        return f"Emitted(at={self.at}, to={self.to!r}, {shown}, raw={self.raw.hex()})"


def with_checksum(raw: bytes | bytearray, position: int) -> bytes:
    """Fill the checksum octets at *position* (0-based offset of X) of a hand-made TPDU."""
    buf = bytearray(raw)
    buf[position : position + 2] = b"\x00\x00"
    buf[position : position + 2] = checksum_octets(buf, position)
    return bytes(buf)


class Script:
    """Drive one core endpoint at explicit times and check what it emits."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        seed: int = 4,
        peer: Hashable = PEER,
        start: float = 0.0,
        rng: random.Random | None = None,
        acks: bool = True,
    ) -> None:
        self.config = config or Config()
        self.endpoint = Endpoint(self.config, rng=rng or random.Random(seed))
        self.peer = peer
        self.now = start
        self.acks = acks
        """Passed to ``datagrams_to_send``: False holds pending AKs back (concatenation)."""
        self.pending: deque[Emitted] = deque()
        self.log: list[Emitted] = []
        """Every datagram emitted so far, checked or not."""

    # ------------------------------------------------------------- inputs

    def send(
        self,
        tpdu: TPDU | bytes | bytearray,
        *,
        at: float | None = None,
        addr: Hashable | None = None,
        checksum: bool = True,
    ) -> None:
        """Deliver a TPDU (encoded with or without checksum) or raw bytes from the peer."""
        if at is not None:
            self.advance(to=at)
        if isinstance(tpdu, (bytes, bytearray)):
            raw = bytes(tpdu)
        else:
            raw = encode_one(tpdu, checksum=checksum)
        self.endpoint.receive_datagram(raw, self.peer if addr is None else addr, self.now)
        self.flush()

    def call(self, fn: Callable[..., T], *args: Any, at: float | None = None, **kw: Any) -> T:
        """Run a user call ``fn(now, *args, **kw)`` at the current (or given) time."""
        if at is not None:
            self.advance(to=at)
        result = fn(self.now, *args, **kw)
        self.flush()
        return result

    def connect(self, **kw: Any) -> Connection:
        """``endpoint.connect(peer, now, **kw)`` at the current time."""
        conn = self.endpoint.connect(kw.pop("peer", self.peer), self.now, **kw)
        self.flush()
        return conn

    def advance(self, *, to: float | None = None, by: float | None = None) -> None:
        """Move the clock to *to* (or by *by*), running each timer at its own deadline."""
        target = self.now + by if by is not None else to
        if target is None:
            raise TypeError("advance() needs to= or by=")
        if target < self.now - _EPS:
            raise ScriptError(f"time goes backwards: {self.now} -> {target}")
        for _ in range(100_000):
            deadline = self.endpoint.get_timer()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.endpoint.handle_timer(self.now)
            self.flush()
        else:  # pragma: no cover
            raise ScriptError("timers do not converge")
        self.now = max(self.now, target)

    def flush(self) -> None:
        """Collect what the endpoint has to send now (pending AKs per ``self.acks``)."""
        for raw, addr in self.endpoint.datagrams_to_send(self.now, acks=self.acks):
            emitted = Emitted(self.now, raw, addr)
            self.pending.append(emitted)
            self.log.append(emitted)

    # ------------------------------------------------------- expectations

    @overload
    def expect(
        self,
        what: type[T],
        *,
        at: float | None = ...,
        to: Hashable | None = ...,
        raw: bytes | None = ...,
        exact: bool = ...,
        checksum: bool | None = ...,
    ) -> T: ...

    @overload
    def expect(
        self,
        what: list[TPDU] | tuple[TPDU, ...],
        *,
        at: float | None = ...,
        to: Hashable | None = ...,
        raw: bytes | None = ...,
        exact: bool = ...,
        checksum: bool | None = ...,
    ) -> list[TPDU]: ...

    @overload
    def expect(
        self,
        what: TPDU | None = ...,
        *,
        at: float | None = ...,
        to: Hashable | None = ...,
        raw: bytes | None = ...,
        exact: bool = ...,
        checksum: bool | None = ...,
    ) -> TPDU: ...

    def expect(
        self,
        what: Any = None,
        *,
        at: float | None = None,
        to: Hashable | None = None,
        raw: bytes | None = None,
        exact: bool = False,
        checksum: bool | None = True,
    ) -> Any:
        """Take the oldest unchecked datagram and check it holds one TPDU like *what*.

        Args:
            what: a TPDU instance (compared with ``==``), a TPDU class (only
                the type is checked), a list of TPDUs (a datagram holding
                exactly these, concatenated; the list is returned) or None
                (any single TPDU).
            at: the time it must have been emitted at.
            to: its destination (default: the script's peer).
            raw: the exact octets it must have.
            exact: with a TPDU instance, the octets must also equal
                ``encode_one(what, checksum=...)``.
            checksum: True: present and valid; False: absent; None: unchecked.

        Returns:
            The decoded TPDU.
        """
        if not self.pending:
            raise ScriptError(f"expected {what!r} at t={self.now}, nothing was sent")
        got = self.pending.popleft()
        where = f"(emitted at t={got.at}: {got!r})"
        dest = self.peer if to is None else to
        if got.to != dest:
            raise ScriptError(f"sent to {got.to!r}, expected {dest!r} {where}")
        if at is not None and abs(got.at - at) > _EPS:
            raise ScriptError(f"emitted at t={got.at}, expected t={at} {where}")
        if raw is not None and got.raw != raw:
            raise ScriptError(f"octets {got.raw.hex()} != expected {raw.hex()} {where}")
        tpdus = decode(got.raw)
        for tpdu in tpdus:
            if checksum is True and tpdu.checksum_ok is not True:
                raise ScriptError(f"checksum missing or invalid ({tpdu.checksum_ok}) {where}")
            if checksum is False and tpdu.checksum_ok is not None:
                raise ScriptError(f"unexpected checksum {where}")
        if isinstance(what, (list, tuple)):  # a concatenation
            if tpdus != list(what):
                raise ScriptError(f"expected {list(what)!r}, got {tpdus!r} {where}")
            if exact:
                want = b"".join(encode_one(w, checksum=bool(checksum)) for w in what)
                if got.raw != want:
                    raise ScriptError(f"octets {got.raw.hex()} != {want.hex()} {where}")
            return tpdus
        if len(tpdus) != 1:
            raise ScriptError(f"expected one TPDU, got {tpdus!r} {where}")
        tpdu = tpdus[0]
        if isinstance(what, type):
            if not isinstance(tpdu, what):
                raise ScriptError(f"expected a {what.__name__}, got {tpdu!r} {where}")
        elif what is not None:
            if tpdu != what:
                raise ScriptError(f"expected {what!r}, got {tpdu!r} {where}")
            if exact:
                want = encode_one(what, checksum=bool(checksum))
                if got.raw != want:
                    raise ScriptError(f"octets {got.raw.hex()} != {want.hex()} {where}")
        return tpdu

    def expect_nothing(self, *, until: float | None = None) -> None:
        """Nothing left unchecked; with *until*, nothing emitted up to that time either."""
        if until is not None:
            if self.pending:
                raise ScriptError(f"unchecked datagrams: {list(self.pending)!r}")
            self.advance(to=until)
        if self.pending:
            raise ScriptError(f"unexpected datagrams: {list(self.pending)!r}")

    def take(self) -> list[Emitted]:
        """Take every unchecked datagram (for tests that inspect them freely)."""
        out = list(self.pending)
        self.pending.clear()
        return out

    # ------------------------------------------------------------- events

    def events(self) -> list[Event]:
        """Every event the endpoint has queued, oldest first."""
        out = []
        while (event := self.endpoint.next_event()) is not None:
            out.append(event)
        return out

    def event_types(self) -> list[str]:
        """The names of the queued events' types (consumes them)."""
        return [type(e).__name__ for e in self.events()]


# ------------------------------------------------------- common openings

PEER_REF = 0x0ABC
"""The fake peer's transport reference."""
ER_TYPE = bytes.fromhex("08700abc02c302698f")
"""The ER (cause 2, invalid TPDU type) the endpoint sends the peer on a connection
with checksum: LI 8, the fixed part and the checksum, no "invalid TPDU" parameter
(so that Wireshark decodes it, docs/wireshark.md)."""
ER_VALUE = bytes.fromhex("08700abc03c3026592")
"""The same with cause 3, invalid parameter value."""


def peer_cr(
    src_ref: int = PEER_REF,
    *,
    called: bytes | None = b"srv",
    calling: bytes | None = b"cli",
    size_exponent: int = 13,
    additional_options: int | None = 0x01,
    credit: int = 15,
    protocol_class: int = 4,
    options: int = 0,
    data: bytes = b"",
) -> CR:
    """A CR as a class 4 peer sends it (defaults: class 4, 8192, expedited, checksum)."""
    params: list[Param] = [TpduSize(size_exponent)]
    if calling is not None:
        params.append(CallingTsap(calling))
    if called is not None:
        params.append(CalledTsap(called))
    if additional_options is not None:
        params.append(AdditionalOptions(additional_options))
    return CR(
        src_ref=src_ref,
        credit=credit,
        protocol_class=protocol_class,
        options=options,
        params=tuple(params),
        data=data,
    )


def open_as_responder(
    s: Script,
    listener: Listener | None = None,
    *,
    cr: CR | None = None,
    rtt: float = 0.25,
) -> tuple[Connection, CC]:
    """The peer connects to the scripted endpoint: CR, confirm, CC, AK. Returns (conn, cc)."""
    if listener is None:
        listener = s.endpoint.listen(None)
    cr = cr or peer_cr()
    s.send(cr)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.confirm)
    cc = s.expect(CC)
    s.send(AK(cc.src_ref, 0, cr.credit, conn.extended), at=s.now + rtt, checksum=conn.checksum)
    assert conn.state is State.OPEN
    s.expect_nothing()
    s.events()
    return conn, cc


def open_as_initiator(
    s: Script,
    *,
    cc_params: tuple[Param, ...] = (TpduSize(13), AdditionalOptions(0x01)),
    credit: int = 15,
    rtt: float = 0.25,
    **connect: Any,
) -> tuple[Connection, CR]:
    """The scripted endpoint connects to the peer: CR, CC, AK. Returns (conn, cr)."""
    conn = s.connect(**connect)
    cr = s.expect(CR)
    s.send(CC(cr.src_ref, PEER_REF, credit, params=cc_params), at=s.now + rtt)
    window = s.config.receive_window if conn.extended else min(s.config.receive_window, 15)
    s.expect(AK(PEER_REF, 0, window, conn.extended), checksum=conn.checksum)
    assert conn.state is State.OPEN
    s.expect_nothing()
    s.events()
    return conn, cr
