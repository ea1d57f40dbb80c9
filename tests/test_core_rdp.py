"""RDP's CR and CC in the class 0 engine, byte for byte: data in the header (docs/rdp.md).

RDP (MS-RDPBCGR 2.2.1.1/2.2.1.2) writes a cookie line and an 8-octet
RDP_NEG_REQ where X.224 wants the CR's parameters, and an RDP_NEG_RSP in the
CC's. The CRs here are written out by hand (the first is the one FreeRDP
2.11's ``xfreerdp /u:x`` sends, the CC the one xrdp 0.9.21 answers) and fed
to one :class:`~tp4emu.core.class0.Class0Connection`, as in
``tests/test_core_class0.py``; the boundaries are those of the rule of
:mod:`tp4emu.wire.inline`: cookie filling the TPDU, empty cookie, NEG_REQ
only, garbage, LI 254.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tp4emu.core import (
    Config,
    ConnectionRejected,
    Disconnected,
    LocalProtocolError,
    Role,
    State,
    Statistics,
)
from tp4emu.core.class0 import (
    Class0Connection,
    ConnectionEstablished,
    ConnectionRequested,
    ConnectionTerminated,
    DataReceived,
)
from tp4emu.wire import (
    CR,
    CallingTsap,
    DRReason,
    TPDUError,
    TpduSize,
    decode,
    decode_inline,
    encode_inline,
    parameters_length,
)


def tpkt(payload: bytes) -> bytes:
    """A TPKT by hand: version 3, reserved 0, length including the header."""
    return bytes([3, 0]) + struct.pack(">H", len(payload) + 4) + payload


def cr(variable: bytes, after: bytes = b"", *, src_ref: int = 0, cls: int = 0) -> bytes:
    """A CR in its TPKT: LI counting *variable*, DST-REF 0, *src_ref*, class
    *cls*; *after* follows the header (the user data field)."""
    fixed = bytes([0xE0, 0, 0]) + struct.pack(">H", src_ref) + bytes([cls << 4])
    return tpkt(bytes([6 + len(variable)]) + fixed + variable + after)


COOKIE = b"Cookie: mstshash=x\r\n"
NEG_REQ = bytes.fromhex("0100080003000000")
"""RDP_NEG_REQ: type 1, flags 0, length 8, requestedProtocols TLS | CredSSP."""
NEG_RSP = bytes.fromhex("0200080000000000")
"""RDP_NEG_RSP: type 2, flags 0, length 8, selectedProtocol 0 (standard RDP security)."""
FREERDP_CR = bytes.fromhex("0300002722e00000000000") + COOKIE + NEG_REQ
"""The CR of FreeRDP 2.11 (``xfreerdp /u:x``), as captured."""
XRDP_CC = bytes.fromhex("030000130ed000001234000201080000000000")
"""xrdp 0.9.21's CC to a CR with a cookie and an RDP_NEG_REQ for standard RDP
security: its RDP_NEG_RSP has flags 0x01 (extended client data supported)."""


def events(conn: Class0Connection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def requested(payload: bytes) -> Class0Connection:
    """A responder fed *payload*, in CONFIRMING; its events taken."""
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(payload)
    assert conn.state is State.CONFIRMING, conn.error
    assert events(conn) == [ConnectionRequested(conn, None)]
    return conn


# ------------------------------------------------------------ responder


def test_freerdp_cr_is_confirmed_with_a_neg_rsp() -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(FREERDP_CR)
    assert conn.state is State.CONFIRMING
    assert events(conn) == [ConnectionRequested(conn, None)]
    assert conn.connect_data == COOKIE + NEG_REQ
    assert conn.inline_data and conn.refusal is None
    assert (conn.calling_tsap, conn.called_tsap, conn.remote_ref, conn.tpdu_size) == (
        None,
        None,
        0,
        128,
    )
    conn.accept(NEG_RSP)
    # LI 14: the fixed part and the RDP_NEG_RSP; no TPDU size (the CR had none).
    assert conn.data_to_send() == tpkt(bytes.fromhex("0ed000000001" + "00") + NEG_RSP)
    assert conn.state is State.OPEN and conn.confirm_data == NEG_RSP
    assert events(conn) == [ConnectionEstablished(conn)]
    assert stats.undecodable == 0


@pytest.mark.parametrize(
    ("variable", "data"),
    [
        (NEG_REQ, NEG_REQ),  # RDP_NEG_REQ only (strictly: four unknown parameters)
        (b"Cookie: mstshash=\r\n", b"Cookie: mstshash=\r\n"),  # empty cookie
        (b"Cookie: mstshash=\r\n" + NEG_REQ, b"Cookie: mstshash=\r\n" + NEG_REQ),
        (b"Cookie: msts=3640205228.15629.0000\r\n", b"Cookie: msts=3640205228.15629.0000\r\n"),
        (b"C", b"C"),  # one octet
        (b"\x00", b"\x00"),  # a zero where a parameter code is due
        (b"\x7f\xff\x10garbage", b"\x7f\xff\x10garbage"),  # garbage below 0x80
        (b"\xc5\x20\x01\x02", b"\xc5\x20\x01\x02"),  # a parameter running past the header
        (b"\xc5", b"\xc5"),  # a code without its length
        (bytes.fromhex("c1020100") + COOKIE, COOKIE),  # a parameter, then a cookie
    ],
    ids=[
        "neg-req-only",
        "empty-cookie",
        "empty-cookie-neg-req",
        "routing-token",
        "one-octet",
        "zero",
        "garbage",
        "overrun",
        "lone-code",
        "tsap-then-cookie",
    ],
)
def test_variable_part_that_is_not_parameters_is_connect_data(variable: bytes, data: bytes) -> None:
    conn = requested(cr(variable, src_ref=0x1234))
    assert conn.connect_data == data and conn.inline_data
    tsap = b"\x01\x00" if variable.startswith(b"\xc1") else None
    assert conn.calling_tsap == tsap
    conn.accept()
    echoed = bytes.fromhex("c1020100") if tsap else b""
    cc = bytes.fromhex("d012340001" + "00") + echoed
    assert conn.data_to_send() == tpkt(bytes([len(cc)]) + cc)  # no TPDU size: none asked
    assert conn.state is State.OPEN and conn.confirm_data == b""


def test_cookie_exactly_filling_the_tpdu_and_data_after_the_header() -> None:
    # The LI reaches the last octet of the TPKT: the cookie is all the connect data.
    conn = requested(cr(COOKIE))
    assert conn.connect_data == COOKIE
    # Octets after the header (X.224's user data field) follow those of the header.
    conn = requested(cr(b"Cookie: a\r\n", after=b"tail"))
    assert conn.connect_data == b"Cookie: a\r\ntail"
    # A textbook CR with user data after its header is read strictly, as before.
    conn = requested(cr(b"", after=b"data"))
    assert conn.connect_data == b"data" and not conn.inline_data


def test_bare_cr_gets_a_tpdu_size_unless_the_cc_carries_data() -> None:
    # No parameters and nothing else: a textbook CR; our CC states the default, 128.
    conn = requested(cr(b""))
    assert conn.connect_data == b"" and not conn.inline_data
    conn.accept()
    assert conn.data_to_send() == tpkt(bytes.fromhex("09d000000001" + "00" + "c00107"))
    # The same CR confirmed with data (an RDP server's RDP_NEG_RSP): no TPDU size.
    conn = requested(cr(b""))
    conn.accept(NEG_RSP)
    assert conn.data_to_send() == tpkt(bytes.fromhex("0ed000000001" + "00") + NEG_RSP)
    assert conn.inline_data
    # A TPDU size in the CR is answered with one, before the data.
    conn = requested(cr(bytes.fromhex("c0010a") + COOKIE + NEG_REQ))
    assert conn.connect_data == COOKIE + NEG_REQ and conn.tpdu_size == 1024
    conn.accept(NEG_RSP)
    assert conn.data_to_send() == tpkt(bytes.fromhex("11d000000001" + "00c0010a") + NEG_RSP)


def test_maximal_li() -> None:
    # LI 254: the fixed part and a 248-octet cookie.
    cookie = b"Cookie: mstshash=" + b"n" * 229 + b"\r\n"
    assert len(cookie) == 248
    conn = requested(cr(cookie))
    assert conn.connect_data == cookie
    # Confirm data: 248 octets fit the CC's header (LI 254), 249 do not.
    with pytest.raises(ValueError):
        conn.accept(bytes(249))
    assert conn.state is State.CONFIRMING and conn.data_to_send() == b""
    conn.accept(b"\x02" * 248)
    assert conn.data_to_send() == tpkt(bytes.fromhex("fed000000001" + "00") + b"\x02" * 248)
    # LI 255 is no LI: no CR, the connection ends without an answer.
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(tpkt(bytes([255]) + bytes.fromhex("e0000000000000") + cookie))
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert events(conn) == [ConnectionTerminated(conn)] and stats.undecodable == 1


@pytest.mark.parametrize(
    "payload",
    [
        cr(bytes.fromhex("c00105") + COOKIE),  # a TPDU size of 32 octets before the cookie
        cr(COOKIE, cls=4),  # class 4: read strictly, the cookie a parameter running past
        tpkt(bytes([30]) + bytes.fromhex("e0000000000000") + COOKIE),  # LI past the TPKT
    ],
    ids=["bad-tpdu-size", "class-4", "li-past-the-end"],
)
def test_strictness_kept(payload: bytes) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(payload)
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert stats.undecodable == 1


def test_refuse_an_rdp_cr_with_a_dr() -> None:
    conn = requested(FREERDP_CR)
    conn.refuse(DRReason.CONGESTION, b"busy")
    assert conn.data_to_send() == tpkt(bytes.fromhex("068000000000" + "01") + b"busy")
    assert conn.state is State.CLOSED
    with pytest.raises(ValueError):
        requested(FREERDP_CR).refuse(DRReason.NORMAL, bytes(65))


def test_no_decision_in_time_is_a_dr() -> None:
    # The driver's confirm_timeout expired: DR of confirm_timeout_reason (0 by default).
    conn = requested(cr(COOKIE, src_ref=0x1234))
    conn.timeout()
    assert conn.data_to_send() == tpkt(bytes.fromhex("068012340000" + "00"))
    assert conn.state is State.CLOSED and events(conn) == [ConnectionTerminated(conn)]
    assert isinstance(conn.error, Disconnected) and not conn.error.by_peer
    with pytest.raises(LocalProtocolError):
        conn.accept(NEG_RSP)
    conn = Class0Connection(Role.RESPONDER, Config(confirm_timeout_reason=DRReason.CONGESTION))
    conn.receive_data(FREERDP_CR)
    conn.timeout()
    assert conn.data_to_send() == tpkt(bytes.fromhex("068000000000" + "01"))


def test_rdp_peer_may_send_dts_up_to_2048_octets() -> None:
    # RDP ignores the TPDU size: FreeRDP sends its 467-octet MCS Connect-Initial in
    # one DT after a CR that proposed none (128).
    mcs = b"\x7f\x65" + bytes(457)
    conn = requested(FREERDP_CR)
    conn.accept(NEG_RSP)
    conn.data_to_send()
    events(conn)
    conn.receive_data(tpkt(b"\x02\xf0\x80" + mcs))
    assert events(conn) == [DataReceived(conn)]
    assert conn.receive() == mcs
    # A textbook peer that proposed no size still gets an ER for the same DT.
    conn = requested(cr(b""))
    conn.accept()
    conn.data_to_send()
    conn.receive_data(tpkt(b"\x02\xf0\x80" + mcs))
    assert conn.receive() is None and conn.state is State.CLOSED
    assert conn.data_to_send()[5] == 0x70  # ER


# ------------------------------------------------------------ initiator


def test_rdp_client_cr_and_xrdp_cc() -> None:
    conn = Class0Connection(Role.INITIATOR)
    conn.connect(propose_tpdu_size=False, data=COOKIE + NEG_REQ)
    # What FreeRDP sends, but for our SRC-REF (1).
    assert conn.data_to_send() == bytes.fromhex("0300002722e00000000100") + COOKIE + NEG_REQ
    assert conn.state is State.WFCC and conn.tpdu_size == 128
    assert conn.connect_data == COOKIE + NEG_REQ and conn.inline_data
    conn.receive_data(XRDP_CC)
    assert conn.state is State.OPEN and conn.error is None
    assert conn.confirm_data == bytes.fromhex("0201080000000000")
    assert (conn.remote_ref, conn.tpdu_size) == (0x1234, 128)
    assert events(conn) == [ConnectionEstablished(conn)]


def test_client_cr_with_chosen_parameters() -> None:
    # Nothing at all: the bare fixed part (xrdp answers it with a bare CC).
    conn = Class0Connection(Role.INITIATOR)
    conn.connect(propose_tpdu_size=False)
    assert conn.data_to_send() == tpkt(bytes.fromhex("06e00000000100"))
    conn.receive_data(tpkt(bytes.fromhex("06d00001123400")))
    assert conn.state is State.OPEN and conn.confirm_data == b"" and not conn.inline_data
    # A TSAP and the size, then data.
    conn = Class0Connection(Role.INITIATOR, Config(max_tpdu_size=1024))
    conn.connect(calling_tsap=b"\x01\x00", data=b"Cookie: a\r\n")
    head = bytes.fromhex("e00000000100" + "c0010a" + "c1020100")
    assert conn.data_to_send() == tpkt(bytes([len(head) + 11]) + head + b"Cookie: a\r\n")
    # Too long for one header: ValueError, nothing sent, still CLOSED.
    conn = Class0Connection(Role.INITIATOR)
    with pytest.raises(ValueError):
        conn.connect(propose_tpdu_size=False, data=bytes(249))
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    conn.connect(propose_tpdu_size=False, data=b"C" * 248)  # LI 254
    assert conn.data_to_send() == tpkt(bytes.fromhex("fee00000000100") + b"C" * 248)
    with pytest.raises(LocalProtocolError):
        conn.connect()


def test_cc_answer_with_data_after_a_cr_without() -> None:
    # A CC whose header carries octets that are not parameters: confirm data.
    conn = Class0Connection(Role.INITIATOR)
    conn.connect()
    conn.data_to_send()
    conn.receive_data(tpkt(bytes.fromhex("0ed000011234" + "00") + NEG_RSP))
    assert conn.state is State.OPEN and conn.confirm_data == NEG_RSP and conn.inline_data
    assert conn.tpdu_size == 128  # the CC had no TPDU size: the default


def test_xrdp_answer_to_a_textbook_cr_is_no_dr() -> None:
    # xrdp answers a CR with a TPDU size parameter with an MCS Disconnect-Provider
    # Ultimatum in a DT: the connect fails, but no DR came.
    conn = Class0Connection(Role.INITIATOR)
    conn.connect()
    conn.data_to_send()
    conn.receive_data(bytes.fromhex("0300000902f0802180"))
    assert conn.state is State.CLOSED
    error = conn.error
    assert isinstance(error, ConnectionRejected) and not error.by_peer
    assert error.reason == DRReason.NEGOTIATION_FAILED
    assert "expected a class 0 CC" in str(error) and "DR reason" not in str(error)
    # A DR is the peer's.
    conn = Class0Connection(Role.INITIATOR)
    conn.connect()
    conn.receive_data(tpkt(bytes.fromhex("068000011234" + "02")))
    assert isinstance(conn.error, ConnectionRejected) and conn.error.by_peer


# ------------------------------------------------------------ the wire rule


def test_parameters_length_boundaries() -> None:
    assert parameters_length(b"") == 0
    assert parameters_length(bytes.fromhex("c00107")) == 3
    assert parameters_length(bytes.fromhex("c00107c1")) == 3  # a code without a length
    assert parameters_length(bytes.fromhex("c00107c10201")) == 3  # a value cut short
    assert parameters_length(bytes.fromhex("c000")) == 2  # an empty value is a parameter
    assert parameters_length(bytes.fromhex("c00107") + COOKIE) == 3
    assert parameters_length(NEG_REQ) == 0


def test_decode_inline_leaves_textbook_tpdus_to_decode() -> None:
    assert decode_inline(bytes.fromhex("11e00000123400c1020100c2020102c0010a")) is None
    assert decode_inline(bytes.fromhex("06e00000000000")) is None
    assert decode_inline(bytes.fromhex("06e0000000")) is None  # too short
    assert decode_inline(bytes.fromhex("02f080") + COOKIE) is None  # a DT
    # The strict decoder rejects RDP's CR (its cookie reads as a parameter running past).
    with pytest.raises(TPDUError):
        decode(FREERDP_CR[4:])
    with pytest.raises(ValueError):
        encode_inline(CR(src_ref=1, protocol_class=4, data=COOKIE))


@given(
    data=st.binary(min_size=1, max_size=200).filter(lambda d: d[0] < 0x80),
    size=st.sampled_from([None, 128, 2048]),
    tsap=st.one_of(st.none(), st.binary(max_size=16)),
    src_ref=st.integers(0, 0xFFFF),
)
def test_inline_round_trip(data: bytes, size: int | None, tsap: bytes | None, src_ref: int) -> None:
    params: list[TpduSize | CallingTsap] = []
    if size is not None:
        params.append(TpduSize.for_size(size))
    if tsap is not None:
        params.append(CallingTsap(tsap))
    tpdu = CR(src_ref=src_ref, protocol_class=0, params=tuple(params), data=data)
    raw = encode_inline(tpdu)
    assert raw[0] == len(raw) - 1  # the LI counts the data: nothing after the header
    assert decode_inline(raw) == tpdu
