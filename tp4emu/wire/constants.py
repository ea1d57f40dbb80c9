"""Codes of ISO 8073 / X.224: TPDU types, parameter codes, DR reasons, ER causes.

Values follow the reference digest (``iso8073-class4.md`` §1-3), which follows
ISO 8073 and RFC 905.
"""

from __future__ import annotations

import enum

__all__ = [
    "MAX_CR_CC_DATA",
    "MAX_DR_DATA",
    "MAX_ED_DATA",
    "ClassOption",
    "DRReason",
    "ERCause",
    "ParamCode",
    "TPDUCode",
]

MAX_CR_CC_DATA = 32
"""Most octets of user data a CR or CC may carry."""
MAX_DR_DATA = 64
"""Most octets of user data a DR may carry."""
MAX_ED_DATA = 16
"""Most octets of user data an ED may carry."""


class TPDUCode(enum.IntEnum):
    """TPDU type: the high nibble of the TPDU's second octet."""

    ED = 0x1
    EA = 0x2
    RJ = 0x5
    AK = 0x6
    ER = 0x7
    DR = 0x8
    DC = 0xC
    CC = 0xD
    CR = 0xE
    DT = 0xF


class ClassOption(enum.IntFlag):
    """Low nibble of the class/options octet of CR and CC."""

    NONE = 0
    EXPLICIT_FLOW_CONTROL = 0x01
    """Class 2 only: explicit flow control."""
    EXTENDED_FORMAT = 0x02
    """Use the extended formats (31-bit numbers, 16-bit credit)."""


class ParamCode(enum.IntEnum):
    """Codes of the variable-part parameters (reference §2)."""

    TPDU_SIZE = 0xC0
    PREFERRED_MAX_TPDU_SIZE = 0xF0
    CALLING_TSAP = 0xC1
    CALLED_TSAP = 0xC2
    INVALID_TPDU = 0xC1  # same code as CALLING_TSAP, only in ER
    CHECKSUM = 0xC3
    VERSION = 0xC4
    PROTECTION = 0xC5
    ADDITIONAL_OPTIONS = 0xC6
    ALTERNATIVE_CLASSES = 0xC7
    ACK_TIME = 0x85
    RESIDUAL_ERROR_RATE = 0x86
    PRIORITY = 0x87
    TRANSIT_DELAY = 0x88
    THROUGHPUT = 0x89
    SUBSEQUENCE_NUMBER = 0x8A
    REASSIGNMENT_TIME = 0x8B
    FLOW_CONTROL_CONFIRMATION = 0x8C
    SELECTIVE_ACK = 0x8F
    ADDITIONAL_INFORMATION = 0xE0
    INACTIVITY_TIMER = 0xF2


class DRReason(enum.IntEnum):
    """Reason octet of a DR TPDU (reference §3).

    Only these values are sent; Wireshark does not decode a DR with any other.
    """

    NOT_SPECIFIED = 0
    CONGESTION = 1
    SESSION_NOT_ATTACHED = 2
    ADDRESS_UNKNOWN = 3
    NORMAL = 128
    REMOTE_CONGESTION = 129
    NEGOTIATION_FAILED = 130
    DUPLICATE_SOURCE_REFERENCE = 131
    MISMATCHED_REFERENCES = 132
    PROTOCOL_ERROR = 133
    REFERENCE_OVERFLOW = 135
    REFUSED_ON_THIS_NETWORK_CONNECTION = 136
    HEADER_OR_PARAMETER_LENGTH_INVALID = 138


class ERCause(enum.IntEnum):
    """Reject cause octet of an ER TPDU (reference §3)."""

    NOT_SPECIFIED = 0
    INVALID_PARAMETER_CODE = 1
    INVALID_TPDU_TYPE = 2
    INVALID_PARAMETER_VALUE = 3
