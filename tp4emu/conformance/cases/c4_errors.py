"""Class 4, error handling and invalid input: ER, checksums, bad TPDUs, unknown references."""

from __future__ import annotations

import trio

from ...wire import AK, CC, DR, DT, DT0, EA, ER, RJ, encode_one
from ...wire.checksum import checksum_octets
from ..apps import UT_IGNORE, UT_REJECT
from ..match import NONZERO
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session
from .common import dr_reason

E = Group.ERRORS
V = Group.INVALID


async def _open(s: Session) -> C4:
    async with s.preamble():
        return await C4.open(s)


async def _still_works(s: Session, c: C4) -> None:
    """The connection still carries data: a DT is acknowledged."""
    await s.send(c.dt(s.app.request()))
    await c.collect(reply=s.app.replies, acked=True)


def _with_checksum(raw: bytes, position: int) -> bytes:
    buf = bytearray(raw)
    buf[position : position + 2] = b"\x00\x00"
    buf[position : position + 2] = checksum_octets(buf, position)
    return bytes(buf)


@case(
    "c4.err.er-in-open",
    title="An ER on an open connection makes the IUT release it",
    group=E,
    clause="ISO 8073 6.22 (treatment of protocol errors), 13.12",
    cls=4,
    rows=["OPEN:ER"],
)
async def er_in_open(s: Session) -> None:
    """The tester sends an ER (cause 2, invalid TPDU type) on an open
    connection: the IUT releases it with a DR; the tester's DC ends it."""
    c = await _open(s)
    await s.send(ER(c.peer_ref, 2))
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(AK,))
    s.pics("behaviour", "DR reason after an ER", dr_reason(dr.reason))
    await s.send(c.dc())
    s.outcome = f"DR {dr_reason(dr.reason)}"


