"""The measured workloads: tp4emu and its baselines, one sample each.

Every function here runs one sample inside ``trio.run`` and returns its
metrics as a dict of numbers (``MB/s``, ``µs``, ``conn/s``, ...; the keys are
the ``metric`` names of :data:`tp4emu.bench.suite.FIGURES`). They are called
by :mod:`tp4emu.bench.worker`, one sample per fresh process, and use only the
public API: :func:`tp4emu.open_udp_endpoint`, :class:`tp4emu.Config` and the
connections' ``connect``/``confirm``/``send``/``receive``/``aclose``; the
baselines use trio's sockets and streams directly.

The timed part of every sample starts once its connections are established and
a short warm-up is done (except the connection rate, where establishing is what
is timed), and ends when the receiving side has everything.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from ..core import Config, Disconnected, State
from ..transport.udp import TP4Connection, TP4Endpoint, open_udp_endpoint

__all__ = [
    "CHUNK",
    "HOST",
    "Metrics",
    "aggregate_tp4",
    "bulk_tcp",
    "bulk_tp4",
    "bulk_udp",
    "connect_tcp",
    "connect_tp4",
    "idle_tp4",
    "rcvbuf_errors",
    "rss_bytes",
    "rtt_tp4",
    "rtt_udp",
]

Metrics = dict[str, float]
"""What one sample measured: metric name → value."""

HOST = "127.0.0.1"
CHUNK = 8192
"""Octets of user data per send in the bulk figures."""
WINDOW = 16
"""Raw UDP bulk: the receiver acknowledges every WINDOW datagrams, the sender
waits for that before sending more (so that nothing is lost)."""
TSAP = b"bench"


# ---------------------------------------------------------------- system counters


def rcvbuf_errors() -> int | None:
    """``RcvbufErrors`` of the ``Udp:`` lines of ``/proc/net/snmp`` (None: not Linux).

    The counter is the network namespace's, so other programs' drops count too.
    """
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
    except OSError:
        return None
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return None
    return int(rows[1][rows[0].index("RcvbufErrors")])


def rss_bytes() -> int | None:
    """The resident set size of this process now (``/proc/self/statm``; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- tp4emu helpers


async def _tp4_pairs(
    srv: TP4Endpoint,
    cli: TP4Endpoint,
    count: int,
    *,
    concurrency: int = 8,
    tsap: bytes = TSAP,
) -> list[tuple[TP4Connection, TP4Connection]]:
    """*count* OPEN connections from *cli* to *srv*: (client side, server side) each.

    Returns once every server side is OPEN too (the client's first AK has
    come back), so the connections are idle when it returns.
    """
    listener = srv.listen(tsap, backlog=max(16, 2 * concurrency))
    accepted: list[TP4Connection] = []
    clients: list[TP4Connection] = []
    todo = iter(range(count))

    async def accept_all() -> None:
        while len(accepted) < count:
            conn = await listener.accept()
            await conn.confirm()
            accepted.append(conn)

    async def connector() -> None:
        for _ in todo:
            clients.append(await cli.connect(srv.getsockname(), called_tsap=tsap))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_all)
        async with trio.open_nursery() as connectors:
            for _ in range(min(concurrency, max(count, 1))):
                connectors.start_soon(connector)
        while len(accepted) < count or any(c.state is not State.OPEN for c in accepted):
            await trio.sleep(0.005)
    by_ref = {conn.core.remote_ref: conn for conn in accepted}
    return [(conn, by_ref[conn.core.local_ref]) for conn in clients]


