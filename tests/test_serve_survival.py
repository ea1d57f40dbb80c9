"""``tp4emu.serve`` and the CLI echo server survive any one connection's failure.

As with :func:`trio.serve_listeners`, an exception of one connection (from the
handler, from ``auto_confirm``'s ``confirm()``, from ``getpeername()``,
``reject()`` or ``aclose()`` on a connection the peer already tore down) is
logged on the ``"tp4emu.serve"`` logger, the connection is closed, and
accepting goes on; BaseExceptions (``trio.Cancelled``, ``KeyboardInterrupt``)
still propagate.

``serve`` is tested over both transports: "tp4" on the in-memory network
(tests/netsim.MemoryNetwork) under ``MockClock(autojump_threshold=0)``, "tcp"
on 127.0.0.1 in real time. ``run_server`` opens its own sockets: it runs on
real loopback for both. Every test is bounded by ``trio.fail_after``; the only
sleeps are the polling steps of :func:`wait_until`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing
from netsim import MemoryNetwork
from scripted import PEER_REF, peer_cr

from tp4emu import ConnectionRejected, Disconnected, DRReason, State, Transport
from tp4emu.api import open_endpoint, serve
from tp4emu.cli.apps import AccessList, run_server
from tp4emu.transport.tcp import TCPConnection, TCPListener
from tp4emu.transport.udp import TP4Connection, TP4Listener
from tp4emu.wire import DR, encode_one

HOST = "127.0.0.1"
DENIED = "127.0.0.2"
MEM_SERVER = ("10.0.0.2", 102)
LIMIT = 20.0
"""Seconds (virtual for tp4 on the memory network, real otherwise) any test may take."""
LOGGER = "tp4emu.serve"

# ------------------------------------------------------------------ fixtures


@pytest.fixture(params=["tp4", "tcp"])
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def clock(transport: Transport) -> trio.testing.MockClock | None:
    """Virtual time for tp4 on the memory network; tcp needs the real clock."""
    return trio.testing.MockClock(autojump_threshold=0) if transport == "tp4" else None


@dataclass
class Env:
    """A server endpoint, a nursery for ``serve`` and a factory of client endpoints.

    Everything lives on one exit stack, in the order it was opened, so that
    client endpoints opened by the test close before the nursery (and serve).
    """

    transport: Transport
    server: Any
    addr: tuple[str, int]
    nursery: trio.Nursery
    stack: AsyncExitStack
    net: MemoryNetwork | None
    clients: int = field(default=0)

    async def client(self) -> Any:
        self.clients += 1
        if self.net is not None:
            local = (f"10.0.1.{self.clients}", 40000)
            cm = open_endpoint(local, socket=self.net.socket(local))
        else:
            cm = open_endpoint((HOST, 0), transport="tcp")
        return await self.stack.enter_async_context(cm)


@asynccontextmanager
async def environment(transport: Transport) -> AsyncIterator[Env]:
    """The server side for *transport*; ``env.nursery`` is cancelled when the block ends."""
    with trio.fail_after(LIMIT):
        async with AsyncExitStack() as stack:
            net: MemoryNetwork | None = None
            if transport == "tp4":
                net = await stack.enter_async_context(MemoryNetwork.open())
                server = await stack.enter_async_context(
                    open_endpoint(MEM_SERVER, socket=net.socket(MEM_SERVER))
                )
            else:
                server = await stack.enter_async_context(open_endpoint((HOST, 0), transport="tcp"))
            nursery = await stack.enter_async_context(trio.open_nursery())
            yield Env(transport, server, server.getsockname(), nursery, stack, net)
            nursery.cancel_scope.cancel()


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll *predicate* (the callers' fail_after bounds the wait)."""
    while not predicate():
        await trio.sleep(0.001)


async def echo_once(conn: Any, msg: bytes) -> bytes:
    await conn.send(msg)
    return bytes(await conn.receive())


async def expect_closed_by_server(conn: Any) -> None:
    """The server closed its side: EndOfChannel (release, TCP close) or Disconnected."""
    with pytest.raises((trio.EndOfChannel, Disconnected)):
        await conn.receive()


async def connect_to_failing_handler(ep: Any, addr: tuple[str, int], tsap: bytes) -> None:
    """Connect to a handler that fails at once; the server closes the connection.

    Over TP4 the CC and the DR may arrive together, so ``connect()`` itself
    may already report the release.
    """
    try:
        conn = await ep.connect(addr, called_tsap=tsap)
    except Disconnected:
        return
    await expect_closed_by_server(conn)


class GatedListener:
    """A listener whose ``accept()`` hands a connection over only after ``gate(conn)``."""

    def __init__(self, listener: Any, gate: Callable[[Any], Awaitable[None]]) -> None:
        self._listener = listener
        self._gate = gate

    async def accept(self) -> Any:
        conn = await self._listener.accept()
        await self._gate(conn)
        return conn

    async def aclose(self) -> None:
        await self._listener.aclose()


