"""Connection release of the sans-IO core, TPDU for TPDU (reference §5 "Release").

DR retransmission until DC, the frozen reference (REFWAIT for L), peer DRs,
disconnect collisions, TPDUs for unknown or frozen references, reference
allocation and address checks.
"""

from __future__ import annotations

import random

import pytest
from scripted import PEER, PEER_REF, Script, open_as_initiator, open_as_responder, peer_cr

from tp4emu.core import (
    Config,
    ConnectionClosed,
    ConnectionTerminated,
    DataReceived,
    Disconnected,
    LocalProtocolError,
    ReleaseCompleted,
    State,
)
from tp4emu.wire import AK, CC, CR, DC, DR, DT, EA, ED, ER, TPDU, DRReason, TpduSize

L = 2.0
CFG = Config(
    initial_retransmit_time=0.5,
    max_retransmit_time=4.0,
    max_retransmissions=3,
    reference_freeze_time=L,
    window_time=5.0,
    inactivity_time=20.0,
)


def _t1_schedule(start: float, rto: float, count: int, cap: float) -> list[float]:
    """Times of the original TPDU and *count* retransmissions: T1 doubled each time."""
    times = [start]
    step = rto
    for _ in range(count):
        times.append(times[-1] + min(step, cap))
        step *= 2
    return times


# =====================================================================
# our release
# =====================================================================


def test_user_disconnect_sends_dr_until_dc_then_freezes_for_l() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    local = conn.local_ref
    s.advance(to=1.0)
    rto = conn.rto
    s.call(conn.disconnect, DRReason.NORMAL, b"bye")
    dr = DR(PEER_REF, local, DRReason.NORMAL, data=b"bye")
    s.expect(dr, at=1.0, exact=True)
    assert conn.state is State.CLOSING
    assert conn.closed_by_user is True
    assert conn.error is None
    assert s.events() == [ConnectionTerminated(conn)]
    times = _t1_schedule(1.0, rto, 2, CFG.max_retransmit_time)
    for t in times[1:]:
        s.advance(to=t)
        s.expect(dr, at=t)
    assert conn.state is State.CLOSING
    s.send(DC(local, PEER_REF), at=times[-1] + 0.1)
    s.expect_nothing()
    assert conn.state is State.REFWAIT
    frozen_at = s.now
    assert conn in s.endpoint.connections
    s.expect_nothing(until=frozen_at + L - 0.001)
    assert conn.state is State.REFWAIT
    s.advance(to=frozen_at + L)
    assert conn.state is State.CLOSED
    assert s.events() == [ReleaseCompleted(conn), ConnectionClosed(conn)]
    assert local not in {c.local_ref for c in s.endpoint.connections}
    assert s.endpoint.get_timer() is None
    s.expect_nothing(until=100.0)


def test_dr_unanswered_after_n_retransmissions_freezes_anyway() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    rto = conn.rto
    s.call(conn.disconnect, at=1.0)
    dr = s.expect(DR, at=1.0)
    times = _t1_schedule(1.0, rto, CFG.max_retransmissions, CFG.max_retransmit_time)
    for t in times[1:]:
        s.advance(to=t)
        s.expect(dr, at=t)
    give_up = times[-1] + min(rto * 2**CFG.max_retransmissions, CFG.max_retransmit_time)
    s.expect_nothing(until=give_up - 0.001)
    assert conn.state is State.CLOSING
    s.advance(to=give_up)
    s.expect_nothing()
    assert conn.state is State.REFWAIT
    s.advance(to=give_up + L)
    assert conn.state is State.CLOSED


def test_disconnect_discards_queued_data_and_forbids_sending() -> None:
    s = Script(CFG)
    conn, _ = open_as_initiator(s, credit=0)  # zero window: the data stays queued
    s.call(conn.send, b"never sent")
    s.expect_nothing()
    s.call(conn.disconnect)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NORMAL))
    assert conn.send_idle
    with pytest.raises(LocalProtocolError):
        s.call(conn.send, b"more")
    s.call(conn.disconnect)  # a second close is a no-op
    s.expect_nothing()


def test_disconnect_data_over_64_octets_is_refused() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    with pytest.raises(ValueError):
        s.call(conn.disconnect, DRReason.NORMAL, bytes(65))
    assert conn.state is State.OPEN
    s.expect_nothing()


def test_dr_in_closing_is_a_collision_that_completes_the_release() -> None:
    """DRs crossed: each side's DR stands for the other's DC; no DC is sent
    (netiso tp.trans: TP_REFWAIT <== TP_CLOSING DR_TPDU, NBS 27)."""
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect, at=1.0)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NORMAL), at=1.0)
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.1)  # the peer closed too
    assert conn.state is State.REFWAIT
    s.expect_nothing(until=1.1 + L - 0.001)  # our DR is not retransmitted
    s.advance(to=1.1 + L)
    assert conn.state is State.CLOSED


