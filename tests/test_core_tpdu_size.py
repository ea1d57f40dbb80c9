"""TPDU size negotiation: the TPDU size parameter (0xC0) and the preferred maximum (0xF0)."""

from __future__ import annotations

import random

import pytest
from netsim import Faults, Link, establish

from tp4emu.core import Config
from tp4emu.core.config import MAX_UDP_TPDU
from tp4emu.wire import CC, CR, DT, PreferredMaxTpduSize, TpduSize, connection_params


def _pair(config_a: Config, config_b: Config) -> tuple[int, CR, CC]:
    """Establish a connection; return the agreed TPDU size, the CR and the CC."""
    link = Link(config_a=config_a, config_b=config_b, faults=Faults(delay=0.001))
    client, server, _ = establish(link)
    assert client.tpdu_size == server.tpdu_size
    cr = next(t for _, t in link.tpdus_sent("a", CR))
    cc = next(t for _, t in link.tpdus_sent("b", CC))
    assert isinstance(cr, CR) and isinstance(cc, CC)
    return client.tpdu_size, cr, cc


def _one_tsdu(config_a: Config, config_b: Config, data: bytes) -> list[DT]:
    """Send *data* as one TSDU from a to b; the DTs a sent."""
    link = Link(config_a=config_a, config_b=config_b, faults=Faults(delay=0.001))
    client, server, _ = establish(link)
    client.send(link.now, data)
    got: list[bytes] = []
    link.hooks.append(lambda now: got.extend(iter(server.receive, None)))
    link.run_until(lambda: bool(got))
    assert got == [data]
    return [t for _, t in link.tpdus_sent("a", DT) if isinstance(t, DT)]


def test_default_proposes_8192_and_0xf0_8320() -> None:
    size, cr, cc = _pair(Config(), Config())
    # 0xC0 8192 for peers that ignore 0xF0, then 0xF0 65 units of 128
    assert cr.params[:2] == (TpduSize(13), PreferredMaxTpduSize(65))
    assert cc.params[:2] == (TpduSize(13), PreferredMaxTpduSize(65))
    assert size == 8320


def test_default_against_a_peer_without_0xf0_is_8192() -> None:
    no_f0 = Config(preferred_max_tpdu_size=None)
    size, cr, cc = _pair(Config(), no_f0)
    assert cr.param(PreferredMaxTpduSize) == PreferredMaxTpduSize(65)
    assert cc.tpdu_size == 8192 and cc.param(PreferredMaxTpduSize) is None
    assert size == 8192
    size, cr, cc = _pair(no_f0, Config())
    assert cr.tpdu_size == 8192 and cr.param(PreferredMaxTpduSize) is None
    assert cc.tpdu_size == 8192 and cc.param(PreferredMaxTpduSize) is None
    assert size == 8192


def test_default_sends_an_8_kib_tsdu_in_one_dt() -> None:
    data = random.Random(2).randbytes(8192)
    dts = _one_tsdu(Config(), Config(), data)
    assert len(dts) == 1 and dts[0].eot and dts[0].data == data
    # against a peer without 0xF0 it takes two: 8192 - 9 octets, then 9
    no_f0 = Config(preferred_max_tpdu_size=None)
    dts = _one_tsdu(Config(), no_f0, data)
    assert [(len(t.data), t.eot) for t in dts] == [(8192 - 9, False), (9, True)]


def test_without_0xf0_the_standard_8192() -> None:
    no_f0 = Config(preferred_max_tpdu_size=None)
    size, cr, cc = _pair(no_f0, no_f0)
    assert cr.tpdu_size == 8192 and cr.param(PreferredMaxTpduSize) is None
    assert cc.tpdu_size == 8192 and cc.param(PreferredMaxTpduSize) is None
    assert size == 8192


def test_both_preferring_agree_on_the_smaller_multiple_of_128() -> None:
    big = Config(preferred_max_tpdu_size=MAX_UDP_TPDU)
    mid = Config(preferred_max_tpdu_size=20 * 1024 + 128)
    size, cr, cc = _pair(big, mid)
    # CR: 0xC0 = 8192 for peers that ignore 0xF0, 0xF0 = 511 units of 128
    assert cr.params[:2] == (TpduSize(13), PreferredMaxTpduSize(511))
    assert cc.params[:2] == (TpduSize(13), PreferredMaxTpduSize(161))
    assert size == 20608


def test_a_peer_without_0xf0_gets_the_power_of_two() -> None:
    no_f0_4096 = Config(max_tpdu_size=4096, preferred_max_tpdu_size=None)
    size, _, cc = _pair(Config(preferred_max_tpdu_size=MAX_UDP_TPDU), no_f0_4096)
    assert cc.params[0] == TpduSize(12) and cc.param(PreferredMaxTpduSize) is None
    assert size == 4096
    no_f0_2048 = Config(max_tpdu_size=2048, preferred_max_tpdu_size=None)
    size, cr, cc = _pair(no_f0_2048, Config(preferred_max_tpdu_size=MAX_UDP_TPDU))
    assert cr.param(PreferredMaxTpduSize) is None and cc.param(PreferredMaxTpduSize) is None
    assert size == 2048


def test_big_tpdus_carry_a_tsdu_in_few_dts() -> None:
    cfg = Config(preferred_max_tpdu_size=MAX_UDP_TPDU)
    data = random.Random(1).randbytes(1 << 20)
    dts = _one_tsdu(cfg, cfg, data)
    per_dt = MAX_UDP_TPDU - 9  # DT header 5 octets, checksum parameter 4
    assert len(dts) == -(-len(data) // per_dt) == 17
    assert {len(t.data) for t in dts[:-1]} == {per_dt}


@pytest.mark.parametrize("bad", [100, 8192 + 1, MAX_UDP_TPDU + 128, 4096])
def test_preferred_size_is_checked(bad: int) -> None:
    with pytest.raises(ValueError, match="preferred_max_tpdu_size"):
        Config(preferred_max_tpdu_size=bad, max_tpdu_size=8192)


def test_connection_params_with_a_preferred_size() -> None:
    assert connection_params(1152, b"a", None, 1, preferred=True) == (
        TpduSize(10),
        PreferredMaxTpduSize(9),
        *connection_params(1024, b"a", None, 1)[1:],
    )
