"""Hypothesis strategies for TPDUs and their parameters, reusable by any test.

Every strategy draws *valid* values: fields in range for the TPDU's format,
user data within the limits of the reference digest, and only the parameters
that belong in each TPDU type (CR/CC: connection parameters and unknown codes;
AK: subsequence number, flow control confirmation, selective acknowledgement;
ER: invalid TPDU; DR: additional information). So for any drawn ``x``,
``decode(encode(x), extended=...) == [x]``.

``UnknownParam`` codes are drawn only among the codes that
:mod:`tp4emu.wire.params` does not know (a known code would decode typed), and
never 0xC3 (the checksum, which the codec handles itself).

Entry points: :func:`tpdus` (any TPDU), :func:`data_less_tpdus`,
:func:`data_tpdus`, :func:`datagrams` (data-less TPDUs followed by at most one
data TPDU), and one strategy per type (``cr()``, ``ak(extended)``...).
"""

from __future__ import annotations

from hypothesis import strategies as st

from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    DT0,
    EA,
    ED,
    ER,
    MAX_CR_CC_DATA,
    MAX_DR_DATA,
    MAX_ED_DATA,
    RJ,
    TPDU,
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
    ParamCode,
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
from tp4emu.wire.params import encode_param_value

__all__ = [
    "KNOWN_PARAM_CODES",
    "UNKNOWN_PARAM_CODES",
    "ak",
    "cc",
    "connection_params",
    "cr",
    "data_less_tpdus",
    "data_tpdus",
    "datagrams",
    "dc",
    "dr",
    "dt",
    "dt0",
    "ea",
    "ed",
    "er",
    "keeps_li_parity",
    "nrs",
    "rj",
    "tpdus",
    "u8",
    "u16",
    "u32",
    "unknown_params",
]

KNOWN_PARAM_CODES = frozenset(int(c) for c in ParamCode)
"""Every parameter code params.py decodes (0xC3, the checksum, included)."""
UNKNOWN_PARAM_CODES = tuple(c for c in range(256) if c not in KNOWN_PARAM_CODES)
"""Codes that decode as :class:`UnknownParam`."""

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
refs = u16


def nrs(extended: bool) -> st.SearchStrategy[int]:
    """TPDU numbers of the format: 7 bits (normal) or 31 bits (extended)."""
    return st.integers(0, (1 << 31) - 1 if extended else 127)


def credits(extended: bool) -> st.SearchStrategy[int]:
    """Credit: 4 bits in the code octet (normal) or a 16-bit field (extended)."""
    return u16 if extended else st.integers(0, 15)


def formats(extended: bool | None) -> st.SearchStrategy[bool]:
    """A fixed format, or either when *extended* is None."""
    return st.booleans() if extended is None else st.just(extended)


def unknown_params(max_size: int = 16, *, even: bool = False) -> st.SearchStrategy[UnknownParam]:
    """Parameters with a code params.py does not know, kept raw.

    ``even``: only even value lengths, so the parameter keeps the LI parity
    rule that infers the format of DT/ED/AK/EA/RJ.
    """
    values = st.binary(max_size=max_size)
    if even:
        values = values.filter(lambda v: len(v) % 2 == 0)
    return st.builds(UnknownParam, st.sampled_from(UNKNOWN_PARAM_CODES), values)


def connection_params() -> st.SearchStrategy[Param]:
    """Any parameter that may appear in a CR or CC (typed, or unknown code)."""
    return st.one_of(
        st.builds(TpduSize, st.integers(7, 13)),
        st.builds(PreferredMaxTpduSize, u32),
        st.builds(CallingTsap, st.binary(max_size=16)),
        st.builds(CalledTsap, st.binary(max_size=16)),
        st.builds(Version, u8),
        st.builds(Protection, st.binary(max_size=16)),
        st.builds(AdditionalOptions, u8),
        st.builds(AlternativeClasses, st.lists(st.integers(0, 15), max_size=4).map(tuple)),
        st.builds(AckTime, u16),
        st.builds(ResidualErrorRate, u8, u8, u8),
        st.builds(Priority, u16),
        st.builds(TransitDelay, u16, u16, u16, u16),
        st.builds(Throughput, st.lists(u24, min_size=4, max_size=4).map(tuple))
        | st.builds(Throughput, st.lists(u24, min_size=8, max_size=8).map(tuple)),
        st.builds(ReassignmentTime, u16),
        st.builds(InactivityTimer, u32),
        unknown_params(),
    )


def _params(
    elements: st.SearchStrategy[Param], max_size: int
) -> st.SearchStrategy[tuple[Param, ...]]:
    return st.lists(elements, max_size=max_size).map(tuple)


def ak_params(extended: bool) -> st.SearchStrategy[Param]:
    """Parameters of an AK (class 4), SelectiveAck in the AK's own format."""
    edge = nrs(extended)
    return st.one_of(
        st.builds(SubsequenceNumber, u16),
        st.builds(FlowControlConfirmation, u32, u16, u16),
        st.builds(
            SelectiveAck,
            st.lists(st.tuples(edge, edge), max_size=4).map(tuple),
            st.just(extended),
        ),
        unknown_params(8, even=True),
    )


