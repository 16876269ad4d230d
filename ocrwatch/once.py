"""``ocrwatch once``: process the images already in the inboxes (or given paths), then exit.

Files go through :func:`ocrwatch.pipeline.process_file` on a small thread pool
per engine, and what follows a finished file through :mod:`ocrwatch.finish`,
exactly as in the daemon. What is not the file's fault is handled here: a short rate-limit
pause is waited out and the file tried again; a long one leaves the file for
later; a rejected API key stops the run, since every further call would fail
the same way. The daily budget (``ocrspace.max_requests_per_day``) is counted
within this run only (``once`` keeps no state between runs): when it is used
up, the files not sent are left for later (those not yet started unread).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from ocrwatch import engines, scan
from ocrwatch.engines.base import OcrEngine, cores
from ocrwatch.errors import InvalidKeyError, OcrwatchError, RateLimitError
from ocrwatch.finish import Finisher
from ocrwatch.hooks import HookRunner
from ocrwatch.outcome import Outcome, Status
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan, Plan
from ocrwatch.ratelimit import BudgetSpent, RequestGate
from ocrwatch.store import StateStore

logger = logging.getLogger(__name__)

MAX_RATE_LIMIT_WAIT = 300.0
"""Longest API pause ``once`` waits out; beyond it the file is left for later."""
OCRSPACE_WORKERS = 8
"""Requests in flight to ocr.space by default: its time is network wait (1-5 s an
answer), which threads overlap for free; quota counts requests, not concurrency."""
HOOK_DRAIN_SECONDS = 60.0
"""How long ``once`` waits at the end for hooks still running."""

EngineFactory = Callable[[str, int, threading.Event], OcrEngine]
"""Builds the engine called ``name`` for ``workers`` files at once, stopping when the event is set."""


@dataclass(frozen=True)
class Job:
    """One file and the inbox whose rules apply."""

    path: Path
    inbox: InboxPlan


@dataclass
class Report:
    """Every outcome of a run, in completion order."""

    outcomes: list[Outcome] = field(default_factory=list)
    aborted: str | None = None

    def counts(self) -> Counter[Status]:
        return Counter(outcome.status for outcome in self.outcomes)

    @property
    def problems(self) -> list[Outcome]:
        return [
            outcome
            for outcome in self.outcomes
            if not outcome.ok and outcome.status is not Status.GONE
        ]


def collect(
    plan: Plan, targets: Iterable[str | os.PathLike[str]] = (), *, recursive: bool = False
) -> list[Job]:
    """The files to process: every inbox's candidates, or those under ``targets``.

    Raises OcrwatchError for a target that does not exist.
    """
    jobs: list[Job] = []
    seen: set[Path] = set()

    def add(path: Path, inbox: InboxPlan) -> None:
        if path not in seen:
            seen.add(path)
            jobs.append(Job(path, inbox))

    target_list = [Path(os.path.abspath(os.path.expanduser(target))) for target in targets]
    if not target_list:
        for inbox in plan.inboxes:
            for path in scan.walk(inbox):
                add(path, inbox)
        return jobs
    for target in target_list:
        if target.is_dir():
            inbox = _folder_inbox(plan, target, recursive=recursive)
            for path in scan.walk(inbox):
                add(path, plan.inbox_for(path) if inbox.index is None else inbox)
        elif target.exists() or target.is_symlink():
            add(target, plan.inbox_for(target))
        else:
            raise OcrwatchError(f"{target}: no such file or folder")
    return jobs


def _folder_inbox(plan: Plan, folder: Path, *, recursive: bool) -> InboxPlan:
    """The inbox to walk ``folder`` with: its own, or the loose rules rooted there."""
    for inbox in plan.inboxes:
        if inbox.path == folder:
            return inbox
    owner = plan.inbox_for(folder / "_")
    return replace(owner, path=folder, recursive=recursive or owner.recursive)


def default_workers(engine: str, configured: int | None) -> int:
    """How many files an engine reads at once: configured, else 8 for ocr.space, else one per core."""
    if configured is not None:
        return configured
    if engine == "ocrspace":
        return OCRSPACE_WORKERS
    return cores()


def worker_threads(engine: str, workers: int) -> int:
    """Threads for an engine that reads ``workers`` files at once.

    ocr.space workers spend their time waiting on the network, so as many
    threads again decode and fit the next files meanwhile (at least one per
    core): requests started together end together, and each slot that frees
    should find an upload ready rather than wait for a decode. The engine
    itself holds the requests in flight to ``workers``; a thread waiting for a
    slot holds only its fitted upload, not the decoded page.
    """
    return workers + max(workers, cores()) if engine == "ocrspace" else workers


def run_once(
    plan: Plan,
    jobs: list[Job],
    *,
    force: bool = False,
    retry_failed: bool = False,
    follow_symlinks: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    on_page: Callable[[Path, int, int], None] | None = None,
    resume: StateStore | None = None,
    stop: threading.Event | None = None,
    env: Mapping[str, str] | None = None,
    engine_factory: EngineFactory | None = None,
    wall: Callable[[], float] = time.time,
) -> Report:
    """Process ``jobs`` and return what happened to each.

    ``engine_factory(name, workers, stop)`` builds the engine of each kind;
    by default the registry's, configured from the plan. ``wall`` is the
    clock the daily request budget counts days by. ``on_page(path, done,
    total)`` follows the pages of documents as they are read. ``resume`` keeps
    the pages of documents as they are read, so a run that did not finish one
    (interrupted, or a page's transient failure) does not pay for them again.
    """
    stop = stop or threading.Event()
    report = Report()
    by_engine: dict[str, list[Job]] = {}
    for job in jobs:
        by_engine.setdefault(job.inbox.rules.engine, []).append(job)
    built: dict[str, OcrEngine] = {}
    pools: dict[str, ThreadPoolExecutor] = {}
    hooks = HookRunner(env=env)
    finisher = Finisher(hooks)
    ocrspace = plan.config.ocrspace
    gate = RequestGate(
        ocrspace.rate_limit,
        max_requests_per_day=ocrspace.max_requests_per_day,
        longest_budget_wait=MAX_RATE_LIMIT_WAIT,
        wall=wall,
    )

    def create(name: str, workers: int, stop: threading.Event) -> OcrEngine:
        return engines.create_engine(
            name, plan.config, api_key=plan.api_key, workers=workers, env=env, stop=stop, gate=gate
        )

    try:
        for name in by_engine:
            workers = default_workers(name, plan.config.workers)
            built[name] = (engine_factory or create)(name, workers, stop)
            pools[name] = ThreadPoolExecutor(
                max_workers=worker_threads(name, workers), thread_name_prefix=f"once-{name}"
            )
        pending: dict[Future[Outcome], Job] = {}

        def submit(job: Job) -> None:
            engine = built[job.inbox.rules.engine]
            future = pools[job.inbox.rules.engine].submit(
                process_file,
                job.path,
                job.inbox,
                engine,
                force=force,
                retry_failed=retry_failed,
                follow_symlinks=follow_symlinks,
                on_page=None if on_page is None else functools.partial(on_page, job.path),
                resume=resume,
            )
            pending[future] = job

        for engine_jobs in by_engine.values():
            for job in engine_jobs:
                submit(job)

        def record(job: Job, outcome: Outcome) -> None:
            finisher.finish(job.path, job.inbox, outcome, engine=job.inbox.rules.engine)
            report.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                outcome = future.result()
                if isinstance(outcome.error, BudgetSpent):
                    # The day's requests are used up: the files not started yet are
                    # left for later as they are, without reading them for nothing.
                    for waiting, waiting_job in list(pending.items()):
                        same_gate = waiting_job.inbox.rules.engine == job.inbox.rules.engine
                        if same_gate and waiting.cancel():
                            del pending[waiting]
                            record(
                                waiting_job, replace(outcome, path=waiting_job.path, seconds=0.0)
                            )
                if _should_wait_out(outcome) and not stop.is_set() and report.aborted is None:
                    logger.warning(
                        "%s: %s; trying again when the pause ends", job.path, outcome.message
                    )
                    submit(job)
                    continue
                if isinstance(outcome.error, InvalidKeyError) and report.aborted is None:
                    report.aborted = str(outcome.error)
                    stop.set()
                record(job, outcome)
    finally:
        stop.set()
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        for engine in built.values():
            engine.close()
        hooks.close(timeout=HOOK_DRAIN_SECONDS)
    return report


def _should_wait_out(outcome: Outcome) -> bool:
    error = outcome.error
    return (
        isinstance(error, RateLimitError)
        and not isinstance(error, BudgetSpent)
        and error.retry_after <= MAX_RATE_LIMIT_WAIT
    )


def describe(outcome: Outcome) -> str:
    """One log line for an outcome."""
    if outcome.status is Status.DONE:
        return f"done {outcome.path}: {outcome.message} in {outcome.seconds:.2f} s"
    if outcome.classification:
        return f"{outcome.status} {outcome.path}: [{outcome.classification}] {outcome.message}"
    return f"{outcome.status} {outcome.path}: {outcome.message}"
