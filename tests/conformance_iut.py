"""Implementations under test for the conformance suite's own tests, all in-process on loopback.

* :func:`ut_server` — tp4emu (UDP or TCP) with an application that follows
  the upper tester conventions of :mod:`tp4emu.conformance.apps` (an echo
  server that also obeys commands), with short, known timers
  (:data:`UT_CONFIG`, announced to the tester by :data:`UT_TIMERS`).
* :func:`ut_client` — tp4emu as a client connecting over and over to the
  tester (the tester responder).
* Broken peers: tp4emu over a socket that spoils what it sends
  (:class:`SpoilingSocket`: AK numbers off by one, wrong DT checksums, no DC),
  or with a class 0 engine patched to ignore the TPDU size.
* :class:`RowRecorder` — which rows of the class 4 (and class 0) transition
  tables tp4emu's engines take, and during which case.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from tp4emu.conformance import apps
from tp4emu.conformance.model import Timers
from tp4emu.core import Config, Connection, Disconnected, TP4Error, class0
from tp4emu.core.class0 import CLASS0_TRANSITIONS, Class0Connection
from tp4emu.core.state import Input, State
from tp4emu.transport.tcp import TCPConnection, open_tcp_endpoint
from tp4emu.transport.udp import TP4Connection, UDPSocket, open_udp_endpoint
from tp4emu.wire import AK, DC, DT, TPDUError, decode, encode

HOST = "127.0.0.1"

UT_CONFIG = Config(
    initial_retransmit_time=0.1,
    cr_retransmit_time=0.1,
    max_retransmit_time=0.3,
    max_retransmissions=3,
    give_up_time=0.4,
    window_time=0.6,
    inactivity_time=1.5,
    reference_freeze_time=0.3,
    unvalidated_freeze_time=0.2,
    linger_time=0.3,
    confirm_timeout=0.4,
    max_unvalidated=4,
    max_tsdu_size=4096,
    tcp_cr_timeout=0.6,
    tcp_idle_timeout=None,
)
"""tp4emu as the suite's IUT: short timers, a small unvalidated pool, a small TSDU limit."""

UT_TIMERS = Timers(
    cr_retransmit=0.1,
    retransmit=0.1,
    max_retransmit=0.3,
    retransmissions=3,
    window=0.6,
    inactivity=1.5,
    freeze=0.3,
    confirm_timeout=0.4,
    give_up_time=0.4,
    cr_timeout=0.6,
)
"""What the tester is told of :data:`UT_CONFIG` (``--timer``)."""

Conn = TP4Connection | TCPConnection
_ENDED = (
    Disconnected,
    TP4Error,
    trio.ClosedResourceError,
    trio.EndOfChannel,
    trio.BrokenResourceError,
)


async def _quietly_close(conn: Conn) -> None:
    with contextlib.suppress(*_ENDED), trio.move_on_after(1):
        await conn.aclose()


async def _echo_expedited(conn: Conn) -> None:
    with contextlib.suppress(*_ENDED):
        while True:
            data = await conn.receive_expedited()
            await conn.send_expedited(data)


async def _obey(conn: Conn, *, client: bool) -> None:
    """Echo TSDUs (expedited ones too) and obey the commands, until the end."""
    async with trio.open_nursery() as nursery:
        if isinstance(conn, TP4Connection):
            nursery.start_soon(_echo_expedited, conn)
        try:
            while True:
                tsdu = await conn.receive()
                if tsdu == apps.UT_CLOSE:
                    await conn.aclose()
                    break
                if tsdu == apps.UT_ABORT:
                    await conn.reject(128)
                    break
                if tsdu == apps.UT_CONFIRM:
                    await conn.confirm()
                    continue
                if client:
                    await conn.aclose()
                    break
                await conn.send(tsdu)
        except _ENDED:
            pass
        nursery.cancel_scope.cancel()


async def _decide(conn: Conn) -> bool:
    """The UT decision for a CONFIRMING connection; False when it is over."""
    decision = conn.connect_data or conn.calling_tsap or b""
    if decision == apps.UT_REJECT:
        await conn.reject(128)
        return False
    if decision == apps.UT_IGNORE:
        await trio.sleep(UT_CONFIG.confirm_timeout * 3)  # the IUT's confirm timeout decides
        return False
    if decision == apps.UT_SEND_FIRST:
        await conn.send(b"first")
        await conn.send(b"second")
    elif decision == apps.UT_EXPEDITE_FIRST:
        await conn.send_expedited(b"E")
    elif decision == apps.UT_CONFIRM_EXPEDITE:
        await conn.confirm()
        await conn.send_expedited(b"E")
    elif decision == apps.UT_CONFIRM_CLOSE:
        await conn.confirm()
        await conn.aclose()
        return False
    elif decision == apps.UT_CONFIRM_TWICE:
        await conn.confirm()
        await conn.confirm()
    return True


