"""``tp4emu demo``: run_demo() and the command line, on loopback in real time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from tp4emu.cli.demo import DemoResult, run_demo
from tp4emu.transport.udp import LossyUDPSocket
from tp4emu.wire import DR, decode

CHECKS = [
    "TP4: allowed client's connect() returned only after the server decided",
    "TP4: allowed client got its echo",
    "TP4: denied client's connect() failed with DR reason 128",
    "TCP: allowed client's connect() returned before the server decided",
    "TCP: allowed client got its echo",
    "TCP: denied client's connect() succeeded, then it was cut off",
]


def assert_all_ok(result: DemoResult) -> None:
    assert [name for name, _ in result.checks] == CHECKS
    failed = [name for name, ok in result.checks if not ok]
    assert not failed, failed
    assert result.ok


async def test_run_demo_all_six_checks() -> None:
    with trio.fail_after(30):
        result = await run_demo()
    assert_all_ok(result)
    assert set(result.timelines) == {"tp4", "tcp"}
    assert list(result.statistics) == [
        "server retransmissions",
        "client retransmissions",
        "datagrams lost (injected)",
    ]
    assert result.statistics["server retransmissions"] == 0
    assert result.statistics["datagrams lost (injected)"] == 0
    # What the checks rest on, seen directly.
    tp4_a = result.outcomes[("tp4", "127.0.0.1")]
    tcp_a = result.outcomes[("tcp", "127.0.0.1")]
    assert tp4_a.connected_at is not None and tcp_a.connected_at is not None
    assert tp4_a.connected_at >= result.decided_at[("tp4", "127.0.0.1")]
    assert tcp_a.connected_at < result.decided_at[("tcp", "127.0.0.1")]
    assert result.outcomes[("tp4", "127.0.0.2")].rejected_reason == 128
    assert result.outcomes[("tcp", "127.0.0.2")].cut_off
    tp4_rows = [what for _, who, what in result.timelines["tp4"].rows if who == "server"]
    assert "accept() returned, state CONFIRMING" in tp4_rows
    tcp_rows = [what for _, who, what in result.timelines["tcp"].rows if who == "server"]
    assert "accept() returned, state OPEN" in tcp_rows


async def test_run_demo_counts_and_shows_the_clients_retransmissions() -> None:
    """The server decides after 0.6 s; the client's CR timer (0.25 s) fires before:
    the client's retransmissions are counted, and the timeline shows the CR
    arriving again as a retransmission, not as a new CR."""
    with trio.fail_after(30):
        result = await run_demo(decide_delay=0.6)
    assert_all_ok(result)
    assert result.statistics["client retransmissions"] >= 1
    server_rows = [what for _, who, what in result.timelines["tp4"].rows if who == "server"]
    crs = [row for row in server_rows if row.startswith("receives CR") and "127.0.0.1" in row]
    assert crs[0] == "receives CR (class 4, called TSAP b'demo') from 127.0.0.1"
    assert len(crs) >= 2
    assert all(
        row == "receives CR (class 4, called TSAP b'demo') again (retransmitted) from 127.0.0.1"
        for row in crs[1:]
    ), crs


async def test_run_demo_with_loss() -> None:
    """20 % of the UDP datagrams lost (three seeds): still every outcome, and it shows."""
    retransmissions = 0
    with trio.fail_after(45):
        for seed in (1, 4, 7):
            result = await run_demo(loss=0.2, seed=seed)
            assert_all_ok(result)
            assert result.statistics["datagrams lost (injected)"] > 0
            retransmissions += result.statistics["server retransmissions"]
    assert retransmissions > 0


async def test_run_demo_survives_a_lost_client_dr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lose exactly one datagram, deterministically: the allowed client's DR."""
    sockets: list[LossyUDPSocket] = []
    original_init = LossyUDPSocket.__init__
    original_send = LossyUDPSocket.send_nowait
    dropped: list[bytes] = []

    def init(self: LossyUDPSocket, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        sockets.append(self)

    def send_nowait(self: LossyUDPSocket, data: bytes, addr: Any) -> bool:
        # sockets[0] is the server's (created first); the clients' come after it.
        if self is not sockets[0] and not dropped and any(isinstance(t, DR) for t in decode(data)):
            dropped.append(data)
            return True
        return original_send(self, data, addr)

    monkeypatch.setattr(LossyUDPSocket, "__init__", init)
    monkeypatch.setattr(LossyUDPSocket, "send_nowait", send_nowait)
    start = trio.current_time()
    with trio.move_on_after(5):
        # loss > 0 only as a habit: the rate itself never fires.
        result = await run_demo(loss=1e-12, seed=1, decide_delay=0.2)
    assert dropped, "the client's DR was not seen"
    assert trio.current_time() - start < 5, "run_demo was still running after 5 s"
    assert_all_ok(result)


async def test_run_demo_writes_a_pcap(tmp_path: Path) -> None:
    path = tmp_path / "demo.pcap"
    with trio.fail_after(30):
        result = await run_demo(pcap_path=str(path), decide_delay=0.2)
    assert_all_ok(result)
    data = path.read_bytes()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1")
    assert len(data) > 24 + 10 * 16  # header and a dozen or so records


def test_cli_demo() -> None:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "tp4emu", "demo", "--color", "never"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.rstrip() for line in proc.stdout.splitlines()]
    for check in CHECKS:
        assert f"ok   {check}" in lines, proc.stdout
    assert "FAIL" not in proc.stdout
    assert "\x1b[" not in proc.stdout  # --color never
    assert "state CONFIRMING" in proc.stdout


def test_cli_demo_rejects_a_bad_loss() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tp4emu", "demo", "--loss", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--loss" in proc.stderr
