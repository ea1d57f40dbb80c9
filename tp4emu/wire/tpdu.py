"""Typed TPDUs and the datagram codec: :func:`decode` and :func:`encode`.

Every TPDU is a frozen dataclass. ``decode`` turns a datagram (one NSDU, which
may hold several concatenated TPDUs) into a list of them; ``encode`` does the
reverse. Untrusted input raises only :class:`~tp4emu.wire.errors.TPDUError`.

Normal or extended format: DT, ED, AK, EA and RJ do not say which format they
use; the connection knows. ``decode(..., extended=None)`` infers it from the
LI as Wireshark does: the normal fixed parts are 4 octets and the extended ones
7 or 9, and every parameter these TPDUs may carry (checksum, subsequence
number, flow control confirmation, selective acknowledgement) has an even
total length, so an even LI means normal format and an odd LI extended.
Pass ``extended=True/False`` when the connection's format is known.

The checksum parameter (0xC3) is not kept in ``params``: ``encode(...,
checksum=True)`` inserts it first in the variable part and fills it in, and
``decode`` verifies it and reports the verdict in ``checksum_ok`` (``None``
when absent), a field that is not part of equality.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from construct import ConstructError

from . import checksum as _checksum
from .constants import (
    MAX_CR_CC_DATA,
    MAX_DR_DATA,
    MAX_ED_DATA,
    ClassOption,
    DRReason,
    ERCause,
    ParamCode,
    TPDUCode,
)
from .errors import TPDUError
from .formats import FIXED_LENGTH, FORMATS
from .params import (
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    FlowControlConfirmation,
    Param,
    SelectiveAck,
    SubsequenceNumber,
    TpduSize,
    decode_param,
    encode_param_value,
)

__all__ = [
    "AK",
    "CC",
    "CR",
    "DC",
    "DR",
    "DT",
    "DT0",
    "EA",
    "ED",
    "ER",
    "RJ",
    "TPDU",
    "decode",
    "encode",
    "encode_one",
]

P = TypeVar("P")

NR7_MOD = 1 << 7
NR31_MOD = 1 << 31


class _Base:
    __slots__ = ()
    params: tuple[Param, ...]

    def param(self, kind: type[P]) -> P | None:
        """The first parameter of type *kind*, or None."""
        for p in self.params:
            if isinstance(p, kind):
                return p
        return None


class _ConnectionTPDU(_Base):
    """Accessors shared by CR and CC."""

    __slots__ = ()
    options: int

    @property
    def extended(self) -> bool:
        """Whether the extended formats are proposed/accepted."""
        return bool(self.options & ClassOption.EXTENDED_FORMAT)

    @property
    def tpdu_size(self) -> int | None:
        """The TPDU size parameter in octets, if present."""
        p = self.param(TpduSize)
        return p.size if p else None

    @property
    def calling_tsap(self) -> bytes | None:
        """The calling TSAP-ID, if present."""
        p = self.param(CallingTsap)
        return p.value if p else None

    @property
    def called_tsap(self) -> bytes | None:
        """The called TSAP-ID, if present."""
        p = self.param(CalledTsap)
        return p.value if p else None

    @property
    def additional_options(self) -> int:
        """The additional option selection (the standard's default 0x01 when absent)."""
        p = self.param(AdditionalOptions)
        return p.flags if p else 0x01


@dataclass(frozen=True, slots=True)
class CR(_ConnectionTPDU):
    """Connection request."""

    src_ref: int
    credit: int = 0
    protocol_class: int = 4
    options: int = 0
    params: tuple[Param, ...] = ()
    data: bytes = b""
    dst_ref: int = 0
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.CR


@dataclass(frozen=True, slots=True)
class CC(_ConnectionTPDU):
    """Connection confirm."""

    dst_ref: int
    src_ref: int
    credit: int = 0
    protocol_class: int = 4
    options: int = 0
    params: tuple[Param, ...] = ()
    data: bytes = b""
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.CC


@dataclass(frozen=True, slots=True)
class DR(_Base):
    """Disconnect request."""

    dst_ref: int
    src_ref: int
    reason: int = DRReason.NORMAL
    params: tuple[Param, ...] = ()
    data: bytes = b""
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DR


@dataclass(frozen=True, slots=True)
class DC(_Base):
    """Disconnect confirm."""

    dst_ref: int
    src_ref: int
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DC


@dataclass(frozen=True, slots=True)
class DT(_Base):
    """Data (classes 2-4: with DST-REF)."""

    dst_ref: int
    nr: int
    eot: bool = True
    data: bytes = b""
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DT


@dataclass(frozen=True, slots=True)
class DT0(_Base):
    """Data in classes 0 and 1 (LI = 2, no DST-REF): used over RFC 1006."""

    nr: int = 0
    eot: bool = True
    data: bytes = b""
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DT


@dataclass(frozen=True, slots=True)
class ED(_Base):
    """Expedited data (at most 16 octets)."""

    dst_ref: int
    nr: int
    data: bytes = b""
    eot: bool = True
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.ED


@dataclass(frozen=True, slots=True)
class AK(_Base):
    """Data acknowledgement: next expected TPDU-NR and credit."""

    dst_ref: int
    nr: int
    credit: int
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.AK

    @property
    def subsequence(self) -> int:
        """The subsequence number (0 when absent)."""
        p = self.param(SubsequenceNumber)
        return p.value if p else 0

    @property
    def flow_control_confirmation(self) -> FlowControlConfirmation | None:
        """The FCC parameter, if present."""
        return self.param(FlowControlConfirmation)


@dataclass(frozen=True, slots=True)
class EA(_Base):
    """Expedited data acknowledgement."""

    dst_ref: int
    nr: int
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.EA


@dataclass(frozen=True, slots=True)
class RJ(_Base):
    """Reject (classes 1 and 3)."""

    dst_ref: int
    nr: int
    credit: int
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.RJ


@dataclass(frozen=True, slots=True)
class ER(_Base):
    """TPDU error: reject cause and, usually, the invalid TPDU's header."""

    dst_ref: int
    cause: int = ERCause.NOT_SPECIFIED
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.ER


TPDU = CR | CC | DR | DC | DT | DT0 | ED | AK | EA | RJ | ER
"""Any TPDU."""

_WITH_DATA = (CR, CC, DR, DT, DT0, ED)
_NAMES = {
    TPDUCode.CR: "CR",
    TPDUCode.CC: "CC",
    TPDUCode.DR: "DR",
    TPDUCode.DC: "DC",
    TPDUCode.DT: "DT",
    TPDUCode.ED: "ED",
    TPDUCode.AK: "AK",
    TPDUCode.EA: "EA",
    TPDUCode.RJ: "RJ",
    TPDUCode.ER: "ER",
}
_CREDIT_IN_CODE = frozenset({TPDUCode.CR, TPDUCode.CC, TPDUCode.AK, TPDUCode.RJ})
_NUMBERED = frozenset({"DT", "ED", "AK", "EA", "RJ"})
_HAS_DATA = frozenset({"CR", "CC", "DR", "DT", "DT0", "ED"})
_DATA_LIMIT = {"CR": MAX_CR_CC_DATA, "CC": MAX_CR_CC_DATA, "DR": MAX_DR_DATA, "ED": MAX_ED_DATA}

# ---------------------------------------------------------------- decoding


def decode(datagram: bytes, *, extended: bool | None = None) -> list[TPDU]:
    """Decode every TPDU of *datagram* (concatenated TPDUs included).

    Args:
        datagram: one network datagram (NSDU), untrusted.
        extended: format of DT/ED/AK/EA/RJ, or None to infer it from the LI.

    Raises:
        TPDUError: the only exception; says what is wrong and how to answer.
    """
    data = bytes(datagram)
    out: list[TPDU] = []
    offset = 0
    total = len(data)
    if total == 0:
        raise TPDUError("empty datagram", cause=ERCause.NOT_SPECIFIED)
    while offset < total:
        tpdu, offset = _decode_one(data, offset, extended, fast=True)
        out.append(tpdu)
    return out


def _decode_one(data: bytes, offset: int, extended: bool | None, *, fast: bool) -> tuple[TPDU, int]:
    """Decode the TPDU at *offset*; return it and the offset of the next one."""
    total = len(data)
    li = data[offset]
    if li == 0 or li == 255:
        raise TPDUError(
            f"LI {li} is not a valid header length",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=data[offset : offset + 2],
        )
    end = offset + 1 + li
    if end > total:
        raise TPDUError(
            f"LI {li} runs past the end of the datagram (octets left: {total - offset - 1})",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=data[offset:total],
        )
    header = data[offset:end]
    type_octet = data[offset + 1]
    try:
        code = TPDUCode(type_octet >> 4)
    except ValueError:
        raise TPDUError(
            f"unknown TPDU code 0x{type_octet >> 4:X}",
            cause=ERCause.INVALID_TPDU_TYPE,
            offset=offset,
            header=header,
        ) from None
    if code not in _CREDIT_IN_CODE and type_octet & 0x0F:
        raise TPDUError(
            f"TPDU type octet 0x{type_octet:02X}: low nibble must be 0 for {code.name}",
            cause=ERCause.INVALID_TPDU_TYPE,
            offset=offset,
            header=header,
        )
    name = _NAMES[code]
    if name == "DT" and li == 2:
        name = "DT0"
    ext = False
    if name in _NUMBERED:
        ext = bool(li & 1) if extended is None else extended
    key = (name, ext)
    if li < FIXED_LENGTH[key]:
        raise TPDUError(
            f"LI {li} shorter than the fixed part of {name}",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=header,
        )
    has_data = name in _HAS_DATA
    stop = total if has_data else end
    raw = data[offset:stop]
    if fast:
        quick = _FAST_DECODERS.get(key)
        if quick is not None:
            tpdu = quick(raw, li)
            if tpdu is not None:
                return tpdu, stop
    try:
        parsed = FORMATS[key].parse(raw)
    except ConstructError:
        raise TPDUError(
            f"parameter length runs past the header of {name}",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=header,
        ) from None
    hdr = parsed.header
    checksum_ok: bool | None = None
    params: list[Param] = []
    for p in hdr.get("params", ()):
        if p.code == ParamCode.CHECKSUM:
            if checksum_ok is None:
                checksum_ok = len(p.value) == 2 and _checksum.verify(raw)
            continue
        try:
            params.append(decode_param(p.code, p.value, in_er=name == "ER", extended=ext))
        except TPDUError as exc:
            exc.offset = offset
            exc.header = header
            raise
    user_data: bytes = parsed.get("data", b"")
    limit = _DATA_LIMIT.get(name)
    if limit is not None and len(user_data) > limit:
        raise TPDUError(
            f"{name} carries {len(user_data)} octets of user data, more than {limit}",
            reason=DRReason.PROTOCOL_ERROR,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=header,
        )
    if name in ("CR", "CC") and hdr.class_options >> 4 > 4:
        raise TPDUError(
            f"protocol class {hdr.class_options >> 4} does not exist (0..4)",
            reason=DRReason.NEGOTIATION_FAILED,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=header,
        )
    tpdu = _build(name, ext, hdr, tuple(params), user_data, checksum_ok)
    return tpdu, stop


def _build(
    name: str,
    ext: bool,
    hdr: Any,
    params: tuple[Param, ...],
    user_data: bytes,
    checksum_ok: bool | None,
) -> TPDU:
    low = hdr.type_credit & 0x0F
    if name in ("CR", "CC"):
        cls = CR if name == "CR" else CC
        return cls(
            dst_ref=hdr.dst_ref,
            src_ref=hdr.src_ref,
            credit=low,
            protocol_class=hdr.class_options >> 4,
            options=hdr.class_options & 0x0F,
            params=params,
            data=user_data,
            checksum_ok=checksum_ok,
        )
    if name == "DR":
        return DR(hdr.dst_ref, hdr.src_ref, hdr.reason, params, user_data, checksum_ok)
    if name == "DC":
        return DC(hdr.dst_ref, hdr.src_ref, params, checksum_ok)
    if name == "ER":
        return ER(hdr.dst_ref, hdr.cause, params, checksum_ok)
    if name == "DT0":
        return DT0(hdr.eot_nr & 0x7F, bool(hdr.eot_nr & 0x80), user_data, (), checksum_ok)
    top = 0x80000000 if ext else 0x80
    if name == "DT":
        return DT(
            hdr.dst_ref,
            hdr.eot_nr & (top - 1),
            bool(hdr.eot_nr & top),
            user_data,
            ext,
            params,
            checksum_ok,
        )
    if name == "ED":
        return ED(
            hdr.dst_ref,
            hdr.eot_nr & (top - 1),
            user_data,
            bool(hdr.eot_nr & top),
            ext,
            params,
            checksum_ok,
        )
    # AK/EA/RJ: bit 8 (or 32) of YR-TU-NR is 0; mask it as Wireshark does.
    nr = hdr.eot_nr & (top - 1)
    if name == "EA":
        return EA(hdr.dst_ref, nr, ext, params, checksum_ok)
    credit = hdr.credit if ext else low
    if name == "AK":
        return AK(hdr.dst_ref, nr, credit, ext, params, checksum_ok)
    return RJ(hdr.dst_ref, nr, credit, ext, params, checksum_ok)


# Fast paths (struct) for the data-path TPDUs, in their common shapes: no
# parameters, or only a checksum parameter first in the variable part. Any
# other shape falls back to the construct definition. Property tests prove
# both paths agree.

_S_DT_N = struct.Struct(">BBHB")
_S_DT_E = struct.Struct(">BBHI")
_S_AK_E = struct.Struct(">BBHIH")
_S_CK = struct.Struct(">BB")
_FastDecoder = Any


def _fast_checksum(raw: bytes, li: int, fixed: int) -> bool | int | None:
    """None: no params; True/False: checksum only, verdict; -1: other shape."""
    if li == fixed:
        return None
    if li == fixed + 4 and raw[fixed + 1] == ParamCode.CHECKSUM and raw[fixed + 2] == 2:
        return _checksum.verify(raw)
    return -1


def _fast_dt(ext: bool) -> _FastDecoder:
    s = _S_DT_E if ext else _S_DT_N
    fixed = 7 if ext else 4
    top = 0x80000000 if ext else 0x80

    def dec(raw: bytes, li: int) -> DT | None:
        ck = _fast_checksum(raw, li, fixed)
        if ck == -1:
            return None
        _, _, dst, eot_nr = s.unpack_from(raw)
        return DT(dst, eot_nr & (top - 1), bool(eot_nr & top), raw[li + 1 :], ext, (), ck)  # type: ignore[arg-type]

    return dec


def _fast_ak(ext: bool) -> _FastDecoder:
    fixed = 9 if ext else 4

    def dec(raw: bytes, li: int) -> AK | None:
        ck = _fast_checksum(raw, li, fixed)
        if ck == -1:
            return None
        if ext:
            _, _, dst, nr, cdt = _S_AK_E.unpack_from(raw)
            return AK(dst, nr & 0x7FFFFFFF, cdt, True, (), ck)  # type: ignore[arg-type]
        _, tc, dst, nr = _S_DT_N.unpack_from(raw)
        return AK(dst, nr & 0x7F, tc & 0x0F, False, (), ck)  # type: ignore[arg-type]

    return dec


def _fast_ea(ext: bool) -> _FastDecoder:
    s = _S_DT_E if ext else _S_DT_N
    fixed = 7 if ext else 4
    mask = 0x7FFFFFFF if ext else 0x7F

    def dec(raw: bytes, li: int) -> EA | None:
        ck = _fast_checksum(raw, li, fixed)
        if ck == -1:
            return None
        _, _, dst, nr = s.unpack_from(raw)
        return EA(dst, nr & mask, ext, (), ck)  # type: ignore[arg-type]

    return dec


_FAST_DECODERS: dict[tuple[str, bool], _FastDecoder] = {
    ("DT", False): _fast_dt(False),
    ("DT", True): _fast_dt(True),
    ("AK", False): _fast_ak(False),
    ("AK", True): _fast_ak(True),
    ("EA", False): _fast_ea(False),
    ("EA", True): _fast_ea(True),
}

# ---------------------------------------------------------------- encoding


def encode(tpdus: TPDU | Iterable[TPDU], *, checksum: bool = False) -> bytes:
    """Encode one TPDU or several concatenated into one datagram.

    Args:
        tpdus: the TPDUs; only the last may be one that carries user data
            (CR, CC, DR, DT, ED), since its data runs to the end.
        checksum: insert the class 4 checksum parameter (0xC3) in each TPDU
            (not in DT0, which belongs to classes 0/1).

    Raises:
        ValueError: a field out of range, too much user data, or a TPDU that
            carries data placed before another one.
    """
    if isinstance(tpdus, _ALL_TYPES):
        return encode_one(tpdus, checksum=checksum)
    items: Sequence[TPDU] = list(tpdus)
    for t in items[:-1]:
        if isinstance(t, _WITH_DATA):
            raise ValueError(f"{type(t).__name__} carries user data: it must come last")
    return b"".join(encode_one(t, checksum=checksum) for t in items)


def encode_one(tpdu: TPDU, *, checksum: bool = False, fast: bool = True) -> bytes:
    """Encode a single TPDU (see :func:`encode`)."""
    if fast and not tpdu.params:
        quick = _FAST_ENCODERS.get(type(tpdu))
        if quick is not None:
            return quick(tpdu, checksum)  # type: ignore[no-any-return]
    name, ext, header, data = _fields(tpdu)
    _check_data(name, data)
    if name == "DT0" and tpdu.params:
        raise ValueError("DT0 (classes 0/1) has no variable part: it cannot carry parameters")
    for p in tpdu.params:
        if isinstance(p, SelectiveAck) and p.extended != ext:
            raise ValueError("a SelectiveAck must use the format (normal/extended) of its TPDU")
    params = [{"code": p.code, "value": encode_param_value(p)} for p in tpdu.params]
    use_checksum = checksum and name != "DT0"
    if use_checksum:
        params.insert(0, {"code": ParamCode.CHECKSUM, "value": b"\x00\x00"})
    if name != "DT0":
        header["params"] = params
    obj: dict[str, Any] = {"header": header}
    if name in _HAS_DATA:
        obj["data"] = data
    try:
        raw = FORMATS[(name, ext)].build(obj)
    except ConstructError as exc:
        raise ValueError(f"cannot encode {tpdu!r}: {exc}") from None
    if raw[0] == 255:
        raise ValueError(f"header of {name} longer than 254 octets")
    if use_checksum:
        position = 1 + FIXED_LENGTH[(name, ext)] + 2
        buf = bytearray(raw)
        buf[position : position + 2] = _checksum.checksum_octets(buf, position)
        return bytes(buf)
    return bytes(raw)


def _check_data(name: str, data: bytes) -> None:
    limit = _DATA_LIMIT.get(name)
    if limit is not None and len(data) > limit:
        raise ValueError(f"{name} user data is limited to {limit} octets, got {len(data)}")


def _nr(value: int, ext: bool, *, eot: bool | None = None) -> int:
    mod = NR31_MOD if ext else NR7_MOD
    if not 0 <= value < mod:
        raise ValueError(f"sequence number {value} out of range for the format")
    if eot:
        return value | mod
    return value


def _credit_nibble(credit: int) -> int:
    if not 0 <= credit <= 15:
        raise ValueError(f"credit {credit} does not fit the normal format (0..15)")
    return credit


def _fields(tpdu: TPDU) -> tuple[str, bool, dict[str, Any], bytes]:
    """The construct fields of *tpdu*: (name, extended, header dict, user data)."""
    if isinstance(tpdu, (CR, CC)):
        name = "CR" if isinstance(tpdu, CR) else "CC"
        if not 0 <= tpdu.protocol_class <= 4 or not 0 <= tpdu.options <= 15:
            raise ValueError("class must be 0..4 and options 0..15")
        return (
            name,
            False,
            {
                "type_credit": (tpdu.code << 4) | _credit_nibble(tpdu.credit),
                "dst_ref": tpdu.dst_ref,
                "src_ref": tpdu.src_ref,
                "class_options": (tpdu.protocol_class << 4) | tpdu.options,
            },
            tpdu.data,
        )
    if isinstance(tpdu, DR):
        hdr = {"type_credit": 0x80, "dst_ref": tpdu.dst_ref, "src_ref": tpdu.src_ref}
        hdr["reason"] = tpdu.reason
        return "DR", False, hdr, tpdu.data
    if isinstance(tpdu, DC):
        return (
            "DC",
            False,
            {"type_credit": 0xC0, "dst_ref": tpdu.dst_ref, "src_ref": tpdu.src_ref},
            b"",
        )
    if isinstance(tpdu, ER):
        return "ER", False, {"type_credit": 0x70, "dst_ref": tpdu.dst_ref, "cause": tpdu.cause}, b""
    if isinstance(tpdu, DT0):
        return (
            "DT0",
            False,
            {"type_credit": 0xF0, "eot_nr": _nr(tpdu.nr, False, eot=tpdu.eot)},
            tpdu.data,
        )
    if isinstance(tpdu, (DT, ED)):
        name = "DT" if isinstance(tpdu, DT) else "ED"
        hdr = {
            "type_credit": tpdu.code << 4,
            "dst_ref": tpdu.dst_ref,
            "eot_nr": _nr(tpdu.nr, tpdu.extended, eot=tpdu.eot),
        }
        return name, tpdu.extended, hdr, tpdu.data
    if isinstance(tpdu, EA):
        hdr = {"type_credit": 0x20, "dst_ref": tpdu.dst_ref, "eot_nr": _nr(tpdu.nr, tpdu.extended)}
        return "EA", tpdu.extended, hdr, b""
    # AK, RJ
    name = "AK" if isinstance(tpdu, AK) else "RJ"
    if tpdu.extended:
        if not 0 <= tpdu.credit <= 0xFFFF:
            raise ValueError(f"credit {tpdu.credit} out of 0..65535")
        hdr = {
            "type_credit": tpdu.code << 4,
            "dst_ref": tpdu.dst_ref,
            "eot_nr": _nr(tpdu.nr, True),
            "credit": tpdu.credit,
        }
    else:
        hdr = {
            "type_credit": (tpdu.code << 4) | _credit_nibble(tpdu.credit),
            "dst_ref": tpdu.dst_ref,
            "eot_nr": _nr(tpdu.nr, False),
        }
    return name, tpdu.extended, hdr, b""


def _with_checksum(header: bytes, data: bytes, fixed: int) -> bytes:
    """Insert a checksum parameter after *fixed* header octets (LI included) and fill it."""
    buf = bytearray(header)
    buf[0] += 4
    buf[fixed:fixed] = b"\xc3\x02\x00\x00"
    buf += data
    buf[fixed + 2 : fixed + 4] = _checksum.checksum_octets(buf, fixed + 2)
    return bytes(buf)


def _ref(value: int) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"reference {value} out of 0..65535")
    return value


