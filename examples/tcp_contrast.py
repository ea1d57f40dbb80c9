#!/usr/bin/env python3
"""One server function over TP4 and over TCP (RFC 1006): what each client sees.

The server accepts, calls ``getpeername()``, takes ``--delay`` seconds to
decide (an access-list lookup, say), then serves 127.0.0.1 and refuses
127.0.0.2. The code is the same for both transports; only the argument of
``open_endpoint(..., transport=...)`` changes. The outcome is not:

* **tp4** -- ``accept()`` returns while CONFIRMING, before anything was sent.
  The allowed client's ``connect()`` returns only *after* the decision (the CC
  goes out then); the denied client's ``connect()`` fails with the DR reason:
  it never had a connection.
* **tcp** -- ``accept()`` returns a connection that is already OPEN: both
  ``connect()`` calls returned *before* the server looked. The denied client
  is cut off after it was connected (it may even have sent data already).

    python examples/tcp_contrast.py --delay 0.3
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import trio

import tp4emu

ALLOWED, DENIED = "127.0.0.1", "127.0.0.2"
Connection = tp4emu.TP4Connection | tp4emu.TCPConnection
Listener = tp4emu.TP4Listener | tp4emu.TCPListener


@dataclass
class Seen:
    """What happened to one client, in seconds since the transport's run started."""

    decided_at: float | None = None  # when the server decided on this client
    returned_at: float | None = None  # when its connect() returned or raised
    connected: bool = False
    outcome: str = ""


def describe(reason: int) -> str:
    """'128 (NORMAL)': a DR reason with its name."""
    return f"{int(reason)} ({getattr(reason, 'name', '?')})"  # a DRReason, or an unknown int


def now(t0: float) -> float:
    return trio.current_time() - t0


async def server(listener: Listener, delay: float, seen: dict[str, Seen], t0: float) -> None:
    """The same function for both transports: accept, look, decide, then serve or refuse."""
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            conn = await listener.accept()
            host, _port = conn.getpeername()
            print(f"  {now(t0) * 1000:6.1f} ms  server: accepted {host}, state {conn.state.name}")
            await trio.sleep(delay)  # "checking the access list"
            seen[host].decided_at = now(t0)
            if host == ALLOWED:
                print(f"  {now(t0) * 1000:6.1f} ms  server: {host} allowed, receiving")
                nursery.start_soon(echo_once, conn)
            else:
                print(f"  {now(t0) * 1000:6.1f} ms  server: {host} denied, reject()")
                await conn.reject()  # TP4: a DR instead of the CC. TCP: a DR, then the close.


async def echo_once(conn: Connection) -> None:
    try:
        await conn.send(await conn.receive())  # TP4: this receive() sends the CC
        await conn.receive()  # wait for the client's release
    except (tp4emu.Disconnected, trio.EndOfChannel):
        pass
    finally:
        await conn.aclose()


async def client(
    address: tuple[str, int], host: str, transport: tp4emu.Transport, seen: Seen, t0: float
) -> None:
    # The client's endpoint is bound to `host`: that is what the server's getpeername() sees.
    async with tp4emu.open_endpoint((host, 0), transport=transport) as ep:
        try:
            conn = await ep.connect(address, called_tsap=b"contrast")
        except tp4emu.ConnectionRejected as exc:
            seen.returned_at = now(t0)
            seen.outcome = f"rejected: DR reason {describe(exc.reason)}"
            print(f"  {seen.returned_at * 1000:6.1f} ms  client {host}: connect() {seen.outcome}")
            return
        seen.returned_at, seen.connected = now(t0), True
        print(f"  {seen.returned_at * 1000:6.1f} ms  client {host}: connect() returned")
        try:
            await conn.send(b"hello")
            seen.outcome = f"echo {(await conn.receive()).decode()!r}"
        except tp4emu.Disconnected as exc:
            seen.outcome = f"then cut off: DR reason {describe(exc.reason)}"
        except (trio.EndOfChannel, trio.BrokenResourceError) as exc:
            seen.outcome = f"then cut off: {type(exc).__name__}"
        print(f"  {now(t0) * 1000:6.1f} ms  client {host}: {seen.outcome}")
        await conn.aclose()


async def run(transport: tp4emu.Transport, delay: float) -> dict[str, Seen]:
    print(f"{transport}:")
    seen = {ALLOWED: Seen(), DENIED: Seen()}
    t0 = trio.current_time()
    async with (
        tp4emu.open_endpoint((ALLOWED, 0), transport=transport) as server_ep,
        trio.open_nursery() as nursery,
    ):
        listener = server_ep.listen(b"contrast")
        nursery.start_soon(server, listener, delay, seen, t0)
        for host in (ALLOWED, DENIED):
            nursery.start_soon(client, server_ep.getsockname(), host, transport, seen[host], t0)
            await trio.sleep(delay / 10)  # the allowed client comes first
    return seen


def summary(transport: tp4emu.Transport, seen: dict[str, Seen]) -> None:
    for host, who in ((ALLOWED, "allowed"), (DENIED, "denied")):
        s = seen[host]
        assert s.returned_at is not None and s.decided_at is not None
        verb = "returned" if s.connected else "failed"
        order = "after" if s.returned_at >= s.decided_at else "before"
        print(
            f"{transport} {who} client: connect() {verb} {order} the server's decision; {s.outcome}"
        )


async def main_async(args: argparse.Namespace) -> None:
    results: dict[tp4emu.Transport, dict[str, Seen]] = {}
    with trio.fail_after(args.timeout):
        for transport in args.transports:
            results[transport] = await run(transport, args.delay)
    print()
    for transport, seen in results.items():
        summary(transport, seen)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=0.3, help="server's time to decide (s)")
    parser.add_argument(
        "--transport",
        dest="transports",
        action="append",
        choices=["tp4", "tcp"],
        help="run only this transport (repeatable; default: both)",
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="give up after this long")
    args = parser.parse_args()
    args.transports = args.transports or ["tp4", "tcp"]
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
