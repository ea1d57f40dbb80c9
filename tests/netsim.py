"""Simulated networks for the class 4 engine: no sockets, no real time.

Two simulators share one fault model (:class:`Faults`, drawn from a seeded
:class:`random.Random`):

* :class:`Link` connects two sans-IO :class:`~tp4emu.core.Endpoint` objects back
  to back. It is an event loop over an explicit ``now``: it delivers datagrams
  at their due time and runs ``handle_timer`` at the ``get_timer()`` deadlines,
  jumping straight from one instant to the next. Every datagram sent and
  delivered is logged (in order) so that tests can check what each side knew
  when it sent something.
* :class:`MemoryNetwork` gives the trio driver (:mod:`tp4emu.transport.udp`) in-memory
  :class:`~tp4emu.transport.udp.DatagramSocket` objects. Delays are scheduled by one
  task, in a nursery the network owns, with ``trio`` sleeps: under
  ``trio.testing.MockClock(autojump_threshold=0)`` the whole run takes no
  real time.

Corruption changes one octet so that ``(new - old) % 255 != 0``: the mod-255
sums of the class 4 checksum then always differ, so every corrupted TPDU is
caught (it may also become undecodable, or lose its checksum parameter: it is
dropped either way).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from tp4emu.core import (
    Config,
    Connection,
    ConnectionRequested,
    Endpoint,
    Event,
    Listener,
    State,
)
from tp4emu.wire import TPDU, TPDUError, decode

__all__ = [
    "FaultCounters",
    "Faults",
    "Link",
    "LogEntry",
    "MemoryNetwork",
    "MemorySocket",
    "SimTimeout",
    "corrupt_one_octet",
    "decode_all",
    "establish",
]

Address = Hashable


# --------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Faults:
    """What one direction of a simulated network does to a datagram.

    Probabilities are per datagram and independent. A duplicate is a second
    copy with its own delay (so it may arrive first).
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Probability of an extra random delay, uniform in ``[0, reorder_delay]``."""
    reorder_delay: float = 0.02
    corrupt: float = 0.0
    delay: float = 0.001
    """Fixed one-way delay, seconds."""

    def plan(
        self, rng: random.Random, raw: bytes, counters: FaultCounters
    ) -> list[tuple[float, bytes]]:
        """The copies of *raw* to deliver, as ``(delay, octets)``; empty when lost."""
        counters.sent += 1
        if self.loss and rng.random() < self.loss:
            counters.lost += 1
            return []
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            counters.duplicated += 1
            copies = 2
        out = []
        for _ in range(copies):
            data = raw
            if self.corrupt and rng.random() < self.corrupt:
                counters.corrupted += 1
                data = corrupt_one_octet(rng, raw)
            delay = self.delay
            if self.reorder and rng.random() < self.reorder:
                counters.reordered += 1
                delay += rng.uniform(0.0, self.reorder_delay)
            out.append((delay, data))
        return out


@dataclass
class FaultCounters:
    """What a simulated network did, summed over both directions."""

    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delivered: int = 0
    undeliverable: int = 0
    """Datagrams for an address nobody is bound to (or a closed socket)."""
    overflow: int = 0
    """Datagrams dropped because the receiver's queue was full."""


def corrupt_one_octet(rng: random.Random, raw: bytes) -> bytes:
    """*raw* with one octet changed so that the mod-255 checksum must notice."""
    if not raw:
        return raw
    i = rng.randrange(len(raw))
    old = raw[i]
    while True:
        new = rng.randrange(256)
        if (new - old) % 255:
            break
    return raw[:i] + bytes([new]) + raw[i + 1 :]


def decode_all(raw: bytes) -> list[TPDU]:
    """The TPDUs of *raw* (format inferred from the LI), or [] if undecodable."""
    try:
        return decode(raw)
    except TPDUError:
        return []


# ------------------------------------------------------------ sans-IO link