async def _serve_one(conn: Conn) -> None:
    try:
        with contextlib.suppress(*_ENDED):
            if await _decide(conn):
                await _obey(conn, client=False)
    finally:
        await _quietly_close(conn)


@contextlib.asynccontextmanager
async def ut_server(
    transport: str = "udp", *, config: Config = UT_CONFIG, socket: Any = None
) -> AsyncIterator[tuple[str, int]]:
    """tp4emu with the upper tester application on loopback; yields its address."""
    async with trio.open_nursery() as nursery:
        if transport == "udp":
            async with open_udp_endpoint((HOST, 0), config=config, socket=socket) as ep:
                listener = ep.listen(None)
                nursery.start_soon(_accept_loop, listener, nursery)
                yield ep.getsockname()
        else:
            async with open_tcp_endpoint((HOST, 0), config=config) as tep:
                tlistener = tep.listen(None, auto_confirm=False)
                nursery.start_soon(_accept_loop, tlistener, nursery)
                yield tep.getsockname()
        nursery.cancel_scope.cancel()


async def _accept_loop(listener: Any, nursery: trio.Nursery) -> None:
    with contextlib.suppress(*_ENDED):
        while True:
            conn = await listener.accept()
            nursery.start_soon(_serve_one, conn)


@contextlib.asynccontextmanager
async def ut_client(
    target: tuple[str, int], transport: str = "udp", *, config: Config = UT_CONFIG
) -> AsyncIterator[None]:
    """tp4emu connecting to *target* over and over (the upper tester's client)."""
    async with trio.open_nursery() as nursery:
        if transport == "udp":
            async with open_udp_endpoint((HOST, 0), config=config) as ep:
                nursery.start_soon(_client_loop, ep, target)
                yield
        else:
            async with open_tcp_endpoint((HOST, 0), config=config) as tep:
                nursery.start_soon(_client_loop, tep, target)
                yield
        nursery.cancel_scope.cancel()


async def _client_loop(ep: Any, target: tuple[str, int]) -> None:
    abandon = False
    while True:
        conn: Conn | None = None
        with contextlib.suppress(*_ENDED, OSError):
            with trio.move_on_after(apps.UT_ABANDON_AFTER if abandon else 30):
                conn = await ep.connect(target, called_tsap=b"conformance", calling_tsap=b"ut")
            abandon = False
            if conn is not None:
                await conn.send(apps.UT_HELLO)
                tsdu = await conn.receive()
                if tsdu == apps.UT_ABANDON_NEXT:
                    abandon = True
                    await conn.aclose()
                elif tsdu in (apps.UT_CLOSE, apps.UT_ABORT, apps.UT_CONFIRM):
                    if tsdu == apps.UT_ABORT:
                        await conn.reject(128)
                    elif tsdu == apps.UT_CONFIRM:
                        await conn.confirm()
                        await _obey(conn, client=True)
                    else:
                        await conn.aclose()
                else:
                    await conn.aclose()
        if conn is not None:
            await _quietly_close(conn)
        await trio.sleep(0.02)


# ---------------------------------------------------------------- broken peers


class SpoilingSocket(UDPSocket):
    """A UDP socket that spoils the datagrams tp4emu sends through it.

    *spoil* gets each datagram and returns what goes out instead (None: nothing).
    """

    def __init__(self, spoil: Callable[[bytes], bytes | None]) -> None:
        super().__init__((HOST, 0))
        self.spoil = spoil

    def send_nowait(self, data: bytes, addr: Any) -> bool:
        out = self.spoil(data)
        if out is None:
            return True
        return super().send_nowait(out, addr)


def _tpdus(data: bytes) -> list[Any] | None:
    try:
        return list(decode(data))
    except TPDUError:
        return None


