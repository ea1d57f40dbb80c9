"""Class 4, connection establishment: the IUT responds to the tester's CR."""

from __future__ import annotations

from ...wire import (
    AK,
    CC,
    DC,
    DR,
    EA,
    ED,
    ER,
    AlternativeClasses,
    UnknownParam,
)
from ..match import NONZERO
from ..model import Group
from ..peer4 import C4, cr4
from ..registry import case
from ..session import Pattern, Session
from .common import EXPEDITED, NON_USE, check_cc, dr_reason, pics_of_cc

G = Group.ESTABLISHMENT


@case(
    "c4.est.cr-cc",
    title="A CR is answered with a CC; our AK completes the handshake",
    group=G,
    clause="ISO 8073 6.5, 12 (three-way handshake), 13.3, 13.4",
    cls=4,
    rows=["CLOSED:CR", "CONFIRMING:confirm", "AKWAIT:AK"],
)
async def cr_cc(s: Session) -> None:
    """The tester sends a CR of class 4 (TPDU size 8192, expedited data, the
    acknowledgement time). The IUT answers with a CC of class 4 addressed to
    the CR's reference, with its own non-zero reference and a valid checksum,
    choosing within the proposal; after the tester's AK (the third message)
    it sends nothing more: no CC retransmission."""
    cr = cr4(s)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(
        CC,
        fields={"dst_ref": s.our_ref, "protocol_class": 4, "src_ref": NONZERO},
        checksum=True,
        label="the CC",
    )
    check_cc(s, cr, cc)
    pics_of_cc(s, cr, cc)
    c = C4.from_cc(s, cr, cc)
    await s.send(c.ak())
    await s.expect_silence(label="the AK completed the handshake")
    s.outcome = (
        f"CC size {cc.tpdu_size or 128}, credit {cc.credit}, options 0x{cc.additional_options:02x}"
    )
    async with s.postamble():
        await c.release()


@case(
    "c4.est.third-message-dt",
    title="A DT instead of the AK completes the handshake",
    group=G,
    clause="ISO 8073 6.5, 12 (the third message may be a DT)",
    cls=4,
    rows=["AKWAIT:DT", "OPEN:DT"],
)
async def third_message_dt(s: Session) -> None:
    """After the CC the tester sends a DT (no AK): the IUT takes it as the end of
    the handshake and acknowledges it (AK with YR-TU-NR 1)."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    await s.send(c.dt(s.app.request()))
    await s.expect(c.p_ak(1))
    s.outcome = "DT acknowledged"
    async with s.postamble():
        await c.collect(reply=s.app.replies, acked=False)
        await c.release()


@case(
    "c4.est.third-message-ed",
    title="An ED instead of the AK completes the handshake",
    group=G,
    clause="ISO 8073 6.5, 6.11, 12",
    cls=4,
    rows=["AKWAIT:ED", "OPEN:ED"],
)
async def third_message_ed(s: Session) -> None:
    """With expedited data agreed, the tester's first TPDU after the CC is an ED:
    the IUT takes it as the third message and answers with an EA of the same
    number."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    if not c.expedited:
        s.inconclusive("the IUT did not agree to expedited data")
    await s.send(c.ed(b"!"))
    await s.expect(EA, fields={"dst_ref": s.our_ref, "nr": 0}, ignore=(AK, ED))
    s.outcome = "EA nr 0"
    async with s.postamble():
        await c.release()


@case(
    "c4.est.duplicate-cr",
    title="A CR repeated after the CC gets the same CC again, not a second connection",
    group=G,
    clause="ISO 8073 6.5, 6.9, 12 (duplicate CR)",
    cls=4,
    rows=["AKWAIT:CR"],
)
async def duplicate_cr(s: Session) -> None:
    """The tester repeats its CR after receiving the CC (as if the CC were lost):
    the IUT answers with a CC carrying the same reference (the same connection)."""
    cr = cr4(s)
    async with s.preamble():
        await s.send(cr, checksum=True)
        cc: CC = await s.expect(
            CC, fields={"dst_ref": s.our_ref}, bind={"ref": "src_ref"}, checksum=True
        )
    await s.send(cr, checksum=True)
    await s.expect(
        CC,
        fields={"dst_ref": s.our_ref, "src_ref": cc.src_ref},
        checksum=True,
        label="the same CC again",
    )
    await C4.from_cc(s, cr, cc).complete_then_release(silence_ignoring=(CC,))


