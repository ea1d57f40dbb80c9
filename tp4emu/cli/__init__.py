"""The ``tp4emu`` command line (also ``python -m tp4emu``).

Subcommands:

``demo``
    TP4's confirming ``accept()`` beside RFC 1006's, on loopback, with a
    timeline and checked outcomes (:mod:`tp4emu.cli.demo`).
``serve`` / ``connect``
    The access-list echo server and its client, over ``--transport tp4`` or
    ``tcp`` (:mod:`tp4emu.cli.apps`).
``ladder``
    A capture drawn as a ladder (message sequence) diagram, Mermaid or SVG
    (:mod:`tp4emu.cli.ladder`).
``decode``
    Decode TPDUs from hex arguments (one datagram per argument), from stdin
    (one datagram per line) or from a capture file (``--pcap``), and print
    them one line per TPDU, or one JSON object per datagram (``--json``).

Adding a subcommand: write ``_add_<name>_parser(subparsers, common)`` that
creates its parser (``parents=[common]`` gives it the shared options) and sets
``func=_cmd_<name>``, call it from :func:`build_parser`, and write
``_cmd_<name>(args) -> int`` returning the exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..wire.describe import (
    DEFAULT_DATA_LIMIT,
    describe,
    describe_error,
    format_error,
    format_tpdu,
)
from ..wire.errors import TPDUError
from ..wire.tpdu import TPDU, _decode_one, decode

__all__ = ["build_parser", "main"]

PROG = "tp4emu"

# ---------------------------------------------------------------- output


class Printer:
    """Writes lines to a text stream, with rich colours only on a terminal.

    ``color`` is ``"auto"`` (colours when the stream is a TTY and ``NO_COLOR``
    is not set), ``"always"`` or ``"never"``. Without colours the lines are
    written with :func:`print` exactly as given, so the output stays greppable.
    """

    def __init__(self, stream: TextIO, color: str = "auto") -> None:
        self.stream = stream
        if color == "always":
            enabled = True
        elif color == "never":
            enabled = False
        else:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
        self._console: Any = None
        if enabled:
            from rich.console import Console

            self._console = Console(
                file=stream,
                force_terminal=True,
                soft_wrap=True,
                highlight=False,
                markup=False,
                emoji=False,
            )

    def line(self, text: str, style: str | None = None, *, head: str | None = None) -> None:
        """Write *text*; *style* colours it, *head* is a prefix in bold (on a TTY)."""
        if self._console is None:
            print(text if head is None else head + text, file=self.stream)
            return
        from rich.text import Text

        out = Text()
        if head is not None:
            out.append(head, style="bold")
        out.append(text, style=style or "")
        self._console.print(out)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tp4emu`` command, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ISO 8073 / X.224 transport class 4 over UDP: tools.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output: auto (only on a terminal, the default), always, never",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_decode_parser(subparsers, common)
    _add_demo_parser(subparsers, common)
    _add_serve_parser(subparsers, common)
    _add_connect_parser(subparsers, common)
    from .ladder import add_ladder_parser

    add_ladder_parser(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse cannot take `connect ADDR --tsap T MSG...`: messages after options.
        if getattr(args, "command", None) != "connect" or any(x.startswith("-") for x in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.target += extras
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = func(args)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        return 130
    return status


# ---------------------------------------------------------------- demo


def _add_demo_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "demo",
        parents=[common],
        help="TP4's confirming accept() beside TCP's, on loopback, in a few seconds",
        description=(
            "A server with an access list takes an allowed and a denied client, over TP4 "
            "(accept while CONFIRMING: CC or DR after the decision) and over TCP (connect "
            "returns before the server looks). Exit status 0 only when every expected "
            "outcome happened."
        ),
    )
    p.add_argument(
        "--loss", type=float, default=0.0, metavar="P", help="lose UDP datagrams with probability P"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the loss injection")
    p.add_argument("--pcap", metavar="FILE", help="record the TP4 part's TPDUs")
    p.add_argument("--ladder", metavar="DIR", help="write the run's ladder diagrams (SVG, Mermaid)")
    p.add_argument(
        "--decide-delay",
        type=float,
        default=0.3,
        metavar="S",
        help="how long the server takes to decide (default 0.3 s)",
    )
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    import trio
    from rich.console import Console

    from .demo import render, run_demo

    if not 0.0 <= args.loss < 1.0:
        print(f"{PROG} demo: --loss must be in [0, 1)", file=sys.stderr)
        return 2
    from .ladder import DemoRecorder, write_demo_ladders

    recorder = DemoRecorder() if args.ladder else None
    result = trio.run(
        lambda: run_demo(
            loss=args.loss,
            seed=args.seed,
            pcap_path=args.pcap,
            decide_delay=args.decide_delay,
            recorder=recorder,
        )
    )
    color = {"always": True, "never": False}.get(args.color)
    console = Console(force_terminal=color, no_color=color is False, highlight=False)
    render(result, console)
    if recorder is not None:
        for path in write_demo_ladders(args.ladder, result, recorder):
            console.print(f"ladder written: {path}", soft_wrap=True, markup=False)
    return 0 if result.ok else 1


# ------------------------------------------------------- serve and connect


def _add_serve_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "serve",
        parents=[common],
        help="TP4 echo server with an access list checked while connections are confirming",
        description=(
            "Accept TP4 connections; each is still CONFIRMING when accepted: print the peer "
            "(getpeername), check it against the access list, reject it with a DR or confirm "
            "it by receiving, then echo every TSDU. One line per event; runs until interrupted."
        ),
    )
    p.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="address to bind (UDP, or TCP with tcp)",
    )
    p.add_argument("--tsap", help="called TSAP to serve (text, or hex:0102); default: any")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR", help="admit only these")
    p.add_argument("--deny", action="append", default=[], metavar="CIDR", help="refuse these")
    p.add_argument(
        "--reject-reason", type=int, default=128, help="DR reason for refused peers (default 128)"
    )
    p.add_argument("--pcap", metavar="FILE", help="record every TPDU sent and received")
    p.add_argument(
        "--exit-after", type=int, metavar="N", help="stop after N connections were decided"
    )
    _add_transport_option(p)
    from .inetd import add_exec_options

    add_exec_options(p)  # --exec CMD [ARGS...]: the inetd-style super-server
    p.set_defaults(func=_cmd_serve)


def _add_transport_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transport",
        choices=("tp4", "tcp"),
        default="tp4",
        help="tp4: class 4 over UDP (default); tcp: RFC 1006 class 0 over TCP",
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from .inetd import serve_exec

    if (status := serve_exec(args, f"{PROG} serve")) is not None:
        return status
    import trio

    from ..wire import DRReason
    from .apps import AccessList, parse_address, parse_tsap, run_server

    try:
        listen = parse_address(args.listen)
        access = AccessList.parse(args.allow, args.deny)
        reason = DRReason(args.reject_reason)
    except ValueError as exc:
        print(f"{PROG} serve: {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(
            lambda: run_server(
                listen,
                tsap=parse_tsap(args.tsap),
                access=access,
                reject_reason=reason,
                pcap_path=args.pcap,
                exit_after=args.exit_after,
                transport=args.transport,
            )
        )
    except KeyboardInterrupt:
        return 0


def _add_connect_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "connect",
        parents=[common],
        help="connect to a TP4 server, send messages, print the replies",
        description=(
            "Connect (CR), send each MESSAGE (or each line of stdin) as one TSDU and print "
            "each reply. A rejection prints the DR reason and exits with status 1 "
            "(2 when the CR went unanswered)."
        ),
    )
    p.add_argument(
        "target", nargs="+", metavar="HOST:PORT [MESSAGE ...]", help="server, then messages"
    )
    p.add_argument("--tsap", help="called TSAP (text, or hex:0102)")
    p.add_argument("--calling-tsap", help="calling TSAP (text, or hex:0102)")
    p.add_argument("--data", default="", help="connect data carried in the CR (<= 32 octets)")
    p.add_argument("--pcap", metavar="FILE", help="record every TPDU sent and received")
    _add_transport_option(p)
    p.set_defaults(func=_cmd_connect)


def _cmd_connect(args: argparse.Namespace) -> int:
    import trio

    from .apps import parse_address, parse_tsap, run_client

    address, *words = args.target
    try:
        peer = parse_address(address)
    except ValueError as exc:
        print(f"{PROG} connect: {exc}", file=sys.stderr)
        return 2
    data = args.data.encode()
    if len(data) > 32:
        print(f"{PROG} connect: --data is limited to 32 octets", file=sys.stderr)
        return 2
    messages = [m.encode() for m in words] if words else None
    if args.transport == "tcp" and data:
        print(
            f"{PROG} connect: --data needs --transport tp4 (class 0 has no connect data)",
            file=sys.stderr,
        )
        return 2
    return trio.run(
        lambda: run_client(
            peer,
            messages,
            tsap=parse_tsap(args.tsap),
            calling_tsap=parse_tsap(args.calling_tsap),
            data=data,
            pcap_path=args.pcap,
            transport=args.transport,
        )
    )


# ---------------------------------------------------------------- decode


def _add_decode_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "decode",
        parents=[common],
        help="decode TPDUs from hex, stdin or a capture file",
        description=(
            "Decode ISO 8073 TPDUs. Each HEX argument is one datagram (spaces and "
            "colons allowed inside, as one quoted argument); with no argument, "
            "datagrams are read from stdin, one per line (blank lines and lines "
            "starting with '#' are skipped); --pcap reads a capture instead. "
            "Exit status 1 when any datagram fails to decode."
        ),
    )
    p.add_argument("hex", nargs="*", metavar="HEX", help="a datagram in hex")
    p.add_argument(
        "--pcap",
        metavar="FILE",
        help="decode the UDP datagrams (and RFC 1006 TPKTs) of a pcap/pcapng file",
    )
    p.add_argument(
        "--port",
        dest="ports",
        metavar="PORT",
        type=int,
        action="append",
        help="with --pcap: only datagrams from or to PORT (repeatable)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per datagram (JSON Lines)",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--extended",
        dest="extended",
        action="store_const",
        const=True,
        default=None,
        help="DT/ED/AK/EA/RJ use the extended format (default: inferred from the LI)",
    )
    fmt.add_argument(
        "--normal",
        dest="extended",
        action="store_const",
        const=False,
        help="DT/ED/AK/EA/RJ use the normal format",
    )
    p.add_argument(
        "-x",
        "--data",
        dest="show_data",
        action="store_true",
        help="also show the user data in hex (text output)",
    )
    p.add_argument(
        "--data-limit",
        metavar="N",
        type=int,
        default=DEFAULT_DATA_LIMIT,
        help=f"show at most N octets of user data in hex (default {DEFAULT_DATA_LIMIT})",
    )
    p.set_defaults(func=_cmd_decode)


@dataclass
class _Datagram:
    """One datagram to decode and what is known about where it came from."""

    index: int
    payload: bytes | None
    """The octets, or None when the input could not be read as hex."""
    input_error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields (capture: frame, timestamp, transport, src, dst)."""
    head: str = ""
    """Extra text for the datagram's header line."""


