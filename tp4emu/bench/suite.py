"""What the suite measures, how it interleaves the samples, and what it keeps.

A *bench* (``bulk``, ``rtt``, ``connect``, ``idle``, ``aggregate``: the names
``--only`` takes) has *variants*: tp4emu and its baselines. For every run
index the variants of every bench selected are sampled back to back, in
turn, in alternating order (forwards in even runs, backwards in odd ones), each
sample in a fresh process (:mod:`tp4emu.bench.worker`). A *figure* is one row of
the table: a metric of one variant, its goal, and for most a baseline variant
of the same bench, whose pairwise ratio (:mod:`tp4emu.bench.stats`) the goal
is about.

The JSON written by ``--json`` (:func:`to_json`) holds the options, the
machine, the commit and every raw sample, and the figures computed from them;
``--compare`` reads one back (:func:`load_result`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .stats import Goal, Summary, change, pairwise_ratios, summarize
from .workloads import rcvbuf_errors

__all__ = [
    "BENCHES",
    "FIGURES",
    "SCHEMA",
    "Bench",
    "Figure",
    "FigureResult",
    "Options",
    "Sample",
    "SuiteResult",
    "Variant",
    "compute_figures",
    "load_result",
    "run_sample",
    "run_suite",
    "to_json",
]

SCHEMA = "tp4emu-bench/1"
"""The ``schema`` field of the JSON (changed when its layout changes)."""


@dataclass(frozen=True, slots=True)
class Options:
    """Sizes and counts of one invocation (``tp4emu bench`` options)."""

    runs: int = 5
    quick: bool = False
    only: tuple[str, ...] = ()
    idle_connections: int | None = None
    """None: 10000 (``--quick``: 1000)."""

    @property
    def sizes(self) -> dict[str, Any]:
        """The workloads' parameters these options give."""
        q = self.quick
        return {
            "bulk_total": (2 if q else 64) << 20,
            "rtt_n": 300 if q else 5000,
            "connect_count": 64 if q else 1000,
            "connect_in_flight": 8,
            "idle_connections": self.idle_connections or (1000 if q else 10000),
            "idle_seconds": 1.0 if q else 6.0,
            "idle_rtt_n": 200 if q else 3000,
            "aggregate_total": (4 if q else 64) << 20,
            "aggregate_connections": 100,
        }

    def benches(self) -> list[Bench]:
        """The benches selected (``--only``), in the suite's order."""
        return [b for b in BENCHES if not self.only or b.name in self.only]


@dataclass(frozen=True, slots=True)
class Variant:
    """One thing sampled: a workload with parameters taken from the sizes."""

    name: str
    label: str
    workload: str
    params: Callable[[dict[str, Any]], dict[str, Any]]
    once: bool = False
    """Sampled in the first run only (deterministic and slow: tracemalloc)."""


