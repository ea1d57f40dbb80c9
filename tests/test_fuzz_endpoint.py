"""Fuzzing the sans-IO core: sequences of hostile datagrams, timers and user calls.

1. ``test_endpoint_survives_fuzzed_datagram_sequences`` (hypothesis, bounded
   and derandomized): one :class:`~tp4emu.core.Endpoint` with a listener whose
   user accepts and confirms every connection and sends on and reads from
   every open one, plus an open connection (tests/scripted.py). It is fed
   sequences of datagrams: arbitrary bytes; valid TPDUs from
   tests/strategies.py; valid TPDUs mutated and then re-checksummed, so that
   they pass the checksum check; plausible TPDUs for the connections it has
   (DT/AK/ED/EA/DR/DC/CC with their references, CRs, CRs with long TSAPs);
   addressed to known and unknown references, from the peer and from other
   addresses, with timer runs in between. Checked after every step: nothing
   raises but LocalProtocolError/ValueError for user misuse; every connection
   the endpoint holds has a pending deadline (one without a timer would be held
   forever); no more live connections than ``max_connections``; ``get_timer()``
   is consistent with the connections' deadlines; everything emitted is a
   valid, checksummed TPDU. At the end time runs on with a silent peer and
   every connection must be released.

2. ``test_100k_mutated_datagrams_while_a_transfer_runs``: two endpoints back to
   back over tests/netsim.Link; 100,000 mutations of the transfer's own
   datagrams are injected into the receiver while 200 KB go across. The
   transfer must arrive byte-exact and in order.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import strategies as tst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netsim import Link, establish
from scripted import PEER, PEER_REF, Script, open_as_responder, peer_cr

from tp4emu.core import Config, Connection, LocalProtocolError, State
from tp4emu.wire import (
    AK,
    CC,
    CR,
    DC,
    DR,
    DT,
    EA,
    ED,
    ER,
    TPDU,
    DRReason,
    FlowControlConfirmation,
    ParamCode,
    SubsequenceNumber,
    TPDUCode,
    TPDUError,
    TpduSize,
    checksum_octets,
    decode,
    encode,
    encode_one,
    verify,
)
from tp4emu.wire.formats import FIXED_LENGTH

INF = math.inf
STRANGERS = [("192.0.2.1", 10201), ("192.0.2.66", 10200), ("198.51.100.7", 102)]
"""Other addresses: the peer's host on another port, its /24, another network."""

# ============================================================ wire surgery

_DATA_CODES = frozenset({TPDUCode.CR, TPDUCode.CC, TPDUCode.DR, TPDUCode.DT, TPDUCode.ED})
_CODES = [int(c) for c in TPDUCode]
_SRC_REF_CODES = frozenset({TPDUCode.CR, TPDUCode.CC, TPDUCode.DR, TPDUCode.DC})


def spans(raw: bytes | bytearray) -> list[tuple[int, int, int]]:
    """``(start, header_end, end)`` of each TPDU, walking the LIs as the decoder does.

    A TPDU that carries user data runs to the end of the datagram; the walk
    stops at the first TPDU whose LI is invalid or runs past the end.
    """
    out = []
    off, total = 0, len(raw)
    while off < total:
        li = raw[off]
        hend = off + 1 + li
        if li in (0, 255) or hend > total or off + 1 >= total:
            out.append((off, min(hend, total), total))
            break
        code = raw[off + 1] >> 4
        if code in _DATA_CODES:
            out.append((off, hend, total))
            break
        out.append((off, hend, hend))
        off = hend
    return out


def _fixed_length(raw: bytes | bytearray, start: int) -> int | None:
    li, code = raw[start], raw[start + 1] >> 4
    try:
        name = TPDUCode(code).name
    except ValueError:
        return None
    if name == "DT" and li == 2:
        name = "DT0"
    return FIXED_LENGTH.get((name, bool(li & 1)), FIXED_LENGTH.get((name, False)))


def checksum_position(raw: bytes | bytearray, start: int, hend: int) -> int | None:
    """Offset of the checksum value (X) of the TPDU at *start*, or None.

    Walks the variable part (code, length, value) from the end of the fixed
    part, as the decoder does; the encoder puts 0xC3 first.
    """
    if hend - start < 2:
        return None
    fixed = _fixed_length(raw, start)
    if fixed is None:
        return None
    pos = start + 1 + fixed
    while pos + 2 <= hend:
        code, length = raw[pos], raw[pos + 1]
        if pos + 2 + length > hend:
            return None
        if code == ParamCode.CHECKSUM and length == 2:
            return pos + 2
        pos += 2 + length
    return None


