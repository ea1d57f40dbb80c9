#!/usr/bin/env python3
"""An inetd-style TP4 server that checks each peer against an access list *before* confirming.

This is what deferred confirmation (4.4BSD netiso's SS_ISCONFIRMING) is for:

1. ``accept()`` returns while the connection is CONFIRMING: no CC has been
   sent, the client's ``connect()`` is still waiting;
2. ``getpeername()`` (and the CR's TSAPs and user data) can be read without
   confirming;
3. a denied peer gets a DR (reason and up to 64 octets of data): its
   ``connect()`` fails, it never had a connection; an allowed peer gets a CC,
   here with confirm data, and is served.

    python examples/access_list_server.py --port 10200 --allow 127.0.0.0/8 --deny 127.0.0.2/32
    python examples/access_list_client.py --port 10200 hello             # served
    python examples/access_list_client.py --port 10200 --bind 127.0.0.2  # rejected

Deny wins over allow; with no ``--allow`` everything not denied is allowed.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

import trio

import tp4emu

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Connection = tp4emu.TP4Connection | tp4emu.TCPConnection


def permitted(host: str, allow: list[Network], deny: list[Network]) -> bool:
    """The access list: deny wins; a non-empty allow list admits only its networks."""
    addr = ipaddress.ip_address(host)
    if any(addr in net for net in deny):
        return False
    return not allow or any(addr in net for net in allow)


def show(data: bytes | None) -> str:
    return "-" if data is None else repr(data.decode(errors="replace"))


async def service(conn: Connection, peer: str) -> None:
    """The service inetd would start: here, echo each TSDU until the client releases."""
    try:
        async for tsdu in conn:
            print(f"echo {peer} {show(tsdu)}")
            await conn.send(tsdu)
        print(f"released by {peer}")
    except tp4emu.Disconnected as exc:
        print(f"lost {peer}: {exc}")
    finally:
        await conn.aclose()


async def decide(conn: Connection, args: argparse.Namespace) -> bool:
    """Look at a CONFIRMING connection, then reject it or confirm it. True if confirmed."""
    host, port = conn.getpeername()  # works while CONFIRMING, as in netiso
    peer = f"{host}:{port}"
    # Nothing read here confirms: the CR's fields are just stored on the connection.
    print(
        f"accept {peer} state={conn.state.name} calling={show(conn.calling_tsap)}"
        f" called={show(conn.called_tsap)} data={show(conn.connect_data)}"
    )
    if not permitted(host, args.allow, args.deny):
        reason = tp4emu.DRReason(args.reason)
        # A DR goes out; the client's connect() raises ConnectionRejected(reason, data).
        await conn.reject(reason, args.message.encode())
        print(f"deny {peer}: DR reason {reason.value} ({reason.name}) {args.message!r}")
        return False
    # The CC goes out now, with up to 32 octets of confirm data; the client's
    # connect() returns. (A first send() or receive() would confirm too.)
    await conn.confirm(args.welcome.encode())
    print(f"allow {peer}: confirmed, state={conn.state.name}")
    return True


async def serve(args: argparse.Namespace) -> None:
    async with tp4emu.open_endpoint((args.host, args.port)) as ep:
        listener = ep.listen(args.tsap.encode() if args.tsap else None)  # None: any TSAP
        host, port = ep.getsockname()
        allow = ",".join(map(str, args.allow)) or "any"
        deny = ",".join(map(str, args.deny)) or "none"
        print(f"listening {host}:{port} allow={allow} deny={deny}")
        async with trio.open_nursery() as nursery:
            decided = 0
            while args.count is None or decided < args.count:
                conn = await listener.accept()
                decided += 1
                if await decide(conn, args):
                    nursery.start_soon(service, conn, "{}:{}".format(*conn.getpeername()))
            # Connections still queued (not accepted) get DR reason 2 when the listener closes.
            await listener.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=10200, help="port (0: any free port)")
    parser.add_argument("--tsap", default="echo", help="called TSAP ('' for any)")
    network = ipaddress.ip_network
    parser.add_argument("--allow", type=network, action="append", default=[], metavar="CIDR")
    parser.add_argument("--deny", type=network, action="append", default=[], metavar="CIDR")
    parser.add_argument("--reason", type=int, default=128, help="DR reason for denied peers")
    parser.add_argument("--message", default="not on the access list", help="DR user data")
    parser.add_argument("--welcome", default="welcome", help="CC user data (<= 32 octets)")
    parser.add_argument("--count", type=int, help="exit after deciding on this many connections")
    args = parser.parse_args()
    try:
        tp4emu.DRReason(args.reason)
    except ValueError:
        parser.error(f"--reason: {args.reason} is not a DR reason of ISO 8073")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # lines show at once
    trio.run(serve, args)


if __name__ == "__main__":
    main()
