"""Connection establishment of the sans-IO core, TPDU for TPDU (reference §5, §6).

Initiator: the CR, its retransmission and back-off, the CC's negotiation and
the third message (AK). Responder: deferred confirmation (CONFIRMING), the CC,
its retransmission until the AK/DT/ED, duplicate CRs, rejections and every
reason a CR is refused without a connection.
"""

from __future__ import annotations

import errno

import pytest
from scripted import PEER, PEER_REF, Script, open_as_initiator, open_as_responder, peer_cr

from tp4emu.core import (
    Config,
    ConnectionClosed,
    ConnectionEstablished,
    ConnectionRejected,
    ConnectionRequested,
    ConnectionTerminated,
    ConnectionTimedOut,
    DataReceived,
    Disconnected,
    ExpeditedReceived,
    LocalProtocolError,
    ReleaseCompleted,
    State,
)
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    EA,
    ED,
    AckTime,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    DRReason,
    PreferredMaxTpduSize,
    TpduSize,
    encode_one,
)

OTHER_HOST = ("198.51.100.7", 10200)

# =====================================================================
# initiator
# =====================================================================


@pytest.mark.parametrize(
    "config, sizes",
    [
        # the default: 0xC0 8192 for peers that ignore 0xF0, then 0xF0 65 x 128 = 8320
        (Config(), (TpduSize(13), PreferredMaxTpduSize(65))),
        (Config(preferred_max_tpdu_size=None), (TpduSize(13),)),
    ],
    ids=["default", "no-0xf0"],
)
def test_cr_carries_class_4_credit_size_tsaps_options_and_a_valid_checksum(
    config: Config, sizes: tuple[TpduSize | PreferredMaxTpduSize, ...]
) -> None:
    s = Script(config)
    conn = s.connect(called_tsap=b"srv", calling_tsap=b"cli", data=b"hello")
    assert conn.state is State.WFCC
    assert 1 <= conn.local_ref <= 0xFFFF
    want = CR(
        src_ref=conn.local_ref,
        credit=15,
        protocol_class=4,
        options=0,
        params=(
            *sizes,
            CallingTsap(b"cli"),
            CalledTsap(b"srv"),
            AdditionalOptions(AdditionalOptions.USE_EXPEDITED | AdditionalOptions.SELECTIVE_ACK),
            AckTime(2),  # Config.ack_time, 0.002 s
        ),
        data=b"hello",
    )
    s.expect(want, at=0.0, exact=True)
    # after the checksum (c3 02 ..): c0 01 0d (8192) [f0 01 41 (65 units)], the TSAPs
    f0 = b"\xf0\x01\x41" if len(sizes) == 2 else b""
    assert s.log[0].raw[7:9] == b"\xc3\x02"
    assert s.log[0].raw[11:].startswith(b"\xc0\x01\x0d" + f0 + b"\xc1\x03cli")
    cr = s.log[0].tpdus[0]
    assert isinstance(cr, CR)
    assert cr.dst_ref == 0
    assert cr.checksum_ok is True
    assert conn.connect_data == b"hello"
    s.expect_nothing()


def test_cr_reflects_the_configuration() -> None:
    cfg = Config(
        max_tpdu_size=1024,
        preferred_max_tpdu_size=None,  # else 0xF0 would propose the default 8320
        receive_window=4,
        extended_format=True,
        use_checksum=False,
        expedited=False,
    )
    s = Script(cfg)
    conn = s.connect()
    want = CR(
        src_ref=conn.local_ref,
        credit=4,
        options=0x02,  # extended formats proposed
        params=(
            TpduSize(10),
            AdditionalOptions(
                AdditionalOptions.NON_USE_OF_CHECKSUM | AdditionalOptions.SELECTIVE_ACK
            ),
            AckTime(2),
        ),
    )
    # non-use is only proposed: the CR itself still carries the checksum
    s.expect(want, exact=True, checksum=True)


def test_connect_data_over_32_octets_is_refused_locally() -> None:
    s = Script()
    with pytest.raises(ValueError):
        s.connect(data=bytes(33))
    s.expect_nothing()
    assert s.endpoint.connections == []