class GatedEndpoint:
    """An endpoint for ``serve`` whose listener is a :class:`GatedListener`."""

    def __init__(self, endpoint: Any, gate: Callable[[Any], Awaitable[None]]) -> None:
        self._endpoint = endpoint
        self._gate = gate
        self.config = endpoint.config

    def listen(self, tsap: bytes | None = None, backlog: int | None = None) -> GatedListener:
        return GatedListener(self._endpoint.listen(tsap, backlog), self._gate)


# --------------------------------------------------------------------- serve


async def echo_upper(conn: Any) -> None:
    async for msg in conn:
        await conn.send(msg.upper())


@pytest.mark.parametrize("own_nursery", [False, True], ids=["serve-nursery", "handler-nursery"])
async def test_failing_handlers_do_not_stop_serve(
    transport: Transport,
    clock: trio.testing.MockClock | None,
    caplog: pytest.LogCaptureFixture,
    own_nursery: bool,
) -> None:
    """The first connection's handler raises while the second is being served."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    fail_now = trio.Event()

    async def handler(conn: Any) -> None:
        if conn.called_tsap == b"doomed":
            await fail_now.wait()
            raise ValueError("handler bug")
        if conn.called_tsap == b"group":
            raise ExceptionGroup("two bugs", [KeyError("k"), RuntimeError("r")])
        await echo_upper(conn)

    async with environment(transport) as env:
        start = partial(serve, handler, env.server, auto_confirm=True)
        if own_nursery:  # the handlers run in the caller's nursery
            start = partial(start, handler_nursery=env.nursery)
        await env.nursery.start(start)
        ca, cb = await env.client(), await env.client()
        doomed = await ca.connect(env.addr, called_tsap=b"doomed")
        served = await cb.connect(env.addr, called_tsap=b"echo")
        assert await echo_once(served, b"one") == b"ONE"

        fail_now.set()
        await expect_closed_by_server(doomed)
        assert await echo_once(served, b"two") == b"TWO"  # still served, same connection

        await connect_to_failing_handler(ca, env.addr, b"group")
        late = await ca.connect(env.addr, called_tsap=b"echo")
        assert await echo_once(late, b"three") == b"THREE"
        assert await echo_once(served, b"four") == b"FOUR"

    logged = failures(caplog)
    assert len(logged) == 2, logged
    assert "ValueError: handler bug" in logged[0]
    assert "KeyError: 'k'" in logged[1] and "RuntimeError: r" in logged[1]
    records = [r for r in caplog.records if r.name == LOGGER]
    assert all(r.exc_info is not None for r in records)  # with the traceback


@pytest.mark.parametrize("auto_confirm", [True, False], ids=["auto-confirm", "handler-decides"])
async def test_peer_gone_between_accept_and_decision(
    transport: Transport,
    clock: trio.testing.MockClock | None,
    caplog: pytest.LogCaptureFixture,
    auto_confirm: bool,
) -> None:
    """The peer tears the connection down after accept(), before confirm()/getpeername().

    TP4: a raw peer sends a CR, then (once the connection is accepted) a DR:
    the CONFIRMING connection ends (REFWAIT); ``confirm()`` raises the
    Disconnected, ``getpeername()`` ENOTCONN. TCP: the client closes; nothing
    may fail there until the handler reads. Either way the server goes on.
    A Disconnected is what the network did: logged at INFO, without traceback.
    """
    caplog.set_level(logging.INFO, logger=LOGGER)
    handled: list[str] = []

    async def handler(conn: Any) -> None:
        host, port = conn.getpeername()
        handled.append(f"{host}:{port}")
        await echo_upper(conn)

    async with environment(transport) as env:
        first = True
        gone_peer = ""
        tcp_closed = trio.Event()

        if env.net is not None:
            raw_addr = ("10.0.9.9", 7000)
            gone_peer = "10.0.9.9:7000"
            raw = env.net.socket(raw_addr)

            async def gate(conn: Any) -> None:
                nonlocal first
                if first:
                    first = False
                    assert conn.state is State.CONFIRMING
                    dr = DR(conn.core.local_ref, PEER_REF, DRReason.NOT_SPECIFIED)
                    raw.send_nowait(encode_one(dr, checksum=True), MEM_SERVER)
                    await wait_until(lambda: conn.state is State.REFWAIT)
        else:

            async def gate(conn: Any) -> None:
                nonlocal first
                if first:
                    first = False
                    await tcp_closed.wait()

        gated = GatedEndpoint(env.server, gate)
        await env.nursery.start(partial(serve, handler, gated, auto_confirm=auto_confirm))
        if env.net is not None:
            raw.send_nowait(encode_one(peer_cr(), checksum=True), MEM_SERVER)
        else:
            ep = await env.client()
            gone = await ep.connect(env.addr)
            gone_peer = "{}:{}".format(*gone.getsockname())
            await gone.aclose()
            tcp_closed.set()
        ok = await (await env.client()).connect(env.addr)
        assert await echo_once(ok, b"still here") == b"STILL HERE"

    logged = failures(caplog)
    if transport == "tp4":
        assert len(logged) == 1, logged
        assert gone_peer in logged[0]
        (record,) = [r for r in caplog.records if r.name == LOGGER]
        if auto_confirm:
            assert "Disconnected" in logged[0]
            assert record.levelno == logging.INFO and record.exc_info is None
        else:
            assert "OSError" in logged[0] and "not connected" in logged[0]
        assert gone_peer not in handled
    else:
        assert logged == []  # getpeername() is cached, EOF ends the handler's loop
        assert gone_peer in handled


async def test_failing_aclose_is_logged_and_serve_goes_on(
    transport: Transport,
    clock: trio.testing.MockClock | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)

    async def handler(conn: Any) -> None:
        real_aclose = conn.aclose

        async def broken_aclose() -> None:
            await real_aclose()
            raise OSError("close failed")

        if conn.called_tsap == b"bad-close":
            conn.aclose = broken_aclose
        await echo_upper(conn)

    async with environment(transport) as env:
        await env.nursery.start(partial(serve, handler, env.server, auto_confirm=True))
        ep = await env.client()
        for tsap in (b"bad-close", b"fine"):
            conn = await ep.connect(env.addr, called_tsap=tsap)
            assert await echo_once(conn, tsap) == tsap.upper()
            await conn.aclose()
        # both handlers ended: the second closing is the sync point for the first
        await wait_until(lambda: len(failures(caplog)) == 1)
        conn = await ep.connect(env.addr)
        assert await echo_once(conn, b"again") == b"AGAIN"
    logged = failures(caplog)
    assert len(logged) == 1 and "closing connection" in logged[0]
    assert "OSError: close failed" in logged[0]


@pytest.mark.parametrize("how", ["plain", "mixed-group"])
async def test_base_exceptions_still_propagate(
    transport: Transport,
    clock: trio.testing.MockClock | None,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    """KeyboardInterrupt ends serve(); from a mixed group only the Exceptions are logged."""
    caplog.set_level(logging.ERROR, logger=LOGGER)

    async def handler(conn: Any) -> None:
        if how == "plain":
            raise KeyboardInterrupt
        raise BaseExceptionGroup("mixed", [ValueError("logged"), KeyboardInterrupt()])

    with pytest.raises(BaseException) as info:  # the leaves are checked below
        async with environment(transport) as env:
            await env.nursery.start(partial(serve, handler, env.server))
            ep = await env.client()
            await ep.connect(env.addr)  # TP4: waits for a confirm that never comes
            await trio.sleep_forever()  # TCP: connected; serve() must end this
    kinds = [type(e) for e in leaves(info.value)]
    assert KeyboardInterrupt in kinds, info.value
    assert ValueError not in kinds and trio.TooSlowError not in kinds, info.value
    logged = failures(caplog)
    if how == "plain":
        assert logged == []
    else:
        assert len(logged) == 1 and "ValueError: logged" in logged[0]


async def test_cancellation_is_not_a_failure(
    transport: Transport,
    clock: trio.testing.MockClock | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    cancelled: list[bool] = []
    running = trio.Event()

    async def handler(conn: Any) -> None:
        try:
            running.set()
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise

    async with environment(transport) as env:
        await env.nursery.start(partial(serve, handler, env.server, auto_confirm=True))
        await (await env.client()).connect(env.addr)
        await running.wait()
    assert cancelled == [True]  # the end of the block cancelled serve and its handler
    assert failures(caplog) == []


# ---------------------------------------------------------------- run_server


@asynccontextmanager
async def echo_server(
    transport: Transport, exit_after: int, out: io.StringIO
) -> AsyncIterator[tuple[tuple[str, int], list[int]]]:
    """run_server on 127.0.0.1 (denying 127.0.0.2); yields its address and [exit status]."""
    status: list[int] = []
    access = AccessList.parse(["127.0.0.0/8"], [f"{DENIED}/32"])

    async def run(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
        status.append(
            await run_server(
                (HOST, 0),
                access=access,
                exit_after=exit_after,
                transport=transport,
                out=out,
                task_status=task_status,
            )
        )

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            addr = await nursery.start(run)
            yield addr, status


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


async def test_run_server_keeps_running_after_a_failing_echo(
    transport: Transport, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One echo fails (its send raises) while another connection stays served;
    the access list still rejects, and the server ends normally after exit_after."""
    caplog.set_level(logging.ERROR, logger=LOGGER)
    conn_cls: Any = TP4Connection if transport == "tp4" else TCPConnection
    real_send = conn_cls.send
    server_port: list[int] = []

    async def send(self: Any, value: Any) -> None:
        if bytes(value) == b"boom" and self.getsockname()[1] in server_port:
            raise RuntimeError("echo exploded")
        await real_send(self, value)

    monkeypatch.setattr(conn_cls, "send", send)
    out = io.StringIO()
    async with (
        echo_server(transport, exit_after=3, out=out) as (addr, status),
        open_endpoint((HOST, 0), transport=transport) as ep,
        open_endpoint((DENIED, 0), transport=transport) as denied_ep,
    ):
        server_port.append(addr[1])
        a = await ep.connect(addr)
        assert await echo_once(a, b"one") == b"one"
        b = await ep.connect(addr)
        b_peer = "{}:{}".format(*b.getsockname())
        await b.send(b"boom")
        await expect_closed_by_server(b)
        assert await echo_once(a, b"two") == b"two"  # the other connection is still served

        if transport == "tp4":
            with pytest.raises(ConnectionRejected) as rejected:
                await denied_ep.connect(addr)
            assert rejected.value.reason == DRReason.NORMAL
        else:  # over TCP the connection is up before the server decides: DR after
            c = await denied_ep.connect(addr)
            with pytest.raises(Disconnected) as info:
                await c.receive()
            assert info.value.reason == DRReason.NORMAL
        assert await echo_once(a, b"three") == b"three"
        await a.aclose()
    assert status == [0]
    out_lines = lines(out)
    assert f"error {b_peer} RuntimeError: echo exploded" in out_lines, out_lines
    assert any(line.startswith(f"reject {DENIED}:") for line in out_lines), out_lines
    assert sum(line.startswith("recv ") for line in out_lines) == 4  # one two boom three
    logged = failures(caplog)
    assert len(logged) == 1 and b_peer in logged[0] and "echo exploded" in logged[0]


