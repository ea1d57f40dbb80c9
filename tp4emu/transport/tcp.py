"""ISO transport over TCP (RFC 1006, class 0) on trio, with the same API as TP4/UDP.

This adapter exists for contrast, and to talk to real ISO-on-TCP equipment.
TCP surfaces a connection only after its three-way handshake; this adapter
then also completes the CR/CC exchange before ``accept()`` returns. So:

* ``accept()`` returns connections already OPEN (the client's ``connect()``
  has returned, or is about to);
* ``getpeername()`` works, but the decision comes too late: ``reject()`` can
  only tear down an established connection (a DR, then the TCP close), which
  the client sees *after* its connect succeeded;
* ``confirm()`` is a no-op.

Unless the listener was made with ``listen(..., auto_confirm=False)``: its
``accept()`` returns connections CONFIRMING, their CR read (``connect_data``,
the TSAPs, ``getpeername()``) and not yet answered; ``confirm(data)`` sends
the CC, with *data* in its header (an RDP server's RDP_NEG_RSP), and
``reject(reason)`` a DR, which the client sees as the refusal of its
``connect()``. ``send()`` and ``receive()`` confirm first, as over TP4.

RDP peers (FreeRDP, xrdp, mstsc) put a cookie and negotiation structures in
the CR's and the CC's header where X.224 wants parameters: the engine takes
them as connect and confirm data (see :mod:`tp4emu.core.class0`), and
``connect(..., data=..., propose_tpdu_size=False)`` sends the CR an RDP client
sends (docs/rdp.md).

The protocol is the sans-IO engine :class:`~tp4emu.core.class0.Class0Connection`
(TPKT + class 0 TPDUs: CR/CC with TSAPs and TPDU size ≤ 2048, DT with EOT
segmentation and reassembly, DR, ER; bad input closes the connection, after
an ER when the TPDU was framed correctly but invalid). This module is its
driver: it reads from the TCP stream and feeds the engine, writes what the
engine produces, and keeps only what needs I/O or a clock: the accept loop,
the caps on sockets, the timers, the endpoint-wide budget as back-pressure on
reads, the pcap capture and the linger after a reject. A connection reads
from its socket only while its user waits in ``receive()``.

Limits (all in :class:`~tp4emu.core.Config`), so that no peer and no shortage
of resources stops the endpoint or makes it hold unbounded state:

* at most ``max_connections`` incoming TCP connections at a time (from the
  TCP accept until closed; outgoing ones are not counted), and at most
  ``max_half_open_per_address`` per peer IP address still in the CR/CC
  exchange: a TCP connection beyond either is closed at once, unread
  (counted ``connections_refused``);
* the CR must arrive within ``tcp_cr_timeout``, else the TCP connection is
  closed (counted ``undecodable``);
* a CR whose CC would not fit one TPDU header (its TSAPs echoed plus the TPDU
  size) gets DR reason 138;
* a connection whose user waits in ``receive()`` and that receives nothing
  for ``tcp_idle_timeout`` is closed (``Disconnected``, reason 0);
* ``receive_buffer_budget`` bounds what all the endpoint's connections hold
  read but not yet delivered (see :class:`_Budget`);
* accept() failing for want of file descriptors or memory (EMFILE, ENFILE,
  ENOMEM, ENOBUFS) is logged and retried after 0.1 s, as
  ``trio.serve_listeners`` does;
* an unexpected error while serving one incoming connection is logged
  (logger ``tp4emu.tcp``), counted ``undecodable`` and closes that connection
  only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..core import (
    Config,
    Disconnected,
    LocalProtocolError,
    Role,
    State,
    Statistics,
)
from ..core.class0 import (
    CLASS0_MAX_TPDU_SIZE,
    Class0Connection,
    ConnectionRequested,
    ConnectionTerminated,
)
from ..core.class0 import (
    LOCAL_REF as LOCAL_REF,
)
from ..core.errors import ConnectionRejected
from ..wire import DRReason
from .stream import ConnectionFacts, TSDUStream

__all__ = [
    "CLASS0_MAX_TPDU_SIZE",
    "TCPConnectFailed",
    "TCPConnection",
    "TCPEndpoint",
    "TCPListener",
    "open_tcp_endpoint",
]

_READ = 65536
"""Octets asked of the socket per read."""

_log = logging.getLogger("tp4emu.tcp")

_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""accept() errors that mean "out of resources for now" (as in trio.serve_listeners)."""
_ACCEPT_RETRY = 0.1
"""Seconds to wait before accepting again after one of those."""