def test_tpdus_after_our_dr_are_ignored() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect, at=1.0)
    s.expect(DR)
    before = s.endpoint.stats.wrong_state
    s.send(DT(conn.local_ref, 0, True, b"late"), at=1.1)
    s.send(AK(conn.local_ref, 0, 15), at=1.1)
    s.expect_nothing()
    assert conn.receive() is None
    assert s.endpoint.stats.wrong_state == before + 2
    assert conn.state is State.CLOSING


# =====================================================================
# the peer's release
# =====================================================================


def test_peer_dr_in_open_is_confirmed_and_reported() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.send(DT(conn.local_ref, 0, True, b"last words"), at=1.0)
    s.expect(AK(PEER_REF, 1, 14), at=1.0)
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL, data=b"bye"), at=1.5)
    s.expect(DC(PEER_REF, conn.local_ref), at=1.5, exact=True)
    s.expect_nothing()
    assert conn.state is State.REFWAIT
    err = conn.error
    assert isinstance(err, Disconnected)
    assert err.by_peer is True
    assert err.reason == DRReason.NORMAL
    assert err.data == b"bye"
    assert s.events() == [DataReceived(conn), ConnectionTerminated(conn), ReleaseCompleted(conn)]
    assert conn.receive() == b"last words"  # data already received stays readable
    assert conn.receive() is None
    with pytest.raises(LocalProtocolError):
        s.call(conn.send, b"too late")
    s.call(conn.disconnect)  # closing after the peer did: nothing to send
    s.expect_nothing(until=1.5 + L)
    assert conn.state is State.CLOSED
    assert s.events() == [ConnectionClosed(conn)]


def test_peer_dr_in_akwait() -> None:
    s = Script(CFG)
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    s.expect(CC)
    s.send(DR(conn.local_ref, PEER_REF, DRReason.CONGESTION), at=0.2)
    s.expect(DC(PEER_REF, conn.local_ref), at=0.2)
    assert conn.state is State.REFWAIT
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.CONGESTION
    s.expect_nothing(until=5.0)  # no CC retransmission


def test_peer_dr_with_mismatched_source_reference_is_ignored() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.send(DR(conn.local_ref, PEER_REF + 1, DRReason.NORMAL), at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert conn.error is None
    assert s.endpoint.stats.invalid_tpdu == 1


def test_dc_in_open_is_ignored() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.send(DC(conn.local_ref, PEER_REF), at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert s.endpoint.stats.wrong_state == 1


# =====================================================================
# unknown and frozen references
# =====================================================================


def test_dr_for_an_unknown_reference_is_answered_with_dc() -> None:
    s = Script(CFG)
    s.send(DR(0x1234, 0x0777, DRReason.NORMAL), at=0.5)
    s.expect(DC(0x0777, 0x1234), at=0.5, exact=True)  # references swapped
    s.expect_nothing()
    assert s.endpoint.stats.unknown_reference == 1
    assert s.endpoint.connections == []


def test_dr_with_src_ref_0_for_an_unknown_reference_gets_nothing() -> None:
    s = Script(CFG)
    s.send(DR(0x1234, 0, DRReason.SESSION_NOT_ATTACHED), at=0.5)
    s.expect_nothing()
    assert s.endpoint.stats.unknown_reference == 1


@pytest.mark.parametrize(
    "tpdu",
    [
        DC(0x1234, 0x0777),
        DT(0x1234, 0, True, b"data"),
        ED(0x1234, 0, b"x"),
        AK(0x1234, 0, 15),
        EA(0x1234, 0),
        ER(0x1234, 2),
    ],
    ids=lambda t: type(t).__name__,
)
def test_other_tpdus_for_an_unknown_reference_are_dropped_and_counted(tpdu: TPDU) -> None:
    s = Script(CFG)
    open_as_responder(s)  # a live connection does not change that
    s.send(tpdu, at=1.0)
    s.expect_nothing()
    assert s.endpoint.stats.unknown_reference == 1


def test_cc_for_an_unknown_reference_is_refused_with_dr_2() -> None:
    """netiso, NBS 21: a CC for a connection that does not exist gets a DR."""
    s = Script(CFG)
    s.send(CC(0x1234, 0x0777, 15, params=(TpduSize(13),)), at=1.0)
    s.expect(DR(0x0777, 0x1234, DRReason.SESSION_NOT_ATTACHED), at=1.0)
    assert s.endpoint.stats.unknown_reference == 1


def test_er_in_closing_completes_the_release() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect, at=1.0)
    s.expect(DR)
    s.send(ER(conn.local_ref, 2), at=1.1)
    s.expect_nothing()
    assert conn.state is State.REFWAIT


def test_in_refwait_a_dr_gets_a_dc_and_everything_else_is_dropped() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect, at=1.0)
    s.expect(DR)
    s.send(DC(conn.local_ref, PEER_REF), at=1.1)
    assert conn.state is State.REFWAIT
    base = s.endpoint.stats.wrong_state
    # a DR crossing our DR/DC exchange (or a late duplicate) still gets its DC
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.2)
    s.expect(DC(PEER_REF, conn.local_ref), at=1.2)
    for tpdu in (
        DT(conn.local_ref, 0, True, b"late"),
        AK(conn.local_ref, 0, 15),
        ED(conn.local_ref, 0, b"x"),
        EA(conn.local_ref, 0),
        DC(conn.local_ref, PEER_REF),
        ER(conn.local_ref, 0),
        peer_cr(),  # the CR that created it, retransmitted very late
    ):
        s.send(tpdu, at=1.3)
    s.expect_nothing()
    assert s.endpoint.stats.wrong_state == base + 7
    assert conn.state is State.REFWAIT
    assert conn.receive() is None
    assert conn.receive_expedited() is None
    # none of this extended the freeze
    s.advance(to=1.1 + L)
    assert conn.state is State.CLOSED
    assert len(s.endpoint.connections) == 0


