"""How an endpoint withstands an attacker, scenario by scenario (issue 7's figures).

The same script measures the code before the hardening work and after it::

    git -C /work/main archive b450a25 | tar -x -C /tmp/before
    .venv/bin/python benchmarks/attacks.py --tree /tmp/before --json before.json
    .venv/bin/python benchmarks/attacks.py --json after.json        # the working tree

``--tree DIR`` (or ``PYTHONPATH=DIR``) puts DIR first on ``sys.path``: the
``tp4emu`` package found there is the one measured. The helpers of the
project's ``tests/`` (``netsim.MemoryNetwork``, ``scripted.Script``), the same
in both trees, are put on ``sys.path`` too. Only what exists in both versions
is used: the public API (``tp4emu.core``, ``tp4emu.transport.udp.open_udp_endpoint(socket=...)``,
``tp4emu.api.serve``, ``tp4emu.transport.tcp.open_tcp_endpoint``, ``tp4emu.wire``) and a
few private attributes present in both (``Connection._ed_received``,
``_reasm_len``, ``_rcv_ooo``, ``_rcv_queue``, ``TCPEndpoint._tcp``). Newer
``Config`` fields are set only when they exist, newer statistics are read with
``getattr``.

Scenarios (each prints one line; ``--only 2a,7`` runs some):

1. one-datagram: one CR with LI 254 at a ``serve(auto_confirm=True)`` server.
2a. cr-flood: 10,000 CRs from 1,000 spoofed /24s over 5 s at a ``serve``
    echo server whose handler is a plain ``async for`` echo; a genuine client
    tries 10 times during the flood, then every 0.5 s after it.
2b. cr-flood/tolerant: the same with a handler that swallows its own
    exceptions (isolates admission control from ``serve``'s error containment).
3. amplification: one minimal CR from an address that never answers, to an
    auto-confirming and to a rejecting server; and per flood address in 2b.
4. expedited: 100,000 in-sequence EDs that the user never reads (core).
5. dr-src-ref-0: which DRs (and ERs) release an OPEN connection (core).
6. reassembly: 200 connections each send 1 MiB without EOT, nobody reads (core).
7. tcp-one-connection: one class 0 CR with LI 254 at an RFC 1006 endpoint.
8. tcp-emfile: the TCP listener's accept() raises EMFILE twice.
9. tcp-caps: 200 TCP connections that finish CR/CC then idle, 200 that never
   send a CR.

UDP scenarios run on the in-memory network under
``trio.testing.MockClock(autojump_threshold=0)`` (virtual time: deterministic,
seeded); TCP ones on 127.0.0.1 in real time, each bounded. Every scenario
catches what goes wrong and reports it as its figure. Nothing asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import math
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _early_tree(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--tree" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--tree="):
            return arg.split("=", 1)[1]
    return None


sys.path.insert(0, str(ROOT / "tests"))
_TREE = _early_tree(sys.argv[1:])
if _TREE is not None:
    sys.path.insert(0, str(Path(_TREE).resolve()))

import trio  # noqa: E402
import trio.testing  # noqa: E402
from netsim import MemoryNetwork  # noqa: E402
from scripted import PEER_REF, Script, open_as_responder, peer_cr  # noqa: E402

import tp4emu  # noqa: E402
from tp4emu.api import serve  # noqa: E402
from tp4emu.core import Config, State  # noqa: E402

try:  # the layered tree
    from tp4emu.transport.tcp import open_tcp_endpoint
    from tp4emu.transport.udp import open_udp_endpoint
except ImportError:  # trees before the layout of tp4emu/transport/
    from tp4emu.tcp import open_tcp_endpoint  # type: ignore[no-redef]
    from tp4emu.udp import open_udp_endpoint  # type: ignore[no-redef]
from tp4emu.wire import (  # noqa: E402
    AK,
    CR,
    DR,
    DT,
    ED,
    ER,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    DRReason,
    TPDUCode,
    TpduSize,
    TPKTDecoder,
    decode,
    encode,
    encode_one,
    encode_tpkt,
)

# ------------------------------------------------------------------ common

SERVER = ("192.0.2.1", 102)
CLIENT = ("198.51.100.20", 40000)
ATTACKER = ("203.0.113.66", 4000)
TSAP = b"echo"
MiB = 1024 * 1024


class LogCounter(logging.Handler):
    """Counts (and silences) what tp4emu logs: the new code logs contained failures."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}:{record.levelname}"] += 1


LOGS = LogCounter()
_tp4_logger = logging.getLogger("tp4emu")
_tp4_logger.addHandler(LOGS)
_tp4_logger.propagate = False
_tp4_logger.setLevel(logging.DEBUG)


def make_config(**wanted: Any) -> tuple[Config, list[str]]:
    """A Config with the fields of *wanted* that this tree's Config has; the others' names."""
    fields = Config.__dataclass_fields__
    return Config(**{k: v for k, v in wanted.items() if k in fields}), [
        k for k in wanted if k not in fields
    ]