@case(
    "c4.est.cr-burst",
    title="The same CR twice at once makes one connection",
    group=G,
    clause="ISO 8073 6.5, 6.9 (a duplicate CR does not create a connection)",
    cls=4,
    maybe_rows=["CONFIRMING:CR", "AKWAIT:CR"],
)
async def cr_burst(s: Session) -> None:
    """The tester sends its CR twice back to back. Every CC that comes back
    carries the same reference: the IUT made one connection."""
    cr = cr4(s)
    await s.send(cr, cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref}, checksum=True)
    more = await s.drain(s.settings.silence)
    refs = {cc.src_ref} | {i.tpdu.src_ref for i in more if isinstance(i.tpdu, CC)}
    if len(refs) > 1:
        s.fail(
            f"{len(refs)} connections for one CR: CC references {sorted(refs)}",
            expected="CCs of one reference",
            observed=[i.summary() for i in more],
        )
    await C4.from_cc(s, cr, cc).complete_then_release(silence_ignoring=(CC,))


@case(
    "c4.est.dr-in-akwait",
    title="A DR instead of the AK is confirmed with DC, and again after the release",
    group=G,
    clause="ISO 8073 6.7, 6.18, 13.5, 13.6",
    cls=4,
    rows=["AKWAIT:DR", "REFWAIT:DR"],
)
async def dr_in_akwait(s: Session) -> None:
    """After the CC the tester sends a DR: the IUT answers with a DC (its
    reference as SRC-REF, ours as DST-REF). A second DR, while the IUT's
    reference is frozen, gets a DC too."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    await s.send(c.dr())
    await s.expect(DC, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(CC,))
    await s.send(c.dr())
    await s.expect(
        DC,
        fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref},
        ignore=(CC,),
        label="the DC answering the repeated DR",
    )
    await s.expect_silence(ignore=(CC,))


@case(
    "c4.est.er-in-akwait",
    title="An ER instead of the AK releases the connection (DR)",
    group=G,
    clause="ISO 8073 6.22, 13.12",
    cls=4,
    rows=["AKWAIT:ER", "CLOSING:DC"],
)
async def er_in_akwait(s: Session) -> None:
    """After the CC the tester sends an ER: the IUT releases the connection with
    a DR; the tester's DC ends it (no DR retransmission follows)."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    await s.send(ER(c.peer_ref, 2))
    dr: DR = await s.expect(DR, fields={"dst_ref": s.our_ref, "src_ref": c.peer_ref}, ignore=(CC,))
    s.pics("behaviour", "DR reason after an ER", dr_reason(dr.reason))
    await s.send(c.dc())
    await s.expect_silence(ignore=(CC,), label="the DC ended the release")
    s.outcome = f"DR {dr_reason(dr.reason)}"


