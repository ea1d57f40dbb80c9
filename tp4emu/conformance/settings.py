"""The settings of a run: the target, the tester's role, tolerances, what is known of the IUT."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .model import TIMER_NAMES, Role, Target, Timers

__all__ = ["PROFILES", "Settings", "parse_timer"]


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know besides the cases."""

    target: Target
    """The IUT (initiator role) or the address to listen on (responder role)."""
    role: Role = "initiator"
    tsap: bytes | None = None
    """The called TSAP of the tester's CRs (None: no parameter)."""
    calling_tsap: bytes | None = b"conformance"
    """The calling TSAP of the tester's CRs (None: no parameter)."""
    app: str = "echo"
    """The IUT's application profile (:data:`~tp4emu.conformance.apps.APPS`)."""
    upper_tester: bool = False
    """The IUT's application obeys the upper tester commands (:mod:`~tp4emu.conformance.apps`)."""
    timers: Timers = field(default_factory=Timers)
    """What is known of the IUT's timers (the rest is measured)."""
    max_tsdu: int | None = None
    """The largest TSDU the IUT takes, when known (a larger one must be refused)."""
    tolerance: float = 0.004
    """Timing tolerance, absolute part (s): an event expected at t may come at
    t ± max(tolerance, tolerance_rel * t)."""
    tolerance_rel: float = 0.125
    """Timing tolerance, relative part."""
    response_time: float = 1.0
    """How long the IUT is given to answer a stimulus (s)."""
    silence: float = 0.3
    """How long "the IUT sends nothing" is watched (s)."""
    timer_limit: float = 30.0
    """The longest a case waits for an unknown timer to expire (s); beyond it: inconclusive."""
    ack_time_ms: int = 50
    """The acknowledgement time the tester announces in its CR and CC (0x85, ms)."""
    connect_wait: float = 10.0
    """Responder role: how long a case waits for the IUT to connect (s)."""
    flood: int = 8
    """How many CRs the congestion case sends at once."""
    seed: int | None = None
    """Seed of the tester's references (None: random)."""

    def tol(self, t: float) -> float:
        """The tolerance around a time *t*: max(tolerance, tolerance_rel * t)."""
        return max(self.tolerance, self.tolerance_rel * abs(t))

    @property
    def ack_time(self) -> float:
        """The announced acknowledgement time, in seconds."""
        return self.ack_time_ms / 1000

    def summary(self) -> dict[str, Any]:
        """The settings as reports show them."""
        out: dict[str, Any] = {
            "target": str(self.target),
            "role": self.role,
            "tsap": _show(self.tsap),
            "calling_tsap": _show(self.calling_tsap),
            "app": self.app,
            "upper_tester": self.upper_tester,
            "timers": self.timers.known(),
            "max_tsdu": self.max_tsdu,
            "tolerance": f"max({self.tolerance * 1000:g} ms, {self.tolerance_rel * 100:g} %)",
            "response_time": self.response_time,
            "timer_limit": self.timer_limit,
            "ack_time_ms": self.ack_time_ms,
        }
        return out


def _show(tsap: bytes | None) -> str | None:
    if tsap is None:
        return None
    try:
        text = tsap.decode("ascii")
    except UnicodeDecodeError:
        return "hex:" + tsap.hex()
    return text if text.isprintable() else "hex:" + tsap.hex()


def parse_timer(text: str, timers: Timers) -> Timers:
    """``NAME=VALUE`` (``T1=0.5``, ``N=8``...) applied to *timers*.

    Raises:
        ValueError: an unknown name or a value that is not a positive number.
    """
    name, sep, value = text.partition("=")
    attr = TIMER_NAMES.get(name.strip())
    if not sep or attr is None:
        raise ValueError(
            f"--timer {text!r}: expected NAME=VALUE, NAME one of {', '.join(TIMER_NAMES)}"
        )
    try:
        number: float = int(value) if attr == "retransmissions" else float(value)
    except ValueError:
        raise ValueError(f"--timer {text!r}: {value!r} is not a number") from None
    if number <= 0:
        raise ValueError(f"--timer {text!r}: must be positive")
    changes: dict[str, Any] = {attr: number}
    return replace(timers, **changes)


PROFILES: dict[str, Timers] = {
    "tp4emu": Timers(
        cr_retransmit=1.0,
        retransmit=0.5,
        max_retransmit=4.0,
        retransmissions=8,
        window=5.0,
        inactivity=240.0,
        freeze=2.0,
        confirm_timeout=30.0,
        give_up_time=10.0,
        cr_timeout=10.0,
    ),
}
"""Known timers by ``--profile`` name: ``tp4emu`` is tp4emu's defaults (``Config()``)."""

assert {f.name for f in fields(Timers)} == set(TIMER_NAMES.values())