def recompute_checksums(raw: bytes | bytearray) -> bytes:
    """Fill in a valid checksum in every TPDU of *raw* that has a 0xC3 parameter."""
    buf = bytearray(raw)
    for start, hend, end in spans(buf):
        pos = checksum_position(buf, start, hend)
        if pos is None or pos + 2 > end:
            continue
        tpdu = bytearray(buf[start:end])
        rel = pos - start
        tpdu[rel : rel + 2] = b"\x00\x00"
        tpdu[rel : rel + 2] = checksum_octets(tpdu, rel)
        buf[start:end] = tpdu
    return bytes(buf)


def mutate(rng: random.Random, raw: bytes, ops: int) -> bytearray:
    """*raw* with *ops* random mutations: bit flips, octets set, truncations,
    extensions, references, TPDU codes and LIs replaced."""
    buf = bytearray(raw)
    for _ in range(ops):
        kind = rng.randrange(8)
        if not buf:
            buf += rng.randbytes(rng.randint(1, 8))
            continue
        if kind <= 1:  # bit flips
            for _ in range(rng.randint(1, 3)):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif kind == 2:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 3:  # truncation
            del buf[rng.randrange(len(buf)) :]
        elif kind == 4:  # extension: random octets, or zeros (invisible to the sums)
            n = rng.randint(1, 64)
            buf += bytes(n) if rng.random() < 0.2 else rng.randbytes(n)
        else:
            start, hend, _ = rng.choice(spans(buf))
            if kind == 5 and hend - start >= 4:  # a random reference
                code = buf[start + 1] >> 4
                field = (
                    4 if code in _SRC_REF_CODES and hend - start >= 6 and rng.random() < 0.5 else 2
                )
                buf[start + field : start + field + 2] = rng.randrange(0x10000).to_bytes(2, "big")
            elif kind == 6 and hend - start >= 2:  # another TPDU code
                low = buf[start + 1] & 0x0F if rng.random() < 0.7 else rng.randrange(16)
                buf[start + 1] = rng.choice(_CODES) << 4 | low
            else:  # another LI
                buf[start] = rng.randrange(256)
    return buf


def drain_expedited(conn: Connection) -> int:
    """Read every expedited data unit held for the user; how many there were."""
    count = 0
    while conn.receive_expedited() is not None:
        count += 1
    return count


def decoded(raw: bytes) -> list[TPDU] | TPDUError:
    try:
        return decode(raw)
    except TPDUError as exc:
        return exc


# ====================================================== 1. hypothesis fuzz

CONFIG = Config(
    initial_retransmit_time=0.3,
    cr_retransmit_time=0.5,
    max_retransmit_time=2.0,
    max_retransmissions=3,
    window_time=1.5,
    inactivity_time=6.0,
    reference_freeze_time=1.0,
    linger_time=0.5,
    confirm_timeout=3.0,
    receive_window=4,
    send_buffer=4096,
    max_tsdu_size=4096,
    max_expedited_queued=2,
    receive_buffer_budget=8192,
    default_backlog=3,
    max_half_open_per_address=3,
    max_half_open_per_prefix=5,
    max_unvalidated=4,
    unvalidated_freeze_time=0.3,
    max_connections=6,
)
FINAL_SILENCE = 600.0
"""Virtual seconds the peer stays silent at the end: every connection must be gone."""


class MisuseOK(Exception):
    """Marker: a misuse call raised what it documents."""


