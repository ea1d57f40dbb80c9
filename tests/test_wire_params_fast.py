"""The fast paths of TPDUs with parameters (CR, CC, DR, DC... with a variable part).

Parameters are read and written without construct: the variable part by the
code generated in tp4emu/wire/defs.py, each value by plain Python compiled
from its construct definition (``compile_value``). The properties below prove
them equal to construct at each level: a value (parse and build), a parameter
(``decode_param_fast`` / ``encode_param_fast`` against ``decode_param_in`` /
``encode_param_value``) and a whole TPDU (both paths of ``_decode_one`` and
``encode_one``: the same TPDU, octets, or error with its message, reason,
cause, offset and header), on valid TPDUs, on bytes shaped like them and on
mutated ones, at the bounds (LI 254 and 255, parameter lengths 0 and 255,
user data at its limit and one over).
"""

from __future__ import annotations

import dataclasses

import pytest
from construct import ConstructError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import ak_params, cc, connection_params, cr, dc, dr, tpdus, unknown_params

from tp4emu.wire import (
    CC,
    CR,
    DC,
    DR,
    TPDU,
    AckTime,
    AdditionalInformation,
    AdditionalOptions,
    AlternativeClasses,
    CalledTsap,
    CallingTsap,
    Param,
    ParamCode,
    PreferredMaxTpduSize,
    SelectiveAck,
    TPDUError,
    TpduSize,
    UnknownParam,
    Version,
    encode_one,
)
from tp4emu.wire import tpdu as codec
from tp4emu.wire.defs import PARAM_DEFS, TPDU_DEFS, ParamDef, compile_value
from tp4emu.wire.params import (
    decode_param_fast,
    decode_param_in,
    encode_param_fast,
    encode_param_value,
    param_format,
)

PROPS = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CODES = sorted({d.code for d in PARAM_DEFS if d.code is not None} | {0x00, 0x42, 0xC3, 0xFF})
NAMES = ["", *(d.name for d in TPDU_DEFS)]


def _decoded(raw: bytes, ext: bool | None, fast: bool) -> object:
    try:
        t, stop = codec._decode_one(raw, 0, ext, fast=fast)
    except TPDUError as exc:
        return ("error", str(exc), exc.reason, exc.cause, exc.offset, exc.header)
    return ("ok", t, repr(t), t.checksum_ok, stop)


def _encoded(x: TPDU, checksum: bool, fast: bool) -> object:
    try:
        return encode_one(x, checksum=checksum, fast=fast)
    except (ValueError, TypeError, ConstructError, OverflowError) as exc:
        return (type(exc), str(exc))


# --------------------------------------------------------------- values


def test_every_value_definition_is_compiled() -> None:
    # none is left to construct on the fast path
    for d in PARAM_DEFS:
        assert compile_value(d.value) is not None, d.name
        if d.value_extended is not None:
            assert compile_value(d.value_extended) is not None, d.name


@PROPS
@given(st.sampled_from(PARAM_DEFS), st.booleans(), st.binary(max_size=40))
def test_compiled_value_parse_equals_construct(spec: ParamDef, ext: bool, value: bytes) -> None:
    fmt = spec.value_extended if ext and spec.value_extended is not None else spec.value
    compiled = compile_value(fmt)
    assert compiled is not None
    try:
        parsed = fmt.parse(value)
    except ConstructError:
        assert compiled.parse(value) is None
        return
    names = [sub.name for sub in fmt.subcons if sub.name]
    expected = {name: _frozen(parsed[name]) for name in names}
    assert compiled.parse(value) == expected
    # and back: build gives the octets construct builds
    assert compiled.build(expected.__getitem__) == fmt.build(expected)


def _frozen(value: object) -> object:
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


# --------------------------------------------------------------- one parameter


def _slow_decode(name: str, code: int, value: bytes, ext: bool) -> object:
    try:
        p = decode_param_in(name, code, value, extended=ext)
    except TPDUError:
        return None  # the fast path declines: the construct path raises
    return (p, repr(p), type(p))


def _fast_decode(name: str, code: int, value: bytes, ext: bool) -> object:
    p = decode_param_fast(name, code, value, ext)
    return None if p is None else (p, repr(p), type(p))


@PROPS
@given(
    st.sampled_from(NAMES),
    st.sampled_from(CODES) | st.integers(0, 255),
    st.booleans(),
    st.integers(0, 40).flatmap(lambda n: st.binary(min_size=n, max_size=n))
    | st.sampled_from([b"", bytes(255), b"\xff" * 255, b"\x07", b"\x0e", b"\x00\x00\x00\x00\x01"]),
)
def test_decode_param_fast_equals_construct(name: str, code: int, ext: bool, value: bytes) -> None:
    assert _fast_decode(name, code, value, ext) == _slow_decode(name, code, value, ext)


