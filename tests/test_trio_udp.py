"""The trio driver (:mod:`tp4emu.transport.udp`) over an in-memory network, on a mock clock.

Every test takes pytest-trio's ``autojump_clock`` fixture
(``MockClock(autojump_threshold=0)``): timers of seconds or minutes run in no
real time, and nothing here sleeps for real.
"""

from __future__ import annotations

import errno
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing
from netsim import Faults, MemoryNetwork

from tp4emu.api import serve
from tp4emu.core import (
    Config,
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    State,
)
from tp4emu.transport.udp import TP4Connection, TP4Endpoint, TP4Listener, open_udp_endpoint
from tp4emu.wire import DRReason, decode

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 102)
NOBODY = ("10.0.0.99", 102)


@asynccontextmanager
async def network(
    *,
    seed: int = 0,
    faults: Faults | None = None,
    config: Config | None = None,
    server_config: Config | None = None,
    record: bool = False,
) -> AsyncIterator[tuple[MemoryNetwork, TP4Endpoint, TP4Endpoint]]:
    """A memory network with a client and a server endpoint on it.

    The block fails after 600 s of virtual time: with the autojump clock a test
    that waits forever would otherwise spin through timers forever.
    """
    with trio.fail_after(600):
        async with MemoryNetwork.open(seed=seed, faults=faults, record=record) as net:  # noqa: SIM117
            async with (
                open_udp_endpoint(CLIENT, config=config, socket=net.socket(CLIENT)) as client,
                open_udp_endpoint(
                    SERVER, config=server_config or config, socket=net.socket(SERVER)
                ) as server,
            ):
                yield net, client, server


async def connect_pair(
    client: TP4Endpoint, listener: TP4Listener, **kwargs: object
) -> tuple[TP4Connection, TP4Connection]:
    """Connect and confirm: returns (client side, server side), both usable."""
    box: list[TP4Connection] = []

    async def accept() -> None:
        conn = await listener.accept()
        await conn.confirm()
        box.append(conn)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        conn = await client.connect(SERVER, **kwargs)  # type: ignore[arg-type]
    return conn, box[0]


async def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll *predicate* on the virtual clock (autojump makes the polling free)."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


# ------------------------------------------------------------- bulk data


async def test_one_mebibyte_over_a_lossy_network(autojump_clock: trio.testing.MockClock) -> None:
    faults = Faults(
        loss=0.10, duplicate=0.05, reorder=0.2, reorder_delay=0.01, corrupt=0.02, delay=0.002
    )
    config = Config(max_tpdu_size=1024, preferred_max_tpdu_size=None, receive_window=15)
    data = random.Random(42).randbytes(1 << 20)
    async with network(seed=42, faults=faults, config=config) as (net, client, server):
        listener = server.listen()
        received = bytearray()
        start = trio.current_time()
        finished: list[float] = []

        async def sink() -> None:
            conn = await listener.accept()
            await conn.confirm()
            while True:
                try:
                    received.extend(await conn.receive())
                except trio.EndOfChannel:
                    break
            finished.append(trio.current_time())
            await conn.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sink)
            conn = await client.connect(SERVER)
            view = memoryview(data)
            rng = random.Random(1)
            while view:
                n = rng.randrange(1, 64 * 1024)
                await conn.send(view[:n])
                view = view[n:]
            await conn.aclose()  # waits until everything is acknowledged
        assert bytes(received) == data
        cs, ss = client.statistics(), server.statistics()
        elapsed = finished[0] - start
        print(
            f"\n1 MiB at 10% loss: {elapsed:.3f} s virtual, "
            f"{cs.datagrams_sent} datagrams from the sender, "
            f"{cs.retransmissions} retransmissions ({cs.fast_retransmissions} fast), "
            f"receiver: {ss.bad_checksum} bad checksums, {ss.duplicate_dt} duplicate DTs, "
            f"{ss.out_of_order} out of order; network: {net.counters}"
        )
        assert net.counters.lost > 0 and net.counters.duplicated > 0
        assert net.counters.reordered > 0 and net.counters.corrupted > 0
        assert cs.retransmissions > 0
        assert ss.bad_checksum + cs.bad_checksum > 0
        assert ss.out_of_order > 0 and ss.duplicate_dt > 0


