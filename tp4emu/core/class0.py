"""One class 0 transport connection over a TCP byte stream (RFC 1006): the sans-IO engine.

The class 0 counterpart of :class:`~tp4emu.core.connection.Connection`, for
both roles. A :class:`Class0Connection` never does I/O: its driver feeds it
the octets TCP delivered (:meth:`~Class0Connection.receive_data`,
:meth:`~Class0Connection.receive_eof`), tells it what happened to the TCP
connection (:meth:`~Class0Connection.connection_reset`,
:meth:`~Class0Connection.send_failed`) and when the driver's timer for the
current state expired (:meth:`~Class0Connection.timeout`), passes on its
user's requests, and collects the octets to write
(:meth:`~Class0Connection.data_to_send`, TPKT-framed), the events
(:meth:`~Class0Connection.next_event`) and the TSDUs received
(:meth:`~Class0Connection.receive`). Transitions are decided by
:data:`CLASS0_TRANSITIONS` only.

On the wire: TPKT (version 3) + class 0 TPDUs: CR/CC with TSAPs and TPDU size
(≤ 2048), DT with EOT segmentation and reassembly, DR, ER. Class 0 has no
expedited data, no checksum and no DC; a normal release is the TCP close.

Connect and confirm data (RDP). X.224 allows no user data in a class 0 CR or
CC; RDP puts its cookie and negotiation structures in their header, after
the fixed part (:mod:`tp4emu.wire.inline` says how they are read). So: a
received class 0 CR (or, in WFCC, CC) whose variable part is not parameters
only has its octets from the first non-parameter on as
:attr:`~Class0Connection.connect_data` (:attr:`~Class0Connection.confirm_data`);
the data given to :meth:`~Class0Connection.connect` and
:meth:`~Class0Connection.accept` goes into the header the same way. A
connection with such data (:attr:`~Class0Connection.inline_data`) takes DTs up
to 2048 octets whatever the TPDU size, as RDP ignores it. Our CC to a CR
without a TPDU size parameter states the default, 128, unless the CR or the
CC carries such data: then it has none either (X.224 allows both: an absent
parameter means 128; RDP clients read the CC's header after the fixed part as
their RDP_NEG_RSP and fail on a parameter there).

Received TPDUs are taken one event at a time, as the user can take them:
after a TPDU that changes the state or completes a TSDU the engine pauses
(the rest stays undecoded, counted in :attr:`~Class0Connection.held`) until
:meth:`~Class0Connection.receive` is called; in CONFIRMING it holds
everything until the driver accepts. So a driver that reads from its socket
only while the engine :attr:`~Class0Connection.wants_data` gets TCP's flow
control as back-pressure.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..wire import (
    CC,
    CR,
    DR,
    DT0,
    ER,
    MAX_DR_DATA,
    TPDU,
    AlternativeClasses,
    DRReason,
    ERCause,
    InvalidTpdu,
    Param,
    TPDUError,
    TpduSize,
    connection_params,
    decode,
    decode_inline,
    encode,
    encode_inline,
)
from ..wire.tpkt import TPKTDecoder, encode_tpkt
from .config import Config
from .connection import Role
from .errors import (
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    TP4Error,
)
from .events import ConnectionEvent
from .state import State
from .stats import Statistics

__all__ = [
    "CLASS0_MAX_TPDU_SIZE",
    "CLASS0_TRANSITIONS",
    "ER_QUOTE",
    "LOCAL_REF",
    "Class0Connection",
    "Class0Event",
    "Class0Input",
    "ConnectionEstablished",
    "ConnectionRequested",
    "ConnectionTerminated",
    "DataReceived",
    "table_markdown",
]

CLASS0_MAX_TPDU_SIZE = 2048
"""Largest TPDU size of class 0."""
LOCAL_REF = 1
"""Our reference in CR/CC/DR: over TCP the connection identifies itself."""
ER_QUOTE = 2
"""Octets of the rejected TPDU an ER quotes in its "invalid TPDU" parameter.

