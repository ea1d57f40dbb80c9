"""One class 4 transport connection: the sans-IO state machine.

A :class:`Connection` never does I/O and never reads a clock: its endpoint
hands it TPDUs and timer expiries with the current time ``now``, and it hands
its endpoint encoded TPDUs to send, events and deadlines. Transitions are
decided by :data:`tp4emu.core.state.TRANSITIONS` only.

Sequence numbers are kept internally as unbounded integers; only the wire
carries them modulo 2**7 (normal format) or 2**31 (extended format).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ..wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    EA,
    ED,
    ER,
    MAX_CR_CC_DATA,
    MAX_DR_DATA,
    MAX_ED_DATA,
    TPDU,
    AckTime,
    AdditionalOptions,
    ClassOption,
    DRReason,
    FlowControlConfirmation,
    Param,
    PreferredMaxTpduSize,
    SelectiveAck,
    SubsequenceNumber,
    connection_params,
    encode_one,
)
from ..wire.checksum import checksum_octets, verify
from ..wire.params import encode_param_value
from .budget import ReceiveBudget
from .config import Config
from .errors import (
    ConnectionRejected,
    ConnectionTimedOut,
    Disconnected,
    LocalProtocolError,
    TP4Error,
)
from .events import (
    AckWanted,
    ConnectionEstablished,
    ConnectionTerminated,
    DataReceived,
    EndpointEvent,
    ExpeditedReceived,
    ReleaseCompleted,
    SendSpaceAvailable,
    StateChanged,
    TimerArmed,
    Transmit,
)
from .state import (
    ENTRY,
    TIMER_INPUT,
    TPDU_INPUTS,
    TRANSITIONS,
    USER_INPUTS,
    Input,
    Rule,
    State,
    Timer,
)
from .stats import Statistics

__all__ = ["Address", "Connection", "Role"]

Address = Hashable
"""A network address as the driver knows it, e.g. ``("127.0.0.1", 10200)``."""

_INF = float("inf")
_MAX_HEADER = 254  # LI is one octet and 255 is reserved


_MAX_SACK_BLOCKS = 16  # in one AK: 2 + 8 x 16 = 130 octets at most (extended format)

_PREDICTED = TRANSITIONS.get((State.OPEN, Input.DT)) == (
    (None, State.OPEN, "dt_received"),
) and TRANSITIONS.get((State.OPEN, Input.AK), ((None,),))[-1] == (None, State.OPEN, "ak_received")
"""Header prediction replays the table's (OPEN, DT) and (OPEN, AK) rules: it is
on only while they are what it replays (see :meth:`Connection.fast_receive`)."""
_CHECKSUM_PARAM = b"\xc3\x02\x00\x00"
_KEEPALIVE_GRID = 0.1  # a scaled W expires on multiples of this: keep-alives in batches
_NO_QUEUE: deque[Any] = deque(maxlen=0)
"""The send queue and the receive queue of a connection that never used them
(an idle connection saves two deques, 1.5 KiB): replaced before the first
append, which on this shared one would be lost (maxlen 0), never shared."""


def _option_flags(*, expedited: bool, checksum: bool, sack: bool) -> int:
    """The additional option selection octet (0xC6) for these choices."""
    return (
        (AdditionalOptions.USE_EXPEDITED if expedited else 0)
        | (0 if checksum else AdditionalOptions.NON_USE_OF_CHECKSUM)
        | (AdditionalOptions.SELECTIVE_ACK if sack else 0)
    )


def _ack_time_ms(config: Config) -> int | None:
    """The acknowledgement time our CR and CC announce (0x85), in ms, or None."""
    return None if config.ack_time is None else round(config.ack_time * 1000)


def _cc_header(params: tuple[Param, ...]) -> int:
    """LI of a CC with *params*: fixed part (6), each parameter (code, length,
    value), checksum (4)."""
    return 6 + 4 + sum(2 + len(encode_param_value(p)) for p in params)


class Role(enum.Enum):
    """Which side opened the connection."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


@dataclass(slots=True)
class _Sent:
    """A DT awaiting acknowledgement."""

    raw: bytes
    length: int
    sent_at: float
    xmit: int
    """Transmission number of its last sending (orders every DT sent, resends too)."""
    retries: int = 0
    """Retransmissions that count towards N (not those forced by a closed window)."""
    resent: bool = False
    """Sent more than once: its AK gives no RTT sample (Karn)."""
    sacked: bool = False
    """The peer said (0x8F) that it holds this DT."""


