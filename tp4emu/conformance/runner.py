"""Runs the selected cases one after the other against one IUT and collects the results.

Each case gets a fresh :class:`~tp4emu.conformance.session.Session`: as
initiator a fresh UDP socket (or TCP connection) and a transport reference
never used before in the run; as responder the run's one listening socket,
from which arrivals of the previous cases' connections are filtered out
(their references are remembered). A case ends with its verdict, or is cut
at its time limit (inconclusive); an exception inside the tester is an
*error* verdict, never a crash of the run.
"""

from __future__ import annotations

import random
import socket as _socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ..wire import CR, TPDU
from .links import Address, Recorder, TcpLink, TcpListenerPort, UdpLink, UdpPort
from .model import CaseInfo, CaseResult, SuiteResult, Verdict
from .session import CaseEnd, Observed, Session
from .settings import Settings

__all__ = ["Hooks", "run_suite"]


@dataclass
class Hooks:
    """Callbacks of a run (progress display, test instrumentation)."""

    case_started: Callable[[CaseInfo, int, int], None] | None = None
    """``(case, index, total)`` before a case runs."""
    case_finished: Callable[[CaseResult, int, int], None] | None = None
    """``(result, index, total)`` after it."""
    listening: Callable[[tuple[str, int]], None] | None = None
    """Responder role: the address the tester listens on (port 0 resolved), before any case."""


class _Refs:
    """The tester's references: random, non-zero, never twice in a run."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self.used: set[int] = set()

    def new(self) -> int:
        while True:
            ref = self._rng.randrange(1, 0x10000)
            if ref not in self.used:
                self.used.add(ref)
                return ref


class _Responder:
    """What the responder role shares between cases: the listening socket, the old references."""

    def __init__(self) -> None:
        self.udp: UdpPort | None = None
        self.tcp: TcpListenerPort | None = None
        self.old_cr_refs: set[int] = set()
        self.old_our_refs: set[int] = set()
        self.carry: list[Observed] = []
        """CRs of connection attempts a case did not take: the next case's."""

    def stale_item(self, item: Observed) -> bool:
        """An arrival of a previous case's connection."""
        return item.tpdu is not None and self.stale(item.tpdu)

    def stale(self, tpdu: TPDU) -> bool:
        """A TPDU of a previous case's connection."""
        if isinstance(tpdu, CR):
            return tpdu.src_ref in self.old_cr_refs
        dst = getattr(tpdu, "dst_ref", None)
        return dst is not None and dst in self.old_our_refs


async def _resolve(settings: Settings) -> tuple[int, Address]:
    target = settings.target
    kind = _socket.SOCK_DGRAM if target.scheme == "udp" else _socket.SOCK_STREAM
    infos = await trio.socket.getaddrinfo(target.host, target.port, type=kind)
    family, _, _, _, sockaddr = infos[0]
    return int(family), (str(sockaddr[0]), int(sockaddr[1]))


