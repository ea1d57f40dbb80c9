"""``tp4emu serve --exec``: the inetd-style super-server whose exec'd child decides.

Every test runs the super-server as a subprocess on 127.0.0.1 (real UDP or
TCP), waits on the lines it prints (``spawn``, ``confirm``, ``reject``,
``exit``...), and plays the client either by hand (a UDP or TCP socket and
TPDUs built with tp4emu.wire, compared byte for byte) or with a tp4emu
endpoint. Children that must not decide before the test says so read a line
from a FIFO first (the gate). Nothing sleeps; every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import tp4emu
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    DT0,
    AckTime,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    TpduSize,
    decode,
    encode_one,
)

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 20.0
"""Seconds any one wait may take."""
CLIENT_REF = 0x4242
GATED = 'read go < "$GATE"; echo hello; exec cat'
"""A shell child that decides only when the test writes a line to $GATE, then echoes."""


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


class Inetd:
    """``tp4emu serve --exec`` in a subprocess, and the lines it printed so far."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.port = 0
        self._buf = b""

    async def _line(self) -> str | None:
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    async def expect(self, prefix: str) -> str:
        """The next line starting with *prefix* (the lines before it are kept too)."""
        with trio.fail_after(LIMIT):
            while (line := await self._line()) is not None:
                self.lines.append(line)
                if line.startswith(prefix):
                    return line
        raise AssertionError(f"no line {prefix!r}; output: {self.lines}")

    async def finish(self) -> list[str]:
        """Wait for the exit (``--exit-after``): status 0; every line it printed."""
        with trio.fail_after(LIMIT):
            while (line := await self._line()) is not None:
                self.lines.append(line)
            assert await self.proc.wait() == 0, self.lines
        return self.lines

    def pids(self) -> list[int]:
        """The children it started."""
        words = (w for line in self.lines for w in line.split())
        return sorted({int(w[4:].rstrip(":")) for w in words if w.startswith("pid=")})


@asynccontextmanager
async def inetd(
    *options: str, command: list[str], env: dict[str, str] | None = None
) -> AsyncIterator[Inetd]:
    cmd = [sys.executable, "-m", "tp4emu", "serve", "--listen", "127.0.0.1:0", *options]
    proc = await trio.lowlevel.open_process(
        [*cmd, "--exec", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_env(**(env or {})),
    )
    server = Inetd(proc)
    try:
        first = await server.expect("listening ")
        server.port = int(first.split()[1].rsplit(":", 1)[1])
        yield server
    finally:
        with trio.CancelScope(shield=True):
            if proc.poll() is None:
                proc.terminate()  # the super-server stops its children first
                with trio.move_on_after(LIMIT):
                    await proc.wait()
            if proc.poll() is None:  # pragma: no cover - only when a test broke it
                proc.kill()
                await proc.wait()
            assert proc.stdout is not None
            await proc.stdout.aclose()
        for pid in server.pids():  # every child reaped: no process, not even a zombie
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


@pytest.fixture
def gate(tmp_path: Path) -> tuple[dict[str, str], int]:
    """A FIFO the gated child reads a line from; held open here, so writing never blocks."""
    path = tmp_path / "gate"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR)
    yield {"GATE": str(path)}, fd
    os.close(fd)


class RawUDP:
    """A class 4 client played by hand: TPDUs built with tp4emu.wire, sent and read raw."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.seen: list[bytes] = []

    def send(self, tpdu: object, port: int) -> None:
        self.sock.sendto(encode_one(tpdu, checksum=True), ("127.0.0.1", port))  # type: ignore[arg-type]

    def pending(self) -> list[bytes]:
        """The datagrams that came so far (none waited for)."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except BlockingIOError:
                return out

    async def receive(self) -> bytes:
        """The next datagram that is not a repetition of one already received."""
        with trio.fail_after(LIMIT):
            while True:
                try:
                    data = self.sock.recv(65535)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(self.sock)
                    continue
                if data not in self.seen:  # a retransmission is not news
                    self.seen.append(data)
                    return data

    def close(self) -> None:
        self.sock.close()


def _cr(*, calling: bytes = b"client", called: bytes = b"inetd", data: bytes = b"") -> CR:
    return CR(
        src_ref=CLIENT_REF,
        credit=15,
        params=(TpduSize(13), CallingTsap(calling), CalledTsap(called), AdditionalOptions(1)),
        data=data,
    )