async def test_bidirectional_tsdus_keep_boundaries(autojump_clock: trio.testing.MockClock) -> None:
    faults = Faults(loss=0.05, duplicate=0.05, reorder=0.2, delay=0.001)
    async with network(
        seed=3, faults=faults, config=Config(max_tpdu_size=256, preferred_max_tpdu_size=None)
    ) as (
        _,
        client,
        server,
    ):
        c, s = await connect_pair(client, server.listen())
        rng = random.Random(3)
        up = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(50)]
        down = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(50)]
        got_up: list[bytes] = []
        got_down: list[bytes] = []

        async def pump(conn: TP4Connection, items: list[bytes]) -> None:
            for item in items:
                await conn.send(item)

        async def drain(conn: TP4Connection, sink: list[bytes], n: int) -> None:
            while len(sink) < n:
                sink.append(await conn.receive())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, c, up)
            nursery.start_soon(pump, s, down)
            nursery.start_soon(drain, s, got_up, len(up))
            nursery.start_soon(drain, c, got_down, len(down))
        assert got_up == up and got_down == down


# ------------------------------------------------------- confirm / reject


async def test_explicit_confirm_connect_returns_only_after_confirm(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        listener = server.listen(b"srv")
        order: list[str] = []
        result: list[TP4Connection] = []

        async def connect() -> None:
            conn = await client.connect(
                SERVER, called_tsap=b"srv", calling_tsap=b"cli", data=b"hello"
            )
            order.append("connected")
            result.append(conn)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect)
            conn = await listener.accept()
            order.append("accepted")
            assert conn.state is State.CONFIRMING
            # connect data and TSAPs are readable, and reading them does not confirm
            assert conn.connect_data == b"hello"
            assert conn.called_tsap == b"srv" and conn.calling_tsap == b"cli"
            assert conn.getpeername() == CLIENT
            assert conn.getsockname() == SERVER
            await trio.sleep(5.0)
            assert order == ["accepted"]
            assert conn.state is State.CONFIRMING
            # nothing was sent to the client while confirming; its CRs were retransmitted
            stats = server.statistics()
            assert stats.datagrams_sent == 0
            assert stats.duplicate_cr >= 1
            assert len(server.core.connections) == 1
            order.append("confirm")
            await conn.confirm(b"welcome")
        assert order == ["accepted", "confirm", "connected"]
        c = result[0]
        assert c.state is State.OPEN
        assert c.confirm_data == b"welcome"
        assert c.getpeername() == SERVER
        await c.send(b"ping")
        assert await conn.receive() == b"ping"
        assert conn.state is State.OPEN