def test_cr_is_retransmitted_with_back_off_then_the_connect_times_out() -> None:
    cfg = Config(
        cr_retransmit_time=1.0,
        max_retransmit_time=4.0,
        max_retransmissions=4,
        reference_freeze_time=2.0,
    )
    s = Script(cfg)
    conn = s.connect(called_tsap=b"srv")
    first = s.expect(CR, at=0.0)
    raw = s.log[0].raw
    assert s.endpoint.get_timer() == 1.0
    # T1 = 1, then doubled each time, capped at max_retransmit_time
    for t in (1.0, 3.0, 7.0, 11.0):
        s.advance(to=t)
        s.expect(first, at=t, raw=raw)
        assert conn.state is State.WFCC
    s.expect_nothing(until=14.999)
    assert conn.error is None
    s.advance(to=15.0)  # the 4th retransmission went unanswered
    s.expect_nothing()  # giving up sends nothing
    assert conn.state is State.REFWAIT
    assert isinstance(conn.error, ConnectionTimedOut)
    assert isinstance(conn.error, TimeoutError)
    assert conn.error.errno == errno.ETIMEDOUT
    assert s.event_types() == ["ConnectionTerminated", "ReleaseCompleted"]
    assert conn in s.endpoint.connections  # frozen
    assert s.endpoint.stats.retransmissions == 4
    s.advance(to=16.999)
    assert conn.state is State.REFWAIT
    s.advance(to=17.0)  # reference_freeze_time later
    assert conn.state is State.CLOSED
    events = s.events()
    assert events == [ConnectionClosed(conn)]
    assert conn not in s.endpoint.connections
    assert s.endpoint.get_timer() is None
    s.expect_nothing()


def test_cc_completes_with_the_initiators_ak_at_once() -> None:
    s = Script()
    conn = s.connect(called_tsap=b"srv", calling_tsap=b"cli")
    cr = s.expect(CR)
    cc = CC(
        cr.src_ref,
        PEER_REF,
        credit=7,
        params=(TpduSize(13), CallingTsap(b"cli"), CalledTsap(b"srv"), AdditionalOptions(1)),
        data=b"welcome",
    )
    s.send(cc, at=0.25)
    # the third message of the class 4 handshake, with our credit
    s.expect(AK(PEER_REF, 0, 15), at=0.25, exact=True)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert conn.remote_ref == PEER_REF
    assert conn.confirm_data == b"welcome"
    assert conn.tpdu_size == 8192
    assert conn.checksum is True
    assert conn.expedited_enabled is True
    assert conn.extended is False
    assert s.events() == [ConnectionEstablished(conn)]
    assert s.endpoint.stats.connections_opened == 1
    # no CR retransmission any more
    s.expect_nothing(until=1.5)


def test_cc_may_negotiate_a_smaller_tpdu_size() -> None:
    s = Script()
    conn, _ = open_as_initiator(s, cc_params=(TpduSize(10), AdditionalOptions(1)))
    assert conn.tpdu_size == 1024
    assert conn.max_data == 1024 - 5 - 4  # DT header and checksum parameter
    big = bytes(3000)
    s.call(conn.send, big)
    sizes = [len(e.raw) for e in s.take()]
    assert max(sizes) == 1024


def test_cc_without_tpdu_size_means_128() -> None:
    s = Script()
    conn, _ = open_as_initiator(s, cc_params=())
    assert conn.tpdu_size == 128
    # AdditionalOptions absent: the standard's default 0x01 (expedited, checksum)
    assert conn.checksum is True
    assert conn.expedited_enabled is True


def test_cc_larger_than_proposed_fails_negotiation_with_dr_130() -> None:
    s = Script(Config(max_tpdu_size=1024, preferred_max_tpdu_size=None))
    conn = s.connect()
    cr = s.expect(CR)
    assert cr.tpdu_size == 1024
    s.send(CC(cr.src_ref, PEER_REF, 15, params=(TpduSize(11),)), at=0.25)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NEGOTIATION_FAILED), at=0.25)
    s.expect_nothing()
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.NEGOTIATION_FAILED
    assert conn.error.by_peer is False
    assert s.event_types() == ["ConnectionTerminated"]


