"""``tp4emu connect`` and ``tp4emu serve`` as a user sees them.

Subprocesses on real loopback (``python -m tp4emu``), every wait bounded
(tests/clirun.py); a few cases run :func:`run_client` / :func:`run_server`
in-process against an endpoint of the test, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Iterator

import pytest
import trio
from clirun import Result, Running, run
from procnet import listening_tcp_ports

from tp4emu import Config, DRReason, Transport, open_endpoint
from tp4emu.cli.apps import _Tap, run_client
from tp4emu.wire import CC, CR, DR, CalledTsap, encode_one

HOST = "127.0.0.1"
TRANSPORTS = ["tp4", "tcp"]
LIMIT = 20.0


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(transport: str) -> Iterator[tuple[Running, int]]:
    """``tp4emu serve`` for TSAP ``echo`` denying 127.0.0.3, until the test ends."""
    with Running(
        "serve", "--listen", f"{HOST}:0", "--tsap", "echo", "--deny", "127.0.0.3/32",
        "--transport", transport,
    ) as proc:  # fmt: skip
        yield proc, proc.port()


def connect(port: int, transport: str, *args: str) -> Result:
    return run("connect", f"{HOST}:{port}", "--tsap", "echo", "--transport", transport, *args)


def test_stdin_lines_are_sent_as_they_come(server: tuple[Running, int], transport: str) -> None:
    """Each line gets its reply while stdin is still open (not only at end of input)."""
    proc, port = server
    args = ("connect", f"{HOST}:{port}", "--tsap", "echo", "--transport", transport)
    with Running(*args, stdin=True) as client:
        assert client.line() == f"connected {HOST}:{port} state=OPEN"
        client.send(b"one\n")
        assert client.line() == "reply 'one'"
        client.send(b"two\r\n")
        assert client.line() == "reply 'two'"
        client.send(b"\x00\x01 binary\n\nlast without newline")
        client.close_stdin()
        assert client.wait() == 0, client.err
        assert client.lines[3:] == [
            "reply hex:00012062696e617279",
            "reply ''",
            "reply 'last without newline'",
        ]
        assert client.err == ""
    assert [line.split(" ", 2)[2] for line in (proc.until("recv ") for _ in range(2))] == [
        "3 octets: 'one'",
        "3 octets: 'two'",
    ]


def test_options_anywhere_and_double_dash(server: tuple[Running, int], transport: str) -> None:
    _, port = server
    result = run(
        "connect", f"{HOST}:{port}", "alpha", "--tsap", "echo", "--transport", transport,
        "beta", "--", "-dash", "--tsap",
    )  # fmt: skip
    assert result.status == 0, result
    assert result.out.splitlines() == [
        f"connected {HOST}:{port} state=OPEN",
        "reply 'alpha'",
        "reply 'beta'",
        "reply '-dash'",
        "reply '--tsap'",
    ]


def test_refused_crs_are_logged_by_the_server(server: tuple[Running, int], transport: str) -> None:
    """A CR for a TSAP nobody serves is refused by the endpoint before any accept():
    the client gets DR reason 2, and the server says so in one line."""
    proc, port = server
    result = run("connect", f"{HOST}:{port}", "--tsap", "nobody", "--transport", transport, "x")
    assert (result.status, result.out) == (
        1,
        "rejected: DR reason 2 (SESSION_NOT_ATTACHED) data=''\n",
    )
    line = proc.until("refuse ")
    assert re.fullmatch(
        r"refuse 127\.0\.0\.1:\d+ reason=2\(SESSION_NOT_ATTACHED\)"
        r" called='nobody' \(before accept\)",
        line,
    ), line


def test_reject_reason_by_name(transport: str) -> None:
    with Running(
        "serve", "--listen", f"{HOST}:0", "--deny", "127.0.0.0/8", "--reject-reason",
        "protocol_error", "--transport", transport,
    ) as proc:  # fmt: skip
        port = proc.port()
        result = run("connect", f"{HOST}:{port}", "--transport", transport, "x")
        line = proc.until("reject ")
    assert re.fullmatch(
        r"reject 127\.0\.0\.1:\d+ reason=133\(PROTOCOL_ERROR\) \(access list\)", line
    )
    if transport == "tp4":  # refused while CONFIRMING: the connect fails
        assert result.out == "rejected: DR reason 133 (PROTOCOL_ERROR) data=''\n"
    else:  # over TCP the connection was up: the DR comes after
        assert result.out.splitlines() == [
            f"connected {HOST}:{port} state=OPEN",
            "disconnected: DR reason 133(PROTOCOL_ERROR) from the server",
        ]
    assert result.status == 1


def test_bind(server: tuple[Running, int], transport: str) -> None:
    proc, port = server
    result = connect(port, transport, "--bind", "127.0.0.2", "hi")
    assert result.status == 0, result
    assert proc.until("accept ").startswith("accept 127.0.0.2:")
    denied = connect(port, transport, "--bind", "127.0.0.3:0", "hi")
    assert denied.status == 1
    assert proc.until("reject ").startswith("reject 127.0.0.3:")


def test_tcp_client_opens_no_listening_socket(server: tuple[Running, int], transport: str) -> None:
    _, port = server
    args = ("connect", f"{HOST}:{port}", "--tsap", "echo", "--transport", transport)
    with Running(*args, stdin=True) as client:
        assert client.line() == f"connected {HOST}:{port} state=OPEN"
        assert listening_tcp_ports(client.proc.pid) == set()
        client.close_stdin()
        assert client.wait() == 0


def test_tcp_refusal_is_reported_as_such() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    result = run("connect", f"{HOST}:{port}", "--transport", "tcp", "hi")
    assert result.status == 1 and result.err == ""
    assert result.out == f"refused: connection refused (TCP): nothing listens on {HOST}:{port}\n"


def test_timeout_when_nothing_answers() -> None:
    """A UDP port where the CRs go unanswered: --timeout, not 31 s of silence."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        result = run("connect", f"{HOST}:{port}", "--timeout", "0.5", "hi", timeout=10)
    assert result.status == 2 and result.err == ""
    assert result.out == f"timeout: no CC or DR from {HOST}:{port} within 0.5 s\n"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_addresses_in_brackets(transport: str) -> None:
    with Running("serve", "--listen", "[::1]:0", "--transport", transport) as proc:
        first = proc.line()
        assert re.fullmatch(rf"listening \[::1\]:\d+ transport={transport} tsap=-", first), first
        port = int(first.split()[1].rsplit(":", 1)[1])
        result = run("connect", f"[::1]:{port}", "--transport", transport, "v6")
        assert result.status == 0, result
        assert result.out.splitlines() == [f"connected [::1]:{port} state=OPEN", "reply 'v6'"]
        assert re.match(r"accept \[::1\]:\d+ state=", proc.line())
        assert re.match(r"allow \[::1\]:\d+ ", proc.line())
        assert re.fullmatch(r"recv \[::1\]:\d+ 2 octets: 'v6'", proc.line())


