"""What a process has open, read from Linux's /proc: its listening TCP sockets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"


def listening_tcp_ports(pid: int | None = None) -> set[int]:
    """The ports of the TCP sockets in state LISTEN that process *pid* (default:
    this one) holds. Skips the test where /proc/net/tcp does not exist."""
    if not _TABLES[0].exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    fd_dir = Path(f"/proc/{pid or os.getpid()}/fd")
    inodes: set[str] = set()
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:  # closed meanwhile
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(match[1])
    ports: set[int] = set()
    for table in _TABLES:
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports
