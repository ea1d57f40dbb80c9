"""Reading captures: pcap and pcapng, exported PDUs and plain IPv4 UDP/TCP packets."""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import IO

from ..wire.errors import TPDUError
from ..wire.tpkt import RFC1006_PORT, TPKTDecoder
from .exported import parse_exported_pdu
from .formats import (
    _COTP_DISSECTORS,
    _ETHERTYPE_IPV4,
    _ETHERTYPE_VLAN,
    _IPPROTO_TCP,
    _IPPROTO_UDP,
    _MAX_RECORD,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_WIRESHARK_UPPER_PDU,
    PCAP_MAGIC,
    PCAP_MAGIC_NS,
    PCAPNG_SHB,
    Address,
    PcapError,
    PcapRecord,
    _fmt,
)

__all__ = ["read_pcap"]

# ---------------------------------------------------------------- reader


class _Stream:
    """Reads exact amounts from a file, tracking the offset for errors."""

    __slots__ = ("f", "offset")

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.offset = 0

    def read(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise PcapError(
                f"truncated capture: {what} needs {n} octets, {len(data)} left",
                offset=self.offset,
            )
        self.offset += n
        return data

    def at_eof(self) -> bytes:
        """Read one octet; empty at the end of the file."""
        data = self.f.read(1)
        self.offset += len(data)
        return data


@dataclass(slots=True)
class _TcpFlow:
    decoder: TPKTDecoder
    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    broken: bool = False


@dataclass(slots=True)
class _Fragments:
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None


class _Decoder:
    """Turns link-layer frames into :class:`PcapRecord` objects."""

    def __init__(self, udp_ports: Collection[int] | None, tpkt_ports: Collection[int]) -> None:
        self.udp_ports = udp_ports
        self.tpkt_ports = tpkt_ports
        self.flows: dict[tuple[Address, Address], _TcpFlow] = {}
        self.fragments: dict[tuple[bytes, bytes, int, int], _Fragments] = {}

    def frame(self, linktype: int, data: bytes, ts: float, frame: int) -> list[PcapRecord]:
        if linktype == LINKTYPE_WIRESHARK_UPPER_PDU:
            return self._exported(data, ts, frame)
        ip = self._link(linktype, data)
        if ip is None:
            return []
        return self._ipv4(ip, ts, frame)

    # -- link layers

    @staticmethod
    def _link(linktype: int, data: bytes) -> bytes | None:
        """The IPv4 packet in a frame, or None."""
        if linktype == LINKTYPE_ETHERNET:
            pos = 12
            while len(data) >= pos + 2:
                ethertype = (data[pos] << 8) | data[pos + 1]
                if ethertype in _ETHERTYPE_VLAN:
                    pos += 4
                    continue
                return data[pos + 2 :] if ethertype == _ETHERTYPE_IPV4 else None
            return None
        if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
            return data
        if linktype == LINKTYPE_LINUX_SLL:
            ok = len(data) >= 16 and data[14:16] == b"\x08\x00"
            return data[16:] if ok else None
        if linktype == LINKTYPE_LINUX_SLL2:
            ok = len(data) >= 20 and data[0:2] == b"\x08\x00"
            return data[20:] if ok else None
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # AF_INET is 2 everywhere; NULL is in the capturing host's order.
            ok = len(data) >= 4 and data[:4] in (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02")
            return data[4:] if ok else None
        return None  # pragma: no cover - filtered by read_pcap

    # -- exported PDU

    def _exported(self, data: bytes, ts: float, frame: int) -> list[PcapRecord]:
        tags = parse_exported_pdu(data)
        if tags is None or tags.dissector not in _COTP_DISSECTORS:
            return []  # malformed, or not for the COTP dissector
        payload = data[tags.offset :]
        return [PcapRecord(ts, tags.src, tags.dst, payload, tags.transport, frame)]

    # -- IPv4

    def _ipv4(self, ip: bytes, ts: float, frame: int) -> list[PcapRecord]:
        if len(ip) < 20 or ip[0] >> 4 != 4:
            return []
        ihl = (ip[0] & 0x0F) * 4
        total = (ip[2] << 8) | ip[3]
        if ihl < 20 or total < ihl or total > len(ip):
            return []  # malformed or truncated by the snapshot length
        ip = ip[:total]  # drop link-layer padding
        proto = ip[9]
        src, dst = ip[12:16], ip[16:20]
        flags_frag = (ip[6] << 8) | ip[7]
        body = ip[ihl:]
        more = bool(flags_frag & 0x2000)
        offset = (flags_frag & 0x1FFF) * 8
        if more or offset:
            ident = (ip[4] << 8) | ip[5]
            whole = self._reassemble((src, dst, ident, proto), offset, body, more)
            if whole is None:
                return []
            body = whole
        s, d = str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst))
        if proto == _IPPROTO_UDP:
            return self._udp(s, d, body, ts, frame)
        if proto == _IPPROTO_TCP:
            return self._tcp(s, d, body, ts, frame)
        return []

    def _reassemble(
        self, key: tuple[bytes, bytes, int, int], offset: int, body: bytes, more: bool
    ) -> bytes | None:
        entry = self.fragments.setdefault(key, _Fragments())
        entry.parts[offset] = body
        if not more:
            entry.total = offset + len(body)
        if entry.total is None:
            return None
        out = bytearray()
        for off in sorted(entry.parts):
            if off > len(out):
                return None  # a hole
            out[off:] = b""
            out += entry.parts[off]
        if len(out) < entry.total:
            return None
        del self.fragments[key]
        return bytes(out[: entry.total])

    # -- UDP

    def _udp(self, s: str, d: str, seg: bytes, ts: float, frame: int) -> list[PcapRecord]:
        if len(seg) < 8:
            return []
        sport, dport, length = struct.unpack_from("!HHH", seg)
        ports = self.udp_ports
        if ports is not None and sport not in ports and dport not in ports:
            return []
        if length == 0:  # jumbogram convention: the rest
            length = len(seg)
        if not 8 <= length <= len(seg):
            return []
        return [PcapRecord(ts, (s, sport), (d, dport), seg[8:length], "udp", frame)]

    # -- TCP + TPKT

    def _tcp(self, s: str, d: str, seg: bytes, ts: float, frame: int) -> list[PcapRecord]:
        if len(seg) < 20:
            return []
        sport, dport, seq = struct.unpack_from("!HHI", seg)
        if sport not in self.tpkt_ports and dport not in self.tpkt_ports:
            return []
        doff = (seg[12] >> 4) * 4
        flags = seg[13]
        syn, fin, rst = bool(flags & 0x02), bool(flags & 0x01), bool(flags & 0x04)
        if doff < 20 or doff > len(seg):
            return []
        payload = seg[doff:]
        key = ((s, sport), (d, dport))
        flow = self.flows.get(key)
        if syn or flow is None:
            flow = _TcpFlow(TPKTDecoder())
            self.flows[key] = flow
            flow.next_seq = (seq + 1) & 0xFFFFFFFF if syn else seq
        out: list[PcapRecord] = []
        if payload and not flow.broken:
            if syn:
                seq = (seq + 1) & 0xFFFFFFFF
            self._tcp_data(flow, seq, payload, key, ts, frame, out)
        if fin or rst:
            del self.flows[key]
        return out

    def _tcp_data(
        self,
        flow: _TcpFlow,
        seq: int,
        payload: bytes,
        key: tuple[Address, Address],
        ts: float,
        frame: int,
        out: list[PcapRecord],
    ) -> None:
        """Deliver in-order stream data to the flow's TPKT decoder."""
        pending = flow.pending
        if len(payload) > len(pending.get(seq, b"")):
            pending[seq] = payload
        while pending:
            nxt = flow.next_seq
            assert nxt is not None
            for start in pending:
                delta = ((start - nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                if delta <= 0:  # in order, or overlapping what was delivered
                    break
            else:
                return  # only segments beyond a gap: wait for the missing data
            data = pending.pop(start)[-delta:]
            if not data:
                continue  # a pure retransmission
            flow.next_seq = (nxt + len(data)) & 0xFFFFFFFF
            try:
                tpdus = flow.decoder.feed(data)
            except TPDUError:
                flow.broken = True
                pending.clear()
                return
            out.extend(PcapRecord(ts, key[0], key[1], t, "tcp", frame) for t in tpdus)


def read_pcap(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    udp_ports: Collection[int] | None = None,
    tpkt_ports: Collection[int] = (RFC1006_PORT,),
) -> Iterator[PcapRecord]:
    """Yield the transport payloads of a pcap or pcapng capture.

    Args:
        source: a path or a binary file object open for reading.
        udp_ports: yield only UDP datagrams from or to these ports (default:
            every UDP datagram).
        tpkt_ports: TCP streams from or to these ports are decoded as RFC 1006
            TPKTs (default: port 102). A stream whose framing breaks is
            ignored until its next SYN.

    Records of link type 252 are yielded when their dissector tag is
    ``ositp`` or ``cotp`` (whatever the ports). In captured packets only IPv4
    is handled; other packets are skipped, as are packets cut short by the
    snapshot length.

    Raises:
        PcapError: not a pcap/pcapng file, an unsupported link type, or a
            truncated or corrupt record (after the records before it).
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _read(f, udp_ports, tpkt_ports)
    else:
        yield from _read(source, udp_ports, tpkt_ports)


_SUPPORTED = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_WIRESHARK_UPPER_PDU,
        LINKTYPE_LINUX_SLL2,
    }
)


def _check_linktype(linktype: int, offset: int) -> None:
    if linktype not in _SUPPORTED:
        raise PcapError(f"unsupported link type {linktype}", offset=offset)


def _read(
    f: IO[bytes], udp_ports: Collection[int] | None, tpkt_ports: Collection[int]
) -> Iterator[PcapRecord]:
    stream = _Stream(f)
    head = stream.read(4, "file magic")
    decoder = _Decoder(udp_ports, tpkt_ports)
    if head == PCAPNG_SHB.to_bytes(4, "little"):
        yield from _read_pcapng(stream, head, decoder)
        return
    magic_le = int.from_bytes(head, "little")
    magic_be = int.from_bytes(head, "big")
    if magic_le in (PCAP_MAGIC, PCAP_MAGIC_NS):
        little, magic = True, magic_le
    elif magic_be in (PCAP_MAGIC, PCAP_MAGIC_NS):
        little, magic = False, magic_be
    else:
        raise PcapError(f"not a pcap or pcapng file (magic {head.hex()})")
    hdr = _fmt(little, "HHiIII").unpack(stream.read(20, "global header"))
    linktype = hdr[5] & 0x0FFFFFFF  # the top bits may carry FCS information
    _check_linktype(linktype, 20)
    per_second = 1_000_000_000 if magic == PCAP_MAGIC_NS else 1_000_000
    rec = _fmt(little, "IIII")
    frame = 0
    while True:
        first = stream.at_eof()
        if not first:
            return
        start = stream.offset - 1
        ts_sec, ts_frac, incl, _orig = rec.unpack(first + stream.read(15, "record header"))
        if incl > _MAX_RECORD:
            raise PcapError(f"record of {incl} octets: corrupt capture", offset=start)
        data = stream.read(incl, "record")
        frame += 1
        ts = (ts_sec * per_second + ts_frac) / per_second  # one rounding only
        yield from decoder.frame(linktype, data, ts, frame)


def _read_pcapng(stream: _Stream, head: bytes, decoder: _Decoder) -> Iterator[PcapRecord]:
    little = True
    interfaces: list[tuple[int, int]] = []  # (link type, ticks per second)
    frame = 0
    block_type_raw: bytes | None = head
    while True:
        if block_type_raw is None:
            first = stream.at_eof()
            if not first:
                return
            block_type_raw = first + stream.read(3, "block type")
        start = stream.offset - 4
        length_raw = stream.read(4, "block length")
        if block_type_raw == PCAPNG_SHB.to_bytes(4, "little"):
            bom = stream.read(4, "byte-order magic")
            if bom == b"\x4d\x3c\x2b\x1a":
                little = True
            elif bom == b"\x1a\x2b\x3c\x4d":
                little = False
            else:
                raise PcapError("bad pcapng byte-order magic", offset=start)
            interfaces = []
            consumed = 12
        else:
            consumed = 8
        u32 = _fmt(little, "I")
        btype = u32.unpack(block_type_raw)[0]
        (length,) = u32.unpack(length_raw)
        if length < consumed + 4 or length % 4 or length > _MAX_RECORD:
            raise PcapError(f"bad pcapng block length {length}", offset=start)
        body = stream.read(length - consumed - 4, "block body")
        (trailer,) = u32.unpack(stream.read(4, "block trailer"))
        if trailer != length:
            raise PcapError("pcapng block length mismatch", offset=start)
        block_type_raw = None
        if btype == 1:  # interface description
            if len(body) < 8:
                raise PcapError("short pcapng interface block", offset=start)
            linktype = _fmt(little, "H").unpack_from(body)[0]
            _check_linktype(linktype, start)
            interfaces.append((linktype, _tsresol(body[8:], little)))
        elif btype in (6, 2):  # enhanced packet, obsolete packet
            if len(body) < 20:
                raise PcapError("short pcapng packet block", offset=start)
            if btype == 6:
                iface, hi, lo, caplen, _ = _fmt(little, "IIIII").unpack_from(body)
            else:
                iface, _drops, hi, lo, caplen, _ = _fmt(little, "HHIIII").unpack_from(body)
            if iface >= len(interfaces) or 20 + caplen > len(body):
                raise PcapError("bad pcapng packet block", offset=start)
            linktype, per_second = interfaces[iface]
            frame += 1
            ts = ((hi << 32) | lo) / per_second
            yield from decoder.frame(linktype, body[20 : 20 + caplen], ts, frame)
        elif btype == 3:  # simple packet: no timestamp
            if not interfaces or len(body) < 4:
                raise PcapError("bad pcapng simple packet block", offset=start)
            (orig,) = u32.unpack_from(body)
            frame += 1
            yield from decoder.frame(interfaces[0][0], body[4 : 4 + orig], 0.0, frame)
        # other blocks (name resolution, statistics, ...) are skipped


def _tsresol(options: bytes, little: bool) -> int:
    """Timestamp ticks per second, from an interface block's options."""
    hdr = _fmt(little, "HH")
    pos = 0
    while pos + 4 <= len(options):
        code, length = hdr.unpack_from(options, pos)
        pos += 4
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            v = options[pos]
            return 1 << (v & 0x7F) if v & 0x80 else 10**v
        pos += length + (-length % 4)
    return 1_000_000
