"""The trio UDP driver under hostile datagrams: maximal and boundary lengths.

A server run by ``tp4emu.serve`` (auto-confirming: every CR it admits costs a
CC at once) on the in-memory network, in virtual time, is sent datagrams at
the edges of every length the codec and the engine check; after each, a
genuine client connects and echoes through the same server, and what the
attacker got back is checked byte for byte.
"""

from __future__ import annotations

import itertools
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netsim import MemoryNetwork
from scripted import with_checksum

from tp4emu.api import serve
from tp4emu.transport.udp import TP4Connection, open_udp_endpoint
from tp4emu.wire import (
    AK,
    CR,
    DR,
    DT,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    DRReason,
    TpduSize,
    decode,
    encode_one,
)

SERVER = ("192.0.2.1", 102)
CLIENT = ("198.51.100.20", 40000)
ATTACKER = ("203.0.113.66", 5000)
TSAP = b"echo"


_refs = itertools.count(0x4242)


def _cr(calling: int, *, options: bool = False, data: bytes = b"") -> bytes:
    """A CR for the server's TSAP from the attacker, each with a SRC-REF of its own.

    Header: 6 + TPDU size 3 + calling (2 + n) + called (2 + 4) + checksum 4 = 21 + n
    (+ 3 with *options*); our CC adds the additional options when they are absent.
    """
    params = [TpduSize(13), CallingTsap(b"c" * calling), CalledTsap(TSAP)]
    if options:
        params.append(AdditionalOptions(1))
    cr = CR(src_ref=next(_refs) % 0xFFFF + 1, credit=15, params=tuple(params), data=data)
    return encode_one(cr, checksum=True)


async def _echo(conn: TP4Connection) -> None:
    async for tsdu in conn:
        await conn.send(tsdu)


async def _run(datagrams: list[bytes]) -> list[bytes]:
    """Send *datagrams* from the attacker, then echo once as a genuine client.

    Returns what the attacker received.
    """
    got: list[bytes] = []
    with trio.fail_after(60):
        async with MemoryNetwork.open(seed=3) as net:
            attacker = net.socket(ATTACKER)
            async with (
                open_udp_endpoint(SERVER, socket=net.socket(SERVER)) as server,
                open_udp_endpoint(CLIENT, socket=net.socket(CLIENT)) as client,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(partial(serve, _echo, server, tsap=TSAP, auto_confirm=True))
                await trio.sleep(0.01)
                for raw in datagrams:
                    attacker.send_nowait(raw, SERVER)
                await trio.sleep(2.0)
                while (item := attacker.recv_nowait()) is not None:
                    got.append(item[0])
                conn = await client.connect(SERVER, called_tsap=TSAP)
                await conn.send(b"still here")
                assert await conn.receive() == b"still here"
                await conn.aclose()
                nursery.cancel_scope.cancel()
    return got


async def test_cr_at_li_254_whose_cc_cannot_fit_gets_dr_138(
    autojump_clock: trio.testing.MockClock,
) -> None:
    raw = _cr(calling=233)
    assert raw[0] == 254
    src_ref = int.from_bytes(raw[4:6], "big")
    (answer,) = await _run([raw])
    assert answer == encode_one(
        DR(src_ref, 0, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID), checksum=True
    )


@pytest.mark.parametrize("options", [False, True], ids=["cc-adds-options", "cr-has-options"])
async def test_cr_whose_cc_is_exactly_254_is_confirmed(
    options: bool, autojump_clock: trio.testing.MockClock
) -> None:
    raw = _cr(calling=230, options=options)
    assert raw[0] == (254 if options else 251)
    got = await _run([raw])
    cc_raw = got[0]
    assert cc_raw[0] == 254 and decode(cc_raw)[0].calling_tsap == b"c" * 230
    # the attacker never answered: what it got stays within 3x what it sent
    assert sum(map(len, got)) <= 3 * len(raw)


async def test_empty_short_and_maximal_datagrams_are_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    junk = [b"", b"\x00", b"\x01\xe0", b"\x02\xe0\x00", b"\xff" * 4, bytes(65507), b"\xfe" * 65507]
    # a valid TPDU repeated to fill a datagram, for a reference nobody has
    ak = encode_one(AK(0x1111, 0, 15), checksum=True)
    junk.append(ak * (65507 // len(ak)))
    dt = encode_one(DT(0x1111, 0, True, bytes(65507 - 9)), checksum=True)
    junk.append(dt)
    assert await _run(junk) == []


async def test_cr_with_maximal_connect_data_and_one_octet_too_many(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ok = _cr(calling=4, options=True, data=bytes(32))
    # one octet more, checksum refilled (our encoder refuses to build it)
    too_long = with_checksum(_cr(calling=4, options=True, data=bytes(32)) + b"\x00", 9)
    got = await _run([ok, too_long])
    tpdus = [decode(raw)[0] for raw in got]
    refs = {int.from_bytes(raw[4:6], "big") for raw in (ok, too_long)}
    ok_ref, long_ref = sorted(refs)
    # the 33-octet one is refused at once, without a connection (a length error: 138)
    assert tpdus[0] == DR(long_ref, 0, DRReason.HEADER_OR_PARAMETER_LENGTH_INVALID)
    # the 32-octet one was admitted and auto-confirmed (then its CC retransmitted)
    assert tpdus[1:] and all(t.dst_ref == ok_ref and type(t).__name__ == "CC" for t in tpdus[1:])


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                _cr,
                st.integers(0, 230),
                options=st.just(False),
                data=st.binary(max_size=40),
            ),
        ),
        max_size=8,
    )
)
def test_any_datagrams_leave_the_server_serving(datagrams: list[bytes]) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    got = trio.run(_run, datagrams, clock=clock)
    sent = sum(map(len, datagrams))
    assert sum(map(len, got)) <= 3 * sent
