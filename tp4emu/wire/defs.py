"""The vocabulary of the wire definitions, and the code generated from them.

Every TPDU and every parameter is defined **once**, as a dataclass with its wire
definition on top of it, in the spirit of smoltcp's ``wire/`` (a ``Repr`` whose
``parse`` and ``emit`` stand side by side):

* a TPDU: a dataclass in :mod:`tp4emu.wire.tpdu` decorated with
  :func:`tpdu_def` — its code (the class's ``code``), the fields of its fixed
  part in the normal and (for the numbered TPDUs) extended formats, whether it
  has a variable part and user data (and the data limit), and the fields
  :mod:`tp4emu.wire.describe` shows, in order;
* a parameter: a dataclass in :mod:`tp4emu.wire.params` decorated with
  :func:`param_def` — its code (the class's ``code``), name, the construct
  definition of its value, the TPDUs it belongs in, how it is shown.

From these, and nothing else, come: the construct definitions
(:data:`tp4emu.wire.formats.FORMATS`), the fixed-part lengths
(:data:`~tp4emu.wire.formats.FIXED_LENGTH`), the mapping between the
dataclass and the construct containers both ways, the :mod:`struct` fast paths
(:class:`Generated`, for every TPDU type, with or without parameters), the
decoding and encoding of the parameter values (construct, and the plain Python
of :func:`compile_value` for the fast paths) and the descriptions of
:mod:`tp4emu.wire.describe`. The property tests prove each fast path equal to
the construct path (``tests/test_wire_defs.py``, ``tests/test_wire_params_fast.py``).

A fixed-part :class:`Field` says how its octets map to attributes of the
dataclass with two Python expressions: ``encode`` (from the TPDU ``t``; it may
raise :class:`ValueError`) and ``decode`` (one per attribute, from the wire
value ``v``). Both the construct path and the struct path are generated from
these expressions (the generated source is kept in :attr:`Generated.source`),
so a field's meaning is written once. The range of the wire value itself
(16 bits for a reference...) is the field's width: construct and struct both
enforce it; the fast encoder falls back to the construct path when struct
refuses a value, so both report the same error.

Adding a field kind (a new fixed-part layout) is the only change made here;
adding a TPDU or a parameter is a decorated dataclass in ``tpdu.py`` or
``params.py``, plus its name in the ``TPDU``/``Param`` union and ``__all__``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from construct import (
    Array,
    BytesInteger,
    Construct,
    ExprAdapter,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int32ub,
    Renamed,
    Struct,
    Terminated,
)

from . import checksum as _checksum
from .constants import DRReason, ParamCode, TPDUCode

__all__ = [
    "CAUSE",
    "CLASS_OPTIONS",
    "CREDIT16",
    "DST_REF",
    "EOT_NR7",
    "EOT_NR31",
    "NR7",
    "NR31",
    "PARAM_DEFS",
    "REASON",
    "SHOW_CAUSE",
    "SHOW_CLASS",
    "SHOW_CREDIT",
    "SHOW_DST_REF",
    "SHOW_DST_REF_IF_SET",
    "SHOW_EOT",
    "SHOW_FORMAT",
    "SHOW_NR",
    "SHOW_OPTIONS",
    "SHOW_PROPOSED_FORMAT",
    "SHOW_REASON",
    "SHOW_SRC_REF",
    "SRC_REF",
    "TPDU_DEFS",
    "TYPE",
    "TYPE_CDT",
    "Field",
    "ValueCodec",
    "Generated",
    "ParamDef",
    "Shown",
    "TPDUDef",
    "compile_value",
    "generate",
    "param_def",
    "tpdu_def",
]

C = TypeVar("C", bound=type)

# ---------------------------------------------------------------- fixed-part fields

_CONSTRUCT_TYPES: Final = {"B": Int8ub, "H": Int16ub, "I": Int32ub}


@dataclass(frozen=True)
class Field:
    """One field of a TPDU's fixed part (the TPDU code octet included).

    Attributes:
        name: the field's name in the construct container.
        fmt: its :mod:`struct` code, big-endian: ``B``, ``H`` or ``I``.
        attrs: the dataclass attributes it carries.
        encode: a Python expression of the wire value, from the TPDU ``t``
            (and ``code``, the TPDU code shifted into the high nibble); it
            raises :class:`ValueError` for attribute values the field cannot
            carry.
        decode: for each attribute, a Python expression of its value from
            the wire value ``v``.
        reject: on decoding, a wire value the standard forbids: returns the
            error message (or None when the value is fine).
        reject_reason: the DR reason of such a rejection.
        first: on encoding, validated before the other fields (which error
            a TPDU with several bad attributes reports).
    """

    name: str
    fmt: str
    attrs: tuple[str, ...]
    encode: str
    decode: tuple[str, ...]
    reject: Callable[[int], str | None] | None = None
    reject_reason: DRReason = DRReason.PROTOCOL_ERROR
    first: bool = False

    @property
    def size(self) -> int:
        """Octets of the field."""
        return struct.calcsize(">" + self.fmt)

    @property
    def construct(self) -> Construct:
        """The construct definition of the field."""
        return self.name / _CONSTRUCT_TYPES[self.fmt]


def _nr(value: int, mod: int, eot: bool = False) -> int:
    """A TPDU-NR below *mod*, with the EOT bit (*mod* itself) when *eot*."""
    if not 0 <= value < mod:
        raise ValueError(f"sequence number {value} out of range for the format")
    return value | mod if eot else value


def _credit4(credit: int) -> int:
    if not 0 <= credit <= 15:
        raise ValueError(f"credit {credit} does not fit the normal format (0..15)")
    return credit


def _credit16(credit: int) -> int:
    if not 0 <= credit <= 0xFFFF:
        raise ValueError(f"credit {credit} out of 0..65535")
    return credit


def _class_options(protocol_class: int, options: int) -> int:
    if not 0 <= protocol_class <= 4 or not 0 <= options <= 15:
        raise ValueError("class must be 0..4 and options 0..15")
    return (protocol_class << 4) | options


def _no_such_class(value: int) -> str | None:
    if value >> 4 > 4:
        return f"protocol class {value >> 4} does not exist (0..4)"
    return None


TYPE = Field("type_credit", "B", (), "code", ())
"""The TPDU code octet, low nibble 0 (ignored on decoding where the code allows CDT)."""
TYPE_CDT = Field("type_credit", "B", ("credit",), "code | _credit4(t.credit)", ("v & 0x0F",))
"""The TPDU code octet with the credit (CDT) in its low nibble."""
DST_REF = Field("dst_ref", "H", ("dst_ref",), "t.dst_ref", ("v",))
SRC_REF = Field("src_ref", "H", ("src_ref",), "t.src_ref", ("v",))
CLASS_OPTIONS = Field(
    "class_options",
    "B",
    ("protocol_class", "options"),
    "_class_options(t.protocol_class, t.options)",
    ("v >> 4", "v & 0x0F"),
    reject=_no_such_class,
    reject_reason=DRReason.NEGOTIATION_FAILED,
    first=True,
)
"""Class (high nibble, 0..4) and options (low nibble) of CR and CC."""
REASON = Field("reason", "B", ("reason",), "t.reason", ("v",))
CAUSE = Field("cause", "B", ("cause",), "t.cause", ("v",))
EOT_NR7 = Field(
    "eot_nr", "B", ("nr", "eot"), "_nr(t.nr, 0x80, t.eot)", ("v & 0x7F", "bool(v & 0x80)")
)
"""EOT (bit 8) and a 7-bit TPDU-NR: DT and ED, normal format."""
EOT_NR31 = Field(
    "eot_nr",
    "I",
    ("nr", "eot"),
    "_nr(t.nr, 0x80000000, t.eot)",
    ("v & 0x7FFFFFFF", "bool(v & 0x80000000)"),
)
"""EOT (bit 32) and a 31-bit TPDU-NR: DT and ED, extended format."""
# YR-TU-NR: bit 8 (or 32) is 0; it is masked on decoding, as Wireshark does.
NR7 = Field("eot_nr", "B", ("nr",), "_nr(t.nr, 0x80)", ("v & 0x7F",))
NR31 = Field("eot_nr", "I", ("nr",), "_nr(t.nr, 0x80000000)", ("v & 0x7FFFFFFF",))
CREDIT16 = Field("credit", "H", ("credit",), "_credit16(t.credit)", ("v",), first=True)
"""The 16-bit credit of AK and RJ in the extended format."""

# ---------------------------------------------------------------- description


@dataclass(frozen=True)
class Shown:
    """One attribute of a TPDU as :mod:`tp4emu.wire.describe` shows it.

    Attributes:
        key: the key in :func:`~tp4emu.wire.describe.describe`'s dict.
        attr: the TPDU attribute.
        token: the key of the ``key=value`` token of
            :func:`~tp4emu.wire.describe.format_tpdu`, or None for none.
        kind: how the value is rendered: ``int``, ``ref`` (0x%04x), ``bool``
            (a token 0/1), ``reason`` and ``cause`` (code and name),
            ``class-options`` (with the flag names), ``format`` (the token
            ``format=extended``).
        if_zero: whether the token is shown when the value is 0 or False.
    """

    key: str
    attr: str
    token: str | None
    kind: str = "int"
    if_zero: bool = True


SHOW_DST_REF = Shown("dst_ref", "dst_ref", "dst-ref", "ref")
SHOW_DST_REF_IF_SET = Shown("dst_ref", "dst_ref", "dst-ref", "ref", if_zero=False)
SHOW_SRC_REF = Shown("src_ref", "src_ref", "src-ref", "ref")
SHOW_CLASS = Shown("class", "protocol_class", "class")
SHOW_OPTIONS = Shown("options", "options", "class-options", "class-options", if_zero=False)
SHOW_PROPOSED_FORMAT = Shown("extended", "extended", None)
SHOW_FORMAT = Shown("extended", "extended", "format", "format", if_zero=False)
SHOW_CREDIT = Shown("credit", "credit", "credit")
SHOW_NR = Shown("nr", "nr", "nr")
SHOW_EOT = Shown("eot", "eot", "eot", "bool")
SHOW_REASON = Shown("reason", "reason", "reason", "reason")
SHOW_CAUSE = Shown("cause", "cause", "cause", "cause")

# ---------------------------------------------------------------- TPDUs

#: Every TPDU definition, in the order of definition.
TPDU_DEFS: list[TPDUDef] = []


@dataclass(frozen=True)
class TPDUDef:
    """The wire definition of one TPDU type (see :func:`tpdu_def`)."""

    cls: type
    code: TPDUCode
    normal: tuple[Field, ...]
    extended: tuple[Field, ...] | None
    variable_part: bool
    data: bool
    data_limit: int | None
    shown: tuple[Shown, ...]

    @property
    def name(self) -> str:
        """The TPDU's name: its class name (``DT0`` for the class 0/1 DT)."""
        return self.cls.__name__

    @property
    def numbered(self) -> bool:
        """Whether it has an extended format (DT, ED, AK, EA, RJ)."""
        return self.extended is not None

    def formats(self) -> Iterable[tuple[bool, tuple[Field, ...]]]:
        """``(extended, fields)`` of each format."""
        yield False, self.normal
        if self.extended is not None:
            yield True, self.extended

    def fixed_length(self, extended: bool) -> int:
        """The smallest LI of a format: the code octet and the fixed part."""
        fixed = self.extended if extended and self.extended is not None else self.normal
        return sum(f.size for f in fixed)

    @property
    def credit_in_code(self) -> bool:
        """Whether the low nibble of the code octet may be nonzero (CDT)."""
        return any(fixed[0] is TYPE_CDT for _, fixed in self.formats())


