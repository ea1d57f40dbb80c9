"""Variable-part parameters, each decoded into a typed value (reference §2).

Every parameter is a frozen dataclass with a class-level ``code``. Codes this
module does not know are kept as :class:`UnknownParam` and re-encoded
unchanged. A known code whose value does not have the shape the standard gives
is also kept raw (as :class:`UnknownParam`) in the connection TPDUs, where the
reference asks us to be lenient: real peers reuse codes oddly. Values the
standard constrains (TPDU size 7..13) are checked strictly.

The checksum parameter (0xC3) is not represented here: :func:`encode` inserts it
and :func:`decode` verifies it (see :mod:`tp4emu.wire.tpdu`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from construct import (
    Array,
    Construct,
    ConstructError,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int24ub,
    Int32ub,
    Struct,
    Terminated,
)

from .constants import DRReason, ERCause, ParamCode
from .errors import TPDUError

__all__ = [
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
    "decode_param",
    "encode_param_value",
]

# --- construct definitions of the parameter values -------------------------

U8: Construct = Struct("value" / Int8ub, Terminated)
U16: Construct = Struct("value" / Int16ub, Terminated)
U32: Construct = Struct("value" / Int32ub, Terminated)
RESIDUAL_ERROR_RATE: Construct = Struct(
    "target" / Int8ub,
    "minimum" / Int8ub,
    "tsdu_size" / Int8ub,
    Terminated,
)
TRANSIT_DELAY: Construct = Struct(
    "target_calling_called" / Int16ub,
    "minimum_calling_called" / Int16ub,
    "target_called_calling" / Int16ub,
    "minimum_called_calling" / Int16ub,
    Terminated,
)
THROUGHPUT: Construct = Struct(
    "values" / GreedyRange(Int24ub),
    Terminated,
)
FLOW_CONTROL_CONFIRMATION: Construct = Struct(
    "lower_window_edge" / Int32ub,
    "your_subsequence" / Int16ub,
    "your_credit" / Int16ub,
    Terminated,
)
SELECTIVE_ACK_NORMAL: Construct = Struct(
    "edges" / GreedyRange(Array(2, Int8ub)),
    Terminated,
)
SELECTIVE_ACK_EXTENDED: Construct = Struct(
    "edges" / GreedyRange(Array(2, Int32ub)),
    Terminated,
)


# --- typed parameters -------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class PreferredMaxTpduSize:
    """0xF0: preferred maximum TPDU size, in units of 128 octets."""

    units: int
    code: ClassVar[int] = ParamCode.PREFERRED_MAX_TPDU_SIZE

    @property
    def size(self) -> int:
        """The size in octets."""
        return self.units * 128


@dataclass(frozen=True, slots=True)
class CallingTsap:
    """0xC1 (in CR/CC): calling TSAP-ID, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.CALLING_TSAP


@dataclass(frozen=True, slots=True)
class CalledTsap:
    """0xC2 (in CR/CC): called TSAP-ID, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.CALLED_TSAP


@dataclass(frozen=True, slots=True)
class InvalidTpdu:
    """0xC1 (in ER only): the header octets of the rejected TPDU."""

    header: bytes
    code: ClassVar[int] = ParamCode.INVALID_TPDU


@dataclass(frozen=True, slots=True)
class Version:
    """0xC4: protocol version number (1)."""

    number: int = 1
    code: ClassVar[int] = ParamCode.VERSION


@dataclass(frozen=True, slots=True)
class Protection:
    """0xC5: protection parameters, user-defined octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.PROTECTION


@dataclass(frozen=True, slots=True)
class AdditionalOptions:
    """0xC6: additional option selection.

    Bit 1 (0x01): use of transport expedited data; bit 2 (0x02): *non-use* of
    the checksum in class 4. The standard's default, when absent, is 0x01.
    """

    flags: int = 0x01
    code: ClassVar[int] = ParamCode.ADDITIONAL_OPTIONS

    USE_EXPEDITED: ClassVar[int] = 0x01
    NON_USE_OF_CHECKSUM: ClassVar[int] = 0x02

    @property
    def expedited(self) -> bool:
        """Whether expedited data is selected."""
        return bool(self.flags & self.USE_EXPEDITED)

    @property
    def checksum(self) -> bool:
        """Whether the checksum is used (the bit says *non-use*)."""
        return not self.flags & self.NON_USE_OF_CHECKSUM


@dataclass(frozen=True, slots=True)
class AlternativeClasses:
    """0xC7: alternative protocol classes (CR only), one per octet."""

    classes: tuple[int, ...]
    code: ClassVar[int] = ParamCode.ALTERNATIVE_CLASSES


@dataclass(frozen=True, slots=True)
class AckTime:
    """0x85: acknowledgement time, the longest (ms) the sender delays an AK."""

    ms: int
    code: ClassVar[int] = ParamCode.ACK_TIME


