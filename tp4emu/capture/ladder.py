"""Ladder (message sequence) diagrams of a transport exchange: the model and two renderers.

A :class:`Ladder` has participants (the columns: a name and, usually, an
address) and steps (the rows, in time order): a :class:`Message` is an arrow
carrying the TPDUs of one datagram (or one TPKT), or a TCP-level event such as
``SYN``; a :class:`Note` is something one participant did or is (a call such
as ``accept()``, or the state it is known to be in).

:class:`LadderBuilder` makes one from what was sent, in the order it was seen:
it decodes each datagram, labels the arrow with one short summary per TPDU
(:func:`summarize`: ``CR ref=0x1234 cdt=15``, ``DT nr=3 EOT``, ...), marks
retransmissions (the same octets seen again from the same side, see
:class:`LadderBuilder`) and, unless told the states, notes the state each TPDU
shows its sender to be in. :func:`ladder_from_pcap` builds one from a capture
file (anything :func:`~tp4emu.capture.read_pcap` reads, RFC 1006 TPKTs
reassembled from their TCP segments).

:func:`to_mermaid` renders a ladder as a Mermaid ``sequenceDiagram``;
:func:`to_svg` as a standalone SVG picture (no external tool), with the time
of each row on the left. Both are deterministic: the same ladder gives the
same text. Nothing here opens a file except :func:`ladder_from_pcap`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Literal
from xml.sax.saxutils import escape, quoteattr

from ..wire.errors import TPDUError
from ..wire.tpdu import AK, CC, CR, DC, DR, DT, DT0, EA, ED, ER, RJ, TPDU, _decode_one
from ..wire.tpkt import RFC1006_PORT
from .formats import Transport
from .reader import read_pcap

__all__ = [
    "Ladder",
    "LadderBuilder",
    "Message",
    "Note",
    "Participant",
    "Step",
    "address_text",
    "ladder_from_pcap",
    "summarize",
    "to_mermaid",
    "to_svg",
]

# ---------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class Participant:
    """One column of a ladder."""

    name: str
    """How the column is labelled (unique in its ladder)."""
    detail: str = ""
    """A second line under the name, usually the address (``127.0.0.1:10200``)."""


@dataclass(frozen=True, slots=True)
class Message:
    """An arrow: the TPDUs of one datagram (or TPKT), or a TCP-level event."""

    time: float
    """Seconds from the start of the ladder."""
    src: str
    """The sending participant's name."""
    dst: str
    """The receiving participant's name."""
    parts: tuple[str, ...]
    """One summary per TPDU (a TCP event: its one description, such as ``SYN``)."""
    retransmitted: tuple[bool, ...] = ()
    """Per part: the same octets were seen before from the same side (empty: none)."""
    lost: bool = False
    """The datagram never arrived (known only to a simulation, not to a capture)."""
    kind: Literal["tpdu", "tcp"] = "tpdu"
    """``"tcp"`` for a TCP-level event (no TPDU)."""

    @property
    def retransmission(self) -> bool:
        """Whether any TPDU of the arrow is a retransmission."""
        return any(self.retransmitted)

    @property
    def label(self) -> str:
        """The arrow's text: the parts joined by `` + ``, each retransmission marked."""
        marks = self.retransmitted or (False,) * len(self.parts)
        return " + ".join(
            f"{part} (retransmission)" if again else part
            for part, again in zip(self.parts, marks, strict=True)
        )


@dataclass(frozen=True, slots=True)
class Note:
    """Something at one participant: a call or its outcome, or a state."""

    time: float
    """Seconds from the start of the ladder."""
    at: str
    """The participant's name."""
    text: str
    kind: Literal["call", "state"] = "call"
    """``"state"``: *text* is the state the participant is in from now on."""


Step = Message | Note


@dataclass(frozen=True, slots=True)
class Ladder:
    """A whole diagram: title, columns, rows in time order."""

    title: str
    participants: tuple[Participant, ...]
    steps: tuple[Step, ...]

    def messages(self) -> list[Message]:
        """The arrows, in order."""
        return [s for s in self.steps if isinstance(s, Message)]

    def notes(self, kind: Literal["call", "state"] | None = None) -> list[Note]:
        """The notes (of one *kind*, or all), in order."""
        return [s for s in self.steps if isinstance(s, Note) and kind in (None, s.kind)]


