"""Errors of the transport service. Each disconnect carries its DR reason."""

from __future__ import annotations

import errno

from ..wire.constants import DRReason

__all__ = [
    "ConnectionRejected",
    "ConnectionTimedOut",
    "Disconnected",
    "LocalProtocolError",
    "TP4Error",
]


class TP4Error(Exception):
    """Base of tp4emu's own errors."""


class LocalProtocolError(TP4Error):
    """The user asked for something the connection's state does not allow."""


def _reason(reason: int) -> DRReason | int:
    try:
        return DRReason(reason)
    except ValueError:
        return reason


class ConnectionRejected(ConnectionRefusedError, TP4Error):
    """The peer answered our CR with a DR: the connection was refused.

    Also raised when the CR got no usable answer (*by_peer* False): the peer
    answered with something else than a CC or a DR, or the network failed;
    *reason* is then the DR reason that fits (no DR came).

    Attributes:
        reason: the DR reason code (a :class:`DRReason` when known).
        data: the DR's user data (at most 64 octets).
        by_peer: True when the peer sent a DR; False when we gave up on the
            answer (there was no DR).
    """

    def __init__(
        self,
        reason: int,
        data: bytes = b"",
        message: str | None = None,
        *,
        by_peer: bool = True,
    ) -> None:
        self.reason = _reason(reason)
        self.data = data
        self.by_peer = by_peer
        name = self.reason.name if isinstance(self.reason, DRReason) else str(reason)
        # netiso: ECONNREFUSED for reasons 2, 135, 136; ECONNABORTED for the others.
        code = errno.ECONNREFUSED if reason in (2, 135, 136) else errno.ECONNABORTED
        super().__init__(
            code, message or f"connection rejected by peer: DR reason {reason} ({name})"
        )


class Disconnected(ConnectionAbortedError, TP4Error):
    """An established (or confirming) connection was released.

    Attributes:
        reason: the DR reason code, received from the peer or sent by us.
        data: the DR's user data, when the peer sent one.
        by_peer: True when the peer sent the DR, False when we released
            (retransmissions exhausted, inactivity, protocol error).
    """

    def __init__(
        self, reason: int, data: bytes = b"", *, by_peer: bool = True, message: str | None = None
    ) -> None:
        self.reason = _reason(reason)
        self.data = data
        self.by_peer = by_peer
        name = self.reason.name if isinstance(self.reason, DRReason) else str(reason)
        who = "peer" if by_peer else "local"
        super().__init__(
            self._errno, message or f"disconnected ({who}): DR reason {reason} ({name})"
        )

    _errno = errno.ECONNABORTED


class ConnectionTimedOut(Disconnected, TimeoutError):
    """Retransmissions ran out (or the inactivity timer expired)."""

    _errno = errno.ETIMEDOUT

    def __init__(self, reason: int = DRReason.NOT_SPECIFIED, message: str = "timed out") -> None:
        super().__init__(reason, b"", by_peer=False, message=message)
