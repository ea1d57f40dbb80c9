"""The Annex B checksum (tp4emu.wire.checksum) against the textbook loop."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tp4emu.wire import AK, DT, checksum_octets, decode, encode, fletcher_sums, verify
from tp4emu.wire import checksum as ck
from tp4emu.wire.checksum import checksum_octets_of, fletcher_sums_of

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
    """The sum S is rebuilt from Adler-32 (mod 65521) below 65521 octets, in pieces above."""
    data = bytes([octet]) * length
    assert fletcher_sums(data) == naive_sums(data)


# --------------------------------------------------------------- the folding reduction

# Lengths where the folds change: multiples of the fold blocks (255 * 2**t octets) and
# 5/4 of them, the fold threshold, Adler-32's modulus and the pieces of long inputs.
BLOCKS = [255 << t for t in range(9)]
_EDGES = [*BLOCKS, *(b * 5 // 4 for b in BLOCKS), *(2 * b for b in BLOCKS), 1024, 8183, 8192]
_EDGES += [65280, 65507, 65520, 65521, 65535, 65536, 2 * 65280, 70000]
BOUNDARIES = sorted({n + d for n in _EDGES for d in (-1, 0, 1)})


def textbook(data: bytes) -> tuple[int, int]:
    """naive_sums, faster for long inputs: the same loop without the % per octet."""
    c0 = c1 = 0
    for octet in data:
        c0 += octet
        c1 += c0
    return c0 % 255, c1 % 255


def test_every_fold_modulus_is_a_multiple_of_255_squared() -> None:
    assert [bits for _, bits, _ in ck._FOLDS] == [8 * b for b in reversed(BLOCKS)]
    for threshold, bits, mask in ck._FOLDS:
        assert mask == (1 << bits) - 1
        assert mask % (255 * 255) == 0
        assert threshold == bits * 5 // 4
    assert pow(256, 255, 255 * 255) == 1


@pytest.mark.parametrize("length", BOUNDARIES)
@pytest.mark.parametrize("octet", [0x00, 0xFF, 0x01])
def test_fletcher_sums_at_the_fold_boundaries(length: int, octet: int) -> None:
    data = bytes([octet]) * length
    assert fletcher_sums(data) == textbook(data)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(BOUNDARIES), st.integers(0, 2**32))
def test_fletcher_sums_random_octets_at_the_fold_boundaries(length: int, seed: int) -> None:
    rnd = random.Random(seed)  # the octets from a seed: hypothesis draws little
    data = rnd.randbytes(length)
    assert fletcher_sums(data) == textbook(data)
    assert fletcher_sums(memoryview(data)) == textbook(data)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 70000),
    st.sampled_from(["random", "zero", "ff", "ff-tail", "sparse"]),
    st.integers(0, 2**32),
)
def test_fletcher_sums_equal_the_loop_at_any_length(length: int, kind: str, seed: int) -> None:
    rnd = random.Random(seed)  # the octets from a seed: hypothesis draws little
    if kind == "random":
        data = rnd.randbytes(length)
    elif kind == "zero":
        data = bytes(length)
    elif kind == "ff":
        data = b"\xff" * length
    elif kind == "ff-tail":  # the largest numbers N for their sum
        cut = rnd.randint(0, length)
        data = bytes(cut) + b"\xff" * (length - cut)
    else:
        buf = bytearray(length)
        for _ in range(min(length, 8)):
            buf[rnd.randrange(length)] = rnd.randrange(256)
        data = bytes(buf)
    assert fletcher_sums(data) == textbook(data)


def test_fletcher_sums_exhaustive_up_to_two_octets() -> None:
    assert fletcher_sums(b"") == (0, 0)
    for a in range(256):
        assert fletcher_sums(bytes((a,))) == naive_sums(bytes((a,)))
        for b in range(256):
            pair = bytes((a, b))
            assert fletcher_sums(pair) == ((a + b) % 255, (2 * a + b) % 255)


def test_fletcher_sums_exhaustive_three_and_four_octets_of_edge_values() -> None:
    edge = (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF)
    for n in (3, 4, 5):
        for octets in itertools.product(edge, repeat=n):
            data = bytes(octets)
            assert fletcher_sums(data) == naive_sums(data)


def test_n_alone_cannot_give_the_sums() -> None:
    # The module docstring's example: the same N mod 255**2, different C1.
    assert int.from_bytes(b"\x01\x00", "big") % 65025 == int.from_bytes(b"\xff\x01", "big") % 65025
    assert naive_sums(b"\x01\x00") != naive_sums(b"\xff\x01")


@FAST
@given(st.lists(st.binary(max_size=600), max_size=5), st.integers(0, 2))
def test_sums_of_parts_equal_the_sums_of_their_concatenation(parts: list[bytes], kind: int) -> None:
    buffers = [bytes, bytearray, memoryview][kind]
    assert fletcher_sums_of([buffers(p) for p in parts]) == naive_sums(b"".join(parts))


@pytest.mark.parametrize("sizes", [(65521,), (65520, 1), (1, 65536), (70000, 70000), (0, 65521)])
def test_sums_of_long_parts(sizes: tuple[int, ...]) -> None:
    parts = [bytes((i * 7 + n) % 256 for i in range(n)) for n in sizes]
    assert fletcher_sums_of(parts) == textbook(b"".join(parts))


@FAST
@given(st.binary(min_size=2, max_size=60), st.binary(max_size=3000), st.data())
def test_checksum_octets_of_header_and_data(
    header: bytes, data: bytes, draw: st.DataObject
) -> None:
    position = draw.draw(st.integers(0, len(header) - 2))
    zeroed = bytearray(header)
    zeroed[position : position + 2] = b"\x00\x00"
    assert checksum_octets_of(bytes(zeroed), data, position) == checksum_octets(
        bytes(zeroed) + data, position
    )
