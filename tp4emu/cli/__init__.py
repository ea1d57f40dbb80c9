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
``conformance``
    Test another implementation against ISO 8073 / RFC 1006
    (:mod:`tp4emu.cli.conformance`).
``decode``
    Decode TPDUs from hex arguments (one datagram per argument), from stdin
    (one datagram per line) or from a capture file (``--pcap``), and print
    them one line per TPDU, or one JSON object per datagram (``--json``).
``wireshark``
    Open a capture in tshark (or Wireshark) with the options that show it
    cleanly (:mod:`tp4emu.cli.wireshark`).
``bench``
    Measure tp4emu against raw UDP and TCP on loopback: a table and JSON
    (:mod:`tp4emu.cli.bench`, :mod:`tp4emu.bench`).

Exit status: 0 on success; 2 when the command line is wrong (one line on
stderr, or argparse's usage and error for unknown options); 1 when the
command could not be carried out (an address in use, a file that cannot be
written, a refused connection: one line); 130 when interrupted (Ctrl-C,
no traceback).

Options may come before, between or after the positional arguments; ``--``
ends the options (``tp4emu connect HOST:PORT -- -a-message``).

Adding a subcommand: write ``_add_<name>_parser(subparsers, common)`` that
creates its parser (``parents=[common]`` gives it the shared options) and sets
``func=_cmd_<name>``, call it from :func:`build_parser`, and write
``_cmd_<name>(args) -> int`` returning the exit status (raise
:class:`~tp4emu.cli.apps.CommandError` for a one-line failure).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import string
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from ..wire.describe import (
    DEFAULT_DATA_LIMIT,
    describe,
    describe_error,
    format_error,
    format_tpdu,
)
from ..wire.errors import TPDUError
from ..wire.tpdu import TPDU, _decode_one, decode
from .errors import CommandError
from .output import Printer

__all__ = ["CommandError", "Printer", "build_parser", "main", "version"]

PROG = "tp4emu"

T = TypeVar("T")


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("tp4emu")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return str(getattr(sys.modules.get("tp4emu"), "__version__", "unknown"))


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tp4emu`` command, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ISO 8073 / X.224 transport class 4 over UDP: tools.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
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
    _add_wireshark_parser(subparsers, common)
    from .ladder import add_ladder_parser

    add_ladder_parser(subparsers, common)
    from .conformance import add_conformance_parser

    add_conformance_parser(subparsers, common)
    from .bench import add_bench_parser

    add_bench_parser(subparsers, common)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parse_command(sub: argparse.ArgumentParser, tokens: list[str]) -> argparse.Namespace:
    """Parse one subcommand's arguments: options anywhere, ``--`` ends them.

    What follows ``--`` goes to the subcommand's list positional (``nargs="*"``).
    Errors print the subcommand's usage (exit status 2).
    """
    command: list[str] | None = None
    if "--exec" in tokens:
        # everything after ``serve --exec`` is the child's command line, its own ``--`` too
        i = tokens.index("--exec")
        tokens, command = [*tokens[:i], "--exec"], tokens[i + 1 :]
    before, after = tokens, []
    if "--" in tokens:
        i = tokens.index("--")
        before, after = tokens[:i], tokens[i + 1 :]
    try:
        args, extras = sub.parse_known_intermixed_args(before)
    except TypeError:  # a parser that intermixed parsing cannot take
        args, extras = sub.parse_known_args(before)
    if extras:
        sub.error(f"unrecognized arguments: {' '.join(extras)}")
    if after:
        rest = [a for a in sub._actions if not a.option_strings and a.nargs in ("*", "+")]
        if not rest:
            sub.error(f"unrecognized arguments: {' '.join(after)}")
        dest = rest[-1].dest
        setattr(args, dest, [*(getattr(args, dest) or []), *after])
    if command is not None:
        args.exec_argv = command
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = _subcommands(parser)
    if argv and argv[0] in commands:
        args = _parse_command(commands[argv[0]], argv[1:])
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return _run(func, args)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call the subcommand; turn its failures into one line and an exit status."""
    try:
        try:
            return func(args)
        except BaseExceptionGroup as group:
            leaves = list(_leaves(group))
            if any(isinstance(e, KeyboardInterrupt) for e in leaves):
                raise KeyboardInterrupt from None
            if len(leaves) == 1 and isinstance(leaves[0], Exception):
                raise leaves[0] from None
            raise
    except KeyboardInterrupt:
        return 130
    except CommandError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as exc:  # what the system refused, and no one caught before
        print(f"{PROG} {args.command}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _usage_error(message: str) -> CommandError:
    return CommandError(message, 2)


def _checked(parse: Callable[[], T]) -> T:
    """*parse()*, its ValueError a usage error (one line, exit status 2)."""
    try:
        return parse()
    except ValueError as exc:
        raise _usage_error(str(exc)) from None


def _with_pcap_hint(pcap_path: str | None, run: Callable[[], T]) -> T:
    """*run()*; then, when it wrote *pcap_path*, one line on stderr telling how
    to open it (also after Ctrl-C; not when the command could not start)."""
    from .wireshark import pcap_hint

    def hint() -> None:
        line = pcap_hint(pcap_path) if pcap_path else None
        if line:
            print(line, file=sys.stderr)

    try:
        result = run()
    except CommandError:
        raise
    except BaseException:
        hint()
        raise
    hint()
    return result


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
        raise _usage_error(f"--loss must be in [0, 1), got {args.loss:g}")
    if not 0.0 <= args.decide_delay <= 10.0:
        raise _usage_error(f"--decide-delay must be in [0, 10] seconds, got {args.decide_delay:g}")
    from .ladder import DemoRecorder, write_demo_ladders

    color = {"always": True, "never": False}.get(args.color)
    console = Console(force_terminal=color, no_color=color is False, highlight=False)
    recorder = DemoRecorder() if args.ladder else None

    def run() -> int:
        result = trio.run(
            lambda: run_demo(
                loss=args.loss,
                seed=args.seed,
                pcap_path=args.pcap,
                decide_delay=args.decide_delay,
                recorder=recorder,
            )
        )
        render(result, console)
        if recorder is not None:
            for path in write_demo_ladders(args.ladder, result, recorder):
                console.print(f"ladder written: {path}", soft_wrap=True, markup=False)
        return 0 if result.ok else 1

    return _with_pcap_hint(args.pcap, run)


# ------------------------------------------------------- serve and connect


def _add_serve_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "serve",
        parents=[common],
        help="TP4 echo server with an access list checked while connections are confirming",
        description=(
            "Accept TP4 connections; each is still CONFIRMING when accepted: print the peer "
            "(getpeername), check it against the access list, reject it with a DR or confirm "
            "it by receiving, then echo every TSDU. CRs the endpoint refuses before any "
            "accept (no listener for the called TSAP, backlog full) are printed too. One "
            "line per event; runs until interrupted (Ctrl-C: exit status 130)."
        ),
    )
    p.add_argument(
        "--listen",
        required=True,
        metavar="HOST:PORT",
        help="address to bind (UDP, or TCP with tcp; [::1]:PORT for IPv6; port 0: any)",
    )
    p.add_argument("--tsap", help="called TSAP to serve (text, or hex:0102); default: any")
    p.add_argument("--allow", action="append", default=[], metavar="CIDR", help="admit only these")
    p.add_argument("--deny", action="append", default=[], metavar="CIDR", help="refuse these")
    p.add_argument(
        "--reject-reason",
        default="128",
        metavar="REASON",
        help="DR reason for refused peers, a number or a name (default 128, NORMAL)",
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

    from .apps import AccessList, parse_address, parse_reason, parse_tsap, run_server

    listen = _checked(lambda: parse_address(args.listen, what="--listen"))
    access = _checked(lambda: AccessList.parse(args.allow, args.deny))
    reason = _checked(lambda: parse_reason(args.reject_reason))
    tsap = _checked(lambda: parse_tsap(args.tsap))
    if args.exit_after is not None and args.exit_after < 1:
        raise _usage_error(f"--exit-after must be at least 1, got {args.exit_after}")
    return _with_pcap_hint(
        args.pcap,
        lambda: trio.run(
            lambda: run_server(
                listen,
                tsap=tsap,
                access=access,
                reject_reason=reason,
                pcap_path=args.pcap,
                exit_after=args.exit_after,
                transport=args.transport,
                color=args.color,
            )
        ),
    )


_CONNECT_USAGE = "%(prog)s [options] HOST:PORT [MESSAGE ...]"


def _add_connect_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "connect",
        parents=[common],
        usage=_CONNECT_USAGE,
        help="connect to a TP4 server, send messages, print the replies",
        description=(
            "Connect (CR), send each MESSAGE as one TSDU and print each reply; without "
            "MESSAGEs, send each line of stdin as it is typed (replies are printed as they "
            "come) until end of input. A refusal prints the reason and exits with status 1; "
            "no answer within --timeout exits with status 2."
        ),
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="HOST:PORT [MESSAGE ...]",
        help="the server ([::1]:PORT for IPv6), then the messages (after -- when one starts "
        "with -)",
    )
    p.add_argument("--tsap", help="called TSAP (text, or hex:0102)")
    p.add_argument("--calling-tsap", help="calling TSAP (text, or hex:0102)")
    p.add_argument(
        "--data",
        default="",
        help="connect data carried in the CR (text, or hex:0102): <= 32 octets over tp4; over "
        "tcp as much as the header holds (e.g. an RDP cookie and RDP_NEG_REQ, docs/rdp.md)",
    )
    p.add_argument(
        "--no-tpdu-size",
        action="store_true",
        help="tcp: leave the TPDU size parameter out of the CR (as RDP clients do)",
    )
    p.add_argument(
        "--bind",
        metavar="HOST[:PORT]",
        help="local address to connect from (default: any, of the server's family)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up when the connection is not made, or a reply does not come, within "
        "S seconds (default 10; 0: wait as long as the protocol does)",
    )
    p.add_argument("--pcap", metavar="FILE", help="record every TPDU sent and received")
    _add_transport_option(p)
    p.set_defaults(func=_cmd_connect)


def _parse_bind(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``V6``, ``[V6]`` or ``[V6]:PORT``; port 0 when none."""
    import ipaddress

    from .apps import parse_address

    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if ":" not in text:  # a host without a port
            return parse_address(f"{text}:0", what="--bind")
        return parse_address(text, what="--bind")
    return bare, 0


def _cmd_connect(args: argparse.Namespace) -> int:
    import ipaddress

    import trio

    from .apps import check_bindable, parse_address, parse_tsap, resolve_host, run_client

    if not args.target:
        raise _usage_error(
            "missing HOST:PORT (usage: tp4emu connect [options] HOST:PORT [MESSAGE ...])"
        )
    address, *words = args.target
    host, port = _checked(lambda: parse_address(address, what="server", port_zero=False))
    tsap = _checked(lambda: parse_tsap(args.tsap))
    calling = _checked(lambda: parse_tsap(args.calling_tsap, what="--calling-tsap"))
    bind = _checked(lambda: _parse_bind(args.bind)) if args.bind is not None else None
    if not (args.timeout >= 0 and math.isfinite(args.timeout)):
        raise _usage_error(f"--timeout must be a number of seconds >= 0, got {args.timeout:g}")
    data = _checked(lambda: parse_tsap(args.data, what="--data")) or b""
    if args.transport == "tp4" and len(data) > 32:
        raise _usage_error(f"--data is limited to 32 octets over tp4, got {len(data)}")
    if args.no_tpdu_size and args.transport != "tcp":
        raise _usage_error("--no-tpdu-size needs --transport tcp")
    peer = (resolve_host(host), port)
    if bind is not None:
        bind = (resolve_host(bind[0]), bind[1])
        if ipaddress.ip_address(bind[0]).version != ipaddress.ip_address(peer[0]).version:
            raise _usage_error(
                f"--bind {args.bind} and the server {address} are not of the same address family"
            )
        check_bindable(bind[0], args.transport)
    messages = [m.encode() for m in words] if words else None
    return _with_pcap_hint(
        args.pcap,
        lambda: trio.run(
            lambda: run_client(
                peer,
                messages,
                tsap=tsap,
                calling_tsap=calling,
                data=data,
                propose_tpdu_size=not args.no_tpdu_size,
                pcap_path=args.pcap,
                transport=args.transport,
                bind=bind,
                timeout=args.timeout or None,
                color=args.color,
            )
        ),
    )


# ---------------------------------------------------------------- wireshark


def _add_wireshark_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "wireshark",
        usage="%(prog)s [options] FILE [-- TSHARK-OPTION ...]",
        help="open a capture in tshark (or Wireshark) with the options that show it cleanly",
        description=(
            "Run tshark -r FILE with the heuristic dissectors that misread COTP user data "
            "disabled (their frames would show as [Malformed Packet]), plus the Lua UDP "
            "binding when FILE is not an exported-PDU capture as tp4emu writes them. "
            "Options after -- go to tshark (e.g. -- -V, or -- -Y 'cotp.type == 0x08'). "
            "The exit status is tshark's."
        ),
    )
    p.add_argument("args", nargs="*", metavar="FILE", help="the capture file, then tshark options")
    p.add_argument("--gui", action="store_true", help="run Wireshark instead of tshark")
    p.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="print the command line instead of running it",
    )
    p.add_argument(
        "--lua", action="store_true", help="print the path of the Lua UDP binding and exit"
    )
    p.set_defaults(func=_cmd_wireshark)


