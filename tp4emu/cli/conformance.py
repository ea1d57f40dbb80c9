"""``tp4emu conformance``: test another implementation against ISO 8073 / RFC 1006.

``tp4emu conformance udp://HOST:PORT`` (class 4) or ``tcp://HOST:PORT``
(RFC 1006 class 0) runs the library of :mod:`tp4emu.conformance` against the
implementation there, with a progress bar and a table of verdicts, and
writes the reports asked for (``--report`` Markdown or HTML, ``--junit``,
``--json``, ``--pcap``). ``--role responder`` listens on the address
instead: the implementation connects to the tester. ``--list`` shows the
cases (their group and clause) without running them.

Exit status: 0 when no case failed (inconclusive and skipped cases do not
fail a run); 1 when one failed, the tester erred, no case passed at all
(nothing was shown) or the run could not start (an address that does not
resolve or cannot be listened on); 2 on a usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..conformance import PROFILES, Hooks, Settings, SuiteResult, Timers, Verdict, all_cases
from ..conformance.apps import APPS
from ..conformance.model import CaseInfo, CaseResult, Target, parse_target
from ..conformance.registry import select
from ..conformance.report import (
    STYLE,
    render_console,
    result_line,
    to_html,
    to_json,
    to_junit,
    to_markdown,
)
from ..conformance.settings import parse_timer

__all__ = ["add_conformance_parser"]

PROG = "tp4emu conformance"


def add_conformance_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``tp4emu conformance`` (called by :func:`tp4emu.cli.build_parser`)."""
    p = subparsers.add_parser(
        "conformance",
        parents=[common],
        help="test another ISO transport implementation (class 4 over UDP, RFC 1006 over TCP)",
        description=(
            "Play the peer of an implementation under test with raw TPDUs and check its "
            "answers against ISO 8073 / RFC 1006, case by case: establishment, data "
            "transfer, flow control, expedited data, release, error handling, invalid input, "
            "timers. Prints a table of verdicts (pass, fail, inconclusive) and the PICS "
            "(what the implementation was seen to support). Exit status 1 when a case failed."
        ),
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="TARGET",
        help="udp://HOST:PORT (class 4) or tcp://HOST:PORT (RFC 1006); with --role responder "
        "the address to listen on",
    )
    p.add_argument(
        "--role",
        choices=("initiator", "responder"),
        default="initiator",
        help="initiator: the tester connects to TARGET (default); responder: the tester "
        "listens on TARGET and the implementation connects to it",
    )
    p.add_argument("--tsap", help="called TSAP of the tester's CRs (text, or hex:0102)")
    p.add_argument(
        "--calling-tsap",
        default="conformance",
        help="calling TSAP of the tester's CRs (default 'conformance'; 'none': no parameter)",
    )
    p.add_argument(
        "--case",
        dest="cases",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only the cases whose name matches (shell wildcards, e.g. 'c4.est.*') or "
        "whose group is PATTERN; repeatable, or comma-separated",
    )
    p.add_argument("--list", action="store_true", help="list the cases (and clauses); run nothing")
    p.add_argument(
        "--app",
        choices=sorted(APPS),
        default="echo",
        help="what the implementation's application does with data: echo (default), s7 "
        "(an S7 PLC: a setup job gets an Ack_Data), none",
    )
    p.add_argument(
        "--upper-tester",
        action="store_true",
        help="the implementation's application obeys the upper tester commands "
        "(docs/conformance.md): runs the cases that need its user to act",
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="known timers of the implementation (tp4emu: tp4emu's defaults)",
    )
    p.add_argument(
        "--timer",
        dest="timers",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a known timer (s; N is a count): T1, T1-CR, T1-max, N, W, I, L, confirm, "
        "give-up, CR-wait; repeatable; unknown timers are measured",
    )
    p.add_argument("--max-tsdu", type=int, metavar="N", help="the largest TSDU the IUT takes")
    p.add_argument(
        "--tolerance",
        type=float,
        default=4.0,
        metavar="MS",
        help="timing tolerance, absolute part (default 4 ms): max(MS, REL %% of the time)",
    )
    p.add_argument(
        "--tolerance-rel",
        type=float,
        default=12.5,
        metavar="REL",
        help="timing tolerance, relative part in %% (default 12.5)",
    )
    p.add_argument(
        "--response-time",
        type=float,
        default=1.0,
        metavar="S",
        help="how long the implementation is given to answer (default 1 s)",
    )
    p.add_argument(
        "--silence",
        type=float,
        default=0.3,
        metavar="S",
        help="how long 'the implementation sends nothing' is watched (default 0.3 s)",
    )
    p.add_argument(
        "--flood",
        type=int,
        default=8,
        metavar="N",
        help="CRs the congestion case sends at once (default 8)",
    )
    p.add_argument(
        "--timer-limit",
        type=float,
        default=30.0,
        metavar="S",
        help="longest wait for an unknown timer (default 30 s; beyond: inconclusive)",
    )
    p.add_argument(
        "--connect-wait",
        type=float,
        default=10.0,
        metavar="S",
        help="responder: how long a case waits for the implementation to connect (default 10 s)",
    )
    p.add_argument("--seed", type=int, help="seed of the tester's references")
    p.add_argument("--pcap", metavar="FILE", help="record every datagram / TPDU of the run")
    p.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML")
    p.add_argument("--json", metavar="FILE", help="write the results (with logs) as JSON")
    p.add_argument(
        "--report", metavar="FILE", help="write a summary: Markdown (.md) or HTML (.html)"
    )
    p.set_defaults(func=cmd_conformance)


