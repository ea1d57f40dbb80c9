"""Connection states and the one transition table of the class 4 engine.

Rules (the table below is the only place transitions are decided):

1. A state is one of the standard's: CLOSED, WFCC (CR sent, waiting for CC),
   CONFIRMING (= ISO WFTRESP: CR received, the user has not answered yet;
   nothing has been sent), AKWAIT (CC sent, waiting for the initiator's AK, DT
   or ED: class 4's three-way handshake), OPEN, CLOSING (DR sent, waiting for
   DC or DR), REFWAIT (the reference is frozen for time L).
2. An input is a received TPDU (its type), a user request, a timer
   expiring, or the endpoint's admission control (``EVICT``: a newer CR needs
   the slot of this connection, whose peer never proved it receives our
   TPDUs). ``RETRANSMIT`` means T1 expired with tries left, ``GIVE_UP`` that
   the N-th retransmission went unanswered, or that an unvalidated peer's
   amplification budget cannot pay for another DR.
3. ``TRANSITIONS[(state, input)] = (next_state, action)``: the connection runs
   the action (a method ``_a_<action>`` of
   :class:`~tp4emu.core.connection.Connection`), then enters ``next_state``.
   An action may refuse the input (e.g. a CC whose negotiation fails); it
   then returns the state to enter instead.
4. A received TPDU with no entry for the current state is dropped and counted
   (``wrong_state``): ISO 8073 lets class 4 ignore TPDUs that make no sense
   in a state, the peer's retransmissions recover. A DR in any state not in the
   table is answered with DC.
5. A user request with no entry raises
   :class:`~tp4emu.core.errors.LocalProtocolError` and changes nothing
   (cf. h11's ``_state.py``).
6. A timer (or ``EVICT``) with no entry for the current state is stale and ignored.
"""

from __future__ import annotations

import enum

__all__ = [
    "ENDPOINT_INPUTS",
    "TIMER_INPUTS",
    "TPDU_INPUTS",
    "TRANSITIONS",
    "USER_INPUTS",
    "Input",
    "State",
    "mermaid",
    "table_markdown",
]


class State(enum.Enum):
    """States of a class 4 connection, named as in ISO 8073."""

    CLOSED = "CLOSED"
    WFCC = "WFCC"
    CONFIRMING = "CONFIRMING"  # ISO 8073: WFTRESP
    AKWAIT = "AKWAIT"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    REFWAIT = "REFWAIT"


class Input(enum.Enum):
    """Inputs of the state machine: TPDUs, user requests, timers."""

    # received TPDUs
    CR = "CR"
    CC = "CC"
    DR = "DR"
    DC = "DC"
    DT = "DT"
    ED = "ED"
    AK = "AK"
    EA = "EA"
    ER = "ER"
    # user requests
    CONNECT = "connect"
    CONFIRM = "confirm"
    SEND = "send"
    SEND_EXPEDITED = "send_expedited"
    DISCONNECT = "disconnect"
    # timers
    RETRANSMIT = "T1"
    GIVE_UP = "T1 after N"
    WINDOW = "W"
    INACTIVITY = "I"
    CONFIRM_TIMEOUT = "confirm timeout"
    FREEZE_END = "L"
    # endpoint (admission control)
    EVICT = "evict"


TPDU_INPUTS = frozenset(
    {Input.CR, Input.CC, Input.DR, Input.DC, Input.DT, Input.ED, Input.AK, Input.EA, Input.ER}
)
USER_INPUTS = frozenset(
    {Input.CONNECT, Input.CONFIRM, Input.SEND, Input.SEND_EXPEDITED, Input.DISCONNECT}
)
TIMER_INPUTS = frozenset(
    {
        Input.RETRANSMIT,
        Input.GIVE_UP,
        Input.WINDOW,
        Input.INACTIVITY,
        Input.CONFIRM_TIMEOUT,
        Input.FREEZE_END,
    }
)

ENDPOINT_INPUTS = frozenset({Input.EVICT})

S = State
I = Input  # noqa: E741

