"""The pcap writer (exported PDUs, synthesised IPv4/UDP) and the capture reader."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tp4emu.capture import (
    EXP_PDU_TAG,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_WIRESHARK_UPPER_PDU,
    PCAP_GLOBAL_HEADER,
    PCAP_RECORD_HEADER,
    PcapError,
    PcapRecord,
    PcapWriter,
    exported_pdu_tags,
    ipv4_udp_packet,
    read_pcap,
)
from tp4emu.wire.errors import TPDUError
from tp4emu.wire.tpkt import encode_tpkt

AK = bytes.fromhex("0464567806")  # AK dst-ref 0x5678, YR-TU-NR 6, credit 4
DT = bytes.fromhex("04f0567885") + b"data"
CR0 = bytes.fromhex("0ee00000000100c0010bc2020102")  # class 0 CR, as over RFC 1006
DT0 = bytes.fromhex("02f080") + b"hello"
A = ("10.0.0.1", 40000)
B = ("10.0.0.2", 10200)
TS = 1700000000.25

GLOBAL_HEADER_252 = bytes.fromhex(
    "d4c3b2a1"  # magic, little-endian, microseconds
    "0200" "0400"  # version 2.4
    "00000000"  # thiszone
    "00000000"  # sigfigs
    "00000400"  # snaplen 262144
    "fc000000"  # link type 252
)  # fmt: skip

RECORD_AK = bytes.fromhex(
    "00f15365"  # ts_sec 1700000000
    "90d00300"  # ts_usec 250000
    "3d000000"  # incl_len 61
    "3d000000"  # orig_len 61
    "000c0008" "6f7369747000" "0000"  # dissector name "ositp", NUL-padded to 8
    "00140004" "0a000001"  # IPv4 source 10.0.0.1
    "00150004" "0a000002"  # IPv4 destination 10.0.0.2
    "00180004" "00000003"  # port type: UDP
    "00190004" "00009c40"  # source port 40000
    "001a0004" "000027d8"  # destination port 10200
    "00000000"  # end of options
    "0464567806"  # the AK
)  # fmt: skip

ETHERNET_AK = bytes.fromhex(
    "02000a000002"  # destination MAC (derived from 10.0.0.2)
    "02000a000001"  # source MAC
    "0800"  # IPv4
    "45000021" "00010000" "401166c9" "0a000001" "0a000002"  # IPv4 header, checksum 0x66c9
    "9c4027d8" "000dc6dc"  # UDP 40000 -> 10200, length 13, checksum 0xc6dc
    "0464567806"
)  # fmt: skip


def _written(linktype: int = LINKTYPE_WIRESHARK_UPPER_PDU) -> tuple[io.BytesIO, PcapWriter]:
    buf = io.BytesIO()
    return buf, PcapWriter(buf, linktype=linktype)


# ---------------------------------------------------------------- writer: exact bytes


def test_global_header_bytes() -> None:
    buf, _ = _written()
    assert buf.getvalue() == GLOBAL_HEADER_252


def test_exported_pdu_record_bytes() -> None:
    buf, w = _written()
    w.write(AK, src=A, dst=B, timestamp=TS)
    assert buf.getvalue() == GLOBAL_HEADER_252 + RECORD_AK


def test_ethernet_record_bytes() -> None:
    buf, w = _written(LINKTYPE_ETHERNET)
    w.write(AK, src=A, dst=B, timestamp=TS)
    data = buf.getvalue()
    assert data[20:24] == b"\x01\x00\x00\x00"
    assert data[24:40] == bytes.fromhex("00f1536590d003002f0000002f000000")
    assert data[40:] == ETHERNET_AK


def test_raw_ipv4_record_bytes() -> None:
    buf, w = _written(LINKTYPE_IPV4)
    w.write(AK, src=A, dst=B, timestamp=TS)
    assert buf.getvalue()[40:] == ETHERNET_AK[14:]
    assert ipv4_udp_packet(A, B, AK, ident=1) == ETHERNET_AK[14:]


def test_header_constructs_match_the_struct_paths() -> None:
    built = PCAP_GLOBAL_HEADER.build(
        {
            "magic": 0xA1B2C3D4,
            "version_major": 2,
            "version_minor": 4,
            "thiszone": 0,
            "sigfigs": 0,
            "snaplen": 262144,
            "linktype": 252,
        }
    )
    assert built == GLOBAL_HEADER_252
    rec = PCAP_RECORD_HEADER.parse(RECORD_AK[:16])
    assert (rec.ts_sec, rec.ts_frac, rec.incl_len, rec.orig_len) == (1700000000, 250000, 61, 61)
    assert PCAP_RECORD_HEADER.build(rec) == RECORD_AK[:16]


@given(
    st.sampled_from(["ositp", "cotp", "x", "abcd", "tpkt"]),
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.sampled_from(["udp", "tcp"]),
)
def test_tags_parse_with_the_construct_definition(
    name: str, src: tuple[str, int], dst: tuple[str, int], transport: str
) -> None:
    raw = exported_pdu_tags(src, dst, transport=transport, dissector=name)  # type: ignore[arg-type]
    tags = []
    pos = 0
    while True:
        tag = EXP_PDU_TAG.parse(raw[pos:])
        tags.append((tag.tag, tag.value))
        pos += 4 + len(tag.value)
        assert len(tag.value) % 4 == 0
        if tag.tag == 0:
            break
    assert pos == len(raw)
    assert b"".join(EXP_PDU_TAG.build({"tag": t, "value": v}) for t, v in tags) == raw
    by_tag = dict(tags)
    assert by_tag[12].rstrip(b"\x00") == name.encode()
    assert by_tag[24] == (3 if transport == "udp" else 2).to_bytes(4, "big")
    assert by_tag[25] == src[1].to_bytes(4, "big")
    assert by_tag[26] == dst[1].to_bytes(4, "big")


def test_ipv6_tags() -> None:
    raw = exported_pdu_tags(("::1", 1), ("fe80::2", 2))
    assert bytes.fromhex("00160010" + "00" * 15 + "01") in raw
    assert bytes.fromhex("00170010fe80" + "00" * 13 + "02") in raw


# ---------------------------------------------------------------- writer: behaviour


def test_path_is_opened_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "t.pcap"
    with PcapWriter(path) as w:
        w.write(AK, src=A, dst=B, timestamp=TS)
    assert w._file.closed
    assert path.read_bytes() == GLOBAL_HEADER_252 + RECORD_AK
    with PcapWriter(str(path)) as w:
        pass
    assert path.read_bytes() == GLOBAL_HEADER_252


def test_file_object_is_left_open() -> None:
    buf = io.BytesIO()
    with PcapWriter(buf) as w:
        w.write(AK, src=A, dst=B, timestamp=TS)
    assert not buf.closed
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.write(AK, src=A, dst=B, timestamp=TS)


def test_timestamp_rounding_and_range() -> None:
    buf, w = _written()
    w.write(AK, src=A, dst=B, timestamp=1.9999996)  # rounds up into the next second
    w.write(AK, src=A, dst=B, timestamp=0xFFFFFFFF + 0.999999)
    recs = list(read_pcap(io.BytesIO(buf.getvalue())))
    assert recs[0].timestamp == 2.0
    assert recs[1].timestamp == 0xFFFFFFFF + 0.999999
    with pytest.raises(ValueError, match="32 bits"):
        w.write(AK, src=A, dst=B, timestamp=2.0**32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"src": ("localhost", 1), "dst": B, "timestamp": TS}, "not an IP address"),
        ({"src": ("::1", 1), "dst": B, "timestamp": TS}, "same IP version"),
        ({"src": ("10.0.0.1", 65536), "dst": B, "timestamp": TS}, "port"),
        ({"src": A, "dst": B, "timestamp": -1.0}, "negative"),
    ],
)
def test_write_errors(kwargs: dict[str, object], message: str) -> None:
    _, w = _written()
    with pytest.raises(ValueError, match=message):
        w.write(AK, **kwargs)  # type: ignore[arg-type]


def test_synthesised_packets_are_ipv4_udp_only() -> None:
    _, w = _written(LINKTYPE_ETHERNET)
    with pytest.raises(ValueError, match="IPv4"):
        w.write(AK, src=("::1", 1), dst=("::2", 2), timestamp=TS)
    with pytest.raises(ValueError, match="UDP"):
        w.write(AK, src=A, dst=B, timestamp=TS, transport="tcp")
    with pytest.raises(ValueError, match="does not fit"):
        w.write(bytes(65508), src=A, dst=B, timestamp=TS)
    _, w = _written(LINKTYPE_LINUX_SLL)
    with pytest.raises(ValueError, match="cannot build"):
        w.write(AK, src=A, dst=B, timestamp=TS)


# ---------------------------------------------------------------- reader: our own files


def test_round_trip_exported_pdus(tmp_path: Path) -> None:
    path = tmp_path / "rt.pcap"
    sent = [
        (AK, A, B, TS, "udp"),
        (AK + DT, B, A, TS + 0.000001, "udp"),
        (CR0, ("192.168.1.1", 1102), ("192.168.1.2", 102), TS + 1, "tcp"),
        (DT, ("::1", 5), ("::2", 6), TS + 2.5, "udp"),
    ]
    with PcapWriter(path) as w:
        for payload, src, dst, ts, transport in sent:
            w.write(payload, src=src, dst=dst, timestamp=ts, transport=transport)  # type: ignore[arg-type]
    got = list(read_pcap(path))
    assert got == [
        PcapRecord(ts, src, dst, payload, transport, i)  # type: ignore[arg-type]
        for i, (payload, src, dst, ts, transport) in enumerate(sent, 1)
    ]


@pytest.mark.parametrize("linktype", [LINKTYPE_ETHERNET, LINKTYPE_IPV4])
def test_round_trip_synthesised(linktype: int) -> None:
    buf, w = _written(linktype)
    w.write(AK, src=A, dst=B, timestamp=TS)
    w.write(AK + DT, src=B, dst=A, timestamp=TS + 1)
    got = list(read_pcap(io.BytesIO(buf.getvalue())))
    assert got == [
        PcapRecord(TS, A, B, AK, "udp", 1),
        PcapRecord(TS + 1, B, A, AK + DT, "udp", 2),
    ]


def test_exported_pdu_for_another_dissector_is_skipped() -> None:
    buf, w = _written()
    w.write_packet(exported_pdu_tags(A, B, dissector="sip") + b"INVITE", timestamp=TS)
    w.write_packet(exported_pdu_tags(A, B, dissector="cotp") + AK, timestamp=TS)
    w.write_packet(b"\x00\x0c\x00\x08ositp", timestamp=TS)  # cut short: malformed, skipped
    w.write_packet(b"\x00\x0c\x00", timestamp=TS)
    assert [(r.frame, r.payload) for r in read_pcap(io.BytesIO(buf.getvalue()))] == [(2, AK)]


def test_exported_pdu_without_addresses() -> None:
    buf, w = _written()
    w.write_packet(b"\x00\x0c\x00\x08ositp\x00\x00\x00\x00\x00\x00\x00" + AK, timestamp=TS)
    (rec,) = read_pcap(io.BytesIO(buf.getvalue()))
    assert (rec.src, rec.dst, rec.payload) == (("0.0.0.0", 0), ("0.0.0.0", 0), AK)


# ---------------------------------------------------------------- reader: plain captures


def _eth(payload: bytes, ethertype: int = 0x0800, vlans: int = 0) -> bytes:
    tags = b"\x81\x00\x00\x05" * vlans
    return b"\x02" * 6 + b"\x04" * 6 + tags + ethertype.to_bytes(2, "big") + payload


IP_AK = ipv4_udp_packet(A, B, AK)
FRAMINGS = [
    (LINKTYPE_ETHERNET, _eth(IP_AK)),
    (LINKTYPE_ETHERNET, _eth(IP_AK, vlans=2)),
    (LINKTYPE_ETHERNET, _eth(IP_AK) + b"\x00" * 20),  # Ethernet padding after the packet
    (LINKTYPE_RAW, IP_AK),
    (LINKTYPE_IPV4, IP_AK),
    (LINKTYPE_NULL, b"\x02\x00\x00\x00" + IP_AK),
    (LINKTYPE_NULL, b"\x00\x00\x00\x02" + IP_AK),
    (LINKTYPE_LOOP, b"\x00\x00\x00\x02" + IP_AK),
    (LINKTYPE_LINUX_SLL, b"\x00\x00\x03\x04\x00\x06" + b"\x02" * 8 + b"\x08\x00" + IP_AK),
    (LINKTYPE_LINUX_SLL2, b"\x08\x00\x00\x00" + b"\x00" * 16 + IP_AK),
]  # fmt: skip


@pytest.mark.parametrize(("linktype", "frame"), FRAMINGS)
def test_link_types(linktype: int, frame: bytes) -> None:
    buf, w = _written(linktype)
    w.write_packet(frame, timestamp=TS)
    assert list(read_pcap(io.BytesIO(buf.getvalue()))) == [PcapRecord(TS, A, B, AK, "udp", 1)]


NOT_IPV4_UDP = [
    (LINKTYPE_ETHERNET, _eth(IP_AK, ethertype=0x86DD)),  # IPv6 ethertype
    (LINKTYPE_ETHERNET, _eth(b"", ethertype=0x0800)),  # empty
    (LINKTYPE_ETHERNET, b"\x02" * 12 + b"\x81\x00"),  # VLAN tag cut short
    (LINKTYPE_ETHERNET, _eth(IP_AK[:30])),  # cut by the snapshot length
    (LINKTYPE_RAW, b"\x60" + IP_AK[1:]),  # IPv6 version nibble
    (LINKTYPE_RAW, IP_AK[:9] + b"\x01" + IP_AK[10:]),  # ICMP
    (LINKTYPE_RAW, b"\x44" + IP_AK[1:]),  # IHL 16 octets
    (LINKTYPE_RAW, IP_AK[:20] + b"\x9c\x40\x27\xd8\x00\x05\x00\x00" + AK),  # UDP length 5
    (LINKTYPE_RAW, IP_AK[:2] + b"\x00\x1b" + IP_AK[4:27]),  # IP total length 27: short UDP
    (LINKTYPE_NULL, b"\x18\x00\x00\x00" + IP_AK),  # AF_INET6 (BSD)
    (LINKTYPE_LINUX_SLL, b"\x00" * 14 + b"\x86\xdd" + IP_AK),
    (LINKTYPE_LINUX_SLL2, b"\x86\xdd" + b"\x00" * 18 + IP_AK),
]


@pytest.mark.parametrize(("linktype", "frame"), NOT_IPV4_UDP)
def test_other_packets_are_skipped(linktype: int, frame: bytes) -> None:
    buf, w = _written(linktype)
    w.write_packet(frame, timestamp=TS)
    w.write_packet(ipv4_udp_packet(B, A, DT) if linktype in (101, 228) else b"", timestamp=TS)
    got = [(r.frame, r.payload) for r in read_pcap(io.BytesIO(buf.getvalue()))]
    assert got == ([(2, DT)] if linktype in (101, 228) else [])


def test_udp_port_filter() -> None:
    buf, w = _written(LINKTYPE_IPV4)
    w.write(AK, src=A, dst=B, timestamp=TS)
    w.write(DT, src=("10.0.0.3", 53), dst=("10.0.0.4", 5353), timestamp=TS)
    w.write(DT, src=B, dst=A, timestamp=TS)
    data = buf.getvalue()
    assert [r.frame for r in read_pcap(io.BytesIO(data))] == [1, 2, 3]
    assert [r.frame for r in read_pcap(io.BytesIO(data), udp_ports={10200})] == [1, 3]
    assert [r.frame for r in read_pcap(io.BytesIO(data), udp_ports=())] == []


def test_udp_length_zero_means_the_rest() -> None:
    pkt = bytearray(ipv4_udp_packet(A, B, AK))
    pkt[24:26] = b"\x00\x00"
    buf, w = _written(LINKTYPE_RAW)
    w.write_packet(bytes(pkt), timestamp=TS)
    assert [r.payload for r in read_pcap(io.BytesIO(buf.getvalue()))] == [AK]


def _fragment(packet: bytes, cut: int) -> tuple[bytes, bytes]:
    """Split an IPv4 packet (20-octet header) after *cut* payload octets (multiple of 8)."""
    header, body = bytearray(packet[:20]), packet[20:]
    first, second = bytearray(header), bytearray(header)
    first[2:4] = (20 + cut).to_bytes(2, "big")
    first[6:8] = (0x2000).to_bytes(2, "big")  # MF
    second[2:4] = (20 + len(body) - cut).to_bytes(2, "big")
    second[6:8] = (cut // 8).to_bytes(2, "big")
    return bytes(first) + body[:cut], bytes(second) + body[cut:]


def test_ipv4_fragments_are_reassembled() -> None:
    payload = DT + bytes(range(200))
    one, two = _fragment(ipv4_udp_packet(A, B, payload, ident=7), 64)
    buf, w = _written(LINKTYPE_RAW)
    w.write_packet(two, timestamp=TS)  # out of order
    w.write_packet(ipv4_udp_packet(B, A, AK), timestamp=TS + 1)
    w.write_packet(one, timestamp=TS + 2)
    got = list(read_pcap(io.BytesIO(buf.getvalue())))
    assert got == [
        PcapRecord(TS + 1, B, A, AK, "udp", 2),
        PcapRecord(TS + 2, A, B, payload, "udp", 3),
    ]


def test_incomplete_fragments_yield_nothing() -> None:
    one, _ = _fragment(ipv4_udp_packet(A, B, bytes(100)), 64)
    _, two = _fragment(ipv4_udp_packet(A, B, bytes(100), ident=9), 64)
    buf, w = _written(LINKTYPE_RAW)
    w.write_packet(one, timestamp=TS)
    w.write_packet(two, timestamp=TS)  # different IP id: another datagram
    assert list(read_pcap(io.BytesIO(buf.getvalue()))) == []


# ---------------------------------------------------------------- reader: TCP + TPKT


def _tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, flags: str, data: bytes) -> bytes:
    """An IPv4/TCP packet (checksums left 0: the reader does not verify them)."""
    bits = sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[f] for f in flags)
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, 0, 5 << 4, bits, 65535, 0, 0)
    ip = bytearray(ipv4_udp_packet(src, dst, b"")[:20])
    ip[2:4] = (20 + len(tcp) + len(data)).to_bytes(2, "big")
    ip[9] = 6
    return bytes(ip) + tcp + data


C = ("10.1.1.1", 49152)
S = ("10.1.1.2", 102)


def _tcp_capture(segments: list[bytes]) -> io.BytesIO:
    buf, w = _written(LINKTYPE_ETHERNET)
    for i, seg in enumerate(segments):
        w.write_packet(_eth(seg), timestamp=TS + i)
    return io.BytesIO(buf.getvalue())


def test_tcp_tpkt_stream() -> None:
    isn = 0xFFFFFFF0  # the sequence numbers wrap around
    s1, s2, s3 = encode_tpkt(CR0), encode_tpkt(DT0), encode_tpkt(DT0 + b"!")
    stream = s1 + s2 + s3
    segs = [
        _tcp(C, S, isn, "S", b""),
        _tcp(S, C, 5000, "SA", b""),
        _tcp(C, S, isn + 1, "PA", stream[:10]),  # a partial TPKT
        _tcp(C, S, isn + 1 + 25, "PA", stream[25:]),  # after a gap: held back
        _tcp(C, S, isn + 1, "PA", stream[:10]),  # retransmission: ignored
        _tcp(C, S, isn + 1 + 5, "PA", stream[5:25]),  # overlaps, fills the gap
        _tcp(S, C, 5001, "PA", s2),  # the other direction
        _tcp(C, S, isn + 1 + len(stream), "FA", b""),
    ]
    got = list(read_pcap(_tcp_capture(segs)))
    assert got == [
        PcapRecord(TS + 5, C, S, CR0, "tcp", 6),
        PcapRecord(TS + 5, C, S, DT0, "tcp", 6),
        PcapRecord(TS + 5, C, S, DT0 + b"!", "tcp", 6),
        PcapRecord(TS + 6, S, C, DT0, "tcp", 7),
    ]


def test_tcp_stream_joined_midway_and_other_ports() -> None:
    segs = [
        _tcp(C, S, 1000, "PA", encode_tpkt(DT0) * 2),  # no SYN seen: start here
        _tcp(("10.1.1.1", 4000), ("10.1.1.2", 80), 1, "PA", encode_tpkt(DT0)),  # not port 102
    ]
    data = _tcp_capture(segs).getvalue()
    assert [r.payload for r in read_pcap(io.BytesIO(data))] == [DT0, DT0]
    assert [r.frame for r in read_pcap(io.BytesIO(data), tpkt_ports={80})] == [2]


def test_broken_tcp_stream_is_ignored_until_the_next_syn() -> None:
    segs = [
        _tcp(C, S, 0, "S", b""),
        _tcp(C, S, 1, "PA", b"GET / HTTP/1.0\r\n"),
        _tcp(C, S, 17, "PA", encode_tpkt(DT0)),
        _tcp(C, S, 100, "S", b""),
        _tcp(C, S, 101, "PA", encode_tpkt(DT0)),
    ]
    assert [r.frame for r in read_pcap(_tcp_capture(segs))] == [5]


def test_tcp_rst_and_bad_header() -> None:
    good = _tcp(C, S, 1, "PA", encode_tpkt(DT0))
    bad_offset = bytearray(good)
    bad_offset[32] = 0xF0  # data offset 60 > segment
    segs = [
        _tcp(C, S, 0, "S", b""),
        _tcp(C, S, 1, "PA", encode_tpkt(DT0)[:5]),
        _tcp(C, S, 0, "R", b""),  # reset: the partial TPKT is dropped
        bytes(bad_offset),
        good[:30],  # too short for a TCP header
        _tcp(C, S, 50, "PA", encode_tpkt(DT0_B := DT0 + b"b")),
    ]
    assert [r.payload for r in read_pcap(_tcp_capture(segs))] == [DT0_B]


# ---------------------------------------------------------------- reader: file formats


def _classic(
    little: bool, nano: bool, linktype: int, records: list[tuple[int, int, bytes]]
) -> bytes:
    e = "<" if little else ">"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for sec, frac, data in records:
        out += struct.pack(e + "IIII", sec, frac, len(data), len(data)) + data
    return out


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize("nano", [True, False])
def test_byte_orders_and_resolutions(little: bool, nano: bool) -> None:
    frac = 250_000_000 if nano else 250_000
    data = _classic(little, nano, LINKTYPE_IPV4, [(1700000000, frac, IP_AK)])
    assert list(read_pcap(io.BytesIO(data))) == [PcapRecord(TS, A, B, AK, "udp", 1)]


def test_linktype_fcs_bits_are_ignored() -> None:
    data = _classic(True, False, LINKTYPE_IPV4 | 0x10000000, [(1, 0, IP_AK)])
    assert len(list(read_pcap(io.BytesIO(data)))) == 1


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _pcapng(blocks: list[bytes]) -> bytes:
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    return shb + b"".join(blocks)


def test_pcapng() -> None:
    ts_us = 1700000000_250000
    tsresol_ns = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    data = _pcapng(
        [
            _block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0)),  # interface 0, µs
            _block(1, struct.pack("<HHI", LINKTYPE_IPV4, 0, 0) + tsresol_ns),  # interface 1, ns
            _block(4, b"\x00" * 8),  # name resolution: skipped
            _block(
                6,
                struct.pack("<IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF, 47, 47) + _eth(IP_AK),
            ),
            _block(
                6,
                struct.pack("<IIIII", 1, (ts_us * 1000) >> 32, (ts_us * 1000) & 0xFFFFFFFF, 33, 33)
                + IP_AK,
            ),
            _block(3, struct.pack("<I", 47) + _eth(IP_AK)),  # simple packet: interface 0, no time
        ]
    )
    got = list(read_pcap(io.BytesIO(data)))
    assert got == [
        PcapRecord(TS, A, B, AK, "udp", 1),
        PcapRecord(TS, A, B, AK, "udp", 2),
        PcapRecord(0.0, A, B, AK, "udp", 3),
    ]


def test_pcapng_errors() -> None:
    idb = _block(1, struct.pack("<HHI", LINKTYPE_IPV4, 0, 0))
    epb_bad_iface = _block(6, struct.pack("<IIIII", 3, 0, 0, 33, 33) + IP_AK)
    with pytest.raises(PcapError, match="bad pcapng packet block"):
        list(read_pcap(io.BytesIO(_pcapng([idb, epb_bad_iface]))))
    with pytest.raises(PcapError, match="unsupported link type 147"):
        list(read_pcap(io.BytesIO(_pcapng([_block(1, struct.pack("<HHI", 147, 0, 0))]))))
    trailer_mismatch = bytearray(_pcapng([idb]))
    trailer_mismatch[-4] ^= 4
    with pytest.raises(PcapError, match="length mismatch"):
        list(read_pcap(io.BytesIO(bytes(trailer_mismatch))))
    with pytest.raises(PcapError, match="truncated"):
        list(read_pcap(io.BytesIO(_pcapng([idb])[:-2])))


def test_errors() -> None:
    with pytest.raises(PcapError, match="not a pcap"):
        list(read_pcap(io.BytesIO(b"GIF89a" + bytes(30))))
    with pytest.raises(PcapError, match="truncated"):
        list(read_pcap(io.BytesIO(b"\xd4\xc3")))
    with pytest.raises(PcapError, match="truncated"):
        list(read_pcap(io.BytesIO(GLOBAL_HEADER_252[:10])))
    with pytest.raises(PcapError, match="unsupported link type 147"):
        list(read_pcap(io.BytesIO(_classic(True, False, 147, []))))
    with pytest.raises(PcapError, match="corrupt"):
        list(
            read_pcap(
                io.BytesIO(_classic(True, False, 1, []) + struct.pack("<IIII", 0, 0, 1 << 30, 0))
            )
        )
    assert issubclass(PcapError, TPDUError)


def test_truncated_record_after_good_ones() -> None:
    buf, w = _written()
    w.write(AK, src=A, dst=B, timestamp=TS)
    w.write(DT, src=A, dst=B, timestamp=TS)
    data = buf.getvalue()[:-3]
    got: list[PcapRecord] = []
    with pytest.raises(PcapError, match="truncated") as info:
        got.extend(read_pcap(io.BytesIO(data)))
    assert [r.payload for r in got] == [AK]
    assert info.value.offset == len(GLOBAL_HEADER_252) + len(RECORD_AK) + 16
    with pytest.raises(PcapError, match="record header"):
        list(read_pcap(io.BytesIO(buf.getvalue()[: len(GLOBAL_HEADER_252) + 5])))


def test_empty_capture() -> None:
    assert list(read_pcap(io.BytesIO(GLOBAL_HEADER_252))) == []
