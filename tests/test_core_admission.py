"""Admission control, the amplification budget and the other hardening limits of the core.

Each ``Config`` setting of docs/security.md is shown holding here, on the
scripted core (explicit time, byte-exact TPDUs); the flood itself, through the
trio driver, is in ``test_flood.py``.
"""

from __future__ import annotations

import pytest
from scripted import PEER, PEER_REF, Script, open_as_initiator, open_as_responder, peer_cr

from tp4emu.core import (
    Config,
    ConnectionClosed,
    Disconnected,
    Endpoint,
    State,
)
from tp4emu.wire import AK, CC, CR, DC, DR, DT, EA, ED, DRReason, encode_one

OTHER_HOST = ("198.51.100.7", 10200)


def _sent_to(s: Script, addr: object) -> int:
    return sum(len(e.raw) for e in s.log if e.to == addr)


# =====================================================================
# the CC that would not fit: DR 138 at once, no connection
# =====================================================================


def _long_tsap_cr(calling_len: int, called_len: int) -> CR:
    return peer_cr(calling=b"c" * calling_len, called=b"s" * called_len, additional_options=None)


def test_cr_whose_cc_would_not_fit_is_refused_with_dr_138_and_no_connection() -> None:
    s = Script()
    s.endpoint.listen(None)
    # CR header: 6 + TPDU size 3 + (2 + 119) + (2 + 118) + checksum 4 = 254, the maximum;
    # its CC would add the additional options (3): 257
    cr = _long_tsap_cr(119, 118)
    raw = encode_one(cr, checksum=True)
    assert raw[0] == 254
    s.send(raw, at=0.5)
    s.expect(DR(PEER_REF, 0, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID), at=0.5, exact=True)
    s.expect_nothing(until=10.0)  # refused once, never retransmitted
    assert s.endpoint.connections == []
    assert s.events() == []
    assert s.endpoint.stats.connections_refused == 1


def test_cr_whose_cc_just_fits_is_confirmed() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    # CC header: 6 + TPDU size 3 + calling 2+n + called 2+m + options 3 + checksum 4 = 254
    cr = _long_tsap_cr(117, 117)
    s.send(cr)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.confirm, b"x" * 32)
    cc = s.expect(CC)
    assert s.log[-1].raw[0] == 254
    assert cc.calling_tsap == b"c" * 117 and cc.data == b"x" * 32


# =====================================================================
# per-prefix cap
# =====================================================================


def test_half_open_per_prefix_refuses_with_dr_1_and_other_prefixes_are_unaffected() -> None:
    s = Script(Config(max_half_open_per_prefix=3, max_half_open_per_address=32))
    s.endpoint.listen(None, backlog=100)
    for i in range(3):
        s.send(peer_cr(0x0101 + i), addr=(f"203.0.113.{i + 1}", 1000))
    s.expect_nothing()
    s.send(peer_cr(0x0201), addr=("203.0.113.200", 1000))  # same /24
    s.expect(DR(0x0201, 0, DRReason.CONGESTION), to=("203.0.113.200", 1000), exact=True)
    s.send(peer_cr(0x0301), addr=("203.0.114.1", 1000))  # the next /24
    s.expect_nothing()
    assert len(s.endpoint.connections) == 4


def test_ipv6_prefix_is_a_64() -> None:
    s = Script(Config(max_half_open_per_prefix=2))
    s.endpoint.listen(None, backlog=100)
    s.send(peer_cr(0x0101), addr=("2001:db8:0:1::1", 1000))
    s.send(peer_cr(0x0102), addr=("2001:db8:0:1::ffff", 1000))
    s.expect_nothing()
    s.send(peer_cr(0x0103), addr=("2001:db8:0:1:8000::1", 1000))
    s.expect(DR(0x0103, 0, DRReason.CONGESTION), to=("2001:db8:0:1:8000::1", 1000))
    s.send(peer_cr(0x0104), addr=("2001:db8:0:2::1", 1000))
    s.expect_nothing()


# =====================================================================
# the pool of unvalidated connections: oldest evicted
# =====================================================================


