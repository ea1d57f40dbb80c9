"""Class 4 with the tester as responder: the IUT connects (its CR, our CC or refusal).

The IUT is a client that connects to the tester over and over (``--role
responder``); each case takes the next CR. With the upper tester
(:mod:`~tp4emu.conformance.apps`) the client sends ``UT:HELLO`` once open
and releases when it receives anything else.
"""

from __future__ import annotations

import trio

from ...wire import AK, CR, DC, DR, DT, ED, ER
from ..apps import UT_ABANDON_AFTER, UT_ABANDON_NEXT
from ..match import Not
from ..model import Group
from ..peer4 import C4, cc_for, expect_cr
from ..registry import case
from ..session import Pattern, Session
from .c4_timers import again, count_until_stop, n_check
from .common import dr_reason, pics_of_cr

E = Group.ESTABLISHMENT
R = Group.RELEASE
T = Group.TIMERS


async def third_message(s: Session, c: C4) -> None:
    """The IUT's answer to our CC: an AK (nothing acknowledged) or a DT or ED numbered 0."""
    got = await s.expect(
        Pattern(AK, DT, ED, fields={"dst_ref": s.our_ref}, label="the third message")
    )
    if isinstance(got, AK):
        if got.nr != 0:
            s.fail(
                f"the third message acknowledges DTs never sent (YR-TU-NR {got.nr})",
                expected="AK with YR-TU-NR 0",
                observed=[repr(got)],
            )
        c.took_ak(got)
    elif isinstance(got, DT):
        if got.nr != 0:
            s.fail(f"first DT numbered {got.nr}", expected="DT number 0", observed=[repr(got)])
        c.took_dt(got)
        c._partial.append(got.data)
        if got.eot:
            c.tsdus.append(b"".join(c._partial))
            c._partial = []
        await s.send(c.ak())


async def _accept(s: Session) -> C4:
    async with s.preamble():
        c, _ = await C4.accept(s)
        await third_message(s, c)
    return c


async def _hello(s: Session, c: C4) -> None:
    """The upper tester's first TSDU (``UT:HELLO``)."""
    deadline = trio.current_time() + s.settings.response_time
    while not c.tsdus:
        if not await c.take(deadline):
            s.fail("no TSDU from the upper tester", expected="DT UT:HELLO")
    c.tsdus.popleft()


@case(
    "c4.rsp.cr",
    title="The IUT's CR is well formed; our CC is answered with the third message",
    group=E,
    clause="ISO 8073 6.5, 12 (three-way handshake), 13.3",
    cls=4,
    role="responder",
    rows=["CLOSED:connect", "WFCC:CC"],
)
async def cr(s: Session) -> None:
    """The IUT's CR: class 4 (or alternatives), DST-REF 0, a non-zero SRC-REF,
    a valid checksum (unless it proposes its non-use). The tester's CC is
    answered with an AK of YR-TU-NR 0 (or a DT or ED numbered 0) to the
    tester's reference."""
    c, cr = await C4.accept(s)
    pics_of_cr(s, cr)
    await third_message(s, c)
    s.outcome = f"CR class {cr.protocol_class}, size {cr.tpdu_size or 128}; third message ok"
    async with s.postamble():
        await c.release()


@case(
    "c4.rsp.refused-dr",
    title="A CR refused with DR is not retransmitted; the DR is confirmed or not",
    group=E,
    clause="ISO 8073 6.6 (connection refusal)",
    cls=4,
    role="responder",
    rows=["WFCC:DR"],
)
async def refused_dr(s: Session) -> None:
    """The tester refuses the IUT's CR with a DR (reason 2): the IUT stops
    sending that CR (a DC is allowed)."""
    cr = await expect_cr(s)
    await s.send(DR(cr.src_ref, s.our_ref, 2), checksum=True)
    await s.expect_silence(
        max(s.settings.silence, (s.settings.timers.cr_retransmit or 0) * 2),
        ignore=lambda i: isinstance(i.tpdu, DC) or _other_cr(i.tpdu, cr.src_ref),
        label="the CR was refused",
    )


def _other_cr(tpdu: object, ref: int) -> bool:
    """A CR of another connection attempt (the IUT's next one)."""
    return isinstance(tpdu, CR) and tpdu.src_ref != ref


