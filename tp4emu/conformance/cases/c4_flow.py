"""Class 4, flow control: the credit the tester gives, closed windows, flow control confirmation."""

from __future__ import annotations

import trio

from ...wire import AK, DT, FlowControlConfirmation, SubsequenceNumber
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Observed, Pattern, Session

G = Group.FLOW


def _ak_to_us(s: Session) -> object:
    def test(item: Observed) -> bool:
        return isinstance(item.tpdu, AK) and item.tpdu.dst_ref == s.our_ref

    return test


async def _next_dt(s: Session, c: C4) -> DT:
    """The IUT's next DT in sequence (AKs to us on the way are accounted)."""
    deadline = trio.current_time() + s.settings.response_time
    count = len(c.received)
    while len(c.received) == count:
        if not await c.take(deadline, ack_each=False):
            s.fail(f"no DT nr={c.rcv_nxt % c.mod}", expected=f"DT nr={c.rcv_nxt % c.mod}")
    return c.received[-1]


@case(
    "c4.flow.credit-respected",
    title="The IUT sends no DT beyond the credit the tester gave",
    group=G,
    clause="ISO 8073 6.16 (explicit flow control), 12 (credit), 13.9",
    cls=4,
    needs=["echo"],
)
async def credit_respected(s: Session) -> None:
    """The tester gives credit 1 (CR and AKs) and TPDU size 128, then asks for
    a reply of three DTs: the IUT sends one DT, waits for the AK opening the
    window, sends the next, and so on."""
    async with s.preamble():
        c = await C4.open(s, cr4(s, credit=1, size=128))
    await c.send_tsdu(s.app.request(c.capacity * 3 - 10))
    while True:
        dt = await _next_dt(s, c)
        if dt.eot:
            await s.send(c.ak())
            break
        await s.expect_silence(ignore=_ak_to_us(s), label="credit 1 used up")  # type: ignore[arg-type]
        await s.send(c.ak())
    s.outcome = f"{len(c.received)} DTs, one per credit"
    async with s.postamble():
        await c.release()


@case(
    "c4.flow.zero-credit",
    title="A window closed by credit 0 holds the IUT's data until it reopens",
    group=G,
    clause="ISO 8073 6.16, 12 (credit reduction, subsequence number)",
    cls=4,
    maybe_rows=["OPEN:probe"],
    needs=["echo"],
)
async def zero_credit(s: Session) -> None:
    """After the first DT of a three-DT reply the tester acknowledges it with
    credit 0: the IUT sends no DT (it may probe the window with an AK) until
    an AK with credit 3 (subsequence number 1) reopens it; the rest follows."""
    async with s.preamble():
        c = await C4.open(s, cr4(s, credit=1, size=128))
    await c.send_tsdu(s.app.request(c.capacity * 3 - 10))
    await _next_dt(s, c)
    await s.send(c.ak(credit=0))
    await s.expect_silence(s.settings.silence * 2, ignore=_ak_to_us(s), label="credit 0")  # type: ignore[arg-type]
    reopen = AK(c.peer_ref, c.rcv_nxt % c.mod, 3, c.extended, (SubsequenceNumber(1),))
    await s.send(reopen)
    c.window = 3
    while not c.received[-1].eot:
        await _next_dt(s, c)
    await s.send(c.ak())
    s.outcome = f"{len(c.received)} DTs, none while the window was shut"
    async with s.postamble():
        await c.release()


@case(
    "c4.flow.fcc-mismatch",
    title="A flow control confirmation showing a stale window draws the IUT's AK",
    group=G,
    clause="ISO 8073 12 (flow control confirmation), 13.9 (0x8C)",
    cls=4,
)
async def fcc_mismatch(s: Session) -> None:
    """The tester sends an AK whose flow control confirmation (0x8C) states a
    window the IUT never gave (lower edge 5, credit 2): the IUT answers with
    an AK stating its window. (An IUT that does not use FCC may ignore it:
    inconclusive.)"""
    async with s.preamble():
        c = await C4.open(s)
    fcc = FlowControlConfirmation(5, 0, 2)
    await s.send(AK(c.peer_ref, c.rcv_nxt % c.mod, c.window, c.extended, (fcc,)))
    got = await s.wait_for(Pattern(AK, fields={"dst_ref": s.our_ref}), s.settings.response_time)
    if isinstance(got, AK) and got.nr != 0:
        s.fail(
            f"AK nr {got.nr}: acknowledges DTs never sent", expected="AK nr 0", observed=[repr(got)]
        )
    if got is None:
        s.pics("parameters", "flow control confirmation (0x8C) answered", False)
        s.inconclusive("no AK: the IUT does not answer flow control confirmations")
    s.pics("parameters", "flow control confirmation (0x8C) answered", True)
    s.outcome = f"AK nr {got.nr} credit {getattr(got, 'credit', '?')}"
    async with s.postamble():
        await c.release()
