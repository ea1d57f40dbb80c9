"""``tp4emu demo``: the whole story on loopback, in one process, in a few seconds.

A server with an access list (allow 127.0.0.1, deny 127.0.0.2) takes two
clients, first over TP4 (class 4 over UDP), then over TCP (RFC 1006):

* TP4: ``accept()`` returns while the connection is CONFIRMING and nothing
  has been sent; the server calls ``getpeername()``, takes its time to decide,
  then confirms by receiving (the CC goes out only now, and only now does the
  allowed client's ``connect()`` return) or closes (a DR goes out and the
  denied client's ``connect()`` fails with the reason).
* TCP: ``connect()`` returns before the server even looks; the denied client
  is cut off after it was connected.

The exit status is 0 only when every one of these outcomes happened.
"""

from __future__ import annotations

import random
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from ..api import Transport, open_endpoint
from ..core import Config, ConnectionRejected, Disconnected
from ..transport.udp import DatagramSocket, LossyUDPSocket
from ..wire import AK, CC, CR, DC, DR, DT, EA, ED, ER, TPDU, TPDUError, decode
from .apps import AccessList
from .errors import CommandError

__all__ = ["DemoResult", "run_demo"]

SERVER_HOST = "127.0.0.1"
ALLOWED_HOST = "127.0.0.1"
DENIED_HOST = "127.0.0.2"
TSAP = b"demo"


@dataclass
class Timeline:
    """Events of one transport's run, with times relative to its start."""

    start: float
    rows: list[tuple[float, str, str]] = field(default_factory=list)

    def log(self, who: str, what: str) -> float:
        now = trio.current_time()
        self.rows.append((now - self.start, who, what))
        return now


@dataclass
class Outcome:
    """What one client saw."""

    connected_at: float | None = None
    rejected_reason: int | None = None
    echoed: bool = False
    cut_off: bool = False


