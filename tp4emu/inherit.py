"""The connection an inetd-style super-server hands down to the program it starts.

``tp4emu serve --exec CMD ... --framing message`` accepts a connection (over
TP4 still CONFIRMING), starts CMD and keeps the connection itself: the UDP
socket is shared by every connection of the endpoint, so it cannot be passed
down as inetd passes a TCP socket. What CMD inherits instead is one end of a
socket pair, its number in ``TP4EMU_CONNECTION_FD``, over which the
super-server carries out the calls CMD makes. :func:`inherited_connection`
returns that connection as an object with the methods of a
:class:`~tp4emu.api.TransportConnection`, so that a Python child is written as
the C server of the book is::

    conn = tp4emu.inherited_connection()
    host, port = conn.getpeername()          # works while CONFIRMING
    if host not in allowed:
        await conn.reject(tp4emu.DRReason.NORMAL, b"go away")   # a DR: the client's connect fails
        sys.exit(1)
    async for tsdu in conn:                  # the first receive confirms: the CC goes out now
        await conn.send(tsdu)

The calls mean what they mean in-process: ``confirm()``, the first ``send()``
or the first ``receive()`` sends the CC; ``reject()``, or ``aclose()`` while
CONFIRMING, a DR; errors come back as the same exceptions
(:class:`~tp4emu.core.errors.Disconnected` with its reason,
:class:`trio.EndOfChannel` after the peer's normal release,
:class:`trio.ClosedResourceError`, :class:`~tp4emu.core.errors.LocalProtocolError`,
:class:`ValueError`, :class:`trio.BusyResourceError`). ``state`` is the state
the super-server reported in its last answer.

**Environment** (every framing; UCSPI style, as tcpserver's ``TCPREMOTEIP``):
``PROTO`` is ``TP4`` or ``TCP`` (RFC 1006), and with that prefix
``{PROTO}REMOTEIP``, ``{PROTO}REMOTEPORT``, ``{PROTO}LOCALIP``,
``{PROTO}LOCALPORT``, ``{PROTO}CALLEDTSAP`` and ``{PROTO}CALLINGTSAP`` (hex;
unset when the CR carried none) and ``{PROTO}CONNECTDATA`` (hex, empty when
none); ``TP4EMU_FRAMING`` (``stream``, ``line`` or ``message``) and
``TP4EMU_STATE`` (``CONFIRMING``, or the state after ``--confirm-first``);
with ``message`` framing, ``TP4EMU_CONNECTION_FD``. See
:func:`connection_environment`.

**Control protocol** (on that socket pair, a byte stream): frames of a 9-octet
header, the kind (one ASCII octet), a request id and the payload's length
(both 32-bit, big-endian), then the payload. The child sends requests,
the super-server answers each with one frame carrying the same id:

| request (payload) | answer (payload) |
|---|---|
| ``C`` confirm (CC data) | ``K`` done (state) |
| ``J`` reject (reason, data) | ``K`` |
| ``S`` send (one TSDU) | ``K`` |
| ``E`` send expedited (data) | ``K`` |
| ``R`` receive | ``D`` data (state, the TSDU), or ``F`` end (state: the peer released normally) |
| ``X`` receive expedited | ``D`` (state, the data) |
| ``Q`` close (release) | ``K`` |

Any request may be answered ``Z`` instead: the exception the call raised
(:func:`encode_error`). "state" is one octet, the index of the connection's
:class:`~tp4emu.core.State` in the enumeration. Answers to receives may
overtake others: the super-server carries out the other requests one at a
time, in order, and each receive in a task of its own (one ``R`` and one
``X`` outstanding at most; a second one is answered ``Z`` busy). When the
child closes its end (or exits) before deciding, the super-server rejects the
connection as when a stdio child exits without output (docs/inetd.md).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Final, NamedTuple

import trio

from .core import ConnectionTimedOut, Disconnected, LocalProtocolError, State, TP4Error
from .transport.stream import TSDUStream
from .wire import DRReason

if TYPE_CHECKING:
    from .api import TransportConnection

__all__ = [
    "ENV_FD",
    "ENV_FRAMING",
    "ENV_STATE",
    "MAX_PAYLOAD",
    "ControlProtocolError",
    "Frame",
    "FrameBuffer",
    "InheritedConnection",
    "connection_environment",
    "decode_error",
    "encode_error",
    "encode_frame",
    "inherited_connection",
    "state_octet",
]

# ------------------------------------------------------------ environment

ENV_FD: Final = "TP4EMU_CONNECTION_FD"
"""The number of the control socket's descriptor (``message`` framing only)."""
ENV_FRAMING: Final = "TP4EMU_FRAMING"
"""How the connection reaches the child: ``stream``, ``line`` or ``message``."""
ENV_STATE: Final = "TP4EMU_STATE"
"""The connection's state when the child started (``CONFIRMING`` unless ``--confirm-first``)."""

