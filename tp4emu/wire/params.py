"""Variable-part parameters, each decoded into a typed value (reference §2).

Every parameter is a frozen dataclass with a class-level ``code``. Codes this
module does not know are kept as :class:`UnknownParam` and re-encoded
unchanged. A known code whose value does not have the shape the standard gives
is also kept raw (as :class:`UnknownParam`) in the connection TPDUs, where the
reference asks us to be lenient: real peers reuse codes oddly. Values the
standard constrains (TPDU size 7..13) are checked strictly.

The checksum parameter (0xC3) is not represented here: :func:`encode` inserts it
and :func:`decode` verifies it (see :mod:`tp4emu.wire.tpdu`).

**One definition per parameter.** Each parameter is defined in one place: its
dataclass below, with its wire definition on top
(:func:`~tp4emu.wire.defs.param_def`: name, the construct definition of the
value with fields named like the dataclass fields, the TPDUs it belongs in,
the shapes kept raw, the values refused, its description and token).
:func:`decode_param`, :func:`encode_param_value` and
:mod:`tp4emu.wire.describe` work from these definitions only, and so do the
fast paths :func:`decode_param_fast` and :func:`encode_param_fast`, whose
value codecs are compiled from the construct definitions
(:func:`~tp4emu.wire.defs.compile_value`).

To add a parameter: give its code a name in
:class:`~tp4emu.wire.constants.ParamCode`, write its dataclass here (with
``code``) under ``@param_def(...)``, and name it in the ``Param`` union and
this module's ``__all__`` (``tp4emu.wire`` re-exports it). Nothing else is
written per parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from construct import (
    Array,
    Construct,
    ConstructError,
    ExprAdapter,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int24ub,
    Int32ub,
    Struct,
    Terminated,
)

from .constants import DRReason, ERCause, ParamCode
from .defs import PARAM_DEFS, ParamDef, ValueCodec, compile_value, param_def
from .errors import TPDUError

__all__ = [  # the public names, re-exported by tp4emu.wire; helpers below are not
    "AckTime",
    "AdditionalInformation",
    "AdditionalOptions",
    "AlternativeClasses",
    "CalledTsap",
    "CallingTsap",
    "FlowControlConfirmation",
    "InactivityTimer",
    "InvalidTpdu",
    "Param",
    "PreferredMaxTpduSize",
    "Priority",
    "Protection",
    "ReassignmentTime",
    "ResidualErrorRate",
    "SelectiveAck",
    "SubsequenceNumber",
    "Throughput",
    "TpduSize",
    "TransitDelay",
    "UnknownParam",
    "Version",
    "connection_params",
]

# --- building blocks of the value definitions ---------------------------------


def _value(*fields: Construct) -> Construct:
    """A value made of *fields*, which fill it exactly."""
    return Struct(*fields, Terminated)


def _u8(name: str) -> Construct:
    return _value(name / Int8ub)


def _u16(name: str) -> Construct:
    return _value(name / Int16ub)


def _u32(name: str) -> Construct:
    return _value(name / Int32ub)


def _octets(name: str) -> Construct:
    return _value(name / GreedyBytes)


_BIG_ENDIAN = ExprAdapter(
    GreedyBytes,
    decoder=lambda obj, ctx: int.from_bytes(obj, "big"),
    encoder=lambda obj, ctx: obj.to_bytes(max(1, (obj.bit_length() + 7) // 8), "big"),
)
"""An unsigned integer in as many octets as the value has (the fewest on encoding)."""
_HIGH_NIBBLE = ExprAdapter(
    Int8ub,
    decoder=lambda obj, ctx: obj >> 4,
    encoder=lambda obj, ctx: (obj & 0x0F) << 4,
)
"""A class number in the high nibble of an octet."""
_CONNECTION = ("CR", "CC")


def _message(
    condition: Callable[[Any], bool], text: Callable[[Any], str]
) -> Callable[[Any], str | None]:
    """A rule: None when *condition* holds, else the message *text*."""
    return lambda p: None if condition(p) else text(p)


# --- typed parameters -------------------------------------------------------


@param_def(
    "tpdu-size",
    _u8("exponent"),
    where=_CONNECTION,
    token="size={size}",
    derived=("size",),
    strict=_message(
        lambda p: 7 <= p.exponent <= 13, lambda p: f"TPDU size code {p.exponent} out of 7..13"
    ),
)
@dataclass(frozen=True, slots=True)
class TpduSize:
    """0xC0: proposed/negotiated maximum TPDU size as log2 (7 = 128 ... 13 = 8192)."""

    exponent: int
    code: ClassVar[int] = ParamCode.TPDU_SIZE

    @property
    def size(self) -> int:
        """The size in octets."""
        return 1 << self.exponent

    @classmethod
    def for_size(cls, size: int) -> TpduSize:
        """The parameter for a size in octets (a power of two, 128..8192)."""
        exponent = size.bit_length() - 1
        if size != 1 << exponent or not 7 <= exponent <= 13:
            raise ValueError(f"TPDU size must be a power of two in 128..8192: {size}")
        return cls(exponent)


@param_def(
    "preferred-max-tpdu-size",
    _value("units" / _BIG_ENDIAN),
    where=_CONNECTION,
    token="preferred-size={size}",
    derived=("size",),
    lengths=range(1, 5),
    check=_message(
        lambda p: 0 <= p.units < 1 << 32, lambda p: "preferred maximum TPDU size out of range"
    ),
)
@dataclass(frozen=True, slots=True)
class PreferredMaxTpduSize:
    """0xF0: preferred maximum TPDU size, in units of 128 octets."""

    units: int
    code: ClassVar[int] = ParamCode.PREFERRED_MAX_TPDU_SIZE

    @property
    def size(self) -> int:
        """The size in octets."""
        return self.units * 128


@param_def(
    "calling-tsap",
    _octets("value"),
    where=_CONNECTION,
    token="calling-tsap={value!q}",
    shown="text",
)
@dataclass(frozen=True, slots=True)
class CallingTsap:
    """0xC1 (in CR/CC): calling TSAP-ID, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.CALLING_TSAP


