"""Benchmarks for ocrwatch, each measured beside its baseline in the same run.

Run from the repository root (the local ocr.space-compatible server and the
page renderer live in ``tests/support``)::

    python -m benchmarks [--size tiny|small|full] [--only NAME ...] [--json PATH]

It prints one markdown table (measurement, ocrwatch, baseline, ratio, target,
met) with the machine's facts, and writes the same as JSON. The real
``ocrwatch run`` always runs as a subprocess, against the fake server in
another subprocess; baselines run as their own subprocesses too
(:mod:`benchmarks.baselines`), so neither side shares an interpreter with the
harness that measures it. ``docs/benchmarks.md`` says what each measurement
does and what each baseline simulates.

Timings belong here, never in test assertions: the smoke test only checks that
``--size tiny`` completes and reports every measurement.
"""
