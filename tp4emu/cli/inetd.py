"""``tp4emu serve --exec CMD [ARGS...]``: an inetd-style super-server whose child decides.

For each connection ``accept()`` returns (over TP4 still CONFIRMING: nothing
sent yet) the super-server starts CMD, its stdin and stdout joined to the
connection, the connection's facts in its environment
(:func:`tp4emu.inherit.connection_environment`), and lets the child decide as
an inetd child under netiso would:

* its first output confirms: the CC goes out, then what it wrote;
* closing its output (exiting) before writing anything rejects: a DR whose
  reason follows the exit status (:data:`EXIT_REASONS`, :func:`reason_for_exit`);
* ``--confirm-first`` confirms before starting it, for children that read first.

The UDP socket is shared by every connection of the endpoint, so the
connection cannot be handed down as inetd hands down a TCP socket: the
super-server keeps it and relays between it and the child's pipes, in one of
three framings (``--framing``):

``stream`` (the default)
    Each chunk read from the child's stdout (one read, at most 64 KiB) is sent
    as one TSDU; each TSDU received is written to its stdin as it is. A pipe
    may merge or split writes: TSDU boundaries are not kept from the child's
    writes. An empty TSDU ends the child's input (as
    :class:`~tp4emu.transport.stream.TSDUStream` reads it).
``line``
    One TSDU per line: each line of the child's stdout, without its newline,
    is one TSDU (a line longer than 64 KiB goes in pieces of 64 KiB; a last
    line without newline counts); each TSDU received is written followed by a
    newline (a TSDU holding newlines arrives as several lines).
``message``
    The child takes the connection over itself (a Python child with
    :func:`tp4emu.inherited_connection`): the control protocol of
    :mod:`tp4emu.inherit` on a socket pair, its descriptor in
    ``TP4EMU_CONNECTION_FD``. stdin is /dev/null, stdout is logged as stderr
    is. Its first confirm, send or receive confirms; its reject or its close
    while CONFIRMING rejects; closing the socket (exiting) before either
    rejects by exit status, as above.

The connection is released when the child's output ends (``message``: its
control socket) after it confirmed; the child's stdin gets end-of-file when
the peer releases. Over ``--transport tcp`` the listener hands over RFC 1006
connections CONFIRMING too (``listen(auto_confirm=False)``): the same child
decides the CC or the DR, but the TCP connection itself was established
before the child started.

Bounds: at most ``--max-children`` children at a time (a connection beyond
them is refused at once: DR reason 1, congestion at TSAP); a child that has
not decided within ``--decide-timeout`` is rejected (DR reason 0) and stopped;
a child still running ``--kill-after`` seconds after its connection ended is
stopped (SIGTERM to its process group, SIGKILL one second later); every child
is reaped and its exit reported; its stderr is logged line by line (at most
:data:`LOG_LINES` lines a child); the super-server stops its children when it
stops (SIGINT, SIGTERM, SIGHUP: exit status 128 + the signal). Whatever a
child does (crash, garbage, never exiting) ends that child's connection only.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from ..api import Transport, _close_quietly, _contained, _peer_name, open_endpoint
from ..core import Config, Disconnected, State, TP4Error
from ..inherit import (
    CLOSE,
    CONFIRM,
    DATA,
    END,
    ERROR,
    OK,
    RECEIVE,
    RECEIVE_EXPEDITED,
    REJECT,
    REQUESTS,
    SEND,
    SEND_EXPEDITED,
    ControlProtocolError,
    Frame,
    FrameBuffer,
    connection_environment,
    encode_error,
    encode_frame,
    state_octet,
)
from ..transport.tcp import TCPEndpoint
from ..wire import DRReason

__all__ = [
    "DEFAULTS",
    "EXIT_REASONS",
    "FRAMINGS",
    "LOG_LINES",
    "ExecOptions",
    "add_exec_options",
    "options_markdown",
    "reason_for_exit",
    "reasons_markdown",
    "run_inetd",
    "serve_exec",
]

log = logging.getLogger("tp4emu.inetd")

FRAMINGS = ("stream", "line", "message")
"""The values of ``--framing``."""

EXIT_REASONS: dict[int, DRReason] = {
    68: DRReason.ADDRESS_UNKNOWN,  # EX_NOHOST
    69: DRReason.SESSION_NOT_ATTACHED,  # EX_UNAVAILABLE: the client gets ECONNREFUSED
    75: DRReason.CONGESTION,  # EX_TEMPFAIL
    76: DRReason.PROTOCOL_ERROR,  # EX_PROTOCOL
    77: DRReason.REFUSED_ON_THIS_NETWORK_CONNECTION,  # EX_NOPERM: ECONNREFUSED
}
"""Exit statuses (sysexits.h) that choose another DR reason than 128 when a
child exits before deciding; any other status gives 128 (netiso's DR when a
confirming socket is closed, whatever the process exits with)."""
_SYSEXITS = {68: "EX_NOHOST", 69: "EX_UNAVAILABLE", 75: "EX_TEMPFAIL", 76: "EX_PROTOCOL"}
_SYSEXITS[77] = "EX_NOPERM"

LOG_LINES = 200
"""Lines of a child's stderr (``message`` framing: and stdout) logged; the rest are counted."""