@param_def(
    "called-tsap", _octets("value"), where=_CONNECTION, token="called-tsap={value!q}", shown="text"
)
@dataclass(frozen=True, slots=True)
class CalledTsap:
    """0xC2 (in CR/CC): called TSAP-ID, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.CALLED_TSAP


@param_def(
    "invalid-tpdu", _octets("header"), where=("ER",), token="invalid-tpdu={header!h}", shown="hex"
)
@dataclass(frozen=True, slots=True)
class InvalidTpdu:
    """0xC1 (in ER only): the header octets of the rejected TPDU."""

    header: bytes
    code: ClassVar[int] = ParamCode.INVALID_TPDU


@param_def("version", _u8("number"), where=_CONNECTION, token="version={number}")
@dataclass(frozen=True, slots=True)
class Version:
    """0xC4: protocol version number (1)."""

    number: int = 1
    code: ClassVar[int] = ParamCode.VERSION


@param_def(
    "protection", _octets("value"), where=_CONNECTION, token="protection={value!h}", shown="hex"
)
@dataclass(frozen=True, slots=True)
class Protection:
    """0xC5: protection parameters, user-defined octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.PROTECTION


@param_def(
    "additional-options",
    _u8("flags"),
    where=_CONNECTION,
    token="options=0x{flags:02x}",
    derived=("expedited", "checksum"),
)
@dataclass(frozen=True, slots=True)
class AdditionalOptions:
    """0xC6: additional option selection.

    Bit 1 (0x01): use of transport expedited data; bit 2 (0x02): *non-use* of
    the checksum in class 4; bit 5 (0x10): use of selective acknowledgement in
    class 4 (ISO 8073:1997). The standard's default, when absent, is 0x01.
    """

    flags: int = 0x01
    code: ClassVar[int] = ParamCode.ADDITIONAL_OPTIONS

    USE_EXPEDITED: ClassVar[int] = 0x01
    NON_USE_OF_CHECKSUM: ClassVar[int] = 0x02
    SELECTIVE_ACK: ClassVar[int] = 0x10

    @property
    def expedited(self) -> bool:
        """Whether expedited data is selected."""
        return bool(self.flags & self.USE_EXPEDITED)

    @property
    def checksum(self) -> bool:
        """Whether the checksum is used (the bit says *non-use*)."""
        return not self.flags & self.NON_USE_OF_CHECKSUM

    @property
    def selective_ack(self) -> bool:
        """Whether selective acknowledgement is selected."""
        return bool(self.flags & self.SELECTIVE_ACK)