X.224 makes the parameter mandatory in class 0 and fills it with the rejected
header up to the octet at fault. We quote its LI and code only (all of it when
the TPDU type is at fault, less for a later octet), so that the ER has LI 8,
the longest Wireshark decodes (docs/wireshark.md).
"""


class Class0Input(enum.Enum):
    """Inputs of the class 0 state machine.

    Where the outcome depends on a fact about the input (a CC's class, a DT's
    length, whether our CC would fit), the fact is part of the input: the
    engine classifies, :data:`CLASS0_TRANSITIONS` decides.
    """

    # received TPDUs (classified)
    CR = "CR"
    CC = "CC"
    CC_OTHER_CLASS = "CC of another class"
    DR = "DR"
    DT = "DT"
    DT_TOO_LONG = "DT longer than the TPDU size"
    TSDU_TOO_LONG = "DT making the TSDU longer than max_tsdu_size"
    ER = "ER"
    OTHER = "TPDU not in class 0"
    INVALID = "invalid TPDU"
    # the TCP stream
    BAD_TPKT = "bad TPKT"
    EOF = "TCP close"
    RESET = "TCP reset"
    BROKEN = "TCP broken while sending"
    # the driver's timer for the current state
    TIMEOUT = "timeout"
    # user requests
    CONNECT = "connect"
    ACCEPT = "accept"
    ACCEPT_IMPOSSIBLE = "accept (CR not acceptable)"
    REFUSE = "refuse"
    SEND = "send"
    DISCONNECT = "disconnect"
    CLOSE = "close"


_USER_INPUTS = frozenset(
    {
        Class0Input.CONNECT,
        Class0Input.ACCEPT,
        Class0Input.ACCEPT_IMPOSSIBLE,
        Class0Input.REFUSE,
        Class0Input.SEND,
        Class0Input.DISCONNECT,
        Class0Input.CLOSE,
    }
)

S = State
I = Class0Input  # noqa: E741

CLASS0_TRANSITIONS: dict[tuple[State, Class0Input], tuple[State, str]] = {
    # --- responder, before its CR ------------------------------------------
    (S.CLOSED, I.CR): (S.CONFIRMING, "cr_received"),
    (S.CLOSED, I.CC): (S.CLOSED, "not_a_cr"),
    (S.CLOSED, I.CC_OTHER_CLASS): (S.CLOSED, "not_a_cr"),
    (S.CLOSED, I.DR): (S.CLOSED, "not_a_cr"),
    (S.CLOSED, I.DT): (S.CLOSED, "not_a_cr"),
    (S.CLOSED, I.ER): (S.CLOSED, "not_a_cr"),
    (S.CLOSED, I.OTHER): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.INVALID): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.BAD_TPKT): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.EOF): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.RESET): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.BROKEN): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.TIMEOUT): (S.CLOSED, "no_cr"),
    (S.CLOSED, I.CLOSE): (S.CLOSED, "nothing"),
    # --- responder: the driver decides -----------------------------------------
    (S.CONFIRMING, I.ACCEPT): (S.OPEN, "send_cc"),
    (S.CONFIRMING, I.ACCEPT_IMPOSSIBLE): (S.CLOSED, "refuse_cr"),
    (S.CONFIRMING, I.REFUSE): (S.CLOSED, "refuse_cr"),
    (S.CONFIRMING, I.TIMEOUT): (S.CLOSED, "confirm_timed_out"),
    (S.CONFIRMING, I.CLOSE): (S.CLOSED, "nothing"),
    # --- initiator -------------------------------------------------------------
    (S.CLOSED, I.CONNECT): (S.WFCC, "send_cr"),
    (S.WFCC, I.CC): (S.OPEN, "cc_received"),
    (S.WFCC, I.DR): (S.CLOSED, "refused"),
    (S.WFCC, I.CC_OTHER_CLASS): (S.CLOSED, "unexpected_answer"),
    (S.WFCC, I.CR): (S.CLOSED, "unexpected_answer"),
    (S.WFCC, I.DT): (S.CLOSED, "unexpected_answer"),
    (S.WFCC, I.ER): (S.CLOSED, "unexpected_answer"),
    (S.WFCC, I.OTHER): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.INVALID): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.BAD_TPKT): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.EOF): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.RESET): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.BROKEN): (S.CLOSED, "bad_answer"),
    (S.WFCC, I.TIMEOUT): (S.CLOSED, "connect_timed_out"),
    (S.WFCC, I.CLOSE): (S.CLOSED, "nothing"),
    # --- data transfer ---------------------------------------------------------
    (S.OPEN, I.DT): (S.OPEN, "dt_received"),
    (S.OPEN, I.DT_TOO_LONG): (S.CLOSED, "bad_dt"),
    (S.OPEN, I.TSDU_TOO_LONG): (S.CLOSED, "bad_dt"),
    (S.OPEN, I.SEND): (S.OPEN, "send_dt"),
    (S.OPEN, I.CR): (S.CLOSED, "invalid_type"),
    (S.OPEN, I.CC): (S.CLOSED, "invalid_type"),
    (S.OPEN, I.CC_OTHER_CLASS): (S.CLOSED, "invalid_type"),
    (S.OPEN, I.OTHER): (S.CLOSED, "invalid_type"),
    (S.OPEN, I.INVALID): (S.CLOSED, "invalid_tpdu"),
    (S.OPEN, I.BAD_TPKT): (S.CLOSED, "bad_tpkt"),
    (S.OPEN, I.TIMEOUT): (S.CLOSED, "idle"),
    # --- release ---------------------------------------------------------------
    (S.OPEN, I.DR): (S.CLOSED, "peer_disconnected"),
    (S.OPEN, I.ER): (S.CLOSED, "peer_error"),
    (S.OPEN, I.EOF): (S.CLOSED, "peer_closed"),
    (S.OPEN, I.RESET): (S.CLOSED, "reset"),
    (S.OPEN, I.BROKEN): (S.CLOSED, "broken"),
    (S.OPEN, I.DISCONNECT): (S.CLOSED, "disconnect"),
    (S.OPEN, I.CLOSE): (S.CLOSED, "nothing"),
}
"""``(state, input) -> (next state, action)`` of class 0. The rules:

1. States (of :class:`~tp4emu.core.state.State`): CLOSED (a responder waiting
   for its CR, an initiator before ``connect``, and the end), WFCC (CR sent),
   CONFIRMING (CR received, the driver has not answered it: nothing is read
   meanwhile), OPEN. Class 0 has no AKWAIT, CLOSING or REFWAIT: a DR, an ER
   or the TCP close ends the connection at once.
2. Inputs (:class:`Class0Input`): received TPDUs, classified; what happened to
   the TCP stream (a bad TPKT, the peer's close, a reset, a failed write);
   the driver's timer for the state (the CR's arrival, the CC's, idleness);
   user requests.
3. The connection runs the action (a method ``_a_<action>`` of
   :class:`Class0Connection`), then enters the next state. No action chooses
   the next state.
4. A connection that came back to CLOSED, and an initiator before
   ``connect``, take no input: it is dropped (the TCP connection is being
   closed). ``close`` is then a no-op.
5. A user request with no entry raises
   :class:`~tp4emu.core.errors.LocalProtocolError` and changes nothing.
6. Any other input with no entry is ignored (only a driver input can be
   stale: received TPDUs are not taken in CONFIRMING).
"""


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ConnectionRequested:
    """A CR arrived (CONFIRMING): the driver picks the listener of ``tsap``,
    then calls ``accept()`` or ``refuse()``."""

    connection: Class0Connection
    tsap: bytes | None


class ConnectionEstablished(ConnectionEvent["Class0Connection"]):
    """The connection reached OPEN (initiator: CC received; responder: CC sent)."""

    __slots__ = ()


class DataReceived(ConnectionEvent["Class0Connection"]):
    """A whole TSDU is ready in ``connection.receive()``."""

    __slots__ = ()


class ConnectionTerminated(ConnectionEvent["Class0Connection"]):
    """The connection is CLOSED: the driver writes what is left to send, then
    closes the TCP connection; ``connection.error`` says why (None: a normal
    release)."""

    __slots__ = ()


Class0Event = ConnectionRequested | ConnectionEstablished | DataReceived | ConnectionTerminated
"""Any event of a class 0 connection."""


@dataclass(frozen=True, slots=True)
class _Received:
    """A received TPDU with the payload (TPKT contents) it came in."""

    tpdu: TPDU
    payload: bytes
    inline: bool = False
    """A CR or CC read by :func:`~tp4emu.wire.decode_inline`: its ``data``
    came in its header."""


class Class0Connection:
    """A class 0 connection over one TCP byte stream (sans-IO), either role.

    Initiator: create it with ``Role.INITIATOR``, call :meth:`connect` (the
    CR), feed it the answer. Responder: create it with ``Role.RESPONDER``,
    feed it the stream; on :class:`ConnectionRequested` call :meth:`accept`
    or :meth:`refuse`. Never raises on what the peer sends.

    Args:
        role: which side opens the connection.
        config: ``max_tpdu_size``, ``max_tsdu_size`` and ``tcp_idle_timeout``
            are used.
        stats: counts ``undecodable`` (bad TPKTs, TPDUs answered with ER, no
            CR) into this; a new one by default.
        record: keep every TPDU sent and received for :meth:`recorded` (pcap).
    """

    def __init__(
        self,
        role: Role,
        config: Config | None = None,
        *,
        stats: Statistics | None = None,
        record: bool = False,
    ) -> None:
        self.role = role
        self.config = config or Config()
        self.stats = stats if stats is not None else Statistics()
        """Where ``undecodable`` is counted."""
        self._state = State.CLOSED
        self._taking_input = role is Role.RESPONDER
        self._ended = False
        self.error: TP4Error | None = None
        """Why the connection ended or was refused (None: not ended, or a
        normal release or our own close)."""
        self.released_by_peer = False
        """True once the peer closed the TCP connection (a normal release)."""
        self.local_ref = LOCAL_REF
        """Our reference (class 0 references only identify the connection)."""
        self.remote_ref = 0
        """The peer's reference, from its CR or CC."""
        self.tpdu_size = 128
        """The TPDU size: proposed (initiator in WFCC), then negotiated (≤ 2048)."""
        self.calling_tsap: bytes | None = None
        self.called_tsap: bytes | None = None
        self.connect_data = b""
        """Data of the CR: the octets of its header after its parameters (RDP's
        cookie and RDP_NEG_REQ), then any after its header."""
        self.confirm_data = b""
        """Data of the CC, found as the CR's."""
        self.inline_data = False
        """True when the CR or the CC carried data in its header (RDP's way):
        DTs up to 2048 octets are then taken whatever the TPDU size."""
        self._cr: CR | None = None  # a responder's CR
        self._refusal: int | None = None
        self._cc: bytes | None = None
        self._decoder = TPKTDecoder(CLASS0_MAX_TPDU_SIZE + 4)
        self._pending: deque[bytes] = deque()  # TPKT payloads not yet taken
        self._pending_len = 0
        self._eof = False  # the peer's close, to take once _pending is empty
        self._reasm: list[bytes] = []
        self._reasm_len = 0
        self._tsdu: bytes | None = None
        self._out = bytearray()
        self._events: deque[Class0Event] = deque()
        self._record: list[tuple[bool, bytes]] | None = [] if record else None

    # ------------------------------------------------------------------ info

    @property
    def state(self) -> State:
        """CLOSED, WFCC, CONFIRMING or OPEN."""
        return self._state

    @property
    def ended(self) -> bool:
        """True once the connection came back to CLOSED: it takes no more input."""
        return self._ended

    @property
    def held(self) -> int:
        """Octets received and not yet delivered: a partial TPKT, TPKTs not
        yet taken, the partial TSDU, the TSDU ready (0 once ended)."""
        if not self._taking_input:
            return 0
        ready = len(self._tsdu) if self._tsdu is not None else 0
        return self._decoder.pending + self._pending_len + self._reasm_len + ready

    @property
    def wants_data(self) -> bool:
        """Whether the driver should read from the stream for this connection:
        it is taking input and has nothing left to work on."""
        return (
            self._taking_input
            and self._state is not State.CONFIRMING
            and self._tsdu is None
            and not self._pending
            and not self._eof
            and not self._decoder.broken
        )

    @property
    def refusal(self) -> int | None:
        """In CONFIRMING: the DR reason :meth:`accept` would answer with
        (130: the CR allows no class 0; 138: the CC would not fit one header),
        or None when the CR can be accepted."""
        if self._state is State.CONFIRMING and self._cc is None and self._refusal is None:
            self._check_cr()
        return self._refusal

    def __repr__(self) -> str:
        ref = f"{self.remote_ref:#06x}"
        return f"<Class0Connection {self.role.value} remote_ref={ref} {self._state.name}>"

    # ------------------------------------------------------------ user calls

    def connect(
        self,
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        propose_tpdu_size: bool = True,
        data: bytes = b"",
    ) -> None:
        """Initiator: the CR goes out; WFCC.

        Args:
            called_tsap: the called TSAP-ID parameter (None: none).
            calling_tsap: the calling TSAP-ID parameter (None: none).
            propose_tpdu_size: send the TPDU size parameter, proposing
                ``min(max_tpdu_size, 2048)``; False: none (the size is then
                X.224's default, 128), as RDP clients send their CR.
            data: connect data, written in the CR's header after its
                parameters, as RDP writes its cookie and RDP_NEG_REQ
                (:func:`~tp4emu.wire.encode_inline`); a textbook class 0 peer
                has no use for it. A CR with neither parameters nor data is
                the bare 7-octet fixed part.

        Raises:
            ValueError: the parameters and the data do not fit a CR header
                (254 octets; nothing changes).
            LocalProtocolError: not an initiator in CLOSED.
        """
        if self.role is not Role.INITIATOR or self._ended or self._state is not State.CLOSED:
            raise LocalProtocolError("only an initiator in CLOSED connects")
        size = min(self.config.max_tpdu_size, CLASS0_MAX_TPDU_SIZE)
        params = connection_params(size, calling_tsap, called_tsap)
        if not propose_tpdu_size:
            params = tuple(p for p in params if not isinstance(p, TpduSize))
            size = 128
        cr = CR(src_ref=self.local_ref, protocol_class=0, params=params, data=bytes(data))
        raw = encode_inline(cr) if data else encode(cr)  # ValueError now, before any change
        self._dispatch(I.CONNECT, (raw, size, calling_tsap, called_tsap, bytes(data)))

    def accept(self, data: bytes = b"") -> None:
        """Responder in CONFIRMING: answer the CR with a CC (OPEN), or with a
        DR of reason :attr:`refusal` when it cannot be accepted (CLOSED).

        Args:
            data: confirm data, written in the CC's header after its
                parameters (RDP's RDP_NEG_RSP or RDP_NEG_FAILURE goes there).

        Raises:
            ValueError: the CC's parameters and *data* do not fit one header
                (254 octets); nothing changes.
        """
        if self._state is State.CONFIRMING and self.refusal is None:
            cc = self._cc
            assert cc is not None and self._cr is not None
            if data:
                cc = encode_inline(self._cc_tpdu(bytes(data)))  # ValueError: nothing changes
            self._dispatch(I.ACCEPT, (cc, bytes(data)))
            return
        impossible = self._state is State.CONFIRMING
        self._dispatch(I.ACCEPT_IMPOSSIBLE if impossible else I.ACCEPT, None)

    def refuse(self, reason: int, data: bytes = b"") -> None:
        """Responder in CONFIRMING: answer the CR with a DR of *reason* and
        *data* (≤ 64 octets) (CLOSED)."""
        if len(data) > MAX_DR_DATA:
            raise ValueError(f"refusal data is limited to {MAX_DR_DATA} octets")
        self._dispatch(I.REFUSE, (int(reason), bytes(data)))

    def send(self, tsdu: bytes | bytearray | memoryview) -> None:
        """Queue one TSDU as DTs of the TPDU size, EOT on the last one (OPEN)."""
        self._dispatch(I.SEND, bytes(tsdu))

    def disconnect(self, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Release an OPEN connection abortively: a DR (*reason*, ≤ 64 octets of
        *data*) goes out, then the driver closes the TCP connection."""
        if len(data) > MAX_DR_DATA:
            raise ValueError(f"disconnect data is limited to {MAX_DR_DATA} octets")
        self._dispatch(I.DISCONNECT, (int(reason), bytes(data)))

    def close(self) -> None:
        """Our normal release (or giving up): CLOSED; the driver closes the TCP
        connection. Nothing is sent. A no-op once ended."""
        if self._ended or (self._state is State.CLOSED and not self._taking_input):
            return
        self._dispatch(I.CLOSE, None)

    def receive(self) -> bytes | None:
        """Take the next whole TSDU, or None when none is ready.

        When none is ready, the TPDUs received and not yet taken are taken
        first (which may end the connection: see :attr:`error`).
        """
        if self._tsdu is None:
            self._process()
        tsdu, self._tsdu = self._tsdu, None
        return tsdu

    # ------------------------------------------------------------ driver calls

    def receive_data(self, data: bytes) -> None:
        """Octets TCP delivered, in order. Never raises on their content."""
        if not self._taking_input or not data or self._decoder.broken:
            return
        try:
            payloads = self._decoder.feed(data)
        except TPDUError:
            payloads = []  # the decoder is broken: taken once _pending is empty
        for payload in payloads:
            self._recorded(False, payload)
            self._pending.append(payload)
            self._pending_len += len(payload)
        self._process()

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        if self._taking_input:
            self._eof = True
            self._process()

    def connection_reset(self) -> None:
        """Reading from the TCP connection failed (reset by the peer)."""
        self._dispatch(I.RESET, None)

    def send_failed(self) -> None:
        """Writing :meth:`data_to_send` to the TCP connection failed."""
        self._dispatch(I.BROKEN, None)

    def timeout(self) -> None:
        """The driver's timer for this state expired: no CR in time
        (``tcp_cr_timeout``), no answer to our CR, no decision on a CR
        (``confirm_timeout``: a DR of ``confirm_timeout_reason``), or nothing
        received for ``tcp_idle_timeout`` while the user waited."""
        self._dispatch(I.TIMEOUT, None)

    def data_to_send(self) -> bytes:
        """Take the octets to write to the TCP connection (TPKTs)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Class0Event | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def recorded(self) -> list[tuple[bool, bytes]]:
        """Take the TPDUs sent and received since the last call, in order, as
        ``(sent, tpdu)`` (without TPKT headers); empty unless ``record``."""
        if not self._record:
            return []
        out, self._record = self._record, []
        return out

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, inp: Class0Input, arg: Any) -> None:
        user = inp in _USER_INPUTS
        if not user and not self._taking_input:
            return
        entry = CLASS0_TRANSITIONS.get((self._state, inp))
        if entry is None:
            if user:
                raise LocalProtocolError(f"{inp.value} is not allowed in state {self._state.name}")
            return
        next_state, action = entry
        _ACTIONS[action](self, arg)
        self._enter(next_state)

    def _enter(self, state: State) -> None:
        before = self._state
        self._state = state
        if state is State.CLOSED:
            # (a responder's CLOSED -> CLOSED rows end it too: no CR came)
            if self._taking_input:
                self._taking_input = False
                self._ended = True
                self._pending.clear()
                self._pending_len = 0
                self._reasm = []
                self._reasm_len = 0
                self._eof = False
                if self.error is not None:
                    self._tsdu = None
                self._events.append(ConnectionTerminated(self))
            return
        if state is before:
            return
        if state is State.CONFIRMING:
            self._taking_input = True
            self._events.append(ConnectionRequested(self, self.called_tsap))
        elif state is State.OPEN:
            self._events.append(ConnectionEstablished(self))
        elif state is State.WFCC:
            self._taking_input = True

    def _process(self) -> None:
        """Take received TPDUs until one changes the state or completes a TSDU."""
        while self._taking_input and self._state is not State.CONFIRMING and self._tsdu is None:
            if self._pending:
                payload = self._pending.popleft()
                self._pending_len -= len(payload)
                before = self._state
                inp, arg = self._classify(payload)
                self._dispatch(inp, arg)
                if self._state is not before:
                    return
            elif self._decoder.broken:
                try:
                    self._decoder.feed(b"")
                except TPDUError as exc:
                    self._dispatch(I.BAD_TPKT, exc)
                return
            elif self._eof:
                try:
                    self._decoder.eof()
                except TPDUError as exc:
                    self._dispatch(I.BAD_TPKT, exc)
                else:
                    self._dispatch(I.EOF, None)
                return
            else:
                return

    def _classify(self, payload: bytes) -> tuple[Class0Input, Any]:
        """The input one received TPKT payload is, with its argument."""
        # A responder's CR and an initiator's CC may carry data in their header (RDP).
        inline: TPDU | None = None
        try:
            if self._state is State.CLOSED:
                inline = _inline(payload, CR)
            elif self._state is State.WFCC:
                inline = _inline(payload, CC)
            tpdus = [inline] if inline is not None else decode(payload)
        except TPDUError as exc:
            return I.INVALID, (payload, exc)
        if not tpdus:  # pragma: no cover - decode returns a TPDU or raises
            return I.INVALID, (payload, TPDUError("no TPDU", cause=ERCause.NOT_SPECIFIED))
        # Only the first TPDU counts: each class 0 TPDU extends to the end of its TPKT.
        tpdu = tpdus[0]
        got = _Received(tpdu, payload, inline is not None)
        if isinstance(tpdu, DT0):
            if self._state is State.OPEN:
                if len(payload) > (CLASS0_MAX_TPDU_SIZE if self.inline_data else self.tpdu_size):
                    return I.DT_TOO_LONG, (got, "DT longer than the TPDU size")
                if self._reasm_len + len(tpdu.data) > self.config.max_tsdu_size:
                    return I.TSDU_TOO_LONG, (got, "TSDU larger than max_tsdu_size")
            return I.DT, got
        if isinstance(tpdu, CC):
            return (I.CC if tpdu.protocol_class == 0 else I.CC_OTHER_CLASS), got
        kind = _INPUT_OF.get(type(tpdu))
        return (kind or I.OTHER), got

    # ------------------------------------------------------------- output

    def _send_tpdu(self, tpdu: TPDU) -> None:
        raw = encode(tpdu)
        self._recorded(True, raw)
        self._out += encode_tpkt(raw)

    def _recorded(self, sent: bool, tpdu: bytes) -> None:
        if self._record is not None:
            self._record.append((sent, tpdu))

    def _send_er(self, cause: int, rejected: bytes, why: str) -> None:
        """An ER for a TPDU class 0 cannot accept; the connection ends with *why*.

        *rejected* is the TPDU as received; the ER quotes its first
        :data:`ER_QUOTE` octets.
        """
        self.stats.undecodable += 1
        self._send_tpdu(ER(self.remote_ref, cause, (InvalidTpdu(rejected[:ER_QUOTE]),)))
        self._lost(why)

    def _lost(
        self, why: str, reason: int = DRReason.PROTOCOL_ERROR, *, by_peer: bool = False
    ) -> None:
        if self.error is None:
            self.error = Disconnected(reason, by_peer=by_peer, message=why)

    # ------------------------------------------------- actions: responder

    def _a_nothing(self, arg: None) -> None:
        pass

    def _a_cr_received(self, got: _Received) -> None:
        cr = got.tpdu
        assert isinstance(cr, CR)
        self._cr = cr
        self.remote_ref = cr.src_ref
        self.calling_tsap = cr.calling_tsap
        self.called_tsap = cr.called_tsap
        self.connect_data = cr.data
        self.inline_data = got.inline
        self.tpdu_size = min(cr.tpdu_size or 128, CLASS0_MAX_TPDU_SIZE, self.config.max_tpdu_size)

    def _check_cr(self) -> None:
        """Whether the CR allows class 0, and whether our CC fits one header."""
        cr = self._cr
        assert cr is not None
        alternatives = cr.param(AlternativeClasses)
        if cr.protocol_class != 0 and 0 not in (alternatives.classes if alternatives else ()):
            self._refusal = DRReason.NEGOTIATION_FAILED
            return
        try:
            self._cc = encode(self._cc_tpdu(b""))
        except ValueError:  # the TSAPs echoed plus the TPDU size overflow the header
            self._refusal = DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID

    def _cc_tpdu(self, data: bytes) -> CC:
        """Our CC to the CR: the TSAPs echoed, the TPDU size (but for an RDP
        peer that proposed none), *data*."""
        cr = self._cr
        assert cr is not None
        params: tuple[Param, ...] = connection_params(
            self.tpdu_size, cr.calling_tsap, cr.called_tsap
        )
        if cr.tpdu_size is None and (self.inline_data or data):
            # RDP: the CC's header after the fixed part is read as its RDP_NEG_RSP.
            params = tuple(p for p in params if not isinstance(p, TpduSize))
        return CC(cr.src_ref, self.local_ref, protocol_class=0, params=params, data=data)

    def _a_not_a_cr(self, got: _Received) -> None:
        self.stats.undecodable += 1
        rejected = InvalidTpdu(got.payload[:ER_QUOTE])
        self._send_tpdu(ER(0, ERCause.INVALID_TPDU_TYPE, (rejected,)))

    def _a_no_cr(self, arg: object) -> None:
        self.stats.undecodable += 1

    def _a_send_cc(self, arg: tuple[bytes, bytes]) -> None:
        cc, self.confirm_data = arg
        self.inline_data = self.inline_data or bool(self.confirm_data)
        self._recorded(True, cc)
        self._out += encode_tpkt(cc)

    def _a_confirm_timed_out(self, arg: None) -> None:
        reason = self.config.confirm_timeout_reason
        self.error = Disconnected(
            reason,
            by_peer=False,
            message="rejected: the user neither confirmed nor rejected in time",
        )
        self._a_refuse_cr((reason, b""))

    def _a_refuse_cr(self, arg: tuple[int, bytes] | None) -> None:
        cr = self._cr
        assert cr is not None
        reason, data = arg if arg is not None else (self._refusal or 0, b"")
        self._send_tpdu(DR(cr.src_ref, 0, reason, data=data))

    # ------------------------------------------------- actions: initiator

    def _a_send_cr(self, arg: tuple[bytes, int, bytes | None, bytes | None, bytes]) -> None:
        cr, self.tpdu_size, self.calling_tsap, self.called_tsap, self.connect_data = arg
        self.inline_data = bool(self.connect_data)
        self._recorded(True, cr)
        self._out += encode_tpkt(cr)

    def _a_cc_received(self, got: _Received) -> None:
        cc = got.tpdu
        assert isinstance(cc, CC)
        self.tpdu_size = min(cc.tpdu_size or 128, self.tpdu_size)
        self.remote_ref = cc.src_ref
        self.confirm_data = cc.data
        self.inline_data = self.inline_data or got.inline

    def _a_refused(self, got: _Received) -> None:
        dr = got.tpdu
        assert isinstance(dr, DR)
        self.error = ConnectionRejected(dr.reason, dr.data)

    def _a_unexpected_answer(self, got: _Received) -> None:
        self.error = ConnectionRejected(
            DRReason.NEGOTIATION_FAILED,
            message=f"expected a class 0 CC, got {got.tpdu!r}",
            by_peer=False,
        )

    def _a_bad_answer(self, arg: object) -> None:
        if isinstance(arg, _Received):
            why = f"{type(arg.tpdu).__name__} does not exist in class 0"
        elif isinstance(arg, tuple):  # (payload, TPDUError)
            why = str(arg[1])
        elif isinstance(arg, TPDUError):
            why = str(arg)
        else:  # the TCP close, a reset or a failed write
            why = "connection closed during establishment"
        self.error = ConnectionRejected(
            DRReason.PROTOCOL_ERROR, message=f"bad answer: {why}", by_peer=False
        )

    def _a_connect_timed_out(self, arg: None) -> None:
        self.error = ConnectionTimedOut(message="no answer to CR")

    # ------------------------------------------------- actions: data transfer

    def _a_send_dt(self, data: bytes) -> None:
        size = self.tpdu_size - 3  # LI, code, EOT/NR
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            self._send_tpdu(DT0(0, i == last, chunk))

    def _a_dt_received(self, got: _Received) -> None:
        dt = got.tpdu
        assert isinstance(dt, DT0)
        self._reasm.append(dt.data)
        self._reasm_len += len(dt.data)
        if dt.eot:
            self._tsdu = b"".join(self._reasm)
            self._reasm = []
            self._reasm_len = 0
            self._events.append(DataReceived(self))

    def _a_bad_dt(self, arg: tuple[_Received, str]) -> None:
        got, why = arg
        self._send_er(ERCause.NOT_SPECIFIED, got.payload, why)

    def _a_invalid_type(self, got: _Received) -> None:
        name = type(got.tpdu).__name__
        self._send_er(
            ERCause.INVALID_TPDU_TYPE, got.payload, f"{name} does not exist in class 0 here"
        )

    def _a_invalid_tpdu(self, arg: tuple[bytes, TPDUError]) -> None:
        payload, exc = arg
        self._send_er(exc.cause, exc.header or payload, f"invalid TPDU: {exc}")

    def _a_bad_tpkt(self, exc: TPDUError) -> None:
        self.stats.undecodable += 1
        self._lost(f"bad TPKT stream: {exc}", exc.reason)

    def _a_idle(self, arg: None) -> None:
        self._lost(
            f"idle: nothing received for {self.config.tcp_idle_timeout} s", DRReason.NOT_SPECIFIED
        )

    # ------------------------------------------------- actions: release

    def _a_peer_disconnected(self, got: _Received) -> None:
        dr = got.tpdu
        assert isinstance(dr, DR)
        self.error = Disconnected(dr.reason, dr.data, by_peer=True)

    def _a_peer_error(self, got: _Received) -> None:
        er = got.tpdu
        assert isinstance(er, ER)
        self.error = Disconnected(
            DRReason.PROTOCOL_ERROR, by_peer=True, message=f"peer sent ER cause {er.cause}"
        )

    def _a_peer_closed(self, arg: None) -> None:
        self.released_by_peer = True
        if self._reasm:
            self._lost("TCP connection closed in the middle of a TSDU")

    def _a_reset(self, arg: None) -> None:
        self._lost("TCP connection reset by peer", DRReason.NOT_SPECIFIED, by_peer=True)

    def _a_broken(self, arg: None) -> None:
        self._lost("TCP connection broken while sending")

    def _a_disconnect(self, arg: tuple[int, bytes]) -> None:
        reason, data = arg
        self._send_tpdu(DR(self.remote_ref, self.local_ref, reason, data=data))


_INPUT_OF: dict[type, Class0Input] = {CR: I.CR, DR: I.DR, ER: I.ER}


def _inline(payload: bytes, kind: type[CR] | type[CC]) -> TPDU | None:
    """*payload* read by :func:`~tp4emu.wire.decode_inline` when it is a *kind*
    with data in its header, else None (raises TPDUError as decode does)."""
    if len(payload) < 2 or payload[1] >> 4 != kind.code:
        return None
    tpdu = decode_inline(payload)
    return tpdu if isinstance(tpdu, kind) else None


_ACTIONS: dict[str, Callable[[Class0Connection, Any], None]] = {
    action: getattr(Class0Connection, "_a_" + action) for _, action in CLASS0_TRANSITIONS.values()
}


def table_markdown() -> str:
    """The class 0 transition table as a Markdown table (for the docs)."""
    rows = ["| state | input | next state | action |", "|---|---|---|---|"]
    for (src, inp), (dst, action) in CLASS0_TRANSITIONS.items():
        rows.append(f"| {src.name} | {inp.value} | {dst.name} | `{action}` |")
    return "\n".join(rows) + "\n"