def _numbered_params() -> st.SearchStrategy[tuple[Param, ...]]:
    """DT/ED/EA/RJ: usually no parameter; sometimes unknown ones (parity kept)."""
    return st.one_of(st.just(()), _params(unknown_params(8, even=True), 2))


def cr() -> st.SearchStrategy[CR]:
    return st.builds(
        CR,
        src_ref=refs,
        credit=st.integers(0, 15),
        protocol_class=st.integers(0, 4),
        options=st.integers(0, 15),
        params=_params(connection_params(), 6),
        data=st.binary(max_size=MAX_CR_CC_DATA),
        dst_ref=st.one_of(st.just(0), refs),
    )


def cc() -> st.SearchStrategy[CC]:
    return st.builds(
        CC,
        dst_ref=refs,
        src_ref=refs,
        credit=st.integers(0, 15),
        protocol_class=st.integers(0, 4),
        options=st.integers(0, 15),
        params=_params(connection_params(), 6),
        data=st.binary(max_size=MAX_CR_CC_DATA),
    )


def dr() -> st.SearchStrategy[DR]:
    return st.builds(
        DR,
        dst_ref=refs,
        src_ref=refs,
        reason=u8,
        params=_params(
            st.one_of(st.builds(AdditionalInformation, st.binary(max_size=32)), unknown_params()),
            2,
        ),
        data=st.binary(max_size=MAX_DR_DATA),
    )


def dc() -> st.SearchStrategy[DC]:
    return st.builds(DC, dst_ref=refs, src_ref=refs, params=_params(unknown_params(), 1))


def er() -> st.SearchStrategy[ER]:
    return st.builds(
        ER,
        dst_ref=refs,
        cause=u8,
        params=_params(
            st.one_of(st.builds(InvalidTpdu, st.binary(max_size=32)), unknown_params()), 2
        ),
    )


def dt(extended: bool | None = None) -> st.SearchStrategy[DT]:
    return formats(extended).flatmap(
        lambda ext: st.builds(
            DT,
            dst_ref=refs,
            nr=nrs(ext),
            eot=st.booleans(),
            data=st.binary(max_size=64),
            extended=st.just(ext),
            params=_numbered_params(),
        )
    )


def dt0() -> st.SearchStrategy[DT0]:
    return st.builds(DT0, nr=nrs(False), eot=st.booleans(), data=st.binary(max_size=64))


def ed(extended: bool | None = None) -> st.SearchStrategy[ED]:
    return formats(extended).flatmap(
        lambda ext: st.builds(
            ED,
            dst_ref=refs,
            nr=nrs(ext),
            data=st.binary(max_size=MAX_ED_DATA),
            eot=st.booleans(),
            extended=st.just(ext),
            params=_numbered_params(),
        )
    )


def ak(extended: bool | None = None) -> st.SearchStrategy[AK]:
    return formats(extended).flatmap(
        lambda ext: st.builds(
            AK,
            dst_ref=refs,
            nr=nrs(ext),
            credit=credits(ext),
            extended=st.just(ext),
            params=_params(ak_params(ext), 3),
        )
    )


def ea(extended: bool | None = None) -> st.SearchStrategy[EA]:
    return formats(extended).flatmap(
        lambda ext: st.builds(
            EA, dst_ref=refs, nr=nrs(ext), extended=st.just(ext), params=_numbered_params()
        )
    )


def rj(extended: bool | None = None) -> st.SearchStrategy[RJ]:
    return formats(extended).flatmap(
        lambda ext: st.builds(
            RJ,
            dst_ref=refs,
            nr=nrs(ext),
            credit=credits(ext),
            extended=st.just(ext),
            params=_numbered_params(),
        )
    )


def data_less_tpdus(extended: bool | None = None) -> st.SearchStrategy[TPDU]:
    """TPDUs without user data (they may come first in a concatenation)."""
    return st.one_of(dc(), er(), ak(extended), ea(extended), rj(extended))


def data_tpdus(extended: bool | None = None, *, dt0_too: bool = True) -> st.SearchStrategy[TPDU]:
    """TPDUs that carry user data (only the last of a datagram may)."""
    options = [cr(), cc(), dr(), dt(extended), ed(extended)]
    if dt0_too:
        options.append(dt0())
    return st.one_of(*options)


def tpdus(extended: bool | None = None, *, dt0_too: bool = True) -> st.SearchStrategy[TPDU]:
    """Any TPDU; the numbered ones in the given format (either when None)."""
    return st.one_of(data_less_tpdus(extended), data_tpdus(extended, dt0_too=dt0_too))


def datagrams(extended: bool | None = None, *, max_tpdus: int = 4) -> st.SearchStrategy[list[TPDU]]:
    """Data-less TPDUs followed by at most one data TPDU: one encodable datagram."""
    return st.tuples(
        st.lists(data_less_tpdus(extended), max_size=max_tpdus - 1),
        st.one_of(st.none(), data_tpdus(extended)),
    ).map(lambda pair: pair[0] + ([pair[1]] if pair[1] is not None else []))


def keeps_li_parity(tpdu: TPDU) -> bool:
    """Whether every parameter of *tpdu* has an even total length (code, length, value).

    Then the LI of DT/ED/AK/EA/RJ is even in the normal format and odd in the
    extended one, and ``decode(..., extended=None)`` infers the format.
    """
    return all((2 + len(encode_param_value(p))) % 2 == 0 for p in tpdu.params)