@dataclass(frozen=True, slots=True)
class Bench:
    """A group of variants sampled back to back (the unit of ``--only``)."""

    name: str
    help: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the table."""

    name: str
    """Stable key (the JSON's and ``--compare``'s)."""
    title: str
    """What the row shows; ``{idle}`` / ``{conns}`` are replaced by the sizes."""
    bench: str
    variant: str
    metric: str
    unit: str
    baseline: str | None = None
    """The variant of the same bench the ratio divides by (None: no ratio)."""
    goal: Goal | None = None
    scale: float = 1.0
    """Applied to the metric (B → KiB: 1/1024)."""
    higher_is_better: bool = True


def _bulk(use_checksum: bool | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def params(s: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"total": s["bulk_total"]}
        if use_checksum is not None:
            out["use_checksum"] = use_checksum
        return out

    return params


def _idle(connections: bool, trace: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def params(s: dict[str, Any]) -> dict[str, Any]:
        return {
            "connections": s["idle_connections"] if connections else 0,
            "trace": trace,
            "idle_seconds": s["idle_seconds"],
            "rtt_n": s["idle_rtt_n"],
        }

    return params


BENCHES: tuple[Bench, ...] = (
    Bench(
        "bulk",
        "one way, 8 KiB messages: tp4emu checksum on/off, raw trio UDP, trio TCP",
        (
            Variant("udp", "raw trio UDP", "bulk_udp", _bulk(None)),
            Variant("tp4", "tp4emu", "bulk_tp4", _bulk(True)),
            Variant("tp4-nocsum", "tp4emu, no checksum", "bulk_tp4", _bulk(False)),
            Variant("tcp", "trio TCP", "bulk_tcp", _bulk(None)),
        ),
    ),
    Bench(
        "rtt",
        "64-octet round trip, one at a time: tp4emu, raw trio UDP",
        (
            Variant("udp", "raw trio UDP", "rtt_udp", lambda s: {"n": s["rtt_n"], "size": 64}),
            Variant("tp4", "tp4emu", "rtt_tp4", lambda s: {"n": s["rtt_n"], "size": 64}),
        ),
    ),
    Bench(
        "connect",
        "connect + confirm + close, 8 in flight: tp4emu, trio TCP",
        (
            Variant(
                "tcp",
                "trio TCP",
                "connect_tcp",
                lambda s: {"count": s["connect_count"], "in_flight": s["connect_in_flight"]},
            ),
            Variant(
                "tp4",
                "tp4emu",
                "connect_tp4",
                lambda s: {"count": s["connect_count"], "in_flight": s["connect_in_flight"]},
            ),
        ),
    ),
    Bench(
        "idle",
        "--idle-connections OPEN connections: memory, CPU, round trip beside them",
        (
            Variant("none", "no idle connection", "idle_tp4", _idle(False)),
            Variant("idle", "idle connections", "idle_tp4", _idle(True)),
            Variant(
                "traced", "idle connections, tracemalloc", "idle_tp4", _idle(True, True), once=True
            ),
        ),
    ),
    Bench(
        "aggregate",
        "bulk over 100 connections at once against 1, and kernel UDP drops",
        (
            Variant(
                "one",
                "1 connection",
                "aggregate_tp4",
                lambda s: {"total": s["aggregate_total"], "connections": 1},
            ),
            Variant(
                "many",
                "connections at once",
                "aggregate_tp4",
                lambda s: {
                    "total": s["aggregate_total"],
                    "connections": s["aggregate_connections"],
                },
            ),
        ),
    ),
)
"""Every bench, in the order they run within a run index."""

_KIB = 1 / 1024

FIGURES: tuple[Figure, ...] = (
    Figure(
        "bulk-nocsum",
        "bulk 8 KiB one way, no checksum",
        "bulk",
        "tp4-nocsum",
        "MB/s",
        "MB/s",
        baseline="udp",
        goal=Goal(">=", 0.8),
    ),
    Figure(
        "bulk-csum",
        "bulk 8 KiB one way, checksum",
        "bulk",
        "tp4",
        "MB/s",
        "MB/s",
        baseline="udp",
        goal=Goal(">=", 0.5),
    ),
    Figure("bulk-tcp", "bulk 8 KiB one way, trio TCP", "bulk", "tcp", "MB/s", "MB/s", "udp"),
    Figure(
        "rtt",
        "round trip 64 B",
        "rtt",
        "tp4",
        "µs",
        "µs",
        baseline="udp",
        goal=Goal("<=", 1.5),
        higher_is_better=False,
    ),
    Figure(
        "connect",
        "connect+confirm+close, 8 in flight",
        "connect",
        "tp4",
        "conn/s",
        "conn/s",
        baseline="tcp",
        goal=Goal(">=", 0.5),
    ),
    Figure(
        "idle-traced",
        "memory per idle connection, tracemalloc",
        "idle",
        "traced",
        "traced B/conn",
        "KiB",
        goal=Goal("<=", 2.5, "value"),
        scale=_KIB,
        higher_is_better=False,
    ),
    Figure(
        "idle-rss",
        "memory per idle connection, RSS",
        "idle",
        "idle",
        "RSS B/conn",
        "KiB",
        goal=Goal("<=", 2.5, "value"),
        scale=_KIB,
        higher_is_better=False,
    ),
    Figure(
        "idle-cpu",
        "idle CPU, {idle} connections",
        "idle",
        "idle",
        "CPU %",
        "% core",
        goal=Goal("<=", 1.0, "value"),
        higher_is_better=False,
    ),
    Figure(
        "idle-datagrams",
        "datagrams sent while idle",
        "idle",
        "idle",
        "datagrams/s",
        "/s",
        higher_is_better=False,
    ),
    Figure(
        "idle-rtt",
        "round trip 64 B beside {idle} idle",
        "idle",
        "idle",
        "µs",
        "µs",
        baseline="none",
        goal=Goal("<=", 1.1),
        higher_is_better=False,
    ),
    Figure(
        "idle-setup",
        "setup of {idle} connections",
        "idle",
        "idle",
        "setup s",
        "s",
        higher_is_better=False,
    ),
    Figure(
        "aggregate",
        "aggregate bulk, {conns} connections",
        "aggregate",
        "many",
        "MB/s",
        "MB/s",
        baseline="one",
        goal=Goal(">=", 1.0),
    ),
    Figure(
        "aggregate-drops",
        "kernel UDP rcvbuf drops, {conns} conns",
        "aggregate",
        "many",
        "drops",
        "",
        goal=Goal("<=", 0, "max"),
        higher_is_better=False,
    ),
)
"""Every row of the table, in order."""


# ---------------------------------------------------------------- samples


@dataclass(slots=True)
class Sample:
    """One sample: a variant in one run, what it measured or why it failed."""

    bench: str
    variant: str
    run: int
    position: int
    """Its place among its bench's variants in this run (0: first)."""
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    wall: float = 0.0
    """Seconds the process took, start-up included."""
    kernel_drops: int | None = None
    """``RcvbufErrors`` delta while the process ran (the namespace's, not only ours)."""
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The sample as the JSON keeps it."""
        return asdict(self)


def _child_env() -> dict[str, str]:
    """This environment, with the directory holding this tp4emu first on PYTHONPATH."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not path else os.pathsep.join([root, path])
    return env


