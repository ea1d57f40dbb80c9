"""Data-path benchmark: tp4emu over loopback UDP against raw trio UDP and trio TCP.

Run: ``.venv/bin/python benchmarks/bench_udp.py [--quick]``

All figures come from the same run on the same machine, so the ratios mean
something even where the absolute numbers do not. Nothing here is asserted by
the tests.

* round trip: a 32-octet message sent and echoed back, one at a time.
* bulk: 16 MiB sent in 8 KiB messages, then in 60000-octet messages, one
  way, until the receiver has all. Raw UDP has no flow control of its own: the
  baseline acknowledges every 16 datagrams (a fixed window, like our credit of
  15) so that it loses nothing. TP4 runs with the default TPDU size (0xF0
  8320, so an 8 KiB message takes one DT) and, for the large messages, also
  with ``Config(preferred_max_tpdu_size=65408)`` (one DT per message).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

import tp4emu

MSG = b"x" * 32
CHUNK = 8192
BIG = 60000
BIG_TPDUS = tp4emu.Config(preferred_max_tpdu_size=65408)


async def raw_udp_rtt(n: int) -> float:
    a = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    b = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    await a.bind(("127.0.0.1", 0))
    await b.bind(("127.0.0.1", 0))
    baddr = b.getsockname()

    async def echo() -> None:
        while True:
            data, addr = await b.recvfrom(65535)
            await b.sendto(data, addr)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        t0 = time.perf_counter()
        for _ in range(n):
            await a.sendto(MSG, baddr)
            await a.recvfrom(65535)
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    a.close()
    b.close()
    return elapsed


async def raw_udp_bulk(total: int, chunk: int = CHUNK) -> float:
    a = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    b = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
    await a.bind(("127.0.0.1", 0))
    await b.bind(("127.0.0.1", 0))
    baddr = b.getsockname()
    count = total // chunk
    window = 16
    payload = b"y" * chunk

    async def receiver() -> None:
        got = 0
        while got < count:
            _, addr = await b.recvfrom(65535)
            got += 1
            if got % window == 0 or got == count:
                await b.sendto(got.to_bytes(4, "big"), addr)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        sent = 0
        acked = 0
        while acked < count:
            while sent < count and sent - acked < window:
                await a.sendto(payload, baddr)
                sent += 1
            data, _ = await a.recvfrom(16)
            acked = int.from_bytes(data, "big")
    elapsed = time.perf_counter() - t0
    a.close()
    b.close()
    return elapsed


async def tcp_rtt(n: int) -> float:
    async def echo(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        t0 = time.perf_counter()
        for _ in range(n):
            await stream.send_all(MSG)
            got = 0
            while got < len(MSG):
                got += len(await stream.receive_some(65536))
        elapsed = time.perf_counter() - t0
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def tcp_bulk(total: int, chunk: int = CHUNK) -> float:
    done = trio.Event()

    async def sink(stream: trio.SocketStream) -> None:
        got = 0
        while got < total // chunk * chunk:
            got += len(await stream.receive_some(1 << 20))
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, sink, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        payload = b"y" * chunk
        t0 = time.perf_counter()
        for _ in range(total // chunk):
            await stream.send_all(payload)
        await done.wait()
        elapsed = time.perf_counter() - t0
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return elapsed


async def tp4_pair(
    body: Callable[[tp4emu.TP4Connection, tp4emu.TP4Connection], Awaitable[float]],
    config: tp4emu.Config | None = None,
) -> float:
    async with (
        tp4emu.open_udp_endpoint(config=config) as srv,
        tp4emu.open_udp_endpoint(config=config) as cli,
    ):
        listener = srv.listen(b"bench")
        async with trio.open_nursery() as nursery:
            accepted: list[tp4emu.TP4Connection] = []

            async def accept() -> None:
                conn = await listener.accept()
                await conn.confirm()
                accepted.append(conn)

            nursery.start_soon(accept)
            client = await cli.connect(srv.getsockname(), called_tsap=b"bench")
        elapsed = await body(client, accepted[0])
        await client.aclose()
        return elapsed


async def tp4_rtt(n: int) -> float:
    async def body(client: tp4emu.TP4Connection, server: tp4emu.TP4Connection) -> float:
        async def echo() -> None:
            async for m in server:
                await server.send(m)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            t0 = time.perf_counter()
            for _ in range(n):
                await client.send(MSG)
                await client.receive()
            elapsed = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
        return elapsed

    return await tp4_pair(body)


async def tp4_bulk(total: int, chunk: int = CHUNK, config: tp4emu.Config | None = None) -> float:
    async def body(client: tp4emu.TP4Connection, server: tp4emu.TP4Connection) -> float:
        count = total // chunk
        payload = b"y" * chunk

        async def sink() -> None:
            for _ in range(count):
                await server.receive()

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink)
            for _ in range(count):
                await client.send(payload)
        return time.perf_counter() - t0

    return await tp4_pair(body, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    n = 500 if args.quick else 3000
    total = (4 if args.quick else 16) * 1024 * 1024

    rows: list[tuple[str, str, float, str]] = []
    rtt_base = trio.run(raw_udp_rtt, n) / n
    rtt_tcp = trio.run(tcp_rtt, n) / n
    rtt_tp4 = trio.run(tp4_rtt, n) / n
    rows.append(("round trip 32 B", "raw trio UDP", rtt_base * 1e6, "1.00"))
    rows.append(("round trip 32 B", "trio TCP", rtt_tcp * 1e6, f"{rtt_tcp / rtt_base:.2f}"))
    rows.append(("round trip 32 B", "tp4emu TP4/UDP", rtt_tp4 * 1e6, f"{rtt_tp4 / rtt_base:.2f}"))
    bulks = []
    for chunk, label in ((CHUNK, "bulk 8 KiB"), (BIG, "bulk 60000 B")):
        n_bytes = total // chunk * chunk
        base = trio.run(raw_udp_bulk, total, chunk)
        runs = [
            ("raw trio UDP", base),
            ("trio TCP", trio.run(tcp_bulk, total, chunk)),
            ("tp4emu TP4/UDP", trio.run(tp4_bulk, total, chunk)),
        ]
        if chunk == BIG:
            runs.append(("tp4emu, 0xF0 65408", trio.run(tp4_bulk, total, chunk, BIG_TPDUS)))
        bulks.append((label, n_bytes, base, runs))
    print(f"round trips: {n}; bulk: {total >> 20} MiB\n")
    print(f"{'test':<18}{'transport':<20}{'µs/op or MB/s':>14}{'ratio to raw UDP':>20}")
    for test, transport, value, ratio in rows:
        print(f"{test:<18}{transport:<20}{value:>11.1f} µs{ratio:>20}")
    for label, n_bytes, base, runs in bulks:
        for transport, elapsed in runs:
            mbps = n_bytes / 1e6 / elapsed
            print(f"{label:<18}{transport:<20}{mbps:>9.1f} MB/s{base / elapsed:>20.2f}")


if __name__ == "__main__":
    main()