@pytest.mark.parametrize("exponent", range(256))
def test_tpdu_size_is_refused_like_construct(exponent: int) -> None:
    value = bytes((exponent,))
    for name in ("CR", "CC", "DR"):
        assert _fast_decode(name, 0xC0, value, False) == _slow_decode(name, 0xC0, value, False)
    assert (decode_param_fast("CR", 0xC0, value, False) is None) == (not 7 <= exponent <= 13)


def _slow_encode(p: Param, ext: bool) -> bytes | None:
    if param_format(p) not in (None, ext):
        return None
    try:
        value = encode_param_value(p, fast=False)
    except (ValueError, TypeError, ConstructError, OverflowError):
        return None
    if len(value) > 255 or not 0 <= p.code <= 255:
        return None  # the TPDU's construct build raises
    return bytes((p.code, len(value))) + value


wild = st.integers(-2, (1 << 33)) | st.sampled_from([-1, 0, 255, 256, 0xFFFF, 0x10000, 1 << 32])


def wild_params() -> st.SearchStrategy[Param]:
    """Parameters with any values, valid or not (encoding must decline or agree)."""
    from tp4emu.wire import params as p

    return st.one_of(
        st.builds(TpduSize, wild),
        st.builds(PreferredMaxTpduSize, wild),
        st.builds(Version, wild),
        st.builds(AdditionalOptions, wild),
        st.builds(AckTime, wild),
        st.builds(AlternativeClasses, st.lists(wild, max_size=3).map(tuple)),
        st.builds(p.Throughput, st.lists(wild, max_size=9).map(tuple)),
        st.builds(p.ResidualErrorRate, wild, wild, wild),
        st.builds(p.InactivityTimer, wild),
        st.builds(
            SelectiveAck,
            st.lists(st.tuples(wild, wild) | st.tuples(wild), max_size=3).map(tuple),
            st.booleans(),
        ),
        st.builds(UnknownParam, st.integers(-1, 256), st.binary(max_size=256)),
        st.builds(CallingTsap, st.binary(max_size=256)),
    )


@PROPS
@given(connection_params() | ak_params(False) | ak_params(True) | unknown_params(), st.booleans())
def test_encode_param_fast_equals_construct(p: Param, ext: bool) -> None:
    assert encode_param_fast(p, ext) == _slow_encode(p, ext)
    if param_format(p) in (None, ext):
        assert encode_param_fast(p, ext) is not None  # valid parameters are never declined


@PROPS
@given(wild_params(), st.booleans())
def test_encode_param_fast_declines_what_construct_refuses(p: Param, ext: bool) -> None:
    assert encode_param_fast(p, ext) == _slow_encode(p, ext)


# --------------------------------------------------------------- whole TPDUs

with_params = st.one_of(cr(), cc(), dr(), dc()).filter(lambda t: bool(t.params))


@PROPS
@given(with_params, st.booleans())
def test_fast_paths_take_every_tpdu_with_parameters(x: TPDU, checksum: bool) -> None:
    fast_raw = codec._FAST_ENCODERS[type(x)](x, checksum)
    assert fast_raw is not None
    assert fast_raw == encode_one(x, checksum=checksum, fast=False)
    fast = codec._FAST_DECODERS[(type(x).__name__, False)](fast_raw, fast_raw[0])
    assert fast is not None
    assert fast == x
    assert repr(fast) == repr(dataclasses.replace(x, checksum_ok=fast.checksum_ok))
    assert fast.checksum_ok is (True if checksum else None)


@PROPS
@given(tpdus(), st.booleans(), st.sampled_from([None, False, True]))
def test_both_paths_round_trip_every_tpdu_identically(
    x: TPDU, checksum: bool, fmt: bool | None
) -> None:
    raw = encode_one(x, checksum=checksum, fast=False)
    assert encode_one(x, checksum=checksum) == raw
    assert _decoded(raw, fmt, True) == _decoded(raw, fmt, False)


