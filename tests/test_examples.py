"""Every script in examples/ runs as documented: subprocesses on free loopback ports, bounded."""

from __future__ import annotations

import hashlib
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
TIMEOUT = 30  # seconds, per subprocess
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cmd(script: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / script), *args]


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(script, *args), capture_output=True, text=True, timeout=TIMEOUT, env=ENV
    )


class Server:
    """A server example in the background, on a free port it reports in its first line."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            _cmd(script, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        match = re.match(r"listening (\S+):(\d+)", self.first_line)
        assert match, (self.first_line, self.proc.stderr.read() if self.proc.stderr else "")
        self.host, self.port = match[1], match[2]

    def finish(self) -> tuple[int, list[str]]:
        """Wait for the server to exit by itself (--count); its exit status and output lines."""
        out, err = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, err
        return self.proc.returncode, [self.first_line.rstrip("\n"), *out.splitlines()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill()


def _loopback_alias_works() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.2", 0))
    except OSError:
        return False
    return True


needs_127_0_0_2 = pytest.mark.skipif(
    not _loopback_alias_works(), reason="127.0.0.2 is not a local address here (Linux has it)"
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_example_has_help(script: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout


def test_examples_are_all_tested() -> None:
    assert SCRIPTS == [
        "access_list_client.py",
        "access_list_server.py",
        "echo_client.py",
        "echo_server.py",
        "expedited.py",
        "file_transfer.py",
        "inetd_child.py",  # run by tp4emu serve --exec: tests/test_inetd.py
        "tcp_contrast.py",
    ]


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_echo_pair(servers: list[Server], transport: str) -> None:
    server = Server("echo_server.py", "--port", "0", "--count", "1", "--transport", transport)
    servers.append(server)
    client = run(
        "echo_client.py", "--port", server.port, "--transport", transport, "hello", "big world"
    )
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines() == [
        f"connected to 127.0.0.1:{server.port} state=OPEN",
        "reply 'hello'",
        "reply 'big world'",
    ]
    _, lines = server.finish()
    # TP4 hands the connection over before confirming it; TCP only once it is open.
    state = "CONFIRMING" if transport == "tp4" else "OPEN"
    assert re.fullmatch(rf"accepted 127\.0\.0\.1:\d+ state={state}", lines[1]), lines
    assert lines[2].endswith("b'hello'") and lines[3].endswith("b'big world'"), lines
    assert lines[4].startswith("released by 127.0.0.1:"), lines


def test_echo_client_wrong_tsap_is_refused(servers: list[Server]) -> None:
    server = Server("echo_server.py", "--port", "0", "--count", "1")
    servers.append(server)
    client = run("echo_client.py", "--port", server.port, "--tsap", "nobody")
    assert client.returncode == 1
    # No listener for the called TSAP: DR reason 2, which netiso maps to ECONNREFUSED.
    assert client.stdout == "rejected: DR reason 2 (SESSION_NOT_ATTACHED) ECONNREFUSED\n"


@needs_127_0_0_2
def test_access_list_allows_and_denies(servers: list[Server]) -> None:
    server = Server(
        "access_list_server.py",
        *("--port", "0", "--count", "2", "--allow", "127.0.0.0/8", "--deny", "127.0.0.2/32"),
    )
    servers.append(server)
    allowed = run("access_list_client.py", "--port", server.port, "--data", "hi", "ping", "pong")
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.splitlines() == [
        "connected from 127.0.0.1 confirm data='welcome'",
        "reply 'ping'",
        "reply 'pong'",
    ]

    denied = run("access_list_client.py", "--port", server.port, "--bind", "127.0.0.2")
    assert denied.returncode == 1, denied.stderr
    assert denied.stdout == (
        "rejected: DR reason 128 (NORMAL) ECONNABORTED data='not on the access list'\n"
    )

    _, lines = server.finish()
    assert lines[0].endswith("allow=127.0.0.0/8 deny=127.0.0.2/32"), lines
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["accept", "allow", "echo", "echo", "released", "accept", "deny"], lines
    # Both were handed over while CONFIRMING, with what the CR carried.
    assert re.fullmatch(
        r"accept 127\.0\.0\.1:\d+ state=CONFIRMING calling='client' called='echo' data='hi'",
        lines[1],
    ), lines
    assert re.match(r"accept 127\.0\.0\.2:\d+ state=CONFIRMING", lines[6]), lines
    assert re.fullmatch(
        r"deny 127\.0\.0\.2:\d+: DR reason 128 \(NORMAL\) 'not on the access list'", lines[7]
    ), lines
    assert lines[2].endswith("confirmed, state=AKWAIT"), lines  # CC sent, AK not yet back


@needs_127_0_0_2
def test_access_list_reason_sets_the_clients_errno(servers: list[Server]) -> None:
    server = Server(
        "access_list_server.py",
        *("--port", "0", "--count", "1", "--deny", "127.0.0.2/32", "--reason", "2"),
        *("--message", ""),
    )
    servers.append(server)
    denied = run("access_list_client.py", "--port", server.port, "--bind", "127.0.0.2")
    assert denied.returncode == 1
    assert denied.stdout == "rejected: DR reason 2 (SESSION_NOT_ATTACHED) ECONNREFUSED data=''\n"
    server.finish()


def test_access_list_server_rejects_unknown_reason() -> None:
    result = run("access_list_server.py", "--reason", "200")
    assert result.returncode == 2
    assert "not a DR reason" in result.stderr


def _hashes(text: str) -> list[str]:
    return re.findall(r"sha256 ([0-9a-f]{64})", text)


def test_file_transfer_in_one_process() -> None:
    result = run("file_transfer.py", "--size", "500000")  # with the rich progress bar
    assert result.returncode == 0, result.stderr
    expected = hashlib.sha256(random.Random(1).randbytes(500000)).hexdigest()  # --seed 1
    assert _hashes(result.stdout) == [expected] * 3, result.stdout
    assert f"receiver: 500000 octets, sha256 {expected}: OK" in result.stdout
    assert f"receiver's sha256 {expected}: match" in result.stdout
    assert re.search(r"sender: 500000 octets in [\d.]+ s, [\d.]+ MB/s", result.stdout)
    assert "random-500000.bin" in result.stderr  # the progress bars


def test_file_transfer_with_loss_arrives_intact() -> None:
    result = run("file_transfer.py", "--size", "200000", "--loss", "0.1", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = hashlib.sha256(random.Random(1).randbytes(200000)).hexdigest()
    assert _hashes(result.stdout) == [expected] * 3, result.stdout
    assert ": OK" in result.stdout
    lost = re.search(r"network: (\d+) datagrams lost \(--loss 0.1\)", result.stdout)
    retransmitted = re.search(r"sender: (\d+) retransmissions", result.stdout)
    assert lost and retransmitted, result.stdout
    assert int(lost[1]) > 0
    assert int(retransmitted[1]) > 0


def test_file_transfer_between_processes(servers: list[Server], tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(300_000))
    out = tmp_path / "out"
    out.mkdir()
    receiver = Server(
        "file_transfer.py", "--listen", "127.0.0.1:0", "--out", str(out), "--no-progress"
    )
    servers.append(receiver)
    sender = run(
        "file_transfer.py", "--connect", f"127.0.0.1:{receiver.port}", str(source), "--no-progress"
    )
    assert sender.returncode == 0, sender.stdout + sender.stderr
    _, lines = receiver.finish()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert f"receiver: 300000 octets, sha256 {digest}: OK" in lines
    assert f"sender: payload.bin, 300000 octets, sha256 {digest}" in sender.stdout
    assert (out / "payload.bin").read_bytes() == source.read_bytes()


def test_file_transfer_needs_a_source() -> None:
    result = run("file_transfer.py")
    assert result.returncode == 2
    assert "give a FILE or --size N" in result.stderr


@needs_127_0_0_2
def test_tcp_contrast() -> None:
    result = run("tcp_contrast.py", "--delay", "0.2")
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-4:]
    assert summary == [
        "tp4 allowed client: connect() returned after the server's decision; echo 'hello'",
        "tp4 denied client: connect() failed after the server's decision;"
        " rejected: DR reason 128 (NORMAL)",
        "tcp allowed client: connect() returned before the server's decision; echo 'hello'",
        "tcp denied client: connect() returned before the server's decision;"
        " then cut off: DR reason 128 (NORMAL)",
    ], result.stdout
    assert "server: accepted 127.0.0.1, state CONFIRMING" in result.stdout
    assert "server: accepted 127.0.0.1, state OPEN" in result.stdout


def test_expedited_overtakes_queued_data() -> None:
    result = run("expedited.py", "--count", "100")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    read_before = re.search(r"ED b'URGENT' received after reading (\d+) of the 100 normal", out)
    assert read_before, out
    assert int(read_before[1]) < 100  # overtook normal data queued before it
    # ...which still arrives whole and in order, followed by what was sent after the ED.
    assert "the first 100 in order: True; last one: b'sent after the ED'" in out
    # The sender sends no new DT while its ED is unacknowledged.
    assert "0 new DTs until its EA arrived" in out


DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize(
    "page",
    [EXAMPLES / "README.md", DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), (page.name, target)


def test_transport_switch_snippet_compiles() -> None:
    """The one-argument example of docs/tp4-vs-tcp.md is valid Python using the real API."""
    text = (DOCS / "tp4-vs-tcp.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code
    namespace: dict[str, object] = {}
    exec(compile(code[1].replace("trio.run(", "(lambda *a: None)("), "snippet", "exec"), namespace)
    assert callable(namespace["serve"])