@dataclass
class DemoResult:
    """Everything the demo observed, and whether it was what we expected."""

    timelines: dict[str, Timeline] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    decided_at: dict[tuple[str, str], float] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    statistics: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every expected outcome happened."""
        return bool(self.checks) and all(ok for _, ok in self.checks)


def _describe(tpdu: TPDU) -> str:
    if isinstance(tpdu, CR):
        return f"CR (class {tpdu.protocol_class}, called TSAP {tpdu.called_tsap!r})"
    if isinstance(tpdu, CC):
        return f"CC (class {tpdu.protocol_class}, TPDU size {tpdu.tpdu_size})"
    if isinstance(tpdu, DR):
        return f"DR (reason {tpdu.reason})"
    if isinstance(tpdu, DT):
        return f"DT nr={tpdu.nr} ({len(tpdu.data)} octets)"
    if isinstance(tpdu, AK):
        return f"AK nr={tpdu.nr} credit={tpdu.credit}"
    if isinstance(tpdu, (DC, ED, EA, ER)):
        return type(tpdu).__name__
    return type(tpdu).__name__


class _Tap:
    """Stands where a PcapWriter would: logs the server's TPDUs into the timeline.

    A datagram identical to one already sent the same way (same peer, same
    octets) is a retransmission, and is shown as one: ``again``.
    """

    def __init__(self, timeline: Timeline, server: tuple[str, int], pcap: Any) -> None:
        self.timeline = timeline
        self.server = server
        self.pcap = pcap
        self._seen: set[tuple[Any, Any, bytes]] = set()

    def write(self, data: bytes, *, src: Any, dst: Any, timestamp: float) -> None:
        if self.pcap is not None:
            self.pcap.write(data, src=src, dst=dst, timestamp=timestamp)
        try:
            tpdus = decode(data)
        except TPDUError:
            return
        text = " + ".join(_describe(t) for t in tpdus)
        key = (tuple(src), tuple(dst), bytes(data))
        if key in self._seen:
            # AKs and DCs are sent again in answer (to a retransmission, a
            # window timer); the others are retransmitted by their own timer.
            answers = all(isinstance(t, (AK, DC)) for t in tpdus)
            repeated = "repeated" if answers else "retransmitted"
            text += f" again ({repeated})"
        self._seen.add(key)
        if src == self.server:
            self.timeline.log("server", f"sends {text} to {dst[0]}")
        else:
            self.timeline.log("server", f"receives {text} from {src[0]}")

    def flush(self) -> None:
        if self.pcap is not None:
            self.pcap.flush()


async def _run_transport(
    transport: Transport,
    result: DemoResult,
    *,
    config: Config,
    decide_delay: float,
    loss: float,
    rng: random.Random,
    pcap: Any,
    recorder: Any = None,
) -> None:
    timeline = Timeline(trio.current_time())
    result.timelines[transport] = timeline
    access = AccessList.parse([ALLOWED_HOST + "/32"], [DENIED_HOST + "/32"])
    sockets: list[LossyUDPSocket] = []
    client_retransmissions: list[int] = []

    def socket_for(host: str) -> DatagramSocket | None:
        if transport != "tp4":
            return None
        sock = LossyUDPSocket((host, 0), loss, rng)
        sockets.append(sock)
        return sock

    async with AsyncExitStack() as stack:
        server_sock = socket_for(SERVER_HOST)
        tap: Any = recorder  # TCP: only the ladder's recorder (if any) sees the TPDUs
        if transport == "tp4":
            assert server_sock is not None
            sink = pcap if recorder is None else recorder.tee(pcap)
            tap = _Tap(timeline, server_sock.getsockname(), sink)  # type: ignore[arg-type]
        server = await stack.enter_async_context(
            open_endpoint(
                (SERVER_HOST, 0), transport=transport, config=config, socket=server_sock, pcap=tap
            )
        )
        address = server.getsockname()
        listener = server.listen(TSAP)

        async def serve(nursery: trio.Nursery) -> None:
            for _ in range(2):
                conn = await listener.accept()
                timeline.log("server", f"accept() returned, state {conn.state.name}")
                host, port = conn.getpeername()
                timeline.log("server", f"getpeername() = {host}:{port}; checking the access list")
                await trio.sleep(decide_delay)
                if access.permits(host):
                    t = timeline.log("server", f"{host} allowed: receive() (confirms if needed)")
                    result.decided_at[(transport, host)] = t
                    nursery.start_soon(echo, conn)
                else:
                    t = timeline.log("server", f"{host} denied: close")
                    result.decided_at[(transport, host)] = t
                    await conn.reject()

        async def echo(conn: Any) -> None:
            try:
                msg = await conn.receive()
                await conn.send(msg)
                await conn.receive()
            except (Disconnected, trio.EndOfChannel, trio.ClosedResourceError):
                pass
            finally:
                await conn.aclose()

        async def client(name: str, host: str) -> None:
            sock = socket_for(host)
            async with open_endpoint(
                (host, 0), transport=transport, config=config, socket=sock, listen=False
            ) as ep:
                try:
                    await run_client(name, host, ep)
                finally:
                    client_retransmissions.append(ep.statistics().retransmissions)

        async def run_client(name: str, host: str, ep: Any) -> None:
            outcome = result.outcomes.setdefault((transport, host), Outcome())
            timeline.log(name, f"connect() from {host}")
            try:
                conn = await ep.connect(address, called_tsap=TSAP)
            except ConnectionRejected as exc:
                name_ = getattr(exc.reason, "name", "?")
                reason = f"DR reason {int(exc.reason)} ({name_})"
                timeline.log(name, f"connect() failed: {reason}")
                outcome.rejected_reason = int(exc.reason)
                return
            state = conn.state.name
            outcome.connected_at = timeline.log(name, f"connect() returned, state {state}")
            try:
                await conn.send(b"hello from " + name.encode())
                reply = await conn.receive()
                timeline.log(name, f"echo received: {reply.decode()!r}")
                outcome.echoed = True
            except (Disconnected, trio.EndOfChannel, trio.BrokenResourceError) as exc:
                timeline.log(name, f"cut off after it was connected: {exc}")
                outcome.cut_off = True
            await conn.aclose()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve, nursery)
                nursery.start_soon(client, "client A", ALLOWED_HOST)
                await trio.sleep(decide_delay / 4)
                nursery.start_soon(client, "client B", DENIED_HOST)
        if transport == "tp4":
            stats = server.statistics()
            result.statistics = {
                "server retransmissions": stats.retransmissions,
                "client retransmissions": sum(client_retransmissions),
                "datagrams lost (injected)": sum(sock.lost for sock in sockets),
            }


def _check(result: DemoResult) -> None:
    checks = result.checks
    for transport in ("tp4", "tcp"):
        a = result.outcomes.get((transport, ALLOWED_HOST), Outcome())
        b = result.outcomes.get((transport, DENIED_HOST), Outcome())
        da = result.decided_at.get((transport, ALLOWED_HOST))
        if transport == "tp4":
            checks.append(
                (
                    "TP4: allowed client's connect() returned only after the server decided",
                    a.connected_at is not None and da is not None and a.connected_at >= da,
                )
            )
            checks.append(("TP4: allowed client got its echo", a.echoed))
            checks.append(
                (
                    "TP4: denied client's connect() failed with DR reason 128",
                    b.rejected_reason == 128 and b.connected_at is None,
                )
            )
        else:
            checks.append(
                (
                    "TCP: allowed client's connect() returned before the server decided",
                    a.connected_at is not None and da is not None and a.connected_at < da,
                )
            )
            checks.append(("TCP: allowed client got its echo", a.echoed))
            checks.append(
                (
                    "TCP: denied client's connect() succeeded, then it was cut off",
                    b.connected_at is not None and b.cut_off,
                )
            )


async def run_demo(
    *,
    loss: float = 0.0,
    seed: int = 1,
    pcap_path: str | None = None,
    decide_delay: float = 0.3,
    recorder: Any = None,
) -> DemoResult:
    """Run both halves of the demo and check the outcomes.

    *recorder* (a :class:`~tp4emu.cli.ladder.DemoRecorder`) is given every TPDU
    the server sends and receives, over TP4 and TCP, for the ladder diagrams.
    Raises CommandError when *pcap_path* cannot be written.
    """
    config = Config(
        cr_retransmit_time=0.25,
        initial_retransmit_time=0.15,
        max_retransmissions=12,
        reference_freeze_time=0.5,
    )
    rng = random.Random(seed)
    result = DemoResult()
    async with AsyncExitStack() as stack:
        pcap: Any = None
        if pcap_path:
            from ..capture import PcapWriter

            try:
                pcap = stack.enter_context(PcapWriter(pcap_path))
            except OSError as exc:
                raise CommandError(
                    f"cannot write --pcap {pcap_path}: {exc.strerror or exc}"
                ) from None
        for transport in ("tp4", "tcp"):
            await _run_transport(
                transport,
                result,
                config=config,
                decide_delay=decide_delay,
                loss=loss,
                rng=rng,
                pcap=pcap,
                recorder=recorder,
            )
    _check(result)
    return result


def render(result: DemoResult, console: Console) -> None:
    """Print the timelines, the statistics and the checks."""
    titles = {
        "tp4": "TP4 over UDP: accept() while CONFIRMING, decide, then CC or DR",
        "tcp": "RFC 1006 over TCP: accept() after the handshake, decide too late",
    }
    for transport, timeline in result.timelines.items():
        table = Table(title=titles[transport], title_justify="left", expand=False)
        table.add_column("ms", justify="right", style="dim")
        table.add_column("who", style="bold")
        table.add_column("what")
        for t, who, what in sorted(timeline.rows, key=lambda r: r[0]):
            table.add_row(f"{t * 1000:7.1f}", who, what)
        console.print(table)
        console.print()
    if result.statistics:
        console.print("  ".join(f"{name}: {value}" for name, value in result.statistics.items()))
    for text, ok in result.checks:
        mark = "[green]ok[/green]  " if ok else "[red]FAIL[/red]"
        console.print(f"{mark} {text}")