_PROTO = {"tp4": "TP4", "tcp": "TCP"}
_FIELDS = (
    "REMOTEIP",
    "REMOTEPORT",
    "LOCALIP",
    "LOCALPORT",
    "CALLEDTSAP",
    "CALLINGTSAP",
    "CONNECTDATA",
)


def connection_environment(
    base: Mapping[str, str],
    *,
    transport: str,
    peer: tuple[str, int],
    local: tuple[str, int],
    called_tsap: bytes | None,
    calling_tsap: bytes | None,
    connect_data: bytes,
    state: State,
    framing: str,
    fd: int | None = None,
) -> dict[str, str]:
    """The environment of a child: *base* without any stale variable of ours, plus the connection's.

    *transport* is ``"tp4"`` or ``"tcp"``; *fd* the control socket's descriptor
    (``message`` framing). The variables are listed in the module docstring.
    """
    env = dict(base)
    for name in ("PROTO", ENV_FD, ENV_FRAMING, ENV_STATE):
        env.pop(name, None)
    for proto in _PROTO.values():
        for name in _FIELDS:
            env.pop(proto + name, None)
    p = _PROTO[transport]
    env["PROTO"] = p
    env[p + "REMOTEIP"], env[p + "REMOTEPORT"] = peer[0], str(peer[1])
    env[p + "LOCALIP"], env[p + "LOCALPORT"] = local[0], str(local[1])
    if called_tsap is not None:
        env[p + "CALLEDTSAP"] = called_tsap.hex()
    if calling_tsap is not None:
        env[p + "CALLINGTSAP"] = calling_tsap.hex()
    env[p + "CONNECTDATA"] = connect_data.hex()
    env[ENV_FRAMING] = framing
    env[ENV_STATE] = state.name
    if fd is not None:
        env[ENV_FD] = str(fd)
    return env


# ------------------------------------------------------- control protocol

CONFIRM: Final = b"C"
REJECT: Final = b"J"
SEND: Final = b"S"
SEND_EXPEDITED: Final = b"E"
RECEIVE: Final = b"R"
RECEIVE_EXPEDITED: Final = b"X"
CLOSE: Final = b"Q"
REQUESTS: Final = frozenset(
    {CONFIRM, REJECT, SEND, SEND_EXPEDITED, RECEIVE, RECEIVE_EXPEDITED, CLOSE}
)
"""The kinds of the child's requests."""
OK: Final = b"K"
DATA: Final = b"D"
END: Final = b"F"
ERROR: Final = b"Z"

_HEADER = struct.Struct("!cII")
MAX_PAYLOAD: Final = 16 * 1024 * 1024 + 1024
"""The largest payload a frame may carry (a TSDU of ``Config.max_tsdu_size``, and more)."""
_STATES = tuple(State)


class ControlProtocolError(TP4Error):
    """A frame of the control protocol that cannot be right (unknown kind, too long)."""


class Frame(NamedTuple):
    """One frame of the control protocol."""

    kind: bytes
    """One ASCII octet: the request or answer."""
    rid: int
    """The request id; an answer carries its request's."""
    payload: bytes


