"""The conformance tester's parts: the case library's shape and coverage map, field
matching, the DSL's timing and verdicts (on a mock clock), the runner's verdicts,
the reports. The runs against real peers are in test_conformance_targets.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing
from rich.console import Console

from tp4emu.conformance import (
    CaseResult,
    Group,
    Settings,
    SuiteResult,
    Target,
    Timers,
    Verdict,
    all_cases,
    parse_target,
    run_suite,
    select,
)
from tp4emu.conformance.coverage import NOT_DRIVABLE, claimed_rows
from tp4emu.conformance.links import Arrival, Recorder, UdpLink, _Queue
from tp4emu.conformance.match import ANY, NONZERO, Bound, Not, OneOf, Pred, Range, mismatches
from tp4emu.conformance.model import CaseInfo, Exchange, PicsItem
from tp4emu.conformance.report import render_console, to_html, to_json, to_junit, to_markdown
from tp4emu.conformance.session import Fail, Inconclusive, Pattern, Session
from tp4emu.conformance.settings import PROFILES, parse_timer
from tp4emu.core import Config
from tp4emu.core.state import TRANSITIONS
from tp4emu.wire import AK, CC, DT, EA, encode_one

ALL = all_cases()
PREFIX = {
    Group.ESTABLISHMENT: ("est", "rsp"),
    Group.DATA: ("data",),
    Group.FLOW: ("flow",),
    Group.EXPEDITED: ("exp",),
    Group.RELEASE: ("rel", "rsp"),
    Group.ERRORS: ("err",),
    Group.INVALID: ("inv",),
    Group.TIMERS: ("tim", "rsp"),
}

# ---------------------------------------------------------------- the library


def test_every_case_is_named_grouped_and_cites_its_clause() -> None:
    names = [c.name for c in ALL]
    assert len(names) == len(set(names))
    assert len(ALL) >= 100
    for c in ALL:
        cls, group, _ = c.name.split(".", 2)
        assert cls == f"c{c.protocol_class}", c.name
        assert group in PREFIX[c.group], c.name
        assert group != "rsp" or c.role == "responder", c.name
        assert c.clause.startswith(("ISO 8073", "RFC 1006")), c.name
        assert c.purpose and c.purpose != c.title, f"{c.name}: the docstring states the purpose"
        assert c.needs <= {"reply", "echo", "ut", "max_tsdu"}, c.name
        if c.protocol_class == 0:
            assert not c.rows and not c.maybe_rows, c.name


def test_class0_cases_cover_what_rfc1006_peers_must_do() -> None:
    """CR/CC parameters, TPDU size negotiation, DT segmentation/EOT, DR/ER, invalid
    TPKTs and TPDUs, in both tester roles."""
    names = {c.name for c in ALL if c.protocol_class == 0}
    for wanted in (
        "c0.est.cr-cc",
        "c0.est.unknown-parameter",
        "c0.est.long-tsaps",  # CR/CC parameters
        "c0.est.size-absent",
        "c0.est.size-128",
        "c0.est.size-8192",  # TPDU size
        "c0.data.segmented",
        "c0.data.segmented-reply",
        "c0.data.dt-too-long",  # DT, EOT
        "c0.rel.dr",
        "c0.err.er",  # DR, ER
        "c0.inv.tpkt-version",
        "c0.inv.tpkt-short",
        "c0.inv.li-too-long",  # invalid input
        "c0.rsp.cr",
    ):
        assert wanted in names


def test_rows_named_by_cases_exist_in_the_table() -> None:
    table = {(s.value, i.value) for s, i in TRANSITIONS}
    for row, cases in claimed_rows(ALL).items():
        assert row in table, f"{cases} name {row}, which is not a row of TRANSITIONS"


def test_every_row_of_the_class4_table_is_claimed_or_explained() -> None:
    """Each (state, input) of TRANSITIONS is driven by some case or listed as not
    drivable, with its reason; the list is short and names only real rows."""
    table = {(s.value, i.value) for s, i in TRANSITIONS}
    claimed = set(claimed_rows(ALL))
    assert set(NOT_DRIVABLE) <= table
    assert not claimed & set(NOT_DRIVABLE)
    assert table - claimed - set(NOT_DRIVABLE) == set()
    assert len(NOT_DRIVABLE) <= 4 and all(len(why) > 40 for why in NOT_DRIVABLE.values())


def test_select_by_name_group_class_and_role() -> None:
    est = select(ALL, ["c4.est.*"])
    assert est and all(c.name.startswith("c4.est.") for c in est)
    timers = select(ALL, ["timers"], protocol_class=0)
    assert timers and all(c.group is Group.TIMERS and c.protocol_class == 0 for c in timers)
    both = select(ALL, ["c4.est.cr-cc,c0.est.cr-cc"])
    assert [c.name for c in both] == ["c4.est.cr-cc", "c0.est.cr-cc"]
    responder = select(ALL, role="responder", protocol_class=4)
    assert responder and all(c.role == "responder" for c in responder)
    assert select(ALL, ["no-such-case"]) == []
    # run order: class 4 first, by group
    orders = [c.group.order for c in select(ALL, protocol_class=4)]
    assert orders == sorted(orders)


def test_parse_target_and_timers() -> None:
    assert parse_target("udp://127.0.0.1:102") == Target("udp", "127.0.0.1", 102)
    assert parse_target("tcp://[::1]:102") == Target("tcp", "::1", 102)
    assert str(Target("tcp", "::1", 102)) == "tcp://[::1]:102"
    for bad in ("127.0.0.1:102", "sctp://h:1", "udp://h", "udp://:1", "udp://h:70000"):
        with pytest.raises(ValueError):
            parse_target(bad)
    timers = parse_timer("T1=0.25", Timers())
    timers = parse_timer("N=5", timers)
    assert timers.retransmit == 0.25 and timers.retransmissions == 5
    assert timers.known() == {"T1": 0.25, "N": 5}
    for bad in ("T9=1", "T1", "T1=x", "W=-1"):
        with pytest.raises(ValueError):
            parse_timer(bad, Timers())


def test_the_tp4emu_profile_is_tp4emus_defaults() -> None:
    cfg, p = Config(), PROFILES["tp4emu"]
    assert (p.retransmit, p.cr_retransmit, p.max_retransmit) == (
        cfg.initial_retransmit_time,
        cfg.cr_retransmit_time,
        cfg.max_retransmit_time,
    )
    assert (p.retransmissions, p.window, p.inactivity, p.freeze) == (
        cfg.max_retransmissions,
        cfg.window_time,
        cfg.inactivity_time,
        cfg.reference_freeze_time,
    )
    assert (p.confirm_timeout, p.give_up_time, p.cr_timeout) == (
        cfg.confirm_timeout,
        cfg.give_up_time,
        cfg.tcp_cr_timeout,
    )


def test_tolerance_is_4ms_or_an_eighth() -> None:
    s = Settings(Target("udp", "h", 1))
    assert s.tol(0.01) == 0.004
    assert s.tol(1.0) == 0.125


# ---------------------------------------------------------------- matching


def test_field_matchers() -> None:
    cc = CC(0x1234, 0x0042, credit=7)
    bound = {"ours": 0x1234}
    assert mismatches(cc, {"dst_ref": Bound("ours"), "src_ref": NONZERO, "credit": 7}, bound) == []
    assert mismatches(cc, {"credit": OneOf(1, Range(5, 9))}, {}) == []
    assert mismatches(cc, {"credit": Not(7)}, {}) == ["credit: got 7, expected not 7"]
    assert mismatches(cc, {"src_ref": Bound("missing")}, {}) == [
        "src_ref: got 66, expected <missing: unbound>"
    ]
    assert mismatches(cc, {"tpdu_size": ANY}, {}) == ["tpdu_size: got None, expected any"]
    assert mismatches(cc, {"nr": 0}, {}) == ["nr: no such field in CC"]
    assert mismatches(DT(1, 0, True, b"abc"), {"data_len": Pred(lambda n: n > 2, "> 2")}, {}) == []
    assert mismatches(cc, {"dst_ref": 0x4321}, {}) == ["dst_ref: got 0x1234, expected 0x4321"]


# ---------------------------------------------------------------- the DSL, on a mock clock

PEER = ("192.0.2.9", 102)


class _Sock:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(data)


class _Port:
    def __init__(self) -> None:
        self.queue = _Queue()
        self.sock = _Sock()
        self.local = ("192.0.2.1", 4000)
        self.recorder = Recorder(None)


def _info(fn: Any = None, **kw: Any) -> CaseInfo:
    async def nothing(s: Session) -> None:
        """Nothing."""

    base: dict[str, Any] = {
        "name": "c4.est.x",
        "title": "t",
        "group": Group.ESTABLISHMENT,
        "clause": "ISO 8073 6.5",
        "protocol_class": 4,
        "role": "initiator",
        "purpose": "p",
        "fn": fn or nothing,
    }
    base.update(kw)
    return CaseInfo(**base)


def _session(**settings: Any) -> tuple[Session, _Port]:
    port = _Port()
    link = UdpLink(port, PEER)  # type: ignore[arg-type]
    s = Session(_info(), Settings(Target("udp", *PEER), **settings), link, our_ref=0x1234)
    return s, port


def _arrive(
    nursery: trio.Nursery,
    port: _Port,
    at: float,
    *tpdus: Any,
    checksum: bool = True,
    raw: bytes | None = None,
) -> None:
    async def later() -> None:
        await trio.sleep_until(at)
        payload = (
            raw if raw is not None else b"".join(encode_one(t, checksum=checksum) for t in tpdus)
        )
        port.queue.put(Arrival(trio.current_time(), "data", payload, PEER))

    nursery.start_soon(later)


async def test_expect_at_a_time_within_the_tolerance(
    autojump_clock: trio.testing.MockClock,
) -> None:
    s, port = _session()
    async with trio.open_nursery() as n:
        start = await s.send(AK(0x42, 0, 15))
        _arrive(n, port, start + 0.55, CC(0x1234, 0x42))
        cc = await s.expect(CC, fields={"dst_ref": s.our_ref}, bind={"ref": "src_ref"}, at=0.5)
        assert cc.src_ref == s["ref"] == 0x42
        assert abs(s.last_at - start - 0.55) < 1e-9
        # too early
        start = await s.send(AK(0x42, 0, 15))
        _arrive(n, port, start + 0.3, CC(0x1234, 0x42))
        with pytest.raises(Fail, match=r"came at 0\.300 s, expected at 0\.500 s ± 62\.5 ms"):
            await s.expect(CC, at=0.5)
        # too late: nothing by 0.5 + 62.5 ms
        start = await s.send(AK(0x42, 0, 15))
        _arrive(n, port, start + 0.6, CC(0x1234, 0x42))
        with pytest.raises(Fail, match=r"no CC  ?at 0\.500 s"):
            await s.expect(CC, at=0.5)
        n.cancel_scope.cancel()
    assert len(port.sock.sent) == 3


async def test_expect_takes_arrivals_in_order(autojump_clock: trio.testing.MockClock) -> None:
    s, port = _session()
    async with trio.open_nursery() as n:
        _arrive(n, port, 0.1, AK(0x1234, 0, 15), DT(0x1234, 0, True, b"x"))
        with pytest.raises(Fail) as info:
            await s.expect(DT)
        assert info.value.expected == "DT"
        assert info.value.observed[0].startswith("AK dst-ref=0x1234")
        # the DT that followed in the same datagram is next; types can be ignored, or skipped
        _arrive(n, port, 0.2, AK(0x1234, 1, 15), EA(0x1234, 0), DT(0x1234, 1, True))
        assert (await s.expect(DT)).nr == 0
        assert (await s.expect(DT, ignore=(AK, EA))).nr == 1
        _arrive(n, port, 0.3, AK(0x1234, 1, 15), DT(0x1234, 2, True))
        assert (await s.expect(DT, skip=True)).nr == 2
        # any order
        _arrive(n, port, 0.4, DT(0x1234, 3, True))
        _arrive(n, port, 0.41, AK(0x1234, 2, 15))
        ak, dt = await s.expect_all([Pattern(AK), Pattern(DT)])
        assert (ak.nr, dt.nr) == (2, 3)
        n.cancel_scope.cancel()


async def test_checksums_are_checked(autojump_clock: trio.testing.MockClock) -> None:
    s, port = _session()
    s.checksum = True
    async with trio.open_nursery() as n:
        _arrive(n, port, 0.1, AK(0x1234, 0, 15), checksum=False)
        with pytest.raises(Fail, match="checksum: absent"):
            await s.expect(AK)
        raw = bytearray(encode_one(AK(0x1234, 0, 15), checksum=True))
        raw[-1] ^= 1
        _arrive(n, port, 0.2, raw=bytes(raw))
        with pytest.raises(Fail, match="checksum: invalid"):
            await s.expect(AK)
        _arrive(n, port, 0.3, raw=b"\x05\x40\x00")
        with pytest.raises(Fail, match="undecodable"):
            await s.expect(AK)
        n.cancel_scope.cancel()


async def test_silence_and_benign_arrivals(autojump_clock: trio.testing.MockClock) -> None:
    s, port = _session(silence=0.5)
    async with trio.open_nursery() as n:
        t0 = trio.current_time()
        await s.expect_silence()
        assert trio.current_time() - t0 == pytest.approx(0.5)
        _arrive(n, port, trio.current_time() + 0.2, AK(0x1234, 0, 15))
        with pytest.raises(Fail, match=r"expected silence for 0\.500 s, got AK.* at 0\.200 s"):
            await s.expect_silence()
        _arrive(n, port, trio.current_time() + 0.2, AK(0x1234, 0, 15))
        await s.expect_silence(ignore=(AK,))
        s.benign = lambda item: isinstance(item.tpdu, AK)
        _arrive(n, port, trio.current_time() + 0.1, AK(0x1234, 0, 15), DT(0x1234, 0, True))
        await s.expect(DT)  # the benign AK passed over
        n.cancel_scope.cancel()


async def test_preamble_and_postamble_verdicts(autojump_clock: trio.testing.MockClock) -> None:
    s, _ = _session(response_time=0.2)
    with pytest.raises(Inconclusive, match="preamble failed: no CC"):
        async with s.preamble():
            await s.expect(CC)
    async with s.postamble():
        await s.expect(CC)
    assert s.notes == ["postamble: no CC within 0.200 s"]
    with pytest.raises(Fail, match="nope"):
        s.fail("nope")


async def test_missing_can_be_inconclusive(autojump_clock: trio.testing.MockClock) -> None:
    s, _ = _session()
    with pytest.raises(Inconclusive, match=r"no CC within 3\.000 s"):
        await s.expect(CC, timeout=3, missing="inconclusive")


# ---------------------------------------------------------------- the runner's verdicts


def _case(name: str, fn: Any, **kw: Any) -> CaseInfo:
    return _info(fn, name=name, **kw)


async def test_runner_verdicts_never_crash_the_run() -> None:
    async def passes(s: Session) -> None:
        s.pics("options", "tested", True)
        s.outcome = "fine"

    async def raises(s: Session) -> None:
        raise ValueError("a bug in the case")

    async def undecided(s: Session) -> None:
        s.inconclusive("cannot tell")

    async def sleeps(s: Session) -> None:
        await trio.sleep(5)

    cases = [
        _case("c4.est.a", passes),
        _case("c4.est.b", raises),
        _case("c4.est.c", undecided),
        _case("c4.est.d", passes, needs=frozenset({"ut"})),
        _case("c4.est.e", sleeps, time_limit=0.05),
    ]
    settings = Settings(Target("udp", "127.0.0.1", 9), timer_limit=0.05)
    with trio.fail_after(10):
        suite = await run_suite(settings, cases)
    got = {r.info.name: (r.verdict, r.reason) for r in suite.results}
    assert got["c4.est.a"] == (Verdict.PASS, "fine")
    assert (
        got["c4.est.b"][0] is Verdict.ERROR
        and "ValueError: a bug in the case" in got["c4.est.b"][1]
    )
    assert got["c4.est.c"] == (Verdict.INCONCLUSIVE, "cannot tell")
    assert got["c4.est.d"][0] is Verdict.SKIPPED and "--upper-tester" in got["c4.est.d"][1]
    assert got["c4.est.e"][0] is Verdict.INCONCLUSIVE and "time limit" in got["c4.est.e"][1]
    assert not suite.ok
    assert [p.case for p in suite.pics] == ["c4.est.a"]


async def test_a_silent_target_fails_the_cases_that_need_an_answer() -> None:
    """Nothing listens at the target: the CR goes unanswered, the case fails."""
    settings = Settings(Target("udp", "127.0.0.1", 9), response_time=0.1)
    with trio.fail_after(10):
        suite = await run_suite(settings, select(ALL, ["c4.est.cr-cc"]))
    [r] = suite.results
    assert r.verdict is Verdict.FAIL and r.reason.startswith("no CC")
    assert r.log[0].direction == "sent" and r.log[0].summary.startswith("CR src-ref=")


# ---------------------------------------------------------------- reports


def _suite() -> SuiteResult:
    info = {c.name: c for c in ALL}
    suite = SuiteResult(
        "udp://127.0.0.1:102",
        "initiator",
        4,
        started=0.0,
        duration=1.5,
        settings={"target": "udp://127.0.0.1:102", "tolerance": "max(4 ms)"},
    )
    log = [Exchange(0.0, "sent", "CR src-ref=0x0001"), Exchange(0.5, "received", "DR <x>")]
    suite.results = [
        CaseResult(info["c4.est.cr-cc"], Verdict.PASS, "CC size 8192", duration=0.1),
        CaseResult(
            info["c4.data.single-dt"],
            Verdict.FAIL,
            "AK nr 2 <bad>",
            expected="AK nr=1",
            observed=["AK nr=2"],
            log=log,
            notes=["a note"],
            duration=0.2,
        ),
        CaseResult(info["c4.exp.ed-ea"], Verdict.INCONCLUSIVE, "no expedited", duration=0.3),
        CaseResult(info["c4.exp.echo"], Verdict.SKIPPED, "needs the upper tester"),
        CaseResult(info["c4.flow.credit-respected"], Verdict.ERROR, "KeyError: 'x'"),
    ]
    suite.pics = [
        PicsItem("options", "expedited data", "yes", "c4.est.cr-cc"),
        PicsItem("options", "expedited data", "no", "c4.exp.ed-ea"),
    ]
    return suite


def test_junit_report() -> None:
    root = ET.fromstring(to_junit(_suite()))
    [ts] = root.findall("testsuite")
    assert (ts.get("tests"), ts.get("failures"), ts.get("errors"), ts.get("skipped")) == (
        "5",
        "1",
        "1",
        "2",
    )
    cases = {tc.get("name"): tc for tc in ts.findall("testcase")}
    failure = cases["c4.data.single-dt"].find("failure")
    assert failure is not None and failure.get("message") == "AK nr 2 <bad>"
    assert "expected: AK nr=1" in (failure.text or "")
    assert cases["c4.exp.ed-ea"].find("skipped") is not None
    assert cases["c4.flow.credit-respected"].find("error") is not None
    assert cases["c4.est.cr-cc"].get("classname") == "conformance.class4.establishment"


def test_json_markdown_html_and_console_reports() -> None:
    suite = _suite()
    doc = json.loads(to_json(suite))
    assert doc["counts"] == {"pass": 1, "fail": 1, "inconclusive": 1, "error": 1, "skipped": 1}
    assert doc["results"][1]["log"][1]["summary"] == "DR <x>"
    assert doc["pics"][0] == {
        "section": "options",
        "item": "expedited data",
        "value": "yes",
        "case": "c4.est.cr-cc",
    }
    md = to_markdown(suite)
    assert "| `c4.data.single-dt` | data transfer |" in md and "**fail**" in md
    assert "## PICS" in md and "| expedited data | yes; no | `c4.est.cr-cc` |" in md
    assert "### `c4.data.single-dt`: fail" in md and "expected: AK nr=1" in md
    page = to_html(suite)
    assert "AK nr 2 &lt;bad&gt;" in page and "<bad>" not in page
    assert page.startswith("<!DOCTYPE html>") and "class='fail'" in page
    console = Console(record=True, width=160, color_system=None)
    render_console(suite, console)
    text = console.export_text()
    assert "c4.data.single-dt" in text and "PICS" in text and "expected: AK nr=1" in text
    assert "1 pass, 1 fail, 1 inconclusive, 1 error, 1 skipped" in text


def _names(cases: Sequence[CaseInfo]) -> list[str]:
    return [c.name for c in cases]
