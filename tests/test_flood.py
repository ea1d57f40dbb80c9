"""A spoofed CR flood against a real server application, in virtual time.

10,000 CRs from 1,000 addresses (each in its own /24, so that only the pool of
unvalidated connections, not the per-address or per-prefix caps, can save the
server) arrive over 5 s at an endpoint run by ``tp4emu.serve`` (the TCP-like
auto-confirming server: every flooded CR costs a CC and a connection in AKWAIT)
or by the CLI's access-list echo server (every flooded CR is rejected with a
DR). Meanwhile a genuine client from another address connects, echoes and
closes ten times; then once more right after the flood. The flood's addresses
are bound to nothing: what the server sends them is lost, as a spoofed
source's replies are.

Checked: the client gets in at least 9 times in 10 during the flood and within
1 s after it, and the server sent every flood address at most 3x the octets it
received from it (``Config.amplification_factor``).
"""

from __future__ import annotations

import io
import random
from collections import defaultdict
from functools import partial

import pytest
import trio
import trio.testing
from netsim import MemoryNetwork

from tp4emu.api import serve
from tp4emu.cli.apps import AccessList, run_server
from tp4emu.core import Config
from tp4emu.transport.udp import TP4Connection, open_udp_endpoint
from tp4emu.wire import CR, AdditionalOptions, CalledTsap, TpduSize, encode_one

SERVER = ("192.0.2.1", 102)
CLIENT = ("198.51.100.20", 40000)
FLOOD_CRS = 10_000
FLOOD_ADDRESSES = [(f"10.{i % 250}.{i // 250}.1", 1024 + i) for i in range(1_000)]
FLOOD_TIME = 5.0
TSAP = b"echo"


def _flood_cr(src_ref: int) -> bytes:
    params = (TpduSize(13), CalledTsap(TSAP), AdditionalOptions(1))
    return encode_one(CR(src_ref=src_ref, credit=15, params=params), checksum=True)


async def _flood(net: MemoryNetwork, done: trio.Event) -> None:
    rng = random.Random(7)
    batch = 20  # 2,000 CRs/s in 10 ms steps
    for i in range(0, FLOOD_CRS, batch):
        for j in range(batch):
            src = FLOOD_ADDRESSES[(i + j) % len(FLOOD_ADDRESSES)]
            net._send(_flood_cr(rng.randrange(1, 0x10000)), src, SERVER)
        await trio.sleep(FLOOD_TIME * batch / FLOOD_CRS)
    done.set()


async def _echo(conn: TP4Connection) -> None:
    async for tsdu in conn:
        await conn.send(tsdu)


async def _attempt(ep, results: list[bool]) -> float:
    """One connect + echo + close, at most 1 s; returns how long it took."""
    start = trio.current_time()
    ok = False
    with trio.move_on_after(1.0):
        try:
            conn = await ep.connect(SERVER, called_tsap=TSAP)
            await conn.send(b"ping")
            ok = await conn.receive() == b"ping"
            await conn.aclose()
        except OSError:
            ok = False
    results.append(ok)
    return trio.current_time() - start


@pytest.mark.parametrize("app", ["serve_auto_confirm", "access_list_rejects"])
async def test_a_genuine_client_gets_in_during_and_right_after_a_cr_flood(
    app: str, autojump_clock: trio.testing.MockClock
) -> None:
    config = Config()
    with trio.fail_after(120):
        async with MemoryNetwork.open(seed=1, record=True) as net:
            server_sock = net.socket(SERVER)
            async with (
                open_udp_endpoint(CLIENT, config=config, socket=net.socket(CLIENT)) as client,
                trio.open_nursery() as nursery,
            ):
                if app == "serve_auto_confirm":
                    nursery.start_soon(_serve_echo, server_sock, config)
                else:  # the CLI's access-list echo server, denying the flood's 10/8
                    access = AccessList.parse([], ["10.0.0.0/8"])
                    nursery.start_soon(
                        partial(
                            run_server,
                            SERVER,
                            tsap=TSAP,
                            access=access,
                            out=io.StringIO(),
                            socket=server_sock,
                        )
                    )
                await trio.sleep(0.1)
                done = trio.Event()
                nursery.start_soon(_flood, net, done)
                during: list[bool] = []
                for _ in range(10):
                    await _attempt(client, during)
                    await trio.sleep(FLOOD_TIME / 10 - 0.05)
                await done.wait()
                after: list[bool] = []
                took = await _attempt(client, after)
                nursery.cancel_scope.cancel()

    assert sum(during) >= 9, during
    assert after == [True] and took < 1.0

    flood = frozenset(FLOOD_ADDRESSES)
    sent: dict[object, int] = defaultdict(int)
    received: dict[object, int] = defaultdict(int)
    for _t, src, dst, raw in net.log:
        if dst in flood:
            sent[dst] += len(raw)
        elif src in flood:
            received[src] += len(raw)
    assert sum(received.values()) == FLOOD_CRS * len(_flood_cr(1))
    ratio = max(sent[a] / received[a] for a in received)
    assert ratio <= config.amplification_factor, ratio


async def _serve_echo(sock: object, config: Config) -> None:
    async with open_udp_endpoint(SERVER, config=config, socket=sock) as ep:  # type: ignore[arg-type]
        await serve(_echo, ep, tsap=TSAP, auto_confirm=True)