def tpdu_def(
    *,
    normal: tuple[Field, ...],
    extended: tuple[Field, ...] | None = None,
    variable_part: bool = True,
    data: bool = False,
    data_limit: int | None = None,
    shown: tuple[Shown, ...],
) -> Callable[[C], C]:
    """Register a TPDU dataclass with its wire definition.

    Args:
        normal: the fixed part in the normal format, from the code octet
            (:data:`TYPE` or :data:`TYPE_CDT`) on.
        extended: the fixed part in the extended format (numbered TPDUs).
        variable_part: whether it has parameters; a TPDU without one is told
            from another TPDU with its code by its LI, which then equals its
            fixed part (the class 0/1 DT).
        data: whether user data follows the header (to the end of the datagram).
        data_limit: most octets of user data, None for no limit.
        shown: the attributes :mod:`tp4emu.wire.describe` shows, in order.

    The dataclass gives the code (its ``code`` class variable) and the name;
    its fields must be exactly those the wire definition carries (checked here).
    """

    def register(cls: C) -> C:
        spec = TPDUDef(
            cls, vars(cls)["code"], normal, extended, variable_part, data, data_limit, shown
        )
        names = {f.name for f in fields(cls)}
        carried = {"params", "checksum_ok"} | ({"data"} if data else set())
        if extended is not None:
            carried.add("extended")
        for _, fixed in spec.formats():
            attrs = carried | {a for f in fixed for a in f.attrs}
            if attrs != names:
                raise TypeError(f"{cls.__name__}: fields {sorted(names)} != wire {sorted(attrs)}")
        for item in shown:
            if not hasattr(cls, item.attr):
                raise TypeError(f"{cls.__name__} has no attribute {item.attr!r} to show")
        TPDU_DEFS.append(spec)
        return cls

    return register


