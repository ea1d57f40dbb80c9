"""Class 0 over TCP (RFC 1006): CR/CC parameters, TPDU size, DT segmentation and EOT,
DR and ER, invalid TPKTs and TPDUs, the IUT's CR wait."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ...wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT0,
    ER,
    AlternativeClasses,
    UnknownParam,
    encode,
    encode_tpkt,
)
from ..apps import UT_ABORT, UT_CLOSE, UT_IGNORE, UT_REJECT, pattern
from ..model import Group
from ..peer0 import C0, cc0_for, cr0
from ..registry import case
from ..session import Pattern, Session
from .c4_timers import again
from .common import dr_reason

E = Group.ESTABLISHMENT
D = Group.DATA
R = Group.RELEASE
X = Group.ERRORS
V = Group.INVALID
T = Group.TIMERS


async def _open(s: Session, **cr_kw: object) -> C0:
    async with s.preamble():
        return await C0.open(s, cr0(s, **cr_kw))  # type: ignore[arg-type]


async def _refused_or_closed(s: Session, what: str) -> str:
    """The IUT answers an invalid input with ER or DR and/or closes the TCP
    connection; anything else fails. Returns what it did."""
    got = await s.expect_close(allow=(ER, DR), label=what)
    return _did(got, closed=True)


def _did(got: Sequence[object], *, closed: bool) -> str:
    done = " + ".join(
        f"ER cause {t.cause}" if isinstance(t, ER) else f"DR {dr_reason(t.reason)}"  # type: ignore[attr-defined]
        for t in got
    )
    if closed:
        return (done + " + " if done else "") + "TCP close"
    return done


async def _refused_or_ignored(s: Session, c: C0 | None, what: str) -> str:
    """A protocol error (ISO 8073 6.22): the IUT answers with ER or DR and/or closes
    the connection, or ignores the TPDU -- then the connection still works (a
    request is answered; a CR, when none was taken yet). A reply to the invalid
    TPDU itself fails. Returns what the IUT did."""
    seen: list[object] = []
    deadline = trio.current_time() + s.settings.response_time
    while True:
        item = await s.next(deadline)
        if item is None:
            break
        if item.kind in ("eof", "reset"):
            return _did(seen, closed=True)
        if isinstance(item.tpdu, (ER, DR)):
            seen.append(item.tpdu)
            continue
        s.fail(
            f"{item.summary()} {what}",
            expected="ER, DR, the TCP close, or nothing",
            observed=[item.summary()],
        )
    if seen:
        return _did(seen, closed=False)
    if c is None:
        await s.send(cr0(s))
        await s.expect(CC, fields={"dst_ref": s.our_ref}, label="a CR still answered")
    elif s.app.replies:
        await c.exchange(s.app.request())
    return "ignored"


@case(
    "c0.est.cr-cc",
    title="A class 0 CR is answered with a class 0 CC; data then flows",
    group=E,
    clause="ISO 8073 6.5, 8 (class 0), 13.3, 13.4; RFC 1006 5",
    cls=0,
)
async def cr_cc(s: Session) -> None:
    """The tester's CR (class 0, TSAPs, TPDU size 2048) gets a CC of class 0
    addressed to the CR's reference, no class options, a TPDU size not above
    2048; the application then answers a request."""
    cr = cr0(s)
    await s.send(cr)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 0, "options": 0})
    if (cc.tpdu_size or 128) > 2048:
        s.fail(f"TPDU size {cc.tpdu_size} chosen", expected="<= 2048", observed=[repr(cc)])
    s.pics("classes", "class 0 (responder)", True)
    s.pics("parameters", "TPDU size chosen for 2048 proposed", cc.tpdu_size or "absent (128)")
    s.pics("parameters", "parameters in CC", " ".join(f"0x{p.code:02X}" for p in cc.params))
    s.pics("parameters", "called TSAP echoed in CC", cc.called_tsap == cr.called_tsap)
    s.pics("parameters", "calling TSAP echoed in CC", cc.calling_tsap == cr.calling_tsap)
    s.pics("behaviour", "SRC-REF of the CC", f"0x{cc.src_ref:04x}")
    c = C0(s, cc.src_ref, tpdu_size=cc.tpdu_size or 128, cr=cr, cc=cc)
    if s.app.replies:
        await c.exchange(s.app.request())
    s.outcome = f"CC size {cc.tpdu_size or 128}"
    async with s.postamble():
        await c.release()


@case(
    "c0.est.size-absent",
    title="A CR without TPDU size gets a CC of 128 at most, and DTs that fit",
    group=E,
    clause="ISO 8073 13.3.4 (default TPDU size 128), 8",
    cls=0,
)
async def size_absent(s: Session) -> None:
    """Without the TPDU size parameter the size is 128: the CC chooses no more,
    and the IUT's DTs (the reply) fit 128 octets."""
    c = await _open(s, size=None)
    assert c.cc is not None
    s.pics("parameters", "TPDU size chosen for none proposed", c.cc.tpdu_size or "absent (128)")
    if c.tpdu_size > 128:
        s.fail(f"TPDU size {c.tpdu_size} chosen, none proposed", expected="<= 128")
    if s.app.replies:
        await c.exchange(s.app.request(300 if s.app.echoes else 0))
    async with s.postamble():
        await c.release()


