"""Micro-benchmark of the TPDU codec: plain construct, compiled construct, struct fast path.

Run from the repository root::

    .venv/bin/python benchmarks/bench_codec.py            # full run (one to two minutes)
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
* fast: ``fast=True``, the struct-based paths, where the tree has one for the
  shape (every TPDU type, parameters included, since issue 10; before it, only
  TPDUs without parameters other than the checksum); "-" elsewhere.

A second table times the Annex B checksum alone (``verify``) on 64 octets to
64 KiB: the folding reduction of ``tp4emu/wire/checksum.py`` against the
previous one (a big-integer ``% 255**2``, and ``sum()`` from 65521 octets on),
kept below as ``old_fletcher_sums``; the textbook loop at 1 KiB for reference.

Every cell is the best of 5 timeit runs, each run long enough (>= 0.2 s by
default) to dwarf the timer's resolution, divided by the number of calls: µs
per operation. Before timing, the three paths are checked to produce the same
octets and the same TPDUs. The numbers are printed only: nothing asserts them.

To compare with another tree (the "before" of a change), run this script with
``PYTHONPATH`` set to it: ``git archive main | tar -x -C /tmp/before`` then
``PYTHONPATH=/tmp/before .venv/bin/python benchmarks/bench_codec.py``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import platform
import sys
import time
import timeit
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest import mock

import construct

from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    AckTime,
    AdditionalInformation,
    AdditionalOptions,
    AlternativeClasses,
    CalledTsap,
    CallingTsap,
    InactivityTimer,
    PreferredMaxTpduSize,
    TpduSize,
    UnknownParam,
    Version,
    formats,
)
from tp4emu.wire import checksum as ck
from tp4emu.wire import tpdu as codec

REPEAT = 5
KIB = bytes(range(256)) * 4  # 1 KiB of user data
DT_8K = bytes(range(256)) * 32  # 8 KiB, TPDU size 8192: 8183 octets fit with the checksum


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

# What tp4emu sends at set-up (core: connection_params with the preferred size and ack time).
CR_PARAMS = (
    TpduSize(13),
    PreferredMaxTpduSize(511),
    CallingTsap(b"client-tsap"),
    CalledTsap(b"server-tsap"),
    AdditionalOptions(0x01),
    AckTime(200),
)

CASES: list[tuple[str, codec.TPDU, bool]] = [
    ("DT 1 KiB", DT(0x1234, 5, True, KIB), False),
    ("DT 1 KiB +checksum", DT(0x1234, 5, True, KIB), True),
    ("DT 8183 octets +checksum", DT(0x1234, 5, True, DT_8K[:8183]), True),
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
    ("CR as tp4emu sends it +checksum", CR(0x1234, 8, params=CR_PARAMS), True),
    (
        "CR +alt classes, unknown",
        CR(0x1234, 8, params=(*CR_PARAMS, AlternativeClasses((2, 0)), UnknownParam(0x42, b"?"))),
        True,
    ),
    ("CC as tp4emu sends it +checksum", CC(0x4321, 0x1234, 8, params=CR_PARAMS), True),
    (
        "DR +additional info +checksum",
        DR(0x4321, 0x1234, 128, (AdditionalInformation(b"bye"),)),
        True,
    ),
    ("DC +checksum", DC(0x4321, 0x1234), True),
    ("DC +unknown param +checksum", DC(0x4321, 0x1234, (UnknownParam(0x42, b"x"),)), True),
]


def _has_fast_encoder(t: codec.TPDU, use_ck: bool) -> bool:
    """Whether the tree's struct encoder takes *t* (before issue 10, none took parameters)."""
    quick = codec._FAST_ENCODERS.get(type(t))
    if quick is None or (t.params and "_with_params" not in quick.__code__.co_varnames):
        return False
    return bool(quick(t, use_ck) == codec.encode_one(t, checksum=use_ck, fast=False))


def _has_fast_decoder(raw: bytes) -> bool:
    (t,) = codec.decode(raw)
    key = (type(t).__name__, bool(getattr(t, "extended", False)))
    return key in codec._FAST_DECODERS and codec._FAST_DECODERS[key](raw, raw[0]) is not None


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
    assert ck.fletcher_sums(KIB) == textbook_sums(KIB) == old_fletcher_sums(KIB)


Row = tuple[str, float | None, float | None, float | None]


def old_fletcher_sums(data: bytes) -> tuple[int, int]:
    """The Annex B sums as computed before issue 10: one big-integer ``% 255**2``,
    Adler-32 and the CRT below 65521 octets, ``sum()`` from there on."""
    if not data:
        return 0, 0
    big = int.from_bytes(data, "big") % 65025
    if len(data) < 65521:
        s_adler = ((zlib.adler32(data) & 0xFFFF) - 1) % 65521
        s = s_adler + 65521 * (((big - s_adler) * _ADLER_INV) % 255)
    else:
        s = sum(data)
    w = ((big - s) % 65025) // 255
    return s % 255, (w + s) % 255


def old_verify(data: bytes) -> bool:
    """``verify`` as it was: the old sums, both zero."""
    c0, c1 = old_fletcher_sums(data)
    return c0 == 0 and c1 == 0


_ADLER_INV = pow(65521, -1, 255)
SIZES = [("64 B", 64), ("1 KiB", 1024), ("8 KiB", 8192), ("64 KiB", 65536)]


def run_checksum(min_time: float) -> list[tuple[str, float, float]]:
    """verify() and the old sums over 64 B .. 64 KiB: ``(size, old µs, new µs)``."""
    rows = []
    for label, n in SIZES:
        data = (bytes(range(256)) * (n // 256 + 1))[:n]
        assert ck.fletcher_sums(data) == old_fletcher_sums(data)
        old = per_op_us(lambda data=data: old_verify(data), min_time)
        new = per_op_us(lambda data=data: ck.verify(data), min_time)
        rows.append((label, old, new))
    return rows


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
            ("encode", enc, _has_fast_encoder(t, use_ck)),
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


def render_checksum(rows: list[tuple[str, float, float]], textbook: float) -> str:
    head = ("checksum verify (µs/op)", "old % 255**2", "fold", "old/fold")
    body = [(name, _cell(o), _cell(n), _ratio(o, n)) for name, o, n in rows]
    body.append(("1 KiB, textbook loop", _cell(textbook), "", ""))
    return _table(head, body)


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
    textbook = per_op_us(lambda: textbook_sums(KIB), min_time)
    print(render_checksum(run_checksum(min_time), textbook))
    return 0


if __name__ == "__main__":
    sys.exit(main())
