"""Ctrl-C (SIGINT) ends ``serve``, ``connect`` and ``demo`` with exit status 130
and no traceback, idle or busy, over both transports.

Each command runs in a subprocess; the tests wait for a line of output (or,
for the demo, for its capture to record a first TPDU) before interrupting,
and every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import Running, wait_until

HOST = "127.0.0.1"


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_serve_idle(transport: str) -> None:
    with Running("serve", "--listen", f"{HOST}:0", "--transport", transport) as server:
        server.port()
        server.interrupt()
        assert server.wait() == 130
        assert server.err == ""
        assert len(server.lines) == 1  # the listening line, nothing after it


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_serve_busy(transport: str) -> None:
    """Interrupted with a client connected that has just been echoed to: 130, no
    traceback; the client is told why the connection ended."""
    with Running("serve", "--listen", f"{HOST}:0", "--transport", transport) as server:
        port = server.port()
        with Running(
            "connect", f"{HOST}:{port}", "--transport", transport, "--timeout", "0", stdin=True
        ) as client:
            assert client.line() == f"connected {HOST}:{port} state=OPEN"
            client.send(b"busy\n")
            assert client.line() == "reply 'busy'"
            server.until("recv ")
            server.interrupt()
            assert server.wait() == 130
            assert server.err == ""
            assert client.wait() == 1
            assert client.err == ""
            reason = {
                "tp4": "the server released the connection: DR reason 128(NORMAL)",
                "tcp": "the server closed the TCP connection (class 0 release)",
            }[transport]
            assert client.lines[-1] == f"disconnected: {reason}"


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_connect_waiting_for_input(transport: str) -> None:
    with Running("serve", "--listen", f"{HOST}:0", "--transport", transport) as server:
        port = server.port()
        with Running("connect", f"{HOST}:{port}", "--transport", transport, stdin=True) as client:
            assert client.line() == f"connected {HOST}:{port} state=OPEN"
            client.interrupt()
            assert client.wait() == 130
            assert client.err == ""
        server.interrupt()
        assert server.wait() == 130


def test_connect_while_connecting() -> None:
    """Interrupted while its CR goes unanswered (a UDP socket that never answers)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        with Running("connect", f"{HOST}:{port}", "hi", "--timeout", "0") as client:
            silent.settimeout(20)
            silent.recv(65535)  # the CR has been sent: the client waits for an answer
            client.interrupt()
            assert client.wait() == 130
            assert client.err == ""
            assert client.lines == []


def test_demo(tmp_path: Path) -> None:
    """Interrupted in the middle of its TP4 part (the server decides only after 5 s);
    the capture written so far is still announced."""
    pcap = tmp_path / "demo.pcap"
    with Running("demo", "--decide-delay", "5", "--pcap", str(pcap), "--color", "never") as demo:
        wait_until(lambda: pcap.exists() and pcap.stat().st_size > 24, "the demo's first TPDU")
        demo.interrupt()
        assert demo.wait() == 130
        assert demo.lines == []  # the demo prints its tables only at the end
        (hint,) = demo.err.splitlines()
        assert hint.startswith(f"tp4emu: wrote {pcap}; view it with: tshark -r {pcap} ")
