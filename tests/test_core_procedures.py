"""Class 4 procedures under stress, TPDU by TPDU (issue 9), on an explicit clock.

Each test drives one core endpoint with :class:`scripted.Script` and checks the
octets it emits and when:

1. credit reduction below DTs already sent is flow control, not loss;
2. the third message's NR and CDT govern from the first DT; an AK
   acknowledging DTs never sent is a protocol error (DR 133) where it can be
   told apart from a late one;
3. (ERs: tests/test_core_bad_input.py, tests/test_tshark.py);
4. the acknowledgement time (0x85): ours in CR/CC, the peer's as the floor of T1;
5. DR reasons as netiso gives them (docs/guide.md lists each);
6. T1 follows the measured RTT (RFC 6298 with a clock granularity), a tail
   loss probe, give-up after N retransmissions *and* time without progress;
7. selective acknowledgement (0x8F): negotiated, sent, used to resend only
   what is missing; a peer that does not offer it gets none.
"""

from __future__ import annotations

import pytest
from scripted import PEER_REF, Script, open_as_initiator, open_as_responder, peer_cr

from tp4emu.core import Config, Connection, ConnectionTimedOut, Disconnected, State
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DR,
    DT,
    AckTime,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    DRReason,
    FlowControlConfirmation,
    SelectiveAck,
    SubsequenceNumber,
    TpduSize,
    decode,
    encode_one,
)

SACK = AdditionalOptions.USE_EXPEDITED | AdditionalOptions.SELECTIVE_ACK  # 0x11


def _dts(s: Script, n: int) -> list[DT]:
    """The next *n* datagrams, each one DT."""
    return [s.expect(DT) for _ in range(n)]


def _send_tsdus(s: Script, conn: Connection, count: int, size: int = 10) -> None:
    for i in range(count):
        s.call(conn.send, bytes([i]) * size)


# =====================================================================
# 1. credit reduction
# =====================================================================


def test_credit_reduced_to_0_below_dts_sent_is_probed_never_given_up() -> None:
    """Failed on 119ed2a: the DTs outside the window were retransmitted and counted
    towards N, and the connection was released with DR 0 after 8 tries."""
    s = Script()
    conn, _cc = open_as_responder(s)  # RTT 0.25 s: T1 0.75 s
    _send_tsdus(s, conn, 5)
    dts = _dts(s, 5)
    assert [d.nr for d in dts] == [0, 1, 2, 3, 4]
    # the peer takes DT 0 and shuts its window, and says so every 0.3 s for 30 s
    ak_shut = AK(conn.local_ref, 1, 0)
    t = s.now
    probes: list[AK] = []
    for _ in range(100):
        t += 0.3
        s.send(ak_shut, at=t)
        for emitted in s.take():
            (tpdu,) = emitted.tpdus
            assert isinstance(tpdu, AK), tpdu  # never a DT, never a DR
            probes.append(tpdu)
    assert conn.state is State.OPEN
    assert s.endpoint.stats.retransmissions == 0
    # the probes ask the peer to confirm the window we believe in: YR-TU-NR 1, CDT 0
    assert probes and all(
        p == AK(PEER_REF, 0, 15, params=(FlowControlConfirmation(1, 0, 0),)) for p in probes
    )
    # they back off, up to max_retransmit_time: a few dozen in 30 s, not one per AK
    assert len(probes) < 20
    # the window opens again (a newer subsequence number): DTs 1..4, which fell
    # outside it, go out again at once, unchanged
    s.send(AK(conn.local_ref, 1, 15, params=(SubsequenceNumber(1),)), at=t + 0.1)
    out = s.take()
    resent = [tp for e in out for tp in e.tpdus if isinstance(tp, DT)]
    assert resent == dts[1:]
    assert s.endpoint.stats.retransmissions == 4  # counted as sent again, not towards N
    s.send(AK(conn.local_ref, 5, 15, params=()), at=t + 0.3)
    assert conn.send_idle and conn.state is State.OPEN


def test_partial_credit_reduction_retransmits_only_inside_the_window() -> None:
    s = Script()
    conn, _cc = open_as_responder(s)
    _send_tsdus(s, conn, 5)
    dts = _dts(s, 5)
    # DT 0 acknowledged, the window cut to DTs 1 and 2 (3 and 4 fall outside)
    s.send(AK(conn.local_ref, 1, 2), at=0.3)
    s.expect_nothing()
    srtt = conn._srtt
    assert srtt is not None
    # the tail loss probe: the newest DT *inside* the window, two round trips on
    probe_at = 0.3 + 2 * srtt
    s.advance(to=probe_at)
    s.expect(dts[2], at=probe_at)
    rto = conn.rto
    s.advance(to=probe_at + rto)  # T1 (restarted by the probe): the oldest, DT 1
    s.expect(dts[1], at=probe_at + rto)
    s.expect_nothing()
    # DTs 1 and 2 acknowledged, the window still ends at 3: 3 and 4 are held back
    s.send(AK(conn.local_ref, 3, 0), at=s.now + 0.1)
    s.expect_nothing(until=s.now + 0.5)
    s.take()
    # credit back: 3 and 4 go out again
    s.send(AK(conn.local_ref, 3, 15, params=(SubsequenceNumber(1),)), at=s.now + 0.1)
    resent = [tp for e in s.take() for tp in e.tpdus if isinstance(tp, DT)]
    assert resent == dts[3:]


# =====================================================================
# 2. the third message
# =====================================================================


def _akwait_with_data(s: Script) -> CC:
    listener = s.endpoint.listen(None)
    s.send(peer_cr())  # CDT 15 in the CR
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.send, b"early")  # confirms: the CC goes out, the data waits (AKWAIT)
    cc = s.expect(CC, at=0.0)
    s.expect_nothing()
    assert conn.state is State.AKWAIT
    return cc


def test_third_message_with_credit_0_holds_the_queued_data_back() -> None:
    """Failed on 119ed2a: the DT went out with the CR's credit before the AK's CDT 0
    was applied."""
    s = Script()
    cc = _akwait_with_data(s)
    (conn,) = s.endpoint.connections
    s.send(AK(cc.src_ref, 0, 0), at=0.25)
    assert conn.state is State.OPEN
    s.expect_nothing(until=0.9)  # no DT: the window is shut (the probe comes later)
    s.send(AK(cc.src_ref, 0, 1, params=(SubsequenceNumber(1),)), at=0.9)
    (emitted,) = s.take()
    # the DT, with our AK confirming the new window riding in front of it
    assert emitted.tpdus == [
        AK(PEER_REF, 0, 15, params=(FlowControlConfirmation(0, 1, 1),)),
        DT(PEER_REF, 0, True, b"early"),
    ]


def test_third_message_with_credit_1_lets_exactly_one_dt_out() -> None:
    s = Script()
    cc = _akwait_with_data(s)
    (conn,) = s.endpoint.connections
    s.call(conn.send, b"second")
    s.send(AK(cc.src_ref, 0, 1), at=0.25)
    s.expect(DT(PEER_REF, 0, True, b"early"), at=0.25, exact=True)
    s.expect_nothing()


def test_third_message_acknowledging_dts_never_sent_is_a_protocol_error() -> None:
    s = Script()
    cc = _akwait_with_data(s)
    (conn,) = s.endpoint.connections
    s.send(AK(cc.src_ref, 3, 15), at=0.25)  # nothing was sent: YR-TU-NR must be 0
    s.expect(DR(PEER_REF, cc.src_ref, DRReason.PROTOCOL_ERROR), at=0.25, exact=True)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.PROTOCOL_ERROR
    assert s.endpoint.stats.invalid_tpdu == 1


def test_ak_beyond_the_dts_sent_in_the_extended_format_is_a_protocol_error() -> None:
    s = Script()
    cr = peer_cr(options=0x02)  # extended format
    conn, _cc = open_as_responder(s, cr=cr)
    assert conn.extended
    _send_tsdus(s, conn, 2)
    _dts(s, 2)
    s.send(AK(conn.local_ref, 7, 15, True), at=0.5)  # acknowledges 0..6: only 0, 1 sent
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.PROTOCOL_ERROR), at=0.5, exact=True)
    assert conn.state is State.CLOSING


def test_ak_beyond_the_dts_sent_in_the_normal_format_is_dropped() -> None:
    """Modulo 128 it looks the same as an AK delayed 64 DTs or more: dropped, counted."""
    s = Script()
    conn, _cc = open_as_responder(s)
    _send_tsdus(s, conn, 2)
    _dts(s, 2)
    s.send(AK(conn.local_ref, 7, 15), at=0.5)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert s.endpoint.stats.invalid_tpdu == 1
    s.send(AK(conn.local_ref, 2, 15), at=0.6)
    assert conn.send_idle


