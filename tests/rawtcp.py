"""Raw RFC 1006 octets for the TCP tests: TPKTs built by hand, and readers of a stream.

Shared by tests/test_tcp.py, tests/test_tcp_hardening.py and
tests/test_tcp_stream.py, which play the peer with plain TCP sockets.
"""

from __future__ import annotations

import struct

import trio

__all__ = ["dt", "read_exact", "read_to_eof", "read_tpkt", "tpkt"]


def tpkt(payload: bytes) -> bytes:
    """A TPKT built by hand: version 3, reserved 0, length including the header."""
    return bytes([3, 0]) + struct.pack(">H", len(payload) + 4) + payload


def dt(data: bytes, eot: bool = True) -> bytes:
    """A class 0 DT in its TPKT: LI 2, 0xF0, EOT bit + TPDU-NR 0."""
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + data)


async def read_exact(stream: trio.SocketStream, n: int) -> bytes:
    """Exactly *n* octets (EOFError, with what came, if the peer closes first)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} octets: {bytes(buf).hex()}")
        buf += chunk
    return bytes(buf)


async def read_tpkt(stream: trio.SocketStream) -> bytes:
    """One whole TPKT (header included) from the stream."""
    head = await read_exact(stream, 4)
    assert head[:2] == b"\x03\x00", head.hex()
    (length,) = struct.unpack(">H", head[2:])
    return head + await read_exact(stream, length - 4)


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    """Everything until the peer's close (a reset counts as a close)."""
    buf = bytearray()
    while True:
        try:
            chunk = await stream.receive_some(4096)
        except trio.BrokenResourceError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)