def encode_frame(kind: bytes, rid: int, payload: bytes = b"") -> bytes:
    """A frame's octets: the 9-octet header, then *payload*."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a frame carries at most {MAX_PAYLOAD} octets, not {len(payload)}")
    return _HEADER.pack(kind, rid, len(payload)) + payload


class FrameBuffer:
    """Reassembles frames from the octets of the byte stream, in any pieces."""

    def __init__(self, limit: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> None:
        """Append octets read from the stream."""
        self._buf += data

    def next(self) -> Frame | None:
        """The next whole frame, or None until more octets come.

        Raises:
            ControlProtocolError: a header announcing more than the limit.
        """
        if len(self._buf) < _HEADER.size:
            return None
        kind, rid, length = _HEADER.unpack_from(self._buf)
        if length > self._limit:
            raise ControlProtocolError(f"a frame of {length} octets (limit {self._limit})")
        end = _HEADER.size + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[_HEADER.size : end])
        del self._buf[:end]
        return Frame(kind, rid, payload)


def state_octet(state: State) -> bytes:
    """The one octet that stands for *state* in answers."""
    return bytes([_STATES.index(state)])


def _state(octet: int) -> State:
    try:
        return _STATES[octet]
    except IndexError:
        raise ControlProtocolError(f"no state {octet}") from None


# The exceptions that cross the socket pair: a tag, then what rebuilds them.
_TAGS: tuple[tuple[type[BaseException], bytes], ...] = (
    (ConnectionTimedOut, b"T"),
    (Disconnected, b"D"),
    (trio.EndOfChannel, b"F"),
    (trio.BusyResourceError, b"B"),
    (trio.ClosedResourceError, b"C"),
    (trio.BrokenResourceError, b"K"),
    (LocalProtocolError, b"L"),
    (ValueError, b"V"),
    (OSError, b"O"),
)


def encode_error(exc: BaseException, state: State) -> bytes:
    """The payload of a ``Z`` answer: *state*, which exception, its reason, data and message.

    Layout: state (1), tag (1), reason or errno (1), by_peer (1), length of the
    DR data (1), the data, the message (UTF-8). Exceptions outside the table of
    this module come back as :class:`~tp4emu.core.errors.TP4Error`.
    """
    tag = next((t for cls, t in _TAGS if isinstance(exc, cls)), b"E")
    reason, by_peer, data = 0, False, b""
    if isinstance(exc, Disconnected):
        reason, by_peer, data = int(exc.reason) & 0xFF, exc.by_peer, exc.data[:255]
    elif isinstance(exc, OSError) and exc.errno is not None:
        reason = exc.errno & 0xFF
    message = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).encode()
    head = bytes([_STATES.index(state)]) + tag + bytes([reason, int(by_peer), len(data)])
    return head + data + message


def decode_error(payload: bytes) -> tuple[State, BaseException]:
    """The state and the exception of a ``Z`` answer's payload (see :func:`encode_error`)."""
    if len(payload) < 5 or len(payload) < 5 + payload[4]:
        raise ControlProtocolError(f"a short error answer: {payload.hex()}")
    state = _state(payload[0])
    tag, reason, by_peer, n = payload[1:2], payload[2], bool(payload[3]), payload[4]
    data, message = payload[5 : 5 + n], payload[5 + n :].decode(errors="replace")
    exc: BaseException
    if tag == b"T":
        exc = ConnectionTimedOut(reason, message)
    elif tag == b"D":
        exc = Disconnected(reason, data, by_peer=by_peer, message=message)
    elif tag == b"O":
        exc = OSError(reason, message)
    else:
        cls = {t: c for c, t in _TAGS}.get(tag, TP4Error)
        exc = cls(message) if message else cls()
    return state, exc


# ------------------------------------------------------------- the child


