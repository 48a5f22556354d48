"""Bench an exported TFLite model: accuracy, drift against a reference, latency, size (``dermtool bench``).

- :mod:`dermtool.bench.runner`: :func:`~dermtool.bench.runner.run_bench` (the results dict, bench --json; its
  settings a :class:`~dermtool.bench.runner.BenchOptions`, its steps named in ``_Bench.run``) and
  :func:`~dermtool.bench.runner.bare_interpreter_loop` (raw LiteRT timing, for the harness overhead).
- :mod:`dermtool.bench.report`: terminal table, Markdown and plots of a results dict.
"""
