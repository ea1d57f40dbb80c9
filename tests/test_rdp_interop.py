"""RDP interoperability: xrdp as the server, FreeRDP's xfreerdp as the client (docs/rdp.md).

RDP is the most common X.224 class 0 peer, and not a textbook one: its CR
carries a cookie and an RDP_NEG_REQ where X.224 wants parameters, its CC an
RDP_NEG_RSP (MS-RDPBCGR 2.2.1.1/2.2.1.2). Both peers are Debian packages:

* xrdp 0.9.21 (package ``xrdp``), started here in the foreground on a free
  port of 127.0.0.1 with an xrdp.ini of its own (standard RDP security), and
  stopped after the module: our client sends it RDP's CR and must get its
  RDP_NEG_RSP as ``confirm_data``;
* xfreerdp 2.11 (``freerdp2-x11``), which needs an X display: an Xvfb
  (``xvfb``) of the tests' own, on the display number it picks itself. It
  connects to our server (``listen(auto_confirm=False)``), which confirms
  with an RDP_NEG_RSP and then receives its MCS Connect-Initial, or refuses
  (a DR, or CCs carrying RDP_NEG_FAILURE, through which FreeRDP falls back
  from TLS + CredSSP to TLS to standard RDP security).

The CRs and CCs are checked byte for byte in a capture of our side, which
tshark's COTP and RDP dissectors also decode (an independent reading). All on
127.0.0.1; each test is bounded by ``trio.fail_after``, and every process it
starts is stopped. ``.ci/run`` installs the packages; under CI a missing one
fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import trio

from tp4emu.capture import PcapWriter, read_pcap
from tp4emu.core import ConnectionRejected, Disconnected, State
from tp4emu.transport.tcp import open_tcp_endpoint
from tp4emu.wire import DRReason

HOST = "127.0.0.1"
LIMIT = 30.0  # seconds any one test may take
START = 10.0  # seconds xrdp or Xvfb may take to start

USER = "tp4emu"
COOKIE = b"Cookie: mstshash=" + USER.encode() + b"\r\n"
"""The cookie line of an RDP CR (MS-RDPBCGR 2.2.1.1: ``mstshash`` = the user name)."""


def neg(kind: int, value: int, flags: int = 0) -> bytes:
    """An 8-octet RDP negotiation structure: type, flags, length 8, value (little-endian)."""
    return struct.pack("<BBHI", kind, flags, 8, value)


NEG_REQ, NEG_RSP, NEG_FAILURE = 1, 2, 3
PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_HYBRID = 0, 1, 2
SSL_NOT_ALLOWED_BY_SERVER = 2
EXTENDED_CLIENT_DATA_SUPPORTED = 1

XRDP_INI = """\
[Globals]
ini_version=1
fork=false
port=tcp://{host}:{port}
security_layer=rdp
crypt_level=high
[Logging]
LogFile={log}
LogLevel=INFO
EnableSyslog=false
EnableConsole=true
ConsoleLevel=INFO
"""


# ---------------------------------------------------------------- processes


def _need(*tools: str) -> dict[str, str]:
    """The paths of *tools*; skips (fails under CI) when one is missing."""
    found = {tool: shutil.which(tool) for tool in tools}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        why = f"needs {', '.join(missing)} (apt-get install xrdp freerdp2-x11 xvfb)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the RDP interoperability tests: {why}")
        pytest.skip(why)
    return {tool: path for tool, path in found.items() if path is not None}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class _Console:
    """Reads a process's output in a thread (so that it never blocks on a full
    pipe) and tells when a line containing *marker* came, or the output ended."""

    def __init__(self, stream: IO[str], marker: str) -> None:
        self.lines: list[str] = []
        self.marker = marker
        self.seen = False
        self._changed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)
            if self.marker in line:
                self.seen = True
                self._changed.set()
        self._changed.set()

    def wait(self, timeout: float) -> bool:
        """Whether the marker came within *timeout* seconds (False at the end of output)."""
        self._changed.wait(timeout)
        return self.seen

    def join(self) -> None:
        self._thread.join(START)


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process is still there after a while."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(START)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(START)


async def _stop_async(proc: trio.Process) -> None:
    """The same for a trio process, also when the test is being cancelled."""
    with trio.CancelScope(shield=True):
        if proc.poll() is None:
            proc.terminate()
            with trio.move_on_after(START):
                await proc.wait()
        if proc.poll() is None:
            proc.kill()
            await proc.wait()


@pytest.fixture(scope="module")
def xrdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """xrdp in the foreground on 127.0.0.1; yields its port."""
    path = _need("xrdp")["xrdp"]
    home = tmp_path_factory.mktemp("xrdp")
    for _attempt in range(5):
        port = free_port()
        ini = home / "xrdp.ini"
        ini.write_text(XRDP_INI.format(host=HOST, port=port, log=home / "xrdp.log"))
        proc = subprocess.Popen(
            ["stdbuf", "-oL", path, "--nodaemon", "--config", str(ini)],  # lines as they come
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        # "listening to port" comes before its listen(), this line after it.
        console = _Console(proc.stdout, "xrdp_listen_pp done")
        if console.wait(START) and f"listening to port {port} on {HOST}" in "".join(console.lines):
            break
        _stop(proc)  # the port was taken meanwhile, or xrdp failed: try again
        console.join()
    else:
        pytest.fail("xrdp did not start: " + "".join(console.lines))
    try:
        yield port
    finally:
        _stop(proc)
        console.join()


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """An Xvfb of our own for xfreerdp; yields its display (``:N``)."""
    path = _need("Xvfb", "xfreerdp")["Xvfb"]
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [path, "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
        pass_fds=(write_end,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        number = b""
        while not number.endswith(b"\n"):  # Xvfb writes the display number when ready
            ready, _, _ = select.select([read_end], [], [], START)
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                pytest.fail(f"Xvfb did not start (exit status {proc.poll()})")
            number += chunk
        yield ":" + number.decode().strip()
    finally:
        os.close(read_end)
        _stop(proc)


async def start_xfreerdp(port: int, display: str, home: Path, log: IO[bytes]) -> trio.Process:
    """xfreerdp connecting to 127.0.0.1:*port*, user ``tp4emu``, its defaults otherwise
    (it asks for TLS + CredSSP and accepts standard RDP security)."""
    path = _need("xfreerdp")["xfreerdp"]
    env = {"DISPLAY": display, "HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin")}
    return await trio.lowlevel.open_process(
        [path, f"/v:{HOST}:{port}", f"/u:{USER}", "/p:secret", "/cert:ignore"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


# ---------------------------------------------------------------- captures


def tpdus(pcap: Path) -> list[bytes]:
    """The TPDUs of a capture of ours, in order."""
    return [record.payload for record in read_pcap(pcap)]


RDP_FIELDS = (
    "cotp.type",
    "cotp.tpdu_size",
    "rdp.rt_cookie",
    "rdp.neg_type",
    "rdp.negReq.requestedProtocols",
    "rdp.negReq.selectedProtocol",
    "rdp.negFailure.failureCode",
)


def tshark_rdp(pcap: Path, home: Path) -> list[list[str]]:
    """tshark's reading of the CRs and CCs of *pcap*: one row of RDP_FIELDS per TPDU."""
    tshark = shutil.which("tshark")
    if tshark is None:
        if os.environ.get("CI"):
            pytest.fail("tshark is required under CI (apt-get install tshark)")
        pytest.skip("tshark not installed")
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=/t"]
    for field in RDP_FIELDS:
        cmd += ["-e", field]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(home), HOME=str(home))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=START, env=env)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t") for line in proc.stdout.splitlines()]