class TCPConnectFailed(ConnectionRejected):
    """The TCP connection itself could not be opened (refused, unreachable,
    unresolvable address, ...): no CR was sent and no DR was received.

    A :class:`~tp4emu.core.errors.ConnectionRejected`, so that code catching
    refusals catches this one too; its ``reason`` is 3 (ADDRESS_UNKNOWN), but
    no peer said so (``by_peer`` is False). ``errno`` and ``strerror`` are those of the TCP connect
    (e.g. ``ECONNREFUSED``: nothing listens on the port), the OSError itself
    is :attr:`os_error` (and ``__cause__``).
    """

    def __init__(self, peer: tuple[str, int], error: OSError) -> None:
        self.os_error = error
        self.peer = peer
        # trio.open_tcp_stream raises a plain OSError whose cause groups the
        # error of each address tried: the first of those says what happened.
        first = error
        cause = error.__cause__
        while isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        if error.errno is None and isinstance(cause, OSError):
            first = cause
        if isinstance(first, ConnectionRefusedError):
            text = f"connection refused (TCP): nothing listens on {_format_address(peer)}"
        else:
            text = f"TCP connect to {_format_address(peer)} failed: {first.strerror or first}"
        super().__init__(DRReason.ADDRESS_UNKNOWN, message=text, by_peer=False)
        self.errno = first.errno
        self.strerror = text