# ---------------------------------------------------------------- code generation


@dataclass(frozen=True)
class Generated:
    """The functions generated from a TPDU definition.

    The tuples hold one function per format: index 0 normal, 1 extended.

    Attributes:
        fast_decode: ``(raw, li) -> TPDU | None``: struct decoding of the TPDU
            (*raw* from its LI octet, with the user data; bytes or a
            memoryview), its parameters read without construct
            (:func:`~tp4emu.wire.params.decode_param_fast`), or None where
            the construct path raises (a parameter running past the header,
            a value refused, too much data...): that path then reports it.
        fast_encode: ``(tpdu, checksum) -> bytes | None``: struct encoding of
            a TPDU, its parameters included
            (:func:`~tp4emu.wire.params.encode_param_fast`), or None when
            struct refuses a value or a parameter cannot be encoded (then the
            construct path reports the error).
        build: ``(header container, params, data, checksum_ok) -> TPDU``:
            the dataclass from the construct container.
        fields: ``tpdu -> dict``: the construct header container of *tpdu*
            (validating its attributes), without parameters.
        source: the generated Python source.
    """

    fast_decode: tuple[Callable[[bytes | memoryview, int], Any], ...]
    fast_encode: Callable[[Any, bool], bytes | None]
    build: tuple[Callable[[Any, tuple[Any, ...], bytes, bool | None], Any], ...]
    fields: tuple[Callable[[Any], dict[str, Any]], ...]
    source: str


