"""The sans-IO class 0 engine (:mod:`tp4emu.core.class0`), byte for byte.

Like ``tests/scripted.py`` for class 4, but over a byte stream: each test
feeds hand-built octets (TPKTs written out here, not with the package's
encoder) to one :class:`~tp4emu.core.class0.Class0Connection` and asserts
the exact octets it produces, its state, its events and its error. Nothing
does I/O and nothing sleeps.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tp4emu.core import (
    Config,
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    Role,
    State,
    Statistics,
)
from tp4emu.core.class0 import (
    CLASS0_TRANSITIONS,
    Class0Connection,
    Class0Input,
    ConnectionEstablished,
    ConnectionRequested,
    ConnectionTerminated,
    DataReceived,
    table_markdown,
)
from tp4emu.wire import DRReason


def tpkt(payload: bytes) -> bytes:
    """A TPKT by hand: version 3, reserved 0, length including the header."""
    return bytes([3, 0]) + struct.pack(">H", len(payload) + 4) + payload


def dt(data: bytes, eot: bool = True) -> bytes:
    """A class 0 DT in its TPKT: LI 2, 0xF0, EOT bit + TPDU-NR 0."""
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + data)


# CR: SRC-REF 0x1234, class 0, calling TSAP 0100, called TSAP 0102, TPDU size 1024.
CR_HAND = tpkt(bytes.fromhex("11e00000123400c1020100c2020102c0010a"))
# Our CC: DST-REF 0x1234, SRC-REF 1, class 0, TPDU size 1024, the TSAPs echoed.
CC_EXPECTED = tpkt(bytes.fromhex("11d01234000100c0010ac1020100c2020102"))
# A peer's CC to our CR: DST-REF 1, SRC-REF 0x4321, class 0, TPDU size 128.
CC_128 = tpkt(bytes.fromhex("09d00001432100c00107"))
# Our CR with those TSAPs: class 0's maximum TPDU size, 2048.
CR_OURS = bytes.fromhex("03000016" + "11e00000000100" + "c0010b" + "c1020100" + "c2020102")


def events(conn: Class0Connection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def responder(config: Config | None = None, cr: bytes = CR_HAND) -> Class0Connection:
    """A responder that got *cr* and accepted it (OPEN); its output and events taken."""
    conn = Class0Connection(Role.RESPONDER, config)
    conn.receive_data(cr)
    conn.accept()
    assert conn.state is State.OPEN, conn.error
    conn.data_to_send()
    events(conn)
    return conn


def initiator(config: Config | None = None, cc: bytes = CC_128) -> Class0Connection:
    """An initiator whose CR got *cc* (OPEN); its output and events taken."""
    conn = Class0Connection(Role.INITIATOR, config)
    conn.connect()
    conn.data_to_send()
    conn.receive_data(cc)
    assert conn.state is State.OPEN, conn.error
    events(conn)
    return conn


# ------------------------------------------------------------ responder


def test_responder_cr_then_cc_bytes() -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    assert conn.state is State.CLOSED and conn.wants_data
    conn.receive_data(CR_HAND[:5])
    assert conn.state is State.CLOSED and conn.held == 5 and conn.data_to_send() == b""
    conn.receive_data(CR_HAND[5:])
    assert conn.state is State.CONFIRMING
    assert events(conn) == [ConnectionRequested(conn, b"\x01\x02")]
    assert conn.data_to_send() == b""  # nothing until the driver decides
    assert not conn.wants_data
    assert (conn.calling_tsap, conn.called_tsap, conn.remote_ref) == (
        b"\x01\x00",
        b"\x01\x02",
        0x1234,
    )
    assert conn.tpdu_size == 1024 and conn.refusal is None
    conn.accept()
    assert conn.data_to_send() == CC_EXPECTED
    assert conn.state is State.OPEN and conn.wants_data
    assert events(conn) == [ConnectionEstablished(conn)]
    assert stats.undecodable == 0


@pytest.mark.parametrize(
    ("size_param", "granted", "config"),
    [
        ("c0010d", "c0010b", Config()),  # 8192 asked: class 0's maximum, 2048
        ("c0010b", "c0010b", Config()),
        ("c00107", "c00107", Config()),
        ("", "c00107", Config()),  # none: the default, 128
        ("c0010b", "c00108", Config(max_tpdu_size=256)),  # our configuration caps it
    ],
)
def test_responder_tpdu_size_negotiation(size_param: str, granted: str, config: Config) -> None:
    body = "e00000000700" + size_param
    conn = Class0Connection(Role.RESPONDER, config)
    conn.receive_data(tpkt(bytes([len(body) // 2]) + bytes.fromhex(body)))
    conn.accept()
    assert conn.data_to_send() == tpkt(bytes.fromhex("09d000070001" + "00" + granted))
    assert conn.tpdu_size == 1 << bytes.fromhex(granted)[2]
    assert conn.calling_tsap is None and conn.called_tsap is None


def test_responder_class_negotiation() -> None:
    # Class 4 without alternatives: accept() answers DR 130.
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(tpkt(bytes.fromhex("06e000000007" + "40")))
    events(conn)
    assert conn.refusal == DRReason.NEGOTIATION_FAILED
    conn.accept()
    assert conn.data_to_send() == tpkt(bytes.fromhex("068000070000" + "82"))
    assert conn.state is State.CLOSED and conn.error is None
    assert events(conn) == [ConnectionTerminated(conn)]
    # Class 4 with class 0 as an alternative: a class 0 CC.
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(tpkt(bytes.fromhex("09e000000008" + "40" + "c70100")))
    conn.accept()
    assert conn.data_to_send() == tpkt(bytes.fromhex("09d000080001" + "00" + "c00107"))


@pytest.mark.parametrize(
    ("calling", "called", "fits"),
    [(121, 121, False), (0, 246, False), (120, 121, True)],
    ids=["LI-252", "one-TSAP", "LI-251"],
)
def test_responder_cc_that_would_not_fit_is_dr_138(calling: int, called: int, fits: bool) -> None:
    body = bytes.fromhex("e00000123400")
    if calling:
        body += bytes([0xC1, calling]) + bytes(calling)
    body += bytes([0xC2, called]) + b"\xee" * called
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(tpkt(bytes([len(body)]) + body))
    assert conn.state is State.CONFIRMING
    if fits:
        assert conn.refusal is None
        conn.accept()
        assert conn.data_to_send()[5] == 0xD0 and conn.state is State.OPEN
    else:
        assert conn.refusal == DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID == 138
        conn.accept()
        assert conn.data_to_send() == bytes.fromhex("0300000b" + "068012340000" + "8a")
        assert conn.state is State.CLOSED


@pytest.mark.parametrize("reason", [DRReason.SESSION_NOT_ATTACHED, DRReason.CONGESTION])
def test_responder_refuse_bytes(reason: DRReason) -> None:
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(CR_HAND)
    events(conn)
    conn.refuse(reason)
    assert conn.data_to_send() == tpkt(bytes.fromhex("068012340000") + bytes([reason]))
    assert conn.state is State.CLOSED
    assert events(conn) == [ConnectionTerminated(conn)]


def test_responder_holds_data_arriving_with_the_cr_until_accepted() -> None:
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(CR_HAND + dt(b"eager") + tpkt(bytes.fromhex("0461000105")))
    assert conn.state is State.CONFIRMING
    assert conn.held == 8 + 5  # the DT and the AK, not yet taken
    conn.accept()
    assert conn.data_to_send() == CC_EXPECTED  # not the ER yet
    assert conn.receive() == b"eager"
    assert conn.state is State.OPEN
    assert conn.receive() is None  # now the AK is taken: ER and the end
    assert conn.state is State.CLOSED
    assert conn.data_to_send() == tpkt(bytes.fromhex("0870123402c1020461"))


# What a responder answers to the first TPKT when it is not a CR: the exact
# octets (b"": nothing, the driver just closes); always counted undecodable.
NOT_A_CR = [
    # ER: LI 8, DST-REF 0, cause 2, the invalid TPDU (0xC1): its LI and code
    ("dt", dt(b"hi"), tpkt(bytes.fromhex("0870000002c102" + "02f0"))),
    ("cc", CC_128, tpkt(bytes.fromhex("0870000002c102" + "09d0"))),
    (
        "dr",
        tpkt(bytes.fromhex("068000000007" + "80")),
        tpkt(bytes.fromhex("0870000002c102" + "0680")),
    ),
    ("ak", tpkt(bytes.fromhex("0461000105")), b""),
    ("invalid-cr", tpkt(bytes.fromhex("02e000")), b""),
    ("tpkt-version-4", bytes.fromhex("0400000702f080"), b""),
    ("tpkt-length-6", bytes.fromhex("03000006020f"), b""),
    ("tpkt-length-2053", bytes.fromhex("03000805") + bytes(8), b""),
]


@pytest.mark.parametrize(
    ("first", "answer"), [c[1:] for c in NOT_A_CR], ids=[c[0] for c in NOT_A_CR]
)
def test_responder_first_tpdu_not_a_cr(first: bytes, answer: bytes) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(first)
    assert conn.data_to_send() == answer
    assert conn.state is State.CLOSED and not conn.wants_data and conn.ended
    assert events(conn) == [ConnectionTerminated(conn)]
    assert stats.undecodable == 1
    conn.receive_data(CR_HAND)  # ended: input is dropped
    assert conn.state is State.CLOSED and conn.data_to_send() == b"" and not events(conn)


@pytest.mark.parametrize("how", ["eof", "truncated", "reset", "timeout"])
def test_responder_without_a_cr(how: str) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    if how == "truncated":
        conn.receive_data(CR_HAND[:-1])
    if how in ("eof", "truncated"):
        conn.receive_eof()
    elif how == "reset":
        conn.connection_reset()
    else:
        conn.timeout()
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert stats.undecodable == 1 and conn.held == 0


def test_responder_closed_while_deciding_is_not_bad_input() -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(CR_HAND)
    conn.close()
    assert conn.state is State.CLOSED and conn.data_to_send() == b"" and stats.undecodable == 0


# ------------------------------------------------------------ initiator


def test_initiator_cr_bytes_and_cc() -> None:
    conn = Class0Connection(Role.INITIATOR)
    assert not conn.wants_data
    conn.connect(calling_tsap=b"\x01\x00", called_tsap=b"\x01\x02")
    assert conn.state is State.WFCC and conn.wants_data
    assert conn.data_to_send() == CR_OURS
    conn.receive_data(CC_128 + dt(b"hello"))
    assert conn.state is State.OPEN
    assert events(conn) == [ConnectionEstablished(conn)]
    assert (conn.tpdu_size, conn.remote_ref) == (128, 0x4321)
    assert (conn.calling_tsap, conn.called_tsap) == (b"\x01\x00", b"\x01\x02")
    assert conn.held == 8  # the DT waits for receive()
    assert conn.receive() == b"hello"
    assert events(conn) == [DataReceived(conn)]


@pytest.mark.parametrize(
    ("config", "cc", "size"),
    [
        (Config(), "c0010a", 1024),
        (Config(), "c0010d", 2048),  # granted more than asked: not more
        (Config(max_tpdu_size=512), "c0010b", 512),
        (Config(), "", 128),  # no TPDU size: the default
    ],
)
def test_initiator_tpdu_size_negotiation(config: Config, cc: str, size: int) -> None:
    body = bytes.fromhex("d000014321" + "00" + cc)
    conn = initiator(config, tpkt(bytes([len(body)]) + body))
    assert conn.tpdu_size == size


def test_initiator_cr_without_tsaps_and_smaller_config() -> None:
    conn = Class0Connection(Role.INITIATOR, Config(max_tpdu_size=512))
    conn.connect()
    assert conn.data_to_send() == bytes.fromhex("0300000e" + "09e00000000100" + "c00109")


@pytest.mark.parametrize(
    ("answer", "error", "reason", "words"),
    [
        (
            tpkt(bytes.fromhex("068000010000" + "01") + b"busy"),
            ConnectionRejected,
            1,
            "DR reason 1",
        ),
        (
            tpkt(bytes.fromhex("06d000014321" + "40")),
            ConnectionRejected,
            130,
            "expected a class 0 CC",
        ),
        (dt(b"x"), ConnectionRejected, 130, "expected a class 0 CC"),
        (tpkt(bytes.fromhex("0461000105")), ConnectionRejected, 133, "AK does not exist"),
        (b"HTTP/1.1 400\r\n\r\n", ConnectionRejected, 133, "bad answer: TPKT version"),
        (tpkt(bytes.fromhex("05f080")), ConnectionRejected, 133, "bad answer"),
        (b"", ConnectionRejected, 133, "closed during establishment"),
        (CC_128[:5], ConnectionRejected, 133, "ended inside a TPKT"),
        (None, ConnectionTimedOut, 0, "no answer to CR"),
    ],
    ids=["dr", "cc-class-4", "dt", "ak", "garbage", "invalid", "eof", "truncated", "timeout"],
)
def test_initiator_connect_fails(
    answer: bytes | None, error: type[Exception], reason: int, words: str
) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.INITIATOR, stats=stats)
    conn.connect()
    conn.data_to_send()
    if answer is None:
        conn.timeout()
    else:
        conn.receive_data(answer)
        conn.receive_eof()
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert type(conn.error) is error
    assert isinstance(conn.error, (ConnectionRejected, Disconnected))
    assert conn.error.reason == reason and words in str(conn.error)
    if reason == 1:
        assert conn.error.data == b"busy"
    assert events(conn) == [ConnectionTerminated(conn)]
    assert stats.undecodable == 0  # our own connect's failures are not counted


def test_initiator_reset_while_connecting() -> None:
    conn = Class0Connection(Role.INITIATOR)
    conn.connect()
    conn.connection_reset()
    assert isinstance(conn.error, ConnectionRejected) and conn.error.reason == 133


def test_initiator_tsaps_that_do_not_fit_a_cr() -> None:
    conn = Class0Connection(Role.INITIATOR)
    with pytest.raises(ValueError):
        conn.connect(calling_tsap=bytes(200), called_tsap=bytes(200))
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    conn.connect()  # still possible
    assert conn.state is State.WFCC
    with pytest.raises(LocalProtocolError):
        conn.connect()


# ------------------------------------------------------------ data


def test_dt_segmentation_at_128() -> None:
    conn = initiator()
    data = bytes(range(256)) + bytes(44)
    conn.send(data)
    assert conn.data_to_send() == dt(data[:125], False) + dt(data[125:250], False) + dt(data[250:])
    conn.send(data[:125])  # exactly one TPDU's worth
    assert conn.data_to_send() == bytes.fromhex("0300008402f080") + data[:125]
    conn.send(b"")  # an empty TSDU: one DT with EOT
    assert conn.data_to_send() == bytes.fromhex("0300000702f080")
    conn.send(memoryview(b"mv"))
    assert conn.data_to_send() == dt(b"mv")


def test_dt_segmentation_at_2048() -> None:
    conn = initiator(cc=tpkt(bytes.fromhex("09d000014321" + "00c0010b")))
    data = bytes(i % 251 for i in range(5000))
    conn.send(data)
    want = dt(data[:2045], False) + dt(data[2045:4090], False) + dt(data[4090:])
    assert conn.data_to_send() == want


def test_reassembly_one_octet_at_a_time() -> None:
    conn = responder()
    tsdu = bytes(range(200)) * 5
    wire = dt(tsdu[:300], False) + dt(tsdu[300:301], False) + dt(b"", False) + dt(tsdu[301:])
    wire += dt(b"second") + dt(b"")
    got = []
    for i in range(len(wire)):
        conn.receive_data(wire[i : i + 1])
        while (tsdu_got := conn.receive()) is not None:
            got.append(tsdu_got)
    assert got == [tsdu, b"second", b""]
    assert events(conn) == [DataReceived(conn)] * 3
    assert conn.held == 0 and conn.data_to_send() == b""


def test_one_tsdu_at_a_time() -> None:
    conn = responder()
    conn.receive_data(dt(b"a") + dt(b"b", False) + dt(b"c") + dt(b"d"))
    # One TSDU ready; the rest is held, undecoded, until it is taken. (Held:
    # the TSDU ready, and the TPKT payloads not yet taken.)
    assert events(conn) == [DataReceived(conn)]
    assert conn.held == 1 + 3 * 4 and not conn.wants_data
    assert conn.receive() == b"a"
    assert conn.held == 3 * 4 and not conn.wants_data
    assert [conn.receive(), conn.receive(), conn.receive()] == [b"bc", b"d", None]
    assert conn.wants_data and conn.held == 0


def test_dt_longer_than_the_tpdu_size_gets_er() -> None:
    conn = initiator()  # 128, the peer's reference 0x4321
    conn.receive_data(dt(bytes(125)))  # a 128-octet TPDU
    assert conn.receive() == bytes(125)
    conn.receive_data(dt(bytes(126)))  # a 129-octet TPDU
    assert conn.receive() is None and conn.state is State.CLOSED
    assert isinstance(conn.error, Disconnected) and "longer than the TPDU size" in str(conn.error)
    assert conn.data_to_send() == tpkt(bytes.fromhex("0870432100c102" + "02f0"))


def test_reassembly_is_bounded_by_max_tsdu_size() -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, Config(max_tsdu_size=1000), stats=stats)
    conn.receive_data(CR_HAND)
    conn.accept()
    conn.data_to_send()
    conn.receive_data(dt(bytes(500), False) * 2)
    assert conn.receive() is None and conn.state is State.OPEN
    conn.receive_data(dt(b"x"))  # 1001 octets
    assert conn.receive() is None and conn.state is State.CLOSED
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.PROTOCOL_ERROR and not conn.error.by_peer
    assert conn.data_to_send() == tpkt(bytes.fromhex("0870123400c102" + "02f0"))
    assert stats.undecodable == 1 and conn.held == 0


# ------------------------------------------------------------ bad input when OPEN


# The ER: LI 8, DST-REF 0x1234, the cause, 0xC1 with the rejected TPDU's LI and code.
@pytest.mark.parametrize(
    ("tpdu", "words", "er"),
    [
        (bytes.fromhex("0461000105"), "AK", "0870123402c1020461"),
        (bytes.fromhex("04f0000180") + b"x", "DT", "0870123402c10204f0"),  # a class 4 DT
        (bytes.fromhex("0410000181") + b"x", "ED", "0870123402c1020410"),
        (bytes.fromhex("05c000014321"), "DC", "0870123402c10205c0"),
        (CR_HAND[4:], "CR", "0870123402c10211e0"),
        (CC_128[4:], "CC", "0870123402c10209d0"),
        (bytes.fromhex("05f080"), "runs past", "0870123403c10205f0"),
        (bytes.fromhex("02ff80"), "0xFF", "0870123402c10202ff"),
        # a DR with 65 octets of data
        (bytes.fromhex("068000014321" + "80") + bytes(65), "invalid TPDU", "0870123403c1020680"),
    ],
    ids=["AK", "DT-class4", "ED", "DC", "CR", "CC", "LI", "type", "DR-65"],
)
def test_invalid_tpdu_gets_er(tpdu: bytes, words: str, er: str) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(CR_HAND)
    conn.accept()
    conn.data_to_send()
    events(conn)
    conn.receive_data(tpkt(tpdu))
    assert conn.state is State.CLOSED
    assert isinstance(conn.error, Disconnected) and not conn.error.by_peer
    assert conn.error.reason == DRReason.PROTOCOL_ERROR and words in str(conn.error)
    assert conn.data_to_send() == tpkt(bytes.fromhex(er))
    assert events(conn) == [ConnectionTerminated(conn)]
    assert stats.undecodable == 1


@pytest.mark.parametrize(
    ("garbage", "reason", "words"),
    [
        (bytes.fromhex("0400000702f080"), DRReason.PROTOCOL_ERROR, "version 4"),
        (bytes.fromhex("03000006020f"), DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID, "length 6"),
        (bytes.fromhex("03000805"), DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID, "2053"),
    ],
)
def test_bad_tpkt_ends_without_er(garbage: bytes, reason: int, words: str) -> None:
    stats = Statistics()
    conn = Class0Connection(Role.RESPONDER, stats=stats)
    conn.receive_data(CR_HAND)
    conn.accept()
    conn.data_to_send()
    conn.receive_data(dt(b"ok") + garbage)  # the TSDU before the garbage is delivered
    assert conn.state is State.OPEN
    assert conn.receive() == b"ok"
    assert conn.receive() is None and conn.state is State.CLOSED
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == reason and words in str(conn.error)
    assert conn.data_to_send() == b""  # the framing is lost: no ER
    assert stats.undecodable == 1


def test_truncated_stream() -> None:
    conn = responder()
    conn.receive_data(dt(b"whole") + dt(b"cut short")[:9])
    conn.receive_eof()
    assert conn.receive() == b"whole"
    assert conn.receive() is None
    assert isinstance(conn.error, Disconnected) and "ended inside a TPKT" in str(conn.error)
    assert conn.error.reason == DRReason.PROTOCOL_ERROR


# ------------------------------------------------------------ release


def test_dr_from_the_peer() -> None:
    conn = initiator()
    conn.receive_data(dt(b"before") + tpkt(bytes.fromhex("068000014321" + "80") + b"bye"))
    assert conn.receive() == b"before" and conn.state is State.OPEN
    assert conn.receive() is None and conn.state is State.CLOSED
    assert isinstance(conn.error, Disconnected)
    assert (conn.error.reason, conn.error.data, conn.error.by_peer) == (128, b"bye", True)
    assert conn.data_to_send() == b""


def test_er_from_the_peer() -> None:
    conn = initiator()
    conn.receive_data(tpkt(bytes.fromhex("0870000102c1020102")))
    assert isinstance(conn.error, Disconnected)
    assert conn.error.reason == DRReason.PROTOCOL_ERROR and conn.error.by_peer
    assert "ER cause 2" in str(conn.error) and conn.data_to_send() == b""


def test_tcp_close_is_a_normal_release() -> None:
    conn = initiator()
    conn.receive_data(dt(b"last words"))
    conn.receive_eof()
    assert conn.receive() == b"last words" and conn.state is State.OPEN
    assert conn.receive() is None
    assert conn.state is State.CLOSED and conn.error is None and conn.released_by_peer
    assert events(conn) == [DataReceived(conn), ConnectionTerminated(conn)]


def test_tcp_close_in_the_middle_of_a_tsdu() -> None:
    conn = initiator()
    conn.receive_data(dt(b"half", False))
    conn.receive_eof()
    assert isinstance(conn.error, Disconnected) and "middle of a TSDU" in str(conn.error)


@pytest.mark.parametrize(
    ("how", "reason", "by_peer", "words"),
    [
        ("reset", 0, True, "reset by peer"),
        ("broken", 133, False, "broken while sending"),
        ("idle", 0, False, "idle: nothing received for 600.0 s"),
    ],
)
def test_driver_inputs_end_an_open_connection(
    how: str, reason: int, by_peer: bool, words: str
) -> None:
    conn = responder()
    {"reset": conn.connection_reset, "broken": conn.send_failed, "idle": conn.timeout}[how]()
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert isinstance(conn.error, Disconnected)
    assert (conn.error.reason, conn.error.by_peer) == (reason, by_peer)
    assert words in str(conn.error)


def test_disconnect_sends_dr_with_both_references() -> None:
    conn = responder()
    with pytest.raises(ValueError):
        conn.disconnect(DRReason.NORMAL, bytes(65))
    conn.disconnect(DRReason.NORMAL, b"go away")
    assert conn.data_to_send() == tpkt(bytes.fromhex("068012340001" + "80") + b"go away")
    assert conn.state is State.CLOSED and conn.error is None


def test_close_sends_nothing_and_is_idempotent() -> None:
    conn = responder()
    conn.close()
    assert conn.state is State.CLOSED and conn.data_to_send() == b""
    assert events(conn) == [ConnectionTerminated(conn)]
    conn.close()
    assert not events(conn)
    conn.receive_data(dt(b"late"))  # dropped
    conn.receive_eof()
    assert conn.receive() is None and conn.held == 0


def test_user_requests_the_state_does_not_allow() -> None:
    conn = Class0Connection(Role.RESPONDER)
    with pytest.raises(LocalProtocolError):
        conn.send(b"x")  # no CR yet
    with pytest.raises(LocalProtocolError):
        conn.connect()  # a responder
    conn.receive_data(CR_HAND)
    with pytest.raises(LocalProtocolError):
        conn.send(b"x")  # not accepted yet
    conn.accept()
    for call in (conn.accept, lambda: conn.refuse(1)):
        with pytest.raises(LocalProtocolError):
            call()
    assert conn.state is State.OPEN
    conn.close()
    with pytest.raises(LocalProtocolError):
        conn.send(b"x")


# ------------------------------------------------------------ capture, table, robustness


def test_recorded_tpdus_in_order() -> None:
    conn = Class0Connection(Role.RESPONDER, record=True)
    conn.receive_data(CR_HAND + dt(b"hi"))
    conn.accept()
    conn.send(b"yo")
    assert conn.recorded() == [
        (False, CR_HAND[4:]),
        (False, dt(b"hi")[4:]),
        (True, CC_EXPECTED[4:]),
        (True, dt(b"yo")[4:]),
    ]
    assert conn.recorded() == []
    assert Class0Connection(Role.RESPONDER).recorded() == []


def test_the_table() -> None:
    states = {state for state, _ in CLASS0_TRANSITIONS} | {
        s for s, _ in CLASS0_TRANSITIONS.values()
    }
    assert states == {State.CLOSED, State.WFCC, State.CONFIRMING, State.OPEN}
    for _, action in CLASS0_TRANSITIONS.values():
        assert callable(getattr(Class0Connection, "_a_" + action))
    # Every received TPDU and stream input has a row wherever input is taken.
    for state in (State.CLOSED, State.WFCC, State.OPEN):
        for inp in (
            Class0Input.CR,
            Class0Input.CC,
            Class0Input.CC_OTHER_CLASS,
            Class0Input.DR,
            Class0Input.DT,
            Class0Input.ER,
            Class0Input.OTHER,
            Class0Input.INVALID,
            Class0Input.BAD_TPKT,
            Class0Input.EOF,
            Class0Input.RESET,
            Class0Input.BROKEN,
            Class0Input.TIMEOUT,
        ):
            assert (state, inp) in CLASS0_TRANSITIONS, (state, inp)
    table = table_markdown()
    assert table.count("\n") == len(CLASS0_TRANSITIONS) + 2
    assert "| CONFIRMING | accept | OPEN | `send_cc` |" in table


SEEDS = [dt(b"x"), dt(b"y", False), CR_HAND, CC_128, tpkt(bytes.fromhex("068000014321" + "80"))]


def mutated(seed: bytes, at: int, octet: int) -> bytes:
    """*seed* with the octet at *at* (modulo its length) replaced."""
    i = at % len(seed)
    return seed[:i] + bytes([octet]) + seed[i + 1 :]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    st.sampled_from(["responder", "open", "initiator"]),
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.binary(max_size=30).map(lambda b: tpkt(bytes([len(b) + 1]) + b)),
            st.sampled_from(SEEDS),
            st.builds(mutated, st.sampled_from(SEEDS), st.integers(0, 40), st.integers(0, 255)),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_never_raises_on_peer_input(start: str, chunks: list[bytes], eof: bool) -> None:
    if start == "responder":
        conn = Class0Connection(Role.RESPONDER)
    elif start == "open":
        conn = responder()
    else:
        conn = Class0Connection(Role.INITIATOR)
        conn.connect()
    for chunk in chunks:
        conn.receive_data(chunk)
        if conn.state is State.CONFIRMING:
            conn.accept()
        while conn.receive() is not None:
            pass
    if eof:
        conn.receive_eof()
        while conn.receive() is not None:
            pass
    conn.data_to_send()
    assert conn.held >= 0
    if conn.ended:
        assert conn.state is State.CLOSED and conn.held == 0 and not conn.wants_data
    else:
        assert conn.state is not State.CLOSED or conn.role is Role.RESPONDER


def test_stale_driver_inputs_are_ignored() -> None:
    # In CONFIRMING the driver reads nothing: a late reset changes nothing. (Its
    # timer there is confirm_timeout: tests/test_core_rdp.py.)
    conn = Class0Connection(Role.RESPONDER)
    conn.receive_data(CR_HAND)
    events(conn)
    conn.connection_reset()
    assert conn.state is State.CONFIRMING and not events(conn) and conn.error is None
    assert "CONFIRMING" in repr(conn) and "0x1234" in repr(conn)
    # Once ended, nothing is taken any more.
    conn.refuse(DRReason.CONGESTION)
    conn.data_to_send()
    events(conn)
    for late in (conn.timeout, conn.connection_reset, conn.send_failed, conn.receive_eof):
        late()
    assert conn.ended and conn.error is None and not events(conn) and conn.data_to_send() == b""