@case(
    "c0.est.size-128",
    title="A CR proposing 128 gets a CC choosing 128; a longer reply comes in 128-octet DTs",
    group=E,
    clause="ISO 8073 6.5 (negotiation), 13.3.4, 6.3",
    cls=0,
)
async def size_128(s: Session) -> None:
    """The tester proposes TPDU size 128: the CC chooses 128 (or leaves the
    parameter out); the IUT's DTs then fit 128 octets, EOT on the last."""
    c = await _open(s, size=128)
    if c.tpdu_size != 128:
        s.fail(f"TPDU size {c.tpdu_size} chosen, 128 proposed", expected="128")
    if s.app.replies:
        await c.exchange(s.app.request(300 if s.app.echoes else 0))
    async with s.postamble():
        await c.release()


@case(
    "c0.est.size-8192",
    title="A CR proposing 8192 (beyond class 0) gets a CC of 2048 at most",
    group=E,
    clause="ISO 8073 8, 13.3.4 (class 0: at most 2048)",
    cls=0,
)
async def size_8192(s: Session) -> None:
    """Class 0 TPDUs are at most 2048 octets: a CR proposing 8192 is answered
    with a CC of at most 2048 (or refused with a DR)."""
    cr = cr0(s, size=8192)
    await s.send(cr)
    got = await s.expect(CC, DR, fields={"dst_ref": s.our_ref})
    if isinstance(got, DR):
        s.pics("parameters", "TPDU size chosen for 8192 proposed", f"refused: DR {got.reason}")
        return
    s.pics("parameters", "TPDU size chosen for 8192 proposed", got.tpdu_size or 128)
    if (got.tpdu_size or 128) > 2048:
        s.fail(
            f"TPDU size {got.tpdu_size} chosen in class 0", expected="<= 2048", observed=[repr(got)]
        )
    async with s.postamble():
        await s.close()


@case(
    "c0.est.class-4-alternative-0",
    title="A CR of class 4 offering class 0 as alternative gets a class 0 CC",
    group=E,
    clause="ISO 8073 6.5 (class negotiation); RFC 1006 5 (class 0 only)",
    cls=0,
)
async def class4_alt0(s: Session) -> None:
    """The tester prefers class 4, with class 0 as alternative: over RFC 1006
    the IUT chooses class 0 (or refuses)."""
    cr = cr0(s, protocol_class=4, extra=[AlternativeClasses((0,))])
    await s.send(cr)
    got = await s.expect(CC, DR, fields={"dst_ref": s.our_ref})
    if isinstance(got, CC) and got.protocol_class != 0:
        s.fail(
            f"CC of class {got.protocol_class} over TCP", expected="class 0", observed=[repr(got)]
        )
    s.pics(
        "classes",
        "class 4 with alternative 0",
        "class 0" if isinstance(got, CC) else f"refused: DR {got.reason}",
    )
    async with s.postamble():
        await s.close()


