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

On the wire: TPKT (version 3) + class 0 TPDUs: CR/CC with TSAPs and TPDU size
(≤ 2048), DT with EOT segmentation and reassembly, DR, ER. Class 0 has no
expedited data, no checksum and no DC; a normal release is the TCP close.
Bad input on the stream (a bad TPKT, a TPDU class 0 does not have) closes the
connection, after an ER when the TPDU was framed correctly but invalid; the
listener is not affected.

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
  (logger ``tp4emu.transport.tcp``), counted ``undecodable`` and closes that connection
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
from dataclasses import dataclass
from typing import Any

import trio

from ..core import (
    Config,
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    State,
    Statistics,
)
from ..wire import (
    CC,
    CR,
    DR,
    DT0,
    ER,
    AlternativeClasses,
    DRReason,
    ERCause,
    InvalidTpdu,
    TPDUError,
    connection_params,
    decode,
    encode,
)
from ..wire.tpkt import TPKTDecoder, encode_tpkt

__all__ = [
    "CLASS0_MAX_TPDU_SIZE",
    "TCPConnection",
    "TCPEndpoint",
    "TCPListener",
    "open_tcp_endpoint",
]

CLASS0_MAX_TPDU_SIZE = 2048
"""Largest TPDU size of class 0."""
_READ = 65536
LOCAL_REF = 1
"""Our reference in CR/CC/DR: over TCP the connection identifies itself."""

_log = logging.getLogger("tp4emu.tcp")

_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
"""accept() errors that mean "out of resources for now" (as in trio.serve_listeners)."""
_ACCEPT_RETRY = 0.1
"""Seconds to wait before accepting again after one of those."""


@dataclass
class _TCPStats:
    accepted: int = 0
    refused: int = 0
    bad_input: int = 0


class _Capture:
    """Records the TPDUs of one TCP connection (without TPKT headers) in a pcap.

    A no-op without a writer. Link type 252 with port type TCP: Wireshark and
    tshark decode the records as COTP with no options.
    """

    def __init__(self, pcap: Any, stream: trio.SocketStream) -> None:
        self.pcap = pcap
        try:
            self.local = tuple(stream.socket.getsockname()[:2])
            self.peer = tuple(stream.socket.getpeername()[:2])
        except OSError:
            self.pcap = None

    def sent(self, tpdu: bytes) -> None:
        if self.pcap is not None:
            self._write(tpdu, self.local, self.peer)

    def received(self, payloads: list[bytes]) -> list[bytes]:
        if self.pcap is not None:
            for tpdu in payloads:
                self._write(tpdu, self.peer, self.local)
        return payloads

    def _write(self, tpdu: bytes, src: Any, dst: Any) -> None:
        try:
            self.pcap.write(tpdu, src=src, dst=dst, timestamp=time.time(), transport="tcp")
            self.pcap.flush()
        except (OSError, ValueError):  # a broken capture never breaks the connection
            self.pcap = None

    def frame(self, tpdu: bytes) -> bytes:
        """*tpdu* in a TPKT, recorded as sent."""
        self.sent(tpdu)
        return encode_tpkt(tpdu)


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