class Fuzz:
    """One endpoint, its listener's user, and the checks."""

    def __init__(self) -> None:
        self.s = Script(CONFIG)
        self.ep = self.s.endpoint
        self.listener = self.ep.listen(None)
        self.conn, _ = open_as_responder(self.s, self.listener)
        self.mine: list[Connection] = [self.conn]
        self.sent = 0
        self.peer_next: dict[tuple[int, str], int] = {}
        """The fake peer's next DT/ED number per connection, when it plays by the rules."""
        self.suggested: Any = PEER
        """Where the last plausible datagram would come from (its connection's peer)."""
        self.check()

    # ------------------------------------------------------------ inputs

    def deliver(self, raw: bytes, addr: Any) -> None:
        self.ep.receive_datagram(raw, addr, self.s.now)
        self.s.flush()

    def advance(self, by: float) -> None:
        self.s.advance(by=by)
        deadline = self.ep.get_timer()
        assert deadline is None or deadline > self.s.now, (deadline, self.s.now)

    # -------------------------------------------------------------- user

    def legit(self, conn: Connection, fn: Callable[..., object], *args: Any) -> None:
        """A call the connection's state allows: it must not raise at all."""
        before = conn.state
        try:
            fn(*args)
        except Exception as exc:
            raise AssertionError(
                f"{fn.__name__}{args!r} on {conn!r} (was {before.name}) raised {exc!r}"
            ) from exc

    def misuse(self, conn: Connection, fn: Callable[..., object], *args: Any) -> None:
        """A call the user should not make: LocalProtocolError/ValueError, state unchanged."""
        before = conn.state
        try:
            fn(*args)
        except (LocalProtocolError, ValueError):
            assert conn.state is before, f"a refused {fn.__name__} changed {conn!r}"

    def user(self, *, send: bool, expedited: bool, read_expedited: bool) -> None:
        now = self.s.now
        while (conn := self.ep.accept(self.listener)) is not None:
            assert conn.state is State.CONFIRMING, conn
            self.mine.append(conn)
            self.legit(conn, conn.confirm, now)
        for conn in self.mine:
            while conn.receive() is not None:
                pass
            if read_expedited:
                assert drain_expedited(conn) <= CONFIG.max_expedited_queued, conn
            if conn.state not in (State.OPEN, State.AKWAIT):
                continue
            if send and conn.send_buffer_available >= 300:
                self.sent += 1
                self.legit(conn, conn.send, now, bytes([self.sent % 256]) * (self.sent * 37 % 300))
            if expedited and conn.expedited_enabled and conn.expedited_slot_free:
                self.legit(conn, conn.send_expedited, now, b"!")
        self.s.flush()

    def misuse_one(self, which: int, index: int) -> None:
        conn = self.mine[index % len(self.mine)]
        now = self.s.now
        if which == 0:
            self.misuse(conn, conn.confirm, now, bytes(33))
        elif which == 1:
            self.misuse(conn, conn.send_expedited, now, bytes(17))
        elif which == 2:
            self.misuse(conn, conn.disconnect, now, DRReason.NORMAL, bytes(65))
        elif which == 3 and conn.state in (State.CLOSING, State.REFWAIT, State.CLOSED):
            self.misuse(conn, conn.send, now, b"late")
        elif which == 4 and conn.state in (State.CLOSING, State.REFWAIT, State.CLOSED):
            self.misuse(conn, conn.confirm, now)
        self.s.flush()

    def close_one(self, index: int) -> None:
        conn = self.mine[index % len(self.mine)]
        self.legit(conn, conn.disconnect, self.s.now)
        self.s.flush()

    # ------------------------------------------------------------ checks

    def check(self) -> None:
        ep, cfg = self.ep, self.ep.config
        conns = ep.connections
        for conn in conns:
            assert conn.state is not State.CLOSED, f"{conn!r} released but still held"
            assert conn.next_deadline < INF, f"{conn!r} has no timer: it is held forever"
        live = [c for c in conns if c.state is not State.REFWAIT]
        assert len(live) <= cfg.max_connections, conns
        deadline = ep.get_timer()
        earliest = min((c.next_deadline for c in conns), default=INF)
        if earliest < INF:
            assert deadline is not None and deadline <= earliest, (deadline, earliest)
        held = {id(c) for c in conns}
        for conn in self.mine:
            if id(conn) not in held:
                assert conn.state is State.CLOSED, f"{conn!r} dropped by the endpoint"
        for emitted in self.s.take():
            tpdus = decode(emitted.raw)
            assert tpdus and all(t.checksum_ok for t in tpdus), emitted

    def finish(self) -> None:
        """The peer falls silent: every connection must end and release its reference."""
        self.advance(FINAL_SILENCE)
        self.check()
        assert self.ep.connections == [], self.ep.connections
        assert self.ep.get_timer() is None
        for conn in self.mine:
            assert conn.state is State.CLOSED, conn


# --------------------------------------------------------- what to send

ADDRESSES = st.sampled_from([PEER, PEER, PEER, *STRANGERS])
DELAYS = st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.2, 0.6, 1.6, 3.5, 7.0, 30.0])