def _cc(server_ref: int, *, calling: bytes = b"client", called: bytes = b"inetd") -> bytes:
    """The CC tp4emu answers _cr() with (its TSAPs echoed, ack time 2 ms), encoded."""
    params = (TpduSize(13), CallingTsap(calling), CalledTsap(called), AdditionalOptions(1))
    cc = CC(dst_ref=CLIENT_REF, src_ref=server_ref, credit=15, params=(*params, AckTime(2)))
    return encode_one(cc, checksum=True)


def _with(tpdu: object) -> bytes:
    return encode_one(tpdu, checksum=True)  # type: ignore[arg-type]


# --------------------------------------------------------------- over TP4


async def test_cc_goes_out_only_after_the_childs_first_output(
    gate: tuple[dict[str, str], int],
) -> None:
    env, gate_fd = gate
    async with inetd("--exit-after", "1", command=["sh", "-c", GATED], env=env) as server:
        client = RawUDP()
        try:
            client.send(_cr(data=b"hi"), server.port)
            accept = await server.expect("accept ")
            assert accept.endswith("state=CONFIRMING calling='client' called='inetd' data='hi'")
            await server.expect("spawn ")
            # The child runs, undecided: nothing was sent to the client.
            assert client.pending() == []
            os.write(gate_fd, b"go\n")
            raw = await client.receive()
            (cc,) = decode(raw)
            assert isinstance(cc, CC)
            assert raw == _cc(cc.src_ref)
            assert "(first output)" in await server.expect("confirm ")
            # The DT waits for the CC's acknowledgement (AKWAIT), then carries the output.
            client.send(AK(dst_ref=cc.src_ref, nr=0, credit=15), server.port)
            assert await client.receive() == _with(DT(CLIENT_REF, nr=0, data=b"hello\n"))
            # Then cat echoes: the AK of our DT, the DT of the echo (one datagram or two).
            client.send(AK(dst_ref=cc.src_ref, nr=1, credit=15), server.port)
            client.send(DT(cc.src_ref, nr=0, data=b"ping"), server.port)
            expected = _with(AK(CLIENT_REF, nr=1, credit=15)) + _with(
                DT(CLIENT_REF, 1, data=b"ping")
            )
            got = await client.receive()
            if got != expected:
                got += await client.receive()
            assert got == expected
            # Our DR releases; the DC answers it; cat reads end-of-file and exits.
            client.send(AK(dst_ref=cc.src_ref, nr=2, credit=15), server.port)
            client.send(DR(cc.src_ref, CLIENT_REF, reason=128), server.port)
            assert await client.receive() == _with(DC(CLIENT_REF, cc.src_ref))
            lines = await server.finish()
        finally:
            client.close()
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["accept", "spawn", "confirm", "close", "exit"], lines
    assert lines[4].endswith("(the peer released)") and lines[5].endswith(" status=0"), lines


async def test_a_child_exiting_1_at_once_rejects_with_a_dr_and_no_cc() -> None:
    async with inetd("--exit-after", "1", command=["sh", "-c", "exit 1"]) as server:
        client = RawUDP()
        try:
            client.send(_cr(), server.port)
            raw = await client.receive()
            (dr,) = decode(raw)
            assert isinstance(dr, DR) and dr.src_ref != 0
            assert raw == _with(DR(CLIENT_REF, dr.src_ref, reason=128))
            client.send(DC(dr.src_ref, CLIENT_REF), server.port)
            lines = await server.finish()
            # Whatever else came is the same DR again: never a CC.
            assert all(d == raw for d in client.pending())
        finally:
            client.close()
    # The status decides the reason: the DR waits for the exit.
    assert [line.split()[0] for line in lines[1:]] == ["accept", "spawn", "exit", "reject"], lines
    assert lines[3].endswith(" status=1"), lines
    assert lines[4].endswith(" reason=128 (exit 1 before any output)"), lines


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("0", 128),
        ("1", 128),
        ("3", 128),
        ("68", 3),
        ("69", 2),
        ("75", 1),
        ("76", 133),
        ("77", 136),
        ("kill", 0),
    ],
)
def test_exit_status_to_dr_reason_table(how: str, reason: int) -> None:
    from tp4emu.cli.inetd import reason_for_exit

    returncode = -9 if how == "kill" else int(how)
    assert reason_for_exit(returncode) == reason
    assert reason_for_exit(None) == 128  # closed its output, still running


