"""The transition table decides: its shape, and that every row is reached.

Every ``(state, input)`` row of :data:`tp4emu.core.state.TRANSITIONS`, and every
guarded rule of it, is taken at least once while the core test modules run
(``test_every_rule_is_taken``, which replays them with the dispatcher
instrumented). A row no input can reach would be dead code in the table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from scripted import Script, peer_cr

from tp4emu.core import Connection, State
from tp4emu.core.state import ENTRY, TIMER_INPUT, TRANSITIONS, Input, Rule, Timer
from tp4emu.wire import CC, ED

HERE = Path(__file__).parent


def test_every_rule_list_ends_with_an_unguarded_rule() -> None:
    for key, rules in TRANSITIONS.items():
        assert rules, key
        assert rules[-1][0] is None, f"{key}: the last rule must have no guard"
        assert all(guard is not None for guard, _, _ in rules[:-1]), key


def test_every_timer_is_an_input_of_the_table() -> None:
    assert set(TIMER_INPUT) == set(Timer)
    used = {inp for _state, inp in TRANSITIONS}
    assert set(TIMER_INPUT.values()) <= used


def test_entry_actions_cover_the_states_that_have_effects() -> None:
    assert set(ENTRY) == {State.OPEN, State.CLOSING, State.REFWAIT, State.CLOSED}


def test_send_while_confirming_takes_its_own_row() -> None:
    """(CONFIRMING, SEND) is not pre-empted by a CONFIRM any more: one row, one CC."""
    s = Script()
    listener = s.endpoint.listen(None)
    s.send(peer_cr())
    conn = s.endpoint.accept(listener)
    assert conn is not None
    taken: list[tuple[State, Input]] = []
    step = Connection._step

    def spy(self: Connection, inp: Input, arg: object, now: float) -> None:
        taken.append((self.state, inp))
        step(self, inp, arg, now)

    Connection._step = spy  # type: ignore[method-assign]
    try:
        s.call(conn.send, b"hello")
    finally:
        Connection._step = step  # type: ignore[method-assign]
    assert taken == [(State.CONFIRMING, Input.SEND)]
    s.expect(CC)
    assert conn.state is State.AKWAIT


def test_send_expedited_while_confirming_takes_its_own_row() -> None:
    s = Script()
    listener = s.endpoint.listen(None)
    s.send(peer_cr())
    conn = s.endpoint.accept(listener)
    assert conn is not None
    s.call(conn.send_expedited, b"!")
    s.expect(CC)
    assert conn.state is State.AKWAIT
    s.send(ED(conn.local_ref, 0, b"x"), at=0.1)  # third message: OPEN, then our ED goes out
    assert conn.state is State.OPEN


def test_every_rule_is_taken() -> None:
    """Run the core test modules with the dispatcher counting the rules it takes."""
    taken: Counter[tuple[int, int]] = Counter()  # (id of the rule tuple, index)
    choose = Connection._choose

    def counting(
        self: Connection, rules: tuple[Rule, ...], arg: object, now: float
    ) -> tuple[State, str]:
        result = choose(self, rules, arg, now)
        index = next(i for i, (_g, n, a) in enumerate(rules) if (n, a) == result)
        taken[(id(rules), index)] += 1
        return result

    Connection._choose = counting  # type: ignore[method-assign]
    try:
        modules = sorted(
            str(p) for p in HERE.glob("test_core_*.py") if p.name != Path(__file__).name
        )
        code = pytest.main(["-q", "-x", "-p", "no:cacheprovider", *modules])
    finally:
        Connection._choose = choose  # type: ignore[method-assign]
    assert code == 0
    missing = [
        f"{state.name} {inp.value} rule {i} ({rules[i][0] or 'unguarded'} -> {rules[i][2]})"
        for (state, inp), rules in TRANSITIONS.items()
        for i in range(len(rules))
        if not taken[(id(rules), i)]
    ]
    assert not missing, "rules never taken:\n" + "\n".join(missing)
