"""The Annex B checksum (tp4emu.wire.checksum) against the textbook loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tp4emu.wire import AK, DT, checksum_octets, decode, encode, fletcher_sums, verify

FAST = settings(max_examples=300, deadline=None)


def naive_sums(data: bytes) -> tuple[int, int]:
    """Annex B, literally: C0 += octet; C1 += C0, modulo 255."""
    c0 = c1 = 0
    for octet in data:
        c0 = (c0 + octet) % 255
        c1 = (c1 + c0) % 255
    return c0, c1


def naive_octets(tpdu: bytes, position: int) -> tuple[int, int]:
    """X and Y before the 0 -> 255 substitution."""
    c0, c1 = naive_sums(tpdu)
    n = position + 1
    length = len(tpdu)
    return (-c1 + (length - n) * c0) % 255, (c1 - (length - n + 1) * c0) % 255


@st.composite
def tpdu_with_slot(draw: st.DrawFn) -> tuple[bytes, int]:
    """Octets with two zero octets (the checksum slot) at a drawn position."""
    data = bytearray(draw(st.binary(min_size=2, max_size=400)))
    position = draw(st.integers(0, len(data) - 2))
    data[position : position + 2] = b"\x00\x00"
    return bytes(data), position


def filled(tpdu: bytes, position: int) -> bytes:
    buf = bytearray(tpdu)
    buf[position : position + 2] = checksum_octets(tpdu, position)
    return bytes(buf)


@FAST
@given(st.binary(max_size=1000))
def test_fletcher_sums_equal_the_naive_loop(data: bytes) -> None:
    assert fletcher_sums(data) == naive_sums(data)


@FAST
@given(st.integers(0, 3000), st.sampled_from([0x00, 0x01, 0x80, 0xFE, 0xFF]))
def test_fletcher_sums_long_uniform_runs(length: int, octet: int) -> None:
    data = bytes((octet,)) * length
    assert fletcher_sums(data) == naive_sums(data)


def test_fletcher_sums_accepts_buffers() -> None:
    data = bytes(range(256)) * 3
    expected = naive_sums(data)
    assert fletcher_sums(bytearray(data)) == expected
    assert fletcher_sums(memoryview(data)) == expected
    assert fletcher_sums(b"") == (0, 0)


@FAST
@given(tpdu_with_slot())
def test_checksum_octets_match_annex_b_and_verify(case: tuple[bytes, int]) -> None:
    tpdu, position = case
    octets = checksum_octets(tpdu, position)
    x, y = naive_octets(tpdu, position)
    assert octets == bytes((x or 255, y or 255))
    assert all(1 <= o <= 255 for o in octets)
    out = filled(tpdu, position)
    assert verify(out)
    assert naive_sums(out) == (0, 0)


def test_zero_is_sent_as_255() -> None:
    # All-zero octets: both X and Y compute to 0 and go out as 255, which still verifies.
    tpdu = bytes(9)
    assert naive_octets(tpdu, 7) == (0, 0)
    assert checksum_octets(tpdu, 7) == b"\xff\xff"
    assert verify(filled(tpdu, 7))


@pytest.mark.parametrize(
    ("dst", "zero"),
    [(0x0025, 0), (0x003B, 1)],  # found by searching AK(dst, 5, 0) headers
    ids=["X-is-0", "Y-is-0"],
)
def test_zero_is_sent_as_255_for_one_octet_only(dst: int, zero: int) -> None:
    tpdu = bytes((0x08, 0x60, dst >> 8, dst & 0xFF, 5, 0xC3, 0x02, 0, 0))
    computed = naive_octets(tpdu, 7)
    assert computed[zero] == 0
    assert computed[1 - zero] != 0
    octets = checksum_octets(tpdu, 7)
    assert octets[zero] == 255
    assert octets[1 - zero] == computed[1 - zero]
    wire = filled(tpdu, 7)
    assert verify(wire)
    assert encode(AK(dst, 5, 0), checksum=True) == wire
    [ak] = decode(wire)
    assert ak.checksum_ok is True


@FAST
@given(tpdu_with_slot(), st.data())
def test_verify_is_false_after_any_single_bit_flip(
    case: tuple[bytes, int], data: st.DataObject
) -> None:
    tpdu, position = case
    good = bytearray(filled(tpdu, position))
    index = data.draw(st.integers(0, len(good) - 1))
    good[index] ^= 1 << data.draw(st.integers(0, 7))
    assert not verify(good)


@FAST
@given(tpdu_with_slot(), st.data())
def test_verify_is_false_after_any_octet_change_not_multiple_of_255(
    case: tuple[bytes, int], data: st.DataObject
) -> None:
    tpdu, position = case
    good = bytearray(filled(tpdu, position))
    index = data.draw(st.integers(0, len(good) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda v: (v - good[index]) % 255 != 0))
    good[index] = new
    assert not verify(good)


def test_verify_misses_0_to_255() -> None:
    # Arithmetic modulo 255 cannot tell 0x00 from 0xFF: a documented blind spot.
    good = bytearray(filled(bytes(6) + b"\x01\x02", 2))
    good[0] = 0xFF
    assert verify(good)


@FAST
@given(st.integers(0, 0xFFFF), st.integers(0, 127), st.binary(max_size=64))
def test_checksum_position_in_encoded_tpdus(dst: int, nr: int, data: bytes) -> None:
    # encode puts 0xC3 first in the variable part: right after the fixed part
    raw = encode(DT(dst, nr, True, data), checksum=True)
    assert raw[5:7] == b"\xc3\x02"
    zeroed = raw[:7] + b"\x00\x00" + raw[9:]
    assert checksum_octets(zeroed, 7) == raw[7:9]
    raw_ak = encode(AK(dst, nr, 15), checksum=True)
    assert raw_ak[5:7] == b"\xc3\x02"
    assert verify(raw_ak)


@pytest.mark.parametrize("length", [65520, 65521, 65522, 65535])
@pytest.mark.parametrize("octet", [0xFF, 0x01])
def test_fletcher_sums_at_the_adler_modulus(length: int, octet: int) -> None:
    """The sum S is rebuilt from Adler-32 (mod 65521) below 65521 octets, by sum() above."""
    data = bytes([octet]) * length
    assert fletcher_sums(data) == naive_sums(data)