@param_def(
    "alternative-classes",
    _value("classes" / GreedyRange(_HIGH_NIBBLE)),
    where=("CR",),
    token="alt-classes={classes!,}",
)
@dataclass(frozen=True, slots=True)
class AlternativeClasses:
    """0xC7: alternative protocol classes (CR only), one per octet."""

    classes: tuple[int, ...]
    code: ClassVar[int] = ParamCode.ALTERNATIVE_CLASSES


@param_def("ack-time", _u16("ms"), where=_CONNECTION, token="ack-time={ms}ms")
@dataclass(frozen=True, slots=True)
class AckTime:
    """0x85: acknowledgement time, the longest (ms) the sender delays an AK."""

    ms: int
    code: ClassVar[int] = ParamCode.ACK_TIME


@param_def(
    "residual-error-rate",
    _value("target" / Int8ub, "minimum" / Int8ub, "tsdu_size" / Int8ub),
    where=_CONNECTION,
    token="residual-error-rate=target:{target},min:{minimum},tsdu:{tsdu_size}",
)
@dataclass(frozen=True, slots=True)
class ResidualErrorRate:
    """0x86: residual error rate: target and minimum (powers of 10), TSDU size (power of 2)."""

    target: int
    minimum: int
    tsdu_size: int
    code: ClassVar[int] = ParamCode.RESIDUAL_ERROR_RATE


@param_def("priority", _u16("value"), where=_CONNECTION, token="priority={value}")
@dataclass(frozen=True, slots=True)
class Priority:
    """0x87: priority, 0 is highest."""

    value: int
    code: ClassVar[int] = ParamCode.PRIORITY


@param_def(
    "transit-delay",
    _value(
        "target_calling_called" / Int16ub,
        "minimum_calling_called" / Int16ub,
        "target_called_calling" / Int16ub,
        "minimum_called_calling" / Int16ub,
    ),
    where=_CONNECTION,
    token="transit-delay={target_calling_called}/{minimum_calling_called}/"
    "{target_called_calling}/{minimum_called_calling}ms",
)
@dataclass(frozen=True, slots=True)
class TransitDelay:
    """0x88: transit delay (ms): target and minimum, in each direction."""

    target_calling_called: int
    minimum_calling_called: int
    target_called_calling: int
    minimum_called_calling: int
    code: ClassVar[int] = ParamCode.TRANSIT_DELAY


@param_def(
    "throughput",
    _value("values" / GreedyRange(Int24ub)),
    where=_CONNECTION,
    token="throughput={values!/}",
    lengths=(12, 24),
    check=_message(lambda p: len(p.values) in (4, 8), lambda p: "throughput has 4 or 8 values"),
)
@dataclass(frozen=True, slots=True)
class Throughput:
    """0x89: throughput, 4 (maximum) or 8 (maximum and average) 24-bit values (octets/s)."""

    values: tuple[int, ...]
    code: ClassVar[int] = ParamCode.THROUGHPUT


@param_def("subsequence-number", _u16("value"), where=("AK",), token="subseq={value}")
@dataclass(frozen=True, slots=True)
class SubsequenceNumber:
    """0x8A (AK, class 4): orders AKs carrying the same YR-TU-NR."""

    value: int
    code: ClassVar[int] = ParamCode.SUBSEQUENCE_NUMBER


@param_def(
    "reassignment-time", _u16("seconds"), where=_CONNECTION, token="reassignment-time={seconds}s"
)
@dataclass(frozen=True, slots=True)
class ReassignmentTime:
    """0x8B (classes 1, 3): reassignment time in seconds."""

    seconds: int
    code: ClassVar[int] = ParamCode.REASSIGNMENT_TIME


