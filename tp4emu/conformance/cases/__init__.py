"""The library of test cases (importing this package registers them).

One module per protocol class and test group: ``c4_*`` (class 4 over UDP)
and ``c0_*`` (RFC 1006 class 0 over TCP). ``docs/conformance.md`` lists them
with their clauses and says how to write one.
"""

from . import (  # noqa: F401  (each registers its cases)
    c0_cases,
    c4_data,
    c4_errors,
    c4_establishment,
    c4_expedited,
    c4_flow,
    c4_release,
    c4_responder,
    c4_timers,
    c4_user,
)
