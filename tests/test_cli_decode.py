"""The ``tp4emu decode`` command line and the TPDU descriptions behind it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tp4emu.cli import build_parser, main, parse_hex
from tp4emu.wire import (
    AK,
    CR,
    DR,
    DT,
    ER,
    AdditionalOptions,
    CalledTsap,
    CallingTsap,
    DRReason,
    InvalidTpdu,
    TpduSize,
    decode,
    encode,
)
from tp4emu.wire.describe import describe, format_tpdu

# A CR written out by hand (reference §1-2): LI 24, CR with credit 8, DST-REF 0,
# SRC-REF 0x1234, class 4, checksum 0x15b0, TPDU size 1024, calling TSAP "cl",
# called TSAP "sv", additional options 0x01, then 5 octets of user data.
CR_HEX = "18e8 0000 1234 40 c302 15b0 c0010a c102636c c2027376 c60101 68656c6c6f"
CR_BYTES = bytes.fromhex(CR_HEX)


def _textbook_checksum_ok(tpdu: bytes) -> bool:
    """Annex B verification, the slow way: C0 = C1 = 0 modulo 255."""
    c0 = c1 = 0
    for octet in tpdu:
        c0 = (c0 + octet) % 255
        c1 = (c1 + c0) % 255
    return c0 == 0 and c1 == 0


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------- text output


def test_hand_written_cr_is_well_formed() -> None:
    assert _textbook_checksum_ok(CR_BYTES)
    assert decode(CR_BYTES) == [
        CR(
            0x1234,
            8,
            params=(TpduSize(10), CallingTsap(b"cl"), CalledTsap(b"sv"), AdditionalOptions(0x01)),
            data=b"hello",
        )
    ]


def test_decode_hex_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", CR_HEX.replace(" ", "")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "#0 len=30"
    assert lines[1] == (
        '  CR src-ref=0x1234 class=4 credit=8 size=1024 calling-tsap="cl" '
        'called-tsap="sv" options=0x01 checksum=valid data=5'
    )
    assert len(lines) == 2


def test_hex_with_spaces_and_colons_and_several_datagrams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["decode", "04 f0:00:01 82 78", CR_HEX, "0x04:60:00:01:05"])
    assert status == 0
    out = capsys.readouterr().out
    assert "#0 len=6\n  DT dst-ref=0x0001 nr=2 eot=1 checksum=absent data=1\n" in out
    assert "#1 len=30\n  CR src-ref=0x1234" in out
    assert "#2 len=5\n  AK dst-ref=0x0001 nr=5 credit=0 checksum=absent\n" in out


def test_concatenated_tpdus_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    datagram = encode([AK(7, 3, 5), DT(7, 3, True, b"abc")], checksum=True)
    assert main(["decode", datagram.hex()]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"#0 len={len(datagram)}",
        "  AK dst-ref=0x0007 nr=3 credit=5 checksum=valid",
        "  DT dst-ref=0x0007 nr=3 eot=1 checksum=valid data=3",
    ]


def test_show_data_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "-x", CR_HEX]) == 0
    assert '    68 65 6c 6c 6f  "hello"' in capsys.readouterr().out.splitlines()
    assert main(["decode", "--data", "--data-limit", "2", CR_HEX]) == 0
    assert '    68 65 ...  "he"' in capsys.readouterr().out.splitlines()


def test_stdin_one_datagram_per_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = f"# a comment\n{CR_HEX}\n\n   \n04f0000182 78\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["decode"]) == 0
    out = capsys.readouterr().out
    assert out.count("#") == 2
    assert "#0 len=30\n  CR src-ref=0x1234" in out
    assert "#1 len=6\n  DT dst-ref=0x0001 nr=2 eot=1" in out


def test_stdin_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("0460000105\n0502\n"))
    assert main(["decode", "--json"]) == 1
    objs = _json_lines(capsys.readouterr().out)
    assert [o["index"] for o in objs] == [0, 1]
    assert objs[0]["tpdus"][0]["type"] == "AK"
    assert "error" not in objs[0]
    assert objs[1]["error"]


def test_bad_checksum_is_reported_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    bad = bytearray(CR_BYTES)
    bad[-1] ^= 0x01  # flip a bit of the user data
    assert main(["decode", bad.hex()]) == 0
    assert "checksum=invalid" in capsys.readouterr().out


# ---------------------------------------------------------------- JSON


def test_json_cr_field_by_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--json", CR_HEX]) == 0
    (obj,) = _json_lines(capsys.readouterr().out)
    assert obj["index"] == 0
    assert obj["length"] == 30
    assert "error" not in obj
    (cr,) = obj["tpdus"]
    assert cr["type"] == "CR"
    assert cr["dst_ref"] == 0
    assert cr["src_ref"] == 0x1234
    assert cr["class"] == 4
    assert cr["options"] == 0
    assert cr["extended"] is False
    assert cr["credit"] == 8
    assert cr["checksum"] == "valid"
    assert cr["data"] == {"length": 5, "hex": "68656c6c6f", "truncated": False}
    params = {p["name"]: p for p in cr["params"]}
    assert list(params) == ["tpdu-size", "calling-tsap", "called-tsap", "additional-options"]
    assert params["tpdu-size"] == {"name": "tpdu-size", "code": 0xC0, "exponent": 10, "size": 1024}
    assert params["calling-tsap"] == {
        "name": "calling-tsap",
        "code": 0xC1,
        "hex": "636c",
        "text": "cl",
    }
    assert params["called-tsap"]["hex"] == "7376"
    assert params["called-tsap"]["text"] == "sv"
    assert params["additional-options"]["flags"] == 0x01
    assert params["additional-options"]["expedited"] is True
    assert params["additional-options"]["checksum"] is True


def test_json_dr_and_er_names(capsys: pytest.CaptureFixture[str]) -> None:
    dr = encode(DR(0x0102, 0x0304, DRReason.NORMAL, data=b"bye"), checksum=True)
    er = encode(ER(0x0102, 1, (InvalidTpdu(b"\x04\x90"),)))
    assert main(["decode", "--json", dr.hex(), er.hex()]) == 0
    d, e = (o["tpdus"][0] for o in _json_lines(capsys.readouterr().out))
    assert d["type"] == "DR"
    assert d["reason"] == {"code": 128, "name": "NORMAL"}
    assert (d["dst_ref"], d["src_ref"]) == (0x0102, 0x0304)
    assert d["checksum"] == "valid"
    assert d["data"]["hex"] == b"bye".hex()
    assert e["type"] == "ER"
    assert e["cause"] == {"code": 1, "name": "INVALID_PARAMETER_CODE"}
    assert e["params"] == [{"name": "invalid-tpdu", "code": 0xC1, "hex": "0490"}]
    assert e["checksum"] == "absent"


def test_json_data_is_truncated(capsys: pytest.CaptureFixture[str]) -> None:
    datagram = encode(DT(1, 0, True, bytes(range(200))))
    assert main(["decode", "--json", "--data-limit", "4", datagram.hex()]) == 0
    (obj,) = _json_lines(capsys.readouterr().out)
    assert obj["tpdus"][0]["data"] == {"length": 200, "hex": "00010203", "truncated": True}


# ---------------------------------------------------------------- errors


def test_error_exit_status_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    # LI 5 but only one octet follows.
    assert main(["decode", "0502"]) == 1
    captured = capsys.readouterr()
    assert "#0 len=2" in captured.out
    assert "error: LI 5 runs past the end of the datagram" in captured.out
    assert "reason=138(HEADER_OR_PARAMETER_LENGTH_INVALID)" in captured.out
    assert "cause=3(INVALID_PARAMETER_VALUE)" in captured.out
    assert "1 of 1 datagrams failed" in captured.err


def test_one_bad_datagram_among_good_ones(capsys: pytest.CaptureFixture[str]) -> None:
    # unknown TPDU code 0x3
    assert main(["decode", CR_HEX, "03300001", "0460000105"]) == 1
    out = capsys.readouterr().out
    assert "#1 len=4\n  error: unknown TPDU code 0x3" in out
    assert "cause=2(INVALID_TPDU_TYPE)" in out
    assert "#2 len=5\n  AK" in out


def test_error_json(capsys: pytest.CaptureFixture[str]) -> None:
    # AK then a DT whose LI runs past the end: the AK is still shown.
    assert main(["decode", "--json", "0460000105" + "0af0000182"]) == 1
    (obj,) = _json_lines(capsys.readouterr().out)
    assert obj["error"].startswith("LI 10 runs past the end")
    assert obj["reason"] == {"code": 138, "name": "HEADER_OR_PARAMETER_LENGTH_INVALID"}
    assert obj["cause"] == {"code": 3, "name": "INVALID_PARAMETER_VALUE"}
    assert obj["offset"] == 5
    assert obj["header"] == "0af0000182"
    assert [t["type"] for t in obj["tpdus"]] == ["AK"]


def test_invalid_hex_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A HEX argument that is not hex: one line on stderr, nothing on stdout, status 2
    (even when other arguments are fine: nothing is decoded)."""
    assert main(["decode", CR_HEX, "04f0zz", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "tp4emu decode: HEX argument 2: not hex: 'z' in '04f0zz'\n"
    assert main(["decode", "04f"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "tp4emu decode: HEX argument 1: odd number of hex digits (3) in '04f'\n"
    )


def test_invalid_hex_on_stdin_is_a_datagram_that_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("04f0zz\n0460000105\n"))
    assert main(["decode", "--json"]) == 1
    bad, good = _json_lines(capsys.readouterr().out)
    assert bad["error"].startswith("invalid hex")
    assert bad["reason"] is None and bad["cause"] is None
    assert good["tpdus"][0]["type"] == "AK"


def test_parse_hex() -> None:
    with pytest.raises(ValueError):
        parse_hex("0g")
    assert parse_hex(" 0x04:F0 00 01\t82 ") == bytes.fromhex("04f0000182")


def test_forced_format(capsys: pytest.CaptureFixture[str]) -> None:
    normal_ak = "0460000105"
    assert main(["decode", "--normal", normal_ak]) == 0
    assert "AK dst-ref=0x0001 nr=5 credit=0" in capsys.readouterr().out
    assert main(["decode", "--extended", normal_ak]) == 1
    assert "shorter than the fixed part of AK" in capsys.readouterr().out
    ext_ak = encode(AK(1, 1 << 20, 300, extended=True)).hex()
    assert main(["decode", ext_ak]) == 0  # inferred from the odd LI
    assert "AK dst-ref=0x0001 format=extended nr=1048576 credit=300" in capsys.readouterr().out


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["decode", "--extended", "--normal", "00"])
    assert exc.value.code == 2
    assert main(["decode", "--pcap", "x.pcap", "0460000105"]) == 2
    capsys.readouterr()
    assert "decode" in build_parser().format_help()


# ---------------------------------------------------------------- capture files


def test_decode_pcap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = pytest.importorskip(
        "tp4emu.capture", reason="tp4emu.capture (PcapWriter/read_pcap) not written yet"
    )
    path = tmp_path / "trace.pcap"
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 10200)
    second = encode([AK(0x1234, 0, 4), DT(0x1234, 0, True, b"hi")], checksum=True)
    with pcap.PcapWriter(path) as writer:
        writer.write(CR_BYTES, src=client, dst=server, timestamp=1700000000.5)
        writer.write(second, src=server, dst=client, timestamp=1700000001.25)
    assert [r.payload for r in pcap.read_pcap(path)] == [CR_BYTES, second]

    assert main(["decode", "--pcap", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "#0 frame=1 t=1700000000.500000 udp 127.0.0.1:40000 > 127.0.0.1:10200 len=30"
    )
    assert lines[1].startswith("  CR src-ref=0x1234 class=4")
    assert lines[2] == (
        f"#1 frame=2 t=1700000001.250000 udp 127.0.0.1:10200 > 127.0.0.1:40000 len={len(second)}"
    )
    assert lines[3:] == [
        "  AK dst-ref=0x1234 nr=0 credit=4 checksum=valid",
        "  DT dst-ref=0x1234 nr=0 eot=1 checksum=valid data=2",
    ]

    assert main(["decode", "--pcap", str(path), "--json"]) == 0
    obj0, obj1 = _json_lines(capsys.readouterr().out)
    assert obj0["src"] == "127.0.0.1:40000" and obj0["dst"] == "127.0.0.1:10200"
    assert obj0["timestamp"] == pytest.approx(1700000000.5)
    assert obj0["frame"] == 1 and obj0["transport"] == "udp"
    assert obj0["tpdus"][0]["type"] == "CR"
    assert obj0["tpdus"][0]["params"][1]["text"] == "cl"
    assert [t["type"] for t in obj1["tpdus"]] == ["AK", "DT"]

    assert main(["decode", "--pcap", str(path), "--json", "--port", "9"]) == 0
    assert capsys.readouterr().out == ""


def test_decode_pcap_not_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tp4emu.capture", reason="tp4emu.capture not written yet")
    path = tmp_path / "junk.pcap"
    path.write_bytes(b"this is not a capture file")
    assert main(["decode", "--pcap", str(path)]) == 1
    assert "junk.pcap" in capsys.readouterr().err


# ---------------------------------------------------------------- describe


def test_describe_unprintable_tsap_and_format_line() -> None:
    cr = CR(1, 0, params=(CallingTsap(b"\x01\x02"), CalledTsap(b"")))
    (decoded,) = decode(encode(cr))
    d = describe(decoded)
    assert d["params"][0] == {"name": "calling-tsap", "code": 0xC1, "hex": "0102", "text": None}
    assert d["params"][1]["text"] == ""
    assert d["checksum"] == "absent"
    assert format_tpdu(decoded) == (
        'CR src-ref=0x0001 class=4 credit=0 calling-tsap=0x0102 called-tsap="" '
        "checksum=absent data=0"
    )
    json.dumps(d)  # JSON-ready


# ---------------------------------------------------------------- entry point


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tp4emu", "decode", CR_HEX.replace(" ", "")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'CR src-ref=0x1234 class=4 credit=8 size=1024 calling-tsap="cl"' in proc.stdout
