"""What several cases check the same way: a CC's negotiation, a CR's fields, the PICS they show."""

from __future__ import annotations

from ...wire import CC, CR, AckTime, AdditionalOptions, DRReason, InactivityTimer
from ..session import Session

__all__ = ["check_cc", "dr_reason", "pics_of_cc", "pics_of_cr"]

EXPEDITED = AdditionalOptions.USE_EXPEDITED
NON_USE = AdditionalOptions.NON_USE_OF_CHECKSUM
SACK = AdditionalOptions.SELECTIVE_ACK


def dr_reason(reason: int) -> str:
    """``133 (PROTOCOL_ERROR)``."""
    try:
        return f"{reason} ({DRReason(reason).name})"
    except ValueError:
        return f"{reason} (not a reason ISO 8073 defines)"


def check_cc(s: Session, cr: CR, cc: CC) -> None:
    """Fail unless the CC chose within what the CR proposed (ISO 8073 6.5, 13.4):
    class, format, TPDU size, additional options."""
    problems: list[str] = []
    if cc.protocol_class != cr.protocol_class:
        problems.append(f"class {cc.protocol_class} chosen, {cr.protocol_class} proposed")
    if cc.extended and not cr.extended:
        problems.append("the extended format chosen, not proposed")
    proposed = cr.tpdu_size or 128
    chosen = cc.tpdu_size or 128
    if chosen > proposed:
        problems.append(f"TPDU size {chosen} chosen, {proposed} proposed")
    extra = cc.additional_options & ~cr.additional_options & (EXPEDITED | NON_USE | SACK)
    if extra:
        problems.append(f"additional options 0x{extra:02x} chosen, not proposed")
    if problems:
        s.fail(
            "the CC chose what the CR did not propose: " + "; ".join(problems),
            expected="a CC choosing within the CR's proposal",
            observed=[repr(cc)],
        )


def pics_of_cc(s: Session, cr: CR, cc: CC) -> None:
    """What a CC shows of the IUT as a responder."""
    s.pics("classes", "class 4 (responder)", True)
    s.pics(
        "parameters", f"TPDU size chosen for {cr.tpdu_size or 128} proposed", cc.tpdu_size or 128
    )
    if not cc.extended:
        s.pics("formats", "normal format", True)
    opts = cc.additional_options
    if cr.additional_options & EXPEDITED:
        s.pics("options", "expedited data (0xC6 bit 1)", bool(opts & EXPEDITED))
    s.pics("options", "checksum when its use is proposed", not (opts & NON_USE))
    ack = cc.param(AckTime)
    s.pics("parameters", "acknowledgement time in CC (0x85)", f"{ack.ms} ms" if ack else "absent")
    inactivity = cc.param(InactivityTimer)
    if inactivity is not None:
        s.pics("parameters", "inactivity timer in CC (0xF2)", f"{inactivity.ms} ms")
    s.pics("parameters", "parameters in CC", " ".join(f"0x{p.code:02X}" for p in cc.params))
    s.pics("behaviour", "initial credit in CC", cc.credit)
    if cr.called_tsap is not None:
        s.pics("parameters", "called TSAP echoed in CC", cc.called_tsap == cr.called_tsap)
    if cr.calling_tsap is not None:
        s.pics("parameters", "calling TSAP echoed in CC", cc.calling_tsap == cr.calling_tsap)


def pics_of_cr(s: Session, cr: CR) -> None:
    """What a CR shows of the IUT as an initiator."""
    s.pics("classes", f"class {cr.protocol_class} (initiator)", True)
    s.pics("parameters", "TPDU size proposed", cr.tpdu_size or "absent (128)")
    s.pics("formats", "extended format proposed", cr.extended)
    opts = cr.additional_options
    s.pics("options", "expedited data proposed", bool(opts & EXPEDITED))
    s.pics("options", "non-use of checksum proposed", bool(opts & NON_USE))
    s.pics("options", "selective acknowledgement proposed (0xC6 bit 5)", bool(opts & SACK))
    ack = cr.param(AckTime)
    s.pics("parameters", "acknowledgement time in CR (0x85)", f"{ack.ms} ms" if ack else "absent")
    s.pics("parameters", "parameters in CR", " ".join(f"0x{p.code:02X}" for p in cr.params))
    s.pics("behaviour", "initial credit in CR", cr.credit)
