"""Connection states, inputs, timers and the one transition table of the class 4 engine.

Rules (the table below is the only place transitions are decided):

1. A state is one of the standard's: CLOSED, WFCC (CR sent, waiting for CC),
   CONFIRMING (= ISO WFTRESP: CR received, the user has not answered yet;
   nothing has been sent), AKWAIT (CC sent, waiting for the initiator's AK, DT
   or ED: class 4's three-way handshake), OPEN, CLOSING (DR sent, waiting for
   DC or DR), REFWAIT (the reference is frozen for time L).
2. An input is a received TPDU (its type), a user request, a timer expiring
   (each :class:`Timer` produces one input, see ``TIMER_INPUT``), the
   endpoint's admission control (``EVICT``: a newer CR needs the slot of this
   connection, whose peer never proved it receives our TPDUs), or an internal
   input that an action posts (``TSDU_TOO_LARGE``).
3. ``TRANSITIONS[(state, input)]`` is a tuple of rules ``(guard, next_state,
   action)``. The first rule whose guard holds is taken (``None`` always
   holds): the connection runs the action (a method ``_a_<action>`` of
   :class:`~tp4emu.core.connection.Connection`), then enters ``next_state``,
   running that state's entry action (``ENTRY``, a method ``_e_<name>``) when
   the state changes. A guard is a named predicate (a method ``_g_<guard>``)
   of the connection and the input; guards decide (retransmit or give up, a
   CC usable or not), actions only act. Actions never choose the next state;
   an action may post internal inputs, which run through the table after the
   transition is complete (e.g. the AK that completes the handshake in AKWAIT
   is handled again in OPEN).
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
    "ENTRY",
    "INTERNAL_INPUTS",
    "TIMER_INPUT",
    "TIMER_INPUTS",
    "TPDU_INPUTS",
    "TRANSITIONS",
    "USER_INPUTS",
    "Input",
    "Rule",
    "State",
    "Timer",
    "mermaid",
    "table_markdown",
]


class State(enum.Enum):
    """States of a class 4 connection, named as in ISO 8073."""

    __hash__ = object.__hash__  # members are singletons: identity hashing, done in C

    CLOSED = "CLOSED"
    WFCC = "WFCC"
    CONFIRMING = "CONFIRMING"  # ISO 8073: WFTRESP
    AKWAIT = "AKWAIT"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    REFWAIT = "REFWAIT"


class Input(enum.Enum):
    """Inputs of the state machine: TPDUs, user requests, timers."""

    __hash__ = object.__hash__  # members are singletons: identity hashing, done in C

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
    # timers (see Timer and TIMER_INPUT)
    T1 = "T1"
    ED_T1 = "T1 (ED)"
    PROBE = "probe"
    LOSS_PROBE = "loss probe"
    WINDOW = "W"
    INACTIVITY = "I"
    CONFIRM_TIMEOUT = "confirm timeout"
    FREEZE_END = "L"
    # endpoint (admission control)
    EVICT = "evict"
    # internal: posted by an action
    TSDU_TOO_LARGE = "TSDU too large"


class Timer(enum.Enum):
    """The timers of one connection: one deadline each, in one table."""

    __hash__ = object.__hash__  # members are singletons: identity hashing, done in C

    RETRANSMIT = "T1"
    """CR, CC, DR and DT retransmission."""
    EXPEDITED = "T1 (ED)"
    """Retransmission of the outstanding ED."""
    PROBE = "probe"
    """Zero-window probe while data waits for credit."""
    LOSS_PROBE = "loss probe"
    """Tail loss probe: resend the newest DT about two round trips after a flight."""
    WINDOW = "W"
    """Re-send the AK of an idle connection."""
    INACTIVITY = "I"
    """Nothing received for this long: release."""
    CONFIRM = "confirm"
    """A CONFIRMING connection the user neither confirmed nor rejected."""
    FREEZE = "L"
    """End of the reference's freeze (REFWAIT)."""


TPDU_INPUTS = frozenset(
    {Input.CR, Input.CC, Input.DR, Input.DC, Input.DT, Input.ED, Input.AK, Input.EA, Input.ER}
)
USER_INPUTS = frozenset(
    {Input.CONNECT, Input.CONFIRM, Input.SEND, Input.SEND_EXPEDITED, Input.DISCONNECT}
)
TIMER_INPUT: dict[Timer, Input] = {
    Timer.RETRANSMIT: Input.T1,
    Timer.EXPEDITED: Input.ED_T1,
    Timer.PROBE: Input.PROBE,
    Timer.LOSS_PROBE: Input.LOSS_PROBE,
    Timer.WINDOW: Input.WINDOW,
    Timer.INACTIVITY: Input.INACTIVITY,
    Timer.CONFIRM: Input.CONFIRM_TIMEOUT,
    Timer.FREEZE: Input.FREEZE_END,
}
"""The input each timer's expiry produces."""
TIMER_INPUTS = frozenset(TIMER_INPUT.values())
ENDPOINT_INPUTS = frozenset({Input.EVICT})
INTERNAL_INPUTS = frozenset({Input.TSDU_TOO_LARGE})

