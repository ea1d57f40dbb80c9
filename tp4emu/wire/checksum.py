"""The class 4 checksum of ISO 8073 Annex B (RFC 905 Annex B), modulo 255.

The textbook algorithm runs two sums over every octet::

    for octet in tpdu: C0 += octet; C1 += C0        (all mod 255)

That loop costs ~60 ns per octet in Python. Here the two sums are obtained from
big-integer arithmetic, which runs in C: read the TPDU as a big-endian number
``N = sum(b_i * 256**(L-i))``. Because ``256 = 255 + 1``,
``256**k = 1 + 255*k (mod 255**2)``, so

* ``N  = S + 255*W (mod 255**2)`` with ``S = sum(b_i)``, ``W = sum((L-i)*b_i)``;
* the little-endian reading ``N' = S + 255*sum((i-1)*b_i) (mod 255**2)``;
* adding them: ``N + N' = S*(2 + 255*(L-1)) (mod 255**2)``, and that factor is
  invertible modulo ``255**2`` (it is 2 mod 255), which gives ``S mod 255**2``,
  then ``W mod 255`` from the first line.

``C0 = S`` and ``C1 = sum((L-i+1)*b_i) = W + S``. The tests check this against
the textbook loop.
"""

from __future__ import annotations

__all__ = ["fletcher_sums", "checksum_octets", "verify"]

_M2 = 255 * 255


def fletcher_sums(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Return ``(C0, C1)`` of Annex B over *data*, each reduced modulo 255."""
    length = len(data)
    if length == 0:
        return 0, 0
    big = int.from_bytes(data, "big") % _M2
    little = int.from_bytes(data, "little") % _M2
    factor = (2 + 255 * (length - 1)) % _M2
    s = (big + little) * pow(factor, -1, _M2) % _M2
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
