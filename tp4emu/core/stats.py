"""Per-endpoint counters: what was received, sent, dropped and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Statistics"]


@dataclass(slots=True)
class Statistics:
    """Counters of one endpoint. Every dropped input is counted under its cause."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    tpdus_received: int = 0
    tpdus_sent: int = 0
    octets_received: int = 0
    octets_sent: int = 0
    undecodable: int = 0
    """Datagrams that are not valid TPDUs (dropped, or answered with ER/DR)."""
    bad_checksum: int = 0
    """TPDUs whose checksum did not verify (dropped silently)."""
    missing_checksum: int = 0
    """TPDUs without the checksum on a connection that uses it (dropped)."""
    unknown_reference: int = 0
    """TPDUs for a reference we do not have (dropped; a DR is answered with DC)."""
    wrong_peer: int = 0
    """TPDUs for one of our references from another address (dropped)."""
    wrong_state: int = 0
    """TPDUs that make no sense in the connection's state (dropped)."""
    invalid_tpdu: int = 0
    """TPDUs with a field out of range for the connection (dropped)."""
    duplicate_cr: int = 0
    duplicate_dt: int = 0
    out_of_window: int = 0
    out_of_order: int = 0
    retransmissions: int = 0
    fast_retransmissions: int = 0
    """DTs resent before T1: after duplicate AKs, or missing beyond what the
    peer holds (selective acknowledgement)."""
    loss_probes: int = 0
    """Tail loss probes: the newest DT resent about two round trips after a flight."""
    credit_reductions: int = 0
    """AKs that moved the peer's upper window edge down (credit reduction)."""
    er_sent: int = 0
    connections_requested: int = 0
    connections_refused: int = 0
    """CRs answered with DR without creating a connection (no listener, backlog, ...)."""
    connections_opened: int = 0
    connections_closed: int = 0
    connections_evicted: int = 0
    """Unvalidated connections evicted by newer CRs (``Config.max_unvalidated``)."""
    amplification_limited: int = 0
    """TPDUs not sent to an unvalidated peer: the amplification budget was spent."""
    expedited_dropped: int = 0
    """EDs dropped without EA: ``Config.max_expedited_queued`` unread EDs held."""
    credit_withheld: int = 0
    """AKs sent with credit 0 because ``Config.receive_buffer_budget`` was reached."""

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)

    def copy(self) -> Statistics:
        """A snapshot of the counters."""
        return Statistics(**asdict(self))