_HEX_DIGITS = frozenset(string.hexdigits)


def parse_hex(text: str) -> bytes:
    """Octets from hex text; whitespace, colons and a leading ``0x`` are allowed.

    Raises:
        ValueError: a character that is not a hex digit, or an odd number of digits.
    """
    digits = "".join(text.split()).replace(":", "")
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    bad = sorted({c for c in digits if c not in _HEX_DIGITS})
    if bad:
        raise ValueError(f"not hex: {''.join(bad)!r} in {text.strip()!r}")
    if len(digits) % 2:
        raise ValueError(f"odd number of hex digits ({len(digits)}) in {text.strip()!r}")
    return bytes.fromhex(digits)


def _from_hex(items: Iterator[str]) -> Iterator[_Datagram]:
    for index, text in enumerate(items):
        try:
            yield _Datagram(index, parse_hex(text))
        except ValueError as exc:
            yield _Datagram(index, None, input_error=f"invalid hex: {exc}")


def _stdin_lines(stream: TextIO) -> Iterator[str]:
    for line in stream:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield stripped


def _address(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) == 2:
        host, port = addr
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr)


def _from_pcap(path: str, ports: list[int] | None) -> Iterator[_Datagram]:
    from ..capture import read_pcap  # lazy: only --pcap needs it

    index = 0
    for rec in read_pcap(path, udp_ports=ports):
        # read_pcap filters captured UDP packets; exported-PDU records and
        # TPKTs are filtered here.
        if ports and rec.src[1] not in ports and rec.dst[1] not in ports:
            continue
        src, dst = _address(rec.src), _address(rec.dst)
        transport, frame = rec.transport, rec.frame
        meta: dict[str, Any] = {
            "frame": frame,
            "timestamp": rec.timestamp,
            "transport": transport,
            "src": src,
            "dst": dst,
        }
        frame_token = f" frame={frame}" if frame else ""
        head = f"{frame_token} t={rec.timestamp:.6f} {transport} {src} > {dst}"
        yield _Datagram(index, bytes(rec.payload), meta=meta, head=head)
        index += 1


