"""The demo's story replayed on the sans-IO engines: deterministic ladders for the docs.

``tp4emu demo`` runs on real sockets and a real clock, so its times and
references change from run to run. This module tells the same story on the
engines alone (:class:`~tp4emu.core.Endpoint` for class 4,
:class:`~tp4emu.core.class0.Class0Connection` for class 0), with a fixed
clock, a fixed one-way delay (:data:`DELAY`), seeded references and one
scripted loss, and records it as two :class:`~tp4emu.capture.ladder.Ladder`
objects (:func:`replay_ladders`): ``docs/ladder.md`` and the SVGs in
``docs/img/`` are generated from them (``scripts/gen_docs.py``; the docs test
regenerates and compares them).

The story, as in the demo: a server with an access list (allow 127.0.0.1,
deny 127.0.0.2) takes client A, then 75 ms later client B; it accepts one
connection at a time and takes 300 ms to decide each.

* TP4: ``accept()`` returns while the connection is CONFIRMING and nothing has
  been sent; the clients' CRs are retransmitted while the server thinks; A is
  confirmed (CC), B rejected (DR, no CC ever). The server's echo to A is lost
  once and retransmitted.
* TCP (RFC 1006): the TCP handshake and the CR/CC exchange complete before
  ``accept()`` returns (the driver accepts, not the application), so both
  clients are connected when the server first looks; B is cut off afterwards.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ..capture.ladder import Ladder, LadderBuilder
from ..core import (
    Config,
    Connection,
    ConnectionEstablished,
    ConnectionRequested,
    ConnectionTerminated,
    DataReceived,
    Endpoint,
    Role,
)
from ..core import class0 as c0
from ..core.errors import ConnectionRejected, Disconnected
from ..wire import DT, DRReason, decode
from ..wire.tpkt import TPKTDecoder

__all__ = [
    "DECIDE_DELAY",
    "DELAY",
    "TCP_TITLE",
    "TP4_TITLE",
    "replay_ladders",
    "replay_tcp",
    "replay_tp4",
]

DELAY = 0.001
"""One-way delay of every datagram and segment, seconds."""
DECIDE_DELAY = 0.3
"""How long the server takes to decide on a connection (the demo's default)."""
B_START = DECIDE_DELAY / 4
"""When client B connects (as in the demo)."""
TSAP = b"demo"
ALLOWED, DENIED = "127.0.0.1", "127.0.0.2"
CONFIG = Config(
    cr_retransmit_time=0.25,
    initial_retransmit_time=0.15,
    max_retransmissions=12,
    reference_freeze_time=0.5,
)
"""The demo's timers."""

TP4_TITLE = "TP4 over UDP: accept() while CONFIRMING, decide, then CC or DR"
TCP_TITLE = "RFC 1006 over TCP: accept() after the handshake, decide too late"

Address = tuple[str, int]


class _Clock:
    """Actions at given times, run in time order (ties in the order scheduled)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_due(self) -> None:
        while self._heap and self._heap[0][0] <= self.now:
            heapq.heappop(self._heap)[2]()


@dataclass
class _Server:
    """The demo's serve loop: one connection at a time, DECIDE_DELAY to decide each."""

    waiting: list[tuple[c0.Class0Connection, c0.Class0Connection, Address]] = field(
        default_factory=list
    )
    """TCP: accepted by the driver, waiting for the application's ``accept()``."""
    busy: bool = False


# ---------------------------------------------------------------- TP4


class _TP4World:
    """Three class 4 endpoints on one simulated network, with a scripted loss."""

    def __init__(self, builder: LadderBuilder, server: Address, a: Address, b: Address) -> None:
        self.b = builder
        self.clock = _Clock()
        self.server_addr = server
        self.endpoints = {
            addr: Endpoint(CONFIG, rng=random.Random(seed))
            for seed, addr in enumerate((server, a, b), start=1)
        }
        self.listener = self.endpoints[server].listen(TSAP)
        self.flight: list[tuple[float, int, Address, Address, bytes]] = []
        self._seq = itertools.count()
        self.tracked: list[tuple[Address, Connection]] = []
        self.lost_echo = False
        self.serve = _Server()
        self.handlers: dict[Connection, Callable[[object], None]] = {}
        self.closing: list[Connection] = []

    @property
    def now(self) -> float:
        return self.clock.now

    # -- the network

    def _drop(self, src: Address, dst: Address, raw: bytes) -> bool:
        """Lose the server's first DT to client A (its echo), once."""
        if self.lost_echo or src != self.server_addr or dst[0] != ALLOWED:
            return False
        if any(isinstance(t, DT) for t in decode(raw)):
            self.lost_echo = True
            return True
        return False

    def _send(self, addr: Address, raw: bytes, dst: Hashable) -> None:
        assert isinstance(dst, tuple)
        lost = self._drop(addr, dst, raw)
        self.b.datagram(self.now, addr, dst, raw, lost=lost)
        if not lost:
            heapq.heappush(self.flight, (self.now + DELAY, next(self._seq), addr, dst, raw))

    def _flush(self) -> None:
        """What a driver does after each input: send, take the events, then send the AKs.

        AKs wait for the events (``acks=False`` first), so that a reply the
        application sends at once rides in the same datagram, as in the driver.
        """
        busy = True
        while busy:
            busy = False
            for addr, ep in self.endpoints.items():
                for raw, dst in ep.datagrams_to_send(self.now, acks=False):
                    self._send(addr, raw, dst)
            self._states()
            for conn in [c for c in self.closing if c.send_idle]:
                self.closing.remove(conn)  # what aclose() waits for, then the DR
                conn.disconnect(self.now, DRReason.NORMAL)
                busy = True
            for addr, ep in self.endpoints.items():
                while (event := ep.next_event()) is not None:
                    busy = True
                    self._event(addr, event)
            for addr, ep in self.endpoints.items():
                for raw, dst in ep.datagrams_to_send(self.now):
                    busy = True
                    self._send(addr, raw, dst)
            self._states()

    def _states(self) -> None:
        for addr, conn in self.tracked:
            self.b.state(self.now, addr, conn.state.name, peer=conn.peer)

    def _event(self, addr: Address, event: object) -> None:
        if isinstance(event, ConnectionRequested):
            self.tracked.append((addr, event.connection))
            self._states()
            self._server_next()
            return
        conn = getattr(event, "connection", None)
        handler = self.handlers.get(conn) if isinstance(conn, Connection) else None
        if handler is not None:
            handler(event)

    def _next_time(self) -> float | None:
        times = [t for t in (self.clock.next_time(),) if t is not None]
        if self.flight:
            times.append(self.flight[0][0])
        times += [t for ep in self.endpoints.values() if (t := ep.get_timer()) is not None]
        return min(times) if times else None

    def run(self, until: float) -> None:
        while True:
            self._flush()
            t = self._next_time()
            if t is None or t > until:
                return
            self.clock.now = max(self.now, t)
            while self.flight and self.flight[0][0] <= self.now:
                _, _, src, dst, raw = heapq.heappop(self.flight)
                self.endpoints[dst].receive_datagram(raw, src, self.now)
                self._flush()
            self.clock.run_due()
            self._flush()
            for ep in self.endpoints.values():
                deadline = ep.get_timer()
                if deadline is not None and deadline <= self.now:
                    ep.handle_timer(self.now)

    # -- the server

    def _server_next(self) -> None:
        if self.serve.busy:
            return
        conn = self.endpoints[self.server_addr].accept(self.listener)
        if conn is None:
            return
        self.serve.busy = True
        assert isinstance(conn.peer, tuple)
        host, port = conn.peer
        self.b.note(self.now, self.server_addr, f"accept() returned, state {conn.state.name}")
        self.b.note(self.now, self.server_addr, f"getpeername() = {host}:{port}")
        self.clock.at(self.now + DECIDE_DELAY, lambda: self._decide(conn, host))

    def _decide(self, conn: Connection, host: str) -> None:
        server = self.server_addr
        if host == ALLOWED:
            self.b.note(self.now, server, f"{host} allowed: receive() confirms")
            conn.confirm(self.now)  # what the first receive() does
            self.handlers[conn] = lambda event: self._echo(conn, event)
        else:
            self.b.note(self.now, server, f"{host} denied: reject()")
            conn.disconnect(self.now, DRReason.NORMAL)
        self.serve.busy = False
        self._flush()
        self._server_next()

    def _echo(self, conn: Connection, event: object) -> None:
        if isinstance(event, DataReceived):
            data = conn.receive()
            if data is not None:
                conn.send(self.now, data)

    # -- the clients

    def client(self, name: str, addr: Address, start: float) -> None:
        def connect() -> None:
            self.b.note(self.now, addr, f"connect() from {addr[0]}")
            conn = self.endpoints[addr].connect(self.server_addr, self.now, called_tsap=TSAP)
            self.tracked.append((addr, conn))
            self.handlers[conn] = lambda event: self._client_event(name, addr, conn, event)

        self.clock.at(start, connect)

    def _client_event(self, name: str, addr: Address, conn: Connection, event: object) -> None:
        now = self.now
        if isinstance(event, ConnectionEstablished):
            self.b.note(now, addr, f"connect() returned, state {conn.state.name}")
            conn.send(now, b"hello from " + name.encode())
        elif isinstance(event, DataReceived):
            reply = conn.receive()
            text = reply.decode() if reply is not None else ""
            self.b.note(now, addr, f"echo received: {text!r}")
            self.b.note(now, addr, "aclose()")
            self.closing.append(conn)  # DR once what it sent is acknowledged
        elif isinstance(event, ConnectionTerminated) and isinstance(conn.error, ConnectionRejected):
            self.b.note(now, addr, f"connect() failed: DR reason {int(conn.error.reason)}")


def replay_tp4() -> Ladder:
    """The TP4 half of the demo's story, on three class 4 engines."""
    server, a, b = (ALLOWED, 10200), (ALLOWED, 50001), (DENIED, 50002)
    builder = LadderBuilder(TP4_TITLE, infer_states=False, origin=0.0)
    builder.participant(a, "client A")
    builder.participant(server, "server")
    builder.participant(b, "client B")
    world = _TP4World(builder, server, a, b)
    world.client("client A", a, 0.0)
    world.client("client B", b, B_START)
    world.run(until=2.0)
    return builder.ladder()


# ---------------------------------------------------------------- TCP


class _TCPWorld:
    """Class 0 engines over simulated TCP connections (the handshake and close drawn)."""

    def __init__(self, builder: LadderBuilder, server: Address) -> None:
        self.b = builder
        self.clock = _Clock()
        self.server_addr = server
        self.serve = _Server()
        self.engines: list[tuple[Address, Address, c0.Class0Connection]] = []
        self._decoders: dict[int, TPKTDecoder] = {}
        self.handlers: dict[int, Callable[[object], None]] = {}

    @property
    def now(self) -> float:
        return self.clock.now

    def run(self) -> None:
        while (t := self.clock.next_time()) is not None:
            self.clock.now = t
            self.clock.run_due()

    def _states(self) -> None:
        for addr, peer, engine in self.engines:
            self.b.state(self.now, addr, engine.state.name, peer=peer)

    def _pipe(self, src: Address, dst: Address, engine: c0.Class0Connection) -> bytes:
        """What *engine* (at *src*) writes: drawn TPDU by TPDU, returned for delivery."""
        raw = engine.data_to_send()
        decoder = self._decoders.setdefault(id(engine), TPKTDecoder())
        for tpdu in decoder.feed(raw):
            self.b.datagram(self.now, src, dst, tpdu, transport="tcp")
        return raw

    def send(
        self, src: Address, dst: Address, engine: c0.Class0Connection, peer_engine: object
    ) -> None:
        raw = self._pipe(src, dst, engine)
        self._states()
        if raw and isinstance(peer_engine, c0.Class0Connection):
            self.clock.at(self.now + DELAY, lambda: self._deliver(dst, src, peer_engine, raw))

    def _deliver(self, at: Address, peer: Address, engine: c0.Class0Connection, raw: bytes) -> None:
        engine.receive_data(raw)
        self._react(at, peer, engine)

    def _react(self, at: Address, peer: Address, engine: c0.Class0Connection) -> None:
        handler = self.handlers[id(engine)]
        self._states()
        while (event := engine.next_event()) is not None:
            handler(event)
        self._states()

    def client(self, name: str, addr: Address, start: float) -> None:
        server = self.server_addr
        mine = c0.Class0Connection(Role.INITIATOR, CONFIG)
        theirs = c0.Class0Connection(Role.RESPONDER, CONFIG)
        self.engines += [(addr, server, mine), (server, addr, theirs)]
        d = DELAY

        def syn() -> None:
            self.b.note(self.now, addr, f"connect() from {addr[0]}")
            self.b.tcp(self.now, addr, server, "TCP SYN")
            self.clock.at(self.now + d, syn_ack)
            self.clock.at(self.now + 2 * d, handshake_done)

        def syn_ack() -> None:
            self.b.tcp(self.now, server, addr, "TCP SYN, ACK")

        def handshake_done() -> None:
            self.b.tcp(self.now, addr, server, "TCP ACK")
            mine.connect(called_tsap=TSAP)
            self.send(addr, server, mine, theirs)

        def client_event(event: object) -> None:
            now = self.now
            if isinstance(event, c0.ConnectionEstablished):
                self.b.note(now, addr, f"connect() returned, state {mine.state.name}")
                mine.send(b"hello from " + name.encode())
                self.send(addr, server, mine, theirs)
            elif isinstance(event, c0.DataReceived):
                reply = mine.receive()
                text = reply.decode() if reply is not None else ""
                self.b.note(now, addr, f"echo received: {text!r}")
                self.b.note(now, addr, "aclose(): the TCP close")
                mine.close()
                self._fin(addr, server, theirs)
            elif isinstance(event, c0.ConnectionTerminated) and isinstance(
                mine.error, Disconnected
            ):
                reason = int(mine.error.reason)
                self.b.note(now, addr, f"cut off after it was connected: DR reason {reason}")
                mine.close()
                self._fin(addr, server, None)

        def server_event(event: object) -> None:
            if isinstance(event, c0.ConnectionRequested):
                self._states()  # CONFIRMING, for no time at all:
                theirs.accept()  # the driver does, before accept() returns: the CC
                self.send(server, addr, theirs, mine)
                self.serve.waiting.append((theirs, mine, addr))
                self._server_next()
            elif isinstance(event, c0.ConnectionTerminated):
                self._fin(server, addr, None)

        self.handlers[id(mine)] = client_event
        self.handlers[id(theirs)] = server_event
        self.clock.at(start, syn)

    def _fin(self, src: Address, dst: Address, peer_engine: c0.Class0Connection | None) -> None:
        self.b.tcp(self.now, src, dst, "TCP FIN")
        if peer_engine is not None:

            def eof() -> None:
                peer_engine.receive_eof()
                self._react(dst, src, peer_engine)

            self.clock.at(self.now + DELAY, eof)

    def _server_next(self) -> None:
        if self.serve.busy or not self.serve.waiting:
            return
        self.serve.busy = True
        theirs, mine, addr = self.serve.waiting.pop(0)
        server = self.server_addr
        self.b.note(self.now, server, f"accept() returned, state {theirs.state.name}")
        self.b.note(self.now, server, f"getpeername() = {addr[0]}:{addr[1]}")
        self.clock.at(self.now + DECIDE_DELAY, lambda: self._decide(theirs, mine, addr))

    def _decide(
        self, theirs: c0.Class0Connection, mine: c0.Class0Connection, addr: Address
    ) -> None:
        server = self.server_addr
        host = addr[0]
        if host == ALLOWED:
            self.b.note(self.now, server, f"{host} allowed: receive()")
            data = theirs.receive()
            if data is not None:
                theirs.send(data)
                self.send(server, addr, theirs, mine)
        else:
            self.b.note(self.now, server, f"{host} denied: reject()")
            theirs.disconnect(DRReason.NORMAL)
            self.send(server, addr, theirs, mine)
            self._fin(server, addr, None)  # the half-close after the DR
        self.serve.busy = False
        self._server_next()


def replay_tcp() -> Ladder:
    """The TCP half of the demo's story, on class 0 engines (TCP's handshake and close drawn)."""
    server, a, b = (ALLOWED, 102), (ALLOWED, 50001), (DENIED, 50002)
    builder = LadderBuilder(TCP_TITLE, infer_states=False, origin=0.0)
    builder.participant(a, "client A")
    builder.participant(server, "server")
    builder.participant(b, "client B")
    world = _TCPWorld(builder, server)
    world.client("client A", a, 0.0)
    world.client("client B", b, B_START)
    world.run()
    return builder.ladder()


def replay_ladders() -> dict[str, Ladder]:
    """Both halves: ``{"tp4": ..., "tcp": ...}``, the same every time."""
    return {"tp4": replay_tp4(), "tcp": replay_tcp()}
