"""The single error type raised by the untrusted-input decoders."""

from __future__ import annotations

from .constants import DRReason, ERCause

__all__ = ["TPDUError"]


class TPDUError(ValueError):
    """Bytes from the network that are not a valid TPDU (or TPKT).

    This is the only exception :func:`tp4emu.wire.decode` and the TPKT decoder
    raise on bad input. It says what is wrong and how the standard answers it:

    Attributes:
        reason: the DR reason to use when the TPDU refuses a connection
            (or when the error is a protocol error on an open one).
        cause: the ER reject cause to use when answering with an ER.
        offset: octet offset in the datagram of the TPDU at fault.
        header: the header octets of the rejected TPDU (LI included) when
            known, for the "invalid TPDU" parameter of an ER.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: DRReason = DRReason.PROTOCOL_ERROR,
        cause: ERCause = ERCause.NOT_SPECIFIED,
        offset: int = 0,
        header: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause
        self.offset = offset
        self.header = header

    def __repr__(self) -> str:
        return (
            f"TPDUError({str(self)!r}, reason={self.reason.name}, "
            f"cause={self.cause.name}, offset={self.offset})"
        )
