"""One entry point for both transports: ``open_endpoint(..., transport="tp4" | "tcp")``.

The two endpoints have the same methods (``listen``, ``connect``,
``getsockname``, ``statistics``), their listeners the same ``accept``/``aclose``
and their connections the same calls (``getpeername``, ``state``,
``confirm``, ``reject``, ``send``, ``receive``, ``aclose``, ...), with the same
exceptions, so an application switches transport with one argument. What
differs is *when* things happen: see ``docs/tp4-vs-tcp.md``.

That shared API is written down as three protocols, :class:`TransportEndpoint`,
:class:`TransportListener` and :class:`TransportConnection`, which mypy checks
both transports against (``_both_transports_implement_the_api`` below).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import trio

from .core import Config, State, Statistics, TP4Error
from .transport.stream import TSDUStream
from .transport.tcp import TCPConnection, TCPEndpoint, TCPListener, open_tcp_endpoint
from .transport.udp import (
    DatagramSocket,
    TP4Connection,
    TP4Endpoint,
    TP4Listener,
    open_udp_endpoint,
)

__all__ = [
    "Handler",
    "Transport",
    "TransportConnection",
    "TransportEndpoint",
    "TransportListener",
    "open_endpoint",
    "serve",
]

Transport = Literal["tp4", "tcp"]


class TransportConnection(Protocol):
    """A transport connection of either transport: a channel of TSDUs."""

    @property
    def state(self) -> State:
        """CONFIRMING, OPEN, ... (TCP: OPEN until released, then CLOSED)."""

    @property
    def connect_data(self) -> bytes:
        """The CR's user data."""

    @property
    def confirm_data(self) -> bytes:
        """The CC's user data."""

    @property
    def calling_tsap(self) -> bytes | None:
        """The CR's calling TSAP-ID."""

    @property
    def called_tsap(self) -> bytes | None:
        """The CR's called TSAP-ID."""

    def getpeername(self) -> tuple[str, int]:
        """The peer's address (works while CONFIRMING)."""

    def getsockname(self) -> tuple[str, int]:
        """The local address."""

    async def confirm(self, data: bytes = b"") -> None:
        """Confirm a CONFIRMING connection (TCP: nothing to do)."""

    async def reject(self, reason: int = ..., data: bytes = b"") -> None:
        """Refuse (or abort) with a DR carrying *reason*."""

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one TSDU."""

    async def receive(self) -> bytes:
        """Receive one TSDU."""

    async def send_expedited(self, data: bytes) -> None:
        """Send expedited data (TCP: LocalProtocolError, class 0 has none)."""

    async def receive_expedited(self) -> bytes:
        """Receive expedited data (TCP: LocalProtocolError)."""

    async def aclose(self) -> None:
        """Release the connection."""

    def as_stream(self) -> TSDUStream:
        """A byte-stream view (trio.abc.HalfCloseableStream) of the connection."""


class TransportListener(Protocol):
    """Hands over the connections for one called TSAP."""

    async def accept(self) -> TransportConnection:
        """The next connection (TP4: CONFIRMING; TCP: OPEN)."""

    async def aclose(self) -> None:
        """Stop listening."""


class TransportEndpoint(Protocol):
    """A transport entity of either transport."""

    config: Config

    def getsockname(self) -> tuple[str, int]:
        """The local address."""

    def statistics(self) -> Statistics:
        """The endpoint's counters."""

    def listen(self, tsap: bytes | None = None, backlog: int | None = None) -> TransportListener:
        """Serve CRs for *tsap* (None: any TSAP)."""

    async def connect(
        self,
        peer: tuple[str, int],
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
    ) -> TransportConnection:
        """Open a connection to *peer*."""

    async def aclose(self) -> None:
        """Abort every connection and stop; calls fail afterwards."""


