"""The tester's class 0 peer over TCP (RFC 1006): its CR and CC, DT segments, TSDUs.

Like :class:`~tp4emu.conformance.peer4.C4`, :class:`C0` only keeps what a
script needs (the references, the TPDU size) and builds TPDUs; the octets
go out TPKT-framed on the case's TCP connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from ..wire import CC, CR, DR, DT0, CalledTsap, CallingTsap, Param, TpduSize
from .session import Pattern, Session

__all__ = ["C0", "cc0_for", "cr0"]

DT0_HEADER = 3
"""LI, code, EOT + TPDU-NR: the class 0 DT header."""


def cr0(
    s: Session,
    *,
    size: int | None = 2048,
    calling: bytes | bool | None = True,
    called: bytes | bool | None = True,
    protocol_class: int = 0,
    options: int = 0,
    extra: Sequence[Param] = (),
    src_ref: int | None = None,
    data: bytes = b"",
) -> CR:
    """The tester's class 0 CR: the TSAPs of the settings, TPDU size *size*
    (None: no parameter), *extra* parameters last."""
    params: list[Param] = []
    if size is not None:
        params.append(TpduSize.for_size(size))
    calling_tsap = s.settings.calling_tsap if calling is True else (calling or None)
    called_tsap = s.settings.tsap if called is True else (called or None)
    if calling_tsap is not None:
        params.append(CallingTsap(calling_tsap))
    if called_tsap is not None:
        params.append(CalledTsap(called_tsap))
    params.extend(extra)
    return CR(
        src_ref=s.our_ref if src_ref is None else src_ref,
        protocol_class=protocol_class,
        options=options,
        params=tuple(params),
        data=data,
    )


def cc0_for(s: Session, cr: CR, *, size: int | None = None) -> CC:
    """The tester's CC to the IUT's class 0 CR: its TSAPs back, the TPDU size
    it proposed (or *size*), at most 2048."""
    chosen = min(cr.tpdu_size or 128, 2048) if size is None else size
    params: list[Param] = [TpduSize.for_size(chosen)]
    if cr.calling_tsap is not None:
        params.append(CallingTsap(cr.calling_tsap))
    if cr.called_tsap is not None:
        params.append(CalledTsap(cr.called_tsap))
    return CC(cr.src_ref, s.our_ref, protocol_class=0, params=tuple(params))


@dataclass
class C0:
    """One class 0 connection as the tester sees it."""

    s: Session
    peer_ref: int
    tpdu_size: int = 128
    cr: CR | None = None
    cc: CC | None = None
    received: list[DT0] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        """User data octets per DT."""
        return self.tpdu_size - DT0_HEADER

    @classmethod
    async def open(cls, s: Session, cr: CR | None = None) -> C0:
        """Preamble: our CR, the IUT's CC (class 0, DST-REF ours)."""
        cr = cr or cr0(s)
        await s.send(cr)
        cc: CC = await s.expect(
            CC, fields={"dst_ref": cr.src_ref, "protocol_class": 0}, label="the CC"
        )
        return cls(s, cc.src_ref, tpdu_size=cc.tpdu_size or 128, cr=cr, cc=cc)

    def segments(self, tsdu: bytes, size: int | None = None) -> list[DT0]:
        """*tsdu* as DTs of *size* octets of data (default: the TPDU size's), EOT on the last."""
        step = size or self.capacity
        chunks = [tsdu[i : i + step] for i in range(0, len(tsdu), step)] or [b""]
        return [DT0(0, i == len(chunks) - 1, c) for i, c in enumerate(chunks)]

    async def send_tsdu(self, tsdu: bytes, size: int | None = None) -> None:
        """Send *tsdu* as DTs (one TPKT each)."""
        for dt in self.segments(tsdu, size):
            await self.s.send(dt)

    async def receive_tsdu(self, timeout: float | None = None) -> bytes:
        """The IUT's next TSDU: DTs up to the one with EOT, each within the TPDU size."""
        s = self.s
        deadline = trio.current_time() + (s.settings.response_time if timeout is None else timeout)
        parts: list[bytes] = []
        while True:
            left = max(0.0, deadline - trio.current_time())
            dt: DT0 = await s.expect(DT0, label="a DT of the reply", timeout=left)
            self.received.append(dt)
            if len(dt.data) + DT0_HEADER > self.tpdu_size:
                s.fail(
                    f"DT of {len(dt.data) + DT0_HEADER} octets, TPDU size {self.tpdu_size}",
                    expected=f"DTs of at most {self.tpdu_size} octets",
                    observed=[repr(dt)],
                )
            parts.append(dt.data)
            if dt.eot:
                return b"".join(parts)

    async def exchange(self, request: bytes, size: int | None = None) -> bytes:
        """Send *request*; return the reply TSDU (checked with the application profile)."""
        await self.send_tsdu(request, size)
        reply = await self.receive_tsdu()
        problem = self.s.app.reply_problem(request, reply)
        if problem:
            self.s.fail(problem, expected="the application's reply")
        return reply

    async def release(self) -> None:
        """Postamble: a class 0 normal release is the TCP close."""
        await self.s.close()

    def p_dr(self) -> Pattern:
        """A DR from the IUT on this connection."""
        return Pattern(DR, fields={"dst_ref": self.s.our_ref})