_JOIN_BELOW: Final = 4096
"""Below this much user data, header and data are joined before the checksum (the
copies cost less than a second checksum call); from it on, they are checksummed
apart and the data copied once."""


def _with_checksum(header: bytes, data: bytes, fixed: int) -> bytes:
    """Insert a checksum parameter after *fixed* header octets (LI included) and fill it.

    With :data:`_JOIN_BELOW` octets of *data* or more, the checksum is computed
    over the header and *data* apart
    (:func:`~tp4emu.wire.checksum.checksum_octets_of`): *data* is copied
    once, into the result.
    """
    head = bytearray(header)
    head[0] += 4
    head[fixed:fixed] = b"\xc3\x02\x00\x00"
    return _filled(head, data, fixed + 2)


def _filled(head: bytearray, data: bytes, position: int) -> bytes:
    """*head* (checksum octets zero at *position*) with the checksum filled, then *data*."""
    if len(data) < _JOIN_BELOW:
        head += data
        head[position : position + 2] = _checksum.checksum_octets(head, position)
        return bytes(head)
    head[position : position + 2] = _checksum.checksum_octets_of(head, data, position)
    return bytes(head) + data


def _with_params(
    header: bytes,
    params: tuple[Any, ...],
    data: bytes,
    checksum: bool,
    fixed: int,
    extended: bool,
    encode_param: Callable[[Any, bool], bytes | None],
) -> bytes | None:
    """*header* (a fixed part) with a variable part: the checksum first when
    *checksum*, then *params*; then *data*. None where the construct path
    would raise (a value refused or too long, a header over 254 octets...)."""
    parts = [header, b"\xc3\x02\x00\x00"] if checksum else [header]
    for p in params:
        octets = encode_param(p, extended)
        if octets is None:
            return None
        parts.append(octets)
    head = bytearray(b"".join(parts))
    if len(head) > 255:
        return None
    head[0] = len(head) - 1
    if checksum:
        return _filled(head, data, fixed + 2)
    return bytes(head) + data


