"""Class 4, expedited data: ED and EA."""

from __future__ import annotations

from ...wire import AK, EA, ED
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session

G = Group.EXPEDITED


async def _open_expedited(s: Session) -> C4:
    async with s.preamble():
        c = await C4.open(s)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    return c


@case(
    "c4.exp.ed-ea",
    title="An ED is acknowledged by an EA of the same number",
    group=G,
    clause="ISO 8073 6.11 (expedited data transfer), 13.8, 13.10",
    cls=4,
    rows=["OPEN:ED"],
)
async def ed_ea(s: Session) -> None:
    """The tester sends an ED of 16 octets (the most allowed): the IUT answers
    with an EA carrying the ED's number (0)."""
    c = await _open_expedited(s)
    await s.send(c.ed(b"sixteen octets!!"))
    await s.expect(EA, fields={"dst_ref": s.our_ref, "nr": 0}, ignore=(ED,))
    async with s.postamble():
        await _answer_eds(s, c)
        await c.release()


async def _answer_eds(s: Session, c: C4) -> None:
    """Acknowledge whatever EDs the IUT sends meanwhile (an upper tester echoes them)."""
    for item in await s.drain(s.settings.silence / 2):
        if isinstance(item.tpdu, ED) and item.tpdu.dst_ref == s.our_ref:
            await s.send(c.ea(item.tpdu.nr))


@case(
    "c4.exp.echo",
    title="The IUT's ED (its user's expedited data) is numbered from 0 and stops at our EA",
    group=G,
    clause="ISO 8073 6.11, 13.8, 13.10",
    cls=4,
    rows=["OPEN:send_expedited", "OPEN:EA"],
    needs=["ut"],
)
async def ed_echo(s: Session) -> None:
    """The upper tester echoes expedited data: after the tester's ED, the IUT
    sends an ED of number 0 with the same octets; the tester's EA ends its
    retransmission (nothing more comes)."""
    c = await _open_expedited(s)
    await s.send(c.ed(b"urgent"))
    ea, ed = await s.expect_all(
        [
            Pattern(EA, fields={"dst_ref": s.our_ref, "nr": 0}),
            Pattern(ED, fields={"dst_ref": s.our_ref, "nr": 0, "data": b"urgent"}),
        ]
    )
    c.ea_seen.add(ea.nr)
    await s.send(c.ea(ed.nr))
    c.ed_seen.add(ed.nr)
    await s.expect_silence(label="the EA acknowledged the ED")
    async with s.postamble():
        await c.release()


@case(
    "c4.exp.duplicate-ed",
    title="A repeated ED is acknowledged again and delivered once",
    group=G,
    clause="ISO 8073 6.11 (duplicate ED)",
    cls=4,
)
async def duplicate_ed(s: Session) -> None:
    """The tester sends the same ED twice (as if its EA were lost): both get an
    EA of number 0; an upper tester echoing expedited data echoes it once."""
    c = await _open_expedited(s)
    ed = c.ed(b"once")
    await s.send(ed)
    await s.expect(EA, fields={"dst_ref": s.our_ref, "nr": 0}, ignore=(ED,))
    await s.send(ed)
    await s.expect(EA, fields={"dst_ref": s.our_ref, "nr": 0}, ignore=(ED,), label="the EA again")
    if s.settings.upper_tester:
        echoes = [i for i in s.observed if isinstance(i.tpdu, ED) and i.tpdu.dst_ref == s.our_ref]
        more = await s.drain(s.settings.silence)
        echoes += [i for i in more if isinstance(i.tpdu, ED)]
        numbers = {i.tpdu.nr for i in echoes if i.tpdu is not None}  # type: ignore[union-attr]
        if len(numbers) > 1:
            s.fail(
                f"the ED was delivered {len(numbers)} times (EDs {sorted(numbers)})",
                expected="one delivery",
            )
        for nr in numbers:
            await s.send(c.ea(nr))
    async with s.postamble():
        await c.release()


@case(
    "c4.exp.second-ed",
    title="The next ED carries the next number and is acknowledged with it",
    group=G,
    clause="ISO 8073 6.11, 13.8 (ED-TPDU-NR)",
    cls=4,
)
async def second_ed(s: Session) -> None:
    """Two EDs one after the other (the second after the first's EA): EAs of
    numbers 0 then 1."""
    c = await _open_expedited(s)
    for nr in (0, 1):
        await s.send(c.ed(b"n%d" % nr))
        await s.expect(EA, fields={"dst_ref": s.our_ref, "nr": nr}, ignore=(ED, AK))
    async with s.postamble():
        await _answer_eds(s, c)
        await c.release()


@case(
    "c4.exp.not-agreed",
    title="An ED on a connection without expedited data is not acknowledged",
    group=G,
    clause="ISO 8073 6.11 (only when agreed), 6.22",
    cls=4,
)
async def not_agreed(s: Session) -> None:
    """On a connection whose CR did not propose expedited data, the tester
    sends an ED: the IUT must not take it (no EA); it may release (DR) or
    answer with an ER."""
    async with s.preamble():
        c = await C4.open(s, cr4(s, options=0x00))
    await s.send(c.ed(b"x"))
    got = await s.wait_for(Pattern(EA, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if got is not None:
        s.fail(
            "EA for an ED on a connection without expedited data",
            expected="no EA",
            observed=[repr(got)],
        )
    async with s.postamble():
        await c.release()
