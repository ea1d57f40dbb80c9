"""TP4 over real UDP sockets on 127.0.0.1 (port 0), with the real clock.

Bounded: every test runs under ``trio.fail_after(10)``.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tp4emu.core import Config, ConnectionRejected, Disconnected, State
from tp4emu.transport.udp import (
    LossyUDPSocket,
    TP4Connection,
    TP4Endpoint,
    TP4Listener,
    open_udp_endpoint,
)
from tp4emu.wire import DRReason

LOOPBACK = ("127.0.0.1", 0)


@asynccontextmanager
async def endpoints(
    config: Config | None = None,
) -> AsyncIterator[tuple[TP4Endpoint, TP4Endpoint]]:
    with trio.fail_after(10):
        async with (
            open_udp_endpoint(LOOPBACK, config=config) as client,
            open_udp_endpoint(LOOPBACK, config=config) as server,
        ):
            yield client, server


async def connect_pair(
    client: TP4Endpoint, server: TP4Endpoint, listener: TP4Listener, **kwargs: object
) -> tuple[TP4Connection, TP4Connection]:
    box: list[TP4Connection] = []

    async def accept() -> None:
        conn = await listener.accept()
        assert conn.state is State.CONFIRMING
        await conn.confirm(b"ok")
        box.append(conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        conn = await client.connect(server.getsockname(), **kwargs)  # type: ignore[arg-type]
    return conn, box[0]


async def test_connect_confirm_and_echo() -> None:
    async with endpoints() as (client, server):
        host, port = server.getsockname()
        assert host == "127.0.0.1" and port != 0
        listener = server.listen(b"echo")

        async def echo() -> None:
            conn = await listener.accept()
            assert conn.connect_data == b"hi" and conn.state is State.CONFIRMING
            assert conn.getpeername() == client.getsockname()
            await conn.confirm(b"ok")
            async for msg in conn:
                await conn.send(msg[::-1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            c = await client.connect(server.getsockname(), called_tsap=b"echo", data=b"hi")
            assert c.confirm_data == b"ok"
            assert c.getpeername() == server.getsockname()
            for msg in (b"", b"a", b"hello world", bytes(range(256)) * 40):
                await c.send(msg)
                assert await c.receive() == msg[::-1]
            await c.send_expedited(b"urgent")
            await c.aclose()
        stats = client.statistics()
        assert stats.bad_checksum == 0 and stats.connections_opened == 1


async def test_one_mebibyte() -> None:
    data = random.Random(0).randbytes(1 << 20)
    async with endpoints() as (client, server):
        c, s = await connect_pair(client, server, server.listen())
        received = bytearray()

        async def sink() -> None:
            while True:
                try:
                    received.extend(await s.receive())
                except trio.EndOfChannel:
                    return

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink)
            for i in range(0, len(data), 60_000):
                await c.send(data[i : i + 60_000])
            await c.aclose()
        elapsed = trio.current_time() - start
        assert bytes(received) == data
        stats = client.statistics()
        print(
            f"\nloopback 1 MiB: {elapsed:.3f} s, {stats.datagrams_sent} datagrams, "
            f"{stats.retransmissions} retransmissions"
        )


async def test_reject() -> None:
    async with endpoints() as (client, server):
        listener = server.listen()

        async def refuse() -> None:
            conn = await listener.accept()
            await conn.reject(DRReason.CONGESTION, b"busy")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refuse)
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(server.getsockname())
        assert info.value.reason == DRReason.CONGESTION
        assert info.value.data == b"busy"


async def test_no_listener_is_refused() -> None:
    async with endpoints() as (client, server):
        with pytest.raises(ConnectionRejected) as info:
            await client.connect(server.getsockname())
        assert info.value.reason == DRReason.SESSION_NOT_ATTACHED


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_loopback() -> None:
    with trio.fail_after(10):
        async with open_udp_endpoint(("::1", 0)) as server, open_udp_endpoint(("::1", 0)) as client:
            listener = server.listen(b"six")
            async with trio.open_nursery() as nursery:

                async def echo() -> None:
                    conn = await listener.accept()
                    assert conn.getpeername() == client.getsockname()
                    await conn.send(await conn.receive())
                    await conn.aclose()

                nursery.start_soon(echo)
                conn = await client.connect(server.getsockname(), called_tsap=b"six")
                await conn.send(b"over IPv6")
                assert await conn.receive() == b"over IPv6"
                await conn.aclose()


# ------------------------------------------------------------ the reading task

# A user task blocked in receive() reads the socket for its endpoint; an event for
# its connection that comes from elsewhere (another task, a timer, the endpoint's
# close) wakes it with a doorbell datagram to our own socket (UDPSocket.wake_reader).


@pytest.mark.parametrize("bind", ["127.0.0.1", "0.0.0.0", "::1", "::"])
async def test_a_reader_is_woken_when_another_task_closes_its_connection(bind: str) -> None:
    """Only the doorbell can wake the reader here: the peer is mute (its DC is lost)."""
    host = "::1" if ":" in bind else "127.0.0.1"
    mute = LossyUDPSocket((host, 0), 0.0)
    with trio.fail_after(10):
        async with (
            open_udp_endpoint((bind, 0)) as client,
            open_udp_endpoint(socket=mute) as server,
        ):
            listener = server.listen(None)
            async with trio.open_nursery() as nursery:

                async def accept() -> None:
                    conn = await listener.accept()
                    await conn.confirm()
                    await trio.sleep_forever()

                nursery.start_soon(accept)
                conn = await client.connect((host, server.getsockname()[1]))
                mute.loss = 1.0
                before = client.statistics()
                woken: list[tuple[float, BaseException]] = []

                async def reader() -> None:
                    try:
                        await conn.receive()
                    except BaseException as exc:
                        woken.append((trio.current_time(), exc))

                nursery.start_soon(reader)
                await trio.sleep(0.05)
                assert client._reader is conn  # the reader waits on the socket
                t0 = trio.current_time()
                await conn.aclose()  # waits linger_time (2 s) for a DC that never comes
                assert trio.current_time() - t0 >= 1.5
                ((at, exc),) = woken
                assert at - t0 < 0.5  # woken at the DR, not by the end of the linger
                assert isinstance(exc, trio.ClosedResourceError)
                after = client.statistics()
                # the doorbell is not a datagram of the protocol: neither counted nor decoded
                assert after.datagrams_received == before.datagrams_received
                assert after.undecodable == before.undecodable
                nursery.cancel_scope.cancel()


async def test_a_reader_is_woken_by_a_timer_of_its_connection() -> None:
    """The peer vanishes while data is outstanding: the give-up (a timer of the
    driver task) ends the receive() that is reading the socket."""
    cfg = Config(
        initial_retransmit_time=0.02,
        max_retransmit_time=0.05,
        max_retransmissions=2,
        give_up_time=0.2,
    )
    mute = LossyUDPSocket(LOOPBACK, 0.0)
    with trio.fail_after(10):
        async with (
            open_udp_endpoint(LOOPBACK, config=cfg) as client,
            open_udp_endpoint(config=cfg, socket=mute) as server,
        ):
            listener = server.listen(None)
            conn, _ = await connect_pair(client, server, listener)
            mute.loss = 1.0  # from now on the server's AKs (and DRs) are lost
            await conn.send(b"into the void")
            t0 = trio.current_time()
            with pytest.raises(Disconnected) as caught:
                await conn.receive()
            assert caught.value is conn.core.error and not caught.value.by_peer
            assert trio.current_time() - t0 < 5.0
            assert client._reader is None


async def test_the_driver_reads_when_no_task_does() -> None:
    """Nobody waits in receive(): the driver task takes the socket (within ~5 ms)
    and the data is there when the user comes to read."""
    async with endpoints() as (client, server):
        listener = server.listen(None)
        conn, peer = await connect_pair(client, server, listener)
        await conn.send(b"one")
        await conn.send(b"two")
        for _ in range(200):
            if peer.core.receivable:
                break
            await trio.sleep(0.005)
        assert peer.core.receivable  # taken in without anyone reading
        assert await peer.receive() == b"one"
        assert await peer.receive() == b"two"
        await conn.aclose()