def _refs(fz: Fuzz) -> st.SearchStrategy[int]:
    """Known references (ours, live or frozen) and unknown ones."""
    known = [c.local_ref for c in fz.ep.connections] or [fz.conn.local_ref]
    return st.one_of(st.sampled_from(known), tst.u16)


def _peer_refs(fz: Fuzz) -> st.SearchStrategy[int]:
    """The peers' references (SRC-REF of what they send), 0, or anything."""
    known = [c.remote_ref for c in fz.ep.connections if c.remote_ref] or [PEER_REF]
    return st.one_of(st.sampled_from(known), st.just(0), tst.u16)


def _addressed(draw: st.DrawFn, fz: Fuzz, tpdu: TPDU) -> TPDU:
    """*tpdu* retargeted at one of our references, with a peer's SRC-REF."""
    changes: dict[str, Any] = {}
    if isinstance(tpdu, CR):
        changes["src_ref"] = draw(_peer_refs(fz))
        if draw(st.booleans()):
            changes["protocol_class"] = 4
        if draw(st.booleans()):
            changes["dst_ref"] = 0
    elif hasattr(tpdu, "dst_ref"):
        changes["dst_ref"] = draw(_refs(fz))
        if isinstance(tpdu, (CC, DR, DC)):
            changes["src_ref"] = draw(_peer_refs(fz))
    return dataclasses.replace(tpdu, **changes) if changes else tpdu  # type: ignore[type-var]


@st.composite
def valid_datagram(draw: st.DrawFn, fz: Fuzz) -> bytes:
    """A datagram of valid TPDUs (tests/strategies.py), addressed to us."""
    tpdus = [_addressed(draw, fz, t) for t in draw(tst.datagrams())]
    checksum = draw(st.sampled_from([True, True, True, False]))
    try:
        return encode(tpdus, checksum=checksum)
    except ValueError:  # a header grew past LI 254 with the checksum: rare
        return b"\x00"


@st.composite
def mutated_datagram(draw: st.DrawFn, fz: Fuzz) -> bytes:
    """A valid datagram mutated, then (usually) re-checksummed so that it passes the check."""
    source = draw(st.one_of(valid_datagram(fz), plausible_datagram(fz)))
    if not source:
        return source
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    buf = mutate(rng, source, draw(st.integers(1, 3)))
    if draw(st.integers(0, 3)):
        return recompute_checksums(buf)
    return bytes(buf)


@st.composite
def plausible_datagram(draw: st.DrawFn, fz: Fuzz) -> bytes:
    """TPDUs that fit the connections the endpoint has: they reach the deep states."""
    conns = fz.ep.connections or [fz.conn]
    conn = draw(st.sampled_from(conns))
    fz.suggested = conn.peer
    ref, peer_ref = conn.local_ref, conn.remote_ref or PEER_REF
    ext = conn.extended
    mod = (1 << 31) if ext else 128
    nr = st.integers(0, 24).map(lambda n: n % mod)
    kind = draw(
        st.sampled_from(["DT", "DT", "AK", "AK", "ED", "EA", "DR", "DC", "CC", "CR", "CR", "ER"])
    )
    tpdu: TPDU
    if kind in ("DT", "ED") and draw(st.booleans()):
        # in sequence, as a well-behaved peer numbers them
        key = (id(conn), kind)
        number = fz.peer_next.get(key, 0)
        fz.peer_next[key] = number + 1
        nr = st.just(number % mod)
    if kind == "DT":
        tpdu = DT(ref, draw(nr), draw(st.booleans()), draw(st.binary(max_size=120)), ext)
    elif kind == "AK":
        params: tuple[Any, ...] = ()
        if draw(st.booleans()):
            params = (SubsequenceNumber(draw(st.integers(0, 3))),)
        if draw(st.booleans()):
            params += (FlowControlConfirmation(draw(nr), draw(st.integers(0, 3)), 4),)
        tpdu = AK(ref, draw(nr), draw(st.integers(0, 15)), ext, params)
    elif kind == "ED":
        tpdu = ED(ref, draw(nr), draw(st.binary(min_size=1, max_size=16)), True, ext)
    elif kind == "EA":
        tpdu = EA(ref, draw(nr), ext)
    elif kind == "DR":
        src = draw(st.sampled_from([peer_ref, peer_ref, 0, peer_ref ^ 1]))
        tpdu = DR(
            ref, src, draw(st.sampled_from([0, 1, 128, 133])), data=draw(st.binary(max_size=8))
        )
    elif kind == "DC":
        tpdu = DC(ref, draw(st.sampled_from([peer_ref, 0])))
    elif kind == "CC":
        tpdu = CC(ref, draw(st.sampled_from([peer_ref, 0])), 4, params=(TpduSize(13),))
    elif kind == "ER":
        tpdu = ER(ref, draw(st.integers(0, 3)))
    else:  # a CR: a new peer reference, a duplicate, or one with long TSAPs
        src = draw(st.one_of(st.sampled_from([PEER_REF, peer_ref]), st.integers(0x0B00, 0x0B0F)))
        fz.suggested = draw(st.sampled_from([PEER, *STRANGERS]))
        if draw(st.booleans()):
            # A CR near the LI limit (254): the CC echoes the TSAPs and may add
            # parameters the CR left out (0xC6), so it may not fit one header.
            options = draw(st.sampled_from([None, 0x01]))
            li = draw(st.sampled_from([200, 240, 250, 251, 252, 253, 254]))
            total = li - (17 if options is None else 20)
            called = draw(st.integers(0, total))
            tpdu = peer_cr(
                src,
                called=b"c" * called,
                calling=b"g" * (total - called),
                additional_options=options,
            )
        else:
            tpdu = peer_cr(src, data=draw(st.binary(max_size=32)))
        try:
            return encode_one(tpdu, checksum=True)
        except ValueError:  # LI over 254
            return encode_one(peer_cr(src), checksum=True)
    return encode_one(tpdu, checksum=draw(st.sampled_from([True, True, True, False])))


