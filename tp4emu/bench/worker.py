"""One sample in a fresh process: ``python -m tp4emu.bench.worker WORKLOAD PARAMS``.

*WORKLOAD* is a name of :data:`tp4emu.bench.workloads.WORKLOADS`, *PARAMS* a
JSON object of its keyword arguments. Prints one JSON object on stdout,
``{"metrics": {...}}``, and exits 0; on failure prints one line on stderr
(``ExceptionType: message``) and exits 1. :func:`tp4emu.bench.suite.run_sample`
starts it, so that no sample inherits the memory, the garbage or the sockets
of another.
"""

from __future__ import annotations

import json
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the sample named by *argv* (default ``sys.argv[1:]``); return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m tp4emu.bench.worker WORKLOAD PARAMS-JSON", file=sys.stderr)
        return 2
    from .workloads import WORKLOADS, run_workload

    name, text = args
    if name not in WORKLOADS:
        print(f"unknown workload {name!r} (one of {', '.join(WORKLOADS)})", file=sys.stderr)
        return 2
    try:
        params = json.loads(text)
        metrics = run_workload(name, params)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the suite's table: no traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