def _tsap(text: str | None) -> bytes | None:
    if text is None or text == "none":
        return None
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode()


def _settings(args: argparse.Namespace, target: Target) -> Settings:
    """The settings the arguments give. Raises ValueError on a bad value."""
    timers = PROFILES[args.profile] if args.profile else Timers()
    for text in args.timers:
        timers = parse_timer(text, timers)
    for name, value in (
        ("--tolerance", args.tolerance),
        ("--response-time", args.response_time),
        ("--timer-limit", args.timer_limit),
        ("--connect-wait", args.connect_wait),
        ("--silence", args.silence),
        ("--flood", args.flood),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive")
    if not 0 <= args.tolerance_rel < 100:
        raise ValueError("--tolerance-rel must be in [0, 100)")
    if args.max_tsdu is not None and args.max_tsdu < 1:
        raise ValueError("--max-tsdu must be positive")
    return Settings(
        target=target,
        role=args.role,
        tsap=_tsap(args.tsap),
        calling_tsap=_tsap(args.calling_tsap),
        app=args.app,
        upper_tester=args.upper_tester,
        timers=timers,
        max_tsdu=args.max_tsdu,
        tolerance=args.tolerance / 1000,
        tolerance_rel=args.tolerance_rel / 100,
        response_time=args.response_time,
        timer_limit=args.timer_limit,
        connect_wait=args.connect_wait,
        silence=args.silence,
        flood=args.flood,
        seed=args.seed,
    )


def _list(cases: list[CaseInfo], out: Any) -> None:
    for c in cases:
        needs = f"  [needs {', '.join(sorted(c.needs))}]" if c.needs else ""
        who = "" if c.role == "initiator" else "  (tester responder)"
        print(f"{c.name:<36} {c.group.value:<15} {c.clause}{who}{needs}", file=out)
        print(f"    {c.title}", file=out)


class _Progress:
    """A progress bar on a terminal (each verdict printed above it), plain lines elsewhere."""

    def __init__(self, color: str) -> None:
        from rich.console import Console

        force = {"always": True, "never": False}.get(color)
        self.console = Console(force_terminal=force, no_color=force is False, highlight=False)
        self.live = self.console.is_terminal
        if not self.live:
            self.console.width = max(self.console.width, 140)  # logs: room for the table
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def started(self, info: CaseInfo, index: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=info.name, total=total, completed=index)

    def finished(self, result: CaseResult, index: int, total: int) -> None:
        from rich.text import Text

        self.console.print(Text(result_line(result), style=STYLE[result.verdict]))
        if self._progress is not None:
            self._progress.update(self._task, completed=index + 1)

    def listening(self, address: tuple[str, int]) -> None:
        self.console.print(f"listening on {address[0]}:{address[1]}: connect the implementation")


def _write(path: str, text: str) -> str | None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        return f"{PROG}: cannot write {path}: {exc.strerror or exc}"
    return None


def cmd_conformance(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    import trio

    from ..conformance.runner import run_suite

    target: Target | None = None
    if args.target is not None:
        try:
            target = parse_target(args.target)
        except ValueError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
    cases = select(
        all_cases(),
        args.cases,
        protocol_class=target.protocol_class if target else None,
        role=args.role if target else None,
    )
    if args.list:
        _list(cases, sys.stdout)
        return 0
    if target is None:
        print(f"{PROG}: a TARGET is needed (udp://HOST:PORT or tcp://HOST:PORT)", file=sys.stderr)
        return 2
    if not cases:
        print(f"{PROG}: no case matches {', '.join(args.cases) or 'this target'}", file=sys.stderr)
        return 2
    if args.report and not args.report.endswith((".md", ".html", ".htm")):
        print(f"{PROG}: --report must end in .md or .html", file=sys.stderr)
        return 2
    try:
        settings = _settings(args, target)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    with _Progress(args.color) as progress:
        hooks = Hooks(progress.started, progress.finished, progress.listening)
        try:
            suite = trio.run(lambda: run_suite(settings, cases, pcap=args.pcap, hooks=hooks))
        except OSError as exc:
            progress.__exit__(None, None, None)
            print(f"{PROG}: {target}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    render_console(suite, progress.console)
    return _reports(args, suite)


def _reports(args: argparse.Namespace, suite: SuiteResult) -> int:
    problems = []
    if args.junit:
        problems.append(_write(args.junit, to_junit(suite)))
    if args.json:
        problems.append(_write(args.json, to_json(suite)))
    if args.report:
        text = to_markdown(suite) if args.report.endswith(".md") else to_html(suite)
        problems.append(_write(args.report, text))
    for problem in problems:
        if problem:
            print(problem, file=sys.stderr)
    if any(problems):
        return 1
    if not any(r.verdict is Verdict.PASS for r in suite.results):
        print(f"{PROG}: no case passed: nothing was shown of {suite.target}", file=sys.stderr)
        return 1
    return 0 if suite.ok else 1