def _read_params(
    raw: bytes,
    start: int,
    end: int,
    tpdu: str,
    extended: bool,
    decode_param: Callable[[str, int, bytes, bool], Any],
) -> tuple[tuple[Any, ...], bool | None] | None:
    """The parameters of ``raw[start:end]`` (a variable part) and the checksum verdict
    (the first checksum parameter's: ``None`` without one), as the construct path
    reads them; None where it raises (a parameter running past *end*, a value
    refused) or *decode_param* declines."""
    params = []
    checksum_ok: bool | None = None
    i = start
    while i < end:
        if i + 2 > end:
            return None
        j = i + 2 + raw[i + 1]
        if j > end:
            return None
        code = raw[i]
        if code == ParamCode.CHECKSUM:
            if checksum_ok is None:
                checksum_ok = j - i == 4 and _checksum.verify(raw)
        else:
            param = decode_param(tpdu, code, bytes(raw[i + 2 : j]), extended)
            if param is None:
                return None
            params.append(param)
        i = j
    return tuple(params), checksum_ok


def _expr(expr: str, value: str, code: int) -> str:
    """*expr* with the wire value ``v`` named *value* and ``code`` a literal."""
    return re.sub(r"\bcode\b", f"0x{code:02X}", re.sub(r"\bv\b", value, expr))


_HELPERS: Final = "_nr=_nr, _credit4=_credit4, _credit16=_credit16, _class_options=_class_options"


def _format_source(spec: TPDUDef, ext: int, fixed: tuple[Field, ...]) -> str:
    """The source of fast_decode_<ext>, build_<ext>, fields_<ext> and encode_<ext>."""
    length = spec.fixed_length(bool(ext))
    code = spec.code << 4
    values = [f"v{i}" for i in range(len(fixed))]
    decoded: dict[str, str] = {}
    for var, f in zip(values, fixed, strict=True):
        for attr, expr in zip(f.attrs, f.decode, strict=True):
            decoded[attr] = _expr(expr, var, code)

    def construction(data: str, params: str, checksum_ok: str) -> str:
        known = {"data": data, "params": params, "checksum_ok": checksum_ok}
        if spec.numbered:
            known["extended"] = repr(bool(ext))
        return (
            "_cls("
            + ", ".join(decoded.get(f.name) or known[f.name] for f in fields(spec.cls))
            + ")"
        )

    lines = [
        f"def fast_decode_{ext}(raw, li, _unpack=_s{ext}.unpack_from, _verify=_verify,"
        " _read_params=_read_params, _decode_param=_decode_param):"
    ]
    if spec.variable_part:
        lines += [
            f"    if li == {length}:",
            "        ck = None",
            "        params = ()",
            f"    elif li == {length + 4} and raw[{length + 1}] == {ParamCode.CHECKSUM:#x}"
            f" and raw[{length + 2}] == 2:",
            "        ck = _verify(raw)",
            "        params = ()",
            "    else:",
            f"        got = _read_params(raw, {length + 1}, li + 1, {spec.name!r}, {bool(ext)},"
            " _decode_param)",
            "        if got is None:",
            "            return None",
            "        params, ck = got",
        ]
    else:
        lines += [
            f"    if li != {length}:",
            "        return None",
            "    ck = None",
            "    params = ()",
        ]
    if spec.data_limit is not None:
        lines += [f"    if len(raw) - li - 1 > {spec.data_limit}:", "        return None"]
    lines.append(f"    _, {', '.join(values)} = _unpack(raw)")
    for i, f in enumerate(fixed):
        if f.reject is not None:
            lines += [f"    if _reject{ext}_{i}({values[i]}) is not None:", "        return None"]
    data = "bytes(raw[li + 1 :])" if spec.data else "b''"
    lines.append(f"    return {construction(data, 'params', 'ck')}")
    lines.append("")

    lines.append(f"def build_{ext}(hdr, params, data, checksum_ok):")
    lines += [f"    {var} = hdr.{f.name}" for var, f in zip(values, fixed, strict=True)]
    lines.append(f"    return {construction('data', 'params', 'checksum_ok')}")
    lines.append("")

    lines.append(f"def fields_{ext}(t, {_HELPERS}):")
    early, encoded = _encoded(spec, fixed)
    lines += ["    " + line for line in early]
    pairs = ", ".join(f"{f.name!r}: {e}" for f, e in zip(fixed, encoded, strict=True))
    lines.append(f"    return {{{pairs}}}")
    lines.append("")

    return "\n".join(lines)