TRANSITIONS: dict[tuple[State, Input], tuple[State, str]] = {
    # --- initiator: establishment --------------------------------------
    (S.CLOSED, I.CONNECT): (S.WFCC, "send_cr"),
    (S.WFCC, I.RETRANSMIT): (S.WFCC, "resend_cr"),
    (S.WFCC, I.GIVE_UP): (S.REFWAIT, "connect_timed_out"),
    (S.WFCC, I.CC): (S.OPEN, "cc_received"),
    (S.WFCC, I.DR): (S.REFWAIT, "refused"),
    (S.WFCC, I.ER): (S.REFWAIT, "refused_by_er"),
    (S.WFCC, I.DISCONNECT): (S.REFWAIT, "abandon_connect"),
    (S.WFCC, I.SEND): (S.WFCC, "queue_data"),
    # --- responder: deferred confirmation ------------------------------
    (S.CLOSED, I.CR): (S.CONFIRMING, "cr_received"),
    (S.CONFIRMING, I.CR): (S.CONFIRMING, "duplicate_cr"),
    (S.CONFIRMING, I.CONFIRM): (S.AKWAIT, "send_cc"),
    (S.CONFIRMING, I.SEND): (S.AKWAIT, "confirm_and_queue"),
    (S.CONFIRMING, I.SEND_EXPEDITED): (S.AKWAIT, "confirm_and_queue_expedited"),
    (S.CONFIRMING, I.DISCONNECT): (S.CLOSING, "reject"),
    (S.CONFIRMING, I.CONFIRM_TIMEOUT): (S.CLOSING, "reject_unanswered"),
    (S.CONFIRMING, I.DR): (S.REFWAIT, "peer_gave_up"),
    (S.CONFIRMING, I.EVICT): (S.REFWAIT, "evict"),
    (S.AKWAIT, I.CR): (S.AKWAIT, "resend_cc"),
    (S.AKWAIT, I.RETRANSMIT): (S.AKWAIT, "resend_cc"),
    (S.AKWAIT, I.GIVE_UP): (S.CLOSING, "give_up"),
    (S.AKWAIT, I.AK): (S.OPEN, "open_then_ak"),
    (S.AKWAIT, I.DT): (S.OPEN, "open_then_dt"),
    (S.AKWAIT, I.ED): (S.OPEN, "open_then_ed"),
    (S.AKWAIT, I.DR): (S.REFWAIT, "peer_disconnected"),
    (S.AKWAIT, I.ER): (S.CLOSING, "protocol_error"),
    (S.AKWAIT, I.SEND): (S.AKWAIT, "queue_data"),
    (S.AKWAIT, I.SEND_EXPEDITED): (S.AKWAIT, "queue_expedited"),
    (S.AKWAIT, I.CONFIRM): (S.AKWAIT, "nothing"),
    (S.AKWAIT, I.DISCONNECT): (S.CLOSING, "disconnect"),
    (S.AKWAIT, I.INACTIVITY): (S.CLOSING, "inactive"),
    (S.AKWAIT, I.EVICT): (S.REFWAIT, "evict"),
    # --- data transfer ----------------------------------------------------
    (S.OPEN, I.DT): (S.OPEN, "dt_received"),
    (S.OPEN, I.AK): (S.OPEN, "ak_received"),
    (S.OPEN, I.ED): (S.OPEN, "ed_received"),
    (S.OPEN, I.EA): (S.OPEN, "ea_received"),
    (S.OPEN, I.CC): (S.OPEN, "duplicate_cc"),
    (S.OPEN, I.SEND): (S.OPEN, "queue_data"),
    (S.OPEN, I.SEND_EXPEDITED): (S.OPEN, "queue_expedited"),
    (S.OPEN, I.CONFIRM): (S.OPEN, "nothing"),
    (S.OPEN, I.RETRANSMIT): (S.OPEN, "retransmit"),
    (S.OPEN, I.GIVE_UP): (S.CLOSING, "give_up"),
    (S.OPEN, I.WINDOW): (S.OPEN, "window_timer"),
    (S.OPEN, I.INACTIVITY): (S.CLOSING, "inactive"),
    (S.OPEN, I.ER): (S.CLOSING, "protocol_error"),
    # --- release -------------------------------------------------------------
    (S.OPEN, I.DR): (S.REFWAIT, "peer_disconnected"),
    (S.OPEN, I.DISCONNECT): (S.CLOSING, "disconnect"),
    (S.CLOSING, I.RETRANSMIT): (S.CLOSING, "resend_dr"),
    (S.CLOSING, I.GIVE_UP): (S.REFWAIT, "freeze"),
    (S.CLOSING, I.DR): (S.REFWAIT, "freeze"),  # DRs crossed: no DC (netiso, NBS 27)
    (S.CLOSING, I.ER): (S.REFWAIT, "freeze"),
    (S.CLOSING, I.DC): (S.REFWAIT, "freeze"),
    (S.CLOSING, I.DISCONNECT): (S.CLOSING, "nothing"),
    (S.CLOSING, I.EVICT): (S.REFWAIT, "freeze"),  # our DR went out once: enough
    (S.REFWAIT, I.DR): (S.REFWAIT, "send_dc"),
    (S.REFWAIT, I.CC): (S.REFWAIT, "cc_after_abandon"),
    (S.REFWAIT, I.DISCONNECT): (S.REFWAIT, "nothing"),
    (S.REFWAIT, I.FREEZE_END): (S.CLOSED, "release_reference"),
}
"""``(state, input) -> (next state, action)``; see the rules above."""


def mermaid() -> str:
    """The transition table as a Mermaid state diagram (for the docs).

    Each edge is labelled with its inputs; self-loops are left out to keep the
    drawing readable (the table itself lists them).
    """
    edges: dict[tuple[State, State], list[str]] = {}
    for (src, inp), (dst, _action) in TRANSITIONS.items():
        if src is not dst:
            edges.setdefault((src, dst), []).append(inp.value)
    lines = ["stateDiagram-v2", "    [*] --> CLOSED"]
    for (src, dst), inputs in edges.items():
        lines.append(f"    {src.name} --> {dst.name}: {', '.join(inputs)}")
    lines.append("    CLOSED --> [*]")
    return "\n".join(lines) + "\n"


def table_markdown() -> str:
    """The transition table as a Markdown table (for the docs)."""
    rows = ["| state | input | next state | action |", "|---|---|---|---|"]
    for (src, inp), (dst, action) in TRANSITIONS.items():
        rows.append(f"| {src.name} | {inp.value} | {dst.name} | `{action}` |")
    return "\n".join(rows) + "\n"