# =====================================================================
# 4. acknowledgement time
# =====================================================================


def test_cr_and_cc_announce_our_acknowledgement_time() -> None:
    s = Script(Config(ack_time=0.25))
    _conn, cr = open_as_initiator(s)
    assert cr.param(AckTime) == AckTime(250)
    s2 = Script(Config(ack_time=0.25))
    _conn2, cc = open_as_responder(s2)
    assert cc.param(AckTime) == AckTime(250)
    s3 = Script(Config(ack_time=None))
    _conn3, cr3 = open_as_initiator(s3)
    assert cr3.param(AckTime) is None


def _cr_with_ack_time(ms: int) -> CR:
    cr = peer_cr()
    return CR(
        src_ref=cr.src_ref,
        credit=cr.credit,
        protocol_class=4,
        params=(*cr.params, AckTime(ms)),
    )


def test_peer_acknowledgement_time_is_the_floor_of_t1() -> None:
    """A peer that announces 1 s and delays its AK that long gets no retransmission."""
    s = Script()
    conn, _cc = open_as_responder(s, cr=_cr_with_ack_time(1000), rtt=0.25)
    assert conn.peer_ack_time == 1.0
    # RTT 0.25 s: SRTT + 4 RTTVAR = 0.75 s; the floor SRTT + 1 s + G = 1.251 s governs
    assert conn.rto == pytest.approx(0.25 + 1.0 + 0.001)
    s.call(conn.send, b"x")
    dt = s.expect(DT, at=0.25)
    s.expect_nothing(until=0.25 + 1.2)
    s.send(AK(conn.local_ref, 1, 15), at=0.25 + 1.2)  # as late as it said, and a bit
    s.expect_nothing(until=5.0)
    assert s.endpoint.stats.retransmissions == 0
    del dt


def test_without_acknowledgement_time_t1_is_the_rtt_estimate() -> None:
    """The same exchange without 0x85: T1 = 0.75 s, the late AK costs one retransmission."""
    s = Script()
    conn, _cc = open_as_responder(s, rtt=0.25)
    assert conn.peer_ack_time == 0.0
    assert conn.rto == pytest.approx(0.75)
    s.call(conn.send, b"x")
    dt = s.expect(DT, at=0.25)
    s.expect_nothing(until=0.25 + 0.75 - 1e-6)
    s.advance(to=0.25 + 0.75)
    s.expect(dt, at=0.25 + 0.75)


# =====================================================================
# 5. DR reasons
# =====================================================================


def test_class_2_cc_to_our_class_4_cr_is_refused_with_dr_130_at_once() -> None:
    """Failed on 119ed2a: dropped for its missing checksum, the CR retried until timeout."""
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    cc = CC(cr.src_ref, PEER_REF, 0, protocol_class=2, params=(TpduSize(13),))
    s.send(cc, at=0.1, checksum=False)  # classes 0-3 have no checksum
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NEGOTIATION_FAILED), at=0.1, exact=True)
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.NEGOTIATION_FAILED


def test_class_4_cc_without_checksum_is_still_dropped() -> None:
    s = Script()
    s.connect()
    cr = s.expect(CR)
    cc = CC(cr.src_ref, PEER_REF, 15, params=(TpduSize(13),))
    s.send(cc, at=0.1, checksum=False)
    s.expect_nothing()
    assert s.endpoint.stats.missing_checksum == 1


# =====================================================================
# 6. T1 from the RTT, the tail loss probe, give-up
# =====================================================================


def test_t1_follows_a_short_rtt_without_a_fixed_floor() -> None:
    """RTT 2 ms: T1 = SRTT + max(G, 4 RTTVAR) = 0.002 + 0.004 = 6 ms (was 50 ms at least)."""
    s = Script()
    conn, _cc = open_as_responder(s, rtt=0.002)
    assert conn.rto == pytest.approx(0.006)
    s.call(conn.send, b"x")
    dt = s.expect(DT)
    t0 = s.now
    s.expect_nothing(until=t0 + 0.006 - 1e-6)
    s.advance(to=t0 + 0.006)
    s.expect(dt, at=t0 + 0.006)


def test_clock_granularity_is_the_least_margin_above_a_steady_rtt() -> None:
    cfg = Config(clock_granularity=0.01, min_retransmit_time=0.001)
    s = Script(cfg)
    conn, _cc = open_as_responder(s, rtt=0.002)
    # one sample: RTTVAR = RTT/2 = 1 ms, 4 RTTVAR = 4 ms < G
    assert conn.rto == pytest.approx(0.002 + 0.01)


