"""``python -m benchmarks``: the benchmark suite, the same as ``tp4emu bench`` (same options).

The suite itself is :mod:`tp4emu.bench` (so that ``tp4emu bench`` works from an
installed wheel); see benchmarks/README.md and docs/performance.md.
"""

from __future__ import annotations

import sys

from tp4emu.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
