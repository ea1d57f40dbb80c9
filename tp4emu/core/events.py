"""Events the sans-IO endpoint reports to its driver (``Endpoint.next_event``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "ConnectionClosed",
    "ConnectionEstablished",
    "ConnectionRequested",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "ExpeditedReceived",
    "ReleaseCompleted",
    "SendSpaceAvailable",
]


@dataclass(frozen=True, slots=True)
class ConnectionRequested:
    """A CR created a CONFIRMING connection, queued on the listener of ``tsap``."""

    connection: Connection
    tsap: bytes | None


@dataclass(frozen=True, slots=True)
class ConnectionEstablished:
    """The connection reached OPEN (initiator: CC received; responder: AK received)."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class DataReceived:
    """A whole TSDU is ready in ``connection.receive()``."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class ExpeditedReceived:
    """Expedited data is ready in ``connection.receive_expedited()``."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class SendSpaceAvailable:
    """Send buffer space was freed (acknowledged data) or the ED slot emptied."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection will carry no more data; ``connection.error`` says why."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class ReleaseCompleted:
    """The release finished (DC or DR received, or DR retries exhausted): REFWAIT."""

    connection: Connection


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection reached CLOSED: its reference is free again."""

    connection: Connection


Event = (
    ConnectionRequested
    | ConnectionEstablished
    | DataReceived
    | ExpeditedReceived
    | SendSpaceAvailable
    | ConnectionTerminated
    | ReleaseCompleted
    | ConnectionClosed
)
