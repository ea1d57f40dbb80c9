"""The echo server and client behind ``tp4emu serve`` and ``tp4emu connect``.

The server shows what tp4emu exists for: every accepted connection is still
CONFIRMING; the server reads ``getpeername()``, checks the peer against an
access list, and rejects it (DR, the client's connect fails) or confirms it by
receiving (the CC goes out only then), then echoes every TSDU.

One connection's failure (an exception from ``getpeername()``, ``reject()``,
the echo or ``aclose()``, e.g. because the peer tore the connection down
meanwhile) is logged on the ``"tp4emu.serve"`` logger and printed as one
``error HOST:PORT <message>`` line; the connection is closed and the server
goes on accepting.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio

from ..api import Transport, _close_quietly, _contained, _peer_name, open_endpoint
from ..core import Config, ConnectionRejected, Disconnected
from ..transport.tcp import TCPConnection, TCPEndpoint
from ..transport.udp import TP4Connection, TP4Endpoint
from ..wire import DRReason

__all__ = [
    "AccessList",
    "parse_address",
    "parse_tsap",
    "run_client",
    "run_server",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[V6]:PORT``) to a (host, port) tuple."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def parse_tsap(text: str | None) -> bytes | None:
    """A TSAP-ID from the command line: text, or ``hex:0102`` for raw octets."""
    if text is None:
        return None
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode()


def _show(data: bytes | None) -> str:
    if data is None:
        return "-"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return "hex:" + data.hex()
    return repr(text) if text.isprintable() else "hex:" + data.hex()


@dataclass
class AccessList:
    """Allow/deny networks. Deny wins; a non-empty allow list admits only its networks."""

    allow: list[Network] = field(default_factory=list)
    deny: list[Network] = field(default_factory=list)

    @classmethod
    def parse(cls, allow: Sequence[str], deny: Sequence[str]) -> AccessList:
        """Build from CIDR strings."""
        return cls(
            [ipaddress.ip_network(a, strict=False) for a in allow],
            [ipaddress.ip_network(d, strict=False) for d in deny],
        )

    def permits(self, host: str) -> bool:
        """Whether *host* may connect."""
        addr = ipaddress.ip_address(host)
        if any(addr in net for net in self.deny):
            return False
        return not self.allow or any(addr in net for net in self.allow)


def _printer(out: TextIO) -> Callable[[str], None]:
    def emit(line: str) -> None:
        print(line, file=out, flush=True)

    return emit


async def _open(
    stack: AsyncExitStack,
    local: tuple[str, int],
    config: Config | None,
    pcap_path: str | None,
    transport: Transport,
) -> TP4Endpoint | TCPEndpoint:
    pcap: Any = None
    if pcap_path:
        from ..capture import PcapWriter

        pcap = stack.enter_context(PcapWriter(pcap_path))
    return await stack.enter_async_context(
        open_endpoint(local, transport=transport, config=config, pcap=pcap)
    )


async def run_server(
    listen: tuple[str, int],
    *,
    tsap: bytes | None = None,
    access: AccessList | None = None,
    reject_reason: int = DRReason.NORMAL,
    config: Config | None = None,
    pcap_path: str | None = None,
    exit_after: int | None = None,
    transport: Transport = "tp4",
    out: TextIO | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run the access-list echo server; one line per event. Returns an exit status.

    Args:
        exit_after: stop after this many connections were decided (tests).
    """
    emit = _printer(out or sys.stdout)
    access = access or AccessList()
    async with AsyncExitStack() as stack:
        ep = await _open(stack, listen, config, pcap_path, transport)
        listener = ep.listen(tsap)
        host, port = ep.getsockname()
        emit(f"listening {host}:{port} transport={transport} tsap={_show(tsap)}")
        task_status.started((host, port))
        decided = 0
        how = "confirming by receive" if transport == "tp4" else "already connected"
        async with trio.open_nursery() as nursery:
            while exit_after is None or decided < exit_after:
                conn = await listener.accept()
                decided += 1
                peer = _peer_name(conn)
                decided_ok = False
                try:
                    with _contained(peer, emit):
                        peer_host, peer_port = conn.getpeername()
                        peer = f"{peer_host}:{peer_port}"
                        emit(
                            f"accept {peer} state={conn.state.name}"
                            f" calling={_show(conn.calling_tsap)}"
                            f" called={_show(conn.called_tsap)} data={_show(conn.connect_data)}"
                        )
                        if access.permits(peer_host):
                            emit(f"allow {peer} ({how})")
                            nursery.start_soon(_echo, conn, peer, emit)  # it closes conn
                        else:
                            await conn.reject(reject_reason)
                            emit(f"reject {peer} reason={reject_reason} (access list)")
                        decided_ok = True
                finally:
                    if not decided_ok:  # failed (or cancelled) before the decision
                        await _close_quietly(conn, peer, 2, emit)
    return 0


async def _echo(
    conn: TP4Connection | TCPConnection, peer: str, emit: Callable[[str], None]
) -> None:
    try:
        with _contained(peer, emit):
            try:
                async for tsdu in conn:
                    emit(f"recv {peer} {len(tsdu)} octets: {_show(tsdu[:64])}")
                    await conn.send(tsdu)
                emit(f"close {peer} (peer released)")
            except Disconnected as exc:
                emit(f"close {peer} reason={int(exc.reason)} ({exc})")
    finally:
        await _close_quietly(conn, peer, 2, emit)


async def run_client(
    peer: tuple[str, int],
    messages: Sequence[bytes] | None,
    *,
    tsap: bytes | None = None,
    calling_tsap: bytes | None = None,
    data: bytes = b"",
    config: Config | None = None,
    pcap_path: str | None = None,
    transport: Transport = "tp4",
    out: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Connect, send each message (or each stdin line), print each reply.

    Returns 0 on success, 1 when the connection was rejected or lost, 2 on timeout.
    """
    emit = _printer(out or sys.stdout)
    async with AsyncExitStack() as stack:
        local = ("::", 0) if ":" in peer[0] else ("0.0.0.0", 0)
        ep = await _open(stack, local, config, pcap_path, transport)
        try:
            conn = await ep.connect(peer, called_tsap=tsap, calling_tsap=calling_tsap, data=data)
        except ConnectionRejected as exc:
            if not exc.by_peer:  # no DR came (e.g. an RDP server's DT in answer to our CR)
                emit(f"failed: {exc.strerror}")
                return 1
            emit(
                f"rejected: DR reason {int(exc.reason)} ({getattr(exc.reason, 'name', '?')})"
                f" data={_show(exc.data)}"
            )
            return 1
        except TimeoutError as exc:
            emit(f"timeout: {exc}")
            return 2
        emit(f"connected {peer[0]}:{peer[1]} state={conn.state.name}")
        try:
            if messages is None:
                source = stdin or sys.stdin
                lines = await trio.to_thread.run_sync(source.read)
                messages = [line.encode() for line in lines.splitlines()]
            for msg in messages:
                await conn.send(msg)
                reply = await conn.receive()
                emit(f"reply {_show(reply)}")
            await conn.aclose()
        except (Disconnected, trio.EndOfChannel) as exc:
            emit(f"disconnected: {exc}")
            return 1
    return 0
