"""The ``ocrwatch`` command: parse arguments, call the work, map errors to exit codes.

Exit codes: 0 success; 1 some files failed (``once``), or ``retry`` could
not queue its files in Redis; 2 configuration or usage error, the API key
was rejected, or ``check`` could not use the config's Redis; 3 ``status``
found no daemon running; 130 interrupted (and 120, from :mod:`ocrwatch.exiting`,
when the output cannot be flushed). This is the only module that turns errors
into exit codes.

With a ``queue:`` section, ``status``, ``check`` and ``retry`` also look at
the cluster (:mod:`ocrwatch.cluster.inspect`, imported only then), and
``once`` leaves the shared inboxes to the cluster.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ocrwatch import __version__, allocator, exiting, inspection, logs, once, progress
from ocrwatch.config import (
    LoadedConfig,
    config_schema,
    default_config,
    find_config,
    load_config,
    search_paths,
)
from ocrwatch.errors import (
    EXIT_CONFIG,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    AlreadyRunning,
    ConfigError,
    OcrwatchError,
)
from ocrwatch.outcome import Outcome, Status
from ocrwatch.plan import Plan, make_plan
from ocrwatch.store import StateStore, default_state_dir

logger = logging.getLogger("ocrwatch")

SIDECAR_SCHEMA = Path(__file__).with_name("schemas") / "sidecar.schema.json"
SHOWN_UNREADABLE = 5
"""Waiting documents that cannot be opened named per inbox by ``check``; the rest are counted."""
SHARED_INBOXES = (
    "{what} shared through Redis (queue: in {config}): the cluster's hosts read {them}, and "
    "'ocrwatch once' beside them could send files twice. Use 'ocrwatch status' and 'ocrwatch "
    "retry', or name files outside the inboxes."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    allocator.tune()
    logs.escape_streams()
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    logs.setup(_verbosity(args))
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OcrwatchError as error:
        # Under systemd the line must carry priority 3, or `journalctl -p err` would not show
        # why the service stopped.
        prefix = "<3>" if logs.under_journal(sys.stderr, os.environ) else ""
        for line in str(error).splitlines() or [type(error).__name__]:
            print(f"{prefix}ocrwatch: {logs.redact(line)}", file=sys.stderr)
        return error.exit_code
    return code


def _verbosity(args: argparse.Namespace) -> int:
    if getattr(args, "quiet", False):
        return -1
    return int(getattr(args, "verbose", 0))


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=default,
        help="config file (default: $OCRWATCH_CONFIG, ./ocrwatch.yaml, "
        "~/.config/ocrwatch/config.yaml, /etc/ocrwatch/config.yaml)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="more detail; twice for library debug output",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="warnings and errors only",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocrwatch",
        description="Watch folders for scans and photos, OCR them, write .txt and .json sidecars.",
        epilog="Exit codes: 0 success, 1 some files failed, 2 configuration error, "
        "3 no daemon running (status), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"ocrwatch {__version__}")
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check", help="validate the config and show what each inbox will do"
    )
    _common(check, suppress=True)
    check.set_defaults(handler=cmd_check)

    once_parser = commands.add_parser(
        "once",
        help="OCR the images already in the inboxes (or the given files/folders), then exit",
        description="OCR images that have no current sidecar, then exit. "
        "Without PATH, every configured inbox is processed.",
    )
    _common(once_parser, suppress=True)
    once_parser.add_argument("paths", nargs="*", metavar="PATH", help="files or folders to process")
    once_parser.add_argument(
        "-r", "--recursive", action="store_true", help="descend into sub-folders of PATH folders"
    )
    once_parser.add_argument(
        "--force", action="store_true", help="process files even when their sidecar is current"
    )
    once_parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="try files again that failed before with the same settings",
    )
    once_parser.set_defaults(handler=cmd_once)

    run = commands.add_parser(
        "run",
        help="watch the inboxes and OCR every image that lands in them, until stopped",
        description="Run the daemon: scan every inbox, then watch it. SIGTERM/SIGINT drain and stop, "
        "SIGHUP reloads the config.",
    )
    _common(run, suppress=True)
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser(
        "status",
        help="show what the running daemon is doing (per inbox, and ocr.space's pause)",
        description="Read the daemon's status from its state folder without disturbing it; "
        "with queue:, the cluster's too, from Redis. Exit 0 when a daemon runs here, 3 when none does.",
    )
    _common(status, suppress=True)
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    status.set_defaults(handler=cmd_status)

    failed = commands.add_parser("failed", help="list failed files and why they failed")
    _common(failed, suppress=True)
    failed.add_argument("--json", action="store_true", help="print the list as JSON")
    failed.set_defaults(handler=cmd_failed)

    retry = commands.add_parser(
        "retry",
        help="send failed files back through OCR (all, or the named ones)",
        description="Remove the error sidecars of failed files (moving files out of failed_dir back "
        "into their inbox) and ask a running daemon to rescan now; with queue:, queue them for "
        "the cluster's hosts.",
    )
    _common(retry, suppress=True)
    retry.add_argument(
        "paths", nargs="*", metavar="PATH", help="failed images or their .error.json files"
    )
    retry.set_defaults(handler=cmd_retry)

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the config (or of the sidecars)"
    )
    schema.add_argument(
        "--sidecar", action="store_true", help="the schema of the .json/.error.json sidecars"
    )
    schema.set_defaults(handler=cmd_schema)
    return parser


def _load(args: argparse.Namespace, *, allow_default: bool = False) -> LoadedConfig:
    path = find_config(getattr(args, "config", None))
    if path is None:
        if allow_default:
            logger.info("no config file found; using built-in defaults")
            return default_config()
        looked = ", ".join(str(candidate) for candidate in search_paths())
        raise OcrwatchError(f"no config file found (looked at {looked}); pass one with -c FILE")
    return load_config(path)


def _log_plan(plan: Plan) -> None:
    for warning in plan.warnings:
        logger.warning("%s", warning)
    for engine in sorted(plan.engines):
        users = [inbox for inbox in plan.inboxes if inbox.rules.engine == engine]
        reason = users[0].engine_reason if users else plan.loose.engine_reason
        logger.info("engine %s: %s", engine, reason)


def cmd_check(args: argparse.Namespace) -> int:
    """``ocrwatch check``: validate, print the resolved plan and what each inbox has waiting.

    The waiting files are judged from stats and sidecars as the daemon's scan
    judges them, without the daemon's cache and without decoding anything;
    PDFs and TIFFs among them are opened to count their pages.
    """
    # Late: quota loads the PDF and TIFF readers, which the other commands load only for a document.
    from ocrwatch import quota

    loaded = _load(args)
    plan = make_plan(loaded)
    for warning in plan.warnings:
        print(f"warning: {warning}")
    print(f"config: {loaded.source}")
    if plan.api_key is not None:
        print(f"ocr.space API key: found ({plan.api_key.source}; not shown)")
    else:
        print("ocr.space API key: none found")
    total = quota.Backlog()
    for inbox in plan.inboxes:
        backlog = quota.count(inbox)
        total += backlog
        print()
        print(inspection.describe_inbox(plan, inbox))
        print(f"  waiting:   {backlog.describe()}")
        for path, problem in backlog.unreadable[:SHOWN_UNREADABLE]:
            print(f"  unreadable: {path.relative_to(inbox.path)}: {problem}")
        if len(backlog.unreadable) > SHOWN_UNREADABLE:
            print(f"  unreadable: and {len(backlog.unreadable) - SHOWN_UNREADABLE} more")
    print()
    if len(plan.inboxes) > 1:
        print(f"waiting in all: {total.describe()}")
    if plan.config.queue is not None:
        _check_queue(plan)
    print(f"OK: {len(plan.inboxes)} inbox(es)")
    return EXIT_OK


def _check_queue(plan: Plan) -> None:
    """Print what the config's Redis looks like; raises ConfigError when it cannot be used."""
    from ocrwatch.cluster import inspect as cluster  # only with queue: (loads redis-py)

    state_dir = inspection.daemon_state(plan).state_dir
    report = cluster.redis_check(plan, plan.loaded.path, state_dir=state_dir)
    print("\n".join(cluster.render_check(report)), end="\n\n")
    problem = report["unreachable"] or next(iter(report.get("problems") or []), None)
    if problem:
        raise ConfigError(f"{plan.loaded.where(['queue', 'url'])}{problem}")


