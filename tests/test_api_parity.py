"""One application, two transports: ``open_endpoint(transport="tp4" | "tcp")``.

The same server and client functions run over TP4 (class 4 over UDP) and
RFC 1006 (class 0 over TCP) and must see the same results. What differs is
*when* the client's ``connect()`` returns: over TP4 only once the server
confirms the connection it accepted (CONFIRMING until then), over TCP before
the server has even looked at it. Real sockets on 127.0.0.1, real time,
every test bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import errno
from functools import partial
from typing import Any

import pytest
import trio

import tp4emu
from tp4emu import ConnectionRejected, Disconnected, DRReason, State, Transport, open_endpoint

HOST = "127.0.0.1"
LIMIT = 10.0
TRANSPORTS: list[Transport] = ["tp4", "tcp"]


async def server_app(listener: Any) -> dict[str, Any]:
    """Accept one connection, inspect, confirm, echo one message upper-cased, wait for release."""
    conn = await listener.accept()
    seen: dict[str, Any] = {
        "peer": conn.getpeername(),
        "calling": conn.calling_tsap,
        "called": conn.called_tsap,
    }
    await conn.confirm()  # TP4: the CC goes out (then AKWAIT); TCP: a no-op
    msg = await conn.receive()
    seen["message"] = msg
    seen["state"] = conn.state
    await conn.send(msg.upper())
    big = await conn.receive()
    seen["big"] = len(big)
    await conn.send(big[::-1])
    try:
        await conn.receive()
        seen["end"] = "more data"
    except trio.EndOfChannel:
        seen["end"] = "EndOfChannel"
    await conn.aclose()
    with pytest.raises(OSError) as info:
        conn.getpeername()
    seen["getpeername after close"] = info.value.errno
    return seen


async def client_app(ep: Any, server: tuple[str, int]) -> dict[str, Any]:
    """Connect, send, receive the echo, send a large TSDU, release."""
    conn = await ep.connect(server, called_tsap=b"parity", calling_tsap=b"client")
    seen: dict[str, Any] = {"state": conn.state, "local": conn.getsockname()}
    await conn.send(b"hello")
    seen["reply"] = await conn.receive()
    big = bytes(i % 251 for i in range(100_000))
    await conn.send(big)
    seen["big echoed"] = await conn.receive() == big[::-1]
    await conn.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await conn.send(b"after close")
    return seen


async def run_pair(transport: Transport) -> tuple[dict[str, Any], dict[str, Any]]:
    server_seen: dict[str, Any] = {}
    client_seen: dict[str, Any] = {}
    async with (
        open_endpoint((HOST, 0), transport=transport) as server,
        open_endpoint((HOST, 0), transport=transport) as client,
    ):
        listener = server.listen(b"parity")

        async def run_server() -> None:
            server_seen.update(await server_app(listener))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server)
            client_seen.update(await client_app(client, server.getsockname()))
        await listener.aclose()
    return server_seen, client_seen


async def test_same_application_same_results() -> None:
    results = {}
    with trio.fail_after(LIMIT):
        for transport in TRANSPORTS:
            results[transport] = await run_pair(transport)
    for transport, (server_seen, client_seen) in results.items():
        # The server's view of the peer is the client connection's local address.
        assert server_seen.pop("peer") == client_seen.pop("local"), transport
    assert results["tp4"] == results["tcp"]
    server_seen, client_seen = results["tcp"]
    assert server_seen == {
        "calling": b"client",
        "called": b"parity",
        "state": State.OPEN,
        "message": b"hello",
        "big": 100_000,
        "end": "EndOfChannel",
        "getpeername after close": errno.ENOTCONN,
    }
    assert client_seen == {"state": State.OPEN, "reply": b"HELLO", "big echoed": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_same_refusal_when_nobody_listens(transport: Transport) -> None:
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport=transport) as server,
            open_endpoint((HOST, 0), transport=transport) as client,
        ):
            server.listen(b"someone else")
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(server.getsockname(), called_tsap=b"nobody")
            assert info.value.reason == DRReason.SESSION_NOT_ATTACHED
            assert info.value.errno == errno.ECONNREFUSED


def test_the_endpoint_types() -> None:
    """Both endpoints, listeners and connections offer the same public calls."""
    pairs = [
        (tp4emu.TP4Endpoint, tp4emu.TCPEndpoint),
        (tp4emu.TP4Listener, tp4emu.TCPListener),
        (tp4emu.TP4Connection, tp4emu.TCPConnection),
    ]
    names = {
        tp4emu.TP4Endpoint: {"listen", "connect", "getsockname", "statistics"},
        tp4emu.TP4Listener: {"accept", "aclose"},
        tp4emu.TP4Connection: {
            "state",
            "getpeername",
            "getsockname",
            "confirm",
            "reject",
            "send",
            "receive",
            "send_expedited",
            "receive_expedited",
            "aclose",
            "calling_tsap",
            "called_tsap",
            "connect_data",
            "confirm_data",
        },
    }
    for tp4_type, tcp_type in pairs:
        for name in names[tp4_type]:
            assert hasattr(tp4_type, name), (tp4_type, name)
            # TCPConnection sets its TSAP/data attributes per instance.
            if not name.endswith(("_tsap", "_data")):
                assert hasattr(tcp_type, name), (tcp_type, name)


async def test_unknown_transport() -> None:
    with pytest.raises(ValueError):
        async with open_endpoint((HOST, 0), transport="x25"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="tp4 transport only"):
        async with open_endpoint((HOST, 0), transport="tcp", socket=object()):  # type: ignore[arg-type]
            pass


# ----------------------------------------------------------- the contrast


async def decide_late(transport: Transport, delay: float = 0.2) -> tuple[list[str], dict[str, Any]]:
    """The server accepts, holds the connection *delay* s undecided, then confirms.

    Returns the order in which things happened and what each side saw.
    """
    events: list[str] = []
    seen: dict[str, Any] = {}
    async with (
        open_endpoint((HOST, 0), transport=transport) as server,
        open_endpoint((HOST, 0), transport=transport) as client,
    ):
        listener = server.listen(b"late")

        async def run_server() -> None:
            conn = await listener.accept()
            events.append("server: accept() returned")
            seen["state at accept"] = conn.state
            seen["peer"] = conn.getpeername()  # works before the decision, on both
            await trio.sleep(delay)
            events.append("server: decides, confirm()")
            await conn.confirm()
            seen["message"] = await conn.receive()
            await conn.aclose()

        async def run_client() -> None:
            start = trio.current_time()
            conn = await client.connect(server.getsockname(), called_tsap=b"late")
            seen["connect took"] = trio.current_time() - start
            events.append("client: connect() returned")
            await conn.send(b"ping")
            await conn.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_server)
            nursery.start_soon(run_client)
    return events, seen


async def test_contrast_tp4_connect_waits_for_the_decision() -> None:
    with trio.fail_after(LIMIT):
        events, seen = await decide_late("tp4")
    assert events == [
        "server: accept() returned",
        "server: decides, confirm()",
        "client: connect() returned",
    ]
    assert seen["state at accept"] is State.CONFIRMING
    assert seen["connect took"] >= 0.2
    assert seen["message"] == b"ping"


async def test_contrast_tcp_connect_returned_already() -> None:
    with trio.fail_after(LIMIT):
        events, seen = await decide_late("tcp")
    assert events.index("client: connect() returned") < events.index("server: decides, confirm()")
    assert seen["state at accept"] is State.OPEN
    assert seen["connect took"] < 0.2
    assert seen["message"] == b"ping"


@pytest.mark.parametrize(("transport", "pending"), [("tp4", True), ("tcp", False)])
async def test_contrast_connect_while_accepted_but_unconfirmed(
    transport: Transport, pending: bool
) -> None:
    """Nobody confirms: over TP4 connect() is still pending after 0.3 s; over TCP it returned."""
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport=transport) as server,
            open_endpoint((HOST, 0), transport=transport) as client,
        ):
            listener = server.listen(b"hold")
            returned = trio.Event()
            accepted: list[Any] = []

            async def run_client() -> None:
                conn = await client.connect(server.getsockname(), called_tsap=b"hold")
                returned.set()
                await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_client)
                accepted.append(await listener.accept())
                with trio.move_on_after(0.3):
                    await returned.wait()
                assert returned.is_set() is not pending
                await accepted[0].confirm()
                await returned.wait()
            await accepted[0].aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_contrast_reject(transport: Transport) -> None:
    """reject(): TP4's connect() fails; TCP's connect() succeeded, then it is cut off."""
    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport=transport) as server,
            open_endpoint((HOST, 0), transport=transport) as client,
        ):
            listener = server.listen(b"no")
            outcome: dict[str, Any] = {}

            async def run_client() -> None:
                try:
                    conn = await client.connect(server.getsockname(), called_tsap=b"no")
                except ConnectionRejected as exc:
                    outcome["rejected"] = exc.reason
                    return
                outcome["connected"] = True
                try:
                    await conn.receive()
                except Disconnected as exc:
                    outcome["cut off"] = exc.reason
                await conn.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_client)
                conn = await listener.accept()
                await conn.reject(DRReason.NORMAL)
    if transport == "tp4":
        assert outcome == {"rejected": DRReason.NORMAL}
    else:
        assert outcome == {"connected": True, "cut off": DRReason.NORMAL}


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
async def test_serve_runs_one_handler_per_connection(transport: Transport) -> None:
    """tp4emu.serve() works with either endpoint; auto_confirm makes TP4 TCP-like."""
    states: list[State] = []

    async def echo(conn: Any) -> None:
        states.append(conn.state)
        async for msg in conn:
            await conn.send(msg.upper())

    with trio.fail_after(LIMIT):
        async with (
            open_endpoint((HOST, 0), transport=transport) as server,
            open_endpoint((HOST, 0), transport=transport) as client,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(partial(tp4emu.serve, echo, server, auto_confirm=True))
            for word in (b"one", b"two"):
                conn = await client.connect(server.getsockname())
                await conn.send(word)
                assert await conn.receive() == word.upper()
                await conn.aclose()
            nursery.cancel_scope.cancel()
    # auto_confirm: over TP4 the CC went out before the handler ran (AKWAIT or OPEN)
    assert len(states) == 2 and State.CONFIRMING not in states