def _local_ip(family: int, address: Address) -> str:
    """The local address the route to *address* leaves from (what a capture should show)."""
    with _socket.socket(family, _socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(address)
            return str(probe.getsockname()[0])
        except OSError:
            return "::" if family == _socket.AF_INET6 else "0.0.0.0"


def _limit(info: CaseInfo, settings: Settings) -> float:
    """The longest a case may run: its own limit, plus the unknown timers it may wait for."""
    waits = 3.0 if info.group.value == "timers" else 1.0
    extra = settings.connect_wait if info.role == "responder" else 0.0
    return info.time_limit + waits * settings.timer_limit + extra


async def _run_case(
    info: CaseInfo,
    settings: Settings,
    refs: _Refs,
    responder: _Responder,
    family: int,
    address: Address,
    recorder: Recorder,
) -> CaseResult:
    started = time.time()
    result = CaseResult(info, Verdict.PASS, started=started)
    t_start = trio.current_time()
    session: Session | None = None
    async with trio.open_nursery() as nursery:
        port: UdpPort | None = None
        tcp: TcpLink | None = None
        try:
            link: UdpLink | TcpLink
            if info.protocol_class == 4 and settings.role == "initiator":
                port = await UdpPort.bind(_local_ip(family, address), 0, recorder)
                nursery.start_soon(port.run)
                link = UdpLink(port, address)
            elif info.protocol_class == 4:
                assert responder.udp is not None
                link = UdpLink(responder.udp, None)
            else:
                tcp = link = TcpLink(recorder, nursery)
            session = Session(
                info,
                settings,
                link,
                our_ref=refs.new(),
                stale=responder.stale if settings.role == "responder" else None,
            )
            if settings.role == "responder" and info.protocol_class == 4:
                carried = [i for i in responder.carry if not responder.stale_item(i)]
                responder.carry = []
                session.carry_in(carried)
            for need in sorted(info.needs):
                session.require(need)
            with trio.move_on_after(_limit(info, settings)) as scope:
                if tcp is not None and settings.role == "responder":
                    assert responder.tcp is not None
                    stream = await responder.tcp.accept(trio.current_time() + settings.connect_wait)
                    if stream is None:
                        session.inconclusive(
                            f"the IUT did not connect within {settings.connect_wait:g} s"
                        )
                    tcp.attach(stream)
                    session.event(f"TCP connection from {tcp.peer}")
                await info.fn(session)
                result.reason = session.outcome
            if scope.cancelled_caught:
                result.verdict = Verdict.INCONCLUSIVE
                result.reason = f"time limit of {_limit(info, settings):g} s reached"
        except CaseEnd as end:
            result.verdict = end.verdict
            result.reason = end.reason
            result.expected = end.expected
            result.observed = end.observed
        except Exception as exc:  # a tester bug: an error verdict, the run goes on
            result.verdict = Verdict.ERROR
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            result.reason = f"{type(exc).__name__}: {exc} ({frame.filename}:{frame.lineno})"
        finally:
            if tcp is not None:
                with trio.CancelScope(shield=True):
                    await tcp.close()
            if port is not None:
                port.close()
            nursery.cancel_scope.cancel()
    if session is not None:
        result.log = session.log
        result.notes = session.notes
        result.measurements = session.measurements
        result.pics = session.pics_items
        if settings.role == "responder":
            responder.old_our_refs.add(session.our_ref)
            responder.old_cr_refs |= session.claimed
            responder.carry = [
                i
                for i in session.observed
                if isinstance(i.tpdu, CR) and i.tpdu.src_ref not in responder.old_cr_refs
            ]
    result.duration = round(trio.current_time() - t_start, 6)
    return result


async def run_suite(
    settings: Settings,
    cases: Sequence[CaseInfo],
    *,
    pcap: str | None = None,
    hooks: Hooks | None = None,
) -> SuiteResult:
    """Run *cases* against the IUT of *settings*; returns every result and the PICS.

    Args:
        pcap: record every datagram / TPDU sent and received in this file.
        hooks: progress callbacks.

    Raises:
        OSError: the target's name does not resolve, or (responder) the
            address cannot be listened on.
    """
    hooks = hooks or Hooks()
    recorder = Recorder(pcap)
    suite = SuiteResult(
        target=str(settings.target),
        role=settings.role,
        protocol_class=settings.target.protocol_class,
        started=time.time(),
        settings=settings.summary(),
    )
    t0 = trio.current_time()
    refs = _Refs(settings.seed)
    responder = _Responder()
    try:
        family, address = await _resolve(settings)
        async with trio.open_nursery() as nursery:
            if settings.role == "responder":
                if settings.target.scheme == "udp":
                    responder.udp = await UdpPort.bind(address[0], address[1], recorder)
                    nursery.start_soon(responder.udp.run)
                else:
                    responder.tcp = await TcpListenerPort.bind(address[0], address[1], recorder)
                if hooks.listening:
                    port = responder.udp or responder.tcp
                    assert port is not None
                    hooks.listening(port.local)
            total = len(cases)
            for index, info in enumerate(cases):
                if hooks.case_started:
                    hooks.case_started(info, index, total)
                try:
                    result = await _run_case(
                        info, settings, refs, responder, family, address, recorder
                    )
                except (
                    Exception
                ) as exc:  # (a link's reader failed): this case errs, the run goes on
                    result = CaseResult(info, Verdict.ERROR, f"{type(exc).__name__}: {exc}")
                suite.pics.extend(result.pics)
                suite.results.append(result)
                if hooks.case_finished:
                    hooks.case_finished(result, index, total)
            if responder.udp is not None:
                responder.udp.close()
            if responder.tcp is not None:
                await responder.tcp.aclose()
            nursery.cancel_scope.cancel()
    finally:
        recorder.close()
        suite.duration = round(trio.current_time() - t0, 3)
    return suite
