"""Goodput against real kernel loss: the curve of issue 9.

Run (as root, with ``ip`` and ``nft``)::

    .venv/bin/python benchmarks/loss_curve.py                      # 16 MiB, 0/1/2/5/10/20 %, 3 runs
    .venv/bin/python benchmarks/loss_curve.py --loss 0,5 --runs 1 --size 2000000
    git -C /work/main archive main | tar -x -C /tmp/before9
    .venv/bin/python benchmarks/loss_curve.py --tree /tmp/before9 --json before.json

For every loss rate P (percent) and every run, a fresh network namespace of its
own is made (``tp4loss-<hex>``), its loopback brought up, and an nftables table
installed on the input hook exactly as ``tests/test_netns_loss.py`` does::

    meta l4proto udp counter comment "udp-in"
    meta l4proto udp numgen random mod 100 < P counter drop comment "loss"

The first rule only counts the UDP datagrams that reach the input hook, the
second drops a random P % of them and counts what it drops. At P = 0 the
second rule is installed as well (``< 0`` never matches: counter 0, nothing
dropped), so every rate runs through the same two rules. On loopback every
datagram, in both directions, passes the input hook once.

Inside the namespace ``examples/file_transfer.py --size SIZE --seed 1
--no-progress --timeout T`` of the tree under test runs (``ip netns exec``,
``PYTHONPATH=TREE``): sender and receiver in one process, on 127.0.0.1. The
namespace is deleted afterwards, whatever happened.

What is measured, from the example's own output (the same in every tree since
the example exists):

* goodput: SIZE divided by the sender's elapsed time, i.e. the example's
  ``sender: N octets in E s, R MB/s`` line: from before ``connect()`` until the
  receiver's verdict (its SHA-256) has arrived; Python start-up, generating the
  data and the release afterwards are not in it. The example prints E and R
  to two decimals; the more precise of the two is used (R when R > E, else
  SIZE / E), which is within 0.2 % for 16 MiB. MB = 10^6 octets.
* the process's wall time (start-up and release included) is recorded too.
* retransmissions: the sender endpoint's count (``sender: N retransmissions``).
* kernel drops and UDP datagrams seen: the two nftables counters.

A run is *aborted* when the example exits nonzero, prints no receiver ``OK``
line, when the sizes or SHA-256s disagree (the expected hash is computed here
from the same seed, so every byte is checked) or when it has not ended 30 s
after its own ``--timeout`` (it is then killed). The reason (the last line of
its stderr, e.g. ``ConnectionTimedOut: peer silent after 8 retransmissions``)
is recorded; the benchmark goes on.

Rates are interleaved: run 1 of every rate, then run 2 of every rate, and so
on, so that the machine's noise spreads over all rates alike. ``--json FILE``
writes every raw result (rewritten after each run, so an interrupted
measurement keeps what it has). The table at the end gives per rate the median
goodput of the completed runs, their range, the ratio to the median at 0 % of
the same invocation, the aborted count and medians of retransmissions and
kernel drops (completed runs). Nothing is asserted: the exit status is nonzero
only when the setup is impossible (not root, no ``ip`` or ``nft``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOSS = "0,1,2,5,10,20"
DEFAULT_SIZE = 16 * 1024 * 1024
GRACE = 30.0  # seconds past the example's own --timeout before it is killed
TARGETS = {5: "ratio >= 0.60", 10: "ratio >= 0.35", 20: "no abort"}  # issue 9

RECEIVER_OK = re.compile(r"^receiver: (\d+) octets, sha256 ([0-9a-f]{64}): OK$", re.M)
SENDER_HEAD = re.compile(r"^sender: .*, (\d+) octets, sha256 ([0-9a-f]{64})$", re.M)
SENDER_TIME = re.compile(r"^sender: (\d+) octets in ([\d.]+) s, ([\d.]+|inf) MB/s$", re.M)
SENDER_MATCH = re.compile(r"^sender: receiver's sha256 ([0-9a-f]{64}): match$", re.M)
SENDER_STATS = re.compile(r"^sender: (\d+) retransmissions, (\d+) datagrams$", re.M)
# "tp4emu.core.errors.ConnectionTimedOut: [Errno 110] peer silent ...", also inside the
# "|"-indented lines of an exception group's traceback
EXCEPTION = re.compile(
    r"^[ |]*((?:[A-Za-z_]\w*\.)*[A-Z]\w*"
    r"(?:Error|Exception|Exit|Disconnected|TimedOut|Rejected)\b.*)$"
)

err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Result:
    loss: int
    run: int
    netns: str
    ok: bool = False
    reason: str = ""
    returncode: int | None = None
    elapsed: float | None = None  # the sender's figure, seconds
    goodput: float | None = None  # MB/s (10^6 octets)
    wall: float | None = None  # the whole process, seconds
    retransmissions: int | None = None
    datagrams_sent: int | None = None
    udp_seen: int | None = None  # nftables: UDP datagrams at the input hook
    dropped: int | None = None  # nftables: of which dropped
    load: float | None = None  # 1-minute load average as the run began (noise)
    stdout: str = ""
    stderr_tail: list[str] = field(default_factory=list)


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=20).stdout


def make_namespace(name: str, loss: int) -> None:
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    nft = ("ip", "netns", "exec", name, "nft")
    sh(*nft, "add", "table", "inet", "tp4loss")
    sh(*nft, "add chain inet tp4loss input { type filter hook input priority 0 ; policy accept ; }")
    sh(*nft, 'add rule inet tp4loss input meta l4proto udp counter comment "udp-in"')
    sh(
        *nft,
        "add rule inet tp4loss input meta l4proto udp "
        f'numgen random mod 100 < {loss} counter drop comment "loss"',
    )


def read_counters(name: str) -> dict[str, int]:
    """The nftables counters of the table, by rule comment."""
    listing = json.loads(
        sh("ip", "netns", "exec", name, "nft", "-j", "list", "table", "inet", "tp4loss")
    )
    counters: dict[str, int] = {}
    for item in listing["nftables"]:
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule["expr"]:
            if "counter" in expr:
                counters[rule.get("comment", "")] = int(expr["counter"]["packets"])
    return counters


def delete_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def exception_of(lines: list[str], timeout: float) -> str:
    """The exceptions a traceback on stderr ends with, groups left out unless alone."""
    found: list[str] = []
    for line in lines:
        if (m := EXCEPTION.match(line)) and m[1] not in found:
            found.append(m[1])
    leaves = [e for e in found if not re.match(r"[\w.]*ExceptionGroup\b", e)] or found
    text = "; ".join(leaves[-3:])
    if text == "trio.TooSlowError":
        text += f" (the example's own --timeout {timeout:g} s)"
    return text


def parse(result: Result, out: str, size: int, expected: str) -> None:
    """Fill *result* from the example's stdout; ok only if every check holds."""
    if m := SENDER_STATS.search(out):
        result.retransmissions, result.datagrams_sent = int(m[1]), int(m[2])
    if m := SENDER_TIME.search(out):
        result.elapsed = float(m[2])
        printed = float(m[3])
        # both are printed to two decimals: take the one with the smaller relative error
        if printed > result.elapsed or result.elapsed == 0:
            result.goodput = printed
        else:
            result.goodput = size / result.elapsed / 1e6
    ok = RECEIVER_OK.search(out)
    head = SENDER_HEAD.search(out)
    match = SENDER_MATCH.search(out)
    if result.returncode != 0:
        result.reason = result.reason or f"exit status {result.returncode}"
    elif not ok:
        result.reason = "no receiver OK line"
    elif int(ok[1]) != size or ok[2] != expected:
        result.reason = f"receiver got {ok[1]} octets, sha256 {ok[2]}"
    elif not head or head[2] != expected or not match or match[1] != expected:
        result.reason = "sender's sha256 lines missing or different"
    elif result.goodput is None:
        result.reason = "no elapsed-time line"
    else:
        result.ok = True


