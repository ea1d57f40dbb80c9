"""The RFC 1006 adapter (:mod:`tp4emu.transport.tcp`) against hostile peers and scarce resources.

No input from the network and no exhaustion (connections, file descriptors,
memory) may stop a :class:`~tp4emu.transport.tcp.TCPEndpoint` or make it hold unbounded
state. Peers are raw trio TCP streams on loopback writing TPKTs built here by
hand; after each attack a genuine client must still connect and echo through
the same endpoint. Every test is bounded by ``trio.fail_after``; timeouts are
observed with small ``Config`` values or trio's autojump clock, never asserted
on wall-clock time.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from rawtcp import dt, read_to_eof, read_tpkt, tpkt

import tp4emu.core.class0
import tp4emu.transport.tcp
from tp4emu.core import Config, Disconnected, Statistics
from tp4emu.transport.tcp import TCPConnection, TCPEndpoint, TCPListener, open_tcp_endpoint
from tp4emu.wire import DRReason, decode

HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"  # another loopback address: another peer IP
LIMIT = 5.0  # seconds any one test may take
FLOOD = 50
CAP = 8


# ------------------------------------------------------------------ wire, by hand


def cr_tpdu(
    *,
    src_ref: int = 0x1234,
    klass: int = 0,
    size_exp: int | None = 0x0B,
    calling: bytes | None = None,
    called: bytes | None = None,
    extra: bytes = b"",
) -> bytes:
    """A CR TPDU (LI first): DST-REF 0, *src_ref*, *klass*, then the parameters."""
    body = bytes([0xE0, 0, 0]) + src_ref.to_bytes(2, "big") + bytes([klass << 4])
    if size_exp is not None:
        body += bytes([0xC0, 1, size_exp])
    if calling is not None:
        body += bytes([0xC1, len(calling)]) + calling
    if called is not None:
        body += bytes([0xC2, len(called)]) + called
    body += extra
    assert len(body) <= 255
    return bytes([len(body) % 256]) + body


def cc_tpdu(src_ref: int, size_exp: int, calling: bytes | None, called: bytes | None) -> bytes:
    """The CC our server answers: DST-REF = the CR's SRC-REF, SRC-REF 1, class 0,
    the TPDU size, then the TSAPs echoed."""
    body = bytes([0xD0]) + src_ref.to_bytes(2, "big") + bytes([0, 1, 0, 0xC0, 1, size_exp])
    if calling is not None:
        body += bytes([0xC1, len(calling)]) + calling
    if called is not None:
        body += bytes([0xC2, len(called)]) + called
    return bytes([len(body)]) + body


def dr_tpdu(dst_ref: int, reason: int, src_ref: int = 0, data: bytes = b"") -> bytes:
    return (
        bytes([6, 0x80])
        + dst_ref.to_bytes(2, "big")
        + src_ref.to_bytes(2, "big")
        + bytes([reason])
        + data
    )


def er_tpdu(dst_ref: int, cause: int, rejected: bytes) -> bytes:
    """ER with the invalid-TPDU parameter (0xC1) holding *rejected*."""
    body = bytes([0x70]) + dst_ref.to_bytes(2, "big") + bytes([cause, 0xC1, len(rejected)])
    return bytes([len(body) + len(rejected)]) + body + rejected


GENUINE_CR = tpkt(cr_tpdu(src_ref=0x4242, calling=b"\x01\x00", called=b"\x01\x02"))
# DR to SRC-REF 0x1234, reason 138 (header or parameter length invalid).
DR_138 = bytes.fromhex("0300000b" + "068012340000" + "8a")


# ------------------------------------------------------------------ helpers


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll *condition* (the caller's fail_after bounds the wait)."""
    while not condition():
        await trio.sleep(0.002)


async def raw_client(ep: TCPEndpoint, local: str | None = None) -> trio.SocketStream:
    return await trio.open_tcp_stream(*ep.getsockname(), local_address=local)


async def genuine(ep: TCPEndpoint, listener: TCPListener, local: str | None = None) -> None:
    """A well-behaved client connects, and its data is echoed by our server."""
    stream = await raw_client(ep, local)
    await stream.send_all(GENUINE_CR)
    answer = await read_tpkt(stream)
    assert answer == tpkt(cc_tpdu(0x4242, 0x0B, b"\x01\x00", b"\x01\x02")), answer.hex()
    conn = await listener.accept()
    await stream.send_all(dt(b"ping"))
    assert await conn.receive() == b"ping"
    await conn.send(b"pong")
    assert await read_tpkt(stream) == dt(b"pong")
    await conn.aclose()
    await stream.aclose()


