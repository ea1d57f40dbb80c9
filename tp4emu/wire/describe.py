"""Human- and JSON-friendly descriptions of decoded TPDUs.

:func:`describe` turns a TPDU into a plain ``dict`` that :func:`json.dumps`
accepts as is; :func:`format_tpdu` renders one TPDU as a greppable line of
``key=value`` tokens, for instance::

    CR src-ref=0x1234 class=4 credit=8 size=1024 calling-tsap="cl" called-tsap="sv"
    options=0x01 checksum=valid data=5

(on one line). Nothing here does I/O.

Nothing here is written per TPDU or per parameter: the fields shown, their
order and tokens come from each TPDU's definition (``shown`` of
:func:`~tp4emu.wire.defs.tpdu_def`), the names, shapes and token templates of
the parameters from theirs (:func:`~tp4emu.wire.defs.param_def`).
"""

from __future__ import annotations

import dataclasses
import json
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .constants import ClassOption, DRReason, ERCause
from .defs import PARAM_DEFS, TPDU_DEFS, ParamDef, Shown, TPDUDef
from .errors import TPDUError
from .params import Param
from .tpdu import TPDU

__all__ = [
    "DEFAULT_DATA_LIMIT",
    "PARAM_NAMES",
    "checksum_verdict",
    "describe",
    "describe_error",
    "describe_param",
    "format_data",
    "format_error",
    "format_param",
    "format_tpdu",
    "printable_text",
]

DEFAULT_DATA_LIMIT = 64
"""Most user-data octets shown in hex by default."""

_PARAMS: dict[type, ParamDef] = {d.cls: d for d in PARAM_DEFS}
_TPDUS: dict[type, TPDUDef] = {d.cls: d for d in TPDU_DEFS}

PARAM_NAMES: dict[type, str] = {d.cls: d.name for d in PARAM_DEFS}
"""The name of each parameter type, as used in :func:`describe` (``params[].name``)."""


# ---------------------------------------------------------------- helpers


def printable_text(value: bytes) -> str | None:
    """*value* as text when every octet is printable ASCII, else None."""
    if all(0x20 <= octet < 0x7F for octet in value):
        return value.decode("ascii")
    return None


def checksum_verdict(tpdu: TPDU) -> str:
    """``"valid"``, ``"invalid"`` or ``"absent"`` from the TPDU's ``checksum_ok``."""
    if tpdu.checksum_ok is None:
        return "absent"
    return "valid" if tpdu.checksum_ok else "invalid"


def _code_name(value: int, enum_type: type[DRReason] | type[ERCause]) -> dict[str, Any]:
    try:
        name: str | None = enum_type(value).name
    except ValueError:
        name = None
    return {"code": value, "name": name}


def _token_code_name(value: int, enum_type: type[DRReason] | type[ERCause]) -> str:
    try:
        return f"{value}({enum_type(value).name})"
    except ValueError:
        return f"{value}(unknown)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------- parameters


def describe_param(param: Param) -> dict[str, Any]:
    """One parameter as a flat dict: ``name``, ``code`` and its typed fields.

    Octet strings are shown in hex (``hex``); TSAP-IDs also as ``text`` when
    printable (None otherwise). Derived values are added where useful
    (``size`` of the TPDU size parameters, the flags of the additional options).
    """
    out: dict[str, Any] = {"name": PARAM_NAMES.get(type(param), "unknown"), "code": param.code}
    spec = _PARAMS[type(param)]
    if spec.shown in ("hex", "text"):
        value: bytes = getattr(param, spec.octets)
        out["hex"] = value.hex()
        if spec.shown == "text":
            out["text"] = printable_text(value)
        return out
    for f in dataclasses.fields(param):
        out[f.name] = _jsonable(getattr(param, f.name))
    for name in spec.derived:
        out[name] = getattr(param, name)
    return out


def _quoted_or_hex(value: bytes) -> str:
    text = printable_text(value)
    if text is not None:
        return json.dumps(text)
    return "0x" + value.hex()


def _hex_token(value: bytes) -> str:
    return "0x" + value.hex() if value else '""'