def _encoded(spec: TPDUDef, fixed: tuple[Field, ...]) -> tuple[list[str], list[str]]:
    """Statements validating the ``first`` fields, and the expression of each field."""
    early = []
    encoded = []
    for i, f in enumerate(fixed):
        expr = _expr(f.encode, "v", spec.code << 4)
        if f.first:
            early.append(f"a{i} = {expr}")
            expr = f"a{i}"
        encoded.append(expr)
    return early, encoded


def _encode_lines(spec: TPDUDef, ext: int, fixed: tuple[Field, ...]) -> list[str]:
    """The body of fast_encode for one format."""
    length = spec.fixed_length(bool(ext))
    early, encoded = _encoded(spec, fixed)
    tail = "t.data" if spec.data else "b''"
    lines = [
        *early,
        "try:",
        f"    header = _pack{ext}({length}, {', '.join(encoded)})",
        "except _struct_error:",
        "    return None",
    ]
    if spec.data_limit is not None:
        lines += [
            f"if len(t.data) > {spec.data_limit}:",
            f"    raise ValueError(f'{spec.name} user data is limited to {spec.data_limit}"
            " octets, got {len(t.data)}')",
        ]
    if spec.variable_part:
        lines += [
            "if t.params:",
            f"    return _with_params(header, t.params, {tail}, checksum, {length + 1},"
            f" {bool(ext)}, _encode_param)",
            "if checksum:",
            f"    return _with_checksum(header, {tail}, {length + 1})",
        ]
    else:
        lines += ["if t.params:", "    return None"]
    lines.append(f"return header + {tail}" if spec.data else "return header")
    return lines


def generate(spec: TPDUDef) -> Generated:
    """Generate the codec functions of *spec* (see :class:`Generated`)."""
    from .params import decode_param_fast, encode_param_fast  # defined after this module

    formats = list(spec.formats())
    namespace: dict[str, Any] = {
        "_cls": spec.cls,
        "_struct_error": struct.error,
        "_verify": _checksum.verify,
        "_with_checksum": _with_checksum,
        "_with_params": _with_params,
        "_read_params": _read_params,
        "_decode_param": decode_param_fast,
        "_encode_param": encode_param_fast,
        "_nr": _nr,
        "_credit4": _credit4,
        "_credit16": _credit16,
        "_class_options": _class_options,
    }
    parts = []
    for ext, fixed in formats:
        namespace[f"_s{int(ext)}"] = struct.Struct(">B" + "".join(f.fmt for f in fixed))
        for i, f in enumerate(fixed):
            if f.reject is not None:
                namespace[f"_reject{int(ext)}_{i}"] = f.reject
        parts.append(_format_source(spec, int(ext), fixed))
    packs = ", ".join(f"_pack{int(ext)}=_s{int(ext)}.pack" for ext, _ in formats)
    encode = [
        f"def fast_encode(t, checksum, {packs}, {_HELPERS},"
        " _with_params=_with_params, _encode_param=_encode_param):"
    ]
    if spec.numbered:
        encode.append("    if t.extended:")
        encode += [" " * 8 + line for line in _encode_lines(spec, 1, formats[1][1])]
    encode += [" " * 4 + line for line in _encode_lines(spec, 0, formats[0][1])]
    parts.append("\n".join(encode) + "\n")
    source = "\n".join(parts)
    exec(compile(source, f"<wire definition of {spec.name}>", "exec"), namespace)
    n = range(len(formats))
    return Generated(
        tuple(namespace[f"fast_decode_{i}"] for i in n),
        namespace["fast_encode"],
        tuple(namespace[f"build_{i}"] for i in n),
        tuple(namespace[f"fields_{i}"] for i in n),
        source,
    )


# ---------------------------------------------------------------- parameters

#: Every parameter definition, in the order of definition.
PARAM_DEFS: list[ParamDef] = []