if TYPE_CHECKING:

    def _both_transports_implement_the_api(
        tp4: TP4Endpoint,
        tcp: TCPEndpoint,
        tp4_listener: TP4Listener,
        tcp_listener: TCPListener,
        tp4_conn: TP4Connection,
        tcp_conn: TCPConnection,
    ) -> None:
        """Never called: mypy checks that each assignment type-checks."""
        endpoint: TransportEndpoint = tp4
        endpoint = tcp
        listener: TransportListener = tp4_listener
        listener = tcp_listener
        conn: TransportConnection = tp4_conn
        conn = tcp_conn
        del endpoint, listener, conn


log = logging.getLogger("tp4emu.serve")
"""Where :func:`serve` (and the CLI's echo server) report a connection's failure."""


@overload
def open_endpoint(
    local: tuple[str, int] = ...,
    *,
    transport: Literal["tp4"] = ...,
    config: Config | None = ...,
    pcap: Any = ...,
    socket: DatagramSocket | None = ...,
    listen: bool = ...,
) -> AbstractAsyncContextManager[TP4Endpoint]: ...


@overload
def open_endpoint(
    local: tuple[str, int] = ...,
    *,
    transport: Literal["tcp"],
    config: Config | None = ...,
    pcap: Any = ...,
    listen: bool = ...,
) -> AbstractAsyncContextManager[TCPEndpoint]: ...


@overload
def open_endpoint(
    local: tuple[str, int] = ...,
    *,
    transport: Transport,
    config: Config | None = ...,
    pcap: Any = ...,
    socket: DatagramSocket | None = ...,
    listen: bool = ...,
) -> AbstractAsyncContextManager[TP4Endpoint | TCPEndpoint]: ...


def open_endpoint(
    local: tuple[str, int] = ("127.0.0.1", 0),
    *,
    transport: Transport = "tp4",
    config: Config | None = None,
    pcap: Any = None,
    socket: DatagramSocket | None = None,
    listen: bool = True,
) -> AbstractAsyncContextManager[TP4Endpoint | TCPEndpoint]:
    """Open a transport endpoint bound to *local* (an async context manager).

    The one ``open_endpoint`` of the package: its type follows *transport*
    (``"tp4"``: a :class:`TP4Endpoint`; ``"tcp"``: a :class:`TCPEndpoint`).

    Args:
        local: address to bind (port 0: any free port).
        transport: ``"tp4"`` (class 4 over UDP, connections accepted while
            CONFIRMING) or ``"tcp"`` (RFC 1006 class 0 over TCP, connections
            accepted once established).
        config: timers and limits.
        pcap: a :class:`~tp4emu.capture.PcapWriter` recording every TPDU.
        socket: a ready datagram socket (tp4 only; for tests).
        listen: ``False`` for a client-only endpoint. tcp: no TCP listening
            socket is opened, connections bind to the host of *local*, and
            ``listen()`` raises :class:`~tp4emu.core.errors.LocalProtocolError`.
            tp4: no effect (the one UDP socket carries both directions; a CR
            that no listener serves is refused with DR reason 2).

    The drivers' own :func:`tp4emu.transport.udp.open_udp_endpoint` and
    :func:`tp4emu.transport.tcp.open_tcp_endpoint` take the same arguments.
    """
    return _open_endpoint(local, transport, config, pcap, socket, listen)


@asynccontextmanager
async def _open_endpoint(
    local: tuple[str, int],
    transport: Transport,
    config: Config | None,
    pcap: Any,
    socket: DatagramSocket | None,
    listen: bool = True,
) -> AsyncIterator[TP4Endpoint | TCPEndpoint]:
    if transport == "tp4":
        async with open_udp_endpoint(local, config=config, pcap=pcap, socket=socket) as ep:
            yield ep
    elif transport == "tcp":
        if socket is not None:
            raise ValueError("socket= is for the tp4 transport only")
        async with open_tcp_endpoint(local, config=config, pcap=pcap, listen=listen) as tcp_ep:
            yield tcp_ep
    else:
        raise ValueError(f"unknown transport {transport!r}: use 'tp4' or 'tcp'")


Handler = Callable[[Any], Awaitable[object]]
"""An async function taking one connection (a :class:`TransportConnection`)."""


