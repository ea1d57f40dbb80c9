"""tp4emu: ISO 8073 / X.224 transport class 4 over UDP, on trio.

Connections returned by ``accept()`` are still *confirming*, as in 4.4BSD's
netiso: inspect the peer, then confirm (CC) or reject (DR) before the
connection exists for the client.

Quick start::

    async with tp4emu.open_endpoint(("127.0.0.1", 10200)) as ep:
        listener = ep.listen(b"echo")
        conn = await listener.accept()          # state CONFIRMING, nothing sent yet
        host, port = conn.getpeername()
        if host in allowed:
            msg = await conn.receive()          # confirms: the CC goes out now
        else:
            await conn.reject()                 # DR: the client's connect() fails

A program started by ``tp4emu serve --exec CMD --framing message`` (inetd
style) gets its connection with :func:`inherited_connection`, the same calls.
"""

from .api import Transport, open_endpoint, serve
from .core import (
    Config,
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    State,
    Statistics,
    TP4Error,
)
from .inherit import InheritedConnection, inherited_connection
from .transport.tcp import (
    TCPConnectFailed,
    TCPConnection,
    TCPEndpoint,
    TCPListener,
    open_tcp_endpoint,
)
from .transport.udp import (
    DatagramSocket,
    LossyUDPSocket,
    TP4Connection,
    TP4Endpoint,
    TP4Listener,
    TP4Stream,
    open_udp_endpoint,
)
from .wire import DRReason, ERCause

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConnectionRejected",
    "ConnectionTimedOut",
    "DRReason",
    "DatagramSocket",
    "Disconnected",
    "ERCause",
    "InheritedConnection",
    "LocalProtocolError",
    "LossyUDPSocket",
    "State",
    "Statistics",
    "TCPConnectFailed",
    "TCPConnection",
    "TCPEndpoint",
    "TCPListener",
    "TP4Connection",
    "TP4Endpoint",
    "TP4Error",
    "TP4Listener",
    "TP4Stream",
    "Transport",
    "__version__",
    "inherited_connection",
    "open_endpoint",
    "open_tcp_endpoint",
    "open_udp_endpoint",
    "serve",
]
