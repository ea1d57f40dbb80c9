"""RFC 1006 interoperability with a real peer: python-snap7's S7 server and client.

python-snap7 (pure Python) speaks COTP class 0 over TPKT, as Siemens PLCs do.
Our TCP client connects to its server, and its client to our server; both
sides then run the S7 "setup communication" job. Everything runs on
127.0.0.1 on free non-privileged ports, in real time, bounded by
``trio.fail_after``.
"""

from __future__ import annotations

import socket
import struct

import pytest
import trio
from snap7.client import Client  # a pinned test dependency: no skip, CI must run these

from tp4emu.core import Config, State
from tp4emu.transport.tcp import TCPConnection, open_tcp_endpoint

HOST = "127.0.0.1"
SETUP_JOB = bytes.fromhex("32010000000000080000f0000001000101e0")
"""An S7 setup-communication job: PDU reference 0, requested PDU length 480."""
OUR_PDU_LENGTH = 240
"""The PDU length our server's Ack_Data grants (snap7's client asks for 480)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def setup_ack(request: bytes, pdu_length: int = OUR_PDU_LENGTH) -> bytes:
    """The Ack_Data a PLC answers a setup-communication job with.

    Header: 0x32, type 3 (Ack_Data), reserved + PDU reference copied from the
    job, parameter length 8, data length 0, error class/code 0; parameters:
    function 0xF0, reserved, max AmQ calling/called 1, PDU length.
    """
    return (
        b"\x32\x03"
        + request[2:6]
        + bytes.fromhex("000800000000")
        + struct.pack(">BBHHH", 0xF0, 0, 1, 1, pdu_length)
    )


async def test_our_client_with_snap7_server(snap7_server: int) -> None:
    with trio.fail_after(15):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            conn = await ep.connect(
                (HOST, snap7_server), calling_tsap=b"\x01\x00", called_tsap=b"\x01\x02"
            )
            assert isinstance(conn, TCPConnection)
            assert conn.state is State.OPEN
            # We propose 2048 (class 0's maximum); snap7 grants what was asked.
            assert conn.tpdu_size == 2048
            assert conn.getpeername() == (HOST, snap7_server)
            await conn.send(SETUP_JOB)
            ack = await conn.receive()
            assert ack[:2] == b"\x32\x03", ack.hex()
            assert ack[4:6] == SETUP_JOB[4:6]  # the PDU reference echoed
            assert ack[6:8] == b"\x00\x08"  # parameter length 8
            assert ack[10:12] == b"\x00\x00"  # no error
            assert ack[12] == 0xF0  # setup communication
            pdu_length = struct.unpack(">H", ack[18:20])[0]
            assert 240 <= pdu_length <= 960
            # A second job on the same connection works as well.
            job2 = SETUP_JOB[:4] + b"\x00\x02" + SETUP_JOB[6:]
            await conn.send(job2)
            ack2 = await conn.receive()
            assert ack2[:2] == b"\x32\x03" and ack2[4:6] == b"\x00\x02"
            await conn.aclose()
            assert conn.state is State.CLOSED


async def test_our_client_negotiates_smaller_tpdu_size(snap7_server: int) -> None:
    with trio.fail_after(15):
        async with open_tcp_endpoint((HOST, 0), config=Config(max_tpdu_size=512)) as ep:
            conn = await ep.connect((HOST, snap7_server), called_tsap=b"\x01\x02")
            assert conn.tpdu_size == 512
            await conn.send(SETUP_JOB)
            assert (await conn.receive())[:2] == b"\x32\x03"
            await conn.aclose()


async def test_snap7_client_with_our_server() -> None:
    seen: dict[str, object] = {}
    with trio.fail_after(20):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            port = ep.getsockname()[1]
            listener = ep.listen(None)  # any TSAP
            client = Client()

            async def serve() -> None:
                conn = await listener.accept()
                seen["state"] = conn.state
                seen["calling"] = conn.calling_tsap
                seen["called"] = conn.called_tsap
                seen["tpdu_size"] = conn.tpdu_size
                seen["peer"] = conn.getpeername()
                await conn.confirm()  # a no-op over TCP
                job = await conn.receive()
                seen["job"] = job
                await conn.send(setup_ack(job))
                # snap7's disconnect() sends a DR (reason 0), then closes.
                try:
                    extra = await conn.receive()
                    seen["after"] = extra
                except trio.EndOfChannel:
                    seen["after"] = "eof"
                except ConnectionAbortedError as exc:
                    seen["after"] = exc
                await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)

                def use_client() -> tuple[bool, int]:
                    client.connect(HOST, 0, 1, tcp_port=port)
                    try:
                        return client.get_connected(), client.get_pdu_length()
                    finally:
                        client.disconnect()

                connected, pdu_length = await trio.to_thread.run_sync(use_client)
    assert connected is True
    assert pdu_length == OUR_PDU_LENGTH
    assert seen["state"] is State.OPEN
    assert seen["calling"] == b"\x01\x00"
    assert seen["called"] == b"\x01\x01"  # connection type 1 (PG), rack 0, slot 1
    # snap7's client asks for 1024; our server grants it (≤ 2048).
    assert seen["tpdu_size"] == 1024
    assert seen["peer"][0] == HOST  # type: ignore[index]
    job = seen["job"]
    assert isinstance(job, bytes)
    assert job[:2] == b"\x32\x01" and job[10] == 0xF0
    assert struct.unpack(">H", job[16:18])[0] == 480  # what snap7 asks for
    after = seen["after"]
    assert after == "eof" or getattr(after, "reason", None) == 0, after


async def test_snap7_client_per_rack_slot_tsap() -> None:
    """A listener for the called TSAP of rack 0 slot 2 gets it; others are refused."""
    with trio.fail_after(20):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            port = ep.getsockname()[1]
            listener = ep.listen(b"\x01\x02")
            client = Client()

            async def serve() -> None:
                conn = await listener.accept()
                assert conn.called_tsap == b"\x01\x02"
                job = await conn.receive()
                await conn.send(setup_ack(job, 480))
                with pytest.raises((trio.EndOfChannel, ConnectionAbortedError)):
                    await conn.receive()
                await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve)

                def use_client() -> int:
                    client.connect(HOST, 0, 2, tcp_port=port)
                    try:
                        assert client.get_connected()
                        return int(client.get_pdu_length())
                    finally:
                        client.disconnect()

                assert await trio.to_thread.run_sync(use_client) == 480

            # Slot 3 has no listener: the CR gets a DR, snap7's connect fails.
            def refused() -> bool:
                other = Client()
                try:
                    other.connect(HOST, 0, 3, tcp_port=port)
                except Exception:
                    return other.get_connected()
                other.disconnect()
                return True

            assert await trio.to_thread.run_sync(refused) is False
            assert ep.statistics().connections_refused == 1
