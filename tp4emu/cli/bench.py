"""``tp4emu bench``: the benchmark suite of :mod:`tp4emu.bench`.

Runs tp4emu and each baseline interleaved (every sample in a fresh process),
shows a progress bar on stderr (on a terminal; plain lines elsewhere), prints
the table (median, min-max, ratio to the baseline, goal) on stdout and writes
every raw sample with ``--json``; ``--compare OLD.json`` adds the old medians.

Exit status: 0 whatever the figures (nothing is asserted on speed); 1 when a
sample failed (its error is printed under the table) or a file cannot be
read or written; 2 on a usage error; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import CommandError

__all__ = ["add_bench_parser", "cmd_bench"]


def add_bench_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``tp4emu bench`` (called by :func:`tp4emu.cli.build_parser`)."""
    from ..bench.suite import BENCHES

    names = ", ".join(f"{b.name} ({b.help})" for b in BENCHES)
    p = subparsers.add_parser(
        "bench",
        parents=[common],
        help="measure tp4emu against raw UDP and TCP on loopback (a table, and JSON)",
        description=(
            "Benchmark tp4emu over loopback against raw trio UDP and trio TCP: bulk "
            "throughput, round trip, connection rate, idle connections (memory, CPU), "
            "aggregate bulk over 100 connections. Each run samples tp4emu and its "
            "baseline back to back, each sample in a fresh process; the table shows "
            "medians over the runs, their range, the median pairwise ratio and whether "
            "the goal holds. The exit status does not depend on the figures. "
            f"Benches: {names}."
        ),
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes and 1 run (a smoke test; noisy)"
    )
    p.add_argument(
        "--runs", type=int, metavar="N", help="runs of every bench (default 5; --quick: 1)"
    )
    p.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        action="append",
        default=[],
        help=f"run only these benches ({', '.join(b.name for b in BENCHES)})",
    )
    p.add_argument("--json", metavar="FILE", help="write the figures and every raw sample")
    p.add_argument(
        "--compare",
        metavar="OLD.json",
        help="add the medians of an earlier --json and the change to them",
    )
    p.add_argument(
        "--idle-connections",
        type=int,
        metavar="N",
        help="idle connections of the idle bench (default 10000; --quick: 1000)",
    )
    p.set_defaults(func=cmd_bench)


_QUIET = ("retransmissions", "open")
"""Metrics the per-sample lines leave out."""


class _Progress:
    """A progress bar on a terminal (stderr), one line per sample elsewhere."""

    def __init__(self, color: str) -> None:
        from rich.console import Console

        force = {"always": True, "never": False}.get(color)
        self.console = Console(
            stderr=True, force_terminal=force, no_color=force is False, highlight=False
        )
        self.live = self.console.is_terminal
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None

    def __call__(self, index: int, total: int, bench: Any, variant: Any, sample: Any) -> None:
        from ..bench.report import fmt

        if sample is None:
            if self._progress is not None:
                self._progress.update(
                    self._task,
                    description=f"{bench.name} {variant.name}",
                    total=total,
                    completed=index,
                )
            return
        if sample.error is not None:
            text = f"error: {sample.error}"
        else:
            text = ", ".join(f"{k} {fmt(v)}" for k, v in sample.metrics.items() if k not in _QUIET)
        line = f"[{index + 1}/{total}] run {sample.run + 1} {bench.name} {variant.name}: {text}"
        if self._progress is not None:
            self._progress.update(self._task, completed=index + 1)
            if sample.error is not None:
                self.console.print(line, style="red", markup=False)
        else:
            print(line, file=sys.stderr, flush=True)


def _options(args: argparse.Namespace) -> Any:
    from ..bench.suite import BENCHES, Options

    known = [b.name for b in BENCHES]
    only: list[str] = []
    for item in args.only:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name not in known:
                raise CommandError(
                    f"--only: no bench {name!r} (the benches: {', '.join(known)})", 2
                )
            only.append(name)
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    if runs < 1:
        raise CommandError(f"--runs must be at least 1, got {runs}", 2)
    if args.idle_connections is not None and args.idle_connections < 1:
        raise CommandError(f"--idle-connections must be at least 1, got {args.idle_connections}", 2)
    return Options(
        runs=runs, quick=args.quick, only=tuple(only), idle_connections=args.idle_connections
    )


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    from rich.console import Console

    from ..bench.report import render
    from ..bench.suite import load_result, run_suite, to_json

    options = _options(args)
    old = None
    if args.compare is not None:
        try:
            old = load_result(args.compare)
        except OSError as exc:
            raise CommandError(f"cannot read {args.compare}: {exc.strerror or exc}", 1) from None
        except ValueError as exc:
            raise CommandError(f"--compare {exc}", 1) from None
    if args.json is not None:
        try:  # fail now rather than after minutes of measuring
            with open(args.json, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise CommandError(f"cannot write {args.json}: {exc.strerror or exc}", 1) from None
    with _Progress(args.color) as progress:
        result = run_suite(options, progress=progress)
    if old is not None:
        result.compare = {f["name"]: f for f in old["figures"] if isinstance(f, dict)}
        commit = old.get("commit")
        result.compare_label = f" ({commit[:7]})" if isinstance(commit, str) else ""
    force = {"always": True, "never": False}.get(args.color)
    out = Console(force_terminal=force, no_color=force is False, highlight=False)
    if not out.is_terminal:
        out.width = max(out.width, 160)  # logs and pipes: room for the whole table
    render(result, out)
    if args.json is not None:
        try:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(to_json(result))
        except OSError as exc:
            raise CommandError(f"cannot write {args.json}: {exc.strerror or exc}", 1) from None
    if result.failed:
        print(
            f"tp4emu bench: {len(result.failed)} of {len(result.samples)} samples failed",
            file=sys.stderr,
        )
        return 1
    return 0
