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
Pass ``extended=True/False`` when the connection's format is known. (A known
oddity, kept as is: a TPDU carrying a parameter of odd total length, such as
an AK with an odd-length unknown parameter, is then read in the wrong format.)

The checksum parameter (0xC3) is not kept in ``params``: ``encode(...,
checksum=True)`` inserts it first in the variable part and fills it in, and
``decode`` verifies it and reports the verdict in ``checksum_ok`` (``None``
when absent), a field that is not part of equality.

**One definition per TPDU.** Each TPDU is defined in one place: its dataclass
below, with its wire definition on top (:func:`~tp4emu.wire.defs.tpdu_def`:
the fixed-part fields of each format, variable part, user data and its limit,
the fields shown in descriptions). The construct definitions
(:mod:`tp4emu.wire.formats`), the fixed-part lengths, the mapping between the
dataclass and the construct container, the struct fast paths of every TPDU
type and :mod:`tp4emu.wire.describe`'s fields are all generated from it
(:mod:`tp4emu.wire.defs`); the properties of ``tests/test_wire_defs.py`` prove
the fast paths equal to the construct path.

To add a TPDU: write its dataclass here with ``@tpdu_def(...)`` (reusing the
:class:`~tp4emu.wire.defs.Field` kinds of ``defs.py``, or adding one there),
give it a ``code`` (:class:`~tp4emu.wire.constants.TPDUCode`), and name it in
the ``TPDU`` union and the ``__all__`` lists (here and in ``__init__.py``).
Nothing else is written per TPDU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

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
from .defs import (
    CAUSE,
    CLASS_OPTIONS,
    CREDIT16,
    DST_REF,
    EOT_NR7,
    EOT_NR31,
    NR7,
    NR31,
    REASON,
    SHOW_CAUSE,
    SHOW_CLASS,
    SHOW_CREDIT,
    SHOW_DST_REF,
    SHOW_DST_REF_IF_SET,
    SHOW_EOT,
    SHOW_FORMAT,
    SHOW_NR,
    SHOW_OPTIONS,
    SHOW_PROPOSED_FORMAT,
    SHOW_REASON,
    SHOW_SRC_REF,
    SRC_REF,
    TPDU_DEFS,
    TYPE,
    TYPE_CDT,
    Generated,
    TPDUDef,
    generate,
    tpdu_def,
)
from .errors import TPDUError
from .params import (
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    FlowControlConfirmation,
    Param,
    SubsequenceNumber,
    TpduSize,
    decode_param_in,
    encode_param_value,
    param_format,
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


@tpdu_def(
    normal=(TYPE_CDT, DST_REF, SRC_REF, CLASS_OPTIONS),
    data=True,
    data_limit=MAX_CR_CC_DATA,
    shown=(
        SHOW_DST_REF_IF_SET,
        SHOW_SRC_REF,
        SHOW_CLASS,
        SHOW_OPTIONS,
        SHOW_PROPOSED_FORMAT,
        SHOW_CREDIT,
    ),
)
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


@tpdu_def(
    normal=(TYPE_CDT, DST_REF, SRC_REF, CLASS_OPTIONS),
    data=True,
    data_limit=MAX_CR_CC_DATA,
    shown=(SHOW_DST_REF, SHOW_SRC_REF, SHOW_CLASS, SHOW_OPTIONS, SHOW_PROPOSED_FORMAT, SHOW_CREDIT),
)
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


@tpdu_def(
    normal=(TYPE, DST_REF, SRC_REF, REASON),
    data=True,
    data_limit=MAX_DR_DATA,
    shown=(SHOW_DST_REF, SHOW_SRC_REF, SHOW_REASON),
)
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


@tpdu_def(normal=(TYPE, DST_REF, SRC_REF), shown=(SHOW_DST_REF, SHOW_SRC_REF))
@dataclass(frozen=True, slots=True)
class DC(_Base):
    """Disconnect confirm."""

    dst_ref: int
    src_ref: int
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DC


@tpdu_def(
    normal=(TYPE, DST_REF, EOT_NR7),
    extended=(TYPE, DST_REF, EOT_NR31),
    data=True,
    shown=(SHOW_DST_REF, SHOW_FORMAT, SHOW_NR, SHOW_EOT),
)
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


@tpdu_def(normal=(TYPE, EOT_NR7), variable_part=False, data=True, shown=(SHOW_NR, SHOW_EOT))
@dataclass(frozen=True, slots=True)
class DT0(_Base):
    """Data in classes 0 and 1 (LI = 2, no DST-REF): used over RFC 1006."""

    nr: int = 0
    eot: bool = True
    data: bytes = b""
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.DT


@tpdu_def(
    normal=(TYPE, DST_REF, EOT_NR7),
    extended=(TYPE, DST_REF, EOT_NR31),
    data=True,
    data_limit=MAX_ED_DATA,
    shown=(SHOW_DST_REF, SHOW_FORMAT, SHOW_NR, SHOW_EOT),
)
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
class _Acknowledgement(_Base):
    """The fields of AK and RJ: next expected TPDU-NR and credit (one shape, two codes)."""

    dst_ref: int
    nr: int
    credit: int
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)


