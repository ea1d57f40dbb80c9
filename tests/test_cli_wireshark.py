"""What a user sees in tshark: the captures the CLI writes, opened with the
command line it prints (and with ``tp4emu wireshark``), show no
``[Malformed Packet]``: every frame is COTP.

Wireshark's COTP dissector hands user data to heuristic subdissectors (T.125
first) that claim ordinary data; the printed options turn them off. Checked
on captures of the demo, of ``serve``/``connect`` over both transports with
payloads that those heuristics take for their own, and on a seeded set of
random payloads. Without tshark the tests are skipped, except under CI
(``CI`` set) where they fail.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
from pathlib import Path

import pytest
from clirun import Running, run

from tp4emu.capture import LINKTYPE_ETHERNET, LUA_SCRIPT, PcapWriter
from tp4emu.cli.wireshark import DISABLED_PROTOCOLS, view_command
from tp4emu.wire import CC, CR, DR, DT, DT0, encode_one

HOST = "127.0.0.1"
TIMEOUT = 120

# User data that Wireshark 4.0's heuristics take for theirs (then: malformed).
HOSTILE = [
    b"hello from a client",  # T.125
    b"\x0d\x05\x01\x03\x01\x02\x03",  # OSI session: CONNECT SPDU
    b"\x01\x00\x01\x00",  # OSI session: Give tokens
    b"2\x01\x00\x00\x00\x00\x00\x00",  # S7comm
    b"\xffSMB" + bytes(32),  # SMB
    b"\xa0\x03\x02\x01\x01",  # MMS
]


def wireshark_env(home: Path) -> dict[str, str]:
    return {"WIRESHARK_CONFIG_DIR": str(home), "HOME": str(home)}


def dissect(command: list[str], home: Path) -> list[str]:
    """Run a tshark command line (numeric addresses); its summary lines."""
    proc = subprocess.run(
        [*command, "-n"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **wireshark_env(home)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def printed_command(stderr: str, pcap: Path) -> list[str]:
    """The tshark command of the ``tp4emu: wrote FILE; view it with: ...`` line."""
    (line,) = [x for x in stderr.splitlines() if x.startswith("tp4emu: wrote ")]
    head = f"tp4emu: wrote {pcap}; view it with: "
    assert line.startswith(head), line
    command, _, rest = line[len(head) :].partition("  (or: ")
    assert rest == f"tp4emu wireshark {pcap})", line
    return shlex.split(command)


def assert_clean(lines: list[str], at_least: int) -> None:
    assert len(lines) >= at_least, lines
    assert not [line for line in lines if "Malformed" in line], lines
    assert all(" COTP " in line for line in lines), lines


def test_demo_capture_opens_cleanly(tshark: str, home: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    result = run("demo", "--pcap", str(pcap), "--color", "never", timeout=60)
    assert result.status == 0, result
    command = printed_command(result.err, pcap)
    assert command == view_command(pcap)
    assert command[:3] == ["tshark", "-r", str(pcap)]
    assert "lua_script" not in " ".join(command)  # an exported-PDU capture needs no script
    assert_clean(dissect([tshark, *command[1:]], home), at_least=10)


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
def test_client_capture_with_hostile_payloads_opens_cleanly(
    tshark: str, home: Path, tmp_path: Path, transport: str
) -> None:
    pcap = tmp_path / f"client-{transport}.pcap"
    with Running("serve", "--listen", f"{HOST}:0", "--transport", transport) as server:
        port = server.port()
        with Running(
            "connect", f"{HOST}:{port}", "--transport", transport, "--pcap", str(pcap), stdin=True
        ) as client:
            client.send(b"\n".join(HOSTILE) + b"\n")
            client.close_stdin()
            assert client.wait() == 0, client.err
            assert len(client.lines) == 1 + len(HOSTILE)
            command = printed_command(client.err, pcap)
    without = dissect([tshark, "-r", str(pcap)], home)
    assert any("Malformed" in line for line in without)  # what the options are for
    assert_clean(dissect([tshark, *command[1:]], home), at_least=2 + 2 * len(HOSTILE))


def test_random_payloads_are_all_cotp(tshark: str, home: Path, tmp_path: Path) -> None:
    """Seeded random user data in CR, CC, DR and DTs of both classes."""
    rng = random.Random(11)
    a, b = ("127.0.0.1", 40000), ("127.0.0.1", 10200)
    pcap = tmp_path / "random.pcap"
    count = 0
    with PcapWriter(pcap) as writer:
        for i in range(600):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 48)))
            tpdus = [
                (DT(dst_ref=1, nr=i % 128, eot=True, data=data), "udp"),
                (DT0(eot=True, data=data), "tcp"),
            ]
            if i % 6 == 0:
                tpdus += [
                    (CR(src_ref=1, data=data[:32]), "udp"),
                    (CC(dst_ref=1, src_ref=2, data=data[:32]), "udp"),
                    (DR(1, 2, 128, data=data), "udp"),
                ]
            for tpdu, transport in tpdus:
                writer.write(
                    encode_one(tpdu, checksum=transport == "udp"),
                    src=a,
                    dst=b,
                    timestamp=1.0 + i,
                    transport=transport,  # type: ignore[arg-type]
                )
                count += 1
    without = dissect([tshark, "-r", str(pcap)], home)
    assert sum("Malformed" in line for line in without) > 10
    assert_clean(dissect([tshark, *view_command(pcap)[1:]], home), at_least=count)


def test_wireshark_command_runs_tshark(tshark: str, home: Path, tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    assert run("demo", "--pcap", str(pcap), timeout=60).status == 0
    printed = run("wireshark", "--print", str(pcap))
    assert printed.status == 0 and printed.err == ""
    assert shlex.split(printed.out) == view_command(pcap)
    result = run("wireshark", str(pcap), "--", "-n", extra_env=wireshark_env(home))
    assert result.status == 0, result
    assert_clean(result.out.splitlines(), at_least=10)
    crs = run(
        "wireshark", str(pcap), "--", "-n", "-Y", "cotp.type == 0x0e", extra_env=wireshark_env(home)
    )
    assert crs.status == 0 and crs.out
    assert all("CR TPDU" in line for line in crs.out.splitlines()), crs.out


def test_plain_capture_gets_the_lua_binding(tshark: str, home: Path, tmp_path: Path) -> None:
    """An Ethernet capture (as a live capture would be) needs the UDP binding:
    the command includes the package's Lua script, and the frames are COTP."""
    pcap = tmp_path / "ethernet.pcap"
    with PcapWriter(pcap, linktype=LINKTYPE_ETHERNET) as writer:
        for i, data in enumerate(HOSTILE):
            dt = encode_one(DT(dst_ref=1, nr=i, eot=True, data=data), checksum=True)
            writer.write(dt, src=("127.0.0.1", 40000), dst=("127.0.0.1", 10200), timestamp=1.0 + i)
    command = view_command(pcap)
    assert command[-2:] == ["-X", f"lua_script:{LUA_SCRIPT}"]
    assert LUA_SCRIPT.is_file()
    assert_clean(dissect([tshark, *command[1:]], home), at_least=len(HOSTILE))


def test_lua_path_and_options() -> None:
    result = run("wireshark", "--lua")
    assert (result.status, result.err) == (0, "")
    assert Path(result.out.strip()) == LUA_SCRIPT
    assert DISABLED_PROTOCOLS[0] == "t125"
    gui = view_command("x.pcap", gui=True, lua=False, extra=["-Y", "cotp"])
    assert gui[:3] == ["wireshark", "-r", "x.pcap"] and gui[-2:] == ["-Y", "cotp"]


def test_no_hint_without_records(tmp_path: Path) -> None:
    """A command that could not start announces no capture."""
    pcap = tmp_path / "x.pcap"
    result = run("connect", "--bind", "192.0.2.1", f"{HOST}:1", "x", "--pcap", str(pcap))
    assert result.status == 1
    assert "wrote" not in result.err
