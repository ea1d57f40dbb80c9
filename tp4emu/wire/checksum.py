"""The class 4 checksum of ISO 8073 Annex B (RFC 905 Annex B), modulo 255.

The textbook algorithm runs two sums over every octet::

    for octet in tpdu: C0 += octet; C1 += C0        (all mod 255)

That loop costs ~60 ns per octet in Python. Here the two sums come from
arithmetic done in C. For octets ``b_1 .. b_L``:

* ``C0 = S mod 255`` with ``S = sum(b_i)``, and
  ``C1 = sum((L-i+1)*b_i) = W + S (mod 255)`` with ``W = sum((L-i)*b_i)``.
* Read the TPDU as a big-endian number ``N = sum(b_i * 256**(L-i))``.
  Because ``256 = 1 + 255``, the binomial theorem gives
  ``256**k = 1 + 255*k (mod 255**2)`` (every further term has ``255**2``), so
  ``N = S + 255*W (mod 255**2)``. Hence ``N mod 255`` is ``S mod 255``, and once
  ``S`` is known modulo ``255**2``, ``W mod 255 = ((N - S) mod 255**2) / 255``.
* ``S`` itself: ``N`` alone cannot give it (``0x01 0x00`` and ``0xFF 0x01``
  have the same ``N mod 255**2`` but sums 1 and 256 and different C1, so no
  reduction of ``N``, however folded, separates ``S`` from ``W``): a second
  reading of the octets is needed. zlib's Adler-32 is the cheapest in the
  standard library (about a third of the cost of ``int.from_bytes``): its low
  half is ``1 + S mod 65521``. With ``S mod 255`` from ``N``, the Chinese
  remainder theorem gives ``S mod (65521 * 255)``, which is ``S`` exactly when
  ``S <= 255 * L < 65521 * 255``, i.e. for any ``L < 65521``.

**Reducing N modulo 255² by folding.** ``N % 255**2`` on a big integer costs
one hardware division per 30-bit digit. Folding is cheaper (masks, shifts and
additions). Let ``M_b = 2**(8*b) - 1`` for ``b = 255 * 2**t`` octets:

1. ``255**2`` divides every ``M_b``: ``256**255 = 1 + 255*255 = 1
   (mod 255**2)`` by the identity above, so ``256**(255*2**t) = 1`` too and
   ``255**2 | 256**b - 1 = M_b``.
2. ``x = (x & M_b) + (x >> 8*b)`` keeps ``x mod M_b``: with
   ``x = hi * 2**(8*b) + lo`` and ``2**(8*b) = 1 (mod M_b)``, ``x = hi + lo
   (mod M_b)``; hence (1) it keeps ``x mod 255**2`` as well. It never makes
   ``x`` negative, and it shortens any ``x`` longer than ``2*b`` octets to
   about its length minus ``b``.
3. So :func:`fletcher_sums` folds with ``b = 255 * 2**t`` octets, ``t`` from 8
   down to 0, whenever ``x`` is longer than ``5/4 * b`` octets: a fold takes
   ``x`` from ``n`` to ``max(b, n - b) + 1`` octets, so each about halves
   it, and ``% 255**2`` is then taken of a number of at most ~320 octets
   (whatever is left, the result is right by (2): the folds only make the
   division cheaper).

The sizes (base 255 octets, threshold 5/4) were picked by timing against the
alternatives on 64 octets to 64 KiB: bases 510 and 1020; thresholds 1, 3/2, 2
and 3 (2 leaves a number half the length of the input for some lengths, 65280
octets for one); an exact halving (``b`` the multiple of 255 octets nearest
half of ``x``, a mask per length: as fast, more masks); summing
``int.from_bytes`` of 255- to 8160-octet chunks (slower below 64 KiB); the
plain ``%``. Below :data:`_FOLD_FROM` octets the plain ``%`` is as fast.
``int.from_bytes`` itself is then about half the cost, Adler-32 a fifth.

**Longer inputs and concatenations.** For ``A`` followed by ``B`` (``|B|``
octets): ``C0 = C0(A) + C0(B)`` and ``C1 = C1(A) + |B|*C0(A) + C1(B)`` (each
octet of ``A`` is counted ``|B|`` more times in ``C1``). Inputs of 65521
octets or more (no TPDU reaches it: UDP carries at most 65507) are cut into
pieces below it and combined so (:func:`fletcher_sums_of`); the encoder uses
the same rule to checksum a header and long user data without joining them
(:func:`checksum_octets_of`).

The tests check all this against the textbook loop.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

__all__ = ["fletcher_sums", "checksum_octets", "verify"]

Buffer = bytes | bytearray | memoryview

_M2 = 255 * 255
_ADLER = 65521
_ADLER_INV = pow(_ADLER, -1, 255)
_PIECE = 65520 - 65520 % 255
"""Octets per piece of a long input: below 65521 (Adler-32's modulus), a multiple of 255."""
_FOLD_FROM = 1024
"""From this length on, :func:`_mod_m2` folds before dividing."""
_FOLDS: tuple[tuple[int, int, int], ...] = tuple(
    (bits * 5 // 4, bits, (1 << bits) - 1) for bits in (8 * 255 << t for t in range(8, -1, -1))
)
"""``(threshold, bits, M)``: ``M = 2**bits - 1``, ``bits = 8 * 255 * 2**t``, largest first;
fold when ``x`` has more than *threshold* bits."""


def fletcher_sums(data: Buffer) -> tuple[int, int]:
    """Return ``(C0, C1)`` of Annex B over *data*, each reduced modulo 255."""
    length = len(data)
    # N mod 255**2 = S + 255*W (mod 255**2), by folding (see the module docstring)
    if length < _FOLD_FROM:
        if not length:
            return 0, 0
        big = int.from_bytes(data, "big") % _M2
    elif length < _ADLER:
        x = int.from_bytes(data, "big")
        n = x.bit_length()
        for threshold, bits, mask in _FOLDS:
            if n > threshold:
                x = (x & mask) + (x >> bits)
                n = x.bit_length()
        big = x % _M2
    else:
        return fletcher_sums_of((data,))
    s_adler = ((zlib.adler32(data) & 0xFFFF) - 1) % _ADLER  # S mod 65521
    s = s_adler + _ADLER * (((big - s_adler) * _ADLER_INV) % 255)  # S exactly (CRT)
    w = ((big - s) % _M2) // 255  # W mod 255
    return s % 255, (w + s) % 255


def fletcher_sums_of(parts: Iterable[Buffer]) -> tuple[int, int]:
    """``(C0, C1)`` of the concatenation of *parts*, without joining them."""
    c0 = c1 = 0
    for part in parts:
        length = len(part)
        if length < _ADLER:
            p0, p1 = fletcher_sums(part)
        else:
            view = memoryview(part)
            p0, p1 = fletcher_sums_of(view[i : i + _PIECE] for i in range(0, length, _PIECE))
        c1 = (c1 + length * c0 + p1) % 255
        c0 = (c0 + p0) % 255
    return c0, c1


def _octets(c0: int, c1: int, length: int, position: int) -> bytes:
    """X and Y at 0-based *position* of a TPDU of *length* octets whose sums are C0, C1."""
    n = position + 1  # Annex B counts octets from 1
    x = (-c1 + (length - n) * c0) % 255
    y = (c1 - (length - n + 1) * c0) % 255
    return bytes((x or 255, y or 255))


def checksum_octets(tpdu: Buffer, position: int) -> bytes:
    """Compute the two checksum octets for *tpdu*.

    Args:
        tpdu: the whole TPDU with the two checksum octets set to zero.
        position: 0-based offset of the first checksum octet (X) in *tpdu*.

    Returns:
        ``bytes((X, Y))``, each in 1..255 (a computed 0 is sent as 255).
    """
    c0, c1 = fletcher_sums(tpdu)
    return _octets(c0, c1, len(tpdu), position)


def checksum_octets_of(header: Buffer, data: Buffer, position: int) -> bytes:
    """:func:`checksum_octets` of *header* followed by *data*, without joining them.

    *position* (of X) is in *header*, whose checksum octets are zero.
    """
    h0, h1 = fletcher_sums(header)
    d0, d1 = fletcher_sums(data)
    length = len(data)
    return _octets((h0 + d0) % 255, (h1 + length * h0 + d1) % 255, len(header) + length, position)


def verify(tpdu: Buffer) -> bool:
    """Whether the checksum carried in *tpdu* verifies (C0 = C1 = 0 mod 255)."""
    c0, c1 = fletcher_sums(tpdu)
    return c0 == 0 and c1 == 0