_CHUNK = 65536
"""Octets read from a child's pipe at a time (``stream``: the largest TSDU one read makes)."""
_LINE_LIMIT = 65536
"""``line`` framing: the longest TSDU one line makes."""
_LOG_LINE = 1000
"""Characters of a logged line kept."""
_EXIT_WAIT = 1.0
"""How long a child whose output ended undecided may take to exit, so that its status counts."""
_TERM_WAIT = 1.0
"""Seconds between SIGTERM and SIGKILL."""
_EXPECTED = (
    TP4Error,
    OSError,
    ValueError,
    trio.ClosedResourceError,
    trio.BrokenResourceError,
    trio.BusyResourceError,
)
"""What a call on the connection raises in the normal course of things (not logged)."""


def reason_for_exit(returncode: int | None) -> DRReason:
    """The DR reason for a child that ended before deciding.

    *returncode* is its exit status, ``-N`` when killed by signal N (then DR
    reason 0, not specified: it failed, it did not decide), or None when it
    closed its output but had not exited within a second (128).
    """
    if returncode is None:
        return DRReason.NORMAL
    if returncode < 0:
        return DRReason.NOT_SPECIFIED
    return EXIT_REASONS.get(returncode, DRReason.NORMAL)


def _row(when: str, reason: int) -> str:
    # netiso: the client's connect() fails ECONNREFUSED for 2, 135, 136, ECONNABORTED else
    errno_name = "ECONNREFUSED" if reason in (2, 135, 136) else "ECONNABORTED"
    return f"| {when} | {reason} ({DRReason(reason).name}) | {errno_name} |"


def reasons_markdown() -> str:
    """The table of docs/inetd.md: how a connection ends undecided, and its DR reason."""
    rows = [
        "| the child, undecided, ... | DR reason | client's `connect()` (netiso) |",
        "|---|---|---|",
        _row("exits 0, 1, or any status not listed below", reason_for_exit(1)),
    ]
    for status, reason in sorted(EXIT_REASONS.items()):
        rows.append(_row(f"exits {status} (`{_SYSEXITS[status]}`)", reason))
    rows += [
        _row("is killed by a signal (crashes)", reason_for_exit(-9)),
        _row(
            f"closes its output and is still running {_EXIT_WAIT:g} s later", reason_for_exit(None)
        ),
        _row("has not decided after `--decide-timeout` (then it is stopped)", 0),
        _row("cannot be started (`exec` fails)", DRReason.SESSION_NOT_ATTACHED),
        _row("would be one more than `--max-children` (it is not started)", DRReason.CONGESTION),
        _row("(`message`) calls `close()` while CONFIRMING", DRReason.NORMAL),
    ]
    rows.append("| (`message`) calls `reject(reason, data)` | *reason* | by *reason* |")
    return "\n".join(rows) + "\n"


def options_markdown() -> str:
    """The options ``--exec`` brings to ``serve``, with their help (docs/inetd.md)."""
    parser = argparse.ArgumentParser(prog="serve", add_help=False)
    add_exec_options(parser)
    rows = ["| option | meaning |", "|---|---|"]
    for action in parser._actions:
        flag = action.option_strings[0]
        if action.nargs == 0:
            shown = flag
        elif action.choices:
            shown = f"{flag} {{{','.join(map(str, action.choices))}}}"
        else:
            shown = f"{flag} {action.metavar}"
        rows.append(f"| `{shown}` | {action.help} |")
    return "\n".join(rows) + "\n"


