"""Fixtures shared by several test modules: tshark, a Wireshark home, a snap7 S7 server."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tshark() -> str:
    """The tshark executable; required under CI, the test is skipped elsewhere."""
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is required under CI (apt-get install tshark)")
        pytest.skip("tshark not installed")
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty Wireshark configuration directory: no user preferences."""
    return tmp_path_factory.mktemp("wireshark-home")


@pytest.fixture
def snap7_server() -> Iterator[int]:
    """A running python-snap7 S7 server (a real class 0 peer) on 127.0.0.1; yields its port."""
    from snap7.server import Server  # a pinned test dependency: no skip, CI must run it

    server = Server(log=False)
    for attempt in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            server.start_to("127.0.0.1", tcp_port=port)
            break
        except Exception:
            if attempt == 4:
                raise
    try:
        yield port
    finally:
        server.stop()
