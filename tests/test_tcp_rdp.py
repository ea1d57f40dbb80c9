"""RDP's CR and CC through the TCP driver, byte for byte, on 127.0.0.1 (docs/rdp.md).

The peer is played with plain TCP sockets (TPKTs written out by hand) or is
our own other side. What is checked: a listener without ``auto_confirm``
hands over CONFIRMING connections whose ``connect_data`` is RDP's cookie and
RDP_NEG_REQ; ``confirm(data)`` sends the CC with *data* in its header,
``reject()`` a DR, ``aclose()`` a DR 128; ``connect(data=...,
propose_tpdu_size=False)`` sends RDP's CR and shows the CC's RDP_NEG_RSP as
``confirm_data``. Each test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from rawtcp import dt, read_to_eof, read_tpkt, tpkt

from tp4emu.core import Config, ConnectionRejected, Disconnected, LocalProtocolError, State
from tp4emu.transport.tcp import TCPEndpoint, open_tcp_endpoint
from tp4emu.wire import DRReason

HOST = "127.0.0.1"
LIMIT = 5.0  # seconds any one test may take

COOKIE = b"Cookie: mstshash=x\r\n"
NEG_REQ = bytes.fromhex("0100080003000000")
NEG_RSP = bytes.fromhex("0200080000000000")
FREERDP_CR = bytes.fromhex("0300002722e00000000000") + COOKIE + NEG_REQ
"""The CR of FreeRDP 2.11 (``xfreerdp /u:x``), as captured."""
CC_NEG_RSP = tpkt(bytes.fromhex("0ed000000001" + "00") + NEG_RSP)
"""Our CC to it with an RDP_NEG_RSP: LI 14, no TPDU size (the CR had none)."""


async def send_cr(ep: TCPEndpoint, cr: bytes = FREERDP_CR) -> trio.SocketStream:
    """A raw TCP client that sent *cr* to our server."""
    stream = await trio.open_tcp_stream(*ep.getsockname())
    await stream.send_all(cr)
    return stream


async def test_confirming_connection_gets_the_cc_data_chosen() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(auto_confirm=False)
            stream = await send_cr(ep)
            conn = await listener.accept()
            assert conn.state is State.CONFIRMING
            assert conn.connect_data == COOKIE + NEG_REQ
            assert (conn.calling_tsap, conn.called_tsap) == (None, None)
            assert conn.getpeername() == stream.socket.getsockname()
            assert ep.statistics().connections_opened == 0
            with pytest.raises(ValueError):  # 6 + 249 octets: too long for one header
                await conn.confirm(bytes(249))
            assert conn.state is State.CONFIRMING
            await conn.confirm(NEG_RSP)
            assert await read_tpkt(stream) == CC_NEG_RSP
            assert conn.state is State.OPEN and conn.confirm_data == NEG_RSP
            assert ep.statistics().connections_opened == 1
            await conn.confirm()  # a no-op now
            with pytest.raises(LocalProtocolError):
                await conn.confirm(NEG_RSP)
            # RDP's next PDU, an MCS Connect-Initial of 467 octets, comes in one DT.
            mcs = b"\x7f\x65" + bytes(457)
            await stream.send_all(dt(mcs))
            assert await conn.receive() == mcs
            await conn.send(b"\x7f\x66")
            assert await read_tpkt(stream) == dt(b"\x7f\x66")
            await conn.aclose()
            assert await read_to_eof(stream) == b""
            await stream.aclose()


async def test_default_listener_answers_an_rdp_cr_with_a_cc() -> None:
    # Before: the CR did not decode and the TCP connection closed with no answer.
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            stream = await send_cr(ep)
            assert await read_tpkt(stream) == tpkt(bytes.fromhex("06d000000001" + "00"))
            conn = await listener.accept()
            assert conn.state is State.OPEN and conn.connect_data == COOKIE + NEG_REQ
            await conn.aclose()
            await stream.aclose()


@pytest.mark.parametrize("how", ["reject", "aclose", "listener-aclose", "endpoint-aclose"])
async def test_confirming_connection_refused_with_a_dr(how: str) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(auto_confirm=False)
            stream = await send_cr(ep, tpkt(bytes.fromhex("0ee00000123400") + NEG_REQ))
            reason = DRReason.NORMAL
            if how == "reject":
                conn = await listener.accept()
                await conn.reject(DRReason.CONGESTION, b"busy")
                reason = DRReason.CONGESTION
            elif how == "aclose":
                conn = await listener.accept()
                await conn.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await conn.receive()
            elif how == "listener-aclose":
                await trio.testing.wait_all_tasks_blocked()
                await listener.aclose()  # queued, not accepted: DR 2
                reason = DRReason.SESSION_NOT_ATTACHED
            else:
                conn = await listener.accept()
                await ep.aclose()
            data = b"busy" if how == "reject" else b""
            answer = tpkt(bytes.fromhex("068012340000") + bytes([reason]) + data)
            assert await read_tpkt(stream) == answer
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            assert ep.statistics().connections_refused == 1
            assert ep.statistics().connections_opened == 0


async def test_no_decision_within_confirm_timeout_is_a_dr() -> None:
    config = Config(confirm_timeout=0.2)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen(auto_confirm=False)
            stream = await send_cr(ep, tpkt(bytes.fromhex("0ee00000123400") + NEG_REQ))
            conn = await listener.accept()
            # Nobody decides: after 0.2 s the DR (reason 0), then the close.
            assert await read_tpkt(stream) == tpkt(bytes.fromhex("068012340000" + "00"))
            assert await read_to_eof(stream) == b""
            await stream.aclose()
            with pytest.raises(Disconnected) as info:
                await conn.confirm(NEG_RSP)
            assert not info.value.by_peer and "in time" in str(info.value)
            assert ep.statistics().connections_refused == 1
            # A connection decided in time is left alone.
            stream = await send_cr(ep)
            conn = await listener.accept()
            await conn.confirm(NEG_RSP)
            assert await read_tpkt(stream) == CC_NEG_RSP
            with trio.move_on_after(0.4):
                assert await stream.receive_some(100) == b"never"  # nothing comes
            assert conn.state is State.OPEN
            await conn.aclose()
            await stream.aclose()


async def test_receive_and_send_confirm_first() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(auto_confirm=False)
            for call in ("receive", "send"):
                stream = await send_cr(ep)
                conn = await listener.accept()
                if call == "receive":
                    await stream.send_all(dt(b"early"))
                    assert await conn.receive() == b"early"
                else:
                    await conn.send(b"hello")
                assert await read_tpkt(stream) == tpkt(bytes.fromhex("06d000000001" + "00"))
                if call == "send":
                    assert await read_tpkt(stream) == dt(b"hello")
                assert conn.state is State.OPEN
                await conn.aclose()
                await stream.aclose()


async def test_our_rdp_client_and_server() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as server, open_tcp_endpoint((HOST, 0)) as client:
            listener = server.listen(auto_confirm=False)
            async with trio.open_nursery() as nursery:

                async def serve_one() -> None:
                    conn = await listener.accept()
                    assert conn.connect_data == COOKIE + NEG_REQ
                    await conn.confirm(NEG_RSP)
                    assert await conn.receive() == b"ping"
                    await conn.send(b"pong")
                    await conn.aclose()

                nursery.start_soon(serve_one)
                conn = await client.connect(
                    server.getsockname(), data=COOKIE + NEG_REQ, propose_tpdu_size=False
                )
                assert conn.confirm_data == NEG_RSP and conn.tpdu_size == 128
                await conn.send(b"ping")
                assert await conn.receive() == b"pong"
                await conn.aclose()


async def test_client_failure_without_a_dr_says_so() -> None:
    # A server answering the CR with a DT (xrdp's answer to a CR with a TPDU size).
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as client:
            listeners = await trio.open_tcp_listeners(0, host=HOST)
            fake = listeners[0]
            async with trio.open_nursery() as nursery:

                async def answer() -> None:
                    peer = await fake.accept()
                    await read_tpkt(peer)
                    await peer.send_all(bytes.fromhex("0300000902f0802180"))
                    await read_to_eof(peer)
                    await peer.aclose()

                nursery.start_soon(answer)
                with pytest.raises(ConnectionRejected) as info:
                    await client.connect((HOST, fake.socket.getsockname()[1]))
            assert not info.value.by_peer
            assert "DR reason" not in str(info.value)
            await fake.aclose()
