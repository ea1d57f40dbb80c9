"""The sans-IO class 4 engine: no trio, no sockets, no clock.

Time is passed in as ``now`` (seconds, any monotonic origin). A test
(``tests/test_core_purity.py``) checks that nothing here imports trio,
socket or time.
"""

from .class0 import CLASS0_TRANSITIONS, Class0Connection
from .config import Config
from .connection import Address, Connection, Role
from .endpoint import Endpoint, Listener
from .errors import (
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    TP4Error,
)
from .events import (
    ConnectionClosed,
    ConnectionEstablished,
    ConnectionRequested,
    ConnectionTerminated,
    DataReceived,
    Event,
    ExpeditedReceived,
    ReleaseCompleted,
    SendSpaceAvailable,
)
from .state import TRANSITIONS, Input, State
from .stats import Statistics

__all__ = [
    "CLASS0_TRANSITIONS",
    "TRANSITIONS",
    "Address",
    "Class0Connection",
    "Config",
    "Connection",
    "ConnectionClosed",
    "ConnectionEstablished",
    "ConnectionRejected",
    "ConnectionRequested",
    "ConnectionTerminated",
    "ConnectionTimedOut",
    "DataReceived",
    "Disconnected",
    "Endpoint",
    "Event",
    "ExpeditedReceived",
    "Input",
    "Listener",
    "ReleaseCompleted",
    "LocalProtocolError",
    "Role",
    "SendSpaceAvailable",
    "State",
    "Statistics",
    "TP4Error",
]
