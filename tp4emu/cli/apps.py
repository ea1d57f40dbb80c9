"""The echo server and client behind ``tp4emu serve`` and ``tp4emu connect``.

The server shows what tp4emu exists for: every accepted connection is still
CONFIRMING; the server reads ``getpeername()``, checks the peer against an
access list, and rejects it (DR, the client's connect fails) or confirms it by
receiving (the CC goes out only then), then echoes every TSDU. CRs that the
endpoint refuses by itself, before any ``accept()`` (no listener for the
called TSAP, backlog full, ...), are logged too: one ``refuse`` line, seen
through the endpoint's capture hook (the ``pcap=`` argument of
:func:`~tp4emu.api.open_endpoint`), as the DR with SRC-REF 0 that answers
the CR.

One connection's failure (an exception from ``getpeername()``, ``reject()``,
the echo or ``aclose()``, e.g. because the peer tore the connection down
meanwhile) is logged on the ``"tp4emu.serve"`` logger and printed as one
``error HOST:PORT <message>`` line; the connection is closed and the server
goes on accepting.

The client sends each message as one TSDU and prints each reply; messages
read from stdin are sent line by line as they come, while the replies are
received concurrently.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio

from ..api import Transport, _close_quietly, _contained, _peer_name, open_endpoint
from ..core import Config, ConnectionRejected, Disconnected
from ..transport.tcp import TCPConnectFailed, TCPConnection, TCPEndpoint
from ..transport.udp import DatagramSocket, TP4Connection, TP4Endpoint
from ..wire import CR, DR, DRReason, TPDUError, decode
from .errors import CommandError
from .output import Printer, event_style

__all__ = [
    "AccessList",
    "CommandError",
    "check_bindable",
    "format_address",
    "parse_address",
    "parse_reason",
    "parse_tsap",
    "resolve_host",
    "run_client",
    "run_server",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def format_address(host: str, port: int) -> str:
    """``host:port``, or ``[host]:port`` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, *, what: str = "address", port_zero: bool = True) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[V6]:PORT``) to a (host, port) tuple.

    An empty host is 127.0.0.1. Raises ValueError (one line, naming *what*)
    when the text is not of that form or the port is not in 0..65535 (1..65535
    without *port_zero*).
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or (":" in host and not host.startswith("[")):
        raise ValueError(f"{what}: expected HOST:PORT (or [IPV6]:PORT), got {text!r}")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f"{what}: unbalanced brackets in {text!r}")
    number = int(port)
    low = 0 if port_zero else 1
    if not low <= number <= 65535:
        raise ValueError(f"{what}: port {number} is out of range ({low}-65535) in {text!r}")
    host = host[1:-1] if host.startswith("[") else host
    _check_numeric(host, what)
    return host or "127.0.0.1", number