_ACK_SHAPE = tpdu_def(
    normal=(TYPE_CDT, DST_REF, NR7),
    extended=(TYPE, DST_REF, NR31, CREDIT16),
    shown=(SHOW_DST_REF, SHOW_FORMAT, SHOW_NR, SHOW_CREDIT),
)


@_ACK_SHAPE
@dataclass(frozen=True, slots=True)
class AK(_Acknowledgement):
    """Data acknowledgement: next expected TPDU-NR and credit."""

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


@tpdu_def(
    normal=(TYPE, DST_REF, NR7),
    extended=(TYPE, DST_REF, NR31),
    shown=(SHOW_DST_REF, SHOW_FORMAT, SHOW_NR),
)
@dataclass(frozen=True, slots=True)
class EA(_Base):
    """Expedited data acknowledgement."""

    dst_ref: int
    nr: int
    extended: bool = False
    params: tuple[Param, ...] = ()
    checksum_ok: bool | None = field(default=None, compare=False)
    code: ClassVar[TPDUCode] = TPDUCode.EA


@_ACK_SHAPE
@dataclass(frozen=True, slots=True)
class RJ(_Acknowledgement):
    """Reject (classes 1 and 3)."""

    code: ClassVar[TPDUCode] = TPDUCode.RJ


@tpdu_def(normal=(TYPE, DST_REF, CAUSE), shown=(SHOW_DST_REF, SHOW_CAUSE))
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

# ---------------------------------------------------------------- generated from the definitions

_DEFS: dict[type, TPDUDef] = {d.cls: d for d in TPDU_DEFS}
"""The definition of each TPDU class."""
_GENERATED: dict[type, Generated] = {d.cls: generate(d) for d in TPDU_DEFS}
"""The functions generated from each definition (their source: ``.source``)."""
_ALL_TYPES = tuple(_DEFS)
_WITH_DATA = tuple(d.cls for d in TPDU_DEFS if d.data)

_FAST_DECODERS: dict[tuple[str, bool], Any] = {
    (d.name, ext): _GENERATED[d.cls].fast_decode[ext] for d in TPDU_DEFS for ext, _ in d.formats()
}
"""struct decoder of each format, ``(raw, li) -> TPDU | None`` (None: take the construct path).

*raw* is the TPDU from its LI octet to the end of the datagram (bytes or a memoryview)."""
_FAST_ENCODERS: dict[type, Any] = {d.cls: _GENERATED[d.cls].fast_encode for d in TPDU_DEFS}
"""struct encoder of each TPDU type, ``(tpdu, checksum) -> bytes | None`` (None: use construct)."""


class _Code:
    """What the decoder needs of one TPDU code, from the definitions sharing it."""

    __slots__ = ("by_li", "default", "name", "nibble")

    def __init__(self, defs: list[TPDUDef]) -> None:
        # A TPDU without a variable part is told from the others of its code
        # by its LI, which is then exactly its fixed part (DT0: LI 2).
        self.by_li = {d.fixed_length(False): _Decoding(d) for d in defs if not d.variable_part}
        [main] = [d for d in defs if d.variable_part]
        self.default = _Decoding(main)
        self.name = main.code.name
        self.nibble = any(d.credit_in_code for d in defs)


class _Decoding:
    """One TPDU definition, as the decoder reads it."""

    __slots__ = ("build", "data", "fast", "fixed", "limit", "name", "numbered", "rejects")

    def __init__(self, defn: TPDUDef) -> None:
        generated = _GENERATED[defn.cls]
        self.name = defn.name
        self.numbered = defn.numbered
        self.data = defn.data
        self.limit = defn.data_limit
        self.fixed = tuple(defn.fixed_length(ext) for ext, _ in defn.formats())
        self.fast = generated.fast_decode
        self.build = generated.build
        self.rejects = tuple(
            tuple(f for f in fixed if f.reject is not None) for _, fixed in defn.formats()
        )


def _codes() -> dict[int, _Code]:
    by_code: dict[int, list[TPDUDef]] = {}
    for d in TPDU_DEFS:
        by_code.setdefault(d.code, []).append(d)
    return {code: _Code(defs) for code, defs in by_code.items()}