def run_sample(
    workload: str, params: dict[str, Any], timeout: float
) -> tuple[dict[str, float], str | None]:
    """Run one workload in a fresh ``python -m tp4emu.bench.worker``: (metrics, error)."""
    argv = [sys.executable, "-m", "tp4emu.bench.worker", workload, json.dumps(params)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=timeout,
            env=_child_env(),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {}, f"no result after {timeout:g} s"
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        return {}, lines[-1] if lines else f"exit status {proc.returncode}"
    try:
        metrics = json.loads(proc.stdout.decode().strip().splitlines()[-1])["metrics"]
    except (ValueError, IndexError, KeyError):
        return {}, "the worker printed no result"
    return {k: float(v) for k, v in metrics.items()}, None


SampleFn = Callable[[str, dict[str, Any], float], tuple[dict[str, float], str | None]]
"""How a sample is taken: :func:`run_sample`, or a stand-in in tests."""


def schedule(options: Options) -> list[tuple[int, Bench, int, Variant]]:
    """Every sample to take, in order: (run, bench, position, variant)."""
    out = []
    for run in range(options.runs):
        for bench in options.benches():
            variants = bench.variants if run % 2 == 0 else tuple(reversed(bench.variants))
            variants = tuple(v for v in variants if run == 0 or not v.once)
            for position, variant in enumerate(variants):
                out.append((run, bench, position, variant))
    return out


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FigureResult:
    """A figure computed from the samples."""

    figure: Figure
    title: str
    values: list[float | None]
    """The figure's metric per run index (None: missing), scaled."""
    value: Summary
    baseline_label: str | None
    baseline_values: list[float | None]
    baseline: Summary
    ratios: list[float]
    ratio: Summary
    ok: bool | None
    """Whether the goal holds (None: no goal, or nothing measured)."""
    goal_text: str

    def to_json(self) -> dict[str, Any]:
        """The figure as the JSON keeps it."""
        f = self.figure

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "name": f.name,
            "title": self.title,
            "bench": f.bench,
            "variant": f.variant,
            "metric": f.metric,
            "unit": f.unit,
            "scale": f.scale,
            "higher_is_better": f.higher_is_better,
            "baseline": f.baseline,
            "baseline_label": self.baseline_label,
            "goal": self.goal_text or None,
            "goal_holds": self.ok,
            "median": num(self.value.median),
            "min": num(self.value.min),
            "max": num(self.value.max),
            "n": self.value.n,
            "values": self.values,
            "baseline_median": num(self.baseline.median),
            "baseline_values": self.baseline_values,
            "ratio": num(self.ratio.median),
            "ratio_min": num(self.ratio.min),
            "ratio_max": num(self.ratio.max),
            "ratios": self.ratios,
        }


