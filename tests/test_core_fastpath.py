"""Header prediction (``Connection.fast_receive``) and the DT/AK octets the core
builds itself are exactly what the full path does.

* **The octets.** Every DT and every parameter-less AK the core emits is
  byte for byte ``encode_one`` of the TPDU it decodes to (the core builds them
  without the codec), in both formats, with and without checksum, at every
  data length up to the TPDU's limit.
* **The fast path.** Two worlds run the same random scenario -- two
  endpoints, one connection, random TSDUs both ways, datagrams delivered in
  random order, lost, duplicated, corrupted, or forged with a valid checksum
  (fields changed after the fact: LI, code, reference, TPDU-NR, credit),
  timers, reads -- one with ``Endpoint.header_prediction`` on, one with it
  off. Everything observable must be equal after every step: the datagrams
  sent (octets), the user events, the counters, and every attribute of both
  connections. A scenario is only worth something if the fast path was taken:
  the test counts the datagrams it took and requires some.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tp4emu.core import Config, Connection, Endpoint, State
from tp4emu.wire import AK, DT, checksum_octets, decode, encode_one

A = ("10.0.0.1", 1)
B = ("10.0.0.2", 2)

_SKIP = {"_outbox", "_budget", "_stats", "_config", "error"}


def snapshot(conn: Connection) -> dict[str, Any]:
    """Every attribute of *conn*, comparable across worlds."""
    out: dict[str, Any] = {}
    for name in type(conn).__slots__:
        if name in _SKIP:
            continue
        value = getattr(conn, name)
        if name == "_send_tsdus":
            value = [bytes(v) for v in value]
        out[name] = value
    out["error"] = repr(conn.error)
    return out


@dataclass
class World:
    """Two endpoints joined by a hand-driven network, at an explicit time."""

    prediction: bool
    config: Config
    seed: int
    now: float = 0.0
    trace: list[Any] = field(default_factory=list)
    flight: list[tuple[str, bytes]] = field(default_factory=list)  # (destination, octets)

    def __post_init__(self) -> None:
        self.eps = {
            "a": Endpoint(self.config, rng=random.Random(self.seed)),
            "b": Endpoint(self.config, rng=random.Random(self.seed + 1)),
        }
        for ep in self.eps.values():
            ep.header_prediction = self.prediction
        self.addr = {"a": A, "b": B}
        self.conns: dict[str, Connection] = {}
        self.listener = self.eps["b"].listen(None)

    def pump(self, *, acks: bool = True) -> None:
        for name, ep in self.eps.items():
            other = "b" if name == "a" else "a"
            for raw, dst in ep.datagrams_to_send(self.now, acks=acks):
                assert dst == self.addr[other]
                self.trace.append((name, "sent", raw))
                self.flight.append((other, raw))
            while (event := ep.next_event()) is not None:
                self.trace.append((name, type(event).__name__))

    def deliver(self, dst: str, raw: bytes) -> None:
        src = self.addr["b" if dst == "a" else "a"]
        self.eps[dst].receive_datagram(raw, src, self.now)

    def open(self) -> None:
        self.conns["a"] = self.eps["a"].connect(B, self.now)
        self.pump()
        for _ in range(6):
            if "b" not in self.conns:
                conn = self.eps["b"].accept(self.listener)
                if conn is not None:
                    self.conns["b"] = conn
                    conn.confirm(self.now)
            flight, self.flight = self.flight, []
            for dst, raw in flight:
                self.deliver(dst, raw)
            self.pump()
        assert self.conns["a"].state is State.OPEN and self.conns["b"].state is State.OPEN
        self.flight.clear()

    def settle(self) -> None:
        """Deliver everything in flight, and what that brings, until nothing moves."""
        self.pump()
        while self.flight:
            flight, self.flight = self.flight, []
            for dst, raw in flight:
                self.deliver(dst, raw)
            self.pump()

    def advance(self, dt: float) -> None:
        target = self.now + dt
        while True:
            deadlines = [d for ep in self.eps.values() if (d := ep.get_timer()) is not None]
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > target:
                break
            self.now = max(self.now, nxt)
            for ep in self.eps.values():
                ep.handle_timer(self.now)
            self.pump()
        self.now = target

    def observe(self) -> Any:
        return (
            list(self.trace),
            [ep.stats.copy() for ep in self.eps.values()],
            {k: snapshot(c) for k, c in self.conns.items()},
        )


def forge(raw: bytes, pos: int, value: int) -> bytes:
    """*raw* with octet *pos* set to *value* and, when it has one, its checksum made valid."""
    buf = bytearray(raw)
    buf[pos % len(buf)] = value
    li = buf[0]
    code = buf[1] >> 4 if len(buf) > 1 else 0
    fixed = {0xF: (4, 7), 0x6: (4, 9)}.get(code)
    if fixed is not None:
        for f in fixed:
            at = f + 1
            if li >= f + 4 and at + 3 < len(buf) and buf[at] == 0xC3 and buf[at + 1] == 2:
                buf[at + 2 : at + 4] = b"\0\0"
                buf[at + 2 : at + 4] = checksum_octets(buf[: len(buf)], at + 2)
                break
    return bytes(buf)


_BULK = st.tuples(st.just("send"), st.sampled_from("ab"), st.integers(0, 20000))
_FLOW = st.tuples(st.just("deliver_all"), st.booleans())
OPS = st.lists(
    st.one_of(
        _BULK,
        _BULK,
        _FLOW,
        _FLOW,
        _FLOW,
        st.tuples(st.just("read"), st.sampled_from("ab")),
        st.tuples(st.just("deliver"), st.integers(0, 63)),
        st.tuples(st.just("drop"), st.integers(0, 63)),
        st.tuples(st.just("dup"), st.integers(0, 63)),
        st.tuples(st.just("corrupt"), st.integers(0, 63), st.integers(0, 40), st.integers(0, 255)),
        st.tuples(st.just("forge"), st.integers(0, 63), st.integers(0, 12), st.integers(0, 255)),
        st.tuples(st.just("advance"), st.sampled_from([0.0005, 0.003, 0.05, 0.6, 6.0])),
        st.tuples(st.just("pump"), st.booleans()),
    ),
    min_size=25,
    max_size=80,
)


def run(world: World, ops: list[tuple[Any, ...]]) -> list[Any]:
    observed = []
    world.open()
    for op in ops:
        kind = op[0]
        if kind == "send":
            conn = world.conns[op[1]]
            if conn.state is State.OPEN and conn.send_buffer_available >= op[2]:
                conn.send(world.now, bytes(random.Random(op[2]).randbytes(op[2])))
        elif kind == "read":
            world.conns[op[1]].receive()
        elif world.flight and kind in ("deliver", "drop", "dup", "corrupt", "forge"):
            i = op[1] % len(world.flight)
            dst, raw = world.flight[i]
            if kind in ("deliver", "drop"):
                del world.flight[i]
            if kind in ("deliver", "dup"):
                world.deliver(dst, raw)
            elif kind == "corrupt":
                buf = bytearray(raw)
                buf[op[2] % len(buf)] ^= op[3] or 1
                world.deliver(dst, bytes(buf))
            elif kind == "forge":
                world.deliver(dst, forge(raw, op[2], op[3]))
        elif kind == "deliver_all":
            flight, world.flight = world.flight, []
            for dst, raw in flight if op[1] else reversed(flight):
                world.deliver(dst, raw)
        elif kind == "advance":
            world.advance(op[1])
        world.pump(acks=op[1] if kind == "pump" else kind not in ("deliver", "deliver_all"))
        observed.append(world.observe())
    return observed


CONFIGS = [
    Config(),
    Config(use_checksum=False),
    Config(extended_format=True, receive_window=40),
    Config(selective_ack=False, receive_window=4),
    Config(preferred_max_tpdu_size=None, max_tpdu_size=1024),
]


class Taken:
    """Counts the datagrams header prediction took."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.concatenated = 0  # AK + DT datagrams taken whole
        original = Connection.fast_receive

        def counted(conn: Connection, data: bytes, now: float) -> int:
            taken = original(conn, data, now)
            self.count += bool(taken)
            self.concatenated += taken == len(data) and data[1] != 0xF0 and data[0] + 1 < taken
            return taken

        monkeypatch.setattr(Connection, "fast_receive", counted)


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "nock", "ext", "nosack", "1k"])
def test_fast_path_equals_the_full_path(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = Taken(monkeypatch)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=OPS, seed=st.integers(0, 1000))
    def check(ops: list[tuple[Any, ...]], seed: int) -> None:
        fast = run(World(True, config, seed), ops)
        slow = run(World(False, config, seed), ops)
        for step, (f, s) in enumerate(zip(fast, slow, strict=True)):
            assert f == s, f"worlds differ after step {step}: {ops[step]}"

    check()
    assert taken.count > 100  # the scenarios did take the fast path


