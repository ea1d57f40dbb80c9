"""The sans-IO endpoint: many class 4 connections over one datagram socket.

Shaped like aioquic's ``QuicConnection`` and quinn-proto's endpoint: the
driver feeds it datagrams (:meth:`Endpoint.receive_datagram`) and timer
expiries (:meth:`Endpoint.handle_timer`) with the current time, and collects
datagrams to send (:meth:`Endpoint.datagrams_to_send`), the next deadline
(:meth:`Endpoint.get_timer`) and events (:meth:`Endpoint.next_event`).

Demultiplexing: a TPDU is routed by its DST-REF (our reference) and must come
from the connection's peer address; a CR is routed by (peer address, SRC-REF)
so that retransmitted CRs reach the connection they created. Bad input is
counted in :class:`~tp4emu.core.stats.Statistics` and dropped or answered as
ISO 8073 says; it never raises out of the endpoint.

Admission control (``docs/security.md``): a new CR is refused (one DR, never
retransmitted, no state kept) when no listener serves its TSAP (reason 2), the
listener's backlog is full or its peer's address or /24 (IPv6: /64) has too
many half-open connections (1), its CC would not fit a header (138), or no
reference is free (135). A responder connection is *unvalidated* until its
peer sends a TPDU carrying our reference; while it is, at most
``amplification_factor`` times what the peer sent is sent to it, and at most
``max_unvalidated`` such connections exist until they reach REFWAIT
(CONFIRMING, AKWAIT, CLOSING after a rejection): a new CR evicts the oldest.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import random
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..wire import (
    CC,
    CR,
    DC,
    DR,
    DT0,
    ER,
    RJ,
    TPDU,
    AdditionalOptions,
    DRReason,
    TPDUCode,
    TPDUError,
    decode,
    encode_one,
    verify,
)
from .budget import ReceiveBudget
from .config import Config
from .connection import Address, Connection, Role
from .events import (
    AckWanted,
    ConnectionClosed,
    ConnectionRequested,
    ConnectionTerminated,
    EndpointEvent,
    Event,
    StateChanged,
    TimerArmed,
    Transmit,
)
from .state import State
from .stats import Statistics

__all__ = ["Endpoint", "Listener"]


@dataclass(eq=False)
class Listener:
    """A listening TSAP: CRs whose called TSAP matches queue here while CONFIRMING."""

    tsap: bytes | None
    """The called TSAP-ID served, or None for "any TSAP"."""
    backlog: int
    queue: deque[Connection] = field(default_factory=deque)
    closed: bool = False


_HALF_OPEN = frozenset({State.CONFIRMING, State.AKWAIT})


def _host(addr: Address) -> Hashable:
    return addr[0] if isinstance(addr, tuple) and addr else addr


@functools.lru_cache(maxsize=4096)
def _prefix(host: Hashable) -> Hashable:
    """The IPv4 /24 or IPv6 /64 of *host*; *host* itself when it is not an IP address."""
    try:
        ip = ipaddress.ip_address(host)  # type: ignore[arg-type]
    except ValueError:
        return host
    bits = 24 if ip.version == 4 else 64
    return ipaddress.ip_network((ip, bits), strict=False)


class Endpoint:
    """Class 4 transport entity over one datagram service (sans-IO)."""

    def __init__(self, config: Config | None = None, *, rng: random.Random | None = None) -> None:
        self.config = config or Config()
        self.stats = Statistics()
        self._rng = rng or random.SystemRandom()
        self._conns: dict[int, Connection] = {}
        self._by_remote: dict[tuple[Address, int], Connection] = {}
        self._listeners: dict[bytes | None, Listener] = {}
        self._half_open: dict[Hashable, int] = {}
        self._half_open_prefix: dict[Hashable, int] = {}
        self._unvalidated: dict[Connection, None] = {}  # oldest first
        self._frozen = 0  # connections in REFWAIT
        self._budget = ReceiveBudget(self.config.receive_buffer_budget)
        self._outbox: deque[EndpointEvent] = deque()  # what connections ask of us
        self._listener_of: dict[Connection, Listener] = {}  # queued or accepted from
        self._out: list[tuple[bytes, Address]] = []
        self._acks: dict[Connection, None] = {}  # connections with an AK wanted (a set, in order)
        self._events: deque[Event] = deque()
        self._heap: list[tuple[float, int, Connection]] = []
        self._heap_seq = 0
        self._armed: dict[Connection, float] = {}  # each connection's latest deadline
        self._changed = False  # something came out of the outbox since datagrams_to_send
        self.header_prediction = True
        """Take in-sequence DTs and window-advancing AKs of OPEN connections by
        :meth:`Connection.fast_receive` (False: every datagram is decoded and
        goes through the transition table; the same results, more slowly)."""

    # ------------------------------------------------------------ user API

    @property
    def connections(self) -> list[Connection]:
        """Every connection that still holds a reference (REFWAIT included)."""
        self._drain()
        return list(self._conns.values())

    def listen(self, tsap: bytes | None = None, backlog: int | None = None) -> Listener:
        """Accept CRs for *tsap* (None: any called TSAP not served by another listener)."""
        if tsap in self._listeners:
            raise ValueError(f"a listener for TSAP {tsap!r} exists already")
        listener = Listener(tsap, backlog if backlog is not None else self.config.default_backlog)
        self._listeners[tsap] = listener
        return listener

    def close_listener(self, listener: Listener, now: float) -> None:
        """Stop listening; queued (not accepted) connections are rejected with DR reason 2."""
        listener.closed = True
        if self._listeners.get(listener.tsap) is listener:
            del self._listeners[listener.tsap]
        self._drain()
        while listener.queue:
            conn = listener.queue.popleft()
            conn.disconnect(now, DRReason.SESSION_NOT_ATTACHED)
            self._drain()

    def accept(self, listener: Listener) -> Connection | None:
        """Take the oldest CONFIRMING connection queued on *listener*, or None."""
        self._drain()
        return listener.queue.popleft() if listener.queue else None

    def connect(
        self,
        peer: Address,
        now: float,
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
    ) -> Connection:
        """Open a connection to *peer*: sends the CR, returns the connection in WFCC.

        Raises:
            ValueError: connect data over 32 octets.
            OSError: no free reference.
        """
        if len(data) > 32:
            raise ValueError("connect data is limited to 32 octets")
        ref = self._allocate_reference()
        if ref is None:
            raise OSError("no free transport reference")
        conn = self._new_connection(ref, peer, Role.INITIATOR)
        self._conns[ref] = conn
        conn.connect(now, called_tsap=called_tsap, calling_tsap=calling_tsap, data=data)
        self._drain()
        return conn

    def statistics(self) -> Statistics:
        """A snapshot of the counters."""
        self._drain()
        return self.stats.copy()

    # --------------------------------------------------------- driver API

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram from *addr*. Never raises on bad input."""
        stats = self.stats
        stats.datagrams_received += 1
        stats.octets_received += len(data)
        if self.header_prediction and len(data) > 4:
            # The common case in OPEN (Connection.fast_receive): in-sequence DT, AK.
            conn = self._conns.get((data[2] << 8) | data[3])
            if conn is not None and conn.peer == addr:
                taken = conn.fast_receive(data, now)
                if taken:
                    if taken == len(data):
                        stats.tpdus_received += 1 if data[1] == 0xF0 or data[0] + 1 == taken else 2
                        self._drain()
                        return
                    # an AK taken, the DT after it (known to decode) for the full path
                    stats.tpdus_received += 1
                    self._drain()
                    self._receive_tpdus(decode(data[taken:]), data, addr, now)
                    return
        try:
            tpdus = decode(data)
        except TPDUError as exc:
            self._bad_datagram(data, addr, exc)
            return
        self._receive_tpdus(tpdus, data, addr, now)

    def _receive_tpdus(self, tpdus: list[TPDU], data: bytes, addr: Address, now: float) -> None:
        """The TPDUs decoded from the datagram *data*, one by one."""
        stats = self.stats
        conns = self._conns
        for tpdu in tpdus:
            stats.tpdus_received += 1
            if tpdu.checksum_ok is False:
                stats.bad_checksum += 1
                continue
            if isinstance(tpdu, CR):
                self._on_cr(tpdu, addr, now, len(data))
                continue
            if isinstance(tpdu, DT0):
                stats.invalid_tpdu += 1  # a class 0/1 DT: no reference, not class 4
                continue
            conn = conns.get(tpdu.dst_ref)
            if conn is None:
                stats.unknown_reference += 1
                if isinstance(tpdu, DR) and tpdu.src_ref:
                    self._send(encode_one(DC(tpdu.src_ref, tpdu.dst_ref), checksum=True), addr)
                elif isinstance(tpdu, CC) and tpdu.src_ref:
                    # A CC for a connection we do not have: refuse it, so that the
                    # peer does not hold it open (netiso, NBS 21: reason 2).
                    dr = DR(tpdu.src_ref, tpdu.dst_ref, DRReason.SESSION_NOT_ATTACHED)
                    self._send(encode_one(dr, checksum=True), addr)
                continue
            if conn.peer != addr:
                stats.wrong_peer += 1
                continue
            if isinstance(tpdu, RJ):
                stats.invalid_tpdu += 1  # RJ belongs to classes 1 and 3
                continue
            if conn.checksum and tpdu.checksum_ok is None and not isinstance(tpdu, CC):
                stats.missing_checksum += 1  # (a CC may select non-use: checked by the CC)
                continue
            if not conn.validated:
                # It carries our reference, which only our TPDUs told the peer.
                conn.validate()
                self._unvalidated.pop(conn, None)
            conn.receive_tpdu(tpdu, now)
            self._drain()

    def datagrams_to_send(self, now: float, *, acks: bool = True) -> list[tuple[bytes, Address]]:
        """Take every datagram ready to go, with its destination.

        AKs wanted by the datagrams received since the last call are produced
        here, one per connection: a batch of DTs is acknowledged once. With
        ``acks=False`` only the urgent ones are (:attr:`Connection.ack_urgent`:
        the peer's usable window is down to half ours or less, or the AK
        reports a hole, a duplicate or a window to confirm); the others stay
        pending, so that a DT the user sends soon after carries its AK in the
        same datagram (concatenation), or one AK covers more DTs. The driver
        must call again with ``acks=True`` within the acknowledgement time it
        announced (``Config.ack_time``).
        """
        self._drain()
        if self._acks:
            if acks:
                pending = list(self._acks)
                self._acks.clear()
            else:  # the urgent ones only
                self._forget_carried_acks()
                pending = [c for c in self._acks if c.ack_urgent]
                for c in pending:
                    del self._acks[c]
            for conn in pending:
                conn.flush_ack(now)
            self._drain()
        out, self._out = self._out, []
        self._changed = bool(self._events)  # (take_events or next_event clears the rest)
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` must run, or None."""
        self._drain()
        heap = self._heap
        armed = self._armed
        while heap and heap[0][0] != armed.get(heap[0][2]):
            heapq.heappop(heap)  # superseded by a later TimerArmed
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        """Run every timer that expired at *now*."""
        self._drain()
        heap = self._heap
        armed = self._armed
        while heap and heap[0][0] <= now:
            deadline, _, conn = heapq.heappop(heap)
            if deadline == armed.get(conn):
                del armed[conn]
                conn.handle_timer(now)
                self._drain()

    @property
    def has_output(self) -> bool:
        """Whether anything is waiting: datagrams, events, deadlines or AKs to
        take. A driver may skip its flush when not (nothing changed)."""
        return bool(self._outbox or self._out or self._events) or self._changed

    def take_events(self) -> list[Event]:
        """Every pending event for the user, oldest first (``next_event`` in one call)."""
        self._drain()
        if not self._events:
            return []
        events = list(self._events)
        self._events.clear()
        return events

    def next_event(self) -> Event | None:
        """The next event for the user, or None."""
        self._drain()
        return self._events.popleft() if self._events else None

    @property
    def acks_pending(self) -> bool:
        """Whether some connection holds an AK for the next ``datagrams_to_send``."""
        self._drain()
        self._forget_carried_acks()
        return bool(self._acks)

    def _forget_carried_acks(self) -> None:
        """Drop the connections whose wanted AK a DT has carried meanwhile."""
        acks = self._acks
        for conn in [c for c in acks if not c.ack_pending]:
            del acks[conn]

    # ------------------------------------------- what connections ask of us

    def _drain(self) -> None:
        """Carry out the endpoint events the connections queued, in order."""
        outbox = self._outbox
        if outbox:
            self._changed = True
        while outbox:
            event = outbox.popleft()
            if isinstance(event, Transmit):  # the data path's event: checked first
                self._send(event.raw, event.connection.peer, event.tpdus)
            elif isinstance(event, TimerArmed):
                self._armed[event.connection] = event.deadline
                self._heap_seq += 1
                heapq.heappush(self._heap, (event.deadline, self._heap_seq, event.connection))
            elif isinstance(event, AckWanted):
                self._acks[event.connection] = None
            elif isinstance(event, StateChanged):
                self._state_changed(event.connection, event.old, event.new)
            else:
                if isinstance(event, ConnectionTerminated):
                    listener = self._listener_of.get(event.connection)
                    if listener is not None and event.connection in listener.queue:
                        listener.queue.remove(event.connection)
                self._events.append(event)

    def _state_changed(self, conn: Connection, old: State, new: State) -> None:
        if (old is State.OPEN) != (new is State.OPEN):
            self._budget.open_connections += 1 if new is State.OPEN else -1
        was, now_half = old in _HALF_OPEN, new in _HALF_OPEN
        if was != now_half:
            delta = 1 if now_half else -1
            host = _host(conn.peer)
            for table, key in ((self._half_open, host), (self._half_open_prefix, _prefix(host))):
                count = table.get(key, 0) + delta
                if count:
                    table[key] = count
                else:
                    table.pop(key, None)
        if new is State.REFWAIT:
            self._frozen += 1
            self._unvalidated.pop(conn, None)
        elif new is State.CLOSED:
            self._release(conn)

    def _send(self, raw: bytes, addr: Address, tpdus: int = 1) -> None:
        stats = self.stats
        stats.datagrams_sent += 1
        stats.tpdus_sent += tpdus
        stats.octets_sent += len(raw)
        self._out.append((raw, addr))

    def _release(self, conn: Connection) -> None:
        if self._conns.get(conn.local_ref) is conn:
            self._frozen -= 1  # only REFWAIT connections are released
            del self._conns[conn.local_ref]
        key = (conn.peer, conn.remote_ref)
        if self._by_remote.get(key) is conn:
            del self._by_remote[key]
        self._armed.pop(conn, None)
        self._listener_of.pop(conn, None)
        self._events.append(ConnectionClosed(conn))

    def _new_connection(self, ref: int, peer: Address, role: Role) -> Connection:
        return Connection(
            ref,
            peer,
            role,
            self.config,
            stats=self.stats,
            budget=self._budget,
            outbox=self._outbox,
        )

    # ------------------------------------------------------------- internals

    def _allocate_reference(self) -> int | None:
        """A free reference, random; None when the live connections are at the
        cap or the 16-bit space (frozen references included) is exhausted."""
        conns = self._conns
        if len(conns) - self._frozen >= self.config.max_connections or len(conns) >= 0xFFFF:
            return None
        for _ in range(64):
            ref = self._rng.randrange(1, 0x10000)
            if ref not in conns:
                return ref
        # Nearly full: the next free one after a random start (a free one exists).
        start = self._rng.randrange(0, 0xFFFF)
        for i in range(0xFFFF):
            ref = (start + i) % 0xFFFF + 1
            if ref not in conns:
                return ref
        return None  # pragma: no cover - len(conns) < 0xFFFF

    def _refuse(self, cr: CR, addr: Address, reason: DRReason) -> None:
        self.stats.connections_refused += 1
        self._send(encode_one(DR(cr.src_ref, 0, reason), checksum=True), addr)

    def _on_cr(self, cr: CR, addr: Address, now: float, octets: int) -> None:
        stats = self.stats
        existing = self._by_remote.get((addr, cr.src_ref))
        if existing is not None:
            existing.count_received(octets)  # a retransmitted CR renews the budget
            existing.receive_tpdu(cr, now)
            self._drain()
            return
        if cr.src_ref == 0 or cr.dst_ref != 0:
            stats.invalid_tpdu += 1
            return
        if cr.protocol_class != 4:
            # Only class 4 runs over a datagram network: refuse, whatever the checksum
            # (classes 0-3 have none).
            stats.connections_requested += 1
            self._refuse(cr, addr, DRReason.NEGOTIATION_FAILED)
            return
        non_use = cr.additional_options & AdditionalOptions.NON_USE_OF_CHECKSUM
        if cr.checksum_ok is None and not non_use:
            stats.missing_checksum += 1
            return
        stats.connections_requested += 1
        listener = self._listeners.get(cr.called_tsap)
        if listener is None:
            listener = self._listeners.get(None)
        if listener is None or listener.closed:
            self._refuse(cr, addr, DRReason.SESSION_NOT_ATTACHED)
            return
        cfg = self.config
        host = _host(addr)
        if (
            len(listener.queue) >= listener.backlog
            or self._half_open.get(host, 0) >= cfg.max_half_open_per_address
            or self._half_open_prefix.get(_prefix(host), 0) >= cfg.max_half_open_per_prefix
        ):
            self._refuse(cr, addr, DRReason.CONGESTION)
            return
        conn = self._new_connection(0, addr, Role.RESPONDER)
        if not conn.negotiate(cr):
            self._refuse(cr, addr, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID)
            return
        if len(self._unvalidated) >= cfg.max_unvalidated:
            # Oldest first: a genuine peer answers our CC within a round trip,
            # sooner than a flood can push it out (docs/security.md).
            victim = next(iter(self._unvalidated))
            del self._unvalidated[victim]
            stats.connections_evicted += 1
            victim.evict(now)
            self._drain()
        ref = self._allocate_reference()
        if ref is None:
            self._refuse(cr, addr, DRReason.REFERENCE_OVERFLOW)
            return
        conn.local_ref = ref
        conn.count_received(octets)
        self._conns[ref] = conn
        self._by_remote[(addr, cr.src_ref)] = conn
        self._unvalidated[conn] = None
        self._listener_of[conn] = listener
        conn.receive_tpdu(cr, now)
        self._drain()
        listener.queue.append(conn)
        self._events.append(ConnectionRequested(conn, listener.tsap, listener))

    def _bad_datagram(self, data: bytes, addr: Address, exc: TPDUError) -> None:
        """An undecodable datagram: drop it, or answer with DR (a CR) or ER (open connection).

        An answer is sent only when the bytes carry a valid checksum or belong to
        a connection without checksum: a corrupted datagram is dropped silently.
        """
        self.stats.undecodable += 1
        raw = data[exc.offset :]
        if len(raw) < 4:
            return
        code = raw[1] >> 4
        if code == TPDUCode.CR:
            if len(raw) >= 6 and verify(raw):
                src_ref = int.from_bytes(raw[4:6], "big")
                if src_ref and (addr, src_ref) not in self._by_remote:
                    self.stats.connections_refused += 1
                    self._send(encode_one(DR(src_ref, 0, exc.reason), checksum=True), addr)
            return
        conn = self._conns.get(int.from_bytes(raw[2:4], "big"))
        if conn is None or conn.peer != addr or conn.state is not State.OPEN:
            return
        if conn.checksum and not verify(raw):
            return
        self.stats.er_sent += 1
        # No "invalid TPDU" parameter: X.224 makes it mandatory only in class 0,
        # and Wireshark does not decode an ER whose LI exceeds 8 (docs/wireshark.md).
        er = ER(conn.remote_ref, exc.cause)
        self._send(encode_one(er, checksum=conn.checksum), addr)
