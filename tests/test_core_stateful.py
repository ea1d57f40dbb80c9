"""A hypothesis state machine over two sans-IO endpoints and a hostile network.

Hypothesis chooses what the users do (send TSDUs and expedited data, read) and
what the network does to each datagram in flight (deliver, drop, duplicate,
deliver late, corrupt one octet), and when time jumps. Invariants after every
step: TSDUs arrive whole, in order, without gaps or duplicates; the sender
never has more DTs outstanding than the peer's credit allows; expedited data
arrives in order and exactly once. At the end the network is made reliable and
everything sent must arrive.
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tp4emu.core import Config, Endpoint, State
from tp4emu.wire import DT, decode

A = ("10.0.0.1", 1000)
B = ("10.0.0.2", 2000)
CONFIG = Config(
    max_tpdu_size=128,
    preferred_max_tpdu_size=None,
    receive_window=4,
    max_retransmissions=50,
    inactivity_time=10_000.0,
    window_time=1.0,
    send_buffer=1 << 20,
)


class TwoEndpoints(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.a = Endpoint(CONFIG, rng=random.Random(1))
        self.b = Endpoint(CONFIG, rng=random.Random(2))
        self.in_flight: list[tuple[bytes, tuple[str, int]]] = []  # (datagram, destination)
        listener = self.b.listen(None)
        self.client = self.a.connect(B, self.now)
        self._collect()
        self._deliver_all()
        server = self.b.accept(listener)
        assert server is not None and server.state is State.CONFIRMING
        self.server = server
        server.confirm(self.now)
        for _ in range(3):
            self._collect()
            self._deliver_all()
        assert self.client.state is State.OPEN and self.server.state is State.OPEN
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.ed_sent: list[bytes] = []
        self.ed_received: list[bytes] = []
        self.counter = 0

    # -- network -------------------------------------------------------------

    def _collect(self) -> None:
        for raw, dst in self.a.datagrams_to_send(self.now):
            self.in_flight.append((raw, dst))
        for raw, dst in self.b.datagrams_to_send(self.now):
            self.in_flight.append((raw, dst))

    def _deliver(self, raw: bytes, dst: tuple[str, int]) -> None:
        if dst == B:
            self._check_window(raw)
            self.b.receive_datagram(raw, A, self.now)
        else:
            self.a.receive_datagram(raw, B, self.now)

    def _check_window(self, raw: bytes) -> None:
        """DTs from A never go beyond the window B offered (as B's own state says)."""
        try:
            tpdus = decode(raw)
        except ValueError:
            return
        for t in tpdus:
            if isinstance(t, DT) and t.checksum_ok:
                offset = (t.nr - self.server._rcv_nxt) % 128
                if offset < 64:  # not an old duplicate
                    assert self.server._rcv_nxt + offset < max(self.server._adv_uwe, 1)

    def _deliver_all(self) -> None:
        while self.in_flight:
            batch, self.in_flight = self.in_flight, []
            for raw, dst in batch:
                self._deliver(raw, dst)
            self._collect()

    @rule(data=st.data())
    def network_acts(self, data: st.DataObject) -> None:
        self._collect()
        if not self.in_flight:
            return
        i = data.draw(st.integers(0, len(self.in_flight) - 1))
        raw, dst = self.in_flight.pop(i)
        what = data.draw(st.sampled_from(["deliver", "drop", "duplicate", "late", "corrupt"]))
        if what == "deliver":
            self._deliver(raw, dst)
        elif what == "duplicate":
            self._deliver(raw, dst)
            self.in_flight.append((raw, dst))
        elif what == "late":
            self.in_flight.append((raw, dst))
        elif what == "corrupt":
            pos = data.draw(st.integers(0, len(raw) - 1))
            delta = data.draw(st.integers(1, 254))  # never a multiple of 255: detectable
            bad = bytearray(raw)
            bad[pos] = (bad[pos] + delta) % 256
            if (bad[pos] - raw[pos]) % 255:
                self._deliver(bytes(bad), dst)
        self._collect()

    @rule(dt=st.floats(0.01, 3.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        self.a.handle_timer(self.now)
        self.b.handle_timer(self.now)
        self._collect()

    # -- users ---------------------------------------------------------------

    @rule(size=st.integers(0, 700))
    def client_sends(self, size: int) -> None:
        self.counter += 1
        tsdu = bytes([self.counter % 256]) * size + self.counter.to_bytes(4, "big")
        self.sent.append(tsdu)
        self.client.send(self.now, tsdu)
        self._collect()

    @precondition(lambda self: self.client.expedited_slot_free)
    @rule(data=st.binary(min_size=1, max_size=16))
    def client_sends_expedited(self, data: bytes) -> None:
        self.ed_sent.append(data)
        self.client.send_expedited(self.now, data)
        self._collect()

    @rule()
    def server_reads(self) -> None:
        while (tsdu := self.server.receive()) is not None:
            self.received.append(tsdu)
        while (ed := self.server.receive_expedited()) is not None:
            self.ed_received.append(ed)
        self._collect()

    # -- invariants ------------------------------------------------------------

    @invariant()
    def in_order_no_gaps(self) -> None:
        assert self.received == self.sent[: len(self.received)]
        assert self.ed_received == self.ed_sent[: len(self.ed_received)]

    @invariant()
    def still_open(self) -> None:
        assert self.client.state is State.OPEN, self.client.error
        assert self.server.state is State.OPEN, self.server.error

    def teardown(self) -> None:
        # A reliable network from now on: everything sent must arrive.
        for _ in range(400):
            self._deliver_all()
            self.server_reads()
            if self.received == self.sent and self.ed_received == self.ed_sent:
                break
            self.now += 0.5
            self.a.handle_timer(self.now)
            self.b.handle_timer(self.now)
            self._collect()
        assert self.received == self.sent
        assert self.ed_received == self.ed_sent


TwoEndpoints.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestTwoEndpoints = TwoEndpoints.TestCase