@st.composite
def burst(draw: st.DrawFn, fz: Fuzz) -> tuple[list[bytes], Any]:
    """Several EDs or DTs in sequence for one connection, from its peer: they reach
    the limits (unread expedited data, reassembly, receive budget)."""
    conn = draw(st.sampled_from(fz.ep.connections or [fz.conn]))
    kind = draw(st.sampled_from(["ED", "DT"]))
    key = (id(conn), kind)
    mod = (1 << 31) if conn.extended else 128
    out = []
    for _ in range(draw(st.integers(2, 6))):
        number = fz.peer_next.get(key, 0)
        fz.peer_next[key] = number + 1
        if kind == "ED":
            tpdu: TPDU = ED(
                conn.local_ref, number % mod, bytes([number % 256]), True, conn.extended
            )
        else:
            data = bytes([number % 256]) * draw(st.integers(0, 120))
            tpdu = DT(conn.local_ref, number % mod, draw(st.booleans()), data, conn.extended)
        out.append(encode_one(tpdu, checksum=True))
    return out, conn.peer


@st.composite
def raw_datagram(draw: st.DrawFn, fz: Fuzz) -> bytes:
    return draw(st.binary(max_size=200))


STEP = st.sampled_from(
    ["raw", "valid", "valid", "mutated", "mutated", "mutated", "plausible", "plausible",
     "plausible", "burst", "time", "time", "misuse", "close"]
)  # fmt: skip


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_endpoint_survives_fuzzed_datagram_sequences(data: st.DataObject) -> None:
    fz = Fuzz()
    makers = {
        "raw": raw_datagram,
        "valid": valid_datagram,
        "mutated": mutated_datagram,
        "plausible": plausible_datagram,
    }
    for _ in range(data.draw(st.integers(1, 40), label="steps")):
        step = data.draw(STEP, label="step")
        if step in makers:
            raw = data.draw(makers[step](fz), label=step)
            if step == "plausible" and data.draw(st.integers(0, 3), label="its peer"):
                addr = fz.suggested
            else:
                addr = data.draw(ADDRESSES, label="from")
            fz.deliver(raw, addr)
        elif step == "burst":
            datagrams, peer = data.draw(burst(fz), label="burst")
            for raw in datagrams:
                fz.deliver(raw, peer)
                fz.check()
        elif step == "time":
            fz.advance(data.draw(DELAYS, label="advance"))
        elif step == "misuse":
            fz.misuse_one(data.draw(st.integers(0, 4)), data.draw(st.integers(0, 99)))
        else:
            fz.close_one(data.draw(st.integers(0, 99)))
        fz.check()
        fz.user(
            send=data.draw(st.booleans()),
            expedited=data.draw(st.booleans()),
            read_expedited=data.draw(st.integers(0, 3)) == 0,
        )
        fz.check()
    fz.finish()


# ================================= 2. 100,000 mutations during a transfer