def test_cc_of_class_0_fails_negotiation_with_dr_130_retransmitted_until_dc() -> None:
    cfg = Config(initial_retransmit_time=0.5, reference_freeze_time=2.0)
    s = Script(cfg)
    conn = s.connect()
    cr = s.expect(CR)
    s.send(CC(cr.src_ref, PEER_REF, 0, protocol_class=0, params=(TpduSize(11),)), at=0.25)
    dr = DR(PEER_REF, conn.local_ref, DRReason.NEGOTIATION_FAILED)
    s.expect(dr, at=0.25)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == 130
    s.advance(to=conn.rto + 0.25)
    s.expect(dr)
    s.send(DC(conn.local_ref, PEER_REF), at=s.now + 0.1)
    assert conn.state is State.REFWAIT
    s.expect_nothing(until=s.now + 10)
    assert conn.state is State.CLOSED


def test_cc_with_extended_format_not_proposed_fails_negotiation() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    assert cr.options == 0
    s.send(CC(cr.src_ref, PEER_REF, 15, options=0x02, params=(TpduSize(13),)), at=0.25)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NEGOTIATION_FAILED))
    assert conn.state is State.CLOSING


@pytest.mark.parametrize("cc_options, extended", [(0x02, True), (0x00, False)])
def test_extended_format_only_when_proposed_and_accepted(cc_options: int, extended: bool) -> None:
    s = Script(Config(extended_format=True))
    conn = s.connect()
    cr = s.expect(CR)
    assert cr.options == 0x02
    s.send(CC(cr.src_ref, PEER_REF, 15, options=cc_options, params=(TpduSize(13),)), at=0.25)
    ak = s.expect(AK, at=0.25)
    assert conn.state is State.OPEN
    assert conn.extended is extended
    assert ak.extended is extended
    assert ak.credit == 15


@pytest.mark.parametrize(
    "use_checksum, cc_flags, checksum",
    [
        (False, AdditionalOptions.NON_USE_OF_CHECKSUM, False),  # both agree: no checksum
        (False, 0x00, True),  # the peer wants it
        (True, AdditionalOptions.NON_USE_OF_CHECKSUM, True),  # we did not propose non-use
        (True, 0x00, True),
    ],
)
def test_non_use_of_checksum_only_if_both_agree(
    use_checksum: bool, cc_flags: int, checksum: bool
) -> None:
    s = Script(Config(use_checksum=use_checksum))
    conn = s.connect()
    cr = s.expect(CR, checksum=True)
    s.send(CC(cr.src_ref, PEER_REF, 15, params=(AdditionalOptions(cc_flags),)), at=0.25)
    s.expect(AK(PEER_REF, 0, 15), checksum=checksum)
    assert conn.checksum is checksum
    assert conn.expedited_enabled is False  # the CC did not select it
    s.call(conn.send, b"x")
    s.expect(DT(PEER_REF, 0, True, b"x"), checksum=checksum)


def test_cc_selecting_non_use_may_come_without_checksum() -> None:
    # Only the CR must carry the checksum (netiso tp_emit: checksum if tp_use_checksum or
    # CR in class 4); a responder that accepts non-use sends its CC without one.
    s = Script(Config(use_checksum=False))
    conn = s.connect()
    cr = s.expect(CR)
    flags = AdditionalOptions.NON_USE_OF_CHECKSUM | AdditionalOptions.USE_EXPEDITED
    cc = CC(cr.src_ref, PEER_REF, 15, params=(TpduSize(13), AdditionalOptions(flags)))
    s.send(cc, at=0.25, checksum=False)
    assert s.endpoint.stats.missing_checksum == 0
    s.expect(AK(PEER_REF, 0, 15), at=0.25, checksum=False)
    assert conn.state is State.OPEN
    assert conn.checksum is False


