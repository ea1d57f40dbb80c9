"""The class 4 checksum of ISO 8073 Annex B (RFC 905 Annex B), modulo 255.

The textbook algorithm runs two sums over every octet::

    for octet in tpdu: C0 += octet; C1 += C0        (all mod 255)

That loop costs ~60 ns per octet in Python. Here the two sums come from
arithmetic done in C:

* ``S = sum(b_i)`` exactly, by the Chinese remainder theorem from
  ``S mod 65521`` (zlib's Adler-32 keeps exactly that sum) and ``S mod 255``
  (below): ``S <= 255 * L < 65521 * 255`` for any ``L < 65521``, so it is
  determined. (Longer inputs, which no TPDU reaches, take ``sum()``.)
* Read the TPDU as a big-endian number ``N = sum(b_i * 256**(L-i))``. Because
  ``256 = 255 + 1``, ``256**k = 1 + 255*k (mod 255**2)``, so
  ``N = S + 255*W (mod 255**2)`` with ``W = sum((L-i)*b_i)``: this gives
  ``S mod 255`` and then ``W mod 255``.

``C0 = S`` and ``C1 = sum((L-i+1)*b_i) = W + S``. The tests check this against
the textbook loop.
"""

from __future__ import annotations

import zlib

__all__ = ["fletcher_sums", "checksum_octets", "verify"]

_M2 = 255 * 255
_ADLER = 65521
_ADLER_INV = pow(_ADLER, -1, 255)


def fletcher_sums(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Return ``(C0, C1)`` of Annex B over *data*, each reduced modulo 255."""
    if not data:
        return 0, 0
    big = int.from_bytes(data, "big") % _M2
    if len(data) < _ADLER:
        s_adler = ((zlib.adler32(data) & 0xFFFF) - 1) % _ADLER  # S mod 65521
        s = s_adler + _ADLER * (((big - s_adler) * _ADLER_INV) % 255)  # S exactly (CRT)
    else:
        s = sum(data)
    w = ((big - s) % _M2) // 255
    return s % 255, (w + s) % 255


def checksum_octets(tpdu: bytes | bytearray | memoryview, position: int) -> bytes:
    """Compute the two checksum octets for *tpdu*.

    Args:
        tpdu: the whole TPDU with the two checksum octets set to zero.
        position: 0-based offset of the first checksum octet (X) in *tpdu*.

    Returns:
        ``bytes((X, Y))``, each in 1..255 (a computed 0 is sent as 255).
    """
    c0, c1 = fletcher_sums(tpdu)
    n = position + 1  # Annex B counts octets from 1
    length = len(tpdu)
    x = (-c1 + (length - n) * c0) % 255
    y = (c1 - (length - n + 1) * c0) % 255
    return bytes((x or 255, y or 255))


def verify(tpdu: bytes | bytearray | memoryview) -> bool:
    """Whether the checksum carried in *tpdu* verifies (C0 = C1 = 0 mod 255)."""
    c0, c1 = fletcher_sums(tpdu)
    return c0 == 0 and c1 == 0
