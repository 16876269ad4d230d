"""Is this file already done? The one answer, for the scanner, ``once`` and the pipeline.

The sidecars are the truth. A ``.json`` is current when it was written with
the same settings fingerprint for the same bytes; an ``.error.json`` is
current when, in addition, the file has not been touched since (its ctime
is the same), so a chmod or a rewrite gives a failed file another chance.
A partial document (some pages failed) has both: its ``.json`` is current
while its ``.error.json`` is there, so removing that (``ocrwatch retry``)
sends it back for its failed pages.

Records of schema version 1 (before documents) stay current for what they
covered: a file read as one page whose fingerprint is one version 1 gave
these rules. A multi-page TIFF of which version 1 read only the first page
is read again.

Cheap first: a caller that has not read the file passes its ``stat`` and a
way to hash it; size and mtime then decide, and the file is hashed only when
the mtime alone differs. A caller that has read the bytes passes their
sha256, which decides alone. The daemon's state store may stand in front as
a cache: a cached verdict counts only while the image and the sidecar still
have the size and mtime they had when it was cached.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ocrwatch import sidecar
from ocrwatch.errors import FileError
from ocrwatch.outputs.write import OutputSettings, stale
from ocrwatch.plan import InboxPlan, Rules
from ocrwatch.sidecar import SidecarPaths
from ocrwatch.source import SourceGone, hash_file
from ocrwatch.store import CachedFile, StateStore

LEGACY_VERSION = 1
"""The sidecar version before documents: one page per file, ``overlay`` in the fingerprint."""

Finished = Literal["done", "failed", "partial"]


@dataclass(frozen=True)
class FileFacts:
    """What identifies the version of a file being judged."""

    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str | None = None
    """Known when the caller has read the bytes."""
    hasher: Callable[[], str | None] | None = None
    """Reads and hashes the file on demand (None when it cannot be read)."""

    @classmethod
    def of_stat(
        cls, info: os.stat_result, hasher: Callable[[], str | None] | None = None
    ) -> FileFacts:
        return cls(info.st_size, info.st_mtime_ns, info.st_ctime_ns, hasher=hasher)

    def content_hash(self) -> str | None:
        if self.sha256 is not None:
            return self.sha256
        return self.hasher() if self.hasher is not None else None


def facts_of(path: Path, *, follow_symlinks: bool) -> FileFacts | None:
    """``path`` as a scan judges it: its stat (of the link itself unless links are followed),
    hashed only if :func:`verdict` asks. None when the file is gone since it was listed."""
    try:
        info = os.stat(path) if follow_symlinks else os.lstat(path)
    except OSError:
        return None

    @functools.cache  # a partial document's two sidecars may both ask
    def content_hash() -> str | None:
        try:
            return hash_file(path, follow_symlinks=follow_symlinks)
        except (SourceGone, FileError):
            return None

    return FileFacts.of_stat(info, content_hash)


@dataclass(frozen=True)
class Verdict:
    """A current sidecar: ``done`` (the ``.json``), ``failed`` (the ``.error.json``), or
    ``partial`` (both: a document some of whose pages failed)."""

    status: Finished
    message: str


def verdict(
    path: Path,
    inbox: InboxPlan,
    facts: FileFacts,
    *,
    failures: bool = True,
    cache: StateStore | None = None,
) -> Verdict | None:
    """The current sidecar of ``path`` as ``facts`` describe it, or None when it must be read.

    ``failures=False`` ignores error sidecars and partial documents (``once --retry-failed``).
    """
    paths = inbox.sidecars(path)
    if cache is not None and facts.sha256 is None:
        cached = _cached(cache, path, paths, cache_key(inbox), facts)
        if (
            cached is not None
            and (failures or cached == "done")
            and (cached == "failed" or _files_exist(paths, inbox.outputs))
        ):
            return Verdict(cached, "cached verdict is current")
    found = _judge(paths, inbox, facts, failures=failures)
    if found is not None and cache is not None:
        remember(cache, path, inbox, found.status)
    return found


def _judge(
    paths: SidecarPaths, inbox: InboxPlan, facts: FileFacts, *, failures: bool
) -> Verdict | None:
    rules = inbox.rules
    record = _read_record(paths, rules, facts)
    if record is not None and stale(record, paths, inbox.outputs):
        return None  # read, but some file the inbox wants is missing: see outputs_due
    if record is not None and record.get("status") != "partial":
        return Verdict("done", "sidecar is current")
    # Only now the error sidecar: most files a scan judges are done, and have none.
    failure = sidecar.load(paths.error) if failures else None
    if record is not None:  # a partial document, read under these rules from these bytes
        if failure is None or failure.get("status") != "partial" or not _same_file(failure, facts):
            return None
        return Verdict("partial", f"partial before: {_message(failure)}")
    if failure is None or failure.get("status") != "failed" or not same_settings(failure, rules):
        return None
    known = failure.get("source") or {}
    if known.get("ctime_ns") != facts.ctime_ns:
        return None
    # An error sidecar written without reading the file (an internal error) has no sha256.
    same_stat = (known.get("size"), known.get("mtime_ns")) == (facts.size, facts.mtime_ns)
    if not same_stat and (facts.sha256 is None or known.get("sha256") != facts.sha256):
        return None
    return Verdict("failed", f"failed before: {_message(failure)}")


def outputs_due(
    path: Path, inbox: InboxPlan, facts: FileFacts
) -> tuple[dict[str, Any], list[str]] | None:
    """The record of ``path`` and the formats to write, when its OCR is current (done or
    partial) but some file the inbox wants is missing, changed, or made under other options.

    None when the file must be read (or is current). The record may be one
    without words (version 1): :func:`ocrwatch.outputs.model.has_words` says
    whether the formats can be written from it.
    """
    paths = inbox.sidecars(path)
    head = _read_record(paths, inbox.rules, facts)
    if head is None:
        return None
    due = stale(head, paths, inbox.outputs)
    record = sidecar.load(paths.result) if due else None
    return (record, due) if record is not None else None


def _read_record(paths: SidecarPaths, rules: Rules, facts: FileFacts) -> dict[str, Any] | None:
    """The head of ``paths``' result record when it was made under ``rules`` from the bytes
    ``facts`` describe (done or partial, whatever files it lists); else None."""
    record = sidecar.load_head(paths.result)
    if record is None or not same_settings(record, rules) or not _same_file(record, facts):
        return None
    return record


def is_own_output(path: Path, inbox: InboxPlan) -> bool:
    """True when ``path`` is a searchable PDF ocrwatch wrote: its input's record lists it with
    this size and mtime. A file merely named ``x.ocr.pdf`` is a user's, and an input."""
    name = path.name
    if not name.endswith(sidecar.PDF_SUFFIX) or len(name) == len(sidecar.PDF_SUFFIX):
        return False
    made_from = path.with_name(name[: -len(sidecar.PDF_SUFFIX)])
    record = sidecar.load_head(inbox.sidecars(made_from).result)
    info = stat_of(path)
    if record is None or info is None:
        return False
    return any(
        entry.get("format") == "pdf"
        and entry.get("name") == name
        and (entry.get("size"), entry.get("mtime_ns")) == (info.st_size, info.st_mtime_ns)
        for entry in record.get("outputs") or ()
    )