def test_duplicate_cc_in_open_is_answered_with_the_ak_again() -> None:
    s = Script()
    conn, cr = open_as_initiator(s)
    cc = CC(cr.src_ref, PEER_REF, 15, params=(TpduSize(13), AdditionalOptions(0x01)))
    s.send(cc, at=1.0)  # our AK was lost: the peer retransmits its CC
    s.expect(AK(PEER_REF, 0, 15), at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN


@pytest.mark.parametrize(
    "reason, errno_",
    [
        (DRReason.SESSION_NOT_ATTACHED, errno.ECONNREFUSED),
        (DRReason.REFERENCE_OVERFLOW, errno.ECONNREFUSED),
        (DRReason.REFUSED_ON_THIS_NETWORK_CONNECTION, errno.ECONNREFUSED),
        (DRReason.CONGESTION, errno.ECONNABORTED),
        (DRReason.NORMAL, errno.ECONNABORTED),
    ],
)
def test_dr_in_wfcc_refuses_the_connect(reason: DRReason, errno_: int) -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.send(DR(cr.src_ref, PEER_REF, reason, data=b"go away"), at=0.25)
    s.expect(DC(PEER_REF, cr.src_ref), at=0.25)
    s.expect_nothing()
    assert conn.state is State.REFWAIT
    assert isinstance(conn.error, ConnectionRejected)
    assert isinstance(conn.error, ConnectionRefusedError)
    assert conn.error.reason == reason
    assert conn.error.data == b"go away"
    assert conn.error.errno == errno_
    assert s.event_types() == ["ConnectionTerminated", "ReleaseCompleted"]
    s.expect_nothing(until=10.0)  # no CR retransmission


def test_refusal_dr_with_src_ref_0_gets_no_dc() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.send(DR(cr.src_ref, 0, DRReason.SESSION_NOT_ATTACHED), at=0.25)
    s.expect_nothing()
    assert isinstance(conn.error, ConnectionRejected)


# =====================================================================
# responder: deferred confirmation
# =====================================================================


def test_cr_creates_a_confirming_connection_and_sends_nothing() -> None:
    s = Script(Config(confirm_timeout=30.0))
    listener = s.endpoint.listen(b"srv")
    s.send(peer_cr(called=b"srv", calling=b"cli", data=b"connect-data"), at=0.0)
    s.expect_nothing()
    events = s.events()
    assert len(events) == 1
    assert isinstance(events[0], ConnectionRequested)
    conn = events[0].connection
    assert events[0].tsap == b"srv"
    assert conn.state is State.CONFIRMING
    assert conn.peer == PEER
    assert conn.remote_ref == PEER_REF
    # readable without confirming
    assert conn.connect_data == b"connect-data"
    assert conn.calling_tsap == b"cli"
    assert conn.called_tsap == b"srv"
    assert s.endpoint.accept(listener) is conn
    assert s.endpoint.accept(listener) is None
    assert conn.receive() is None  # reading does not confirm
    assert conn.state is State.CONFIRMING
    s.expect_nothing(until=29.0)
    assert conn.state is State.CONFIRMING
    assert s.endpoint.stats.connections_requested == 1


def test_confirm_sends_cc_with_data_and_echoed_tsaps() -> None:
    s = Script()
    listener = s.endpoint.listen(b"srv")
    s.send(peer_cr(called=b"srv", calling=b"cli", size_exponent=11), at=0.0)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.confirm, b"confirm-data", at=2.0)
    want = CC(
        PEER_REF,
        conn.local_ref,
        credit=15,
        protocol_class=4,
        options=0,
        params=(
            TpduSize(11),  # the smaller of the proposal and ours
            CallingTsap(b"cli"),
            CalledTsap(b"srv"),
            AdditionalOptions(AdditionalOptions.USE_EXPEDITED),  # the CR offered no 0x10
            AckTime(2),
        ),
        data=b"confirm-data",
    )
    s.expect(want, at=2.0, exact=True)
    assert conn.state is State.AKWAIT
    assert conn.confirm_data == b"confirm-data"
    s.call(conn.confirm)  # a no-op once confirmed
    s.expect_nothing()
    assert conn.state is State.AKWAIT


def test_confirm_data_over_32_octets_is_refused() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    with pytest.raises(ValueError):
        s.call(ev.connection.confirm, bytes(33))
    assert ev.connection.state is State.CONFIRMING
    s.expect_nothing()


