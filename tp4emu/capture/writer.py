"""The pcap writer: every TPDU tp4emu sends or receives, for Wireshark and tshark."""

from __future__ import annotations

import ipaddress
import os
import struct
from types import TracebackType
from typing import IO

from .exported import checked_port, exported_pdu_tags, ip_of
from .formats import (
    _IPPROTO_UDP,
    _S_RECORD,
    DEFAULT_SNAPLEN,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_WIRESHARK_UPPER_PDU,
    PCAP_GLOBAL_HEADER,
    PCAP_MAGIC,
    Address,
    Transport,
)

__all__ = ["PcapWriter", "ipv4_udp_packet"]

# ---------------------------------------------------------------- writer


def _inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of *data*."""
    if len(data) & 1:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ipv4_udp_packet(src: Address, dst: Address, payload: bytes, *, ident: int = 0) -> bytes:
    """An IPv4 packet (TTL 64, DF clear) carrying *payload* in a UDP datagram.

    Both checksums are computed.

    Raises:
        ValueError: a non-IPv4 address, a port out of range, or a payload
            that does not fit one IPv4 packet.
    """
    s, d = ip_of(src[0]), ip_of(dst[0])
    if s.version != 4 or d.version != 4:
        raise ValueError("only IPv4 packets can be synthesised")
    udp_len = 8 + len(payload)
    total = 20 + udp_len
    if total > 0xFFFF:
        raise ValueError(f"UDP payload of {len(payload)} octets does not fit an IPv4 packet")
    pseudo = s.packed + d.packed + struct.pack("!BBH", 0, _IPPROTO_UDP, udp_len)
    udp = struct.pack("!HHHH", checked_port(src[1]), checked_port(dst[1]), udp_len, 0) + payload
    ck = _inet_checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", ck) + udp[8:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0, 64, _IPPROTO_UDP, 0, s.packed, d.packed
    )
    ip = ip[:10] + struct.pack("!H", _inet_checksum(ip)) + ip[12:]
    return ip + udp


def _mac(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """A locally administered MAC address derived from an IPv4 address."""
    return b"\x02\x00" + addr.packed[-4:]


class PcapWriter:
    """Writes tp4emu datagrams to a classic pcap file.

    Usable as a context manager. Given a path it opens (and later closes) the
    file; given a binary file object it writes to it and leaves it open on
    :meth:`close` (after flushing). The global header is written at once.

    Example::

        with PcapWriter("trace.pcap") as pcap:
            pcap.write(datagram, src=("127.0.0.1", 40000), dst=("127.0.0.1", 10200),
                       timestamp=time.time())
    """

    def __init__(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        linktype: int = LINKTYPE_WIRESHARK_UPPER_PDU,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        """Open the capture and write its global header.

        Args:
            file: a path, or a binary file object open for writing.
            linktype: the link type of every record. :meth:`write` supports
                :data:`LINKTYPE_WIRESHARK_UPPER_PDU` (252, the default:
                exported PDUs, decoded by Wireshark as is),
                :data:`LINKTYPE_IPV4` (228) and :data:`LINKTYPE_ETHERNET` (1):
                synthesised IPv4/UDP packets (IPv4 and UDP only). With any
                other link type only :meth:`write_packet` can be used.
            snaplen: the snapshot length recorded in the header; records are
                never truncated.
        """
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"link type {linktype} out of range")
        self.linktype = linktype
        self._ident = 0
        if isinstance(file, (str, os.PathLike)):
            self._file: IO[bytes] = open(file, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._file = file
            self._owned = False
        self._closed = False
        self._file.write(
            PCAP_GLOBAL_HEADER.build(
                {
                    "magic": PCAP_MAGIC,
                    "version_major": 2,
                    "version_minor": 4,
                    "thiszone": 0,
                    "sigfigs": 0,
                    "snaplen": snaplen,
                    "linktype": linktype,
                }
            )
        )

    def write(
        self,
        datagram: bytes,
        *,
        src: Address,
        dst: Address,
        timestamp: float,
        transport: Transport = "udp",
    ) -> None:
        """Append one datagram as one record.

        Args:
            datagram: the bytes sent or received (one NSDU; for TCP, one TPDU
                without its TPKT header).
            src: source (IP address, port).
            dst: destination (IP address, port).
            timestamp: seconds since the epoch (the caller's clock: this
                module reads none).
            transport: ``"udp"``, or ``"tcp"`` (only with link type 252).

        Raises:
            ValueError: bad address or port, a negative timestamp, or
                something the link type cannot carry.
        """
        if self.linktype == LINKTYPE_WIRESHARK_UPPER_PDU:
            packet = exported_pdu_tags(src, dst, transport=transport) + datagram
        elif self.linktype not in (LINKTYPE_IPV4, LINKTYPE_ETHERNET):
            raise ValueError(f"write() cannot build link type {self.linktype} records")
        else:
            if transport != "udp":
                raise ValueError(f"link type {self.linktype} records can only carry UDP")
            self._ident = (self._ident + 1) & 0xFFFF
            packet = ipv4_udp_packet(src, dst, datagram, ident=self._ident)
            if self.linktype == LINKTYPE_ETHERNET:
                eth = _mac(ip_of(dst[0])) + _mac(ip_of(src[0])) + b"\x08\x00"
                packet = eth + packet
        self.write_packet(packet, timestamp=timestamp)

    def write_packet(self, packet: bytes, *, timestamp: float) -> None:
        """Append one record holding *packet* as is (a frame of the link type).

        Raises:
            ValueError: the writer is closed, or the timestamp is negative or
                beyond 2106 (32-bit seconds).
        """
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        if timestamp < 0:
            raise ValueError(f"negative timestamp {timestamp}")
        sec, usec = divmod(round(timestamp * 1_000_000), 1_000_000)
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp {timestamp} does not fit 32 bits")
        n = len(packet)
        self._file.write(_S_RECORD.pack(sec, usec, n, n))
        self._file.write(packet)

    def flush(self) -> None:
        """Flush the underlying file."""
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