@case(
    "c4.rsp.refused-er",
    title="A CR answered with ER is not retransmitted",
    group=E,
    clause="ISO 8073 6.22, 13.12",
    cls=4,
    role="responder",
    rows=["WFCC:ER"],
)
async def refused_er(s: Session) -> None:
    """The tester answers the IUT's CR with an ER: the IUT gives the connection up
    (no more CR)."""
    cr = await expect_cr(s)
    await s.send(ER(cr.src_ref, 0), checksum=True)
    await s.expect_silence(
        max(s.settings.silence, (s.settings.timers.cr_retransmit or 0) * 2),
        ignore=lambda i: _other_cr(i.tpdu, cr.src_ref),
        label="the CR was answered with ER",
    )


@case(
    "c4.rsp.cc-without-checksum",
    title="A CC without the checksum is discarded; the CR is retransmitted",
    group=E,
    clause="ISO 8073 6.17 (checksum), 6.19",
    cls=4,
    role="responder",
    rows=["WFCC:CC"],
)
async def cc_without_checksum(s: Session) -> None:
    """The tester's first CC carries no checksum (whose use the CR proposed):
    the IUT discards it, no AK, and sends its CR again; the correct CC that
    follows is answered with the third message."""
    cr = await expect_cr(s, forget_repeats=False)
    cc = cc_for(s, cr)
    await s.send(cc, checksum=False)
    await s.expect(
        Pattern(
            CR,
            fields={"src_ref": cr.src_ref},
            checksum=None,
            label="the CR again (the CC was discarded)",
        ),
        timeout=s.settings.timer_limit,
        missing="inconclusive",
    )
    c = C4(
        s,
        cr.src_ref,
        extended=cc.extended,
        checksum=True,
        tpdu_size=cc.tpdu_size or 128,
        credit=cr.credit,
        window=cc.credit,
        cr=cr,
        cc=cc,
    )
    c.install()
    await s.send(cc, checksum=True)
    await third_message(s, c)
    async with s.postamble():
        await c.release()


@case(
    "c4.rsp.cc-other-class",
    title="A CC choosing a class the CR did not propose is refused with DR",
    group=E,
    clause="ISO 8073 6.5 (class negotiation)",
    cls=4,
    role="responder",
    rows=["WFCC:CC", "CLOSING:DC"],
)
async def cc_other_class(s: Session) -> None:
    """The tester answers a CR of class 4 with a CC of class 2: the IUT refuses
    it with a DR (130, negotiation failed, fits); the tester's DC ends it."""
    cr = await expect_cr(s)
    cc = cc_for(s, cr, protocol_class=2)
    await s.send(cc, checksum=True)
    dr: DR = await s.expect(
        DR, fields={"dst_ref": s.our_ref, "src_ref": cr.src_ref}, label="the DR refusing the CC"
    )
    s.pics("behaviour", "DR reason for a CC of an unproposed class", dr_reason(dr.reason))
    await s.send(DC(cr.src_ref, s.our_ref), checksum=True)
    await s.expect_silence(ignore=lambda i: _other_cr(i.tpdu, cr.src_ref))


@case(
    "c4.rsp.cc-extended-not-proposed",
    title="A CC choosing the extended format the CR did not propose is refused",
    group=E,
    clause="ISO 8073 6.5 (negotiation), 13.4",
    cls=4,
    role="responder",
    rows=["WFCC:CC"],
)
async def cc_extended(s: Session) -> None:
    """The IUT's CR proposes the normal format; the tester's CC chooses the
    extended one: the IUT refuses it (DR) rather than use it."""
    cr = await expect_cr(s)
    if cr.extended:
        s.inconclusive("the IUT proposed the extended format")
    cc = cc_for(s, cr, extended=True)
    await s.send(cc, checksum=True)
    got = await s.expect(DR, AK, fields={"dst_ref": s.our_ref})
    if isinstance(got, AK):
        s.fail(
            "the IUT took a CC choosing a format it did not propose",
            expected="DR",
            observed=[repr(got)],
        )
    await s.send(DC(cr.src_ref, s.our_ref), checksum=True)