def test_tail_loss_probe_resends_the_last_dt_after_two_round_trips() -> None:
    s = Script(Config(initial_retransmit_time=2.0))
    conn, _cc = open_as_responder(s, rtt=0.1)  # SRTT 0.1 s
    _send_tsdus(s, conn, 4)
    dts = _dts(s, 4)
    t0 = s.now
    s.send(AK(conn.local_ref, 2, 15), at=t0 + 0.1)  # DTs 0, 1 arrived; 2 late, 3 lost
    srtt = conn._srtt
    assert srtt is not None
    # no duplicate AK will come for a lost last DT: the probe, two round trips after
    # the AK that restarted the flight, before T1 (0.25 s)
    probe_at = t0 + 0.1 + 2 * srtt
    assert probe_at < t0 + 0.1 + conn.rto
    s.expect_nothing(until=probe_at - 1e-6)
    s.advance(to=probe_at)
    s.expect(dts[3], at=probe_at)
    assert s.endpoint.stats.loss_probes == 1
    s.send(AK(conn.local_ref, 4, 15), at=probe_at + 0.1)
    s.expect_nothing(until=probe_at + 3)
    assert conn.send_idle
    assert s.endpoint.stats.retransmissions == 1


def test_no_tail_loss_probe_with_one_dt_in_flight() -> None:
    s = Script(Config(initial_retransmit_time=2.0))
    conn, _cc = open_as_responder(s, rtt=0.1)
    s.call(conn.send, b"x")
    dt = s.expect(DT)
    t0 = s.now
    s.expect_nothing(until=t0 + conn.rto - 1e-6)  # T1 alone: it would be the same DT
    s.advance(to=t0 + conn.rto)
    s.expect(dt)
    assert s.endpoint.stats.loss_probes == 0


def test_give_up_needs_n_retransmissions_and_time_without_progress() -> None:
    cfg = Config(max_retransmissions=2, give_up_time=10.0, max_retransmit_time=1.0)
    s = Script(cfg)
    conn, _cc = open_as_responder(s, rtt=0.1)
    s.call(conn.send, b"x")
    dt = s.expect(DT)
    t0 = s.now
    times = []
    while conn.state is State.OPEN:
        s.advance(to=s.now + 0.05)
        for e in s.take():
            for tp in e.tpdus:
                if tp == dt:
                    times.append(e.at)
                elif isinstance(tp, DR):
                    dr, dr_at = tp, e.at
    # N = 2 was reached after about 1 s, the peer stayed silent: DTs every
    # max_retransmit_time until 10 s without progress, then DR 129
    assert len(times) > 2
    assert times[-1] < t0 + 10.0 <= dr_at
    assert dr == DR(PEER_REF, conn.local_ref, DRReason.REMOTE_CONGESTION)
    assert isinstance(conn.error, ConnectionTimedOut)


# =====================================================================
# 7. selective acknowledgement
# =====================================================================


def _sack_responder(s: Script) -> tuple[Connection, CC]:
    return open_as_responder(s, cr=peer_cr(additional_options=SACK))


def test_selective_ack_is_negotiated_when_both_offer_it() -> None:
    s = Script()
    conn, cc = _sack_responder(s)
    assert conn.selective_ack
    assert cc.param(AdditionalOptions) == AdditionalOptions(SACK)
    s2 = Script()
    conn2, cc2 = open_as_responder(s2)  # the peer did not offer it
    assert not conn2.selective_ack
    assert cc2.param(AdditionalOptions) == AdditionalOptions(0x01)
    s3 = Script(Config(selective_ack=False))
    conn3, cc3 = _sack_responder(s3)  # we do not
    assert not conn3.selective_ack
    assert cc3.param(AdditionalOptions) == AdditionalOptions(0x01)


def test_receiver_lists_the_blocks_it_holds_beyond_a_hole() -> None:
    s = Script()
    conn, _cc = _sack_responder(s)
    ref = conn.local_ref
    for nr in (1, 2, 4):  # DT 0 and DT 3 lost
        s.send(DT(ref, nr, True, bytes([nr])), at=1.0 + nr / 100)
    blocks = [s.expect(AK).param(SelectiveAck) for _ in range(3)]
    assert blocks == [
        SelectiveAck(((1, 1),)),
        SelectiveAck(((1, 2),)),
        SelectiveAck(((1, 2), (4, 4))),
    ]
    s.send(DT(ref, 0, True, b"\0"), at=1.1)
    ak = s.expect(AK)
    assert ak == AK(PEER_REF, 3, 12, params=(SelectiveAck(((4, 4),)),))
    raw = s.log[-1].raw
    assert raw == encode_one(ak, checksum=True)
    assert decode(raw) == [ak]