def _cmd_wireshark(args: argparse.Namespace) -> int:
    from ..capture import LUA_SCRIPT
    from .wireshark import run_viewer, view_command

    if args.lua:
        print(LUA_SCRIPT)
        return 0
    if not args.args:
        raise _usage_error(
            "missing FILE (usage: tp4emu wireshark [options] FILE [-- TSHARK-OPTION ...])"
        )
    path, *extra = args.args
    if args.print_only:
        print(shlex.join(view_command(path, gui=args.gui, extra=extra)))
        return 0
    status, error = run_viewer(path, gui=args.gui, extra=extra)
    if error is not None:
        raise CommandError(error, 1)
    return status


# ---------------------------------------------------------------- decode


def _add_decode_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "decode",
        parents=[common],
        help="decode TPDUs from hex, stdin or a capture file",
        description=(
            "Decode ISO 8073 TPDUs. Each HEX argument is one datagram (spaces and "
            "colons allowed inside, as one quoted argument); with no argument, "
            "datagrams are read from stdin (not a terminal), one per line (blank lines "
            "and lines starting with '#' are skipped); --pcap reads a capture instead. "
            "Exit status 1 when any datagram fails to decode, 2 when a HEX argument "
            "is not hex."
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
        # Arguments are checked before anything is printed: bad hex there is a
        # usage error (bad hex on stdin is a datagram that fails to decode).
        payloads = []
        for i, text in enumerate(args.hex):
            try:
                payloads.append(parse_hex(text))
            except ValueError as exc:
                raise _usage_error(f"HEX argument {i + 1}: {exc}") from None
        source = (_Datagram(i, payload) for i, payload in enumerate(payloads))
    else:
        isatty = getattr(sys.stdin, "isatty", None)
        if sys.stdin is None or (isatty is not None and isatty()):
            raise _usage_error(
                "no input: give HEX arguments, --pcap FILE, or datagrams in hex on stdin"
                " (one per line)"
            )
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