INJECTIONS = 100_000
TRANSFER = 200_000
TRANSFER_CONFIG = Config(max_tpdu_size=512, preferred_max_tpdu_size=None, receive_window=4)
A_OTHERS = [("10.0.0.1", 103), ("10.0.0.3", 102), ("192.0.2.7", 40000), ("10.0.0.2", 102)]
"""Other sources: a's host on another port, a's /24, another network, b's own address."""
RECENT = 32
"""Mutations are made of the last datagrams a sent: at most 32 DT numbers old, so
that an exact copy can only be a duplicate, never a new DT after the modulo-128 wrap."""


def _dangerous(
    raw: bytes,
    genuine: list[TPDU],
    live_ref: int,
    peer_ref: int,
    receiver: Connection | None = None,
) -> bool:
    """Whether *raw*, coming from a's address, is indistinguishable from a's own traffic
    and may legitimately change the transfer: a TPDU with a valid checksum addressed
    to b's connection that differs from what a sent and that a correct engine must
    act on (DT: new data; ER: protocol error; DR with a's reference: release; an AK
    acknowledging DTs *receiver* never sent: protocol error), or an undecodable one
    with a valid checksum (answered with ER, which releases a)."""
    tpdus = decoded(raw)
    if isinstance(tpdus, TPDUError):
        rest = raw[tpdus.offset :]
        if len(rest) < 4 or rest[1] >> 4 == TPDUCode.CR:
            return False
        return int.from_bytes(rest[2:4], "big") == live_ref and verify(rest)
    for t in tpdus:
        if t.checksum_ok is not True or isinstance(t, CR) or t in genuine:
            continue
        if getattr(t, "dst_ref", None) != live_ref:
            continue
        if isinstance(t, (DT, ER)) or (isinstance(t, DR) and t.src_ref == peer_ref):
            return True
        if isinstance(t, AK) and receiver is not None and receiver._g_ak_beyond_sent(t, 0.0):
            return True
    return False


def _retyped(rng: random.Random, source: TPDU, peer_ref: int) -> TPDU:
    """Another TPDU type with *source*'s DST-REF: DR/DC/CC with a's, a wrong or no
    SRC-REF, ER, AK, ED, EA."""
    ref = getattr(source, "dst_ref", 0)
    src = rng.choice([0, peer_ref, rng.randrange(1, 0x10000)])
    nr = rng.randrange(128)
    kind = rng.randrange(7)
    if kind == 0:
        return DR(ref, src, rng.choice([0, 128, 133]), data=rng.randbytes(rng.randrange(9)))
    if kind == 1:
        return DC(ref, src)
    if kind == 2:
        return CC(ref, src, rng.randrange(16), params=(TpduSize(9),))
    if kind == 3:
        return ER(ref, rng.randrange(4))
    if kind == 4:
        return AK(ref, nr, rng.randrange(16))
    if kind == 5:
        return ED(ref, nr, rng.randbytes(rng.randint(1, 16)))
    return EA(ref, nr)


def _defuse(rng: random.Random, raw: bytes, live_ref: int) -> bytes:
    """*raw* with every TPDU's DST-REF replaced by a random reference other than *live_ref*."""
    buf = bytearray(raw)
    for start, hend, _ in spans(buf):
        if hend - start >= 4:
            ref = rng.randrange(1, 0x10000)
            buf[start + 2 : start + 4] = (ref if ref != live_ref else ref ^ 1).to_bytes(2, "big")
    return recompute_checksums(buf)