# ---------------------------------------------------------------- labels


def _ref(value: int) -> str:
    return f"0x{value:04x}"


def summarize(tpdu: TPDU) -> str:
    """A TPDU in a few words, for an arrow: ``CR ref=0x1234 cdt=15``, ``DT nr=3 EOT``,
    ``AK nr=4 cdt=15``, ``DR reason 128``, ``CC ref=0x5678 dst=0x1234 cdt=15``.

    References are the sender's own (``ref=``, its SRC-REF) and, where it helps
    to tell connections apart, the receiver's (``dst=``); a CR or CC of
    another class than 4 says which (class 0: ``CR ref=0x0001 class 0``, no
    credit).
    """
    if isinstance(tpdu, (CR, CC)):
        text = f"{type(tpdu).__name__} ref={_ref(tpdu.src_ref)}"
        if isinstance(tpdu, CC):
            text += f" dst={_ref(tpdu.dst_ref)}"
        if tpdu.protocol_class == 0:  # class 0 has no flow control: no credit
            return f"{text} class 0"
        text += f" cdt={tpdu.credit}"
        return text if tpdu.protocol_class == 4 else f"{text} class {tpdu.protocol_class}"
    if isinstance(tpdu, DR):
        return f"DR reason {tpdu.reason}"
    if isinstance(tpdu, DC):
        return "DC"
    if isinstance(tpdu, DT):
        return f"DT nr={tpdu.nr}" + (" EOT" if tpdu.eot else "")
    if isinstance(tpdu, DT0):
        return "DT" + (" EOT" if tpdu.eot else "")
    if isinstance(tpdu, ED):
        return f"ED nr={tpdu.nr}"
    if isinstance(tpdu, (AK, RJ)):
        return f"{type(tpdu).__name__} nr={tpdu.nr} cdt={tpdu.credit}"
    if isinstance(tpdu, EA):
        return f"EA nr={tpdu.nr}"
    if isinstance(tpdu, ER):
        return f"ER cause {tpdu.cause}"
    return type(tpdu).__name__  # pragma: no cover - every TPDU type is above


