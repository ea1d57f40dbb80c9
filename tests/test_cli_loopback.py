"""The CLI server and client in two processes on real loopback UDP (bounded in time)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tp4emu.capture import read_pcap
from tp4emu.wire import CC, CR, DR, DT, decode

TIMEOUT = 20


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tp4emu", *args]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`tp4emu serve` on a free port that denies 127.0.0.2, recording a pcap."""
    pcap = tmp_path / "server.pcap"
    proc = subprocess.Popen(
        _cmd(
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tsap",
            "echo",
            "--deny",
            "127.0.0.2/32",
            "--exit-after",
            "2",
            "--pcap",
            str(pcap),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening 127.0.0.1:"), first
        port = first.split()[1].split(":")[1]
        yield proc, port, pcap
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)


def test_cli_server_and_client(
    server: tuple[subprocess.Popen[str], str, Path], tmp_path: Path
) -> None:
    proc, port, pcap = server
    ok = subprocess.run(
        _cmd("connect", f"127.0.0.1:{port}", "--tsap", "echo", "--data", "hi", "alpha", "beta"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"connected 127.0.0.1:{port} state=OPEN",
        "reply 'alpha'",
        "reply 'beta'",
    ]

    # A client bound to 127.0.0.2 is refused by the access list while CONFIRMING.
    denied = subprocess.run(
        [
            sys.executable,
            "-c",
            "import trio, tp4emu\n"
            "async def main():\n"
            "    async with tp4emu.open_endpoint(('127.0.0.2', 0)) as ep:\n"
            f"        await ep.connect(('127.0.0.1', {port}), called_tsap=b'echo')\n"
            "try:\n"
            "    trio.run(main)\n"
            "except tp4emu.ConnectionRejected as exc:\n"
            "    print('rejected', int(exc.reason))\n",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert denied.stdout.strip() == "rejected 128", denied.stderr

    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert lines[0].startswith("accept 127.0.0.1:") and "state=CONFIRMING" in lines[0]
    assert "called='echo' data='hi'" in lines[0]
    assert lines[1].startswith("allow 127.0.0.1:")
    assert any(line.startswith("accept 127.0.0.2:") for line in lines)
    assert any(line.startswith("reject 127.0.0.2:") and "reason=128" in line for line in lines)

    # The capture holds the whole story: CR, CC, DTs, and the DR refusing 127.0.0.2.
    kinds = [type(t) for rec in read_pcap(pcap) for t in decode(rec.payload)]
    assert kinds[:2] == [CR, CC]
    assert DT in kinds
    assert kinds.count(CR) == 2 and DR in kinds


def test_cli_client_rejected_by_tsap(server: tuple[subprocess.Popen[str], str, Path]) -> None:
    _, port, _ = server
    res = subprocess.run(
        _cmd("connect", f"127.0.0.1:{port}", "--tsap", "nobody", "x"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert res.returncode == 1
    assert res.stdout.strip() == "rejected: DR reason 2 (SESSION_NOT_ATTACHED) data=''"


def test_cli_over_tcp_same_output(tmp_path: Path) -> None:
    """--transport tcp: same commands, same lines; only the accept state differs (OPEN).

    --pcap works there too: the TPDUs, without their TPKT headers."""
    server_pcap = tmp_path / "tcp.pcap"
    proc = subprocess.Popen(
        _cmd(
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--transport",
            "tcp",
            "--exit-after",
            "1",
            "--pcap",
            str(server_pcap),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening 127.0.0.1:") and "transport=tcp" in first, first
        port = first.split()[1].split(":")[1]
        ok = subprocess.run(
            _cmd("connect", f"127.0.0.1:{port}", "--transport", "tcp", "--tsap", "echo", "a", "b"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.splitlines() == [
            f"connected 127.0.0.1:{port} state=OPEN",
            "reply 'a'",
            "reply 'b'",
        ]
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)
    lines = out.splitlines()
    assert lines[0].startswith("accept 127.0.0.1:") and "state=OPEN" in lines[0], lines
    assert lines[1].startswith("allow 127.0.0.1:") and "(already connected)" in lines[1]
    assert [line.split(" ", 2)[2] for line in lines[2:4]] == [
        "1 octets: 'a'",
        "1 octets: 'b'",
    ]
    records = list(read_pcap(server_pcap))
    assert {r.transport for r in records} == {"tcp"}
    kinds = [type(t).__name__ for r in records for t in decode(r.payload)]
    assert kinds == ["CR", "CC", "DT0", "DT0", "DT0", "DT0"]
