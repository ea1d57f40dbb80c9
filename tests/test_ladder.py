"""Ladder diagrams: labels, retransmission marks, inferred states, Mermaid, SVG, the command."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio

from tp4emu.capture import LINKTYPE_IPV4, PcapWriter, ipv4_udp_packet
from tp4emu.capture.ladder import (
    Ladder,
    LadderBuilder,
    Message,
    Note,
    Participant,
    ladder_from_pcap,
    summarize,
    to_mermaid,
    to_svg,
)
from tp4emu.cli import main
from tp4emu.cli.demo import run_demo
from tp4emu.cli.ladder import DemoRecorder, demo_ladders, render_ladder
from tp4emu.cli.replay import replay_ladders
from tp4emu.wire import AK, CC, CR, DC, DR, DT, DT0, EA, ED, ER, RJ, encode_one
from tp4emu.wire.tpkt import encode_tpkt

SVG = "{http://www.w3.org/2000/svg}"
A = ("10.0.0.1", 40000)
S = ("10.0.0.2", 10200)
T0 = 1700000000.0


def _raw(tpdu: object) -> bytes:
    return encode_one(tpdu, checksum=True)  # type: ignore[arg-type]


CR_A = _raw(CR(src_ref=0x1234, credit=15, protocol_class=4))
CC_S = _raw(CC(dst_ref=0x1234, src_ref=0x5678, credit=15, protocol_class=4))
AK_A = _raw(AK(dst_ref=0x5678, nr=0, credit=15))
DT_A = _raw(DT(dst_ref=0x5678, nr=0, eot=True, data=b"hello"))
AK_S = _raw(AK(dst_ref=0x1234, nr=1, credit=15))
DR_A = _raw(DR(dst_ref=0x5678, src_ref=0x1234, reason=128))
DC_S = _raw(DC(dst_ref=0x1234, src_ref=0x5678))

# A capture taken at the client: its CR retransmitted (the server was deciding), its DT
# lost (so never acknowledged) and sent again after T1.
EXCHANGE = [
    (0.000, A, S, CR_A),
    (0.250, A, S, CR_A),
    (0.300, S, A, CC_S),
    (0.301, A, S, AK_A),
    (0.302, A, S, DT_A),
    (0.452, A, S, DT_A),
    (0.453, S, A, AK_S),
    (0.500, A, S, DR_A),
    (0.501, S, A, DC_S),
]

EXPECTED_MERMAID = """\
sequenceDiagram
    %% exchange.pcap
    participant P0 as 10.0.0.1:40000
    participant P1 as server 10.0.0.2:10200
    P0->>P1: [0.0 ms] CR ref=0x1234 cdt=15
    Note over P0: WFCC
    Note over P1: CONFIRMING
    rect rgb(255, 228, 225)
        P0-->>P1: [250.0 ms] CR ref=0x1234 cdt=15 (retransmission)
    end
    P1->>P0: [300.0 ms] CC ref=0x5678 dst=0x1234 cdt=15
    Note over P1: AKWAIT
    P0->>P1: [301.0 ms] AK nr=0 cdt=15
    Note over P0: OPEN
    P0->>P1: [302.0 ms] DT nr=0 EOT
    rect rgb(255, 228, 225)
        P0-->>P1: [452.0 ms] DT nr=0 EOT (retransmission)
    end
    P1->>P0: [453.0 ms] AK nr=1 cdt=15
    Note over P1: OPEN
    P0->>P1: [500.0 ms] DR reason 128
    Note over P0: CLOSING
    P1->>P0: [501.0 ms] DC
    Note over P1: REFWAIT
