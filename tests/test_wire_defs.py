"""The wire definitions (tp4emu/wire/defs.py) and what is generated from them.

Every TPDU type has a struct fast path generated from its definition, next to
the construct path built from the same definition: the properties below prove
the two equal, both ways (decoding and encoding), for every TPDU type and
format. The tables are checked against the reference digest (§1, §2).
"""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
from construct import Int8ub, Struct, Terminated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import nrs, tpdus, u16

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
    Param,
    ParamCode,
    TPDUError,
    UnknownParam,
    encode_one,
)
from tp4emu.wire import tpdu as codec
from tp4emu.wire.defs import (
    DST_REF,
    PARAM_DEFS,
    SHOW_NR,
    TPDU_DEFS,
    TYPE,
    generate,
    param_def,
    tpdu_def,
)
from tp4emu.wire.describe import PARAM_NAMES
from tp4emu.wire.formats import FIXED_LENGTH, FORMATS

DEFS = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --------------------------------------------------------------- the tables


def test_every_tpdu_type_is_defined_once() -> None:
    assert [d.cls for d in TPDU_DEFS] == list(get_args(TPDU))
    assert len({d.name for d in TPDU_DEFS}) == len(TPDU_DEFS)


def test_every_parameter_type_is_defined_once() -> None:
    assert [d.cls for d in PARAM_DEFS] == list(get_args(Param))
    assert set(PARAM_NAMES) == set(get_args(Param))


def test_fixed_lengths_are_the_reference_table() -> None:
    # reference §1: code octet plus fixed part, in each format
    assert FIXED_LENGTH == {
        ("CR", False): 6,
        ("CC", False): 6,
        ("DR", False): 6,
        ("DC", False): 5,
        ("ER", False): 4,
        ("DT0", False): 2,
        ("DT", False): 4,
        ("DT", True): 7,
        ("ED", False): 4,
        ("ED", True): 7,
        ("AK", False): 4,
        ("AK", True): 9,
        ("EA", False): 4,
        ("EA", True): 7,
        ("RJ", False): 4,
        ("RJ", True): 9,
    }
    assert set(FORMATS) == set(FIXED_LENGTH)
    assert set(codec._FAST_DECODERS) == set(FIXED_LENGTH)
    assert set(codec._FAST_ENCODERS) == set(get_args(TPDU))


def test_parameters_belong_where_the_reference_says() -> None:
    where = {d.cls.__name__: set(d.where) for d in PARAM_DEFS}
    connection = {"CR", "CC"}
    assert where == {
        "TpduSize": connection,
        "PreferredMaxTpduSize": connection,
        "CallingTsap": connection,
        "CalledTsap": connection,
        "InvalidTpdu": {"ER"},
        "Version": connection,
        "Protection": connection,
        "AdditionalOptions": connection,
        "AlternativeClasses": {"CR"},
        "AckTime": connection,
        "ResidualErrorRate": connection,
        "Priority": connection,
        "TransitDelay": connection,
        "Throughput": connection,
        "SubsequenceNumber": {"AK"},
        "ReassignmentTime": connection,
        "FlowControlConfirmation": {"AK"},
        "SelectiveAck": {"AK"},
        "AdditionalInformation": {"DR"},
        "InactivityTimer": connection,
        "UnknownParam": set(),
    }
    codes = {d.code for d in PARAM_DEFS if d.code is not None}
    assert codes == {int(c) for c in ParamCode} - {ParamCode.CHECKSUM}


def test_a_definition_must_carry_every_field_of_its_dataclass() -> None:
    @dataclasses.dataclass(frozen=True)
    class XX:
        dst_ref: int
        surplus: int
        params: tuple[Param, ...] = ()
        checksum_ok: bool | None = None
        code = 0x3

    with pytest.raises(TypeError, match="surplus"):
        tpdu_def(normal=(TYPE, DST_REF), shown=())(XX)
    assert XX not in [d.cls for d in TPDU_DEFS]


def test_a_definition_shows_only_attributes_of_its_dataclass() -> None:
    @dataclasses.dataclass(frozen=True)
    class XX:
        dst_ref: int
        params: tuple[Param, ...] = ()
        checksum_ok: bool | None = None
        code = 0x3

    with pytest.raises(TypeError, match="nr"):
        tpdu_def(normal=(TYPE, DST_REF), shown=(SHOW_NR,))(XX)