def test_a_full_pool_of_unvalidated_connections_evicts_the_oldest() -> None:
    s = Script(Config(max_unvalidated=3, unvalidated_freeze_time=0.5, initial_retransmit_time=5))
    listener = s.endpoint.listen(None, backlog=100)
    peers = [(f"192.0.2.{i + 1}", 1000) for i in range(4)]
    for i, peer in enumerate(peers[:3]):
        s.send(peer_cr(0x0101 + i), addr=peer, at=0.1 * i)
    oldest = s.endpoint.accept(listener)
    assert oldest is not None and oldest.peer == peers[0]
    s.call(oldest.confirm)
    s.expect(CC, to=peers[0])
    s.events()
    s.send(peer_cr(0x0104), addr=peers[3], at=1.0)
    # the oldest unvalidated one gives way: one DR 1, no retransmission
    s.expect(DR(0x0101, oldest.local_ref, DRReason.CONGESTION), to=peers[0], at=1.0)
    assert oldest.state is State.REFWAIT
    assert isinstance(oldest.error, Disconnected)
    assert oldest.error.reason == DRReason.CONGESTION and oldest.error.by_peer is False
    assert s.endpoint.stats.connections_evicted == 1
    assert s.event_types() == ["ConnectionTerminated", "ReleaseCompleted", "ConnectionRequested"]
    s.expect_nothing(until=1.499)
    assert oldest.state is State.REFWAIT
    s.advance(to=1.5)  # unvalidated_freeze_time, not reference_freeze_time
    assert oldest.state is State.CLOSED
    s.expect_nothing(until=5.0)


def test_a_validated_connection_leaves_the_pool_and_is_never_evicted() -> None:
    s = Script(Config(max_unvalidated=1))
    listener = s.endpoint.listen(None, backlog=100)
    conn, _ = open_as_responder(s, listener)  # its AK validated it
    assert conn.validated
    s.send(peer_cr(0x0202), addr=OTHER_HOST)
    s.send(peer_cr(0x0303), addr=("198.51.100.8", 1))  # evicts 0x0202, not conn
    s.expect(DR, to=OTHER_HOST)
    assert conn.state is State.OPEN
    assert s.endpoint.stats.connections_evicted == 1


def test_a_queued_confirming_connection_evicted_leaves_the_listener_queue() -> None:
    s = Script(Config(max_unvalidated=1))
    listener = s.endpoint.listen(None, backlog=100)
    s.send(peer_cr(0x0101))
    s.send(peer_cr(0x0102), addr=OTHER_HOST)
    (evicted,) = [c for c in s.endpoint.connections if c.peer == PEER]
    s.expect(DR(0x0101, evicted.local_ref, DRReason.CONGESTION))
    assert evicted.state is State.REFWAIT
    conn = s.endpoint.accept(listener)
    assert conn is not None and conn.peer == OTHER_HOST
    assert s.endpoint.accept(listener) is None


def test_initiator_connections_are_validated_from_the_start() -> None:
    s = Script(Config(max_unvalidated=1))
    conn = s.connect()
    assert conn.validated
    s.expect(CR)
    s.endpoint.listen(None)
    s.send(peer_cr(0x0101), addr=OTHER_HOST)
    s.send(peer_cr(0x0102), addr=("198.51.100.8", 1))
    s.expect(DR, to=OTHER_HOST)  # the responder was evicted, not our own connect
    assert conn.state is State.WFCC


# =====================================================================
# amplification: at most 3x the octets received, retransmissions included
# =====================================================================


def test_silent_peer_gets_at_most_3x_what_it_sent() -> None:
    s = Script(Config(ack_time=None))  # (so that the CC is exactly as long as the CR)
    s.endpoint.listen(None)
    cr = peer_cr()
    raw = encode_one(cr, checksum=True)
    s.send(raw, at=0.0)
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    cc = s.expect(CC, at=0.0)
    s.advance(to=120.0)  # every retransmission, the give-up, the freeze
    assert conn.state is State.CLOSED
    sent = _sent_to(s, PEER)
    assert sent <= 3 * len(raw)
    assert sent == 3 * len(s.log[0].raw) == 3 * len(raw)  # this CC is as long as the CR
    assert [type(t).__name__ for e in s.log for t in e.tpdus] == ["CC", "CC", "CC"]
    assert all(e.tpdus == [cc] for e in s.log)
    assert s.endpoint.stats.amplification_limited > 0


def test_a_retransmitted_cr_renews_the_budget_and_gets_the_cc_at_once() -> None:
    cfg = Config(initial_retransmit_time=0.5, max_retransmit_time=4.0, ack_time=None)
    s = Script(cfg)  # (no 0x85: the CC is exactly as long as the CR)
    s.endpoint.listen(None)
    cr = peer_cr()
    s.send(cr, at=0.0)
    (ev,) = s.events()
    conn = ev.connection
    s.call(conn.confirm)
    cc = s.expect(CC, at=0.0)
    s.advance(to=1.5)
    s.expect(cc, at=0.5)
    s.expect(cc, at=1.5)
    s.expect_nothing(until=3.5)  # the third retransmission would pass 3x: withheld
    assert s.endpoint.stats.amplification_limited == 1
    s.send(cr, at=4.0)  # the peer never got a CC: it retransmits its CR
    s.expect(cc, at=4.0)
    s.send(AK(conn.local_ref, 0, 15), at=4.1)
    assert conn.state is State.OPEN and conn.validated