def test_after_the_freeze_the_reference_is_unknown() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    local = conn.local_ref
    s.send(DR(local, PEER_REF, DRReason.NORMAL), at=1.0)
    s.expect(DC)
    s.advance(to=1.0 + L)
    assert conn.state is State.CLOSED
    s.send(DT(local, 0, True, b"x"))
    s.expect_nothing()
    assert s.endpoint.stats.unknown_reference == 1
    s.send(DR(local, PEER_REF, DRReason.NORMAL))
    s.expect(DC(PEER_REF, local))  # the endpoint answers for the unknown reference


class _StuckRandom(random.Random):
    """An rng whose ``randrange`` always proposes the same reference."""

    def __init__(self, stuck: int) -> None:
        super().__init__(7)
        self.stuck = stuck

    def randrange(self, *args: object, **kw: object) -> int:
        return self.stuck


def test_a_frozen_reference_is_not_reused_even_when_the_rng_insists() -> None:
    s = Script(CFG, rng=_StuckRandom(0x4242))
    first = s.connect()
    assert first.local_ref == 0x4242
    s.expect(CR)
    s.call(first.disconnect)  # abandoned in WFCC: frozen at once
    assert first.state is State.REFWAIT
    second = s.connect()
    assert second.local_ref != 0x4242
    assert 1 <= second.local_ref <= 0xFFFF
    s.advance(to=L)
    assert first.state is State.CLOSED
    third = s.connect()
    assert third.local_ref == 0x4242  # free again once the freeze is over


def test_references_are_never_reused_while_frozen() -> None:
    s = Script(Config(max_connections=5000, reference_freeze_time=60.0), seed=1234)
    frozen = []
    for _ in range(3000):
        conn = s.connect()
        s.call(conn.disconnect)
        assert conn.state is State.REFWAIT
        frozen.append(conn.local_ref)
    s.take()
    assert len(set(frozen)) == len(frozen)
    fresh = [s.connect().local_ref for _ in range(1500)]
    assert len(set(fresh)) == len(fresh)
    assert not set(fresh) & set(frozen)
    assert all(1 <= r <= 0xFFFF for r in fresh + frozen)
    assert len(s.endpoint.connections) == 4500
    # frozen references do not count against max_connections: only live ones do
    for _ in range(3500):
        s.connect()
    assert len(s.endpoint.connections) == 8000
    with pytest.raises(OSError):
        s.connect()


def test_a_known_reference_from_the_wrong_address_is_dropped() -> None:
    s = Script(CFG)
    conn, _ = open_as_responder(s)
    stranger = ("203.0.113.9", 10200)
    s.send(DT(conn.local_ref, 0, True, b"spoof"), at=1.0, addr=stranger)
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.0, addr=stranger)
    s.send(DT(conn.local_ref, 0, True, b"spoof"), at=1.0, addr=(PEER[0], PEER[1] + 1))
    s.expect_nothing()
    assert s.endpoint.stats.wrong_peer == 3
    assert conn.state is State.OPEN
    assert conn.receive() is None
    assert s.events() == []