@case(
    "c4.est.ak-beyond-sent",
    title="An AK acknowledging DTs never sent, as the third message, is a protocol error",
    group=G,
    clause="ISO 8073 6.22, 12 (AK in AKWAIT)",
    cls=4,
    rows=["AKWAIT:AK"],
)
async def ak_beyond_sent(s: Session) -> None:
    """The tester's third message is an AK with YR-TU-NR 5 while the IUT has sent
    no DT: a protocol error. The IUT releases with a DR (reason 133, protocol
    error, is the one ISO 8073 names; another is noted), or ignores the AK
    and keeps the handshake open (it then retransmits the CC or takes a
    correct AK)."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    await s.send(c.ak(nr=5))
    got = await s.wait_for(Pattern(DR, CC, fields={"dst_ref": s.our_ref}), s.settings.response_time)
    if isinstance(got, DR):
        s.pics("behaviour", "AK beyond the DTs sent", f"DR {dr_reason(got.reason)}")
        if got.reason != 133:
            s.note(f"DR reason {dr_reason(got.reason)}, not 133 (protocol error)")
        await s.send(c.dc())
        s.outcome = f"released: DR {dr_reason(got.reason)}"
        return
    s.pics("behaviour", "AK beyond the DTs sent", "ignored")
    await s.send(c.ak())
    await s.send(c.dt(s.app.request()))
    await s.expect(c.p_ak(1), ignore=(CC,))
    s.outcome = "the AK was ignored, the connection works"
    async with s.postamble():
        await c.collect(reply=s.app.replies, acked=False)
        await c.release()


@case(
    "c4.est.tpdu-size-128",
    title="A CR proposing TPDU size 128 gets a CC choosing 128, and DTs that fit",
    group=G,
    clause="ISO 8073 6.5 (negotiation), 13.3.4 (TPDU size)",
    cls=4,
    needs=["echo"],
)
async def tpdu_size_128(s: Session) -> None:
    """The tester proposes TPDU size 128. The CC chooses 128 (or leaves the
    parameter out: 128); a 300-octet TSDU echoed comes back in DTs of at most
    128 octets, EOT on the last only."""
    cr = cr4(s, size=128)
    async with s.preamble():
        c = await C4.open(s, cr)
    check_cc(s, cr, c.cc)  # type: ignore[arg-type]
    tsdu = s.app.request(300)
    reply = await c.exchange(tsdu)
    big = [dt for dt in c.received if len(dt.data) > c.capacity]
    if big:
        s.fail(
            f"DT of {len(big[0].data)} octets of data: more than TPDU size 128 allows",
            expected=f"DTs of at most {c.capacity} octets of user data",
        )
    early = [dt for dt in c.received[:-1] if dt.eot]
    if early:
        s.fail(f"EOT on DT {early[0].nr}, not only on the last", expected="EOT on the last DT only")
    problem = s.app.reply_problem(tsdu, reply or b"")
    if problem:
        s.fail(problem, expected="the TSDU echoed")
    s.outcome = f"echo in {len(c.received)} DTs"
    async with s.postamble():
        await c.release()


@case(
    "c4.est.tpdu-size-absent",
    title="A CR without the TPDU size parameter gets a CC of size 128 at most",
    group=G,
    clause="ISO 8073 13.3.4 (default TPDU size 128)",
    cls=4,
)
async def tpdu_size_absent(s: Session) -> None:
    """Without the TPDU size parameter the proposal is 128 octets: the CC does
    not choose a larger size."""
    cr = cr4(s, size=None)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 4}, checksum=True)
    check_cc(s, cr, cc)
    s.pics("parameters", "TPDU size chosen for none proposed", cc.tpdu_size or "absent (128)")
    await C4.from_cc(s, cr, cc).complete_then_release()


@case(
    "c4.est.extended-format",
    title="The extended format proposed is accepted or refused, and then used",
    group=G,
    clause="ISO 8073 6.5, 13.3.3 (class options), 13.7 (extended DT)",
    cls=4,
    needs=["reply"],
)
async def extended_format(s: Session) -> None:
    """The tester proposes the extended format (31-bit numbers). The CC accepts
    it or not; data then flows in the format chosen (a request, its AK and
    reply decoded in that format)."""
    cr = cr4(s, extended=True)
    async with s.preamble():
        c = await C4.open(s, cr)
    s.pics("formats", "extended format (responder)", c.extended)
    reply = await c.exchange(s.app.request())
    problem = s.app.reply_problem(s.app.request(), reply or b"")
    if problem:
        s.fail(problem, expected="the application's reply")
    s.outcome = "extended format used" if c.extended else "extended format refused: normal used"
    async with s.postamble():
        await c.release()


@case(
    "c4.est.checksum-non-use",
    title="Non-use of the checksum proposed: accepted (then TPDUs have none) or refused",
    group=G,
    clause="ISO 8073 6.17, 13.3.4 (additional option selection)",
    cls=4,
    needs=["reply"],
)
async def checksum_non_use(s: Session) -> None:
    """The tester proposes the non-use of the checksum. The CC either selects it
    (the IUT's TPDUs then carry no checksum) or keeps the checksum (then they
    all carry a valid one); data flows either way."""
    cr = cr4(s, options=EXPEDITED | NON_USE)
    async with s.preamble():
        c = await C4.open(s, cr)
    s.pics("options", "non-use of checksum accepted", not c.checksum)
    reply = await c.exchange(s.app.request())
    problem = s.app.reply_problem(s.app.request(), reply or b"")
    if problem:
        s.fail(problem, expected="the application's reply")
    s.outcome = "non-use accepted" if not c.checksum else "checksum kept"
    async with s.postamble():
        await c.release()


@case(
    "c4.est.no-expedited",
    title="Expedited data not proposed is not selected by the CC",
    group=G,
    clause="ISO 8073 6.5, 13.3.4 (additional option selection)",
    cls=4,
)
async def no_expedited(s: Session) -> None:
    """The tester's CR does not propose expedited data (0xC6 = 0): the CC must
    not select it."""
    cr = cr4(s, options=0x00)
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 4}, checksum=True)
    if cc.additional_options & EXPEDITED:
        s.fail(
            "the CC selects expedited data, which was not proposed",
            expected="0xC6 bit 1 clear",
            observed=[repr(cc)],
        )
    check_cc(s, cr, cc)
    await C4.from_cc(s, cr, cc).complete_then_release()


@case(
    "c4.est.class-2",
    title="A CR of class 2 only is refused with DR, or accepted in class 2",
    group=G,
    clause="ISO 8073 6.5 (class negotiation), 6.6 (refusal)",
    cls=4,
)
async def class_2(s: Session) -> None:
    """The tester proposes class 2 with no alternative. The IUT may not choose
    another class: it answers with a CC of class 2, or refuses with a DR."""
    cr = cr4(s, protocol_class=2, options=None)
    await s.send(cr, checksum=True)
    got = await s.expect(DR, CC, fields={"dst_ref": s.our_ref}, checksum=None)
    if isinstance(got, CC):
        if got.protocol_class != 2:
            s.fail(
                f"CC of class {got.protocol_class} to a CR of class 2 only",
                expected="CC of class 2, or DR",
                observed=[repr(got)],
            )
        s.pics("classes", "class 2 (responder)", True)
        await s.send(DR(got.src_ref, s.our_ref, 128))
        s.outcome = "accepted in class 2"
        return
    s.pics("classes", "class 2 (responder)", f"refused: DR {dr_reason(got.reason)}")
    s.outcome = f"refused: DR {dr_reason(got.reason)}"


@case(
    "c4.est.alternative-class",
    title="A CR of class 4 with class 2 as alternative gets a CC of class 4 or 2",
    group=G,
    clause="ISO 8073 6.5 (class negotiation), 13.3.4 (alternative protocol classes)",
    cls=4,
)
async def alternative_class(s: Session) -> None:
    """The tester proposes class 4 with class 2 as alternative (0xC7): the CC
    chooses class 4 or class 2, nothing else."""
    cr = cr4(s, extra=[AlternativeClasses((2,))])
    await s.send(cr, checksum=True)
    got = await s.expect(CC, DR, fields={"dst_ref": s.our_ref}, checksum=None)
    if isinstance(got, DR):
        s.fail(
            f"DR {dr_reason(got.reason)}: class 4 was proposed",
            expected="CC of class 4 or 2",
            observed=[repr(got)],
        )
    if got.protocol_class not in (2, 4):
        s.fail(f"CC of class {got.protocol_class}", expected="class 4 or 2", observed=[repr(got)])
    s.pics("classes", "class chosen for 4 with alternative 2", got.protocol_class)
    if got.protocol_class == 4:
        c = C4.from_cc(s, cr, got)
        await s.send(c.ak())
        async with s.postamble():
            await c.release()
    else:
        await s.send(DR(got.src_ref, s.our_ref, 128))


@case(
    "c4.est.unknown-tsap",
    title="A CR for a TSAP the IUT does not serve is refused (DR), or served",
    group=G,
    clause="ISO 8073 6.5, 6.6 (connection refusal)",
    cls=4,
)
async def unknown_tsap(s: Session) -> None:
    """The tester calls a TSAP nobody serves (``conformance-no-such-tsap``): the
    IUT refuses with a DR (reason 2 or 3 fit) or, when it serves every TSAP,
    confirms. Silence fails: a CR is answered."""
    cr = cr4(s, called=b"conformance-no-such-tsap")
    await s.send(cr, checksum=True)
    got = await s.expect(DR, CC, fields={"dst_ref": s.our_ref}, checksum=True)
    if isinstance(got, DR):
        s.pics("behaviour", "CR for an unserved TSAP", f"DR {dr_reason(got.reason)}")
        s.outcome = f"refused: DR {dr_reason(got.reason)}"
        return
    s.pics("behaviour", "CR for an unserved TSAP", "accepted (any TSAP served)")
    c = C4.from_cc(s, cr, got)
    await s.send(c.ak())
    s.outcome = "accepted: the IUT serves any TSAP"
    async with s.postamble():
        await c.release()


@case(
    "c4.est.unknown-parameter",
    title="An unknown parameter in a CR is ignored",
    group=G,
    clause="ISO 8073 13.2.3 (parameters not defined are ignored in CR)",
    cls=4,
)
async def unknown_parameter(s: Session) -> None:
    """The tester's CR carries a parameter of a code ISO 8073 does not define
    (0xC9, two octets): the IUT ignores it and answers with a CC."""
    cr = cr4(s, extra=[UnknownParam(0xC9, b"\x12\x34")])
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, fields={"dst_ref": s.our_ref, "protocol_class": 4}, checksum=True)
    await C4.from_cc(s, cr, cc).complete_then_release()


@case(
    "c4.est.connect-data",
    title="A CR with 32 octets of connect data is answered",
    group=G,
    clause="ISO 8073 13.3 (CR user data, at most 32 octets)",
    cls=4,
)
async def connect_data(s: Session) -> None:
    """The tester's CR carries 32 octets of user data, the most allowed: the IUT
    answers with a CC (its data, if any, at most 32 octets)."""
    cr = cr4(s, data=b"conformance: 32 octets of data.."[:32])
    await s.send(cr, checksum=True)
    cc: CC = await s.expect(CC, DR, fields={"dst_ref": s.our_ref}, checksum=True)
    if isinstance(cc, DR):
        s.fail(
            f"DR {dr_reason(cc.reason)}: 32 octets of connect data are allowed",
            expected="CC",
            observed=[repr(cc)],
        )
    s.pics("behaviour", "CR with 32 octets of connect data", "accepted")
    await C4.from_cc(s, cr, cc).complete_then_release()


@case(
    "c4.est.concatenated-third-message",
    title="AK and DT concatenated in one datagram after the CC are both taken",
    group=G,
    clause="ISO 8073 6.4 (concatenation and separation)",
    cls=4,
    needs=["reply"],
)
async def concatenated(s: Session) -> None:
    """The tester's third message is an AK followed by a DT in the same
    datagram: the IUT separates them, completes the handshake and
    acknowledges the DT (and the application answers)."""
    async with s.preamble():
        c = await C4.open(s, third=False)
    request = s.app.request()
    await s.send(c.ak(), c.dt(request), concat=True)
    reply = await c.collect(reply=True, acked=True)
    problem = s.app.reply_problem(request, reply or b"")
    if problem:
        s.fail(problem, expected="the application's reply")
    async with s.postamble():
        await c.release()