def _metric(
    samples: Iterable[Sample], bench: str, variant: str, metric: str, runs: int, scale: float
) -> list[float | None]:
    values: list[float | None] = [None] * runs
    for s in samples:
        ours = s.bench == bench and s.variant == variant and 0 <= s.run < runs
        if ours and s.error is None and metric in s.metrics:
            values[s.run] = s.metrics[metric] * scale
    return values


def compute_figures(
    samples: Sequence[Sample], options: Options, benches: Iterable[str] | None = None
) -> list[FigureResult]:
    """The table's rows for the benches run (default: those *options* selects)."""
    names = set(benches) if benches is not None else {b.name for b in options.benches()}
    sizes = options.sizes
    labels = {(b.name, v.name): v.label for b in BENCHES for v in b.variants}
    out = []
    for f in FIGURES:
        if f.bench not in names:
            continue
        title = f.title.format(idle=sizes["idle_connections"], conns=sizes["aggregate_connections"])
        values = _metric(samples, f.bench, f.variant, f.metric, options.runs, f.scale)
        base_values: list[float | None] = [None] * options.runs
        base_label = None
        if f.baseline is not None:
            base_values = _metric(samples, f.bench, f.baseline, f.metric, options.runs, f.scale)
            base_label = labels[(f.bench, f.baseline)]
        value = summarize(values)
        ratios = pairwise_ratios(values, base_values) if f.baseline else []
        ratio = summarize(ratios)
        ok = None
        goal_text = ""
        if f.goal is not None:
            x = value.max if f.goal.on == "max" else value.median
            ok = f.goal.holds(x, ratio.median)
            goal_text = f.goal.text(f.unit, base_label or "")
        out.append(
            FigureResult(
                f,
                title,
                values,
                value,
                base_label,
                base_values,
                summarize(base_values),
                ratios,
                ratio,
                ok,
                goal_text,
            )
        )
    return out


@dataclass(slots=True)
class SuiteResult:
    """Everything one invocation measured."""

    options: Options
    samples: list[Sample]
    meta: dict[str, Any]
    figures: list[FigureResult] = field(default_factory=list)
    compare: dict[str, dict[str, Any]] | None = None
    """``--compare``: the old JSON's figures by name."""
    compare_label: str = ""

    @property
    def failed(self) -> list[Sample]:
        """The samples that did not produce a result."""
        return [s for s in self.samples if s.error is not None]

    @property
    def kernel_drops(self) -> int | None:
        """``RcvbufErrors`` over every sample (None: not known)."""
        drops = [s.kernel_drops for s in self.samples]
        if not drops or any(d is None for d in drops):
            return None
        return sum(d for d in drops if d is not None)

    def old(self, name: str) -> tuple[float, float] | None:
        """The compared JSON's (median, change) for figure *name* (None: not in it)."""
        if self.compare is None or name not in self.compare:
            return None
        old = self.compare[name].get("median")
        new = next((f.value.median for f in self.figures if f.figure.name == name), math.nan)
        if not isinstance(old, (int, float)):
            return None
        return float(old), change(new, float(old))


