"""One entry point for both transports: ``open_endpoint(..., transport="tp4" | "tcp")``.

The two endpoints have the same methods (``listen``, ``connect``,
``getsockname``, ``statistics``), their listeners the same ``accept``/``aclose``
and their connections the same calls (``getpeername``, ``state``,
``confirm``, ``reject``, ``send``, ``receive``, ``aclose``, ...), with the same
exceptions, so an application switches transport with one argument. What
differs is *when* things happen: see ``docs/tp4-vs-tcp.md``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import trio

from .core import Config, TP4Error
from .transport.tcp import TCPConnection, TCPEndpoint, TCPListener, open_tcp_endpoint
from .transport.udp import (
    DatagramSocket,
    TP4Connection,
    TP4Endpoint,
    TP4Listener,
    open_udp_endpoint,
)

__all__ = ["Handler", "Transport", "open_endpoint", "serve"]

Transport = Literal["tp4", "tcp"]

log = logging.getLogger("tp4emu.serve")
"""Where :func:`serve` (and the CLI's echo server) report a connection's failure."""


@asynccontextmanager
async def open_endpoint(
    local: tuple[str, int] = ("127.0.0.1", 0),
    *,
    transport: Transport = "tp4",
    config: Config | None = None,
    pcap: Any = None,
    socket: DatagramSocket | None = None,
) -> AsyncIterator[TP4Endpoint | TCPEndpoint]:
    """Open a transport endpoint bound to *local*.

    Args:
        local: address to bind (port 0: any free port).
        transport: ``"tp4"`` (class 4 over UDP, connections accepted while
            CONFIRMING) or ``"tcp"`` (RFC 1006 class 0 over TCP, connections
            accepted once established).
        config: timers and limits.
        pcap: a :class:`~tp4emu.capture.PcapWriter` recording every TPDU.
        socket: a ready datagram socket (tp4 only; for tests).

    For a precisely typed endpoint use :func:`tp4emu.transport.udp.open_udp_endpoint`
    or :func:`tp4emu.transport.tcp.open_tcp_endpoint` directly.
    """
    if transport == "tp4":
        async with open_udp_endpoint(local, config=config, pcap=pcap, socket=socket) as ep:
            yield ep
    elif transport == "tcp":
        if socket is not None:
            raise ValueError("socket= is for the tp4 transport only")
        async with open_tcp_endpoint(local, config=config, pcap=pcap) as tcp_ep:
            yield tcp_ep
    else:
        raise ValueError(f"unknown transport {transport!r}: use 'tp4' or 'tcp'")


Handler = Callable[[Any], Awaitable[object]]
"""An async function taking one connection (TP4Connection or TCPConnection)."""


async def serve(
    handler: Handler,
    endpoint: TP4Endpoint | TCPEndpoint,
    *,
    tsap: bytes | None = None,
    backlog: int | None = None,
    auto_confirm: bool = False,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[TP4Listener | TCPListener] = trio.TASK_STATUS_IGNORED,
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

    async def run(conn: TP4Connection | TCPConnection) -> None:
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
    return f"{host}:{port}"


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
    conn: TP4Connection | TCPConnection,
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
