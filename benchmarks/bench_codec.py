"""Micro-benchmark of the TPDU codec: plain construct, compiled construct, struct fast path.

Run from the repository root::

    .venv/bin/python benchmarks/bench_codec.py            # full run (about a minute)
    .venv/bin/python benchmarks/bench_codec.py --quick    # shorter timings, noisier

For each TPDU shape it times ``encode_one`` and ``_decode_one`` (the codec's
full path: construct parse/build *and* the typed dataclass, checksum
included) three ways:

* plain: the construct definitions of ``tp4emu/wire/formats.py`` *without*
  ``.compile()``. The module is executed a second time, as a private copy,
  with ``Construct.compile`` replaced by the identity, so the twin is built by
  the very same ``_tpdu`` calls; its definitions are swapped into the codec's
  ``FORMATS`` table for the duration of the measurement (``fast=False``).
* compiled: the codec as shipped, ``fast=False``.
* fast: ``fast=True``, the struct-based paths, where one exists (DT, AK, EA
  without parameters other than the checksum); "-" elsewhere.

Every cell is the best of 5 timeit runs, each run long enough (>= 0.2 s by
default) to dwarf the timer's resolution, divided by the number of calls: µs
per operation. Before timing, the three paths are checked to produce the same
octets and the same TPDUs. The numbers are printed only: nothing asserts them.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import platform
import sys
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest import mock

import construct

from tp4emu.wire import (
    AK,
    CR,
    DT,
    AckTime,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    InactivityTimer,
    TpduSize,
    Version,
    formats,
)
from tp4emu.wire import checksum as ck
from tp4emu.wire import tpdu as codec

REPEAT = 5
KIB = bytes(range(256)) * 4  # 1 KiB of user data


# ---------------------------------------------------------------- the plain twin


def plain_formats_module() -> ModuleType:
    """A private copy of ``tp4emu.wire.formats`` whose definitions are not compiled."""
    spec = importlib.util.find_spec("tp4emu.wire.formats")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)  # not registered in sys.modules
    with mock.patch.object(construct.Construct, "compile", lambda self, *a, **k: self):
        spec.loader.exec_module(module)
    return module


@contextmanager
def using_formats(table: dict[tuple[str, bool], Any]) -> Iterator[None]:
    """Swap *table*'s definitions into the codec's ``FORMATS`` for a while."""
    live = formats.FORMATS  # the very dict the codec reads (tpdu.FORMATS)
    saved = dict(live)
    live.update(table)
    try:
        yield
    finally:
        live.clear()
        live.update(saved)


# ---------------------------------------------------------------- timing


def per_op_us(fn: Callable[[], object], min_time: float, repeat: int = REPEAT) -> float:
    """Best of *repeat* timeit runs of *fn*, in µs per call."""
    timer = timeit.Timer(fn)
    number = 1
    while True:  # like Timer.autorange, with a configurable target
        if timer.timeit(number) >= min_time:
            break
        number *= 2 if number < 8 else 4
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def textbook_sums(data: bytes) -> tuple[int, int]:
    """The Annex B loop, octet by octet (the reference the fast sums replace)."""
    c0 = c1 = 0
    for octet in data:
        c0 = (c0 + octet) % 255
        c1 = (c1 + c0) % 255
    return c0, c1


# ---------------------------------------------------------------- cases

CASES: list[tuple[str, codec.TPDU, bool]] = [
    ("DT 1 KiB", DT(0x1234, 5, True, KIB), False),
    ("DT 1 KiB +checksum", DT(0x1234, 5, True, KIB), True),
    ("AK", AK(0x1234, 5, 8), False),
    ("AK +checksum", AK(0x1234, 5, 8), True),
    (
        "CR TSAPs+params +checksum",
        CR(
            0x1234,
            8,
            params=(
                TpduSize(10),
                CallingTsap(b"client-tsap"),
                CalledTsap(b"server-tsap"),
                Version(1),
                AdditionalOptions(0x01),
                AckTime(200),
                InactivityTimer(180_000),
            ),
            data=b"hello",
        ),
        True,
    ),
]


def _has_fast_encoder(t: codec.TPDU) -> bool:
    return type(t) in codec._FAST_ENCODERS and not t.params


def _has_fast_decoder(raw: bytes) -> bool:
    (t,) = codec.decode(raw)
    name = type(t).__name__
    return (name, bool(getattr(t, "extended", False))) in codec._FAST_DECODERS and not t.params


def check_paths_agree(plain: dict[tuple[str, bool], Any]) -> None:
    """The three paths give the same octets and the same TPDUs (checksum verdict too)."""
    for label, t, use_ck in CASES:
        raw = codec.encode_one(t, checksum=use_ck, fast=False)
        decoded = codec._decode_one(raw, 0, None, fast=False)
        with using_formats(plain):
            assert codec.encode_one(t, checksum=use_ck, fast=False) == raw, label
            assert codec._decode_one(raw, 0, None, fast=False) == decoded, label
        assert codec.encode_one(t, checksum=use_ck, fast=True) == raw, label
        fast = codec._decode_one(raw, 0, None, fast=True)
        assert fast == decoded, label
        assert fast[0].checksum_ok == decoded[0].checksum_ok == (True if use_ck else None), label
    assert ck.fletcher_sums(KIB) == textbook_sums(KIB)


Row = tuple[str, float | None, float | None, float | None]


def run_checksum(min_time: float) -> list[tuple[str, float]]:
    """The Annex B checksum alone, over 1 KiB."""
    return [
        ("verify (big-int sums)", per_op_us(lambda: ck.verify(KIB), min_time)),
        ("compute octets (big-int sums)", per_op_us(lambda: ck.checksum_octets(KIB, 10), min_time)),
        ("textbook loop (reference)", per_op_us(lambda: textbook_sums(KIB), min_time)),
    ]


def run(min_time: float) -> list[Row]:
    plain = plain_formats_module().FORMATS
    assert all(type(c).__name__ != "Compiled" for c in plain.values())
    assert all(type(c).__name__ == "Compiled" for c in formats.FORMATS.values())
    check_paths_agree(plain)

    rows: list[Row] = []
    for label, t, use_ck in CASES:
        raw = codec.encode_one(t, checksum=use_ck)

        def enc(fast: bool, t: codec.TPDU = t, use_ck: bool = use_ck) -> bytes:
            return codec.encode_one(t, checksum=use_ck, fast=fast)

        def dec(fast: bool, raw: bytes = raw) -> object:
            return codec._decode_one(raw, 0, None, fast=fast)

        for op, fn, has_fast in (
            ("encode", enc, _has_fast_encoder(t)),
            ("decode", dec, _has_fast_decoder(raw)),
        ):
            slow = functools.partial(fn, False)
            with using_formats(plain):
                t_plain = per_op_us(slow, min_time)
            t_compiled = per_op_us(slow, min_time)
            t_fast = per_op_us(functools.partial(fn, True), min_time) if has_fast else None
            rows.append((f"{op:6} {label}", t_plain, t_compiled, t_fast))

    return rows


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.1f}x"


def render(rows: list[Row]) -> str:
    head = ("operation (µs/op, best of 5)", "plain", "compiled", "fast", "plain/comp", "comp/fast")
    body = [
        (name, _cell(p), _cell(c), _cell(f), _ratio(p, c), _ratio(c, f)) for name, p, c, f in rows
    ]
    return _table(head, body)


def render_checksum(rows: list[tuple[str, float]]) -> str:
    return _table(("checksum over 1 KiB", "µs/op"), [(name, _cell(v)) for name, v in rows])


def _table(head: tuple[str, ...], body: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = []
    for i, r in enumerate([head, *body]):
        cells = [r[0].ljust(widths[0])] + [r[j].rjust(widths[j]) for j in range(1, len(r))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="time each run for 0.02 s instead of 0.2 s"
    )
    parser.add_argument(
        "--min-time", type=float, default=None, help="seconds per timed run (default 0.2)"
    )
    args = parser.parse_args(argv)
    min_time = args.min_time if args.min_time is not None else (0.02 if args.quick else 0.2)
    print(
        f"tp4emu codec benchmark: Python {platform.python_version()} "
        f"({platform.python_implementation()}), construct {construct.__version__}, "
        f"{platform.machine()} {platform.system()}, {time.strftime('%Y-%m-%d')}"
    )
    print(f"each cell: best of {REPEAT} runs of >= {min_time} s; the three paths agree.\n")
    print(render(run(min_time)))
    print()
    print(render_checksum(run_checksum(min_time)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
