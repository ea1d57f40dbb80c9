"""``tp4emu bench``: the statistics on fixed numbers, the schedule, the command end to end.

No test here looks at a speed: the suite reports its goals, it never asserts them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from clirun import run

from tp4emu.bench.report import fmt, fmt_ratio
from tp4emu.bench.stats import Goal, change, pairwise_ratios, summarize
from tp4emu.bench.suite import (
    BENCHES,
    FIGURES,
    SCHEMA,
    Options,
    Sample,
    compute_figures,
    run_suite,
    schedule,
)

# ------------------------------------------------------------------ statistics


def test_summarize_takes_the_median_and_the_range_skipping_missing_samples() -> None:
    s = summarize([3.0, None, 1.0, 2.0, math.nan, 10.0])
    assert (s.median, s.min, s.max, s.n) == (2.5, 1.0, 10.0, 4)
    empty = summarize([None, None])
    assert empty.empty and math.isnan(empty.median)


def test_pairwise_ratios_pair_each_run_with_its_own_baseline() -> None:
    values = [50.0, 60.0, None, 40.0, 30.0]
    bases = [100.0, 100.0, 100.0, None, 0.0]
    assert pairwise_ratios(values, bases) == [0.5, 0.6]
    # the median of the pairwise ratios is not the ratio of the medians
    values, bases = [10.0, 20.0, 90.0], [10.0, 40.0, 100.0]
    assert summarize(pairwise_ratios(values, bases)).median == 0.9
    assert summarize(values).median / summarize(bases).median == 0.5


def test_goals() -> None:
    at_least = Goal(">=", 0.8)
    assert at_least.holds(1.0, 0.8) is True and at_least.holds(1.0, 0.79) is False
    assert at_least.holds(1.0, math.nan) is None
    assert at_least.text("MB/s", "raw trio UDP") == "≥ 0.8x raw trio UDP"
    at_most = Goal("<=", 2.5, "value")
    assert at_most.holds(2.5, math.nan) is True and at_most.holds(2.6, 0.1) is False
    assert at_most.text("KiB") == "≤ 2.5 KiB"
    assert Goal("<=", 0, "max").text() == "0 in every run"
    assert change(110.0, 100.0) == pytest.approx(0.1)
    assert math.isnan(change(1.0, 0.0))


def test_number_formats() -> None:
    assert [fmt(x) for x in (354.8, 73.94, 1.234, 0.01234, 0.0)] == [
        "355",
        "73.9",
        "1.23",
        "0.0123",
        "0",
    ]
    assert fmt(math.nan) == "-" and fmt(39.51, "µs") == "39.5 µs"
    assert (fmt_ratio(0.2134), fmt_ratio(0.0612)) == ("0.21", "0.061")


def _sample(bench: str, variant: str, run: int, **metrics: float) -> Sample:
    return Sample(bench, variant, run, 0, dict(metrics))


def test_figures_from_fixed_samples() -> None:
    options = Options(runs=3, only=("bulk", "idle"), idle_connections=100)
    samples = [
        _sample("bulk", "udp", 0, **{"MB/s": 300.0}),
        _sample("bulk", "tp4", 0, **{"MB/s": 150.0}),
        _sample("bulk", "tp4-nocsum", 0, **{"MB/s": 270.0}),
        _sample("bulk", "udp", 1, **{"MB/s": 400.0}),
        _sample("bulk", "tp4", 1, **{"MB/s": 100.0}),
        _sample("bulk", "tp4-nocsum", 1, **{"MB/s": 320.0}),
        _sample("bulk", "udp", 2, **{"MB/s": 200.0}),
        _sample("bulk", "tp4", 2, **{"MB/s": 120.0}),
        Sample("bulk", "tp4-nocsum", 2, 0, error="ConnectionTimedOut: boom"),
        _sample("idle", "traced", 0, **{"traced B/conn": 2048.0}),
        _sample("idle", "traced", 1, **{"traced B/conn": 3072.0}),
        _sample("idle", "traced", 2, **{"traced B/conn": 4096.0}),
    ]
    figures = {f.figure.name: f for f in compute_figures(samples, options)}
    assert set(figures) == {f.name for f in FIGURES if f.bench in ("bulk", "idle")}
    on = figures["bulk-csum"]
    assert on.values == [150.0, 100.0, 120.0] and on.value.median == 120.0
    assert on.ratios == [0.5, 0.25, 0.6] and on.ratio.median == 0.5
    assert (on.ratio.min, on.ratio.max) == (0.25, 0.6)
    assert on.ok is True and on.goal_text == "≥ 0.5x raw trio UDP"
    off = figures["bulk-nocsum"]  # run 2 failed: its pair is left out
    assert off.values == [270.0, 320.0, None] and off.ratios == [0.9, 0.8]
    assert off.ratio.median == pytest.approx(0.85) and off.ok is True
    assert figures["bulk-tcp"].ok is None and figures["bulk-tcp"].value.empty
    mem = figures["idle-traced"]
    assert mem.value.median == 3.0 and mem.ok is False  # 3 KiB > 2.5 KiB
    assert figures["idle-cpu"].ok is None  # no sample: not measured
    assert figures["idle-cpu"].title == "idle CPU, 100 connections"
    doc = figures["bulk-csum"].to_json()
    assert doc["ratio"] == 0.5 and doc["goal_holds"] is True and doc["ratios"] == [0.5, 0.25, 0.6]


def test_schedule_interleaves_and_alternates_the_order() -> None:
    plan = schedule(Options(runs=3, only=("rtt", "connect")))
    names = [(run, bench.name, v.name) for run, bench, _, v in plan]
    assert names == [
        (0, "rtt", "udp"),
        (0, "rtt", "tp4"),
        (0, "connect", "tcp"),
        (0, "connect", "tp4"),
        (1, "rtt", "tp4"),
        (1, "rtt", "udp"),
        (1, "connect", "tp4"),
        (1, "connect", "tcp"),
        (2, "rtt", "udp"),
        (2, "rtt", "tp4"),
        (2, "connect", "tcp"),
        (2, "connect", "tp4"),
    ]
    idle = [(run, v.name) for run, _, _, v in schedule(Options(runs=3, only=("idle",)))]
    assert idle == [  # tracemalloc's figure is deterministic and slow: the first run only
        (0, "none"),
        (0, "idle"),
        (0, "traced"),
        (1, "idle"),
        (1, "none"),
        (2, "none"),
        (2, "idle"),
    ]


def test_every_figure_names_a_variant_and_every_bench_has_figures() -> None:
    variants = {(b.name, v.name) for b in BENCHES for v in b.variants}
    for f in FIGURES:
        assert (f.bench, f.variant) in variants
        assert f.baseline is None or (f.bench, f.baseline) in variants
    assert {f.bench for f in FIGURES} == {b.name for b in BENCHES}


def test_run_suite_with_a_stand_in_sampler() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake(workload: str, params: dict[str, Any], timeout: float) -> Any:
        calls.append((workload, params))
        return {"µs": 100.0 if workload == "rtt_tp4" else 40.0}, None

    result = run_suite(Options(runs=2, quick=True, only=("rtt",)), sample_fn=fake)
    assert [w for w, _ in calls] == ["rtt_udp", "rtt_tp4", "rtt_tp4", "rtt_udp"]
    assert calls[0][1] == {"n": 300, "size": 64}
    (rtt,) = result.figures
    assert rtt.ratio.median == 2.5 and rtt.ok is False
    assert [s.position for s in result.samples] == [0, 1, 0, 1]


# ------------------------------------------------------------------ the command

TITLES_QUICK = [
    "bulk 8 KiB one way, no checksum",
    "bulk 8 KiB one way, checksum",
    "bulk 8 KiB one way, trio TCP",
    "round trip 64 B",
    "connect+confirm+close, 8 in flight",
    "memory per idle connection, tracemalloc",
    "memory per idle connection, RSS",
    "idle CPU, 50 connections",
    "datagrams sent while idle",
    "round trip 64 B beside 50 idle",
    "setup of 50 connections",
    "aggregate bulk, 100 connections",
    "kernel UDP rcvbuf drops, 100 conns",
]


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    result = run("bench", "--quick", "--idle-connections", "50", "--json", str(path), timeout=50)
    assert result.status == 0, result.err
    return path, result.out


def test_quick_run_prints_every_figure(quick_json: tuple[Path, str]) -> None:
    _, out = quick_json
    for title in TITLES_QUICK:
        assert title in out
    assert "ratio" in out and "goal?" in out and "min-max" in out


def test_quick_run_json(quick_json: tuple[Path, str]) -> None:
    path, _ = quick_json
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA
    for key in ("commit", "date", "python", "trio", "tp4emu", "machine", "sizes", "ratio"):
        assert key in doc
    assert {"nproc", "loadavg_start", "loadavg_end"} <= set(doc["machine"])
    assert doc["options"] == {"runs": 1, "quick": True, "only": [], "idle_connections": 50}
    assert [f["title"] for f in doc["figures"]] == TITLES_QUICK
    assert len(doc["samples"]) == sum(len(b.variants) for b in BENCHES)
    for s in doc["samples"]:
        assert s["error"] is None and s["metrics"], s
        assert {"bench", "variant", "run", "position", "params", "wall", "kernel_drops"} <= set(s)
    for f in doc["figures"]:
        assert f["n"] == 1 and isinstance(f["median"], float), f
        assert (f["goal"] is None) == (f["goal_holds"] is None)
        if f["baseline"] is not None:
            assert isinstance(f["ratio"], float)
    idle = next(s for s in doc["samples"] if s["variant"] == "idle")
    assert idle["metrics"]["open"] == 50 and idle["params"]["connections"] == 50


def test_compare_adds_the_old_medians(quick_json: tuple[Path, str], tmp_path: Path) -> None:
    old, _ = quick_json
    new = tmp_path / "new.json"
    result = run(
        "bench", "--quick", "--only", "rtt", "--compare", str(old), "--json", str(new), timeout=30
    )
    assert result.status == 0, result.err
    assert "old median" in result.out and "change" in result.out
    assert "round trip 64 B" in result.out and "bulk 8 KiB" not in result.out
    row = next(line for line in result.out.splitlines() if line.startswith("round trip 64 B "))
    assert row.rstrip().endswith("%")
    doc = json.loads(new.read_text())
    assert [f["name"] for f in doc["figures"]] == ["rtt"]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--only", "bulk,bogus"], 2, "--only: no bench 'bogus'"),
        (["--runs", "0"], 2, "--runs must be at least 1"),
        (["--idle-connections", "0"], 2, "--idle-connections must be at least 1"),
        (["--compare", "/nonexistent/old.json"], 1, "cannot read /nonexistent/old.json"),
        (["--json", "/nonexistent/dir/x.json"], 1, "cannot write /nonexistent/dir/x.json"),
    ],
)
def test_bench_errors_are_one_line(args: list[str], status: int, message: str) -> None:
    result = run("bench", "--quick", *args)
    assert result.status == status
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith(f"tp4emu bench: {message}"), line


def test_compare_with_a_file_that_is_not_a_bench_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something else"}')
    result = run("bench", "--compare", str(bad))
    assert result.status == 1
    (line,) = result.err.splitlines()
    assert "not a tp4emu bench JSON" in line