"""


def _write_exchange(path: Path, *, linktype: int | None = None) -> Path:
    kw = {} if linktype is None else {"linktype": linktype}
    with PcapWriter(path, **kw) as pcap:
        for t, src, dst, raw in EXCHANGE:
            pcap.write(raw, src=src, dst=dst, timestamp=T0 + t)
    return path


@pytest.fixture
def exchange(tmp_path: Path) -> Path:
    return _write_exchange(tmp_path / "exchange.pcap")


# ---------------------------------------------------------------- labels


def test_summaries() -> None:
    assert summarize(CR(src_ref=0x1234, credit=15)) == "CR ref=0x1234 cdt=15"
    assert summarize(CR(src_ref=1, protocol_class=0)) == "CR ref=0x0001 class 0"
    assert summarize(CR(src_ref=1, credit=2, protocol_class=2)) == "CR ref=0x0001 cdt=2 class 2"
    assert summarize(CC(dst_ref=0x1234, src_ref=0x5678, credit=15)) == (
        "CC ref=0x5678 dst=0x1234 cdt=15"
    )
    assert summarize(DT(dst_ref=1, nr=3, eot=True)) == "DT nr=3 EOT"
    assert summarize(DT(dst_ref=1, nr=3, eot=False)) == "DT nr=3"
    assert summarize(DT0(eot=True)) == "DT EOT"
    assert summarize(AK(dst_ref=1, nr=4, credit=15)) == "AK nr=4 cdt=15"
    assert summarize(RJ(dst_ref=1, nr=4, credit=2)) == "RJ nr=4 cdt=2"
    assert summarize(DR(dst_ref=1, src_ref=2, reason=0)) == "DR reason 0"
    assert summarize(DC(dst_ref=1, src_ref=2)) == "DC"
    assert summarize(ED(dst_ref=1, nr=5)) == "ED nr=5"
    assert summarize(EA(dst_ref=1, nr=6)) == "EA nr=6"
    assert summarize(ER(dst_ref=1, cause=2)) == "ER cause 2"


def test_concatenated_and_undecodable_datagrams() -> None:
    b = LadderBuilder()
    m = b.datagram(0.0, A, S, AK_S + DT_A)
    assert m.parts == ("AK nr=1 cdt=15", "DT nr=0 EOT")
    assert m.label == "AK nr=1 cdt=15 + DT nr=0 EOT"
    bad = b.datagram(0.1, A, S, AK_S + b"\x05\x99")
    assert bad.parts[0] == "AK nr=1 cdt=15"
    assert bad.parts[1].startswith("undecodable (2 octets: ")
    assert b.datagram(0.2, A, S, b"").parts == ("empty",)


# ---------------------------------------------------------------- retransmissions


def test_a_retransmitted_cr_and_a_lost_dt(exchange: Path) -> None:
    ladder = ladder_from_pcap(exchange, title="exchange.pcap", names={S: "server"})
    assert ladder.participants == (
        Participant("10.0.0.1:40000", ""),
        Participant("server", "10.0.0.2:10200"),
    )
    assert [(m.label, m.retransmission) for m in ladder.messages()] == [
        ("CR ref=0x1234 cdt=15", False),
        ("CR ref=0x1234 cdt=15 (retransmission)", True),
        ("CC ref=0x5678 dst=0x1234 cdt=15", False),
        ("AK nr=0 cdt=15", False),
        ("DT nr=0 EOT", False),
        ("DT nr=0 EOT (retransmission)", True),
        ("AK nr=1 cdt=15", False),
        ("DR reason 128", False),
        ("DC", False),
    ]
    assert to_mermaid(ladder) == EXPECTED_MERMAID


def test_the_svg_marks_them_and_is_well_formed(exchange: Path) -> None:
    svg = to_svg(ladder_from_pcap(exchange))
    root = ET.fromstring(svg.encode())
    assert root.tag == f"{SVG}svg"
    groups = [g for g in root.iter(f"{SVG}g") if "msg" in g.get("class", "").split()]
    retransmitted = [g for g in groups if "retransmission" in g.get("class", "").split()]
    labels = [g.find(f"{SVG}text") for g in retransmitted]
    # the two arrows, and the legend's sample
    assert [t.text for t in labels if t is not None] == [
        "CR ref=0x1234 cdt=15 (retransmission)",
        "DT nr=0 EOT (retransmission)",
    ]
    assert len(retransmitted) == 3
    for g in retransmitted[:2]:
        line = g.find(f"{SVG}line")
        assert line is not None and line.get("marker-end") == "url(#arrow-red)"
    times = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "time"]
    assert times[:3] == ["0.0 ms", "250.0 ms", "300.0 ms"]
    states = [
        g.find(f"{SVG}text").text  # type: ignore[union-attr]
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "state" and g.find(f"{SVG}rect") is not None
    ]
    assert states[:4] == ["WFCC", "CONFIRMING", "AKWAIT", "OPEN"]


def test_a_plain_ipv4_udp_capture_gives_the_same_ladder(tmp_path: Path, exchange: Path) -> None:
    plain = _write_exchange(tmp_path / "plain.pcap", linktype=LINKTYPE_IPV4)
    assert ladder_from_pcap(plain, title="t") == ladder_from_pcap(exchange, title="t")
    assert ladder_from_pcap(plain, title="t", udp_ports=[9999]).messages() == []


def test_retransmission_horizons() -> None:
    b = LadderBuilder(infer_states=False)
    marks = []
    for nr in [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]:  # the first AK again after 9 others: new
        marks.append(b.datagram(0.0, A, S, _raw(AK(dst_ref=7, nr=nr, credit=15))).retransmission)
    assert marks == [False] * 10
    again = b.datagram(0.0, A, S, _raw(AK(dst_ref=7, nr=1, credit=15)))
    assert again.retransmission  # right after its last copy
    # the same octets from the other side, or to another address, are not a resend
    assert not b.datagram(0.0, S, A, _raw(AK(dst_ref=7, nr=1, credit=15))).retransmission
    assert not b.datagram(0.0, A, ("10.0.0.3", 1), _raw(AK(7, 1, 15))).retransmission
    # DTs: with 126 others in between it is a resend; after 127 (numbers 1..127) the
    # next new DT has number 0 again, so equal octets may be new data: not marked
    first = _raw(DT(dst_ref=9, nr=0, data=b"x"))
    b.datagram(0.0, A, S, first)
    for i in range(1, 127):
        b.datagram(0.0, A, S, _raw(DT(dst_ref=9, nr=i, data=b"x")))
    assert b.datagram(0.0, A, S, first).retransmission
    for i in range(1, 128):
        b.datagram(0.0, A, S, _raw(DT(dst_ref=9, nr=i, data=b"x")))
    assert not b.datagram(0.0, A, S, first).retransmission


def test_nothing_is_marked_over_tcp() -> None:
    b = LadderBuilder()
    dt = _raw(DT0(data=b"same"))
    assert not b.datagram(0.0, A, S, dt, transport="tcp").retransmission
    assert not b.datagram(0.1, A, S, dt, transport="tcp").retransmission


def test_a_rfc1006_capture_is_reassembled(tmp_path: Path) -> None:
    c, s = ("10.1.1.1", 49152), ("10.1.1.2", 102)
    cr = _raw(CR(src_ref=1, protocol_class=0))
    cc = _raw(CC(dst_ref=1, src_ref=1, protocol_class=0))
    dt = _raw(DT0(data=b"hello"))
    up = encode_tpkt(cr) + encode_tpkt(dt)

    def tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, flags: int, data: bytes) -> bytes:
        seg = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, 0, 5 << 4, flags, 65535, 0, 0)
        ip = bytearray(ipv4_udp_packet(src, dst, b"")[:20])
        ip[2:4] = (20 + len(seg) + len(data)).to_bytes(2, "big")
        ip[9] = 6
        return bytes(ip) + seg + data

    path = tmp_path / "rfc1006.pcap"
    with PcapWriter(path, linktype=LINKTYPE_IPV4) as pcap:
        for i, packet in enumerate(
            [
                tcp(c, s, 100, 0x02, b""),  # SYN
                tcp(s, c, 500, 0x12, b""),  # SYN, ACK
                tcp(c, s, 101, 0x18, up[:7]),  # the CR, cut in two segments
                tcp(c, s, 108, 0x18, up[7 : len(encode_tpkt(cr))]),
                tcp(s, c, 501, 0x18, encode_tpkt(cc)),
                tcp(c, s, 101 + len(encode_tpkt(cr)), 0x18, up[len(encode_tpkt(cr)) :]),
            ]
        ):
            pcap.write_packet(packet, timestamp=T0 + i / 1000)
    ladder = ladder_from_pcap(path)
    assert [(m.src, m.dst, m.label) for m in ladder.messages()] == [
        ("10.1.1.1:49152", "10.1.1.2:102", "CR ref=0x0001 class 0"),
        ("10.1.1.2:102", "10.1.1.1:49152", "CC ref=0x0001 dst=0x0001 class 0"),
        ("10.1.1.1:49152", "10.1.1.2:102", "DT EOT"),
    ]
    assert [(n.at, n.text) for n in ladder.notes("state")] == [
        ("10.1.1.1:49152", "WFCC"),
        ("10.1.1.2:102", "CONFIRMING"),
        ("10.1.1.2:102", "OPEN"),
        ("10.1.1.1:49152", "OPEN"),
    ]


# ---------------------------------------------------------------- the renderers


def test_mermaid_escapes_and_marks() -> None:
    ladder = Ladder(
        "t",
        (Participant("a"), Participant("b", "1.2.3.4:5")),
        (
            Note(0.0, "a", "x; y #1 <z>"),
            Message(0.001, "a", "b", ("DT nr=0",), (False,), lost=True),
            Message(0.002, "b", "a", ("DT nr=0",), (True,), lost=True),
            Message(0.003, "a", "b", ("TCP SYN",), kind="tcp"),
            Note(0.003, "b", "OPEN", "state"),
            Note(0.004, "b", "CLOSED", "state"),
        ),
    )
    assert to_mermaid(ladder).splitlines()[1:] == [
        "    %% t",
        "    participant P0 as a",
        "    participant P1 as b 1.2.3.4:5",
        "    Note over P0: [0.0 ms] x#59; y #35;1 #60;z#62;",
        "    P0-xP1: [1.0 ms] DT nr=0 (lost)",
        "    rect rgb(255, 228, 225)",
        "        P1--xP0: [2.0 ms] DT nr=0 (retransmission) (lost)",
        "    end",
        "    P0-->>P1: [3.0 ms] TCP SYN",
        "    Note over P1: OPEN",
        "    Note over P1: [4.0 ms] CLOSED",
    ]
    root = ET.fromstring(to_svg(ladder).encode())
    lost = [g for g in root.iter(f"{SVG}g") if "lost" in g.get("class", "").split()]
    assert len(lost) == 3  # two arrows and the legend
    assert all(g.find(f"{SVG}path") is not None for g in lost)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "x; y #1 <z>" in texts  # escaped by the XML writer, read back as it was


def test_markdown_format() -> None:
    ladder = Ladder("Title", (Participant("a"),), (Note(0.0, "a", "hi"),))
    assert render_ladder(ladder, "markdown") == (
        "# Title\n\n```mermaid\nsequenceDiagram\n    %% Title\n    participant P0 as a\n"
        "    Note over P0: [0.0 ms] hi\n```\n"
    )


def test_states_name_the_peer_when_there_are_several() -> None:
    b = LadderBuilder(infer_states=False, origin=0.0)
    b.state(0.0, S, "CONFIRMING", peer=A)
    b.state(0.1, S, "CONFIRMING", peer=A)  # unchanged: not noted again
    b.state(0.2, S, "CONFIRMING", peer=("10.0.0.3", 1))
    b.state(0.3, A, "WFCC", peer=S)
    b.state(0.4, A, "CLOSED", peer=S)
    assert [(n.time, n.at, n.text) for n in b.ladder().notes()] == [
        (0.0, "10.0.0.2:10200", "CONFIRMING (10.0.0.1:40000)"),
        (0.2, "10.0.0.2:10200", "CONFIRMING (10.0.0.3:1)"),
        (0.3, "10.0.0.1:40000", "WFCC"),
        (0.4, "10.0.0.1:40000", "CLOSED"),
    ]


# ---------------------------------------------------------------- the demo's story


def test_the_replay_is_deterministic_and_tells_the_story() -> None:
    first, second = replay_ladders(), replay_ladders()
    assert first == second
    tp4, tcp = first["tp4"], first["tcp"]
    for ladder in (tp4, tcp):
        ET.fromstring(to_svg(ladder).encode())
    sent = [(m.src, m.dst, m.parts[0].split()[0]) for m in tp4.messages()]
    # TP4: B gets a DR and never a CC; A's CC comes only after the server decided
    assert ("server", "client B", "DR") in sent
    assert not any(d == "client B" and kind == "CC" for _, d, kind in sent)
    steps = list(tp4.steps)
    decided = next(i for i, s in enumerate(steps) if isinstance(s, Note) and "allowed" in s.text)
    cc = next(i for i, s in enumerate(steps) if isinstance(s, Message) and s.parts[0][:2] == "CC")
    returned = next(
        i for i, s in enumerate(steps) if isinstance(s, Note) and s.text.startswith("connect() ret")
    )
    assert decided < cc < returned
    assert any(m.lost for m in tp4.messages())
    assert sum(m.retransmission for m in tp4.messages()) >= 3
    assert ("server", "CONFIRMING (client B)") in [(n.at, n.text) for n in tp4.notes("state")]
    # TCP: B is connected before the server even looks at it
    steps = list(tcp.steps)
    b_connected = next(
        i
        for i, s in enumerate(steps)
        if isinstance(s, Note) and s.at == "client B" and s.text.startswith("connect() returned")
    )
    denied = next(i for i, s in enumerate(steps) if isinstance(s, Note) and "denied" in s.text)
    assert b_connected < denied
    assert [m.label for m in tcp.messages() if m.kind == "tcp"][:3] == [
        "TCP SYN",
        "TCP SYN, ACK",
        "TCP ACK",
    ]


async def test_the_demo_run_ladders() -> None:
    recorder = DemoRecorder()
    with trio.fail_after(30):
        result = await run_demo(decide_delay=0.2, recorder=recorder)
    assert result.ok
    ladders = demo_ladders(result, recorder)
    assert set(ladders) == {"tp4", "tcp"}
    tp4, tcp = ladders["tp4"], ladders["tcp"]
    assert [p.name for p in tp4.participants] == ["client A", "server", "client B"]
    to_b = [m.parts[0].split()[0] for m in tp4.messages() if m.dst == "client B"]
    assert to_b and set(to_b) == {"DR"}  # no CC, ever (the DR, perhaps resent)
    assert "CC" in [m.parts[0].split()[0] for m in tcp.messages() if m.dst == "client B"]
    texts = [n.text for n in tp4.notes("call")]
    assert "accept() returned, state CONFIRMING" in texts
    assert not any(t.startswith(("sends ", "receives ")) for t in texts)
    assert all(s.time >= 0 for s in tp4.steps)
    assert [s.time for s in tp4.steps] == sorted(s.time for s in tp4.steps)


# ---------------------------------------------------------------- the command


def test_cli_ladder_writes_mermaid_svg_and_markdown(
    exchange: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ladder", str(exchange), "--name", "10.0.0.2:10200=server"]) == 0
    assert capsys.readouterr().out == EXPECTED_MERMAID
    out = tmp_path / "x.svg"
    assert main(["ladder", str(exchange), "-o", str(out)]) == 0
    assert ET.fromstring(out.read_bytes()).tag == f"{SVG}svg"
    md = tmp_path / "x.md"
    assert main(["ladder", str(exchange), "-o", str(md), "--title", "T"]) == 0
    assert md.read_text().startswith("# T\n\n```mermaid\nsequenceDiagram\n")
    assert main(["ladder", str(exchange), "--format", "svg"]) == 0
    assert capsys.readouterr().out.startswith("<?xml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a capture at all", "not a pcap or pcapng file"),
        (None, "truncated capture"),
        (b"", "truncated capture"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_cli_ladder_bad_capture_is_one_line_exit_1(
    exchange: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(exchange.read_bytes()[:-5] if content is None else content)
    assert main(["ladder", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"tp4emu ladder: {path}: ")
    assert message in lines[0]


def test_cli_ladder_no_traffic_or_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.pcap"
    PcapWriter(empty).close()
    assert main(["ladder", str(empty)]) == 1
    assert capsys.readouterr().err == (
        f"tp4emu ladder: {empty}: no ISO transport traffic in this capture\n"
    )
    assert main(["ladder", str(tmp_path / "missing.pcap")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such file" in err
    assert main(["ladder", str(empty), "--name", "nonsense"]) == 2
    assert "--name wants HOST:PORT=NAME" in capsys.readouterr().err


def test_cli_ladder_truncated_in_a_subprocess_has_no_traceback(
    exchange: Path, tmp_path: Path
) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(exchange.read_bytes()[:-3])
    proc = subprocess.run(
        [sys.executable, "-m", "tp4emu", "ladder", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "truncated capture" in proc.stderr


def test_cli_demo_ladder_writes_both(tmp_path: Path) -> None:
    out = tmp_path / "ladders"
    proc = subprocess.run(
        [sys.executable, "-m", "tp4emu", "demo", "--color", "never", "--ladder", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tcp.mmd", "tcp.svg", "tp4.mmd", "tp4.svg"]
    for name in ("tp4.svg", "tcp.svg"):
        assert ET.fromstring((out / name).read_bytes()).tag == f"{SVG}svg"
    tp4 = (out / "tp4.mmd").read_text()
    assert tp4.startswith("sequenceDiagram\n")
    assert "participant P2 as client B " in tp4
    assert f"ladder written: {out / 'tp4.svg'}" in proc.stdout
