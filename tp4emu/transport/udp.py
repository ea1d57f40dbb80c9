"""TP4 over UDP on trio: the I/O driver of the sans-IO engine and its public API.

One :class:`TP4Endpoint` owns one datagram socket and one driver task. The
socket is read by the user task blocked in ``receive()``/``send()``/``aclose()``
when there is one (a reply costs one wake-up, as on a raw socket), by the
driver task otherwise; whoever reads drains the socket in a batch, feeds every
datagram to the core and sends what the core produced. The driver task also
runs the timers: it sleeps until the core's next deadline, so no timer object
exists per TPDU (see :class:`TP4Endpoint`).

Connections returned by :meth:`TP4Listener.accept` are still CONFIRMING, as in
4.4BSD's netiso: nothing has been sent to the peer yet. ``getpeername()`` works;
``reject()``/``aclose()`` sends a DR and the peer's connect fails; ``confirm()``,
the first ``send()`` or the first ``receive()`` sends the CC.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import random
import socket as _stdsocket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import trio

from ..core import (
    Config,
    Connection,
    ConnectionRequested,
    Disconnected,
    Endpoint,
    Listener,
    State,
    Statistics,
)
from ..core.connection import Address
from ..core.events import ConnectionClosed
from ..wire import MAX_ED_DATA, DRReason
from .stream import ConnectionFacts, TSDUStream

__all__ = [
    "DatagramSocket",
    "LossyUDPSocket",
    "TP4Connection",
    "TP4Endpoint",
    "TP4Listener",
    "TP4Stream",
    "UDPSocket",
    "open_udp_endpoint",
]

_BATCH = 256  # datagrams drained per wakeup before the core's output is flushed
_HANDOFF = 0.005  # while user tasks read, the driver task looks this often whether one still does
_INF = float("inf")
_OPEN_STATES = frozenset({State.CONFIRMING, State.AKWAIT, State.OPEN})


class DatagramSocket(Protocol):
    """What the driver needs of a datagram socket (real UDP, or a test network)."""

    def getsockname(self) -> Address: ...
    async def wait_readable(self) -> None: ...
    def recv_nowait(self) -> tuple[bytes, Address] | None: ...
    def send_nowait(self, data: bytes, addr: Address) -> bool: ...
    async def wait_writable(self) -> None: ...
    def close(self) -> None: ...


class UDPSocket:
    """A non-blocking stdlib UDP socket driven with trio's readiness waits.

    Cheaper than ``await trio.socket.recvfrom`` per datagram: one wait, then a
    drain with plain non-blocking calls.
    """

    def __init__(self, local: tuple[str, int], *, rcvbuf: int = 4 * 1024 * 1024) -> None:
        family = _stdsocket.AF_INET6 if ":" in local[0] else _stdsocket.AF_INET
        self._sock = _stdsocket.socket(family, _stdsocket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            for opt in (_stdsocket.SO_RCVBUF, _stdsocket.SO_SNDBUF):
                with contextlib.suppress(OSError):  # platform limits
                    self._sock.setsockopt(_stdsocket.SOL_SOCKET, opt, rcvbuf)
            self._sock.bind(local)
        except BaseException:
            self._sock.close()
            raise

    def getsockname(self) -> Address:
        """The bound (host, port)."""
        return tuple(self._sock.getsockname()[:2])

    @property
    def doorbell_address(self) -> Address:
        """Where :meth:`wake_reader`'s empty datagram comes from: this socket."""
        host, port = cast(tuple[str, int], self._sock.getsockname()[:2])
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return (host, port)

    def wake_reader(self) -> None:
        """Make a task waiting in :meth:`wait_readable` return: an empty datagram
        to ourselves (never lost, unlike what ``send_nowait`` sends)."""
        with contextlib.suppress(OSError):
            self._sock.sendto(b"", cast(tuple[str, int], self.doorbell_address))

    async def wait_readable(self) -> None:
        """Wait until a datagram can be read."""
        await trio.lowlevel.wait_readable(self._sock)

    def recv_nowait(self) -> tuple[bytes, Address] | None:
        """One datagram, or None when none is queued."""
        try:
            data, addr = self._sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return None  # e.g. ICMP port unreachable reported on Linux
        return data, tuple(addr[:2])

    def send_nowait(self, data: bytes, addr: Address) -> bool:
        """Send one datagram; False when the socket buffer is full."""
        try:
            self._sock.sendto(data, addr)  # type: ignore[call-overload]
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass  # unreachable peer: class 4 recovers or gives up by itself
        return True

    async def wait_writable(self) -> None:
        """Wait until the socket can send."""
        await trio.lowlevel.wait_writable(self._sock)

    def close(self) -> None:
        """Close the socket (a task still waiting on it gets ClosedResourceError)."""
        with contextlib.suppress(RuntimeError):  # (outside trio: nobody waits)
            trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class LossyUDPSocket(UDPSocket):
    """A :class:`UDPSocket` that loses outgoing datagrams with probability *loss*.

    Fault injection for demos and experiments (``open_endpoint(socket=...)``):
    class 4 retransmits, the data still arrives, it only takes longer. The
    choice is drawn from *rng*, so a seeded one repeats the same losses for the
    same sequence of sends. :attr:`lost` counts the datagrams lost.
    """

    def __init__(
        self, local: tuple[str, int], loss: float, rng: random.Random | None = None
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        super().__init__(local)
        self.loss = loss
        self.rng = rng or random.Random()
        self.lost = 0

    def send_nowait(self, data: bytes, addr: Address) -> bool:
        """Send one datagram, or lose it (and say it was sent)."""
        if self.loss and self.rng.random() < self.loss:
            self.lost += 1
            return True
        return super().send_nowait(data, addr)


class TP4Endpoint:
    """A TP4 transport entity on one UDP socket. Create it with :func:`open_endpoint`.

    How the driver runs (the fewest task switches per TPDU):

    * **The reader.** One task at a time waits on the socket and, once it is
      readable, drains it (up to ``_BATCH`` datagrams), feeds the core and
      sends what the core produced. That task is, whenever there is one, a
      user task blocked in ``receive()``, ``send()`` (no credit, no buffer
      room) or ``aclose()`` of some connection: it reads for the whole
      endpoint and goes back to its caller as soon as its own connection has
      news, so a reply costs one wake-up, as with a raw socket. Otherwise the
      endpoint's own driver task reads.
    * **Hand-over.** A user task that becomes the reader while the driver task
      waits on the socket cancels that wait. When the user task is done it
      hands the socket to another user task waiting for news, if there is
      one, or else lets the driver task take it back once nobody has read for
      ``_HANDOFF`` seconds (5 ms; at once while a task waits in ``accept()``):
      a ping-pong caller is back in ``receive()`` long before, and the driver
      task then only wakes for its timers. An event for the reading task's
      connection that comes from elsewhere (a timer, another task's call)
      wakes it with a doorbell: an empty datagram to our own socket
      (``UDPSocket.wake_reader``; a socket without one gets a cancel scope per
      wait instead).
    * **Timers.** The driver task sleeps until the core's next deadline, or
      the delayed-AK deadline (see below), whichever is first; its cancel
      scope's deadline is moved when the core asks for an earlier one, so no
      timer object exists per TPDU.
    * **AKs.** The AKs a batch of DTs calls for wait (``Config.ack_time``, the
      acknowledgement time announced to the peer; none when it is None) for
      a DT of ours to carry them, unless the core says they are urgent: the
      peer's window is down to half or less, or they report a hole, a
      duplicate or a window change to confirm.
    * Datagrams the socket buffer refuses wait for writability in a third
      task (rare: the core flushes inline).
    """

    def __init__(self, sock: DatagramSocket, config: Config, pcap: Any = None) -> None:
        self._sock = sock
        self.config = config
        self._core = Endpoint(config)
        self._pcap = pcap
        self._local = sock.getsockname()
        self._wrappers: dict[int, TP4Connection] = {}
        self._listeners: dict[int, TP4Listener] = {}
        self._driver_scope: trio.CancelScope | None = None
        self._driver_reading = False  # the driver task waits on the socket
        self._reader: TP4Connection | None = None  # the user task that reads, by its connection
        self._reader_scope: trio.CancelScope | None = None
        self._reader_waiting = False
        self._doorbell = getattr(sock, "wake_reader", None)
        self._doorbell_from = getattr(sock, "doorbell_address", None)
        self._rung = False  # a doorbell datagram is on its way
        self._reader_left = -_INF  # when the last user task stopped reading
        self._accepting = 0  # tasks waiting in accept(): the driver reads for them at once
        self._waiting: dict[TP4Connection, int] = {}  # tasks parked for news, oldest first
        self._ack_delay = config.ack_time or 0.0
        self._ack_deadline = _INF
        self._closed = False
        self._send_blocked: list[tuple[bytes, Address]] = []
        self._writable = trio.Event()
        self._writable.set()

    # -------------------------------------------------------------- public

    def getsockname(self) -> tuple[str, int]:
        """The local (host, port) of the UDP socket."""
        return cast(tuple[str, int], self._local)

    def statistics(self) -> Statistics:
        """A snapshot of the endpoint's counters."""
        return self._core.statistics()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called (or the ``open_endpoint`` block ended)."""
        return self._closed

    @property
    def core(self) -> Endpoint:
        """The sans-IO endpoint (for inspection; do not drive it directly)."""
        return self._core

    def listen(self, tsap: bytes | None = None, backlog: int | None = None) -> TP4Listener:
        """Listen for CRs whose called TSAP is *tsap* (None: any TSAP).

        *backlog* bounds the CONFIRMING connections not yet accepted; CRs
        beyond it are answered with DR reason 1 (congestion).
        """
        core_listener = self._core.listen(tsap, backlog)
        listener = TP4Listener(self, core_listener)
        self._listeners[id(core_listener)] = listener
        return listener

    async def connect(
        self,
        peer: tuple[str, int],
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
    ) -> TP4Connection:
        """Open a connection and wait until the peer confirms it (state OPEN).

        Raises:
            ConnectionRejected: the peer answered with a DR (``.reason``, ``.data``).
            ConnectionTimedOut: no answer after N CR retransmissions (a TimeoutError).
        """
        self._check_open()
        peer = await _resolve(peer)
        core = self._core.connect(
            peer,
            trio.current_time(),
            called_tsap=called_tsap,
            calling_tsap=calling_tsap,
            data=data,
        )
        conn = self.connection_of(core)
        self.flush()
        try:
            while core.state is State.WFCC:
                await self._wait(conn)
        except BaseException:
            if core.state is State.WFCC:
                core.disconnect(trio.current_time())
                self.flush()
            raise
        if core.state is not State.OPEN:
            if self._closed:
                raise trio.ClosedResourceError("the endpoint was closed during connect")
            assert core.error is not None
            raise core.error
        return conn

    async def aclose(self) -> None:
        """Abort every connection (DR, sent once); calls on the endpoint fail from now on.

        The socket closes when the ``open_endpoint`` block exits.
        """
        if self._closed:
            return
        now = trio.current_time()
        for conn in self._core.connections:
            if conn.state in (State.WFCC, State.CONFIRMING, State.AKWAIT, State.OPEN):
                conn.disconnect(now, DRReason.NORMAL)
        self.flush(acks=True)
        self._closed = True
        self._wake_reader()
        for wrapper in list(self._wrappers.values()):
            wrapper._unpark()
        for listener in self._listeners.values():
            listener._lot.unpark_all()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ driver

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the endpoint is closed")

    def connection_of(self, core: Connection) -> TP4Connection:
        """The TP4Connection around the core connection *core* (made on first use)."""
        wrapper = self._wrappers.get(id(core))
        if wrapper is None:
            wrapper = TP4Connection(self, core)
            self._wrappers[id(core)] = wrapper
        return wrapper

    def _ingest(self) -> None:
        """Take what the socket holds (one batch) into the core, then flush."""
        sock = self._sock
        core = self._core
        pcap = self._pcap
        now = trio.current_time()
        for _ in range(_BATCH):
            item = sock.recv_nowait()
            if item is None:
                break
            data, addr = item
            if not data and addr == self._doorbell_from:
                self._rung = False
                continue  # our own doorbell (see _wake_reader)
            if pcap is not None:
                self._record(data, addr, self._local)
            core.receive_datagram(data, addr, now)
        self.flush()

    def _wake_reader(self) -> None:
        """Make the user task waiting on the socket return to its caller."""
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        elif self._reader_waiting and self._doorbell is not None and not self._rung:
            self._rung = True
            self._doorbell()

    async def _wait(self, conn: TP4Connection) -> None:
        """Block until something may have changed for *conn* (its caller re-checks).

        If no task reads the socket, this one does (see the class docstring):
        it returns after one batch, or when an event for *conn* cancels its
        wait. Otherwise it parks until an event for *conn* wakes it.
        """
        if self._reader is None and not self._closed:
            self._reader = conn
            driver = self._driver_scope
            if driver is not None and self._driver_reading:
                driver.cancel()  # the driver task lets go of the socket
            try:
                if self._doorbell is not None:
                    # Woken by data, or by the doorbell when an event for *conn*
                    # comes from elsewhere (cheaper than a cancel scope per wait).
                    self._reader_waiting = True
                    try:
                        await self._sock.wait_readable()
                    finally:
                        self._reader_waiting = False
                    if not self._closed:
                        self._ingest()
                else:
                    with trio.CancelScope() as scope:
                        self._reader_scope = scope
                        await self._sock.wait_readable()
                    self._reader_scope = None
                    if not scope.cancelled_caught and not self._closed:
                        self._ingest()
            finally:
                self._reader_scope = None
                self._reader = None
                self._reader_left = trio.current_time()
                self._hand_over()
            return
        waiting = self._waiting
        waiting[conn] = waiting.get(conn, 0) + 1
        try:
            await conn._lot.park()
        finally:
            count = waiting.pop(conn) - 1
            if count:
                waiting[conn] = count
            lot = conn._parked
            if lot is not None and not lot:
                conn._parked = None  # nobody waits: an idle connection keeps no lot

    def _hand_over(self) -> None:
        """The reading user task is done: wake one waiting for news to read, or
        let the driver task take the socket back a little later."""
        for conn in self._waiting:
            conn._unpark()  # it becomes the reader when it runs (if still free)
            break
        # Should none come back to read, the driver task does: it looks every
        # _HANDOFF seconds while user tasks read (no deadline to move per call).

    def _next_deadline(self) -> float:
        deadline = self._core.get_timer()
        if deadline is None:
            deadline = _INF
        return min(deadline, self._ack_deadline)

    async def _driver_loop(self) -> None:
        """Reads the socket when no user task does; runs the timers and delayed AKs."""
        core = self._core
        sock = self._sock
        while True:
            reader_free = self._reader is None and not self._closed
            if reader_free and not self._accepting:
                # A user task read a moment ago: it is probably about to again.
                back = self._reader_left + _HANDOFF
                reader_free = trio.current_time() >= back
            else:
                back = _INF
            if reader_free:
                with trio.CancelScope(deadline=self._next_deadline()) as scope:
                    self._driver_scope = scope
                    self._driver_reading = True
                    try:
                        await sock.wait_readable()
                    finally:
                        self._driver_reading = False
                        self._driver_scope = None
                if not scope.cancelled_caught:
                    self._ingest()
                    await trio.lowlevel.cancel_shielded_checkpoint()  # let the woken run
                    continue
            else:  # a user task reads (or the endpoint is closed): timers only
                deadline = self._next_deadline()
                if not self._closed:
                    deadline = min(deadline, back, trio.current_time() + _HANDOFF)
                with trio.CancelScope(deadline=deadline) as scope:
                    self._driver_scope = scope
                    try:
                        await trio.sleep_forever()
                    finally:
                        self._driver_scope = None
            now = trio.current_time()
            if self._ack_deadline <= now:
                self._ack_deadline = _INF
                self.flush(acks=True)
            timer = core.get_timer()
            if timer is not None and timer <= now:
                core.handle_timer(now)
                self.flush()

    async def _send_loop(self) -> None:
        """Sends what did not fit in the socket buffer (rare: the core flushes inline)."""
        while True:
            await self._writable.wait()
            self._writable = trio.Event()
            while self._send_blocked:
                await self._sock.wait_writable()
                pending, self._send_blocked = self._send_blocked, []
                for i, (raw, addr) in enumerate(pending):
                    if not self._sock.send_nowait(raw, addr):
                        self._send_blocked = pending[i:] + self._send_blocked
                        break

    def flush(self, *, acks: bool = False) -> None:
        """Send the core's output, wake the tasks its events concern, re-arm the timer.

        The driver calls it after every call into the core (its connections
        and listeners do, after theirs); calling it more often is harmless.
        AKs that are not urgent wait until the delayed-AK deadline (the driver
        task sends them then) unless *acks* is set, so that a DT sent
        meanwhile carries them.
        """
        core = self._core
        if not acks and not core.has_output:
            return  # nothing changed since the last flush
        now = trio.current_time()
        if not self._ack_delay:
            acks = True
        out = core.datagrams_to_send(now, acks=acks)
        if out and not self._closed:
            sock = self._sock
            blocked = self._send_blocked
            pcap = self._pcap
            for raw, addr in out:
                if pcap is not None:
                    self._record(raw, self._local, addr)
                if blocked or not sock.send_nowait(raw, addr):
                    blocked.append((raw, addr))
            if blocked:
                self._writable.set()
        for event in core.take_events():
            conn = event.connection
            if isinstance(event, ConnectionRequested):
                listener = self._listeners.get(id(event.listener))
                if listener is not None:
                    listener._lot.unpark_all()
                continue
            wrapper = self._wrappers.get(id(conn))
            if wrapper is not None:
                wrapper._unpark()
                if wrapper is self._reader:
                    self._wake_reader()
                if isinstance(event, ConnectionClosed):
                    del self._wrappers[id(conn)]
        scope = self._driver_scope
        if core.acks_pending:
            if self._ack_deadline == _INF:
                self._ack_deadline = now + self._ack_delay
        elif self._ack_deadline != _INF:
            # The AKs went out (a DT carried them). The driver task may still wake
            # for them once (cheaper than moving its deadline back each time).
            self._ack_deadline = _INF
        if scope is not None:
            deadline = self._next_deadline()
            if deadline < scope.deadline:
                scope.deadline = deadline

    def _record(self, data: bytes, src: Address, dst: Address) -> None:
        try:
            self._pcap.write(data, src=src, dst=dst, timestamp=time.time())
            self._pcap.flush()  # a live capture stays readable while we run
        except (OSError, ValueError):  # pragma: no cover - a broken capture never breaks I/O
            self._pcap = None


async def _resolve(peer: tuple[str, int]) -> tuple[str, int]:
    """A numeric (host, port): replies are matched against the address they come from."""
    host, port = peer[0], int(peer[1])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_DGRAM)
        host = str(infos[0][4][0])
    return host, port


class TP4Listener(trio.abc.Listener["TP4Connection"]):
    """Accepts connections that are still CONFIRMING."""

    def __init__(self, endpoint: TP4Endpoint, core: Listener) -> None:
        self._ep = endpoint
        self._core = core
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def tsap(self) -> bytes | None:
        """The called TSAP this listener serves (None: any)."""
        return self._core.tsap

    async def accept(self) -> TP4Connection:
        """Wait for a CR and return its connection, in state CONFIRMING."""
        while True:
            if self._core.closed or self._ep.closed:
                raise trio.ClosedResourceError("listener is closed")
            core = self._ep.core.accept(self._core)
            if core is not None:
                await trio.lowlevel.checkpoint()
                return self._ep.connection_of(core)
            self._ep._accepting += 1
            try:
                await self._lot.park()
            finally:
                self._ep._accepting -= 1

    async def aclose(self) -> None:
        """Stop listening; connections queued but not accepted get DR reason 2."""
        if not self._core.closed:
            self._ep.core.close_listener(self._core, trio.current_time())
            self._ep.flush()
        self._lot.unpark_all()
        await trio.lowlevel.checkpoint()


class TP4Connection(ConnectionFacts, trio.abc.Channel[bytes]):
    """A TP4 connection: a channel of TSDUs (whole messages), plus expedited data.

    Errors: a connection the peer released raises
    :class:`~tp4emu.core.errors.Disconnected` (with ``.reason``) from pending
    and later calls, except ``receive()`` after a normal release (reason 128)
    with nothing left to read, which raises :class:`trio.EndOfChannel`.
    Calls after our own ``aclose()`` raise :class:`trio.ClosedResourceError`.
    """

    def __init__(self, endpoint: TP4Endpoint, core: Connection) -> None:
        self._ep = endpoint
        self._core = core
        self._facts = core
        self._parked: trio.lowlevel.ParkingLot | None = None  # made on first wait
        self._receiving = False
        self._receiving_ed = False

    @property
    def _lot(self) -> trio.lowlevel.ParkingLot:
        """Where this connection's tasks wait (an idle connection has none: 300 octets)."""
        lot = self._parked
        if lot is None:
            lot = self._parked = trio.lowlevel.ParkingLot()
        return lot

    def _unpark(self) -> None:
        """Wake every task waiting on this connection."""
        if self._parked is not None:
            self._parked.unpark_all()

    # -------------------------------------------------------------- info

    @property
    def state(self) -> State:
        """The connection's state (CONFIRMING until confirmed, OPEN, ...)."""
        return self._core.state

    @property
    def core(self) -> Connection:
        """The sans-IO connection (for inspection)."""
        return self._core

    def getpeername(self) -> tuple[str, int]:
        """The peer's (host, port); works while CONFIRMING, as netiso's getpeername.

        Raises:
            OSError: ENOTCONN when the connection is not (yet or any more) connected.
        """
        if self._core.state not in _OPEN_STATES:
            raise OSError(errno.ENOTCONN, "transport connection is not connected")
        return cast(tuple[str, int], self._core.peer)

    def getsockname(self) -> tuple[str, int]:
        """The local (host, port)."""
        return self._ep.getsockname()

    # ------------------------------------------------------------- calls

    def _raise_if_finished(self) -> None:
        core = self._core
        if core.closed_by_user or self._ep.closed:
            raise trio.ClosedResourceError("connection was closed")
        if core.error is not None:
            raise core.error
        if core.state not in _OPEN_STATES and core.state is not State.WFCC:
            raise trio.ClosedResourceError("connection is closed")

    def _confirm_implicitly(self) -> None:
        """netiso: the first receive on a confirming connection sends the CC."""
        if self._core.state is State.CONFIRMING:
            self._core.confirm(trio.current_time())
            self._ep.flush()

    async def confirm(self, data: bytes = b"") -> None:
        """Confirm a CONFIRMING connection: the CC goes out with *data* (≤32 octets)."""
        await trio.lowlevel.checkpoint()
        self._raise_if_finished()
        self._core.confirm(trio.current_time(), data)
        self._ep.flush()

    async def reject(self, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Refuse a CONFIRMING connection with a DR (*reason*, ≤64 octets of *data*).

        The peer's ``connect()`` fails with ``ConnectionRejected(reason, data)``.
        On a confirmed connection this is an abortive release with that reason.
        """
        await trio.lowlevel.checkpoint()
        if self._core.state in (State.CLOSED, State.REFWAIT, State.CLOSING):
            return
        self._core.disconnect(trio.current_time(), reason, data)
        self._ep.flush()
        self._unpark()

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one TSDU (confirms a CONFIRMING connection first).

        Waits while the send buffer is full.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        core = self._core
        self._raise_if_finished()
        # Room for the TSDU, or an empty buffer when it is larger than the buffer.
        # (A CONFIRMING connection has an empty buffer: core.send confirms it.)
        needed = min(len(value), self._ep.config.send_buffer)
        while core.send_buffer_available < needed:
            await self._ep._wait(self)
            self._raise_if_finished()
        core.send(trio.current_time(), value)
        self._ep.flush()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_expedited(self, data: bytes) -> None:
        """Send expedited data (1..16 octets): it overtakes normal data sent later.

        Waits while a previous ED is unacknowledged.
        """
        if not 1 <= len(data) <= MAX_ED_DATA:
            raise ValueError(f"expedited data must be 1..{MAX_ED_DATA} octets")
        await trio.lowlevel.checkpoint_if_cancelled()
        core = self._core
        self._raise_if_finished()
        while not core.expedited_slot_free:
            await self._ep._wait(self)
            self._raise_if_finished()
        core.send_expedited(trio.current_time(), data)
        self._ep.flush()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive(self) -> bytes:
        """Receive one whole TSDU (confirms a CONFIRMING connection first).

        Raises:
            trio.EndOfChannel: the peer released normally and all data was read.
            Disconnected: the peer released with another reason, or we gave up.
            trio.BusyResourceError: another task is already receiving.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this connection")
        self._receiving = True
        try:
            core = self._core
            self._confirm_implicitly()
            await trio.lowlevel.checkpoint_if_cancelled()
            parked = False
            while True:
                tsdu = core.receive()
                if tsdu is not None:
                    self._ep.flush()
                    if not parked:  # parking was our schedule point otherwise
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return tsdu
                if core.closed_by_user or self._ep.closed:
                    raise trio.ClosedResourceError("connection was closed")
                err = core.error
                if err is not None:
                    if isinstance(err, Disconnected) and err.by_peer and err.reason == 128:
                        raise trio.EndOfChannel
                    raise err
                await self._ep._wait(self)
                parked = True
        finally:
            self._receiving = False

    async def receive_expedited(self) -> bytes:
        """Receive the next expedited data unit (confirms a CONFIRMING connection first)."""
        if self._receiving_ed:
            raise trio.BusyResourceError("another task is receiving expedited data")
        self._receiving_ed = True
        try:
            core = self._core
            self._confirm_implicitly()
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                data = core.receive_expedited()
                if data is not None:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return data
                self._raise_if_finished()
                if core.state not in _OPEN_STATES:
                    raise trio.ClosedResourceError("connection is closed")
                await self._ep._wait(self)
        finally:
            self._receiving_ed = False

    async def aclose(self) -> None:
        """Release the connection: wait until sent data is acknowledged, send the
        DR, and wait until the peer's DC (or DR) completes the release.

        While CONFIRMING this rejects the connection (DR reason 128), as
        closing a confirming socket does in netiso. If cancelled while waiting
        for the data, the release becomes abortive (DR at once). The wait for
        the DC lasts at most ``Config.linger_time``; the DR goes on being
        retransmitted after that (and after a cancellation) as long as the
        endpoint is open.
        """
        core = self._core
        try:
            while core.state in (State.OPEN, State.AKWAIT) and not core.send_idle:
                await self._ep._wait(self)
        finally:
            if core.state not in (State.CLOSED, State.REFWAIT, State.CLOSING):
                core.disconnect(trio.current_time(), DRReason.NORMAL)
                self._ep.flush()
            core.closed_by_user = True
            self._unpark()
        with trio.move_on_after(self._ep.config.linger_time):
            while core.state is State.CLOSING and not self._ep.closed:
                await self._ep._wait(self)
        await trio.lowlevel.checkpoint()

    def as_stream(self) -> TSDUStream:
        """A byte-stream view of this connection (trio.abc.HalfCloseableStream)."""
        return TSDUStream(self)

    @property
    def closed(self) -> bool:
        """Whether we closed or rejected the connection, or closed its endpoint."""
        return self._core.closed_by_user or self._ep.closed

    async def wait_send_ready(self) -> None:
        """Return when :meth:`send` would not wait for send-buffer room.

        Also returns once the connection can no longer send (a later
        ``send`` raises); raises :class:`trio.ClosedResourceError` after our
        own close.
        """
        core = self._core
        while core.send_buffer_available == 0 and core.state in _OPEN_STATES:
            await self._ep._wait(self)
            if self.closed:
                raise trio.ClosedResourceError("connection was closed")
        await trio.lowlevel.checkpoint()


TP4Stream = TSDUStream
"""The byte-stream view of a :class:`TP4Connection`: a
:class:`~tp4emu.transport.stream.TSDUStream`, as for TCP."""


@asynccontextmanager
async def open_udp_endpoint(
    local: tuple[str, int] = ("127.0.0.1", 0),
    *,
    config: Config | None = None,
    socket: DatagramSocket | None = None,
    pcap: Any = None,
) -> AsyncIterator[TP4Endpoint]:
    """Open a TP4 endpoint on a UDP socket bound to *local*.

    Args:
        local: address to bind (port 0: any free port).
        config: timers and limits (:class:`~tp4emu.core.config.Config`).
        socket: a ready :class:`DatagramSocket` to use instead (tests).
        pcap: a :class:`tp4emu.capture.PcapWriter` recording every TPDU.
    """
    cfg = config or Config()
    sock = socket if socket is not None else UDPSocket(local)
    endpoint = TP4Endpoint(sock, cfg, pcap)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(endpoint._driver_loop)
            nursery.start_soon(endpoint._send_loop)
            try:
                yield endpoint
            finally:
                with trio.CancelScope(shield=True):
                    await endpoint.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The driver's tasks only end by cancellation: a lone exception is the
        # body's own (e.g. ConnectionRejected); let it out unwrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        sock.close()
