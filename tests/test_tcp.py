"""The RFC 1006 adapter (:mod:`tp4emu.transport.tcp`) against hand-written peers, byte for byte.

The fake peer is a raw trio TCP stream on 127.0.0.1: it writes TPKTs built
here by hand (not with the package's encoder) and checks the exact octets
our side sends. Everything runs in real time on loopback; each test is
bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from rawtcp import dt, read_to_eof, read_tpkt, tpkt

from tp4emu.core import (
    Config,
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    State,
)
from tp4emu.transport.tcp import (
    CLASS0_MAX_TPDU_SIZE,
    TCPConnection,
    TCPEndpoint,
    TCPListener,
    open_tcp_endpoint,
)
from tp4emu.wire import DRReason

HOST = "127.0.0.1"
LIMIT = 5.0  # seconds any one test may take


# CR from the fake client: SRC-REF 0x1234, class 0, calling TSAP 0100,
# called TSAP 0102, TPDU size 1024 (0x0A).
CR_HAND = tpkt(bytes.fromhex("11e00000123400c1020100c2020102c0010a"))
# What our server must answer: CC, DST-REF = the CR's SRC-REF, SRC-REF 1, class 0,
# TPDU size 1024, the TSAPs echoed.
CC_EXPECTED = tpkt(bytes.fromhex("11d01234000100c0010ac1020100c2020102"))
# A CC the fake server gives our client: DST-REF 1 (our SRC-REF), SRC-REF 0x4321.
CC_128 = tpkt(bytes.fromhex("09d00001432100c00107"))


# ------------------------------------------------------------------ helpers


@asynccontextmanager
async def fake_server() -> AsyncIterator[tuple[trio.SocketListener, tuple[str, int]]]:
    """A raw TCP listener standing in for an RFC 1006 server."""
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    try:
        yield listeners[0], (HOST, listeners[0].socket.getsockname()[1])
    finally:
        for listener in listeners:
            await listener.aclose()


async def connect_via_fake(
    ep: TCPEndpoint,
    fake: trio.SocketListener,
    addr: tuple[str, int],
    answer: bytes = CC_128,
    **kwargs: bytes,
) -> tuple[TCPConnection, trio.SocketStream, bytes]:
    """Our client connects; the fake server reads the CR and answers *answer*."""
    box: list[TCPConnection | Exception] = []

    async def client() -> None:
        try:
            box.append(await ep.connect(addr, **kwargs))
        except Exception as exc:  # re-raised below, outside the nursery
            box.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        peer = await fake.accept()
        cr = await read_tpkt(peer)
        if answer:
            await peer.send_all(answer)
        else:
            await peer.aclose()
    if isinstance(box[0], Exception):
        await peer.aclose()
        raise box[0]
    return box[0], peer, cr


async def fake_client(ep: TCPEndpoint, cr: bytes = CR_HAND) -> tuple[trio.SocketStream, bytes]:
    """A raw TCP client sends *cr* to our server; returns the stream and the answer TPKT."""
    stream = await trio.open_tcp_stream(*ep.getsockname())
    await stream.send_all(cr)
    return stream, await read_tpkt(stream)


async def open_pair(
    ep: TCPEndpoint, listener: TCPListener, cr: bytes = CR_HAND
) -> tuple[trio.SocketStream, TCPConnection]:
    """A fake client connected to our server: (its stream, our accepted connection)."""
    stream, answer = await fake_client(ep, cr)
    assert answer[5] == 0xD0, answer.hex()
    return stream, await listener.accept()


async def check_listener_still_works(ep: TCPEndpoint, listener: TCPListener) -> None:
    stream, conn = await open_pair(ep, listener)
    await stream.send_all(dt(b"still here"))
    assert await conn.receive() == b"still here"
    await conn.send(b"yes")
    assert await read_tpkt(stream) == dt(b"yes")
    await conn.aclose()
    await stream.aclose()


# ------------------------------------------------- establishment, byte for byte


async def test_client_cr_bytes() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, cr = await connect_via_fake(
                ep, fake, addr, calling_tsap=b"\x01\x00", called_tsap=b"\x01\x02"
            )
            # TPKT 03 00 00 16; CR: LI 0x11, E0 (CDT 0), DST-REF 0, SRC-REF 1,
            # class 0; TPDU size 2^11 = 2048 (class 0's maximum), calling and
            # called TSAPs.
            assert cr == bytes.fromhex(
                "03000016" + "11e00000000100" + "c0010b" + "c1020100" + "c2020102"
            )
            assert cr[2:4] == struct.pack(">H", len(cr))
            assert 1 << cr[13] <= CLASS0_MAX_TPDU_SIZE
            # The CC offered 128: the negotiated size is the smaller one.
            assert conn.tpdu_size == 128
            assert conn.state is State.OPEN
            assert conn.getpeername() == addr
            assert conn.getsockname()[0] == HOST
            await conn.aclose()
            await peer.aclose()


async def test_client_cr_without_tsaps_and_smaller_config() -> None:
    with trio.fail_after(LIMIT):
        async with (
            fake_server() as (fake, addr),
            open_tcp_endpoint((HOST, 0), config=Config(max_tpdu_size=512)) as ep,
        ):
            # A CC without a TPDU size parameter: class 0's default, 128.
            cc = tpkt(bytes.fromhex("06d000014321" + "00"))
            conn, peer, cr = await connect_via_fake(ep, fake, addr, answer=cc)
            assert cr == bytes.fromhex("0300000e" + "09e00000000100" + "c00109")
            assert conn.tpdu_size == 128
            await conn.aclose()
            await peer.aclose()


async def test_client_negotiates_the_cc_size_and_the_config_caps_it() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            cc_1024 = tpkt(bytes.fromhex("09d000014321" + "00c0010a"))
            conn, peer, _ = await connect_via_fake(ep, fake, addr, answer=cc_1024)
            assert conn.tpdu_size == 1024
            await conn.aclose()
            await peer.aclose()
            # A peer that grants more than we asked for does not get more.
            cc_8192 = tpkt(bytes.fromhex("09d000014321" + "00c0010d"))
            conn, peer, _ = await connect_via_fake(ep, fake, addr, answer=cc_8192)
            assert conn.tpdu_size == 2048
            await conn.aclose()
            await peer.aclose()


async def test_server_cc_bytes_to_hand_written_cr() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, answer = await fake_client(ep)
            assert answer == CC_EXPECTED
            conn = await listener.accept()
            assert conn.state is State.OPEN
            assert conn.calling_tsap == b"\x01\x00"
            assert conn.called_tsap == b"\x01\x02"
            assert conn.tpdu_size == 1024
            assert conn.getpeername() == stream.socket.getsockname()[:2]
            await conn.confirm()  # a no-op
            assert conn.state is State.OPEN
            assert ep.statistics().connections_opened == 1
            await conn.aclose()
            await stream.aclose()


@pytest.mark.parametrize(
    ("size_param", "granted"),
    [
        ("c0010d", "c0010b"),  # 8192 asked: class 0's maximum, 2048
        ("c0010b", "c0010b"),  # 2048
        ("c00107", "c00107"),  # 128
        ("", "c00107"),  # none: the default, 128
    ],
)
async def test_server_tpdu_size_negotiation(size_param: str, granted: str) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            body = "e00000000700" + size_param
            cr = tpkt(bytes([len(body) // 2]) + bytes.fromhex(body))
            stream, answer = await fake_client(ep, cr)
            assert answer == tpkt(bytes.fromhex("09d000070001" + "00" + granted))
            conn = await listener.accept()
            assert conn.tpdu_size == 1 << bytes.fromhex(granted)[2]
            assert conn.calling_tsap is None and conn.called_tsap is None
            await conn.aclose()
            await stream.aclose()


async def test_server_caps_at_its_config() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=Config(max_tpdu_size=256)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, answer = await fake_client(ep)
            assert answer[11:14] == bytes.fromhex("c00108")
            conn = await listener.accept()
            assert conn.tpdu_size == 256
            await conn.aclose()
            await stream.aclose()


async def test_server_refuses_other_classes_without_class_0() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            # Class 4, no alternative: DR 130 (negotiation failed).
            stream, answer = await fake_client(ep, tpkt(bytes.fromhex("06e000000007" + "40")))
            assert answer == tpkt(bytes.fromhex("068000070000" + "82"))
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            # Class 4 with class 0 as an alternative: a class 0 CC.
            cr = tpkt(bytes.fromhex("09e000000008" + "40" + "c70100"))
            stream, answer = await fake_client(ep, cr)
            assert answer == tpkt(bytes.fromhex("09d000080001" + "00" + "c00107"))
            conn = await listener.accept()
            await conn.aclose()
            await stream.aclose()
            assert ep.statistics().connections_refused == 1


async def test_no_listener_for_the_tsap_refuses_with_reason_2() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            server.listen(b"other")
            # Hand-written CR: the DR goes back with DST-REF = the CR's SRC-REF.
            stream, answer = await fake_client(server)
            assert answer == tpkt(bytes.fromhex("068012340000" + "02"))
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            # Our client: connect() raises ConnectionRejected, reason 2, ECONNREFUSED.
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(server.getsockname(), called_tsap=b"nobody")
            assert info.value.reason == DRReason.SESSION_NOT_ATTACHED == 2
            assert info.value.errno == errno.ECONNREFUSED
            assert server.statistics().connections_refused == 2


async def test_client_connect_failures() -> None:
    config = Config(cr_retransmit_time=0.1, max_retransmissions=2)
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0), config=config) as ep:
            # Connect data goes in the CR's header (RDP's way): 6 + 3 (TPDU size) + 246 > 254.
            with pytest.raises(ValueError):
                await ep.connect(addr, data=bytes(246))
            # A DR with a reason and user data.
            dr = tpkt(bytes.fromhex("068000010000" + "01") + b"busy")
            with pytest.raises(ConnectionRejected) as info:
                await connect_via_fake(ep, fake, addr, answer=dr)
            assert info.value.reason == DRReason.CONGESTION
            assert info.value.data == b"busy"
            # A CC of another class.
            cc4 = tpkt(bytes.fromhex("06d000014321" + "40"))
            with pytest.raises(ConnectionRejected) as info:
                await connect_via_fake(ep, fake, addr, answer=cc4)
            assert info.value.reason == DRReason.NEGOTIATION_FAILED
            # Garbage instead of a TPKT.
            with pytest.raises(ConnectionRejected) as info:
                await connect_via_fake(ep, fake, addr, answer=b"HTTP/1.1 400\r\n\r\n")
            assert info.value.reason == DRReason.PROTOCOL_ERROR
            # The TCP connection closed instead of an answer.
            with pytest.raises(ConnectionRejected) as info:
                await connect_via_fake(ep, fake, addr, answer=b"")
            assert info.value.reason == DRReason.PROTOCOL_ERROR
            # No answer at all: timed out after cr_retransmit_time * N.
            peers: list[trio.SocketStream] = []

            async def mute() -> None:
                peers.append(await fake.accept())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(mute)
                start = trio.current_time()
                with pytest.raises(ConnectionTimedOut):
                    await ep.connect(addr)
                assert 0.15 <= trio.current_time() - start < 2
            await peers[0].aclose()
        # Nobody listening at all: reason 3 (address unknown).
        async with open_tcp_endpoint((HOST, 0)) as ep:
            with pytest.raises(ConnectionRejected) as info:
                await ep.connect(addr)
            assert info.value.reason == DRReason.ADDRESS_UNKNOWN


# ------------------------------------------------------------------ data


async def test_dt_segmentation_at_the_negotiated_size() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)  # TPDU size 128
            data = bytes(range(256)) + bytes(44)  # 300 octets
            await conn.send(data)
            # 128-octet TPDUs: 3 octets of header, 125 of data; EOT on the last only.
            assert await read_tpkt(peer) == dt(data[:125], eot=False)
            assert await read_tpkt(peer) == dt(data[125:250], eot=False)
            assert await read_tpkt(peer) == dt(data[250:], eot=True)
            assert dt(data[:125], eot=False)[:7] == bytes.fromhex("0300008402f000")
            # Exactly one TPDU's worth; then an empty TSDU (one DT with EOT).
            await conn.send(data[:125])
            assert await read_tpkt(peer) == bytes.fromhex("0300008402f080") + data[:125]
            await conn.send(b"")
            assert await read_tpkt(peer) == bytes.fromhex("0300000702f080")
            await conn.send(memoryview(b"mv"))
            assert await read_tpkt(peer) == dt(b"mv")
            await conn.aclose()
            await peer.aclose()


async def test_dt_segmentation_at_2048() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            cc = tpkt(bytes.fromhex("09d000014321" + "00c0010b"))
            conn, peer, _ = await connect_via_fake(ep, fake, addr, answer=cc)
            data = bytes(i % 251 for i in range(5000))
            await conn.send(data)
            assert await read_tpkt(peer) == dt(data[:2045], eot=False)
            assert await read_tpkt(peer) == dt(data[2045:4090], eot=False)
            assert await read_tpkt(peer) == dt(data[4090:], eot=True)
            await conn.aclose()
            await peer.aclose()


async def test_reassembly_across_dts_and_tcp_reads() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            tsdu = bytes(range(200)) * 5
            wire = (
                dt(tsdu[:300], eot=False)
                + dt(tsdu[300:301], eot=False)
                + dt(b"", eot=False)
                + dt(tsdu[301:], eot=True)
                + dt(b"second")
                + dt(b"", eot=True)
            )
            # Cut the stream in awkward places: inside TPKT headers (after 1, 2
            # and 3 octets), inside a DT header, inside data; a pause after each
            # piece so that each is a separate TCP read.
            cuts = [1, 2, 3, 5, 6, 150, 304, 305, 309, 313, 320, 330, 700, len(wire) - 2]
            received: list[bytes] = []

            async def reader() -> None:
                for _ in range(3):
                    received.append(await conn.receive())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                last = 0
                for cut in [*cuts, len(wire)]:
                    await stream.send_all(wire[last:cut])
                    last = cut
                    await trio.sleep(0.005)
            assert received == [tsdu, b"second", b""]
            # Several TSDUs in one TCP segment.
            await stream.send_all(dt(b"a") + dt(b"b", eot=False) + dt(b"c") + dt(b"d"))
            assert [await conn.receive() for _ in range(3)] == [b"a", b"bc", b"d"]
            await conn.aclose()
            await stream.aclose()


async def test_echo_between_our_client_and_server() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen(b"echo")

            async def echo() -> None:
                conn = await listener.accept()
                try:
                    while True:
                        await conn.send(await conn.receive())
                except trio.EndOfChannel:
                    pass
                await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                conn = await client.connect(server.getsockname(), called_tsap=b"echo")
                assert conn.tpdu_size == 2048
                for size in (0, 1, 2045, 2046, 70000):
                    data = bytes(i % 253 for i in range(size))
                    await conn.send(data)
                    assert await conn.receive() == data
                await conn.aclose()


# ------------------------------------------------------------------ release


async def test_dr_from_the_peer_is_disconnected_with_its_reason() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)
            await peer.send_all(dt(b"before") + tpkt(bytes.fromhex("068000014321" + "80") + b"bye"))
            assert await conn.receive() == b"before"
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.NORMAL
            assert info.value.data == b"bye"
            assert info.value.by_peer is True
            assert conn.state is State.CLOSED
            # The error sticks: send and receive raise it again.
            with pytest.raises(Disconnected):
                await conn.receive()
            with pytest.raises(Disconnected):
                await conn.send(b"x")
            await conn.aclose()
            await peer.aclose()


async def test_er_from_the_peer_is_disconnected() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)
            await peer.send_all(tpkt(bytes.fromhex("0870000102c1020102")))
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.PROTOCOL_ERROR
            assert info.value.by_peer is True
            await conn.aclose()
            await peer.aclose()


async def test_tcp_close_is_end_of_channel() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)
            await peer.send_all(dt(b"last words"))
            await peer.aclose()
            assert await conn.receive() == b"last words"
            with pytest.raises(trio.EndOfChannel):
                await conn.receive()
            with pytest.raises(trio.EndOfChannel):
                await conn.receive()
            assert conn.state is State.CLOSED
            await conn.aclose()


async def test_our_aclose_is_a_tcp_close() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await conn.send(b"x")
            await conn.aclose()
            # Class 0's normal release: no DR, just the close.
            assert await read_to_eof(stream) == dt(b"x")
            assert conn.state is State.CLOSED
            with pytest.raises(trio.ClosedResourceError):
                await conn.send(b"y")
            with pytest.raises(trio.ClosedResourceError):
                await conn.receive()
            await conn.aclose()  # idempotent
            await stream.aclose()


async def test_reject_on_our_server_cuts_off_a_connected_client() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen(b"svc")
            # The client's connect() returns before the server even accepts.
            conn = await client.connect(server.getsockname(), called_tsap=b"svc")
            assert conn.state is State.OPEN
            accepted = await listener.accept()
            assert accepted.state is State.OPEN
            await accepted.reject(DRReason.NORMAL, b"go away")
            assert accepted.state is State.CLOSED
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.NORMAL
            assert info.value.data == b"go away"
            assert info.value.by_peer is True
            await conn.aclose()


async def test_reject_bytes() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await conn.reject(DRReason.CONGESTION)
            got = await read_to_eof(stream)
            # DR (LI 6, 0x80), the references, reason 1, then the TCP close.
            assert len(got) == 11 and got[:6] == bytes.fromhex("0300000b0680"), got.hex()
            assert got[10] == 1
            await stream.aclose()


async def test_reject_dr_carries_the_connection_references() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)  # CR SRC-REF 0x1234, CC SRC-REF 1
            await conn.reject(DRReason.NORMAL)
            assert await read_to_eof(stream) == tpkt(bytes.fromhex("068012340001" + "80"))
            await stream.aclose()


async def test_send_after_a_reset_is_disconnected() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            # An abortive close (RST): SO_LINGER on, timeout 0.
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()
            with pytest.raises(Disconnected) as info:
                for _ in range(100):
                    await conn.send(b"into the void")
                    await trio.sleep(0.01)
            assert "broken while sending" in str(info.value)
            assert info.value.by_peer is False
            assert conn.state is State.CLOSED
            await conn.aclose()


async def test_accept_on_a_listener_closed_meanwhile() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            async with trio.open_nursery() as nursery:

                async def wait_accept() -> None:
                    with pytest.raises(trio.ClosedResourceError):
                        await listener.accept()

                nursery.start_soon(wait_accept)
                await trio.testing.wait_all_tasks_blocked()
                await listener.aclose()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("garbage", "reason", "words"),
    [
        (bytes.fromhex("0400000702f080"), DRReason.PROTOCOL_ERROR, "version 4"),
        (bytes.fromhex("03000006020f"), DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID, "length 6"),
        (bytes.fromhex("03000805") + bytes(8), DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID, "2053"),
        (bytes.fromhex("0300ffff02f080"), DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID, "65535"),
    ],
    ids=["version", "too-short", "too-long", "max-length"],
)
async def test_bad_tpkt_closes_the_connection(garbage: bytes, reason: int, words: str) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(b"ok"))
            assert await conn.receive() == b"ok"
            await stream.send_all(garbage)
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == reason
            assert info.value.by_peer is False
            assert words in str(info.value)
            assert conn.state is State.CLOSED
            # The framing is lost: no ER, just the close.
            assert await read_to_eof(stream) == b""
            assert ep.statistics().undecodable == 1
            await stream.aclose()
            await conn.aclose()
            await check_listener_still_works(ep, listener)


async def test_truncated_stream() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(b"whole") + dt(b"cut short")[:9])
            await stream.send_eof()
            assert await conn.receive() == b"whole"
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.PROTOCOL_ERROR
            assert "ended inside a TPKT" in str(info.value)
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            await conn.aclose()
            await check_listener_still_works(ep, listener)


@pytest.mark.parametrize(
    ("tpdu", "cause", "words"),
    [
        (bytes.fromhex("0461000105"), "02", "AK"),  # an AK (class 4 only)
        (bytes.fromhex("04f0000180") + b"x", "02", "DT"),  # a class 4 DT (with DST-REF)
        (bytes.fromhex("0410000181") + b"x", "02", "ED"),  # expedited data
        (bytes.fromhex("05c000014321"), "02", "DC"),  # DC does not exist in class 0
        (CR_HAND[4:], "02", "CR"),  # a second CR
        (bytes.fromhex("05f080"), "03", "runs past"),  # LI past the end
        (bytes.fromhex("02ff80"), "02", "0xFF"),  # bad type octet
    ],
    ids=["AK", "DT-class4", "ED", "DC", "CR", "LI", "type"],
)
async def test_invalid_tpdu_gets_er_and_close(tpdu: bytes, cause: str, words: str) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(tpkt(tpdu))
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert words in str(info.value)
            assert info.value.by_peer is False
            assert conn.state is State.CLOSED
            await conn.aclose()
            # ER: LI 8, 0x70, DST-REF = the peer's reference (0x1234, from its CR),
            # cause, invalid TPDU parameter (0xC1) holding the rejected TPDU's
            # first 2 octets (its LI and code); then the TCP close.
            got = await read_to_eof(stream)
            er = bytes.fromhex("08701234" + cause + "c102") + tpdu[:2]
            assert got == tpkt(er), got.hex()
            assert ep.statistics().undecodable == 1
            await stream.aclose()
            await check_listener_still_works(ep, listener)


async def test_invalid_tpdu_closes_without_waiting_for_aclose() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(tpkt(bytes.fromhex("0461000105")))
            with pytest.raises(Disconnected):
                await conn.receive()
            # The connection "is closed": the peer sees the ER and the close now.
            with trio.fail_after(1):
                got = await read_to_eof(stream)
            assert got[5] == 0x70
            await conn.aclose()
            await stream.aclose()


async def test_dt_longer_than_the_tpdu_size() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)  # 128
            await peer.send_all(dt(bytes(200)))
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert "longer than the TPDU size" in str(info.value)
            await conn.aclose()
            got = await read_to_eof(peer)
            # ER to the peer's reference (0x4321, from its CC), cause 0, quoting 02f0
            assert got == tpkt(bytes.fromhex("0870432100c10202f0")), got.hex()
            await peer.aclose()


async def test_bad_input_before_the_cr() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=Config(tcp_cr_timeout=0.3)) as ep:
            listener = ep.listen()
            # Not a TPKT at all: closed, nothing sent.
            stream = await trio.open_tcp_stream(*ep.getsockname())
            await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            # A DT instead of a CR: ER (cause 2, invalid TPDU type), then the close.
            stream = await trio.open_tcp_stream(*ep.getsockname())
            await stream.send_all(dt(b"hi"))
            got = await read_to_eof(stream)
            assert got == tpkt(bytes.fromhex("0870000002c10202f0")), got.hex()
            await stream.aclose()
            # An AK instead of a CR: same, nothing reaches the listener.
            stream = await trio.open_tcp_stream(*ep.getsockname())
            await stream.send_all(tpkt(bytes.fromhex("0461000105")))
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            # Silence: closed after tcp_cr_timeout.
            stream = await trio.open_tcp_stream(*ep.getsockname())
            start = trio.current_time()
            assert await read_to_eof(stream) == b""
            assert 0.25 <= trio.current_time() - start < 2
            await stream.aclose()
            assert ep.statistics().undecodable == 4
            assert ep.statistics().connections_opened == 0
            await check_listener_still_works(ep, listener)


# ------------------------------------------------------------------ API misuse


async def test_concurrent_receive_is_busy() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            got: list[bytes] = []
            async with trio.open_nursery() as nursery:

                async def first() -> None:
                    got.append(await conn.receive())

                nursery.start_soon(first)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await conn.receive()
                await stream.send_all(dt(b"one"))
            assert got == [b"one"]
            # Not busy any more.
            await stream.send_all(dt(b"two"))
            assert await conn.receive() == b"two"
            await conn.aclose()
            await stream.aclose()


async def test_expedited_does_not_exist_in_class_0() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            with pytest.raises(LocalProtocolError):
                await conn.send_expedited(b"urgent")
            with pytest.raises(LocalProtocolError):
                await conn.receive_expedited()
            # Nothing went out; the connection is fine.
            await conn.send(b"normal")
            assert await read_tpkt(stream) == dt(b"normal")
            await conn.aclose()
            await stream.aclose()


async def test_getpeername_after_close_is_enotconn() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            peer = conn.getpeername()
            assert peer == stream.socket.getsockname()[:2]
            local = conn.getsockname()
            await conn.aclose()
            with pytest.raises(OSError) as info:
                conn.getpeername()
            assert info.value.errno == errno.ENOTCONN
            assert conn.getsockname() == local
            await stream.aclose()


async def test_listener_rules() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02", backlog=1)
            with pytest.raises(ValueError):
                ep.listen(b"\x01\x02")
            # Backlog 1: the second CR, not yet accepted, gets DR reason 1.
            first, answer = await fake_client(ep)
            assert answer == CC_EXPECTED
            second, answer = await fake_client(ep)
            assert answer == tpkt(bytes.fromhex("068012340000" + "01"))
            await second.aclose()
            # Closing the listener refuses what is queued with DR 2 ...
            await listener.aclose()
            got = await read_to_eof(first)
            assert got[4:6] == bytes.fromhex("0680") and got[-1] == 2, got.hex()
            await first.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await listener.accept()
            # ... and later CRs for its TSAP too; the TSAP can be listened on again.
            third, answer = await fake_client(ep)
            assert answer == tpkt(bytes.fromhex("068012340000" + "02"))
            await third.aclose()
            again = ep.listen(b"\x01\x02")
            await check_listener_still_works(ep, again)
            stats = ep.statistics()
            assert stats.connections_refused == 2
            assert stats.connections_opened == 2


# ------------------------------------------------- bugs found (now regression tests)


async def test_tsdu_before_garbage_in_the_same_read_is_delivered() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(b"ok") + bytes.fromhex("0400000702f080"))
            assert await conn.receive() == b"ok"
            with pytest.raises(Disconnected):
                await conn.receive()
            await conn.aclose()
            await stream.aclose()


async def test_client_keeps_data_arriving_with_the_cc() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr, answer=CC_128 + dt(b"hello"))
            with trio.fail_after(0.5):
                assert await conn.receive() == b"hello"
            await conn.aclose()
            await peer.aclose()


async def test_server_keeps_data_arriving_with_the_cr() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, answer = await fake_client(ep, CR_HAND + dt(b"eager"))
            assert answer == CC_EXPECTED
            conn = await listener.accept()
            with trio.fail_after(0.5):
                assert await conn.receive() == b"eager"
            await conn.aclose()
            await stream.aclose()


async def test_dt_one_octet_over_the_tpdu_size() -> None:
    with trio.fail_after(LIMIT):
        async with fake_server() as (fake, addr), open_tcp_endpoint((HOST, 0)) as ep:
            conn, peer, _ = await connect_via_fake(ep, fake, addr)  # TPDU size 128
            await peer.send_all(dt(bytes(126)))  # a 129-octet TPDU
            with pytest.raises(Disconnected):
                await conn.receive()
            await conn.aclose()
            await peer.aclose()


async def test_reassembly_is_bounded_by_max_tsdu_size() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=Config(max_tsdu_size=1000)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(bytes(500), eot=False) * 4 + dt(b"end"))
            with trio.fail_after(0.5), pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.PROTOCOL_ERROR
            await conn.aclose()
            await stream.aclose()


async def test_reset_mid_tsdu_is_not_a_normal_release() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(b"\x01\x02")
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(b"first half", eot=False))
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()
            await trio.sleep(0.05)
            with pytest.raises(Disconnected):
                await conn.receive()
            await conn.aclose()