async def refused_unread(ep: TCPEndpoint, local: str | None = None) -> None:
    """A client whose TCP connection is closed at once: its CR gets no answer."""
    stream = await raw_client(ep, local)
    with contextlib.suppress(trio.BrokenResourceError):  # closed unread: maybe a reset
        await stream.send_all(GENUINE_CR)
    assert await read_to_eof(stream) == b""
    await stream.aclose()


async def open_pair(
    ep: TCPEndpoint, listener: TCPListener, cr: bytes = GENUINE_CR, local: str | None = None
) -> tuple[trio.SocketStream, TCPConnection]:
    """A raw client connected to our server: (its stream, our accepted connection)."""
    stream = await raw_client(ep, local)
    await stream.send_all(cr)
    answer = await read_tpkt(stream)
    assert answer[5] == 0xD0, answer.hex()
    return stream, await listener.accept()


# ------------------------------------------- 1. a CR whose CC does not fit one header

# CR LI = 6 (fixed part) + 3 (TPDU size, if sent) + 2 + calling + 2 + called (+ extras).
# The CC always carries the TPDU size: its LI = 6 + 3 + 2 + calling + 2 + called.
# So a CR without the TPDU size whose LI is 252..254 has a CC of LI 255..257.


@pytest.mark.parametrize(
    ("cr", "fits"),
    [
        # The maximal CR, LI 254: TSAPs of 122 + 122 octets, no TPDU size.
        (cr_tpdu(size_exp=None, calling=bytes(122), called=b"\xee" * 122), False),
        # Just does not fit: CR LI 252, CC LI 255.
        (cr_tpdu(size_exp=None, calling=bytes(121), called=b"\xee" * 121), False),
        # A single long TSAP: CR LI 254 (6 + 2 + 246), CC LI 257.
        (cr_tpdu(size_exp=None, called=b"\xee" * 246), False),
        # Just fits: CR LI 251, CC LI 254.
        (cr_tpdu(size_exp=None, calling=bytes(120), called=b"\xee" * 121), True),
        # LI 254 with the TPDU size: the CC is as long as the CR, so it fits.
        (cr_tpdu(size_exp=0x0A, calling=bytes(120), called=b"\xee" * 121), True),
        # LI 254 made of a parameter the CC does not echo (an unknown one).
        (cr_tpdu(calling=b"\x01\x00", extra=bytes([0xCB, 239]) + bytes(239)), True),
    ],
    ids=["max-LI-254", "LI-252", "one-TSAP-LI-254", "LI-251-fits", "with-size", "unknown-param"],
)
async def test_cr_whose_cc_would_not_fit(cr: bytes, fits: bool) -> None:
    assert cr[0] in (251, 252, 254)
    (parsed,) = decode(cr)  # a valid CR
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            for _ in range(2):  # twice: the endpoint survives the first
                stream = await raw_client(ep)
                await stream.send_all(tpkt(cr))
                if fits:
                    size_exp = min((parsed.tpdu_size or 128).bit_length() - 1, 11)
                    cc = cc_tpdu(0x1234, size_exp, parsed.calling_tsap, parsed.called_tsap)
                    assert await read_tpkt(stream) == tpkt(cc)
                    conn = await listener.accept()
                    assert conn.called_tsap == parsed.called_tsap
                    await conn.aclose()
                    await stream.aclose()
                else:
                    # DR reason 138 (header or parameter length invalid), then the close.
                    assert await read_to_eof(stream) == DR_138
                    await stream.aclose()
                await genuine(ep, listener)
            stats = ep.statistics()
            assert stats.connections_refused == (0 if fits else 2)
            assert stats.connections_opened == (4 if fits else 2)
            assert stats.undecodable == 0


# ------------------------------------------- 2. _serve never raises


async def test_unexpected_error_serving_a_connection_is_contained(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = tp4emu.core.class0.connection_params

    def flaky(size: int, calling: bytes | None, called: bytes | None) -> object:
        if called == b"boom":
            raise RuntimeError("a bug")
        return real(size, calling, called)

    monkeypatch.setattr(tp4emu.core.class0, "connection_params", flaky)
    caplog.set_level(logging.ERROR, logger="tp4emu.tcp")
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            for _ in range(3):
                stream = await raw_client(ep)
                await stream.send_all(tpkt(cr_tpdu(called=b"boom")))
                assert await read_to_eof(stream) == b""  # closed, nothing sent
                await stream.aclose()
                await genuine(ep, listener)
            assert ep.statistics().undecodable == 3
            assert ep.statistics().connections_opened == 3
            assert ep._incoming == 0 and ep._half_open == {}
    logged = [r for r in caplog.records if r.name == "tp4emu.tcp"]
    assert len(logged) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in logged)