@case(
    "c4.rsp.duplicate-cc",
    title="A CC repeated after the handshake is answered with an AK again",
    group=E,
    clause="ISO 8073 6.5, 12 (duplicate CC)",
    cls=4,
    role="responder",
    rows=["OPEN:CC"],
)
async def duplicate_cc(s: Session) -> None:
    """After the IUT's third message the tester sends its CC again (as if the AK
    were lost): the IUT repeats its AK."""
    c = await _accept(s)
    assert c.cc is not None
    await s.send(c.cc, checksum=True)
    await s.expect(AK, fields={"dst_ref": s.our_ref, "nr": 0}, ignore=(DT,), label="the AK again")
    async with s.postamble():
        await c.release()


@case(
    "c4.rsp.iut-releases",
    title="The IUT (client) sends data, then releases with DR; the tester's DC ends it",
    group=R,
    clause="ISO 8073 6.7, 13.5",
    cls=4,
    role="responder",
    rows=["OPEN:send", "OPEN:disconnect", "CLOSING:DC"],
    needs=["ut"],
)
async def iut_releases(s: Session) -> None:
    """The upper tester's client sends ``UT:HELLO``; the tester answers with a
    TSDU, upon which the client releases: a DR of reason 128; the tester's DC
    ends the release."""
    c = await _accept(s)
    await _hello(s, c)
    await c.send_tsdu(b"bye")
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(AK,))
    if dr.reason != 128:
        s.fail(f"DR reason {dr_reason(dr.reason)}", expected="128 (normal disconnect)")
    await s.send(c.dc())
    await s.expect_silence(ignore=lambda i: _other_cr(i.tpdu, c.peer_ref))


@case(
    "c4.rsp.abandon",
    title="An initiator that abandoned its connect refuses the late CC with DR",
    group=E,
    clause="ISO 8073 6.5, 6.18 (a CC for a connection no longer wanted)",
    cls=4,
    role="responder",
    rows=["WFCC:disconnect", "REFWAIT:CC"],
    needs=["ut"],
)
async def abandon(s: Session) -> None:
    """The tester tells the upper tester to abandon its next connect, then leaves
    that CR unanswered: the CRs stop once the client gave up; a CC sent then
    is refused with a DR."""
    c = await _accept(s)
    await _hello(s, c)
    await c.send_tsdu(UT_ABANDON_NEXT)
    await s.expect(DR, fields={"dst_ref": s.our_ref}, ignore=(AK,))
    await s.send(c.dc())
    cr = await expect_cr(s, forget_repeats=False)
    first = s.last_at
    # the client abandons UT_ABANDON_AFTER after its connect began (its first CR)
    await s.sleep(
        max(0.0, first + UT_ABANDON_AFTER + s.tol(UT_ABANDON_AFTER) - trio.current_time())
    )
    await s.send(cc_for(s, cr), checksum=True)
    dr: DR = await s.expect(
        DR,
        fields={"dst_ref": s.our_ref, "src_ref": cr.src_ref},
        ignore=lambda i: isinstance(i.tpdu, CR),
    )
    late = [
        i
        for i in s.observed
        if isinstance(i.tpdu, CR)
        and i.tpdu.src_ref == cr.src_ref
        and i.at > first + UT_ABANDON_AFTER + s.tol(UT_ABANDON_AFTER)
    ]
    if late:
        s.fail(
            f"{len(late)} CRs after the connect was abandoned",
            expected="no CR",
            observed=[i.summary() for i in late],
        )
    s.pics("behaviour", "DR reason for a CC after the connect was abandoned", dr_reason(dr.reason))


# ---------------------------------------------------------------- timers


@case(
    "c4.rsp.cr-retransmit",
    title="A CR not answered is retransmitted after T1, unchanged",
    group=T,
    clause="ISO 8073 6.19, 12.2.1.1 (T1)",
    cls=4,
    role="responder",
    rows=["WFCC:T1"],
)
async def cr_retransmit(s: Session) -> None:
    """The tester does not answer the IUT's CR: the same CR (reference, class,
    parameters) comes again after T1."""
    cr = await expect_cr(s, forget_repeats=False)
    same = {"src_ref": cr.src_ref, "protocol_class": cr.protocol_class, "params": cr.params}
    await again(
        s,
        Pattern(CR, fields=same, checksum=None),
        since=s.last_at,
        known=s.settings.timers.cr_retransmit,
        name="T1 (CR)",
    )
    async with s.postamble():
        await s.send(cc_for(s, cr), checksum=True)
        await s.expect(AK, DT, fields={"dst_ref": s.our_ref}, skip=True)
        await s.send(DR(cr.src_ref, s.our_ref, 128), checksum=True)


