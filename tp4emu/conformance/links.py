"""The tester's side of the network: raw UDP datagrams and raw TCP streams.

A link carries octets the case built (with :mod:`tp4emu.wire`), never
through tp4emu's engines, and timestamps everything that arrives the moment
it arrives (a task per socket reads continuously), so that a case measures
the IUT's timers from arrival times, not from when it looked.

* :class:`UdpLink` — class 4 over UDP. As initiator, a fresh socket per case
  talks to the target; as responder, the run's one listening socket is shared
  by every case, and the first datagram of each case fixes the peer.
* :class:`TcpLink` — RFC 1006 over TCP. As initiator a fresh TCP connection
  per case (opened by the first send or by :meth:`TcpLink.connect`); as
  responder the next TCP connection the IUT opens to the run's listener.
  Arrivals are TPKT payloads (:class:`~tp4emu.wire.TPKTDecoder`), a stream
  that is not TPKTs (``bad``), the TCP close (``eof``) or a reset.

Every payload sent or received can be recorded in a pcap (:class:`Recorder`).
"""

from __future__ import annotations

import contextlib
import math
import socket as _socket
import time
from dataclasses import dataclass
from typing import Any, Literal

import trio

from ..capture import PcapWriter
from ..wire import TPDUError, TPKTDecoder

__all__ = [
    "Address",
    "Arrival",
    "Recorder",
    "TcpLink",
    "TcpListenerPort",
    "UdpLink",
    "UdpPort",
]

Address = tuple[str, int]

_MAX_QUEUE = 10_000
"""Arrivals a link holds unread before it drops (a flooding IUT)."""


@dataclass(frozen=True)
class Arrival:
    """Something the IUT sent: a datagram, a TPKT payload, a bad stream, the close."""

    at: float
    """``trio.current_time()`` at arrival."""
    kind: Literal["data", "bad", "eof", "reset"]
    payload: bytes = b""
    source: Address | None = None
    error: str = ""


class Recorder:
    """Writes what a run sends and receives to a pcap (exported PDUs: tshark reads them as is)."""

    def __init__(self, path: str | None) -> None:
        self._pcap: PcapWriter | None = PcapWriter(path) if path else None

    def record(self, payload: bytes, src: Any, dst: Any, transport: Literal["udp", "tcp"]) -> None:
        """One datagram (UDP) or one TPDU without its TPKT header (TCP)."""
        if self._pcap is None or src is None or dst is None:
            return
        with contextlib.suppress(OSError, ValueError):  # an unusable capture never stops a run
            self._pcap.write(
                payload,
                src=tuple(src[:2]),
                dst=tuple(dst[:2]),
                timestamp=time.time(),
                transport=transport,
            )

    def close(self) -> None:
        """Flush and close the file."""
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None


async def _resolve(host: str, port: int, kind: int) -> tuple[int, Address]:
    infos = await trio.socket.getaddrinfo(host, port, type=kind)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    family, _, _, _, sockaddr = infos[0]
    return int(family), (str(sockaddr[0]), int(sockaddr[1]))


class _Queue:
    """Arrivals, oldest first, with a wait for the next one."""

    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[Arrival](math.inf)
        self.dropped = 0
        self._count = 0

    def put(self, arrival: Arrival) -> None:
        if self._count >= _MAX_QUEUE:
            self.dropped += 1
            return
        self._count += 1
        self._send.send_nowait(arrival)

    async def get(self, deadline: float) -> Arrival | None:
        with trio.move_on_at(deadline):
            item = await self._recv.receive()
            self._count -= 1
            return item
        return None

    def get_nowait(self) -> Arrival | None:
        try:
            item = self._recv.receive_nowait()
        except trio.WouldBlock:
            return None
        self._count -= 1
        return item


class UdpPort:
    """One UDP socket and the task that timestamps every datagram it receives."""

    def __init__(self, sock: trio.socket.SocketType, recorder: Recorder) -> None:
        self.sock = sock
        self.recorder = recorder
        self.queue = _Queue()
        self.local: Address = tuple(sock.getsockname()[:2])

    @classmethod
    async def bind(cls, host: str, port: int, recorder: Recorder) -> UdpPort:
        """A socket bound to (*host*, *port*); port 0: any free one."""
        family, addr = await _resolve(host, port, _socket.SOCK_DGRAM)
        sock = trio.socket.socket(family, _socket.SOCK_DGRAM)
        try:
            await sock.bind(addr)
        except OSError:
            sock.close()
            raise
        return cls(sock, recorder)

    async def run(self) -> None:
        """Read datagrams until cancelled or the socket closes."""
        while True:
            try:
                data, addr = await self.sock.recvfrom(65535)
            except (OSError, trio.ClosedResourceError):
                # ICMP port unreachable (the target is not there) shows as
                # ECONNREFUSED on the next read: keep reading.
                if self.sock.fileno() < 0:
                    return
                await trio.sleep(0.001)
                continue
            source: Address = (str(addr[0]), int(addr[1]))
            self.recorder.record(data, source, self.local, "udp")
            self.queue.put(Arrival(trio.current_time(), "data", data, source))

    def close(self) -> None:
        """Close the socket (the reading task ends)."""
        self.sock.close()