class SimTimeout(AssertionError):
    """``run_until`` reached its virtual time limit, or nothing was left to do."""


@dataclass(frozen=True)
class LogEntry:
    """One datagram sent by (``kind == "send"``) or delivered to (``"recv"``) a side."""

    seq: int
    time: float
    kind: str
    side: str
    raw: bytes

    @property
    def tpdus(self) -> list[TPDU]:
        return decode_all(self.raw)


class Link:
    """Two core endpoints, ``a`` and ``b``, joined by a faulty datagram link.

    Args:
        a, b: the endpoints (default: new ones with *config_a*/*config_b* and
            seeded reference generators).
        seed: seed of the fault generator.
        faults: faults of both directions; *a_to_b*/*b_to_a* override one.
        start: the initial ``now``.

    Test hooks:
        ``hooks``: callables ``hook(now)`` run after each step's deliveries and
        timers, before the endpoints' output is collected (an application
        reading data there gets its AK sent in the same step).
        ``drop[side]``: a predicate ``(raw) -> bool`` on what *side* sends;
        True drops the datagram before the random faults.
        ``log``: every datagram sent and delivered, in order.
        ``events[side]``: every event the endpoint reported.
    """

    def __init__(
        self,
        a: Endpoint | None = None,
        b: Endpoint | None = None,
        *,
        config_a: Config | None = None,
        config_b: Config | None = None,
        seed: int = 0,
        faults: Faults | None = None,
        a_to_b: Faults | None = None,
        b_to_a: Faults | None = None,
        start: float = 0.0,
        addr_a: Address = ("10.0.0.1", 102),
        addr_b: Address = ("10.0.0.2", 102),
    ) -> None:
        self.rng = random.Random(seed)
        self.a = a if a is not None else Endpoint(config_a, rng=random.Random(seed * 2 + 1))
        self.b = b if b is not None else Endpoint(config_b, rng=random.Random(seed * 2 + 2))
        self.addr = {"a": addr_a, "b": addr_b}
        self.endpoint = {"a": self.a, "b": self.b}
        base = faults or Faults()
        self.faults = {"a": a_to_b or base, "b": b_to_a or base}
        self.counters = FaultCounters()
        self.now = start
        self.log: list[LogEntry] = []
        self.events: dict[str, list[Event]] = {"a": [], "b": []}
        self.hooks: list[Callable[[float], None]] = []
        self.drop: dict[str, Callable[[bytes], bool] | None] = {"a": None, "b": None}
        self._heap: list[tuple[float, int, str, bytes]] = []
        self._seq = itertools.count()
        self.steps = 0

    # ---------------------------------------------------------------- I/O

    tpdus_of = staticmethod(decode_all)

    @staticmethod
    def other(side: str) -> str:
        return "b" if side == "a" else "a"

    def _flush(self) -> None:
        for side in ("a", "b"):
            ep = self.endpoint[side]
            dst = self.other(side)
            for raw, addr in ep.datagrams_to_send(self.now):
                self.log.append(LogEntry(next(self._seq), self.now, "send", side, raw))
                if addr != self.addr[dst]:
                    self.counters.undeliverable += 1
                    continue
                drop = self.drop[side]
                if drop is not None and drop(raw):
                    self.counters.sent += 1
                    self.counters.lost += 1
                    continue
                for delay, data in self.faults[side].plan(self.rng, raw, self.counters):
                    heapq.heappush(self._heap, (self.now + delay, next(self._seq), dst, data))
            self._collect(side)

    def _collect(self, side: str) -> None:
        ep = self.endpoint[side]
        while (event := ep.next_event()) is not None:
            self.events[side].append(event)

    def inject(self, raw: bytes, to: str, delay: float = 0.0) -> None:
        """Deliver *raw* to side *to* (as if sent by the other side) after *delay*."""
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), to, raw))

    def next_time(self) -> float | None:
        """When something is next due (datagram or timer), or None."""
        times = [self._heap[0][0]] if self._heap else []
        for ep in (self.a, self.b):
            t = ep.get_timer()
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def step(self, until: float = math.inf) -> bool:
        """Advance to the next due instant (at most *until*) and process it.

        Returns False, with ``now`` moved to *until* (when finite), when nothing
        is due by then.
        """
        self._flush()
        t = self.next_time()
        if t is None or t > until:
            if until != math.inf:
                self.now = max(self.now, until)
            return False
        self.now = max(self.now, t)
        now = self.now
        self.steps += 1
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, dst, raw = heapq.heappop(heap)
            self.counters.delivered += 1
            self.log.append(LogEntry(next(self._seq), now, "recv", dst, raw))
            self.endpoint[dst].receive_datagram(raw, self.addr[self.other(dst)], now)
        for ep in (self.a, self.b):
            deadline = ep.get_timer()
            if deadline is not None and deadline <= now:
                ep.handle_timer(now)
        self._collect("a")
        self._collect("b")
        for hook in list(self.hooks):
            hook(now)
        self._flush()
        return True

    def run_until(self, predicate: Callable[[], bool], limit: float = 60.0) -> float:
        """Step until *predicate()* holds; return ``now``.

        Raises:
            SimTimeout: *limit* virtual seconds passed, or nothing is left to do.
        """
        self._flush()
        deadline = self.now + limit
        stuck = 0
        while not predicate():
            before = self.now
            if not self.step(until=deadline):
                raise SimTimeout(f"condition not met by t={self.now:.3f} (limit {limit} s)")
            stuck = stuck + 1 if self.now == before else 0
            if stuck > 100_000:
                raise SimTimeout(f"no progress of time at t={self.now:.3f}")
        return self.now

    def run_for(self, duration: float) -> None:
        """Process everything due in the next *duration* seconds."""
        deadline = self.now + duration
        while self.step(until=deadline):
            pass

    # ----------------------------------------------------------- queries

    def sent(self, side: str) -> list[LogEntry]:
        return [e for e in self.log if e.kind == "send" and e.side == side]

    def tpdus_sent(self, side: str, kind: type | None = None) -> list[tuple[float, TPDU]]:
        """``(time, tpdu)`` for every TPDU *side* sent (of type *kind*)."""
        return [
            (e.time, t)
            for e in self.sent(side)
            for t in e.tpdus
            if kind is None or isinstance(t, kind)
        ]

    def stats(self, side: str) -> Any:
        return self.endpoint[side].statistics()


