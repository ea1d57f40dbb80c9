#!/usr/bin/env python3
"""Expedited data: an ED overtakes normal data queued before it.

A sender queues ``--count`` normal TSDUs, then calls ``send_expedited()``, then
sends one more normal TSDU. A slow receiver reads the normal TSDUs one by one
(``--read-delay``) while another task waits in ``receive_expedited()``.

What tp4emu does (ISO 8073 class 4):

* ``send_expedited(data)`` (1..16 octets) sends an ED TPDU at once. An ED is
  not subject to the normal flow-control window, so it gets through even when
  the receiver's window is full of unread TSDUs. The receiver acknowledges it
  with an EA.
* the receiver delivers it through ``receive_expedited()``, a queue of its own,
  independent of the TSDU queue of ``receive()``: it can be read before the
  normal data that was queued earlier.
* only one ED is outstanding at a time, and while it is unacknowledged the
  sender sends **no new DT**: normal data sent after the ED cannot arrive
  before it. (Normal data sent before it still arrives in order.)

A wire tap on the sender's endpoint shows the last point, TPDU by TPDU.

    python examples/expedited.py --count 200
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import trio

import tp4emu
from tp4emu.wire import DT, EA, ED, TPDUError, decode


@dataclass
class SenderTap:
    """Stands where a PcapWriter would (``open_endpoint(pcap=...)``): sees every TPDU.

    Records, in order, the sender's new DTs, its ED and the EA that acknowledges it.
    """

    local: tuple[str, int] | None = None
    events: list[str] = field(default_factory=list)
    _seen: set[tuple[int, bytes]] = field(default_factory=set)

    def write(self, data: bytes, *, src: Any, dst: Any, timestamp: float) -> None:
        try:
            tpdus = decode(data)
        except TPDUError:
            return
        outgoing = src == self.local
        for tpdu in tpdus:
            if outgoing and isinstance(tpdu, DT) and (tpdu.nr, tpdu.data) not in self._seen:
                self._seen.add((tpdu.nr, tpdu.data))  # not a retransmission
                self.events.append("DT")
            elif outgoing and isinstance(tpdu, ED):
                self.events.append("ED")
            elif not outgoing and isinstance(tpdu, EA):
                self.events.append("EA")

    def flush(self) -> None:
        pass


async def receiver(listener: tp4emu.TP4Listener, args: argparse.Namespace) -> None:
    conn = await listener.accept()
    normal: list[bytes] = []  # TSDUs read so far, in order

    async def expedited() -> None:
        urgent = await conn.receive_expedited()  # also confirms, like receive()
        print(
            f"receiver: ED {urgent!r} received after reading {len(normal)} of the"
            f" {args.count} normal TSDUs sent before it"
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(expedited)
        async for tsdu in conn:  # ends when the sender releases (EndOfChannel)
            normal.append(tsdu)
            await trio.sleep(args.read_delay)  # a slow reader: the window stays full
    in_order = normal[:-1] == [b"normal %d" % i + b"." * args.size for i in range(args.count)]
    print(
        f"receiver: read {len(normal)} normal TSDUs, the first {args.count} in order: {in_order};"
        f" last one: {normal[-1][:20]!r}"
    )
    await conn.aclose()


async def sender(address: tuple[str, int], tap: SenderTap, args: argparse.Namespace) -> None:
    async with tp4emu.open_udp_endpoint(pcap=tap) as ep:
        tap.local = ep.getsockname()
        conn = await ep.connect(address, called_tsap=b"ed")
        for i in range(args.count):
            # send() returns once the TSDU is queued (up to Config.send_buffer octets):
            # most of these are still waiting for credit when the ED is sent.
            await conn.send(b"normal %d" % i + b"." * args.size)
        await conn.send_expedited(b"URGENT")
        print(f"sender: queued {args.count} normal TSDUs, then send_expedited(b'URGENT')")
        await conn.send(b"sent after the ED")
        await conn.aclose()  # waits until everything is acknowledged


def report(tap: SenderTap) -> None:
    events = tap.events
    ed, ea = events.index("ED"), events.index("EA")
    before, between, after = (
        part.count("DT") for part in (events[:ed], events[ed:ea], events[ea:])
    )
    # Every DT here is new (retransmissions are not counted). The later TSDU is among `after`.
    print(f"wire (sender): {before} DTs, then the ED; {between} new DTs until its EA arrived;")
    print(f"wire (sender): after the EA, the remaining {after} DTs")


async def main_async(args: argparse.Namespace) -> None:
    tap = SenderTap()
    with trio.fail_after(args.timeout):
        async with tp4emu.open_udp_endpoint() as server_ep, trio.open_nursery() as nursery:
            listener = server_ep.listen(b"ed")
            nursery.start_soon(receiver, listener, args)
            nursery.start_soon(sender, server_ep.getsockname(), tap, args)
    report(tap)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="normal TSDUs sent before the ED")
    parser.add_argument(
        "--size",
        type=int,
        default=1000,
        help="padding octets per normal TSDU (< 8000: one DT each)",
    )
    parser.add_argument("--read-delay", type=float, default=0.002, help="receiver's pause per TSDU")
    parser.add_argument("--timeout", type=float, default=20.0, help="give up after this long")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
