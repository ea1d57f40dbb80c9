"""Capture files: a pcap writer for tp4emu traffic and a reader of captures.

This package does file I/O; :mod:`tp4emu.wire` below it does none.

Writing
    :class:`PcapWriter` writes classic libpcap files (little-endian, microsecond
    timestamps). By default each record uses link type 252,
    ``LINKTYPE_WIRESHARK_UPPER_PDU`` ("exported PDU"): a few tags naming the
    dissector (``ositp``, Wireshark's COTP dissector) and the UDP addresses,
    then the datagram exactly as sent (possibly several concatenated TPDUs).
    Wireshark and tshark decode these files as COTP without a script (to
    keep their heuristic dissectors off the user data, run ``tp4emu wireshark
    FILE``: docs/wireshark.md). For tools that do not know link type 252
    (tcpdump, ...) the writer can instead synthesise IPv4/UDP packets (link
    type 228) or Ethernet frames (link type 1); Wireshark then needs the UDP
    binding of ``tp4emu-udp.lua``, which ships in this package
    (:data:`LUA_SCRIPT`).

Reading
    :func:`read_pcap` yields a :class:`PcapRecord` per transport payload of a
    classic pcap (either byte order, micro- or nanosecond timestamps) or a
    pcapng file. It understands the exported-PDU files written here (and any
    whose dissector tag is ``ositp`` or ``cotp``) and plain captures with link
    types Ethernet (1, 802.1Q tags skipped), null/loopback (0 and 108), raw IP
    (101, 228), Linux cooked (113, 276), carrying IPv4 (fragments reassembled)
    and either UDP (each datagram is a record) or TCP streams framed with RFC
    1006 TPKTs (each TPKT payload is a record). Only IPv4 is handled in
    captured packets for now: IPv6 packets are skipped (exported-PDU IPv6 tags
    are understood).

The pcap headers and the exported-PDU tag are defined with construct (the
single source of truth); the per-packet paths use :mod:`struct` equivalents
that the tests prove equal. pcapng blocks are read with :mod:`struct`.
Malformed files raise :class:`PcapError`, a :class:`~tp4emu.wire.errors.TPDUError`,
after every record before the fault has been yielded; malformed packets
inside a well-formed file are skipped.
"""

from pathlib import Path

from .exported import ExportedPdu, exported_pdu_tags, parse_exported_pdu
from .formats import *  # noqa: F403
from .formats import __all__ as _formats_all
from .reader import read_pcap
from .writer import PcapWriter, ipv4_udp_packet

LUA_SCRIPT = Path(__file__).with_name("tp4emu-udp.lua")
"""The Wireshark Lua script that binds the COTP dissector to UDP port 10200
(a preference, ``tp4emu.ports``): ``tshark -X lua_script:PATH``. Needed for
live captures and other plain captures, not for the exported-PDU files that
:class:`PcapWriter` writes by default."""

__all__ = [
    *_formats_all,
    "LUA_SCRIPT",
    "ExportedPdu",
    "PcapWriter",
    "exported_pdu_tags",
    "ipv4_udp_packet",
    "parse_exported_pdu",
    "read_pcap",
]
