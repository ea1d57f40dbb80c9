"""Class 4, release: DR and DC, crossing DRs, unknown references, the IUT's own release."""

from __future__ import annotations

from ...wire import AK, CC, DC, DR, ER
from ..apps import UT_CLOSE
from ..match import NONZERO
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session
from .common import dr_reason

G = Group.RELEASE


async def _open(s: Session) -> C4:
    async with s.preamble():
        return await C4.open(s)


@case(
    "c4.rel.dr-dc",
    title="The tester's DR on an open connection is answered with DC",
    group=G,
    clause="ISO 8073 6.7 (normal release, explicit), 13.5, 13.6",
    cls=4,
    rows=["OPEN:DR"],
)
async def dr_dc(s: Session) -> None:
    """On an open connection the tester sends a DR (reason 128, 64 octets of
    data): the IUT answers with a DC, DST-REF ours, SRC-REF its own, and then
    sends nothing more on it."""
    c = await _open(s)
    await s.send(c.dr(128, b"d" * 64))
    await s.expect(DC, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref})
    await s.expect_silence(label="released")


@case(
    "c4.rel.iut-releases",
    title="The IUT's user releases: a DR to the tester, ended by its DC",
    group=G,
    clause="ISO 8073 6.7, 13.5 (DR reason 128: normal disconnect)",
    cls=4,
    rows=["OPEN:disconnect", "CLOSING:DC"],
    needs=["ut"],
)
async def iut_releases(s: Session) -> None:
    """The upper tester is told to release (``UT:CLOSE``): once the command is
    acknowledged the IUT sends a DR (reason 128, normal), which the tester's
    DC completes: the DR is not retransmitted."""
    c = await _open(s)
    await c.send_tsdu(UT_CLOSE)
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(AK,))
    if dr.reason != 128:
        s.fail(
            f"DR reason {dr_reason(dr.reason)}",
            expected="DR reason 128 (normal disconnect)",
            observed=[repr(dr)],
        )
    await s.send(c.dc())
    await s.expect_silence(label="the DC completed the release")


@case(
    "c4.rel.crossing",
    title="DRs that cross end the release on both sides",
    group=G,
    clause="ISO 8073 6.7 (DR crossing)",
    cls=4,
    rows=["CLOSING:DR"],
    needs=["ut"],
)
async def crossing(s: Session) -> None:
    """The IUT releases; the tester answers its DR with a DR of its own (as if
    both had released at once): the IUT's release ends, its DR is not
    retransmitted (a DC for the tester's DR is allowed)."""
    c = await _open(s)
    await c.send_tsdu(UT_CLOSE)
    await s.expect(DR, fields={"dst_ref": s.our_ref}, ignore=(AK,))
    await s.send(c.dr())
    await s.expect_silence(ignore=(DC,), label="the DRs crossed")


@case(
    "c4.rel.er-answer",
    title="An ER answering the IUT's DR ends its release",
    group=G,
    clause="ISO 8073 6.7, 6.22",
    cls=4,
    rows=["CLOSING:ER"],
    needs=["ut"],
)
async def er_answer(s: Session) -> None:
    """The tester answers the IUT's DR with an ER: the IUT stops retransmitting
    its DR."""
    c = await _open(s)
    await c.send_tsdu(UT_CLOSE)
    await s.expect(DR, fields={"dst_ref": s.our_ref}, ignore=(AK,))
    await s.send(ER(c.peer_ref, 0))
    await s.expect_silence(label="the ER ended the release")


@case(
    "c4.rel.dr-unknown-reference",
    title="A DR for a reference the IUT does not have is answered with DC",
    group=G,
    clause="ISO 8073 6.9 (DR for an unknown reference)",
    cls=4,
)
async def dr_unknown(s: Session) -> None:
    """The tester sends a DR for a transport reference no connection has: the
    IUT answers with a DC (SRC-REF the DR's DST-REF, DST-REF ours)."""
    await s.send(DR(0x7E57, s.our_ref, 128), checksum=True)
    dc = await s.wait_for(
        Pattern(DC, fields={"dst_ref": s.our_ref}, checksum=None), s.settings.response_time
    )
    if dc is None:
        s.pics("behaviour", "DR for an unknown reference", "ignored")
        s.fail("no DC for a DR to an unknown reference", expected=f"DC dst_ref=0x{s.our_ref:04x}")
    s.pics("behaviour", "DR for an unknown reference", "DC")


@case(
    "c4.rel.dr-zero-source",
    title="A DR for an unknown reference with SRC-REF 0 is not answered",
    group=G,
    clause="ISO 8073 6.9 (no DC to reference 0)",
    cls=4,
)
async def dr_zero_source(s: Session) -> None:
    """A DR for an unknown reference whose SRC-REF is 0 has nobody to confirm
    to: the IUT sends nothing."""
    await s.send(DR(0x7E58, 0, 128), checksum=True)
    await s.expect_silence()


@case(
    "c4.rel.reference-frozen",
    title="A released reference is not given to the next connection at once",
    group=G,
    clause="ISO 8073 6.18 (frozen references)",
    cls=4,
    rows=["REFWAIT:L"],
)
async def reference_frozen(s: Session) -> None:
    """After a release the IUT keeps its reference frozen: ten connections opened
    at once afterwards all get other references. (With L known, the case
    waits it out: the reference is then free again.)"""
    c = await _open(s)
    frozen = c.peer_ref
    await c.release()
    refs = []
    for i in range(10):
        cr = cr4(s, src_ref=(s.our_ref + 1 + i) % 0xFFFF or 1)
        await s.send(cr, checksum=True)
        cc: CC = await s.expect(
            CC, fields={"dst_ref": cr.src_ref, "src_ref": NONZERO}, checksum=True, ignore=(DC,)
        )
        refs.append(cc.src_ref)
        await s.send(DR(cc.src_ref, cr.src_ref, 128), checksum=True)
    if frozen in refs:
        s.fail(
            f"reference 0x{frozen:04x} reused while it should be frozen",
            expected="references other than the released one",
            observed=[f"0x{r:04x}" for r in refs],
        )
    freeze = s.settings.timers.freeze
    if freeze is not None:
        await s.sleep(freeze + s.tol(freeze))
        s.note(f"waited L = {freeze:g} s")
    s.outcome = f"0x{frozen:04x} not among {len(refs)} new references"