def _why(exc: BaseException) -> str:
    """How a call on the connection failed, in a few words."""
    if isinstance(exc, Disconnected):
        if exc.by_peer and exc.reason == DRReason.NORMAL:
            return "the peer released"
        return f"DR reason {int(exc.reason)}, {'by the peer' if exc.by_peer else 'local'}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _how_it_ended(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"signal={-returncode} ({name})"
    return f"status={returncode}"


@dataclass(frozen=True)
class ExecOptions:
    """How ``serve --exec`` runs its children (the CLI options, with their defaults)."""

    argv: tuple[str, ...]
    """The command and its arguments."""
    framing: str = "stream"
    """``stream``, ``line`` or ``message`` (module docstring)."""
    confirm_first: bool = False
    """Send the CC before starting the child (for children that read first)."""
    max_children: int = 40
    """Children running at a time; a connection beyond gets DR reason 1 at once."""
    decide_timeout: float = 10.0
    """Seconds a child has to confirm or reject before it is rejected (DR 0) and stopped."""
    kill_after: float = 5.0
    """Seconds a child may run on after its connection ended before it is stopped."""

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("--exec needs a command")
        if self.framing not in FRAMINGS:
            raise ValueError(f"--framing must be one of {', '.join(FRAMINGS)}")
        if self.max_children < 1:
            raise ValueError("--max-children must be at least 1")
        if not self.decide_timeout > 0:
            raise ValueError("--decide-timeout must be positive")
        if not self.kill_after >= 0:
            raise ValueError("--kill-after must not be negative")


DEFAULTS = ExecOptions(("true",))
"""The defaults of the options (the command aside)."""


def _show(data: bytes | None) -> str:
    if data is None:
        return "-"
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return "hex:" + data.hex()
    return repr(text) if text.isprintable() else "hex:" + data.hex()


class _Lines:
    """Splits a byte stream into lines (without their newline), none longer than *limit*."""

    def __init__(self, limit: int) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        lines: list[bytes] = []
        while True:
            end = self._buf.find(b"\n", 0, self._limit + 1)
            if end >= 0:
                lines.append(bytes(self._buf[:end]))
                del self._buf[: end + 1]
            elif len(self._buf) >= self._limit:
                lines.append(bytes(self._buf[: self._limit]))
                del self._buf[: self._limit]
            else:
                return lines

    def flush(self) -> list[bytes]:
        rest, self._buf = bytes(self._buf), bytearray()
        return [rest] if rest else []


async def _read(stream: trio.abc.ReceiveStream | None) -> bytes:
    """One chunk of a pipe; b"" at its end (or when it broke)."""
    if stream is None:
        return b""
    try:
        return bytes(await stream.receive_some(_CHUNK))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


