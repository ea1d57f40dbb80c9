"""Class 4, data transfer: DT numbering, segmenting, resequencing, duplicates, windows."""

from __future__ import annotations

import trio

from ...wire import AK, DR, DT, encode_one
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session
from .common import dr_reason

G = Group.DATA


async def _open(s: Session, **cr_kw: object) -> C4:
    async with s.preamble():
        return await C4.open(s, cr4(s, **cr_kw))  # type: ignore[arg-type]


def _check_reply(s: Session, request: bytes, reply: bytes | None) -> None:
    problem = s.app.reply_problem(request, reply or b"")
    if problem:
        s.fail(problem, expected="the application's reply to our TSDU")


@case(
    "c4.data.single-dt",
    title="A DT is acknowledged (YR-TU-NR 1) and the application's reply arrives in DTs",
    group=G,
    clause="ISO 8073 6.10, 6.13, 13.7, 13.9",
    cls=4,
    rows=["OPEN:DT", "OPEN:send", "OPEN:AK"],
    needs=["reply"],
)
async def single_dt(s: Session) -> None:
    """The tester sends one DT with EOT: the IUT acknowledges it with an AK of
    YR-TU-NR 1 to the tester's reference, and the reply comes as DTs numbered
    from 0, EOT on the last; the tester's AKs stop their retransmission."""
    c = await _open(s)
    request = s.app.request()
    reply = await c.exchange(request)
    _check_reply(s, request, reply)
    await s.expect_silence(label="every DT acknowledged")
    s.outcome = f"AK nr 1; reply in {len(c.received)} DT(s)"
    async with s.postamble():
        await c.release()


@case(
    "c4.data.segmented",
    title="A TSDU in three DTs is reassembled; the reply is segmented with EOT on the last",
    group=G,
    clause="ISO 8073 6.3 (segmenting and reassembling), 13.7 (EOT)",
    cls=4,
    needs=["echo"],
)
async def segmented(s: Session) -> None:
    """With TPDU size 128, the tester sends a TSDU of three DTs (EOT on the
    third only): the IUT delivers it whole (the echo is the same octets),
    its DTs fit the size and only the last carries EOT."""
    c = await _open(s, size=128)
    request = s.app.request(c.capacity * 3)
    reply = await c.exchange(request)
    _check_reply(s, request, reply)
    if any(dt.eot for dt in c.received[:-1]) or not c.received[-1].eot:
        s.fail("EOT not on the last DT of the reply only", expected="EOT on the last DT only")
    if any(len(dt.data) > c.capacity for dt in c.received):
        s.fail("a DT of the reply exceeds the TPDU size", expected=f"<= {c.capacity} octets")
    s.outcome = f"{len(request)} octets in 3 DTs, echoed in {len(c.received)}"
    async with s.postamble():
        await c.release()