@case(
    "c0.est.class-4-only",
    title="A CR of class 4 only is refused (DR or close), never confirmed in class 4",
    group=E,
    clause="ISO 8073 6.5, 6.6; RFC 1006 5 (class 0 only)",
    cls=0,
)
async def class4_only(s: Session) -> None:
    """The tester proposes class 4 with no alternative over TCP: the IUT refuses
    (DR, or closes the connection), or confirms in class 0 (noted); a CC of
    another class fails."""
    await s.send(cr0(s, protocol_class=4))
    item = await s.next(trio.current_time() + s.settings.response_time)
    if item is None:
        s.fail("no answer to the CR", expected="DR, CC or the TCP close")
    t = item.tpdu
    if isinstance(t, CC):
        if t.protocol_class != 0:
            s.fail(
                f"CC of class {t.protocol_class} over TCP",
                expected="DR, or class 0",
                observed=[item.summary()],
            )
        s.note("confirmed in class 0, which the CR did not offer")
        s.pics("classes", "CR of class 4 only", "CC of class 0")
    elif isinstance(t, DR):
        s.pics("classes", "CR of class 4 only", f"DR {dr_reason(t.reason)}")
    elif item.kind in ("eof", "reset"):
        s.pics("classes", "CR of class 4 only", "TCP close")
    else:
        s.fail(
            f"unexpected answer {item.summary()}",
            expected="DR, CC or the TCP close",
            observed=[item.summary()],
        )
    async with s.postamble():
        await s.close()


@case(
    "c0.est.unknown-parameter",
    title="An unknown parameter in the CR is ignored",
    group=E,
    clause="ISO 8073 13.2.3",
    cls=0,
)
async def unknown_parameter(s: Session) -> None:
    """A CR with a parameter of undefined code 0xC9 is answered with a CC."""
    await s.send(cr0(s, extra=[UnknownParam(0xC9, b"\x00\x01")]))
    await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 0})
    async with s.postamble():
        await s.close()


@case(
    "c0.est.long-tsaps",
    title="TSAP-IDs of 32 octets are accepted",
    group=E,
    clause="ISO 8073 13.3.4 (TSAP-ID)",
    cls=0,
)
async def long_tsaps(s: Session) -> None:
    """Calling and called TSAP-IDs of 32 octets each: the CC comes (it may echo
    them); the PICS says whether it did."""
    calling, called = b"C" * 32, s.settings.tsap or b"D" * 32
    await s.send(cr0(s, calling=calling, called=called))
    got = await s.expect(CC, DR, fields={"dst_ref": s.our_ref})
    if isinstance(got, DR):
        s.pics("parameters", "32-octet TSAP-IDs", f"refused: DR {got.reason}")
        s.outcome = f"refused: DR {dr_reason(got.reason)}"
        return
    s.pics(
        "parameters", "32-octet TSAP-IDs", "echoed" if got.calling_tsap == calling else "accepted"
    )
    async with s.postamble():
        await s.close()


@case(
    "c0.est.ut-reject",
    title="A CR the IUT's user rejects gets a DR, then the TCP close",
    group=E,
    clause="ISO 8073 6.6 (refusal), 8; RFC 1006 5",
    cls=0,
    needs=["ut"],
)
async def ut_reject(s: Session) -> None:
    """The upper tester rejects the CR (calling TSAP ``UT:REJECT``): a DR with
    reason 128, then the IUT closes the TCP connection."""
    await s.send(cr0(s, calling=UT_REJECT))
    got = await s.expect_close(allow=(DR,), timeout=s.settings.response_time * 2)
    if not got or not isinstance(got[0], DR) or got[0].reason != 128:
        s.fail(
            "no DR of reason 128 before the close",
            expected="DR reason 128, TCP close",
            observed=[repr(t) for t in got],
        )


@case(
    "c0.data.request-reply",
    title="Two requests on one connection get two replies, each whole",
    group=D,
    clause="ISO 8073 8, 13.7 (EOT); RFC 1006 6",
    cls=0,
    needs=["reply"],
)
async def request_reply(s: Session) -> None:
    """Two requests in a row (DT with EOT each): two replies, each a whole TSDU."""
    c = await _open(s)
    await c.exchange(s.app.request())
    await c.exchange(s.app.request(seed=3))
    async with s.postamble():
        await c.release()


