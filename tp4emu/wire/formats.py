"""construct definitions of every TPDU, built from the TPDU definitions.

Each definition covers one TPDU from its LI octet: ``header`` is the LI-prefixed
header (TPDU code octet, fixed part, variable part), ``data`` the user data
that runs to the end of the datagram (only for TPDUs that carry data).
The variable part is a list of raw ``(code, value)`` parameters; their values
are typed by :mod:`tp4emu.wire.params`.

Nothing here is written per TPDU: :data:`FORMATS` and :data:`FIXED_LENGTH`
come from the fixed-part fields that each TPDU dataclass of
:mod:`tp4emu.wire.tpdu` declares (:func:`tp4emu.wire.defs.tpdu_def`), which
registers them before this module is built. The struct fast paths generated
from the same fields are proved equal to these definitions by property tests.
"""

from __future__ import annotations

from construct import (
    Construct,
    GreedyBytes,
    GreedyRange,
    Int8ub,
    Prefixed,
    Struct,
    Terminated,
)

from .defs import TPDU_DEFS, Field

__all__ = ["FIXED_LENGTH", "FORMATS", "PARAMETER", "format_for"]

if not TPDU_DEFS:  # pragma: no cover - an import order mistake
    raise ImportError("tp4emu.wire.tpdu defines the TPDUs: import it before tp4emu.wire.formats")

PARAMETER: Construct = Struct(
    "code" / Int8ub,
    "value" / Prefixed(Int8ub, GreedyBytes),
)
"""One variable-part parameter: code, length, value."""


def _tpdu(fixed: tuple[Field, ...], *, data: bool, params: bool = True) -> Construct:
    header_fields = [f.construct for f in fixed]
    if params:
        header_fields.append("params" / GreedyRange(PARAMETER))
    header = Struct(*header_fields, Terminated)
    fields = ["header" / Prefixed(Int8ub, header)]
    if data:
        fields.append("data" / GreedyBytes)
    return Struct(*fields).compile()


FORMATS: dict[tuple[str, bool], Construct] = {
    (d.name, ext): _tpdu(fixed, data=d.data, params=d.variable_part)
    for d in TPDU_DEFS
    for ext, fixed in d.formats()
}
"""(TPDU name, extended format) -> definition."""

FIXED_LENGTH: dict[tuple[str, bool], int] = {
    (d.name, ext): d.fixed_length(ext) for d in TPDU_DEFS for ext, _ in d.formats()
}
"""Smallest LI of each format: the TPDU code octet plus the fixed part."""


def format_for(name: str, extended: bool) -> Construct:
    """The construct definition of TPDU *name* in the given format."""
    return FORMATS[(name, extended and (name, True) in FORMATS)]