def _enc_dt(t: DT, checksum: bool) -> bytes:
    if t.extended:
        header = _S_DT_E.pack(7, 0xF0, _ref(t.dst_ref), _nr(t.nr, True, eot=t.eot))
    else:
        header = _S_DT_N.pack(4, 0xF0, _ref(t.dst_ref), _nr(t.nr, False, eot=t.eot))
    if checksum:
        return _with_checksum(header, t.data, len(header))
    return header + t.data


def _enc_ak(t: AK, checksum: bool) -> bytes:
    if t.extended:
        if not 0 <= t.credit <= 0xFFFF:
            raise ValueError(f"credit {t.credit} out of 0..65535")
        header = _S_AK_E.pack(9, 0x60, _ref(t.dst_ref), _nr(t.nr, True), t.credit)
    else:
        header = _S_DT_N.pack(4, 0x60 | _credit_nibble(t.credit), _ref(t.dst_ref), _nr(t.nr, False))
    if checksum:
        return _with_checksum(header, b"", len(header))
    return header


def _enc_ea(t: EA, checksum: bool) -> bytes:
    if t.extended:
        header = _S_DT_E.pack(7, 0x20, _ref(t.dst_ref), _nr(t.nr, True))
    else:
        header = _S_DT_N.pack(4, 0x20, _ref(t.dst_ref), _nr(t.nr, False))
    if checksum:
        return _with_checksum(header, b"", len(header))
    return header


_FAST_ENCODERS: dict[type, Any] = {DT: _enc_dt, AK: _enc_ak, EA: _enc_ea}
_ALL_TYPES = (CR, CC, DR, DC, DT, DT0, ED, AK, EA, RJ, ER)