def test_cc_accepts_the_non_use_of_checksum_only_if_configured() -> None:
    for use_checksum, flags in ((False, 0x02), (True, 0x00)):
        s = Script(Config(use_checksum=use_checksum))
        s.endpoint.listen(None)
        s.send(peer_cr(additional_options=0x02))  # proposes non-use, no expedited
        (ev,) = s.events()
        s.call(ev.connection.confirm)
        cc = s.expect(CC, checksum=True)  # the CC itself always carries it
        assert cc.additional_options == flags
        assert ev.connection.checksum is use_checksum


def test_cc_is_retransmitted_on_t1_until_the_ak_arrives() -> None:
    # (a budget large enough for the schedule: the 3x default is tested below)
    cfg = Config(
        initial_retransmit_time=0.5,
        max_retransmit_time=4.0,
        window_time=5.0,
        amplification_factor=10.0,
    )
    s = Script(cfg)
    s.endpoint.listen(None)
    s.send(peer_cr(), at=0.0)
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    cc = s.expect(CC, at=0.0)
    raw = s.log[-1].raw
    for t in (0.5, 1.5, 3.5):  # T1 = 0.5, doubled on each retransmission
        s.advance(to=t)
        s.expect(cc, at=t, raw=raw)
    s.send(AK(conn.local_ref, 0, 15), at=4.0)
    assert conn.state is State.OPEN
    assert s.events() == [ConnectionEstablished(conn)]
    s.expect_nothing(until=8.999)  # no more CC; the window timer (W = 5) comes next
    s.advance(to=9.0)
    s.expect(AK(PEER_REF, 0, 15), at=9.0)


def test_dt_as_third_message_opens_and_delivers() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    s.expect(CC)
    s.send(DT(conn.local_ref, 0, True, b"first"), at=0.3)
    assert conn.state is State.OPEN
    s.expect(AK(PEER_REF, 1, 14), at=0.3)
    assert s.events() == [ConnectionEstablished(conn), DataReceived(conn)]
    assert conn.receive() == b"first"


def test_ak_for_the_third_message_rides_on_the_first_reply_dt() -> None:
    s = Script(acks=False)  # the driver lets AKs wait for a DT to ride on
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    s.expect(CC)
    s.send(DT(conn.local_ref, 0, True, b"request"), at=0.3)
    s.expect_nothing()  # the AK is pending
    assert s.endpoint.acks_pending
    assert conn.receive() == b"request"
    s.call(conn.send, b"response", at=0.31)
    s.expect([AK(PEER_REF, 1, 15), DT(PEER_REF, 0, True, b"response")], at=0.31, exact=True)
    s.acks = True
    s.flush()
    s.expect_nothing()


def test_ed_as_third_message_opens_and_delivers() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    s.expect(CC)
    s.send(ED(conn.local_ref, 0, b"urgent"), at=0.3)
    assert conn.state is State.OPEN
    s.expect(EA(PEER_REF, 0), at=0.3)
    assert s.events() == [ConnectionEstablished(conn), ExpeditedReceived(conn)]
    assert conn.receive_expedited() == b"urgent"


def test_cc_unanswered_gives_up_after_n_retransmissions() -> None:
    cfg = Config(
        initial_retransmit_time=0.5,
        max_retransmit_time=1.0,
        max_retransmissions=2,
        amplification_factor=10.0,
    )
    s = Script(cfg)
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    cc = s.expect(CC, at=0.0)
    s.advance(to=0.5)
    s.expect(cc, at=0.5)
    s.advance(to=1.5)
    s.expect(cc, at=1.5)
    s.advance(to=2.5)
    # reason 1 before the handshake completed, as netiso (tp.trans: AKWAIT TM_retrans)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.CONGESTION), at=2.5)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, ConnectionTimedOut)


def test_duplicate_cr_while_confirming_is_absorbed() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    cr = peer_cr()
    s.send(cr, at=0.0)
    s.send(cr, at=1.0)  # the peer retransmits its CR
    s.send(cr, at=2.0)
    s.expect_nothing()
    assert len(s.endpoint.connections) == 1
    assert s.endpoint.stats.duplicate_cr == 2
    assert s.endpoint.stats.connections_requested == 1
    assert s.event_types() == ["ConnectionRequested"]
    conn = s.endpoint.accept(listener)
    assert conn is not None
    assert conn.state is State.CONFIRMING
    assert s.endpoint.accept(listener) is None