def _param(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


@st.composite
def variable_parts(draw: st.DrawFn) -> bytes:
    """A run of parameters as they come off the wire: known and unknown codes,
    the checksum (once, twice, of length 2 or not), values of every length
    (0 to 255), well or badly shaped, sometimes one that runs past the end or
    a stray octet."""
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        code = draw(st.sampled_from(CODES))
        n = draw(st.sampled_from([0, 1, 2, 3, 4, 8, 12, 24]) | st.integers(0, 255))
        out += _param(code, draw(st.binary(min_size=n, max_size=n)))
    tail = draw(st.sampled_from([b"", b"", b"", b"\xc0", b"\xc1\x05ab", b"\x85\x02\x00"]))
    return out + tail


@st.composite
def shaped(draw: st.DrawFn) -> bytes:
    """Octets shaped like a CR, CC, DR or DC with parameters: the code octet, the fixed
    part, a variable part, user data up to and past the limit; the LI right, or off,
    or anything (254 and 255 included)."""
    d = draw(st.sampled_from([d for d in TPDU_DEFS if d.cls in (CR, CC, DR, DC)]))
    code = (d.code << 4) | draw(st.sampled_from([0, 0, 3, 15]))
    size = d.fixed_length(False) - 1
    fixed = draw(st.binary(min_size=size, max_size=size))
    if d.cls in (CR, CC) and draw(st.booleans()):
        fixed = fixed[:-1] + bytes((draw(st.integers(0, 4)) << 4 | draw(st.integers(0, 15)),))
    header = bytes((code,)) + fixed + draw(variable_parts())
    li = draw(
        st.sampled_from([len(header)] * 4 + [len(header) - 1, len(header) + 1, 254, 255])
        | st.integers(1, 255)
    )
    limit = d.data_limit if d.data_limit is not None else 4
    n = draw(st.sampled_from([0, 1, limit, limit + 1]))
    return bytes((li & 0xFF,)) + header + draw(st.binary(min_size=n, max_size=n))


@settings(PROPS, max_examples=1500)
@given(shaped(), st.sampled_from([None, False]))
def test_fast_decode_equals_construct_on_shaped_bytes(raw: bytes, fmt: bool | None) -> None:
    assert _decoded(raw, fmt, True) == _decoded(raw, fmt, False)


@PROPS
@given(with_params, st.booleans(), st.data())
def test_fast_decode_equals_construct_on_mutated_tpdus(
    x: TPDU, checksum: bool, data: st.DataObject
) -> None:
    raw = bytearray(encode_one(x, checksum=checksum))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(
            st.sampled_from([0, 1, 2, 0x7F, 0xC3, 0xFE, 0xFF]) | st.integers(0, 255)
        )
    if data.draw(st.booleans()):
        raw += data.draw(st.binary(min_size=1, max_size=40))
    assert _decoded(bytes(raw), None, True) == _decoded(bytes(raw), None, False)


@PROPS
@given(with_params, st.data())
def test_fast_decode_equals_construct_inside_a_datagram(x: TPDU, data: st.DataObject) -> None:
    # after another TPDU: the fast decoder reads a view of the datagram, not a copy
    first = encode_one(DC(1, 2), checksum=True)
    raw = first + encode_one(x, checksum=data.draw(st.booleans()))
    for _ in range(data.draw(st.integers(0, 2))):
        i = data.draw(st.integers(len(first), len(raw) - 1))
        raw = raw[:i] + bytes((data.draw(st.integers(0, 255)),)) + raw[i + 1 :]

    def both(fast: bool) -> object:
        try:
            _, offset = codec._decode_one(raw, 0, None, fast=fast)
            t, stop = codec._decode_one(raw, offset, None, fast=fast)
        except TPDUError as exc:
            return ("error", str(exc), exc.reason, exc.cause, exc.offset, exc.header)
        assert type(t.params) is tuple
        if hasattr(t, "data"):
            assert type(t.data) is bytes
        return ("ok", t, repr(t), t.checksum_ok, stop)

    assert both(True) == both(False)


unchecked = st.one_of(
    st.builds(CR, wild, wild, wild, wild, st.lists(wild_params(), max_size=3).map(tuple)),
    st.builds(CC, wild, wild, wild, wild, wild, st.lists(wild_params(), max_size=3).map(tuple)),
    st.builds(DR, wild, wild, wild, st.lists(wild_params(), max_size=3).map(tuple)),
    st.builds(DC, wild, wild, st.lists(wild_params(), max_size=3).map(tuple)),
)


@settings(PROPS, max_examples=800)
@given(unchecked, st.booleans())
def test_fast_encode_with_parameters_fails_like_construct(x: TPDU, checksum: bool) -> None:
    # the same octets, or the same exception with the same message
    assert _encoded(x, checksum, True) == _encoded(x, checksum, False)


# --------------------------------------------------------------- bounds


def _cr_with_header(li: int, *, ck: bool) -> CR:
    """A CR whose header has exactly *li* octets after the LI (one TSAP fills it)."""
    tsap = li - 6 - 2 - (4 if ck else 0)
    assert tsap >= 0
    return CR(0x1234, 7, params=(CalledTsap(bytes(i % 256 for i in range(tsap))),), data=b"x")


@pytest.mark.parametrize("li", [250, 253, 254, 255, 256, 300])
@pytest.mark.parametrize("checksum", [False, True])
def test_longest_header_both_paths(li: int, checksum: bool) -> None:
    x = _cr_with_header(li, ck=checksum)
    assert _encoded(x, checksum, True) == _encoded(x, checksum, False)
    if li <= 254:
        raw = encode_one(x, checksum=checksum)
        assert raw[0] == li
        assert codec._FAST_ENCODERS[CR](x, checksum) == raw
        assert _decoded(raw, None, True) == _decoded(raw, None, False)
        assert codec._FAST_DECODERS[("CR", False)](raw, li) == x
    else:
        assert isinstance(_encoded(x, checksum, True), tuple)  # refused, as by construct


@pytest.mark.parametrize("length", [0, 1, 254, 255])
@pytest.mark.parametrize("code", [0xC1, 0xC2, 0xC5, 0x42, 0xC0, 0xC3])
def test_parameter_lengths_0_to_255(length: int, code: int) -> None:
    value = bytes(range(256))[:length]
    x = CR(1, params=(UnknownParam(code, value),))
    assert _encoded(x, False, True) == _encoded(x, False, False)
    assert _encoded(x, True, True) == _encoded(x, True, False)
    # decoded: the parameter fits the LI (short ones) or runs past it
    for li in (6 + 2 + length, 6 + 2 + length - 1, 254, 255):
        raw = bytes((min(li, 255), 0xE0, 0, 0, 0, 1, 0x40)) + _param(code, value)
        raw = raw[: 1 + min(li, 255)] if len(raw) > 1 + min(li, 255) else raw
        assert _decoded(raw, None, True) == _decoded(raw, None, False)


@pytest.mark.parametrize(
    ("cls", "limit"), [(CR, 32), (CC, 32), (DR, 64)], ids=["CR-32", "CC-32", "DR-64"]
)
@pytest.mark.parametrize("extra", [0, 1])
@pytest.mark.parametrize("checksum", [False, True])
def test_user_data_at_its_limit_and_one_over(
    cls: type, limit: int, extra: int, checksum: bool
) -> None:
    params = (TpduSize(10), CallingTsap(b"calling"), AdditionalOptions(1), AckTime(10))
    base = {CR: CR(7, params=params), CC: CC(1, 7, params=params), DR: DR(1, 7, params=())}[cls]
    if cls is DR:
        base = dataclasses.replace(base, params=(AdditionalInformation(b"info"),))
    x = dataclasses.replace(base, data=bytes(range(limit + extra)))
    assert _encoded(x, checksum, True) == _encoded(x, checksum, False)
    good = encode_one(dataclasses.replace(x, data=bytes(range(limit))), checksum=checksum)
    raw = good + b"!" * extra
    assert _decoded(raw, None, True) == _decoded(raw, None, False)
    if extra:
        assert _decoded(raw, None, True)[0] == "error"
    else:
        assert codec._FAST_DECODERS[(cls.__name__, False)](raw, raw[0]) is not None


def test_the_usual_connection_parameters_decode_without_construct() -> None:
    cr_ = CR(
        0x1234,
        8,
        params=(
            TpduSize(13),
            PreferredMaxTpduSize(511),
            CallingTsap(b"client"),
            CalledTsap(b"server"),
            Version(1),
            AdditionalOptions(0x11),
            AlternativeClasses((2, 0)),
            AckTime(200),
            UnknownParam(0x42, b"?"),
        ),
        data=b"hello",
    )
    raw = encode_one(cr_, checksum=True)
    assert raw == encode_one(cr_, checksum=True, fast=False)
    fast = codec._FAST_DECODERS[("CR", False)](raw, raw[0])
    assert fast == cr_ and fast.checksum_ok is True
    bad = bytearray(raw)
    bad[-1] ^= 1
    assert codec._FAST_DECODERS[("CR", False)](bytes(bad), raw[0]).checksum_ok is False


def test_a_second_checksum_parameter_is_ignored_as_by_construct() -> None:
    raw = encode_one(DC(1, 2), checksum=True)
    twice = bytes((raw[0] + 4,)) + raw[1:] + _param(ParamCode.CHECKSUM, b"\x00\x00")
    assert _decoded(twice, None, True) == _decoded(twice, None, False)
    assert codec._FAST_DECODERS[("DC", False)](twice, twice[0]) is not None
