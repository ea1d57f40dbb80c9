"""The tester's class 4 peer: what it knows of one connection, and the usual exchanges.

:class:`C4` is *not* an engine: it keeps the numbers a script needs (both
references, the format, the checksum, the TPDU size, the next DT numbers
each way, the credit the IUT gave) and builds TPDUs from them, so that a
case can send exactly what it means to, valid or not. Its exchanges (open,
accept, send a TSDU, receive one, release) check what the IUT sends back
and fail with what they saw.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from ..wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    EA,
    ED,
    AckTime,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    ClassOption,
    Param,
    TpduSize,
)
from .match import NONZERO
from .session import Observed, Pattern, Session

__all__ = ["C4", "cc_for", "cr4", "dt_capacity"]

NORMAL_DT_HEADER = 5
"""LI, code, DST-REF (2), EOT + TPDU-NR: the normal DT header."""
EXTENDED_DT_HEADER = 8
CHECKSUM_PARAM = 4


def dt_capacity(tpdu_size: int, *, extended: bool, checksum: bool) -> int:
    """Octets of user data one DT of *tpdu_size* carries."""
    header = EXTENDED_DT_HEADER if extended else NORMAL_DT_HEADER
    return tpdu_size - header - (CHECKSUM_PARAM if checksum else 0)


def cr4(
    s: Session,
    *,
    src_ref: int | None = None,
    credit: int = 15,
    size: int | None = 8192,
    extended: bool = False,
    options: int | None = 0x01,
    calling: bytes | bool | None = True,
    called: bytes | bool | None = True,
    ack_time: bool = True,
    data: bytes = b"",
    protocol_class: int = 4,
    extra: Sequence[Param] = (),
) -> CR:
    """The tester's CR: class 4, the TSAPs of the settings, TPDU size *size*,
    additional options *options* (0x01: expedited; None: no parameter), the
    acknowledgement time of the settings, *extra* parameters last."""
    params: list[Param] = []
    if size is not None:
        params.append(TpduSize.for_size(size))
    calling_tsap = s.settings.calling_tsap if calling is True else (calling or None)
    called_tsap = s.settings.tsap if called is True else (called or None)
    if calling_tsap is not None:
        params.append(CallingTsap(calling_tsap))
    if called_tsap is not None:
        params.append(CalledTsap(called_tsap))
    if options is not None:
        params.append(AdditionalOptions(options))
    if ack_time:
        params.append(AckTime(s.settings.ack_time_ms))
    params.extend(extra)
    return CR(
        src_ref=s.our_ref if src_ref is None else src_ref,
        credit=credit,
        protocol_class=protocol_class,
        options=ClassOption.EXTENDED_FORMAT if extended else 0,
        params=tuple(params),
        data=data,
    )


def cc_for(
    s: Session,
    cr: CR,
    *,
    credit: int = 15,
    size: int | None = None,
    extended: bool | None = None,
    options: int | None = None,
    protocol_class: int = 4,
    dst_ref: int | None = None,
    src_ref: int | None = None,
    data: bytes = b"",
) -> CC:
    """The tester's CC to *cr*: what it proposed (size at most 8192, the
    extended format and the options it asked for), our reference."""
    chosen = min(cr.tpdu_size or 128, 8192) if size is None else size
    params: list[Param] = [TpduSize.for_size(chosen)]
    if cr.calling_tsap is not None:
        params.append(CallingTsap(cr.calling_tsap))
    if cr.called_tsap is not None:
        params.append(CalledTsap(cr.called_tsap))
    flags = (cr.additional_options & 0x03) if options is None else options
    params.append(AdditionalOptions(flags))
    params.append(AckTime(s.settings.ack_time_ms))
    ext = cr.extended if extended is None else extended
    return CC(
        dst_ref=cr.src_ref if dst_ref is None else dst_ref,
        src_ref=s.our_ref if src_ref is None else src_ref,
        credit=credit,
        protocol_class=protocol_class,
        options=ClassOption.EXTENDED_FORMAT if ext else 0,
        params=tuple(params),
        data=data,
    )


@dataclass
class C4:
    """One class 4 connection as the tester sees it."""

    s: Session
    peer_ref: int
    extended: bool = False
    checksum: bool = True
    tpdu_size: int = 128
    credit: int = 1
    """The IUT's credit: it takes DTs up to ``snd_una + credit``."""
    expedited: bool = False
    window: int = 15
    """The credit the tester gives."""
    snd_nxt: int = 0
    snd_una: int = 0
    rcv_nxt: int = 0
    ed_nxt: int = 0
    peer_ed_nxt: int = 0
    cr: CR | None = None
    cc: CC | None = None
    last_ak: AK | None = None
    received: list[DT] = field(default_factory=list)
    ea_seen: set[int] = field(default_factory=set)
    """Numbers of the EAs the IUT sent (a repeated one is benign)."""
    ed_seen: set[int] = field(default_factory=set)
    """Numbers of the EDs the IUT sent and we acknowledged."""
    tsdus: deque[bytes] = field(default_factory=deque)
    """Whole TSDUs received and not yet taken."""
    _partial: list[bytes] = field(default_factory=list)

    # ----------------------------------------------------------- numbers

    @property
    def ref(self) -> int:
        """The tester's reference."""
        return self.s.our_ref

    @property
    def mod(self) -> int:
        """Modulus of TPDU numbers: 2**7 or 2**31."""
        return 1 << 31 if self.extended else 1 << 7

    @property
    def capacity(self) -> int:
        """User data octets per DT."""
        return dt_capacity(self.tpdu_size, extended=self.extended, checksum=self.checksum)

    def install(self) -> None:
        """Make the session decode and check TPDUs as this connection uses them."""
        self.s.extended = self.extended
        self.s.checksum = self.checksum
        self.s.benign = self.benign

    def benign(self, item: Observed) -> bool:
        """Retransmissions that need no answer in a script: a DT already received,
        an AK saying nothing new, an EA or ED already seen."""
        t = item.tpdu
        if t is None:
            return False
        if isinstance(t, CR):
            return self.cc is not None and self.cr is not None and t.src_ref == self.cr.src_ref
        if getattr(t, "dst_ref", None) != self.ref:
            return False
        if isinstance(t, DT):
            return (self.rcv_nxt - t.nr) % self.mod in range(1, self.mod // 2)
        if isinstance(t, AK):
            return t.nr == self.snd_una % self.mod and t.credit == self.credit
        if isinstance(t, EA):
            return t.nr in self.ea_seen
        if isinstance(t, ED):
            return t.nr in self.ed_seen
        return False

    # ----------------------------------------------------------- TPDUs

    def dt(self, data: bytes = b"", *, eot: bool = True, nr: int | None = None) -> DT:
        """A DT: the next number (which it takes) unless *nr* is given."""
        if nr is None:
            nr = self.snd_nxt % self.mod
            self.snd_nxt += 1
        return DT(self.peer_ref, nr, eot, data, self.extended)

    def ak(self, nr: int | None = None, credit: int | None = None) -> AK:
        """An AK: everything received so far, our window, unless given."""
        return AK(
            self.peer_ref,
            (self.rcv_nxt if nr is None else nr) % self.mod,
            self.window if credit is None else credit,
            self.extended,
        )

    def ed(self, data: bytes, *, nr: int | None = None) -> ED:
        """An ED: the next expedited number (which it takes) unless *nr* is given."""
        if nr is None:
            nr = self.ed_nxt % self.mod
            self.ed_nxt += 1
        return ED(self.peer_ref, nr, data, True, self.extended)

    def ea(self, nr: int) -> EA:
        """The EA of the IUT's ED number *nr* (an EA carries the number of the ED it
        acknowledges)."""
        return EA(self.peer_ref, nr % self.mod, self.extended)

    def dr(self, reason: int = 128, data: bytes = b"") -> DR:
        """A DR from the tester."""
        return DR(self.peer_ref, self.ref, reason, data=data)

    def dc(self) -> DC:
        """A DC from the tester."""
        return DC(self.peer_ref, self.ref)

    def segments(self, tsdu: bytes) -> list[DT]:
        """*tsdu* cut into DTs of the TPDU size (numbers taken), EOT on the last."""
        size = self.capacity
        chunks = [tsdu[i : i + size] for i in range(0, len(tsdu), size)] or [b""]
        return [self.dt(c, eot=i == len(chunks) - 1) for i, c in enumerate(chunks)]

    # ----------------------------------------------------------- patterns

    def p_ak(self, nr: int | None = None, **fields: object) -> Pattern:
        """An AK to us acknowledging up to *nr* (default: everything sent)."""
        want = (self.snd_nxt if nr is None else nr) % self.mod
        return Pattern(AK, fields={"dst_ref": self.ref, "nr": want, **fields}, label="AK")

    def p_dt(self, **fields: object) -> Pattern:
        """A DT to us, the next in sequence."""
        return Pattern(
            DT, fields={"dst_ref": self.ref, "nr": self.rcv_nxt % self.mod, **fields}, label="DT"
        )

    # ----------------------------------------------------------- exchanges

    @classmethod
    async def open(cls, s: Session, cr: CR | None = None, *, third: bool = True) -> C4:
        """Preamble: our CR, the IUT's CC (checked: our reference, class 4, a
        reference, the checksum), then our AK (the third message) unless not
        *third*. The connection's parameters are those of the CC."""
        cr = cr or cr4(s)
        await s.send(cr, checksum=True)
        non_use = bool(cr.additional_options & AdditionalOptions.NON_USE_OF_CHECKSUM)
        cc: CC = await s.expect(
            CC,
            fields={"dst_ref": cr.src_ref, "protocol_class": 4, "src_ref": NONZERO},
            checksum=None if non_use else True,
            label="the CC answering our CR",
        )
        c = cls.from_cc(s, cr, cc)
        if third:
            await s.send(c.ak())
        return c

    @classmethod
    def from_cc(cls, s: Session, cr: CR, cc: CC) -> C4:
        """The connection a CC answering *cr* opened."""
        non_use = bool(cc.additional_options & AdditionalOptions.NON_USE_OF_CHECKSUM)
        c = cls(
            s,
            cc.src_ref,
            extended=cc.extended,
            checksum=not non_use,
            tpdu_size=cc.tpdu_size or 128,
            credit=cc.credit,
            expedited=bool(cc.additional_options & AdditionalOptions.USE_EXPEDITED)
            and bool(cr.additional_options & AdditionalOptions.USE_EXPEDITED),
            window=min(cr.credit, 15) if not cc.extended else cr.credit,
            cr=cr,
            cc=cc,
        )
        c.install()
        return c

    @classmethod
    async def accept(cls, s: Session, *, cc: CC | None = None, **cc_kw: object) -> tuple[C4, CR]:
        """Responder: the IUT's CR (checked: class 4, DST-REF 0, a reference,
        the checksum unless it proposes its non-use), then our CC (*cc*, or
        :func:`cc_for` with *cc_kw*). The IUT's third message is left to the case."""
        cr = await expect_cr(s)
        cc = cc or cc_for(s, cr, **cc_kw)  # type: ignore[arg-type]
        c = cls(
            s,
            cr.src_ref,
            extended=cc.extended,
            checksum=not (cc.additional_options & AdditionalOptions.NON_USE_OF_CHECKSUM),
            tpdu_size=cc.tpdu_size or 128,
            credit=cr.credit,
            expedited=bool(cc.additional_options & AdditionalOptions.USE_EXPEDITED),
            window=cc.credit,
            cr=cr,
            cc=cc,
        )
        c.install()
        await s.send(cc, checksum=True)
        return c, cr

    def took_ak(self, ak: AK) -> None:
        """Account for an AK of the IUT (already checked)."""
        acked = (ak.nr - self.snd_una) % self.mod
        self.snd_una += acked
        self.credit = ak.credit
        self.last_ak = ak

    def took_dt(self, dt: DT) -> None:
        """Account for an in-sequence DT of the IUT."""
        self.rcv_nxt += 1
        self.received.append(dt)

    async def send_tsdu(self, tsdu: bytes) -> list[DT]:
        """Send *tsdu* as DTs within the IUT's credit, taking AKs (and DTs) while it is shut."""
        dts = self.segments(tsdu)
        first = self.snd_nxt - len(dts)
        sent = 0
        deadline = trio.current_time() + self.s.settings.response_time
        while sent < len(dts):
            room = self.snd_una + self.credit - (first + sent)
            if room <= 0:
                if not await self.take(deadline):
                    self.s.fail(
                        f"the IUT's window stayed shut (credit {self.credit}, "
                        f"{self.snd_nxt - self.snd_una} DTs unacknowledged)",
                        expected="an AK opening the window",
                    )
                continue
            batch = dts[sent : sent + room]
            for dt in batch:
                await self.s.send(dt)
            sent += len(batch)
            deadline = trio.current_time() + self.s.settings.response_time
        return dts

    def _check_ak(self, ak: AK) -> None:
        ahead = (ak.nr - self.snd_una) % self.mod
        if ahead > self.snd_nxt - self.snd_una:
            self.s.fail(
                f"AK acknowledges up to {ak.nr}: DTs never sent (sent up to {self.snd_nxt - 1})",
                expected=f"AK nr in {self.snd_una % self.mod}..{self.snd_nxt % self.mod}",
                observed=[f"AK nr={ak.nr} credit={ak.credit}"],
            )

    async def take(self, deadline: float, *, ack_each: bool = True) -> bool:
        """Take one arrival: an AK (checked, accounted), a DT (in sequence:
        kept, acknowledged; a whole TSDU goes to :attr:`tsdus`), a benign
        retransmission (a DT acknowledged again); anything else fails.
        False when nothing came by *deadline*."""
        s = self.s
        item = await s.next(deadline)
        if item is None:
            return False
        t = item.tpdu
        if isinstance(t, AK) and t.dst_ref == self.ref and not item_bad(item, self.checksum):
            self._check_ak(t)
            self.took_ak(t)
            return True
        if isinstance(t, DT) and t.dst_ref == self.ref and not item_bad(item, self.checksum):
            if t.nr == self.rcv_nxt % self.mod:
                self.took_dt(t)
                self._partial.append(t.data)
                if ack_each or t.eot:
                    await s.send(self.ak())
                if t.eot:
                    self.tsdus.append(b"".join(self._partial))
                    self._partial = []
                return True
            if self.benign(item):
                await s.send(self.ak())  # a retransmission: acknowledge again
                return True
            s.fail(
                f"DT nr={t.nr} out of sequence (expected {self.rcv_nxt % self.mod})",
                expected=f"DT nr={self.rcv_nxt % self.mod}",
                observed=[item.summary()],
            )
        if self.benign(item):
            return True
        s.fail(
            f"expected AK or DT, got {item.summary()}",
            expected="AK or DT to our reference"
            + (", with a valid checksum" if self.checksum else ""),
            observed=[item.summary()],
        )

    async def exchange(
        self, tsdu: bytes, *, reply: bool = True, timeout: float | None = None
    ) -> bytes | None:
        """Send *tsdu*; take the IUT's AKs until all of it is acknowledged and,
        with *reply*, its reply TSDU (every DT acknowledged as it comes).
        Returns the reply (None without *reply*)."""
        await self.send_tsdu(tsdu)
        return await self.collect(reply=reply, acked=True, timeout=timeout)

    async def collect(
        self,
        *,
        reply: bool = True,
        acked: bool = True,
        timeout: float | None = None,
        ack_each: bool = True,
    ) -> bytes | None:
        """Take AKs (until our DTs are all acknowledged, with *acked*) and DTs
        (until a whole TSDU, with *reply*); returns the TSDU."""
        s = self.s
        wait = s.settings.response_time if timeout is None else timeout
        deadline = trio.current_time() + wait
        while not ((not reply or self.tsdus) and (not acked or self.snd_una == self.snd_nxt)):
            if not await self.take(deadline, ack_each=ack_each):
                missing = []
                if reply and not self.tsdus:
                    missing.append(f"DT nr={self.rcv_nxt % self.mod} (the reply)")
                if acked and self.snd_una != self.snd_nxt:
                    missing.append(f"AK nr={self.snd_nxt % self.mod}")
                s.fail(f"no {' and '.join(missing)} within {wait:g} s", expected=", ".join(missing))
        return self.tsdus.popleft() if reply else None

    async def complete_then_release(
        self, *, silence_ignoring: tuple[type, ...] | None = None
    ) -> None:
        """Our AK, the third message; with *silence_ignoring*, silence but for
        those TPDUs; then, in the postamble, our DR and the IUT's DC."""
        await self.s.send(self.ak())
        if silence_ignoring is not None:
            await self.s.expect_silence(ignore=silence_ignoring)
        async with self.s.postamble():
            await self.release()

    async def release(self, reason: int = 128) -> None:
        """Our DR; the IUT's DC (or its DR: a crossing) must follow."""
        await self.s.send(self.dr(reason))
        await self.s.expect(
            DC,
            DR,
            fields={"dst_ref": self.ref, "src_ref": self.peer_ref},
            label="the DC answering our DR",
            ignore=(AK, DT, EA, ED),
        )


def item_bad(item: Observed, checksum: bool) -> bool:
    """A TPDU whose checksum is wrong, or missing where the connection uses one."""
    t = item.tpdu
    if t is None:
        return True
    if t.checksum_ok is False:
        return True
    return checksum and t.checksum_ok is None


async def expect_cr(s: Session, *, forget_repeats: bool = True, **fields: object) -> CR:
    """Responder: the IUT's CR (class 4, DST-REF 0, a reference, the checksum
    unless its non-use is proposed), within ``connect_wait``. Its
    retransmissions already queued are dropped unless not *forget_repeats*
    (a case that measures them)."""
    cr: CR = await s.expect(
        CR,
        fields={"dst_ref": 0, "src_ref": NONZERO, **fields},
        checksum=None,
        timeout=s.settings.connect_wait,
        label="the IUT's CR",
    )
    s.claimed.add(cr.src_ref)
    if forget_repeats:  # its retransmissions queued meanwhile: answered by what follows
        s.forget(lambda i: isinstance(i.tpdu, CR) and i.tpdu.src_ref == cr.src_ref)
    non_use = bool(cr.additional_options & AdditionalOptions.NON_USE_OF_CHECKSUM)
    if cr.checksum_ok is None and not non_use:
        s.fail(
            "the CR carries no checksum and does not propose its non-use",
            expected="CR with a checksum (0xC3)",
            observed=[f"{cr!r}"],
        )
    if cr.checksum_ok is False:
        s.fail("the CR's checksum is wrong", expected="CR with a valid checksum")
    return cr