CHOOSER = (
    "import os, signal, sys\n"
    "how = bytes.fromhex(os.environ['TP4CONNECTDATA']).decode()\n"
    "if how == 'kill':\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "sys.exit(int(how))\n"
)
"""A child exiting with the status the client put in its connect data (or killed)."""


async def test_the_exit_status_chooses_the_clients_dr_reason() -> None:
    cases = {"0": 128, "1": 128, "69": 2, "75": 1, "77": 136, "kill": 0}
    outcome: dict[str, int] = {}
    async with inetd(
        "--exit-after", str(len(cases)), command=[sys.executable, "-c", CHOOSER]
    ) as server:
        async with tp4emu.open_endpoint() as ep:

            async def client(how: str) -> None:
                with pytest.raises(tp4emu.ConnectionRejected) as info:
                    await ep.connect(("127.0.0.1", server.port), data=how.encode())
                outcome[how] = int(info.value.reason)

            with trio.fail_after(LIMIT):
                async with trio.open_nursery() as nursery:
                    for how in cases:
                        nursery.start_soon(client, how)
        lines = await server.finish()
    assert outcome == cases
    assert any(line.endswith("reason=0 (signal 9 before any output)") for line in lines), lines
    assert any("signal=9 (SIGKILL)" in line for line in lines), lines
    assert not any(line.startswith("confirm ") for line in lines), lines


async def test_confirm_first_runs_cat_that_reads_first() -> None:
    async with inetd("--exit-after", "1", "--confirm-first", command=["cat"]) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", server.port))
                for msg in (b"alpha", b"beta"):
                    await conn.send(msg)
                    assert await conn.receive() == msg
                await conn.aclose()
        lines = await server.finish()
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["accept", "confirm", "spawn", "close", "exit"], lines
    assert lines[2].endswith("(before exec: --confirm-first)"), lines


async def test_line_framing_one_tsdu_per_line() -> None:
    child = 'echo "welcome $TP4REMOTEIP"; while read -r l; do echo "got $l"; done'
    async with inetd("--exit-after", "1", "--framing", "line", command=["sh", "-c", child]) as s:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", s.port))
                assert await conn.receive() == b"welcome 127.0.0.1"
                await conn.send(b"a")
                assert await conn.receive() == b"got a"
                await conn.send(b"x\ny")  # a TSDU holding a newline: two lines
                assert [await conn.receive(), await conn.receive()] == [b"got x", b"got y"]
                await conn.aclose()
        await s.finish()


async def test_line_framing_the_first_octet_confirms_before_the_line_ends(
    gate: tuple[dict[str, str], int],
) -> None:
    env, gate_fd = gate
    child = 'printf "par"; read go < "$GATE"; echo "tial line"'
    options = ("--exit-after", "1", "--framing", "line")
    async with inetd(*options, command=["sh", "-c", child], env=env) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", server.port))  # the CC: "par" was written
                os.write(gate_fd, b"go\n")
                assert await conn.receive() == b"partial line"  # the TSDU: when the line ends
                with pytest.raises(trio.EndOfChannel):  # its output ended: released
                    await conn.receive()
        lines = await server.finish()
    assert any(line.endswith("(released: its output ended)") for line in lines), lines


async def test_a_child_closing_its_output_undecided_is_rejected() -> None:
    options = ("--exit-after", "1", "--kill-after", "0.2")
    async with inetd(*options, command=["sh", "-c", "exec >&-; exec sleep 30"]) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT), pytest.raises(tp4emu.ConnectionRejected) as info:
                await ep.connect(("127.0.0.1", server.port))
        assert info.value.reason == 128
        lines = await server.finish()
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["accept", "spawn", "reject", "kill", "exit"], lines
    assert lines[3].endswith("reason=128 (its output closed undecided, still running)"), lines
    assert lines[5].endswith("signal=15 (SIGTERM)"), lines


ENV_DUMP = (
    "import os, sys\n"
    "keys = sorted(k for k in os.environ if k == 'PROTO' or k.startswith(('TP4', 'TCP')))\n"
    "sys.stdout.write(' '.join(f'{k}={os.environ[k]}' for k in keys))\n"
)