@dataclass(frozen=True, slots=True)
class ResidualErrorRate:
    """0x86: residual error rate: target and minimum (powers of 10), TSDU size (power of 2)."""

    target: int
    minimum: int
    tsdu_size: int
    code: ClassVar[int] = ParamCode.RESIDUAL_ERROR_RATE


@dataclass(frozen=True, slots=True)
class Priority:
    """0x87: priority, 0 is highest."""

    value: int
    code: ClassVar[int] = ParamCode.PRIORITY


@dataclass(frozen=True, slots=True)
class TransitDelay:
    """0x88: transit delay (ms): target and minimum, in each direction."""

    target_calling_called: int
    minimum_calling_called: int
    target_called_calling: int
    minimum_called_calling: int
    code: ClassVar[int] = ParamCode.TRANSIT_DELAY


@dataclass(frozen=True, slots=True)
class Throughput:
    """0x89: throughput, 4 (maximum) or 8 (maximum and average) 24-bit values (octets/s)."""

    values: tuple[int, ...]
    code: ClassVar[int] = ParamCode.THROUGHPUT


@dataclass(frozen=True, slots=True)
class SubsequenceNumber:
    """0x8A (AK, class 4): orders AKs carrying the same YR-TU-NR."""

    value: int
    code: ClassVar[int] = ParamCode.SUBSEQUENCE_NUMBER


@dataclass(frozen=True, slots=True)
class ReassignmentTime:
    """0x8B (classes 1, 3): reassignment time in seconds."""

    seconds: int
    code: ClassVar[int] = ParamCode.REASSIGNMENT_TIME


@dataclass(frozen=True, slots=True)
class FlowControlConfirmation:
    """0x8C (AK, class 4): echoes the peer's window: LWE, subsequence, credit."""

    lower_window_edge: int
    your_subsequence: int
    your_credit: int
    code: ClassVar[int] = ParamCode.FLOW_CONTROL_CONFIRMATION


@dataclass(frozen=True, slots=True)
class SelectiveAck:
    """0x8F (AK, 1997 edition): received ranges as (lower, upper) TPDU-NR pairs.

    Each edge is one octet in the normal format, four in the extended format.
    """

    ranges: tuple[tuple[int, int], ...]
    extended: bool = False
    code: ClassVar[int] = ParamCode.SELECTIVE_ACK


@dataclass(frozen=True, slots=True)
class AdditionalInformation:
    """0xE0 (DR): additional information, opaque octets."""

    value: bytes
    code: ClassVar[int] = ParamCode.ADDITIONAL_INFORMATION


@dataclass(frozen=True, slots=True)
class InactivityTimer:
    """0xF2: inactivity timer of the sender, in ms."""

    ms: int
    code: ClassVar[int] = ParamCode.INACTIVITY_TIMER


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


def decode_param(code: int, value: bytes, *, in_er: bool, extended: bool) -> Param:
    """Decode one parameter value. Raises :class:`TPDUError` only for values the
    standard constrains strictly (TPDU size); other misshapen values stay raw."""
    try:
        return _decode_param(code, value, in_er=in_er, extended=extended)
    except ConstructError:  # a misshapen value: keep it raw
        return UnknownParam(code, value)