def test_a_parameter_value_must_carry_every_field_of_its_dataclass() -> None:
    @dataclasses.dataclass(frozen=True)
    class Pair:
        first: int
        second: int
        code = 0x99

    value = Struct("first" / Int8ub, Terminated)
    with pytest.raises(TypeError, match="second"):
        param_def("pair", value, where=("CR",), token="pair={first}")(Pair)
    assert Pair not in [d.cls for d in PARAM_DEFS]


def test_generated_source_is_kept_for_readers() -> None:
    source = generate(TPDU_DEFS[[d.cls for d in TPDU_DEFS].index(DT)]).source
    assert "def fast_decode_0(" in source
    assert "def fast_encode(" in source


# --------------------------------------------------------------- fast path = construct path


def _decoded(raw: bytes, ext: bool | None, fast: bool) -> object:
    try:
        t, stop = codec._decode_one(raw, 0, ext, fast=fast)
    except TPDUError as exc:
        return ("error", str(exc), exc.reason, exc.cause, exc.offset, exc.header)
    return ("ok", t, repr(t), t.checksum_ok, stop)


def _encoded(x: TPDU, checksum: bool, fast: bool) -> object:
    try:
        return encode_one(x, checksum=checksum, fast=fast)
    except ValueError as exc:
        return (type(exc), str(exc))


def _format_of(x: TPDU) -> bool:
    return isinstance(x, (DT, ED, AK, EA, RJ)) and x.extended


@DEFS
@given(tpdus(), st.booleans(), st.sampled_from([None, False, True]))
def test_fast_decode_equals_construct_decode_for_every_type(
    x: TPDU, checksum: bool, fmt: bool | None
) -> None:
    raw = encode_one(x, checksum=checksum)
    assert _decoded(raw, fmt, True) == _decoded(raw, fmt, False)


@DEFS
@given(tpdus(), st.booleans())
def test_fast_encode_equals_construct_encode_for_every_type(x: TPDU, checksum: bool) -> None:
    assert _encoded(x, checksum, True) == _encoded(x, checksum, False)


@DEFS
@given(tpdus(), st.booleans())
def test_fast_paths_take_every_parameterless_tpdu(x: TPDU, checksum: bool) -> None:
    # the property above would be empty if the fast paths declined everything
    x = dataclasses.replace(x, params=())
    raw = codec._FAST_ENCODERS[type(x)](x, checksum)
    assert raw is not None
    assert raw == encode_one(x, checksum=checksum, fast=False)
    name = type(x).__name__
    fast = codec._FAST_DECODERS[(name, _format_of(x))](raw, raw[0])
    assert fast == x
    assert fast.checksum_ok is (True if checksum and not isinstance(x, DT0) else None)


@st.composite
def shaped(draw: st.DrawFn) -> bytes:
    """Bytes shaped like a TPDU of any type and format: the code octet, a fixed
    part of the right length (or near it), sometimes a four-octet parameter
    that looks like the checksum, user data up to and past its limit."""
    d = draw(st.sampled_from(TPDU_DEFS))
    ext = draw(st.booleans()) and d.numbered
    code = (d.code << 4) | draw(st.sampled_from([0, 0, 5]))
    size = d.fixed_length(ext) - 1 + draw(st.sampled_from([0, 0, 0, -1, 1]))
    fixed = draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
    param = draw(st.sampled_from([b"", b"", b"\xc3\x02", b"\xc3\x01", b"\xc2\x02", b"\x8a\x02"]))
    if param:
        param += draw(st.binary(min_size=2, max_size=2))
    header = bytes((code,)) + fixed + param + draw(st.sampled_from([b"", b"", b"\x00"]))
    li = draw(st.sampled_from([len(header), len(header), len(header), draw(st.integers(1, 254))]))
    limit = d.data_limit if d.data_limit is not None else 8
    n = draw(st.sampled_from([0, 1, limit, limit + 1, limit + 2]))
    data = draw(st.binary(min_size=n, max_size=n))
    return bytes((li,)) + header + data