def _git(*args: str) -> str | None:
    package = Path(__file__).resolve().parent.parent
    try:
        proc = subprocess.run(
            ["git", "-C", str(package), *args],
            capture_output=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def machine_meta() -> dict[str, Any]:
    """The commit, the date, the versions and the machine, for the JSON."""
    import trio

    import tp4emu

    __version__ = tp4emu.__version__
    commit = dirty = None
    top = _git("rev-parse", "--show-toplevel")
    package = Path(__file__).resolve().parent.parent
    # only the repository this tp4emu was imported from (not one a venv sits in)
    if top and (Path(top) / "tp4emu").resolve() == package:
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    try:
        load: list[float] | None = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "commit": commit,
        "dirty": dirty,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "tp4emu": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "machine": {
            "nproc": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "loadavg_start": load,
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
    }


Progress = Callable[[int, int, Bench, Variant, Sample | None], None]
"""Called before each sample (*sample* None) and after it:
(index, total, bench, variant, sample)."""


def run_suite(
    options: Options,
    *,
    sample_fn: SampleFn = run_sample,
    progress: Progress | None = None,
    timeout: float | None = None,
) -> SuiteResult:
    """Take every sample of *options* (interleaved, see the module), compute the figures."""
    sizes = options.sizes
    if timeout is None:
        timeout = 120.0 if options.quick else 900.0
    meta = machine_meta()
    t0 = time.monotonic()
    samples: list[Sample] = []
    plan = schedule(options)
    for index, (run, bench, position, variant) in enumerate(plan):
        if progress is not None:
            progress(index, len(plan), bench, variant, None)
        params = variant.params(sizes)
        drops0 = rcvbuf_errors()
        started = time.monotonic()
        metrics, error = sample_fn(variant.workload, params, timeout)
        wall = time.monotonic() - started
        drops1 = rcvbuf_errors()
        sample = Sample(
            bench.name,
            variant.name,
            run,
            position,
            metrics,
            error,
            wall,
            drops1 - drops0 if drops0 is not None and drops1 is not None else None,
            params,
        )
        samples.append(sample)
        if progress is not None:
            progress(index, len(plan), bench, variant, sample)
    meta["seconds"] = time.monotonic() - t0
    try:
        meta["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        meta["machine"]["loadavg_end"] = None
    result = SuiteResult(options, samples, meta)
    result.figures = compute_figures(samples, options)
    return result


def to_json(result: SuiteResult) -> str:
    """The JSON of ``--json``: schema, meta, options, sizes, figures, every raw sample."""
    o = result.options
    doc = {
        "schema": SCHEMA,
        **result.meta,
        "options": {
            "runs": o.runs,
            "quick": o.quick,
            "only": list(o.only),
            "idle_connections": o.sizes["idle_connections"],
        },
        "sizes": o.sizes,
        "ratio": "median of the pairwise ratios (run i's sample / run i's baseline sample)",
        "kernel_drops": result.kernel_drops,
        "figures": [f.to_json() for f in result.figures],
        "samples": [s.to_json() for s in result.samples],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def load_result(path: str) -> dict[str, Any]:
    """A JSON written by ``--json`` (raises OSError, or ValueError when it is not one)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a tp4emu bench JSON (schema {SCHEMA})")
    if not isinstance(doc.get("figures"), list):
        raise ValueError(f"{path}: no figures")
    return doc
