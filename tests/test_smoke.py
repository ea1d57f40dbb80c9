from tp4emu.wire import DT, decode, encode


def test_dt_roundtrip_smoke() -> None:
    assert encode(DT(1, 2, True, b"x")) == bytes.fromhex("04f0000182") + b"x"
    assert decode(bytes.fromhex("04f0000182") + b"x") == [DT(1, 2, True, b"x")]
