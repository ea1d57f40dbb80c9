"""``tp4emu conformance``: a conformance tester for other people's transport implementations.

It plays the peer of an implementation under test (IUT) with raw datagrams
(class 4 over UDP) or raw TPKTs (RFC 1006 class 0 over TCP) built with
:mod:`tp4emu.wire` -- never with tp4emu's own engines, so that it can send
what a correct engine never would -- and checks what comes back against
ISO 8073 / RFC 1006, one test case at a time.

* :mod:`.model` — cases, groups, verdicts, results, the PICS;
* :mod:`.session` — the DSL a case is written in (send, expect, silence...);
* :mod:`.match` — field expectations: wildcards, bound references, ranges;
* :mod:`.peer4` — the tester's view of a class 4 connection, :mod:`.peer0` of class 0;
* :mod:`.links` — raw UDP and TCP, timestamped, recorded to pcap;
* :mod:`.registry`, :mod:`.cases` — the library of cases;
* :mod:`.runner` — running a selection; :mod:`.report` — the reports;
* :mod:`.apps` — the IUT's application profiles and upper tester commands.

This package sits beside ``transport`` in the layers: it uses ``wire`` and
``capture`` and never ``core`` (``tests/test_layers.py``).
"""

from .model import CaseInfo, CaseResult, Group, SuiteResult, Target, Timers, Verdict, parse_target
from .registry import all_cases, case, select
from .runner import Hooks, run_suite
from .settings import PROFILES, Settings

__all__ = [
    "PROFILES",
    "CaseInfo",
    "CaseResult",
    "Group",
    "Hooks",
    "Settings",
    "SuiteResult",
    "Target",
    "Timers",
    "Verdict",
    "all_cases",
    "case",
    "parse_target",
    "run_suite",
    "select",
]