OWN_OUTPUT_GRACE_SECONDS = 10.0
"""How long a new ``x.ocr.pdf`` beside its ``x`` may be ocrwatch's own, still being committed."""


def may_be_own_output(path: Path, inbox: InboxPlan) -> bool:
    """True when ``path`` may be a searchable PDF ocrwatch is committing right now.

    The files of a result go into place before its ``.json``, which lists
    them, so for a moment the new ``x.ocr.pdf`` is listed nowhere. A file of
    that name, beside its ``x``, in an inbox that writes searchable PDFs,
    younger than :data:`OWN_OUTPUT_GRACE_SECONDS` and not yet listed, is
    looked at again shortly (by then :func:`is_own_output` knows); an older
    one is a user's.
    """
    name = path.name
    if "pdf" not in inbox.outputs.formats or not name.endswith(sidecar.PDF_SUFFIX):
        return False
    made_from = path.with_name(name[: -len(sidecar.PDF_SUFFIX)])
    info = stat_of(path)
    if info is None or stat_of(made_from) is None:
        return False
    return time.time() - info.st_mtime_ns / 1e9 < OWN_OUTPUT_GRACE_SECONDS


def cache_key(inbox: InboxPlan) -> str:
    """What a cached verdict must have been made under: the settings fingerprint, and the
    files the inbox writes when they are not the default."""
    extra = inbox.outputs.cache_key
    return f"{inbox.rules.fingerprint}+{extra}" if extra else inbox.rules.fingerprint