@settings(DEFS, max_examples=1000)
@given(shaped(), st.sampled_from([None, False, True]))
def test_fast_decode_equals_construct_decode_on_arbitrary_bytes(
    raw: bytes, fmt: bool | None
) -> None:
    assert _decoded(raw, fmt, True) == _decoded(raw, fmt, False)


@DEFS
@given(tpdus(), st.data())
def test_fast_decode_equals_construct_decode_on_changed_octets(
    x: TPDU, data: st.DataObject
) -> None:
    raw = bytearray(encode_one(x, checksum=data.draw(st.booleans())))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    fmt = data.draw(st.sampled_from([None, False, True]))
    assert _decoded(bytes(raw), fmt, True) == _decoded(bytes(raw), fmt, False)


wild = st.integers(-2, (1 << 32) + 1) | st.sampled_from(
    [-1, 4, 5, 15, 16, 127, 128, 0xFFFF, 0x10000]
)
wild_data = st.binary(max_size=70)
unchecked_tpdus = st.one_of(
    st.builds(CR, wild, wild, wild, wild, st.just(()), wild_data, wild),
    st.builds(CC, wild, wild, wild, wild, wild, st.just(()), wild_data),
    st.builds(DR, wild, wild, wild, st.just(()), wild_data),
    st.builds(DC, wild, wild),
    st.builds(DT, wild, wild, st.booleans(), wild_data, st.booleans()),
    st.builds(DT0, wild, st.booleans(), wild_data),
    st.builds(ED, wild, wild, wild_data, st.booleans(), st.booleans()),
    st.builds(AK, wild, wild, wild, st.booleans()),
    st.builds(EA, wild, wild, st.booleans()),
    st.builds(RJ, wild, wild, wild, st.booleans()),
    st.builds(ER, wild, wild),
)


@settings(DEFS, max_examples=1000)
@given(unchecked_tpdus, st.booleans())
def test_fast_encode_validates_like_construct_encode_for_every_type(
    x: TPDU, checksum: bool
) -> None:
    # same octets, or the same error with the same message
    assert _encoded(x, checksum, True) == _encoded(x, checksum, False)


@DEFS
@given(st.booleans(), st.data())
def test_every_numbered_type_at_its_bounds(ext: bool, data: st.DataObject) -> None:
    nr = data.draw(nrs(ext))
    credit = data.draw(u16 if ext else st.integers(0, 15))
    for x in (
        AK(0xFFFF, nr, credit, ext),
        RJ(0, nr, credit, ext),
        EA(1, nr, ext),
        DT(1, nr, False, b"", ext),
        ED(1, nr, bytes(16), True, ext),
    ):
        raw = encode_one(x, fast=False)
        assert encode_one(x) == raw
        assert _decoded(raw, ext, True) == _decoded(raw, ext, False)


@DEFS
@given(tpdus(), st.booleans(), st.binary(min_size=1, max_size=40), st.sampled_from([None, False]))
def test_fast_decode_equals_construct_decode_with_appended_octets(
    x: TPDU, checksum: bool, extra: bytes, fmt: bool | None
) -> None:
    # more user data than the limit, or a second (usually bad) TPDU after a data-less one
    raw = encode_one(x, checksum=checksum) + extra
    assert _decoded(raw, fmt, True) == _decoded(raw, fmt, False)


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 8183, 65000])
@pytest.mark.parametrize("ext", [False, True])
def test_long_data_is_checksummed_joined_or_apart_alike(n: int, ext: bool) -> None:
    # below defs._JOIN_BELOW octets of data the header and data are joined before
    # the checksum, from it on checksummed apart: the same octets either way
    data = bytes(i * 7 % 256 for i in range(n))
    for x in (
        DT(0x1234, 5, True, data, ext),
        DT(1, 2, False, data, ext, (UnknownParam(0x42, b""),)),
    ):
        raw = encode_one(x, checksum=True)
        assert raw == encode_one(x, checksum=True, fast=False)
        assert _decoded(raw, ext, True) == _decoded(raw, ext, False)
        assert _decoded(raw, ext, True)[3] is True
