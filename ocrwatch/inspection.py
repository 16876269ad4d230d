"""Looking at a daemon and its config from outside: ``status``, ``failed``, ``retry``, ``check``'s inboxes.

Nothing here talks to the daemon except ``retry``'s SIGUSR1 (rescan now). The
status comes from ``status.json``, which the daemon rewrites atomically every
few seconds in its state folder; whether it runs comes from the process id in
its lock file. Failures come from the ``.error.json`` sidecars themselves,
which are the truth whether or not a daemon runs. What ``check`` prints of
each inbox (engine and why, rules, formats) is the plan in words. In
distributed mode the cluster's side of these commands is
:mod:`ocrwatch.cluster.inspect`'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrwatch import after, sidecar
from ocrwatch.plan import InboxPlan, Plan
from ocrwatch.sidecar import ERROR_SUFFIX
from ocrwatch.store import LOCK_FILE, STATUS_FILE, default_state_dir


@dataclass(frozen=True)
class DaemonState:
    """What the state folder says about the daemon."""

    state_dir: Path
    pid: int | None
    running: bool
    snapshot: dict[str, Any] | None


def state_dir_candidates(plan: Plan, env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a daemon running this config keeps its state, most specific first.

    The config's ``state_dir`` wins. Otherwise the daemon may have been started
    by the shipped units (``StateDirectory=``: /var/lib/ocrwatch, or
    /var/lib/ocrwatch/NAME for ``ocrwatch@NAME`` reading /etc/ocrwatch/NAME.yaml,
    or the user unit's folder), or by hand (the XDG state folder).
    """
    env = os.environ if env is None else env
    if plan.config.state_dir is not None:
        return [plan.config.state_dir]
    candidates = []
    if env.get("STATE_DIRECTORY"):
        candidates.append(Path(env["STATE_DIRECTORY"].split(":")[0]))
    config = plan.loaded.path
    if config is not None and config.resolve().parent == Path("/etc/ocrwatch"):
        stem = config.resolve().stem
        candidates.append(
            Path("/var/lib/ocrwatch") if stem == "config" else Path("/var/lib/ocrwatch") / stem
        )
    home = Path(os.path.expanduser("~"))
    for base in (
        env.get("XDG_STATE_HOME") or str(home / ".local/state"),
        env.get("XDG_CONFIG_HOME") or str(home / ".config"),
    ):
        candidates.append(Path(base) / "ocrwatch" / "state")
    candidates.append(default_state_dir(None, env))
    return list(dict.fromkeys(candidates))


def daemon_state(plan: Plan, env: Mapping[str, str] | None = None) -> DaemonState:
    """Read the daemon's lock and status files, without locking anything."""
    candidates = state_dir_candidates(plan, env)
    state_dir = next(
        (
            folder
            for folder in candidates
            if (folder / STATUS_FILE).exists() or (folder / LOCK_FILE).exists()
        ),
        candidates[-1],
    )
    pid = None
    with contextlib.suppress(OSError, ValueError):
        pid = int((state_dir / LOCK_FILE).read_text().strip() or "0") or None
    snapshot = None
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        snapshot = loaded if isinstance(loaded, dict) else None
    return DaemonState(state_dir, pid, pid is not None and _is_ocrwatch(pid), snapshot)


