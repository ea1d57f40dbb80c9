"""``tp4emu conformance``: listing, usage errors (one line, exit 2), and a whole run
against ``tp4emu serve`` started as a process, with every report written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tp4emu.capture import read_pcap
from tp4emu.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_list_shows_every_case_with_its_clause(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "--list"]) == 0
    out = capsys.readouterr().out
    assert "c4.est.cr-cc" in out and "c0.inv.tpkt-version" in out
    assert "ISO 8073 6.5" in out and "RFC 1006 6" in out
    assert "[needs ut]" in out and "(tester responder)" in out


def test_list_follows_the_target_and_the_patterns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "tcp://127.0.0.1:102", "--list", "--case", "c0.est.*"]) == 0
    names = [
        line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")
    ]
    assert names and all(n.startswith("c0.est.") for n in names)
    assert main(["conformance", "udp://127.0.0.1:102", "--list", "--role", "responder"]) == 0
    names = [
        line.split()[0] for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")
    ]
    assert names and all(n.startswith("c4.") for n in names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["conformance"], "a TARGET is needed"),
        (["conformance", "127.0.0.1:102"], "expected udp://HOST:PORT"),
        (["conformance", "udp://127.0.0.1:9", "--case", "nothing-like-this"], "no case matches"),
        (["conformance", "udp://127.0.0.1:9", "--timer", "X=1"], "--timer 'X=1'"),
        (["conformance", "udp://127.0.0.1:9", "--timer", "T1=-1"], "must be positive"),
        (["conformance", "udp://127.0.0.1:9", "--report", "out.txt"], "--report must end"),
        (["conformance", "udp://127.0.0.1:9", "--response-time", "0"], "must be positive"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tp4emu conformance: ") and message in err
    assert len(err.splitlines()) == 1


def test_a_target_that_does_not_resolve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conformance", "udp://999.1.1.1:9", "--case", "c4.est.cr-cc"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tp4emu conformance: udp://999.1.1.1:9: ")
    assert len(err.splitlines()) == 1


def test_a_failing_case_gives_exit_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "conformance",
        "udp://127.0.0.1:9",
        "--case",
        "c4.est.cr-cc",
        "--response-time",
        "0.1",
        "--color",
        "never",
    ]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "fail" in out and "no CC" in out


@pytest.fixture
def serve() -> Iterator[int]:
    """``tp4emu serve`` on a free UDP port, as its own process; yields the port."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tp4emu", "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "listening 127.0.0.1:PORT ..."
        assert line.startswith("listening "), line
        yield int(line.split()[1].rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_run_against_tp4emu_serve_writes_every_report(
    serve: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {k: tmp_path / f"run.{k}" for k in ("xml", "json", "md", "pcap")}
    html = tmp_path / "run.html"
    argv = [
        "conformance",
        f"udp://127.0.0.1:{serve}",
        "--profile",
        "tp4emu",
        "--case",
        "c4.est.cr-cc,c4.data.single-dt,c4.exp.echo",
        "--color",
        "never",
        "--junit",
        str(files["xml"]),
        "--json",
        str(files["json"]),
        "--report",
        str(files["md"]),
        "--pcap",
        str(files["pcap"]),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "pass         c4.est.cr-cc" in out  # the progress lines
    assert "2 pass, 1 skipped" in out and "PICS" in out
    doc = json.loads(files["json"].read_text())
    assert doc["counts"]["pass"] == 2 and doc["settings"]["timers"]["T1"] == 0.5
    ts = ET.fromstring(files["xml"].read_text()).find("testsuite")
    assert ts is not None and ts.get("tests") == "3" and ts.get("failures") == "0"
    assert "| `c4.data.single-dt` | data transfer |" in files["md"].read_text()
    records = list(read_pcap(str(files["pcap"])))
    assert len(records) >= 6 and any(r.dst[1] == serve for r in records)
    assert main([*argv[:6], "--color", "never", "--report", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>")


def test_nothing_shown_is_not_a_success(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on the TCP port: every case is inconclusive, the exit status 1."""
    argv = ["conformance", "tcp://127.0.0.1:9", "--case", "c0.est.cr-cc", "--color", "never"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "inconclusive" in captured.out and "cannot open a TCP connection" in captured.out
    assert "no case passed" in captured.err