def stat(stats: Any, name: str) -> Any:
    return getattr(stats, name, None)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _one(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if type(exc).__name__ in ("ConnectionRejected", "Disconnected") and isinstance(reason, int):
        return f"{type(exc).__name__}: DR reason {int(reason)}"  # the DR reason says it all
    msg = " ".join(str(exc).split())
    m = re.match(r"cannot encode (\w+)\(.*\): (.*)$", msg)
    if m:  # the codec repeats the whole TPDU: keep its type and the cause
        msg = f"cannot encode {m[1]}(…): {m[2]}"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def describe(exc: BaseException, limit: int = 110) -> str:
    """``Type: message`` of an exception, or of the leaves of an exception group (counted)."""
    counts = Counter(_one(e) for e in _leaves(exc))
    text = "; ".join(t if n == 1 else f"{n}x {t}" for t, n in counts.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def only_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(only_cancelled(e) for e in exc.exceptions)
    return False


def tpdu_label(t: Any) -> str:
    name = type(t).__name__
    if isinstance(t, DR):
        return f"DR({int(t.reason)})"
    return name


def summarize(raws: list[bytes]) -> str:
    """``9 CC + 9 DR(0)``: the TPDUs in *raws*, in order of first appearance."""
    counts: Counter[str] = Counter()
    for raw in raws:
        try:
            tpdus = decode(raw)
        except Exception:
            counts["undecodable"] += 1
            continue
        for t in tpdus:
            counts[tpdu_label(t)] += 1
    if not counts:
        return "nothing"
    return " + ".join(f"{n} {k}" for k, n in counts.items())


def verdict(ok: bool, why: str) -> str:
    return "ok" if ok else f"FAILED ({why})"


def vrun(afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """Run *afn* in virtual time."""
    return trio.run(afn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


@dataclass
class Box:
    """What became of a server task."""

    ep: Any = None
    error: BaseException | None = None
    died_at: float | None = None
    started_at: float = 0.0

    @property
    def alive(self) -> bool:
        return self.error is None

    def death(self) -> str:
        assert self.error is not None
        when = f" at t={self.died_at - self.started_at:.1f}s" if self.died_at is not None else ""
        return f"server died{when}: {describe(self.error)}"


async def echo(conn: Any) -> None:
    """A plain echo handler, as an application writes it."""
    async for tsdu in conn:
        await conn.send(tsdu)


async def tolerant_echo(conn: Any) -> None:
    """An echo handler that swallows its own failures (a dead peer, a timeout)."""
    with contextlib.suppress(Exception):
        await echo(conn)


async def rejecter(conn: Any) -> None:
    """Rejects every connection (what an access list does to a spoofed source)."""
    with contextlib.suppress(Exception):
        await conn.reject()


async def udp_server(
    box: Box,
    sock: Any,
    config: Config,
    handler: Callable[[Any], Awaitable[object]],
    *,
    tsap: bytes | None,
    auto_confirm: bool,
) -> None:
    """``serve(handler)`` on a UDP endpoint over *sock*; its death is recorded in *box*."""
    box.started_at = trio.current_time()
    try:
        async with open_udp_endpoint(sock.getsockname(), config=config, socket=sock) as ep:
            box.ep = ep
            await serve(handler, ep, tsap=tsap, auto_confirm=auto_confirm)
    except BaseException as exc:
        if only_cancelled(exc):
            raise
        box.error = exc
        box.died_at = trio.current_time()


async def attempt(client: Any, limit: float = 1.0) -> tuple[bool, str]:
    """A genuine client: connect, echo, close, all within *limit* seconds."""
    with trio.move_on_after(limit):
        try:
            conn = await client.connect(SERVER, called_tsap=TSAP)
            await conn.send(b"ping")
            got = await conn.receive()
            await conn.aclose()
        except Exception as exc:
            return False, describe(exc, 60)
        return got == b"ping", "ok" if got == b"ping" else f"echo mismatch {got!r}"
    return False, f"timeout {limit:g}s"


def sent_to(net: MemoryNetwork, dst: Any) -> list[bytes]:
    return [raw for _t, _src, d, raw in net.log if d == dst]


# --------------------------------------------------------- 1. one datagram


def long_cr(src_ref: int = 0x4242) -> bytes:
    """A class 4 CR with LI 254: long calling TSAP, called "echo", no additional options."""
    calling = b"A" * 233
    cr = CR(
        src_ref=src_ref, credit=15, params=(TpduSize(13), CallingTsap(calling), CalledTsap(TSAP))
    )
    raw = encode_one(cr, checksum=True)
    assert raw[0] == 254, raw[0]
    return raw


def scen_one_datagram() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        config = Config()
        box = Box()
        async with MemoryNetwork.open(seed=1, record=True) as net, trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: udp_server(
                    box, net.socket(SERVER), config, tolerant_echo, tsap=TSAP, auto_confirm=True
                )
            )
            await trio.sleep(0.1)
            net._send(long_cr(), ATTACKER, SERVER)
            # serve's failure may wait for the connection's shielded aclose()
            # (at most window_time): look after that.
            await trio.sleep(Config().window_time + 5.0)
            alive = box.alive
            async with open_udp_endpoint(CLIENT, config=config, socket=net.socket(CLIENT)) as cl:
                ok, why = await attempt(cl, 5.0)
            await trio.sleep(60.0)  # what a surviving server still holds a minute later
            held = None
            if box.alive and box.ep is not None:
                held = Counter(c.state.name for c in box.ep.core.connections)
                held.pop("OPEN", None)
            got = summarize(sent_to(net, ATTACKER))
            nursery.cancel_scope.cancel()
        serve_txt = "serve survived" if alive else box.death()
        fig = f"{serve_txt}; genuine client: {verdict(ok, why)}; attacker got: {got}"
        if held:
            fig += f"; held 60 s later: {dict(held)}"
        return {
            "figure": fig,
            "serve_survived": alive,
            "error": None if box.error is None else describe(box.error, 300),
            "client_ok": ok,
            "client_detail": why,
            "attacker_got": got,
            "held_after_60s": dict(held) if held else {},
        }

    return vrun(main)


# -------------------------------------------------------------- 2. flood

FLOOD_CRS = 10_000
FLOOD_TIME = 5.0
FLOOD_ADDRESSES = [(f"10.{i // 250}.{i % 250}.1", 1024 + i) for i in range(1_000)]  # 1,000 /24s


def flood_cr(src_ref: int) -> bytes:
    params = (TpduSize(13), CalledTsap(TSAP), AdditionalOptions(1))
    return encode_one(CR(src_ref=src_ref, credit=15, params=params), checksum=True)


FLOOD_CACHE: dict[str, dict[str, Any]] = {}


def scen_flood(tolerant: bool) -> dict[str, Any]:
    handler = tolerant_echo if tolerant else echo

    async def main() -> dict[str, Any]:
        config = Config()
        box = Box()
        during: list[tuple[bool, str]] = []
        after: list[tuple[float, bool, str]] = []
        first_ok: float | None = None
        async with MemoryNetwork.open(seed=1, record=True) as net, trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: udp_server(
                    box, net.socket(SERVER), config, handler, tsap=TSAP, auto_confirm=True
                )
            )
            async with open_udp_endpoint(CLIENT, config=config, socket=net.socket(CLIENT)) as cl:
                await trio.sleep(0.1)
                start = trio.current_time()
                done = trio.Event()

                async def flood() -> None:
                    rng = random.Random(7)
                    batch = 20  # 2,000 CRs/s in 10 ms steps
                    for i in range(0, FLOOD_CRS, batch):
                        for j in range(batch):
                            src = FLOOD_ADDRESSES[(i + j) % len(FLOOD_ADDRESSES)]
                            net._send(flood_cr(rng.randrange(1, 0x10000)), src, SERVER)
                        await trio.sleep(FLOOD_TIME * batch / FLOOD_CRS)
                    done.set()

                async def try_at(at: float) -> None:
                    await trio.sleep_until(at)
                    during.append(await attempt(cl, 1.0))

                async with trio.open_nursery() as inner:
                    inner.start_soon(flood)
                    for k in range(10):
                        inner.start_soon(try_at, start + 0.1 + 0.44 * k)
                    await done.wait()
                    end = trio.current_time()  # the flood's end (an attempt may still run)
                # After the flood: every 0.5 s until the first success (cap 120 s).
                k = 0
                while box.alive and trio.current_time() - end < 120.0:
                    await trio.sleep_until(end + 0.5 * k)
                    t0 = trio.current_time() - end
                    ok, why = await attempt(cl, 1.0)
                    after.append((t0, ok, why))
                    if ok:
                        first_ok = trio.current_time() - end
                        break
                    k = max(k + 1, math.ceil((trio.current_time() - end) / 0.5))
                # Let the server finish with the flood's connections (amplification).
                flood_set = frozenset(FLOOD_ADDRESSES)
                while box.alive and trio.current_time() - end < 150.0:
                    await trio.sleep(5.0)
                    last = max((t for t, _s, d, _r in net.log if d in flood_set), default=0.0)
                    if trio.current_time() - last > 10.0:
                        break
                stats = box.ep.statistics() if box.ep is not None else None
            nursery.cancel_scope.cancel()

        sent: dict[Any, int] = defaultdict(int)
        received: dict[Any, int] = defaultdict(int)
        tpdus_to_flood: list[bytes] = []
        for _t, src, dst, raw in net.log:
            if dst in flood_set:
                sent[dst] += len(raw)
                tpdus_to_flood.append(raw)
            elif src in flood_set:
                received[src] += len(raw)
        ratios = [sent[a] / received[a] for a in received]
        amp = {
            "max_ratio": max(ratios, default=0.0),
            "total_ratio": sum(sent.values()) / max(1, sum(received.values())),
            "octets_sent": sum(sent.values()),
            "octets_received": sum(received.values()),
            "tpdus_sent": summarize(tpdus_to_flood),
        }
        n_ok = sum(ok for ok, _ in during)
        fails = Counter(why for ok, why in during if not ok)
        parts = [f"during: {n_ok}/10"]
        if fails:
            parts[0] += " (" + ", ".join(f"{n}x {w}" for w, n in fails.most_common(2)) + ")"
        if first_ok is not None:
            parts.append(f"after: first success {first_ok:.2f} s after the flood")
        elif box.alive:
            parts.append("after: no success within 120 s")
        else:
            parts.append("after: not tried")
        parts.append("serve survived" if box.alive else box.death())
        extra: dict[str, int] = {}
        if stats is not None:
            for name in ("connections_refused", "connections_evicted", "amplification_limited"):
                if stat(stats, name) is not None:
                    extra[name] = stat(stats, name)
            parts.append(
                "server: " + ", ".join(f"{k.split('_', 1)[1]} {v:,}" for k, v in extra.items())
            )
        result = {
            "figure": "; ".join(parts),
            "during_ok": n_ok,
            "during": during,
            "after_first_success_s": first_ok,
            "after_attempts": len(after),
            "serve_survived": box.alive,
            "error": None if box.error is None else describe(box.error, 300),
            "died_at_s": None if box.died_at is None else box.died_at - box.started_at,
            "server_stats": extra,
            "amplification": amp,
        }
        return result

    result = vrun(main)
    FLOOD_CACHE["tolerant" if tolerant else "plain"] = result
    return result


# ------------------------------------------------------- 3. amplification


def minimal_cr(src_ref: int = 0x1234) -> bytes:
    return encode_one(CR(src_ref=src_ref, credit=15), checksum=True)


def one_cr_amplification(handler: Callable[[Any], Awaitable[object]], auto: bool) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        box = Box()
        async with MemoryNetwork.open(seed=1, record=True) as net, trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: udp_server(
                    box, net.socket(SERVER), Config(), handler, tsap=None, auto_confirm=auto
                )
            )
            await trio.sleep(0.1)
            cr = minimal_cr()
            net._send(cr, ATTACKER, SERVER)
            await trio.sleep(150.0)  # confirm timeout, CC and DR retransmissions, freeze
            nursery.cancel_scope.cancel()
        out = sent_to(net, ATTACKER)
        octets = sum(map(len, out))
        return {
            "received": len(cr),
            "sent": octets,
            "ratio": octets / len(cr),
            "tpdus": summarize(out),
            "serve_survived": box.alive,
            "error": None if box.error is None else describe(box.error, 300),
        }

    return vrun(main)


def scen_amplification() -> dict[str, Any]:
    a = one_cr_amplification(tolerant_echo, True)
    b = one_cr_amplification(rejecter, False)
    flood = FLOOD_CACHE.get("tolerant") or scen_flood(True)
    c = flood["amplification"]
    died = "" if a["serve_survived"] and b["serve_survived"] else " (a server died)"
    fig = (
        f"(a) auto-confirm: {a['ratio']:.1f}x ({a['sent']}/{a['received']} o: {a['tpdus']}); "
        f"(b) reject: {b['ratio']:.1f}x ({b['sent']}/{b['received']} o: {b['tpdus']}); "
        f"(c) flood: max {c['max_ratio']:.1f}x, total {c['total_ratio']:.2f}x per address"
        f"{died}"
    )
    return {"figure": fig, "auto_confirm": a, "reject": b, "flood": c}


# ----------------------------------------------------------- 4. expedited


def scen_expedited() -> dict[str, Any]:
    s = Script(Config())
    conn, cc = open_as_responder(s)
    assert conn.expedited_enabled
    raws = [encode_one(ED(cc.src_ref, nr, b"!"), checksum=True) for nr in range(128)]
    ea = 0
    other: Counter[str] = Counter()
    n = 100_000
    for i in range(n):
        s.send(raws[i % 128])
        if len(s.pending) > 1000 or i == n - 1:
            for e in s.take():
                if (e.raw[1] >> 4) == TPDUCode.EA:
                    ea += 1
                else:
                    other[summarize([e.raw])] += 1
            s.log.clear()
    queued = len(conn._ed_received)
    stats = s.endpoint.statistics()
    dropped = stat(stats, "expedited_dropped")
    fig = f"{n:,} EDs unread: {queued:,} queued, {ea:,} EA sent; state {conn.state.name}"
    if dropped is not None:
        fig += f"; expedited_dropped {dropped:,}, invalid_tpdu {stats.invalid_tpdu:,}"
    return {
        "figure": fig,
        "eds": n,
        "queued": queued,
        "ea_sent": ea,
        "other_sent": dict(other),
        "expedited_dropped": dropped,
        "invalid_tpdu": stats.invalid_tpdu,
        "state": conn.state.name,
    }


# -------------------------------------------------------- 5. DR SRC-REF 0

_GONE = (State.CLOSING, State.REFWAIT, State.CLOSED)


def _kill_with(make: Callable[[int], Any]) -> tuple[bool, str, str]:
    """Open a connection, send the TPDU *make(our_ref)*; (released?, state, what was sent back)."""
    s = Script(Config())
    conn, cc = open_as_responder(s)
    s.send(make(cc.src_ref))
    back = summarize([e.raw for e in s.take()])
    return conn.state in _GONE, conn.state.name, back


def scen_dr_src_ref() -> dict[str, Any]:
    wrong = PEER_REF ^ 0x5A5A
    cases = {
        "DR src_ref=0": lambda ref: DR(ref, 0, DRReason.NORMAL),
        f"DR src_ref={wrong:#06x} (wrong)": lambda ref: DR(ref, wrong, DRReason.NORMAL),
        f"DR src_ref={PEER_REF:#06x} (right)": lambda ref: DR(ref, PEER_REF, DRReason.NORMAL),
        "ER (no SRC-REF field)": lambda ref: ER(ref),
    }
    res = {name: _kill_with(make) for name, make in cases.items()}
    zero = res["DR src_ref=0"][0]
    wrong_ok = res[f"DR src_ref={wrong:#06x} (wrong)"][0]
    right = res[f"DR src_ref={PEER_REF:#06x} (right)"][0]
    er = res["ER (no SRC-REF field)"][0]
    # Our reference is 16 bits; the peer's is 16 more, unless 0 (or anything) passes.
    dr_bits = 16 if (zero or wrong_ok) else 32
    fig = (
        f"DR(src 0): {'RELEASED' if zero else 'ignored'}; "
        f"DR(wrong src): {'RELEASED' if wrong_ok else 'ignored'}; "
        f"DR(right src): {'released' if right else 'ignored'}"
        f" → blind DR needs 2^{dr_bits} guesses; "
        f"ER(dst only): {'RELEASED → 2^16' if er else 'ignored'}"
    )
    return {
        "figure": fig,
        "cases": {k: {"released": v[0], "state": v[1], "answered": v[2]} for k, v in res.items()},
        "dr_guess_bits": dr_bits,
        "er_releases": er,
    }


# ---------------------------------------------------------- 6. reassembly

N_CONNS = 200
PER_CONN = 1 * MiB


def _held(conn: Any) -> int:
    return (
        conn._reasm_len
        + sum(len(dt.data) for dt in conn._rcv_ooo.values())
        + sum(len(item[0]) for item in conn._rcv_queue)
    )


def _reassembly(conforming: bool) -> dict[str, Any]:
    s = Script(Config(), seed=9)
    listener = s.endpoint.listen(None)
    peers = []
    for i in range(N_CONNS):
        s.peer = (f"192.0.{2 + i // 200}.{1 + i % 200}", 10200)
        conn, cc = open_as_responder(s, listener, cr=peer_cr(src_ref=0x0100 + i), rtt=1e-4)
        peers.append(
            {
                "addr": s.peer,
                "conn": conn,
                "ref": cc.src_ref,
                "lwe": 0,
                "uwe": cc.credit,
                "next": 0,
                "sent": 0,
                "dts": 0,
            }
        )
    mod = 128
    chunk_size = peers[0]["conn"].max_data
    total_dts = math.ceil(PER_CONN / chunk_size)
    chunk = b"\xa5" * chunk_size
    last = b"\xa5" * (PER_CONN - chunk_size * (total_dts - 1))
    by_addr = {p["addr"]: p for p in peers}
    peak = 0
    dts_sent = 0
    rounds = 0
    burst = 32  # a sender ignoring credit sends this many per round from its lowest unacked

    def read_aks() -> None:
        for e in s.take():
            p = by_addr.get(e.to)
            if p is None:
                continue
            for t in decode(e.raw):
                if isinstance(t, AK):  # AKs come in order: nr never goes back
                    p["lwe"] += (t.nr - p["lwe"]) % mod
                    p["uwe"] = p["lwe"] + t.credit
        s.log.clear()

    stalled = 0
    while True:
        rounds += 1
        progress = 0
        for p in peers:
            s.peer = p["addr"]
            if conforming:
                lo, hi = p["next"], min(p["uwe"], total_dts)
            else:
                lo, hi = p["lwe"], min(p["lwe"] + burst, total_dts)
            for seq in range(lo, hi):
                data = last if seq == total_dts - 1 else chunk
                s.send(encode_one(DT(p["ref"], seq % mod, False, data), checksum=True))
                dts_sent += 1
            p["next"] = max(p["next"], hi)
            before = p["lwe"]
            read_aks()
            progress += p["lwe"] - before
        held = sum(_held(p["conn"]) for p in peers)
        peak = max(peak, held)
        s.advance(by=0.01)
        read_aks()
        if all(p["lwe"] >= total_dts for p in peers):
            break
        if progress == 0:
            stalled += 1
            if stalled == 1:
                # Nothing moved: give the window timer a chance to re-open a window.
                s.advance(by=s.config.window_time + 0.1)
                read_aks()
            else:
                break
        else:
            stalled = 0
        if rounds > 10_000:
            break
    accepted = sum(p["lwe"] for p in peers)
    stats = s.endpoint.statistics()
    live = sum(1 for p in peers if p["conn"].state is State.OPEN)
    return {
        "peak_held": peak,
        "held_end": sum(_held(p["conn"]) for p in peers),
        "dts_sent": dts_sent,
        "dts_accepted": accepted,
        "complete_conns": sum(1 for p in peers if p["lwe"] >= total_dts),
        "open_conns": live,
        "out_of_window": stats.out_of_window,
        "credit_withheld": stat(stats, "credit_withheld"),
        "rounds": rounds,
        "max_data": chunk_size,
    }


def scen_reassembly() -> dict[str, Any]:
    budget = getattr(Config(), "receive_buffer_budget", None)
    conf = _reassembly(True)
    nonc = _reassembly(False)

    def mib(x: int) -> str:
        return f"{x / MiB:.1f} MiB"

    cfg = Config()
    windows = N_CONNS * cfg.receive_window * conf["max_data"]
    if budget is not None:
        btxt = f"budget {mib(budget)} (+ granted windows: {mib(budget + windows)})"
    else:
        btxt = "no budget"
    fig = (
        f"{N_CONNS} x {PER_CONN // MiB} MiB unread, {btxt}: "
        f"conforming peak {mib(conf['peak_held'])} ({conf['complete_conns']}/{N_CONNS} sent all); "
        f"32-DT bursts ignoring credit peak {mib(nonc['peak_held'])} "
        f"({nonc['complete_conns']}/{N_CONNS} sent all, "
        f"{nonc['out_of_window']:,} DTs dropped out of window)"
    )
    return {
        "figure": fig,
        "budget": budget,
        "granted_windows_octets": windows,
        "conforming": conf,
        "non_conforming": nonc,
    }


# -------------------------------------------------------------- TCP common

TCP_LIMIT = 30.0


def class0_long_cr() -> bytes:
    """A class 0 CR with LI 254 and no TPDU size: the CC adds one (3 octets) to both TSAPs."""
    cr = CR(src_ref=0x4242, protocol_class=0, params=(CallingTsap(b"B" * 240), CalledTsap(TSAP)))
    raw = encode(cr)
    assert raw[0] == 254, raw[0]
    return raw


def class0_cr() -> bytes:
    return encode(CR(src_ref=7, protocol_class=0, params=(TpduSize(10), CalledTsap(TSAP))))


async def tcp_server(
    box: Box,
    config: Config,
    setup: Callable[[Any], None] | None = None,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """An RFC 1006 endpoint with an accept loop running a tolerant echo per connection."""
    box.started_at = trio.current_time()
    started = False
    try:
        async with open_tcp_endpoint(("127.0.0.1", 0), config=config) as ep:
            box.ep = ep
            if setup is not None:
                setup(ep)  # before the accept loop's first accept()
            listener = ep.listen(TSAP)
            task_status.started(ep.getsockname())
            started = True
            async with trio.open_nursery() as handlers:
                while True:
                    conn = await listener.accept()
                    handlers.start_soon(tolerant_echo, conn)
    except BaseException as exc:
        if only_cancelled(exc):
            raise
        box.error = exc
        box.died_at = trio.current_time()
        if not started:
            task_status.started(None)


async def tcp_client_ok(addr: tuple[str, int], limit: float = 5.0) -> tuple[bool, str]:
    with trio.move_on_after(limit):
        try:
            async with open_tcp_endpoint(("127.0.0.1", 0)) as cep:
                conn = await cep.connect(addr, called_tsap=TSAP)
                await conn.send(b"ping")
                got = await conn.receive()
                await conn.aclose()
                return got == b"ping", "ok"
        except Exception as exc:
            return False, describe(exc, 60)
    return False, f"timeout {limit:g}s"


async def read_answer(stream: Any, limit: float) -> tuple[str, str]:
    """What a raw TCP client got back within *limit*: (TPDUs, how the connection ended)."""
    dec = TPKTDecoder()
    tpdus: list[bytes] = []
    end = "still open"
    with trio.move_on_after(limit):
        try:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    end = "closed"
                    break
                tpdus.extend(dec.feed(chunk))
        except (trio.BrokenResourceError, OSError) as exc:
            end = f"reset ({type(exc).__name__})"
        except Exception as exc:
            end = f"bad answer: {describe(exc, 50)}"
    return summarize(tpdus), end


# --------------------------------------------------- 7. TCP one connection


def scen_tcp_one_connection() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        box = Box()
        with trio.fail_after(TCP_LIMIT):
            async with trio.open_nursery() as nursery:
                addr = await nursery.start(tcp_server, box, Config())
                if addr is None:
                    return {"figure": box.death(), "serve_survived": False}
                stream = await trio.open_tcp_stream(*addr)
                await stream.send_all(encode_tpkt(class0_long_cr()))
                got, end = await read_answer(stream, 2.0)
                await stream.aclose()
                await trio.sleep(0.2)
                alive = box.alive
                ok, why = await tcp_client_ok(addr, 3.0)  # tried even when the endpoint died
                nursery.cancel_scope.cancel()
        fig = (
            f"{'endpoint survived' if alive else box.death()}; "
            f"genuine client: {verdict(ok, why)}; attacker got: {got}, {end}"
        )
        return {
            "figure": fig,
            "endpoint_survived": alive,
            "error": None if box.error is None else describe(box.error, 300),
            "client_ok": ok,
            "attacker_got": got,
            "attacker_end": end,
        }

    return trio.run(main)


# ------------------------------------------------------------ 8. EMFILE


def _socket_listener(ep: Any) -> Any:
    tcp = getattr(ep, "_tcp", None)
    if tcp:
        return tcp[0]
    for value in vars(ep).values():  # pragma: no cover - a renamed attribute
        if isinstance(value, trio.SocketListener):
            return value
        if isinstance(value, list) and value and isinstance(value[0], trio.SocketListener):
            return value[0]
    raise RuntimeError("no trio.SocketListener found on the TCP endpoint")


def scen_tcp_emfile() -> dict[str, Any]:
    calls = {"accept": 0, "emfile": 0}

    def setup(ep: Any) -> None:
        lst = _socket_listener(ep)
        original = lst.accept

        async def flaky_accept() -> Any:
            calls["accept"] += 1
            if calls["emfile"] < 2:
                calls["emfile"] += 1
                await trio.lowlevel.checkpoint()
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            return await original()

        lst.accept = flaky_accept

    async def main() -> dict[str, Any]:
        box = Box()
        with trio.fail_after(TCP_LIMIT):
            async with trio.open_nursery() as nursery:
                addr = await nursery.start(tcp_server, box, Config(), setup)
                t0 = trio.current_time()
                while calls["emfile"] < 2 and box.alive and trio.current_time() - t0 < 5:
                    await trio.sleep(0.01)
                await trio.sleep(0.5)
                alive = box.alive
                ok, why = await tcp_client_ok(addr, 3.0) if addr else (False, "no address")
                nursery.cancel_scope.cancel()
        fig = (
            f"EMFILE raised {calls['emfile']}x by accept(): "
            f"{'endpoint survived' if alive else box.death()}; "
            f"genuine client after: {verdict(ok, why)}"
        )
        return {
            "figure": fig,
            "endpoint_survived": alive,
            "error": None if box.error is None else describe(box.error, 300),
            "accept_calls": calls["accept"],
            "emfile_raised": calls["emfile"],
            "client_ok": ok,
        }

    return trio.run(main)


# ------------------------------------------------------------- 9. TCP caps

CAPS = {"max_connections": 64, "tcp_cr_timeout": 1.0, "tcp_idle_timeout": 2.0}


@dataclass
class Watched:
    opened: float
    got_cc: bool = False
    answer: str = ""
    closed_at: float | None = None
    stream: Any = field(default=None, repr=False)


async def _watch(w: Watched) -> None:
    try:
        while True:
            if not await w.stream.receive_some(65536):
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    w.closed_at = trio.current_time()


def _phase_summary(ws: list[Watched]) -> dict[str, Any]:
    at_once = sum(1 for w in ws if w.closed_at is not None and w.closed_at - w.opened < 0.25)
    later = [
        w.closed_at - w.opened
        for w in ws
        if w.closed_at is not None and w.closed_at - w.opened >= 0.25
    ]
    return {
        "opened": len(ws),
        "got_cc": sum(w.got_cc for w in ws),
        "closed_at_once": at_once,
        "closed_later": len(later),
        "closed_later_median_s": sorted(later)[len(later) // 2] if later else None,
        "still_open": sum(1 for w in ws if w.closed_at is None),
    }


def _phase_text(summary: dict[str, Any], at: float) -> str:
    later = summary["closed_later_median_s"]
    return (
        f"{summary['closed_at_once']} closed at once, {summary['closed_later']} later"
        + (f" (~{later:.1f} s)" if later is not None else "")
        + f", {summary['still_open']} held at +{at:g} s"
    )


def scen_tcp_caps() -> dict[str, Any]:
    config, missing = make_config(**CAPS)

    async def main() -> dict[str, Any]:
        box = Box()
        established: list[Watched] = []
        no_cr: list[Watched] = []
        timeline: list[tuple[float, int]] = []
        with trio.fail_after(TCP_LIMIT + 20):
            async with trio.open_nursery() as nursery:
                addr = await nursery.start(tcp_server, box, config)
                async with trio.open_nursery() as watchers:

                    def held() -> int:
                        return sum(1 for w in established + no_cr if w.closed_at is None)

                    # A: 200 connections that finish CR/CC, then say nothing.
                    cr = encode_tpkt(class0_cr())
                    for _ in range(200):
                        w = Watched(trio.current_time())
                        try:
                            w.stream = await trio.open_tcp_stream(*addr)
                            await w.stream.send_all(cr)
                            dec = TPKTDecoder()
                            with trio.move_on_after(2.0):
                                while not w.answer:
                                    chunk = await w.stream.receive_some(65536)
                                    if not chunk:
                                        w.answer = "closed"
                                        w.closed_at = trio.current_time()
                                        break
                                    payloads = dec.feed(chunk)
                                    if payloads:
                                        w.answer = summarize(payloads[:1])
                                        w.got_cc = w.answer == "1 CC"
                        except (OSError, trio.BrokenResourceError) as exc:
                            w.answer = describe(exc, 40)
                            w.closed_at = trio.current_time()
                        established.append(w)
                        if w.closed_at is None:
                            watchers.start_soon(_watch, w)
                    await trio.sleep(3.5)
                    timeline.append((trio.current_time() - box.started_at, held()))
                    a_sum = _phase_summary(established)
                    # B: 200 TCP connections that never send a CR (A's still held, if any).
                    for _ in range(200):
                        w = Watched(trio.current_time())
                        try:
                            w.stream = await trio.open_tcp_stream(*addr)
                        except OSError as exc:
                            w.answer = describe(exc, 40)
                            w.closed_at = trio.current_time()
                        no_cr.append(w)
                        if w.closed_at is None:
                            watchers.start_soon(_watch, w)
                    await trio.sleep(2.5)
                    timeline.append((trio.current_time() - box.started_at, held()))
                    b_sum = _phase_summary(no_cr)
                    total_held = held()
                    alive = box.alive
                    ok, why = await tcp_client_ok(addr) if alive else (False, "server dead")
                    for w in established + no_cr:
                        if w.stream is not None:
                            await w.stream.aclose()
                    watchers.cancel_scope.cancel()
                nursery.cancel_scope.cancel()
        answers = Counter(w.answer for w in established)
        fig = (
            f"A 200 idle after CC: {a_sum['got_cc']} got CC, {_phase_text(a_sum, 3.5)}; "
            f"B 200 no CR: {_phase_text(b_sum, 2.5)}; held in all: {total_held}/400; "
            f"{'endpoint alive' if alive else box.death()}, client after: {verdict(ok, why)}"
        )
        if missing:
            fig += f" [Config lacks {', '.join(missing)}]"
        return {
            "figure": fig,
            "config_set": {k: v for k, v in CAPS.items() if k not in missing},
            "config_missing": missing,
            "established_idle": a_sum,
            "established_answers": dict(answers),
            "no_cr": b_sum,
            "held_total": total_held,
            "timeline_held": timeline,
            "endpoint_survived": alive,
            "client_ok": ok,
        }

    return trio.run(main)


# ------------------------------------------------------------------- main

SCENARIOS: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("1", "one-datagram", scen_one_datagram),
    ("2a", "cr-flood", lambda: scen_flood(False)),
    ("2b", "cr-flood/tolerant", lambda: scen_flood(True)),
    ("3", "amplification", scen_amplification),
    ("4", "expedited", scen_expedited),
    ("5", "dr-src-ref-0", scen_dr_src_ref),
    ("6", "reassembly", scen_reassembly),
    ("7", "tcp-one-connection", scen_tcp_one_connection),
    ("8", "tcp-emfile", scen_tcp_emfile),
    ("9", "tcp-caps", scen_tcp_caps),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", metavar="DIR", help="measure the tp4emu package of DIR")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--only", metavar="IDS", help="comma-separated ids or names, e.g. 2a,7")
    parser.add_argument("--width", type=int, default=200, help="table width (default 200)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    tree = str(Path(tp4emu.__file__).resolve().parent.parent)
    new_fields = [
        f
        for f in (
            "receive_buffer_budget",
            "max_unvalidated",
            "amplification_factor",
            "max_expedited_queued",
            "tcp_cr_timeout",
            "tcp_idle_timeout",
        )
        if f in Config.__dataclass_fields__
    ]
    print(f"tp4emu from {tree} (python {sys.version.split()[0]}, trio {trio.__version__})")
    print(f"hardening Config fields present: {', '.join(new_fields) or 'none'}", flush=True)
    wanted = None if not args.only else {x.strip() for x in args.only.split(",")}
    results = []
    for sid, name, fn in SCENARIOS:
        if wanted is not None and sid not in wanted and name not in wanted:
            continue
        before_logs = LOGS.counts.copy()
        t0 = time.perf_counter()
        try:
            data = fn()
        except BaseException as exc:  # the harness itself, or an uncontained failure
            if isinstance(exc, KeyboardInterrupt):
                raise
            data = {"figure": f"scenario failed: {describe(exc, 200)}", "error": repr(exc)}
        took = time.perf_counter() - t0
        logs = LOGS.counts - before_logs
        if logs:
            data["tp4emu_log_records"] = dict(logs)
        results.append({"id": sid, "name": name, "seconds": round(took, 2), **data})
        print(f"[{sid} {name}] {data['figure']}  ({took:.1f} s)", flush=True)

    console = Console(width=args.width)
    table = Table(title=f"tp4emu under attack — {tree}", show_lines=True)
    table.add_column("#", no_wrap=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("figures")
    table.add_column("s", justify="right", no_wrap=True)
    for r in results:
        table.add_row(r["id"], r["name"], r["figure"], f"{r['seconds']:.1f}")
    console.print(table)
    if args.json:
        doc = {
            "tree": tree,
            "python": sys.version.split()[0],
            "trio": trio.__version__,
            "config_fields_present": new_fields,
            "scenarios": results,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
