"""Bad input to the command line: exactly one line on stderr, nothing on stdout,
exit status 2 when the command line is wrong, 1 when the system refused.

Each command runs in a subprocess (``python -m tp4emu``), bounded in time.
Nothing here sends a packet off this host: the addresses that are not ours
(192.0.2.1, TEST-NET-1) are only bound, which fails before anything is sent;
invalid hosts are refused before any name lookup.
"""

from __future__ import annotations

import os
import pty
import socket
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from clirun import Result, run

from tp4emu.wire import DRReason

HOST = "127.0.0.1"


def one_line(result: Result, status: int, line: str) -> None:
    """The command failed with *status*, printing exactly *line* on stderr."""
    assert result.status == status, result
    assert result.out == "", result
    assert result.err.splitlines() == [line], result


@pytest.fixture
def udp_port_in_use() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        yield s.getsockname()[1]


@pytest.fixture
def tcp_port_in_use() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        s.listen()
        yield s.getsockname()[1]


def test_serve_port_in_use_udp(udp_port_in_use: int) -> None:
    port = udp_port_in_use
    one_line(
        run("serve", "--listen", f"{HOST}:{port}"),
        1,
        f"tp4emu serve: cannot listen on {HOST}:{port} (UDP): Address already in use",
    )


def test_serve_port_in_use_tcp(tcp_port_in_use: int) -> None:
    port = tcp_port_in_use
    one_line(
        run("serve", "--listen", f"{HOST}:{port}", "--transport", "tcp"),
        1,
        f"tp4emu serve: cannot listen on {HOST}:{port} (TCP): Address already in use",
    )


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_serve_on_an_address_not_of_this_host(transport: str) -> None:
    proto = "UDP" if transport == "tp4" else "TCP"
    one_line(
        run("serve", "--listen", "192.0.2.1:10200", "--transport", transport),
        1,
        f"tp4emu serve: cannot listen on 192.0.2.1:10200 ({proto}):"
        " Cannot assign requested address",
    )


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_connect_bind_not_of_this_host(transport: str) -> None:
    one_line(
        run("connect", "--bind", "192.0.2.1", f"{HOST}:10200", "hi", "--transport", transport),
        1,
        "tp4emu connect: cannot bind 192.0.2.1: Cannot assign requested address",
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["connect", f"{HOST}:99999", "hi"],
            "server: port 99999 is out of range (1-65535) in '127.0.0.1:99999'",
        ),
        (
            ["connect", f"{HOST}:0", "hi"],
            "server: port 0 is out of range (1-65535) in '127.0.0.1:0'",
        ),
        (["connect", "300.1.1.1:10200", "hi"], "server: '300.1.1.1' is not a valid IPv4 address"),
        (["connect", "[::1x]:10200", "hi"], "server: '::1x' is not a valid IPv6 address"),
        (
            ["connect", "::1:10200", "hi"],
            "server: expected HOST:PORT (or [IPV6]:PORT), got '::1:10200'",
        ),
        (
            ["connect", "localhost", "hi"],
            "server: expected HOST:PORT (or [IPV6]:PORT), got 'localhost'",
        ),
        (
            ["connect", f"{HOST}:1", "--tsap", "hex:zz"],
            "--tsap 'hex:zz': after 'hex:' give an even number of hex digits, e.g. hex:0102",
        ),
        (
            ["connect", f"{HOST}:1", "--calling-tsap", "hex:1"],
            "--calling-tsap 'hex:1': after 'hex:' give an even number of hex digits, e.g. hex:0102",
        ),
        (
            ["connect", f"{HOST}:1", "--data", "x" * 33],
            "--data is limited to 32 octets over tp4, got 33",
        ),
        (
            ["connect", f"{HOST}:1", "--data", "hex:0"],
            "--data 'hex:0': after 'hex:' give an even number of hex digits, e.g. hex:0102",
        ),
        (
            ["connect", f"{HOST}:1", "--no-tpdu-size"],
            "--no-tpdu-size needs --transport tcp",
        ),
        (
            ["connect", f"{HOST}:1", "--transport", "tcp", "--data", "x" * 250],
            "CR header of 259 octets with its inline data: the limit is 254",
        ),
        (
            ["connect", f"{HOST}:1", "--timeout", "-1"],
            "--timeout must be a number of seconds >= 0, got -1",
        ),
        (
            ["connect", f"{HOST}:1", "--bind", "::1", "x"],
            "--bind ::1 and the server 127.0.0.1:1 are not of the same address family",
        ),
        (
            ["connect"],
            "missing HOST:PORT (usage: tp4emu connect [options] HOST:PORT [MESSAGE ...])",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_connect_usage_errors(args: list[str], line: str) -> None:
    one_line(run(*args), 2, f"tp4emu connect: {line}")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--listen", f"{HOST}:70000"],
            "--listen: port 70000 is out of range (0-65535) in '127.0.0.1:70000'",
        ),
        (["--listen", "10200"], "--listen: expected HOST:PORT (or [IPV6]:PORT), got '10200'"),
        (["--listen", "1.2.3:10200"], "--listen: '1.2.3' is not a valid IPv4 address"),
        (
            ["--listen", f"{HOST}:0", "--tsap", "hex:zz"],
            "--tsap 'hex:zz': after 'hex:' give an even number of hex digits, e.g. hex:0102",
        ),
        (
            ["--listen", f"{HOST}:0", "--allow", "10.0.0.300/8"],
            "--allow '10.0.0.300/8' is not an address or network",
        ),
        (
            ["--listen", f"{HOST}:0", "--deny", "nowhere"],
            "--deny 'nowhere' is not an address or network",
        ),
        (["--listen", f"{HOST}:0", "--exit-after", "0"], "--exit-after must be at least 1, got 0"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_serve_usage_errors(args: list[str], line: str) -> None:
    one_line(run("serve", *args), 2, f"tp4emu serve: {line}")


def test_reject_reason_lists_the_valid_reasons() -> None:
    valid = ", ".join(f"{int(r)} ({r.name})" for r in DRReason)
    assert valid.startswith("0 (NOT_SPECIFIED), 1 (CONGESTION), 2 (SESSION_NOT_ATTACHED)")
    for bad in ("77", "nonsense"):
        one_line(
            run("serve", "--listen", f"{HOST}:0", "--reject-reason", bad),
            2,
            f"tp4emu serve: DR reason {bad!r} is not one of: {valid}",
        )


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--listen", f"{HOST}:0"],
        ["serve", "--listen", f"{HOST}:0", "--transport", "tcp"],
        ["connect", f"{HOST}:1", "hi"],
        ["connect", f"{HOST}:1", "hi", "--transport", "tcp"],
        ["demo"],
    ],
    ids=" ".join,
)
def test_pcap_into_a_missing_directory(args: list[str], tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.pcap"
    command = args[0]
    one_line(
        run(*args, "--pcap", str(path)),
        1,
        f"tp4emu {command}: cannot write --pcap {path}: No such file or directory",
    )
    assert not path.parent.exists()


def test_demo_usage_errors() -> None:
    one_line(run("demo", "--loss", "1.5"), 2, "tp4emu demo: --loss must be in [0, 1), got 1.5")
    one_line(
        run("demo", "--decide-delay", "-1"),
        2,
        "tp4emu demo: --decide-delay must be in [0, 10] seconds, got -1",
    )


def test_decode_bad_hex_argument() -> None:
    one_line(
        run("decode", "0460000105", "zz"), 2, "tp4emu decode: HEX argument 2: not hex: 'z' in 'zz'"
    )


def test_decode_without_input_on_a_terminal_says_what_it_expects() -> None:
    """stdin a TTY and no HEX, no --pcap: one line saying what to give, not a silent wait."""
    master, slave = pty.openpty()
    try:
        result = run("decode", stdin=slave)
    finally:
        os.close(slave)
        os.close(master)
    one_line(
        result,
        2,
        "tp4emu decode: no input: give HEX arguments, --pcap FILE, or datagrams in hex on stdin"
        " (one per line)",
    )


def test_decode_missing_capture_file(tmp_path: Path) -> None:
    path = tmp_path / "none.pcap"
    result = run("decode", "--pcap", str(path))
    one_line(result, 1, f"tp4emu decode: [Errno 2] No such file or directory: '{path}'")


# ------------------------------------------------------------ argparse errors


@pytest.mark.parametrize("command", ["connect", "serve", "decode", "demo", "wireshark"])
def test_unknown_option_prints_the_subcommands_usage(command: str) -> None:
    required = ["--listen", f"{HOST}:0"] if command == "serve" else []
    result = run(command, *required, "--bogus")
    assert result.status == 2 and result.out == ""
    lines = result.err.splitlines()
    assert lines[0].startswith(f"usage: tp4emu {command} "), lines
    assert lines[-1] == f"tp4emu {command}: error: unrecognized arguments: --bogus"


def test_unknown_command_prints_the_top_level_usage() -> None:
    result = run("bogus")
    assert result.status == 2
    assert result.err.splitlines()[0].startswith("usage: tp4emu [-h] [--version] COMMAND")
    assert "invalid choice: 'bogus'" in result.err


def test_no_command_prints_help() -> None:
    result = run()
    assert result.status == 2
    assert result.err.startswith("usage: tp4emu [-h] [--version] COMMAND")


def test_version() -> None:
    result = run("--version")
    assert (result.status, result.out, result.err) == (0, f"tp4emu {version('tp4emu')}\n", "")


def test_wireshark_usage_errors(tmp_path: Path) -> None:
    one_line(
        run("wireshark"),
        2,
        "tp4emu wireshark: missing FILE"
        " (usage: tp4emu wireshark [options] FILE [-- TSHARK-OPTION ...])",
    )
    path = tmp_path / "none.pcap"
    one_line(run("wireshark", str(path)), 1, f"tp4emu wireshark: {path}: no such file")