def cmd_once(args: argparse.Namespace) -> int:
    """``ocrwatch once``: process what is there now, print a summary, exit 0/1."""
    loaded = _load(args, allow_default=bool(args.paths))
    plan = make_plan(loaded, require_inboxes=not args.paths, check_folders=not args.paths)
    if plan.config.queue is not None and not args.paths and plan.inboxes:
        raise AlreadyRunning(
            SHARED_INBOXES.format(what="the inboxes are", them="them", config=plan.loaded.source)
        )
    if not args.paths and plan.inboxes:
        running = inspection.daemon_state(plan)
        if running.running:
            raise AlreadyRunning(
                f"a daemon (pid {running.pid}) is already processing these inboxes; "
                "running once beside it could send files twice. Use 'ocrwatch status', or name paths."
            )
    _log_plan(plan)
    jobs = once.collect(plan, args.paths, recursive=args.recursive)
    if plan.config.queue is not None and (
        shared := [job.path for job in jobs if any(i.contains(job.path) for i in plan.inboxes)]
    ):
        what = f"{shared[0]} is in an inbox"
        raise AlreadyRunning(SHARED_INBOXES.format(what=what, them="it", config=plan.loaded.source))
    if not jobs:
        logger.info("no images found")
        return EXIT_OK
    started = time.monotonic()
    bar = (
        progress.ProgressBar(len(jobs), sys.stderr)
        if sys.stderr.isatty() and not getattr(args, "quiet", False)
        else None
    )

    def show(outcome: Outcome) -> None:
        if bar is not None:
            bar.advance(outcome)
            return
        level = logging.INFO if outcome.ok or outcome.status is Status.GONE else logging.ERROR
        logger.log(level, "%s", once.describe(outcome))

    # The daemon's state store keeps the pages of documents read so far, so that a run
    # that did not finish one resumes it (the store is a cache: without it, pages are
    # read again).
    store = StateStore(default_state_dir(plan.config.state_dir))
    try:
        report = once.run_once(
            plan,
            jobs,
            force=args.force,
            retry_failed=args.retry_failed,
            on_outcome=show,
            on_page=bar.page if bar is not None else None,
            resume=store,
        )
    finally:
        store.close()
        if bar is not None:
            bar.close()
    print(progress.summary(report.outcomes, time.monotonic() - started), file=sys.stderr)
    if report.aborted:
        print(f"ocrwatch: stopped early: {report.aborted}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_FAILURES if report.problems else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``ocrwatch run``: the daemon."""
    from ocrwatch.daemon import Daemon  # late: pulls in watchdog

    # A watchdog kill (SIGABRT) or a fatal signal then leaves every thread's stack in the journal.
    faulthandler.enable()
    loaded = _load(args)
    plan = make_plan(loaded)
    _log_plan(plan)
    logger.info("ocrwatch %s starting with %s", __version__, loaded.source)
    return Daemon(plan, config_path=loaded.path).run()


def cmd_status(args: argparse.Namespace) -> int:
    """``ocrwatch status``."""
    plan = make_plan(_load(args), check_folders=False, require_inboxes=False)
    state = inspection.daemon_state(plan)
    view = None
    if plan.config.queue is not None:
        from ocrwatch.cluster import inspect as cluster  # only with queue: (loads redis-py)

        view = cluster.cluster_view(plan, plan.loaded.path, state_dir=state.state_dir)
    if args.json:
        shown = {
            "running": state.running,
            "pid": state.pid,
            "state_dir": str(state.state_dir),
            "status": state.snapshot,
        }
        print(json.dumps({**shown, "cluster": view} if view is not None else shown, indent=2))
    else:
        print(inspection.render_status(state))
        if view is not None:
            print(f"\n{cluster.render_cluster(view)}")
    # The local daemon decides the exit code; the cluster section is shown either way.
    return EXIT_OK if state.running else EXIT_NOT_RUNNING


def cmd_failed(args: argparse.Namespace) -> int:
    """``ocrwatch failed``."""
    plan = make_plan(_load(args), check_folders=False)
    found = inspection.failures(plan)
    if args.json:
        print(json.dumps([failure.describe() for failure in found], indent=2))
        return EXIT_OK
    if not found:
        print("no failed files")
    for failure in found:
        partial = (
            " (partial: its other pages were read)"
            if failure.record.get("status") == "partial"
            else ""
        )
        print(
            f"{failure.image}{partial}\n  [{failure.classification}] {failure.message}\n  "
            f"attempts {failure.record.get('attempts')}, last {failure.record.get('last_attempt')}"
        )
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    """``ocrwatch retry``."""
    plan = make_plan(_load(args), check_folders=False)
    targets = [Path(path) for path in args.paths]
    done = inspection.retry(plan, targets)
    for retried in done:
        print(f"{retried.failure.image}: {retried.action}")
    if targets and len(done) < len(targets):
        print(
            f"ocrwatch: {len(targets) - len(done)} of the named paths are not failed files",
            file=sys.stderr,
        )
    if not done:
        print("nothing to retry")
        return EXIT_OK if not targets else EXIT_FAILURES
    if plan.config.queue is not None:
        from ocrwatch.cluster import inspect as cluster  # only with queue: (loads redis-py)

        # The cluster reads them: a job each (raises RedisUnavailable, exit 1, when Redis fails).
        files = [(retried.path, retried.failure.inbox) for retried in done]
        state_dir = inspection.daemon_state(plan).state_dir
        for path, action in cluster.requeue(plan, files, plan.loaded.path, state_dir=state_dir):
            print(f"{path}: {action}")
        return EXIT_OK
    if inspection.ask_for_rescan(inspection.daemon_state(plan)):
        print("the running daemon was asked to pick them up now")
    else:
        print("no daemon is running; process them with: ocrwatch once")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    """``ocrwatch schema``: the JSON Schema of the config, generated from its models."""
    if args.sidecar:
        print(SIDECAR_SCHEMA.read_text(encoding="utf-8"), end="")
    else:
        print(json.dumps(config_schema(), indent=2))
    return EXIT_OK


def console() -> NoReturn:
    """The console script: :func:`main`, then the quick exit of :mod:`ocrwatch.exiting`."""
    exiting.leave(main())


if __name__ == "__main__":  # pragma: no cover
    console()