async def serve(
    handler: Handler,
    endpoint: TransportEndpoint,
    *,
    tsap: bytes | None = None,
    backlog: int | None = None,
    auto_confirm: bool = False,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[TransportListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections forever, running ``handler(conn)`` for each in its own task.

    In the style of :func:`trio.serve_listeners`, for either transport. Over
    TP4 the handler gets a CONFIRMING connection, unless *auto_confirm* is
    set: then the CC is sent before the handler runs (TCP-like behaviour).
    The connection is closed when the handler returns.

    One connection's failure never stops the server: an exception (an
    :class:`Exception`, or an ExceptionGroup of them) raised by the handler,
    by the automatic ``confirm()`` (e.g. the peer gave up meanwhile) or by the
    final ``aclose()`` is logged on the ``"tp4emu.serve"`` logger, the
    connection is closed and accepting goes on. ``trio.Cancelled``,
    ``KeyboardInterrupt`` and other BaseExceptions propagate.
    """
    listener = endpoint.listen(tsap, backlog)
    close_time = endpoint.config.window_time

    async def run(conn: TransportConnection) -> None:
        peer = _peer_name(conn)
        try:
            with _contained(peer):
                if auto_confirm:
                    await conn.confirm()
                await handler(conn)
        finally:
            await _close_quietly(conn, peer, close_time)

    async with trio.open_nursery() as nursery:
        task_status.started(listener)
        target = handler_nursery or nursery
        try:
            while True:
                conn = await listener.accept()
                target.start_soon(run, conn)
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()


# ------------------------------------------------- failure containment
# Shared with the CLI's echo server (tp4emu.cli.apps).


def _peer_name(conn: Any) -> str:
    """``host:port`` of the connection's peer, also once the peer has torn it down."""
    try:
        host, port = conn.getpeername()
    except Exception:
        peer = getattr(getattr(conn, "core", None), "peer", None)  # TP4: still known
        if not (isinstance(peer, tuple) and len(peer) >= 2):
            return "?"
        host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _describe(exc: BaseException) -> str:
    """One line: ``Type: message``; the leaves of an exception group, joined by ``; ``."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _report(
    peer: str,
    group: BaseExceptionGroup[Exception],
    emit: Callable[[str], None] | None = None,
    *,
    what: str = "connection",
) -> None:
    """Log a connection's failure (and, with *emit*, print one ``error PEER ...`` line)."""
    # ``except*`` wraps a lone exception in a group: log the exception itself.
    exc: BaseException = group.exceptions[0] if len(group.exceptions) == 1 else group
    text = _describe(exc)
    if all(isinstance(e, TP4Error) for e in group.exceptions):
        # What the network did (a DR, a timeout, an eviction under a flood): one
        # line at INFO, so that a spoofed flood cannot flood the log with tracebacks.
        log.info("%s %s ended: %s", what, peer, text)
    else:
        log.error("%s %s failed: %s", what, peer, text, exc_info=exc)
    if emit is not None:
        try:
            emit(f"error {peer} {text}")
        except Exception:  # the output itself is broken: the log has it
            log.exception("could not report the failure of %s", peer)


@contextmanager
def _contained(
    peer: str, emit: Callable[[str], None] | None = None, *, what: str = "connection"
) -> Iterator[None]:
    """Report and swallow Exceptions (groups of them included); let BaseExceptions out.

    From a group mixing both, the Exceptions are reported and the rest
    (e.g. ``trio.Cancelled``) is raised again.
    """
    try:
        yield
    except* Exception as group:
        _report(peer, group, emit, what=what)


async def _close_quietly(
    conn: TransportConnection,
    peer: str,
    timeout: float,
    emit: Callable[[str], None] | None = None,
) -> None:
    """``conn.aclose()``, shielded and bounded by *timeout*; its failure is only reported."""
    with (
        trio.CancelScope(shield=True),
        trio.move_on_after(timeout),
        _contained(peer, emit, what="closing connection"),
    ):
        await conn.aclose()
