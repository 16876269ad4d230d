"""Per-inbox hooks: run a command or POST a JSON summary after a file is done or failed.

Each configured hook has its own lane: a bounded queue and one thread. A slow
or hanging hook therefore never holds up OCR, nor any other hook; when its
queue is full the event is dropped with a warning. Commands run without a shell (an argv list with placeholders
filled in), with stdin closed, in their own process group so a timeout kills
the whole group, and without ocrwatch's secrets in their environment. A POST
carries the same summary as JSON. Failures are logged with the hook's exit
status or HTTP status; they never change the file's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ocrwatch import __version__
from ocrwatch.config import HookConfig

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000
OUTPUT_EXCERPT = 300
HIDDEN_ENVIRONMENT = (
    "OCRSPACE_API_KEY",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "CREDENTIALS_DIRECTORY",
)
"""Not passed to hook commands: the key, and the variables that would let a hook speak for ocrwatch to systemd."""


@dataclass(frozen=True)
class FileEvent:
    """A finished file as hooks see it: final paths (after any move) and the outcome."""

    status: str
    """``done``, ``failed`` or ``partial`` (a document some of whose pages failed)."""
    image: Path
    text: Path | None
    record: Path | None
    """The ``.json`` sidecar (done and partial)."""
    error: Path | None
    """The ``.error.json`` sidecar (failed, and partial: it lists the failed pages)."""
    inbox: Path | None
    message: str = ""
    classification: str | None = None
    chars: int = 0
    seconds: float = 0.0
    engine: str = ""
    formats: Mapping[str, Path] = field(default_factory=dict)
    """The other files written, by format (``hocr``, ``alto``, ``pdf``)."""

    def placeholders(self) -> dict[str, str]:
        return {
            "image": str(self.image),
            "text": str(self.text or ""),
            "json": str(self.record or ""),
            "error": str(self.error or ""),
            "status": self.status,
            "inbox": str(self.inbox or ""),
            "name": self.image.name,
            **{name: str(self.formats.get(name, "")) for name in ("hocr", "alto", "pdf")},
        }

    def summary(self) -> dict[str, Any]:
        """The JSON body of a POST."""
        return {
            "ocrwatch": __version__,
            "status": self.status,
            "image": str(self.image),
            "text_path": str(self.text) if self.text else None,
            "json_path": str(self.record) if self.record else None,
            "error_path": str(self.error) if self.error else None,
            **{f"{name}_path": str(path) for name, path in self.formats.items()},
            "inbox": str(self.inbox) if self.inbox else None,
            "engine": self.engine,
            "message": self.message,
            "classification": self.classification,
            "chars": self.chars,
            "seconds": round(self.seconds, 4),
        }


def fill(argument: str, values: Mapping[str, str]) -> str:
    """``argument`` with each ``{name}`` placeholder replaced (other braces left alone)."""
    for name, value in values.items():
        argument = argument.replace("{" + name + "}", value)
    return argument


class HookRunner:
    """Runs hooks in the background, one lane per hook; :meth:`submit` never blocks."""

    def __init__(
        self, *, queue_size: int = QUEUE_SIZE, env: Mapping[str, str] | None = None
    ) -> None:
        self._queue_size = queue_size
        self._lanes: dict[HookConfig, queue.Queue[FileEvent | None]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        source = os.environ if env is None else env
        self._env = {key: value for key, value in source.items() if key not in HIDDEN_ENVIRONMENT}
        self._session = requests.Session()
        self._session.headers["User-Agent"] = f"ocrwatch/{__version__}"

    def submit(self, hooks: Sequence[HookConfig], event: FileEvent) -> None:
        """Queue the hooks that ``event`` triggers."""
        for hook in hooks:
            if event.status not in hook.events:
                continue
            lane = self._lane(hook)
            try:
                lane.put_nowait(event)
            except queue.Full:
                logger.warning(
                    "hook queue full (%d waiting); dropped a hook for %s", lane.qsize(), event.image
                )

    def _lane(self, hook: HookConfig) -> queue.Queue[FileEvent | None]:
        with self._lock:
            lane = self._lanes.get(hook)
            if lane is None:
                lane = self._lanes[hook] = queue.Queue(self._queue_size)
                thread = threading.Thread(
                    target=self._loop,
                    args=(hook, lane),
                    name=f"hook-{len(self._lanes)}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            return lane

    def _loop(self, hook: HookConfig, lane: queue.Queue[FileEvent | None]) -> None:
        while True:
            event = lane.get()
            try:
                if event is None:
                    return
                try:
                    if hook.command is not None:
                        self._run(hook, event)
                    else:
                        self._post(hook, event)
                except Exception:  # noqa: BLE001 - a broken hook must never stop later ones
                    logger.exception("hook for %s failed", event.image)
            finally:
                lane.task_done()

    def _run(self, hook: HookConfig, event: FileEvent) -> None:
        assert hook.command is not None
        values = event.placeholders()
        argv = [fill(argument, values) for argument in hook.command]
        env = {**self._env, **{f"OCRWATCH_{name.upper()}": value for name, value in values.items()}}
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            logger.error(
                "hook %s for %s could not start: %s", argv[0], event.image, error.strerror or error
            )
            return
        try:
            output, _ = process.communicate(timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            logger.error("hook %s for %s killed after %g s", argv[0], event.image, hook.timeout)
            return
        if process.returncode != 0:
            excerpt = output.decode(errors="replace").strip()[-OUTPUT_EXCERPT:]
            logger.error(
                "hook %s for %s exited with %d: %s",
                argv[0],
                event.image,
                process.returncode,
                excerpt,
            )
        else:
            logger.debug("hook %s for %s done", argv[0], event.image)

    def _post(self, hook: HookConfig, event: FileEvent) -> None:
        assert hook.url is not None
        try:
            response = self._session.post(hook.url, json=event.summary(), timeout=hook.timeout)
        except requests.RequestException as error:
            logger.error("hook POST to %s for %s failed: %s", hook.url, event.image, error)
            return
        if response.status_code >= 300:
            logger.error(
                "hook POST to %s for %s answered HTTP %d",
                hook.url,
                event.image,
                response.status_code,
            )

    def close(self, timeout: float = 10.0) -> None:
        """Let queued hooks finish for up to ``timeout`` seconds in all, then stop."""
        with self._lock:
            lanes = list(self._lanes.values())
        deadline = time.monotonic() + timeout
        for lane in lanes:
            finished = threading.Event()

            def wait_for(
                lane: queue.Queue[FileEvent | None] = lane, finished: threading.Event = finished
            ) -> None:
                lane.join()
                finished.set()

            threading.Thread(target=wait_for, daemon=True).start()
            if not finished.wait(max(0.0, deadline - time.monotonic())):
                logger.warning(
                    "%d hook call(s) still queued at shutdown were dropped", lane.qsize()
                )
            with contextlib.suppress(queue.Full):
                lane.put_nowait(None)
        self._session.close()