class Connection:
    """A class 4 connection (sans-IO). Created by :class:`~tp4emu.core.endpoint.Endpoint`.

    User requests (``confirm``, ``send``, ``send_expedited``, ``disconnect``)
    take ``now``; reads (``receive``, ``receive_expedited``) do not need it.

    A connection holds no pointer to its endpoint: what it needs done (a
    datagram sent, a deadline kept, an AK batched, a change of state noted)
    and what the user must hear it queues on *outbox* as
    :data:`~tp4emu.core.events.EndpointEvent` objects, which the endpoint
    carries out. It shares only the endpoint's counters (*stats*) and its
    receive budget (*budget*).
    """

    __slots__ = (
        "_ack_pending",
        "_ack_urgent",
        "_adv_credit",
        "_adv_nr",
        "_adv_uwe",
        "_ak_seen",
        "_backoff",
        "_budget",
        "_cc_params",
        "_config",
        "_ctl_raw",
        "_ctl_retries",
        "_ctl_sent_at",
        "_dupacks",
        "_ed_nxt",
        "_ed_out",
        "_ed_queue",
        "_ed_rcv_nxt",
        "_ed_received",
        "_ed_retries",
        "_ed_sent_at",
        "_fcc_pending",
        "_held",
        "_mod",
        "_n_sacked",
        "_outbox",
        "_peer_window",
        "_posted",
        "_preferred_size",
        "_probed",
        "_progress_at",
        "_proposed_extended",
        "_proposed_size",
        "_rcv_nxt",
        "_rcv_ooo",
        "_rcv_queue",
        "_rcv_queued_tpdus",
        "_reasm",
        "_reasm_len",
        "_recover",
        "_registered",
        "_reneged",
        "_rto",
        "_rttvar",
        "_rx_octets",
        "_send_buffered",
        "_send_off",
        "_send_tsdus",
        "_snd_nxt",
        "_snd_una",
        "_snd_uwe",
        "_srtt",
        "_state",
        "_stats",
        "_subseq",
        "_terminated",
        "_timers",
        "_tx_octets",
        "_unacked",
        "_xmit",
        "called_tsap",
        "calling_tsap",
        "checksum",
        "closed_by_user",
        "confirm_data",
        "connect_data",
        "error",
        "expedited_enabled",
        "extended",
        "local_ref",
        "peer",
        "peer_ack_time",
        "remote_ref",
        "role",
        "selective_ack",
        "tpdu_size",
        "validated",
    )

    def __init__(
        self,
        local_ref: int,
        peer: Address,
        role: Role,
        config: Config,
        *,
        stats: Statistics,
        budget: ReceiveBudget,
        outbox: deque[EndpointEvent],
    ) -> None:
        self._stats = stats
        self._budget = budget
        self._outbox = outbox  # what we ask of the endpoint, and the user events
        self._config = config
        self.local_ref = local_ref
        """Our reference (SRC-REF of what we send)."""
        self.remote_ref = 0
        """The peer's reference (0 until known)."""
        self.peer = peer
        """The peer's network address."""
        self.role = role
        self._state = State.CLOSED
        self.error: TP4Error | None = None
        """Why the connection ended, when it did not end by our user's close."""
        self.closed_by_user = False
        """True once our user closed or rejected the connection."""
        self._terminated = False
        self.validated = role is Role.INITIATOR
        """Whether the peer has shown that it receives our TPDUs (it sent one
        carrying our reference). Until then at most ``amplification_factor``
        times the octets received from it are sent to it. An initiator's peer
        is the one its user chose: validated from the start."""
        self._rx_octets = 0
        self._tx_octets = 0
        self._cc_params: tuple[Param, ...] = ()

        # negotiated at establishment
        self.calling_tsap: bytes | None = None
        self.called_tsap: bytes | None = None
        self.connect_data = b""
        """User data of the CR (sent or received)."""
        self.confirm_data = b""
        """User data of the CC (sent or received)."""
        self.tpdu_size = 128
        self.extended = False
        self.checksum = True
        self.expedited_enabled = config.expedited
        self.selective_ack = False
        """Whether selective acknowledgement was negotiated (both sides offered it)."""
        self.peer_ack_time = 0.0
        """The acknowledgement time the peer announced (0x85), in seconds (0: none)."""
        self._mod = 1 << 7
        self._proposed_size = config.preferred_size or config.max_tpdu_size
        self._preferred_size = False  # negotiated with the 0xF0 parameter
        self._proposed_extended = config.extended_format

        # control TPDU (CR/CC/DR) retransmission
        self._ctl_raw = b""
        self._ctl_retries = 0
        self._ctl_sent_at = 0.0

        # RTT estimate (RFC 6298 style) and back-off
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = config.initial_retransmit_time
        self._backoff = 1

        # sending
        self._send_tsdus: deque[memoryview] = _NO_QUEUE  # a deque of its own once used
        self._send_off = 0
        self._send_buffered = 0
        self._unacked: dict[int, _Sent] = {}
        self._snd_una = 0
        self._snd_nxt = 0
        self._snd_uwe = 0
        self._ak_seen: tuple[int, int, int] = (0, -1, -1)
        self._dupacks = 0
        self._recover = -1
        self._peer_window: tuple[int, int, int] = (0, 0, 0)
        self._xmit = 0  # DT transmissions so far (orders _Sent.xmit)
        self._reneged: int | None = None  # lowest DT sent that a credit reduction left outside
        self._progress_at = 0.0  # when the peer last acknowledged something new
        self._probed = False  # a loss probe went out for the current flight
        self._n_sacked = 0  # DTs in _unacked marked sacked

        # receiving
        self._rcv_nxt = 0
        self._rcv_ooo: dict[int, DT] = {}
        self._reasm: list[bytes] = []
        self._reasm_len = 0
        self._rcv_queue: deque[tuple[bytes, int]] = _NO_QUEUE
        self._rcv_queued_tpdus = 0
        self._held = 0  # octets received and held: reassembly, out of order, unread
        self._adv_nr = 0
        self._adv_credit = 0
        self._adv_uwe = 0
        self._subseq = 0
        self._ack_pending = False
        self._ack_urgent = False
        self._fcc_pending: FlowControlConfirmation | None = None

        # expedited
        self._ed_queue: list[bytes] = []  # (lists, not deques: short, and 8x smaller empty)
        self._ed_out: tuple[int, bytes] | None = None
        self._ed_retries = 0
        self._ed_sent_at = 0.0
        self._ed_nxt = 0
        self._ed_rcv_nxt = 0
        self._ed_received: list[bytes] = []

        # timers
        self._timers: dict[Timer, float] = {}
        self._posted: list[tuple[Input, Any]] = []
        self._registered = _INF

    # ------------------------------------------------------------------ info

    @property
    def state(self) -> State:
        """The current state (CLOSED, WFCC, CONFIRMING, AKWAIT, OPEN, CLOSING, REFWAIT)."""
        return self._state

    @property
    def max_data(self) -> int:
        """User data octets per DT at the negotiated TPDU size."""
        header = (8 if self.extended else 5) + (4 if self.checksum else 0)
        return self.tpdu_size - header

    @property
    def send_buffer_available(self) -> int:
        """Octets the user may still queue before the send buffer is full."""
        return max(0, self._config.send_buffer - self._send_buffered)

    @property
    def send_idle(self) -> bool:
        """Nothing queued or unacknowledged, normal or expedited."""
        return (
            not self._send_tsdus
            and not self._unacked
            and self._ed_out is None
            and not self._ed_queue
        )

    @property
    def expedited_slot_free(self) -> bool:
        """Whether ``send_expedited`` can queue another ED right now."""
        return self._ed_out is None and not self._ed_queue

    @property
    def receivable(self) -> bool:
        """Whether ``receive()`` has a TSDU ready."""
        return bool(self._rcv_queue)

    @property
    def expedited_receivable(self) -> bool:
        """Whether ``receive_expedited()`` has data ready."""
        return bool(self._ed_received)

    @property
    def rto(self) -> float:
        """The current retransmission time (T1), back-off included."""
        return min(self._rto * self._backoff, self._config.max_retransmit_time)

    @property
    def next_deadline(self) -> float:
        """The earliest pending timer of this connection (inf if none)."""
        return min(self._timers.values(), default=_INF)

    def __repr__(self) -> str:
        return (
            f"<Connection ref={self.local_ref:#06x} peer={self.peer!r} "
            f"remote_ref={self.remote_ref:#06x} {self._state.name}>"
        )

    # ------------------------------------------------------------ user calls

    def connect(
        self,
        now: float,
        *,
        called_tsap: bytes | None = None,
        calling_tsap: bytes | None = None,
        data: bytes = b"",
    ) -> None:
        """Send the CR (an initiator leaves CLOSED for WFCC); see :meth:`Endpoint.connect`."""
        self._dispatch(Input.CONNECT, (called_tsap, calling_tsap, bytes(data)), now)

    def confirm(self, now: float, data: bytes = b"") -> None:
        """Confirm a CONFIRMING connection: the CC (with *data*, ≤32 octets) goes out.

        A no-op once confirmed.
        """
        if len(data) > MAX_CR_CC_DATA:
            raise ValueError(f"confirm data is limited to {MAX_CR_CC_DATA} octets")
        self._dispatch(Input.CONFIRM, data, now)

    def send(self, now: float, tsdu: bytes | bytearray | memoryview) -> None:
        """Queue one TSDU. In CONFIRMING this confirms the connection first.

        Flow control is the caller's: see :attr:`send_buffer_available`.
        """
        self._dispatch(Input.SEND, memoryview(bytes(tsdu)), now)

    def send_expedited(self, now: float, data: bytes) -> None:
        """Queue expedited data (1..16 octets); sent when no other ED is outstanding."""
        if not 1 <= len(data) <= MAX_ED_DATA:
            raise ValueError(f"expedited data must be 1..{MAX_ED_DATA} octets")
        if not self.expedited_enabled:
            raise LocalProtocolError("expedited data was not negotiated on this connection")
        self._dispatch(Input.SEND_EXPEDITED, bytes(data), now)

    def disconnect(self, now: float, reason: int = DRReason.NORMAL, data: bytes = b"") -> None:
        """Release (or, while CONFIRMING, reject) the connection with a DR.

        Data still queued is discarded: ISO transport release is abrupt; wait
        for :attr:`send_idle` first for a graceful close.
        """
        if len(data) > MAX_DR_DATA:
            raise ValueError(f"disconnect data is limited to {MAX_DR_DATA} octets")
        if self._state is State.CLOSED:
            return
        self.closed_by_user = True
        self._dispatch(Input.DISCONNECT, (int(reason), bytes(data)), now)

    def receive(self) -> bytes | None:
        """Take the next whole TSDU, or None when none is ready.

        Reading opens the credit window again; the AK goes out with the next
        ``datagrams_to_send``.
        """
        if not self._rcv_queue:
            return None
        tsdu, count = self._rcv_queue.popleft()
        before = self._credit()
        self._rcv_queued_tpdus -= count
        self._hold(-len(tsdu))
        after = self._credit()
        window = self._config.receive_window
        if self._state is State.OPEN and after > before:
            new_uwe = self._rcv_nxt + after
            if self._adv_uwe <= self._rcv_nxt or new_uwe - self._adv_uwe >= max(1, window // 2):
                self._want_ack(self._window_low())
        return tsdu

    def receive_expedited(self) -> bytes | None:
        """Take the next expedited data unit, or None."""
        return self._ed_received.pop(0) if self._ed_received else None

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, inp: Input, arg: Any, now: float) -> None:
        """Run *inp* through the transition table, then any inputs its action posted."""
        self._step(inp, arg, now)
        posted = self._posted
        while posted:
            inp, arg = posted.pop(0)
            self._step(inp, arg, now)

    def _step(self, inp: Input, arg: Any, now: float) -> None:
        rules = TRANSITIONS.get((self._state, inp))
        if rules is None:
            if inp in TPDU_INPUTS:
                self._stats.wrong_state += 1
                if inp is Input.DR:
                    self._answer_dc(arg)
                return
            if inp in USER_INPUTS:
                raise LocalProtocolError(f"{inp.value} is not allowed in state {self._state.name}")
            return  # a stale timer or eviction
        next_state, action = self._choose(rules, arg, now)
        _ACTIONS[action](self, arg, now)
        if next_state is not self._state:
            self._enter(next_state, now)

    def _choose(self, rules: tuple[Rule, ...], arg: Any, now: float) -> tuple[State, str]:
        """The first rule whose guard holds (the last one has none: it always does)."""
        if len(rules) == 1:  # the common case: no guard to evaluate
            return rules[0][1], rules[0][2]
        for guard, next_state, action in rules:
            if guard is None or _GUARDS[guard](self, arg, now):
                return next_state, action
        raise AssertionError("a rule list must end with an unguarded rule")  # pragma: no cover

    def _post(self, inp: Input, arg: Any) -> None:
        """An action's consequence, run through the table once the transition is done."""
        self._posted.append((inp, arg))

    def receive_tpdu(self, tpdu: TPDU, now: float) -> None:
        """Process one TPDU addressed to this connection (checksum already checked).

        A CC, DR or DC whose SRC-REF is not the peer's reference, once that is
        known, is dropped (counted ``invalid_tpdu``): a blind attacker must
        guess both references, not ours alone.
        """
        if isinstance(tpdu, (CC, DR, DC)) and self.remote_ref and tpdu.src_ref != self.remote_ref:
            self._stats.invalid_tpdu += 1
            return
        inp = _INPUT_OF[type(tpdu)]
        if self._state in (State.OPEN, State.AKWAIT):
            self._heard_from_peer(now)
        self._dispatch(inp, tpdu, now)

    def fast_receive(self, data: bytes, now: float) -> int:
        """Header prediction (after BSD TCP): take *data*, a datagram whose first
        TPDU carries our reference, at once if it is the common case in OPEN --
        the next in-sequence DT, an AK that moves the window on, the peer's
        keep-alive (its last AK again, with nothing in flight), or such an AK
        with a DT concatenated (a reply carrying its AK) -- and return how many
        octets of it were taken: ``len(data)``, or 0, having changed nothing,
        for anything else, which then takes the full path (decode,
        :meth:`receive_tpdu`, the transition table); or, for an AK + DT whose
        DT is not the common case once the AK is taken, the AK's length: the
        endpoint passes the DT to the full path.

        The common case is TPDUs in our format with no parameter but the
        checksum (when in use) and that checksum right; a DT that is the next
        expected, inside the window, with nothing held out of order and room
        for it in the TSDU limit; an AK for DTs sent, that does not reduce the
        window, with no recovery, credit reduction or selective acknowledgement
        going on. Then the fast path does what the table's (OPEN, DT) rule
        (``dt_received``) or (OPEN, AK) rule (``ak_received``, whose
        ``ak_beyond_sent`` guard cannot hold) does, reading the fields in place
        instead of building a TPDU object. tests/test_core_fastpath.py proves
        both paths leave the same connection, send the same octets and count
        the same.
        """
        if self._state is not State.OPEN or not _PREDICTED or not self.validated:
            return 0
        end = self._shaped(data, 0)
        if not end:
            return 0
        if data[1] == 0xF0:
            return len(data) if self._fast_dt(data, 0, end, now) else 0
        if end == len(data):
            return end if self._fast_ak(data, now) else 0
        # An AK with a DT after it, for this connection too.
        if len(data) < end + 5:
            return 0
        dt_end = self._shaped(data, end)
        if not dt_end or data[end + 1] != 0xF0 or data[end + 2 : end + 4] != data[2:4]:
            return 0
        if not self._fast_ak(data, now):
            return 0
        return len(data) if self._fast_dt(data, end, dt_end, now) else end

    def _shaped(self, data: bytes, start: int) -> int:
        """If the TPDU at *start* is a DT or AK in our format with only a right
        checksum in its variable part (when in use), where its header ends; else 0."""
        li = data[start]
        code = data[start + 1]
        ext = self.extended
        if code == 0xF0:
            fixed = 7 if ext else 4
        elif code >> 4 == 0x6 and not (ext and code != 0x60):
            fixed = 9 if ext else 4
        else:
            return 0
        end = start + li + 1
        if self.checksum:
            at = start + fixed + 1
            if li != fixed + 4 or end > len(data) or data[at] != 0xC3 or data[at + 1] != 2:
                return 0
            if code == 0xF0:
                ok = verify(data) if start == 0 else verify(memoryview(data)[start:])
            else:
                ok = verify(data) if end == len(data) else verify(memoryview(data)[start:end])
            if not ok:
                return 0
        elif li != fixed or end > len(data):
            return 0
        return end

    def _fast_dt(self, data: bytes, start: int, end: int, now: float) -> bool:
        if self.extended:
            v = int.from_bytes(data[start + 4 : start + 8], "big")
            nr, eot = v & 0x7FFFFFFF, v >> 31
        else:
            v = data[start + 4]
            nr, eot = v & 0x7F, v >> 7
        seq = self._rcv_nxt
        if nr != seq % self._mod or self._rcv_ooo or seq >= self._adv_uwe:
            return False
        n = len(data) - end
        cfg = self._config
        if n > self.max_data or self._reasm_len + n > cfg.max_tsdu_size:
            return False
        # receive_tpdu, then the (OPEN, DT) rule's action for this case
        self._heard_from_peer(now)
        self._hold(n)
        self._accept(data[end:], bool(eot))
        self._want_ack(self._window_low())
        return True

    def _fast_ak(self, data: bytes, now: float) -> bool:
        if self.extended:
            nr = int.from_bytes(data[4:8], "big") & 0x7FFFFFFF
            credit = int.from_bytes(data[8:10], "big")
        else:
            nr = data[4] & 0x7F
            credit = data[1] & 0x0F
        una = self._snd_una
        seq = una + ((nr - una) % self._mod)
        new_uwe = seq + credit
        if (
            seq == una == self._snd_nxt
            and new_uwe == self._snd_uwe
            and (seq, 0, credit) == self._ak_seen
            and self._reneged is None
            and not self._send_tsdus
        ):
            # The peer's keep-alive (its W timer): the same AK again, nothing in flight.
            self._heard_from_peer(now)
            self._cancel_timer(Timer.PROBE)
            return True
        if (
            not una < seq <= self._snd_nxt
            or new_uwe < self._snd_uwe
            or new_uwe < self._snd_nxt
            or self._reneged is not None
            or seq < self._recover
            or self._n_sacked
        ):
            return False
        # receive_tpdu, then the (OPEN, AK) rule's action for this case
        self._heard_from_peer(now)
        self._ak_seen = (seq, 0, credit)
        self._peer_window = (nr, 0, credit)
        self._take_ack(seq, now)
        self._snd_uwe = new_uwe
        self._pump(now)
        return True

    def _heard_from_peer(self, now: float) -> None:
        """A TPDU for us arrived (OPEN, AKWAIT): the inactivity timer I starts again."""
        self._set_timer(Timer.INACTIVITY, now + self._config.inactivity_time)

    def handle_timer(self, now: float) -> None:
        """Run every timer of this connection that expired at *now* (each is an input)."""
        for timer in list(self._timers):
            deadline = self._timers.get(timer)
            if deadline is not None and deadline <= now:
                del self._timers[timer]
                self._dispatch(TIMER_INPUT[timer], None, now)
        self._registered = _INF
        self._reschedule()

    # -------------------------------------------------------------- guards

    def _g_tries_left(self, arg: None, now: float) -> bool:
        return self._ctl_retries < self._config.max_retransmissions

    def _g_dr_worth_resending(self, arg: None, now: float) -> bool:
        return self._g_tries_left(arg, now) and self._affordable(len(self._ctl_raw))

    def _g_dt_tries_left(self, arg: None, now: float) -> bool:
        """N retransmissions of the oldest DT *and* ``give_up_time`` without progress."""
        oldest = self._unacked.get(self._snd_una)  # (T1 stops when all is acked)
        cfg = self._config
        return (
            oldest is None
            or oldest.retries < cfg.max_retransmissions
            or now - self._progress_at < cfg.give_up_time
        )

    def _g_ed_tries_left(self, arg: None, now: float) -> bool:
        cfg = self._config
        return (
            self._ed_retries < cfg.max_retransmissions or now - self._ed_sent_at < cfg.give_up_time
        )

    def _g_ak_beyond_sent(self, ak: AK, now: float) -> bool:
        """The AK acknowledges DTs never sent: a protocol error.

        In AKWAIT nothing was sent, so any YR-TU-NR but 0 is one. Once open,
        only the extended format can tell: modulo 2**7 an AK from beyond the
        DTs sent looks the same as one delayed 64 DTs or more (datagram
        networks reorder), so a normal-format one is dropped and counted
        instead (``invalid_tpdu``), as an AK older than the window is.
        """
        if ak.extended != self.extended:
            return False
        d = (ak.nr - self._snd_una) % self._mod
        if self._state is State.AKWAIT:
            return d != 0
        return self.extended and self._snd_nxt - self._snd_una < d < self._mod // 2

    def _g_cc_unusable(self, cc: CC, now: float) -> bool:
        return self._cc_drop_cause(cc) is not None

    def _g_cc_not_negotiable(self, cc: CC, now: float) -> bool:
        return self._cc_problem(cc) is not None

    # -------------------------------------------------------------- timers

    def _set_timer(self, timer: Timer, deadline: float) -> None:
        self._timers[timer] = deadline
        if deadline < self._registered:
            self._registered = deadline
            self._outbox.append(TimerArmed(self, deadline))

    def _cancel_timer(self, timer: Timer) -> None:
        self._timers.pop(timer, None)

    def _reschedule(self) -> None:
        deadline = self.next_deadline
        if deadline < self._registered:
            self._registered = deadline
            self._outbox.append(TimerArmed(self, deadline))

    # --------------------------------------------------------- state entry

    def _enter(self, new: State, now: float) -> None:
        old = self._state
        self._state = new
        self._outbox.append(StateChanged(self, old, new))
        entry = ENTRY.get(new)
        if entry is not None:
            _ENTRIES[entry](self, now)

    def _e_open(self, now: float) -> None:
        self._cancel_timer(Timer.RETRANSMIT)
        self._cancel_timer(Timer.CONFIRM)
        self._ctl_retries = 0
        self._backoff = 1
        self._progress_at = now
        self._set_timer(Timer.INACTIVITY, now + self._config.inactivity_time)
        self._set_timer(Timer.WINDOW, self._window_deadline(now))
        self._stats.connections_opened += 1
        self._outbox.append(ConnectionEstablished(self))
        self._pump_ed(now)
        self._pump(now)

    def _e_closing(self, now: float) -> None:
        self._terminate()

    def _e_refwait(self, now: float) -> None:
        self._timers.clear()
        self._registered = _INF
        cfg = self._config
        # A reference the peer never used needs no long freeze.
        freeze = cfg.reference_freeze_time if self.validated else cfg.unvalidated_freeze_time
        self._set_timer(Timer.FREEZE, now + freeze)
        self._terminate()
        self._outbox.append(ReleaseCompleted(self))

    def _e_closed(self, now: float) -> None:
        self._timers.clear()
        self._budget.forget(self, self._held)  # what the user still reads no longer counts

    def _terminate(self) -> None:
        """No more data on this connection: drop the send side, tell the user once."""
        if self._terminated:
            return
        self._terminated = True
        # Incomplete TSDUs will never complete: free them (whole ones stay readable).
        partial = self._reasm_len + sum(len(dt.data) for dt in self._rcv_ooo.values())
        self._reasm = []
        self._reasm_len = 0
        self._rcv_ooo.clear()
        self._hold(-partial)
        self._send_tsdus.clear()
        self._unacked.clear()
        self._n_sacked = 0
        self._send_buffered = 0
        self._ed_queue.clear()
        self._ed_out = None
        self._ack_pending = False
        for key in (
            Timer.EXPEDITED,
            Timer.PROBE,
            Timer.LOSS_PROBE,
            Timer.WINDOW,
            Timer.INACTIVITY,
            Timer.CONFIRM,
        ):
            self._cancel_timer(key)
        self._stats.connections_closed += 1
        self._outbox.append(ConnectionTerminated(self))

    # ------------------------------------------------------------- output

    def _send_raw(self, raw: bytes) -> bool:
        """Send *raw* to the peer, within the amplification budget; False if not sent."""
        if not self.validated:
            if not self._affordable(len(raw)):
                self._stats.amplification_limited += 1
                return False
            self._tx_octets += len(raw)
        self._outbox.append(Transmit(self, raw))
        return True

    def _affordable(self, octets: int) -> bool:
        """Whether *octets* more fit the budget of an unvalidated peer."""
        return self.validated or (
            self._tx_octets + octets <= self._config.amplification_factor * self._rx_octets
        )

    def count_received(self, octets: int) -> None:
        """The endpoint routed a datagram of *octets* (a CR) from the peer here."""
        self._rx_octets += octets

    def validate(self) -> None:
        """The peer sent a TPDU carrying our reference: it receives what we send."""
        self.validated = True

    def _hold(self, delta: int) -> None:
        if delta:
            before = self._held
            self._held += delta
            if self._state is not State.CLOSED:
                self._budget.changed(self, before, self._held)

    def budget_freed(self) -> None:
        """The endpoint's receive budget has room again: advertise our window."""
        self._want_ack()

    def _encode(self, tpdu: TPDU, *, checksum: bool | None = None) -> bytes:
        return encode_one(tpdu, checksum=self.checksum if checksum is None else checksum)

    def _answer_dc(self, dr: DR) -> None:
        if dr.src_ref:
            self._send_raw(self._encode(DC(dr.src_ref, self.local_ref)))

    def _send_control(self, raw: bytes, now: float, retransmit_time: float) -> None:
        """Send CR/CC/DR and arm T1 for its retransmission."""
        self._ctl_raw = raw
        self._ctl_retries = 0
        self._ctl_sent_at = now
        self._backoff = 1
        self._send_raw(raw)
        self._set_timer(Timer.RETRANSMIT, now + retransmit_time)

    def _resend_control(self, now: float) -> None:
        self._ctl_retries += 1
        self._backoff = min(self._backoff * 2, 1 << 10)
        if self._send_raw(self._ctl_raw):
            self._stats.retransmissions += 1
        base = self._config.cr_retransmit_time if self._state is State.WFCC else self._rto
        backed_off = min(base * self._backoff, self._config.max_retransmit_time)
        self._set_timer(Timer.RETRANSMIT, now + backed_off)

    # ------------------------------------------------------- establishment

    def _a_send_cr(self, arg: tuple[bytes | None, bytes | None, bytes], now: float) -> None:
        self.called_tsap, self.calling_tsap, self.connect_data = arg
        cfg = self._config
        flags = _option_flags(
            expedited=cfg.expedited, checksum=cfg.use_checksum, sack=cfg.selective_ack
        )
        pref = cfg.preferred_size
        params = connection_params(
            pref or cfg.max_tpdu_size,
            self.calling_tsap,
            self.called_tsap,
            flags,
            preferred=pref is not None,
            ack_time_ms=_ack_time_ms(cfg),
        )
        cr = CR(
            src_ref=self.local_ref,
            credit=min(cfg.receive_window, 15),
            protocol_class=4,
            options=ClassOption.EXTENDED_FORMAT if cfg.extended_format else 0,
            params=params,
            data=self.connect_data,
        )
        self._adv_credit = self._adv_uwe = cr.credit
        # The CR always carries the checksum: its non-use is not agreed yet.
        raw = self._encode(cr, checksum=True)
        self._send_control(raw, now, cfg.cr_retransmit_time)

    def _a_resend_cr(self, arg: None, now: float) -> None:
        self._resend_control(now)

    def _a_connect_timed_out(self, arg: None, now: float) -> None:
        self.error = ConnectionTimedOut(
            message=f"no answer to CR after {self._config.max_retransmissions} retransmissions"
        )

    def _cc_drop_cause(self, cc: CC) -> str | None:
        """The counter of a CC to drop, or None: without the checksum we require
        (only a CC selecting the non-use we proposed may omit it), or without
        the responder's reference."""
        non_use = AdditionalOptions.NON_USE_OF_CHECKSUM
        if (
            cc.checksum_ok is None
            and cc.protocol_class == 4  # classes 0-3 have no checksum: refused with DR 130
            and (self._config.use_checksum or not cc.additional_options & non_use)
        ):
            return "missing_checksum"
        if cc.src_ref == 0:
            return "invalid_tpdu"
        return None

    def _cc_size(self, cc: CC) -> int:
        """The TPDU size the CC chose (0xF0 when both sides speak it)."""
        preferred = cc.param(PreferredMaxTpduSize)
        if preferred is not None and self._config.preferred_size is not None:
            return preferred.size
        return cc.tpdu_size or 128

    def _cc_problem(self, cc: CC) -> str | None:
        """Why the CC's choices cannot be accepted, or None."""
        size = self._cc_size(cc)
        if cc.protocol_class != 4:
            return f"peer chose class {cc.protocol_class}"
        if size > self._proposed_size or size < 128 or size % 128:
            return f"peer chose TPDU size {size} above the {self._proposed_size} proposed"
        if cc.extended and not self._proposed_extended:
            return "peer chose the extended format, which was not proposed"
        if len(cc.data) > MAX_CR_CC_DATA:
            return "CC user data too long"
        return None

    def _a_drop_cc(self, cc: CC, now: float) -> None:
        cause = self._cc_drop_cause(cc)
        assert cause is not None  # the guard said so
        stats = self._stats
        setattr(stats, cause, getattr(stats, cause) + 1)

    def _a_refuse_cc(self, cc: CC, now: float) -> None:
        self.remote_ref = cc.src_ref
        self.error = Disconnected(
            DRReason.NEGOTIATION_FAILED,
            by_peer=False,
            message=f"negotiation failed: {self._cc_problem(cc)}",
        )
        self._send_control(
            self._encode(DR(cc.src_ref, self.local_ref, DRReason.NEGOTIATION_FAILED)),
            now,
            self._rto,
        )

    def _a_cc_received(self, cc: CC, now: float) -> None:
        self.remote_ref = cc.src_ref
        # No RTT sample from CR -> CC: it includes the responder's deferred
        # confirmation, which may last as long as its user likes.
        self.tpdu_size = self._cc_size(cc)
        self._set_format(cc.extended)
        opts = cc.additional_options
        self.checksum = self._config.use_checksum or not (
            opts & AdditionalOptions.NON_USE_OF_CHECKSUM
        )
        self.expedited_enabled = self._config.expedited and bool(
            opts & AdditionalOptions.USE_EXPEDITED
        )
        self.selective_ack = self._config.selective_ack and bool(
            opts & AdditionalOptions.SELECTIVE_ACK
        )
        self._learn_ack_time(cc.param(AckTime))
        self.confirm_data = cc.data
        self._snd_uwe = cc.credit
        self._ak_seen = (0, -1, -1)  # any AK of the peer's is newer than its CC
        self._send_ak(now)  # the third message of the class 4 handshake

    def _a_refused(self, dr: DR, now: float) -> None:
        self.error = ConnectionRejected(dr.reason, dr.data)
        self._answer_dc(dr)

    def _a_refused_by_er(self, er: ER, now: float) -> None:
        self.error = ConnectionRejected(
            DRReason.PROTOCOL_ERROR, message=f"peer answered the CR with ER cause {er.cause}"
        )

    def _a_abandon_connect(self, arg: tuple[int, bytes], now: float) -> None:
        self.error = Disconnected(
            arg[0], by_peer=False, message="connect abandoned before the peer answered"
        )

    def _a_cc_after_abandon(self, cc: CC, now: float) -> None:
        if self.role is Role.INITIATOR:
            self._send_raw(self._encode(DR(cc.src_ref, self.local_ref, DRReason.NORMAL)))

    def _learn_ack_time(self, param: AckTime | None) -> None:
        """The peer's acknowledgement time (0x85): T1 against it never goes below
        the round trip plus that delay (netiso: the same floor)."""
        if param is None:
            return
        cfg = self._config
        self.peer_ack_time = min(param.ms / 1000, cfg.max_retransmit_time)
        if self._srtt is None:
            self._rto = min(
                cfg.initial_retransmit_time + self.peer_ack_time, cfg.max_retransmit_time
            )
        else:
            self._update_rto()

    def negotiate(self, cr: CR) -> bool:
        """Take the CR's proposal and prepare our CC's parameters (nothing is sent).

        Returns False when that CC would not fit one TPDU header (LI ≤ 254):
        the endpoint then refuses the CR with DR reason 138 instead of
        creating a connection that could never be confirmed.
        """
        cfg = self._config
        self.remote_ref = cr.src_ref
        self.calling_tsap = cr.calling_tsap
        self.called_tsap = cr.called_tsap
        self.connect_data = cr.data
        preferred = cr.param(PreferredMaxTpduSize)
        if preferred is not None and cfg.preferred_size is not None and preferred.units:
            # Both sides speak 0xF0: any multiple of 128 both accept.
            self.tpdu_size = min(preferred.size, cfg.preferred_size)
            self._preferred_size = True
        else:
            self.tpdu_size = min(cr.tpdu_size or 128, cfg.max_tpdu_size)
        self._set_format(cr.extended)
        opts = cr.additional_options
        self.checksum = cfg.use_checksum or not (opts & AdditionalOptions.NON_USE_OF_CHECKSUM)
        self.expedited_enabled = cfg.expedited and bool(opts & AdditionalOptions.USE_EXPEDITED)
        self.selective_ack = cfg.selective_ack and bool(opts & AdditionalOptions.SELECTIVE_ACK)
        self._learn_ack_time(cr.param(AckTime))
        self._snd_uwe = cr.credit
        self._ak_seen = (0, -1, -1)  # the AK completing the handshake governs, whatever it says
        flags = _option_flags(
            expedited=self.expedited_enabled, checksum=self.checksum, sack=self.selective_ack
        )
        params = connection_params(
            self.tpdu_size,
            self.calling_tsap,
            self.called_tsap,
            flags,
            preferred=self._preferred_size,
            ack_time_ms=_ack_time_ms(cfg),
        )
        if _cc_header(params) > _MAX_HEADER:
            # The acknowledgement time is optional: left out when the echoed
            # TSAPs leave no room for it.
            params = tuple(p for p in params if not isinstance(p, AckTime))
        self._cc_params = params
        return _cc_header(params) <= _MAX_HEADER

    def _a_cr_received(self, cr: CR, now: float) -> None:
        """Record the CR's proposal; nothing is sent until the user answers."""
        if not self._cc_params:
            self.negotiate(cr)
        self._set_timer(Timer.CONFIRM, now + self._config.confirm_timeout)

    def _a_duplicate_cr(self, cr: CR, now: float) -> None:
        self._stats.duplicate_cr += 1

    def _a_send_cc(self, data: bytes, now: float) -> None:
        cc = CC(
            dst_ref=self.remote_ref,
            src_ref=self.local_ref,
            credit=min(self._config.receive_window, 15),
            protocol_class=4,
            options=ClassOption.EXTENDED_FORMAT if self.extended else 0,
            params=self._cc_params,
            data=data,
        )
        raw = self._encode(cc, checksum=True)  # fits: checked by negotiate()
        self.confirm_data = data
        self._cancel_timer(Timer.CONFIRM)
        self._adv_credit = cc.credit
        self._adv_uwe = cc.credit
        self._send_control(raw, now, self._rto)

    def _a_confirm_and_queue(self, tsdu: memoryview, now: float) -> None:
        self._a_send_cc(b"", now)
        self._a_queue_data(tsdu, now)

    def _a_confirm_and_queue_expedited(self, data: bytes, now: float) -> None:
        self._a_send_cc(b"", now)
        self._a_queue_expedited(data, now)

    def _a_answer_duplicate_cr(self, cr: CR, now: float) -> None:
        # Our CC was lost or is late. Answer at once, without spending one of
        # the N tries or backing off: the peer is alive.
        self._stats.duplicate_cr += 1
        self._send_raw(self._ctl_raw)

    def _a_resend_cc(self, arg: None, now: float) -> None:
        self._resend_control(now)

    def _a_complete_handshake(self, tpdu: AK | DT | ED, now: float) -> None:
        """The third message: OPEN now; the TPDU itself is handled again there.

        An AK's credit governs from the first DT: it replaces the CR's before
        entering OPEN sends what the user queued (the guard made sure its NR
        acknowledges nothing, as nothing was sent)."""
        self._rtt_sample_control(now)
        if isinstance(tpdu, AK) and tpdu.extended == self.extended:
            self._snd_uwe = tpdu.credit
        self._post(_INPUT_OF[type(tpdu)], tpdu)

    def _rtt_sample_control(self, now: float) -> None:
        if self._ctl_retries == 0:
            self._rtt_sample(now - self._ctl_sent_at)

    def _a_duplicate_cc(self, cc: CC, now: float) -> None:
        self._send_ak(now)  # our AK (third message) was lost

    def _a_reject(self, arg: tuple[int, bytes], now: float) -> None:
        reason, data = arg
        self._send_control(
            self._encode(DR(self.remote_ref, self.local_ref, reason, data=data), checksum=True),
            now,
            self._rto,
        )

    def _a_reject_unanswered(self, arg: None, now: float) -> None:
        self.error = Disconnected(
            self._config.confirm_timeout_reason,
            by_peer=False,
            message="rejected: the user neither confirmed nor rejected in time",
        )
        self._a_reject((self._config.confirm_timeout_reason, b""), now)

    def evict(self, now: float) -> None:
        """Admission control (called by the endpoint): give this unvalidated
        connection's place to a newer CR. One DR (reason 1) within the
        amplification budget, then the reference is frozen briefly."""
        self._dispatch(Input.EVICT, None, now)

    def _a_evict(self, arg: None, now: float) -> None:
        self.error = Disconnected(
            DRReason.CONGESTION,
            by_peer=False,
            message="evicted: too many connections whose peer has not answered (max_unvalidated)",
        )
        self._send_raw(
            self._encode(DR(self.remote_ref, self.local_ref, DRReason.CONGESTION), checksum=True)
        )

    def _a_nothing(self, arg: Any, now: float) -> None:
        pass

    def _set_format(self, extended: bool) -> None:
        self.extended = extended
        self._mod = 1 << 31 if extended else 1 << 7

    # --------------------------------------------------------------- release

    def _a_disconnect(self, arg: tuple[int, bytes], now: float) -> None:
        reason, data = arg
        self._send_control(
            self._encode(DR(self.remote_ref, self.local_ref, reason, data=data)), now, self._rto
        )

    def _a_resend_dr(self, arg: None, now: float) -> None:
        self._resend_control(now)

    def _a_freeze(self, arg: Any, now: float) -> None:
        pass

    def _a_send_dc(self, dr: DR, now: float) -> None:
        self._answer_dc(dr)

    def _a_peer_disconnected(self, dr: DR, now: float) -> None:
        # (receive_tpdu dropped a DR whose SRC-REF is not the peer's reference)
        self.error = Disconnected(dr.reason, dr.data, by_peer=True)
        self._answer_dc(dr)

    def _a_protocol_error(self, er: ER | None, now: float) -> None:
        cause = f"ER cause {er.cause}" if er is not None else "protocol error"
        self.error = Disconnected(
            DRReason.PROTOCOL_ERROR, by_peer=False, message=f"protocol error: {cause}"
        )
        self._a_disconnect((DRReason.PROTOCOL_ERROR, b""), now)

    def _a_give_up_handshake(self, arg: None, now: float) -> None:
        # netiso: DR reason 1 when the CC was never acknowledged (tp.trans, AKWAIT TM_retrans)
        self.error = ConnectionTimedOut(
            message=f"no answer to CC after {self._config.max_retransmissions} retransmissions"
        )
        self._a_disconnect((DRReason.CONGESTION, b""), now)

    def _a_give_up(self, arg: None, now: float) -> None:
        # netiso: DR reason 129 once open (tp.trans, OPEN TM_data_retrans/TM_retrans)
        cfg = self._config
        self.error = ConnectionTimedOut(
            message=f"peer silent: {cfg.max_retransmissions} retransmissions and "
            f"{cfg.give_up_time:g} s without progress"
        )
        self._a_disconnect((DRReason.REMOTE_CONGESTION, b""), now)

    def _a_inactive_handshake(self, arg: None, now: float) -> None:
        self.error = ConnectionTimedOut(message="inactivity timer expired before the handshake")
        self._a_disconnect((DRReason.CONGESTION, b""), now)

    def _a_inactive(self, arg: None, now: float) -> None:
        # netiso: DR reason 129 (tp.trans, OPEN TM_inact)
        self.error = ConnectionTimedOut(message="inactivity timer expired")
        self._a_disconnect((DRReason.REMOTE_CONGESTION, b""), now)

    def _a_ak_protocol_error(self, ak: AK, now: float) -> None:
        self._stats.invalid_tpdu += 1
        self.error = Disconnected(
            DRReason.PROTOCOL_ERROR,
            by_peer=False,
            message=f"protocol error: AK with YR-TU-NR {ak.nr} acknowledges DTs never sent",
        )
        self._a_disconnect((DRReason.PROTOCOL_ERROR, b""), now)

    def _a_release_reference(self, arg: None, now: float) -> None:
        pass

    # ------------------------------------------------------------- sending

    def _a_queue_data(self, tsdu: memoryview, now: float) -> None:
        if self._send_tsdus is _NO_QUEUE:
            self._send_tsdus = deque()
        self._send_tsdus.append(tsdu)
        self._send_buffered += len(tsdu)
        self._pump(now)

    def _pump(self, now: float) -> None:
        """Send new DTs while the window and the expedited rule allow; keep the send timers."""
        if self._state is not State.OPEN:
            return
        if self._ed_out is not None:  # an ED outstanding: normal data waits for its EA
            self._arm_send_timers(now)
            return
        queue = self._send_tsdus
        unacked = self._unacked
        max_data = self.max_data
        mod = self._mod
        ext = self.extended
        ref = self.remote_ref
        checksum = self.checksum
        # The DT's octets are built here, as encode_one(DT(...)) would build them
        # (tests/test_core_fastpath.py proves it): header, checksum, data, one copy.
        head = bytes(((7 if ext else 4) + (4 if checksum else 0), 0xF0, ref >> 8, ref & 0xFF))
        eot_bit = 0x80000000 if ext else 0x80
        while queue and self._snd_nxt < self._snd_uwe:
            tsdu = queue[0]
            off = self._send_off
            chunk = tsdu[off : off + max_data]
            length = len(chunk)
            off += length
            eot = off >= len(tsdu)
            if eot:
                queue.popleft()
                off = 0
            self._send_off = off
            seq = self._snd_nxt
            self._snd_nxt = seq + 1
            nr = seq % mod | (eot_bit if eot else 0)
            buf = bytearray(head)
            buf += nr.to_bytes(4, "big") if ext else bytes((nr,))
            if checksum:
                position = len(buf) + 2
                buf += _CHECKSUM_PARAM
                buf += chunk
                buf[position : position + 2] = checksum_octets(buf, position)
            else:
                buf += chunk
            raw = bytes(buf)
            unacked[seq] = _Sent(raw, length, now, self._xmit)
            self._xmit += 1
            if self._ack_pending:
                # concatenation: the pending AK rides in the DT's datagram
                self._outbox.append(Transmit(self, self._build_ak(now) + raw, 2))
            else:
                self._outbox.append(Transmit(self, raw))
        self._arm_send_timers(now)

    def _arm_send_timers(self, now: float) -> None:
        """T1 while DTs inside the window await their AK; the window probe while
        the peer's credit holds data back; the loss probe once per flight."""
        timers = self._timers
        blocked = self._snd_una >= self._snd_uwe and bool(self._send_tsdus or self._unacked)
        if blocked:
            # Flow control, not loss: nothing counts towards N while the window is shut.
            self._cancel_timer(Timer.RETRANSMIT)
            self._cancel_timer(Timer.LOSS_PROBE)
            for sent in self._unacked.values():
                sent.retries = 0
            if Timer.PROBE not in timers:
                self._set_timer(Timer.PROBE, now + self.rto)
            return
        self._cancel_timer(Timer.PROBE)
        if not self._unacked:
            return
        if Timer.RETRANSMIT not in timers:
            self._set_timer(Timer.RETRANSMIT, now + self.rto)
        if (
            self._srtt is not None
            and len(self._unacked) > 1
            and not self._probed
            and Timer.LOSS_PROBE not in timers
        ):
            # Tail loss probe (RFC 8985 §7): a lost last DT draws no duplicate AK;
            # resend it after about two round trips rather than a whole T1. (With
            # one DT in flight the probe would only be an early T1: T1 serves.)
            # With two DTs or more in flight the peer does not hold its AK back for
            # its acknowledgement time (RFC 8985 adds it for a flight of one only).
            pto = max(2 * self._srtt, 2 * self._config.clock_granularity)
            if now + pto < timers[Timer.RETRANSMIT]:
                self._set_timer(Timer.LOSS_PROBE, now + pto)

    def _a_retransmit(self, arg: None, now: float) -> None:
        oldest_seq = self._snd_una
        sent = self._unacked.get(oldest_seq)
        if sent is None:
            return
        self._backoff = min(self._backoff * 2, 1 << 10)
        self._recover = self._snd_nxt
        self._resend_dt(oldest_seq, sent, now)
        self._set_timer(Timer.RETRANSMIT, now + self.rto)

    def _a_loss_probe(self, arg: None, now: float) -> None:
        """Resend the newest unacknowledged DT inside the window (once per flight)."""
        self._probed = True
        uwe = self._snd_uwe
        for seq in range(min(self._snd_nxt, uwe) - 1, self._snd_una - 1, -1):
            sent = self._unacked.get(seq)
            if sent is not None and not sent.sacked:
                self._stats.loss_probes += 1
                self._resend_dt(seq, sent, now, counted=False)
                self._set_timer(Timer.RETRANSMIT, now + self.rto)  # T1 counts from the probe
                return

    def _resend_dt(self, seq: int, sent: _Sent, now: float, *, counted: bool = True) -> bool:
        """Send DT *seq* again, if the peer's window still holds it."""
        if seq >= self._snd_uwe:
            return False
        if counted:
            sent.retries += 1
        sent.resent = True  # no RTT sample from it (Karn)
        sent.sent_at = now
        sent.xmit = self._xmit
        self._xmit += 1
        self._stats.retransmissions += 1
        self._send_raw(sent.raw)
        return True

    def _a_ak_received(self, ak: AK, now: float) -> None:
        if ak.extended != self.extended:
            self._stats.invalid_tpdu += 1
            return
        mod = self._mod
        seq = self._snd_una + ((ak.nr - self._snd_una) % mod)
        if seq > self._snd_nxt:
            self._stats.invalid_tpdu += 1  # older than the window (the guard took the rest)
            return
        subseq = ak.subsequence
        seen_seq, seen_sub, seen_cdt = self._ak_seen
        key = (seq, subseq, ak.credit)
        fcc = ak.flow_control_confirmation
        if fcc is not None:
            self._check_fcc(fcc)
        if (seq, subseq) < (seen_seq, seen_sub) or (
            (seq, subseq) == (seen_seq, seen_sub) and ak.credit < seen_cdt
        ):
            return  # an older AK overtaken by a newer one
        duplicate = key == self._ak_seen
        self._ak_seen = key
        self._peer_window = (ak.nr, subseq, ak.credit)
        unacked = self._unacked
        advanced = seq > self._snd_una
        if advanced:
            self._take_ack(seq, now)
        # The window: lower edge and credit. A reduction below DTs already sent
        # leaves them outside (the peer may discard them); when credit comes
        # back they are sent again at once.
        old_uwe = self._snd_uwe
        new_uwe = seq + ak.credit
        self._snd_uwe = new_uwe
        if new_uwe < old_uwe:
            self._stats.credit_reductions += 1
        if new_uwe < self._snd_nxt:
            low = max(new_uwe, seq)
            if self._reneged is None or low < self._reneged:
                self._reneged = low
        if self._reneged is not None and new_uwe > self._reneged:
            top = min(new_uwe, self._snd_nxt)
            for s in range(max(self._reneged, seq), top):
                held = unacked.get(s)
                if held is not None and not held.sacked:
                    self._resend_dt(s, held, now, counted=False)
            self._reneged = top if top < self._snd_nxt else None
            self._backoff = 1
        if self.selective_ack:
            sack = ak.param(SelectiveAck)
            if sack is not None and self._note_sacked(sack, seq):
                self._progress_at = now
                self._cancel_timer(Timer.LOSS_PROBE)  # re-armed from now (RFC 8985 §7.2)
            if unacked and self._resend_lost(now):
                # A repair is out. Should it be lost too, no DT sent after it may
                # follow (the window ends at the hole): a loss probe after it does,
                # and shows the repair lost (RACK) two round trips on, not a T1 later.
                self._probed = False
                self._cancel_timer(Timer.LOSS_PROBE)
        elif advanced:
            if unacked and seq < self._recover:
                # partial acknowledgement after a loss: the next hole too
                nxt = unacked.get(seq)
                if nxt is not None and self._resend_dt(seq, nxt, now):
                    self._set_timer(Timer.RETRANSMIT, now + self.rto)
        elif duplicate and unacked:
            self._dupacks += 1
            if self._dupacks == self._config.fast_retransmit_after:
                first = unacked.get(self._snd_una)
                if first is not None:
                    self._stats.fast_retransmissions += 1
                    self._recover = self._snd_nxt
                    self._resend_dt(self._snd_una, first, now)
                    self._set_timer(Timer.RETRANSMIT, now + self.rto)
        if subseq > seen_sub >= 0 and seq == seen_seq and ak.credit > 0 and not duplicate:
            # a window update: confirm the window we now believe in
            self._fcc_pending = FlowControlConfirmation(ak.nr, subseq, ak.credit)
            self._want_ack()
        self._pump(now)

    def _take_ack(self, seq: int, now: float) -> None:
        """The peer acknowledged every DT below *seq* (> ``_snd_una``): free them."""
        unacked = self._unacked
        freed = 0
        sample: _Sent | None = None
        clean = True  # Karn: no sample when recovery time is part of the delay
        for s in range(self._snd_una, seq):
            sent = unacked.pop(s)
            freed += sent.length
            clean = clean and not sent.resent
            if sent.sacked:
                self._n_sacked -= 1
            sample = sent
        self._snd_una = seq
        if sample is not None and clean:
            self._rtt_sample(now - sample.sent_at)
        self._send_buffered -= freed
        self._backoff = 1
        self._dupacks = 0
        self._progress_at = now
        self._probed = False
        self._cancel_timer(Timer.RETRANSMIT)  # re-armed from now for what is left
        self._cancel_timer(Timer.LOSS_PROBE)
        self._outbox.append(SendSpaceAvailable(self))

    def _note_sacked(self, sack: SelectiveAck, base: int) -> bool:
        """Mark the DTs the peer holds beyond a hole (0x8F). True if any is new."""
        mod = self._mod
        unacked = self._unacked
        top = self._snd_nxt
        new = False
        for lower, upper in sack.ranges:
            lo = base + ((lower - base) % mod)
            hi = base + ((upper - base) % mod)
            if not lo <= hi < top:
                self._stats.invalid_tpdu += 1  # a block outside what was sent: ignored
                continue
            for s in range(lo, hi + 1):
                sent = unacked.get(s)
                if sent is not None and not sent.sacked:
                    sent.sacked = True
                    self._n_sacked += 1
                    new = True
        return new

    def _resend_lost(self, now: float) -> bool:
        """Resend every DT taken as lost: one the peer lacks while it holds DTs
        transmitted after it -- at least DupThresh of them (RFC 6675), or one
        sent a reordering window (a quarter of SRTT, at least G) later (RFC
        8985's RACK). Ordered by transmission, so a lost retransmission is seen
        too, e.g. once a loss probe sent after it arrives. True if any."""
        threshold = self._config.fast_retransmit_after
        reo = max(self._config.clock_granularity, (self._srtt or 0.0) / 4)
        later: list[tuple[int, float]] = []  # (transmission, sent at) of sacked DTs above
        lost: list[tuple[int, _Sent]] = []
        unacked = self._unacked
        for s in range(self._snd_nxt - 1, self._snd_una - 1, -1):
            sent = unacked.get(s)
            if sent is None:
                continue
            if sent.sacked:
                later.append((sent.xmit, sent.sent_at))
                continue
            newer = [at for x, at in later if x > sent.xmit]
            if len(newer) >= threshold or (newer and max(newer) - sent.sent_at >= reo):
                lost.append((s, sent))
        resent = False
        for s, sent in reversed(lost):
            if self._resend_dt(s, sent, now):
                self._stats.fast_retransmissions += 1
                resent = True
        if resent:  # the repair needs a round trip: T1 counts from it
            self._set_timer(Timer.RETRANSMIT, now + self.rto)
        return resent

    def _check_fcc(self, fcc: FlowControlConfirmation) -> None:
        """The peer tells us the window it believes we gave; re-send ours if it is stale."""
        ours = (self._rcv_nxt % self._mod, self._subseq, self._adv_credit)
        theirs = (fcc.lower_window_edge, fcc.your_subsequence, fcc.your_credit)
        if theirs != ours:
            self._want_ack()

    def _a_probe(self, arg: None, now: float) -> None:
        """Zero window with data waiting: ask the peer to confirm its window (AK + FCC)."""
        if self._snd_una < self._snd_uwe or not (self._send_tsdus or self._unacked):
            return
        nr, subseq, credit = self._peer_window
        self._fcc_pending = FlowControlConfirmation(nr, subseq, credit)
        self._send_ak(now)
        self._backoff = min(self._backoff * 2, 1 << 10)
        self._set_timer(Timer.PROBE, now + self.rto)

    # ----------------------------------------------------------- receiving

    def _credit(self) -> int:
        credit = self._config.receive_window - self._rcv_queued_tpdus
        if credit > 0 and self._held and self._budget.exceeded_by(self._held):
            return 0  # the endpoint's receive budget is spent: withhold credit
        return max(0, credit)

    def _want_ack(self, urgent: bool = True) -> None:
        """An AK is wanted. An *urgent* one goes out with the driver's next flush;
        the others may wait (up to our acknowledgement time) for a DT to carry
        them, or for more DTs to acknowledge at once."""
        if urgent:
            self._ack_urgent = True
        if not self._ack_pending:
            self._ack_pending = True
            self._outbox.append(AckWanted(self))

    def _window_low(self) -> bool:
        """Whether the window the peer may still use is half ours or less: an AK
        for it is urgent, or a bulk sender would stall on credit."""
        return self._adv_uwe - self._rcv_nxt <= self._config.receive_window // 2

    @property
    def ack_pending(self) -> bool:
        """Whether an AK is wanted and not yet sent (nor carried by a DT)."""
        return self._ack_pending

    @property
    def ack_urgent(self) -> bool:
        """Whether the pending AK (if any) must not wait for a DT to carry it."""
        return self._ack_pending and self._ack_urgent

    def flush_ack(self, now: float) -> None:
        """Send the pending AK, if one is still wanted (called by the endpoint)."""
        if self._ack_pending:
            self._ack_pending = False
            self._ack_urgent = False
            if self._state is State.OPEN:
                self._send_ak(now)

    def _send_ak(self, now: float) -> None:
        self._send_raw(self._build_ak(now))

    def _build_ak(self, now: float) -> bytes:
        """Encode our current AK (window, subsequence, pending FCC); re-arms W."""
        credit = self._credit()
        if not credit and self._held and self._budget.exceeded_by(self._held):
            self._stats.credit_withheld += 1
            self._budget.starve(self)
        nr = self._rcv_nxt
        if nr != self._adv_nr:
            self._subseq = 0
        elif credit != self._adv_credit:
            self._subseq = (self._subseq + 1) & 0xFFFF
        params: list[Param] = []
        if self._subseq:
            params.append(SubsequenceNumber(self._subseq))
        if self._fcc_pending is not None:
            params.append(self._fcc_pending)
            self._fcc_pending = None
        if self.selective_ack and self._rcv_ooo:
            params.append(self._sack_param())
        self._adv_nr = nr
        self._adv_credit = credit
        self._adv_uwe = max(self._adv_uwe, nr + credit)
        self._ack_pending = False
        self._ack_urgent = False
        if self._state is State.OPEN:
            self._set_timer(Timer.WINDOW, self._window_deadline(now))
        if params:
            return self._encode(
                AK(self.remote_ref, nr % self._mod, credit, self.extended, tuple(params))
            )
        return self._ak_octets(nr % self._mod, credit)

    def _ak_octets(self, nr: int, credit: int) -> bytes:
        """encode_one(AK(remote_ref, nr, credit, extended)) without parameters, built
        here (tests/test_core_fastpath.py proves it equal)."""
        ref = self.remote_ref
        checksum = self.checksum
        if self.extended:
            buf = bytearray((13 if checksum else 9, 0x60, ref >> 8, ref & 0xFF))
            buf += nr.to_bytes(4, "big")
            buf += credit.to_bytes(2, "big")
        else:
            buf = bytearray((8 if checksum else 4, 0x60 | credit, ref >> 8, ref & 0xFF, nr))
        if checksum:
            position = len(buf) + 2
            buf += _CHECKSUM_PARAM
            buf[position : position + 2] = checksum_octets(buf, position)
        return bytes(buf)

    def _sack_param(self) -> SelectiveAck:
        """The blocks of DTs held beyond the next expected one, lowest first."""
        mod = self._mod
        blocks: list[tuple[int, int]] = []
        start = prev = -2
        for s in sorted(self._rcv_ooo):
            if s != prev + 1:
                if prev >= 0:
                    blocks.append((start % mod, prev % mod))
                    if len(blocks) == _MAX_SACK_BLOCKS:
                        break
                start = s
            prev = s
        else:
            blocks.append((start % mod, prev % mod))
        return SelectiveAck(tuple(blocks), self.extended)

    def _window_deadline(self, now: float) -> float:
        """When W next expires; a scaled W is rounded up to the keep-alive grid."""
        period = self._window_period()
        if period == self._config.window_time:
            return now + period
        return math.ceil((now + period) / _KEEPALIVE_GRID) * _KEEPALIVE_GRID

    def _window_period(self) -> float:
        """W, scaled with the endpoint's open connections (``Config.keepalive_rate``)."""
        cfg = self._config
        spread = self._budget.open_connections / cfg.keepalive_rate
        if spread <= cfg.window_time:
            return cfg.window_time
        return max(cfg.window_time, min(spread, cfg.inactivity_time / 2))

    def _a_window_timer(self, arg: None, now: float) -> None:
        self._send_ak(now)

    def _a_dt_received(self, dt: DT, now: float) -> None:
        stats = self._stats
        if dt.extended != self.extended:
            stats.invalid_tpdu += 1
            return None
        mod = self._mod
        d = (dt.nr - self._rcv_nxt) % mod
        if d >= mod // 2:
            stats.duplicate_dt += 1
            self._want_ack()
            return None
        seq = self._rcv_nxt + d
        if seq >= self._adv_uwe:
            stats.out_of_window += 1
            self._want_ack()
            return None
        if len(dt.data) > self.max_data:
            stats.invalid_tpdu += 1
            return None
        if d:
            if seq in self._rcv_ooo:
                stats.duplicate_dt += 1
                self._want_ack()
            else:
                stats.out_of_order += 1
                self._rcv_ooo[seq] = dt
                self._hold(len(dt.data))
                if self.selective_ack and len(self._rcv_ooo) % 4:
                    # The AK of this batch lists every block held: one is enough,
                    # but every fourth DT held gets its own at once, so that one
                    # lost AK does not hide the holes for a whole round trip.
                    self._want_ack()
                else:
                    # A hole (without selective acknowledgement): acknowledge each DT
                    # beyond it at once, not once per batch, so that the sender sees
                    # duplicate AKs and retransmits early.
                    self._send_ak(now)
            return None
        if self._reasm_len + len(dt.data) > self._config.max_tsdu_size:
            self._post(Input.TSDU_TOO_LARGE, None)  # (its last DT included)
            return None
        self._hold(len(dt.data))
        self._accept(dt.data, dt.eot)
        ooo = self._rcv_ooo
        repair = bool(ooo)  # it fills a hole: the sender is recovering, tell it at once
        while ooo:
            nxt = ooo.pop(self._rcv_nxt, None)
            if nxt is None:
                break
            self._accept(nxt.data, nxt.eot)  # (already held)
        self._want_ack(repair or self._window_low())
        if self._reasm_len > self._config.max_tsdu_size:
            self._post(Input.TSDU_TOO_LARGE, None)

    def _a_tsdu_too_large(self, arg: None, now: float) -> None:
        self.error = Disconnected(
            DRReason.PROTOCOL_ERROR, by_peer=False, message="TSDU larger than max_tsdu_size"
        )
        self._a_disconnect((DRReason.PROTOCOL_ERROR, b""), now)

    def _accept(self, data: bytes, eot: bool) -> None:
        """DT ``_rcv_nxt`` arrived in sequence with *data*: reassemble, queue a whole TSDU."""
        self._rcv_nxt += 1
        self._reasm.append(data)
        self._reasm_len += len(data)
        if eot:
            count = len(self._reasm)
            tsdu = self._reasm[0] if count == 1 else b"".join(self._reasm)
            self._reasm = []
            self._reasm_len = 0
            was_empty = not self._rcv_queue
            if self._rcv_queue is _NO_QUEUE:
                self._rcv_queue = deque()
            self._rcv_queue.append((tsdu, count))
            self._rcv_queued_tpdus += count
            if was_empty:
                self._outbox.append(DataReceived(self))

    # ------------------------------------------------------------ expedited

    def _a_queue_expedited(self, data: bytes, now: float) -> None:
        self._ed_queue.append(data)
        self._pump_ed(now)

    def _pump_ed(self, now: float) -> None:
        if self._state is not State.OPEN or self._ed_out is not None or not self._ed_queue:
            return
        data = self._ed_queue.pop(0)
        nr = self._ed_nxt
        self._ed_nxt += 1
        raw = self._encode(ED(self.remote_ref, nr % self._mod, data, True, self.extended))
        self._ed_out = (nr, raw)
        self._ed_retries = 0
        self._ed_sent_at = now
        self._send_raw(raw)
        self._set_timer(Timer.EXPEDITED, now + self.rto)

    def _a_retransmit_ed(self, arg: None, now: float) -> None:
        if self._ed_out is None:
            return
        self._ed_retries += 1
        self._stats.retransmissions += 1
        self._send_raw(self._ed_out[1])
        backoff = 1 << min(self._ed_retries, 10)
        self._set_timer(
            Timer.EXPEDITED, now + min(self._rto * backoff, self._config.max_retransmit_time)
        )

    def _a_ed_received(self, ed: ED, now: float) -> None:
        if ed.extended != self.extended or not self.expedited_enabled:
            self._stats.invalid_tpdu += 1
            return
        mod = self._mod
        d = (ed.nr - self._ed_rcv_nxt) % mod
        if d == 0:
            if len(self._ed_received) >= self._config.max_expedited_queued:
                # The user has not read the EDs held: no EA, so that the peer
                # (one ED outstanding) retransmits this one later.
                self._stats.expedited_dropped += 1
                return
            self._ed_rcv_nxt += 1
            was_empty = not self._ed_received
            self._ed_received.append(ed.data)
            if was_empty:
                self._outbox.append(ExpeditedReceived(self))
        elif d == mod - 1:
            self._stats.duplicate_dt += 1  # our EA was lost: acknowledge again
        else:
            self._stats.invalid_tpdu += 1
            return
        self._send_raw(self._encode(EA(self.remote_ref, ed.nr, self.extended)))

    def _a_ea_received(self, ea: EA, now: float) -> None:
        out = self._ed_out
        if out is None or ea.nr != out[0] % self._mod or ea.extended != self.extended:
            self._stats.invalid_tpdu += 1
            return
        self._ed_out = None
        self._cancel_timer(Timer.EXPEDITED)
        self._outbox.append(SendSpaceAvailable(self))
        self._pump_ed(now)
        self._pump(now)

    # ---------------------------------------------------------------- RTT

    def _rtt_sample(self, rtt: float) -> None:
        if rtt < 0:
            return
        if self._srtt is None:
            self._srtt = rtt
            self._rttvar = rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._update_rto()

    def _update_rto(self) -> None:
        """T1 = SRTT + max(G, 4 RTTVAR) (RFC 6298 §2), at least SRTT + the peer's
        acknowledgement time + G, within [min, max]_retransmit_time."""
        cfg = self._config
        srtt = self._srtt
        assert srtt is not None
        g = cfg.clock_granularity
        rto = max(srtt + max(g, 4 * self._rttvar), srtt + self.peer_ack_time + g)
        self._rto = min(max(rto, cfg.min_retransmit_time), cfg.max_retransmit_time)


_INPUT_OF: dict[type, Input] = {
    CR: Input.CR,
    CC: Input.CC,
    DR: Input.DR,
    DC: Input.DC,
    DT: Input.DT,
    ED: Input.ED,
    AK: Input.AK,
    EA: Input.EA,
    ER: Input.ER,
}

_ACTIONS: dict[str, Callable[[Connection, Any, float], None]] = {
    action: getattr(Connection, "_a_" + action)
    for rules in TRANSITIONS.values()
    for _, _, action in rules
}
_GUARDS: dict[str, Callable[[Connection, Any, float], bool]] = {
    guard: getattr(Connection, "_g_" + guard)
    for rules in TRANSITIONS.values()
    for guard, _, _ in rules
    if guard is not None
}
_ENTRIES: dict[str, Callable[[Connection, float], None]] = {
    name: getattr(Connection, "_e_" + name) for name in ENTRY.values()
}