@pytest.mark.parametrize("transport", ["tp4", "tcp"])
async def test_the_childs_environment(transport: str) -> None:
    stale = {"TCPREMOTEIP": "192.0.2.9", "TP4CALLEDTSAP": "ff", "TP4EMU_CONNECTION_FD": "9"}
    async with inetd(
        "--exit-after",
        "1",
        "--transport",
        transport,
        command=[sys.executable, "-c", ENV_DUMP],
        env=stale,
    ) as server:
        async with tp4emu.open_endpoint(transport=transport) as ep:  # type: ignore[call-overload]
            with trio.fail_after(LIMIT):
                data = b"" if transport == "tcp" else b"\x01hi"
                conn = await ep.connect(
                    ("127.0.0.1", server.port), calling_tsap=b"me", called_tsap=b"svc", data=data
                )
                local = conn.getsockname()
                words = (await conn.receive()).decode().split()
                await conn.aclose()
        await server.finish()
    p = transport.upper()
    # (scripts/check-dist runs the tests with TP4EMU_INSTALLED_IN set: not the super-server's)
    words = [w for w in words if not w.startswith("TP4EMU_INSTALLED_IN=")]
    assert words == sorted(
        [
            f"PROTO={p}",
            f"{p}CALLEDTSAP=737663",
            f"{p}CALLINGTSAP=6d65",
            f"{p}CONNECTDATA={data.hex()}",
            f"{p}LOCALIP=127.0.0.1",
            f"{p}LOCALPORT={server.port}",
            f"{p}REMOTEIP=127.0.0.1",
            f"{p}REMOTEPORT={local[1]}",
            "TP4EMU_FRAMING=stream",
            "TP4EMU_STATE=CONFIRMING",
        ]
    )


# --------------------------------------------------------- the Python child


async def test_python_child_getpeername_then_reject_or_serve(tmp_path: Path) -> None:
    """examples/inetd_child.py: the book's server, line for line, against an access list."""
    acl = tmp_path / "acl"
    acl.write_text("deny 127.0.0.2/32\nallow 127.0.0.0/8\n")
    child = [sys.executable, str(ROOT / "examples" / "inetd_child.py"), "--acl", str(acl)]
    options = ("--exit-after", "2", "--framing", "message")
    async with inetd(*options, command=child) as server:
        denied = RawUDP("127.0.0.2")
        try:
            denied.send(_cr(), server.port)
            raw = await denied.receive()
            (dr,) = decode(raw)
            message = b"not on the access list"
            assert raw == _with(DR(CLIENT_REF, dr.src_ref, reason=128, data=message))
            denied.send(DC(dr.src_ref, CLIENT_REF), server.port)
            assert "its reject()" in await server.expect("reject 127.0.0.2:")
        finally:
            denied.close()
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", server.port))
                await conn.send(b"ping")
                assert await conn.receive() == b"ping"
                await conn.aclose()
        lines = await server.finish()
    allowed = [line for line in lines[1:] if " 127.0.0.1:" in line]
    # (stderr is a pipe of its own: its line may come before or after the confirm.)
    events = [line for line in allowed if not line.startswith("stderr ")]
    assert [line.split()[0] for line in events] == ["accept", "spawn", "confirm", "close", "exit"]
    assert events[2].endswith("(its first receive)"), lines
    # The child's getpeername() is the address the super-server accepted.
    said = "\n".join(lines)
    for host, verdict in (("127.0.0.1", "allowed"), ("127.0.0.2", "denied")):
        pattern = rf"stderr {host}:(\d+) pid=\d+: inetd_child: {host}:\1 {verdict}"
        assert re.search(pattern.replace(".", r"\."), said), lines


INHERITED = """
import sys, trio, tp4emu

async def main() -> None:
    conn = tp4emu.inherited_connection()
    assert tp4emu.inherited_connection() is conn
    how = conn.connect_data
    print(conn, conn.calling_tsap, conn.called_tsap, file=sys.stderr)
    if how == b"close":
        await conn.aclose()                     # while CONFIRMING: a DR 128
    elif how == b"reject":
        await conn.reject(2, b"no service")
    elif how == b"crash":
        raise SystemExit(77)                    # undecided: DR 136
    else:
        await conn.confirm(b"welcome")
        assert conn.state is not tp4emu.State.CONFIRMING
        assert conn.confirm_data == b"welcome"
        tsdu = await conn.receive()
        await conn.send_expedited(b"urgent")
        await conn.send(tsdu.upper())
        await conn.send(await conn.receive_expedited())
        try:
            await conn.receive()
        except trio.EndOfChannel:
            print("end of channel", file=sys.stderr)
        try:
            conn.getpeername()
        except OSError as exc:
            print("getpeername", exc.errno, file=sys.stderr)
        await conn.aclose()

trio.run(main)
"""


