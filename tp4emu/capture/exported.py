"""Exported-PDU tags (pcap link type 252): built and parsed side by side.

A link type 252 record is a run of tags (type, length, value; Wireshark's
``wsutil/exported_pdu_tlvs.h``) naming the dissector and the addresses, then
the PDU itself. :func:`exported_pdu_tags` builds the tags the writer puts in
front of each datagram; :func:`parse_exported_pdu` reads them back (the
reader's path for link type 252).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .formats import (
    _S_TAG,
    _S_TAG_U32,
    EXP_PDU_PT_TCP,
    EXP_PDU_PT_UDP,
    EXP_PDU_TAG_DST_PORT,
    EXP_PDU_TAG_END_OF_OPT,
    EXP_PDU_TAG_IPV4_DST,
    EXP_PDU_TAG_IPV4_SRC,
    EXP_PDU_TAG_IPV6_DST,
    EXP_PDU_TAG_IPV6_SRC,
    EXP_PDU_TAG_PORT_TYPE,
    EXP_PDU_TAG_PROTO_NAME,
    EXP_PDU_TAG_SRC_PORT,
    OSITP,
    Address,
    Transport,
)

__all__ = ["ExportedPdu", "checked_port", "exported_pdu_tags", "ip_of", "parse_exported_pdu"]


def ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """*host* as an IP address (ValueError when it is not one)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {host!r}") from None


def checked_port(port: int) -> int:
    """*port*, checked to be in 0..65535."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of 0..65535")
    return port


def exported_pdu_tags(
    src: Address, dst: Address, *, transport: Transport = "udp", dissector: str = OSITP
) -> bytes:
    """The exported-PDU tags that precede a PDU in a link type 252 record.

    Dissector name (padded with NULs to a multiple of 4 octets, the length
    counting the padding, as Wireshark writes it), source and destination
    address (IPv4 or IPv6), port type, source and destination port, end of
    options.

    Raises:
        ValueError: an address that is not an IP address, a port out of
            range, or source and destination of different IP versions.
    """
    name = dissector.encode("ascii")
    name += b"\x00" * (-len(name) % 4)
    s, d = ip_of(src[0]), ip_of(dst[0])
    if s.version != d.version:
        raise ValueError(f"{src[0]} and {dst[0]} are not of the same IP version")
    tag_src, tag_dst = (
        (EXP_PDU_TAG_IPV4_SRC, EXP_PDU_TAG_IPV4_DST)
        if s.version == 4
        else (EXP_PDU_TAG_IPV6_SRC, EXP_PDU_TAG_IPV6_DST)
    )
    alen = len(s.packed)
    port_type = EXP_PDU_PT_UDP if transport == "udp" else EXP_PDU_PT_TCP
    return b"".join(
        (
            _S_TAG.pack(EXP_PDU_TAG_PROTO_NAME, len(name)),
            name,
            _S_TAG.pack(tag_src, alen),
            s.packed,
            _S_TAG.pack(tag_dst, alen),
            d.packed,
            _S_TAG_U32.pack(EXP_PDU_TAG_PORT_TYPE, 4, port_type),
            _S_TAG_U32.pack(EXP_PDU_TAG_SRC_PORT, 4, checked_port(src[1])),
            _S_TAG_U32.pack(EXP_PDU_TAG_DST_PORT, 4, checked_port(dst[1])),
            _S_TAG.pack(EXP_PDU_TAG_END_OF_OPT, 0),
        )
    )


@dataclass(frozen=True, slots=True)
class ExportedPdu:
    """What the tags of one exported-PDU record say, and where the PDU starts."""

    dissector: str | None
    src: Address
    dst: Address
    transport: Transport
    offset: int
    """Where the PDU starts in the record."""


def parse_exported_pdu(data: bytes) -> ExportedPdu | None:
    """The tags at the start of *data*; None when they are malformed (no end tag)."""
    pos = 0
    n = len(data)
    dissector = None
    src_ip = dst_ip = "0.0.0.0"
    sport = dport = 0
    transport: Transport = "udp"
    while True:
        if pos + 4 > n:
            return None  # no end-of-options tag
        tag, length = _S_TAG.unpack_from(data, pos)
        pos += 4
        value = data[pos : pos + length]
        if len(value) != length:
            return None
        pos += length
        if tag == EXP_PDU_TAG_END_OF_OPT:
            break
        if tag == EXP_PDU_TAG_PROTO_NAME:
            dissector = value.rstrip(b"\x00").decode("ascii", "replace")
        elif tag in (EXP_PDU_TAG_IPV4_SRC, EXP_PDU_TAG_IPV6_SRC) and length in (4, 16):
            src_ip = str(ipaddress.ip_address(value))
        elif tag in (EXP_PDU_TAG_IPV4_DST, EXP_PDU_TAG_IPV6_DST) and length in (4, 16):
            dst_ip = str(ipaddress.ip_address(value))
        elif tag == EXP_PDU_TAG_SRC_PORT and length == 4:
            sport = int.from_bytes(value, "big") & 0xFFFF
        elif tag == EXP_PDU_TAG_DST_PORT and length == 4:
            dport = int.from_bytes(value, "big") & 0xFFFF
        elif tag == EXP_PDU_TAG_PORT_TYPE and length == 4:
            transport = "tcp" if int.from_bytes(value, "big") == EXP_PDU_PT_TCP else "udp"
    return ExportedPdu(dissector, (src_ip, sport), (dst_ip, dport), transport, pos)
