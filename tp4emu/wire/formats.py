"""construct definitions of every TPDU: the single source of truth of the formats.

Each definition covers one TPDU from its LI octet: ``header`` is the LI-prefixed
header (TPDU code octet, fixed part, variable part), ``data`` the user data
that runs to the end of the datagram (only for TPDUs that carry data).
The variable part is a list of raw ``(code, value)`` parameters; their values
are typed by :mod:`tp4emu.wire.params`.

The struct-based fast paths of :mod:`tp4emu.wire.tpdu` for DT, AK and EA are
proved equal to these definitions by property tests.
"""

from __future__ import annotations

from construct import (
    Construct,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int32ub,
    Prefixed,
    Struct,
    Terminated,
)

__all__ = ["FORMATS", "PARAMETER", "format_for"]

PARAMETER: Construct = Struct(
    "code" / Int8ub,
    "value" / Prefixed(Int8ub, GreedyBytes),
)
"""One variable-part parameter: code, length, value."""

_TYPE = "type_credit" / Int8ub
_DST = "dst_ref" / Int16ub
_SRC = "src_ref" / Int16ub


def _tpdu(*fixed: Construct, data: bool, params: bool = True) -> Construct:
    header_fields = [_TYPE, *fixed]
    if params:
        header_fields.append("params" / GreedyRange(PARAMETER))
    header = Struct(*header_fields, Terminated)
    fields = ["header" / Prefixed(Int8ub, header)]
    if data:
        fields.append("data" / GreedyBytes)
    return Struct(*fields).compile()


_CLASS = "class_options" / Int8ub
_NR7 = "eot_nr" / Int8ub
_NR31 = "eot_nr" / Int32ub
_CDT16 = "credit" / Int16ub

FORMATS: dict[tuple[str, bool], Construct] = {
    # (TPDU name, extended format) -> definition
    ("CR", False): _tpdu(_DST, _SRC, _CLASS, data=True),
    ("CC", False): _tpdu(_DST, _SRC, _CLASS, data=True),
    ("DR", False): _tpdu(_DST, _SRC, "reason" / Int8ub, data=True),
    ("DC", False): _tpdu(_DST, _SRC, data=False),
    ("ER", False): _tpdu(_DST, "cause" / Int8ub, data=False),
    ("DT0", False): _tpdu(_NR7, data=True, params=False),
    ("DT", False): _tpdu(_DST, _NR7, data=True),
    ("DT", True): _tpdu(_DST, _NR31, data=True),
    ("ED", False): _tpdu(_DST, _NR7, data=True),
    ("ED", True): _tpdu(_DST, _NR31, data=True),
    ("AK", False): _tpdu(_DST, _NR7, data=False),
    ("AK", True): _tpdu(_DST, _NR31, _CDT16, data=False),
    ("EA", False): _tpdu(_DST, _NR7, data=False),
    ("EA", True): _tpdu(_DST, _NR31, data=False),
    ("RJ", False): _tpdu(_DST, _NR7, data=False),
    ("RJ", True): _tpdu(_DST, _NR31, _CDT16, data=False),
}

FIXED_LENGTH: dict[tuple[str, bool], int] = {
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
"""Smallest LI of each format: the TPDU code octet plus the fixed part."""


def format_for(name: str, extended: bool) -> Construct:
    """The construct definition of TPDU *name* in the given format."""
    return FORMATS[(name, extended and (name, True) in FORMATS)]
