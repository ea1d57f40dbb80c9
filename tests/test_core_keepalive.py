"""The keep-alive period W grows with the open connections (``Config.keepalive_rate``),
so that an endpoint's idle cost does not grow with their number; never past I/2."""

from __future__ import annotations

import random

import pytest

from tp4emu.core import Config, Endpoint, State
from tp4emu.wire import AK, decode

A = ("10.0.0.1", 1)
B = ("10.0.0.2", 2)


def idle_aks(n: int, config: Config, seconds: float) -> tuple[int, int]:
    """Open *n* connections from a to b, then count the AKs each side sends idle."""
    a = Endpoint(config, rng=random.Random(1))
    b = Endpoint(config, rng=random.Random(2))
    listener = b.listen(None)
    now = 0.0

    def pump() -> list[tuple[str, bytes]]:
        sent = []
        moved = True
        while moved:
            moved = False
            for raw, _ in a.datagrams_to_send(now):
                sent.append(("a", raw))
                b.receive_datagram(raw, A, now)
                moved = True
            for raw, _ in b.datagrams_to_send(now):
                sent.append(("b", raw))
                a.receive_datagram(raw, B, now)
                moved = True
            while (conn := b.accept(listener)) is not None:
                conn.confirm(now)
                moved = True
            while a.next_event() or b.next_event():
                pass
        return sent

    for _ in range(n):
        a.connect(B, now)
        pump()
    assert all(c.state is State.OPEN for c in a.connections + b.connections)
    counts = {"a": 0, "b": 0}
    start = now = 1.0
    while now < start + seconds:
        deadline = min(t for ep in (a, b) if (t := ep.get_timer()) is not None)
        now = deadline
        a.handle_timer(now)
        b.handle_timer(now)
        for side, raw in pump():
            assert all(isinstance(t, AK) for t in decode(raw))
            counts[side] += 1
    assert all(c.state is State.OPEN for c in a.connections + b.connections)
    return counts["a"], counts["b"]


@pytest.mark.parametrize("n", [10, 40, 160])
def test_idle_cost_does_not_grow_with_the_connections(n: int) -> None:
    # rate 4/s: W = max(1 s, n / 4) capped at I/2 = 50 s
    config = Config(window_time=1.0, keepalive_rate=4.0, inactivity_time=100.0)
    a, b = idle_aks(n, config, 200.0)
    w = min(max(1.0, n / 4.0), 50.0)
    expected = 200.0 / w * n
    assert 0.8 * expected <= a <= 1.2 * expected + n
    assert 0.8 * expected <= b <= 1.2 * expected + n
    if n >= 40:  # past the knee: at most the rate, whatever n
        assert a <= 200.0 * 4.0 * 1.2 and b <= 200.0 * 4.0 * 1.2


def test_w_never_exceeds_half_the_inactivity_time() -> None:
    config = Config(window_time=1.0, keepalive_rate=0.5, inactivity_time=8.0)
    a, b = idle_aks(20, config, 40.0)  # n / rate = 40 s, capped at 4 s
    assert 0.8 * 200 <= a <= 1.2 * 200 + 20
    assert 0.8 * 200 <= b <= 1.2 * 200 + 20


def test_keepalive_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keepalive_rate"):
        Config(keepalive_rate=0)