def test_duplicate_cr_in_akwait_makes_the_cc_go_again() -> None:
    s = Script(Config(initial_retransmit_time=2.0))
    s.endpoint.listen(None)
    cr = peer_cr()
    s.send(cr, at=0.0)
    (ev,) = s.events()
    s.call(ev.connection.confirm)
    cc = s.expect(CC)
    s.send(cr, at=1.0)  # our CC was lost
    s.expect(cc, at=1.0)
    s.expect_nothing()
    assert len(s.endpoint.connections) == 1
    assert s.endpoint.stats.duplicate_cr == 1
    assert ev.connection.state is State.AKWAIT


def test_same_src_ref_from_another_address_is_another_connection() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr(), at=0.0)
    s.send(peer_cr(), at=0.0, addr=("192.0.2.1", 10201))
    assert len(s.endpoint.connections) == 2
    assert s.endpoint.stats.duplicate_cr == 0


def test_send_while_confirming_confirms_implicitly() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.send, b"early data", at=0.5)
    cc = s.expect(CC, at=0.5)
    assert cc.data == b""
    s.expect_nothing()  # no DT before the handshake completes
    assert conn.state is State.AKWAIT
    s.send(AK(conn.local_ref, 0, 15), at=0.75)
    assert conn.state is State.OPEN
    s.expect(DT(PEER_REF, 0, True, b"early data"), at=0.75)
    s.expect_nothing()


def test_send_expedited_while_confirming_confirms_implicitly() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.send_expedited, b"oob", at=0.5)
    s.expect(CC, at=0.5)
    s.expect_nothing()
    s.send(AK(conn.local_ref, 0, 15), at=0.75)
    s.expect(ED(PEER_REF, 0, b"oob"), at=0.75)


def test_reject_while_confirming_sends_dr_128_until_dc() -> None:
    cfg = Config(initial_retransmit_time=0.5, reference_freeze_time=2.0)
    s = Script(cfg)
    listener = s.endpoint.listen(None)
    s.send(peer_cr(), at=0.0)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.disconnect, at=1.0)
    dr = DR(PEER_REF, conn.local_ref, DRReason.NORMAL)
    s.expect(dr, at=1.0, exact=True)
    assert conn.state is State.CLOSING
    assert conn.closed_by_user is True
    assert conn.error is None
    assert s.event_types() == ["ConnectionRequested", "ConnectionTerminated"]
    s.advance(to=1.5)
    s.expect(dr, at=1.5)
    s.advance(to=2.5)
    s.expect(dr, at=2.5)
    s.send(DC(conn.local_ref, PEER_REF), at=2.75)
    assert conn.state is State.REFWAIT
    s.expect_nothing(until=4.7)
    assert conn.state is State.REFWAIT
    s.advance(to=4.75)
    assert conn.state is State.CLOSED
    assert s.events() == [ReleaseCompleted(conn), ConnectionClosed(conn)]
    assert s.endpoint.connections == []


def test_reject_with_reason_and_64_octets_of_data() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    s.send(peer_cr())
    conn = s.endpoint.accept(listener)
    assert conn is not None
    with pytest.raises(ValueError):
        s.call(conn.disconnect, DRReason.CONGESTION, bytes(65))
    assert conn.state is State.CONFIRMING
    s.expect_nothing()
    data = bytes(range(64))
    s.call(conn.disconnect, DRReason.CONGESTION, data)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.CONGESTION, data=data), exact=True)


def test_unanswered_confirmation_times_out_with_the_configured_reason() -> None:
    cfg = Config(confirm_timeout=3.0, confirm_timeout_reason=DRReason.REMOTE_CONGESTION)
    s = Script(cfg)
    listener = s.endpoint.listen(None)
    s.send(peer_cr(), at=0.0)
    (ev,) = s.events()
    conn = ev.connection
    s.expect_nothing(until=2.999)
    s.advance(to=3.0)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.REMOTE_CONGESTION), at=3.0)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.REMOTE_CONGESTION
    assert conn.error.by_peer is False
    assert s.events() == [ConnectionTerminated(conn)]
    assert s.endpoint.accept(listener) is None  # no longer offered
    with pytest.raises(LocalProtocolError):
        conn.confirm(3.5)