@case(
    "c4.data.out-of-order",
    title="DTs received out of order are put back in sequence",
    group=G,
    clause="ISO 8073 6.20 (resequencing)",
    cls=4,
    needs=["echo"],
)
async def out_of_order(s: Session) -> None:
    """The tester sends the second DT of a TSDU before the first: the IUT holds
    it, and once the first arrives acknowledges both (YR-TU-NR 2) and
    delivers the TSDU whole (the echo)."""
    c = await _open(s, size=128)
    first, second = s.app.request(c.capacity), s.app.request(20, seed=7)
    dt0, dt1 = c.dt(first, eot=False), c.dt(second)
    await s.send(dt1)
    got = await s.wait_for(Pattern(DT, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if got is not None:
        s.fail(
            "the IUT answered before the TSDU was complete",
            expected="no DT yet",
            observed=[repr(got)],
        )
    await s.send(dt0)
    reply = await c.collect(reply=True, acked=True)
    _check_reply(s, first + second, reply)
    async with s.postamble():
        await c.release()


@case(
    "c4.data.duplicate-dt",
    title="A duplicate DT is acknowledged again and not delivered twice",
    group=G,
    clause="ISO 8073 6.10, 6.13 (duplicates)",
    cls=4,
    needs=["echo"],
)
async def duplicate_dt(s: Session) -> None:
    """The tester sends the same DT twice: the IUT acknowledges (YR-TU-NR 1) and
    delivers it once: one echo, no second."""
    c = await _open(s)
    request = s.app.request()
    dt = c.dt(request)
    await s.send(dt, dt)
    reply = await c.collect(reply=True, acked=True)
    _check_reply(s, request, reply)
    extra = await s.wait_for(
        Pattern(DT, fields={"dst_ref": s.our_ref, "nr": c.rcv_nxt % c.mod}), s.settings.silence
    )
    if extra is not None:
        s.fail(
            "the duplicate was delivered again (a second echo)",
            expected="one echo",
            observed=[repr(extra)],
        )
    async with s.postamble():
        await c.release()


@case(
    "c4.data.outside-window",
    title="A DT beyond the credit given is discarded",
    group=G,
    clause="ISO 8073 6.16 (flow control), 12 (DT outside the window)",
    cls=4,
    needs=["echo"],
)
async def outside_window(s: Session) -> None:
    """The tester sends a DT numbered beyond the IUT's credit: it is discarded
    (never acknowledged, never delivered); the DTs in the window that follow
    are taken as if it never came."""
    c = await _open(s)
    beyond = c.credit + 3
    await s.send(c.dt(b"OUTSIDE", nr=beyond))
    ak = await s.wait_for(Pattern(AK, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if ak is not None and ak.nr != 0:
        s.fail(
            f"AK nr {ak.nr} after a DT outside the window",
            expected="AK nr 0 or none",
            observed=[repr(ak)],
        )
    request = s.app.request()
    reply = await c.exchange(request)
    _check_reply(s, request, reply)
    async with s.postamble():
        await c.release()


@case(
    "c4.data.extended-ak-beyond-sent",
    title="Extended format: an AK beyond the DTs sent is a protocol error",
    group=G,
    clause="ISO 8073 6.22, 13.9 (extended AK)",
    cls=4,
    rows=["OPEN:AK"],
)
async def extended_ak_beyond(s: Session) -> None:
    """On an extended-format connection (where numbers do not wrap for 2**31 DTs)
    the tester acknowledges 1000 DTs the IUT never sent: a protocol error. The
    IUT releases with a DR (133 is ISO 8073's reason), or ignores it."""
    c = await _open(s, extended=True)
    if not c.extended:
        s.inconclusive("the IUT refused the extended format")
    await s.send(c.ak(nr=1000))
    got = await s.wait_for(Pattern(DR, fields={"dst_ref": s.our_ref}), s.settings.response_time)
    if got is None:
        s.pics("behaviour", "extended AK beyond the DTs sent", "ignored")
        s.outcome = "ignored"
        async with s.postamble():
            await c.release()
        return
    s.pics("behaviour", "extended AK beyond the DTs sent", f"DR {dr_reason(got.reason)}")
    await s.send(c.dc())
    s.outcome = f"DR {dr_reason(got.reason)}"


@case(
    "c4.data.tsdu-too-large",
    title="A TSDU beyond the IUT's limit ends the connection (DR)",
    group=G,
    clause="ISO 8073 6.22 (a TSDU the IUT cannot take)",
    cls=4,
    rows=["OPEN:TSDU too large"],
    needs=["max_tsdu"],
)
async def tsdu_too_large(s: Session) -> None:
    """The tester sends DTs without EOT adding up to more than the IUT's
    largest TSDU (``--max-tsdu``): the IUT disconnects (DR) rather than
    hold it."""
    limit = s.settings.max_tsdu
    assert limit is not None
    c = await _open(s, size=1024)
    chunk = s.app.request(c.capacity)
    sent = 0
    deadline = trio.current_time() + s.settings.response_time * 5
    while sent <= limit and trio.current_time() < deadline:
        if c.snd_nxt - c.snd_una >= c.credit:
            got = await s.expect(AK, DR, fields={"dst_ref": s.our_ref})
            if isinstance(got, DR):
                break
            c.took_ak(got)
            continue
        await s.send(c.dt(chunk, eot=False))
        sent += len(chunk)
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref}, ignore=(AK,), skip=False)
    s.pics("behaviour", f"TSDU over {limit} octets", f"DR {dr_reason(dr.reason)}")
    await s.send(c.dc())
    s.outcome = f"DR {dr_reason(dr.reason)} after {sent} octets"


@case(
    "c4.data.bad-checksum",
    title="A DT with a wrong checksum is discarded: no AK, no delivery",
    group=G,
    clause="ISO 8073 6.17 (checksum), 12 (TPDUs with a wrong checksum are discarded)",
    cls=4,
    needs=["reply"],
)
async def bad_checksum(s: Session) -> None:
    """The tester sends a DT whose checksum does not hold: the IUT discards it
    (no AK for it, no reply); the same DT sent correctly then goes through."""
    c = await _open(s)
    request = s.app.request()
    dt = c.dt(request)
    raw = bytearray(encode_one(dt, checksum=True))
    raw[-1] ^= 0x5A  # the data changed after the checksum was computed
    await s.send(bytes(raw))
    await s.expect_silence(label="the DT was corrupt")
    await s.send(dt)
    reply = await c.collect(reply=True, acked=True)
    _check_reply(s, request, reply)
    async with s.postamble():
        await c.release()