def _decode_param(code: int, value: bytes, *, in_er: bool, extended: bool) -> Param:
    if code == ParamCode.TPDU_SIZE:
        exponent = U8.parse(value).value
        if not 7 <= exponent <= 13:
            raise TPDUError(
                f"TPDU size code {exponent} out of 7..13",
                reason=DRReason.NEGOTIATION_FAILED,
                cause=ERCause.INVALID_PARAMETER_VALUE,
            )
        return TpduSize(exponent)
    if code == ParamCode.PREFERRED_MAX_TPDU_SIZE:
        if not 1 <= len(value) <= 4:
            return UnknownParam(code, value)
        return PreferredMaxTpduSize(int.from_bytes(value, "big"))
    if code == 0xC1:
        return InvalidTpdu(value) if in_er else CallingTsap(value)
    if code == ParamCode.CALLED_TSAP:
        return CalledTsap(value)
    if code == ParamCode.VERSION:
        return Version(U8.parse(value).value)
    if code == ParamCode.PROTECTION:
        return Protection(value)
    if code == ParamCode.ADDITIONAL_OPTIONS:
        return AdditionalOptions(U8.parse(value).value)
    if code == ParamCode.ALTERNATIVE_CLASSES:
        return AlternativeClasses(tuple(octet >> 4 for octet in value))
    if code == ParamCode.ACK_TIME:
        return AckTime(U16.parse(value).value)
    if code == ParamCode.RESIDUAL_ERROR_RATE:
        r = RESIDUAL_ERROR_RATE.parse(value)
        return ResidualErrorRate(r.target, r.minimum, r.tsdu_size)
    if code == ParamCode.PRIORITY:
        return Priority(U16.parse(value).value)
    if code == ParamCode.TRANSIT_DELAY:
        t = TRANSIT_DELAY.parse(value)
        return TransitDelay(
            t.target_calling_called,
            t.minimum_calling_called,
            t.target_called_calling,
            t.minimum_called_calling,
        )
    if code == ParamCode.THROUGHPUT:
        if len(value) not in (12, 24):
            return UnknownParam(code, value)
        return Throughput(tuple(THROUGHPUT.parse(value)["values"]))  # not .values: dict method
    if code == ParamCode.SUBSEQUENCE_NUMBER:
        return SubsequenceNumber(U16.parse(value).value)
    if code == ParamCode.REASSIGNMENT_TIME:
        return ReassignmentTime(U16.parse(value).value)
    if code == ParamCode.FLOW_CONTROL_CONFIRMATION:
        f = FLOW_CONTROL_CONFIRMATION.parse(value)
        return FlowControlConfirmation(f.lower_window_edge, f.your_subsequence, f.your_credit)
    if code == ParamCode.SELECTIVE_ACK:
        fmt = SELECTIVE_ACK_EXTENDED if extended else SELECTIVE_ACK_NORMAL
        edges = fmt.parse(value).edges
        return SelectiveAck(tuple((int(a), int(b)) for a, b in edges), extended)
    if code == ParamCode.ADDITIONAL_INFORMATION:
        return AdditionalInformation(value)
    if code == ParamCode.INACTIVITY_TIMER:
        return InactivityTimer(U32.parse(value).value)
    return UnknownParam(code, value)


def encode_param_value(param: Param) -> bytes:
    """Encode the value octets of *param* (without code and length)."""
    return bytes(_encode_param_value(param))


def _encode_param_value(param: Param) -> Any:
    if isinstance(param, TpduSize):
        if not 7 <= param.exponent <= 13:
            raise ValueError(f"TPDU size code {param.exponent} out of 7..13")
        return U8.build({"value": param.exponent})
    if isinstance(param, PreferredMaxTpduSize):
        if not 0 <= param.units < 1 << 32:
            raise ValueError("preferred maximum TPDU size out of range")
        return param.units.to_bytes(max(1, (param.units.bit_length() + 7) // 8), "big")
    if isinstance(param, (CallingTsap, CalledTsap, Protection, AdditionalInformation)):
        return param.value
    if isinstance(param, InvalidTpdu):
        return param.header
    if isinstance(param, Version):
        return U8.build({"value": param.number})
    if isinstance(param, AdditionalOptions):
        return U8.build({"value": param.flags})
    if isinstance(param, AlternativeClasses):
        return bytes((c & 0x0F) << 4 for c in param.classes)
    if isinstance(param, AckTime):
        return U16.build({"value": param.ms})
    if isinstance(param, ResidualErrorRate):
        return RESIDUAL_ERROR_RATE.build(
            {"target": param.target, "minimum": param.minimum, "tsdu_size": param.tsdu_size}
        )
    if isinstance(param, Priority):
        return U16.build({"value": param.value})
    if isinstance(param, TransitDelay):
        return TRANSIT_DELAY.build(
            {
                "target_calling_called": param.target_calling_called,
                "minimum_calling_called": param.minimum_calling_called,
                "target_called_calling": param.target_called_calling,
                "minimum_called_calling": param.minimum_called_calling,
            }
        )
    if isinstance(param, Throughput):
        if len(param.values) not in (4, 8):
            raise ValueError("throughput has 4 or 8 values")
        return THROUGHPUT.build({"values": list(param.values)})
    if isinstance(param, SubsequenceNumber):
        return U16.build({"value": param.value})
    if isinstance(param, ReassignmentTime):
        return U16.build({"value": param.seconds})
    if isinstance(param, FlowControlConfirmation):
        return FLOW_CONTROL_CONFIRMATION.build(
            {
                "lower_window_edge": param.lower_window_edge,
                "your_subsequence": param.your_subsequence,
                "your_credit": param.your_credit,
            }
        )
    if isinstance(param, SelectiveAck):
        fmt = SELECTIVE_ACK_EXTENDED if param.extended else SELECTIVE_ACK_NORMAL
        return fmt.build({"edges": [list(r) for r in param.ranges]})
    if isinstance(param, InactivityTimer):
        return U32.build({"value": param.ms})
    if isinstance(param, UnknownParam):
        return param.value
    raise TypeError(f"not a parameter: {param!r}")


def connection_params(
    tpdu_size: int,
    calling_tsap: bytes | None,
    called_tsap: bytes | None,
    options: int | None = None,
    *,
    preferred: bool = False,
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
    return tuple(params)