# ---------------------------------------------------------------- our client, xrdp


async def test_our_rdp_client_gets_xrdp_neg_rsp(xrdp: int, tmp_path: Path) -> None:
    cr_data = COOKIE + neg(NEG_REQ, PROTOCOL_RDP)
    capture = tmp_path / "client.pcap"
    with trio.fail_after(LIMIT), PcapWriter(capture) as pcap:
        async with open_tcp_endpoint((HOST, 0), pcap=pcap) as ep:
            conn = await ep.connect((HOST, xrdp), data=cr_data, propose_tpdu_size=False)
            assert conn.state is State.OPEN
            # Standard RDP security selected, extended client data supported.
            rsp = neg(NEG_RSP, PROTOCOL_RDP, EXTENDED_CLIENT_DATA_SUPPORTED)
            assert conn.confirm_data == rsp
            assert (conn.remote_ref, conn.tpdu_size) == (0x1234, 128)
            await conn.aclose()
    # Our CR: LI counting cookie and RDP_NEG_REQ, SRC-REF 1, class 0, no parameter.
    # xrdp's CC: DST-REF 0, SRC-REF 0x1234, class 0, the RDP_NEG_RSP within the LI.
    assert tpdus(capture) == [
        bytes([6 + len(cr_data)]) + bytes.fromhex("e00000000100") + cr_data,
        bytes.fromhex("0ed000001234" + "00") + rsp,
    ]
    assert tshark_rdp(capture, tmp_path) == [
        ["0x0e", "", COOKIE.decode().strip(), "0x01", "0x00000000", "", ""],
        ["0x0d", "", "", "0x02", "", "0x00000000", ""],
    ]


