"""RFC 1006 TPKT framing: ISO transport TPDUs carried in a TCP byte stream.

Every TPDU sent over TCP is preceded by a 4-octet TPKT header (reference §7)::

    +---------+----------+-------------------------------+
    | version | reserved | length (16 bits, big-endian)  |
    |    3    |    0     | whole packet, header included |
    +---------+----------+-------------------------------+

The length counts the header too, so a TPKT carries at most 65 531 octets of
TPDU. The smallest TPDU is the class 0 DT header (LI, code, EOT/TPDU-NR: three
octets), so a valid length is at least 7.

:data:`TPKT_HEADER` (construct) is the definition of the header; the decoder
uses an equivalent :mod:`struct` fast path, proved equal by the tests.
Nothing here does I/O: feed the decoder whatever TCP delivered.
"""

from __future__ import annotations

import struct
from typing import Final, NoReturn

from construct import Construct, Int8ub, Int16ub, Struct

from .constants import DRReason, ERCause
from .errors import TPDUError

__all__ = [
    "RFC1006_PORT",
    "TPKTDecoder",
    "TPKT_HEADER",
    "TPKT_HEADER_LENGTH",
    "TPKT_MAX_LENGTH",
    "TPKT_MIN_LENGTH",
    "TPKT_VERSION",
    "encode_tpkt",
]

TPKT_VERSION: Final = 3
"""The only TPKT version (RFC 1006 §6)."""
TPKT_HEADER_LENGTH: Final = 4
"""Octets of the TPKT header."""
TPKT_MIN_LENGTH: Final = 7
"""Smallest valid TPKT length: the header plus a 3-octet class 0 DT header."""
TPKT_MAX_LENGTH: Final = 0xFFFF
"""Largest TPKT length the 16-bit field can express."""
RFC1006_PORT: Final = 102
"""Well-known TCP port of ISO transport services on top of TCP (ISO-TSAP)."""

TPKT_HEADER: Construct = Struct(
    "version" / Int8ub,
    "reserved" / Int8ub,
    "length" / Int16ub,
)
"""The TPKT header: version (3), reserved (0), length of the whole packet."""

_HEADER = struct.Struct(">BBH")
"""Fast path of :data:`TPKT_HEADER` (same layout; tested equal)."""


def encode_tpkt(payload: bytes) -> bytes:
    """Frame one TPDU in a TPKT: the 4-octet header followed by *payload*.

    Args:
        payload: the TPDU (LI included), 3 to 65 531 octets.

    Raises:
        ValueError: the payload is shorter than a TPDU can be or too long
            for the 16-bit length field.
    """
    length = len(payload) + TPKT_HEADER_LENGTH
    if length < TPKT_MIN_LENGTH:
        raise ValueError(f"TPKT payload of {len(payload)} octets is shorter than any TPDU (3)")
    if length > TPKT_MAX_LENGTH:
        raise ValueError(
            f"TPKT payload of {len(payload)} octets exceeds {TPKT_MAX_LENGTH - TPKT_HEADER_LENGTH}"
        )
    return _HEADER.pack(TPKT_VERSION, 0, length) + payload


