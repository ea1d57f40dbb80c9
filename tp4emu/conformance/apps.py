"""What the IUT's application does with data, and the upper tester's commands.

A transport implementation is tested through its user. The tester knows the
user by an *application profile* (``--app``):

``echo``
    Every TSDU is sent back unchanged (``tp4emu serve``, most test servers).
``s7``
    An S7 PLC (python-snap7, Siemens): an S7 "setup communication" job is
    answered with an Ack_Data; nothing else is answered.
``none``
    Nothing is answered: the cases that need a reply are skipped.

**Upper tester** (``--upper-tester``). ISO/IEC 9646 drives the IUT's user
through an upper tester. Here it is in band: an IUT whose application
follows these conventions lets the suite drive the transitions only a user
causes (confirm, reject, disconnect, expedited data). It is an echo
server (expedited data is echoed as expedited data), plus:

* a *decision* for the CR, while the connection is CONFIRMING, read from the
  CR's connect data (class 4) or, when there is none, from its calling TSAP
  (class 0 has no connect data): :data:`UT_REJECT` (reject: DR reason 128),
  :data:`UT_IGNORE` (neither confirm nor reject: the IUT's confirm timeout
  decides), :data:`UT_SEND_FIRST` (send a TSDU before confirming, then a
  second one), :data:`UT_EXPEDITE_FIRST` (send expedited data before
  confirming), :data:`UT_CONFIRM_EXPEDITE` (confirm, then send expedited
  data while the handshake is incomplete), :data:`UT_CONFIRM_CLOSE` (confirm,
  then release at once), :data:`UT_CONFIRM_TWICE` (confirm twice); anything
  else: confirm by receiving;
* commands as TSDUs on an open connection: :data:`UT_CLOSE` (release: class
  4 a DR reason 128, class 0 the TCP close), :data:`UT_ABORT` (a DR reason
  128, class 0 too), :data:`UT_CONFIRM` (call confirm again: nothing must
  happen); any other TSDU is echoed;
* as a client (the tester responder): the IUT connects over and over, each
  time sends one TSDU, :data:`UT_HELLO`, then obeys the commands above and
  answers any other TSDU by releasing. After :data:`UT_ABANDON_NEXT` it
  releases, and abandons its next connect if no CC came within
  :data:`UT_ABANDON_AFTER` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APPS",
    "App",
    "UT_ABANDON_AFTER",
    "UT_ABANDON_NEXT",
    "UT_ABORT",
    "UT_CLOSE",
    "UT_CONFIRM",
    "UT_CONFIRM_CLOSE",
    "UT_CONFIRM_EXPEDITE",
    "UT_CONFIRM_TWICE",
    "UT_EXPEDITE_FIRST",
    "UT_HELLO",
    "UT_IGNORE",
    "UT_REJECT",
    "UT_SEND_FIRST",
    "pattern",
]

UT_REJECT = b"UT:REJECT"
UT_IGNORE = b"UT:IGNORE"
UT_SEND_FIRST = b"UT:SEND-FIRST"
UT_EXPEDITE_FIRST = b"UT:ED-FIRST"
UT_CONFIRM_EXPEDITE = b"UT:CONFIRM-ED"
UT_CONFIRM_CLOSE = b"UT:CONFIRM-CLOSE"
UT_CONFIRM_TWICE = b"UT:CONFIRM-TWICE"
UT_CLOSE = b"UT:CLOSE"
UT_ABORT = b"UT:ABORT"
UT_CONFIRM = b"UT:CONFIRM"
UT_HELLO = b"UT:HELLO"
UT_ABANDON_NEXT = b"UT:ABANDON-NEXT"
UT_ABANDON_AFTER = 0.3
"""Seconds a client told :data:`UT_ABANDON_NEXT` waits for its next CC."""


def pattern(n: int, seed: int = 0) -> bytes:
    """*n* octets that show where they were cut: ``0123456789abcdef...`` shifted by *seed*."""
    alphabet = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return bytes(alphabet[(i + seed) % len(alphabet)] for i in range(n))


S7_SETUP_JOB = bytes.fromhex("32010000000000080000f0000001000101e0")
"""An S7 setup-communication job (PDU reference 0, PDU length 480)."""


@dataclass(frozen=True)
class App:
    """An application profile: how to get a reply from the IUT's user."""

    name: str
    replies: bool
    """Some TSDU gets an answer."""
    echoes: bool
    """Every TSDU comes back unchanged."""
    description: str

    def request(self, size: int = 24, seed: int = 0) -> bytes:
        """A TSDU the application answers (*size* octets when it echoes)."""
        if self.name == "s7":
            return S7_SETUP_JOB
        return pattern(size, seed)

    def reply_problem(self, request: bytes, reply: bytes) -> str | None:
        """Why *reply* is not the application's answer to *request* (None: it is)."""
        if self.echoes:
            if reply == request:
                return None
            return f"echo differs: sent {len(request)} octets, got {len(reply)} back"
        if self.name == "s7":
            if reply[:2] == b"\x32\x03" and reply[4:6] == request[4:6]:
                return None
            return f"not an S7 Ack_Data for PDU reference {request[4:6].hex()}: {reply[:12].hex()}"
        return None


APPS: dict[str, App] = {
    "echo": App("echo", True, True, "every TSDU is sent back unchanged"),
    "s7": App("s7", True, False, "an S7 PLC: a setup-communication job gets an Ack_Data"),
    "none": App("none", False, False, "nothing is answered"),
}
"""The application profiles, by ``--app`` name."""