def test_color(server: tuple[Running, int], transport: str) -> None:
    _, port = server
    colored = connect(port, transport, "--color", "always", "hi")
    assert colored.status == 0
    assert "\x1b[" in colored.out
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored.out).splitlines()[1] == "reply 'hi'"
    plain = connect(port, transport, "hi")  # auto, and stdout is a pipe
    assert "\x1b[" not in plain.out
    never = connect(port, transport, "--color", "never", "hi")
    assert "\x1b[" not in never.out
    with Running("serve", "--listen", f"{HOST}:0", "--color", "always") as proc:
        line = proc.line()
        assert line.startswith("\x1b[") and "listening" in line


# -------------------------------------------------------------- in-process


async def test_reply_timeout(transport: Transport) -> None:
    """The server confirms and receives but never replies: exit status 2 after --timeout."""
    out = io.StringIO()
    with trio.fail_after(LIMIT):
        async with open_endpoint((HOST, 0), transport=transport) as server:
            listener = server.listen()
            port = server.getsockname()[1]

            async def silent() -> None:
                conn = await listener.accept()
                await conn.receive()  # confirms; then nothing
                await trio.sleep_forever()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(silent)
                status = await run_client(
                    server.getsockname(), [b"hello?"], transport=transport, timeout=0.3, out=out
                )
                nursery.cancel_scope.cancel()
    assert status == 2
    assert out.getvalue().splitlines() == [
        f"connected {HOST}:{port} state=OPEN",
        f"timeout: no reply from {HOST}:{port} within 0.3 s (1 awaited)",
    ]