def ak_off_by_one(data: bytes) -> bytes | None:
    """Every AK acknowledges one DT more than it should."""
    tpdus = _tpdus(data)
    if not tpdus or not any(isinstance(t, AK) for t in tpdus):
        return data
    out = []
    for t in tpdus:
        if isinstance(t, AK):
            mod = 1 << 31 if t.extended else 1 << 7
            t = AK(t.dst_ref, (t.nr + 1) % mod, t.credit, t.extended, t.params)
        out.append(t)
    return encode(out, checksum=any(t.checksum_ok for t in tpdus))


def dt_bad_checksum(data: bytes) -> bytes | None:
    """Every datagram holding a DT gets its last octet changed (the checksum no longer holds)."""
    tpdus = _tpdus(data)
    if tpdus and any(isinstance(t, DT) for t in tpdus):
        return data[:-1] + bytes([data[-1] ^ 0x01])
    return data


def no_dc(data: bytes) -> bytes | None:
    """DCs are never sent."""
    tpdus = _tpdus(data)
    if tpdus and all(isinstance(t, DC) for t in tpdus):
        return None
    return data


@contextlib.contextmanager
def class0_ignores_tpdu_size() -> Iterator[None]:
    """tp4emu's class 0 engine sends DTs of 2048 octets whatever TPDU size was agreed."""
    original = class0._ACTIONS["send_dt"]

    def send_dt(self: Class0Connection, data: Any) -> None:
        agreed = self.tpdu_size
        self.tpdu_size = 2048
        try:
            original(self, data)
        finally:
            self.tpdu_size = agreed

    class0._ACTIONS["send_dt"] = send_dt
    try:
        yield
    finally:
        class0._ACTIONS["send_dt"] = original


# ---------------------------------------------------------------- what the engines did


@dataclass
class RowRecorder:
    """The (state, input) rows tp4emu's engines take, when, and during which case."""

    case: str = ""
    taken: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    """Class 4 rows by the case running when they were taken."""
    class0: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    events: list[tuple[float, tuple[str, str]]] = field(default_factory=list)
    """Every class 4 row taken, with ``trio.current_time()``."""
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    """When each case ran."""

    def all_taken(self) -> set[tuple[str, str]]:
        """Every class 4 row taken in the run."""
        return {row for _, row in self.events}

    def taken_between(self, start: float, end: float) -> set[tuple[str, str]]:
        """The class 4 rows taken from *start* to *end*."""
        return {row for at, row in self.events if start <= at <= end}

    def started(self, name: str) -> None:
        """A case starts (a hook of the run)."""
        self.case = name
        now = trio.current_time()
        self.spans[name] = (now, now)

    def finished(self, name: str) -> None:
        """A case ended."""
        self.spans[name] = (self.spans[name][0], trio.current_time())

    @contextlib.contextmanager
    def recording(self) -> Iterator[RowRecorder]:
        """Patch the engines' dispatchers for the duration."""
        step = Connection._step
        dispatch0 = Class0Connection._dispatch
        recorder = self

        def spy(conn: Connection, inp: Input, arg: object, now: float) -> None:
            state: State = conn.state
            row = (state.value, inp.value)
            recorder.taken.setdefault(recorder.case, set()).add(row)
            recorder.events.append((trio.current_time(), row))
            step(conn, inp, arg, now)

        def spy0(conn: Class0Connection, inp: Any, arg: object) -> None:
            if (conn.state, inp) in CLASS0_TRANSITIONS:
                recorder.class0.setdefault(recorder.case, set()).add((conn.state.value, inp.value))
            dispatch0(conn, inp, arg)

        fast = Connection.fast_receive

        def spy_fast(conn: Connection, data: bytes, now: float) -> int:
            # Header prediction replays the (OPEN, DT) and (OPEN, AK) rows.
            taken = fast(conn, data, now)
            rows = []
            if taken:
                rows.append(("OPEN", "DT" if data[1] == 0xF0 else "AK"))
                if data[1] != 0xF0 and taken == len(data) and data[0] + 1 < taken:
                    rows.append(("OPEN", "DT"))  # an AK with its DT
            for row in rows:
                recorder.taken.setdefault(recorder.case, set()).add(row)
                recorder.events.append((trio.current_time(), row))
            return taken

        Connection._step = spy  # type: ignore[method-assign]
        Connection.fast_receive = spy_fast  # type: ignore[method-assign]
        Class0Connection._dispatch = spy0  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Connection._step = step  # type: ignore[method-assign]
            Connection.fast_receive = fast  # type: ignore[method-assign]
            Class0Connection._dispatch = dispatch0  # type: ignore[method-assign]
