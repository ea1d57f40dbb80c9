"""Two class 4 cores over a bad link: loss, duplication, reordering, corruption.

Everything runs on :class:`netsim.Link`'s explicit clock, seeded: a failure is
reproducible from its parameters.
"""

from __future__ import annotations

import random

import pytest
from netsim import Faults, Link, establish

from tp4emu.core import Config, Connection, Disconnected, State, Statistics

BAD = Faults(
    loss=0.10,
    duplicate=0.05,
    reorder=0.20,
    reorder_delay=0.03,
    corrupt=0.05,
    delay=0.005,
)

SEEDS = [1, 2, 3, 4, 5]


def _reader(conn: Connection, sink: list[bytes]):
    def hook(now: float) -> None:
        while (tsdu := conn.receive()) is not None:
            sink.append(tsdu)

    return hook


def _total(link: Link) -> Statistics:
    a, b = link.stats("a"), link.stats("b")
    return Statistics(**{k: v + getattr(b, k) for k, v in a.as_dict().items()})


@pytest.mark.parametrize("extended", [False, True], ids=["normal", "extended"])
@pytest.mark.parametrize("seed", SEEDS)
def test_tsdus_arrive_exact_and_in_order(seed: int, extended: bool) -> None:
    config = Config(
        max_tpdu_size=512,
        preferred_max_tpdu_size=None,
        extended_format=extended,
        receive_window=40 if extended else 15,
        max_retransmissions=12,
    )
    link = Link(config_a=config, config_b=config, faults=BAD, seed=seed)
    client, server, _ = establish(link, connect_data=b"hello", confirm_data=b"welcome")
    assert client.extended is extended and server.extended is extended
    assert server.connect_data == b"hello" and client.confirm_data == b"welcome"

    rng = random.Random(seed)
    to_server = [rng.randbytes(rng.choice([0, 1, rng.randrange(2, 8000)])) for _ in range(60)]
    to_client = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(30)]
    expedited = [rng.randbytes(rng.randrange(1, 17)) for _ in range(5)]
    got_s: list[bytes] = []
    got_c: list[bytes] = []
    got_ed: list[bytes] = []
    link.hooks += [
        _reader(server, got_s),
        _reader(client, got_c),
        lambda now: got_ed.extend(iter(server.receive_expedited, None)),
    ]
    for i, tsdu in enumerate(to_server):
        client.send(link.now, tsdu)
        if i < len(to_client):
            server.send(link.now, to_client[i])
        if i % 12 == 0:
            client.send_expedited(link.now, expedited[i // 12])
            # the ED slot frees only when its EA arrives: let the link run a little
            link.run_until(lambda: client.expedited_slot_free, limit=120)
    link.run_until(
        lambda: (
            len(got_s) == len(to_server)
            and len(got_c) == len(to_client)
            and client.send_idle
            and server.send_idle
        ),
        limit=600,
    )
    assert got_s == to_server
    assert got_c == to_client
    assert got_ed == expedited
    assert client.state is State.OPEN and server.state is State.OPEN

    # an orderly release across the same bad link
    client.disconnect(link.now)
    link.run_until(lambda: server.state is not State.OPEN, limit=120)
    assert isinstance(server.error, Disconnected) and server.error.reason == 128
    link.run_until(lambda: client.state is State.CLOSED and server.state is State.CLOSED, limit=120)

    # the faults did happen, and were recovered from: the test is not vacuous
    total = _total(link)
    counters = link.counters
    assert counters.lost > 0 and counters.duplicated > 0
    assert counters.reordered > 0 and counters.corrupted > 0
    assert total.retransmissions > 0
    assert total.bad_checksum + total.undecodable + total.missing_checksum > 0
    assert total.bad_checksum > 0
    assert total.duplicate_dt > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_establishment_survives_a_bad_link(seed: int) -> None:
    """CR, CC and the third AK are retransmitted until the handshake completes."""
    faults = Faults(loss=0.4, duplicate=0.2, reorder=0.3, corrupt=0.1, delay=0.01)
    # At 40 % loss the default 3x amplification budget (about three CCs per CR)
    # can run out before the third message gets through: see docs/security.md.
    config = Config(max_retransmissions=20, amplification_factor=10.0)
    for attempt in range(5):
        link = Link(config_a=config, config_b=config, faults=faults, seed=seed * 10 + attempt)
        client, server, _ = establish(link, limit=300)
        assert client.state is State.OPEN and server.state is State.OPEN
        assert client.remote_ref == server.local_ref and server.remote_ref == client.local_ref
        # no duplicate connection was created by retransmitted or duplicated CRs
        assert len([c for c in link.b.connections if c.state is not State.CLOSED]) == 1
