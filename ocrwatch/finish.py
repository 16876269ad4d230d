"""What follows a file's turn, the same in ``once`` and ``run``.

After :func:`ocrwatch.pipeline.process_file` has made the sidecars durable
(or written the error sidecar), the :class:`Finisher` applies the inbox's
after-action (keep, move to ``done_dir``, delete; a failed file to
``failed_dir``), updates the daemon's cache, hands the hooks the final paths
and counts the file in the metrics. It never raises for a file: a move that
fails is logged and the image stays where it is, with its text safe.

A file found finished whose inbox moves or deletes finished files was cut
short by a crash between its sidecars and its move; its turn is finished
here too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ocrwatch import after, current
from ocrwatch.config import HookEvent
from ocrwatch.hooks import FileEvent, HookRunner
from ocrwatch.outcome import Outcome, Status
from ocrwatch.plan import InboxPlan
from ocrwatch.store import StateStore

if TYPE_CHECKING:
    from ocrwatch.metrics import Metrics  # the daemon's, with prometheus_client; ``once`` has none

logger = logging.getLogger(__name__)

COUNTED = frozenset({Status.DONE, Status.FAILED, Status.PARTIAL, Status.SKIPPED})
"""Outcomes the metrics count as a finished file."""


class Finisher:
    """The one finishing path; thread-safe (hooks queue, the store and metrics lock)."""

    def __init__(
        self, hooks: HookRunner, *, metrics: Metrics | None = None, cache: StateStore | None = None
    ) -> None:
        self.hooks = hooks
        self.metrics = metrics
        self.cache = cache

    def finish(self, path: Path, inbox: InboxPlan, outcome: Outcome, *, engine: str) -> Path | None:
        """Do what follows ``outcome``; return where the image is now (None: deleted)."""
        status = outcome.status
        if self.metrics is not None and status in COUNTED:
            self.metrics.file_finished(str(inbox.path), status, outcome.seconds)
        if status is Status.PARTIAL:
            return self._finish_partial(path, inbox, outcome, engine=engine)
        if status.finished:
            return self._finish(path, inbox, outcome, success=status is Status.DONE, engine=engine)
        if status is Status.KNOWN_PARTIAL and self.cache is not None:
            current.remember(self.cache, path, inbox, "partial")
        if status in (Status.SKIPPED, Status.KNOWN_FAILURE):
            success = status is Status.SKIPPED
            if after.changes_location(inbox, success=success):
                logger.info("%s %s: finishing what a restart interrupted", status, path)
                return self._finish(path, inbox, outcome, success=success, engine=engine)
            if success and self.cache is not None:
                current.remember(self.cache, path, inbox, "done")
        return path

    def _finish_partial(
        self, path: Path, inbox: InboxPlan, outcome: Outcome, *, engine: str
    ) -> Path:
        """A partial document stays where it is (neither done nor failed), its hooks told so."""
        if self.cache is not None:
            self.cache.clear_attempts(path)
            current.remember(self.cache, path, inbox, "partial")
        if inbox.config.hooks:
            self.hooks.submit(
                inbox.config.hooks,
                event(path, inbox, path, outcome, status="partial", engine=engine),
            )
        return path

    def _finish(
        self, path: Path, inbox: InboxPlan, outcome: Outcome, *, success: bool, engine: str
    ) -> Path | None:
        if self.cache is not None:
            self.cache.clear_attempts(path)
        final: Path | None = path
        if after.changes_location(inbox, success=success):
            try:
                final = after.finish(path, inbox, success=success)
            except OSError as error:
                logger.error(
                    "%s: cannot %s it: %s", path, inbox.config.after if success else "move", error
                )
        if self.cache is not None:
            if final == path:
                current.remember(self.cache, path, inbox, "done" if success else "failed")
            else:
                self.cache.forget(path)
        if inbox.config.hooks:
            self.hooks.submit(
                inbox.config.hooks,
                event(
                    path,
                    inbox,
                    final,
                    outcome,
                    status="done" if success else "failed",
                    engine=engine,
                ),
            )
        return final


def event(
    path: Path,
    inbox: InboxPlan,
    final: Path | None,
    outcome: Outcome,
    *,
    status: HookEvent,
    engine: str,
) -> FileEvent:
    """The hook event for a finished file, with the paths as they are after the after-action.

    A partial document has all three: its text, its record, and the error sidecar listing
    its failed pages.
    """
    paths = after.sidecars_after(path, inbox, final)
    written = status != "failed"
    return FileEvent(
        status=status,
        image=final or path,
        text=paths.text if written else None,
        record=paths.result if written else None,
        error=None if status == "done" else paths.error,
        inbox=inbox.path if inbox.index is not None else None,
        message=outcome.message,
        classification=outcome.classification,
        chars=outcome.chars,
        seconds=outcome.seconds,
        engine=engine,
        formats={name: paths.output(name) for name in inbox.outputs.model_formats if written},
    )