async def _one_pair(
    srv: TP4Endpoint, cli: TP4Endpoint, tsap: bytes = TSAP
) -> tuple[TP4Connection, TP4Connection]:
    """One OPEN connection: (client side, its server side)."""
    listener = srv.listen(tsap)
    server: list[TP4Connection] = []

    async def accept() -> None:
        conn = await listener.accept()
        await conn.confirm()
        server.append(conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        client = await cli.connect(srv.getsockname(), called_tsap=tsap)
    await listener.aclose()
    return client, server[0]


async def _tp4_rtt(client: TP4Connection, server: TP4Connection, n: int, size: int) -> float:
    """Seconds per round trip of a *size*-octet message, over *n* (after a warm-up)."""
    msg = b"r" * size

    async def echo() -> None:
        while True:
            await server.send(await server.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for _ in range(min(100, n)):
            await client.send(msg)
            await client.receive()
        t0 = time.perf_counter()
        for _ in range(n):
            await client.send(msg)
            await client.receive()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return elapsed / n


async def _tp4_bulk(
    pairs: list[tuple[TP4Connection, TP4Connection]], messages: int, chunk: int = CHUNK
) -> float:
    """Seconds for every pair to carry *messages* messages of *chunk* octets one way."""
    payload = b"y" * chunk

    async def sink(conn: TP4Connection) -> None:
        for _ in range(messages):
            await conn.receive()

    async def source(conn: TP4Connection) -> None:
        for _ in range(messages):
            await conn.send(payload)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for client, server in pairs:
            nursery.start_soon(sink, server)
            nursery.start_soon(source, client)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- bulk one way


async def bulk_tp4(total: int, use_checksum: bool = True) -> Metrics:
    """tp4emu, one connection, *total* octets in 8 KiB messages: ``MB/s``."""
    config = Config(use_checksum=use_checksum)
    messages = max(1, total // CHUNK)
    async with (
        open_udp_endpoint((HOST, 0), config=config) as srv,
        open_udp_endpoint((HOST, 0), config=config) as cli,
    ):
        pair = await _one_pair(srv, cli)
        await _tp4_bulk([pair], min(64, messages))  # warm-up: RTT estimate, caches
        elapsed = await _tp4_bulk([pair], messages)
        retransmissions = cli.statistics().retransmissions
    return {"MB/s": messages * CHUNK / 1e6 / elapsed, "retransmissions": retransmissions}


async def bulk_udp(total: int) -> Metrics:
    """Raw trio UDP, one ``await sendto``/``await recv`` per datagram, ack every 16: ``MB/s``."""
    a = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    b = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    with a, b:
        await a.bind((HOST, 0))
        await b.bind((HOST, 0))
        baddr = b.getsockname()
        payload = b"y" * CHUNK

        async def run(count: int) -> float:
            async def receiver() -> None:
                got = 0
                while got < count:
                    _, addr = await b.recvfrom(65535)
                    got += 1
                    if got % WINDOW == 0 or got == count:
                        await b.sendto(got.to_bytes(4, "big"), addr)

            t0 = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                sent = acked = 0
                while acked < count:
                    while sent < count and sent - acked < WINDOW:
                        await a.sendto(payload, baddr)
                        sent += 1
                    data = await a.recv(16)
                    acked = int.from_bytes(data, "big")
            return time.perf_counter() - t0

        count = max(1, total // CHUNK)
        await run(min(64, count))
        elapsed = await run(count)
    return {"MB/s": count * CHUNK / 1e6 / elapsed}


async def bulk_tcp(total: int) -> Metrics:
    """trio TCP, one stream, *total* octets in 8 KiB ``send_all`` calls: ``MB/s``."""
    count = max(1, total // CHUNK)
    payload = b"y" * CHUNK
    received = trio.Event()
    expected = [0]

    async def sink(stream: trio.SocketStream) -> None:
        got = 0
        while True:
            data = await stream.receive_some(1 << 20)
            if not data:
                return
            got += len(data)
            if got >= expected[0]:
                got -= expected[0]
                received.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, sink, 0, host=HOST))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream(HOST, port)

        async def run(n: int) -> float:
            nonlocal received
            received = trio.Event()
            expected[0] = n * CHUNK
            t0 = time.perf_counter()
            for _ in range(n):
                await stream.send_all(payload)
            await received.wait()
            return time.perf_counter() - t0

        await run(min(64, count))
        elapsed = await run(count)
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return {"MB/s": count * CHUNK / 1e6 / elapsed}


# ---------------------------------------------------------------- round trip


async def rtt_tp4(n: int, size: int = 64) -> Metrics:
    """tp4emu (default Config): send, the peer echoes, receive, one at a time: ``µs``."""
    async with (
        open_udp_endpoint((HOST, 0)) as srv,
        open_udp_endpoint((HOST, 0)) as cli,
    ):
        client, server = await _one_pair(srv, cli)
        per = await _tp4_rtt(client, server, n, size)
    return {"µs": per * 1e6}


async def rtt_udp(n: int, size: int = 64) -> Metrics:
    """Raw trio UDP ping-pong of *size* octets: ``µs`` per round trip."""
    a = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    b = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    msg = b"r" * size
    with a, b:
        await a.bind((HOST, 0))
        await b.bind((HOST, 0))
        baddr = b.getsockname()

        async def echo() -> None:
            while True:
                data, addr = await b.recvfrom(65535)
                await b.sendto(data, addr)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            for _ in range(min(100, n)):
                await a.sendto(msg, baddr)
                await a.recv(65535)
            t0 = time.perf_counter()
            for _ in range(n):
                await a.sendto(msg, baddr)
                await a.recv(65535)
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    return {"µs": elapsed / n * 1e6}


# ---------------------------------------------------------------- connection rate


async def _rate(
    count: int, in_flight: int, one: Callable[[], Awaitable[None]], served: Callable[[], int]
) -> float:
    """Connections per second: *count* calls of *one*, *in_flight* at a time, until
    the server side has finished with all of them (``served() >= count``)."""
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            await one()

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(worker)
    while served() < count:
        await trio.sleep(0.001)
    return count / (time.perf_counter() - t0)


async def connect_tp4(count: int, in_flight: int = 8) -> Metrics:
    """tp4emu: connect, the server accepts and confirms, the client closes: ``conn/s``."""
    warm = min(16, count)
    async with (
        open_udp_endpoint((HOST, 0)) as srv,
        open_udp_endpoint((HOST, 0)) as cli,
        trio.open_nursery() as nursery,
    ):
        listener = srv.listen(TSAP, backlog=4 * in_flight)
        done = [0]

        async def handle(conn: TP4Connection) -> None:
            await conn.confirm()
            with contextlib.suppress(trio.EndOfChannel, Disconnected, trio.ClosedResourceError):
                await conn.receive()
            done[0] += 1

        async def serve() -> None:
            while True:
                nursery.start_soon(handle, await listener.accept())

        nursery.start_soon(serve)
        peer = srv.getsockname()

        async def one() -> None:
            conn = await cli.connect(peer, called_tsap=TSAP)
            await conn.aclose()

        await _rate(warm, in_flight, one, lambda: done[0])
        done[0] = 0
        rate = await _rate(count, in_flight, one, lambda: done[0])
        retransmissions = cli.statistics().retransmissions
        nursery.cancel_scope.cancel()
    return {"conn/s": rate, "retransmissions": retransmissions}


async def connect_tcp(count: int, in_flight: int = 8) -> Metrics:
    """trio TCP: connect, the server accepts, the client closes: ``conn/s``."""
    warm = min(16, count)
    done = [0]

    async def handle(stream: trio.SocketStream) -> None:
        try:
            while await stream.receive_some(4096):
                pass
        except trio.BrokenResourceError:
            pass
        done[0] += 1

    async with trio.open_nursery() as nursery:
        # trio's default backlog (the system's largest): with a small one the
        # kernel drops SYNs now and then, and their retransmission takes 1 s.
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host=HOST))
        port = listeners[0].socket.getsockname()[1]

        async def one() -> None:
            sock = trio.socket.socket()
            await sock.connect((HOST, port))
            await trio.SocketStream(sock).aclose()

        await _rate(warm, in_flight, one, lambda: done[0])
        done[0] = 0
        rate = await _rate(count, in_flight, one, lambda: done[0])
        nursery.cancel_scope.cancel()
    return {"conn/s": rate}


# ---------------------------------------------------------------- idle connections


def idle_config(connections: int) -> Config:
    """The default Config with the endpoint limits raised for *connections* at once."""
    room = connections + 64
    return Config(
        max_connections=room,
        max_half_open_per_address=room,
        max_half_open_per_prefix=room,
        max_unvalidated=room,
    )


async def idle_tp4(
    connections: int,
    *,
    trace: bool = False,
    idle_seconds: float = 3.0,
    rtt_n: int = 2000,
    concurrency: int = 32,
) -> Metrics:
    """*connections* OPEN, idle connections between two endpoints of this process.

    Memory is the growth while the connections are made, divided by twice their
    number (each connection has an end on either endpoint, both counted):
    ``traced B/conn`` (tracemalloc, with *trace*; then nothing else is measured,
    since tracing slows everything) or ``RSS B/conn``. Without *trace* also: the
    ``setup s`` to make them, the process's ``CPU %`` of one core while they idle
    *idle_seconds*, the ``datagrams/s`` the endpoints sent meanwhile (the window
    timer's AKs), and the 64-octet round trip (``µs``) on one more connection.
    When the connections are enough for W to grow (``Config.keepalive_rate``),
    the idle time is measured from one ``window_time`` after the set-up: by then
    every connection's W is the one its endpoint's count calls for, not that of
    the first few connections.
    With *connections* 0 only the round trip means anything: the baseline.
    """
    config = idle_config(connections)
    out: Metrics = {}
    async with (
        open_udp_endpoint((HOST, 0), config=config) as srv,
        open_udp_endpoint((HOST, 0), config=config) as cli,
    ):
        gc.collect()
        rss0 = rss_bytes()
        if trace:
            tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        pairs = await _tp4_pairs(srv, cli, connections, concurrency=concurrency, tsap=b"idle")
        setup = time.perf_counter() - t0
        gc.collect()
        ends = max(1, 2 * connections)
        if trace:
            out["traced B/conn"] = (tracemalloc.get_traced_memory()[0] - traced0) / ends
            tracemalloc.stop()
            return out
        rss1 = rss_bytes()
        if rss0 is not None and rss1 is not None:
            out["RSS B/conn"] = (rss1 - rss0) / ends
        out["setup s"] = setup
        # Steady state: the connections opened first still carry the keep-alive
        # period W of an endpoint with few connections until it expires once.
        if connections / config.keepalive_rate > config.window_time:
            await trio.sleep(config.window_time)
        sent0 = srv.statistics().datagrams_sent + cli.statistics().datagrams_sent
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await trio.sleep(idle_seconds)
        wall = time.perf_counter() - wall0
        out["CPU %"] = 100 * (time.process_time() - cpu0) / wall
        sent = srv.statistics().datagrams_sent + cli.statistics().datagrams_sent - sent0
        out["datagrams/s"] = sent / wall
        client, server = await _one_pair(srv, cli, b"rtt")
        out["µs"] = 1e6 * await _tp4_rtt(client, server, rtt_n, 64)
        out["open"] = sum(1 for c, s in pairs if c.state is s.state is State.OPEN)
    return out


# ---------------------------------------------------------------- aggregate


async def aggregate_tp4(total: int, connections: int) -> Metrics:
    """*total* octets in 8 KiB messages over *connections* connections at once: ``MB/s``.

    Each connection carries ``total / connections`` (rounded down to whole
    messages) one way, all of them between one pair of endpoints (one UDP
    socket each); the time runs until the last one has all. Also the kernel's
    UDP receive-buffer drops (``RcvbufErrors``) during the timed part.
    """
    config = Config(
        max_half_open_per_address=max(32, 2 * connections),
        max_half_open_per_prefix=max(256, 2 * connections),
    )
    messages = max(1, total // CHUNK // connections)
    async with (
        open_udp_endpoint((HOST, 0), config=config) as srv,
        open_udp_endpoint((HOST, 0), config=config) as cli,
    ):
        pairs = await _tp4_pairs(srv, cli, connections, concurrency=8)
        await _tp4_bulk(pairs, 2)
        drops0 = rcvbuf_errors()
        elapsed = await _tp4_bulk(pairs, messages)
        drops1 = rcvbuf_errors()
        retransmissions = cli.statistics().retransmissions
    out: Metrics = {
        "MB/s": messages * connections * CHUNK / 1e6 / elapsed,
        "retransmissions": retransmissions,
    }
    if drops0 is not None and drops1 is not None:
        out["drops"] = drops1 - drops0
    return out


WORKLOADS: dict[str, Callable[..., Awaitable[Metrics]]] = {
    "bulk_tp4": bulk_tp4,
    "bulk_udp": bulk_udp,
    "bulk_tcp": bulk_tcp,
    "rtt_tp4": rtt_tp4,
    "rtt_udp": rtt_udp,
    "connect_tp4": connect_tp4,
    "connect_tcp": connect_tcp,
    "idle_tp4": idle_tp4,
    "aggregate_tp4": aggregate_tp4,
}
"""Every workload by name (what :mod:`tp4emu.bench.worker` runs)."""


def run_workload(name: str, params: dict[str, Any]) -> Metrics:
    """Run workload *name* with keyword *params* in a fresh ``trio.run``."""
    func = WORKLOADS[name]
    return trio.run(partial(func, **params))
