"""Rows of the transition table that only these tests reach (see test_core_table.py).

Each test names its ``(state, input)`` row and checks the TPDUs and state byte
for byte, on the scripted core.
"""

from __future__ import annotations

from scripted import PEER_REF, Script, open_as_responder, peer_cr

from tp4emu.core import Config, Disconnected, State
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DR,
    DT,
    ED,
    AdditionalOptions,
    DRReason,
    TpduSize,
    encode_one,
)

OTHER = ("198.51.100.7", 10200)


def _cc(cr: CR, src_ref: int = PEER_REF) -> CC:
    return CC(cr.src_ref, src_ref, 15, params=(TpduSize(13), AdditionalOptions(1)))


def test_wfcc_cc_without_responder_reference_is_dropped() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.send(_cc(cr, src_ref=0), at=0.1)
    s.expect_nothing()
    assert conn.state is State.WFCC
    assert s.endpoint.stats.invalid_tpdu == 1
    s.send(encode_one(_cc(cr), checksum=False), at=0.2)  # no checksum, none proposed
    s.expect_nothing()
    assert conn.state is State.WFCC
    assert s.endpoint.stats.missing_checksum == 1
    s.send(_cc(cr), at=0.3)
    s.expect(AK(PEER_REF, 0, 15))
    assert conn.state is State.OPEN


def test_wfcc_send_is_queued_until_the_cc() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.call(conn.send, b"early")
    s.expect_nothing()
    s.send(_cc(cr), at=0.1)
    s.expect([AK(PEER_REF, 0, 15)])
    s.expect(DT(PEER_REF, 0, True, b"early"))


def _akwait(s: Script):  # type: ignore[no-untyped-def]
    listener = s.endpoint.listen(None)
    s.send(peer_cr())
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.confirm)
    s.expect(CC)
    assert conn.state is State.AKWAIT
    return conn


def test_akwait_send_is_queued_until_the_third_message() -> None:
    s = Script()
    conn = _akwait(s)
    s.call(conn.send, b"reply")
    s.expect_nothing()
    s.send(AK(conn.local_ref, 0, 15), at=0.1)
    s.expect(DT(PEER_REF, 0, True, b"reply"), at=0.1)
    assert conn.state is State.OPEN


def test_akwait_send_expedited_is_queued_until_the_third_message() -> None:
    s = Script()
    conn = _akwait(s)
    s.call(conn.send_expedited, b"!")
    s.expect_nothing()
    s.send(AK(conn.local_ref, 0, 15), at=0.1)
    s.expect(ED(PEER_REF, 0, b"!"), at=0.1)


def test_akwait_disconnect_sends_dr() -> None:
    s = Script()
    conn = _akwait(s)
    s.call(conn.disconnect, DRReason.NORMAL, b"bye")
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NORMAL, data=b"bye"), exact=True)
    assert conn.state is State.CLOSING


def test_akwait_inactivity_releases() -> None:
    cfg = Config(
        inactivity_time=3.0,
        window_time=1.0,
        initial_retransmit_time=10.0,
        max_retransmit_time=10.0,
        amplification_factor=10.0,
    )
    s = Script(cfg)
    conn = _akwait(s)
    s.send(peer_cr(), at=0.5)  # a duplicate CR: answered, and I starts
    s.expect(CC, at=0.5)
    s.advance(to=3.5)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.CONGESTION), at=3.5)  # (before the handshake)
    assert conn.state is State.CLOSING
    assert isinstance(conn.error, Disconnected)


def test_open_confirm_is_a_no_op() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.call(conn.confirm)
    s.expect_nothing()
    assert conn.state is State.OPEN


def test_closing_evict_freezes_a_rejected_unvalidated_connection() -> None:
    s = Script(Config(max_unvalidated=1, unvalidated_freeze_time=0.5))
    listener = s.endpoint.listen(None, backlog=10)
    s.send(peer_cr(0x0101))
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.disconnect, DRReason.NORMAL)
    s.expect(DR(0x0101, conn.local_ref, DRReason.NORMAL))
    assert conn.state is State.CLOSING
    s.send(peer_cr(0x0202), addr=OTHER, at=0.1)
    s.expect_nothing()  # its DR went out once already
    assert conn.state is State.REFWAIT
    s.advance(to=0.6)
    assert conn.state is State.CLOSED


def test_refwait_cc_after_an_abandoned_connect_gets_dr() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.call(conn.disconnect)
    assert conn.state is State.REFWAIT
    s.send(_cc(cr), at=0.2)
    s.expect(DR(PEER_REF, conn.local_ref, DRReason.NORMAL), at=0.2, exact=True)
    assert conn.state is State.REFWAIT
