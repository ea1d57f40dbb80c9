#!/usr/bin/env python3
"""The smallest tp4emu server: accept, receive (which confirms), echo until the client releases.

Run it, then talk to it with ``echo_client.py``::

    python examples/echo_server.py --port 10200
    python examples/echo_client.py --port 10200 hello world

``accept()`` returns a connection that is still CONFIRMING: the client's
``connect()`` is waiting and nothing has been sent to it. This server does not
look at the peer; its first ``receive()`` confirms (the CC goes out), so it
behaves like a TCP server. See ``access_list_server.py`` for one that decides.
"""

from __future__ import annotations

import argparse
import sys

import trio

import tp4emu

# open_endpoint() serves both transports; their connections have the same calls.
Connection = tp4emu.TP4Connection | tp4emu.TCPConnection


async def echo(conn: Connection) -> None:
    """Send every TSDU back until the client releases the connection."""
    host, port = conn.getpeername()  # allowed while CONFIRMING, as in netiso
    peer = f"{host}:{port}"
    print(f"accepted {peer} state={conn.state.name}")
    try:
        # Iterating calls receive(); the first one confirms the connection.
        # It ends with trio.EndOfChannel when the client releases normally.
        async for tsdu in conn:
            print(f"echo {peer} {tsdu!r}")
            await conn.send(tsdu)
        print(f"released by {peer}")
    except tp4emu.Disconnected as exc:  # DR with another reason, or a timeout
        print(f"lost {peer}: {exc}")
    finally:
        await conn.aclose()


async def serve(args: argparse.Namespace) -> None:
    """Listen on (host, port) and echo for each connection in its own task."""
    async with tp4emu.open_endpoint((args.host, args.port), transport=args.transport) as ep:
        listener = ep.listen(args.tsap.encode())  # CRs for other TSAPs get DR reason 2
        host, port = ep.getsockname()
        print(f"listening {host}:{port} transport={args.transport} tsap={args.tsap!r}")
        async with trio.open_nursery() as nursery:
            accepted = 0
            while args.count is None or accepted < args.count:
                conn = await listener.accept()
                accepted += 1
                nursery.start_soon(echo, conn)
            await listener.aclose()
        # The nursery waited for the handlers: every connection is released.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=10200, help="port (0: any free port)")
    parser.add_argument(
        "--tsap", default="echo", help="called TSAP to serve (default: %(default)s)"
    )
    parser.add_argument("--transport", choices=["tp4", "tcp"], default="tp4")
    parser.add_argument("--count", type=int, help="exit after serving this many connections")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # lines show at once
    trio.run(serve, args)


if __name__ == "__main__":
    main()
