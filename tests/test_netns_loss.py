"""Real kernel-level loss: a file transfer through an nftables rule that drops 10 % of UDP.

The test makes a network namespace of its own (so nothing outside it is
touched), brings up its loopback interface, adds an nftables rule on the input
hook that drops a random 10 % of UDP datagrams (``numgen random``), and runs
``examples/file_transfer.py`` inside it on 127.0.0.1. The data must arrive
byte-exact, the kernel's drop counter must show losses and the sender must
have retransmitted. Bounded: 2 MB, 120 s at most.

Needs root, ``ip`` and ``nft``; ``.ci/run`` installs them, and under CI a
missing tool fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIZE = 2_000_000


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def _run(*args: str, timeout: float = 20) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=timeout).stdout


@pytest.fixture
def lossy_namespace() -> Iterator[str]:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the kernel-loss test: {why}")
        pytest.skip(why)
    name = f"tp4emu-{uuid.uuid4().hex[:8]}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        nft = ("ip", "netns", "exec", name, "nft")
        _run(*nft, "add", "table", "inet", "tp4loss")
        _run(
            *nft,
            "add chain inet tp4loss input { type filter hook input priority 0 ; policy accept ; }",
        )
        _run(
            *nft,
            "add rule inet tp4loss input meta l4proto udp numgen random mod 100 < 10 counter drop",
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


def test_file_transfer_through_kernel_loss(lossy_namespace: str) -> None:
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lossy_namespace,
            sys.executable,
            str(ROOT / "examples" / "file_transfer.py"),
            "--size",
            str(SIZE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"receiver: 2000000 octets, sha256 [0-9a-f]{64}: OK", out), out
    assert "match" in out, out
    retransmissions = int(re.search(r"sender: (\d+) retransmissions", out)[1])  # type: ignore[index]
    assert retransmissions > 0, out
    ruleset = _run("ip", "netns", "exec", lossy_namespace, "nft", "list", "ruleset")
    dropped = int(re.search(r"counter packets (\d+)", ruleset)[1])  # type: ignore[index]
    assert dropped > 0, ruleset