def _check_numeric(host: str, what: str) -> None:
    """A host of digits and dots is meant as an IPv4 address (not a name to
    look up); one in brackets as an IPv6 address. ValueError when it is not valid."""
    if host and all(c.isdigit() or c == "." for c in host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{what}: {host!r} is not a valid IPv4 address") from None
    elif ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{what}: {host!r} is not a valid IPv6 address") from None


def check_bindable(host: str, transport: Transport) -> None:
    """Raise CommandError (status 1) when no socket can be bound to *host*
    (an address that is not of this host). Nothing is sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == "tp4" else socket.SOCK_STREAM
    try:
        with socket.socket(family, kind) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        raise CommandError(f"cannot bind {host}: {exc.strerror or exc}") from None


def resolve_host(host: str) -> str:
    """A numeric address for *host* (itself when it is one).

    Raises CommandError (status 1) when the name cannot be resolved.
    """
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandError(f"cannot resolve host {host!r}: {detail}") from None
    return str(infos[0][4][0])


def parse_tsap(text: str | None, *, what: str = "--tsap") -> bytes | None:
    """A TSAP-ID from the command line: text, or ``hex:0102`` for raw octets.

    Raises ValueError (one line, naming *what*) on bad hex.
    """
    if text is None:
        return None
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise ValueError(
                f"{what} {text!r}: after 'hex:' give an even number of hex digits, e.g. hex:0102"
            ) from None
    return text.encode()


def parse_reason(value: str | int) -> DRReason:
    """A DR reason code, by number or by name (``128``, ``normal``).

    Raises ValueError (one line listing the valid reasons) otherwise.
    """
    text = str(value).strip()
    try:
        return DRReason(int(text, 0)) if text[:1].isdigit() else DRReason[text.upper()]
    except (ValueError, KeyError):
        valid = ", ".join(f"{int(r)} ({r.name})" for r in DRReason)
        raise ValueError(f"DR reason {text!r} is not one of: {valid}") from None


def _reason_text(reason: int) -> str:
    name = reason.name if isinstance(reason, DRReason) else None
    if name is None:
        try:
            name = DRReason(reason).name
        except ValueError:
            name = "?"
    return f"{int(reason)}({name})"


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
        """Build from CIDR strings (ValueError names the one that is not a network)."""

        def networks(items: Sequence[str], option: str) -> list[Network]:
            out: list[Network] = []
            for item in items:
                try:
                    out.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(f"{option} {item!r} is not an address or network") from None
            return out

        return cls(networks(allow, "--allow"), networks(deny, "--deny"))

    def permits(self, host: str) -> bool:
        """Whether *host* may connect."""
        addr = ipaddress.ip_address(host)
        if any(addr in net for net in self.deny):
            return False
        return not self.allow or any(addr in net for net in self.allow)


def _emitter(out: TextIO, color: str) -> Callable[[str], None]:
    printer = Printer(out, color)

    def emit(line: str) -> None:
        printer.line(line, event_style(line))

    return emit


class _Tap:
    """The endpoint's capture hook: forwards every TPDU to the pcap writer (once
    there is one) and reports the CRs the endpoint refused by itself.

    Such a refusal is a DR with SRC-REF 0 sent in answer to a CR (a DR of a
    connection carries its own, non-zero, reference). The CRs received last
    (a bounded number) are remembered for their called TSAP.
    """

    _REMEMBERED = 256

    def __init__(self, local: tuple[str, int], emit: Callable[[str], None]) -> None:
        self.local = local
        self.emit = emit
        self.writer: Any = None
        self._crs: OrderedDict[tuple[Any, int], bytes | None] = OrderedDict()
        self._refused: OrderedDict[tuple[Any, int], None] = OrderedDict()

    def _ours(self, addr: Any) -> bool:
        if tuple(addr[:2]) == self.local[:2]:
            return True
        # TCP: a connection's local address is the accepting socket's, same port.
        return self.local[0] in ("0.0.0.0", "::") and addr[1] == self.local[1]

    def write(
        self, data: bytes, *, src: Any, dst: Any, timestamp: float, transport: str = "udp"
    ) -> None:
        if self.writer is not None:
            self.writer.write(data, src=src, dst=dst, timestamp=timestamp, transport=transport)
        if len(data) < 2 or (data[1] & 0xF0) not in (0xE0, 0x80):  # neither CR nor DR first
            return
        try:
            tpdus = decode(data)
        except TPDUError:
            return
        tpdu = tpdus[0]
        if isinstance(tpdu, CR) and not self._ours(src):
            self._remember(self._crs, (tuple(src[:2]), tpdu.src_ref), tpdu.called_tsap)
        elif isinstance(tpdu, DR) and tpdu.src_ref == 0 and self._ours(src):
            self._refusal(tuple(dst[:2]), tpdu)

    def _remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._REMEMBERED:
            table.popitem(last=False)

    def _refusal(self, peer: tuple[str, int], dr: DR) -> None:
        key = (peer, dr.dst_ref)
        if key not in self._crs:
            return  # not the answer to a CR (e.g. to a CC of an unknown connection)
        again = ", CR retransmitted" if key in self._refused else ""
        self._remember(self._refused, key, None)
        called = _show(self._crs[key])
        self.emit(
            f"refuse {format_address(peer[0], peer[1])} reason={_reason_text(dr.reason)}"
            f" called={called} (before accept{again})"
        )

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()


async def _open(
    stack: AsyncExitStack,
    local: tuple[str, int],
    *,
    config: Config | None,
    pcap_path: str | None,
    transport: Transport,
    emit: Callable[[str], None],
    server: bool,
    socket: DatagramSocket | None = None,
) -> tuple[TP4Endpoint | TCPEndpoint, _Tap]:
    """Open the endpoint (bound to *local*, or on *socket*), then the capture file.

    Raises CommandError when either cannot be opened.
    """
    tap = _Tap(local, emit if server else lambda line: None)  # a client reports no refusals
    where = format_address(*local)
    try:
        ep = await stack.enter_async_context(
            open_endpoint(
                local,
                transport=transport,
                config=config,
                pcap=tap,
                listen=server,
                socket=socket,
            )
        )
    except OSError as exc:
        what = "listen on" if server else "bind"
        proto = "UDP" if transport == "tp4" else "TCP"
        raise CommandError(f"cannot {what} {where} ({proto}): {exc.strerror or exc}") from None
    tap.local = ep.getsockname()
    if pcap_path:
        from ..capture import PcapWriter

        try:
            tap.writer = stack.enter_context(PcapWriter(pcap_path))
        except OSError as exc:
            raise CommandError(f"cannot write --pcap {pcap_path}: {exc.strerror or exc}") from None
    return ep, tap


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
    color: str = "auto",
    socket: DatagramSocket | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run the access-list echo server; one line per event. Returns an exit status.

    Args:
        exit_after: stop after this many connections were decided (tests).
        color: ``auto``, ``always`` or ``never`` (colours on a terminal).
        socket: a ready datagram socket to serve on instead of binding
            *listen* (tp4 only; tests, e.g. on a simulated network).

    Raises:
        CommandError: the address cannot be bound or the capture not written.
    """
    emit = _emitter(out or sys.stdout, color)
    access = access or AccessList()
    async with AsyncExitStack() as stack:
        ep, _ = await _open(
            stack,
            listen,
            config=config,
            pcap_path=pcap_path,
            transport=transport,
            emit=emit,
            server=True,
            socket=socket,
        )
        listener = ep.listen(tsap)
        host, port = ep.getsockname()
        emit(f"listening {format_address(host, port)} transport={transport} tsap={_show(tsap)}")
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
                        peer = format_address(peer_host, peer_port)
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
                            emit(
                                f"reject {peer} reason={_reason_text(reject_reason)} (access list)"
                            )
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
                emit(f"close {peer} reason={_reason_text(exc.reason)} ({exc})")
    finally:
        await _close_quietly(conn, peer, 2, emit)