S = State
I = Input  # noqa: E741

Rule = tuple[str | None, State, str]
"""``(guard, next_state, action)``: see rule 3."""

TRANSITIONS: dict[tuple[State, Input], tuple[Rule, ...]] = {
    # --- initiator: establishment --------------------------------------
    (S.CLOSED, I.CONNECT): ((None, S.WFCC, "send_cr"),),
    (S.WFCC, I.T1): (
        ("tries_left", S.WFCC, "resend_cr"),
        (None, S.REFWAIT, "connect_timed_out"),
    ),
    (S.WFCC, I.CC): (
        ("cc_unusable", S.WFCC, "drop_cc"),
        ("cc_not_negotiable", S.CLOSING, "refuse_cc"),
        (None, S.OPEN, "cc_received"),
    ),
    (S.WFCC, I.DR): ((None, S.REFWAIT, "refused"),),
    (S.WFCC, I.ER): ((None, S.REFWAIT, "refused_by_er"),),
    (S.WFCC, I.DISCONNECT): ((None, S.REFWAIT, "abandon_connect"),),
    (S.WFCC, I.SEND): ((None, S.WFCC, "queue_data"),),
    # --- responder: deferred confirmation ------------------------------
    (S.CLOSED, I.CR): ((None, S.CONFIRMING, "cr_received"),),
    (S.CONFIRMING, I.CR): ((None, S.CONFIRMING, "duplicate_cr"),),
    (S.CONFIRMING, I.CONFIRM): ((None, S.AKWAIT, "send_cc"),),
    (S.CONFIRMING, I.SEND): ((None, S.AKWAIT, "confirm_and_queue"),),
    (S.CONFIRMING, I.SEND_EXPEDITED): ((None, S.AKWAIT, "confirm_and_queue_expedited"),),
    (S.CONFIRMING, I.DISCONNECT): ((None, S.CLOSING, "reject"),),
    (S.CONFIRMING, I.CONFIRM_TIMEOUT): ((None, S.CLOSING, "reject_unanswered"),),
    (S.CONFIRMING, I.DR): ((None, S.REFWAIT, "peer_disconnected"),),
    (S.CONFIRMING, I.EVICT): ((None, S.REFWAIT, "evict"),),
    (S.AKWAIT, I.CR): ((None, S.AKWAIT, "answer_duplicate_cr"),),
    (S.AKWAIT, I.T1): (
        ("tries_left", S.AKWAIT, "resend_cc"),
        (None, S.CLOSING, "give_up_handshake"),
    ),
    (S.AKWAIT, I.AK): (
        ("ak_beyond_sent", S.CLOSING, "ak_protocol_error"),
        (None, S.OPEN, "complete_handshake"),
    ),
    (S.AKWAIT, I.DT): ((None, S.OPEN, "complete_handshake"),),
    (S.AKWAIT, I.ED): ((None, S.OPEN, "complete_handshake"),),
    (S.AKWAIT, I.DR): ((None, S.REFWAIT, "peer_disconnected"),),
    (S.AKWAIT, I.ER): ((None, S.CLOSING, "protocol_error"),),
    (S.AKWAIT, I.SEND): ((None, S.AKWAIT, "queue_data"),),
    (S.AKWAIT, I.SEND_EXPEDITED): ((None, S.AKWAIT, "queue_expedited"),),
    (S.AKWAIT, I.CONFIRM): ((None, S.AKWAIT, "nothing"),),
    (S.AKWAIT, I.DISCONNECT): ((None, S.CLOSING, "disconnect"),),
    (S.AKWAIT, I.INACTIVITY): ((None, S.CLOSING, "inactive_handshake"),),
    (S.AKWAIT, I.EVICT): ((None, S.REFWAIT, "evict"),),
    # --- data transfer ----------------------------------------------------
    (S.OPEN, I.DT): ((None, S.OPEN, "dt_received"),),
    (S.OPEN, I.TSDU_TOO_LARGE): ((None, S.CLOSING, "tsdu_too_large"),),
    (S.OPEN, I.AK): (
        ("ak_beyond_sent", S.CLOSING, "ak_protocol_error"),
        (None, S.OPEN, "ak_received"),
    ),
    (S.OPEN, I.ED): ((None, S.OPEN, "ed_received"),),
    (S.OPEN, I.EA): ((None, S.OPEN, "ea_received"),),
    (S.OPEN, I.CC): ((None, S.OPEN, "duplicate_cc"),),
    (S.OPEN, I.SEND): ((None, S.OPEN, "queue_data"),),
    (S.OPEN, I.SEND_EXPEDITED): ((None, S.OPEN, "queue_expedited"),),
    (S.OPEN, I.CONFIRM): ((None, S.OPEN, "nothing"),),
    (S.OPEN, I.T1): (
        # (T1 never runs with the window shut: the window probe replaces it)
        ("dt_tries_left", S.OPEN, "retransmit"),
        (None, S.CLOSING, "give_up"),
    ),
    (S.OPEN, I.ED_T1): (
        ("ed_tries_left", S.OPEN, "retransmit_ed"),
        (None, S.CLOSING, "give_up"),
    ),
    (S.OPEN, I.PROBE): ((None, S.OPEN, "probe"),),
    (S.OPEN, I.LOSS_PROBE): ((None, S.OPEN, "loss_probe"),),
    (S.OPEN, I.WINDOW): ((None, S.OPEN, "window_timer"),),
    (S.OPEN, I.INACTIVITY): ((None, S.CLOSING, "inactive"),),
    (S.OPEN, I.ER): ((None, S.CLOSING, "protocol_error"),),
    # --- release -------------------------------------------------------------
    (S.OPEN, I.DR): ((None, S.REFWAIT, "peer_disconnected"),),
    (S.OPEN, I.DISCONNECT): ((None, S.CLOSING, "disconnect"),),
    (S.CLOSING, I.T1): (
        # an unvalidated peer's DR is not worth N tries once the
        # amplification budget cannot pay for another
        ("dr_worth_resending", S.CLOSING, "resend_dr"),
        (None, S.REFWAIT, "freeze"),
    ),
    (S.CLOSING, I.DR): ((None, S.REFWAIT, "freeze"),),  # DRs crossed: no DC (netiso, NBS 27)
    (S.CLOSING, I.ER): ((None, S.REFWAIT, "freeze"),),
    (S.CLOSING, I.DC): ((None, S.REFWAIT, "freeze"),),
    (S.CLOSING, I.DISCONNECT): ((None, S.CLOSING, "nothing"),),
    (S.CLOSING, I.EVICT): ((None, S.REFWAIT, "freeze"),),  # our DR went out once: enough
    (S.REFWAIT, I.DR): ((None, S.REFWAIT, "send_dc"),),
    (S.REFWAIT, I.CC): ((None, S.REFWAIT, "cc_after_abandon"),),
    (S.REFWAIT, I.DISCONNECT): ((None, S.REFWAIT, "nothing"),),
    (S.REFWAIT, I.FREEZE_END): ((None, S.CLOSED, "release_reference"),),
}
"""``(state, input) -> ((guard, next state, action), ...)``; see the rules above."""