@case(
    "c0.data.segmented",
    title="A TSDU in three DTs (EOT on the last) is reassembled",
    group=D,
    clause="ISO 8073 6.3 (segmenting and reassembling), 13.7",
    cls=0,
    needs=["reply"],
)
async def segmented(s: Session) -> None:
    """The tester sends its request in three DTs, EOT on the third only: the
    IUT's application gets it whole (its reply is the one to the whole)."""
    c = await _open(s)
    request = s.app.request()
    size = -(-len(request) // 3)
    await c.exchange(request, size=size)
    async with s.postamble():
        await c.release()


@case(
    "c0.data.segmented-reply",
    title="A reply longer than the TPDU size comes in full DTs, EOT on the last",
    group=D,
    clause="ISO 8073 6.3, 13.7",
    cls=0,
    needs=["echo"],
)
async def segmented_reply(s: Session) -> None:
    """With TPDU size 512, a 2000-octet TSDU is echoed in DTs of at most 512
    octets, EOT on the last only."""
    c = await _open(s, size=512)
    await c.exchange(s.app.request(2000))
    if any(dt.eot for dt in c.received[:-1]):
        s.fail("EOT before the last DT", expected="EOT on the last DT only")
    s.outcome = f"{len(c.received)} DTs"
    async with s.postamble():
        await c.release()


@case(
    "c0.data.tpkts-in-one-segment",
    title="Two TPKTs in one TCP segment are both taken",
    group=D,
    clause="RFC 1006 6 (TPKT framing)",
    cls=0,
    needs=["reply"],
)
async def tpkts_in_one(s: Session) -> None:
    """Two requests, each a whole TPKT, written at once: two replies."""
    c = await _open(s)
    one, two = s.app.request(), s.app.request(seed=5)
    await s.send(encode_tpkt(_dt(one)) + encode_tpkt(_dt(two)))
    for request in (one, two):
        reply = await c.receive_tsdu()
        problem = s.app.reply_problem(request, reply)
        if problem:
            s.fail(problem, expected="the reply to each request")
    async with s.postamble():
        await c.release()


def _dt(data: bytes, eot: bool = True) -> bytes:
    return encode(DT0(0, eot, data))


@case(
    "c0.data.tpkt-split",
    title="A TPKT split across TCP segments (inside its header) is reassembled",
    group=D,
    clause="RFC 1006 6 (TPKT over a byte stream)",
    cls=0,
    needs=["reply"],
)
async def tpkt_split(s: Session) -> None:
    """The tester writes one TPKT in three pieces (2 octets of its header, the
    rest of the header and a part of the DT, the remainder): the IUT answers."""
    c = await _open(s)
    request = s.app.request()
    octets = encode_tpkt(_dt(request))
    for piece in (octets[:2], octets[2:6], octets[6:]):
        await s.send(piece)
        await trio.sleep(0.02)
    reply = await c.receive_tsdu()
    problem = s.app.reply_problem(request, reply)
    if problem:
        s.fail(problem, expected="the reply")
    async with s.postamble():
        await c.release()


@case(
    "c0.data.dt-too-long",
    title="A DT longer than the TPDU size is refused (ER or DR, and the close)",
    group=D,
    clause="ISO 8073 6.22, 13.7 (DT within the TPDU size), 8",
    cls=0,
)
async def dt_too_long(s: Session) -> None:
    """With TPDU size 128 agreed, the tester sends a DT of 400 octets (a request
    padded): a protocol error; the IUT answers with an ER (or DR) and/or
    closes the connection, or ignores it -- it does not take it."""
    c = await _open(s, size=128)
    if c.tpdu_size != 128:
        s.inconclusive(f"TPDU size {c.tpdu_size} chosen, not 128")
    request = s.app.request(397)
    await s.send(DT0(0, True, request + pattern(397 - len(request))))
    did = await _refused_or_ignored(s, c, "after a DT over the TPDU size")
    s.pics("behaviour", "class 0 DT over the TPDU size", did)
    s.outcome = did


@case(
    "c0.rel.dr",
    title="The tester's DR ends the connection: no DC (class 0), the TCP close",
    group=R,
    clause="ISO 8073 6.7, 8 (class 0: no DC); RFC 1006 5",
    cls=0,
)
async def release_dr(s: Session) -> None:
    """The tester sends a DR on an open connection: the IUT closes the TCP
    connection and sends no DC (class 0 has none)."""
    c = await _open(s)
    await s.send(DR(c.peer_ref, s.our_ref, 128))
    got = await s.expect_close(allow=(DC,))
    if got:
        s.fail("a DC in class 0", expected="the TCP close, no DC", observed=[repr(t) for t in got])


@case(
    "c0.rel.tcp-close",
    title="The tester's TCP close is a normal release: the IUT closes too",
    group=R,
    clause="RFC 1006 5 (release by closing the TCP connection)",
    cls=0,
)
async def release_tcp(s: Session) -> None:
    """The tester closes its side of the TCP connection (FIN): the IUT closes
    its side, without a DR."""
    await _open(s)
    await s.half_close()
    got = await s.expect_close(allow=(DR,))
    if got:
        s.note(f"a DR before the close: {got[0]!r}")


@case(
    "c0.rel.iut-aborts",
    title="The IUT's user disconnects: a DR (reason 128), then the TCP close",
    group=R,
    clause="ISO 8073 6.7, 8; RFC 1006 5",
    cls=0,
    needs=["ut"],
)
async def iut_aborts(s: Session) -> None:
    """The upper tester is told to disconnect (``UT:ABORT``): a DR of reason 128,
    then the TCP close."""
    c = await _open(s)
    await c.send_tsdu(UT_ABORT)
    got = await s.expect_close(allow=(DR,))
    if not got or got[0].reason != 128:  # type: ignore[union-attr]
        s.fail(
            "no DR of reason 128 before the close",
            expected="DR reason 128",
            observed=[repr(t) for t in got],
        )


@case(
    "c0.rel.iut-closes",
    title="The IUT's user releases normally: the TCP close",
    group=R,
    clause="RFC 1006 5",
    cls=0,
    needs=["ut"],
)
async def iut_closes(s: Session) -> None:
    """The upper tester is told to release (``UT:CLOSE``): the IUT closes the TCP
    connection (a DR before it is allowed)."""
    c = await _open(s)
    await c.send_tsdu(UT_CLOSE)
    await s.expect_close(allow=(DR,))


@case(
    "c0.err.er",
    title="An ER on an open connection ends it",
    group=X,
    clause="ISO 8073 6.22, 13.12, 8",
    cls=0,
)
async def er(s: Session) -> None:
    """The tester sends an ER: the IUT closes the connection (a DR first is
    allowed)."""
    c = await _open(s)
    await s.send(ER(c.peer_ref, 0))
    did = await _refused_or_closed(s, "after an ER")
    s.outcome = did


@case(
    "c0.err.class4-tpdu",
    title="A class 4 TPDU (AK) on a class 0 connection is refused",
    group=X,
    clause="ISO 8073 8 (TPDUs of class 0), 6.22, 13.12 (ER cause 2)",
    cls=0,
)
async def class4_tpdu(s: Session) -> None:
    """An AK does not exist in class 0: the IUT answers with an ER (cause 2, invalid
    TPDU type, fits) and/or closes the connection, or ignores it (the
    connection then still works)."""
    c = await _open(s)
    await s.send(AK(c.peer_ref, 0, 1))
    did = await _refused_or_ignored(s, c, "after an AK in class 0")
    s.pics("behaviour", "class 4 TPDU in class 0", did)
    s.outcome = did


@case(
    "c0.err.cc-in-open",
    title="A CC on an open connection is refused",
    group=X,
    clause="ISO 8073 8, 6.22",
    cls=0,
)
async def cc_in_open(s: Session) -> None:
    """The tester sends a CC on an open connection: the IUT answers with an ER
    and/or closes the connection, or ignores it."""
    c = await _open(s)
    await s.send(CC(c.peer_ref, s.our_ref, protocol_class=0))
    s.outcome = await _refused_or_ignored(s, c, "after a CC in OPEN")


@case(
    "c0.inv.dt-before-cr",
    title="A DT before any CR is refused: no CC ever",
    group=V,
    clause="ISO 8073 8, 6.5; RFC 1006 5 (the CR comes first)",
    cls=0,
)
async def dt_before_cr(s: Session) -> None:
    """The first TPDU on a new TCP connection is a DT: the IUT answers with an ER
    and/or closes the connection, or ignores it (a CR is then still answered);
    it never takes the data."""
    await s.send(DT0(0, True, b"too early"))
    did = await _refused_or_ignored(s, None, "after a DT before the CR")
    s.pics("behaviour", "DT before the CR", did)
    s.outcome = did


@case(
    "c0.inv.tpkt-version",
    title="A TPKT of version 4 ends the connection",
    group=V,
    clause="RFC 1006 6 (TPKT version 3)",
    cls=0,
)
async def tpkt_version(s: Session) -> None:
    """The tester's CR comes in a TPKT whose version is 4: the IUT closes the
    connection (an ER or DR first is allowed), never a CC."""
    raw = bytearray(encode_tpkt(_cr_bytes(s)))
    raw[0] = 4
    await s.send(bytes(raw))
    s.outcome = await _refused_or_closed(s, "after a TPKT of version 4")


def _cr_bytes(s: Session) -> bytes:
    return encode(cr0(s))


@case(
    "c0.inv.tpkt-short",
    title="A TPKT whose length is below 7 ends the connection",
    group=V,
    clause="RFC 1006 6 (the length covers the header and a TPDU)",
    cls=0,
)
async def tpkt_short(s: Session) -> None:
    """A TPKT header giving length 5: the IUT closes the connection."""
    await s.send(b"\x03\x00\x00\x05\x02")
    s.outcome = await _refused_or_closed(s, "after a TPKT of length 5")


@case(
    "c0.inv.li-too-long",
    title="A TPDU whose LI runs past its TPKT is refused",
    group=V,
    clause="ISO 8073 13.2.1 (length indicator), 6.22",
    cls=0,
)
async def li_too_long(s: Session) -> None:
    """On an open connection, a TPKT holding a TPDU whose LI says 30 octets but
    has 2: the IUT answers with an ER and/or closes the connection, or ignores
    it (the connection then still works)."""
    c = await _open(s)
    await s.send(encode_tpkt(b"\x1e\xf0\x80"))
    did = await _refused_or_ignored(s, c, "after an LI past the TPKT")
    s.pics("behaviour", "class 0 TPDU with an LI past its TPKT", did)
    s.outcome = did


@case(
    "c0.inv.cr-extended",
    title="A class 0 CR with the extended format option is not confirmed with it",
    group=V,
    clause="ISO 8073 8, 13.3.3 (class 0 has no options)",
    cls=0,
)
async def cr_extended(s: Session) -> None:
    """A CR of class 0 with the extended-format bit set: the IUT refuses it or
    confirms without the option (class 0 has none)."""
    await s.send(cr0(s, options=0x02))
    item = await s.next(trio.current_time() + s.settings.response_time)
    if item is None:
        s.fail("no answer", expected="CC without options, DR, ER or the close")
    t = item.tpdu
    if isinstance(t, CC) and t.options:
        s.fail("the CC selects class 0 options", expected="class options 0", observed=[repr(t)])
    s.pics("behaviour", "class 0 CR with the extended option", item.summary().split(" ")[0])
    async with s.postamble():
        await s.close()


@case(
    "c0.tim.cr-wait",
    title="A TCP connection on which no CR comes is closed by the IUT",
    group=T,
    clause="RFC 1006 5; ISO 8073 8 (the IUT's wait for the CR)",
    cls=0,
)
async def cr_wait(s: Session) -> None:
    """The tester opens a TCP connection and sends nothing: the IUT closes it after
    its wait for a CR (measured, or checked when known)."""
    await s.connect()
    start = trio.current_time()
    known = s.settings.timers.cr_timeout
    wait = (known + s.tol(known)) if known is not None else s.settings.timer_limit
    item = await s.next(start + wait)
    if item is None:
        if known is not None:
            s.fail(
                f"the connection stayed open {wait:.3f} s without a CR",
                expected=f"the TCP close after {known:g} s",
            )
        s.inconclusive(f"still open after {wait:g} s (the timer limit)")
    if item.kind not in ("eof", "reset"):
        s.fail(f"unexpected {item.summary()}", expected="the TCP close")
    took = item.at - start
    s.measure("CR wait", took)
    s.pics("timers", "wait for the CR", f"{took * 1000:.0f} ms")
    if known is not None and took < known - s.tol(known):
        s.fail(f"closed after {took:.3f} s", expected=f"after {known:g} s ± {s.tol(known):.3f}")


@case(
    "c0.tim.confirm-timeout",
    title="A CR the IUT's user never answers is refused after its confirm timeout",
    group=T,
    clause="ISO 8073 6.6 (refusal)",
    cls=0,
    needs=["ut"],
)
async def confirm_timeout(s: Session) -> None:
    """The upper tester neither confirms nor rejects (calling TSAP ``UT:IGNORE``):
    a DR after the IUT's confirm timeout, then the TCP close."""
    await s.send(cr0(s, calling=UT_IGNORE))
    await again(
        s,
        Pattern(DR, fields={"dst_ref": s.our_ref}),
        since=s.last_sent,
        known=s.settings.timers.confirm_timeout,
        name="confirm timeout",
    )
    await s.expect_close()


# ---------------------------------------------------------------- the IUT initiates


@case(
    "c0.rsp.cr",
    title="The IUT's class 0 CR is well formed; after our CC it sends data",
    group=E,
    clause="ISO 8073 6.5, 8, 13.3; RFC 1006 5, 6",
    cls=0,
    role="responder",
)
async def rsp_cr(s: Session) -> None:
    """The IUT connects: its first TPKT (version 3) holds a CR of class 0 (or
    offering class 0), DST-REF 0, no class options, a TPDU size not above
    2048; after the tester's CC it may send DTs that fit the size chosen."""
    cr: CR = await s.expect(CR, fields={"dst_ref": 0}, timeout=s.settings.connect_wait)
    alternatives = cr.param(AlternativeClasses)
    if cr.protocol_class != 0 and 0 not in (alternatives.classes if alternatives else ()):
        s.fail(
            f"CR of class {cr.protocol_class} over TCP without class 0",
            expected="class 0",
            observed=[repr(cr)],
        )
    if (cr.tpdu_size or 128) > 2048 and cr.protocol_class == 0:
        s.fail(f"TPDU size {cr.tpdu_size} proposed in class 0", expected="<= 2048")
    s.pics("classes", "class 0 (initiator)", True)
    s.pics("parameters", "TPDU size proposed (class 0)", cr.tpdu_size or "absent (128)")
    s.pics(
        "parameters", "parameters in CR (class 0)", " ".join(f"0x{p.code:02X}" for p in cr.params)
    )
    cc = cc0_for(s, cr, size=128)
    await s.send(cc)
    c = C0(s, cr.src_ref, tpdu_size=128, cr=cr, cc=cc)
    if s.settings.upper_tester:
        hello = await c.receive_tsdu()
        s.outcome = f"CR ok; first TSDU {hello[:16]!r}"
    async with s.postamble():
        await c.release()


@case(
    "c0.rsp.refused",
    title="A CR refused with DR: the IUT closes the TCP connection",
    group=E,
    clause="ISO 8073 6.6, 8; RFC 1006 5",
    cls=0,
    role="responder",
)
async def rsp_refused(s: Session) -> None:
    """The tester refuses the IUT's CR with a DR (reason 2): the IUT sends nothing
    more on that connection and closes it (the tester's close may come first)."""
    cr: CR = await s.expect(CR, fields={"dst_ref": 0}, timeout=s.settings.connect_wait)
    await s.send(DR(cr.src_ref, 0, 2))
    item = await s.next(trio.current_time() + s.settings.response_time)
    if item is not None and item.kind not in ("eof", "reset"):
        s.fail(
            f"{item.summary()} after the refusal",
            expected="nothing, or the TCP close",
            observed=[item.summary()],
        )


@case(
    "c0.rsp.iut-releases",
    title="The IUT (client) sends its data, then releases by closing TCP",
    group=R,
    clause="RFC 1006 5; ISO 8073 8",
    cls=0,
    role="responder",
    needs=["ut"],
)
async def rsp_releases(s: Session) -> None:
    """The upper tester's client sends ``UT:HELLO``; the tester's TSDU makes it
    release: the TCP close."""
    cr: CR = await s.expect(CR, fields={"dst_ref": 0}, timeout=s.settings.connect_wait)
    await s.send(cc0_for(s, cr))
    c = C0(s, cr.src_ref, tpdu_size=min(cr.tpdu_size or 128, 2048), cr=cr)
    await c.receive_tsdu()
    await c.send_tsdu(b"bye")
    await s.expect_close(allow=(DR,))