class UdpLink:
    """The datagrams of one case: to its peer, and the ones from it."""

    kind: Literal["udp"] = "udp"

    def __init__(self, port: UdpPort, peer: Address | None) -> None:
        self.port = port
        self.peer = peer
        """Where datagrams go; None (responder) until the first one arrives."""

    @property
    def local(self) -> Address:
        """The tester's address."""
        return self.port.local

    async def send(self, payload: bytes) -> float:
        """Send one datagram to the peer; returns the time it was sent."""
        if self.peer is None:
            raise RuntimeError("no peer yet: nothing has arrived from the IUT")
        now = trio.current_time()
        with contextlib.suppress(OSError):  # refused: the IUT is not there, the case sees silence
            await self.port.sock.sendto(payload, self.peer)
        self.port.recorder.record(payload, self.local, self.peer, "udp")
        return now

    async def receive(self, deadline: float) -> Arrival | None:
        """The next datagram from the peer (any source while there is none yet)."""
        while True:
            item = await self.port.queue.get(deadline)
            if item is None:
                return None
            if self.peer is None or item.source == self.peer:
                return item
            # a datagram from elsewhere: not this case's

    def adopt(self, source: Address) -> None:
        """Responder: the IUT's datagrams come from *source*; ours go there."""
        self.peer = source


class TcpListenerPort:
    """The run's TCP listening socket (responder role): one IUT connection per case."""

    def __init__(self, listener: trio.SocketListener, recorder: Recorder) -> None:
        self.listener = listener
        self.recorder = recorder
        self.local: Address = tuple(listener.socket.getsockname()[:2])

    @classmethod
    async def bind(cls, host: str, port: int, recorder: Recorder) -> TcpListenerPort:
        """Listen on (*host*, *port*); port 0: any free one."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        for extra in listeners[1:]:
            await extra.aclose()
        return cls(listeners[0], recorder)

    async def accept(self, deadline: float) -> trio.SocketStream | None:
        """The next TCP connection, or None by *deadline*."""
        with trio.move_on_at(deadline):
            return await self.listener.accept()
        return None

    async def aclose(self) -> None:
        """Stop listening."""
        await self.listener.aclose()


class TcpLink:
    """One TCP connection of a case, read as TPKTs."""

    kind: Literal["tcp"] = "tcp"

    def __init__(self, recorder: Recorder, nursery: trio.Nursery) -> None:
        self.recorder = recorder
        self._nursery = nursery
        self.stream: trio.SocketStream | None = None
        self.queue = _Queue()
        self.peer: Address | None = None
        self.local: Address | None = None
        self.closed_by_us = False

    def attach(self, stream: trio.SocketStream) -> None:
        """Use *stream* (connected or accepted) and start reading it."""
        self.stream = stream
        sock = stream.socket
        self.local = tuple(sock.getsockname()[:2])
        self.peer = tuple(sock.getpeername()[:2])
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._nursery.start_soon(self._read, stream)

    async def connect(self, host: str, port: int, timeout: float) -> None:
        """Open the TCP connection to the target.

        Raises:
            OSError: refused, unreachable, or no answer within *timeout*.
        """
        with trio.move_on_after(timeout) as scope:
            stream = await trio.open_tcp_stream(host, port)
        if scope.cancelled_caught:
            raise OSError(f"TCP connect to {host}:{port} timed out")
        self.attach(stream)

    async def _read(self, stream: trio.SocketStream) -> None:
        decoder = TPKTDecoder()
        broken = False
        try:
            while True:
                data = await stream.receive_some(65536)
                now = trio.current_time()
                if not data:
                    self.queue.put(Arrival(now, "eof", source=self.peer))
                    return
                if broken:
                    continue
                try:
                    payloads = decoder.feed(data)
                except TPDUError as exc:
                    broken = True
                    self.queue.put(Arrival(now, "bad", data, self.peer, str(exc)))
                    continue
                for payload in payloads:
                    self.recorder.record(payload, self.peer, self.local, "tcp")
                    self.queue.put(Arrival(now, "data", payload, self.peer))
        except (trio.BrokenResourceError, OSError):
            self.queue.put(Arrival(trio.current_time(), "reset", source=self.peer))
        except trio.ClosedResourceError:
            return  # we closed it

    async def send(self, octets: bytes) -> float:
        """Write *octets* (TPKTs, or anything) to the stream; returns the time."""
        if self.stream is None:
            raise RuntimeError("no TCP connection")
        now = trio.current_time()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self.stream.send_all(octets)  # (failing: the IUT closed it, the case sees it)
        decoder = TPKTDecoder()
        try:
            for payload in decoder.feed(octets):
                self.recorder.record(payload, self.local, self.peer, "tcp")
        except TPDUError:
            pass  # not TPKTs: nothing to record as TPDUs
        return now

    async def receive(self, deadline: float) -> Arrival | None:
        """The next arrival, or None by *deadline*."""
        return await self.queue.get(deadline)

    async def close(self, *, abort: bool = False) -> None:
        """Close our side (a reset with *abort*)."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        self.closed_by_us = True
        if abort:
            await trio.aclose_forcefully(stream)
        else:
            with trio.move_on_after(1):
                await stream.aclose()