def run_one(args: argparse.Namespace, loss: int, run: int, expected: str) -> Result:
    name = f"tp4loss-{uuid.uuid4().hex[:8]}"
    result = Result(loss=loss, run=run, netns=name)
    example = args.tree / "examples" / "file_transfer.py"
    command = [
        "ip", "netns", "exec", name,
        args.python, str(example),
        "--size", str(args.size), "--seed", "1", "--no-progress", "--timeout", str(args.timeout),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(args.tree)}
    try:
        make_namespace(name, loss)
        result.load = os.getloadavg()[0]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=args.timeout + GRACE
            )
            result.returncode = proc.returncode
            out, errtext = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            result.reason = f"killed after {args.timeout + GRACE:g} s"
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            errtext = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        result.wall = time.perf_counter() - start
        result.stdout = out
        lines = [line for line in errtext.splitlines() if line.strip()]
        result.stderr_tail = lines[-40:]
        if result.returncode not in (None, 0):
            result.reason = exception_of(lines, args.timeout) or result.reason
        counters = read_counters(name)
        result.udp_seen, result.dropped = counters.get("udp-in"), counters.get("loss")
        parse(result, out, args.size, expected)
    finally:
        delete_namespace(name)
    return result


def median(values: list[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[Result], losses: list[int], title: str) -> Table:
    t = Table(title=title, box=box.SIMPLE_HEAD)
    for header in ("loss %", "runs", "goodput MB/s", "min-max", "ratio to 0 %", "aborted"):
        t.add_column(header, justify="right")
    for header in ("retransmissions", "kernel drops", "drop %"):
        t.add_column(header, justify="right")
    t.add_column("issue 9 target")

    def good(loss: int) -> list[Result]:
        return [r for r in results if r.loss == loss and r.ok]

    base = median([r.goodput for r in good(0)]) if 0 in losses else None
    for loss in losses:
        done = [r for r in results if r.loss == loss]
        ok = good(loss)
        rates = [r.goodput for r in ok if r.goodput is not None]
        mid = median(list(rates))
        ratio = mid / base if mid is not None and base else None
        aborted = len(done) - len(ok)
        seen = sum(r.udp_seen or 0 for r in ok)
        share = 100 * sum(r.dropped or 0 for r in ok) / seen if seen else None
        target = TARGETS.get(loss, "")
        if loss == 20 and done:
            target += " ✓" if aborted == 0 else " ✗"
        elif target and ratio is not None:
            limit = 0.60 if loss == 5 else 0.35
            target += " ✓" if ratio >= limit and aborted == 0 else " ✗"
        t.add_row(
            str(loss),
            str(len(done)),
            fmt(mid, ".2f"),
            f"{min(rates):.2f}-{max(rates):.2f}" if rates else "-",
            fmt(ratio, ".3f"),
            str(aborted),
            fmt(median([r.retransmissions for r in ok]), ".0f"),
            fmt(median([r.dropped for r in ok]), ".0f"),
            fmt(share, ".2f"),
            target,
        )
    return t


def tree_commit(tree: Path) -> str | None:
    """HEAD of *tree* if it is the top of a git work tree (an archive has none)."""
    git = ["git", "-C", str(tree), "rev-parse"]
    top = subprocess.run([*git, "--show-toplevel"], capture_output=True, text=True)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != tree:
        return None
    return subprocess.run([*git, "HEAD"], capture_output=True, text=True).stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", default=DEFAULT_LOSS, help="loss rates in percent, 0..100")
    parser.add_argument("--runs", type=int, default=3, help="runs per loss rate")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="octets per transfer")
    parser.add_argument("--timeout", type=float, default=300.0, help="the example's --timeout")
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree whose example runs")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the example")
    parser.add_argument("--json", type=Path, help="write every raw result here")
    parser.add_argument("--label", help="what the tree is, for the table's title and the JSON")
    args = parser.parse_args()
    try:
        losses = [int(p) for p in args.loss.split(",")]
    except ValueError:
        parser.error("--loss takes whole percents, e.g. 0,1,2,5,10,20")
    if any(not 0 <= p <= 100 for p in losses) or args.runs < 1 or args.size < 1:
        parser.error("loss rates in 0..100, --runs and --size at least 1")
    args.tree = args.tree.resolve()
    if not (args.tree / "examples" / "file_transfer.py").is_file():
        parser.error(f"{args.tree} has no examples/file_transfer.py")
    if why := missing():
        err.print(f"loss_curve: {why}")
        sys.exit(2)

    expected = hashlib.sha256(random.Random(1).randbytes(args.size)).hexdigest()
    meta: dict[str, Any] = {
        "command": sys.argv,
        "tree": str(args.tree),
        "tree_commit": tree_commit(args.tree),
        "label": args.label,
        "size": args.size,
        "timeout": args.timeout,
        "runs": args.runs,
        "loss": losses,
        "python": args.python,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "nft": sh("nft", "--version").strip(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    results: list[Result] = []
    begin = time.perf_counter()

    def save() -> None:
        if args.json:
            meta["seconds"] = round(time.perf_counter() - begin, 1)
            data = {**meta, "results": [asdict(r) for r in results]}
            args.json.write_text(json.dumps(data, indent=1) + "\n")

    total = len(losses) * args.runs
    for run in range(1, args.runs + 1):
        for loss in losses:
            try:
                result = run_one(args, loss, run, expected)
            except subprocess.SubprocessError as exc:  # the namespace could not be made
                err.print(f"loss_curve: setup failed: {exc}")
                sys.exit(2)
            results.append(result)
            save()
            verdict = (
                f"{result.goodput:.2f} MB/s in {result.elapsed:.2f} s"
                if result.ok and result.goodput is not None and result.elapsed is not None
                else f"[red]ABORTED[/red]: {result.reason}"
            )
            err.print(
                f"[{len(results)}/{total}] run {run} loss {loss:>2} %: {verdict}, "
                f"{result.retransmissions} retransmissions, {result.dropped}/{result.udp_seen} "
                f"dropped, wall {fmt(result.wall, '.1f')} s, load {fmt(result.load, '.2f')}"
            )
    minutes = (time.perf_counter() - begin) / 60
    what = args.label or str(args.tree)
    if meta["tree_commit"]:
        what += f" @ {meta['tree_commit'][:7]}"
    title = f"{what}: {args.size} octets, {args.runs} runs, {minutes:.1f} min"
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a file or a pipe: no wrapping of the table
    out.print(table(results, losses, title))
    for r in results:
        if not r.ok:
            out.print(f"aborted: {r.loss} % run {r.run} after {fmt(r.wall, '.1f')} s: {r.reason}")
    save()


if __name__ == "__main__":
    main()