async def test_cancellation_still_propagates_through_serve() -> None:
    # Closing the endpoint cancels the tasks serving half-open connections:
    # they must not swallow Cancelled (the endpoint would never close) and
    # must close their TCP connections.
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            ep.listen()
            streams = [await raw_client(ep) for _ in range(3)]
            await streams[0].send_all(GENUINE_CR[:5])  # half a CR
            await wait_until(lambda: ep._half_open.get(HOST) == 3)
        for stream in streams:
            assert await read_to_eof(stream) == b""
            await stream.aclose()
        assert ep.statistics().undecodable == 0  # cancelled is not bad input


# ------------------------------------------- 3. accept() out of file descriptors


class FlakyListener:
    """A stand-in for the endpoint's SocketListener whose accept() first fails."""

    def __init__(self, real: trio.SocketListener, errors: list[int]) -> None:
        self.real = real
        self.errors = errors
        self.raised = 0

    async def accept(self) -> trio.SocketStream:
        if self.errors:
            await trio.lowlevel.checkpoint()
            self.raised += 1
            code = self.errors.pop(0)
            raise OSError(code, f"simulated {errno.errorcode[code]}")
        return await self.real.accept()

    def __getattr__(self, name: str) -> object:  # socket, aclose
        return getattr(self.real, name)


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS])
async def test_accept_out_of_resources_is_retried(
    code: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tp4emu.tcp")
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            # Replaced before the accept loop first runs (no checkpoint yet).
            flaky = FlakyListener(ep._tcp[0], [code] * 3)
            ep._tcp[0] = flaky  # type: ignore[assignment]
            listener = ep.listen()
            await genuine(ep, listener)
            assert flaky.raised == 3
            await genuine(ep, listener)
    messages = [r.getMessage() for r in caplog.records if r.name == "tp4emu.tcp"]
    assert len(messages) == 3
    assert all(errno.errorcode[code] in m and "retrying" in m for m in messages)


async def test_other_accept_errors_still_end_the_endpoint() -> None:
    with trio.fail_after(LIMIT), pytest.raises(OSError) as info:
        async with open_tcp_endpoint((HOST, 0)) as ep:
            ep._tcp[0] = FlakyListener(ep._tcp[0], [errno.EINVAL])  # type: ignore[assignment]
            await trio.sleep_forever()
    assert info.value.errno == errno.EINVAL


EMFILE_SCRIPT = textwrap.dedent(
    """
    import logging, os, resource, socket, struct, sys
    import trio
    from tp4emu.transport.tcp import open_tcp_endpoint

    N = 12
    log = []

    class Keep(logging.Handler):
        def emit(self, record):
            log.append(record.getMessage())

    logging.getLogger("tp4emu.tcp").addHandler(Keep())

    def tpkt(payload):
        return bytes([3, 0]) + struct.pack(">H", len(payload) + 4) + payload

    async def main():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        with trio.fail_after(15):
            async with open_tcp_endpoint(("127.0.0.1", 0)) as ep:
                listener = ep.listen()
                # Connected, but not yet accepted (no checkpoint since): then no
                # descriptor is left for accept().
                flood = [socket.create_connection(ep.getsockname()) for _ in range(N)]
                probe = os.open(os.devnull, os.O_RDONLY)  # the lowest free descriptor
                os.close(probe)
                resource.setrlimit(resource.RLIMIT_NOFILE, (probe, hard))
                while not any("EMFILE" in m for m in log):
                    await trio.sleep(0.01)
                for s in flood:  # each close frees the descriptor its accept needs
                    s.close()
                    await trio.sleep(0.01)
                while ep.statistics().undecodable < N:
                    await trio.sleep(0.01)
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                stream = await trio.open_tcp_stream(*ep.getsockname())
                await stream.send_all(tpkt(bytes.fromhex("0ae00000424200c1020100")))
                assert (await stream.receive_some(100))[5] == 0xD0
                conn = await listener.accept()
                await stream.send_all(tpkt(bytes([2, 0xF0, 0x80]) + b"ping"))
                assert await conn.receive() == b"ping"
                await conn.aclose()
                await stream.aclose()
        print("ok", sum("EMFILE" in m for m in log))

    trio.run(main)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_real_emfile_in_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EMFILE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    word, count = done.stdout.split()
    assert word == "ok" and int(count) >= 1, done.stdout


# ------------------------------------------- 4. connection caps, CR timeout


async def test_max_connections_in_any_stage() -> None:
    config = Config(max_connections=CAP)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen(backlog=FLOOD)
            # A flood of clients, each sending a genuine CR: CAP get a CC, the
            # others are closed without their CR being read (no answer at all).
            flood = []
            for _ in range(FLOOD):
                stream = await raw_client(ep)
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(GENUINE_CR)
                flood.append(stream)
            answers = []
            for stream in flood:
                try:
                    answers.append(await stream.receive_some(4096))
                except trio.BrokenResourceError:
                    answers.append(b"")
            assert sum(a[5:6] == b"\xd0" for a in answers) == CAP
            assert answers.count(b"") == FLOOD - CAP
            stats = ep.statistics()
            assert stats.connections_opened == CAP
            assert stats.connections_refused == FLOOD - CAP
            assert ep._incoming == CAP
            # Open connections, accepted or not, still count: no room for another.
            conns = [await listener.accept() for _ in range(CAP // 2)]
            await refused_unread(ep)
            # An outgoing connection is not counted.
            async with open_tcp_endpoint((HOST, 0)) as other:
                other.listen()
                out = await ep.connect(other.getsockname())
                await out.aclose()
            for conn in conns:
                await conn.aclose()
            assert ep._incoming == CAP - CAP // 2
            for stream in flood:
                await stream.aclose()
            # The ones still queued find their peers gone.
            for _ in range(CAP - CAP // 2):
                conn = await listener.accept()
                with pytest.raises(trio.EndOfChannel):
                    await conn.receive()
                await conn.aclose()
            assert ep._incoming == 0
            await genuine(ep, listener)
            assert ep.statistics().connections_refused == FLOOD - CAP + 1


async def test_max_half_open_per_address() -> None:
    config = Config(max_half_open_per_address=CAP, tcp_cr_timeout=60)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            # Silent clients from one address: CAP wait for their CR, the others
            # are closed at once.
            flood = [await raw_client(ep) for _ in range(FLOOD)]
            await wait_until(lambda: ep.statistics().connections_refused == FLOOD - CAP)
            assert ep._half_open == {HOST: CAP}
            await refused_unread(ep)  # the same address: no room
            await genuine(ep, listener, local=OTHER_HOST)  # another address: room
            # Established connections are not half-open: more than CAP of them
            # from the other address, all kept open, are fine.
            kept = [await open_pair(ep, listener, local=OTHER_HOST) for _ in range(CAP + 2)]
            assert ep._half_open == {HOST: CAP}
            for stream, conn in kept:
                await conn.aclose()
                await stream.aclose()
            for stream in flood:
                await stream.aclose()
            await wait_until(lambda: not ep._half_open)
            assert ep.statistics().undecodable == CAP  # EOF instead of a CR
            await genuine(ep, listener)
            assert ep._incoming == 0


async def test_half_open_is_per_address_for_established_connections() -> None:
    config = Config(max_half_open_per_address=2)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            kept = [await open_pair(ep, listener) for _ in range(5)]
            assert ep._half_open == {} and ep._incoming == 5
            for stream, conn in kept:
                await conn.aclose()
                await stream.aclose()
            assert ep._incoming == 0


async def test_cr_must_arrive_within_tcp_cr_timeout() -> None:
    # confirm_timeout stays at its 30 s default: tcp_cr_timeout is what closes.
    config = Config(max_connections=CAP, tcp_cr_timeout=0.2)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            flood = [await raw_client(ep) for _ in range(FLOOD)]
            with contextlib.suppress(trio.BrokenResourceError):
                await flood[0].send_all(GENUINE_CR[:-1])  # all but the last octet
            for stream in flood:
                assert await read_to_eof(stream) == b""
                await stream.aclose()
            await wait_until(lambda: ep._incoming == 0)
            stats = ep.statistics()
            assert stats.undecodable >= CAP  # the CAP admitted, timed out
            assert stats.undecodable + stats.connections_refused == FLOOD
            assert stats.connections_opened == 0
            await genuine(ep, listener)


# ------------------------------------------- 5. idle limit


async def test_idle_connection_is_closed() -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=Config(tcp_idle_timeout=0.2)) as ep:
            listener = ep.listen()
            stream, conn = await open_pair(ep, listener)
            await stream.send_all(dt(b"one"))
            assert await conn.receive() == b"one"
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert info.value.reason == DRReason.NOT_SPECIFIED
            assert info.value.by_peer is False
            assert "idle" in str(info.value)
            with pytest.raises(Disconnected):  # it sticks
                await conn.receive()
            assert await read_to_eof(stream) == b""  # closed
            await stream.aclose()
            await conn.aclose()
            assert ep._incoming == 0
            # Outgoing connections too.
            async with open_tcp_endpoint((HOST, 0)) as server:
                server.listen()
                out = await ep.connect(server.getsockname())
                with pytest.raises(Disconnected) as info:
                    await out.receive()
                assert "idle" in str(info.value)
                await out.aclose()


async def test_idle_timer_restarts_on_input(autojump_clock: trio.testing.MockClock) -> None:
    config = Config(tcp_idle_timeout=10.0)
    with trio.fail_after(100):  # virtual seconds
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            stream, conn = await open_pair(ep, listener)
            start = trio.current_time()

            async def trickle() -> None:
                for i in range(5):
                    await trio.sleep(6)
                    await stream.send_all(dt(b"%d" % i, eot=False))
                await trio.sleep(6)
                await stream.send_all(dt(b"!"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trickle)
                assert await conn.receive() == b"01234!"
            assert trio.current_time() - start == pytest.approx(36)
            with pytest.raises(Disconnected) as info:
                await conn.receive()
            assert "idle" in str(info.value)
            assert trio.current_time() - start == pytest.approx(46)
            await stream.aclose()
            await conn.aclose()


async def test_no_idle_limit(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(10_000):  # virtual seconds
        async with open_tcp_endpoint((HOST, 0), config=Config(tcp_idle_timeout=None)) as ep:
            listener = ep.listen()
            stream, conn = await open_pair(ep, listener)
            with trio.move_on_after(3600) as waited:
                await conn.receive()
            assert waited.cancelled_caught
            await stream.send_all(dt(b"after an hour"))
            assert await conn.receive() == b"after an hour"
            await stream.aclose()
            await conn.aclose()


# ------------------------------------------- 6. endpoint-wide reassembly budget


def budget_bound(budget: int, holders: int, max_tsdu: int) -> float:
    """The bound _Budget proves: B * H(m) + m * R, plus max_tsdu_size + R for one."""
    r = tp4emu.transport.tcp._READ + 2052
    return budget * sum(1 / k for k in range(1, holders + 1)) + holders * r + max_tsdu + r


async def test_budget_holds_back_connections_over_their_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tp4emu.transport.tcp, "_READ", 1024)  # small reads: a tight bound
    budget, hogs, sent = 8192, 3, 64 * 1024
    config = Config(receive_buffer_budget=budget, max_tsdu_size=sent + 1024)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep, trio.open_nursery() as bg:
            listener = ep.listen()
            pairs = [await open_pair(ep, listener) for _ in range(hogs + 1)]
            small_stream, small = pairs.pop()
            for stream, conn in pairs:
                # Each hog sends 64 KiB of one TSDU that never ends; its user waits.
                bg.start_soon(conn.receive)
                chunk = bytes(2045)
                bg.start_soon(stream.send_all, b"".join(dt(chunk, eot=False) for _ in range(32)))
            await trio.testing.wait_all_tasks_blocked()
            held = {conn: ep._budget._held.get(conn, 0) for _, conn in pairs}
            oldest = next(iter(ep._budget._held))
            # The one holding data the longest may read all (no one within its
            # share); the others wait, over their shares, with most of their
            # data still in TCP.
            others = sorted((h for c, h in held.items() if c is not oldest), reverse=True)
            r = 1024 + 2052
            assert others[0] <= budget + r and others[1] <= budget / 2 + r, others
            assert all(h < sent // 2 for h in others)
            assert ep._budget.total > budget
            # A connection within its share still gets its TSDUs through.
            for i in range(50):
                await small_stream.send_all(dt(b"%03d" % i * 40))
                assert await small.receive() == b"%03d" % i * 40
            assert ep._budget.peak <= budget_bound(budget, hogs + 1, config.max_tsdu_size)
            assert ep._budget.peak < hogs * sent  # not everything was read
            bg.cancel_scope.cancel()
        for stream, conn in [*pairs, (small_stream, small)]:
            await conn.aclose()
            await stream.aclose()
        assert ep._budget.total == 0 and not ep._budget._held


async def test_budget_never_deadlocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Four TSDUs, each larger than the whole budget, arriving at once: every
    # connection is over its share, yet each TSDU completes in turn.
    monkeypatch.setattr(tp4emu.transport.tcp, "_READ", 1024)
    budget, size = 4096, 20_000
    config = Config(receive_buffer_budget=budget)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            pairs = [await open_pair(ep, listener) for _ in range(4)]
            got: dict[int, bytes] = {}

            async def reader(i: int, conn: TCPConnection) -> None:
                got[i] = await conn.receive()

            async with trio.open_nursery() as nursery:
                for i, (stream, conn) in enumerate(pairs):
                    nursery.start_soon(reader, i, conn)
                    tsdu = bytes([i]) * size
                    wire = b"".join(
                        dt(tsdu[j : j + 2045], eot=j + 2045 >= size) for j in range(0, size, 2045)
                    )
                    nursery.start_soon(stream.send_all, wire)
            assert got == {i: bytes([i]) * size for i in range(4)}
            assert ep._budget.total == 0
            assert ep._budget.peak <= budget_bound(budget, 4, size)
            for stream, conn in pairs:
                await conn.aclose()
                await stream.aclose()


def dts(tsdu: bytes, eot: bool = True) -> bytes:
    """*tsdu* as DTs of 2048 octets (the last with EOT if *eot*)."""
    pieces = [tsdu[j : j + 2045] for j in range(0, len(tsdu), 2045)]
    return b"".join(dt(c, eot=eot and j == len(pieces) - 1) for j, c in enumerate(pieces))


async def test_budget_wakes_the_oldest_when_none_is_left_within_its_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The oldest holder waits while another one is within its share; when that
    # one grows past its share (nothing is released), the oldest must be woken.
    monkeypatch.setattr(tp4emu.transport.tcp, "_READ", 1024)
    budget = 4096
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=Config(receive_buffer_budget=budget)) as ep:
            listener = ep.listen()
            (s1, c1), (s2, c2) = [await open_pair(ep, listener) for _ in range(2)]
            got: dict[int, bytes] = {}

            async def reader(i: int, conn: TCPConnection) -> None:
                got[i] = await conn.receive()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader, 1, c1)
                nursery.start_soon(reader, 2, c2)
                await s1.send_all(dt(b"1" * 100, eot=False))  # c1: the oldest holder
                await trio.testing.wait_all_tasks_blocked()
                await s2.send_all(dt(b"2" * 500, eot=False))  # c2: within its share
                await trio.testing.wait_all_tasks_blocked()
                await s1.send_all(dts(b"1" * 19_900))
                await trio.testing.wait_all_tasks_blocked()
                held = ep._budget._held
                assert held[c1] > budget // 2 >= held[c2] and ep._budget.total > budget
                assert not got  # c1 waits: c2 is within its share
                await s2.send_all(dts(b"2" * 19_500))
            assert got == {1: b"1" * 20_000, 2: b"2" * 20_000}
            for stream, conn in ((s1, c1), (s2, c2)):
                await conn.aclose()
                await stream.aclose()


async def test_budget_is_released_when_connections_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tp4emu.transport.tcp, "_READ", 1024)
    config = Config(receive_buffer_budget=2048)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            pairs = [await open_pair(ep, listener) for _ in range(3)]
            for stream, _ in pairs:
                await stream.send_all(dt(bytes(1500), eot=False) * 3)

            async def doomed(conn: TCPConnection) -> None:
                with pytest.raises(Disconnected):
                    await conn.receive()

            async with trio.open_nursery() as nursery:
                for _, conn in pairs:
                    nursery.start_soon(doomed, conn)
                await trio.testing.wait_all_tasks_blocked()
                assert ep._budget.total > 2048
                # Ways out, each reached in turn as the budget allows: a bad
                # TPDU, a bad TPKT, the peer's close in the middle of the TSDU.
                await pairs[0][0].send_all(tpkt(bytes.fromhex("0461000105")))  # an AK
                await pairs[1][0].send_all(b"\x09\x09\x09\x09")  # not a TPKT
                await pairs[2][0].send_eof()
            assert ep._budget.total == 0 and not ep._budget._held
            for stream, conn in pairs:
                await conn.aclose()
                await stream.aclose()
            await genuine(ep, listener)


# ------------------------------------------- 7. statistics


async def test_statistics_keeps_its_fields_and_shows_the_new_counts() -> None:
    config = Config(max_connections=1, tcp_cr_timeout=0.1)
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0), config=config) as ep:
            listener = ep.listen()
            stats = ep.statistics()
            assert isinstance(stats, Statistics)
            assert [f.name for f in fields(stats)] == [f.name for f in fields(Statistics)]
            silent = await raw_client(ep)  # times out: undecodable
            await wait_until(lambda: ep._incoming == 1)
            await refused_unread(ep)  # over max_connections: refused
            assert await read_to_eof(silent) == b""
            await silent.aclose()
            stream = await raw_client(ep)
            await stream.send_all(tpkt(cr_tpdu(size_exp=None, called=bytes(246))))
            assert await read_to_eof(stream) == DR_138  # refused
            await stream.aclose()
            await genuine(ep, listener)
            stats = ep.statistics()
            assert (stats.connections_opened, stats.connections_refused, stats.undecodable) == (
                1,
                2,
                1,
            )
            assert stats.as_dict()["connections_refused"] == 2


# ------------------------------------------- 8. every input at its limits

# What our server answers to the first TPKT of a TCP connection (no CR yet):
# ("close", the TCP close with nothing sent), or the exact octets it sends
# before closing. Its ERs have LI 8: DST-REF, cause, and the invalid-TPDU
# parameter (0xC1) with the rejected TPDU's LI and code.
CLOSE = b""
BEFORE_CR: list[tuple[str, bytes, bytes]] = [
    *[(f"tpkt-length-{n}", bytes([3, 0, 0, n]) + bytes(8), CLOSE) for n in range(7)],
    (
        "tpkt-length-7-dt",
        tpkt(bytes.fromhex("02f080")),
        tpkt(bytes.fromhex("0870000002c102" + "02f0")),
    ),
    ("tpkt-length-7-cr-too-short", tpkt(bytes.fromhex("02e000")), CLOSE),
    ("tpkt-length-2053", bytes.fromhex("03000805") + bytes(2049), CLOSE),
    ("tpkt-length-65535", bytes.fromhex("0300ffff") + bytes(1000), CLOSE),
    *[(f"version-{v}", bytes([v]) + GENUINE_CR[1:], CLOSE) for v in (0, 2, 4, 0x11, 255)],
    ("cr-li-255", tpkt(bytes([255, 0xE0]) + bytes(253)), CLOSE),
    ("cr-li-past-the-end", tpkt(bytes([20, 0xE0]) + bytes(5)), CLOSE),
    ("cr-class-4-only", tpkt(cr_tpdu(klass=4)), tpkt(dr_tpdu(0x1234, 130))),
    ("cr-class-5", tpkt(cr_tpdu(klass=5)), CLOSE),
    ("dr-64", tpkt(dr_tpdu(0, 128, 7, bytes(64))), tpkt(bytes.fromhex("0870000002c102" + "0680"))),
    ("dr-65", tpkt(dr_tpdu(0, 128, 7, bytes(65))), CLOSE),
    (
        "er",
        tpkt(er_tpdu(0, 1, b"\x02\xf0\x80")),  # LI 9
        tpkt(bytes.fromhex("0870000002c102" + "0970")),
    ),
    ("cc", tpkt(cc_tpdu(1, 7, None, None)), tpkt(bytes.fromhex("0870000002c102" + "09d0"))),
    ("ak", tpkt(bytes.fromhex("0461000105")), CLOSE),
    *[(f"cr-truncated-{n}", GENUINE_CR[:n], CLOSE) for n in (1, 3, 4, 5, 10, len(GENUINE_CR) - 1)],
]


@pytest.mark.parametrize(
    ("garbage", "answer"), [c[1:] for c in BEFORE_CR], ids=[c[0] for c in BEFORE_CR]
)
async def test_first_tpkt_at_its_limits(garbage: bytes, answer: bytes) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            stream = await raw_client(ep)
            await stream.send_all(garbage)
            await stream.send_eof()  # truncated ones end here
            assert await read_to_eof(stream) == answer
            await stream.aclose()
            await wait_until(lambda: ep._incoming == 0)
            stats = ep.statistics()
            assert stats.connections_opened == 0
            assert stats.connections_refused + stats.undecodable == 1
            await genuine(ep, listener)


# Once connected (TPDU size 128, the peer's reference 0x1234): what the peer
# sends, what our user's receive() gets, and what the peer then sees (ERs of
# LI 8, as above).
SIZE = 128
OPEN_CR = tpkt(cr_tpdu(size_exp=7))
AFTER_CR: list[tuple[str, bytes, object, bytes | None]] = [
    # (id, input, receive() result or exception type, what the peer sees; None: still open)
    ("dt-tpdu-size", dt(bytes(SIZE - 3)), bytes(SIZE - 3), None),
    (
        "dt-tpdu-size+1",
        dt(bytes(SIZE - 2)),
        Disconnected,
        tpkt(bytes.fromhex("0870123400c102" + "02f0")),
    ),
    ("dr-64", tpkt(dr_tpdu(1, 128, 0x1234, bytes(64))), Disconnected, CLOSE),
    (
        "dr-65",
        tpkt(dr_tpdu(1, 128, 0x1234, bytes(65))),
        Disconnected,
        tpkt(bytes.fromhex("0870123403c102" + "0680")),
    ),
    ("er", tpkt(er_tpdu(1, 2, b"\x02\xf0\x80")), Disconnected, CLOSE),
    ("cr", OPEN_CR, Disconnected, tpkt(bytes.fromhex("0870123402c102" + "09e0"))),
    (
        "dt-class-4",
        tpkt(bytes.fromhex("04f0000180") + b"x"),
        Disconnected,
        tpkt(bytes.fromhex("0870123402c102" + "04f0")),
    ),
    ("tpkt-length-6", bytes.fromhex("03000006020f"), Disconnected, CLOSE),
    ("tpkt-length-65535", bytes.fromhex("0300ffff02f080"), Disconnected, CLOSE),
    ("version-4", bytes.fromhex("0400000702f080"), Disconnected, CLOSE),
    ("dt-truncated", dt(b"cut short")[:9], Disconnected, CLOSE),
    ("dt-no-eot-then-eof", dt(b"half", eot=False), Disconnected, CLOSE),
    ("eof", b"", trio.EndOfChannel, CLOSE),
]


@pytest.mark.parametrize(
    ("data", "result", "seen"), [c[1:] for c in AFTER_CR], ids=[c[0] for c in AFTER_CR]
)
async def test_connected_input_at_its_limits(
    data: bytes, result: object, seen: bytes | None
) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            stream, conn = await open_pair(ep, listener, OPEN_CR)
            assert conn.tpdu_size == SIZE
            await stream.send_all(data)
            if seen is not None:
                await stream.send_eof()  # truncated ones end here
            if isinstance(result, bytes):
                assert await conn.receive() == result
            else:
                assert isinstance(result, type)
                with pytest.raises(result):
                    await conn.receive()
            if seen is None:
                await conn.send(b"still open")
                assert await read_tpkt(stream) == dt(b"still open")
                await conn.aclose()
            else:
                # After a TCP close without an error (EOF) the user closes.
                await conn.aclose()
                assert await read_to_eof(stream) == seen
            await stream.aclose()
            assert ep._incoming == 0
            await genuine(ep, listener)


async def run_cr_case(
    cr: bytes, expected: bytes, then: Callable[[TCPEndpoint, TCPListener], Awaitable[None]]
) -> None:
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen()
            stream = await raw_client(ep)
            await stream.send_all(tpkt(cr))
            if expected[1] == 0xD0:
                assert await read_tpkt(stream) == tpkt(expected)
                conn = await listener.accept()
                await conn.aclose()
            else:
                assert await read_to_eof(stream) == tpkt(expected)
            await stream.aclose()
            await then(ep, listener)


@st.composite
def any_cr(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid CR (LI up to 254, TSAPs of any length that fits) and our documented answer."""
    src_ref = draw(st.integers(0, 0xFFFF))
    klass = draw(st.sampled_from([0, 2, 4]))
    alt_0 = klass != 0 and draw(st.booleans())
    extra = bytes([0xC7, 1, 0]) if alt_0 else b""  # alternative classes: class 0
    size_exp = draw(st.none() | st.integers(7, 13))
    room = 254 - 6 - len(extra) - (0 if size_exp is None else 3)
    tsaps: list[bytes | None] = []
    for _ in range(2):
        if room < 2 or draw(st.integers(0, 4)) == 0:
            tsaps.append(None)
            continue
        # Often the longest that fits, to reach LI 254 (and the CC's limit).
        n = draw(st.sampled_from([room - 2, room - 2, max(room - 5, 0)]) | st.integers(0, room - 2))
        tsaps.append(draw(st.binary(min_size=n, max_size=n)))
        room -= 2 + n
    calling, called = tsaps
    cr = cr_tpdu(
        src_ref=src_ref, klass=klass, size_exp=size_exp, calling=calling, called=called, extra=extra
    )
    if klass and not alt_0:
        return cr, dr_tpdu(src_ref, DRReason.NEGOTIATION_FAILED)
    cc_li = 6 + 3 + sum(2 + len(t) for t in tsaps if t is not None)
    if cc_li > 254:  # the TSAPs echoed plus the TPDU size do not fit a header
        return cr, dr_tpdu(src_ref, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID)
    return cr, cc_tpdu(src_ref, min(size_exp or 7, 11), calling, called)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(any_cr())
def test_any_cr_up_to_li_254(case: tuple[bytes, bytes]) -> None:
    cr, expected = case
    assert cr[0] <= 254
    decode(cr)  # a valid CR
    trio.run(run_cr_case, cr, expected, genuine)
