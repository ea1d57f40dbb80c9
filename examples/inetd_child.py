#!/usr/bin/env python3
"""The book's inetd child in Python: getpeername, check an access list, then close or serve.

``tp4emu serve --exec`` accepts a connection (still CONFIRMING: nothing sent
to the client yet), starts this program for it and hands the connection down.
This program never saw accept's address: it asks for it, as the C server
started by inetd does::

    python -m tp4emu serve --listen 127.0.0.1:10200 --framing message \\
        --exec python examples/inetd_child.py --acl examples/inetd.acl
    python -m tp4emu connect 127.0.0.1:10200 hello        # allowed: echoed
    python examples/access_list_client.py --port 10200 --tsap '' --bind 127.0.0.2  # refused

The C server it follows, line for line::

    len = sizeof(peer);
    getpeername(0, (struct sockaddr *) &peer, &len);  /* works while confirming */
    if (!allowed(&peer)) {
        close(0);                                      /* a DR: the client's connect fails */
        exit(1);
    }
    while ((n = read(0, buf, sizeof buf)) > 0)         /* the first read confirms: the CC */
        write(1, buf, n);

The access list (``--acl FILE``) holds lines ``allow CIDR`` and ``deny CIDR``
(``#`` starts a comment); the first line whose network holds the peer
decides, and a peer no line matches is denied.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

import trio

import tp4emu

Rule = tuple[bool, ipaddress.IPv4Network | ipaddress.IPv6Network]


def read_acl(path: Path) -> list[Rule]:
    """The rules of an access-list file, in order."""
    rules: list[Rule] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or words[0] not in ("allow", "deny"):
            raise ValueError(f"{path}:{number}: expected 'allow CIDR' or 'deny CIDR'")
        rules.append((words[0] == "allow", ipaddress.ip_network(words[1], strict=False)))
    return rules


def allowed(rules: list[Rule], host: str) -> bool:
    """The first rule whose network holds *host* decides; none: denied."""
    addr = ipaddress.ip_address(host)
    return next((allow for allow, net in rules if addr in net), False)


async def child(rules: list[Rule], message: bytes) -> int:
    conn = tp4emu.inherited_connection()  # descriptor 0 of the C server
    host, port = conn.getpeername()  # works while CONFIRMING, as in netiso
    if not allowed(rules, host):
        print(f"inetd_child: {host}:{port} denied", file=sys.stderr)  # the super-server logs it
        await conn.reject(tp4emu.DRReason.NORMAL, message)  # close(0): a DR, connect() fails
        return 1
    print(f"inetd_child: {host}:{port} allowed", file=sys.stderr)
    async for tsdu in conn:  # the first receive confirms: the CC goes out now
        await conn.send(tsdu)
    await conn.aclose()  # the client released; so do we
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--acl", type=Path, required=True, help="the access-list file")
    parser.add_argument(
        "--message", default="not on the access list", help="DR user data for denied peers"
    )
    args = parser.parse_args()
    try:
        rules = read_acl(args.acl)
        tp4emu.inherited_connection()  # fails at once outside the super-server
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"inetd_child: {exc}", file=sys.stderr)
        return 2
    return trio.run(child, rules, args.message.encode())


if __name__ == "__main__":
    sys.exit(main())