def _format_address(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Capture:
    """Records the TPDUs of one TCP connection (without TPKT headers) in a pcap.

    A no-op without a writer. Link type 252 with port type TCP: Wireshark and
    tshark decode the records as COTP without a script (``tp4emu wireshark``
    adds the options that keep heuristic dissectors off the user data).
    """

    def __init__(self, pcap: Any, stream: trio.SocketStream) -> None:
        self.pcap = pcap
        try:
            self.local = tuple(stream.socket.getsockname()[:2])
            self.peer = tuple(stream.socket.getpeername()[:2])
        except OSError:
            self.pcap = None

    def record(self, engine: Class0Connection) -> None:
        """Write what *engine* sent and received since the last call."""
        for sent, tpdu in engine.recorded():
            if self.pcap is not None:
                src, dst = (self.local, self.peer) if sent else (self.peer, self.local)
                self._write(tpdu, src, dst)

    def _write(self, tpdu: bytes, src: Any, dst: Any) -> None:
        try:
            self.pcap.write(tpdu, src=src, dst=dst, timestamp=time.time(), transport="tcp")
            self.pcap.flush()
        except (OSError, ValueError):  # a broken capture never breaks the connection
            self.pcap = None


class _Budget:
    """The octets the TCP connections of one endpoint hold: read from their
    sockets but not yet delivered (partial TSDUs, and TPDUs read but not yet
    handled), against ``Config.receive_buffer_budget`` (B).

    Before each read from its socket a connection calls :meth:`wait`. While
    the total is over B, a connection holding more than ``B // n`` (n: the
    connections holding data) waits until the total drops or the shares
    grow; TCP's flow control then holds its peer back. So that some TSDU
    always completes, when no connection holding data is within its share,
    the one that has held data the longest may still read.

    The bound. Let R be one read plus one TPKT (``_READ`` + 2052 octets): a
    connection's holding grows only by reads (the CR's or CC's included),
    each by at most R. Of the connections holding data, leave out the one
    (at most one) whose last read was let through as the oldest holder. Of
    the others, the k-th largest holds at most ``B / k + R``: otherwise k of
    them hold more, and the last of them let read found all k holding more
    than ``B / k``, hence the total over B and itself over its share. So
    the total is at most ``B * (1 + 1/2 + ... + 1/m) + m * R`` for m
    connections holding data, plus the one left out, which holds at most
    ``Config.max_tsdu_size + R``. No rule that lets a connection within its
    share progress can promise ``B + m * R``: a connection that alone took
    all of B cannot give it back before its TSDU ends, and another one that
    starts then still gets its share.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.total = 0
        """Octets held by all the connections now."""
        self.peak = 0
        """The largest total seen."""
        self._held: dict[object, int] = {}  # connections holding data, oldest first
        self._lot = trio.lowlevel.ParkingLot()

    def update(self, conn: object, octets: int) -> None:
        """*conn* now holds *octets*."""
        old = self._held.get(conn, 0)
        if octets == old:
            return
        was_within = old <= self.budget // max(len(self._held), 1)
        if octets:
            self._held[conn] = octets  # an update keeps its place in the order
        else:
            del self._held[conn]
        self.total += octets - old
        self.peak = max(self.peak, self.total)
        # Only a connection already over its share growing further cannot let
        # a waiting one read (it changes neither the shares nor who is within one).
        if octets < old or was_within:
            self._lot.unpark_all()

    def may_read(self, conn: object) -> bool:
        """Whether *conn* may read from its socket now."""
        if self.total <= self.budget:
            return True
        share = self.budget // len(self._held)
        if self._held.get(conn, 0) <= share:
            return True
        return next(iter(self._held)) is conn and all(h > share for h in self._held.values())

    async def wait(self, conn: object) -> None:
        """Return when *conn* may read from its socket."""
        while not self.may_read(conn):
            await self._lot.park()


class TCPConnection(ConnectionFacts, trio.abc.Channel[bytes]):
    """A class 0 transport connection over one TCP connection (RFC 1006).

    Drives one :class:`~tp4emu.core.class0.Class0Connection` (:attr:`engine`),
    OPEN when this is created, or CONFIRMING (its CR not yet answered) for a
    listener without ``auto_confirm``.
    """

    def __init__(
        self,
        engine: Class0Connection,
        stream: trio.SocketStream,
        *,
        capture: _Capture,
        idle_timeout: float | None = None,
        budget: _Budget | None = None,
        on_close: Callable[[TCPConnection], None] | None = None,
    ) -> None:
        self.engine = engine
        self._facts = engine
        """The sans-IO connection (for inspection; do not drive it directly)."""
        self._stream = stream
        self._capture = capture
        self.closed_by_user = False
        """True once our user closed the connection."""
        self._idle_timeout = idle_timeout
        self._budget = budget
        self._on_close = on_close  # called once, when the TCP connection is closed
        self._send_lock = trio.StrictFIFOLock()
        self._receiving = False
        self._decided = trio.Event()  # set once confirmed or closed (for _expire)
        try:
            self._peer: tuple[str, int] = tuple(stream.socket.getpeername()[:2])
            self._local: tuple[str, int] = tuple(stream.socket.getsockname()[:2])
        except OSError:
            self._peer = self._local = ("", 0)
        self._after()  # TPDUs that came with the CR or CC

    # -------------------------------------------------------------- info

    @property
    def state(self) -> State:
        """OPEN until released; then CLOSED. CONFIRMING (from a listener
        without ``auto_confirm``) until confirmed or rejected."""
        return self.engine.state

    @property
    def error(self) -> Disconnected | None:
        """Why the connection ended, when the peer or the network ended it."""
        err = self.engine.error
        return err if isinstance(err, Disconnected) else None

    @property
    def tpdu_size(self) -> int:
        """Negotiated TPDU size (≤ 2048)."""
        return self.engine.tpdu_size

    @property
    def local_ref(self) -> int:
        """Our reference (class 0 references only identify the connection)."""
        return self.engine.local_ref

    @property
    def remote_ref(self) -> int:
        """The peer's reference, from its CR or CC."""
        return self.engine.remote_ref

    def getpeername(self) -> tuple[str, int]:
        """The peer's (host, port), also while CONFIRMING. Raises OSError(ENOTCONN) once closed."""
        if self.engine.state not in (State.OPEN, State.CONFIRMING):
            raise OSError(errno.ENOTCONN, "transport connection is not connected")
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        """The local (host, port) of the TCP connection."""
        return self._local

    def as_stream(self) -> TSDUStream:
        """A byte-stream view of this connection (trio.abc.HalfCloseableStream):
        ``send_all`` sends one TSDU, ``send_eof`` an empty one."""
        return TSDUStream(self)

    @property
    def closed(self) -> bool:
        """Whether we closed or rejected the connection."""
        return self.closed_by_user

    async def wait_send_ready(self) -> None:
        """Return at once (after a checkpoint): TCP's own flow control paces ``send``."""
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------- calls

    def _check(self) -> None:
        if self.closed_by_user:
            raise trio.ClosedResourceError("connection was closed")
        if self.error is not None:
            raise self.error

    def _after(self) -> bool:
        """After each call into the engine: take its events, record its TPDUs,
        update the budget. Returns whether the engine reported the connection
        terminated (the TCP connection is then to be closed)."""
        terminated = False
        while (event := self.engine.next_event()) is not None:
            # DataReceived and ConnectionEstablished need no wake-up here: the
            # task that fed the engine is the one that waits for them.
            terminated = terminated or isinstance(event, ConnectionTerminated)
        self._capture.record(self.engine)
        if self._budget is not None:
            self._budget.update(self, self.engine.held)
        return terminated

    async def confirm(self, data: bytes = b"") -> None:
        """Confirm a CONFIRMING connection: the CC goes out, *data* in its header.

        A no-op on a connection already OPEN (from a listener with
        ``auto_confirm``: confirmed before ``accept()`` returned).

        Raises:
            ValueError: *data* does not fit the CC's header (254 octets with
                the parameters), nothing sent.
            LocalProtocolError: *data* given for a connection already confirmed.
            Disconnected: the TCP connection broke while the CC was sent.
        """
        await trio.lowlevel.checkpoint()
        self._check()
        engine = self.engine
        if engine.state is not State.CONFIRMING:
            if data:
                raise LocalProtocolError(
                    "the connection was confirmed before accept() returned: "
                    "listen(..., auto_confirm=False) lets the CC carry data"
                )
            return
        engine.accept(data)  # ValueError: nothing changed
        raw = engine.data_to_send()
        self._after()
        self._decided.set()
        engine.stats.connections_opened += 1  # the endpoint's counters
        async with self._send_lock:
            try:
                await self._stream.send_all(raw)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                engine.send_failed()
                self._after()
                await self._close()
                raise self.error or Disconnected(
                    DRReason.PROTOCOL_ERROR, by_peer=False, message="TCP connection broken"
                ) from exc

    async def reject(self, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Refuse a CONFIRMING connection (a DR with *reason* and *data*, then
        the TCP close); tear down an established one the same way."""
        if self.engine.state is State.CONFIRMING:
            self.engine.refuse(reason, data)
            raw = self.engine.data_to_send()
            self._after()
            self.engine.stats.connections_refused += 1  # the endpoint's counters
            await _send_quietly(self._stream, raw)
            await self._linger()
        elif self.engine.state is State.OPEN:
            self.engine.disconnect(reason, data)
            raw = self.engine.data_to_send()
            self._after()
            async with self._send_lock:
                await _send_quietly(self._stream, raw)
            await self._linger()
        await self._close()

    async def _linger(self) -> None:
        """Half-close and read what the peer still sends (1 s at most), so that
        closing with unread data does not reset the connection before the peer
        has read our DR."""
        with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError, OSError):
            await self._stream.send_eof()
            while await self._stream.receive_some(_READ):
                pass

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one TSDU as class 0 DTs (the last one with EOT); confirms a
        CONFIRMING connection first."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check()
        engine = self.engine
        if engine.state is State.CONFIRMING:
            await self.confirm()
        if engine.state is not State.OPEN:
            raise Disconnected(
                DRReason.NORMAL,
                by_peer=engine.released_by_peer,
                message="the connection was released (its TCP connection is closed)",
            )
        engine.send(value)
        frames = engine.data_to_send()
        self._after()
        async with self._send_lock:
            try:
                await self._stream.send_all(frames)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                engine.send_failed()
                self._after()
                raise self.error or Disconnected(
                    DRReason.PROTOCOL_ERROR,
                    by_peer=False,
                    message="TCP connection broken while sending",
                ) from exc

    async def send_expedited(self, data: bytes) -> None:
        """Class 0 has no expedited data."""
        raise LocalProtocolError("expedited data does not exist in class 0 (RFC 1006)")

    async def receive_expedited(self) -> bytes:
        """Class 0 has no expedited data."""
        raise LocalProtocolError("expedited data does not exist in class 0 (RFC 1006)")

    async def receive(self) -> bytes:
        """Receive one whole TSDU (confirms a CONFIRMING connection first).

        Raises:
            trio.EndOfChannel: the peer closed the TCP connection (normal release).
            Disconnected: the peer sent a DR, or sent something invalid.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this connection")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self.engine.state is State.CONFIRMING:
                await self.confirm()
            while True:
                self._check()
                tsdu = self.engine.receive()
                self._after()
                if tsdu is not None:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return tsdu
                if self.engine.state is not State.OPEN:
                    await self._close()  # sends the ER first, when there is one
                    self._check()
                    raise trio.EndOfChannel
                await self._read()
        finally:
            self._receiving = False

    async def _read(self) -> None:
        """Read once from the socket (within the budget and the idle limit) into the engine."""
        if self._budget is not None:
            await self._budget.wait(self)
        idle = self._idle_timeout
        engine = self.engine
        chunk: bytes | None = None
        try:
            with trio.move_on_after(math.inf if idle is None else idle):
                chunk = await self._stream.receive_some(_READ)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            engine.connection_reset()  # an abortive release, not the normal one
        else:
            if chunk is None:
                engine.timeout()
            elif chunk:
                engine.receive_data(chunk)
            else:
                engine.receive_eof()
        if self._after():
            await self._close()  # sends the ER first, when there is one

    async def _expire(self, timeout: float) -> None:
        """Refuse the connection (a DR of ``Config.confirm_timeout_reason``)
        when it is still CONFIRMING after *timeout* seconds
        (``Config.confirm_timeout``); the user's later calls raise ``Disconnected``."""
        with trio.move_on_after(timeout):
            await self._decided.wait()
            return
        if self.engine.state is State.CONFIRMING:
            self.engine.timeout()
            raw = self.engine.data_to_send()
            self._after()
            self.engine.stats.connections_refused += 1  # the endpoint's counters
            await _send_quietly(self._stream, raw)
            await self._linger()
            await self._close()

    async def _close(self) -> None:
        """Write what the engine has left (an ER), then close the TCP connection."""
        self._decided.set()
        self.engine.close()
        raw = self.engine.data_to_send()
        self._after()
        try:
            if raw:
                await _send_quietly(self._stream, raw)
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close(self)
            await self._stream.aclose()

    async def aclose(self) -> None:
        """Release: close the TCP connection (class 0's normal release). A
        CONFIRMING connection is refused first (DR reason 128)."""
        self.closed_by_user = True
        with trio.CancelScope(shield=True):
            if self.engine.state is State.CONFIRMING:
                self.engine.refuse(DRReason.NORMAL)
                self.engine.stats.connections_refused += 1  # the endpoint's counters
            await self._close()  # sends the DR


class TCPListener(trio.abc.Listener[TCPConnection]):
    """Connections for one called TSAP; they arrive already OPEN (with
    *auto_confirm*), or CONFIRMING."""

    def __init__(
        self, endpoint: TCPEndpoint, tsap: bytes | None, backlog: int, auto_confirm: bool = True
    ) -> None:
        self._ep = endpoint
        self.tsap = tsap
        self.backlog = backlog
        self.auto_confirm = auto_confirm
        """Whether the CC goes out before ``accept()`` returns the connection."""
        self._send, self._receive = trio.open_memory_channel[TCPConnection](backlog)
        self.closed = False

    @property
    def full(self) -> bool:
        """Whether *backlog* connections wait to be accepted."""
        return self._send.statistics().current_buffer_used >= self.backlog

    async def accept(self) -> TCPConnection:
        """The next connection: OPEN (TCP handshake and CR/CC done), or, without
        *auto_confirm*, CONFIRMING (the CR read, its answer up to the caller)."""
        if self.closed:
            raise trio.ClosedResourceError("listener is closed")
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener is closed") from None

    async def aclose(self) -> None:
        """Stop listening for this TSAP; connections not yet accepted get DR reason 2."""
        self.closed = True
        if self._ep._listeners.get(self.tsap) is self:
            del self._ep._listeners[self.tsap]
        await self._send.aclose()
        while True:
            try:
                conn = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            await conn.reject(DRReason.SESSION_NOT_ATTACHED)


class TCPEndpoint:
    """An RFC 1006 transport entity: a TCP listening socket plus outgoing connections.

    Opened with ``listen=False`` it has no listening socket: it only connects
    (from the host of *local*), and :meth:`listen` raises.
    """

    def __init__(
        self,
        config: Config,
        listeners: list[trio.SocketListener],
        pcap: Any = None,
        *,
        local: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self.config = config
        self._pcap = pcap
        self._tcp = listeners
        self._local = (local[0], int(local[1]))
        self._listeners: dict[bytes | None, TCPListener] = {}
        self._stats = Statistics()  # the engines count undecodable into it
        self._budget = _Budget(config.receive_buffer_budget)
        self._incoming = 0  # incoming TCP connections accepted and not yet closed
        self._half_open: dict[str, int] = {}  # per peer IP: incoming ones before CR/CC is done
        self._conns: set[TCPConnection] = set()  # open, not yet closed
        self._serving: set[trio.CancelScope] = set()  # tasks serving incoming ones before CR/CC
        self._accept_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None  # the accept loop's, for confirm timers
        self._closed = False

    def getsockname(self) -> tuple[str, int]:
        """The (host, port) the TCP listening socket is bound to (without one:
        the *local* address given, whose host outgoing connections bind to)."""
        if not self._tcp:
            return self._local
        return tuple(self._tcp[0].socket.getsockname()[:2])

    def statistics(self) -> Statistics:
        """Counters: connections accepted (``connections_opened``), refused
        (``connections_refused``: answered with DR, or closed unread over a
        limit) and bad input (``undecodable``: bad TPKTs or TPDUs, no CR in
        time, unexpected errors)."""
        stats = self._stats
        return Statistics(
            connections_opened=stats.connections_opened,
            connections_refused=stats.connections_refused,
            undecodable=stats.undecodable,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the endpoint is closed")

    def listen(
        self, tsap: bytes | None = None, backlog: int | None = None, *, auto_confirm: bool = True
    ) -> TCPListener:
        """Serve CRs for *tsap* (None: any TSAP not served by another listener).

        With *auto_confirm* (the default) the CC goes out before ``accept()``
        returns the connection, OPEN. Without, ``accept()`` returns it
        CONFIRMING: the caller reads the CR (``connect_data``, the TSAPs,
        ``getpeername()``) and answers with ``confirm(data)`` or ``reject()``;
        one not answered within ``Config.confirm_timeout`` is refused (a DR of
        ``confirm_timeout_reason``), as over TP4. A CR that cannot be accepted
        (no class 0, a CC too long) or that comes while *backlog* connections
        wait is refused at once either way. Raises LocalProtocolError on an
        endpoint opened with ``listen=False``.
        """
        self._check_open()
        if not self._tcp:
            raise LocalProtocolError("this endpoint was opened with listen=False: it only connects")
        if tsap in self._listeners:
            raise ValueError(f"a listener for TSAP {tsap!r} exists already")
        listener = TCPListener(self, tsap, backlog or self.config.default_backlog, auto_confirm)
        self._listeners[tsap] = listener
        return listener

    def _engine(self, role: Role) -> Class0Connection:
        return Class0Connection(role, self.config, stats=self._stats, record=self._pcap is not None)

    def _connection(
        self,
        engine: Class0Connection,
        stream: trio.SocketStream,
        capture: _Capture,
        *,
        incoming: bool,
    ) -> TCPConnection:
        conn = TCPConnection(
            engine,
            stream,
            capture=capture,
            idle_timeout=self.config.tcp_idle_timeout,
            budget=self._budget,
            on_close=self._incoming_closed if incoming else self._conns.discard,
        )
        return conn

    async def connect(
        self,
        peer: tuple[str, int],
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
        propose_tpdu_size: bool = True,
    ) -> TCPConnection:
        """TCP connect (from this endpoint's host), then CR/CC. Raises ConnectionRejected on a DR.

        Args:
            peer: the server's (host, port).
            called_tsap: the CR's called TSAP-ID (None: no parameter).
            calling_tsap: the CR's calling TSAP-ID (None: no parameter).
            data: connect data. X.224 allows none in class 0; RDP carries its
                cookie and RDP_NEG_REQ in the CR's header after the
                parameters, and so does *data* (docs/rdp.md). The CC's data
                (an RDP_NEG_RSP) is the connection's ``confirm_data``.
            propose_tpdu_size: send the TPDU size parameter (proposing
                ``min(max_tpdu_size, 2048)``); False: none, the size is then
                128, as RDP clients do (xrdp refuses a CR with one).

        Raises:
            ValueError: before connecting, when the TSAPs and *data* do not fit
                a CR header (254 octets).
            ConnectionRejected: a DR came (``by_peer``), or no usable answer.
            TCPConnectFailed: a ConnectionRejected (``by_peer`` False): the
                TCP connection itself could not be opened.
        """
        self._check_open()
        engine = self._engine(Role.INITIATOR)
        engine.connect(
            called_tsap=called_tsap,
            calling_tsap=calling_tsap,
            propose_tpdu_size=propose_tpdu_size,
            data=data,
        )
        try:
            host = self.getsockname()[0]
            local = None if host in ("0.0.0.0", "::") else host
            stream = await trio.open_tcp_stream(peer[0], int(peer[1]), local_address=local)
        except OSError as exc:
            raise TCPConnectFailed((peer[0], int(peer[1])), exc) from exc
        capture = _Capture(self._pcap, stream)
        try:
            raw = engine.data_to_send()
            capture.record(engine)
            await stream.send_all(raw)
            with trio.fail_after(self.config.cr_retransmit_time * self.config.max_retransmissions):
                await _read_while(stream, engine, capture, lambda: engine.state is State.WFCC)
        except trio.TooSlowError:
            engine.timeout()
        except trio.BrokenResourceError:
            engine.connection_reset()
        except BaseException:  # cancelled: do not leave the TCP connection open
            await trio.aclose_forcefully(stream)
            raise
        if engine.state is not State.OPEN:
            await stream.aclose()
            assert engine.error is not None
            raise engine.error
        conn = self._connection(engine, stream, capture, incoming=False)
        self._conns.add(conn)
        return conn

    async def aclose(self) -> None:
        """Stop accepting; close the listeners (connections not yet accepted get
        DR reason 2) and every connection (the TCP close). Idempotent; calls on
        the endpoint and its connections fail from now on
        (``trio.ClosedResourceError``). The listening socket closes when the
        ``open_tcp_endpoint`` block exits."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._accept_scope is not None:
            self._accept_scope.cancel()
        for scope in list(self._serving):
            scope.cancel()
        with trio.CancelScope(shield=True):
            for listener in list(self._listeners.values()):
                await listener.aclose()
            for conn in list(self._conns):
                await conn.aclose()
        await trio.lowlevel.checkpoint()

    async def _accept_loop(self, nursery: trio.Nursery) -> None:
        # Not trio.serve_listeners: its handler's return closes the stream, and
        # ours returns as soon as the connection is handed to a listener.
        self._nursery = nursery
        with trio.CancelScope() as self._accept_scope:
            if self._closed:
                return
            while True:
                try:
                    stream = await self._tcp[0].accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    _log.error(
                        "accept returned %s (%s); retrying in %s seconds",
                        errno.errorcode[exc.errno],
                        os.strerror(exc.errno),
                        _ACCEPT_RETRY,
                        exc_info=True,
                    )
                    await trio.sleep(_ACCEPT_RETRY)
                    continue
                try:
                    host: str = stream.socket.getpeername()[0]
                except OSError:  # already gone
                    await stream.aclose()
                    continue
                if (
                    self._incoming >= self.config.max_connections
                    or self._half_open.get(host, 0) >= self.config.max_half_open_per_address
                ):
                    self._stats.connections_refused += 1
                    await stream.aclose()
                    continue
                self._incoming += 1
                self._half_open[host] = self._half_open.get(host, 0) + 1
                nursery.start_soon(self._serve, stream, host)

    def _incoming_closed(self, conn: TCPConnection) -> None:
        self._conns.discard(conn)
        self._incoming -= 1

    async def _serve(self, stream: trio.SocketStream, host: str) -> None:
        """One incoming TCP connection, until it is handed to a listener or closed.

        Never raises (but Cancelled): an unexpected error is logged and
        counted, and closes this TCP connection only.
        """
        handed_over = False
        try:
            with trio.CancelScope() as scope:  # cancelled by aclose()
                self._serving.add(scope)
                try:
                    handed_over = await self._establish(stream)
                finally:
                    self._serving.discard(scope)
        except Exception:
            self._stats.undecodable += 1
            _log.exception("unexpected error on an incoming TCP connection from %s", host)
        finally:
            left = self._half_open.pop(host) - 1
            if left:
                self._half_open[host] = left
            if not handed_over:
                self._incoming -= 1
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _establish(self, stream: trio.SocketStream) -> bool:
        """Read the CR, route it, answer CC or DR. True when a listener got the connection."""
        engine = self._engine(Role.RESPONDER)
        capture = _Capture(self._pcap, stream)
        try:
            with trio.fail_after(self.config.tcp_cr_timeout):
                await _read_while(stream, engine, capture, lambda: engine.wants_data)
        except trio.TooSlowError:
            engine.timeout()
        except (trio.BrokenResourceError, OSError):
            engine.connection_reset()
        requested = [e for e in iter(engine.next_event, None) if isinstance(e, ConnectionRequested)]
        if not requested:  # no CR: the engine answered (an ER) or not, and counted it
            raw = engine.data_to_send()
            capture.record(engine)
            if raw:
                await _send_quietly(stream, raw)
            return False
        listener = self._listeners.get(requested[0].tsap) or self._listeners.get(None)
        if listener is None or listener.closed:
            engine.refuse(DRReason.SESSION_NOT_ATTACHED)
        elif engine.refusal is None and listener.full:
            engine.refuse(DRReason.CONGESTION)
        elif listener.auto_confirm or engine.refusal is not None:
            engine.accept()  # a CC, or a DR when the CR cannot be accepted
        raw = engine.data_to_send()
        capture.record(engine)
        if engine.state is State.CONFIRMING and listener is not None:
            return self._hand_over(engine, stream, capture, listener)
        if engine.state is not State.OPEN or listener is None:
            self._stats.connections_refused += 1
            await _send_quietly(stream, raw)
            return False
        conn = self._connection(engine, stream, capture, incoming=True)
        try:
            await stream.send_all(raw)
            listener._send.send_nowait(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            self._stats.connections_refused += 1
            engine.close()
            conn._after()  # releases its share of the budget
            return False
        self._stats.connections_opened += 1
        self._conns.add(conn)
        return True

    def _hand_over(
        self,
        engine: Class0Connection,
        stream: trio.SocketStream,
        capture: _Capture,
        listener: TCPListener,
    ) -> bool:
        """Queue a CONFIRMING connection to *listener* (room was checked), with
        its ``confirm_timeout``; True."""
        conn = self._connection(engine, stream, capture, incoming=True)
        listener._send.send_nowait(conn)
        self._conns.add(conn)
        assert self._nursery is not None  # the accept loop runs: it accepted this one
        self._nursery.start_soon(conn._expire, self.config.confirm_timeout)
        return True


async def _read_while(
    stream: trio.SocketStream,
    engine: Class0Connection,
    capture: _Capture,
    condition: Callable[[], bool],
) -> None:
    """Feed *engine* what *stream* delivers while *condition* holds (establishment)."""
    while condition():
        chunk = await stream.receive_some(_READ)
        if chunk:
            engine.receive_data(chunk)
        else:
            engine.receive_eof()
        capture.record(engine)


async def _send_quietly(stream: trio.SocketStream, raw: bytes) -> None:
    """Send TPKT *raw*, best effort (1 s at most): the connection is being torn down."""
    if not raw:
        return
    with (
        trio.move_on_after(1),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.send_all(raw)


@asynccontextmanager
async def open_tcp_endpoint(
    local: tuple[str, int] = ("127.0.0.1", 0),
    *,
    config: Config | None = None,
    pcap: Any = None,
    listen: bool = True,
) -> AsyncIterator[TCPEndpoint]:
    """Open an RFC 1006 endpoint listening on TCP *local* (port 0: any free port).

    *pcap*, a :class:`~tp4emu.capture.PcapWriter`, records every TPDU sent
    and received (without its TPKT header, as exported PDUs over TCP).
    With ``listen=False`` no listening socket is opened: a client-only
    endpoint, whose connections bind to the host of *local*.
    """
    cfg = config or Config()
    listeners = await trio.open_tcp_listeners(local[1], host=local[0]) if listen else []
    endpoint = TCPEndpoint(cfg, listeners[:1], pcap, local=local)
    for extra in listeners[1:]:
        await extra.aclose()
    try:
        async with trio.open_nursery() as nursery:
            if endpoint._tcp:
                nursery.start_soon(endpoint._accept_loop, nursery)
            try:
                yield endpoint
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            for listener in endpoint._tcp:
                await listener.aclose()