async def test_first_send_confirms(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                assert conn.state is State.CONFIRMING
                await conn.send(b"greeting")  # no confirm(): the send confirms
                assert conn.state in (State.AKWAIT, State.OPEN)

            nursery.start_soon(serve_one)
            c = await client.connect(SERVER)
            assert await c.receive() == b"greeting"


async def test_first_receive_confirms(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                got.append(await conn.receive())  # confirms, then waits for data

            nursery.start_soon(serve_one)
            c = await client.connect(SERVER)
            await c.send(b"request")
        assert got == [b"request"]


async def test_first_expedited_send_confirms(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                await conn.send_expedited(b"!")

            nursery.start_soon(serve_one)
            c = await client.connect(SERVER)
            assert await c.receive_expedited() == b"!"


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (DRReason.CONGESTION, errno.ECONNABORTED),
        (DRReason.SESSION_NOT_ATTACHED, errno.ECONNREFUSED),
        (DRReason.NORMAL, errno.ECONNABORTED),
    ],
)
async def test_reject_fails_the_connect(
    autojump_clock: trio.testing.MockClock, reason: DRReason, code: int
) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                await conn.reject(reason, b"go away")
                with pytest.raises(OSError) as info:
                    conn.getpeername()
                assert info.value.errno == errno.ENOTCONN

            nursery.start_soon(serve_one)
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(SERVER)
        assert info.value.reason == reason
        assert info.value.data == b"go away"
        assert info.value.errno == code
        assert isinstance(info.value, ConnectionRefusedError)


async def test_aclose_while_confirming_rejects_with_reason_128(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                assert conn.getpeername() == CLIENT  # works while confirming
                await conn.aclose()
                assert conn.state is not State.OPEN
                with pytest.raises(OSError) as info:
                    conn.getpeername()
                assert info.value.errno == errno.ENOTCONN
                with pytest.raises(trio.ClosedResourceError):
                    await conn.send(b"late")

            nursery.start_soon(serve_one)
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(SERVER)
        assert info.value.reason == DRReason.NORMAL == 128


async def test_listener_close_aborts_queued_connections_with_reason_2(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        errors: list[BaseException] = []

        async def connect() -> None:
            try:
                await client.connect(SERVER)
            except ConnectionRejected as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect)
            nursery.start_soon(connect)
            await wait_for(lambda: server.statistics().connections_requested == 2)
            await listener.aclose()
        assert len(errors) == 2
        assert all(e.reason == DRReason.SESSION_NOT_ATTACHED == 2 for e in errors)
        assert all(e.errno == errno.ECONNREFUSED for e in errors)
        with pytest.raises(trio.ClosedResourceError):
            await listener.accept()
        # a new CR finds no listener: refused with reason 2 as well
        with pytest.raises(ConnectionRejected) as info:
            await client.connect(SERVER)
        assert info.value.reason == 2


@pytest.mark.parametrize("reason", [None, DRReason.CONGESTION])
async def test_confirm_timeout_rejects(
    autojump_clock: trio.testing.MockClock, reason: DRReason | None
) -> None:
    extra = {} if reason is None else {"confirm_timeout_reason": reason}
    server_config = Config(confirm_timeout=3.0, **extra)
    async with network(server_config=server_config, config=Config()) as (_, client, server):
        listener = server.listen()
        accepted: list[float] = []
        async with trio.open_nursery() as nursery:

            async def serve_one() -> None:
                conn = await listener.accept()
                accepted.append(trio.current_time())
                await trio.sleep(10.0)  # neither confirm nor reject
                with pytest.raises(Disconnected) as info:
                    await conn.receive()
                assert info.value.by_peer is False

            nursery.start_soon(serve_one)
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(SERVER)
            rejected_at = trio.current_time()
        assert info.value.reason == (reason if reason is not None else DRReason.NOT_SPECIFIED)
        assert rejected_at - accepted[0] == pytest.approx(3.0, abs=0.05)


async def test_getpeername_states(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        listener = server.listen()
        c, s = await connect_pair(client, listener)
        assert c.getpeername() == SERVER and s.getpeername() == CLIENT
        assert c.getsockname() == CLIENT and s.getsockname() == SERVER
        await c.aclose()
        for conn in (c, s):
            await wait_for(lambda conn=conn: conn.state not in (State.OPEN, State.AKWAIT))
            with pytest.raises(OSError) as info:
                conn.getpeername()
            assert info.value.errno == errno.ENOTCONN


async def test_connect_to_nobody_times_out(autojump_clock: trio.testing.MockClock) -> None:
    config = Config(max_retransmissions=3, cr_retransmit_time=1.0, max_retransmit_time=4.0)
    async with network(config=config, record=True) as (net, client, _):
        start = trio.current_time()
        with pytest.raises(ConnectionTimedOut) as info:
            await client.connect(NOBODY)
        elapsed = trio.current_time() - start
        assert isinstance(info.value, TimeoutError)
        assert info.value.errno == errno.ETIMEDOUT
        crs = [(t, raw) for t, src, dst, raw in net.log if dst == NOBODY]
        assert len(crs) == 1 + 3
        assert all(type(decode(raw)[0]).__name__ == "CR" for _, raw in crs)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(crs)]
        assert gaps == pytest.approx([1.0, 2.0, 4.0])  # back-off, capped at 4 s
        assert elapsed == pytest.approx(1 + 2 + 4 + 4)
        assert client.statistics().retransmissions == 3


async def test_cancelled_connect_is_abandoned(autojump_clock: trio.testing.MockClock) -> None:
    """A connect cancelled before the CC: a late CC is answered with DR."""
    async with network() as (_, client, server):
        listener = server.listen()
        with trio.move_on_after(2.0) as scope:
            await client.connect(SERVER)
        assert scope.cancelled_caught
        conn = await listener.accept()
        await conn.confirm()
        with pytest.raises(trio.EndOfChannel):
            await conn.receive()  # the initiator's DR (reason 128) for the unwanted CC


# --------------------------------------------------------- release, errors


async def test_peer_normal_release_ends_the_channel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        async with trio.open_nursery() as nursery:

            async def close_later() -> None:
                await trio.sleep(1.0)
                await s.send(b"last words")
                await s.aclose()

            nursery.start_soon(close_later)
            assert await c.receive() == b"last words"
            with pytest.raises(trio.EndOfChannel):
                await c.receive()  # pending when the DR arrives
        with pytest.raises(trio.EndOfChannel):
            await c.receive()
        with pytest.raises(Disconnected) as info:
            await c.send(b"too late")
        assert info.value.reason == 128 and info.value.by_peer
        # iteration over the channel ends cleanly as well
        assert [m async for m in c] == []


@pytest.mark.parametrize("reason", [DRReason.NOT_SPECIFIED, DRReason.PROTOCOL_ERROR])
async def test_peer_abort_raises_disconnected(
    autojump_clock: trio.testing.MockClock, reason: DRReason
) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        async with trio.open_nursery() as nursery:

            async def abort_later() -> None:
                await trio.sleep(1.0)
                await s.reject(reason, b"bye")  # abortive release of an open connection

            nursery.start_soon(abort_later)
            with pytest.raises(Disconnected) as info:
                await c.receive()
        assert info.value.reason == reason
        assert info.value.data == b"bye"
        assert info.value.by_peer is True
        with pytest.raises(Disconnected):
            await c.send(b"x")


async def test_peer_silence_gives_up(autojump_clock: trio.testing.MockClock) -> None:
    config = Config(max_retransmissions=3)
    async with network(config=config) as (net, client, server):
        c, _s = await connect_pair(client, server.listen())
        net.drop = lambda src, dst, raw: src == CLIENT  # the client's datagrams vanish
        await c.send(b"into the void")
        with pytest.raises(ConnectionTimedOut):
            await c.receive()
        assert client.statistics().retransmissions >= 3


async def test_inactivity_timer_releases(autojump_clock: trio.testing.MockClock) -> None:
    config = Config(window_time=2.0, inactivity_time=6.0)
    async with network(config=config) as (net, client, server):
        c, s = await connect_pair(client, server.listen())
        await trio.sleep(30.0)  # idle: the W timer keeps the connection alive
        assert c.state is State.OPEN and s.state is State.OPEN
        net.drop = lambda src, dst, raw: True  # the network goes dark
        start = trio.current_time()
        with pytest.raises(ConnectionTimedOut):
            await c.receive()
        assert trio.current_time() - start == pytest.approx(6.0, abs=2.1)


async def test_concurrent_receives_are_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.receive)
            nursery.start_soon(c.receive_expedited)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await c.receive()
            with pytest.raises(trio.BusyResourceError):
                await c.receive_expedited()
            nursery.cancel_scope.cancel()
        await s.send(b"still fine")
        assert await c.receive() == b"still fine"


async def test_cancelled_receive_leaves_the_connection_usable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        for _ in range(3):
            with trio.move_on_after(1.0) as scope:
                await c.receive()
            assert scope.cancelled_caught
        await s.send(b"one")
        await s.send(b"two")
        await trio.sleep(0.5)  # both arrived and wait in the receive queue
        with trio.CancelScope() as scope:
            scope.cancel()
            await c.receive()  # cancelled before taking anything
        assert await c.receive() == b"one"
        assert await c.receive() == b"two"
        await c.send(b"reply")
        assert await s.receive() == b"reply"


async def test_own_aclose_wakes_a_blocked_receive(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())

        async def close_soon() -> None:
            await trio.sleep(0.5)
            await c.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError):
                await c.receive()
        with pytest.raises(trio.EndOfChannel):
            await s.receive()