def test_no_selective_ack_to_a_peer_that_did_not_offer_it() -> None:
    s = Script()
    conn, _cc = open_as_responder(s)
    for nr in (1, 2):
        s.send(DT(conn.local_ref, nr, True, b"x"), at=1.0)
    assert [s.expect(AK) for _ in range(2)] == [AK(PEER_REF, 0, 15)] * 2


def test_sender_resends_only_the_missing_dts() -> None:
    s = Script(Config(initial_retransmit_time=2.0))
    conn, _cc = _sack_responder(s)
    ref = conn.local_ref
    _send_tsdus(s, conn, 8)
    dts = _dts(s, 8)
    t = s.now + 0.1
    # DTs 1 and 4 were lost; the peer holds 2-3 and 5-7
    s.send(AK(ref, 1, 15), at=t)
    s.send(AK(ref, 1, 15, params=(SelectiveAck(((2, 3),)),)), at=t)
    s.expect_nothing()  # 2 held after DT 1: not yet DupThresh
    s.send(AK(ref, 1, 15, params=(SelectiveAck(((2, 3), (5, 5))),)), at=t)
    s.expect(dts[1], at=t)  # three held after DT 1: it is lost; DT 4 has one after it
    s.expect_nothing()
    s.send(AK(ref, 1, 15, params=(SelectiveAck(((2, 3), (5, 7))),)), at=t)
    s.expect(dts[4], at=t)  # now three after DT 4 too
    s.expect_nothing()
    # the repairs arrive: everything acknowledged, nothing else was resent
    s.send(AK(ref, 8, 15), at=t + 0.1)
    s.expect_nothing(until=t + 3)
    assert s.endpoint.stats.retransmissions == 2
    assert s.endpoint.stats.fast_retransmissions == 2
    assert conn.send_idle


def test_a_lost_retransmission_is_detected_by_what_was_sent_after_it() -> None:
    s = Script(Config(initial_retransmit_time=2.0))
    conn, _cc = _sack_responder(s)
    ref = conn.local_ref
    _send_tsdus(s, conn, 5)
    dts = _dts(s, 5)
    t = s.now + 0.1
    s.send(AK(ref, 0, 15, params=(SelectiveAck(((1, 3),)),)), at=t)
    s.expect(dts[0], at=t)  # DT 0 lost, resent
    _send_tsdus(s, conn, 3)  # new DTs 5, 6, 7 go out after the repair
    new = _dts(s, 3)
    # the repair is lost too: the peer holds 1-7 but not 0
    s.send(AK(ref, 0, 15, params=(SelectiveAck(((1, 6),)),)), at=t + 0.1)
    s.expect_nothing()  # two DTs sent after the repair are held: not yet
    s.send(AK(ref, 0, 15, params=(SelectiveAck(((1, 7),)),)), at=t + 0.1)
    s.expect(dts[0], at=t + 0.1)  # three: resent again
    del new


def test_sack_block_outside_what_was_sent_is_ignored() -> None:
    s = Script()
    conn, _cc = _sack_responder(s)
    ref = conn.local_ref
    _send_tsdus(s, conn, 2)
    _dts(s, 2)
    s.send(AK(ref, 0, 15, params=(SelectiveAck(((5, 9),)),)), at=0.5)
    s.expect_nothing()
    assert s.endpoint.stats.invalid_tpdu == 1
    assert conn.state is State.OPEN


def test_initiator_offers_selective_ack_and_takes_the_ccs_answer() -> None:
    s = Script()
    conn, cr = open_as_initiator(
        s,
        cc_params=(TpduSize(13), AdditionalOptions(SACK)),
        called_tsap=b"srv",
        calling_tsap=b"cli",
    )
    assert cr.param(AdditionalOptions) == AdditionalOptions(SACK)
    assert cr.param(CallingTsap) == CallingTsap(b"cli")
    assert cr.param(CalledTsap) == CalledTsap(b"srv")
    assert conn.selective_ack