def _decode_datagram(payload: bytes, extended: bool | None) -> tuple[list[TPDU], TPDUError | None]:
    """Decode *payload*; on error, also the TPDUs that precede the faulty one."""
    try:
        return decode(payload, extended=extended), None
    except TPDUError as exc:
        error = exc
    partial: list[TPDU] = []
    offset = 0
    try:
        while offset < len(payload):
            tpdu, offset = _decode_one(payload, offset, extended, fast=True)
            partial.append(tpdu)
    except TPDUError:
        pass
    return partial, error


def _cmd_decode(args: argparse.Namespace) -> int:
    out = Printer(sys.stdout, args.color)
    if args.pcap is not None and args.hex:
        print(f"{PROG} decode: give either HEX arguments or --pcap, not both", file=sys.stderr)
        return 2
    if args.ports and args.pcap is None:
        print(f"{PROG} decode: --port only applies to --pcap", file=sys.stderr)
        return 2
    source: Iterator[_Datagram]
    if args.pcap is not None:
        source = _from_pcap(args.pcap, args.ports)
    elif args.hex:
        source = _from_hex(iter(args.hex))
    else:
        source = _from_hex(_stdin_lines(sys.stdin))

    failed = 0
    total = 0
    try:
        for dgram in source:
            total += 1
            if not _show_datagram(dgram, args, out):
                failed += 1
    except TPDUError as exc:  # a capture file that cannot be read (PcapError)
        print(f"{PROG} decode: {args.pcap}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as exc:
        print(f"{PROG} decode: {exc}", file=sys.stderr)
        return 1
    if failed:
        print(f"{PROG} decode: {failed} of {total} datagrams failed to decode", file=sys.stderr)
        return 1
    return 0


def _show_datagram(dgram: _Datagram, args: argparse.Namespace, out: Printer) -> bool:
    """Print one datagram; return whether it decoded."""
    limit = max(0, args.data_limit)
    if dgram.payload is None:
        if args.json:
            obj = {"index": dgram.index, **dgram.meta}
            obj.update({"error": dgram.input_error, "reason": None, "cause": None})
            out.line(json.dumps(obj))
        else:
            out.line(dgram.head, head=f"#{dgram.index}")
            out.line(f"  error: {dgram.input_error}", "red")
        return False
    tpdus, error = _decode_datagram(dgram.payload, args.extended)
    if args.json:
        obj = {"index": dgram.index, **dgram.meta, "length": len(dgram.payload)}
        if error is not None:
            obj.update(describe_error(error))
        obj["tpdus"] = [describe(t, data_limit=limit) for t in tpdus]
        out.line(json.dumps(obj))
        return error is None
    out.line(f"{dgram.head} len={len(dgram.payload)}", "dim", head=f"#{dgram.index}")
    for tpdu in tpdus:
        text = format_tpdu(tpdu, show_data=args.show_data, data_limit=limit)
        for i, line in enumerate(text.split("\n")):
            style = None
            if i == 0 and tpdu.checksum_ok is False:
                style = "yellow"
            out.line(line, style, head="  " if i == 0 else None)
    if error is not None:
        out.line("  " + format_error(error), "red")
    return error is None