class TPKTDecoder:
    """Incremental TPKT decoder for one direction of a TCP connection.

    Feed it the bytes TCP delivers, in order and in any chunking; it returns
    the payload (the TPDU) of every TPKT completed so far. A header is
    checked as soon as its octets arrive, so garbage is rejected without
    waiting for a length's worth of data. The reserved octet is ignored.

    Invalid input raises :class:`~tp4emu.wire.errors.TPDUError` and leaves the
    decoder *broken*: the stream has lost its framing, and every later
    :meth:`feed` or :meth:`eof` raises the same error again. Close the
    connection.

    Buffering is linear: complete packets are sliced straight out of the
    data fed, and only an incomplete tail is kept (in a bytearray).
    """

    __slots__ = ("_buf", "_error", "_max_length", "_offset")

    def __init__(self, max_length: int = TPKT_MAX_LENGTH) -> None:
        """Create a decoder.

        Args:
            max_length: the largest TPKT length accepted (header included),
                from 7 to 65 535; use it to bound the memory a peer can make
                the receiver hold (e.g. negotiated TPDU size + 4).

        Raises:
            ValueError: *max_length* out of range.
        """
        if not TPKT_MIN_LENGTH <= max_length <= TPKT_MAX_LENGTH:
            raise ValueError(
                f"max_length must be within {TPKT_MIN_LENGTH}..{TPKT_MAX_LENGTH}, got {max_length}"
            )
        self._max_length = max_length
        self._buf = bytearray()
        self._offset = 0  # stream offset of the first octet of _buf
        self._error: TPDUError | None = None

    @property
    def max_length(self) -> int:
        """The largest TPKT length accepted, header included."""
        return self._max_length

    @property
    def pending(self) -> int:
        """Octets received but not yet returned (a partial TPKT)."""
        return len(self._buf)

    @property
    def broken(self) -> bool:
        """Whether invalid input has been seen (every call now raises)."""
        return self._error is not None

    def feed(self, data: bytes) -> list[bytes]:
        """Add *data* from the stream; return the payloads of completed TPKTs.

        TPKTs completed before a bad header in the same *data* are returned;
        the error is then raised by the next call.

        Raises:
            TPDUError: a header with a version other than 3, or a length
                below 7 or above ``max_length``; also on every call after one
                such error.
        """
        self._raise_if_broken()
        out: list[bytes] = []
        if not data:
            return out
        try:
            self._feed(data, out)
        except TPDUError:
            if not out:
                raise
        return out

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf
        if buf:
            # Complete the packet already started, then carry on in *data*.
            need = self._needed(buf, 0)  # > 0: a complete packet is never kept
            while need > 0:
                if need > len(data):
                    buf += data
                    # Check the header as soon as its octets are in.
                    self._needed(buf, 0)
                    return
                buf += data[:need]
                data = data[need:]
                need = self._needed(buf, 0)
            # buf now holds exactly one complete packet.
            out.append(bytes(buf[TPKT_HEADER_LENGTH:]))
            self._offset += len(buf)
            buf.clear()
        view = memoryview(data)
        pos = 0
        total = len(data)
        while pos < total:
            need = self._needed(view, pos)
            if need > 0:
                break
            length = (data[pos + 2] << 8) | data[pos + 3]
            out.append(bytes(view[pos + TPKT_HEADER_LENGTH : pos + length]))
            pos += length
        self._offset += pos  # _offset: stream offset of the first octet not returned
        if pos < total:
            buf += view[pos:]

    def eof(self) -> None:
        """Signal the end of the stream.

        Raises:
            TPDUError: the stream ended inside a TPKT (truncated), or the
                decoder is broken.
        """
        self._raise_if_broken()
        if self._buf:
            have = len(self._buf)
            if have >= TPKT_HEADER_LENGTH:
                detail = f"{have} of {_HEADER.unpack_from(self._buf)[2]} octets"
            else:
                detail = f"{have} octets of its header"
            self._fail(
                f"stream ended inside a TPKT ({detail} received)",
                reason=DRReason.PROTOCOL_ERROR,
                cause=ERCause.NOT_SPECIFIED,
                offset=self._offset,
            )

    # ------------------------------------------------------------ internals

    def _needed(self, data: bytes | bytearray | memoryview, pos: int) -> int:
        """Octets missing for the TPKT at *pos* to be complete (0 = complete).

        Checks the header fields that are present; raises on a bad one.
        """
        have = len(data) - pos
        if data[pos] != TPKT_VERSION:
            self._fail(
                f"TPKT version {data[pos]}, expected {TPKT_VERSION}",
                reason=DRReason.PROTOCOL_ERROR,
                cause=ERCause.NOT_SPECIFIED,
                offset=self._offset + pos,
            )
        if have < TPKT_HEADER_LENGTH:
            return TPKT_HEADER_LENGTH - have
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < TPKT_MIN_LENGTH:
            self._fail(
                f"TPKT length {length} is below the minimum {TPKT_MIN_LENGTH}",
                reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
                cause=ERCause.INVALID_PARAMETER_VALUE,
                offset=self._offset + pos,
            )
        if length > self._max_length:
            self._fail(
                f"TPKT length {length} exceeds the maximum {self._max_length}",
                reason=DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID,
                cause=ERCause.INVALID_PARAMETER_VALUE,
                offset=self._offset + pos,
            )
        return max(0, length - have)

    def _fail(self, message: str, *, reason: DRReason, cause: ERCause, offset: int) -> NoReturn:
        self._error = err = TPDUError(message, reason=reason, cause=cause, offset=offset)
        self._buf.clear()
        raise err

    def _raise_if_broken(self) -> None:
        err = self._error
        if err is not None:
            raise TPDUError(str(err), reason=err.reason, cause=err.cause, offset=err.offset)