async def test_inherited_connection_calls() -> None:
    outcomes: dict[bytes, object] = {}
    async with inetd(
        "--exit-after", "4", "--framing", "message", command=[sys.executable, "-c", INHERITED]
    ) as server:
        async with tp4emu.open_endpoint() as ep:
            peer = ("127.0.0.1", server.port)
            with trio.fail_after(LIMIT):
                for how in (b"close", b"reject", b"crash"):
                    with pytest.raises(tp4emu.ConnectionRejected) as info:
                        await ep.connect(peer, data=how, calling_tsap=b"c", called_tsap=b"s")
                    outcomes[how] = (int(info.value.reason), info.value.data)
                conn = await ep.connect(peer, data=b"serve")
                assert conn.confirm_data == b"welcome"
                await conn.send(b"hello")
                assert await conn.receive_expedited() == b"urgent"
                assert await conn.receive() == b"HELLO"
                await conn.send_expedited(b"ed")
                assert await conn.receive() == b"ed"
                await conn.aclose()
        lines = await server.finish()
    assert outcomes == {b"close": (128, b""), b"reject": (2, b"no service"), b"crash": (136, b"")}
    text = "\n".join(lines)
    assert "reason=128 (its close() while CONFIRMING)" in text
    assert "reason=2 (its reject())" in text
    assert "reason=136 (exit 77 before deciding)" in text
    assert "(its confirm())" in text
    assert "stderr" in text and ": end of channel" in text
    assert f": getpeername {errno.ENOTCONN}" in text
    assert ": <InheritedConnection tp4 peer=127.0.0.1:" in text and "CONFIRMING> b'c' b's'" in text


def test_inherited_connection_outside_the_super_server() -> None:
    env = {k: v for k, v in _env().items() if k != "TP4EMU_CONNECTION_FD"}
    result = subprocess.run(
        [sys.executable, "-c", "import tp4emu; tp4emu.inherited_connection()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=LIMIT,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "RuntimeError: no inherited connection: TP4EMU_CONNECTION_FD is not set"
        " (start this program with: tp4emu serve --exec CMD --framing message)"
    )


# --------------------------------------------------------------- over TCP


def _tpkt(payload: bytes) -> bytes:
    return bytes([3, 0]) + (len(payload) + 4).to_bytes(2, "big") + payload


async def _read_tpkt(sock: socket.socket) -> bytes:
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    buf = b""
    with trio.fail_after(LIMIT):
        while len(buf) < 4 or len(buf) < int.from_bytes(buf[2:4], "big"):
            want = 4 - len(buf) if len(buf) < 4 else int.from_bytes(buf[2:4], "big") - len(buf)
            chunk = await stream.receive_some(want)
            assert chunk, f"EOF after {buf.hex()}"
            buf += chunk
    return buf


def _class0_cr() -> CR:
    return CR(
        src_ref=CLIENT_REF,
        protocol_class=0,
        params=(TpduSize(11), CallingTsap(b"client"), CalledTsap(b"inetd")),
    )


async def test_tcp_same_child_but_the_client_was_already_connected(
    gate: tuple[dict[str, str], int],
) -> None:
    env, gate_fd = gate
    async with inetd(
        "--exit-after", "1", "--transport", "tcp", command=["sh", "-c", GATED], env=env
    ) as server:
        # The TCP connection is established before anything else: no child exists yet.
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT)
        try:
            assert server.pids() == []
            sock.sendall(_tpkt(encode_one(_class0_cr())))
            assert (await server.expect("accept ")).endswith(
                "state=CONFIRMING calling='client' called='inetd' data=''"
            )
            await server.expect("spawn ")
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):  # connected, but no CC: the child decides
                sock.recv(1)
            os.write(gate_fd, b"go\n")
            raw = await _read_tpkt(sock)
            (cc,) = decode(raw[4:])
            assert isinstance(cc, CC)
            expected = CC(
                dst_ref=CLIENT_REF,
                src_ref=cc.src_ref,
                protocol_class=0,
                params=(TpduSize(11), CallingTsap(b"client"), CalledTsap(b"inetd")),
            )
            assert raw == _tpkt(encode_one(expected))
            assert await _read_tpkt(sock) == _tpkt(encode_one(DT0(data=b"hello\n")))
            sock.sendall(_tpkt(encode_one(DT0(data=b"ping"))))
            assert await _read_tpkt(sock) == _tpkt(encode_one(DT0(data=b"ping")))
        finally:
            sock.close()  # class 0's release: cat reads end-of-file
        lines = await server.finish()
    assert [line.split()[0] for line in lines[1:]] == [
        "accept",
        "spawn",
        "confirm",
        "close",
        "exit",
    ]