ENTRY: dict[State, str] = {
    S.OPEN: "open",
    S.CLOSING: "closing",
    S.REFWAIT: "refwait",
    S.CLOSED: "closed",
}
"""Entry actions (``_e_<name>``), run when a transition changes the state:
OPEN starts W and I and sends what waited; CLOSING and REFWAIT end the data
service (the user is told once); REFWAIT arms L (shorter for a peer never
validated); CLOSED frees the reference."""


def mermaid() -> str:
    """The transition table as a Mermaid state diagram (for the docs).

    Each edge is labelled with its inputs; self-loops are left out to keep the
    drawing readable (the table itself lists them).
    """
    edges: dict[tuple[State, State], list[str]] = {}
    for (src, inp), rules in TRANSITIONS.items():
        for guard, dst, _action in rules:
            if src is not dst:
                label = f"{inp.value} [{guard}]" if guard else inp.value
                edges.setdefault((src, dst), []).append(label)
    lines = ["stateDiagram-v2", "    [*] --> CLOSED"]
    for (src, dst), inputs in edges.items():
        lines.append(f"    {src.name} --> {dst.name}: {', '.join(inputs)}")
    lines.append("    CLOSED --> [*]")
    return "\n".join(lines) + "\n"


def table_markdown() -> str:
    """The transition table as a Markdown table (for the docs)."""
    rows = ["| state | input | guard | next state | action |", "|---|---|---|---|---|"]
    for (src, inp), rules in TRANSITIONS.items():
        for guard, dst, action in rules:
            shown = f"`{guard}`" if guard else ("otherwise" if len(rules) > 1 else "")
            rows.append(f"| {src.name} | {inp.value} | {shown} | {dst.name} | `{action}` |")
    return "\n".join(rows) + "\n"
