"""Class 4, timers: T1 and N (CC, DT, ED), W, I, the acknowledgement time, the confirm timeout.

The IUT's timers are unknown unless the run was told them (``--timer``,
``--profile``): then each is checked at its value ± the tolerance; else it
is measured, reported in the PICS, and the case is inconclusive when the
timer does not expire within ``--timer-limit``. Retransmission times are
expected to include the acknowledgement time the tester announces (ISO
8073 12.2.1.1 has T1 cover the peer's acknowledgement delay).
"""

from __future__ import annotations

import trio

from ...wire import AK, CC, DC, DR, DT, EA, ED, AckTime, UnknownParam
from ..apps import UT_IGNORE
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session
from .common import dr_reason

G = Group.TIMERS
PADDING = b"conformance padding, 32 octets."


async def again(
    s: Session,
    pattern: Pattern,
    *,
    since: float,
    known: float | None,
    name: str,
    ignore: object = (),
) -> object:
    """The retransmission matching *pattern*: at *known* ± the tolerance after
    *since*, or (unknown) whenever it comes within the timer limit; the
    interval is measured and stated in the PICS."""
    if known is not None:
        got = await s.expect(pattern, at=known, since=since, ignore=ignore)  # type: ignore[arg-type]
    else:
        got = await s.expect(
            pattern,
            timeout=s.settings.timer_limit,
            missing="inconclusive",
            ignore=ignore,  # type: ignore[arg-type]
        )
    interval = s.last_at - since
    s.measure(name, interval)
    s.pics("timers", name, f"{interval * 1000:.0f} ms")
    return got


def _t1(s: Session) -> float | None:
    t1 = s.settings.timers.retransmit
    return None if t1 is None else t1 + s.settings.ack_time


async def count_until_stop(
    s: Session, pattern: Pattern, *, first_at: float, stop: Pattern | None = None
) -> tuple[int, object | None]:
    """Count the retransmissions matching *pattern* after the first (at *first_at*)
    until *stop* arrives or none comes for a while; returns (count, the stop TPDU)."""
    timers = s.settings.timers
    count = 0
    last = first_at
    gap = timers.max_retransmit or timers.retransmit
    limit_at = trio.current_time() + s.settings.timer_limit * 2
    while True:
        wait = (gap * 2 + s.tol(gap)) if gap is not None else s.settings.timer_limit
        deadline = min(trio.current_time() + wait, limit_at)
        item = await s.next(deadline)
        if item is None:
            if trio.current_time() >= limit_at:
                s.inconclusive(
                    f"still retransmitting after {s.settings.timer_limit * 2:g} s "
                    f"({count} retransmissions)"
                )
            return count, None
        if not pattern.problems(item, s.vars, s.checksum):
            count += 1
            if gap is None:
                gap = item.at - last
            last = s.last_at = item.at
            continue
        if stop is not None and not stop.problems(item, s.vars, s.checksum):
            s.last_at = item.at
            return count, item.tpdu
        if s.benign is not None and s.benign(item):
            continue
        s.fail(
            f"expected retransmissions or the end, got {item.summary()}",
            expected=pattern.describe(s.vars),
            observed=[item.summary()],
        )


def n_check(s: Session, count: int, what: str) -> None:
    n = s.settings.timers.retransmissions
    s.measure(f"N ({what})", count)
    s.pics("timers", f"N ({what} retransmissions)", count)
    if n is not None and count != n:
        s.fail(
            f"{count} retransmissions of the {what}, N is {n}",
            expected=f"{n} retransmissions",
            observed=[f"{count}"],
        )


