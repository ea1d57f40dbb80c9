#!/usr/bin/env python3
"""The smallest tp4emu client: connect, send each argument as one TSDU, print each reply.

    python examples/echo_server.py --port 10200
    python examples/echo_client.py --port 10200 hello world

Exit status: 0 on success, 1 when the server refused (a DR) or the connection
was lost, 2 on timeout.
"""

from __future__ import annotations

import argparse
import errno
import sys

import trio

import tp4emu


async def run(args: argparse.Namespace) -> int:
    # Port 0: the endpoint gets any free local port, like a TCP client's.
    async with tp4emu.open_endpoint((args.bind, 0), transport=args.transport) as ep:
        try:
            # connect() returns once the server confirmed (CC): the connection is OPEN.
            conn = await ep.connect((args.host, args.port), called_tsap=args.tsap.encode())
        except tp4emu.ConnectionRejected as exc:  # the server answered with a DR
            name = getattr(exc.reason, "name", "?")
            code = errno.errorcode.get(exc.errno or 0, "?")  # ECONNREFUSED or ECONNABORTED
            print(f"rejected: DR reason {int(exc.reason)} ({name}) {code}")
            return 1
        print(f"connected to {args.host}:{args.port} state={conn.state.name}")
        try:
            for word in args.messages:
                await conn.send(word.encode())  # one TSDU: it arrives whole, never split
                reply = await conn.receive()
                print(f"reply {reply.decode(errors='replace')!r}")
        except (tp4emu.Disconnected, trio.EndOfChannel) as exc:
            print(f"connection lost: {exc!r}")
            return 1
        # Normal release: waits until the server acknowledged our data, then DR.
        await conn.aclose()
    return 0


async def run_bounded(args: argparse.Namespace) -> int:
    try:
        with trio.fail_after(args.timeout):
            return await run(args)
    except (trio.TooSlowError, TimeoutError) as exc:  # TimeoutError: ConnectionTimedOut
        print(f"timeout: {exc!r}")
        return 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", nargs="*", default=["hello"], help="TSDUs to send")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=10200, help="server port (default: %(default)s)"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="local address to connect from")
    parser.add_argument("--tsap", default="echo", help="called TSAP (default: %(default)s)")
    parser.add_argument("--transport", choices=["tp4", "tcp"], default="tp4")
    parser.add_argument("--timeout", type=float, default=20.0, help="give up after this long")
    args = parser.parse_args()
    sys.exit(trio.run(run_bounded, args))


if __name__ == "__main__":
    main()