async def test_tcp_child_exiting_1_rejects_an_established_tcp_connection() -> None:
    async with inetd(
        "--exit-after", "1", "--transport", "tcp", command=["sh", "-c", "exit 1"]
    ) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT)
        try:
            sock.sendall(_tpkt(encode_one(_class0_cr())))
            raw = await _read_tpkt(sock)
            (dr,) = decode(raw[4:])
            assert isinstance(dr, DR)
            assert raw == _tpkt(encode_one(DR(CLIENT_REF, dr.src_ref, reason=128)))
            with trio.fail_after(LIMIT):  # then the TCP close, and nothing else
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
                rest = b""
                while chunk := await stream.receive_some(4096):
                    rest += chunk
            assert rest == b""
        finally:
            sock.close()
        lines = await server.finish()
    assert any(line.endswith("reason=128 (exit 1 before any output)") for line in lines), lines


# ------------------------------------------------------------------ bounds


async def test_a_flood_beyond_max_children_gets_dr_1_and_the_slots_come_back() -> None:
    flood = 12  # within the listener's backlog (16): beyond it the endpoint refuses, DR 1 too
    async with inetd(
        "--exit-after",
        str(2 + flood + 1),
        "--max-children",
        "2",
        "--confirm-first",
        command=["cat"],
    ) as server:
        async with tp4emu.open_endpoint() as ep:
            peer = ("127.0.0.1", server.port)
            with trio.fail_after(LIMIT):
                held = [await ep.connect(peer), await ep.connect(peer)]
                reasons: list[int] = []

                async def one() -> None:
                    with pytest.raises(tp4emu.ConnectionRejected) as info:
                        await ep.connect(peer)
                    reasons.append(int(info.value.reason))

                async with trio.open_nursery() as nursery:
                    for _ in range(flood):
                        nursery.start_soon(one)
                assert reasons == [1] * flood  # congestion at TSAP, at once
                # One child ends: its place is free again.
                await held[0].aclose()
                await server.expect("exit ")
                again = await ep.connect(peer)
                await again.send(b"still serving")
                assert await again.receive() == b"still serving"
                for conn in (again, held[1]):
                    await conn.aclose()
        lines = await server.finish()
    refused = [line for line in lines if line.startswith("refuse ")]
    assert len(refused) == flood, lines
    assert refused[0].endswith("reason=1 (2 children running: --max-children 2)")
    assert len([line for line in lines if line.startswith("exit ")]) == 3


async def test_an_undecided_child_is_rejected_and_stopped() -> None:
    options = ("--exit-after", "1", "--decide-timeout", "0.3")
    async with inetd(*options, command=["sleep", "30"]) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT), pytest.raises(tp4emu.ConnectionRejected) as info:
                await ep.connect(("127.0.0.1", server.port))
        assert info.value.reason == 0
        lines = await server.finish()
    events = [line.split()[0] for line in lines[1:]]
    assert events == ["accept", "spawn", "reject", "kill", "exit"], lines
    assert lines[3].endswith("reason=0 (undecided after 0.3 s)")
    assert lines[5].endswith("signal=15 (SIGTERM)")