@case(
    "c4.tim.cc-retransmit",
    title="A CC not acknowledged is retransmitted after T1, unchanged",
    group=G,
    clause="ISO 8073 6.19 (retransmission on time-out), 12.2.1.1 (T1)",
    cls=4,
    rows=["AKWAIT:T1"],
)
async def cc_retransmit(s: Session) -> None:
    """The tester leaves the CC unacknowledged: the IUT sends the same CC again
    after T1 (the known T1 plus the acknowledgement time announced, or
    measured); the tester's AK then ends the retransmissions."""
    cr = cr4(s)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref}, checksum=True)
    first = s.last_at
    same = {
        "dst_ref": s.our_ref,
        "src_ref": cc.src_ref,
        "credit": cc.credit,
        "protocol_class": cc.protocol_class,
        "params": cc.params,
    }
    await again(
        s, Pattern(CC, fields=same, checksum=True), since=first, known=_t1(s), name="T1 (CC)"
    )
    c = C4.from_cc(s, cr, cc)
    await s.send(c.ak())
    await s.expect_silence(label="the AK stopped the CC")
    s.outcome = f"CC again after {s.measurements['T1 (CC)'] * 1000:.0f} ms"
    async with s.postamble():
        await c.release()


@case(
    "c4.tim.cc-give-up",
    title="A CC never acknowledged is retransmitted N times, then the IUT gives up",
    group=G,
    clause="ISO 8073 6.19 (N), 6.21 (inactivity), 12.2.1.1",
    cls=4,
    maybe_rows=["AKWAIT:T1", "AKWAIT:I"],
)
async def cc_give_up(s: Session) -> None:
    """The tester never acknowledges the CC (it repeats its CR once, which is
    answered with the CC at once): the IUT retransmits the CC (N times when N
    is known) and then gives up, with a DR (netiso: reason 1) or silently;
    its inactivity timer may end it first."""
    # A large CR: an IUT may bound what it sends a peer that never answered to a
    # few times what it received from it (tp4emu: 3x, against amplification).
    cr = cr4(s, data=PADDING, extra=[UnknownParam(0xC9, PADDING * 5)])
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref}, checksum=True)
    repeated = await s.send(cr, checksum=True)
    await s.expect(
        CC,
        fields={"dst_ref": s.our_ref, "src_ref": cc.src_ref},
        checksum=True,
        label="the CC again for the repeated CR",
    )
    count, end = await count_until_stop(
        s,
        Pattern(CC, fields={"dst_ref": s.our_ref, "src_ref": cc.src_ref}, checksum=True),
        first_at=s.last_at,
        stop=Pattern(DR, fields={"dst_ref": s.our_ref}, checksum=None),
    )
    inactivity = s.settings.timers.inactivity
    if inactivity is None or s.last_at - repeated < inactivity - s.tol(inactivity):
        n_check(s, count, "CC")
    else:
        s.note(f"the inactivity timer ended the handshake after {count} retransmissions")
    if isinstance(end, DR):
        s.pics("behaviour", "DR reason giving up the handshake", dr_reason(end.reason))
        await s.send(DC(cc.src_ref, s.our_ref), checksum=True)
    s.outcome = f"{count} retransmissions, then " + (
        f"DR {dr_reason(end.reason)}" if isinstance(end, DR) else "silence"
    )


async def _open_with_reply(s: Session, **cr_kw: object) -> tuple[C4, bytes]:
    async with s.preamble():
        c = await C4.open(s, cr4(s, **cr_kw))  # type: ignore[arg-type]
    request = s.app.request()
    await c.send_tsdu(request)
    return c, request


@case(
    "c4.tim.dt-retransmit",
    title="A DT not acknowledged is retransmitted, unchanged, until acknowledged",
    group=G,
    clause="ISO 8073 6.13 (retention until acknowledgement), 6.19",
    cls=4,
    rows=["OPEN:T1"],
    needs=["reply"],
)
async def dt_retransmit(s: Session) -> None:
    """The tester does not acknowledge the IUT's reply DT: the same DT (number,
    EOT, data) comes again; the tester's AK stops it. A retransmission
    earlier than the acknowledgement time the tester announced is noted."""
    c, _ = await _open_with_reply(s)
    ak, dt = await s.expect_all([c.p_ak(), Pattern(DT, fields={"dst_ref": s.our_ref, "nr": 0})])
    c.took_ak(ak)
    first = next(i.at for i in s.observed if i.tpdu is dt)
    same = {"dst_ref": s.our_ref, "nr": dt.nr, "eot": dt.eot, "data": dt.data}
    await again(s, Pattern(DT, fields=same), since=first, known=None, name="T1 (DT)")
    if s.measurements["T1 (DT)"] < s.settings.ack_time - s.tol(s.settings.ack_time):
        s.note("retransmitted before the acknowledgement time the tester announced")
        s.pics("timers", "T1 honours the peer's acknowledgement time", False)
    c.took_dt(dt)
    await s.send(c.ak())
    await s.expect_silence(label="the AK stopped the retransmissions")
    async with s.postamble():
        await c.release()