@dataclass(frozen=True)
class ParamDef:
    """The wire definition of one parameter type (see :func:`param_def`)."""

    cls: type
    code: int | None
    name: str
    value: Construct
    value_extended: Construct | None
    where: frozenset[str]
    token: str
    shown: str
    derived: tuple[str, ...]
    lengths: Container[int] | None
    check: Callable[[Any], str | None] | None
    strict: Callable[[Any], str | None] | None
    attrs: tuple[str, ...]

    @property
    def octets(self) -> str:
        """The attribute shown in ``hex``/``text`` mode: the first of the value."""
        return str(self.value.subcons[0].name)

    @property
    def opaque(self) -> str | None:
        """The attribute when the value is its octets as they are (a TSAP-ID...), else None.

        Such a value is decoded and encoded without construct: parsing
        ``GreedyBytes`` is the identity.
        """
        if self.lengths is not None or self.check is not None or self.strict is not None:
            return None
        named = [sub for sub in getattr(self.value, "subcons", ()) if sub.name]
        if len(named) == 1 and getattr(named[0], "subcon", None) is GreedyBytes:
            return str(named[0].name)
        return None


def param_def(
    name: str,
    value: Construct,
    *,
    where: Iterable[str],
    token: str,
    value_extended: Construct | None = None,
    shown: str = "fields",
    derived: tuple[str, ...] = (),
    lengths: Container[int] | None = None,
    check: Callable[[Any], str | None] | None = None,
    strict: Callable[[Any], str | None] | None = None,
) -> Callable[[C], C]:
    """Register a parameter dataclass with its wire definition.

    Args:
        name: its name in descriptions (``params[].name``).
        value: the construct definition of the value octets; its fields are
            named like the dataclass fields (lists become tuples).
        value_extended: the value in the extended format, when it differs
            (the dataclass then has an ``extended`` field, set from the TPDU).
        where: the TPDUs it belongs in; where two parameters share a code,
            the TPDU decides (the first defined elsewhere).
        token: the ``key=value`` token of :func:`~tp4emu.wire.describe.format_param`:
            a :meth:`str.format` template over the attributes, with the
            conversions ``!q`` (quoted text or hex), ``!h`` (hex), ``!,`` and
            ``!/`` (joined) and ``!R`` (ranges).
        shown: in :func:`~tp4emu.wire.describe.describe_param`: ``fields``
            (every field), ``hex`` (the one octet-string field in hex) or
            ``text`` (hex, and text when printable).
        derived: properties also shown in ``fields`` mode.
        lengths: the value lengths of the documented shape; a value of
            another length is kept raw (:class:`~tp4emu.wire.params.UnknownParam`).
        check: on encoding, a value refused (its message) before building.
        strict: a value the standard forbids, on encoding (:class:`ValueError`)
            and decoding (:class:`~tp4emu.wire.errors.TPDUError`, DR 130).
    """

    def register(cls: C) -> C:
        attrs = tuple(f.name for f in fields(cls) if not (value_extended and f.name == "extended"))
        code = vars(cls).get("code")
        for fmt in (value, value_extended):
            names = {sub.name for sub in getattr(fmt, "subcons", ()) if sub.name}
            if fmt is not None and isinstance(code, int) and names != set(attrs):
                raise TypeError(f"{cls.__name__}: fields {sorted(attrs)} != value {sorted(names)}")
        spec = ParamDef(
            cls,
            code if isinstance(code, int) else None,
            name,
            value,
            value_extended,
            frozenset(where),
            token,
            shown,
            derived,
            lengths,
            check,
            strict,
            attrs,
        )
        PARAM_DEFS.append(spec)
        return cls

    return register


# ---------------------------------------------------------------- values without construct


@dataclass(frozen=True)
class ValueCodec:
    """A parameter value's construct definition turned into plain Python (:func:`compile_value`).

    Attributes:
        parse: ``value octets -> {attribute: value}`` (lists as tuples), or
            None where construct's parse fails (a misshapen value).
        build: ``attribute getter -> value octets``; it raises where construct's
            build raises (not necessarily the same exception: callers fall
            back to construct to report it).
    """

    parse: Callable[[bytes], dict[str, Any] | None]
    build: Callable[[Callable[[str], Any]], bytes]


_Element = tuple[int | None, Callable[[bytes], Any], Callable[[Any], bytes]]
"""An element of a value: its size (None: greedy, takes the rest), parse, build."""