def test_default_confirm_timeout_reason_is_0() -> None:
    s = Script(Config(confirm_timeout=1.0))
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    s.advance(to=1.0)
    s.expect(DR(PEER_REF, ev.connection.local_ref, DRReason.NOT_SPECIFIED), at=1.0)


def test_peer_giving_up_while_confirming() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    s.send(peer_cr(), at=0.0)
    (ev,) = s.events()
    conn = ev.connection
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.0)
    s.expect(DC(PEER_REF, conn.local_ref), at=1.0)
    assert conn.state is State.REFWAIT
    assert isinstance(conn.error, Disconnected)
    assert conn.error.by_peer is True
    assert s.endpoint.accept(listener) is None


# =====================================================================
# responder: CRs refused without a connection
# =====================================================================


def test_backlog_full_refuses_with_dr_1_without_a_connection() -> None:
    s = Script()
    s.endpoint.listen(b"srv", backlog=2)
    s.send(peer_cr(0x0101))
    s.send(peer_cr(0x0102))
    s.expect_nothing()
    s.send(peer_cr(0x0103), at=0.5)
    s.expect(DR(0x0103, 0, DRReason.CONGESTION), at=0.5, exact=True)
    s.expect_nothing()
    assert len(s.endpoint.connections) == 2
    assert s.endpoint.stats.connections_refused == 1
    assert s.event_types() == ["ConnectionRequested", "ConnectionRequested"]
    s.expect_nothing(until=5.0)  # a refusal is not retransmitted


def test_accepting_frees_the_backlog() -> None:
    s = Script()
    listener = s.endpoint.listen(None, backlog=1)
    s.send(peer_cr(0x0101))
    assert s.endpoint.accept(listener) is not None
    s.send(peer_cr(0x0102))
    s.expect_nothing()
    assert len(s.endpoint.connections) == 2


def test_max_half_open_per_address_refuses_with_dr_1() -> None:
    s = Script(Config(max_half_open_per_address=2))
    listener = s.endpoint.listen(None, backlog=100)
    host, port = PEER
    s.send(peer_cr(0x0101), addr=(host, port))
    s.send(peer_cr(0x0102), addr=(host, port + 1))
    first = s.endpoint.accept(listener)
    assert first is not None
    assert s.endpoint.accept(listener) is not None
    s.expect_nothing()
    # accepted but still CONFIRMING: both are still half open
    s.send(peer_cr(0x0103), addr=(host, port + 2))
    s.expect(DR(0x0103, 0, DRReason.CONGESTION), to=(host, port + 2))
    # another host is not limited
    s.send(peer_cr(0x0104), addr=OTHER_HOST)
    s.expect_nothing()
    # once one is open, a slot frees
    s.call(first.confirm)
    s.expect(CC, to=(host, port))
    s.send(AK(first.local_ref, 0, 15), addr=(host, port))
    assert first.state is State.OPEN
    s.send(peer_cr(0x0105), addr=(host, port + 3))
    s.expect_nothing()
    assert len(s.endpoint.connections) == 4


def test_no_listener_for_the_called_tsap_refuses_with_dr_2() -> None:
    s = Script()
    s.endpoint.listen(b"srv")
    s.send(peer_cr(called=b"other"), at=0.25)
    s.expect(DR(PEER_REF, 0, DRReason.SESSION_NOT_ATTACHED), at=0.25, exact=True)
    s.send(peer_cr(0x0102, called=None))
    s.expect(DR(0x0102, 0, DRReason.SESSION_NOT_ATTACHED))
    assert s.endpoint.connections == []
    assert s.endpoint.stats.connections_refused == 2


def test_no_listener_at_all_refuses_with_dr_2() -> None:
    s = Script()
    s.send(peer_cr())
    s.expect(DR(PEER_REF, 0, DRReason.SESSION_NOT_ATTACHED))


