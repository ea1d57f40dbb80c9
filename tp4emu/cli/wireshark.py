"""``tp4emu wireshark``: open a capture in tshark or Wireshark with the right options.

Wireshark's COTP dissector decodes tp4emu's exported-PDU captures by itself,
but it hands the user data of CR, CC, DR and DT TPDUs to heuristic
subdissectors (T.125, OSI session, S7comm, MMS, SMB, Sinec H1, ATN ULCS,
RDP), which claim ordinary data and then report ``[Malformed Packet]``.
:data:`DISABLED_PROTOCOLS` turns them off; the COTP fields are the same
either way. Captures that are not exported PDUs (live captures, Ethernet
exports) also need the UDP binding of :data:`tp4emu.capture.LUA_SCRIPT`.
"""

from __future__ import annotations

import shlex
import shutil
import struct
import subprocess
from pathlib import Path

from ..capture import LINKTYPE_WIRESHARK_UPPER_PDU, LUA_SCRIPT

__all__ = [
    "DISABLED_PROTOCOLS",
    "dissector_options",
    "needs_lua",
    "pcap_hint",
    "view_command",
]

DISABLED_PROTOCOLS = ("t125", "ses", "s7comm", "mms", "smb", "h1", "atn-ulcs", "rdp")
"""Heuristic subdissectors of COTP that misread ordinary user data (Wireshark
4.0; tshark ignores the names it does not know)."""

_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}
_PCAP_MAGICS_BE = {b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


def dissector_options() -> list[str]:
    """tshark/Wireshark options that keep the heuristic dissectors off COTP user data."""
    options: list[str] = []
    for proto in DISABLED_PROTOCOLS:
        options += ["--disable-protocol", proto]
    return options


def needs_lua(path: str | Path) -> bool:
    """Whether the capture needs the Lua UDP binding: anything but a classic
    pcap of exported PDUs (link type 252), as :class:`~tp4emu.capture.PcapWriter`
    writes by default. Raises OSError when the file cannot be read."""
    with open(path, "rb") as f:
        header = f.read(24)
    order = _PCAP_MAGICS.get(header[:4]) or _PCAP_MAGICS_BE.get(header[:4])
    if order is None or len(header) < 24:
        return True
    (linktype,) = struct.unpack(order + "I", header[20:24])
    return bool((linktype & 0x0FFFFFFF) != LINKTYPE_WIRESHARK_UPPER_PDU)


def view_command(
    path: str | Path, *, gui: bool = False, lua: bool | None = None, extra: list[str] | None = None
) -> list[str]:
    """The command line that opens *path* cleanly in tshark (or Wireshark with *gui*).

    *lua*: add ``-X lua_script:`` with the package's UDP binding (None: when
    :func:`needs_lua` says so, or when the file cannot be read).
    """
    if lua is None:
        try:
            lua = needs_lua(path)
        except OSError:
            lua = True
    cmd = ["wireshark" if gui else "tshark", "-r", str(path), *dissector_options()]
    if lua:
        cmd += ["-X", f"lua_script:{LUA_SCRIPT}"]
    return cmd + list(extra or ())


def pcap_hint(path: str | Path) -> str | None:
    """One line telling how to open the capture just written, or None when
    the file holds no record (or is missing)."""
    try:
        if Path(path).stat().st_size <= 24:  # a pcap header and nothing else
            return None
    except OSError:
        return None
    command = shlex.join(view_command(path))
    short = shlex.join(["tp4emu", "wireshark", str(path)])
    return f"tp4emu: wrote {path}; view it with: {command}  (or: {short})"


def run_viewer(path: str, *, gui: bool, extra: list[str]) -> tuple[int, str | None]:
    """Run tshark/Wireshark on *path*; (exit status, one-line error or None)."""
    cmd = view_command(path, gui=gui, extra=extra)
    if not Path(path).is_file():
        return 1, f"{path}: no such file"
    program = shutil.which(cmd[0])
    if program is None:
        return 1, f"{cmd[0]} not found (Debian/Ubuntu: apt-get install {cmd[0]})"
    return subprocess.run([program, *cmd[1:]], check=False).returncode, None