def _element(node: Construct) -> _Element | None:
    """Size, parse and build of one construct *node*, or None for a kind not compiled."""
    if isinstance(node, FormatField):
        codec = struct.Struct(node.fmtstr)
        unpack, pack = codec.unpack, codec.pack
        return codec.size, lambda b: unpack(b)[0], pack
    if isinstance(node, BytesInteger) and isinstance(node.length, int) and not node.swapped:
        length: int = node.length
        signed = bool(node.signed)

        def build_integer(v: Any) -> bytes:
            return int.to_bytes(v, length, "big", signed=signed)

        return length, lambda b: int.from_bytes(b, "big", signed=signed), build_integer
    if type(node) is type(GreedyBytes):
        return None, bytes, bytes
    if isinstance(node, ExprAdapter):
        inner = _element(node.subcon)
        if inner is None:
            return None
        decode, encode = node._decode, node._encode
        parse, build = inner[1], inner[2]
        return (
            inner[0],
            lambda b: decode(parse(b), None, None),
            lambda v: build(encode(v, None, None)),
        )
    if isinstance(node, Array) and isinstance(node.count, int):
        inner = _element(node.subcon)
        return None if inner is None else _array(inner, node.count)
    if isinstance(node, GreedyRange) and not node.discard:
        inner = _element(node.subcon)
        return None if inner is None else _greedy_range(inner)
    return None


def _array(inner: _Element, count: int) -> _Element | None:
    """An ``Array(count, inner)`` of a fixed-size element."""
    each, parse, build = inner
    if each is None:
        return None
    size: int = each

    def build_array(v: Any) -> bytes:
        if len(v) != count:
            raise ValueError(f"expected {count} elements, got {len(v)}")
        return b"".join(build(x) for x in v)

    def parse_array(b: bytes) -> Any:
        return tuple(parse(b[i : i + size]) for i in range(0, size * count, size))

    return size * count, parse_array, build_array


def _greedy_range(inner: _Element) -> _Element | None:
    """A ``GreedyRange(inner)`` of a fixed-size element (followed by ``Terminated``)."""
    each, parse, build = inner
    if not each:
        return None
    size: int = each

    def parse_range(b: bytes) -> Any:
        if len(b) % size:  # construct stops short of the end: Terminated fails
            raise _Misshapen
        return tuple(parse(b[i : i + size]) for i in range(0, len(b), size))

    return None, parse_range, lambda v: b"".join(build(x) for x in v)


class _Misshapen(Exception):
    """A value construct would not parse."""


def compile_value(value: Construct) -> ValueCodec | None:
    """Plain Python parse and build of a parameter *value* definition, or None.

    *value* must be a ``Struct`` of named fields ending with ``Terminated``
    (as :mod:`tp4emu.wire.params` writes them) whose fields are of the kinds
    compiled here: integers (``Int8ub``... ``Int24ub``), ``GreedyBytes``,
    ``Array``, ``GreedyRange`` and ``ExprAdapter`` over those, a greedy
    field last. Anything else gives None (the caller keeps construct). The
    property tests prove parse and build equal to construct's.
    """
    if not isinstance(value, Struct):
        return None
    subcons = list(value.subcons)
    if not subcons or not isinstance(subcons[-1], type(Terminated)):
        return None
    fields_: list[tuple[str, _Element]] = []
    for node in subcons[:-1]:
        if not isinstance(node, Renamed) or not node.name:
            return None
        element = _element(node.subcon)
        if element is None:
            return None
        fields_.append((str(node.name), element))
    sizes = [size for _, (size, _, _) in fields_]
    if None in sizes[:-1]:
        return None
    fixed = sum(size or 0 for size in sizes)
    greedy = bool(sizes) and sizes[-1] is None

    def parse(octets: bytes) -> dict[str, Any] | None:
        if len(octets) < fixed or (not greedy and len(octets) != fixed):
            return None
        out: dict[str, Any] = {}
        i = 0
        try:
            for name, (size, read, _) in fields_:
                j = len(octets) if size is None else i + size
                out[name] = read(octets[i:j])
                i = j
        except _Misshapen:
            return None
        return out

    def build(get: Callable[[str], Any]) -> bytes:
        return b"".join(write(get(name)) for name, (_, _, write) in fields_)

    return ValueCodec(parse, build)