@case(
    "c4.tim.tail-retransmit",
    title="A flight of DTs not acknowledged: the first or the last DT is resent",
    group=G,
    clause="ISO 8073 6.13, 6.19",
    cls=4,
    maybe_rows=["OPEN:loss probe", "OPEN:T1"],
    needs=["echo"],
)
async def tail_retransmit(s: Session) -> None:
    """With TPDU size 128, the reply comes as three DTs, none acknowledged: the
    IUT resends one of them unchanged (the first when T1 expires; the last,
    sooner, with a tail loss probe); AKs then end it."""
    async with s.preamble():
        c = await C4.open(s, cr4(s, size=128))
    await c.send_tsdu(s.app.request(c.capacity * 3 - 10))
    dts: dict[int, DT] = {}
    deadline = trio.current_time() + s.settings.response_time
    while len(dts) < 3:
        item = await s.next(deadline)
        if item is None:
            s.fail(f"{len(dts)} DTs of the reply, expected 3", expected="3 DTs")
        t = item.tpdu
        if isinstance(t, AK) and t.dst_ref == s.our_ref:
            c.took_ak(t)
        elif isinstance(t, DT) and t.dst_ref == s.our_ref:
            if t.nr in dts:
                dts_first = min(dts)
                which = "first" if t.nr == dts_first else "last" if t.nr == max(dts) else "a"
                s.pics("behaviour", "first DT resent of an unacknowledged flight", which)
                break
            dts[t.nr] = t
    else:
        first_sent = s.last_sent
        resent = await s.expect(
            DT,
            fields={"dst_ref": s.our_ref},
            timeout=s.settings.timer_limit,
            missing="inconclusive",
            ignore=(AK,),
        )
        if resent.nr not in dts or dts[resent.nr].data != resent.data:
            s.fail(
                f"DT nr {resent.nr} is not one of the flight, unchanged",
                expected="a DT of the flight again",
                observed=[repr(resent)],
            )
        which = "first" if resent.nr == min(dts) else "last" if resent.nr == max(dts) else "middle"
        s.pics("behaviour", "first DT resent of an unacknowledged flight", which)
        s.measure("first retransmission", s.last_at - first_sent)
    for dt in sorted(dts.values(), key=lambda d: d.nr):
        c.took_dt(dt)
    await s.send(c.ak())
    await s.expect_silence(label="everything acknowledged")
    async with s.postamble():
        await c.release()


@case(
    "c4.tim.dt-give-up",
    title="A DT never acknowledged: after N retransmissions the IUT releases",
    group=G,
    clause="ISO 8073 6.19 (N), 6.8 (error release)",
    cls=4,
    rows=["OPEN:T1"],
    needs=["reply"],
)
async def dt_give_up(s: Session) -> None:
    """The tester never acknowledges the reply DT: the IUT retransmits it (N times,
    when N is known) and then releases with a DR (netiso: reason 129)."""
    c, _ = await _open_with_reply(s)
    ak, dt = await s.expect_all([c.p_ak(), Pattern(DT, fields={"dst_ref": s.our_ref, "nr": 0})])
    c.took_ak(ak)
    first = next(i.at for i in s.observed if i.tpdu is dt)
    count, end = await count_until_stop(
        s,
        Pattern(DT, fields={"dst_ref": s.our_ref, "nr": dt.nr, "data": dt.data}),
        first_at=first,
        stop=Pattern(DR, fields={"dst_ref": s.our_ref}),
    )
    if not isinstance(end, DR):
        s.fail(f"{count} retransmissions, then silence: no DR", expected="a DR giving up")
    s.pics("behaviour", "DR reason giving up on data", dr_reason(end.reason))
    if s.settings.timers.give_up_time is None:
        n_check(s, count, "DT")
    else:
        s.measure("N (DT)", count)
        s.pics("timers", "N (DT retransmissions)", count)
    await s.send(c.dc())
    s.outcome = f"{count} retransmissions, DR {dr_reason(end.reason)}"