def test_rejected_cr_from_a_silent_peer_gets_at_most_3x() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    raw = encode_one(peer_cr(calling=None, called=None, additional_options=None), checksum=True)
    s.send(raw, at=0.0)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.disconnect, DRReason.NORMAL)
    s.advance(to=60.0)
    assert conn.state is State.CLOSED
    sent = _sent_to(s, PEER)
    assert 0 < sent <= 3 * len(raw)
    assert all(isinstance(t, DR) for e in s.log for t in e.tpdus)


def test_giving_up_on_an_unvalidated_peer_frees_the_reference_soon() -> None:
    cfg = Config(reference_freeze_time=60.0, unvalidated_freeze_time=0.5)
    s = Script(cfg)
    listener = s.endpoint.listen(None)
    s.send(peer_cr(calling=None, called=None, additional_options=None), at=0.0)
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.disconnect, DRReason.NORMAL)
    s.advance(to=20.0)
    # not 30 s confirm timeout + N DR retransmissions + L: a few seconds at most
    assert conn.state is State.CLOSED
    assert ConnectionClosed(conn) in s.events()


def test_validated_peer_is_not_limited() -> None:
    s = Script(Config(reference_freeze_time=2.0))
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect)
    dr = s.expect(DR)
    for _ in range(8):  # N retransmissions, as many as the connection needs
        s.advance(by=conn.rto + 0.001)
        s.expect(dr)
    assert s.endpoint.stats.amplification_limited == 0


# =====================================================================
# references: live connections capped, frozen ones bounded by the space
# =====================================================================


def test_max_connections_counts_live_connections_only() -> None:
    s = Script(Config(max_connections=2, reference_freeze_time=60.0))
    a = s.connect()
    b = s.connect()
    with pytest.raises(OSError):
        s.connect()
    s.call(a.disconnect)  # WFCC -> REFWAIT: frozen, not live
    assert a.state is State.REFWAIT
    c = s.connect()
    assert c.local_ref not in (a.local_ref, b.local_ref)


def test_reference_space_exhausted_refuses_with_dr_135() -> None:
    s = Script(Config(max_connections=70_000, reference_freeze_time=600.0))
    s.endpoint.listen(None)
    for _ in range(0xFFFF):
        s.call(s.connect().disconnect)
    s.take()
    with pytest.raises(OSError):
        s.connect()
    s.send(peer_cr())
    s.expect(DR(PEER_REF, 0, DRReason.REFERENCE_OVERFLOW))


# =====================================================================
# SRC-REF checked on every TPDU that carries one
# =====================================================================


@pytest.mark.parametrize("src_ref", [0, PEER_REF + 1])
def test_dr_with_a_wrong_source_reference_does_not_release(src_ref: int) -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.send(DR(conn.local_ref, src_ref, DRReason.NORMAL), at=1.0)
    s.expect_nothing()
    assert conn.state is State.OPEN and conn.error is None
    assert s.endpoint.stats.invalid_tpdu == 1
    s.send(DR(conn.local_ref, PEER_REF, DRReason.NORMAL), at=1.1)
    s.expect(DC(PEER_REF, conn.local_ref), at=1.1, exact=True)
    assert conn.state is State.REFWAIT


def test_dc_with_a_wrong_source_reference_does_not_complete_the_release() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    s.call(conn.disconnect)
    s.expect(DR)
    s.send(DC(conn.local_ref, 0), at=0.3)
    s.send(DC(conn.local_ref, 0x7777), at=0.3)
    assert conn.state is State.CLOSING
    assert s.endpoint.stats.invalid_tpdu == 2
    s.send(DC(conn.local_ref, PEER_REF), at=0.4)
    assert conn.state is State.REFWAIT


def test_duplicate_cc_with_a_wrong_source_reference_is_dropped() -> None:
    s = Script()
    _conn, cr = open_as_initiator(s)
    s.send(CC(cr.src_ref, PEER_REF + 5, 15), at=1.0)
    s.expect_nothing()  # no AK: not our peer's CC
    assert s.endpoint.stats.invalid_tpdu == 1