@case(
    "c4.err.unknown-type",
    title="A TPDU of an unknown type on an open connection: ER, or discarded",
    group=E,
    clause="ISO 8073 6.22, 13.12 (ER cause 2: invalid TPDU type)",
    cls=4,
)
async def unknown_type(s: Session) -> None:
    """The tester sends a TPDU of type code 0x4 (none) to the IUT's reference,
    with a valid checksum: the IUT answers with an ER (cause 2) or discards
    it; either way the connection still carries data."""
    c = await _open(s)
    raw = bytes([7, 0x40]) + c.peer_ref.to_bytes(2, "big") + b"\xc3\x02\x00\x00"
    raw = _with_checksum(raw, 6)
    await s.send(raw)
    got = await s.wait_for(Pattern(ER, DR, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if isinstance(got, ER):
        s.pics("behaviour", "unknown TPDU type on an open connection", f"ER cause {got.cause}")
        if got.cause != 2:
            s.note(f"ER cause {got.cause}, not 2 (invalid TPDU type)")
    elif isinstance(got, DR):
        s.pics("behaviour", "unknown TPDU type on an open connection", f"DR {got.reason}")
        await s.send(c.dc())
        s.outcome = "released"
        return
    else:
        s.pics("behaviour", "unknown TPDU type on an open connection", "discarded")
    await _still_works(s, c)
    async with s.postamble():
        await c.release()


@case(
    "c4.err.missing-checksum",
    title="A DT without the checksum the connection uses is discarded",
    group=E,
    clause="ISO 8073 6.17 (checksum)",
    cls=4,
)
async def missing_checksum(s: Session) -> None:
    """On a connection using the checksum, a DT without one is discarded: no AK;
    the same DT with its checksum then goes through."""
    c = await _open(s)
    if not c.checksum:
        s.inconclusive("the connection does not use the checksum")
    dt = c.dt(s.app.request())
    await s.send(dt, checksum=False)
    await s.expect_silence(label="the DT had no checksum")
    await s.send(dt)
    await c.collect(reply=s.app.replies, acked=True)
    async with s.postamble():
        await c.release()


@case(
    "c4.err.dt-unknown-reference",
    title="A DT for a reference the IUT does not have is discarded",
    group=E,
    clause="ISO 8073 6.9 (association of TPDUs with connections)",
    cls=4,
)
async def dt_unknown(s: Session) -> None:
    """A DT addressed to a reference no connection has: the IUT sends nothing
    (no AK, no ER: nothing to associate it with)."""
    await s.send(DT(0x7E59, 0, True, b"nobody"), checksum=True)
    await s.expect_silence()


@case(
    "c4.err.congestion",
    title="A burst of CRs is answered CC or DR each; the IUT then still accepts",
    group=E,
    clause="ISO 8073 6.5, 6.6 (DR reason 1: congestion at TSAP)",
    cls=4,
    maybe_rows=["CONFIRMING:evict", "AKWAIT:evict", "CLOSING:evict"],
    # (driven when the IUT bounds its unanswered connections below the burst)
    time_limit=30.0,
)
async def congestion(s: Session) -> None:
    """Connections whose peer never answers (a CR refused by the upper tester
    and left without DC, a CC left without AK, then ``--flood`` CRs at once,
    which the upper tester leaves unanswered) may be refused or evicted (DR
    reason 1, congestion): each of the burst's CRs is answered with a CC or a
    DR, and afterwards a new connection is accepted: the IUT survived."""
    base = (s.our_ref + 0x100) % 0xFF00 + 1
    refs = []
    if s.settings.upper_tester:
        cr = cr4(s, src_ref=base, data=UT_REJECT)
        await s.send(cr, checksum=True)
        await s.expect(DR, fields={"dst_ref": base}, checksum=None)
    held = cr4(s, src_ref=base + 1)
    await s.send(held, checksum=True)
    await s.expect(CC, fields={"dst_ref": base + 1}, checksum=True)
    hold = UT_IGNORE if s.settings.upper_tester else b""
    burst = [cr4(s, src_ref=base + 2 + i, data=hold) for i in range(s.settings.flood)]
    await s.send(*burst, checksum=True)
    refs = [cr.src_ref for cr in burst]
    answered: dict[int, str] = {}
    deadline = trio.current_time() + s.settings.response_time * 2
    while len(answered) < len(refs):
        item = await s.next(deadline)
        if item is None:
            break
        t = item.tpdu
        if isinstance(t, (CC, DR)) and t.dst_ref in refs and t.dst_ref not in answered:
            answered[t.dst_ref] = type(t).__name__ + (f" {t.reason}" if isinstance(t, DR) else "")
    missing = [r for r in refs if r not in answered]
    if missing:
        s.fail(
            f"{len(missing)} of {len(refs)} CRs of the burst got no answer",
            expected="CC or DR for each CR",
            observed=sorted(set(answered.values())),
        )
    kinds = sorted(set(answered.values()))
    s.pics("behaviour", f"{len(refs)} CRs at once", ", ".join(kinds))
    fresh = cr4(s, src_ref=base + 2 + len(refs))
    await s.send(fresh, checksum=True)
    cc: CC = await s.expect(
        CC,
        fields={"dst_ref": fresh.src_ref, "src_ref": NONZERO},
        checksum=True,
        skip=True,
        label="a new connection afterwards",
    )
    await s.send(DR(cc.src_ref, fresh.src_ref, 128), checksum=True)
    s.outcome = f"answers: {', '.join(kinds)}; a new connection accepted"


# ------------------------------------------------------------------ invalid input


@case(
    "c4.inv.cr-without-checksum",
    title="A CR without checksum that does not propose its non-use is discarded",
    group=V,
    clause="ISO 8073 6.17 (checksum in the CR)",
    cls=4,
)
async def cr_without_checksum(s: Session) -> None:
    """Class 4's CR carries the checksum unless it proposes its non-use: one
    without is discarded (no CC, no DR)."""
    await s.send(cr4(s), checksum=False)
    await s.expect_silence()


@case(
    "c4.inv.cr-bad-checksum",
    title="A CR whose checksum is wrong is discarded",
    group=V,
    clause="ISO 8073 6.17",
    cls=4,
)
async def cr_bad_checksum(s: Session) -> None:
    """A CR whose checksum does not hold (one octet changed) is discarded."""
    raw = bytearray(encode_one(cr4(s), checksum=True))
    raw[5] ^= 0x04  # the SRC-REF changed after the checksum was computed
    await s.send(bytes(raw))
    await s.expect_silence()


@case(
    "c4.inv.cr-data-too-long",
    title="A CR with 33 octets of data is refused (DR) or discarded, never confirmed",
    group=V,
    clause="ISO 8073 13.3 (at most 32 octets), 6.22",
    cls=4,
)
async def cr_data_too_long(s: Session) -> None:
    """A CR carrying 33 octets of user data is invalid: the IUT refuses it with
    a DR (reason 138, header or parameter length invalid, fits) or discards it."""
    cr = cr4(s)
    raw = encode_one(cr, checksum=True) + b"x" * 33
    await s.send(_with_checksum(raw, 9))
    got = await s.wait_for(
        Pattern(CC, DR, fields={"dst_ref": s.our_ref}, checksum=None), s.settings.silence
    )
    if isinstance(got, CC):
        s.fail(
            "a CR with 33 octets of data was confirmed",
            expected="DR or nothing",
            observed=[repr(got)],
        )
    s.pics(
        "behaviour",
        "CR with 33 octets of data",
        f"DR {dr_reason(got.reason)}" if isinstance(got, DR) else "discarded",
    )


@case(
    "c4.inv.li-too-long",
    title="A TPDU whose LI runs past the datagram is discarded, the IUT unharmed",
    group=V,
    clause="ISO 8073 13.2.1 (length indicator)",
    cls=4,
)
async def li_too_long(s: Session) -> None:
    """A datagram whose LI says 40 octets of header but holds 10: discarded (a DR
    138 is allowed: it looks like a CR); a correct CR afterwards is answered."""
    raw = bytes([40]) + encode_one(cr4(s), checksum=True)[1:10]
    await s.send(raw)
    await s.expect_silence(ignore=(DR,))
    await _answers_a_cr(s)


async def _answers_a_cr(s: Session) -> None:
    cr = cr4(s)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(
        CC, fields={"dst_ref": s.our_ref}, checksum=True, skip=True, label="a CR is still answered"
    )
    await s.send(DR(cc.src_ref, s.our_ref, 128), checksum=True)


@case(
    "c4.inv.short-datagrams",
    title="Datagrams of 0 to 3 octets are discarded, the IUT unharmed",
    group=V,
    clause="ISO 8073 13.2 (TPDU structure)",
    cls=4,
)
async def short_datagrams(s: Session) -> None:
    """Four datagrams too short to be TPDUs (0, 1, 2 and 3 octets): the IUT
    sends nothing, then answers a correct CR."""
    await s.send(b"", b"\x01", b"\x01\xe0", b"\x02\xe0\x00")
    await s.expect_silence()
    await _answers_a_cr(s)


@case(
    "c4.inv.cr-zero-source",
    title="A CR with SRC-REF 0 is discarded or refused",
    group=V,
    clause="ISO 8073 13.3 (SRC-REF), 6.5",
    cls=4,
)
async def cr_zero_source(s: Session) -> None:
    """A CR whose source reference is 0 cannot be answered: the IUT discards it
    (or refuses it), never confirms."""
    await s.send(cr4(s, src_ref=0), checksum=True)
    got = await s.wait_for(Pattern(CC, fields={"dst_ref": 0}, checksum=None), s.settings.silence)
    if got is not None:
        s.fail("a CR with SRC-REF 0 was confirmed", expected="no CC", observed=[repr(got)])


@case(
    "c4.inv.class0-dt",
    title="A class 0 DT (no reference) over class 4 is discarded",
    group=V,
    clause="ISO 8073 13.7 (the class 0/1 DT has no DST-REF), 6.9",
    cls=4,
)
async def class0_dt(s: Session) -> None:
    """On an open class 4 connection the tester sends a class 0 DT (LI 2): it
    belongs to no connection and is discarded; the connection still works."""
    c = await _open(s)
    await s.send(DT0(0, True, b"class 0"))
    await s.expect_silence()
    await _still_works(s, c)
    async with s.postamble():
        await c.release()


@case(
    "c4.inv.rj",
    title="An RJ (classes 1 and 3) on a class 4 connection is not taken",
    group=V,
    clause="ISO 8073 13.11 (RJ: classes 1 and 3 only)",
    cls=4,
)
async def rj(s: Session) -> None:
    """The tester sends an RJ on a class 4 connection: the IUT ignores it (or
    answers with an ER); the connection still works."""
    c = await _open(s)
    await s.send(RJ(c.peer_ref, 0, 15))
    got = await s.wait_for(Pattern(ER, DR, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if isinstance(got, DR):
        s.pics("behaviour", "RJ on class 4", f"DR {dr_reason(got.reason)}")
        await s.send(c.dc())
        return
    s.pics("behaviour", "RJ on class 4", "ER" if got is not None else "ignored")
    await _still_works(s, c)
    async with s.postamble():
        await c.release()


@case(
    "c4.inv.ed-too-long",
    title="An ED of 17 octets is not acknowledged",
    group=V,
    clause="ISO 8073 13.8 (at most 16 octets of expedited data)",
    cls=4,
)
async def ed_too_long(s: Session) -> None:
    """An ED carrying 17 octets is invalid: no EA (an ER, cause 3, is allowed)."""
    c = await _open(s)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    head = bytes([8, 0x10]) + c.peer_ref.to_bytes(2, "big") + b"\x80" + b"\xc3\x02\x00\x00"
    await s.send(_with_checksum(head + b"x" * 17, 7))
    got = await s.wait_for(Pattern(EA, fields={"dst_ref": s.our_ref}), s.settings.silence)
    if got is not None:
        s.fail("EA for an ED of 17 octets", expected="no EA", observed=[repr(got)])
    async with s.postamble():
        await c.release()