def address_text(addr: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of an address tuple; ``str()`` otherwise."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


# ---------------------------------------------------------------- building

_SEQUENCED_HORIZON = 127
"""How many earlier TPDUs of one type and side are compared (DT, ED, EA, CR, ...).

A DT (ED, EA) can carry the same number again only after 128 new ones in the
normal format, so within 127 of them equal octets are a retransmission."""
_ACK_HORIZON = 8
"""The same for AK and RJ: with at most 15 credit per AK in the normal format,
the number comes round only after 9 AKs that each acknowledged something."""


@dataclass(slots=True)
class _Seen:
    """What one side sent of one TPDU type: octets -> position of the last copy."""

    count: int = 0
    last: dict[bytes, int] = field(default_factory=dict)

    def again(self, octets: bytes, horizon: int) -> bool:
        self.count += 1
        before = self.last.get(octets)
        self.last[octets] = self.count
        if len(self.last) > 2 * horizon:  # forget what is beyond the horizon
            self.last = {k: v for k, v in self.last.items() if self.count - v <= horizon}
        return before is not None and self.count - before <= horizon


def _split(payload: bytes) -> tuple[list[tuple[TPDU, bytes]], str | None]:
    """The TPDUs of a datagram with their octets; an error text for what follows them."""
    out: list[tuple[TPDU, bytes]] = []
    offset = 0
    try:
        while offset < len(payload):
            tpdu, end = _decode_one(payload, offset, None, fast=True)
            out.append((tpdu, payload[offset:end]))
            offset = end
    except TPDUError as exc:
        return out, f"undecodable ({len(payload) - offset} octets: {exc})"
    if not payload:
        return out, "empty"
    return out, None


class LadderBuilder:
    """Collects what was sent into a :class:`Ladder`.

    Args:
        title: the diagram's title.
        names: participant names by address; other addresses are named by
            :func:`address_text`. Participants get their columns in the order
            they are first named or seen (:meth:`participant` fixes it).
        infer_states: note the state each TPDU shows its sender to be in (for
            a capture, where nothing else is known). Off when the caller adds
            the states it knows with :meth:`state`.
        origin: the time shown as 0 (default: the first step's).

    Retransmissions: a TPDU is marked when the same octets came before from
    the same address to the same address, among the last 127 TPDUs of its type
    from that side (8 for AK and RJ, whose numbers come round sooner): in the
    normal format a DT cannot carry the same number again sooner, so within
    that horizon equal octets are a resend, not new data. Over TCP (class 0)
    nothing is marked: TCP retransmits segments, never TPDUs.

    Inferred states (class 4 over UDP; class 0 over TCP in brackets): a CR
    shows its sender in WFCC and its receiver in CONFIRMING; a CC, its sender
    in AKWAIT (OPEN); the first AK, DT, ED or EA after the CC, its sender in
    OPEN; a DR with a source reference, its sender in CLOSING (CLOSED); a DC,
    its sender in REFWAIT. Each is noted when it changes, per connection (one
    per pair of addresses; a new CR starts another). A participant with
    connections to several others gets the peer's name with each state.
    """

    def __init__(
        self,
        title: str = "",
        *,
        names: Mapping[object, str] | None = None,
        infer_states: bool = True,
        origin: float | None = None,
    ) -> None:
        self.title = title
        self.infer_states = infer_states
        self.origin = origin
        self._names: dict[object, str] = dict(names or {})
        self._participants: dict[str, Participant] = {}
        self._raw: list[tuple[float, int, Step, str | None]] = []  # time, seq, step, peer
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self._states: dict[tuple[str, frozenset[str]], str] = {}
        self._cc_seen: set[frozenset[str]] = set()

    # -- participants

    def participant(self, who: object, name: str | None = None, detail: str | None = None) -> str:
        """The name of the participant at address (or name) *who*, adding its column if new.

        *name* names it (and *who*, when an address, maps to it from now on);
        *detail* is the second line of its label (default: the address).
        """
        if name is None:
            name = self._names.get(who) if not isinstance(who, str) else who
            if name is None:
                name = address_text(who)
        if not isinstance(who, str):
            self._names[who] = name
        if name not in self._participants:
            if detail is None:
                detail = "" if isinstance(who, str) else address_text(who)
            if detail == name:
                detail = ""
            self._participants[name] = Participant(name, detail)
        return name

    # -- steps

    def _add(self, time: float, step: Step, peer: str | None = None) -> None:
        self._raw.append((time, len(self._raw), step, peer))

    def datagram(
        self,
        time: float,
        src: object,
        dst: object,
        payload: bytes,
        *,
        transport: Transport = "udp",
        lost: bool = False,
    ) -> Message:
        """An arrow for the TPDUs of one datagram (``transport="tcp"``: one TPKT's payload).

        *time* is absolute (seconds, any origin). Undecodable octets become a
        part ``undecodable (...)``.
        """
        s, d = self.participant(src), self.participant(dst)
        tpdus, error = _split(bytes(payload))
        parts: list[str] = []
        marks: list[bool] = []
        for tpdu, octets in tpdus:
            parts.append(summarize(tpdu))
            again = False
            if transport == "udp":
                horizon = _ACK_HORIZON if isinstance(tpdu, (AK, RJ)) else _SEQUENCED_HORIZON
                seen = self._seen.setdefault((s, d, type(tpdu).__name__), _Seen())
                again = seen.again(octets, horizon)
            marks.append(again)
        if error is not None:
            parts.append(error)
            marks.append(False)
        message = Message(time, s, d, tuple(parts), tuple(marks), lost, "tpdu")
        self._add(time, message)
        if self.infer_states:
            for (tpdu, _), again in zip(tpdus, marks, strict=False):
                if not again:
                    self._infer(time, s, d, tpdu, transport)
        return message

    def tcp(self, time: float, src: object, dst: object, text: str) -> Message:
        """An arrow for a TCP-level event (``SYN``, ``SYN, ACK``, ``FIN``, ...)."""
        message = Message(time, self.participant(src), self.participant(dst), (text,), kind="tcp")
        self._add(time, message)
        return message

    def note(self, time: float, at: object, text: str) -> Note:
        """A call or an outcome at one participant (``accept() returned``, ...)."""
        note = Note(time, self.participant(at), text)
        self._add(time, note)
        return note

    def state(self, time: float, at: object, state: str, *, peer: object | None = None) -> None:
        """*at* is in *state* from *time* on (its connection with *peer*, if given).

        Noted only when it differs from the last state noted for that connection.
        """
        name = self.participant(at)
        peer_name = self.participant(peer) if peer is not None else None
        key = (name, frozenset({name, peer_name or ""}))
        if self._states.get(key, "CLOSED") == state:
            return  # a connection starts CLOSED: only changes are noted
        self._states[key] = state
        self._add(time, Note(time, name, state, "state"), peer_name)

    def _infer(self, time: float, src: str, dst: str, tpdu: TPDU, transport: Transport) -> None:
        pair = frozenset({src, dst})
        class0 = transport == "tcp"
        if isinstance(tpdu, CR):
            for side in (src, dst):  # a new connection between these two
                self._states.pop((side, pair), None)
            self._cc_seen.discard(pair)
            self.state(time, src, "WFCC", peer=dst)
            self.state(time, dst, "CONFIRMING", peer=src)
        elif isinstance(tpdu, CC):
            self._cc_seen.add(pair)
            self.state(time, src, "OPEN" if class0 else "AKWAIT", peer=dst)
        elif isinstance(tpdu, (AK, DT, DT0, ED, EA)) and pair in self._cc_seen:
            self.state(time, src, "OPEN", peer=dst)
        elif isinstance(tpdu, DR) and tpdu.src_ref:
            self.state(time, src, "CLOSED" if class0 else "CLOSING", peer=dst)
        elif isinstance(tpdu, DC):
            self.state(time, src, "REFWAIT", peer=dst)

    # -- the result

    def ladder(self) -> Ladder:
        """The ladder so far: steps sorted by time (ties in the order added)."""
        raw = sorted(self._raw, key=lambda r: (r[0], r[1]))
        origin = self.origin if self.origin is not None else (raw[0][0] if raw else 0.0)
        peers: dict[str, set[str]] = {}
        for _, _, step, peer in raw:
            if isinstance(step, Note) and step.kind == "state" and peer is not None:
                peers.setdefault(step.at, set()).add(peer)
        steps: list[Step] = []
        for time, _, step, peer in raw:
            step = replace(step, time=time - origin)
            if isinstance(step, Note) and peer is not None and len(peers.get(step.at, ())) > 1:
                step = replace(step, text=f"{step.text} ({peer})")
            steps.append(step)
        return Ladder(self.title, tuple(self._participants.values()), tuple(steps))


def ladder_from_pcap(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    title: str | None = None,
    names: Mapping[object, str] | None = None,
    udp_ports: Collection[int] | None = None,
    tpkt_ports: Collection[int] = (RFC1006_PORT,),
) -> Ladder:
    """The ladder of a capture: one arrow per UDP datagram or RFC 1006 TPKT.

    Records of link type 252 (what ``--pcap`` writes) and plain IPv4 UDP/TCP
    packets are read as :func:`~tp4emu.capture.read_pcap` reads them (TCP
    segments reassembled into TPKTs; only TCP streams from or to
    *tpkt_ports*; with *udp_ports*, only UDP from or to those ports). Times
    are shown from the first record's; states are inferred
    (:class:`LadderBuilder`). A capture records what was sent or received at
    one place: a lost datagram is not known as such, but its retransmission is
    marked.

    Raises:
        PcapError: the file is not a capture or is corrupt or truncated.
        OSError: it cannot be read.
    """
    name = title
    if name is None:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "capture"
    builder = LadderBuilder(str(name), names=names)
    ports = set(udp_ports) if udp_ports is not None else None
    for rec in read_pcap(source, udp_ports=udp_ports, tpkt_ports=tpkt_ports):
        if (
            ports is not None
            and rec.transport == "udp"
            and rec.src[1] not in ports
            and rec.dst[1] not in ports
        ):
            continue  # an exported-PDU record (read_pcap filters only packets)
        builder.datagram(rec.timestamp, rec.src, rec.dst, rec.payload, transport=rec.transport)
    return builder.ladder()


# ---------------------------------------------------------------- Mermaid


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


_MERMAID_ESCAPES = {"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;", "\n": " "}


def _mermaid_text(text: str) -> str:
    """*text* safe in a Mermaid message or note (``#``, ``;``, ``<``, ``>`` as entity codes)."""
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


def to_mermaid(ladder: Ladder) -> str:
    """The ladder as a Mermaid ``sequenceDiagram`` (text ending in a newline).

    Each arrow and call note starts with its time (``[12.5 ms]``); a
    retransmission is a dotted arrow in a red band, a lost datagram ends in a
    cross, a TCP-level event is a dotted arrow; states are notes over their
    participant. The title is a comment line (``%%``): put it in a heading.
    """
    ids = {p.name: f"P{i}" for i, p in enumerate(ladder.participants)}
    lines = ["sequenceDiagram"]
    if ladder.title:
        lines.append(f"    %% {_mermaid_text(ladder.title)}")
    for p in ladder.participants:
        label = f"{p.name} {p.detail}" if p.detail else p.name
        lines.append(f"    participant {ids[p.name]} as {_mermaid_text(label)}")
    last_time: float | None = None
    for step in ladder.steps:
        stamp = f"[{_ms(step.time)}] "
        if isinstance(step, Note):
            if step.kind == "state" and last_time is not None and step.time == last_time:
                stamp = ""
            lines.append(f"    Note over {ids[step.at]}: {_mermaid_text(stamp + step.text)}")
        else:
            dotted = step.retransmission or step.kind == "tcp"
            arrow = ("--" if dotted else "-") + ("x" if step.lost else ">>")
            text = _mermaid_text(stamp + step.label + (" (lost)" if step.lost else ""))
            line = f"{ids[step.src]}{arrow}{ids[step.dst]}: {text}"
            if step.retransmission:
                lines += ["    rect rgb(255, 228, 225)", f"        {line}", "    end"]
            else:
                lines.append(f"    {line}")
        last_time = step.time
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- SVG

_FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"
_CHAR_W = 7.3  # advance of one character at 12 px in a monospace font (0.6 em, rounded up)
_ROW_H = 28
_HEAD_H = 40
_TIME_W = 84
_PAD = 16
_STYLE = """
  .title { font-size: 15px; font-weight: bold; fill: #1b2631; }
  .head rect { fill: #eaf2f8; stroke: #2e4053; stroke-width: 1.2; }
  .head .name { font-weight: bold; fill: #1b2631; }
  .head .detail { font-size: 11px; fill: #566573; }
  .life { stroke: #aab7b8; stroke-width: 1; stroke-dasharray: 3 3; }
  .time { font-size: 11px; fill: #7b7d7d; text-anchor: end; }
  .msg line, .msg path { stroke: #1b2631; stroke-width: 1.4; fill: none; }
  .msg text { fill: #1b2631; text-anchor: middle; }
  .retransmission line, .retransmission path { stroke: #c0392b; stroke-dasharray: 6 4; }
  .retransmission text { fill: #c0392b; }
  .tcp line { stroke: #7f8c8d; stroke-dasharray: 2 3; }
  .tcp text { fill: #7f8c8d; font-style: italic; }
  .call rect { fill: #fef9e7; stroke: #b7950b; stroke-width: 1; }
  .call text { fill: #4d3d00; text-anchor: middle; }
  .state rect { fill: #e8f0fe; stroke: #2e5cb8; stroke-width: 1.2; }
  .state text { fill: #1a3c7a; font-weight: bold; text-anchor: middle; }
  .legend text { font-size: 11px; fill: #566573; }
"""


def _text_w(text: str, char_w: float = _CHAR_W) -> float:
    return len(text) * char_w


def _f(value: float) -> str:
    """A coordinate as short, stable text."""
    out = f"{value:.1f}"
    return out[:-2] if out.endswith(".0") else out


def _columns(ladder: Ladder) -> tuple[list[float], float]:
    """The x of each participant's lifeline, and the picture's width."""
    names = [p.name for p in ladder.participants]
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    heads = [max(_text_w(p.name), _text_w(p.detail, 6.7)) + 2 * _PAD for p in ladder.participants]
    half = [h / 2 for h in heads]  # what must fit on each side of a lifeline
    for note in ladder.notes():
        half[index[note.at]] = max(half[index[note.at]], (_text_w(note.text) + 2 * _PAD) / 2)
    gaps = [max(half[i] + half[i + 1] + 24, 150.0) for i in range(n - 1)]
    for msg in ladder.messages():
        a, b = sorted((index[msg.src], index[msg.dst]))
        if a == b:
            continue
        need = _text_w(msg.label + (" (lost)" if msg.lost else "")) + 2 * _PAD
        have = sum(gaps[a:b])
        if have < need:
            for i in range(a, b):
                gaps[i] += (need - have) / (b - a)
    xs: list[float] = []
    x = _TIME_W + _PAD + half[0] if n else _TIME_W
    for i in range(n):
        xs.append(x)
        if i < n - 1:
            x += gaps[i]
    legend_w = _TIME_W + 640.0
    width = max((xs[-1] + half[-1] + _PAD) if n else 0.0, legend_w, _TIME_W + _PAD + 200)
    return xs, width


def to_svg(ladder: Ladder) -> str:
    """The ladder as a standalone SVG document (text ending in a newline).

    Participants head their lifelines (and foot them again); each step is one
    row with its time on the left: an arrow labelled with its TPDUs (dashed red
    for a retransmission, ending in a cross short of its target when lost,
    dotted grey for a TCP-level event), a yellow box for a call, a blue one for
    a state. A legend closes the picture. Elements carry classes (``msg``,
    ``retransmission``, ``lost``, ``tcp``, ``call``, ``state``) for styling.
    """
    xs, width = _columns(ladder)
    col = {p.name: xs[i] for i, p in enumerate(ladder.participants)}
    top = 44.0 if ladder.title else 12.0
    first_row = top + _HEAD_H + 18
    rows = len(ladder.steps)
    foot = first_row + rows * _ROW_H + 6
    height = foot + _HEAD_H + 56
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{_FONT}" font-size="12">',
        f"<title>{escape(ladder.title or 'ladder diagram')}</title>",
        f"<style>{_STYLE}</style>",
        "<defs>",
        '  <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#1b2631"/></marker>',
        '  <marker id="arrow-red" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#c0392b"/></marker>',
        '  <marker id="arrow-grey" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#7f8c8d"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>',
    ]
    if ladder.title:
        out.append(f'<text class="title" x="{_PAD}" y="26">{escape(ladder.title)}</text>')
    for p in ladder.participants:
        x = col[p.name]
        out.append(
            f'<line class="life" x1="{_f(x)}" y1="{_f(top + _HEAD_H)}" '
            f'x2="{_f(x)}" y2="{_f(foot)}"/>'
        )
    for y in (top, foot):
        for p in ladder.participants:
            out.append(_head(p, col[p.name], y))
    shown: float | None = None
    for i, step in enumerate(ladder.steps):
        y = first_row + i * _ROW_H + _ROW_H / 2
        if step.time != shown:  # a row at the same time as the one above shows none
            shown = step.time
            out.append(f'<text class="time" x="{_TIME_W}" y="{_f(y + 4)}">{_ms(step.time)}</text>')
        if isinstance(step, Note):
            out.append(_note(step, col[step.at], y))
        else:
            out.append(_arrow(step, col[step.src], col[step.dst], y))
    out.append(_legend(foot + _HEAD_H + 30))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _head(p: Participant, x: float, y: float) -> str:
    w = max(_text_w(p.name), _text_w(p.detail, 6.7)) + 2 * _PAD
    parts = [
        '<g class="head">',
        f'  <rect x="{_f(x - w / 2)}" y="{_f(y)}" width="{_f(w)}" height="{_HEAD_H}" rx="4"/>',
    ]
    if p.detail:
        parts.append(
            f'  <text class="name" x="{_f(x)}" y="{_f(y + 17)}" '
            f'text-anchor="middle">{escape(p.name)}</text>'
        )
        parts.append(
            f'  <text class="detail" x="{_f(x)}" y="{_f(y + 32)}" '
            f'text-anchor="middle">{escape(p.detail)}</text>'
        )
    else:
        parts.append(
            f'  <text class="name" x="{_f(x)}" y="{_f(y + 24)}" '
            f'text-anchor="middle">{escape(p.name)}</text>'
        )
    parts.append("</g>")
    return "\n".join(parts)