def _files_exist(paths: SidecarPaths, outputs: OutputSettings) -> bool:
    """True when every model format the inbox writes has a file (a cheap check of a cached
    verdict: a deleted ``.alto.xml`` is written again)."""
    return all(stat_of(paths.output(name)) is not None for name in outputs.model_formats)


def same_settings(record: dict[str, Any], rules: Rules) -> bool:
    """True when ``record`` (a result or an error record) was written under ``rules``.

    A version 1 record counts when it read the whole file: one page (v1 read
    only a multi-page TIFF's first page) and a fingerprint v1 gave these rules.
    A PDF's record must also match the PDF options.
    """
    if record.get("schema_version") == LEGACY_VERSION:
        image = record.get("image") or {}
        if image.get("format") == "TIFF" and (image.get("frames") or 1) > 1:
            return False
        return record.get("settings_fingerprint") in rules.legacy_fingerprints
    if record.get("settings_fingerprint") != rules.fingerprint:
        return False
    document = record.get("document") or {}
    if document.get("format") == "PDF" and record.get("status") != "failed":
        return record.get("pdf_fingerprint") == rules.pdf_fingerprint
    return True


def _same_file(record: dict[str, Any], facts: FileFacts) -> bool:
    """True when ``record`` was made from the bytes ``facts`` describe (hashing only if it must)."""
    if facts.sha256 is not None:
        return sidecar.same_content(record, facts.sha256)
    same = sidecar.matches(record, size=facts.size, mtime_ns=facts.mtime_ns)
    if same is None:
        digest = facts.content_hash()
        same = digest is not None and sidecar.same_content(record, digest)
    return same


def _message(failure: dict[str, Any]) -> str:
    error = failure.get("error") or {}
    return str(error.get("message", "unknown reason"))


def _cached(
    cache: StateStore, path: Path, paths: SidecarPaths, fingerprint: str, facts: FileFacts
) -> Finished | None:
    entry = cache.cached(path)
    if (
        entry is None
        or entry.fingerprint != fingerprint
        or (entry.size, entry.mtime_ns) != (facts.size, facts.mtime_ns)
    ):
        return None
    written = stat_of(paths.result if entry.status == "done" else paths.error)
    if written is None or (written.st_size, written.st_mtime_ns) != (
        entry.sidecar_size,
        entry.sidecar_mtime_ns,
    ):
        return None
    if entry.status == "partial":
        # The record too: a retry rewrites it before the error sidecar, in one commit.
        return "partial" if stat_of(paths.result) is not None else None
    return "done" if entry.status == "done" else "failed"


def remember(cache: StateStore, path: Path, inbox: InboxPlan, status: Finished) -> None:
    """Cache that ``path`` has a current sidecar, keyed by its and the sidecar's size and mtime.

    A partial document is keyed by its error sidecar, whose removal sends it back.
    """
    paths = inbox.sidecars(path)
    image = stat_of(path)
    written = stat_of(paths.result if status == "done" else paths.error)
    if image is None or written is None:
        return
    cache.remember(
        path,
        CachedFile(
            size=image.st_size,
            mtime_ns=image.st_mtime_ns,
            fingerprint=cache_key(inbox),
            status=status,
            sidecar_size=written.st_size,
            sidecar_mtime_ns=written.st_mtime_ns,
        ),
    )


def stat_of(path: Path) -> os.stat_result | None:
    """``os.stat(path)``, or None when the file cannot be stat'ed."""
    try:
        return os.stat(path)
    except OSError:
        return None
