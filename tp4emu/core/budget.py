"""The endpoint-wide receive budget (``Config.receive_buffer_budget``), shared by its connections.

Connections report the received octets they hold (reassembly, out-of-order
DTs, unread TSDUs) as they change; a connection asks, when it computes its
credit, whether it is over its equal share of a budget that is spent
(then it advertises credit 0 and registers as starved); when enough is read
again, every starved connection is told that its window may open. Holding
connections by reference is all this object does with them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ReceiveBudget"]


class _Starved(Protocol):
    def budget_freed(self) -> None: ...


class ReceiveBudget:
    """Octets of received user data held by all connections of one endpoint."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """``Config.receive_buffer_budget``."""
        self.held = 0
        """Octets held now, all connections together."""
        self.holders = 0
        """Connections holding some."""
        self._starved: set[_Starved] = set()
        self.open_connections = 0
        """Connections of the endpoint in OPEN (kept by the endpoint): the
        keep-alive period (W) of each grows with it (``Config.keepalive_rate``)."""

    def changed(self, conn: _Starved, before: int, after: int) -> None:
        """*conn* went from holding *before* to *after* octets."""
        if not before and after:
            self.holders += 1
        elif before and not after:
            self.holders -= 1
        self.held += after - before
        if after < before and self._starved and self.held <= self.limit:
            starved, self._starved = self._starved, set()
            for other in starved:
                other.budget_freed()

    def exceeded_by(self, held: int) -> bool:
        """Whether a connection holding *held* octets must get no more credit."""
        return self.held > self.limit and held > self.limit // max(1, self.holders)

    def starve(self, conn: _Starved) -> None:
        """*conn* advertised credit 0 for the budget: tell it when the budget frees."""
        self._starved.add(conn)

    def forget(self, conn: _Starved, held: int) -> None:
        """*conn* is released while holding *held* octets: they no longer count."""
        self.changed(conn, held, 0)
        self._starved.discard(conn)