async def test_a_child_running_on_after_its_connection_is_stopped() -> None:
    options = ("--exit-after", "1", "--kill-after", "0.2")
    async with inetd(*options, command=["sh", "-c", "echo hi; exec sleep 30"]) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", server.port))
                assert await conn.receive() == b"hi\n"
                await conn.aclose()
        lines = await server.finish()
    assert any(line.endswith("(still running 0.2 s after its connection ended)") for line in lines)
    assert lines[-1].endswith("signal=15 (SIGTERM)"), lines


async def test_crashes_missing_commands_and_stderr_never_stop_the_super_server() -> None:
    async with (
        inetd("--exit-after", "1", command=["/nonexistent/child"]) as missing,
        tp4emu.open_endpoint() as ep,
    ):
        with trio.fail_after(LIMIT), pytest.raises(tp4emu.ConnectionRejected) as info:
            await ep.connect(("127.0.0.1", missing.port))
        assert info.value.reason == 2  # no service behind the TSAP: ECONNREFUSED
        lines = await missing.finish()
    assert any("cannot run '/nonexistent/child'" in line for line in lines), lines

    child = 'echo "oops $TP4CONNECTDATA" >&2; [ "$TP4CONNECTDATA" = 6f6b ] || kill -9 $$; echo hi'
    async with inetd("--exit-after", "3", command=["sh", "-c", child]) as server:
        async with tp4emu.open_endpoint() as ep:
            peer = ("127.0.0.1", server.port)
            with trio.fail_after(LIMIT):
                for _ in range(2):
                    with pytest.raises(tp4emu.ConnectionRejected) as info:
                        await ep.connect(peer, data=b"no")
                    assert info.value.reason == 0  # killed by a signal before deciding
                conn = await ep.connect(peer, data=b"ok")
                assert await conn.receive() == b"hi\n"
        lines = await server.finish()
    assert len([line for line in lines if line.endswith(": oops 6e6f")]) == 2, lines
    assert any(line.endswith(": oops 6f6b") for line in lines), lines


async def test_sigterm_stops_the_super_server_and_its_children() -> None:
    async with inetd("--confirm-first", command=["sh", "-c", "exec sleep 30"]) as server:
        async with tp4emu.open_endpoint() as ep:
            with trio.fail_after(LIMIT):
                conn = await ep.connect(("127.0.0.1", server.port))
                await server.expect("spawn ")
                server.proc.send_signal(signal.SIGTERM)
                with pytest.raises(trio.EndOfChannel):
                    await conn.receive()  # its connection was released (DR 128)
                assert await server.proc.wait() == 128 + signal.SIGTERM
        await server.expect("exit ")
    # (inetd() checks that the child is gone.)


def test_exec_options_are_checked() -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tp4emu", "serve", "--listen", "127.0.0.1:0", *args],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=LIMIT,
        )

    cases = {
        ("--framing", "line"): "tp4emu serve: --framing needs --exec",
        ("--exec",): "tp4emu serve: --exec needs a command",
        ("--max-children", "0", "--exec", "cat"): "tp4emu serve: --max-children must be at least 1",
        ("--allow", "127.0.0.1", "--exec", "cat"): (
            "tp4emu serve: --allow and --deny do not go with --exec: the child decides"
        ),
    }
    for args, message in cases.items():
        result = serve(*args)
        assert (result.returncode, result.stderr.strip()) == (2, message), args


def test_exec_options_defaults() -> None:
    from tp4emu.cli.inetd import DEFAULTS, ExecOptions

    assert dataclasses.asdict(DEFAULTS) | {"argv": ()} == {
        "argv": (),
        "framing": "stream",
        "confirm_first": False,
        "max_children": 40,
        "decide_timeout": 10.0,
        "kill_after": 5.0,
    }
    with pytest.raises(ValueError, match="--framing must be one of stream, line, message"):
        ExecOptions(("cat",), framing="lines")


def test_the_childs_command_line_keeps_its_own_double_dash() -> None:
    """Everything after ``--exec`` is the child's, ``--`` included (the CLI ends its own
    options at ``--`` only before ``--exec``)."""
    from tp4emu.cli import _parse_command, _subcommands, build_parser

    serve = _subcommands(build_parser())["serve"]
    args = _parse_command(
        serve, ["--listen", "127.0.0.1:0", "--exec", "grep", "--", "-v", "--framing", "x"]
    )
    assert args.exec_argv == ["grep", "--", "-v", "--framing", "x"]
    assert args.framing is None  # (the default, filled in later): the child's --framing is its own