def _is_ocrwatch(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"ocrwatch" in command


def render_status(state: DaemonState) -> str:
    """The text ``ocrwatch status`` prints."""
    snapshot = state.snapshot
    if not state.running:
        head = f"ocrwatch is not running (state folder {state.state_dir})"
        if snapshot is None:
            return head + "; no status recorded yet"
        head += f"; last status from {snapshot.get('updated')}:"
    else:
        head = f"ocrwatch is running (pid {state.pid}, since {snapshot.get('started') if snapshot else '?'})"
    if snapshot is None:
        return head
    lines = [head, f"  {snapshot.get('status', '')}"]
    ocrspace = snapshot.get("ocrspace") or {}
    if ocrspace.get("blocked"):
        lines.append(f"  ocr.space: STOPPED, {ocrspace['blocked']}")
    elif ocrspace.get("paused_until"):
        lines.append(
            f"  ocr.space: paused until {ocrspace['paused_until']} ({ocrspace.get('pause_reason')})"
        )
    else:
        lines.append("  ocr.space: requests flowing")
    used, budget = ocrspace.get("requests_today"), ocrspace.get("max_requests_per_day")
    if budget:
        lines.append(f"  ocr.space requests today (UTC): {used} of the daily budget of {budget}")
    elif used:
        lines.append(f"  ocr.space requests today (UTC): {used}")
    for inbox in snapshot.get("inboxes", []):
        lines.append("")
        lines.append(f"  {inbox['path']}")
        lines.append(
            f"    engine {inbox['engine']}, watched by {inbox.get('watch')}: {inbox.get('watch_reason') or ''}"
        )
        lines.append(
            f"    done {inbox['done']}, "
            + (f"partial {inbox['partial']}, " if inbox.get("partial") else "")
            + f"failed {inbox['failed']}, waiting {inbox['waiting']}, "
            f"in progress {inbox['in_progress']} (since start)"
        )
        for document in inbox.get("documents") or []:
            lines.append(
                f"    reading {document['path']}: {document['pages_done']} of "
                f"{document['pages']} pages done"
            )
        if inbox.get("last_error"):
            lines.append(f"    last error ({inbox.get('last_error_at')}): {inbox['last_error']}")
    return "\n".join(lines)


def describe_inbox(plan: Plan, inbox: InboxPlan) -> str:
    """What ``ocrwatch check`` prints of one inbox: its folder, engine and why, its rules."""
    # Late: quota loads the PDF and TIFF readers, which the other commands load only for a document.
    from ocrwatch import quota

    rules = inbox.rules
    config = plan.config
    if rules.engine == "ocrspace":
        engine = (
            f"ocrspace (OCREngine {config.ocrspace.ocr_engine}, upload budget "
            f"{config.ocrspace.max_upload_bytes} bytes, endpoint {', '.join(config.ocrspace.endpoint)})"
        )
    else:
        engine = f"tesseract (local, deskew {'on' if config.tesseract.deskew else 'off'})"
    lines = [
        f"inboxes[{inbox.index}]: {inbox.path}",
        f"  engine:    {engine}",
        f"             because {inbox.engine_reason}",
        f"  language:  {rules.language}",
        f"  patterns:  {' '.join(inbox.config.patterns)}{' (recursive)' if inbox.recursive else ''}",
        f"  documents: {quota.describe_documents(inbox)}",
        f"  crop:      {_describe_rule(rules.crop.describe()) if rules.crop else 'none (whole image)'}",
    ]
    if rules.regions:
        lines.append(
            "  regions:   "
            + "; ".join(f"{name} {_describe_rule(rule.describe())}" for name, rule in rules.regions)
        )
    lines.append(f"  output:    {inbox.output or 'next to each image'}")
    lines.append(f"  formats:   {_describe_formats(inbox)}")
    options = [f"orientation detection {'on' if rules.detect_orientation else 'off'}"]
    if rules.engine == "ocrspace":
        options += [
            f"scale {'on' if rules.option('scale') else 'off'}",
            f"table {'on' if rules.option('table') else 'off'}",
        ]
    lines.append(f"  options:   {', '.join(options)}")
    return "\n".join(lines)


def _describe_formats(inbox: InboxPlan) -> str:
    outputs = inbox.outputs
    described = ", ".join(outputs.formats)
    if "pdf" in outputs.formats:
        pdf = inbox.config.searchable_pdf
        level = "plain" if pdf.pdfa == "none" else f"PDF/A-{pdf.pdfa}, else {pdf.on_pdfa_failure}"
        described += (
            f" (searchable PDF: {level}, rotate pages {'on' if pdf.rotate_pages else 'off'})"
        )
    if inbox.rules.orient_locally:
        described += "; pages turned upright here before upload, for word boxes"
    return described


def _describe_rule(rule: dict[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in rule.items())


@dataclass(frozen=True)
class Failure:
    """One failed file and its error sidecar (a partial document's lists its failed pages)."""

    image: Path
    error_file: Path
    record: dict[str, Any]
    inbox: InboxPlan

    @property
    def classification(self) -> str:
        return str((self.record.get("error") or {}).get("classification", "?"))

    @property
    def message(self) -> str:
        return str((self.record.get("error") or {}).get("message", ""))

    def describe(self) -> dict[str, Any]:
        return {
            "image": str(self.image),
            "error_file": str(self.error_file),
            "inbox": str(self.inbox.path),
            "status": self.record.get("status"),
            "classification": self.classification,
            "message": self.message,
            "failed_pages": self.record.get("failed_pages"),
            "attempts": self.record.get("attempts"),
            "last_attempt": self.record.get("last_attempt"),
        }


def failures(plan: Plan) -> list[Failure]:
    """Every ``.error.json`` in the inboxes, their sidecar folders and failed folders."""
    found: dict[Path, Failure] = {}
    for inbox in plan.inboxes:
        for folder in _error_folders(inbox):
            for error_file in sorted(
                folder.rglob("*" + ERROR_SUFFIX)
                if inbox.recursive
                else folder.glob("*" + ERROR_SUFFIX)
            ):
                record = sidecar.load(error_file)
                if record is None or record.get("status") not in ("failed", "partial"):
                    continue
                image = error_file.with_name(error_file.name[: -len(ERROR_SUFFIX)])
                if not image.exists():
                    source = Path(str((record.get("source") or {}).get("path", image)))
                    image = source if source.exists() else image
                found.setdefault(error_file, Failure(image, error_file, record, inbox))
    return sorted(found.values(), key=lambda failure: str(failure.image))


def _error_folders(inbox: InboxPlan) -> list[Path]:
    folders = [inbox.path]
    for folder in (inbox.output, inbox.failed_dir):
        if folder is not None and folder.is_dir() and folder not in folders:
            folders.append(folder)
    return [folder for folder in folders if folder.is_dir()]


@dataclass(frozen=True)
class Retried:
    """A failed file sent back: what was done, and where the file is now."""

    failure: Failure
    action: str
    path: Path


def retry(plan: Plan, targets: list[Path]) -> list[Retried]:
    """Send failed files back: drop their error sidecars; files in a failed folder move back.

    ``targets`` empty means every failure; otherwise images or error sidecars.
    Returns what was done to each. Raises OSError when a file cannot be moved.
    """
    chosen = failures(plan)
    if targets:
        wanted = {Path(os.path.abspath(target)) for target in targets}
        chosen = [f for f in chosen if f.image in wanted or f.error_file in wanted]
    done = []
    for failure in chosen:
        inbox = failure.inbox
        if inbox.failed_dir is not None and failure.image.is_relative_to(inbox.failed_dir):
            target_folder = inbox.path / failure.image.parent.relative_to(inbox.failed_dir)
            target = after.free_name(target_folder, failure.image.name)
            sidecar.remove_quietly(failure.error_file)
            target_folder.mkdir(parents=True, exist_ok=True)
            after.move(failure.image, target)
            done.append(Retried(failure, f"moved back to {target}", target))
        else:
            sidecar.remove_quietly(failure.error_file)
            pages = failure.record.get("failed_pages")
            action = "error sidecar removed" + (
                f"; its {len(pages)} failed page(s) will be read again" if pages else ""
            )
            done.append(Retried(failure, action, failure.image))
    return done


def ask_for_rescan(state: DaemonState) -> bool:
    """Ask a running daemon to rescan now (SIGUSR1); False when none runs."""
    if not state.running or state.pid is None:
        return False
    try:
        os.kill(state.pid, signal.SIGUSR1)
    except OSError:
        return False
    return True
