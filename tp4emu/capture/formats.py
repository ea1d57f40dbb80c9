"""Capture file formats: pcap headers, exported-PDU tags, link types, records.

The pcap headers and the exported-PDU tag are defined with construct (the
single source of truth); the per-packet paths use :mod:`struct` equivalents
that the tests prove equal.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Literal

from construct import (
    Construct,
    GreedyBytes,
    Int16ub,
    Int16ul,
    Int32sl,
    Int32ul,
    Prefixed,
    Struct,
)

from ..wire.constants import DRReason, ERCause
from ..wire.errors import TPDUError

__all__ = [
    "EXP_PDU_PT_TCP",
    "EXP_PDU_PT_UDP",
    "EXP_PDU_TAG",
    "EXP_PDU_TAG_DST_PORT",
    "EXP_PDU_TAG_END_OF_OPT",
    "EXP_PDU_TAG_IPV4_DST",
    "EXP_PDU_TAG_IPV4_SRC",
    "EXP_PDU_TAG_IPV6_DST",
    "EXP_PDU_TAG_IPV6_SRC",
    "EXP_PDU_TAG_PORT_TYPE",
    "EXP_PDU_TAG_PROTO_NAME",
    "EXP_PDU_TAG_SRC_PORT",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "LINKTYPE_WIRESHARK_UPPER_PDU",
    "PCAP_GLOBAL_HEADER",
    "PCAP_MAGIC",
    "PCAP_MAGIC_NS",
    "PCAP_RECORD_HEADER",
    "PcapError",
    "PcapRecord",
]

# ---------------------------------------------------------------- constants

PCAP_MAGIC: Final = 0xA1B2C3D4
"""Classic pcap magic, microsecond timestamps."""
PCAP_MAGIC_NS: Final = 0xA1B23C4D
"""Classic pcap magic, nanosecond timestamps."""
PCAPNG_SHB: Final = 0x0A0D0D0A
"""pcapng Section Header Block type (also the file's first four octets)."""

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_WIRESHARK_UPPER_PDU: Final = 252
LINKTYPE_LINUX_SLL2: Final = 276

# Wireshark's wsutil/exported_pdu_tlvs.h
EXP_PDU_TAG_END_OF_OPT: Final = 0
EXP_PDU_TAG_PROTO_NAME: Final = 12
"""EXP_PDU_TAG_DISSECTOR_NAME: the registered dissector to call."""
EXP_PDU_TAG_IPV4_SRC: Final = 20
EXP_PDU_TAG_IPV4_DST: Final = 21
EXP_PDU_TAG_IPV6_SRC: Final = 22
EXP_PDU_TAG_IPV6_DST: Final = 23
EXP_PDU_TAG_PORT_TYPE: Final = 24
EXP_PDU_TAG_SRC_PORT: Final = 25
EXP_PDU_TAG_DST_PORT: Final = 26
EXP_PDU_PT_TCP: Final = 2
EXP_PDU_PT_UDP: Final = 3

OSITP: Final = "ositp"
"""Name of Wireshark's COTP dissector (the protocol's filter name is ``cotp``)."""
_COTP_DISSECTORS = frozenset({"ositp", "cotp"})

DEFAULT_SNAPLEN: Final = 262144
"""Snapshot length written in the global header (libpcap's maximum)."""
_MAX_RECORD: Final = 1 << 24
"""Largest record the reader accepts (a sanity bound against corrupt files)."""

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_IPPROTO_TCP = 6
_IPPROTO_UDP = 17

Transport = Literal["udp", "tcp"]
Address = tuple[str, int]

# ---------------------------------------------------------------- formats

PCAP_GLOBAL_HEADER: Construct = Struct(
    "magic" / Int32ul,
    "version_major" / Int16ul,
    "version_minor" / Int16ul,
    "thiszone" / Int32sl,
    "sigfigs" / Int32ul,
    "snaplen" / Int32ul,
    "linktype" / Int32ul,
)
"""Classic pcap global header, little-endian (as written)."""

PCAP_RECORD_HEADER: Construct = Struct(
    "ts_sec" / Int32ul,
    "ts_frac" / Int32ul,
    "incl_len" / Int32ul,
    "orig_len" / Int32ul,
)
"""Classic pcap record header, little-endian; ``ts_frac`` in µs or ns per the magic."""

EXP_PDU_TAG: Construct = Struct(
    "tag" / Int16ub,
    "value" / Prefixed(Int16ub, GreedyBytes),
)
"""One exported-PDU tag: type, length, value (the length counts any padding)."""

# struct fast paths, tested equal to the construct definitions above
_S_RECORD = struct.Struct("<IIII")
_S_TAG = struct.Struct(">HH")
_S_TAG_U32 = struct.Struct(">HHI")


def _fmt(little: bool, spec: str) -> struct.Struct:
    return struct.Struct(("<" if little else ">") + spec)


# ---------------------------------------------------------------- errors and records


class PcapError(TPDUError):
    """A capture file that cannot be read (bad magic, truncated record, ...)."""

    def __init__(self, message: str, *, offset: int = 0) -> None:
        super().__init__(
            message,
            reason=DRReason.PROTOCOL_ERROR,
            cause=ERCause.NOT_SPECIFIED,
            offset=offset,
        )


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One transport payload found in a capture.

    Attributes:
        timestamp: capture time, seconds since the epoch.
        src: source (IP address, port); ``("0.0.0.0", 0)`` when unknown.
        dst: destination (IP address, port), likewise.
        payload: for UDP the whole datagram (one NSDU, possibly several
            TPDUs); for TCP the payload of one TPKT (one TPDU).
        transport: ``"udp"`` or ``"tcp"``.
        frame: 1-based number of the capture record (Wireshark's frame
            number) that carried, or completed, the payload.
    """

    timestamp: float
    src: Address
    dst: Address
    payload: bytes
    transport: Transport = "udp"
    frame: int = 0
