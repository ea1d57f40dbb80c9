"""tp4emu's benchmark suite: ``tp4emu bench`` (also ``python -m benchmarks``).

It measures tp4emu over loopback against raw trio UDP and trio TCP and
prints one table; docs/performance.md says how to run it and read it.

* :mod:`tp4emu.bench.workloads`: the measured workloads, tp4emu and the
  baselines, one sample each (public API only).
* :mod:`tp4emu.bench.worker`: one sample in a fresh process
  (``python -m tp4emu.bench.worker WORKLOAD PARAMS``).
* :mod:`tp4emu.bench.suite`: the benches, their variants and the figures
  (rows), the interleaved schedule, the JSON.
* :mod:`tp4emu.bench.stats`: medians, ranges, pairwise ratios, goals.
* :mod:`tp4emu.bench.report`: the rich table.

Nothing here asserts a speed: the goals are reported (✓/✗), never turned
into an exit status.
"""