class _Child:
    """One connection and the process deciding it; :meth:`run` does it all, then cleans up."""

    def __init__(
        self,
        conn: Any,
        opts: ExecOptions,
        transport: Transport,
        emit: Callable[[str], None],
        done: Callable[[], None],
        close_time: float,
    ) -> None:
        self.conn = conn
        self.opts = opts
        self.transport = transport
        self.emit = emit
        self._done: Callable[[], None] | None = done
        self.close_time = close_time
        self.peer = _peer_name(conn)
        self.who = self.peer
        self.proc: trio.Process | None = None
        self.control: socket.socket | None = None
        self.decision: str | None = None  # "confirmed" or "rejected"
        self.decided = trio.Event()
        self.finished = trio.Event()  # the connection is over (for us)
        self.exited = trio.Event()
        self.output_done = trio.Event()
        self.kill_at_once = False
        self.sending = True
        self.nursery: trio.Nursery | None = None

    # ------------------------------------------------------------ the run

    async def run(self) -> None:
        """Start the child, relay until both are done, reap it; never raises an Exception."""
        try:
            with _contained(self.peer, self.emit, what="child of"):
                await self._run()
        finally:
            with trio.CancelScope(shield=True):
                await self._clean_up()
            self.done()

    def done(self) -> None:
        """Free the child's place under ``--max-children`` (once: when it is reaped)."""
        done, self._done = self._done, None
        if done is not None:
            done()

    async def _run(self) -> None:
        conn, opts = self.conn, self.opts
        peer = conn.getpeername()
        if opts.confirm_first:
            await conn.confirm()
            self._decide("confirmed", "before exec: --confirm-first")
        child_end: socket.socket | None = None
        if opts.framing == "message":
            self.control, child_end = socket.socketpair()
        env = connection_environment(
            os.environ,
            transport=self.transport,
            peer=peer,
            local=conn.getsockname(),
            called_tsap=conn.called_tsap,
            calling_tsap=conn.calling_tsap,
            connect_data=conn.connect_data,
            state=conn.state,
            framing=opts.framing,
            fd=None if child_end is None else child_end.fileno(),
        )
        try:
            self.proc = await trio.lowlevel.open_process(
                list(opts.argv),
                stdin=subprocess.DEVNULL if child_end is not None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: stopped as a whole
                pass_fds=() if child_end is None else (child_end.fileno(),),
            )
        except OSError as exc:
            self.emit(f"error {self.peer} cannot run {opts.argv[0]!r}: {exc.strerror or exc}")
            if self.decision is None:
                self.decision = "rejected"
                await self._reject(DRReason.SESSION_NOT_ATTACHED, "no child")
            return
        finally:
            if child_end is not None:
                child_end.close()
        proc = self.proc
        self.who = f"{self.peer} pid={proc.pid}"
        self.emit(f"spawn {self.who}")
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._log_lines, proc.stderr, "stderr")
            nursery.start_soon(self._timer)
            nursery.start_soon(self._supervise)
            if self.control is not None:
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(self.control))
                self.control = None  # the stream owns it
                nursery.start_soon(self._relay_control, stream)
                nursery.start_soon(self._log_lines, proc.stdout, "stdout")
            else:
                nursery.start_soon(self._relay_output)
                if self.decision == "confirmed":
                    nursery.start_soon(self._relay_input)

    async def _clean_up(self) -> None:
        """Stop the child if it runs, reap it, close the pipes and the connection."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                self._signal(signal.SIGTERM)
                with trio.move_on_after(_TERM_WAIT):
                    await proc.wait()
            if proc.poll() is None:
                self._signal(signal.SIGKILL)
                await proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with suppress(Exception):
                        await pipe.aclose()
            if not self.exited.is_set():
                self.exited.set()
                self.emit(f"exit {self.who} {_how_it_ended(proc.returncode)}")
        if self.control is not None:
            self.control.close()
        if self.decision is None:
            self.decision = "rejected"
            returncode = None if proc is None else proc.returncode
            await self._reject(reason_for_exit(returncode), "ended undecided")
        await _close_quietly(self.conn, self.peer, self.close_time, self.emit)

    # ---------------------------------------------------------- decisions

    def _decide(self, decision: str, why: str) -> bool:
        """Record the decision (the first one counts); True when it is this one."""
        if self.decision is not None:
            return False
        self.decision = decision
        self.decided.set()
        if decision == "confirmed":
            self.emit(f"confirm {self.who} ({why})")
        return True

    async def _reject(self, reason: int, why: str) -> None:
        with _contained(self.peer, self.emit):
            await self.conn.reject(reason)
            self.emit(f"reject {self.who} reason={int(reason)} ({why})")
        self.finished.set()

    async def _reject_at_exit(self, before: str, what: str = "its output") -> None:
        """The child's output (or control socket) ended undecided: a DR by its exit status."""
        self.decision = "rejected"
        self.decided.set()
        with trio.move_on_after(_EXIT_WAIT):
            await self.exited.wait()
        returncode = None if self.proc is None else self.proc.returncode
        if returncode is None:
            why = f"{what} closed undecided, still running"
        elif returncode < 0:
            why = f"signal {-returncode} {before}"
        else:
            why = f"exit {returncode} {before}"
        await self._reject(reason_for_exit(returncode), why)

    def _ended(self, why: str) -> None:
        """The connection ended under us (the peer released, or it broke): what the
        child writes from now on is read and dropped."""
        self.sending = False
        if not self.finished.is_set():
            self.finished.set()
            self.emit(f"close {self.who} ({why})")

    async def _release(self, why: str) -> None:
        self.finished.set()
        with _contained(self.peer, self.emit):
            await self.conn.aclose()
            self.emit(f"close {self.who} (released: {why})")

    async def _timer(self) -> None:
        with trio.move_on_after(self.opts.decide_timeout):
            await self.decided.wait()
            return
        if self.decision is None:
            self.decision = "rejected"
            self.decided.set()
            self.kill_at_once = True
            await self._reject(
                DRReason.NOT_SPECIFIED, f"undecided after {self.opts.decide_timeout:g} s"
            )

    # ------------------------------------------------------- the process

    def _signal(self, sig: signal.Signals) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return  # reaped: its pid may be someone else's by now
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - it left its group for one we may not signal
            with suppress(ProcessLookupError):
                proc.send_signal(sig)

    async def _supervise(self) -> None:
        proc = self.proc
        assert proc is not None and self.nursery is not None
        async with trio.open_nursery() as watch:
            watch.start_soon(self._stop_when_overdue)
            await proc.wait()
            watch.cancel_scope.cancel()
        self.exited.set()
        self.done()  # before the line: once it shows, a new connection gets the place
        self.emit(f"exit {self.who} {_how_it_ended(proc.returncode)}")
        # What it wrote gets sent; a descendant holding its pipes gets kill_after.
        with trio.move_on_after(self.opts.kill_after):
            await self.output_done.wait()
        self.nursery.cancel_scope.cancel()

    async def _stop_when_overdue(self) -> None:
        await self.finished.wait()
        if not self.kill_at_once:
            await trio.sleep(self.opts.kill_after)
            why = f"still running {self.opts.kill_after:g} s after its connection ended"
        else:
            why = "undecided"
        self.emit(f"kill {self.who} ({why})")
        self._signal(signal.SIGTERM)
        await trio.sleep(_TERM_WAIT)
        self._signal(signal.SIGKILL)

    async def _log_lines(self, stream: trio.abc.ReceiveStream | None, label: str) -> None:
        lines = _Lines(_LOG_LINE)
        logged = dropped = 0

        def show(line: bytes) -> None:
            nonlocal logged, dropped
            if logged >= LOG_LINES:
                dropped += 1
                return
            logged += 1
            text = line.decode(errors="replace").rstrip("\r")
            self.emit(f"{label} {self.who}: {text}")
            log.info("%s %s: %s", label, self.who, text)

        while chunk := await _read(stream):
            for line in lines.feed(chunk):
                show(line)
        for line in lines.flush():
            show(line)
        if dropped:
            self.emit(f"{label} {self.who}: ({dropped} more lines not shown)")

    # ------------------------------------------------- stream and line

    async def _relay_output(self) -> None:
        """The child's stdout to the connection; its first octet confirms."""
        proc = self.proc
        assert proc is not None and self.nursery is not None
        lines = _Lines(_LINE_LIMIT) if self.opts.framing == "line" else None
        while chunk := await _read(proc.stdout):
            tsdus = lines.feed(chunk) if lines is not None else [chunk]
            if self._decide("confirmed", "first output"):
                self.nursery.start_soon(self._relay_input)
                if not tsdus:  # a line begun: the CC now, the TSDU when the line ends
                    await self._confirm()
            for tsdu in tsdus:
                await self._send(tsdu)
        for tsdu in lines.flush() if lines is not None else []:
            await self._send(tsdu)
        if self.decision is None:
            await self._reject_at_exit("before any output")
        elif self.decision == "confirmed" and not self.finished.is_set():
            await self._release("its output ended")
        self.output_done.set()

    async def _confirm(self) -> None:
        try:
            await self.conn.confirm()
        except (TP4Error, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            self._ended(f"could not confirm: {_why(exc)}")

    async def _send(self, tsdu: bytes) -> None:
        if self.decision != "confirmed" or not self.sending:
            return  # rejected or ended: what it writes goes nowhere
        try:
            await self.conn.send(tsdu)
        except (TP4Error, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            self._ended(_why(exc))

    async def _relay_input(self) -> None:
        """The connection's TSDUs to the child's stdin (started once confirmed)."""
        proc = self.proc
        assert proc is not None
        stdin = proc.stdin
        line = self.opts.framing == "line"
        try:
            while stdin is not None:
                try:
                    tsdu = await self.conn.receive()
                except trio.EndOfChannel:
                    self._ended("the peer released")
                    break
                except Disconnected as exc:
                    self._ended(_why(exc))
                    break
                except (TP4Error, trio.ClosedResourceError, trio.BrokenResourceError):
                    break  # we released or rejected it
                if not tsdu and not line:
                    break  # stream: an empty TSDU is the end of the child's input
                try:
                    await stdin.send_all(tsdu + b"\n" if line else tsdu)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break  # it closed its stdin: the rest stays unread
        finally:
            if stdin is not None:
                with trio.CancelScope(shield=True), suppress(Exception):
                    await stdin.aclose()  # end-of-file for the child

    # ------------------------------------------------------------ message

    async def _relay_control(self, stream: trio.SocketStream) -> None:
        """Carry out the child's requests (:mod:`tp4emu.inherit`) until it closes the socket."""
        lock = trio.Lock()

        async def answer(kind: bytes, rid: int, payload: bytes) -> None:
            async with lock:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(encode_frame(kind, rid, payload))

        frames = FrameBuffer()
        send, commands = trio.open_memory_channel[Frame](16)
        try:
            async with trio.open_nursery() as receivers:
                async with trio.open_nursery() as worker:
                    worker.start_soon(self._carry_out_all, commands, answer)
                    async with send:
                        while (frame := await self._next_frame(stream, frames)) is not None:
                            self._decide_by(frame.kind)
                            if frame.kind in (RECEIVE, RECEIVE_EXPEDITED):
                                receivers.start_soon(self._receive_for, frame, answer)
                            else:
                                await send.send(frame)
                # Every request before the end is carried out; no one waits for a receive.
                receivers.cancel_scope.cancel()
            if self.decision is None:
                await self._reject_at_exit("before deciding", "its control socket")
            elif self.decision == "confirmed" and not self.finished.is_set():
                await self._release("the child closed its connection")
        finally:
            self.output_done.set()
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _next_frame(self, stream: trio.SocketStream, frames: FrameBuffer) -> Frame | None:
        """The next request; None at the end of the socket (or after a bad frame)."""
        try:
            while (frame := frames.next()) is None:
                data = await stream.receive_some(_CHUNK)
                if not data:
                    return None
                frames.feed(data)
            if frame.kind not in REQUESTS:
                raise ControlProtocolError(f"unknown request {frame.kind!r}")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        except ControlProtocolError as exc:
            self.emit(f"error {self.who} control socket: {exc}")
            return None
        return frame

    def _decide_by(self, kind: bytes) -> None:
        if kind == CONFIRM:
            self._decide("confirmed", "its confirm()")
        elif kind in (SEND, SEND_EXPEDITED):
            self._decide("confirmed", "its first send")
        elif kind in (RECEIVE, RECEIVE_EXPEDITED):
            self._decide("confirmed", "its first receive")
        elif kind in (REJECT, CLOSE) and self.decision is None:
            self.decision = "rejected"
            self.decided.set()

    async def _carry_out_all(
        self,
        commands: trio.MemoryReceiveChannel[Frame],
        answer: Callable[[bytes, int, bytes], Any],
    ) -> None:
        async with commands:
            async for frame in commands:
                try:
                    await self._carry_out(frame)
                except Exception as exc:  # the call's failure goes back to the child
                    if not isinstance(exc, _EXPECTED):
                        log.exception("%s: request %r failed", self.who, frame.kind)
                    await answer(ERROR, frame.rid, encode_error(exc, self.conn.state))
                else:
                    await answer(OK, frame.rid, state_octet(self.conn.state))

    async def _carry_out(self, frame: Frame) -> None:
        conn, kind, payload = self.conn, frame.kind, frame.payload
        if kind == CONFIRM:
            await conn.confirm(payload)
        elif kind == SEND:
            await conn.send(payload)
        elif kind == SEND_EXPEDITED:
            await conn.send_expedited(payload)
        elif kind == REJECT:
            if not payload:
                raise ValueError("a reject carries its reason")
            await conn.reject(payload[0], payload[1:])
            self.emit(f"reject {self.who} reason={payload[0]} (its reject())")
            self.finished.set()
        elif kind == CLOSE:
            confirming = conn.state is State.CONFIRMING
            await conn.aclose()
            if confirming:
                self.emit(f"reject {self.who} reason=128 (its close() while CONFIRMING)")
            elif not self.finished.is_set():
                self.emit(f"close {self.who} (released: its close())")
            self.finished.set()

    async def _receive_for(self, frame: Frame, answer: Callable[[bytes, int, bytes], Any]) -> None:
        conn = self.conn
        try:
            if frame.kind == RECEIVE:
                data = await conn.receive()
            else:
                data = await conn.receive_expedited()
        except trio.EndOfChannel:
            self._ended("the peer released")
            await answer(END, frame.rid, state_octet(conn.state))
        except Exception as exc:
            if isinstance(exc, Disconnected):
                self._ended(_why(exc))
            await answer(ERROR, frame.rid, encode_error(exc, conn.state))
        else:
            await answer(DATA, frame.rid, state_octet(conn.state) + data)


async def run_inetd(
    listen: tuple[str, int],
    opts: ExecOptions,
    *,
    tsap: bytes | None = None,
    transport: Transport = "tp4",
    config: Config | None = None,
    pcap_path: str | None = None,
    exit_after: int | None = None,
    out: TextIO | None = None,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run the super-server; one line per event on *out*. Returns an exit status (0).

    Args:
        exit_after: stop accepting after this many connections, let their
            children finish, and return.
        stop: once set, stop accepting, stop the children (SIGTERM, then
            SIGKILL), close their connections, and return.

    ``Config.confirm_timeout`` is raised above *opts*' ``decide_timeout``
    when lower, so that the decision is the child's (or the timeout's of
    this module), not the transport's.
    """
    stream = out or sys.stdout

    def emit(text: str) -> None:
        print(text, file=stream, flush=True)

    cfg = config or Config()
    floor = opts.decide_timeout + _EXIT_WAIT + 5.0
    if cfg.confirm_timeout < floor:
        cfg = dataclasses.replace(cfg, confirm_timeout=floor)
    async with AsyncExitStack() as stack:
        pcap: Any = None
        if pcap_path:
            from ..capture import PcapWriter

            pcap = stack.enter_context(PcapWriter(pcap_path))
        ep = await stack.enter_async_context(
            open_endpoint(listen, transport=transport, config=cfg, pcap=pcap)
        )
        if isinstance(ep, TCPEndpoint):
            listener: Any = ep.listen(tsap, auto_confirm=False)  # CONFIRMING, as over TP4
        else:
            listener = ep.listen(tsap)
        host, port = ep.getsockname()
        emit(
            f"listening {host}:{port} transport={transport} tsap={_show(tsap)}"
            f" framing={opts.framing} exec={shlex.join(opts.argv)}"
        )
        task_status.started((host, port))
        running = 0

        def done() -> None:
            nonlocal running
            running -= 1

        async with trio.open_nursery() as watcher:
            async with trio.open_nursery() as nursery:  # the accept loop and the children
                if stop is not None:

                    async def stop_when_told() -> None:
                        await stop.wait()
                        emit("stopping: the children are stopped, their connections closed")
                        nursery.cancel_scope.cancel()  # not the endpoint's: its DRs still go

                    watcher.start_soon(stop_when_told)
                accepted = 0
                try:
                    while exit_after is None or accepted < exit_after:
                        conn = await listener.accept()
                        accepted += 1
                        peer = _peer_name(conn)
                        try:
                            emit(
                                f"accept {peer} state={conn.state.name}"
                                f" calling={_show(conn.calling_tsap)}"
                                f" called={_show(conn.called_tsap)}"
                                f" data={_show(conn.connect_data)}"
                            )
                        except Exception as exc:  # e.g. the peer gave up meanwhile
                            emit(f"error {peer} {type(exc).__name__}: {exc}")
                            nursery.start_soon(_close_quietly, conn, peer, cfg.window_time, emit)
                            continue
                        if running >= opts.max_children:
                            nursery.start_soon(
                                _refuse, conn, peer, running, opts.max_children, emit
                            )
                            continue
                        running += 1
                        child = _Child(conn, opts, transport, emit, done, cfg.window_time)
                        nursery.start_soon(child.run)
                finally:
                    with trio.CancelScope(shield=True):
                        await listener.aclose()
            watcher.cancel_scope.cancel()
    return 0


async def _refuse(
    conn: Any, peer: str, running: int, limit: int, emit: Callable[[str], None]
) -> None:
    """Refuse a connection beyond ``--max-children``: DR reason 1 (congestion at TSAP)."""
    with _contained(peer, emit):
        await conn.reject(DRReason.CONGESTION)
        emit(f"refuse {peer} reason=1 ({running} children running: --max-children {limit})")


# ------------------------------------------------------------------ the CLI


def add_exec_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--exec`` and its options to the ``serve`` parser."""
    d = DEFAULTS
    g = parser.add_argument_group(
        "inetd",
        "run a program for each connection, which decides it (docs/inetd.md); --exec comes last",
    )
    g.add_argument(
        "--exec",
        dest="exec_argv",
        nargs=argparse.REMAINDER,
        metavar="CMD [ARGS...]",
        help="for each connection run CMD ARGS (all that follows), joined to it: its first "
        "output confirms (CC), exiting before any rejects (DR by exit status)",
    )
    g.add_argument(
        "--framing",
        choices=FRAMINGS,
        help=f"how its stdin and stdout carry TSDUs (default {d.framing}): stream, a TSDU per "
        "read of its output; line, a TSDU per line; message, the child takes the connection "
        "over (tp4emu.inherited_connection())",
    )
    g.add_argument(
        "--confirm-first",
        action="store_true",
        default=None,
        help="send the CC before starting the child (for children that read first, e.g. cat)",
    )
    g.add_argument(
        "--max-children",
        type=int,
        metavar="N",
        help=f"children at a time (default {d.max_children}); more connections get DR reason 1",
    )
    g.add_argument(
        "--decide-timeout",
        type=float,
        metavar="S",
        help=f"reject (DR reason 0) and stop a child undecided after S s "
        f"(default {d.decide_timeout:g})",
    )
    g.add_argument(
        "--kill-after",
        type=float,
        metavar="S",
        help=f"stop a child still running S s after its connection ended "
        f"(default {d.kill_after:g})",
    )


_EXEC_ONLY = ("framing", "confirm_first", "max_children", "decide_timeout", "kill_after")


def serve_exec(args: argparse.Namespace, prog: str = "tp4emu serve") -> int | None:
    """Run ``serve --exec``; None when *args* has no ``--exec`` (the echo server then)."""
    argv = getattr(args, "exec_argv", None)
    given = [n for n in _EXEC_ONLY if getattr(args, n, None) is not None]
    if argv is None:
        if given:
            print(f"{prog}: --{given[0].replace('_', '-')} needs --exec", file=sys.stderr)
            return 2
        return None
    from .apps import parse_address, parse_tsap

    try:
        if getattr(args, "allow", None) or getattr(args, "deny", None):
            raise ValueError("--allow and --deny do not go with --exec: the child decides")
        opts = ExecOptions(
            tuple(argv),
            **{n: getattr(args, n) for n in given},
        )
        listen = parse_address(args.listen)
        tsap = parse_tsap(getattr(args, "tsap", None))
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return trio.run(
        _until_signalled,
        lambda stop: run_inetd(
            listen,
            opts,
            tsap=tsap,
            transport=getattr(args, "transport", "tp4"),
            pcap_path=getattr(args, "pcap", None),
            exit_after=getattr(args, "exit_after", None),
            stop=stop,
        ),
    )


async def _until_signalled(body: Callable[[trio.Event], Any]) -> int:
    """Run ``body(stop)``; SIGINT, SIGTERM or SIGHUP set *stop* (a second one cancels).

    Returns *body*'s status, or 128 + the signal that stopped it.
    """
    caught: list[int] = []
    stop = trio.Event()
    status = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as received:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in received:
                    caught.append(signum)
                    if stop.is_set():
                        nursery.cancel_scope.cancel()  # impatient: no more cleaning up
                    stop.set()

            nursery.start_soon(watch)
            status = await body(stop)
            nursery.cancel_scope.cancel()
    return 128 + caught[0] if caught else status