class _TokenFormatter(string.Formatter):
    """Renders the token templates of the parameter definitions over a parameter."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        return getattr(args[0], str(key))

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "q":
            return _quoted_or_hex(value)
        if conversion == "h":
            return _hex_token(value)
        if conversion in (",", "/"):
            return conversion.join(str(v) for v in value)
        if conversion == "R":
            return ",".join(f"{lo}-{hi}" for lo, hi in value) or '""'
        return super().convert_field(value, conversion)


_TOKENS = _TokenFormatter()


def format_param(param: Param) -> str:
    """One parameter as a single ``key=value`` token (no spaces)."""
    spec = _PARAMS.get(type(param))
    if spec is None:  # pragma: no cover - every Param type has a renderer
        return f"param-0x{param.code:02x}=?"
    return _TOKENS.format(spec.token, param)


# ---------------------------------------------------------------- TPDUs


def describe(tpdu: TPDU, *, data_limit: int = DEFAULT_DATA_LIMIT) -> dict[str, Any]:
    """A JSON-ready dict of *tpdu*.

    Keys, present only where the TPDU type has the field: ``type`` (``"CR"``,
    ..., ``"DT0"`` for the class 0/1 DT without DST-REF), ``dst_ref``,
    ``src_ref``, ``class``, ``options`` (low nibble of the class/options octet),
    ``extended`` (the format of a numbered TPDU; for CR/CC, whether the extended
    format is proposed/accepted), ``credit``, ``nr``, ``eot``, ``reason`` and
    ``cause`` (``{"code": int, "name": str | None}``), and always ``params``
    (list of :func:`describe_param` dicts) and ``checksum`` (``"valid"``,
    ``"invalid"`` or ``"absent"``). TPDUs that carry user data have ``data``:
    ``{"length": n, "hex": ..., "truncated": bool}``, the hex holding at most
    *data_limit* octets.
    """
    spec = _TPDUS[type(tpdu)]
    out: dict[str, Any] = {"type": spec.name}
    for item in spec.shown:
        out[item.key] = _json_value(item, getattr(tpdu, item.attr))
    out["params"] = [describe_param(p) for p in tpdu.params]
    out["checksum"] = checksum_verdict(tpdu)
    if spec.data:
        data: bytes = tpdu.data  # type: ignore[union-attr]
        shown = data[: max(0, data_limit)]
        out["data"] = {
            "length": len(data),
            "hex": shown.hex(),
            "truncated": len(shown) < len(data),
        }
    return out


def _json_value(shown: Shown, value: Any) -> Any:
    if shown.kind == "reason":
        return _code_name(value, DRReason)
    if shown.kind == "cause":
        return _code_name(value, ERCause)
    return value


def _ref(value: int) -> str:
    return f"0x{value:04x}"


def _class_options(options: int) -> str:
    flags = [
        name
        for bit, name in (
            (ClassOption.EXTENDED_FORMAT, "extended"),
            (ClassOption.EXPLICIT_FLOW_CONTROL, "explicit-fc"),
        )
        if options & bit
    ]
    suffix = f"({','.join(flags)})" if flags else ""
    return f"0x{options:x}{suffix}"


_TOKEN_VALUES: dict[str, Callable[[Any], str]] = {
    "int": str,
    "ref": _ref,
    "bool": lambda value: str(int(value)),
    "reason": lambda value: _token_code_name(value, DRReason),
    "cause": lambda value: _token_code_name(value, ERCause),
    "class-options": _class_options,
    "format": lambda value: "extended",
}


def format_tpdu(
    tpdu: TPDU, *, show_data: bool = False, data_limit: int = DEFAULT_DATA_LIMIT
) -> str:
    """*tpdu* as one line of ``key=value`` tokens (two with *show_data*).

    With *show_data*, a second line, indented, shows the user data in hex
    (at most *data_limit* octets, ``...`` when cut) and as quoted text when
    it is printable ASCII.
    """
    spec = _TPDUS[type(tpdu)]
    tokens: list[str] = [spec.name]
    for item in spec.shown:
        value = getattr(tpdu, item.attr)
        if item.token is None or not (value or item.if_zero):
            continue
        tokens.append(f"{item.token}={_TOKEN_VALUES[item.kind](value)}")
    tokens.extend(format_param(p) for p in tpdu.params)
    tokens.append(f"checksum={checksum_verdict(tpdu)}")
    line = " ".join(tokens)
    if spec.data:
        data: bytes = tpdu.data  # type: ignore[union-attr]
        line += f" data={len(data)}"
        if show_data and data:
            line += "\n    " + format_data(data, data_limit=data_limit)
    return line


def format_data(data: bytes, *, data_limit: int = DEFAULT_DATA_LIMIT) -> str:
    """User data as hex (cut to *data_limit* octets, then ``...``), plus text if printable."""
    shown = data[: max(0, data_limit)]
    out = shown.hex(" ")
    if len(shown) < len(data):
        out += " ..."
    text = printable_text(shown)
    if text is not None and text:
        out += "  " + json.dumps(text)
    return out


# ---------------------------------------------------------------- errors


def describe_error(error: TPDUError) -> dict[str, Any]:
    """A JSON-ready dict of a decoding error.

    Keys: ``error`` (the message), ``reason`` (DR reason) and ``cause`` (ER
    cause) as ``{"code": int, "name": str}``, ``offset`` (of the TPDU at fault
    in the datagram) and ``header`` (hex of its header octets, when known).
    """
    return {
        "error": str(error),
        "reason": _code_name(error.reason, DRReason),
        "cause": _code_name(error.cause, ERCause),
        "offset": error.offset,
        "header": error.header.hex(),
    }


def format_error(error: TPDUError) -> str:
    """A decoding error as one line: message, then reason, cause and offset tokens."""
    return (
        f"error: {error} reason={_token_code_name(error.reason, DRReason)} "
        f"cause={_token_code_name(error.cause, ERCause)} offset={error.offset}"
    )