def test_fast_path_is_taken_for_a_bulk_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = Taken(monkeypatch)
    world = World(True, Config(preferred_max_tpdu_size=8320), 7)
    world.open()
    for _ in range(30):
        world.conns["a"].send(world.now, b"m" * 8192)
        world.settle()
        assert world.conns["b"].receive() == b"m" * 8192
        world.pump()
    dts = [rest[1] for who, *rest in world.trace if who == "a" and rest[0] == "sent"]
    assert len([r for r in dts if r[1] == 0xF0]) == 30  # one DT per 8 KiB TSDU (0xF0 8320)
    assert taken.count >= 30 + 2  # every DT, and the AKs


@pytest.mark.parametrize("config", CONFIGS[:3], ids=["default", "nock", "ext"])
def test_fast_path_takes_a_reply_with_its_ak(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ping-pong: each reply carries the AK of the request (AK + DT, one datagram)."""
    taken = Taken(monkeypatch)
    world = World(True, config, 11)
    world.open()
    a, b = world.conns["a"], world.conns["b"]
    for i in range(20):
        a.send(world.now, b"ping %d" % i)
        world.pump(acks=False)
        for dst, raw in world.flight:
            world.deliver(dst, raw)
        world.flight.clear()
        world.pump(acks=False)
        assert b.receive() == b"ping %d" % i
        b.send(world.now, b"pong %d" % i)
        world.pump(acks=False)
        if i:  # (at first the extended format's window is the CC's credit, 15 of 40: AK at once)
            ((dst, raw),) = world.flight
            assert len(decode(raw)) == 2
        for dst, raw in world.flight:
            world.deliver(dst, raw)
        world.flight.clear()
        world.pump(acks=False)
        assert a.receive() == b"pong %d" % i
    assert (
        taken.concatenated >= 38
    )  # 20 pongs, 19 pings (the first ping has nothing to acknowledge)
    assert a.state is State.OPEN and b.state is State.OPEN


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("checksum", [False, True])
def test_core_built_octets_equal_the_codec(extended: bool, checksum: bool) -> None:
    config = Config(
        extended_format=extended,
        use_checksum=checksum,
        receive_window=40 if extended else 15,
        preferred_max_tpdu_size=None,
        max_tpdu_size=512,
    )
    world = World(True, config, 3)
    world.open()
    a, b = world.conns["a"], world.conns["b"]
    limit = a.max_data
    for size in (0, 1, limit - 1, limit, limit + 1, 2 * limit, 3 * limit + 7):
        a.send(world.now, bytes(range(256)) * (size // 256) + bytes(size % 256))
        world.settle()
        b.receive()
        world.pump()
    seen = {DT: 0, AK: 0}
    for _who, *rest in world.trace:
        if rest[0] != "sent":
            continue
        raw = rest[1]
        for tpdu in decode(raw, extended=extended):
            if isinstance(tpdu, (DT, AK)) and not tpdu.params:
                seen[type(tpdu)] += 1
        if len(decode(raw, extended=extended)) == 1:
            (tpdu,) = decode(raw, extended=extended)
            if isinstance(tpdu, (DT, AK)) and not tpdu.params:
                assert encode_one(tpdu, checksum=checksum) == raw
                assert (tpdu.checksum_ok is True) is checksum
    assert seen[DT] >= 10 and seen[AK] >= 3
