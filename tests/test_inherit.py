"""tp4emu.inherit in one process: the control protocol, and an InheritedConnection
talking to the super-server's relay (``serve --exec --framing message``) over a
socket pair, the TP4 connection on the in-memory network in virtual time.

tests/test_inetd.py runs the same with real processes; here the corners a
subprocess cannot reach in a bounded way: a receive cancelled and taken up
again, two receives at once, the peer's abort, a super-server that goes away,
a request the relay does not know.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from netsim import MemoryNetwork

import tp4emu
from tp4emu.cli.inetd import ExecOptions, _Child
from tp4emu.core import ConnectionTimedOut, Disconnected, LocalProtocolError, State, TP4Error
from tp4emu.inherit import (
    MAX_PAYLOAD,
    ControlProtocolError,
    Frame,
    FrameBuffer,
    InheritedConnection,
    connection_environment,
    decode_error,
    encode_error,
    encode_frame,
)

SERVER = ("10.0.0.2", 102)
CLIENT = ("10.0.1.1", 40000)


# ------------------------------------------------------------------ codec


def test_frames_reassemble_from_any_pieces() -> None:
    raw = encode_frame(b"S", 7, b"hello") + encode_frame(b"R", 8) + encode_frame(b"K", 7, b"\x04")
    assert raw[:9] == b"S\x00\x00\x00\x07\x00\x00\x00\x05"
    frames = FrameBuffer()
    got: list[Frame] = []
    for octet in raw:  # one octet at a time
        frames.feed(bytes([octet]))
        while (frame := frames.next()) is not None:
            got.append(frame)
    assert got == [Frame(b"S", 7, b"hello"), Frame(b"R", 8, b""), Frame(b"K", 7, b"\x04")]


def test_a_frame_beyond_the_limit_is_refused() -> None:
    frames = FrameBuffer(limit=4)
    frames.feed(encode_frame(b"S", 1, b"12345"))
    with pytest.raises(ControlProtocolError, match="a frame of 5 octets"):
        frames.next()
    with pytest.raises(ValueError):
        encode_frame(b"S", 1, bytes(MAX_PAYLOAD + 1))


@pytest.mark.parametrize(
    "exc",
    [
        Disconnected(129, b"bye", by_peer=True),
        Disconnected(133, by_peer=False, message="protocol error"),
        ConnectionTimedOut(message="peer silent"),
        trio.ClosedResourceError("connection was closed"),
        trio.BusyResourceError("another task is receiving"),
        trio.BrokenResourceError("gone"),
        LocalProtocolError("expedited data does not exist in class 0 (RFC 1006)"),
        ValueError("expedited data must be 1..16 octets"),
        OSError(errno.ENOTCONN, "not connected"),
        TP4Error("something else"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_cross_the_socket_pair(exc: BaseException) -> None:
    state, back = decode_error(encode_error(exc, State.OPEN))
    assert state is State.OPEN
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    if isinstance(exc, Disconnected):
        assert isinstance(back, Disconnected)
        assert (back.reason, back.data, back.by_peer) == (exc.reason, exc.data, exc.by_peer)
    if isinstance(exc, OSError):
        assert isinstance(back, OSError) and back.errno == exc.errno


def test_an_unknown_exception_comes_back_as_tp4error() -> None:
    _, back = decode_error(encode_error(KeyError("x"), State.CLOSED))
    assert type(back) is TP4Error


async def test_the_environment_replaces_stale_variables() -> None:
    base = {"PATH": "/bin", "TCPREMOTEIP": "192.0.2.1", "TP4CALLEDTSAP": "ff", "PROTO": "TCP"}
    env = connection_environment(
        base,
        transport="tp4",
        peer=("127.0.0.1", 4000),
        local=("127.0.0.1", 102),
        called_tsap=None,
        calling_tsap=b"\x01\x02",
        connect_data=b"",
        state=State.CONFIRMING,
        framing="message",
        fd=5,
    )
    assert env == {
        "PATH": "/bin",
        "PROTO": "TP4",
        "TP4REMOTEIP": "127.0.0.1",
        "TP4REMOTEPORT": "4000",
        "TP4LOCALIP": "127.0.0.1",
        "TP4LOCALPORT": "102",
        "TP4CALLINGTSAP": "0102",
        "TP4CONNECTDATA": "",
        "TP4EMU_FRAMING": "message",
        "TP4EMU_STATE": "CONFIRMING",
        "TP4EMU_CONNECTION_FD": "5",
    }
    ours, theirs = socket.socketpair()
    env["TP4EMU_CONNECTION_FD"] = str(theirs.detach())
    conn = InheritedConnection.from_environment(env)
    try:
        assert "TP4EMU_CONNECTION_FD" not in env  # taken: the child's children do not get it
        assert (conn.getpeername(), conn.getsockname()) == (("127.0.0.1", 4000), ("127.0.0.1", 102))
        assert (conn.calling_tsap, conn.called_tsap, conn.connect_data) == (b"\x01\x02", None, b"")
        assert (conn.transport, conn.state) == ("tp4", State.CONFIRMING)
        with pytest.raises(RuntimeError, match="TP4EMU_CONNECTION_FD is not set"):
            InheritedConnection.from_environment(env)
    finally:
        ours.close()
        await conn.aclose()  # the super-server is gone: quietly


# ----------------------------------------------------- against the relay


@dataclass
class Handed:
    """The child's InheritedConnection, the client's side, the relay's lines."""

    child: InheritedConnection
    lines: list[str]
    client: tp4emu.TP4Connection | None = None
    connected: trio.Event | None = None
    failure: BaseException | None = None