async def test_send_waits_while_the_send_buffer_is_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(
        send_buffer=4096, max_tpdu_size=128, preferred_max_tpdu_size=None, receive_window=2
    )
    async with network(config=config) as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        sent = 0
        with trio.move_on_after(5.0) as scope:
            for _ in range(20):
                await c.send(b"x" * 1000)
                sent += 1
        assert scope.cancelled_caught  # the peer does not read: send blocked
        assert 4 <= sent < 20
        got = 0
        async with trio.open_nursery() as nursery:

            async def send_rest() -> None:
                for _ in range(20 - sent):
                    await c.send(b"x" * 1000)

            nursery.start_soon(send_rest)
            while got < 20:
                assert await s.receive() == b"x" * 1000
                got += 1


async def test_cancelled_aclose_releases_abortively(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(max_tpdu_size=128, preferred_max_tpdu_size=None, receive_window=2)
    async with network(config=config) as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        for _ in range(5):
            await c.send(b"y" * 200)
        with trio.move_on_after(1.0) as scope:
            await c.aclose()  # waits for the acknowledgements the peer withholds
        assert scope.cancelled_caught
        assert c.state in (State.CLOSING, State.REFWAIT)
        got = []
        with pytest.raises(trio.EndOfChannel):
            while True:
                got.append(await s.receive())
        assert 0 < len(got) < 5 and all(g == b"y" * 200 for g in got)


async def test_backlog_overflow_is_refused_with_reason_1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        listener = server.listen(backlog=1)
        results: list[object] = []

        async def connect() -> None:
            try:
                await client.connect(SERVER)
                results.append("connected")
            except ConnectionRejected as exc:
                results.append(exc.reason)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect)
            await trio.sleep(0.1)
            nursery.start_soon(connect)
            await trio.sleep(0.5)
            assert results == [DRReason.CONGESTION]
            conn = await listener.accept()
            await conn.confirm()
        assert results == [DRReason.CONGESTION, "connected"]