@param_def(
    "flow-control-confirmation",
    _value("lower_window_edge" / Int32ub, "your_subsequence" / Int16ub, "your_credit" / Int16ub),
    where=("AK",),
    token="fcc=lwe:{lower_window_edge},subseq:{your_subsequence},credit:{your_credit}",
)
@dataclass(frozen=True, slots=True)
class FlowControlConfirmation:
    """0x8C (AK, class 4): echoes the peer's window: LWE, subsequence, credit."""

    lower_window_edge: int
    your_subsequence: int
    your_credit: int
    code: ClassVar[int] = ParamCode.FLOW_CONTROL_CONFIRMATION


@param_def(
    "selective-ack",
    _value("ranges" / GreedyRange(Array(2, Int8ub))),
    value_extended=_value("ranges" / GreedyRange(Array(2, Int32ub))),
    where=("AK",),
    token="selective-ack={ranges!R}",
)
@dataclass(frozen=True, slots=True)
class SelectiveAck:
    """0x8F (AK, 1997 edition): received ranges as (lower, upper) TPDU-NR pairs.

    Each edge is one octet in the normal format, four in the extended format.
    """

    ranges: tuple[tuple[int, int], ...]
    extended: bool = False
    code: ClassVar[int] = ParamCode.SELECTIVE_ACK