# ------------------------------------------------------------------ client


def _disconnect_text(exc: BaseException, transport: Transport) -> str:
    """Why the connection ended, for the ``disconnected:`` line."""
    if isinstance(exc, trio.EndOfChannel):
        if transport == "tp4":
            return "the server released the connection: DR reason 128(NORMAL)"
        return "the server closed the TCP connection (class 0 release)"
    if isinstance(exc, Disconnected):
        who = "from the server" if exc.by_peer else "sent by us"
        text = f"DR reason {_reason_text(exc.reason)} {who}"
        message = exc.strerror or ""
        if message and not message.startswith("disconnected ("):  # a message of its own
            text += f": {message}"
        return text
    return str(exc) or type(exc).__name__


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _Conversation:
    """Sends messages and receives replies concurrently; one reply per message.

    Ends when the messages are all sent and as many replies came back. With
    a timeout, waiting longer than it for a reply (since the last one, or
    since the message that was sent while none was awaited) ends it too.
    """

    def __init__(
        self,
        conn: TP4Connection | TCPConnection,
        emit: Callable[[str], None],
        timeout: float | None,
    ) -> None:
        self.conn = conn
        self.emit = emit
        self.timeout = timeout
        self.sent = 0
        self.received = 0
        self.done_sending = False
        self.timed_out = False
        self._progress = 0.0  # when the wait for the oldest awaited reply started
        self._scope: trio.CancelScope | None = None

    @property
    def finished(self) -> bool:
        return self.done_sending and self.received >= self.sent

    def _arm(self) -> None:
        """Set the deadline of the pending receive (or end it, when finished)."""
        scope = self._scope
        if scope is None:
            return
        if self.finished:
            scope.cancel()
        elif self.timeout is not None and self.sent > self.received:
            scope.deadline = self._progress + self.timeout
        else:
            scope.deadline = math.inf

    async def send(self, message: bytes) -> None:
        await self.conn.send(message)
        if self.sent == self.received:
            self._progress = trio.current_time()
        self.sent += 1
        self._arm()

    def end_of_messages(self) -> None:
        self.done_sending = True
        self._arm()

    async def receive_replies(self) -> None:
        """Print replies until finished; raises what the connection raises."""
        while not self.finished:
            with trio.CancelScope() as scope:
                self._scope = scope
                self._arm()
                reply = await self.conn.receive()
            self._scope = None
            if scope.cancelled_caught:
                if not self.finished:
                    self.timed_out = True
                return
            self.received += 1
            self._progress = trio.current_time()
            self.emit(f"reply {_show(reply)}")