def _transfer(inject: bool, per_step: int = 0) -> dict[str, Any]:
    """Send TSDUs of 200 KB in total from a to b; with *inject*, mutate a's datagrams into b."""
    link = Link(config_a=TRANSFER_CONFIG, config_b=TRANSFER_CONFIG, seed=11)
    client, server, _ = establish(link)
    rng = random.Random(2024)
    sizes = [40_000, 1, 65_000, 33_333, 24_000, 37_666]
    assert sum(sizes) == TRANSFER
    tsdus = [rng.randbytes(n) for n in sizes]
    for tsdu in tsdus:
        client.send(link.now, tsdu)
    received: list[bytes] = []

    def read(now: float) -> None:
        while (tsdu := server.receive()) is not None:
            received.append(tsdu)

    link.hooks.append(read)
    before = link.stats("b")
    recent: deque[bytes] = deque(maxlen=RECENT)
    seen = 0
    injected = rerouted = defused_count = rechecksummed = from_a = retyped = 0
    addr_a = link.addr["a"]
    steps = 0
    while len(received) < len(tsdus):
        assert link.step(until=link.now + 60.0), "the transfer stalled"
        steps += 1
        assert client.state is State.OPEN and server.state is State.OPEN, (client, server)
        log = link.log
        for entry in log[seen:]:
            if entry.kind == "send" and entry.side == "a":
                recent.append(entry.raw)
        seen = len(log)
        if not inject or not recent:
            continue
        for _ in range(min(per_step, INJECTIONS - injected)):
            source = rng.choice(recent)
            if rng.random() < 0.1:  # another TPDU type in the same place
                genuine_tpdus = decoded(source)
                assert isinstance(genuine_tpdus, list)
                other = _retyped(rng, rng.choice(genuine_tpdus), client.local_ref)
                buf = bytearray(encode_one(other, checksum=True))
                buf[-1] ^= 0x55  # invalidated, unless re-checksummed below
                retyped += 1
            else:
                buf = mutate(rng, source, rng.choice((1, 1, 1, 2, 3)))
            if rng.random() < 0.5:
                raw = recompute_checksums(buf)
                rechecksummed += 1
            else:
                raw = bytes(buf)
            addr = addr_a if rng.random() < 0.5 else rng.choice(A_OTHERS)
            if addr == addr_a:
                genuine = decoded(source)
                assert isinstance(genuine, list)
                if _dangerous(raw, genuine, server.local_ref, client.local_ref, server):
                    # Defuse it (every reference made unknown, checksums made valid
                    # again), or let it come from elsewhere.
                    defused = _defuse(rng, raw, server.local_ref)
                    if rng.random() < 0.5 and not _dangerous(
                        defused, genuine, server.local_ref, client.local_ref, server
                    ):
                        raw = defused
                        defused_count += 1
                    else:
                        addr = rng.choice(A_OTHERS)
                        rerouted += 1
                if addr == addr_a:
                    from_a += 1
            link.b.receive_datagram(raw, addr, link.now)
            injected += 1
    return {
        "tsdus": tsdus,
        "received": received,
        "steps": steps,
        "injected": injected,
        "rerouted": rerouted,
        "defused": defused_count,
        "retyped": retyped,
        "expedited_held": drain_expedited(server),
        "rechecksummed": rechecksummed,
        "from_a": from_a,
        "before": before,
        "after": link.stats("b"),
        "client": client,
        "server": server,
        "link": link,
    }


def test_100k_mutated_datagrams_while_a_transfer_runs() -> None:
    # A first run without junk says how many steps the transfer takes, so that the
    # 100,000 injections are spread over its whole length.
    quiet = _transfer(inject=False)
    assert quiet["received"] == quiet["tsdus"]
    per_step = -(-INJECTIONS // max(1, quiet["steps"] * 9 // 10))

    run = _transfer(inject=True, per_step=per_step)
    assert run["injected"] == INJECTIONS, (run["injected"], run["steps"], per_step)
    received, tsdus = run["received"], run["tsdus"]
    assert len(received) == len(tsdus)
    for i, (got, want) in enumerate(zip(received, tsdus, strict=True)):
        assert got == want, f"TSDU {i} differs ({len(got)} octets, {len(want)} expected)"
    assert b"".join(received) == b"".join(tsdus)
    assert run["client"].error is None and run["server"].error is None
    assert run["expedited_held"] <= TRANSFER_CONFIG.max_expedited_queued, run["expedited_held"]

    before, after = run["before"], run["after"]
    junk = {
        name: getattr(after, name) - getattr(before, name)
        for name in (
            "undecodable",
            "bad_checksum",
            "missing_checksum",
            "wrong_peer",
            "unknown_reference",
            "wrong_state",
            "invalid_tpdu",
            "duplicate_dt",
            "duplicate_cr",
            "out_of_window",
        )
    }
    assert sum(junk.values()) > 0, junk
    for name in ("undecodable", "bad_checksum", "wrong_peer", "unknown_reference"):
        assert junk[name] > 0, junk
    # the danger filter only moved a small share of the junk away from a's address
    shares = {
        k: run[k] for k in ("from_a", "rerouted", "defused", "rechecksummed", "retyped", "steps")
    }
    assert run["from_a"] > INJECTIONS * 4 // 10, shares
    assert run["rerouted"] < INJECTIONS // 10, shares
