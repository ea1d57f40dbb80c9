"""Property: over any lossy link, what is delivered is a prefix of what was sent (issue 9).

Two class 4 cores on :class:`netsim.Link`'s explicit clock, with loss,
duplication, reordering and corruption drawn by hypothesis, selective
acknowledgement on or off on either side, and a reader that sometimes leaves
TSDUs unread (so the receiver's credit shrinks below DTs already in flight and
opens again). At every step of the simulation the TSDUs received must be a
prefix of those sent, in order, octet for octet; at the end everything has
arrived, or -- only where loss is extreme -- the connection ended with an error
and what did arrive is still a prefix. Bounded: a fixed number of examples,
virtual time only.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netsim import Faults, Link, establish

from tp4emu.core import Config, State


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**16),
    loss=st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2, 0.3]),
    duplicate=st.sampled_from([0.0, 0.05]),
    reorder=st.sampled_from([0.0, 0.2]),
    corrupt=st.sampled_from([0.0, 0.02]),
    sack_a=st.booleans(),
    sack_b=st.booleans(),
    extended=st.booleans(),
    read_probability=st.sampled_from([1.0, 0.5, 0.1]),
)
def test_delivered_is_always_a_prefix_of_what_was_sent(
    seed: int,
    loss: float,
    duplicate: float,
    reorder: float,
    corrupt: float,
    sack_a: bool,
    sack_b: bool,
    extended: bool,
    read_probability: float,
) -> None:
    def config(sack: bool) -> Config:
        return Config(
            max_tpdu_size=256,
            preferred_max_tpdu_size=None,
            extended_format=extended,
            receive_window=24 if extended else 8,
            selective_ack=sack,
            max_retransmissions=10,
        )

    faults = Faults(
        loss=loss,
        duplicate=duplicate,
        reorder=reorder,
        reorder_delay=0.02,
        corrupt=corrupt,
        delay=0.003,
    )
    link = Link(config_a=config(sack_a), config_b=config(sack_b), seed=seed)
    client, server, _ = establish(link)
    assert client.selective_ack == server.selective_ack == (sack_a and sack_b)
    link.faults = {"a": faults, "b": faults}  # (after a clean handshake: data is the point)
    rng = random.Random(seed)
    sent = [rng.randbytes(rng.choice([0, 1, rng.randrange(2, 1500)])) for _ in range(25)]
    for tsdu in sent:
        client.send(link.now, tsdu)
    got: list[bytes] = []

    def read(now: float) -> None:
        while server.receivable and rng.random() < read_probability:
            tsdu = server.receive()
            assert tsdu is not None
            got.append(tsdu)

    def check(now: float) -> None:
        assert got == sent[: len(got)], f"not a prefix at t={now}"

    link.hooks.extend([read, check])
    deadline = link.now + 600.0
    while len(got) < len(sent) and link.now < deadline:
        if client.state is not State.OPEN or server.state is not State.OPEN:
            break
        if not link.step(until=deadline):
            break
    check(link.now)
    if len(got) < len(sent):
        # only extreme loss may end the connection; then it ended with an error
        assert loss >= 0.2, (client.error, server.error, len(got))
        assert client.error is not None or server.error is not None
