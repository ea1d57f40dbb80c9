"""Class 0 CR and CC whose header carries octets that are not parameters (RDP).

X.224 defines the variable part of a CR or CC as a sequence of parameters
(code, length, value) and allows no user data in class 0. RDP, the most
common X.224 class 0 peer (MS-RDPBCGR 2.2.1.1 and 2.2.1.2, as mstsc, FreeRDP
and xrdp send them), puts its own octets in that variable part instead: an
optional ``Cookie: mstshash=NAME\\r\\n`` line (or a routing token), then an
8-octet RDP_NEG_REQ (type 0x01); the CC carries an 8-octet RDP_NEG_RSP (0x02)
or RDP_NEG_FAILURE (0x03). The LI counts them: nothing follows the header.

The rule, for class 0 only (the class nibble of the CR or CC is 0):

* **Reading.** The variable part is read as parameters up to the first
  octet that cannot begin one: an octet below 0x80 where a parameter code is
  due (every X.224 parameter code has its top bit set, while RDP's cookie
  starts with ``C`` (0x43) and its negotiation structures with 0x01..0x03), or
  a parameter whose length runs past the header. From there to the end of
  the TPDU (the rest of the header, then any user data field after it), the
  octets are the *inline data*: :func:`decode_inline` returns the CR or CC
  with its parameters (checked as usual: a bad TPDU size is still an error)
  and those octets as its ``data``. A variable part made of parameters only is
  no concern of this module (:func:`decode_inline` returns None: decode it with
  :func:`~tp4emu.wire.tpdu.decode`, strictly).
* **Writing.** :func:`encode_inline` writes a CR or CC with its ``data``
  inside the header, after its parameters, the LI counting it, as RDP peers
  expect (FreeRDP reads the RDP_NEG_RSP only within the LI and rejects a CC
  with octets after the header).

Inline data beginning with an octet of 0x80 or more that reads as a
parameter is taken for one by the receiver: no encoding can tell them apart
(RDP's never does). Class 4 never reads a CR this way: its TPDUs stay strict.
"""

from __future__ import annotations

import dataclasses

from .constants import TPDUCode
from .tpdu import CC, CR, decode, encode

__all__ = ["decode_inline", "encode_inline", "parameters_length"]

_FIXED = 7
"""LI, code, DST-REF, SRC-REF, class/options: the fixed part of a CR or CC with its LI."""
_MAX_LI = 254
"""The largest LI (255 is reserved)."""


def parameters_length(variable: bytes) -> int:
    """How many leading octets of *variable* (a variable part) read as parameters.

    Parameters are read while an octet of 0x80 or more stands where a code
    is due and its length octet and value fit in *variable*; the first one
    that does not ends them.
    """
    i = 0
    end = len(variable)
    while i + 2 <= end and variable[i] >= 0x80 and i + 2 + variable[i + 1] <= end:
        i += 2 + variable[i + 1]
    return i


def decode_inline(payload: bytes) -> CR | CC | None:
    """A class 0 CR or CC whose variable part holds inline data (see the module docstring).

    Args:
        payload: one TPDU (a TPKT's contents), untrusted.

    Returns:
        The CR or CC with the parameters read and, as ``data``, every octet
        after them; None when *payload* is not a class 0 CR or CC with a
        well-formed LI, or when its variable part is parameters only.

    Raises:
        TPDUError: a parameter before the inline data is invalid (its value).
    """
    data = bytes(payload)
    if len(data) < _FIXED:
        return None
    li = data[0]
    code = data[1] >> 4
    if code not in (TPDUCode.CR, TPDUCode.CC) or data[6] >> 4 != 0:
        return None
    if li < _FIXED - 1 or li > _MAX_LI or li + 1 > len(data):
        return None
    variable = data[_FIXED : li + 1]
    n = parameters_length(variable)
    if n == len(variable):
        return None
    header = bytes([_FIXED - 1 + n]) + data[1:_FIXED] + variable[:n]
    [tpdu] = decode(header)
    assert isinstance(tpdu, (CR, CC))
    return dataclasses.replace(tpdu, data=variable[n:] + data[li + 1 :])


def encode_inline(tpdu: CR | CC) -> bytes:
    """Encode *tpdu* with its ``data`` in the header, after its parameters.

    Raises:
        ValueError: the header would be longer than 254 octets, or *tpdu* is
            not in class 0, or a field is out of range.
    """
    if tpdu.protocol_class != 0:
        raise ValueError("inline data is for class 0 CRs and CCs only")
    raw = encode(dataclasses.replace(tpdu, data=b""))
    li = raw[0] + len(tpdu.data)
    if li > _MAX_LI:
        raise ValueError(
            f"{type(tpdu).__name__} header of {li} octets with its inline data: the limit is 254"
        )
    return bytes([li]) + raw[1:] + tpdu.data
