"""Human- and JSON-friendly descriptions of decoded TPDUs.

:func:`describe` turns a TPDU into a plain ``dict`` that :func:`json.dumps`
accepts as is; :func:`format_tpdu` renders one TPDU as a greppable line of
``key=value`` tokens, for instance::

    CR src-ref=0x1234 class=4 credit=8 size=1024 calling-tsap="cl" called-tsap="sv"
    options=0x01 checksum=valid data=5

(on one line). Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .constants import ClassOption, DRReason, ERCause
from .errors import TPDUError
from .params import (
    AckTime,
    AdditionalInformation,
    AdditionalOptions,
    AlternativeClasses,
    CalledTsap,
    CallingTsap,
    FlowControlConfirmation,
    InactivityTimer,
    InvalidTpdu,
    Param,
    PreferredMaxTpduSize,
    Priority,
    Protection,
    ReassignmentTime,
    ResidualErrorRate,
    SelectiveAck,
    SubsequenceNumber,
    Throughput,
    TpduSize,
    TransitDelay,
    UnknownParam,
    Version,
)
from .tpdu import AK, CC, CR, DC, DR, DT, DT0, ED, ER, RJ, TPDU

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

PARAM_NAMES: dict[type, str] = {
    TpduSize: "tpdu-size",
    PreferredMaxTpduSize: "preferred-max-tpdu-size",
    CallingTsap: "calling-tsap",
    CalledTsap: "called-tsap",
    InvalidTpdu: "invalid-tpdu",
    Version: "version",
    Protection: "protection",
    AdditionalOptions: "additional-options",
    AlternativeClasses: "alternative-classes",
    AckTime: "ack-time",
    ResidualErrorRate: "residual-error-rate",
    Priority: "priority",
    TransitDelay: "transit-delay",
    Throughput: "throughput",
    SubsequenceNumber: "subsequence-number",
    ReassignmentTime: "reassignment-time",
    FlowControlConfirmation: "flow-control-confirmation",
    SelectiveAck: "selective-ack",
    AdditionalInformation: "additional-information",
    InactivityTimer: "inactivity-timer",
    UnknownParam: "unknown",
}
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
    if isinstance(param, (CallingTsap, CalledTsap)):
        out["hex"] = param.value.hex()
        out["text"] = printable_text(param.value)
        return out
    if isinstance(param, (Protection, AdditionalInformation, UnknownParam)):
        out["hex"] = param.value.hex()
        return out
    if isinstance(param, InvalidTpdu):
        out["hex"] = param.header.hex()
        return out
    for f in dataclasses.fields(param):
        out[f.name] = _jsonable(getattr(param, f.name))
    if isinstance(param, (TpduSize, PreferredMaxTpduSize)):
        out["size"] = param.size
    elif isinstance(param, AdditionalOptions):
        out["expedited"] = param.expedited
        out["checksum"] = param.checksum
    return out


def _quoted_or_hex(value: bytes) -> str:
    text = printable_text(value)
    if text is not None:
        return json.dumps(text)
    return "0x" + value.hex()


def _hex_token(value: bytes) -> str:
    return "0x" + value.hex() if value else '""'


_PARAM_TOKENS: dict[type, Callable[[Any], str]] = {
    TpduSize: lambda p: f"size={p.size}",
    PreferredMaxTpduSize: lambda p: f"preferred-size={p.size}",
    CallingTsap: lambda p: f"calling-tsap={_quoted_or_hex(p.value)}",
    CalledTsap: lambda p: f"called-tsap={_quoted_or_hex(p.value)}",
    InvalidTpdu: lambda p: f"invalid-tpdu={_hex_token(p.header)}",
    Version: lambda p: f"version={p.number}",
    Protection: lambda p: f"protection={_hex_token(p.value)}",
    AdditionalOptions: lambda p: f"options=0x{p.flags:02x}",
    AlternativeClasses: lambda p: "alt-classes=" + ",".join(str(c) for c in p.classes),
    AckTime: lambda p: f"ack-time={p.ms}ms",
    ResidualErrorRate: lambda p: (
        f"residual-error-rate=target:{p.target},min:{p.minimum},tsdu:{p.tsdu_size}"
    ),
    Priority: lambda p: f"priority={p.value}",
    TransitDelay: lambda p: (
        "transit-delay="
        f"{p.target_calling_called}/{p.minimum_calling_called}/"
        f"{p.target_called_calling}/{p.minimum_called_calling}ms"
    ),
    Throughput: lambda p: "throughput=" + "/".join(str(v) for v in p.values),
    SubsequenceNumber: lambda p: f"subseq={p.value}",
    ReassignmentTime: lambda p: f"reassignment-time={p.seconds}s",
    FlowControlConfirmation: lambda p: (
        f"fcc=lwe:{p.lower_window_edge},subseq:{p.your_subsequence},credit:{p.your_credit}"
    ),
    SelectiveAck: lambda p: (
        "selective-ack=" + (",".join(f"{lo}-{hi}" for lo, hi in p.ranges) or '""')
    ),
    AdditionalInformation: lambda p: f"additional-info={_hex_token(p.value)}",
    InactivityTimer: lambda p: f"inactivity={p.ms}ms",
    UnknownParam: lambda p: f"param-0x{p.param_code:02x}={_hex_token(p.value)}",
}


def format_param(param: Param) -> str:
    """One parameter as a single ``key=value`` token (no spaces)."""
    render = _PARAM_TOKENS.get(type(param))
    if render is None:  # pragma: no cover - every Param type has a renderer
        return f"param-0x{param.code:02x}=?"
    return render(param)


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
    out: dict[str, Any] = {"type": type(tpdu).__name__}
    if isinstance(tpdu, (CR, CC)):
        out["dst_ref"] = tpdu.dst_ref
        out["src_ref"] = tpdu.src_ref
        out["class"] = tpdu.protocol_class
        out["options"] = tpdu.options
        out["extended"] = tpdu.extended
        out["credit"] = tpdu.credit
    elif isinstance(tpdu, DR):
        out["dst_ref"] = tpdu.dst_ref
        out["src_ref"] = tpdu.src_ref
        out["reason"] = _code_name(tpdu.reason, DRReason)
    elif isinstance(tpdu, DC):
        out["dst_ref"] = tpdu.dst_ref
        out["src_ref"] = tpdu.src_ref
    elif isinstance(tpdu, ER):
        out["dst_ref"] = tpdu.dst_ref
        out["cause"] = _code_name(tpdu.cause, ERCause)
    elif isinstance(tpdu, DT0):
        out["nr"] = tpdu.nr
        out["eot"] = tpdu.eot
    else:  # DT, ED, AK, EA, RJ
        out["dst_ref"] = tpdu.dst_ref
        out["extended"] = tpdu.extended
        out["nr"] = tpdu.nr
        if isinstance(tpdu, (DT, ED)):
            out["eot"] = tpdu.eot
        if isinstance(tpdu, (AK, RJ)):
            out["credit"] = tpdu.credit
    out["params"] = [describe_param(p) for p in tpdu.params]
    out["checksum"] = checksum_verdict(tpdu)
    if isinstance(tpdu, (CR, CC, DR, DT, DT0, ED)):
        data = tpdu.data
        shown = data[: max(0, data_limit)]
        out["data"] = {
            "length": len(data),
            "hex": shown.hex(),
            "truncated": len(shown) < len(data),
        }
    return out


def _ref(value: int) -> str:
    return f"0x{value:04x}"


def format_tpdu(
    tpdu: TPDU, *, show_data: bool = False, data_limit: int = DEFAULT_DATA_LIMIT
) -> str:
    """*tpdu* as one line of ``key=value`` tokens (two with *show_data*).

    With *show_data*, a second line, indented, shows the user data in hex
    (at most *data_limit* octets, ``...`` when cut) and as quoted text when
    it is printable ASCII.
    """
    tokens: list[str] = [type(tpdu).__name__]
    if isinstance(tpdu, (CR, CC)):
        if isinstance(tpdu, CC) or tpdu.dst_ref:
            tokens.append(f"dst-ref={_ref(tpdu.dst_ref)}")
        tokens.append(f"src-ref={_ref(tpdu.src_ref)}")
        tokens.append(f"class={tpdu.protocol_class}")
        if tpdu.options:
            flags = [
                name
                for bit, name in (
                    (ClassOption.EXTENDED_FORMAT, "extended"),
                    (ClassOption.EXPLICIT_FLOW_CONTROL, "explicit-fc"),
                )
                if tpdu.options & bit
            ]
            suffix = f"({','.join(flags)})" if flags else ""
            tokens.append(f"class-options=0x{tpdu.options:x}{suffix}")
        tokens.append(f"credit={tpdu.credit}")
    elif isinstance(tpdu, (DR, DC)):
        tokens.append(f"dst-ref={_ref(tpdu.dst_ref)}")
        tokens.append(f"src-ref={_ref(tpdu.src_ref)}")
        if isinstance(tpdu, DR):
            tokens.append(f"reason={_token_code_name(tpdu.reason, DRReason)}")
    elif isinstance(tpdu, ER):
        tokens.append(f"dst-ref={_ref(tpdu.dst_ref)}")
        tokens.append(f"cause={_token_code_name(tpdu.cause, ERCause)}")
    elif isinstance(tpdu, DT0):
        tokens.append(f"nr={tpdu.nr}")
        tokens.append(f"eot={int(tpdu.eot)}")
    else:  # DT, ED, AK, EA, RJ
        tokens.append(f"dst-ref={_ref(tpdu.dst_ref)}")
        if tpdu.extended:
            tokens.append("format=extended")
        tokens.append(f"nr={tpdu.nr}")
        if isinstance(tpdu, (DT, ED)):
            tokens.append(f"eot={int(tpdu.eot)}")
        if isinstance(tpdu, (AK, RJ)):
            tokens.append(f"credit={tpdu.credit}")
    tokens.extend(format_param(p) for p in tpdu.params)
    tokens.append(f"checksum={checksum_verdict(tpdu)}")
    line = " ".join(tokens)
    if isinstance(tpdu, (CR, CC, DR, DT, DT0, ED)):
        line += f" data={len(tpdu.data)}"
        if show_data and tpdu.data:
            line += "\n    " + format_data(tpdu.data, data_limit=data_limit)
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
