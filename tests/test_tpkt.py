"""RFC 1006 TPKT framing: encoder vectors, the incremental decoder, its errors."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tp4emu.wire.constants import DRReason, ERCause
from tp4emu.wire.errors import TPDUError
from tp4emu.wire.tpkt import (
    RFC1006_PORT,
    TPKT_HEADER,
    TPKT_MAX_LENGTH,
    TPKT_MIN_LENGTH,
    TPKTDecoder,
    encode_tpkt,
)

# A class 0 DT with EOT (LI 2, 0xF0, 0x80) and a class 0 CR, framed by hand.
DT0 = bytes.fromhex("02f080")
DT0_DATA = bytes.fromhex("02f080") + b"hello"
CR0 = bytes.fromhex("0ee00000000100c0010bc2020102")
VECTORS = [
    (DT0, bytes.fromhex("03000007") + DT0),
    (DT0_DATA, bytes.fromhex("0300000c") + DT0_DATA),
    (CR0, bytes.fromhex("03000012") + CR0),
]


@pytest.mark.parametrize(("payload", "framed"), VECTORS)
def test_encode_vectors(payload: bytes, framed: bytes) -> None:
    assert encode_tpkt(payload) == framed


def test_constants() -> None:
    assert TPKT_MIN_LENGTH == 7
    assert TPKT_MAX_LENGTH == 65535
    assert RFC1006_PORT == 102


def test_encode_limits() -> None:
    biggest = encode_tpkt(b"\x02\xf0\x80" + bytes(65528))
    assert biggest[:4] == b"\x03\x00\xff\xff"
    assert len(biggest) == 65535
    with pytest.raises(ValueError):
        encode_tpkt(bytes(65532))
    with pytest.raises(ValueError):
        encode_tpkt(b"\x02\xf0")
    with pytest.raises(ValueError):
        encode_tpkt(b"")


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF))
def test_header_construct_matches_struct(version: int, reserved: int, length: int) -> None:
    raw = struct.pack(">BBH", version, reserved, length)
    built = TPKT_HEADER.build({"version": version, "reserved": reserved, "length": length})
    assert built == raw
    parsed = TPKT_HEADER.parse(raw)
    assert (parsed.version, parsed.reserved, parsed.length) == (version, reserved, length)


def test_encoder_header_is_the_construct_header() -> None:
    framed = encode_tpkt(DT0_DATA)
    parsed = TPKT_HEADER.parse(framed)
    assert (parsed.version, parsed.reserved, parsed.length) == (3, 0, len(framed))


# ---------------------------------------------------------------- decoder

STREAM_PAYLOADS = [DT0_DATA, CR0, DT0]
STREAM = b"".join(encode_tpkt(p) for p in STREAM_PAYLOADS)


def test_whole_stream_in_one_feed() -> None:
    d = TPKTDecoder()
    assert d.feed(STREAM) == STREAM_PAYLOADS
    assert d.pending == 0
    d.eof()


@pytest.mark.parametrize("split", range(len(STREAM) + 1))
def test_every_split_point(split: int) -> None:
    d = TPKTDecoder()
    out = d.feed(STREAM[:split])
    assert d.pending == split - sum(len(encode_tpkt(p)) for p in out)
    out += d.feed(STREAM[split:])
    assert out == STREAM_PAYLOADS
    assert d.pending == 0
    d.eof()


def test_every_pair_of_split_points() -> None:
    n = len(STREAM)
    for i in range(n + 1):
        for j in range(i, n + 1):
            d = TPKTDecoder()
            out = d.feed(STREAM[:i]) + d.feed(STREAM[i:j]) + d.feed(STREAM[j:])
            assert out == STREAM_PAYLOADS, (i, j)


def test_byte_at_a_time() -> None:
    d = TPKTDecoder()
    out: list[bytes] = []
    pending = []
    for i in range(len(STREAM)):
        out += d.feed(STREAM[i : i + 1])
        pending.append(d.pending)
    assert out == STREAM_PAYLOADS
    # pending counts the octets of the packet in progress
    assert pending[:4] == [1, 2, 3, 4]
    assert pending[len(encode_tpkt(DT0_DATA)) - 1] == 0


def test_empty_feed() -> None:
    d = TPKTDecoder()
    assert d.feed(b"") == []
    assert d.feed(STREAM[:2]) == []
    assert d.feed(b"") == []
    assert d.pending == 2


def test_accepts_bytearray_and_memoryview() -> None:
    d = TPKTDecoder()
    data = bytearray(STREAM)
    out = d.feed(data[:5]) + d.feed(memoryview(data)[5:])  # type: ignore[arg-type]
    data[:] = b"\x00" * len(data)  # the decoder keeps no reference to the caller's buffer
    assert out == STREAM_PAYLOADS


def test_reserved_octet_is_ignored() -> None:
    d = TPKTDecoder()
    assert d.feed(b"\x03\xff\x00\x07" + DT0) == [DT0]


def test_max_length_inclusive() -> None:
    framed = encode_tpkt(DT0_DATA)
    assert TPKTDecoder(max_length=len(framed)).feed(framed) == [DT0_DATA]
    assert TPKTDecoder(max_length=len(framed)).max_length == len(framed)
    with pytest.raises(TPDUError):
        TPKTDecoder(max_length=len(framed) - 1).feed(framed)


def test_max_length_65535() -> None:
    payload = b"\x02\xf0\x80" + bytes(range(256)) * 255 + bytes(range(248))
    framed = encode_tpkt(payload)
    assert len(framed) == 65535
    d = TPKTDecoder()
    out: list[bytes] = []
    for i in range(0, len(framed), 1000):
        out += d.feed(framed[i : i + 1000])
    assert out == [payload]


@pytest.mark.parametrize("bad", [-1, 0, 6, 65536, 100000])
def test_max_length_argument_checked(bad: int) -> None:
    with pytest.raises(ValueError):
        TPKTDecoder(max_length=bad)


@given(
    st.lists(st.binary(min_size=3, max_size=300), max_size=8),
    st.lists(st.integers(0, 400), max_size=12),
)
def test_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_tpkt(p) for p in payloads)
    points = sorted({min(c * 7, len(stream)) for c in cuts} | {0, len(stream)})
    d = TPKTDecoder()
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out += d.feed(stream[a:b])
    assert out == payloads
    assert d.pending == 0
    d.eof()


# ---------------------------------------------------------------- errors


def _assert_broken(d: TPKTDecoder, message: str) -> None:
    """Once broken, every call raises the same error."""
    assert d.broken
    assert d.pending == 0
    for _ in range(2):
        with pytest.raises(TPDUError, match=message):
            d.feed(encode_tpkt(DT0))
    with pytest.raises(TPDUError, match=message):
        d.eof()


def test_bad_version_detected_on_first_octet() -> None:
    d = TPKTDecoder()
    with pytest.raises(TPDUError, match="version 4") as info:
        d.feed(b"\x04")
    assert info.value.reason == DRReason.PROTOCOL_ERROR
    assert info.value.offset == 0
    _assert_broken(d, "version 4")


def test_bad_version_after_good_packets() -> None:
    d = TPKTDecoder()
    first = encode_tpkt(DT0_DATA)
    assert d.feed(first) == [DT0_DATA]
    with pytest.raises(TPDUError, match="version 2") as info:
        d.feed(b"\x02\x00\x00\x07" + DT0)
    assert info.value.offset == len(first)
    _assert_broken(d, "version 2")


def test_bad_version_inside_one_feed() -> None:
    """TPKTs completed before the bad header come out; the error comes next call."""
    good = encode_tpkt(DT0)
    d = TPKTDecoder()
    assert d.feed(good + good + b"\x00\x00\x00\x07" + DT0) == [DT0, DT0]
    with pytest.raises(TPDUError) as info:
        d.feed(b"")
    assert info.value.offset == 2 * len(good)
    with pytest.raises(TPDUError):
        d.eof()


def test_bad_version_when_completing_a_buffered_packet() -> None:
    d = TPKTDecoder()
    good = encode_tpkt(DT0_DATA)
    assert d.feed(good[:5]) == []
    assert d.feed(good[5:] + b"\x05") == [DT0_DATA]
    with pytest.raises(TPDUError) as info:
        d.feed(b"more")
    assert info.value.offset == len(good)
    _assert_broken(d, "version 5")


@pytest.mark.parametrize("length", [0, 1, 4, 6])
def test_length_below_minimum(length: int) -> None:
    d = TPKTDecoder()
    with pytest.raises(TPDUError, match="below the minimum") as info:
        d.feed(b"\x03\x00" + length.to_bytes(2, "big") + DT0)
    assert info.value.reason == DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID
    assert info.value.cause == ERCause.INVALID_PARAMETER_VALUE
    _assert_broken(d, "below the minimum")


def test_length_checked_as_soon_as_the_header_is_complete() -> None:
    d = TPKTDecoder(max_length=100)
    assert d.feed(b"\x03\x00\x00") == []
    with pytest.raises(TPDUError, match="exceeds the maximum 100") as info:
        d.feed(b"\x65")  # 101, no payload octet yet
    assert info.value.reason == DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID
    _assert_broken(d, "exceeds the maximum")


def test_length_above_maximum_in_one_feed() -> None:
    d = TPKTDecoder(max_length=7)
    assert d.feed(encode_tpkt(DT0) + encode_tpkt(DT0_DATA)) == [DT0]
    with pytest.raises(TPDUError, match="exceeds"):
        d.feed(b"")


def test_eof_clean_and_truncated() -> None:
    d = TPKTDecoder()
    d.eof()
    d.feed(STREAM[:2])
    with pytest.raises(TPDUError, match="2 octets of its header"):
        d.eof()
    d = TPKTDecoder()
    framed = encode_tpkt(DT0_DATA)
    d.feed(framed + framed[:6])
    with pytest.raises(TPDUError, match="6 of 12 octets") as info:
        d.eof()
    assert info.value.offset == len(framed)
    _assert_broken(d, "stream ended inside a TPKT")


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        TPKTDecoder().feed(b"\x00")