class InheritedConnection(trio.abc.Channel[bytes]):
    """The connection a super-server handed down (see the module docstring).

    Made by :func:`inherited_connection` from the environment; the facts of
    the CR (``getpeername()``, the TSAPs, ``connect_data``) are read from it
    without asking the super-server, so reading them confirms nothing. Calls
    cancelled while waiting: a ``receive()`` keeps its request, and the next
    ``receive()`` takes its answer (no TSDU is lost); any other call may or
    may not have been carried out.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        transport: str,
        peer: tuple[str, int],
        local: tuple[str, int],
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        connect_data: bytes = b"",
        state: State = State.CONFIRMING,
        framing: str = "message",
    ) -> None:
        self.transport = transport
        """``"tp4"`` (class 4 over UDP) or ``"tcp"`` (RFC 1006)."""
        self.framing = framing
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        self._peer = peer
        self._local = local
        self._called = called_tsap
        self._calling = calling_tsap
        self._connect_data = connect_data
        self._confirm_data = b""
        self._state = state
        self._frames = FrameBuffer()
        self._replies: dict[int, Frame] = {}
        self._abandoned: set[int] = set()
        self._outstanding: dict[bytes, int] = {}  # RECEIVE / RECEIVE_EXPEDITED -> its request id
        self._busy: set[bytes] = set()
        self._next_rid = 1
        self._reading = False
        self._lot = trio.lowlevel.ParkingLot()
        self._write_lock = trio.Lock()
        self._gone: BaseException | None = None
        self._closed = False

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str]) -> InheritedConnection:
        """The connection described by *environ* (its ``TP4EMU_CONNECTION_FD`` is taken out).

        Raises:
            RuntimeError: *environ* holds no inherited connection.
        """
        text = environ.get(ENV_FD)
        if text is None:
            raise RuntimeError(
                f"no inherited connection: {ENV_FD} is not set"
                " (start this program with: tp4emu serve --exec CMD --framing message)"
            )
        proto = environ.get("PROTO", "")
        transport = {v: k for k, v in _PROTO.items()}.get(proto)
        if transport is None:
            raise RuntimeError(f"no inherited connection: PROTO is {proto!r}, not TP4 or TCP")
        try:
            fd = int(text)
            peer = (environ[proto + "REMOTEIP"], int(environ[proto + "REMOTEPORT"]))
            local = (environ[proto + "LOCALIP"], int(environ[proto + "LOCALPORT"]))
            called = environ.get(proto + "CALLEDTSAP")
            calling = environ.get(proto + "CALLINGTSAP")
            data = bytes.fromhex(environ.get(proto + "CONNECTDATA", ""))
            state = State[environ.get(ENV_STATE, State.CONFIRMING.name)]
            sock = socket.socket(fileno=fd)
        except (KeyError, ValueError, OSError) as exc:
            raise RuntimeError(f"no inherited connection: {type(exc).__name__}: {exc}") from exc
        os.set_inheritable(fd, False)  # the child's own children do not get it
        del environ[ENV_FD]
        return cls(
            sock,
            transport=transport,
            peer=peer,
            local=local,
            called_tsap=None if called is None else bytes.fromhex(called),
            calling_tsap=None if calling is None else bytes.fromhex(calling),
            connect_data=data,
            state=state,
            framing=environ.get(ENV_FRAMING, "message"),
        )

    # -------------------------------------------------------------- info

    @property
    def state(self) -> State:
        """The connection's state, as the super-server last reported it."""
        return self._state

    @property
    def connect_data(self) -> bytes:
        """The CR's user data."""
        return self._connect_data

    @property
    def confirm_data(self) -> bytes:
        """The data this process confirmed with."""
        return self._confirm_data

    @property
    def calling_tsap(self) -> bytes | None:
        """The CR's calling TSAP-ID."""
        return self._calling

    @property
    def called_tsap(self) -> bytes | None:
        """The CR's called TSAP-ID."""
        return self._called

    def getpeername(self) -> tuple[str, int]:
        """The peer's (host, port); works while CONFIRMING, as netiso's getpeername.

        Raises:
            OSError: ENOTCONN once the connection is released or rejected.
        """
        if self._state in (State.CLOSED, State.CLOSING, State.REFWAIT) or self._closed:
            raise OSError(errno.ENOTCONN, "transport connection is not connected")
        return self._peer

    def getsockname(self) -> tuple[str, int]:
        """The super-server's local (host, port) of the connection."""
        return self._local

    @property
    def closed(self) -> bool:
        """Whether this process closed the connection."""
        return self._closed

    def as_stream(self) -> TSDUStream:
        """A byte-stream view (trio.abc.HalfCloseableStream) of the connection."""
        return TSDUStream(self)

    def __repr__(self) -> str:
        host, port = self._peer
        return f"<InheritedConnection {self.transport} peer={host}:{port} {self._state.name}>"

    # ------------------------------------------------------------- calls

    async def confirm(self, data: bytes = b"") -> None:
        """Confirm a CONFIRMING connection: the CC goes out with *data*."""
        await self._call(CONFIRM, bytes(data))
        self._confirm_data = bytes(data)

    async def reject(self, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Refuse the connection with a DR of *reason* (0..255) and *data*.

        The peer's ``connect()`` fails with ``ConnectionRejected(reason, data)``;
        on a confirmed connection this is an abortive release. Nothing happens
        after this process closed the connection.
        """
        if not 0 <= int(reason) <= 255:
            raise ValueError(f"a DR reason is one octet, not {reason}")
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        await self._call(REJECT, bytes([int(reason)]) + bytes(data))

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one TSDU (confirms a CONFIRMING connection first)."""
        await self._call(SEND, bytes(value))

    async def send_expedited(self, data: bytes) -> None:
        """Send expedited data (TCP: LocalProtocolError, class 0 has none)."""
        await self._call(SEND_EXPEDITED, bytes(data))

    async def receive(self) -> bytes:
        """Receive one TSDU (confirms a CONFIRMING connection first).

        Raises:
            trio.EndOfChannel: the peer released normally and all data was read.
            Disconnected: the peer released with another reason.
        """
        return await self._receive(RECEIVE)

    async def receive_expedited(self) -> bytes:
        """Receive expedited data (TCP: LocalProtocolError)."""
        return await self._receive(RECEIVE_EXPEDITED)

    async def wait_send_ready(self) -> None:
        """Return at once (after a checkpoint): the super-server paces ``send``."""
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Release the connection (a DR while CONFIRMING), then close the control socket.

        Idempotent; failures of the release (the super-server gone, the peer
        gone) are not raised.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.CancelScope(shield=True):
                await self._call(CLOSE)
        except (TP4Error, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            self._closed = True
            await self._stream.aclose()

    # ------------------------------------------------------------ helpers

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("connection was closed")
        if self._gone is not None:
            raise trio.BrokenResourceError("the super-server went away") from self._gone

    async def _request(self, kind: bytes, payload: bytes) -> int:
        """Send one request; its id."""
        self._check()
        rid = self._next_rid
        self._next_rid = (rid + 1) & 0xFFFFFFFF or 1
        frame = encode_frame(kind, rid, payload)
        # Shielded: a frame half written would leave the stream out of step.
        with trio.CancelScope(shield=True):
            async with self._write_lock:
                try:
                    await self._stream.send_all(frame)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    self._gone = exc
                    raise trio.BrokenResourceError("the super-server went away") from exc
        return rid

    async def _answer(self, rid: int) -> Frame:
        """Wait for the answer to *rid*: one waiter at a time reads, and hands the others theirs."""
        while rid not in self._replies:
            if self._gone is not None:
                raise trio.BrokenResourceError("the super-server went away") from self._gone
            if self._reading:
                await self._lot.park()
                continue
            self._reading = True
            try:
                await self._read_one()
            finally:
                self._reading = False
                self._lot.unpark_all()
        return self._replies.pop(rid)

    async def _read_one(self) -> None:
        try:
            while (frame := self._frames.next()) is None:
                data = await self._stream.receive_some(65536)
                if not data:
                    raise EOFError("the super-server closed the control socket")
                self._frames.feed(data)
        except (
            EOFError,
            ControlProtocolError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
        ) as exc:
            self._gone = exc
            return
        if frame.rid in self._abandoned:
            self._abandoned.discard(frame.rid)
        else:
            self._replies[frame.rid] = frame

    def _result(self, frame: Frame) -> bytes:
        """The answer's payload after its state octet; raises what a ``Z`` carries."""
        if frame.kind == ERROR:
            self._state, exc = decode_error(frame.payload)
            raise exc
        if not frame.payload or frame.kind not in (OK, DATA, END):
            raise ControlProtocolError(f"unexpected answer {frame.kind!r}")
        self._state = _state(frame.payload[0])
        if frame.kind == END:
            raise trio.EndOfChannel
        return frame.payload[1:]

    async def _call(self, kind: bytes, payload: bytes = b"") -> bytes:
        rid = await self._request(kind, payload)
        try:
            frame = await self._answer(rid)
        except trio.Cancelled:
            if self._replies.pop(rid, None) is None:
                self._abandoned.add(rid)  # its answer is dropped when it comes
            raise
        return self._result(frame)

    async def _receive(self, kind: bytes) -> bytes:
        if kind in self._busy:
            raise trio.BusyResourceError("another task is receiving on this connection")
        self._busy.add(kind)
        try:
            rid = self._outstanding.get(kind)
            if rid is None:
                rid = await self._request(kind, b"")
                self._outstanding[kind] = rid
            frame = await self._answer(rid)  # cancelled: the request stays outstanding
            del self._outstanding[kind]
            return self._result(frame)
        finally:
            self._busy.discard(kind)


_inherited: InheritedConnection | None = None


def inherited_connection() -> InheritedConnection:
    """The connection handed down by ``tp4emu serve --exec CMD --framing message``.

    The first call takes it from the environment (``TP4EMU_CONNECTION_FD``,
    removed from ``os.environ`` then); later calls return the same object.

    Raises:
        RuntimeError: this process was not started that way.
    """
    global _inherited
    if _inherited is None:
        _inherited = InheritedConnection.from_environment(os.environ)
    return _inherited


if TYPE_CHECKING:

    def _implements_the_api(conn: InheritedConnection) -> TransportConnection:
        """Never called: mypy checks that the class has the shared connection API."""
        return conn
