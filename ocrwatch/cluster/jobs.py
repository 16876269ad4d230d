"""What travels through the queue: a job per file, and the names of things in Redis.

A job names a file by its inbox's ``id`` and its path relative to the inbox
(hosts may mount the share in different places), with the size and mtime
the scanner saw, the inbox's settings fingerprint and a format version. It
is JSON, never pickle: a host that meets a version it does not know refuses
the job instead of misreading it.

The settings fingerprint covers what makes two hosts treat a file alike:
the rules that shape the text (the sidecar's own fingerprints), the files
written, and what happens to the file after. Paths do not enter it; each
host has its own mount points.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ocrwatch.plan import InboxPlan

JOB_VERSION = 1
"""Bumped when a job's fields change meaning; hosts refuse versions they do not know."""
GROUP = "workers"
"""The one consumer group on every inbox's stream."""


class JobError(ValueError):
    """A queue entry this host cannot read (another version, or not a job at all)."""


@dataclass(frozen=True)
class Job:
    """One file to read, as the scanner saw it."""

    inbox: str
    path: str
    """Relative to the inbox, with ``/`` separators."""
    size: int
    mtime_ns: int
    settings: str
    by: str
    """The scanner host that queued it (for status and logs)."""

    @property
    def facts(self) -> str:
        """What enqueue-once compares: the same file unchanged is queued once."""
        return f"{self.size}:{self.mtime_ns}"

    def encode(self) -> str:
        return json.dumps(
            {
                "v": JOB_VERSION,
                "inbox": self.inbox,
                "path": self.path,
                "size": self.size,
                "mtime_ns": self.mtime_ns,
                "settings": self.settings,
                "by": self.by,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Job:
        """Read a job; raises JobError for anything but a job of a known version."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise JobError(f"not a job: {error}") from None
        if not isinstance(data, dict):
            raise JobError("not a job: not a JSON object")
        version = data.get("v")
        if version != JOB_VERSION:
            raise JobError(
                f"job format version {version!r}; this ocrwatch reads version {JOB_VERSION} "
                "(a host of another version queued it: upgrade every host)"
            )
        try:
            job = cls(
                inbox=str(data["inbox"]),
                path=str(data["path"]),
                size=int(data["size"]),
                mtime_ns=int(data["mtime_ns"]),
                settings=str(data["settings"]),
                by=str(data.get("by", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise JobError(f"job lacks a field or has a wrong one: {error}") from None
        relative = PurePosixPath(job.path)
        if relative.is_absolute() or ".." in relative.parts or not job.path:
            raise JobError(f"job path {job.path!r} is not inside its inbox")
        return job

    def local_path(self, inbox: InboxPlan) -> Path:
        """Where this host finds the file: under its own mount of the inbox."""
        return inbox.path.joinpath(*PurePosixPath(self.path).parts)


def inbox_id(inbox: InboxPlan) -> str:
    """The inbox's name across hosts (the config requires one with ``queue:``)."""
    if inbox.config.id is None:
        raise ValueError(f"inbox {inbox.path} has no id")
    return inbox.config.id


def relative_path(path: Path, inbox: InboxPlan) -> str:
    """``path`` relative to its inbox, with ``/``, as jobs name files."""
    return path.relative_to(inbox.path).as_posix()


def settings_fingerprint(inbox: InboxPlan) -> str:
    """What two hosts must agree on to read this inbox's files alike (see the module's docstring)."""
    config = inbox.config
    described: dict[str, Any] = {
        "rules": inbox.rules.fingerprint,
        "pdf": inbox.rules.pdf_fingerprint,
        "formats": list(config.formats),
        "searchable_pdf": config.searchable_pdf.model_dump(mode="json"),
        "after": config.after,
        "patterns": list(config.patterns),
        "recursive": config.recursive,
        "output": config.output is not None,
    }
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def consumer_name(configured: str | None, state_dir: Path) -> str:
    """This host's stable name in the cluster: configured, else host name and state folder."""
    if configured:
        return configured
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{digest}"


class Keys:
    """Every Redis key of one installation, under its namespace.

    An inbox's keys share a hash tag (``ns:{inbox}:...``), as do an API key's
    (``ns:api:{hash}:...``), so that the scripts touching several of them
    would also run on a Redis Cluster.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _inbox(self, inbox: str, what: str) -> str:
        return f"{self.namespace}:{{{inbox}}}:{what}"

    def stream(self, inbox: str) -> str:
        return self._inbox(inbox, "jobs")

    def queued(self, inbox: str, path: str) -> str:
        """The enqueue-once mark of one file: its facts while a job for them is queued."""
        digest = hashlib.sha256(path.encode()).hexdigest()[:32]
        return self._inbox(inbox, f"queued:{digest}")

    def starts(self, inbox: str) -> str:
        """Per entry id: how many times a host started reading it without finishing."""
        return self._inbox(inbox, "starts")

    def scanner(self, inbox: str) -> str:
        """The scanner lease: the host that watches the inbox and queues its files."""
        return self._inbox(inbox, "scanner")

    def settings(self, inbox: str) -> str:
        """The scanner's settings fingerprint, which workers compare with their own."""
        return self._inbox(inbox, "settings")

    def pages(self, inbox: str, path: str) -> str:
        """Pages of a document already read (shared per-page progress)."""
        digest = hashlib.sha256(path.encode()).hexdigest()[:32]
        return self._inbox(inbox, f"pages:{digest}")

    def host(self, name: str) -> str:
        """A host's presence: its roles and state, expiring when it stops renewing."""
        return f"{self.namespace}:host:{name}"

    def hosts_pattern(self) -> str:
        return f"{self.namespace}:host:*"

    def api(self, key_hash: str, what: str) -> str:
        """The shared ocr.space budget of one API key (by hash; the key never reaches Redis)."""
        return f"{self.namespace}:api:{{{key_hash}}}:{what}"