def _note(note: Note, x: float, y: float) -> str:
    w = _text_w(note.text) + 2 * _PAD
    rx = 9 if note.kind == "state" else 2
    return (
        f'<g class="{note.kind}">'
        f'<rect x="{_f(x - w / 2)}" y="{_f(y - 10)}" width="{_f(w)}" height="20" rx="{rx}"/>'
        f'<text x="{_f(x)}" y="{_f(y + 4)}">{escape(note.text)}</text></g>'
    )


def _arrow(msg: Message, x1: float, x2: float, y: float) -> str:
    classes = ["msg"]
    marker = "arrow"
    if msg.kind == "tcp":
        classes.append("tcp")
        marker = "arrow-grey"
    if msg.retransmission:
        classes.append("retransmission")
        marker = "arrow-red"
    if msg.lost:
        classes.append("lost")
    label = msg.label + (" (lost)" if msg.lost else "")
    ly = y + 7
    parts = [f"<g class={quoteattr(' '.join(classes))}>"]
    parts.append(f'<text x="{_f((x1 + x2) / 2)}" y="{_f(y)}">{escape(label)}</text>')
    if msg.lost:
        end = x1 + (x2 - x1) * 0.62
        parts.append(f'<line x1="{_f(x1)}" y1="{_f(ly)}" x2="{_f(end)}" y2="{_f(ly)}"/>')
        parts.append(
            f'<path d="M{_f(end - 4)},{_f(ly - 4)} L{_f(end + 4)},{_f(ly + 4)} '
            f'M{_f(end - 4)},{_f(ly + 4)} L{_f(end + 4)},{_f(ly - 4)}" '
            'style="stroke-dasharray: none; stroke-width: 2"/>'
        )
    else:
        parts.append(
            f'<line x1="{_f(x1)}" y1="{_f(ly)}" x2="{_f(x2)}" y2="{_f(ly)}" '
            f'marker-end="url(#{marker})"/>'
        )
    parts.append("</g>")
    return "".join(parts)


