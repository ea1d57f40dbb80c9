"""Wire formats of ISO 8073 / X.224: TPDUs, parameters, checksum, TPKT framing.

Nothing in this package does I/O.

Each TPDU and each parameter is defined once, as a dataclass with its wire
definition on top: TPDUs in :mod:`.tpdu`, parameters in :mod:`.params` (their
docstrings say how to add one); :mod:`.defs` turns the definitions into the
construct formats, the struct fast paths and the descriptions.
"""

from .checksum import checksum_octets, fletcher_sums, verify
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
    connection_params,
)
from .tpdu import AK, CC, CR, DC, DR, DT, DT0, EA, ED, ER, RJ, TPDU, decode, encode, encode_one
from .tpkt import TPKTDecoder, encode_tpkt

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
    "MAX_CR_CC_DATA",
    "MAX_DR_DATA",
    "MAX_ED_DATA",
    "RJ",
    "TPDU",
    "AckTime",
    "AdditionalInformation",
    "AdditionalOptions",
    "AlternativeClasses",
    "CalledTsap",
    "CallingTsap",
    "ClassOption",
    "DRReason",
    "ERCause",
    "FlowControlConfirmation",
    "InactivityTimer",
    "InvalidTpdu",
    "Param",
    "ParamCode",
    "PreferredMaxTpduSize",
    "Priority",
    "Protection",
    "ReassignmentTime",
    "ResidualErrorRate",
    "SelectiveAck",
    "SubsequenceNumber",
    "TPDUCode",
    "TPDUError",
    "TPKTDecoder",
    "Throughput",
    "TpduSize",
    "TransitDelay",
    "UnknownParam",
    "Version",
    "checksum_octets",
    "connection_params",
    "decode",
    "encode",
    "encode_tpkt",
    "encode_one",
    "fletcher_sums",
    "verify",
]
