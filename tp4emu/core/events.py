"""Events of the sans-IO engine.

* user events: what the endpoint reports to its driver (``Endpoint.next_event``);
* endpoint events: what a connection asks of its endpoint (a datagram to send,
  a deadline, an AK to send with the next batch, a change of state). A
  connection holds no pointer to its endpoint: it queues these on the outbox
  it was given, and the endpoint carries them out (quinn's ``EndpointEvent``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .connection import Connection
    from .endpoint import Listener
    from .state import State

__all__ = [
    "ConnectionClosed",
    "ConnectionEstablished",
    "ConnectionEvent",
    "ConnectionRequested",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "ExpeditedReceived",
    "AckWanted",
    "EndpointEvent",
    "ReleaseCompleted",
    "SendSpaceAvailable",
    "StateChanged",
    "TimerArmed",
    "Transmit",
]


C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class ConnectionEvent(Generic[C]):
    """An event about one connection and nothing else: the base of most events,
    of class 4 (``C`` a :class:`~tp4emu.core.connection.Connection`) and of
    class 0 (a :class:`~tp4emu.core.class0.Class0Connection`)."""

    connection: C


@dataclass(frozen=True, slots=True)
class ConnectionRequested:
    """A CR created a CONFIRMING connection, queued on the listener of ``tsap``."""

    connection: Connection
    tsap: bytes | None
    listener: Listener | None = None
    """The listener it is queued on."""


class ConnectionEstablished(ConnectionEvent["Connection"]):
    """The connection reached OPEN (initiator: CC received; responder: AK received)."""

    __slots__ = ()


class DataReceived(ConnectionEvent["Connection"]):
    """A whole TSDU is ready in ``connection.receive()``."""

    __slots__ = ()


class ExpeditedReceived(ConnectionEvent["Connection"]):
    """Expedited data is ready in ``connection.receive_expedited()``."""

    __slots__ = ()


class SendSpaceAvailable(ConnectionEvent["Connection"]):
    """Send buffer space was freed (acknowledged data) or the ED slot emptied."""

    __slots__ = ()


class ConnectionTerminated(ConnectionEvent["Connection"]):
    """The connection will carry no more data; ``connection.error`` says why."""

    __slots__ = ()


class ReleaseCompleted(ConnectionEvent["Connection"]):
    """The release finished (DC or DR received, or DR retries exhausted): REFWAIT."""

    __slots__ = ()


class ConnectionClosed(ConnectionEvent["Connection"]):
    """The connection reached CLOSED: its reference is free again."""

    __slots__ = ()


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


# ----------------------------------------------------------- endpoint events


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send *raw* (*tpdus* TPDUs, concatenated) to the connection's peer."""

    connection: Connection
    raw: bytes
    tpdus: int = 1


@dataclass(frozen=True, slots=True)
class TimerArmed:
    """The connection's earliest deadline is now *deadline*: call its ``handle_timer`` then."""

    connection: Connection
    deadline: float


class AckWanted(ConnectionEvent["Connection"]):
    """The connection has an AK to send with the next ``datagrams_to_send``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The connection went from *old* to *new* (half-open counts, freezing, release)."""

    connection: Connection
    old: State
    new: State


EndpointEvent = Transmit | TimerArmed | AckWanted | StateChanged | Event
"""What a connection queues for its endpoint (user events are passed on)."""
