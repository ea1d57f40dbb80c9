"""Every timer and limit of the class 4 engine, in one object with documented defaults.

Defaults are short, for interactive use on a LAN or loopback; netiso's are given
for comparison (reference §5). All times are in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.constants import DRReason

__all__ = ["MAX_UDP_TPDU", "Config"]

MAX_UDP_TPDU = 65408
"""Largest TPDU (a multiple of 128) that fits one UDP datagram over IPv4."""


@dataclass(frozen=True, slots=True)
class Config:
    """Configuration of a TP4 endpoint and its connections."""

    # --- retransmission (T1, N) -----------------------------------------
    initial_retransmit_time: float = 0.5
    """T1 before any RTT sample (CC, DR, DT, ED). netiso: 10 s (CR 40 s)."""
    cr_retransmit_time: float = 1.0
    """T1 for CR retransmission. netiso: 40 s."""
    min_retransmit_time: float = 0.005
    """Lower bound of the adaptive T1. Above it T1 follows the measured round
    trip as RFC 6298 has it: smoothed RTT + max(``clock_granularity``, 4 x RTT
    deviation), and never less than the smoothed RTT plus the peer's
    acknowledgement time (0x85) when it announced one."""
    clock_granularity: float = 0.001
    """G of RFC 6298: the least margin T1 keeps above the smoothed RTT."""
    max_retransmit_time: float = 4.0
    """Upper bound of T1, back-off included."""
    max_retransmissions: int = 8
    """N: retransmissions of one TPDU before giving up. netiso: 12. For DTs
    and EDs both this and ``give_up_time`` must be reached."""
    give_up_time: float = 10.0
    """A connection retransmitting DTs or an ED gives up (DR 129) only once N
    retransmissions were sent *and* nothing new was acknowledged for this
    long: a lossy path that still makes progress is not a dead peer."""
    fast_retransmit_after: int = 3
    """Duplicate AKs after which the oldest unacknowledged DT is resent at once;
    with selective acknowledgement, DTs sent later that the peer holds after
    which a missing DT is taken as lost (DupThresh of RFC 6675)."""
    ack_time: float | None = 0.002
    """Acknowledgement time announced in CR/CC (0x85, in ms on the wire): the
    longest this endpoint delays an AK (None: not announced). tp4emu sends its
    AKs when its driver has taken what the socket holds: within a millisecond
    or two. The peer's
    announced value is the floor of T1 against it (netiso does the same). A CC
    leaves it out when the TSAPs it echoes leave no room in the header."""
    selective_ack: bool = True
    """Propose (and accept) selective acknowledgement (ISO 8073:1997: bit 0x10
    of the additional option selection; the 0x8F parameter in AKs): the
    receiver lists the DTs it holds beyond a hole, and the sender retransmits
    only what is missing."""

    # --- other timers -------------------------------------------------------
    window_time: float = 5.0
    """W: an idle connection re-sends its AK this often. netiso: 2 min. With
    many open connections W grows (``keepalive_rate``)."""
    keepalive_rate: float = 100.0
    """Keep-alive AKs per second the endpoint's idle connections send at most
    together: W is ``max(window_time, open connections / keepalive_rate)``,
    so that the idle cost does not grow with the number of connections, but
    never more than half of ``inactivity_time`` (the peer's I is taken to be
    like ours: it must outlast two of our W). With the defaults W stays 5 s up
    to 500 open connections, is 100 s at 10,000 and reaches its cap, 120 s, at
    12,000. A W that grew is rounded up to a multiple of 0.1 s, so that one
    wake-up of the driver sends the keep-alives of many connections."""
    inactivity_time: float = 240.0
    """I: a connection that receives nothing for this long is released.
    Must exceed ``window_time``. netiso: 3 min; 4 min here so that W may grow
    to 2 min, netiso's own W, on a busy endpoint. (A peer that stops answering
    while data is outstanding is given up on much sooner: ``give_up_time``.)
    Half of it bounds the keep-alive period W (``keepalive_rate``)."""
    reference_freeze_time: float = 2.0
    """L: how long a released reference stays frozen (REFWAIT). netiso: 5 min."""
    linger_time: float = 2.0
    """How long ``aclose()`` waits for the peer's DC after its DR; the DR goes on
    being retransmitted afterwards, as long as the endpoint is open."""
    confirm_timeout: float = 30.0
    """A CONFIRMING connection neither confirmed nor rejected this long is rejected."""
    confirm_timeout_reason: DRReason = DRReason.NOT_SPECIFIED
    """DR reason sent when ``confirm_timeout`` expires."""

    # --- negotiation ----------------------------------------------------------
    max_tpdu_size: int = 8192
    """Largest TPDU size proposed or accepted (power of two, 128..8192)."""
    preferred_max_tpdu_size: int | None = 8320
    """If set, also propose (and accept) this larger TPDU size with the
    "preferred maximum TPDU size" parameter (0xF0, ISO 8073:1992): a multiple of
    128, at most 65408 so that a TPDU fits a UDP datagram. The default, 8320
    (65 x 128), is the least that carries an 8 KiB TSDU in one DT (8192 octets
    of data plus the DT header with its checksum): a message of 8 KiB costs one
    TPDU, one datagram and one checksum instead of two. Bigger TPDUs cost less
    per octet, but a lost IP fragment loses the whole TPDU: for LANs and
    loopback. A peer that does not send 0xF0 back gets ``max_tpdu_size``; None
    proposes only the standard size (no 0xF0). Used only while ``max_tpdu_size``
    is 8192: a smaller ``max_tpdu_size`` is a cap, and then no 0xF0 is sent or
    accepted (see :attr:`preferred_size`)."""
    extended_format: bool = False
    """Propose the extended format (31-bit numbers, 16-bit credit). A responder
    accepts it whenever a CR proposes it, whatever this says."""
    use_checksum: bool = True
    """Require the checksum. When False, propose (and accept) its non-use."""
    expedited: bool = True
    """Propose (and accept) the expedited data service."""

    # --- windows and buffers ------------------------------------------------
    receive_window: int = 15
    """Credit, in DT TPDUs, offered to the peer (at most 15 in the normal format)."""
    send_buffer: int = 256 * 1024
    """Octets of user data queued for sending before ``send`` waits."""
    max_tsdu_size: int = 16 * 1024 * 1024
    """Largest TSDU accepted in reassembly; a larger one disconnects (DR 133).
    Reassembly is not bounded by the credit window, so this bounds the memory
    one connection's peer can make us hold."""

    max_expedited_queued: int = 4
    """Expedited data units received but not yet read that are held. Beyond
    this an ED is dropped without EA (counted ``expedited_dropped``): the peer,
    which may have one ED outstanding, retransmits it until the user reads.
    netiso holds one."""
    receive_buffer_budget: int = 64 * 1024 * 1024
    """Octets of received user data the whole endpoint holds (reassembly,
    out-of-order DTs, TSDUs not yet read). Once reached, connections holding
    more than an equal share of it get credit 0 until the users read (counted
    ``credit_withheld``); DTs inside windows already granted are still taken.
    What was held before the budget was reached plus what the connections
    under their share may still take bounds the total by twice this plus the
    granted windows (``max_connections`` x ``receive_window`` TPDUs)."""

    # --- endpoint limits and admission control -------------------------------
    default_backlog: int = 16
    """Confirming connections a listener queues before CRs get DR reason 1."""
    max_half_open_per_address: int = 32
    """Connections in CONFIRMING/AKWAIT per peer IP address before DR reason 1."""
    max_half_open_per_prefix: int = 256
    """Connections in CONFIRMING/AKWAIT per IPv4 /24 or IPv6 /64 before DR reason 1."""
    max_unvalidated: int = 1024
    """Live responder connections whose peer has not yet shown that it
    receives our TPDUs (no TPDU carrying our reference has come back yet):
    CONFIRMING, AKWAIT, and CLOSING after a rejection. A CR that finds this
    many evicts the oldest of them (DR reason 1 once, within the amplification
    budget, unless it had sent its DR already), whose reference is then frozen
    for ``unvalidated_freeze_time``."""
    amplification_factor: float = 3.0
    """To a peer not yet validated, send at most this many times the octets
    received from it, retransmissions included (RFC 9000 §8.1)."""
    unvalidated_freeze_time: float = 0.5
    """How long the reference of a connection that was never validated stays
    frozen (instead of ``reference_freeze_time``): its peer never used it."""
    max_connections: int = 4096
    """Live connections per endpoint (frozen references not included) before
    DR reason 135; frozen ones are bounded by the 16-bit reference space, so
    at most about (65535 - live) / ``reference_freeze_time`` connections can
    be released per second."""

    # --- RFC 1006 (class 0 over TCP) -------------------------------------------
    tcp_cr_timeout: float = 10.0
    """How long an accepted TCP connection may take to send its CR."""
    tcp_idle_timeout: float | None = 600.0
    """An RFC 1006 connection that receives nothing for this long while the
    user waits in ``receive()`` is closed (None: no limit)."""

    @property
    def preferred_size(self) -> int | None:
        """The preferred maximum TPDU size in force: ``preferred_max_tpdu_size``
        when ``max_tpdu_size`` is 8192, else None (the smaller size caps)."""
        return self.preferred_max_tpdu_size if self.max_tpdu_size == 8192 else None

    def __post_init__(self) -> None:
        if self.max_tpdu_size not in {1 << e for e in range(7, 14)}:
            raise ValueError("max_tpdu_size must be a power of two in 128..8192")
        pref = self.preferred_max_tpdu_size
        if pref is not None and (pref % 128 or not self.max_tpdu_size <= pref <= MAX_UDP_TPDU):
            raise ValueError(
                f"preferred_max_tpdu_size must be a multiple of 128 in "
                f"max_tpdu_size..{MAX_UDP_TPDU}"
            )
        limit = 0xFFFF if self.extended_format else 15
        if not 1 <= self.receive_window <= limit:
            raise ValueError(f"receive_window must be in 1..{limit} for this format")
        if self.keepalive_rate <= 0:
            raise ValueError("keepalive_rate must be positive")
        if self.inactivity_time <= self.window_time:
            raise ValueError("inactivity_time must exceed window_time")
        if self.ack_time is not None and not 0 <= self.ack_time <= 65.535:
            raise ValueError("ack_time must be in 0..65.535 s (two octets of ms)")
        if self.max_retransmissions < 1:
            raise ValueError("max_retransmissions must be at least 1")
        if self.amplification_factor < 1.0:
            raise ValueError("amplification_factor must be at least 1")
        for name in ("max_unvalidated", "max_connections", "max_expedited_queued"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