async def _send_lines(stream: TextIO, conversation: _Conversation) -> None:
    """Send each line of *stream* (without its end of line) as soon as it is read."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:  # not a file (tests): its own readline, in a thread
        while text := await trio.to_thread.run_sync(stream.readline, abandon_on_cancel=True):
            await conversation.send(text.rstrip("\r\n").encode())
    else:
        # os.read on the descriptor rather than the buffered sys.stdin: a thread
        # abandoned in a read (Ctrl-C, the server went away) holds no lock of it.
        pending = b""
        while chunk := await trio.to_thread.run_sync(os.read, fd, 65536, abandon_on_cancel=True):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                await conversation.send(line.removesuffix(b"\r"))
        if pending:
            await conversation.send(pending.removesuffix(b"\r"))
    conversation.end_of_messages()


async def _send_all(messages: Iterable[bytes], conversation: _Conversation) -> None:
    for message in messages:
        await conversation.send(message)
    conversation.end_of_messages()


async def run_client(
    peer: tuple[str, int],
    messages: Sequence[bytes] | None,
    *,
    tsap: bytes | None = None,
    calling_tsap: bytes | None = None,
    data: bytes = b"",
    propose_tpdu_size: bool = True,
    config: Config | None = None,
    pcap_path: str | None = None,
    transport: Transport = "tp4",
    bind: tuple[str, int] | None = None,
    timeout: float | None = None,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
    color: str = "auto",
) -> int:
    """Connect, send each message (or each stdin line, as it comes), print each reply.

    The endpoint is client-only (over TCP it opens no listening socket),
    bound to *bind* (default: any address of the peer's family, any port).
    *timeout* bounds the connection's establishment and each wait for a
    reply (None: no bound but the protocol's own). Over TCP, *data* goes in
    the CR's header after its parameters and *propose_tpdu_size* False leaves
    the TPDU size parameter out (an RDP client's CR, docs/rdp.md).

    Returns 0 on success, 1 when the connection was refused or lost, 2 on timeout.

    Raises:
        CommandError: the local address cannot be bound or the capture not written.
    """
    emit = _emitter(out or sys.stdout, color)
    server = format_address(*peer)
    async with AsyncExitStack() as stack:
        if bind is None:
            bind = ("::", 0) if ":" in peer[0] else ("0.0.0.0", 0)
        ep, _ = await _open(
            stack,
            bind,
            config=config,
            pcap_path=pcap_path,
            transport=transport,
            emit=emit,
            server=False,
        )
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                conn: TCPConnection | TP4Connection
                if isinstance(ep, TCPEndpoint):
                    conn = await ep.connect(
                        peer,
                        called_tsap=tsap,
                        calling_tsap=calling_tsap,
                        data=data,
                        propose_tpdu_size=propose_tpdu_size,
                    )
                else:
                    conn = await ep.connect(
                        peer, called_tsap=tsap, calling_tsap=calling_tsap, data=data
                    )
        except TCPConnectFailed as exc:
            emit(f"refused: {exc.strerror}")
            return 1
        except ConnectionRejected as exc:
            if not exc.by_peer:  # no DR came (e.g. an RDP server's DT in answer to our CR)
                emit(f"failed: {exc.strerror}")
                return 1
            emit(
                f"rejected: DR reason {int(exc.reason)} ({getattr(exc.reason, 'name', '?')})"
                f" data={_show(exc.data)}"
            )
            return 1
        except trio.TooSlowError:
            emit(f"timeout: no CC or DR from {server} within {timeout:g} s")
            return 2
        except TimeoutError as exc:  # the CR's retransmissions ran out (no --timeout)
            emit(f"timeout: no CC or DR from {server} ({exc.strerror or exc})")
            return 2
        except ValueError as exc:  # TSAPs that do not fit a CR
            raise CommandError(str(exc), 2) from None
        confirm = f" confirm-data={_show(conn.confirm_data)}" if conn.confirm_data else ""
        emit(f"connected {server} state={conn.state.name}{confirm}")
        conversation = _Conversation(conn, emit, timeout)
        ended: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                if messages is None:
                    nursery.start_soon(_send_lines, stdin or sys.stdin, conversation)
                else:
                    nursery.start_soon(_send_all, messages, conversation)
                await conversation.receive_replies()
                nursery.cancel_scope.cancel()  # finished, timed out: stop reading stdin
        except* (Disconnected, trio.EndOfChannel, trio.BrokenResourceError) as group:
            ended = _first_leaf(group)
        if ended is not None:
            emit(f"disconnected: {_disconnect_text(ended, transport)}")
            return 1
        if conversation.timed_out:
            waiting = conversation.sent - conversation.received
            emit(f"timeout: no reply from {server} within {timeout:g} s ({waiting} awaited)")
            await trio.aclose_forcefully(conn)
            return 2
        await conn.aclose()
    return 0
