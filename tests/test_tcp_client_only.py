"""A client-only TCP endpoint (``listen=False``) and TCP-level connect failures.

``open_endpoint(..., transport="tcp", listen=False)`` opens no TCP listening
socket: its connections bind to the host of *local*, ``listen()`` raises.
A TCP connect that fails (nothing listens: a RST) raises
:class:`tp4emu.TCPConnectFailed`, a ConnectionRejected that says so, not a
DR that never went on the wire. Real loopback, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import errno
import socket

import pytest
import trio
from procnet import listening_tcp_ports

import tp4emu
from tp4emu import (
    ConnectionRejected,
    DRReason,
    LocalProtocolError,
    TCPConnectFailed,
    Transport,
    open_endpoint,
)

HOST = "127.0.0.1"
LIMIT = 10.0


def closed_tcp_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
    return port


async def test_client_only_tcp_endpoint_opens_no_listener() -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint((HOST, 0), transport="tcp") as server:
            listener = server.listen(b"echo")
            server_port = server.getsockname()[1]
            before = listening_tcp_ports()
            assert server_port in before
            async with open_endpoint((HOST, 0), transport="tcp", listen=False) as client:
                assert listening_tcp_ports() == before  # nothing new listens
                assert client.getsockname() == (HOST, 0)
                with pytest.raises(LocalProtocolError, match="listen=False"):
                    client.listen(b"x")
                conn = await client.connect((HOST, server_port), called_tsap=b"echo")
                accepted = await listener.accept()
                local = conn.getsockname()
                assert local[0] == HOST and local[1] != 0
                assert accepted.getpeername() == local
                await conn.send(b"ping")
                assert await accepted.receive() == b"ping"
                await conn.aclose()
                await accepted.aclose()
                assert listening_tcp_ports() == before


async def test_client_only_tcp_endpoint_binds_to_the_host_of_local() -> None:
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport="tcp") as server,
            open_endpoint(("127.0.0.2", 0), transport="tcp", listen=False) as client,
        ):
            listener = server.listen()
            conn = await client.connect(server.getsockname())
            accepted = await listener.accept()
            assert conn.getsockname()[0] == "127.0.0.2"
            assert accepted.getpeername()[0] == "127.0.0.2"
            await conn.aclose()
            await accepted.aclose()


async def test_listen_false_changes_nothing_over_tp4() -> None:
    """tp4: the one UDP socket serves both directions; listen=False is accepted."""
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0)) as server,
            open_endpoint((HOST, 0), listen=False) as client,
        ):
            listener = server.listen()
            connected: list[tp4emu.TP4Connection] = []

            async def connect() -> None:
                connected.append(await client.connect(server.getsockname()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(connect)
                accepted = await listener.accept()
                await accepted.confirm()
            assert connected[0].state is tp4emu.State.OPEN
            await connected[0].aclose()


@pytest.mark.parametrize("listen", [True, False])
async def test_tcp_refusal_is_a_tcp_connect_failed(listen: bool) -> None:
    port = closed_tcp_port()
    with trio.fail_after(LIMIT):
        async with open_endpoint((HOST, 0), transport="tcp", listen=listen) as ep:
            with pytest.raises(TCPConnectFailed) as info:
                await ep.connect((HOST, port))
    exc = info.value
    assert isinstance(exc, ConnectionRejected) and isinstance(exc, ConnectionRefusedError)
    assert exc.errno == errno.ECONNREFUSED
    text = f"connection refused (TCP): nothing listens on 127.0.0.1:{port}"
    assert str(exc) == f"[Errno {errno.ECONNREFUSED}] {text}"
    assert exc.strerror == text
    assert exc.reason == DRReason.ADDRESS_UNKNOWN  # what ConnectionRejected handlers see
    assert exc.by_peer is False  # no DR came
    assert isinstance(exc.os_error, OSError) and exc.__cause__ is exc.os_error
    assert exc.peer == (HOST, port)
    assert tp4emu.TCPConnectFailed is TCPConnectFailed


async def test_a_dr_is_still_a_plain_connection_rejected() -> None:
    """A refusal by the peer (a DR on the wire) is not a TCPConnectFailed."""
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport="tcp") as server,
            open_endpoint((HOST, 0), transport="tcp", listen=False) as client,
        ):
            server.listen(b"someone")
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(server.getsockname(), called_tsap=b"nobody")
    assert type(info.value) is ConnectionRejected
    assert info.value.by_peer is True
    assert info.value.reason == DRReason.SESSION_NOT_ATTACHED


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
async def test_listen_is_keyword_of_open_endpoint(transport: Transport) -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint((HOST, 0), transport=transport, listen=True) as ep:
            ep.listen(b"x")
