"""Expectations on TPDU fields: literal values, wildcards, bound references, ranges.

A case expects a TPDU of some types whose fields match: ``fields={"dst_ref":
Bound("ours"), "protocol_class": 4, "src_ref": NONZERO}``. A field name is
any attribute or property of the TPDU's dataclass (``tpdu_size``,
``called_tsap``, ``additional_options``...), or one of :data:`PSEUDO_FIELDS`
(``data_len``, ``param_codes``). A value is a literal (compared with
``==``), or a :class:`Matcher`: :data:`ANY`, :class:`Bound` (the value bound
earlier in the case under that name), :class:`OneOf`, :class:`Range`,
:class:`Not`, :class:`Pred`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..wire import TPDU

__all__ = [
    "ANY",
    "NONZERO",
    "PSEUDO_FIELDS",
    "Bound",
    "Matcher",
    "Not",
    "OneOf",
    "Pred",
    "Range",
    "describe_value",
    "field_value",
    "mismatches",
]

_MISSING = object()


class Matcher:
    """A test on one field's value; *bindings* holds the values bound so far."""

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        """Whether *value* is acceptable."""
        raise NotImplementedError

    def describe(self, bindings: Mapping[str, Any]) -> str:
        """What is expected, for reports."""
        raise NotImplementedError


class _Any(Matcher):
    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        return value is not None

    def describe(self, bindings: Mapping[str, Any]) -> str:
        return "any"


ANY: Matcher = _Any()
"""Any value (present: not None)."""


class Bound(Matcher):
    """Equal to the value bound under *name* earlier in the case (``bind=``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        return self.name in bindings and value == bindings[self.name]

    def describe(self, bindings: Mapping[str, Any]) -> str:
        if self.name not in bindings:
            return f"<{self.name}: unbound>"
        return f"{describe_value(bindings[self.name])} (<{self.name}>)"


class OneOf(Matcher):
    """One of *values* (literals or matchers)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        return any(_matches(v, value, bindings) for v in self.values)

    def describe(self, bindings: Mapping[str, Any]) -> str:
        return " or ".join(_describe(v, bindings) for v in self.values)


class Range(Matcher):
    """``lo <= value <= hi`` (either bound may be None)."""

    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        self.lo = lo
        self.hi = hi

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def describe(self, bindings: Mapping[str, Any]) -> str:
        if self.lo is None:
            return f"<= {self.hi}"
        if self.hi is None:
            return f">= {self.lo}"
        return f"{self.lo}..{self.hi}"


class Not(Matcher):
    """Anything but *value* (a literal or a matcher)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        return not _matches(self.value, value, bindings)

    def describe(self, bindings: Mapping[str, Any]) -> str:
        return f"not {_describe(self.value, bindings)}"


class Pred(Matcher):
    """A predicate of the value, described by *text*."""

    def __init__(self, fn: Callable[[Any], bool], text: str) -> None:
        self.fn = fn
        self.text = text

    def matches(self, value: Any, bindings: Mapping[str, Any]) -> bool:
        try:
            return bool(self.fn(value))
        except (TypeError, ValueError, AttributeError):
            return False

    def describe(self, bindings: Mapping[str, Any]) -> str:
        return self.text


NONZERO: Matcher = Pred(lambda v: isinstance(v, int) and v != 0, "non-zero")
"""An integer other than 0 (a reference)."""


PSEUDO_FIELDS: dict[str, Callable[[TPDU], Any]] = {
    "data_len": lambda t: len(getattr(t, "data", b"")),
    "param_codes": lambda t: tuple(p.code for p in t.params),
    "type": lambda t: type(t).__name__,
}
"""Fields computed from a TPDU: its user data's length, its parameter codes, its type name."""


def field_value(tpdu: TPDU, name: str) -> Any:
    """The value of field *name* of *tpdu* (an attribute, property or pseudo-field)."""
    pseudo = PSEUDO_FIELDS.get(name)
    if pseudo is not None:
        return pseudo(tpdu)
    return getattr(tpdu, name, _MISSING)


def describe_value(value: Any) -> str:
    """A field value as reports show it: references and codes in hex, octets quoted."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return "hex:" + value.hex()
        return repr(text) if text.isprintable() else "hex:" + value.hex()
    if isinstance(value, int) and value > 255:
        return f"0x{value:04x}"
    return repr(value)


def _matches(expected: Any, value: Any, bindings: Mapping[str, Any]) -> bool:
    if isinstance(expected, Matcher):
        return expected.matches(value, bindings)
    return bool(value == expected)


def _describe(expected: Any, bindings: Mapping[str, Any]) -> str:
    if isinstance(expected, Matcher):
        return expected.describe(bindings)
    return describe_value(expected)


def describe_fields(fields: Mapping[str, Any], bindings: Mapping[str, Any]) -> str:
    """``name=expected`` for each field, space-separated."""
    return " ".join(f"{k}={_describe(v, bindings)}" for k, v in fields.items())


def mismatches(tpdu: TPDU, fields: Mapping[str, Any], bindings: Mapping[str, Any]) -> list[str]:
    """Every field of *fields* that *tpdu* does not match, as ``name: got X, expected Y``."""
    out: list[str] = []
    for name, expected in fields.items():
        value = field_value(tpdu, name)
        if value is _MISSING:
            out.append(f"{name}: no such field in {type(tpdu).__name__}")
            continue
        if not _matches(expected, value, bindings):
            got = describe_value(value)
            out.append(f"{name}: got {got}, expected {_describe(expected, bindings)}")
    return out