async def test_our_bare_cr_gets_xrdp_bare_cc(xrdp: int) -> None:
    # No parameter and no data: the 7-octet fixed part; xrdp answers likewise.
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            conn = await ep.connect((HOST, xrdp), propose_tpdu_size=False)
            assert conn.state is State.OPEN and conn.confirm_data == b""
            assert conn.remote_ref == 0x1234
            await conn.aclose()


async def test_xrdp_refuses_a_textbook_cr_without_a_dr(xrdp: int) -> None:
    # Our usual CR (TPDU size 2048): xrdp takes 0xC0 for an unknown RDP structure
    # and answers with an MCS Disconnect-Provider-Ultimatum in a DT, not a CC or DR.
    with trio.fail_after(LIMIT):
        async with open_tcp_endpoint((HOST, 0)) as ep:
            with pytest.raises(ConnectionRejected) as info:
                await ep.connect((HOST, xrdp))
    assert not info.value.by_peer
    assert "expected a class 0 CC, got DT0(" in str(info.value)
    assert "DR reason" not in str(info.value)


def test_cli_says_no_dr_came_from_xrdp(xrdp: int) -> None:
    # The report: `tp4emu connect` printed "rejected: DR reason 130".
    res = subprocess.run(
        [sys.executable, "-m", "tp4emu", "connect", "--transport", "tcp", f"{HOST}:{xrdp}", "x"],
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("failed: expected a class 0 CC, got DT0("), res.stdout
    assert "DR reason" not in res.stdout


# ---------------------------------------------------------------- xfreerdp, our server


async def test_xfreerdp_connects_to_our_server(display: str, tmp_path: Path) -> None:
    capture = tmp_path / "server.pcap"
    log_path = tmp_path / "xfreerdp.log"
    cr_data = COOKIE + neg(NEG_REQ, PROTOCOL_SSL | PROTOCOL_HYBRID)
    rsp = neg(NEG_RSP, PROTOCOL_RDP)
    with trio.fail_after(LIMIT), PcapWriter(capture) as pcap, open(log_path, "wb") as log:
        async with open_tcp_endpoint((HOST, 0), pcap=pcap) as ep:
            listener = ep.listen(auto_confirm=False)
            proc = await start_xfreerdp(ep.getsockname()[1], display, tmp_path, log)
            try:
                conn = await listener.accept()
                assert conn.state is State.CONFIRMING
                assert conn.connect_data == cr_data
                await conn.confirm(rsp)  # standard RDP security
                # Its next PDU: the MCS Connect-Initial (BER [APPLICATION 101]),
                # in one DT of more than the 128 octets of the default TPDU size.
                mcs = await conn.receive()
                assert mcs[:2] == b"\x7f\x65" and len(mcs) > 128
                await conn.aclose()
                # FreeRDP reconnects after losing a connection: without a
                # listener its next CR gets DR reason 2, and it gives up.
                await listener.aclose()
                status = await proc.wait()
            finally:
                await _stop_async(proc)
    assert status != 0, log_path.read_text()  # it could not go on: we closed
    sent = tpdus(capture)
    assert sent[:2] == [
        bytes([6 + len(cr_data)]) + bytes.fromhex("e00000000000") + cr_data,
        bytes.fromhex("0ed000000001" + "00") + rsp,
    ]
    assert sent[2] == b"\x02\xf0\x80" + mcs
    assert tshark_rdp(capture, tmp_path)[:2] == [
        ["0x0e", "", COOKIE.decode().strip(), "0x01", "0x00000003", "", ""],
        ["0x0d", "", "", "0x02", "", "0x00000000", ""],
    ]


async def test_xfreerdp_refused_with_a_dr(display: str, tmp_path: Path) -> None:
    with trio.fail_after(LIMIT), open(tmp_path / "xfreerdp.log", "wb") as log:
        async with open_tcp_endpoint((HOST, 0)) as ep:
            listener = ep.listen(auto_confirm=False)
            proc = await start_xfreerdp(ep.getsockname()[1], display, tmp_path, log)
            try:
                conn = await listener.accept()
                await conn.reject(DRReason.NORMAL)
                status = await proc.wait()
            finally:
                await _stop_async(proc)
            assert status != 0
            stats = ep.statistics()
            assert (stats.connections_refused, stats.connections_opened) == (1, 0)
    assert b"expected X224_TPDU_CONNECTION_CONFIRM" in (tmp_path / "xfreerdp.log").read_bytes()


async def test_xfreerdp_falls_back_on_neg_failure(display: str, tmp_path: Path) -> None:
    # RDP refuses in its own terms: a CC carrying RDP_NEG_FAILURE. FreeRDP then
    # tries again with fewer protocols, on a new TCP connection each time.
    capture = tmp_path / "server.pcap"
    failure = neg(NEG_FAILURE, SSL_NOT_ALLOWED_BY_SERVER)
    requested: list[int] = []
    with (
        trio.fail_after(LIMIT),
        PcapWriter(capture) as pcap,
        open(tmp_path / "xfreerdp.log", "wb") as log,
    ):
        async with open_tcp_endpoint((HOST, 0), pcap=pcap) as ep:
            listener = ep.listen(auto_confirm=False)
            proc = await start_xfreerdp(ep.getsockname()[1], display, tmp_path, log)
            try:
                async with trio.open_nursery() as nursery:

                    async def refuse_all() -> None:
                        while True:
                            conn = await listener.accept()
                            assert conn.connect_data[: len(COOKIE)] == COOKIE
                            requested.append(struct.unpack("<I", conn.connect_data[-4:])[0])
                            await conn.confirm(failure)
                            with pytest.raises((trio.EndOfChannel, Disconnected)):
                                await conn.receive()  # it closes (or resets)
                            await conn.aclose()

                    nursery.start_soon(refuse_all)
                    status = await proc.wait()
                    nursery.cancel_scope.cancel()
            finally:
                await _stop_async(proc)
    assert status != 0
    ssl, hybrid = PROTOCOL_SSL, PROTOCOL_HYBRID
    assert requested == [ssl | hybrid, ssl, PROTOCOL_RDP]
    ccs = [t for t in tpdus(capture) if t[1] == 0xD0]
    assert ccs == [bytes.fromhex("0ed000000001" + "00") + failure] * 3
    rows = tshark_rdp(capture, tmp_path)
    assert [row[6] for row in rows if row[0] == "0x0d"] == ["0x00000002"] * 3


def test_cli_sends_an_rdp_cr_and_shows_xrdps_neg_rsp(xrdp: int) -> None:
    """`tp4emu connect --transport tcp --no-tpdu-size --data hex:...`: the CR an RDP client
    sends; xrdp answers with a CC whose RDP_NEG_RSP the CLI shows as confirm data."""
    data = COOKIE + neg(NEG_REQ, PROTOCOL_RDP)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tp4emu",
            "connect",
            "--transport",
            "tcp",
            "--no-tpdu-size",
            "--data",
            "hex:" + data.hex(),
            "--timeout",
            "5",
            f"{HOST}:{xrdp}",
        ],
        input="",  # no message: the CC is what this is about
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    first = res.stdout.splitlines()[0]
    rsp = neg(NEG_RSP, PROTOCOL_RDP, EXTENDED_CLIENT_DATA_SUPPORTED)
    assert first == f"connected {HOST}:{xrdp} state=OPEN confirm-data=hex:{rsp.hex()}", res.stdout
    assert res.stderr == "", res.stderr
