"""Data transfer of the sans-IO class 4 engine, on an explicit clock (no trio).

Two core endpoints run back to back through :class:`netsim.Link`; what each
side sent and received is checked from the decoded datagrams of the link's log.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random

import pytest
from netsim import Faults, Link, LogEntry, establish

from tp4emu.core import (
    Config,
    Connection,
    ConnectionClosed,
    ConnectionRequested,
    ConnectionTerminated,
    ConnectionTimedOut,
    DataReceived,
    Disconnected,
    ExpeditedReceived,
    LocalProtocolError,
    State,
)
from tp4emu.wire import AK, DR, DT, EA, ED, DRReason, FlowControlConfirmation, encode_one

SMALL = Config(max_tpdu_size=128, preferred_max_tpdu_size=None)
"""119 octets of user data per DT (5 + 4 header); no 0xF0, which would let the
TPDU size grow to the default preferred 8320 whatever ``max_tpdu_size`` says."""


def make(
    config: Config = SMALL,
    config_b: Config | None = None,
    *,
    delay: float = 0.01,
    seed: int = 0,
) -> tuple[Link, Connection, Connection]:
    link = Link(config_a=config, config_b=config_b or config, faults=Faults(delay=delay), seed=seed)
    client, server, _ = establish(link)
    return link, client, server


def reader(conn: Connection, sink: list[bytes]):
    """A Link hook that reads every TSDU as soon as it is ready."""

    def hook(now: float) -> None:
        while (tsdu := conn.receive()) is not None:
            sink.append(tsdu)

    return hook


def payload(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def unwrap(nr: int, base: int, mod: int) -> int:
    """The sequence number >= *base* (within half the space) whose wire value is *nr*."""
    return base + ((nr - base) % mod)


def check_window(link: Link, sender: str, mod: int) -> dict[str, int]:
    """Every *new* DT *sender* sent lies inside the window it had learnt by then.

    Mirrors what the sender knows: the CC/CR credit, then the AKs delivered to it
    (an AK older than the newest one by (YR-TU-NR, subsequence) is ignored, as
    ISO 8073 says). Returns figures about the run.
    """
    lwe, sub, credit = 0, -1, None
    highest = -1
    max_outstanding = 0
    max_credit = 0
    for e in link.log:
        if e.side != sender:
            continue
        for t in e.tpdus:
            if e.kind == "recv":
                if t.checksum_ok is False:
                    continue
                if credit is None and type(t).__name__ in ("CC", "CR"):
                    credit = t.credit
                elif isinstance(t, AK):
                    seq = unwrap(t.nr, lwe, mod)
                    if (seq, t.subsequence) < (lwe, sub):
                        continue
                    lwe, sub, credit = seq, t.subsequence, t.credit
                    max_credit = max(max_credit, credit)
            elif isinstance(t, DT):
                assert credit is not None
                seq = unwrap(t.nr, lwe, mod)
                if seq > highest:
                    assert seq < lwe + credit, (
                        f"DT {seq} sent at t={e.time} outside the window [{lwe}, {lwe + credit})"
                    )
                    highest = seq
                max_outstanding = max(max_outstanding, highest + 1 - lwe)
    return {"highest": highest, "max_outstanding": max_outstanding, "max_credit": max_credit}


def dts_of(entries: list[LogEntry]) -> list[DT]:
    return [t for e in entries for t in e.tpdus if isinstance(t, DT)]


# ----------------------------------------------------------- segmentation


@pytest.mark.parametrize("extended", [False, True])
def test_segmentation_around_max_data(extended: bool) -> None:
    cfg = Config(max_tpdu_size=128, preferred_max_tpdu_size=None, extended_format=extended)
    link, client, server = make(cfg)
    m = client.max_data
    assert m == 128 - (8 if extended else 5) - 4
    assert client.extended is extended and server.extended is extended
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    rng = random.Random(1)
    sizes = [0, 1, m - 1, m, m + 1, 2 * m - 1, 2 * m, 2 * m + 1, 5 * m + 7]
    for size in sizes:
        data = payload(rng, size)
        mark = len(link.log)
        want = len(got) + 1
        client.send(link.now, data)
        link.run_until(lambda want=want: len(got) == want)
        assert got[-1] == data
        dts = dts_of([e for e in link.log[mark:] if e.side == "a" and e.kind == "send"])
        expected = max(1, math.ceil(size / m))
        assert len(dts) == expected, size
        assert [d.eot for d in dts] == [False] * (expected - 1) + [True]
        assert all(len(d.data) == m for d in dts[:-1])
        assert b"".join(d.data for d in dts) == data
        assert all(d.extended is extended for d in dts)
    assert [len(g) for g in got] == sizes


def test_empty_tsdu_is_one_dt_with_eot() -> None:
    link, client, server = make()
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    mark = len(link.log)
    client.send(link.now, b"")
    link.run_until(lambda: got == [b""])
    dts = dts_of([e for e in link.log[mark:] if e.side == "a" and e.kind == "send"])
    assert len(dts) == 1 and dts[0].eot and dts[0].data == b""


def test_reassembly_of_interleaved_tsdus_in_both_directions() -> None:
    link, client, server = make()
    rng = random.Random(7)
    to_server = [payload(rng, rng.randrange(0, 600)) for _ in range(30)]
    to_client = [payload(rng, rng.randrange(0, 600)) for _ in range(30)]
    got_s: list[bytes] = []
    got_c: list[bytes] = []
    link.hooks += [reader(server, got_s), reader(client, got_c)]
    for a, b in zip(to_server, to_client, strict=True):
        client.send(link.now, a)
        server.send(link.now, b)
    link.run_until(lambda: len(got_s) == 30 and len(got_c) == 30)
    assert got_s == to_server and got_c == to_client


# ------------------------------------------------------ sequence numbers


def test_normal_format_wraps_modulo_128() -> None:
    link, client, server = make()
    rng = random.Random(3)
    tsdus = [payload(rng, rng.randrange(1, 300)) for _ in range(260)]
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for t in tsdus:
        client.send(link.now, t)
    link.run_until(lambda: len(got) == len(tsdus), limit=300)
    assert got == tsdus
    nrs = [d.nr for d in dts_of(link.sent("a"))]
    assert len(nrs) > 300
    assert max(nrs) == 127 and min(nrs) == 0
    wraps = sum(1 for x, y in itertools.pairwise(nrs) if x == 127 and y == 0)
    assert wraps >= 2
    assert all(d.extended is False for d in dts_of(link.sent("a")))
    # the AKs wrap too, and the sender never overran the window across the wraps
    assert all(0 <= ak.nr < 128 for _, ak in link.tpdus_sent("b", AK))
    figures = check_window(link, "a", 128)
    assert figures["highest"] == len(nrs) - 1


def test_extended_format_many_dts_and_large_credit() -> None:
    cfg = Config(
        max_tpdu_size=128, preferred_max_tpdu_size=None, extended_format=True, receive_window=40
    )
    link, client, server = make(cfg)
    assert client.extended and server.extended
    rng = random.Random(4)
    tsdus = [payload(rng, rng.randrange(1, 400)) for _ in range(200)]
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for t in tsdus:
        client.send(link.now, t)
    link.run_until(lambda: len(got) == len(tsdus), limit=300)
    assert got == tsdus
    dts = dts_of(link.sent("a"))
    assert len(dts) > 300
    assert [d.nr for d in dts] == list(range(len(dts)))  # no loss: sent once, in order
    assert all(d.extended for d in dts)
    aks = [ak for _, ak in link.tpdus_sent("b", AK)]
    assert all(ak.extended for ak in aks)
    # a credit above 15 needs the extended AK; the sender used it
    figures = check_window(link, "a", 1 << 31)
    assert figures["max_credit"] == 40
    assert figures["max_outstanding"] > 15


def _shift_sequence_space(sender: Connection, receiver: Connection, start: int) -> None:
    """White box: move an idle connection's DT numbering to *start* on both sides.

    The engine keeps unbounded sequence numbers internally and reduces them
    modulo 2**31 on the wire only, so shifting both ends by the same amount is
    a consistent state; it lets the test cross the 2**31 wrap without sending
    two billion DTs.
    """
    assert not sender._unacked and not sender._send_tsdus and not receiver._rcv_ooo
    assert sender._snd_una == sender._snd_nxt == receiver._rcv_nxt
    shift = start - sender._snd_nxt
    sender._snd_una += shift
    sender._snd_nxt += shift
    sender._snd_uwe += shift
    seq, sub, cdt = sender._ak_seen
    sender._ak_seen = (seq + shift, sub, cdt)
    sender._recover += shift
    nr, sub2, cdt2 = sender._peer_window
    sender._peer_window = ((nr + shift) % (1 << 31), sub2, cdt2)
    receiver._rcv_nxt += shift
    receiver._adv_nr += shift
    receiver._adv_uwe += shift


def test_extended_format_wraps_modulo_2_31() -> None:
    cfg = Config(
        max_tpdu_size=128, preferred_max_tpdu_size=None, extended_format=True, receive_window=20
    )
    link, client, server = make(cfg)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    client.send(link.now, b"before")
    link.run_until(lambda: got == [b"before"] and client.send_idle)
    link.run_for(0.1)  # nothing left in flight: an AK numbered before the shift would be
    # read after it as acknowledging DTs never sent (a protocol error)
    _shift_sequence_space(client, server, (1 << 31) - 25)
    rng = random.Random(5)
    tsdus = [payload(rng, rng.randrange(1, 300)) for _ in range(40)]
    mark = len(link.log)
    for t in tsdus:
        client.send(link.now, t)
    link.run_until(lambda: len(got) == 41 and client.send_idle, limit=120)
    assert got[1:] == tsdus
    nrs = [d.nr for d in dts_of([e for e in link.log[mark:] if e.kind == "send"])]
    assert nrs[0] == (1 << 31) - 25
    assert (1 << 31) - 1 in nrs and 0 in nrs
    i = nrs.index((1 << 31) - 1)
    assert nrs[i + 1] == 0
    assert all(n < 1 << 31 for n in nrs)
    assert client.send_idle


def test_extended_format_wrap_with_loss_and_reordering() -> None:
    cfg = Config(
        max_tpdu_size=128, preferred_max_tpdu_size=None, extended_format=True, receive_window=20
    )
    link, client, server = make(cfg)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    _shift_sequence_space(client, server, (1 << 31) - 10)
    link.faults = dict.fromkeys(
        "ab", Faults(loss=0.1, duplicate=0.1, reorder=0.3, reorder_delay=0.05, delay=0.01)
    )
    rng = random.Random(6)
    tsdus = [payload(rng, rng.randrange(1, 500)) for _ in range(60)]
    for t in tsdus:
        client.send(link.now, t)
    link.run_until(lambda: len(got) == len(tsdus), limit=600)
    assert got == tsdus
    assert link.stats("a").retransmissions > 0


# ------------------------------------------------------------ flow control


def test_sender_respects_credit_with_a_slow_reader() -> None:
    cfg_b = Config(max_tpdu_size=128, preferred_max_tpdu_size=None, receive_window=4)
    link, client, server = make(SMALL, cfg_b)
    rng = random.Random(8)
    tsdus = [payload(rng, rng.randrange(1, 400)) for _ in range(40)]
    for t in tsdus:
        client.send(link.now, t)
    got: list[bytes] = []
    for _ in range(10_000):
        if len(got) == len(tsdus):
            break
        link.run_for(0.05)  # the reader takes one TSDU every 50 ms
        tsdu = server.receive()
        if tsdu is not None:
            got.append(tsdu)
    assert got == tsdus
    figures = check_window(link, "a", 128)
    assert figures["max_outstanding"] <= 4
    assert figures["max_credit"] == 4
    # the credit did shrink below the full window at some point
    assert any(ak.credit < 4 for _, ak in link.tpdus_sent("b", AK))


def test_zero_window_probe_and_reopening() -> None:
    link, client, server = make(SMALL)  # receive window 15 TPDUs
    rng = random.Random(9)
    tsdus = [payload(rng, 100) for _ in range(40)]  # one DT each
    for t in tsdus:
        client.send(link.now, t)
    link.run_for(3.0)  # nobody reads at the server
    dts = dts_of(link.sent("a"))
    assert [d.nr for d in dts] == list(range(15)), "the sender stopped at the credit"
    aks = [ak for _, ak in link.tpdus_sent("b", AK)]
    assert aks[-1].nr == 15 and aks[-1].credit == 0
    # zero window with data waiting: the sender probes with an AK carrying FCC
    probes = [(t, ak) for t, ak in link.tpdus_sent("a", AK) if ak.flow_control_confirmation]
    assert len(probes) >= 3
    fcc = probes[0][1].flow_control_confirmation
    assert fcc == FlowControlConfirmation(15, 0, 0)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert all(g2 == pytest.approx(2 * g1) for g1, g2 in itertools.pairwise(gaps)), gaps
    assert check_window(link, "a", 128)["max_outstanding"] == 15
    assert server.state is State.OPEN and client.state is State.OPEN
    # reading reopens the window: an AK with the same YR-TU-NR, credit > 0 and a subsequence
    mark = len(link.log)
    got = [server.receive()]
    link.hooks.append(reader(server, got))
    link.run_until(lambda: len(got) == len(tsdus), limit=60)
    assert got == tsdus
    reopen = [t for e in link.log[mark:] if e.kind == "send" and e.side == "b" for t in e.tpdus]
    first_ak = next(t for t in reopen if isinstance(t, AK))
    assert first_ak.nr == 15 and first_ak.credit > 0 and first_ak.subsequence > 0
    check_window(link, "a", 128)


def test_window_timer_resends_lost_window_update() -> None:
    """The AK reopening the window is lost: the probe (or W) recovers."""
    link, client, server = make(SMALL)
    for i in range(20):
        client.send(link.now, bytes([i]) * 50)
    link.run_for(1.0)
    lost = []

    def drop_first_ak(raw: bytes) -> bool:
        if not lost and any(isinstance(t, AK) for t in Link.tpdus_of(raw)):
            lost.append(raw)
            return True
        return False

    link.drop["b"] = drop_first_ak
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    link.run_until(lambda: len(got) == 20, limit=60)
    assert lost and got == [bytes([i]) * 50 for i in range(20)]


# ------------------------------------------------- loss, order, duplicates


def _drop_nth(kind: type, n: int, count: int = 1):
    """A drop predicate losing the *n*-th (0-based) .. n+count-1-th datagram with a *kind*."""
    seen = [0]

    def pred(raw: bytes) -> bool:
        if any(isinstance(t, kind) for t in Link.tpdus_of(raw)):
            seen[0] += 1
            return n < seen[0] <= n + count
        return False

    return pred


def test_out_of_order_dts_are_buffered_within_the_window() -> None:
    link, client, server = make(SMALL)
    link.drop["a"] = _drop_nth(DT, 0)  # the first DT of the batch is lost
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    tsdus = [bytes([i]) * 100 for i in range(10)]
    for t in tsdus:
        client.send(link.now, t)
    t0 = link.now
    link.run_until(lambda: link.b.stats.out_of_order == 9)
    assert got == [] and not server.receivable  # held back behind the hole
    aks = [ak for _, ak in link.tpdus_sent("b", AK)]
    assert aks[-1].nr == 0  # still asking for DT 0
    link.run_until(lambda: len(got) == 10)
    assert got == tsdus
    stats_b = link.stats("b")
    assert stats_b.out_of_order == 9 and stats_b.duplicate_dt == 0
    assert link.stats("a").retransmissions == 1
    # Each DT beyond the hole is acknowledged at once: the third duplicate AK
    # makes the sender retransmit DT 0 well before T1 expires.
    assert link.stats("a").fast_retransmissions == 1
    retx_time = [t for t, d in link.tpdus_sent("a", DT) if d.nr == 0][1]
    assert retx_time - t0 < client.rto
    assert [d.nr for d in dts_of(link.sent("a"))] == [*range(10), 0]


def test_out_of_window_dt_is_dropped_and_reacknowledged() -> None:
    link, _client, server = make(SMALL)
    raw = encode_one(DT(server.local_ref, 40, True, b"far"), checksum=True)
    n_aks = len(link.tpdus_sent("b", AK))
    link.inject(raw, to="b")
    link.run_for(0.001)
    assert link.stats("b").out_of_window == 1
    assert not server.receivable
    assert len(link.tpdus_sent("b", AK)) == n_aks + 1


def test_duplicate_dts_are_dropped_and_reacknowledged() -> None:
    link, client, server = make(SMALL)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for i in range(3):
        client.send(link.now, bytes([i]) * 10)
    link.run_until(lambda: len(got) == 3 and client.send_idle)
    old = [e.raw for e in link.sent("a") if any(isinstance(t, DT) for t in e.tpdus)]
    n_aks = len(link.tpdus_sent("b", AK))
    for raw in old:
        link.inject(raw, to="b")
    link.run_for(0.005)
    assert link.stats("b").duplicate_dt == 3
    assert got == [bytes([i]) * 10 for i in range(3)]
    new_aks = [ak for _, ak in link.tpdus_sent("b", AK)][n_aks:]
    assert new_aks and all(ak.nr == 3 for ak in new_aks)


def test_duplicate_of_a_buffered_out_of_order_dt() -> None:
    link, client, server = make(SMALL)
    link.drop["a"] = _drop_nth(DT, 0)
    link.faults["a"] = Faults(duplicate=1.0, delay=0.01)  # every datagram twice
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    tsdus = [bytes([i]) * 20 for i in range(4)]
    for t in tsdus:
        client.send(link.now, t)
    link.run_until(lambda: len(got) == 4)
    assert got == tsdus
    stats_b = link.stats("b")
    assert stats_b.out_of_order == 3
    assert stats_b.duplicate_dt >= 3  # the second copies of DT 1..3 (and of DT 0)


# ------------------------------------------------------- retransmission


def _with_rtt_samples(delay: float, **cfg: object) -> tuple[Link, Connection, Connection]:
    config = Config(
        max_tpdu_size=128,
        preferred_max_tpdu_size=None,
        window_time=100.0,
        inactivity_time=200.0,
        **cfg,
    )
    link, client, server = make(config, delay=delay)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for i in range(5):  # one at a time: five clean RTT samples
        client.send(link.now, bytes([i]))
        link.run_until(lambda: client.send_idle)
    link.hooks.clear()
    return link, client, server


def test_retransmission_uses_rtt_estimate_and_doubles() -> None:
    link, client, _server = _with_rtt_samples(0.05, max_retransmissions=7)
    rtt = 0.1
    rto = client.rto
    assert rtt < rto < client._config.initial_retransmit_time  # adaptive, not the default
    link.drop["a"] = lambda raw: any(isinstance(t, DT) for t in Link.tpdus_of(raw))
    client.send(link.now, b"lost")
    link.run_until(lambda: client.state is not State.OPEN, limit=200)
    times = [t for t, d in link.tpdus_sent("a", DT) if d.data == b"lost"]
    assert len(times) == 1 + 7
    gaps = [b - a for a, b in itertools.pairwise(times)]
    cap = client._config.max_retransmit_time
    expected = [min(rto * 2**k, cap) for k in range(len(gaps))]
    assert gaps == pytest.approx(expected), (gaps, expected)
    assert any(g == pytest.approx(cap) for g in gaps) and gaps[0] < cap  # doubled up to the cap


def test_give_up_after_n_retransmissions() -> None:
    # give_up_time 0: N alone decides (test_give_up_needs_time_without_progress_too: both)
    link, client, server = _with_rtt_samples(0.01, max_retransmissions=3, give_up_time=0.0)
    link.drop["a"] = lambda raw: any(isinstance(t, DT) for t in Link.tpdus_of(raw))
    mark = len(link.events["a"])
    client.send(link.now, b"doomed")
    link.run_until(lambda: client.state is not State.OPEN, limit=200)
    times = [t for t, d in link.tpdus_sent("a", DT) if d.data == b"doomed"]
    assert len(times) == 4  # first transmission and N = 3 retransmissions
    drs = [(t, dr) for t, dr in link.tpdus_sent("a", DR)]
    assert len(drs) == 1 and drs[0][0] > times[-1]
    assert drs[0][1].reason == DRReason.REMOTE_CONGESTION  # 129, as netiso once open
    assert isinstance(client.error, ConnectionTimedOut)
    assert isinstance(client.error, TimeoutError)
    assert client.error.by_peer is False
    assert any(isinstance(e, ConnectionTerminated) for e in link.events["a"][mark:])
    # the DR reaches the server, which confirms and reports the release
    link.run_until(lambda: server.state is not State.OPEN)
    assert isinstance(server.error, Disconnected) and server.error.by_peer
    assert server.error.reason == DRReason.REMOTE_CONGESTION
    # both references are frozen for L, then freed
    link.run_until(lambda: client.state is State.CLOSED and server.state is State.CLOSED, limit=60)
    assert any(isinstance(e, ConnectionClosed) for e in link.events["a"])
    with pytest.raises(LocalProtocolError):
        client.send(link.now, b"late")


def test_lost_ack_is_recovered_by_retransmission() -> None:
    link, client, server = make(SMALL)
    link.drop["b"] = _drop_nth(AK, 0)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    client.send(link.now, b"x" * 50)
    link.run_until(lambda: client.send_idle, limit=30)
    assert got == [b"x" * 50]
    assert link.stats("b").duplicate_dt == 1  # the retransmission, acknowledged again


def _bulk(link: Link, client: Connection, server: Connection, size: int) -> float:
    """Send *size* random octets as 64 KiB TSDUs; return the virtual time taken."""
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    data = random.Random(size).randbytes(size)
    start = link.now
    for i in range(0, size, 65536):
        client.send(link.now, data[i : i + 65536])
    link.run_until(lambda: client.send_idle, limit=3600)
    assert b"".join(got) == data
    return link.now - start


def test_rtt_estimate_ignores_loss_recovery() -> None:
    link, client, server = _with_rtt_samples(0.01)
    rto = client.rto
    link.drop["a"] = _drop_nth(DT, 0)  # DT n is lost; n+1..n+9 arrive
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for i in range(10):
        client.send(link.now, bytes([i]) * 10)
    link.run_until(lambda: client.send_idle)
    assert len(got) == 10 and link.stats("a").retransmissions == 1
    # Karn: every DT acknowledged was outstanding across the retransmission, so there
    # is no clean sample and the estimate must not move (at a807eac: srtt 0.02 -> 0.026,
    # rto 0.05 -> 0.083, the recovery time taken as RTT)
    assert client.rto == pytest.approx(rto)


def test_rtt_estimate_ignores_two_hole_recovery() -> None:
    """Holes at DT n and n+5: T1 recovers the first, the partial AK the second."""
    link, client, server = _with_rtt_samples(0.01)
    rto = client.rto
    lost: set[bytes] = set()

    def drop_first_copy(raw: bytes) -> bool:
        for t in Link.tpdus_of(raw):
            if isinstance(t, DT) and t.data in (b"\0" * 10, b"\5" * 10) and t.data not in lost:
                lost.add(t.data)
                return True
        return False

    link.drop["a"] = drop_first_copy
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    for i in range(10):
        client.send(link.now, bytes([i]) * 10)
    link.run_until(lambda: client.send_idle)
    assert got == [bytes([i]) * 10 for i in range(10)]
    assert link.stats("a").retransmissions == 2
    assert client.rto == pytest.approx(rto)


def test_rto_stays_near_the_rtt_under_steady_loss() -> None:
    config = Config(max_tpdu_size=1024, preferred_max_tpdu_size=None)
    link = Link(config_a=config, config_b=config, faults=Faults(loss=0.1, delay=0.002), seed=42)
    client, server, _ = establish(link)
    elapsed = _bulk(link, client, server, 256 * 1024)
    # RTT is 4 ms: a T1 above the 0.5 s default means the estimate is polluted
    # (at a807eac: rto 4.0, the cap, srtt ~2 s, and 256 KiB took ~59 s of virtual time).
    assert client.rto < config.initial_retransmit_time, (client.rto, client._srtt, elapsed)


def test_deferred_confirm_does_not_inflate_the_initiators_rto() -> None:
    config = Config()  # CR retransmitted after 1 s: a confirm at 0.8 s is not retransmission
    link = Link(config_a=config, config_b=config, faults=Faults(delay=0.002))
    listener = link.b.listen()
    client = link.a.connect(link.addr["b"], link.now)
    link.run_until(lambda: any(isinstance(e, ConnectionRequested) for e in link.events["b"]))
    link.run_for(0.8)  # the responder's user thinks before confirming
    server = link.b.accept(listener)
    assert server is not None
    server.confirm(link.now)
    link.run_until(lambda: client.state is State.OPEN and server.state is State.OPEN)
    # CC->AK: a true RTT of 4 ms, one sample (RTTVAR = RTT / 2): T1 = SRTT + 4 RTTVAR,
    # above the floor SRTT + the client's acknowledgement time + G
    assert config.ack_time is not None
    assert 0.004 + config.ack_time + config.clock_granularity < 0.012
    assert server.rto == pytest.approx(0.004 + 4 * 0.002)
    # RTT 4 ms (at a807eac: srtt 0.804, rto 2.41 s, so the first lost DT cost 2.4 s)
    # (no sample yet: the initial T1 plus the server's announced acknowledgement time)
    assert client.rto <= config.initial_retransmit_time + config.ack_time, (
        client.rto,
        client._srtt,
    )


# ------------------------------------------------------------- expedited


def test_expedited_size_limits() -> None:
    link, client, server = make()
    with pytest.raises(ValueError):
        client.send_expedited(link.now, b"")
    with pytest.raises(ValueError):
        client.send_expedited(link.now, b"x" * 17)
    client.send_expedited(link.now, b"y" * 16)
    link.run_until(lambda: server.expedited_receivable)
    assert server.receive_expedited() == b"y" * 16
    assert server.receive_expedited() is None


def test_expedited_one_outstanding_and_ea() -> None:
    link, client, server = make()
    for i in range(4):
        client.send_expedited(link.now, bytes([i]) * (i + 1))
    assert not client.expedited_slot_free
    got: list[bytes] = []
    link.hooks.append(lambda now: got.extend(iter(server.receive_expedited, None)))
    link.run_until(lambda: len(got) == 4 and client.expedited_slot_free)
    assert got == [bytes([i]) * (i + 1) for i in range(4)]
    # at any moment at most one ED is unacknowledged
    outstanding = 0
    for e in link.log:
        for t in e.tpdus:
            if e.kind == "send" and e.side == "a" and isinstance(t, ED):
                outstanding += 1
                assert outstanding == 1
            if e.kind == "recv" and e.side == "a" and isinstance(t, EA):
                outstanding -= 1
    eds = [ed for _, ed in link.tpdus_sent("a", ED)]
    eas = [ea for _, ea in link.tpdus_sent("b", EA)]
    assert [ed.nr for ed in eds] == [0, 1, 2, 3]
    assert [ea.nr for ea in eas] == [0, 1, 2, 3]


def test_expedited_retransmission_and_duplicate() -> None:
    link, client, server = make()
    link.drop["a"] = _drop_nth(ED, 0)  # the ED is lost once
    link.drop["b"] = _drop_nth(EA, 0)  # then the EA of its retransmission
    client.send_expedited(link.now, b"urgent")
    got: list[bytes] = []
    link.hooks.append(lambda now: got.extend(iter(server.receive_expedited, None)))
    link.run_until(lambda: client.expedited_slot_free, limit=30)
    assert got == [b"urgent"]  # delivered once
    times = [t for t, _ in link.tpdus_sent("a", ED)]
    assert len(times) == 3
    g1, g2 = times[1] - times[0], times[2] - times[1]
    assert g2 == pytest.approx(2 * g1)  # backed off
    assert link.stats("a").retransmissions == 2
    assert link.stats("b").duplicate_dt == 1  # the duplicate ED, acknowledged again
    assert len(link.tpdus_sent("b", EA)) == 2


def test_expedited_give_up_after_n() -> None:
    config = Config(max_retransmissions=2, give_up_time=0.0)
    link, client, _server = make(config)
    link.drop["a"] = lambda raw: any(isinstance(t, ED) for t in Link.tpdus_of(raw))
    client.send_expedited(link.now, b"lost")
    link.run_until(lambda: client.state is not State.OPEN, limit=60)
    assert len(link.tpdus_sent("a", ED)) == 3
    assert isinstance(client.error, ConnectionTimedOut)
    assert len(link.tpdus_sent("a", DR)) >= 1


def test_expedited_overtakes_later_normal_data_and_blocks_new_dts() -> None:
    link, client, server = make(SMALL)
    # the EA is lost twice: the ED stays unacknowledged for a while
    link.drop["b"] = _drop_nth(EA, 0, count=2)
    order: list[tuple[str, bytes]] = []

    def app(now: float) -> None:
        for ev in link.events["b"][len(seen) :]:
            seen.append(ev)
            if isinstance(ev, ExpeditedReceived):
                order.extend(("ED", d) for d in iter(server.receive_expedited, None))
            elif isinstance(ev, DataReceived):
                order.extend(("DT", d) for d in iter(server.receive, None))

    seen: list[object] = []
    link.hooks.append(app)
    client.send(link.now, b"before")
    client.send_expedited(link.now, b"ED!")
    client.send(link.now, b"after-1")
    client.send(link.now, b"after-2" * 40)
    link.run_until(lambda: len(order) == 4, limit=60)
    assert order == [
        ("DT", b"before"),
        ("ED", b"ED!"),
        ("DT", b"after-1"),
        ("DT", b"after-2" * 40),
    ]
    # no new DT left the sender while its ED was unacknowledged
    ed_sent = next(e.seq for e in link.sent("a") if any(isinstance(t, ED) for t in e.tpdus))
    ea_in = next(
        e.seq
        for e in link.log
        if e.kind == "recv" and e.side == "a" and any(isinstance(t, EA) for t in e.tpdus)
    )
    between = [
        t
        for e in link.log
        if e.kind == "send" and e.side == "a" and ed_sent < e.seq < ea_in
        for t in e.tpdus
    ]
    assert not any(isinstance(t, DT) and t.data != b"before" for t in between)
    assert sum(isinstance(t, ED) for t in between) == 2  # the two retransmissions
    dt_after = [d.data for d in dts_of(link.sent("a"))]
    assert dt_after[0] == b"before"


def test_expedited_in_zero_window() -> None:
    """ED is not subject to the DT credit: it passes a closed window."""
    link, client, server = make(SMALL)
    for i in range(30):
        client.send(link.now, bytes([i]) * 100)
    link.run_for(1.0)
    assert link.tpdus_sent("b", AK)[-1][1].credit == 0
    client.send_expedited(link.now, b"interrupt")
    link.run_until(lambda: server.expedited_receivable, limit=5)
    assert server.receive_expedited() == b"interrupt"
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    link.run_until(lambda: len(got) == 30, limit=60)
    assert got == [bytes([i]) * 100 for i in range(30)]


def test_expedited_numbers_wrap_modulo_128() -> None:
    link, client, server = make()
    got: list[bytes] = []
    link.hooks.append(lambda now: got.extend(iter(server.receive_expedited, None)))
    for i in range(140):
        client.send_expedited(link.now, i.to_bytes(2, "big"))
        link.run_until(lambda: client.expedited_slot_free)
    link.run_until(lambda: len(got) == 140)
    assert got == [i.to_bytes(2, "big") for i in range(140)]
    nrs = [ed.nr for _, ed in link.tpdus_sent("a", ED)]
    assert nrs == [i % 128 for i in range(140)]
    assert link.stats("b").invalid_tpdu == 0


# ------------------------------------------------------- TSDU limit, release


def test_tsdu_over_max_tsdu_size_disconnects_with_133() -> None:
    config_b = Config(max_tpdu_size=128, preferred_max_tpdu_size=None, max_tsdu_size=1000)
    link, client, server = make(SMALL, config_b)
    client.send(link.now, b"z" * 5000)
    link.run_until(lambda: client.state is not State.OPEN, limit=30)
    assert isinstance(server.error, Disconnected) and server.error.reason == 133
    assert server.error.by_peer is False
    assert isinstance(client.error, Disconnected) and client.error.reason == 133
    assert client.error.by_peer is True
    assert not server.receivable


@pytest.mark.parametrize(
    "config, size",
    [(SMALL, 1050), (Config(), 5000)],  # 1050: 8 DTs of 119, the ninth (EOT) passes 1000
    ids=["last-of-9-dts", "one-dt-of-8320"],
)
def test_tsdu_over_max_tsdu_size_ending_in_its_eot_dt_disconnects_with_133(
    config: Config, size: int
) -> None:
    link, client, server = make(config, dataclasses.replace(config, max_tsdu_size=1000))
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    client.send(link.now, b"z" * size)
    link.run_until(lambda: client.state is not State.OPEN or bool(got), limit=30)
    assert not got
    assert isinstance(server.error, Disconnected) and server.error.reason == 133


def test_late_tpdus_for_a_frozen_reference_are_not_delivered() -> None:
    link, client, server = make(SMALL)
    got: list[bytes] = []
    link.hooks.append(reader(server, got))
    client.send(link.now, b"one")
    link.run_until(lambda: got == [b"one"] and client.send_idle)
    old_dt = next(e.raw for e in link.sent("a") if any(isinstance(t, DT) for t in e.tpdus))
    client.disconnect(link.now)
    link.run_until(lambda: server.state is State.REFWAIT and client.state is State.REFWAIT)
    events_before = len(link.events["b"])
    link.inject(old_dt, to="b")  # a late duplicate, while the reference is frozen
    link.run_for(0.01)
    assert got == [b"one"]
    assert not any(isinstance(e, DataReceived) for e in link.events["b"][events_before:])
    assert link.stats("b").wrong_state >= 1
    # after L the reference is free; a DR for it is answered with DC
    link.run_until(lambda: server.state is State.CLOSED, limit=60)
    n_sent = len(link.sent("b"))
    link.inject(encode_one(DR(server.local_ref, 0x4242, 128), checksum=True), to="b")
    link.run_for(0.01)
    answers = [t for e in link.sent("b")[n_sent:] for t in e.tpdus]
    assert [type(t).__name__ for t in answers] == ["DC"]
    assert answers[0].dst_ref == 0x4242
