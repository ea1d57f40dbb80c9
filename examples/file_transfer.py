#!/usr/bin/env python3
"""Send a file over TP4 and check its SHA-256 at the far end, optionally through a lossy network.

By default the receiver runs in the same process, on loopback::

    python examples/file_transfer.py some.iso
    python examples/file_transfer.py --size 5000000 --loss 0.1   # random data, 10 % loss

or in two processes::

    python examples/file_transfer.py --listen 127.0.0.1:10300
    python examples/file_transfer.py --connect 127.0.0.1:10300 some.iso

The protocol on top of TP4 is three kinds of TSDU: a header (name, size,
SHA-256 as JSON), the data in chunks, and the receiver's verdict. TP4 keeps
TSDU boundaries, so no framing is needed. ``--loss P`` drops each outgoing UDP
datagram with probability P (seeded): class 4 retransmits, the data still
arrives intact, the transfer only takes longer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sys
from pathlib import Path

import trio
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

import tp4emu

TSAP = b"file"
LOOPBACK = ("127.0.0.1", 0)
HostPort = tuple[str, int]


def progress_bar(enabled: bool) -> Progress:
    """A rich progress bar on stderr (stdout stays for the results)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


async def receive_file(
    listener: tp4emu.TP4Listener, out_dir: Path | None, progress: Progress
) -> bool:
    """Accept one connection, receive one file, verify it. True if the hash matches."""
    conn = await listener.accept()
    header = json.loads(await conn.receive())  # the first receive() confirms
    size, expected = int(header["size"]), str(header["sha256"])
    task = progress.add_task(f"receive {header['name']}", total=size)
    digest = hashlib.sha256()
    sink = open(out_dir / Path(header["name"]).name, "wb") if out_dir else None  # noqa: SIM115
    received = 0
    try:
        while received < size:
            chunk = await conn.receive()  # one whole TSDU, as the sender sent it
            digest.update(chunk)
            if sink:
                sink.write(chunk)
            received += len(chunk)
            progress.update(task, completed=received)
    finally:
        if sink:
            sink.close()
    ok = digest.hexdigest() == expected
    print(f"receiver: {received} octets, sha256 {digest.hexdigest()}: {'OK' if ok else 'MISMATCH'}")
    await conn.send(json.dumps({"sha256": digest.hexdigest(), "ok": ok}).encode())
    with trio.move_on_after(10):  # the sender releases once it has the verdict
        with contextlib.suppress(trio.EndOfChannel):
            await conn.receive()
    await conn.aclose()
    return ok


async def send_file(
    ep: tp4emu.TP4Endpoint,
    peer: HostPort,
    name: str,
    data: bytes,
    args: argparse.Namespace,
    progress: Progress,
) -> bool:
    """Connect, send header and data, wait for the verdict. True if the receiver agreed."""
    sha = hashlib.sha256(data).hexdigest()
    print(f"sender: {name}, {len(data)} octets, sha256 {sha}")
    start = trio.current_time()
    conn = await ep.connect(peer, called_tsap=TSAP)
    await conn.send(json.dumps({"name": name, "size": len(data), "sha256": sha}).encode())
    task = progress.add_task(f"send {name}", total=len(data))
    view = memoryview(data)
    for offset in range(0, len(data), args.chunk):
        # send() returns once the TSDU is queued; it waits while Config.send_buffer is full.
        await conn.send(view[offset : offset + args.chunk])
        progress.update(task, completed=min(offset + args.chunk, len(data)))
    verdict = json.loads(await conn.receive())
    elapsed = trio.current_time() - start
    rate = len(data) / elapsed / 1e6 if elapsed > 0 else float("inf")
    print(f"sender: {len(data)} octets in {elapsed:.2f} s, {rate:.2f} MB/s")
    print(
        f"sender: receiver's sha256 {verdict['sha256']}: {'match' if verdict['ok'] else 'MISMATCH'}"
    )
    await conn.aclose()  # normal release: waits for the last AK, then DR
    with trio.move_on_after(5):  # let the DR be confirmed (DC) before the socket closes
        while conn.state is tp4emu.State.CLOSING:
            await trio.sleep(0.02)
    stats = ep.statistics()
    print(f"sender: {stats.retransmissions} retransmissions, {stats.datagrams_sent} datagrams")
    return bool(verdict["ok"]) and verdict["sha256"] == sha