@pytest.mark.parametrize("denied", [False, True], ids=["allowed-peer", "denied-peer"])
async def test_run_server_peer_gone_before_the_decision(
    transport: Transport,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    denied: bool,
) -> None:
    """accept() returns, then the peer is gone before getpeername()/reject().

    TP4: a raw UDP peer sends a CR, then (once accepted) a DR, so getpeername()
    raises ENOTCONN: one ``error`` line, and the server goes on. TCP: the
    client closes; the decision still works on the cached peer name.
    """
    caplog.set_level(logging.ERROR, logger=LOGGER)
    host = DENIED if denied else HOST
    listener_cls: Any = TP4Listener if transport == "tp4" else TCPListener
    real_accept = listener_cls.accept
    gates: list[Callable[[Any], Awaitable[None]]] = []

    async def accept(self: Any) -> Any:
        conn = await real_accept(self)
        if gates:
            await gates.pop(0)(conn)
        return conn

    monkeypatch.setattr(listener_cls, "accept", accept)
    out = io.StringIO()
    async with echo_server(transport, exit_after=2, out=out) as (addr, status):
        if transport == "tp4":
            raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with raw:
                await raw.bind((host, 0))
                gone_peer = "{}:{}".format(*raw.getsockname())

                async def tp4_gate(conn: Any) -> None:
                    dr = DR(conn.core.local_ref, PEER_REF, DRReason.NOT_SPECIFIED)
                    await raw.sendto(encode_one(dr, checksum=True), addr)
                    await wait_until(lambda: conn.state is State.REFWAIT)

                gates.append(tp4_gate)
                await raw.sendto(encode_one(peer_cr(), checksum=True), addr)
                await wait_until(lambda: not gates)  # accepted, gate running
        else:
            closed = trio.Event()

            async def tcp_gate(conn: Any) -> None:
                await closed.wait()

            gates.append(tcp_gate)
            async with open_endpoint((host, 0), transport="tcp") as gone_ep:
                gone = await gone_ep.connect(addr)
                gone_peer = "{}:{}".format(*gone.getsockname())
                await gone.aclose()
            closed.set()
        async with open_endpoint((HOST, 0), transport=transport) as ep:
            ok = await ep.connect(addr)
            assert await echo_once(ok, b"next") == b"next"
            await ok.aclose()
    assert status == [0]
    out_lines = lines(out)
    errors = [line for line in out_lines if line.startswith("error ")]
    if transport == "tp4":
        assert len(errors) == 1, out_lines
        assert errors[0].startswith(f"error {gone_peer} OSError:"), errors
        assert "not connected" in errors[0]
        assert len(failures(caplog)) == 1
    else:
        assert errors == [], out_lines
        decision = "reject" if denied else "allow"
        assert any(line.startswith(f"{decision} {gone_peer}") for line in out_lines), out_lines
