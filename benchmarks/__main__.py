"""``python -m benchmarks [--size tiny|small|full] [--only NAME ...] [--json PATH]``.

Runs the chosen measurements in order, prints one markdown table with the
machine's facts to stdout (progress goes to stderr), and writes the same as
JSON. A measurement that fails still gets a row (value n/a, the error in its
notes) and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from benchmarks import report
from benchmarks.harness import REPO, SIZES, Context, Row, load_average, wait_for_quiet

QUIET_LOAD = 0.7
MEASUREMENTS = {
    "latency": "benchmarks.latency",
    "throughput": "benchmarks.throughput",
    "cpu": "benchmarks.cpu",
    "upload_fit": "benchmarks.upload_fit",
    "idle": "benchmarks.idle",
    "backlog": "benchmarks.backlog",
    "accuracy": "benchmarks.accuracy",
    "documents": "benchmarks.documents",
    "formats": "benchmarks.formats",
    "once": "benchmarks.once",
    "cluster": "benchmarks.cluster",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure ocrwatch beside its baselines; print a markdown table, write JSON.",
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="small",
        help="tiny: toy scale, seconds; small: a few minutes; full: the published table",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(MEASUREMENTS),
        metavar="NAME",
        help=f"run only these measurements: {', '.join(MEASUREMENTS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="where to write the JSON report (default: benchmarks/results/SIZE.json)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="where rendered A4 scans are kept between runs "
        "(default: $XDG_CACHE_HOME/ocrwatch-benchmarks)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs, inboxes)"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not apt-get install the tesseract command-line tool when it is missing",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for the 1-minute load average to drop below 0.7",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _cache_dir(given: Path | None) -> Path:
    if given is not None:
        return given
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ocrwatch-benchmarks"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = args.only or list(MEASUREMENTS)
    workdir = Path(tempfile.mkdtemp(prefix="ocrwatch-bench-"))
    ctx = Context(
        size_name=args.size,
        size=SIZES[args.size],
        workdir=workdir,
        cache_dir=_cache_dir(args.cache),
        install_missing=not args.no_install,
        quiet=args.quiet,
    )
    if args.wait_quiet > 0:
        wait_for_quiet(ctx, threshold=QUIET_LOAD, patience=args.wait_quiet)
    started_wall, started = time.strftime("%Y-%m-%d %H:%M:%S %z"), time.monotonic()
    load_before = load_average()
    ctx.log(f"size {args.size}: {', '.join(names)}; scratch {workdir}; load {load_before[0]:.2f}")
    rows: list[Row] = []
    failed = []
    try:
        for name in names:
            module = importlib.import_module(MEASUREMENTS[name])
            begun = time.monotonic()
            try:
                rows.extend(module.run(ctx))
            except Exception as error:  # noqa: BLE001 - report the failure in the table and go on
                traceback.print_exc(file=sys.stderr)
                failed.append(name)
                rows.append(
                    Row(
                        name,
                        f"{name} (failed)",
                        None,
                        "",
                        notes=f"failed: {type(error).__name__}: {error}",
                    )
                )
            ctx.log(f"{name}: {time.monotonic() - begun:.1f} s")
    finally:
        if args.keep:
            ctx.log(f"scratch kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run = {
        "size": args.size,
        "measurements": names,
        "started": started_wall,
        "seconds": round(time.monotonic() - started, 1),
        "load_average": {"before": load_before, "after": load_average()},
        "failed": failed,
    }
    facts = report.machine_facts()
    text = report.markdown(rows, facts, run)
    print(text, end="")
    destination = args.json or REPO / "benchmarks" / "results" / f"{args.size}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(report.as_json(rows, facts, run, text), indent=1) + "\n")
    ctx.log(f"JSON written to {destination}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