def lossy_socket(
    local: HostPort, args: argparse.Namespace, rng: random.Random, made: list[tp4emu.LossyUDPSocket]
) -> tp4emu.LossyUDPSocket | None:
    """With --loss, a LossyUDPSocket bound to *local* for open_endpoint(socket=...); else None."""
    if not args.loss:
        return None  # open_endpoint() makes a plain UDP socket itself
    sock = tp4emu.LossyUDPSocket(local, args.loss, rng)
    made.append(sock)
    return sock


def parse_address(text: str) -> HostPort:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def load(args: argparse.Namespace, rng: random.Random) -> tuple[str, bytes]:
    if args.file is not None:
        return args.file.name, args.file.read_bytes()
    return f"random-{args.size}.bin", rng.randbytes(args.size)


async def main_async(args: argparse.Namespace) -> int:
    # open_udp_endpoint() is open_endpoint(transport="tp4") with a precise type (TP4Endpoint);
    # it also takes the socket to use, here a LossyUDPSocket when --loss is set.
    rng = random.Random(args.seed)
    lossy: list[tp4emu.LossyUDPSocket] = []
    with progress_bar(not args.no_progress) as progress, trio.fail_after(args.timeout):
        if args.listen:  # receiver only
            local = parse_address(args.listen)
            sock = lossy_socket(local, args, rng, lossy)
            async with tp4emu.open_udp_endpoint(local, socket=sock) as ep:
                listener = ep.listen(TSAP)
                print("listening {}:{}".format(*ep.getsockname()))
                results = [
                    await receive_file(listener, args.out, progress) for _ in range(args.count)
                ]
            ok = all(results)
        elif args.connect:  # sender only
            name, data = load(args, rng)
            sock = lossy_socket(("0.0.0.0", 0), args, rng, lossy)
            async with tp4emu.open_udp_endpoint(("0.0.0.0", 0), socket=sock) as ep:
                ok = await send_file(ep, parse_address(args.connect), name, data, args, progress)
        else:  # both ends in this process, on loopback
            name, data = load(args, rng)
            received: list[bool] = []
            async with (
                tp4emu.open_udp_endpoint(socket=lossy_socket(LOOPBACK, args, rng, lossy)) as server,
                tp4emu.open_udp_endpoint(socket=lossy_socket(LOOPBACK, args, rng, lossy)) as client,
                trio.open_nursery() as nursery,
            ):
                listener = server.listen(TSAP)

                async def receiver() -> None:
                    received.append(await receive_file(listener, None, progress))

                nursery.start_soon(receiver)
                sent = await send_file(client, server.getsockname(), name, data, args, progress)
            ok = sent and all(received)
    if lossy:
        print(f"network: {sum(s.lost for s in lossy)} datagrams lost (--loss {args.loss})")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", nargs="?", type=Path, help="file to send")
    parser.add_argument("--size", type=int, help="send this many random octets instead of a file")
    parser.add_argument("--listen", metavar="HOST:PORT", help="only receive, on this address")
    parser.add_argument("--connect", metavar="HOST:PORT", help="only send, to this receiver")
    parser.add_argument("--out", type=Path, help="with --listen: save received files here")
    parser.add_argument("--count", type=int, default=1, help="with --listen: files to receive")
    parser.add_argument("--loss", type=float, default=0.0, help="drop outgoing datagrams (0..1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of --loss and --size data")
    parser.add_argument("--chunk", type=int, default=64 * 1024, help="octets per TSDU")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this long")
    args = parser.parse_args()
    if not args.listen and (args.file is None) == (args.size is None):
        parser.error("give a FILE or --size N")
    if not 0 <= args.loss < 1:
        parser.error("--loss must be in [0, 1)")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(trio.run(main_async, args))


if __name__ == "__main__":
    main()
