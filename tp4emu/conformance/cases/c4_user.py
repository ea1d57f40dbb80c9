"""Class 4, what the IUT's user does while the connection is confirming or just confirmed.

These cases need the upper tester (``--upper-tester``): the CR's connect
data tells the IUT's application what to do (:mod:`~tp4emu.conformance.apps`).
"""

from __future__ import annotations

from ...wire import AK, CC, DC, DR, DT, ED
from ..apps import (
    UT_CONFIRM,
    UT_CONFIRM_CLOSE,
    UT_CONFIRM_EXPEDITE,
    UT_CONFIRM_TWICE,
    UT_EXPEDITE_FIRST,
    UT_REJECT,
    UT_SEND_FIRST,
)
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Session
from .common import dr_reason


async def _cc(s: Session, data: bytes) -> C4:
    """Our CR carrying the upper tester's *data*; the CC (checked); no AK yet."""
    cr = cr4(s, data=data)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(
        CC, fields={"dst_ref": s.our_ref, "protocol_class": 4}, checksum=True, ignore=(DT, ED)
    )
    return C4.from_cc(s, cr, cc)


@case(
    "c4.est.user-rejects",
    title="The IUT's user rejects a CR while confirming: a DR, never a CC",
    group=Group.ESTABLISHMENT,
    clause="ISO 8073 6.6 (connection refusal), 13.5",
    cls=4,
    rows=["CONFIRMING:disconnect", "CLOSING:DC"],
    needs=["ut"],
)
async def user_rejects(s: Session) -> None:
    """The upper tester rejects the CR (``UT:REJECT``): the IUT answers with a DR
    of reason 128 to the CR's reference (no CC before it); the tester's DC
    ends it."""
    await s.send(cr4(s, data=UT_REJECT), checksum=True)
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref}, checksum=True)
    if dr.reason != 128:
        s.fail(
            f"DR reason {dr_reason(dr.reason)}",
            expected="128 (normal disconnect)",
            observed=[repr(dr)],
        )
    await s.send(DC(dr.src_ref, s.our_ref), checksum=True)
    await s.expect_silence(label="the DC ended the refusal")


@case(
    "c4.est.user-sends-first",
    title="Data the IUT's user sends before the handshake ends waits for the third message",
    group=Group.ESTABLISHMENT,
    clause="ISO 8073 6.5, 12 (AKWAIT: the responder holds its data)",
    cls=4,
    rows=["CONFIRMING:send", "AKWAIT:send"],
    needs=["ut"],
)
async def user_sends_first(s: Session) -> None:
    """The upper tester sends two TSDUs at once (``UT:SEND-FIRST``): the first
    confirms the connection (CC); once the tester's AK completes the
    handshake, the DTs numbered 0 and 1 follow. A DT before the AK is noted."""
    c = await _cc(s, UT_SEND_FIRST)
    early = [i for i in s.observed if isinstance(i.tpdu, DT)]
    if early:
        s.note("DT sent before the third message")
        s.pics("behaviour", "DT before the third message", True)
    await s.send(c.ak())
    first = await c.collect(reply=True, acked=False)
    second = await c.collect(reply=True, acked=False)
    if (first, second) != (b"first", b"second"):
        s.fail(f"TSDUs {first!r}, {second!r}", expected="b'first', b'second'")
    async with s.postamble():
        await c.release()


@case(
    "c4.est.user-confirms-twice",
    title="A second confirm by the IUT's user sends nothing: one CC",
    group=Group.ESTABLISHMENT,
    clause="ISO 8073 6.5",
    cls=4,
    rows=["AKWAIT:confirm"],
    needs=["ut"],
)
async def user_confirms_twice(s: Session) -> None:
    """The upper tester confirms twice (``UT:CONFIRM-TWICE``): one CC, no second
    (before its retransmission time); the tester's AK ends the handshake."""
    c = await _cc(s, UT_CONFIRM_TWICE)
    t1 = s.settings.timers.retransmit
    watch = min(s.settings.silence, t1 / 2) if t1 else s.settings.silence
    await s.expect_silence(watch, label="one CC for two confirms")
    await s.send(c.ak())
    async with s.postamble():
        await c.release()


@case(
    "c4.data.user-confirms-in-open",
    title="A confirm by the IUT's user on an open connection sends nothing",
    group=Group.DATA,
    clause="ISO 8073 6.5",
    cls=4,
    rows=["OPEN:confirm"],
    needs=["ut"],
)
async def user_confirms_in_open(s: Session) -> None:
    """The upper tester is told to confirm again on an open connection
    (``UT:CONFIRM``): the command is acknowledged, nothing else comes (no CC)."""
    async with s.preamble():
        c = await C4.open(s)
    await c.send_tsdu(UT_CONFIRM)
    ak: AK = await s.expect(c.p_ak())
    c.took_ak(ak)
    await s.expect_silence(label="the confirm changed nothing")
    async with s.postamble():
        await c.release()


@case(
    "c4.exp.user-expedites-first",
    title="Expedited data sent while confirming goes out once the handshake ends",
    group=Group.EXPEDITED,
    clause="ISO 8073 6.11, 6.5",
    cls=4,
    rows=["CONFIRMING:send_expedited", "OPEN:EA"],
    needs=["ut"],
)
async def user_expedites_first(s: Session) -> None:
    """The upper tester sends expedited data before confirming
    (``UT:ED-FIRST``): the CC comes; after the tester's AK an ED numbered 0
    follows, which the tester's EA acknowledges."""
    c = await _cc(s, UT_EXPEDITE_FIRST)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    await s.send(c.ak())
    ed: ED = await s.expect(ED, fields={"dst_ref": s.our_ref, "nr": 0, "data": b"E"})
    await s.send(c.ea(ed.nr))
    c.ed_seen.add(ed.nr)
    await s.expect_silence(label="the EA acknowledged the ED")
    async with s.postamble():
        await c.release()


@case(
    "c4.exp.user-expedites-in-akwait",
    title="Expedited data sent before the third message waits for it",
    group=Group.EXPEDITED,
    clause="ISO 8073 6.11, 12 (AKWAIT)",
    cls=4,
    rows=["AKWAIT:send_expedited"],
    needs=["ut"],
)
async def user_expedites_in_akwait(s: Session) -> None:
    """The upper tester confirms, then sends expedited data at once
    (``UT:CONFIRM-ED``): the ED comes after the tester's AK."""
    c = await _cc(s, UT_CONFIRM_EXPEDITE)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    await s.send(c.ak())
    ed: ED = await s.expect(ED, fields={"dst_ref": s.our_ref, "nr": 0})
    await s.send(c.ea(ed.nr))
    c.ed_seen.add(ed.nr)
    async with s.postamble():
        await c.release()


@case(
    "c4.rel.user-closes-in-akwait",
    title="The IUT's user closes before the third message: a DR follows the CC",
    group=Group.RELEASE,
    clause="ISO 8073 6.7, 12 (AKWAIT)",
    cls=4,
    rows=["AKWAIT:disconnect"],
    needs=["ut"],
)
async def user_closes_in_akwait(s: Session) -> None:
    """The upper tester confirms and closes at once (``UT:CONFIRM-CLOSE``): the
    CC, then a DR (the handshake never completes); the tester's DC ends it."""
    c = await _cc(s, UT_CONFIRM_CLOSE)
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(CC,))
    s.pics("behaviour", "DR reason closing in AKWAIT", dr_reason(dr.reason))
    await s.send(c.dc())
    await s.expect_silence(ignore=(CC,))