@asynccontextmanager
async def handed_down() -> AsyncIterator[Handed]:
    """A TP4 connection accepted (CONFIRMING) and handed to an InheritedConnection."""
    with trio.fail_after(60):
        async with (
            MemoryNetwork.open() as net,
            tp4emu.open_endpoint(SERVER, socket=net.socket(SERVER)) as server_ep,
            tp4emu.open_endpoint(CLIENT, socket=net.socket(CLIENT)) as client_ep,
            trio.open_nursery() as nursery,
        ):
            listener = server_ep.listen(None)
            relay_end, child_end = socket.socketpair()
            lines: list[str] = []
            handed = Handed(
                InheritedConnection(
                    child_end, transport="tp4", peer=CLIENT, local=SERVER, state=State.CONFIRMING
                ),
                lines,
                connected=trio.Event(),
            )

            async def connect() -> None:
                assert handed.connected is not None
                try:
                    handed.client = await client_ep.connect(SERVER)
                except Exception as exc:
                    handed.failure = exc
                handed.connected.set()

            nursery.start_soon(connect)
            conn = await listener.accept()
            opts = ExecOptions(("child",), framing="message")
            relay = _Child(conn, opts, "tp4", lines.append, lambda: None, 1.0)
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(relay_end))
            nursery.start_soon(relay._relay_control, stream)
            yield handed
            nursery.cancel_scope.cancel()


async def test_a_cancelled_receive_loses_no_tsdu(autojump_clock: trio.testing.MockClock) -> None:
    async with handed_down() as h:
        with trio.move_on_after(1.0) as scope:
            await h.child.receive()  # confirms: the CC goes out, nothing comes
        assert scope.cancelled_caught
        assert h.connected is not None
        await h.connected.wait()
        assert h.client is not None and h.lines[0] == "confirm 10.0.1.1:40000 (its first receive)"
        await h.client.send(b"first")
        await h.client.send(b"second")
        # The next receive takes the answer the cancelled one asked for.
        assert await h.child.receive() == b"first"
        assert await h.child.receive() == b"second"
        assert h.child.state is State.OPEN


async def test_two_receives_at_once_and_expedited_beside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with handed_down() as h:
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def receive(what: str) -> None:
                if what == "normal":
                    got.append(await h.child.receive())
                else:
                    got.append(await h.child.receive_expedited())

            nursery.start_soon(receive, "normal")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await h.child.receive()
            nursery.start_soon(receive, "expedited")
            assert h.connected is not None
            await h.connected.wait()
            assert h.client is not None
            await h.client.send_expedited(b"urgent")
            await h.client.send(b"normal")
        assert sorted(got) == [b"normal", b"urgent"]


async def test_the_peers_abort_reaches_the_child(autojump_clock: trio.testing.MockClock) -> None:
    async with handed_down() as h:
        await h.child.confirm(b"hello")
        assert h.connected is not None
        await h.connected.wait()
        assert h.client is not None and h.client.confirm_data == b"hello"
        await h.client.reject(129, b"bye")  # an abortive release
        with pytest.raises(Disconnected) as info:
            await h.child.receive()
        assert (info.value.reason, info.value.data, info.value.by_peer) == (129, b"bye", True)
        with pytest.raises(Disconnected):
            await h.child.send(b"too late")
        with pytest.raises(OSError) as not_connected:
            h.child.getpeername()
        assert not_connected.value.errno == errno.ENOTCONN
        await h.child.aclose()  # quietly
        await h.child.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await h.child.send(b"x")
        assert "close 10.0.1.1:40000 (DR reason 129, by the peer)" in h.lines


async def test_a_request_the_relay_does_not_know_rejects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with handed_down() as h:
        await h.child._stream.send_all(encode_frame(b"?", 1))
        assert h.connected is not None
        await h.connected.wait()
        assert isinstance(h.failure, tp4emu.ConnectionRejected)
        assert h.failure.reason == 128
        assert h.lines == [
            "error 10.0.1.1:40000 control socket: unknown request b'?'",
            "reject 10.0.1.1:40000 reason=128 (its control socket closed undecided, still running)",
        ]
        with pytest.raises(trio.BrokenResourceError, match="the super-server went away"):
            await h.child.send(b"x")


async def test_a_super_server_gone_is_a_broken_resource() -> None:
    ours, theirs = socket.socketpair()
    child = InheritedConnection(theirs, transport="tcp", peer=CLIENT, local=SERVER)
    ours.close()
    with pytest.raises(trio.BrokenResourceError, match="the super-server went away"):
        await child.confirm()
    with pytest.raises(trio.BrokenResourceError):
        await child.receive()
    await child.aclose()  # never raises
    assert child.closed
