"""``tp4emu ladder``: a capture drawn as a ladder diagram; the demo's ladders.

``tp4emu ladder FILE.pcap [--format mermaid|svg|markdown] [-o OUT]`` reads a
capture (:func:`~tp4emu.capture.ladder.ladder_from_pcap`) and writes a
Mermaid ``sequenceDiagram``, a standalone SVG or a Markdown page holding the
Mermaid diagram. ``tp4emu demo --ladder DIR`` records every TPDU of the
demo's run with a :class:`DemoRecorder` and writes the TP4 and TCP ladders
of that run into DIR (:func:`write_demo_ladders`), with the demo's calls and
outcomes as notes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..capture.formats import Transport
from ..capture.ladder import Ladder, LadderBuilder, ladder_from_pcap, to_mermaid, to_svg
from ..wire.errors import TPDUError
from ..wire.tpdu import CR, decode

if TYPE_CHECKING:
    from .demo import DemoResult

__all__ = [
    "DemoRecorder",
    "Format",
    "add_ladder_parser",
    "demo_ladders",
    "render_ladder",
    "write_demo_ladders",
    "write_ladders",
]

PROG = "tp4emu ladder"

Format = Literal["mermaid", "svg", "markdown"]


def render_ladder(ladder: Ladder, fmt: Format) -> str:
    """*ladder* as text in *fmt*: Mermaid, SVG, or Markdown (a heading and a Mermaid block)."""
    if fmt == "svg":
        return to_svg(ladder)
    if fmt == "markdown":
        head = f"# {ladder.title}\n\n" if ladder.title else ""
        return f"{head}```mermaid\n{to_mermaid(ladder)}```\n"
    return to_mermaid(ladder)


# ---------------------------------------------------------------- the command


def add_ladder_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``tp4emu ladder`` (called by :func:`tp4emu.cli.build_parser`)."""
    p = subparsers.add_parser(
        "ladder",
        parents=[common],
        help="draw a capture as a ladder (message sequence) diagram: Mermaid or SVG",
        description=(
            "Read a pcap/pcapng capture (tp4emu's --pcap files, or plain UDP and RFC 1006 "
            "TCP captures) and draw one arrow per datagram or TPKT, labelled with its TPDUs; "
            "retransmissions (the same octets again from the same side) are marked, the "
            "states each TPDU shows its sender in are noted, times are shown from the first "
            "record. Exit status 1 when the file cannot be read or holds no ISO transport "
            "traffic."
        ),
    )
    p.add_argument("file", metavar="FILE", help="the capture (pcap or pcapng)")
    p.add_argument(
        "--format",
        choices=("mermaid", "svg", "markdown"),
        help="output format (default: svg when OUT ends in .svg, markdown for .md, else mermaid)",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    p.add_argument("--title", help="the diagram's title (default: the file name)")
    p.add_argument(
        "--name",
        dest="names",
        action="append",
        default=[],
        metavar="HOST:PORT=NAME",
        help="label the participant at HOST:PORT (repeatable)",
    )
    p.add_argument(
        "--port",
        dest="ports",
        type=int,
        action="append",
        metavar="PORT",
        help="only UDP datagrams from or to PORT (repeatable)",
    )
    p.add_argument(
        "--tpkt-port",
        dest="tpkt_ports",
        type=int,
        action="append",
        metavar="PORT",
        help="decode TCP streams from or to PORT as RFC 1006 (repeatable; default 102)",
    )
    p.set_defaults(func=_cmd_ladder)


def _parse_names(items: list[str]) -> dict[object, str]:
    from .apps import parse_address

    names: dict[object, str] = {}
    for item in items:
        address, sep, name = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--name wants HOST:PORT=NAME, got {item!r}")
        names[parse_address(address)] = name
    return names


def _format_of(args: argparse.Namespace) -> Format:
    if args.format:
        fmt: Format = args.format
        return fmt
    out = (args.output or "").lower()
    if out.endswith(".svg"):
        return "svg"
    if out.endswith(".md"):
        return "markdown"
    return "mermaid"


def _cmd_ladder(args: argparse.Namespace) -> int:
    try:
        names = _parse_names(args.names)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        ladder = ladder_from_pcap(
            args.file,
            title=args.title if args.title is not None else Path(args.file).name,
            names=names,
            udp_ports=args.ports,
            tpkt_ports=args.tpkt_ports or (102,),
        )
    except TPDUError as exc:  # PcapError: not a capture, corrupt or truncated
        print(f"{PROG}: {args.file}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if not ladder.messages():
        print(f"{PROG}: {args.file}: no ISO transport traffic in this capture", file=sys.stderr)
        return 1
    text = render_ladder(ladder, _format_of(args))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- the demo's ladders


@dataclass(frozen=True, slots=True)
class _Record:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    transport: str


class DemoRecorder:
    """Takes the place of a :class:`~tp4emu.capture.PcapWriter` in the demo: keeps
    every TPDU written to it, timed by *clock* (default: trio's, the clock of
    the demo's timelines), for :func:`demo_ladders`.

    :meth:`tee` gives a writer that writes to this recorder and to a real
    capture as well.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        if clock is None:
            import trio

            clock = trio.current_time
        self._clock = clock
        self.records: list[_Record] = []

    def write(
        self,
        data: bytes,
        *,
        src: Any,
        dst: Any,
        timestamp: float | None = None,
        transport: str = "udp",
    ) -> None:
        """Record one datagram (or one TPDU over TCP); *timestamp* is ignored."""
        del timestamp
        self.records.append(
            _Record(self._clock(), tuple(src[:2]), tuple(dst[:2]), bytes(data), transport)
        )

    def flush(self) -> None:
        """Nothing to flush (the PcapWriter interface)."""

    def tee(self, other: Any) -> Any:
        """A writer that writes to this recorder and to *other* (None: this recorder only)."""
        return self if other is None else _Tee(self, other)


class _Tee:
    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def write(self, data: bytes, **kw: Any) -> None:
        for sink in self.sinks:
            sink.write(data, **kw)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()


def demo_ladders(result: DemoResult, recorder: DemoRecorder) -> dict[str, Ladder]:
    """The ladders of one demo run: ``{"tp4": ..., "tcp": ...}`` (those it recorded).

    Arrows from what the server sent and received; notes from the demo's
    timelines (each client's ``connect()`` and its outcome, the server's
    ``accept()`` and decisions); states inferred from the TPDUs.
    """
    from .demo import ALLOWED_HOST, DENIED_HOST
    from .replay import TCP_TITLE, TP4_TITLE

    titles = {"tp4": TP4_TITLE, "tcp": TCP_TITLE}
    ladders: dict[str, Ladder] = {}
    pairs: tuple[tuple[str, Transport], ...] = (("tp4", "udp"), ("tcp", "tcp"))
    for transport, wire in pairs:
        records = [r for r in recorder.records if r.transport == wire]
        timeline = result.timelines.get(transport)
        if not records or timeline is None:
            continue
        server = next((r.dst for r in records if _is_cr(r.data)), records[0].dst)
        builder = LadderBuilder(titles[transport], origin=timeline.start)
        clients = {r.src for r in records if r.src != server} | {
            r.dst for r in records if r.dst != server
        }
        for name, host in (("client A", ALLOWED_HOST), ("server", None), ("client B", DENIED_HOST)):
            if host is None:
                builder.participant(server, name)
                continue
            for addr in sorted(clients):
                if addr[0] == host:
                    builder.participant(addr, name)
        for r in records:
            builder.datagram(r.time, r.src, r.dst, r.data, transport=wire)
        for t, who, what in timeline.rows:
            if who == "server" and what.startswith(("sends ", "receives ")):
                continue  # the arrows say it
            builder.note(timeline.start + t, who, what)
        ladders[transport] = builder.ladder()
    return ladders


def _is_cr(data: bytes) -> bool:
    try:
        return any(isinstance(t, CR) for t in decode(data))
    except TPDUError:
        return False


def write_ladders(ladders: Mapping[str, Ladder], directory: str | Path) -> list[Path]:
    """Write each ladder as ``NAME.svg`` and ``NAME.mmd`` into *directory* (created)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kinds: tuple[tuple[str, Format], ...] = ((".svg", "svg"), (".mmd", "mermaid"))
    for name, ladder in ladders.items():
        for suffix, fmt in kinds:
            path = folder / f"{name}{suffix}"
            path.write_text(render_ladder(ladder, fmt), encoding="utf-8")
            written.append(path)
    return written


def write_demo_ladders(
    directory: str | Path, result: DemoResult, recorder: DemoRecorder
) -> list[Path]:
    """Write the ladders of a demo run (``tp4.svg``, ``tp4.mmd``, ``tcp.svg``,
    ``tcp.mmd``) into *directory*; return the paths written."""
    return write_ladders(demo_ladders(result, recorder), directory)