async def test_listeners_are_selected_by_called_tsap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        first, second, anyone = server.listen(b"one"), server.listen(b"two"), server.listen()

        async def answer(listener: TP4Listener, name: bytes) -> None:
            conn = await listener.accept()
            await conn.confirm(name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer, first, b"1")
            nursery.start_soon(answer, second, b"2")
            nursery.start_soon(answer, anyone, b"*")
            c2 = await client.connect(SERVER, called_tsap=b"two")
            c1 = await client.connect(SERVER, called_tsap=b"one")
            c3 = await client.connect(SERVER, called_tsap=b"three")
        assert (c1.confirm_data, c2.confirm_data, c3.confirm_data) == (b"1", b"2", b"*")


async def test_connect_pending_when_the_endpoint_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At a807eac this hit ``assert core.error is not None`` in ``connect()``."""
    async with network() as (_, client, _server):

        async def close_soon() -> None:
            await trio.sleep(0.5)
            await client.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_soon)
            with pytest.raises(trio.ClosedResourceError):
                await client.connect(NOBODY)


# -------------------------------------------------------------- expedited


async def test_expedited_overtakes_queued_normal_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(max_tpdu_size=128, preferred_max_tpdu_size=None, receive_window=4)
    async with network(config=config) as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        normal = [bytes([i]) * 100 for i in range(30)]
        for item in normal:  # the server is not reading: its window closes
            await c.send(item)
        await trio.sleep(1.0)
        assert not c.core.send_idle  # normal data is queued at the sender
        await c.send_expedited(b"URGENT")
        with trio.fail_after(5):
            assert await s.receive_expedited() == b"URGENT"
        got = [await s.receive() for _ in normal]
        assert got == normal


async def test_expedited_rules_through_the_driver(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        with pytest.raises(ValueError):
            await c.send_expedited(b"x" * 17)
        with pytest.raises(ValueError):
            await c.send_expedited(b"")
        for i in range(5):  # each waits for the previous EA
            await c.send_expedited(bytes([i]) * 16)
        assert [await s.receive_expedited() for _ in range(5)] == [
            bytes([i]) * 16 for i in range(5)
        ]


# ------------------------------------------------------------------ serve


async def test_serve_with_auto_confirm(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        states: list[State] = []

        async def echo(conn: TP4Connection) -> None:
            states.append(conn.state)
            async for msg in conn:
                await conn.send(msg.upper())

        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, echo, server, tsap=b"echo", auto_confirm=True))
            for _ in range(3):
                c = await client.connect(SERVER, called_tsap=b"echo")
                await c.send(b"abc")
                assert await c.receive() == b"ABC"
                await c.send(b"")
                assert await c.receive() == b""
                await c.aclose()
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(SERVER, called_tsap=b"other")
            assert info.value.reason == 2
            nursery.cancel_scope.cancel()
        assert len(states) == 3
        assert all(st in (State.AKWAIT, State.OPEN) for st in states)


async def test_serve_without_auto_confirm_hands_over_confirming(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):

        async def picky(conn: TP4Connection) -> None:
            assert conn.state is State.CONFIRMING
            if conn.connect_data == b"friend":
                await conn.confirm(b"ok")
                await conn.send(b"hi friend")
            else:
                await conn.reject(DRReason.CONGESTION, b"not you")

        async with trio.open_nursery() as nursery:
            await nursery.start(serve, picky, server)
            c = await client.connect(SERVER, data=b"friend")
            assert c.confirm_data == b"ok"
            assert await c.receive() == b"hi friend"
            with pytest.raises(ConnectionRejected) as info:
                await client.connect(SERVER, data=b"stranger")
            assert info.value.reason == 1 and info.value.data == b"not you"
            nursery.cancel_scope.cancel()


# ----------------------------------------------------------------- stream
# The contract tests below (trio's generic checks, receive_some sizes, closed and
# broken streams) failed at a807eac; d3ec50e made TP4Stream meet them.


async def test_stream_round_trip(autojump_clock: trio.testing.MockClock) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        cs, ss = c.as_stream(), s.as_stream()
        data = random.Random(5).randbytes(200_000)
        received = bytearray()

        async def send() -> None:
            for i in range(0, len(data), 7000):
                await cs.send_all(data[i : i + 7000])
            await cs.send_eof()

        async def receive() -> None:
            while chunk := await ss.receive_some(5000):
                assert len(chunk) <= 5000
                received.extend(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(receive)
        assert bytes(received) == data
        # the other direction still works after the half-close
        await ss.send_all(b"reply")
        assert await cs.receive_some() == b"reply"
        await ss.aclose()
        assert await cs.receive_some() == b""
        await cs.aclose()


def _stream_maker(client: TP4Endpoint, listener: TP4Listener):
    async def maker():
        c, s = await connect_pair(client, listener)
        return c.as_stream(), s.as_stream()

    return maker


CLOG_CONFIG = Config(receive_window=2, send_buffer=4096)


def _clogged_stream_maker(client: TP4Endpoint, listener: TP4Listener):
    """Streams whose senders block until the other side reads (trio's "clogged" pair).

    In each direction two TSDUs fill the receiver's window of 2 (its credit drops
    to 0), then one TSDU of ``send_buffer`` octets fills the sender's buffer.
    """

    async def clog(w: TP4Connection, r: TP4Connection) -> None:
        await w.send(b"fill-1")
        await w.send(b"fill-2")
        await wait_for(lambda: r.core.receivable and w.core.send_idle)
        await w.send(b"z" * CLOG_CONFIG.send_buffer)
        assert w.core.send_buffer_available == 0

    async def maker():
        c, s = await connect_pair(client, listener)
        await clog(c, s)
        await clog(s, c)
        return c.as_stream(), s.as_stream()

    return maker


async def test_stream_passes_trio_generic_checks(autojump_clock: trio.testing.MockClock) -> None:
    async with network(config=CLOG_CONFIG) as (_, client, server):
        listener = server.listen()
        await trio.testing.check_half_closeable_stream(
            _stream_maker(client, listener), _clogged_stream_maker(client, listener)
        )


async def test_stream_receive_some_rejects_bad_sizes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        _c, s = await connect_pair(client, server.listen())
        r = s.as_stream()
        with trio.fail_after(5):
            for bad in (0, -1):
                with pytest.raises(ValueError):
                    await r.receive_some(bad)


async def test_stream_send_after_own_close_raises_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, _s = await connect_pair(client, server.listen())
        w = c.as_stream()
        await w.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await w.send_all(b"x")
        with pytest.raises(trio.ClosedResourceError):
            await w.receive_some(10)


async def test_stream_wait_send_all_after_close_raises_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, _s = await connect_pair(client, server.listen())
        w = c.as_stream()
        await w.aclose()
        with pytest.raises(trio.ClosedResourceError), trio.fail_after(5):
            await w.wait_send_all_might_not_block()


async def test_stream_send_after_send_eof_raises_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        w, r = c.as_stream(), s.as_stream()
        await w.send_eof()
        assert await r.receive_some() == b""
        with pytest.raises(trio.ClosedResourceError):
            await w.send_all(b"y")


async def test_stream_send_to_closed_peer_raises_broken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with network() as (_, client, server):
        c, s = await connect_pair(client, server.listen())
        w, r = c.as_stream(), s.as_stream()
        await r.aclose()
        with pytest.raises(trio.BrokenResourceError), trio.fail_after(30):
            while True:
                await w.send_all(b"x" * 100)


# ------------------------------------------------------ driver mechanics


async def test_blocked_socket_sends_are_retried(autojump_clock: trio.testing.MockClock) -> None:
    """send_nowait reporting a full buffer: the driver's send task delivers later."""
    async with network() as (net, client, server):
        c, s = await connect_pair(client, server.listen())
        net._sockets[CLIENT].refuse_sends = 5
        for i in range(10):
            await c.send(bytes([i]) * 10)
        assert [await s.receive() for _ in range(10)] == [bytes([i]) * 10 for i in range(10)]
        assert net.refused_sends == 5