def establish(
    link: Link,
    *,
    called_tsap: bytes | None = None,
    connect_data: bytes = b"",
    confirm_data: bytes = b"",
    limit: float = 120.0,
) -> tuple[Connection, Connection, Listener]:
    """Connect ``a`` (initiator) to ``b`` (responder, confirming explicitly).

    Returns ``(client, server, listener)`` once both are OPEN.
    """
    listener = link.b.listen(called_tsap)
    client = link.a.connect(link.addr["b"], link.now, called_tsap=called_tsap, data=connect_data)
    link.run_until(lambda: any(isinstance(e, ConnectionRequested) for e in link.events["b"]), limit)
    server = link.b.accept(listener)
    assert server is not None and server.state is State.CONFIRMING
    server.confirm(link.now, confirm_data)
    link.run_until(lambda: client.state is State.OPEN and server.state is State.OPEN, limit)
    return client, server, listener


# ------------------------------------------------------------- trio network


class MemorySocket:
    """An in-memory :class:`tp4emu.transport.udp.DatagramSocket` on a :class:`MemoryNetwork`."""

    def __init__(self, net: MemoryNetwork, addr: Address, queue_limit: int) -> None:
        self._net = net
        self._addr = addr
        self._inbox: deque[tuple[bytes, Address]] = deque()
        self._limit = queue_limit
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self.refuse_sends = 0
        """The next this many ``send_nowait`` calls report a full buffer (False)."""

    def getsockname(self) -> Address:
        return self._addr

    async def wait_readable(self) -> None:
        if self._inbox and not self.closed:
            await trio.lowlevel.checkpoint()
            return
        # A closed socket never becomes readable: its reader waits to be cancelled.
        await self._lot.park()

    def recv_nowait(self) -> tuple[bytes, Address] | None:
        if self.closed or not self._inbox:
            return None
        return self._inbox.popleft()

    def send_nowait(self, data: bytes, addr: Address) -> bool:
        if self.closed:
            return True
        if self.refuse_sends:
            self.refuse_sends -= 1
            self._net.refused_sends += 1
            return False
        self._net._send(bytes(data), self._addr, addr)
        return True

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._inbox.clear()
            if self._net._sockets.get(self._addr) is self:
                del self._net._sockets[self._addr]

    def _deliver(self, data: bytes, src: Address) -> bool:
        if len(self._inbox) >= self._limit:
            return False
        self._inbox.append((data, src))
        self._lot.unpark_all()
        return True


