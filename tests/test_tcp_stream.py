"""What the shared API lacked on TCP: ``TCPConnection.as_stream()`` and ``TCPEndpoint.aclose()``.

The stream view (:class:`tp4emu.transport.stream.TSDUStream`) is checked with
trio's generic stream tests, as ``tests/test_trio_udp.py`` does for TP4, and
for the TP4 stream's contract; ``aclose()`` like ``TP4Endpoint.aclose()``.
Real TCP on 127.0.0.1; every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from rawtcp import read_to_eof

from tp4emu.core import Disconnected
from tp4emu.transport.stream import TSDUStream
from tp4emu.transport.tcp import TCPEndpoint, TCPListener, open_tcp_endpoint
from tp4emu.wire import DRReason

HOST = "127.0.0.1"
LIMIT = 20.0

# A raw client's CR: SRC-REF 0x4242, class 0, TPDU size 2048, called TSAP "svc".
CR = bytes.fromhex("03000013" + "0ee00000424200" + "c0010b" + "c203") + b"svc"


def stream_maker(
    client: TCPEndpoint, server: TCPEndpoint, listener: TCPListener
) -> Callable[[], Awaitable[tuple[TSDUStream, TSDUStream]]]:
    async def maker() -> tuple[TSDUStream, TSDUStream]:
        c = await client.connect(server.getsockname())
        s = await listener.accept()
        return c.as_stream(), s.as_stream()

    return maker


async def test_stream_passes_trio_generic_checks() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen(backlog=64)
            await trio.testing.check_half_closeable_stream(
                stream_maker(client, server, listener), None
            )


async def test_stream_contract() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen()
            cs, ss = await stream_maker(client, server, listener)()
            assert isinstance(cs, trio.abc.HalfCloseableStream)
            # send_all: one TSDU each; receive_some: octets of them, in order.
            await cs.send_all(b"hello")
            await cs.send_all(bytearray(b" world"))
            assert await ss.connection.receive() == b"hello"
            assert await ss.receive_some(3) == b" wo"
            assert await ss.receive_some() == b"rld"
            # send_eof: an empty TSDU; the other direction still works.
            await cs.send_eof()
            assert await ss.receive_some() == b""
            assert await ss.receive_some() == b""
            with pytest.raises(trio.ClosedResourceError):
                await cs.send_all(b"after eof")
            await ss.send_all(b"reply")
            assert await cs.receive_some() == b"reply"
            # The peer's TCP close: end of stream.
            await ss.aclose()
            assert await cs.receive_some() == b""
            await cs.aclose()
            await cs.aclose()  # idempotent
            with pytest.raises(trio.ClosedResourceError):
                await cs.receive_some()


async def test_stream_release_by_peer_is_broken() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen()
            cs, ss = await stream_maker(client, server, listener)()
            await ss.connection.reject(DRReason.CONGESTION, b"busy")  # type: ignore[attr-defined]
            with pytest.raises(trio.BrokenResourceError) as info:
                await cs.receive_some()
            cause = info.value.__cause__
            assert isinstance(cause, Disconnected)
            assert (cause.reason, cause.data, cause.by_peer) == (DRReason.CONGESTION, b"busy", True)
            with pytest.raises(trio.BrokenResourceError):
                await cs.send_all(b"x")
            await cs.aclose()


async def test_endpoint_aclose() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen(b"svc")
            other = server.listen(b"other")
            # An accepted connection, one queued (not accepted), one half-open (no CR yet).
            out = await client.connect(server.getsockname(), called_tsap=b"svc")
            accepted = await listener.accept()
            queued = await trio.open_tcp_stream(*server.getsockname())
            await queued.send_all(CR)
            assert (await queued.receive_some(100))[5] == 0xD0
            half_open = await trio.open_tcp_stream(*server.getsockname())
            await half_open.send_all(CR[:5])
            await trio.testing.wait_all_tasks_blocked()
            assert server._half_open == {HOST: 1}

            async def blocked_accept() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await other.accept()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_accept)
                await trio.testing.wait_all_tasks_blocked()
                await server.aclose()
            await server.aclose()  # idempotent
            # The queued one got DR 2, then the TCP close; the others the close.
            got = await read_to_eof(queued)
            assert got == bytes.fromhex("0300000b" + "068042420001" + "02"), got.hex()
            assert await read_to_eof(half_open) == b""
            with pytest.raises(trio.EndOfChannel):
                await out.receive()
            # Everything fails from now on; the address can still be read.
            for call in (
                accepted.receive,
                lambda: accepted.send(b"x"),
                listener.accept,
                lambda: server.connect(client.getsockname()),
            ):
                with pytest.raises(trio.ClosedResourceError):
                    await call()
            with pytest.raises(trio.ClosedResourceError):
                server.listen(b"again")
            assert server.getsockname()[0] == HOST
            assert server._incoming == 0 and server._half_open == {}
            for stream in (queued, half_open):
                await stream.aclose()
            await out.aclose()
            # The other endpoint is not affected.
            assert client.listen().tsap is None


async def test_endpoint_aclose_before_anything() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            await ep.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await ep.connect(("127.0.0.1", 1))
            # Nobody accepts any more: a TCP client gets no answer to its CR.
            stream = await trio.open_tcp_stream(*ep.getsockname())
            await stream.send_all(CR)
            with trio.move_on_after(0.2) as waited:
                await stream.receive_some(100)
            assert waited.cancelled_caught
            await stream.aclose()


def test_both_transports_now_offer_aclose_and_as_stream() -> None:
    from tp4emu.transport.tcp import TCPConnection
    from tp4emu.transport.udp import TP4Connection, TP4Endpoint

    for cls in (TP4Endpoint, TCPEndpoint):
        assert callable(cls.aclose)
    for conn_cls in (TP4Connection, TCPConnection):
        assert callable(conn_cls.as_stream)


async def test_driver_takes_every_engine_event() -> None:
    # The driver reads the engine's events as it goes: none piles up.
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen()
            out = await client.connect(server.getsockname())
            accepted = await listener.accept()
            for i in range(50):
                await out.send(b"%d" % i)
                assert await accepted.receive() == b"%d" % i
            assert accepted.engine.next_event() is None
            assert accepted.engine.recorded() == []
            await out.aclose()
            with pytest.raises(trio.EndOfChannel):
                await accepted.receive()
            assert accepted.engine.next_event() is None
            await accepted.aclose()