async def test_endpoint_close_aborts_connections(autojump_clock: trio.testing.MockClock) -> None:
    async with (
        MemoryNetwork.open() as net,
        open_udp_endpoint(SERVER, socket=net.socket(SERVER)) as server,
    ):
        listener = server.listen()
        async with open_udp_endpoint(CLIENT, socket=net.socket(CLIENT)) as client:
            c, s = await connect_pair(client, listener)
        # the client endpoint closed: its connection sent a DR (reason 128)
        with pytest.raises(trio.EndOfChannel):
            await s.receive()
        with pytest.raises(trio.ClosedResourceError):
            await c.send(b"x")


async def test_aclose_waits_for_the_dc_at_most_linger_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """aclose() returns once the DC arrives; with a silent peer, after linger_time."""
    async with network() as (net, client, server):
        c, _s = await connect_pair(client, server.listen())
        t0 = trio.current_time()
        await c.aclose()
        assert c.state is State.REFWAIT  # the DC came back: release complete
        assert trio.current_time() - t0 < client.config.linger_time
        c2, _s2 = await connect_pair(client, server.listen(b"other"), called_tsap=b"other")
        net.faults = Faults(loss=1.0)  # the peer hears nothing more
        t0 = trio.current_time()
        await c2.aclose()
        assert c2.state is State.CLOSING  # still retransmitting its DR
        assert trio.current_time() - t0 == pytest.approx(client.config.linger_time)