def _legend(y: float) -> str:
    x = float(_TIME_W)
    items: list[str] = ['<g class="legend">']

    def sample(cls: str, marker: str | None, text: str, lost: bool = False) -> None:
        nonlocal x
        items.append(f'<g class="msg {cls}">')
        if lost:
            items.append(f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x + 30)}" y2="{_f(y)}"/>')
            items.append(
                f'<path d="M{_f(x + 25)},{_f(y - 5)} L{_f(x + 35)},{_f(y + 5)} '
                f'M{_f(x + 25)},{_f(y + 5)} L{_f(x + 35)},{_f(y - 5)}" '
                'style="stroke-dasharray: none; stroke-width: 2"/>'
            )
        else:
            end = f' marker-end="url(#{marker})"' if marker else ""
            items.append(f'<line x1="{_f(x)}" y1="{_f(y)}" x2="{_f(x + 34)}" y2="{_f(y)}"{end}/>')
        items.append("</g>")
        items.append(f'<text x="{_f(x + 42)}" y="{_f(y + 4)}">{escape(text)}</text>')
        x += 42 + _text_w(text, 6.7) + 22

    sample("", "arrow", "TPDU")
    sample("retransmission", "arrow-red", "retransmission")
    sample("lost", None, "lost", lost=True)
    sample("tcp", "arrow-grey", "TCP")
    for cls, text in (("call", "call"), ("state", "STATE")):
        w = _text_w(text) + 12
        items.append(
            f'<g class="{cls}"><rect x="{_f(x)}" y="{_f(y - 9)}" width="{_f(w)}" height="18" '
            f'rx="{9 if cls == "state" else 2}"/>'
            f'<text x="{_f(x + w / 2)}" y="{_f(y + 4)}">{escape(text)}</text></g>'
        )
        x += w + 20
    items.append("</g>")
    return "\n".join(items)