@case(
    "c4.rsp.cr-give-up",
    title="A CR never answered: N retransmissions, then the IUT gives up",
    group=T,
    clause="ISO 8073 6.19 (N), 6.5",
    cls=4,
    role="responder",
    rows=["WFCC:T1", "REFWAIT:CC"],
)
async def cr_give_up(s: Session) -> None:
    """The IUT's CR is never answered: it is retransmitted (N times when N is
    known), then no more; a CC arriving after that is refused with a DR."""
    cr = await expect_cr(s, forget_repeats=False)
    count, _ = await count_until_stop(
        s,
        Pattern(CR, fields={"src_ref": cr.src_ref}, checksum=None),
        first_at=s.last_at,
        stop=Pattern(CR, fields={"src_ref": Not(cr.src_ref)}, checksum=None),
    )
    n_check(s, count, "CR")
    await s.send(cc_for(s, cr), checksum=True)
    dr = await s.wait_for(
        Pattern(DR, fields={"dst_ref": s.our_ref, "src_ref": cr.src_ref}), s.settings.response_time
    )
    s.pics(
        "behaviour",
        "CC after the initiator gave up",
        f"DR {dr_reason(dr.reason)}" if isinstance(dr, DR) else "ignored",
    )


async def _iut_dr(s: Session) -> tuple[C4, DR, float]:
    c = await _accept(s)
    await _hello(s, c)
    await c.send_tsdu(b"bye")
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(AK,))
    return c, dr, s.last_at


@case(
    "c4.rsp.dr-retransmit",
    title="A DR not confirmed is retransmitted; the DC stops it",
    group=T,
    clause="ISO 8073 6.7, 6.19",
    cls=4,
    role="responder",
    rows=["CLOSING:T1"],
    needs=["ut"],
)
async def dr_retransmit(s: Session) -> None:
    """The tester leaves the IUT's DR without DC: the same DR comes again; the
    DC then ends the release."""
    c, dr, at = await _iut_dr(s)
    await again(
        s,
        Pattern(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref, "reason": dr.reason}),
        since=at,
        known=None,
        name="T1 (DR)",
        ignore=(AK,),
    )
    await s.send(c.dc())
    await s.expect_silence(ignore=lambda i: _other_cr(i.tpdu, c.peer_ref) or isinstance(i.tpdu, DR))


@case(
    "c4.rsp.dr-give-up",
    title="A DR never confirmed: N retransmissions, then the IUT stops",
    group=T,
    clause="ISO 8073 6.7, 6.19 (N), 6.18",
    cls=4,
    role="responder",
    rows=["CLOSING:T1"],
    needs=["ut"],
)
async def dr_give_up(s: Session) -> None:
    """The IUT's DR is never confirmed: it is retransmitted (N times when N is
    known), then the IUT stops (its reference frozen)."""
    c, _, at = await _iut_dr(s)
    count, _ = await count_until_stop(
        s,
        Pattern(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}),
        first_at=at,
        stop=Pattern(CR, fields={"src_ref": Not(c.peer_ref)}, checksum=None),
    )
    n_check(s, count, "DR")


@case(
    "c4.rsp.dr-crossing",
    title="The IUT's DR answered with a DR: no DC needed, its release ends",
    group=R,
    clause="ISO 8073 6.7 (DR crossing)",
    cls=4,
    role="responder",
    rows=["CLOSING:DR"],
    needs=["ut"],
)
async def dr_crossing(s: Session) -> None:
    """The tester answers the IUT's DR with its own DR: the IUT's DR is not
    retransmitted."""
    c, _, _ = await _iut_dr(s)
    await s.send(c.dr())
    await s.expect_silence(ignore=lambda i: _other_cr(i.tpdu, c.peer_ref) or isinstance(i.tpdu, DC))