@case(
    "c4.tim.window",
    title="An idle connection's AK is re-sent after the window time W",
    group=G,
    clause="ISO 8073 12.2.1.1 (window timer W), 12 (AK on an idle connection)",
    cls=4,
    rows=["OPEN:W"],
)
async def window(s: Session) -> None:
    """Nothing is sent on an open connection: the IUT sends an AK (its window,
    YR-TU-NR 0) after W, and again W later."""
    async with s.preamble():
        c = await C4.open(s)
    known = s.settings.timers.window
    p = Pattern(AK, fields={"dst_ref": s.our_ref, "nr": 0})
    await again(s, p, since=s.last_sent, known=known, name="W")
    w = s.measurements["W"]
    i = s.settings.timers.inactivity
    if i is None or i > 2 * w + s.tol(2 * w):  # (else the inactivity timer ends it first)
        await again(s, p, since=s.last_at, known=known or w, name="W (again)")
    async with s.postamble():
        await c.release()


@case(
    "c4.tim.inactivity",
    title="A connection that receives nothing for I is released",
    group=G,
    clause="ISO 8073 6.21 (inactivity control), 12.2.1.1 (I)",
    cls=4,
    rows=["OPEN:I"],
)
async def inactivity(s: Session) -> None:
    """The tester stops sending anything (its AKs included): after I the IUT
    releases the connection with a DR (its window-timer AKs come meanwhile)."""
    async with s.preamble():
        c = await C4.open(s)
    known = s.settings.timers.inactivity
    ak_to_us = (AK,)
    dr = await again(
        s,
        Pattern(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}),
        since=s.last_sent,
        known=known,
        name="I",
        ignore=ak_to_us,
    )
    assert isinstance(dr, DR)
    s.pics("behaviour", "DR reason on inactivity", dr_reason(dr.reason))
    await s.send(c.dc())
    s.outcome = f"DR {dr_reason(dr.reason)} after {s.measurements['I']:.3f} s"


@case(
    "c4.tim.ack-time",
    title="A DT is acknowledged within the acknowledgement time the IUT announced",
    group=G,
    clause="ISO 8073 13.3.4 (acknowledgement time), 12.2.1.1",
    cls=4,
)
async def ack_time(s: Session) -> None:
    """If its CC announced an acknowledgement time (0x85), the IUT's AK to a DT
    comes within that time plus a round trip (measured as the DC answering a
    DR for an unknown reference) plus the tolerance."""
    await s.send(DR(0x7E5A, s.our_ref, 128), checksum=True)
    start = s.last_sent
    dc = await s.wait_for(
        Pattern(DC, fields={"dst_ref": s.our_ref}, checksum=None), s.settings.response_time
    )
    rtt = s.last_at - start if dc is not None else None
    async with s.preamble():
        c = await C4.open(s)
    announced = c.cc.param(AckTime) if c.cc is not None else None
    await s.send(c.dt(b"ack me"))
    sent = s.last_sent
    await s.expect(c.p_ak(1), ignore=(DT,))
    delay = s.last_at - sent
    s.measure("AK delay", delay)
    s.pics("timers", "AK delay after a DT", f"{delay * 1000:.1f} ms")
    if announced is None:
        s.inconclusive("the CC announced no acknowledgement time")
    if rtt is None:
        s.inconclusive("no DC to measure the round trip with")
    bound = announced.ms / 1000 + rtt + s.tol(announced.ms / 1000)
    if delay > bound:
        s.fail(
            f"AK after {delay * 1000:.1f} ms, announced {announced.ms} ms",
            expected=f"AK within {bound * 1000:.1f} ms",
        )
    s.outcome = f"AK after {delay * 1000:.1f} ms (announced {announced.ms} ms)"
    async with s.postamble():
        await c.collect(reply=s.app.replies, acked=False)
        await c.release()


