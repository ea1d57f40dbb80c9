"""One entry point for both transports: ``open_endpoint(..., transport="tp4" | "tcp")``.

The two endpoints have the same methods (``listen``, ``connect``,
``getsockname``, ``statistics``), their listeners the same ``accept``/``aclose``
and their connections the same calls (``getpeername``, ``state``,
``confirm``, ``reject``, ``send``, ``receive``, ``aclose``, ...), with the same
exceptions, so an application switches transport with one argument. What
differs is *when* things happen: see ``docs/tp4-vs-tcp.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio

from .core import Config
from .tcp import TCPConnection, TCPEndpoint, TCPListener, open_tcp_endpoint
from .udp import DatagramSocket, TP4Connection, TP4Endpoint, TP4Listener, open_udp_endpoint

__all__ = ["Handler", "Transport", "open_endpoint", "serve"]

Transport = Literal["tp4", "tcp"]


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
        pcap: a :class:`~tp4emu.wire.pcap.PcapWriter` recording every TPDU.
        socket: a ready datagram socket (tp4 only; for tests).

    For a precisely typed endpoint use :func:`tp4emu.udp.open_udp_endpoint`
    or :func:`tp4emu.tcp.open_tcp_endpoint` directly.
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
    """
    listener = endpoint.listen(tsap, backlog)

    async def run(conn: TP4Connection | TCPConnection) -> None:
        try:
            if auto_confirm:
                await conn.confirm()
            await handler(conn)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(endpoint.config.window_time):
                await conn.aclose()

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