@param_def(
    "additional-information",
    _octets("value"),
    where=("DR",),
    token="additional-info={value!h}",
    shown="hex",
)
@dataclass(frozen=True, slots=True)
class AdditionalInformation:
    """0xE0 (DR): additional information, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.ADDITIONAL_INFORMATION


@param_def("inactivity-timer", _u32("ms"), where=_CONNECTION, token="inactivity={ms}ms")
@dataclass(frozen=True, slots=True)
class InactivityTimer:
    """0xF2: inactivity timer of the sender, in ms."""

    ms: int
    code: ClassVar[int] = ParamCode.INACTIVITY_TIMER


@param_def(
    "unknown", _octets("value"), where=(), token="param-0x{param_code:02x}={value!h}", shown="hex"
)
@dataclass(frozen=True, slots=True)
class UnknownParam:
    """A parameter kept as raw octets: unknown code, or a value of unexpected shape."""

    param_code: int
    value: bytes

    @property
    def code(self) -> int:
        """The parameter code."""
        return self.param_code


Param = (
    TpduSize
    | PreferredMaxTpduSize
    | CallingTsap
    | CalledTsap
    | InvalidTpdu
    | Version
    | Protection
    | AdditionalOptions
    | AlternativeClasses
    | AckTime
    | ResidualErrorRate
    | Priority
    | TransitDelay
    | Throughput
    | SubsequenceNumber
    | ReassignmentTime
    | FlowControlConfirmation
    | SelectiveAck
    | AdditionalInformation
    | InactivityTimer
    | UnknownParam
)
"""Any variable-part parameter."""


_BY_TYPE: dict[type, ParamDef] = {d.cls: d for d in PARAM_DEFS}
_OPAQUE: dict[type, str] = {d.cls: d.opaque for d in PARAM_DEFS if d.opaque is not None}
_UNKNOWN = _BY_TYPE[UnknownParam]
_BY_CODE: dict[int, list[ParamDef]] = {}
for _d in PARAM_DEFS:
    if _d.code is not None:
        _BY_CODE.setdefault(_d.code, []).append(_d)
del _d


def _frozen(value: Any) -> Any:
    """Lists (construct's) as tuples, all the way down."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def decode_param(code: int, value: bytes, *, in_er: bool, extended: bool) -> Param:
    """Decode one parameter value. Raises :class:`TPDUError` only for values the
    standard constrains strictly (TPDU size); other misshapen values stay raw."""
    return decode_param_in("ER" if in_er else "", code, value, extended=extended)


def decode_param_in(tpdu: str, code: int, value: bytes, *, extended: bool) -> Param:
    """Decode one parameter value found in a TPDU named *tpdu* (see :func:`decode_param`).

    Where two parameters share a code (0xC1), the one that belongs in *tpdu*
    is chosen, else the first defined.
    """
    candidates = _BY_CODE.get(code)
    if candidates is None:
        return UnknownParam(code, value)
    spec = next((d for d in candidates if tpdu in d.where), candidates[0])
    opaque = _OPAQUE.get(spec.cls)
    if opaque is not None:
        return spec.cls(**{opaque: value})  # type: ignore[no-any-return]
    if spec.lengths is not None and len(value) not in spec.lengths:
        return UnknownParam(code, value)
    fmt = spec.value_extended if extended and spec.value_extended is not None else spec.value
    try:
        parsed = fmt.parse(value)
    except ConstructError:  # a misshapen value: keep it raw
        return UnknownParam(code, value)
    attrs = {name: _frozen(parsed[name]) for name in spec.attrs}
    if spec.value_extended is not None:
        attrs["extended"] = extended
    param: Param = spec.cls(**attrs)
    if spec.strict is not None:
        message = spec.strict(param)
        if message is not None:
            raise TPDUError(
                message,
                reason=DRReason.NEGOTIATION_FAILED,
                cause=ERCause.INVALID_PARAMETER_VALUE,
            )
    return param


def encode_param_value(param: Param, *, fast: bool = True) -> bytes:
    """Encode the value octets of *param* (without code and length).

    *fast*: by the generated encoder where there is one (the same octets:
    tests/test_wire_params_fast.py compares it with ``fast=False``, construct).
    """
    opaque = _OPAQUE.get(type(param))
    if opaque is not None:
        return bytes(getattr(param, opaque))
    spec = _BY_TYPE.get(type(param))
    if spec is None:
        raise TypeError(f"not a parameter: {param!r}")
    for rule in (spec.check, spec.strict):
        message = rule(param) if rule is not None else None
        if message is not None:
            raise ValueError(message)
    extended = bool(param_format(param))
    if fast:
        quick = encode_param_fast(param, extended)
        if quick is not None:
            return quick[2:]
    fmt = spec.value
    if spec.value_extended is not None and extended:
        fmt = spec.value_extended
    return bytes(fmt.build({name: getattr(param, name) for name in spec.attrs}))


def param_format(param: Param) -> bool | None:
    """The format (extended or not) a parameter is encoded in, or None when it has one only."""
    if _BY_TYPE[type(param)].value_extended is None:
        return None
    return bool(getattr(param, "extended", False))


# --- the fast path: values without construct -------------------------------------
#
# Generated from the same definitions (defs.compile_value); used by the struct
# fast paths of tp4emu.wire.tpdu. They never raise on a value the construct
# path refuses: they return None and the caller takes the construct path,
# which reports it. tests/test_wire_params_fast.py proves them equal.

_Decoder = Callable[[int, bytes], "Param | None"]


def _fast_decoder(spec: ParamDef, extended: bool) -> _Decoder | None:
    """``(code, value) -> Param`` like :func:`decode_param_in`; None for the construct path."""
    cls, opaque, lengths, strict = spec.cls, spec.opaque, spec.lengths, spec.strict
    if opaque is not None:
        return lambda code, value: cls(**{opaque: value})
    fmt = spec.value_extended if extended and spec.value_extended is not None else spec.value
    codec = compile_value(fmt)
    if codec is None:
        return None
    parse = codec.parse
    with_format = spec.value_extended is not None

    def decode(code: int, value: bytes) -> Param | None:
        if lengths is not None and len(value) not in lengths:
            return UnknownParam(code, value)
        attrs = parse(value)
        if attrs is None:
            return UnknownParam(code, value)
        if with_format:
            attrs["extended"] = extended
        param: Param = cls(**attrs)
        if strict is not None and strict(param) is not None:
            return None  # the construct path raises the TPDUError
        return param

    return decode


_FAST_DECODE: dict[tuple[str, int, bool], _Decoder | None] = {}
"""The decoder of each (TPDU name, code, format) met, made on first use."""


def decode_param_fast(tpdu: str, code: int, value: bytes, extended: bool) -> Param | None:
    """:func:`decode_param_in` without construct, or None: take :func:`decode_param_in`.

    Equal to :func:`decode_param_in` whenever it returns a parameter; None
    where that raises (and for shapes not compiled, of which there are none).
    """
    key = (tpdu, code, extended)
    try:
        decoder = _FAST_DECODE[key]
    except KeyError:
        candidates = _BY_CODE.get(code)
        if candidates is None:
            return UnknownParam(code, value)
        spec = next((d for d in candidates if tpdu in d.where), candidates[0])
        decoder = _FAST_DECODE[key] = _fast_decoder(spec, extended)
    return None if decoder is None else decoder(code, value)


_Encoder = Callable[["Param"], "bytes | None"]


def _fast_encoder(spec: ParamDef, extended: bool) -> _Encoder | None:
    """``param -> value octets`` like :func:`encode_param_value`; None: use construct."""
    opaque = spec.opaque
    if opaque is not None:
        return lambda p: bytes(getattr(p, opaque))
    fmt = spec.value_extended if extended and spec.value_extended is not None else spec.value
    codec: ValueCodec | None = compile_value(fmt)
    if codec is None:
        return None
    build = codec.build
    rules = [rule for rule in (spec.check, spec.strict) if rule is not None]

    def encode(p: Param) -> bytes | None:
        for rule in rules:
            if rule(p) is not None:
                return None  # encode_param_value raises the ValueError
        return build(lambda name: getattr(p, name))

    return encode


_FAST_ENCODE: dict[tuple[type, bool], _Encoder | None] = {
    (d.cls, ext): _fast_encoder(d, ext) for d in PARAM_DEFS for ext in (False, True)
}


def encode_param_fast(param: Param, extended: bool) -> bytes | None:
    """The code, length and value octets of *param* in a TPDU of the format *extended*.

    None wherever :func:`~tp4emu.wire.tpdu.encode_one`'s construct path would
    raise or does something else (a value of more than 255 octets, the wrong
    format, a value refused...): then take that path, which reports it.
    """
    encoder = _FAST_ENCODE.get((type(param), extended))
    if encoder is None:
        return None
    if param_format(param) not in (None, extended):
        return None
    try:
        value = encoder(param)
        if value is None or len(value) > 255:
            return None
        return bytes((param.code, len(value))) + value
    except Exception:  # whatever construct would raise, it reports
        return None


def connection_params(
    tpdu_size: int,
    calling_tsap: bytes | None,
    called_tsap: bytes | None,
    options: int | None = None,
    *,
    preferred: bool = False,
    ack_time_ms: int | None = None,
) -> tuple[Param, ...]:
    """The usual parameters of a CR or CC, in the order real peers send them.

    Args:
        tpdu_size: TPDU size in octets: a power of two, 128..8192, or with
            *preferred* any multiple of 128.
        calling_tsap: calling TSAP-ID, or None to leave it out.
        called_tsap: called TSAP-ID, or None to leave it out.
        options: additional option selection (0xC6), or None to leave it out
            (class 0 has none).
        preferred: also send *tpdu_size* as the preferred maximum TPDU size
            (0xF0); the TPDU size parameter then carries the largest power of
            two not above it (at most 8192), for peers that ignore 0xF0.
        ack_time_ms: acknowledgement time (0x85) in ms, or None to leave it out.
    """
    if preferred:
        power = 1 << min(max(tpdu_size.bit_length() - 1, 7), 13)
        params: list[Param] = [TpduSize.for_size(power), PreferredMaxTpduSize(tpdu_size // 128)]
    else:
        params = [TpduSize.for_size(tpdu_size)]
    if calling_tsap is not None:
        params.append(CallingTsap(calling_tsap))
    if called_tsap is not None:
        params.append(CalledTsap(called_tsap))
    if options is not None:
        params.append(AdditionalOptions(options))
    if ack_time_ms is not None:
        params.append(AckTime(ack_time_ms))
    return tuple(params)