class MemoryNetwork:
    """A datagram network in memory for the trio driver, with seeded faults.

    Use ``async with MemoryNetwork.open(seed=..., faults=Faults(...)) as net`` (or
    run :meth:`run` in a nursery yourself), then
    ``open_endpoint(addr, socket=net.socket(addr))``.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        faults: Faults | None = None,
        queue_limit: int = 10_000,
        record: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self._directed: dict[tuple[Address, Address], Faults] = {}
        self.counters = FaultCounters()
        self.refused_sends = 0
        self._queue_limit = queue_limit
        self._sockets: dict[Address, MemorySocket] = {}
        self._heap: list[tuple[float, int, Address, Address, bytes]] = []
        self._seq = itertools.count()
        self._wakeup = trio.Event()
        self.record = record
        self.log: list[tuple[float, Address, Address, bytes]] = []
        """When *record*: ``(time, src, dst, octets)`` of every datagram sent."""
        self.drop: Callable[[Address, Address, bytes], bool] | None = None
        """A predicate ``(src, dst, raw) -> bool``: True drops the datagram."""

    def socket(self, addr: Address) -> MemorySocket:
        """Bind a socket to *addr*."""
        if addr in self._sockets:
            raise OSError(f"address {addr!r} already in use")
        sock = MemorySocket(self, addr, self._queue_limit)
        self._sockets[addr] = sock
        return sock

    def set_faults(self, src: Address, dst: Address, faults: Faults) -> None:
        """Use *faults* for datagrams from *src* to *dst* (one direction)."""
        self._directed[(src, dst)] = faults

    def _send(self, data: bytes, src: Address, dst: Address) -> None:
        now = trio.current_time()
        if self.record:
            self.log.append((now, src, dst, data))
        if self.drop is not None and self.drop(src, dst, data):
            self.counters.sent += 1
            self.counters.lost += 1
            return
        faults = self._directed.get((src, dst), self.faults)
        for delay, copy in faults.plan(self.rng, data, self.counters):
            heapq.heappush(self._heap, (now + delay, next(self._seq), src, dst, copy))
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver datagrams at their due time, forever."""
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, src, dst, data = heapq.heappop(heap)
                sock = self._sockets.get(dst)
                if sock is None:
                    self.counters.undeliverable += 1
                elif sock._deliver(data, src):
                    self.counters.delivered += 1
                else:
                    self.counters.overflow += 1
            self._wakeup = trio.Event()
            if heap:
                with trio.move_on_at(heap[0][0]):
                    await self._wakeup.wait()
            else:
                await self._wakeup.wait()

    @classmethod
    @asynccontextmanager
    async def open(cls, **kwargs: Any) -> AsyncIterator[MemoryNetwork]:
        """A network whose delivery task runs for the duration of the block."""
        net = cls(**kwargs)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(net.run)
            try:
                yield net
            finally:
                nursery.cancel_scope.cancel()