_CODES = _codes()

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
    type_octet = data[offset + 1]
    code = _CODES.get(type_octet >> 4)
    if code is None:
        raise TPDUError(
            f"unknown TPDU code 0x{type_octet >> 4:X}",
            cause=ERCause.INVALID_TPDU_TYPE,
            offset=offset,
            header=data[offset:end],
        )
    if type_octet & 0x0F and not code.nibble:
        raise TPDUError(
            f"TPDU type octet 0x{type_octet:02X}: low nibble must be 0 for {code.name}",
            cause=ERCause.INVALID_TPDU_TYPE,
            offset=offset,
            header=data[offset:end],
        )
    tpdu_def = code.by_li.get(li, code.default) if code.by_li else code.default
    # Known oddity, kept as is: without *extended*, the format of DT/ED/AK/EA/RJ
    # is read from the parity of the LI (normal fixed parts are even, extended
    # ones odd, and the parameters these TPDUs carry have an even length), so
    # a TPDU with an odd-length unknown parameter (an AK with one) is misread.
    ext = (bool(li & 1) if extended is None else extended) if tpdu_def.numbered else False
    index = 1 if ext else 0
    if li < tpdu_def.fixed[index]:
        raise TPDUError(
            f"LI {li} shorter than the fixed part of {tpdu_def.name}",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=data[offset:end],
        )
    stop = total if tpdu_def.data else end
    if fast:
        # The TPDU without a copy: the datagram itself, or a view of it (the
        # fast decoder copies the user data out, once).
        view = data if offset == 0 and stop == total else memoryview(data)[offset:stop]
        tpdu = tpdu_def.fast[index](view, li)
        if tpdu is not None:
            return tpdu, stop
    return _decode_construct(tpdu_def, ext, data[offset:stop], li, offset), stop


def _decode_construct(tpdu_def: _Decoding, ext: bool, raw: bytes, li: int, offset: int) -> TPDU:
    """Decode *raw* (one TPDU from its LI) with the construct definition."""
    name = tpdu_def.name
    header = raw[: li + 1]
    index = 1 if ext else 0
    try:
        parsed = FORMATS[(name, bool(ext))].parse(raw)
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
            params.append(decode_param_in(name, p.code, p.value, extended=ext))
        except TPDUError as exc:
            exc.offset = offset
            exc.header = header
            raise
    user_data: bytes = parsed.get("data", b"")
    limit = tpdu_def.limit
    if limit is not None and len(user_data) > limit:
        raise TPDUError(
            f"{name} carries {len(user_data)} octets of user data, more than {limit}",
            reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,  # netiso: E_TP_LENGTH_INVAL
            cause=ERCause.INVALID_PARAMETER_VALUE,
            offset=offset,
            header=header,
        )
    for f in tpdu_def.rejects[index]:
        assert f.reject is not None
        message = f.reject(hdr[f.name])
        if message is not None:
            raise TPDUError(
                message,
                reason=f.reject_reason,
                cause=ERCause.INVALID_PARAMETER_VALUE,
                offset=offset,
                header=header,
            )
    tpdu: TPDU = tpdu_def.build[index](hdr, tuple(params), user_data, checksum_ok)
    return tpdu


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
        return encode_one(cast(TPDU, tpdus), checksum=checksum)
    items: Sequence[TPDU] = list(cast(Iterable[TPDU], tpdus))
    for t in items[:-1]:
        if isinstance(t, _WITH_DATA):
            raise ValueError(f"{type(t).__name__} carries user data: it must come last")
    return b"".join(encode_one(t, checksum=checksum) for t in items)


def encode_one(tpdu: TPDU, *, checksum: bool = False, fast: bool = True) -> bytes:
    """Encode a single TPDU (see :func:`encode`)."""
    if fast:
        quick = _FAST_ENCODERS.get(type(tpdu))
        if quick is not None:
            raw: bytes | None = quick(tpdu, checksum)
            if raw is not None:
                return raw
    tpdu_def = _DEFS[type(tpdu)]
    name = tpdu_def.name
    ext = tpdu_def.numbered and bool(tpdu.extended)  # type: ignore[union-attr]
    header = _GENERATED[type(tpdu)].fields[1 if ext else 0](tpdu)
    data: bytes = tpdu.data if tpdu_def.data else b""  # type: ignore[union-attr]
    limit = tpdu_def.data_limit
    if limit is not None and len(data) > limit:
        raise ValueError(f"{name} user data is limited to {limit} octets, got {len(data)}")
    if not tpdu_def.variable_part and tpdu.params:
        raise ValueError(f"{name} (classes 0/1) has no variable part: it cannot carry parameters")
    for p in tpdu.params:
        if param_format(p) not in (None, ext):
            raise ValueError(
                f"a {type(p).__name__} must use the format (normal/extended) of its TPDU"
            )
    params = [{"code": p.code, "value": encode_param_value(p, fast=fast)} for p in tpdu.params]
    use_checksum = checksum and tpdu_def.variable_part
    if use_checksum:
        params.insert(0, {"code": ParamCode.CHECKSUM, "value": b"\x00\x00"})
    if tpdu_def.variable_part:
        header["params"] = params
    obj: dict[str, Any] = {"header": header}
    if tpdu_def.data:
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


# The construct definitions are built from the TPDU definitions above.
from .formats import FIXED_LENGTH, FORMATS  # noqa: E402