def test_listener_for_none_catches_any_tsap() -> None:
    s = Script()
    specific = s.endpoint.listen(b"srv")
    anything = s.endpoint.listen(None)
    s.send(peer_cr(0x0101, called=b"srv"))
    s.send(peer_cr(0x0102, called=b"other"))
    s.send(peer_cr(0x0103, called=None))
    s.expect_nothing()
    a = s.endpoint.accept(specific)
    assert a is not None and a.remote_ref == 0x0101
    assert s.endpoint.accept(specific) is None
    b = s.endpoint.accept(anything)
    c = s.endpoint.accept(anything)
    assert b is not None and b.remote_ref == 0x0102
    assert c is not None and c.remote_ref == 0x0103
    tsaps = [e.tsap for e in s.events() if isinstance(e, ConnectionRequested)]
    assert tsaps == [b"srv", None, None]


def test_two_listeners_for_one_tsap_are_refused() -> None:
    s = Script()
    s.endpoint.listen(b"srv")
    with pytest.raises(ValueError):
        s.endpoint.listen(b"srv")


def test_close_listener_rejects_queued_connections_with_dr_2() -> None:
    s = Script()
    listener = s.endpoint.listen(b"srv")
    s.send(peer_cr(0x0101, called=b"srv"))
    s.send(peer_cr(0x0102, called=b"srv"))
    s.send(peer_cr(0x0103, called=b"srv"))
    accepted = s.endpoint.accept(listener)
    assert accepted is not None
    queued = list(listener.queue)
    assert len(queued) == 2
    s.endpoint.close_listener(listener, 1.0)
    s.flush()
    for conn in queued:
        s.expect(DR(conn.remote_ref, conn.local_ref, DRReason.SESSION_NOT_ATTACHED))
        assert conn.state is State.CLOSING
    s.expect_nothing()
    assert accepted.state is State.CONFIRMING  # the user owns it now
    s.send(peer_cr(0x0104, called=b"srv"))
    s.expect(DR(0x0104, 0, DRReason.SESSION_NOT_ATTACHED))


def test_cr_of_another_class_is_refused_with_dr_130() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr(protocol_class=2), at=0.5)
    s.expect(DR(PEER_REF, 0, DRReason.NEGOTIATION_FAILED), at=0.5)
    s.expect_nothing()
    assert s.endpoint.connections == []


def test_class_0_cr_without_checksum_is_refused_with_dr_130() -> None:
    s = Script()
    s.endpoint.listen(None)
    cr = CR(PEER_REF, 0, protocol_class=0, params=(TpduSize(11), CalledTsap(b"srv")))
    s.send(encode_one(cr, checksum=False))
    s.expect(DR(PEER_REF, 0, DRReason.NEGOTIATION_FAILED), checksum=None)


def test_class_4_cr_without_checksum_and_without_non_use_is_dropped() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr(), checksum=False)
    s.expect_nothing()
    assert s.endpoint.stats.missing_checksum == 1
    assert s.endpoint.connections == []


def test_cr_proposing_non_use_may_come_without_checksum() -> None:
    s = Script(Config(use_checksum=False))
    s.endpoint.listen(None)
    s.send(peer_cr(additional_options=0x03), checksum=False)
    (ev,) = s.events()
    assert ev.connection.checksum is False
    s.call(ev.connection.confirm)
    s.expect(CC, checksum=True)


def test_no_free_reference_refuses_with_dr_135() -> None:
    s = Script(Config(max_connections=2))
    s.endpoint.listen(None)
    s.send(peer_cr(0x0101))
    s.send(peer_cr(0x0102))
    s.send(peer_cr(0x0103))
    s.expect(DR(0x0103, 0, DRReason.REFERENCE_OVERFLOW))
    with pytest.raises(OSError):
        s.connect()


def test_responder_opening_helper_leaves_an_open_quiet_connection() -> None:
    s = Script()
    conn, cc = open_as_responder(s)
    assert cc.dst_ref == PEER_REF
    assert conn.state is State.OPEN
    assert conn.remote_ref == PEER_REF