def test_dr_in_wfcc_with_src_ref_0_is_a_refusal() -> None:
    s = Script()
    conn = s.connect()
    cr = s.expect(CR)
    s.send(DR(cr.src_ref, 0, DRReason.SESSION_NOT_ATTACHED), at=0.2)
    assert conn.state is State.REFWAIT  # the peer's reference is not known yet


# =====================================================================
# expedited data: a bounded queue
# =====================================================================


def test_unread_eds_beyond_the_cap_get_no_ea() -> None:
    s = Script(Config(max_expedited_queued=2))
    conn, _ = open_as_responder(s)
    for nr in range(2):
        s.send(ED(conn.local_ref, nr, b"x%d" % nr), at=1.0)
        s.expect(EA(PEER_REF, nr), exact=True)
    for _ in range(1000):  # the peer floods ED 2 (or retransmits it)
        s.send(ED(conn.local_ref, 2, b"x2"))
    s.expect_nothing()
    assert s.endpoint.stats.expedited_dropped == 1000
    assert [conn.receive_expedited() for _ in range(3)] == [b"x0", b"x1", None]
    s.send(ED(conn.local_ref, 2, b"x2"), at=1.5)  # its retransmission is taken now
    s.expect(EA(PEER_REF, 2), exact=True)
    assert conn.receive_expedited() == b"x2"


def test_out_of_sequence_eds_are_not_queued() -> None:
    s = Script()
    conn, _ = open_as_responder(s)
    for nr in range(5, 100):
        s.send(ED(conn.local_ref, nr, b"z"))
    s.expect_nothing()
    assert conn.receive_expedited() is None


# =====================================================================
# receive budget: credit withheld, not DR
# =====================================================================


def _two_open(s: Script) -> tuple[list, list]:
    listener = s.endpoint.listen(None, backlog=10)
    conns = []
    for i, peer in enumerate([PEER, OTHER_HOST]):
        s.send(peer_cr(0x0101 + i), addr=peer)
        conn = s.endpoint.accept(listener)
        assert conn is not None
        s.call(conn.confirm)
        cc = s.expect(CC, to=peer)
        s.send(AK(cc.src_ref, 0, 15), addr=peer)
        conns.append(conn)
    s.take()
    return conns, [PEER, OTHER_HOST]


def test_receive_budget_withholds_credit_from_the_connection_over_its_share() -> None:
    s = Script(Config(max_tpdu_size=1024, receive_buffer_budget=4000))
    (a, b), (pa, pb) = _two_open(s)
    data = bytes(1000)
    # a sends partial TSDUs (no EOT) until the endpoint holds more than the budget
    for nr in range(5):
        s.send(DT(a.local_ref, nr, False, data), addr=pa)
    assert s.endpoint._budget.held == 5000
    aks = [t for e in s.take() for t in e.tpdus if isinstance(t, AK)]
    assert aks[-1].credit == 0 and aks[-1].nr == 5
    assert s.endpoint.stats.credit_withheld >= 1
    # b holds little: it keeps its credit
    s.send(DT(b.local_ref, 0, True, b"small"), addr=pb)
    (ak,) = [t for e in s.take() for t in e.tpdus]
    assert isinstance(ak, AK) and ak.credit > 0
    # a's DTs inside the window it was granted before are still taken (no DR)
    s.send(DT(a.local_ref, 5, True, data), addr=pa)
    assert a.state is State.OPEN
    assert a.receive() == data * 6
    s.flush()
    # reading frees the budget: a gets its credit back in an AK
    aks = [t for e in s.take() for t in e.tpdus if isinstance(t, AK) and t.dst_ref == 0x0101]
    assert aks and aks[-1].credit == 15


def test_receive_budget_is_freed_when_a_connection_ends() -> None:
    s = Script(Config(max_tpdu_size=1024, receive_buffer_budget=4000, reference_freeze_time=1))
    (a, _b), (pa, _pb) = _two_open(s)
    for nr in range(5):
        s.send(DT(a.local_ref, nr, False, bytes(1000)), addr=pa)
    assert s.endpoint._budget.held == 5000
    s.send(DR(a.local_ref, 0x0101, DRReason.NORMAL), addr=pa)
    assert s.endpoint._budget.held == 0  # the partial TSDU will never complete


def test_endpoint_default_budget_exceeds_max_tsdu_size() -> None:
    cfg = Config()
    assert cfg.receive_buffer_budget >= cfg.max_tsdu_size
    assert Endpoint(cfg).config is cfg
