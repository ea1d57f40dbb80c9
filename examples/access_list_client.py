#!/usr/bin/env python3
"""Client for ``access_list_server.py``: connect from a chosen local address, print the outcome.

    python examples/access_list_client.py --port 10200 hello              # from 127.0.0.1
    python examples/access_list_client.py --port 10200 --bind 127.0.0.2   # from 127.0.0.2

A refused connection never existed for the client: ``connect()`` raises
``ConnectionRejected`` with the DR's reason and data (an OSError with errno
ECONNREFUSED for reasons 2, 135, 136 and ECONNABORTED for the others, as
netiso's). This prints ``rejected: DR reason N (NAME) ...`` and exits 1.
Exit status 2: no answer (timeout).
"""

from __future__ import annotations

import argparse
import errno
import sys

import trio

import tp4emu


async def run(args: argparse.Namespace) -> int:
    # Binding the endpoint to a local address chooses the address the server sees
    # in getpeername(): on Linux every 127.x.y.z is loopback.
    async with tp4emu.open_endpoint((args.bind, 0)) as ep:
        try:
            conn = await ep.connect(
                (args.host, args.port),
                called_tsap=args.tsap.encode(),
                calling_tsap=args.calling.encode(),
                data=args.data.encode(),  # CR user data, <= 32 octets
            )
        except tp4emu.ConnectionRejected as exc:
            name = getattr(exc.reason, "name", "?")
            code = errno.errorcode.get(exc.errno or 0, "?")  # ECONNREFUSED or ECONNABORTED
            data = exc.data.decode(errors="replace")  # the DR's user data
            print(f"rejected: DR reason {int(exc.reason)} ({name}) {code} data={data!r}")
            return 1
        print(f"connected from {args.bind} confirm data={conn.confirm_data.decode()!r}")
        try:
            for word in args.messages:
                await conn.send(word.encode())
                print(f"reply {(await conn.receive()).decode(errors='replace')!r}")
        except (tp4emu.Disconnected, trio.EndOfChannel) as exc:
            print(f"connection lost: {exc!r}")
            return 1
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
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("messages", nargs="*", default=["hello"], help="TSDUs to send")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=10200, help="server port (default: %(default)s)"
    )
    parser.add_argument("--bind", default="127.0.0.1", help="local address, e.g. 127.0.0.2")
    parser.add_argument("--tsap", default="echo", help="called TSAP (default: %(default)s)")
    parser.add_argument("--calling", default="client", help="calling TSAP (default: %(default)s)")
    parser.add_argument("--data", default="", help="connect data sent in the CR")
    parser.add_argument("--timeout", type=float, default=20.0, help="give up after this long")
    args = parser.parse_args()
    sys.exit(trio.run(run_bounded, args))


if __name__ == "__main__":
    main()