class TCPConnection(trio.abc.Channel[bytes]):
    """A class 0 transport connection over one TCP connection (RFC 1006)."""

    def __init__(
        self,
        stream: trio.SocketStream,
        decoder: TPKTDecoder,
        *,
        tpdu_size: int,
        calling_tsap: bytes | None,
        called_tsap: bytes | None,
        connect_data: bytes = b"",
        confirm_data: bytes = b"",
        stats: _TCPStats,
        remote_ref: int = 0,
        pending: list[bytes] | None = None,
        max_tsdu_size: int | None = None,
        capture: _Capture | None = None,
        idle_timeout: float | None = None,
        budget: _Budget | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._stream = stream
        self._capture = capture or _Capture(None, stream)
        self._decoder = decoder
        self._stats = stats
        self.tpdu_size = tpdu_size
        """Negotiated TPDU size (≤ 2048)."""
        self.calling_tsap = calling_tsap
        self.called_tsap = called_tsap
        self.connect_data = connect_data
        self.confirm_data = confirm_data
        self._state = State.OPEN
        self.error: Disconnected | None = None
        self.closed_by_user = False
        self.local_ref = LOCAL_REF
        """Our reference (class 0 references only identify the connection)."""
        self.remote_ref = remote_ref
        """The peer's reference, from its CR or CC."""
        self._max_tsdu_size = max_tsdu_size or Config().max_tsdu_size
        self._pending: list[bytes] = pending or []  # TPDUs read but not yet handled
        self._pending_len = sum(map(len, self._pending))
        self._reasm: list[bytes] = []
        self._reasm_len = 0
        self._idle_timeout = idle_timeout
        self._budget = budget
        self._on_close = on_close  # called once, when the TCP connection is closed
        self._send_lock = trio.StrictFIFOLock()
        self._receiving = False
        self._er_pending: bytes | None = None
        try:
            self._peer: tuple[str, int] = tuple(stream.socket.getpeername()[:2])
            self._local: tuple[str, int] = tuple(stream.socket.getsockname()[:2])
        except OSError:
            self._peer = self._local = ("", 0)
        self._account()  # TPDUs that came with the CR or CC

    @property
    def _broken(self) -> bool:
        return self._state is State.CLOSED

    @property
    def state(self) -> State:
        """OPEN until released; then CLOSED. There is no CONFIRMING over TCP."""
        return self._state

    def getpeername(self) -> tuple[str, int]:
        """The peer's (host, port). Raises OSError(ENOTCONN) once closed."""
        if self._state is not State.OPEN:
            raise OSError(errno.ENOTCONN, "transport connection is not connected")
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        """The local (host, port) of the TCP connection."""
        return self._local

    def _check(self) -> None:
        if self.closed_by_user:
            raise trio.ClosedResourceError("connection was closed")
        if self.error is not None:
            raise self.error

    async def confirm(self, data: bytes = b"") -> None:
        """A no-op: over TCP the connection was confirmed before ``accept()`` returned."""
        await trio.lowlevel.checkpoint()
        self._check()

    async def reject(self, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Tear down the (already established) connection: DR, then the TCP close."""
        if self._state is State.OPEN:
            await self._send_tpdu_quietly(DR(self.remote_ref, self.local_ref, reason, data=data))
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
        """Send one TSDU as class 0 DTs (the last one with EOT)."""
        self._check()
        data = bytes(value)
        size = self.tpdu_size - 3  # LI, code, EOT/NR
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        frame = self._capture.frame
        frames = b"".join(
            frame(encode(DT0(0, i == len(chunks) - 1, c))) for i, c in enumerate(chunks)
        )
        async with self._send_lock:
            try:
                await self._stream.send_all(frames)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self._lost("TCP connection broken while sending")
                raise self.error from exc  # type: ignore[misc]

    async def send_expedited(self, data: bytes) -> None:
        """Class 0 has no expedited data."""
        raise LocalProtocolError("expedited data does not exist in class 0 (RFC 1006)")

    async def receive_expedited(self) -> bytes:
        """Class 0 has no expedited data."""
        raise LocalProtocolError("expedited data does not exist in class 0 (RFC 1006)")

    async def receive(self) -> bytes:
        """Receive one whole TSDU.

        Raises:
            trio.EndOfChannel: the peer closed the TCP connection (normal release).
            Disconnected: the peer sent a DR, or sent something invalid.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this connection")
        self._receiving = True
        try:
            while True:
                self._check()
                if self._state is not State.OPEN:
                    raise trio.EndOfChannel
                while self._pending:
                    payload = self._pending.pop(0)
                    self._pending_len -= len(payload)
                    tsdu = self._handle(payload)
                    self._account()
                    if tsdu is not None:
                        await trio.lowlevel.checkpoint()
                        return tsdu
                    if self._broken:
                        await self._close()  # sends the ER first, when there is one
                    self._check()
                await self._read()
        finally:
            self._receiving = False

    async def _read(self) -> None:
        chunk: bytes | None = None
        if self._decoder.broken:
            # A bad TPKT came behind good ones in an earlier read: report it now.
            chunk = b"\x00"
        else:
            if self._budget is not None:
                await self._budget.wait(self)
            idle = self._idle_timeout
            try:
                with trio.move_on_after(math.inf if idle is None else idle):
                    chunk = await self._stream.receive_some(_READ)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # A reset: an abortive release, not the normal one.
                self._lost("TCP connection reset by peer", DRReason.NOT_SPECIFIED, by_peer=True)
                await self._close()
                return
            if chunk is None:
                self._lost(f"idle: nothing received for {idle} s", DRReason.NOT_SPECIFIED)
                await self._close()
                return
        try:
            if not chunk:
                self._decoder.eof()
                if self._reasm:
                    self._lost("TCP connection closed in the middle of a TSDU")
                self._state = State.CLOSED  # the peer's TCP close: a normal release
                return
            payloads = self._capture.received(self._decoder.feed(chunk))
            self._pending.extend(payloads)
            self._pending_len += sum(map(len, payloads))
        except TPDUError as exc:
            self._stats.bad_input += 1
            self._lost(f"bad TPKT stream: {exc}", reason=exc.reason)
            await self._close()
        finally:
            self._account()

    def _account(self) -> None:
        """Tell the endpoint's budget what this connection holds now."""
        if self._budget is not None:
            held = 0
            if self._state is not State.CLOSED:
                held = self._decoder.pending + self._pending_len + self._reasm_len
            self._budget.update(self, held)

    def _handle(self, payload: bytes) -> bytes | None:
        """One TPDU from the stream; returns a TSDU when one is complete."""
        try:
            tpdus = decode(payload)
        except TPDUError as exc:
            self._bad(payload, f"invalid TPDU: {exc}", exc.cause, exc.header)
            return None
        for tpdu in tpdus:
            if isinstance(tpdu, DT0):
                if len(payload) > self.tpdu_size:
                    self._bad(payload, "DT longer than the TPDU size", ERCause.NOT_SPECIFIED)
                    return None
                self._reasm.append(tpdu.data)
                self._reasm_len += len(tpdu.data)
                if self._reasm_len > self._max_tsdu_size:
                    self._bad(payload, "TSDU larger than max_tsdu_size", ERCause.NOT_SPECIFIED)
                    return None
                if tpdu.eot:
                    tsdu = b"".join(self._reasm)
                    self._reasm = []
                    self._reasm_len = 0
                    return tsdu
            elif isinstance(tpdu, DR):
                self.error = Disconnected(tpdu.reason, tpdu.data, by_peer=True)
                self._state = State.CLOSED
                return None
            elif isinstance(tpdu, ER):
                self.error = Disconnected(
                    DRReason.PROTOCOL_ERROR,
                    by_peer=True,
                    message=f"peer sent ER cause {tpdu.cause}",
                )
                self._state = State.CLOSED
                return None
            else:
                self._bad(
                    payload,
                    f"{type(tpdu).__name__} does not exist in class 0 here",
                    ERCause.INVALID_TPDU_TYPE,
                )
                return None
        return None

    def _bad(self, payload: bytes, why: str, cause: int, header: bytes = b"") -> None:
        """A TPDU class 0 cannot accept: ER to the peer, then the connection closes."""
        self._stats.bad_input += 1
        er = ER(self.remote_ref, cause, (InvalidTpdu((header or payload)[:32]),))
        self._er_pending = self._capture.frame(encode(er))
        self._lost(why)

    def _lost(self, why: str, reason: int = DRReason.PROTOCOL_ERROR, by_peer: bool = False) -> None:
        if self.error is None:
            self.error = Disconnected(reason, by_peer=by_peer, message=why)
        self._state = State.CLOSED
        self._account()

    async def _send_tpdu_quietly(self, tpdu: DR | ER) -> None:
        async with self._send_lock:
            await _send_quietly(self._stream, self._capture.frame(encode(tpdu)))

    async def _close(self) -> None:
        self._state = State.CLOSED
        self._account()
        try:
            er = self._er_pending
            if er is not None:
                self._er_pending = None
                await _send_quietly(self._stream, er)
        finally:
            on_close, self._on_close = self._on_close, None
            if on_close is not None:
                on_close()
            await self._stream.aclose()

    async def aclose(self) -> None:
        """Release: close the TCP connection (class 0's normal release)."""
        self.closed_by_user = True
        with trio.CancelScope(shield=True):
            await self._close()


class TCPListener(trio.abc.Listener[TCPConnection]):
    """Connections for one called TSAP; they arrive already OPEN."""

    def __init__(self, endpoint: TCPEndpoint, tsap: bytes | None, backlog: int) -> None:
        self._ep = endpoint
        self.tsap = tsap
        self.backlog = backlog
        self._send, self._receive = trio.open_memory_channel[TCPConnection](backlog)
        self.closed = False

    async def accept(self) -> TCPConnection:
        """The next connection, already OPEN (TCP handshake and CR/CC done)."""
        if self.closed:
            raise trio.ClosedResourceError("listener is closed")
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener is closed") from None

    async def aclose(self) -> None:
        """Stop listening for this TSAP."""
        self.closed = True
        self._ep._listeners.pop(self.tsap, None)
        await self._send.aclose()
        while True:
            try:
                conn = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            await conn.reject(DRReason.SESSION_NOT_ATTACHED)


class TCPEndpoint:
    """An RFC 1006 transport entity: a TCP listening socket plus outgoing connections."""

    def __init__(
        self, config: Config, listeners: list[trio.SocketListener], pcap: Any = None
    ) -> None:
        self.config = config
        self._pcap = pcap
        self._tcp = listeners
        self._listeners: dict[bytes | None, TCPListener] = {}
        self._stats = _TCPStats()
        self._budget = _Budget(config.receive_buffer_budget)
        self._incoming = 0  # incoming TCP connections accepted and not yet closed
        self._half_open: dict[str, int] = {}  # per peer IP: incoming ones before CR/CC is done

    def getsockname(self) -> tuple[str, int]:
        """The (host, port) the TCP listening socket is bound to."""
        return tuple(self._tcp[0].socket.getsockname()[:2])

    def statistics(self) -> Statistics:
        """Counters: connections accepted (``connections_opened``), refused
        (``connections_refused``: answered with DR, or closed unread over a
        limit) and bad input (``undecodable``: bad TPKTs or TPDUs, no CR in
        time, unexpected errors)."""
        return Statistics(
            connections_opened=self._stats.accepted,
            connections_refused=self._stats.refused,
            undecodable=self._stats.bad_input,
        )

    def listen(self, tsap: bytes | None = None, backlog: int | None = None) -> TCPListener:
        """Serve CRs for *tsap* (None: any TSAP not served by another listener)."""
        if tsap in self._listeners:
            raise ValueError(f"a listener for TSAP {tsap!r} exists already")
        listener = TCPListener(self, tsap, backlog or self.config.default_backlog)
        self._listeners[tsap] = listener
        return listener

    async def connect(
        self,
        peer: tuple[str, int],
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
    ) -> TCPConnection:
        """TCP connect (from this endpoint's host), then CR/CC. Raises ConnectionRejected on a DR.

        Class 0 carries no connect data: *data* must be empty. Raises
        ValueError, before connecting, when the TSAPs do not fit a CR.
        """
        if data:
            raise ValueError("class 0 (RFC 1006) carries no connect data")
        size = min(self.config.max_tpdu_size, CLASS0_MAX_TPDU_SIZE)
        params = connection_params(size, calling_tsap, called_tsap)
        cr = encode(CR(src_ref=LOCAL_REF, protocol_class=0, params=params))
        try:
            host = self.getsockname()[0]
            local = None if host in ("0.0.0.0", "::") else host
            stream = await trio.open_tcp_stream(peer[0], int(peer[1]), local_address=local)
        except OSError as exc:
            raise ConnectionRejected(
                DRReason.ADDRESS_UNKNOWN, message=f"TCP connect failed: {exc}"
            ) from exc
        decoder = TPKTDecoder(CLASS0_MAX_TPDU_SIZE + 4)
        capture = _Capture(self._pcap, stream)
        try:
            await stream.send_all(capture.frame(cr))
            with trio.fail_after(self.config.cr_retransmit_time * self.config.max_retransmissions):
                answer, rest = await _read_tpdu(stream, decoder, capture)
        except trio.TooSlowError:
            await stream.aclose()
            raise ConnectionTimedOut(message="no answer to CR") from None
        except (TPDUError, trio.BrokenResourceError) as exc:
            await stream.aclose()
            raise ConnectionRejected(DRReason.PROTOCOL_ERROR, message=f"bad answer: {exc}") from exc
        except BaseException:  # cancelled: do not leave the TCP connection open
            await trio.aclose_forcefully(stream)
            raise
        if isinstance(answer, DR):
            await stream.aclose()
            raise ConnectionRejected(answer.reason, answer.data)
        if not isinstance(answer, CC) or answer.protocol_class != 0:
            await stream.aclose()
            raise ConnectionRejected(
                DRReason.NEGOTIATION_FAILED, message=f"expected a class 0 CC, got {answer!r}"
            )
        return TCPConnection(
            stream,
            decoder,
            tpdu_size=min(answer.tpdu_size or 128, size),
            calling_tsap=calling_tsap,
            called_tsap=called_tsap,
            confirm_data=answer.data,
            stats=self._stats,
            remote_ref=answer.src_ref,
            pending=rest,
            max_tsdu_size=self.config.max_tsdu_size,
            capture=capture,
            idle_timeout=self.config.tcp_idle_timeout,
            budget=self._budget,
        )

    async def _accept_loop(self, nursery: trio.Nursery) -> None:
        # Not trio.serve_listeners: its handler's return closes the stream, and
        # ours returns as soon as the connection is handed to a listener.
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
                self._stats.refused += 1
                await stream.aclose()
                continue
            self._incoming += 1
            self._half_open[host] = self._half_open.get(host, 0) + 1
            nursery.start_soon(self._serve, stream, host)

    def _incoming_closed(self) -> None:
        self._incoming -= 1

    async def _serve(self, stream: trio.SocketStream, host: str) -> None:
        """One incoming TCP connection, until it is handed to a listener or closed.

        Never raises (but Cancelled): an unexpected error is logged and
        counted, and closes this TCP connection only.
        """
        handed_over = False
        try:
            handed_over = await self._establish(stream)
        except Exception:
            self._stats.bad_input += 1
            _log.exception("unexpected error on an incoming TCP connection from %s", host)
        finally:
            left = self._half_open.pop(host) - 1
            if left:
                self._half_open[host] = left
            if not handed_over:
                self._incoming_closed()
                with trio.CancelScope(shield=True):
                    await stream.aclose()

    async def _establish(self, stream: trio.SocketStream) -> bool:
        """Read the CR, route it, answer CC or DR. True when a listener got the connection."""
        decoder = TPKTDecoder(CLASS0_MAX_TPDU_SIZE + 4)
        capture = _Capture(self._pcap, stream)
        try:
            with trio.fail_after(self.config.tcp_cr_timeout):
                cr, rest = await _read_tpdu(stream, decoder, capture)
        except (TPDUError, trio.TooSlowError, trio.BrokenResourceError, OSError):
            self._stats.bad_input += 1
            return False
        if not isinstance(cr, CR):
            self._stats.bad_input += 1
            er = ER(0, ERCause.INVALID_TPDU_TYPE, (InvalidTpdu(encode(cr)[:8]),))
            await _send_quietly(stream, capture.frame(encode(er)))
            return False
        listener = self._listeners.get(cr.called_tsap) or self._listeners.get(None)
        size = min(cr.tpdu_size or 128, CLASS0_MAX_TPDU_SIZE, self.config.max_tpdu_size)
        cc = b""
        reason: int | None = None
        if listener is None or listener.closed:
            reason = DRReason.SESSION_NOT_ATTACHED
        elif cr.protocol_class != 0 and 0 not in _alternatives(cr):
            reason = DRReason.NEGOTIATION_FAILED
        else:
            params = connection_params(size, cr.calling_tsap, cr.called_tsap)
            try:
                cc = encode(CC(cr.src_ref, LOCAL_REF, protocol_class=0, params=params))
            except ValueError:  # the TSAPs echoed plus the TPDU size overflow the header
                reason = DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID
            else:
                if listener._send.statistics().current_buffer_used >= listener.backlog:
                    reason = DRReason.CONGESTION
        if reason is not None or listener is None:
            self._stats.refused += 1
            await _send_quietly(stream, capture.frame(encode(DR(cr.src_ref, 0, reason or 0))))
            return False
        conn = TCPConnection(
            stream,
            decoder,
            tpdu_size=size,
            calling_tsap=cr.calling_tsap,
            called_tsap=cr.called_tsap,
            connect_data=cr.data,
            stats=self._stats,
            remote_ref=cr.src_ref,
            pending=rest,
            max_tsdu_size=self.config.max_tsdu_size,
            capture=capture,
            idle_timeout=self.config.tcp_idle_timeout,
            budget=self._budget,
            on_close=self._incoming_closed,
        )
        try:
            await stream.send_all(capture.frame(cc))
            listener._send.send_nowait(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
            self._stats.refused += 1
            conn._lost("the listener went away")  # releases its share of the budget
            return False
        self._stats.accepted += 1
        return True


def _alternatives(cr: CR) -> tuple[int, ...]:
    p = cr.param(AlternativeClasses)
    return p.classes if p else ()


async def _send_quietly(stream: trio.SocketStream, raw: bytes) -> None:
    """Send TPKT *raw*, best effort (1 s at most): the connection is being torn down."""
    with (
        trio.move_on_after(1),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
    ):
        await stream.send_all(raw)


async def _read_tpdu(
    stream: trio.SocketStream, decoder: TPKTDecoder, capture: _Capture
) -> tuple[CR | CC | DR | ER | DT0, list[bytes]]:
    """Read the first TPKT and decode its TPDU (during establishment).

    Returns the TPDU and the payloads of any TPKTs that came in the same reads.
    """
    while True:
        chunk = await stream.receive_some(_READ)
        if not chunk:
            decoder.eof()
            raise trio.BrokenResourceError("connection closed during establishment")
        payloads = capture.received(decoder.feed(chunk))
        if payloads:
            tpdu = decode(payloads[0])[0]
            if not isinstance(tpdu, (CR, CC, DR, ER, DT0)):
                raise TPDUError(
                    f"{type(tpdu).__name__} does not exist in class 0",
                    cause=ERCause.INVALID_TPDU_TYPE,
                )
            return tpdu, payloads[1:]


@asynccontextmanager
async def open_tcp_endpoint(
    local: tuple[str, int] = ("127.0.0.1", 0),
    *,
    config: Config | None = None,
    pcap: Any = None,
) -> AsyncIterator[TCPEndpoint]:
    """Open an RFC 1006 endpoint listening on TCP *local* (port 0: any free port).

    *pcap*, a :class:`~tp4emu.capture.PcapWriter`, records every TPDU sent
    and received (without its TPKT header, as exported PDUs over TCP).
    """
    cfg = config or Config()
    listeners = await trio.open_tcp_listeners(local[1], host=local[0])
    endpoint = TCPEndpoint(cfg, listeners[:1], pcap)
    for extra in listeners[1:]:
        await extra.aclose()
    try:
        async with trio.open_nursery() as nursery:
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
            await endpoint._tcp[0].aclose()