async def test_disconnect_reason_is_named(transport: Transport) -> None:
    """The server aborts after the first message with DR reason 133."""
    out = io.StringIO()
    with trio.fail_after(LIMIT):
        async with open_endpoint((HOST, 0), transport=transport) as server:
            listener = server.listen()

            async def aborting() -> None:
                conn = await listener.accept()
                await conn.receive()
                await conn.reject(DRReason.PROTOCOL_ERROR)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(aborting)
                status = await run_client(
                    server.getsockname(), [b"one", b"two"], transport=transport, out=out
                )
    assert status == 1
    assert out.getvalue().splitlines()[-1] == (
        "disconnected: DR reason 133(PROTOCOL_ERROR) from the server"
    )


def test_tap_reports_only_refusals_of_crs() -> None:
    """The server's capture hook: a DR with SRC-REF 0 answering a CR is a refusal
    (once more: a retransmitted CR); a connection's DR, or a DR answering a CC, is not."""
    lines: list[str] = []
    local, peer = (HOST, 10200), (HOST, 40000)
    tap = _Tap(local, lines.append)

    def datagram(tpdu: object, src: tuple[str, int], dst: tuple[str, int]) -> None:
        tap.write(encode_one(tpdu, checksum=True), src=src, dst=dst, timestamp=0.0)  # type: ignore[arg-type]

    cr = CR(src_ref=7, params=(CalledTsap(b"nobody"),))
    datagram(cr, peer, local)
    datagram(DR(7, 0, DRReason.SESSION_NOT_ATTACHED), local, peer)
    datagram(cr, peer, local)
    datagram(DR(7, 0, DRReason.SESSION_NOT_ATTACHED), local, peer)
    datagram(DR(7, 5, DRReason.NORMAL), local, peer)  # a connection's own DR
    datagram(CC(dst_ref=9, src_ref=3), peer, local)
    datagram(DR(3, 0, DRReason.SESSION_NOT_ATTACHED), local, peer)  # answers a CC
    datagram(DR(8, 0, DRReason.CONGESTION), peer, local)  # received, not sent
    assert lines == [
        "refuse 127.0.0.1:40000 reason=2(SESSION_NOT_ATTACHED) called='nobody' (before accept)",
        "refuse 127.0.0.1:40000 reason=2(SESSION_NOT_ATTACHED) called='nobody'"
        " (before accept, CR retransmitted)",
    ]


async def test_protocol_timeout_without_timeout_option() -> None:
    """--timeout 0: the CR's own retransmissions decide; the line says so."""
    config = Config(cr_retransmit_time=0.05, max_retransmissions=2)
    out = io.StringIO()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((HOST, 0))
        port = silent.getsockname()[1]
        with trio.fail_after(LIMIT):
            status = await run_client((HOST, port), [b"x"], config=config, timeout=None, out=out)
    assert status == 2
    assert out.getvalue() == (
        f"timeout: no CC or DR from {HOST}:{port} (no answer to CR after 2 retransmissions)\n"
    )
