"""Bad input and liveness timers of the sans-IO core.

Whatever arrives, ``receive_datagram`` never raises and live connections
survive unless a checksum-valid TPDU really addressed to them says otherwise.
Corrupted TPDUs are dropped silently and counted; invalid but checksum-valid
ones are answered as the reference says (ER on an open connection, DR for a
CR). Then the inactivity timer I and the window timer W.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scripted import (
    ER_TYPE,
    ER_VALUE,
    PEER,
    PEER_REF,
    Script,
    open_as_initiator,
    open_as_responder,
    peer_cr,
    with_checksum,
)

from tp4emu.core import (
    Config,
    ConnectionRejected,
    ConnectionTerminated,
    ConnectionTimedOut,
    DataReceived,
    Disconnected,
    State,
)
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    DT0,
    EA,
    ED,
    ER,
    RJ,
    TPDU,
    AdditionalOptions,
    DRReason,
    ERCause,
    FlowControlConfirmation,
    InvalidTpdu,
    SubsequenceNumber,
    TPDUError,
    TpduSize,
    decode,
    encode_one,
)

STRANGER = ("203.0.113.9", 10200)


# =====================================================================
# corrupted and checksum-less TPDUs
# =====================================================================


def test_bad_checksum_is_dropped_silently_and_counted() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    raw = bytearray(encode_one(DT(conn.local_ref, 0, True, b"hello"), checksum=True))
    raw[-1] ^= 0x01
    s.send(bytes(raw), at=1.0)
    s.expect_nothing()
    assert s.endpoint.stats.bad_checksum == 1
    assert conn.receive() is None
    assert s.events() == []
    # the genuine one is accepted afterwards
    s.send(DT(conn.local_ref, 0, True, b"hello"), at=1.5)
    s.expect(AK(PEER_REF, 1, 14), at=1.5)
    assert conn.receive() == b"hello"


@pytest.mark.parametrize(
    "make",
    [
        lambda ref: DR(ref, PEER_REF, DRReason.NORMAL),
        lambda ref: ER(ref, ERCause.INVALID_TPDU_TYPE),
        lambda ref: AK(ref, 0, 3),
        lambda ref: ED(ref, 0, b"x"),
    ],
    ids=["DR", "ER", "AK", "ED"],
)
def test_corrupted_control_tpdus_change_nothing(make) -> None:  # type: ignore[no-untyped-def]
    s = Script()
    conn, _ = open_as_responder(s)
    raw = bytearray(encode_one(make(conn.local_ref), checksum=True))
    raw[-1] = (raw[-1] + 1) % 256 or 1
    s.send(bytes(raw), at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert conn.error is None
    assert s.endpoint.stats.bad_checksum == 1


def test_corrupted_cr_creates_nothing() -> None:
    s = Script()
    s.endpoint.listen(None)
    raw = bytearray(encode_one(peer_cr(), checksum=True))
    raw[-1] ^= 0x40
    s.send(bytes(raw))
    s.expect_nothing()
    assert s.endpoint.connections == []
    assert s.endpoint.stats.bad_checksum == 1


def test_corrupted_dr_for_an_unknown_reference_gets_no_dc() -> None:
    s = Script()
    raw = bytearray(encode_one(DR(0x1234, 0x0777, DRReason.NORMAL), checksum=True))
    raw[-1] ^= 0x01
    s.send(bytes(raw))
    s.expect_nothing()
    assert s.endpoint.stats.bad_checksum == 1


def test_tpdu_without_checksum_on_a_checksum_connection_is_dropped() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.send(DT(conn.local_ref, 0, True, b"naked"), at=1.0, checksum=False)
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.0, checksum=False)
    s.expect_nothing()
    assert s.endpoint.stats.missing_checksum == 2
    assert conn.receive() is None
    assert conn.state is State.OPEN


def test_without_checksum_when_both_agreed_non_use() -> None:
    s = Script(Config(use_checksum=False))
    conn, _ = open_as_responder(s, cr=peer_cr(additional_options=0x03))
    assert conn.checksum is False
    s.send(DT(conn.local_ref, 0, True, b"plain"), at=1.0, checksum=False)
    s.expect(AK(PEER_REF, 1, 14), at=1.0, checksum=False)
    assert conn.receive() == b"plain"
    assert s.endpoint.stats.missing_checksum == 0


def test_a_bad_tpdu_in_a_concatenation_does_not_spoil_the_others() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    bad = bytearray(encode_one(AK(conn.local_ref, 0, 15), checksum=True))
    bad[-1] ^= 0x01
    good = encode_one(DT(conn.local_ref, 0, True, b"ok"), checksum=True)
    s.send(bytes(bad) + good, at=1.0)
    assert s.endpoint.stats.bad_checksum == 1
    assert conn.receive() == b"ok"
    s.expect(AK(PEER_REF, 1, 14))


# =====================================================================
# invalid but checksum-valid TPDUs
# =====================================================================


def _dt_with_type_octet(ref: int, type_octet: int) -> bytes:
    raw = bytearray(encode_one(DT(ref, 0, True, b"x"), checksum=True))
    assert raw[5:7] == b"\xc3\x02"
    raw[1] = type_octet
    return with_checksum(raw, 7)


def _ak_with_overlong_parameter(ref: int) -> bytes:
    # LI 12: AK fixed part (4), checksum (4), then 0x8A claiming 6 octets with 2 left
    raw = bytes([12, 0x6F]) + ref.to_bytes(2, "big") + bytes([0, 0xC3, 2, 0, 0, 0x8A, 6, 0, 0])
    return with_checksum(raw, 7)


@pytest.mark.parametrize(
    "build, cause, answer",
    [
        (lambda ref: _dt_with_type_octet(ref, 0xF1), ERCause.INVALID_TPDU_TYPE, ER_TYPE),
        (lambda ref: _dt_with_type_octet(ref, 0x30), ERCause.INVALID_TPDU_TYPE, ER_TYPE),
        (_ak_with_overlong_parameter, ERCause.INVALID_PARAMETER_VALUE, ER_VALUE),
    ],
    ids=["DT low nibble", "unknown code 3", "parameter past header"],
)
def test_invalid_checksum_valid_tpdu_on_open_connection_gets_er(build, cause, answer) -> None:  # type: ignore[no-untyped-def]
    s = Script()
    conn, _ = open_as_responder(s)
    raw = build(conn.local_ref)
    with pytest.raises(TPDUError) as info:
        decode(raw)
    assert info.value.cause == cause
    s.send(raw, at=1.0)
    er = s.expect(ER(PEER_REF, cause), at=1.0, raw=answer, exact=True)
    assert er.param(InvalidTpdu) is None
    s.expect_nothing()
    assert conn.state is State.OPEN  # an ER answers; it does not disconnect
    assert s.endpoint.stats.undecodable == 1
    assert s.endpoint.stats.er_sent == 1


def test_er_for_a_dt_with_a_bad_parameter_is_exactly_li_8() -> None:
    """The ER names no rejected header, however long: 8 octets on the wire."""
    s = Script()
    conn, _ = open_as_responder(s)
    ref = conn.local_ref.to_bytes(2, "big")
    # a DT with a valid checksum and a long unknown parameter, then 0x8A claiming
    # 6 octets with 2 left in the header
    params = b"\xc3\x02\x00\x00" + b"\xe5\x28" + bytes(40) + b"\x8a\x06\x00\x00"
    raw = with_checksum(bytes([4 + len(params)]) + b"\xf0" + ref + b"\x80" + params + b"data", 7)
    with pytest.raises(TPDUError) as info:
        decode(raw)
    assert info.value.cause == ERCause.INVALID_PARAMETER_VALUE
    assert len(info.value.header) == 1 + raw[0] == 55
    s.send(raw, at=1.0)
    s.expect(at=1.0, raw=ER_VALUE)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert conn.receive() is None
    assert s.endpoint.stats.er_sent == 1


def test_er_without_checksum_is_exactly_li_4() -> None:
    s = Script(Config(use_checksum=False))
    conn, _ = open_as_responder(s, cr=peer_cr(additional_options=0x03))
    assert conn.checksum is False
    ref = conn.local_ref.to_bytes(2, "big")
    raw = b"\x06\xf0" + ref + b"\x80\x8a\x06\x00" + b"data"  # 0x8A past the header
    with pytest.raises(TPDUError) as info:
        decode(raw)
    assert info.value.cause == ERCause.INVALID_PARAMETER_VALUE
    s.send(raw, at=1.0)
    s.expect(at=1.0, raw=bytes.fromhex("04700abc03"), checksum=False)
    s.expect_nothing()
    assert conn.state is State.OPEN
    assert s.endpoint.stats.er_sent == 1


def test_invalid_tpdu_with_bad_checksum_is_dropped_silently() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    raw = bytearray(_dt_with_type_octet(conn.local_ref, 0xF1))
    raw[-1] ^= 0x01
    s.send(bytes(raw), at=1.0)
    s.expect_nothing()
    assert s.endpoint.stats.undecodable == 1
    assert s.endpoint.stats.er_sent == 0


def test_invalid_tpdu_from_another_address_or_for_a_non_open_connection_is_dropped() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.send(_dt_with_type_octet(conn.local_ref, 0xF1), at=1.0, addr=STRANGER)
    s.send(_dt_with_type_octet(0x7777, 0xF1), at=1.0)
    s.endpoint.listen(b"x")
    s.send(peer_cr(0x0202, called=b"x"))
    (ev,) = [e for e in s.events() if e.connection is not conn]
    s.send(_dt_with_type_octet(ev.connection.local_ref, 0xF1), at=1.0)  # CONFIRMING
    s.expect_nothing()
    assert s.endpoint.stats.undecodable == 3
    assert s.endpoint.stats.er_sent == 0


def _cr_raw(cr: CR) -> bytearray:
    raw = bytearray(encode_one(cr, checksum=True))
    assert raw[7:9] == b"\xc3\x02"
    return raw


def test_invalid_cr_with_tpdu_size_code_14_gets_dr_130() -> None:
    s = Script()
    s.endpoint.listen(None)
    raw = _cr_raw(peer_cr(size_exponent=13))
    assert raw[11:14] == b"\xc0\x01\x0d"
    raw[13] = 14
    s.send(with_checksum(raw, 9), at=0.5)
    s.expect(DR(PEER_REF, 0, DRReason.NEGOTIATION_FAILED), at=0.5, exact=True)
    s.expect_nothing()
    assert s.endpoint.connections == []
    assert s.endpoint.stats.undecodable == 1
    assert s.endpoint.stats.connections_refused == 1


def test_invalid_cr_with_parameter_past_the_header_gets_dr_138() -> None:
    s = Script()
    s.endpoint.listen(None)
    raw = _cr_raw(peer_cr(calling=None, called=b"srv", additional_options=None))
    assert raw[14:16] == b"\xc2\x03"
    raw[15] = 9  # the called TSAP claims more octets than the header holds
    s.send(with_checksum(raw, 9))
    s.expect(DR(PEER_REF, 0, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID))
    assert s.endpoint.connections == []


def test_invalid_cr_with_too_much_user_data_gets_dr_138() -> None:
    s = Script()
    s.endpoint.listen(None)
    raw = _cr_raw(peer_cr(data=bytes(32))) + b"!"
    s.send(with_checksum(raw, 9))
    # CR/CC data over 32 octets is a length error (netiso: E_TP_LENGTH_INVAL, 138)
    s.expect(DR(PEER_REF, 0, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID))


def test_invalid_cr_without_valid_checksum_or_with_src_ref_0_gets_nothing() -> None:
    s = Script()
    s.endpoint.listen(None)
    raw = _cr_raw(peer_cr())
    raw[13] = 14
    s.send(bytes(raw))  # checksum not recomputed: corrupted
    raw0 = _cr_raw(peer_cr(src_ref=0))
    raw0[13] = 14
    s.send(with_checksum(raw0, 9))
    s.expect_nothing()
    assert s.endpoint.stats.undecodable == 2


def test_valid_cr_with_src_ref_0_is_dropped() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr(src_ref=0))
    s.expect_nothing()
    assert s.endpoint.connections == []
    assert s.endpoint.stats.invalid_tpdu == 1


# =====================================================================
# ER received, TPDUs class 4 does not use
# =====================================================================


def test_er_in_open_disconnects_with_dr_133() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.send(ER(conn.local_ref, ERCause.INVALID_PARAMETER_VALUE), at=1.0)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.PROTOCOL_ERROR), at=1.0)
    s.expect_nothing()
    assert conn.state is State.CLOSING
    err = conn.error
    assert isinstance(err, Disconnected)
    assert err.reason == DRReason.PROTOCOL_ERROR
    assert err.by_peer is False
    assert s.events() == [ConnectionTerminated(conn)]


def test_er_in_akwait_disconnects_with_dr_133() -> None:
    s = Script()
    s.endpoint.listen(None)
    s.send(peer_cr())
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    s.expect(CC)
    s.send(ER(conn.local_ref, ERCause.INVALID_PARAMETER_CODE), at=0.1)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.PROTOCOL_ERROR), at=0.1)
    assert conn.state is State.CLOSING


def test_er_answering_our_cr_refuses_the_connect() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.send(ER(cr.src_ref, ERCause.INVALID_PARAMETER_CODE), at=0.2)
    s.expect_nothing()
    assert conn.state is State.REFWAIT
    assert isinstance(conn.error, ConnectionRejected)
    assert conn.error.reason == DRReason.PROTOCOL_ERROR


def test_class_0_dt_does_not_raise() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    raw = encode_one(DT0(0, True, b"class 0"))
    assert raw == bytes.fromhex("02f080") + b"class 0"
    s.send(raw, at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN


def test_rj_for_a_live_connection_does_not_raise() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.send(RJ(conn.local_ref, 0, 15), at=1.0)
    for e in s.take():
        decode(e.raw)
    assert conn.state in (State.OPEN, State.CLOSING)


def test_rj_for_an_unknown_reference_is_dropped() -> None:
    s = Script()
    s.send(RJ(0x4321, 0, 15))
    s.expect_nothing()
    assert s.endpoint.stats.unknown_reference == 1


# =====================================================================
# random input never raises; connections survive
# =====================================================================

_PROBE = Script()
LOCAL_REF = open_as_responder(_PROBE)[0].local_ref
"""The reference a fresh ``Script()`` gives its first connection (the rng is seeded)."""


def _seeds(ref: int) -> list[TPDU]:
    return [
        peer_cr(PEER_REF),
        peer_cr(0x0BBB, data=b"abc"),
        CC(ref, PEER_REF, 15, params=(TpduSize(13), AdditionalOptions(1))),
        DR(ref, PEER_REF, DRReason.NORMAL, data=b"x"),
        DC(ref, PEER_REF),
        DT(ref, 0, True, b"hello"),
        DT(ref, 1, False, bytes(20)),
        DT(ref, 0, True, b"ext", True),
        ED(ref, 0, b"e"),
        AK(ref, 0, 15),
        AK(ref, 0, 9, params=(SubsequenceNumber(3), FlowControlConfirmation(0, 0, 15))),
        EA(ref, 0),
        ER(ref, 1, (InvalidTpdu(b"\x01\x02"),)),
    ]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """A TPDU for the live connection, damaged, its checksum often made valid again."""
    tpdu = draw(st.sampled_from(_seeds(LOCAL_REF)))
    raw = bytearray(encode_one(tpdu, checksum=draw(st.booleans())))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["set", "cut", "grow"]))
        if op == "set" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif op == "cut" and raw:
            del raw[draw(st.integers(0, len(raw) - 1)) :]
        else:
            raw += draw(st.binary(min_size=1, max_size=6))
    at = raw.find(b"\xc3\x02")
    if draw(st.booleans()) and at >= 0 and at + 4 <= len(raw):
        raw = bytearray(with_checksum(raw, at + 2))
    if draw(st.booleans()):
        raw += encode_one(draw(st.sampled_from(_seeds(LOCAL_REF))), checksum=True)
    return bytes(raw)


def _decoded(data: bytes) -> list[TPDU] | None:
    try:
        return decode(data)
    except TPDUError:
        return None


def _addressed_to(tpdus: list[TPDU] | None, ref: int) -> bool:
    """Whether a checksum-valid TPDU in *tpdus* may legitimately change connection *ref*."""
    return bool(tpdus) and any(
        not isinstance(t, CR) and getattr(t, "dst_ref", None) == ref and t.checksum_ok
        for t in tpdus  # type: ignore[union-attr]
    )


def _check_survival(data: bytes, addr: object) -> None:
    s = Script()
    s.endpoint.listen(None)
    conn, _ = open_as_responder(s, s.endpoint.listen(b"srv"))
    assert conn.local_ref == LOCAL_REF
    s.endpoint.receive_datagram(data, addr, 1.0)  # must not raise
    s.now = 1.0
    s.flush()
    s.endpoint.receive_datagram(data, addr, 1.0)  # nor a duplicate
    s.flush()
    for emitted in s.take():  # everything sent is a valid, checksummed TPDU
        assert all(t.checksum_ok for t in emitted.tpdus)
    s.events()
    conn.receive()
    conn.receive_expedited()
    if addr == PEER and _addressed_to(_decoded(data), conn.local_ref):
        s.advance(to=60.0)  # whatever state it is in, timers must run without raising
        return
    # nothing addressed to it was valid: the connection is untouched and still works
    assert conn.state is State.OPEN
    assert conn.error is None
    s.send(DT(conn.local_ref, 0, True, b"still alive"), at=1.5)
    assert conn.receive() == b"still alive"
    s.advance(to=60.0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), addr=st.sampled_from([PEER, STRANGER]))
def test_random_bytes_never_raise_and_connections_survive(data: bytes, addr: object) -> None:
    _check_survival(data, addr)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutated(), addr=st.sampled_from([PEER, PEER, STRANGER]))
def test_damaged_tpdus_never_raise_and_connections_survive(data: bytes, addr: object) -> None:
    _check_survival(data, addr)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_bytes_in_every_state_never_raise(data: bytes) -> None:
    for setup in range(5):
        s = Script()
        if setup == 0:
            conn = s.connect()  # WFCC
        else:
            listener = s.endpoint.listen(None)
            s.send(peer_cr())
            conn = s.endpoint.accept(listener)  # type: ignore[assignment]
            assert conn is not None
            if setup >= 2:
                s.call(conn.confirm)  # AKWAIT
            if setup >= 3:
                s.send(AK(conn.local_ref, 0, 15))  # OPEN
            if setup == 4:
                s.call(conn.disconnect)  # CLOSING
        s.endpoint.receive_datagram(data, PEER, 0.5)
        s.endpoint.datagrams_to_send(0.5)
        s.advance(to=100.0)


# =====================================================================
# inactivity timer I, window timer W
# =====================================================================

TIMERS = Config(window_time=1.0, inactivity_time=3.5, initial_retransmit_time=0.5)


def test_inactivity_timer_releases_a_silent_connection() -> None:
    s = Script(TIMERS)
    conn, _ = open_as_responder(s)  # the AK arrived at t=0.25
    ak = AK(PEER_REF, 0, 15)
    for t in (1.25, 2.25, 3.25):  # the window timer keeps sending
        s.advance(to=t)
        s.expect(ak, at=t)
    s.expect_nothing(until=3.749)
    assert conn.state is State.OPEN
    s.advance(to=3.75)  # 0.25 + I: nothing received for I
    # reason 129, as netiso (tp.trans: OPEN, TM_inact)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.REMOTE_CONGESTION), at=3.75)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, ConnectionTimedOut)
    assert isinstance(conn.error, TimeoutError)
    assert s.events() == [ConnectionTerminated(conn)]


def test_inactivity_timer_is_reset_by_received_tpdus_only() -> None:
    s = Script(TIMERS)
    conn, _ = open_as_responder(s)
    s.send(AK(conn.local_ref, 0, 15), at=3.0)  # the peer's own window timer
    s.take()
    # sending does not count as activity
    s.call(conn.send, b"x", at=3.1)
    # neither do datagrams that are dropped: bad checksum, wrong address, no checksum
    bad = bytearray(encode_one(AK(conn.local_ref, 1, 15), checksum=True))
    bad[-1] ^= 0x01
    s.send(bytes(bad), at=5.0)
    s.send(AK(conn.local_ref, 1, 15), at=5.0, addr=STRANGER)
    s.send(AK(conn.local_ref, 1, 15), at=5.0, checksum=False)
    s.advance(to=6.499)
    assert conn.state is State.OPEN
    s.advance(to=6.5)  # 3.0 + I
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, ConnectionTimedOut)


def test_window_timer_resends_the_ak_on_an_idle_connection() -> None:
    cfg = Config(window_time=5.0, inactivity_time=60.0)
    s = Script(cfg)
    conn, _ = open_as_initiator(s)  # our AK went at t=0.25
    ak = AK(PEER_REF, 0, 15)
    s.expect_nothing(until=5.249)
    for t in (5.25, 10.25, 15.25):
        s.advance(to=t)
        s.expect(ak, at=t, exact=True)
    # data received (and acknowledged) restarts W from the last AK
    s.send(DT(conn.local_ref, 0, True, b"hi"), at=17.0)
    s.expect(AK(PEER_REF, 1, 14), at=17.0)
    assert s.events() == [DataReceived(conn)]
    s.expect_nothing(until=21.999)
    s.advance(to=22.0)
    s.expect(AK(PEER_REF, 1, 14), at=22.0)


def test_window_timer_runs_only_while_open() -> None:
    cfg = Config(window_time=1.0, inactivity_time=3.5, confirm_timeout=100.0)
    s = Script(cfg)
    listener = s.endpoint.listen(None)
    s.send(peer_cr(0x0101))
    s.expect_nothing(until=10.0)  # CONFIRMING: silent, no AK
    waiting = s.endpoint.accept(listener)
    assert waiting is not None
    s.call(waiting.disconnect)
    s.expect(DR)
    s.send(DC(waiting.local_ref, 0x0101), at=10.1)
    conn, _ = open_as_responder(s, listener)
    s.advance(by=1.0)
    s.expect(AK(PEER_REF, 0, 15))  # OPEN: W runs
    s.call(conn.disconnect)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NORMAL))
    s.advance(by=3.0)  # CLOSING: only DR retransmissions, no AK
    assert {type(t) for e in s.take() for t in e.tpdus} == {DR}
    s.send(DC(conn.local_ref, PEER_REF))
    s.expect_nothing(until=s.now + 10.0)  # REFWAIT, then CLOSED: silent
    assert conn.state is State.CLOSED