@case(
    "c4.tim.confirm-timeout",
    title="A CR the IUT's user never answers is refused after its confirm timeout",
    group=G,
    clause="ISO 8073 6.5, 6.6 (refusal by the responder)",
    cls=4,
    rows=["CONFIRMING:confirm timeout", "CONFIRMING:CR"],
    needs=["ut"],
)
async def confirm_timeout(s: Session) -> None:
    """The CR's connect data tells the upper tester to neither confirm nor
    reject: no CC comes, not even for the CR repeated meanwhile (one
    connection, still confirming); after the IUT's confirm timeout, counted
    from the first CR, a DR refuses it."""
    cr = cr4(s, data=UT_IGNORE)
    first = await s.send(cr, checksum=True)
    known = s.settings.timers.confirm_timeout
    await s.sleep(min(0.1, known / 4) if known else 0.1)
    await s.send(cr, checksum=True)
    dr = await again(
        s,
        Pattern(DR, fields={"dst_ref": s.our_ref}, checksum=None),
        since=first,
        known=known,
        name="confirm timeout",
    )
    assert isinstance(dr, DR)
    s.pics("behaviour", "DR reason on the confirm timeout", dr_reason(dr.reason))
    if dr.src_ref:
        await s.send(DC(dr.src_ref, s.our_ref), checksum=True)


@case(
    "c4.tim.ed-retransmit",
    title="An ED not acknowledged is retransmitted until its EA",
    group=G,
    clause="ISO 8073 6.11, 6.19",
    cls=4,
    rows=["OPEN:T1 (ED)"],
    needs=["ut"],
)
async def ed_retransmit(s: Session) -> None:
    """The upper tester echoes the tester's ED; the tester leaves the IUT's ED
    without EA: the same ED comes again; the EA then stops it."""
    async with s.preamble():
        c = await C4.open(s)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    await s.send(c.ed(b"again"))
    _, ed = await s.expect_all(
        [
            Pattern(EA, fields={"dst_ref": s.our_ref, "nr": 0}),
            Pattern(ED, fields={"dst_ref": s.our_ref, "nr": 0}),
        ]
    )
    c.ea_seen.add(0)
    first = next(i.at for i in s.observed if i.tpdu is ed)
    await again(
        s,
        Pattern(ED, fields={"dst_ref": s.our_ref, "nr": 0, "data": ed.data}),
        since=first,
        known=None,
        name="T1 (ED)",
    )
    await s.send(c.ea(0))
    c.ed_seen.add(0)
    await s.expect_silence(label="the EA stopped the ED")
    async with s.postamble():
        await c.release()


@case(
    "c4.tim.ed-give-up",
    title="An ED never acknowledged: the IUT gives up and releases",
    group=G,
    clause="ISO 8073 6.11, 6.19 (N), 6.8",
    cls=4,
    rows=["OPEN:T1 (ED)"],
    needs=["ut"],
)
async def ed_give_up(s: Session) -> None:
    """The tester never acknowledges the IUT's ED: it is retransmitted, then the
    IUT releases with a DR."""
    async with s.preamble():
        c = await C4.open(s)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    await s.send(c.ed(b"never"))
    _, ed = await s.expect_all(
        [
            Pattern(EA, fields={"dst_ref": s.our_ref, "nr": 0}),
            Pattern(ED, fields={"dst_ref": s.our_ref, "nr": 0}),
        ]
    )
    c.ea_seen.add(0)
    first = next(i.at for i in s.observed if i.tpdu is ed)
    count, end = await count_until_stop(
        s,
        Pattern(ED, fields={"dst_ref": s.our_ref, "nr": 0}),
        first_at=first,
        stop=Pattern(DR, fields={"dst_ref": s.our_ref}),
    )
    if not isinstance(end, DR):
        s.fail(f"{count} retransmissions of the ED, then silence: no DR", expected="a DR giving up")
    s.pics("behaviour", "DR reason giving up on expedited data", dr_reason(end.reason))
    await s.send(c.dc())
    s.outcome = f"{count} retransmissions, DR {dr_reason(end.reason)}"
