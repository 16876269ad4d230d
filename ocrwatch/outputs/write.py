"""Which files an inbox writes for each input, which of them are stale, and staging them from a record.

An inbox's ``formats`` list the files it wants: ``txt`` and ``json`` (the
record, always written: it is the commit mark), ``hocr``, ``alto`` and
``pdf``. The last three are written here from the record's page model
(:mod:`.model`), so a format added to an inbox later is written without OCR.
Every file goes to a temporary first (:func:`ocrwatch.staging.stage_bytes`,
:func:`~ocrwatch.staging.stage_file`); :func:`ocrwatch.sidecar.commit`
renames them into place, the ``.json`` last, and lists each in the record's
``outputs`` with its size, mtime and sha256.

A file is stale (:func:`stale`) when the record does not list it, its size or
mtime differ from what the record says, or it was made under other options
(the searchable PDF's). A writer that fails for a reason of its own (PDF/A
refused under ``on_pdfa_failure: fail``, or a bug) is recorded as an
``error`` entry rather than thrown: the text sidecars are kept, because paid
OCR is never thrown away, and the entry stays current until the options or
ocrwatch's version change. Running out of space is not a writer's failure:
it raises OutputError, nothing is committed, and the file is tried again.

Not here: the formats themselves (:mod:`.hocr`, :mod:`.alto`,
:mod:`.searchable`) and deciding whether a file's OCR is current
(:mod:`ocrwatch.current`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ocrwatch import __version__, sidecar
from ocrwatch.config import DEFAULT_FORMATS, InboxConfig
from ocrwatch.errors import OutputError
from ocrwatch.outputs.model import Document, document_of
from ocrwatch.sidecar import SidecarPaths
from ocrwatch.source import Source
from ocrwatch.staging import Staged, discard, stage_bytes, stage_file

logger = logging.getLogger(__name__)

MODEL_FORMATS = ("hocr", "alto", "pdf")
"""Formats written from the page model (and so needing its words)."""


@dataclass(frozen=True)
class OutputSettings:
    """The files an inbox writes for each input, and the options of those that have any."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    pdf_options: Mapping[str, Any] = field(default_factory=dict)
    """``searchable_pdf`` as plain data: pdfa, on_pdfa_failure, rotate_pages."""

    @classmethod
    def of(cls, config: InboxConfig) -> OutputSettings:
        return cls(tuple(config.formats), config.searchable_pdf.model_dump())

    @property
    def writes_text(self) -> bool:
        return "txt" in self.formats

    @property
    def reads_original(self) -> bool:
        """True when a file is made from the input's own bytes (the searchable PDF), not
        only from its record."""
        return "pdf" in self.formats

    @property
    def model_formats(self) -> tuple[str, ...]:
        """The formats written from the page model, in order."""
        return tuple(name for name in self.formats if name in MODEL_FORMATS)

    def options(self, format_name: str) -> dict[str, Any]:
        """The options a file of ``format_name`` is made under (the searchable PDF's), else none."""
        return dict(self.pdf_options) if format_name == "pdf" else {}

    @functools.cached_property
    def cache_key(self) -> str:
        """Empty for the default formats (so caches of earlier versions stay valid), else a
        digest of the formats and options, for the verdict cache."""
        if self.formats == DEFAULT_FORMATS:
            return ""
        described = {"formats": list(self.formats), "pdf": self.options("pdf")}
        canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def searchable_pdf_missing() -> str | None:
    """Why format ``pdf`` cannot be written here (the ``ocrwatch[pdf]`` extra is not installed),
    or None."""
    from ocrwatch.outputs.searchable import missing_dependency

    return missing_dependency()


def stale(record: Mapping[str, Any], paths: SidecarPaths, settings: OutputSettings) -> list[str]:
    """The formats of ``settings`` (other than ``json``) whose file ``record`` does not vouch for.

    A record older than version 3 lists no files: its ``.txt`` counts as
    written (it always was), the other formats as missing. Files are checked
    by stat only, never hashed.
    """
    listed = {entry.get("format"): entry for entry in record.get("outputs") or ()}
    due = []
    for name in settings.formats:
        if name == "json":
            continue
        entry = listed.get(name)
        if entry is None:
            if not (name == "txt" and "outputs" not in record):
                due.append(name)
            continue
        if not _vouches(entry, paths.output(name), settings.options(name)):
            due.append(name)
    return due


def _vouches(entry: Mapping[str, Any], path: Path, options: Mapping[str, Any]) -> bool:
    if dict(entry.get("options") or {}) != dict(options):
        return False
    if "error" in entry:
        return entry.get("ocrwatch_version") == __version__
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (info.st_size, info.st_mtime_ns) == (entry.get("size"), entry.get("mtime_ns"))


def commit_result(
    paths: SidecarPaths,
    settings: OutputSettings,
    text: str,
    record: dict[str, Any],
    original: OpenOriginal,
    *,
    failure: dict[str, Any] | None = None,
    password: str | None = None,
) -> None:
    """Write every file the inbox wants for a fresh ``record``, the ``.json`` last.

    Raises OutputError when they cannot be written; then none is changed.
    """
    staged, failed = stage(record, settings.model_formats, paths, settings, original, password)
    sidecar.commit(
        paths,
        text,
        record,
        failure=failure,
        staged=staged,
        kept=failed,
        write_text=settings.writes_text,
    )


def rewrite_outputs(
    paths: SidecarPaths,
    settings: OutputSettings,
    record: dict[str, Any],
    formats: Iterable[str],
    original: OpenOriginal,
    password: str | None = None,
) -> list[str]:
    """Write ``formats`` (from :func:`stale`) from a current ``record``, without OCR; the
    record is written again listing them, beside the files it listed already. A record older
    than version 3 gets its ``.txt`` written again too, so that it is listed. Returns the
    formats written. Raises OutputError when they cannot be written; then none is changed."""
    formats = list(formats)
    if settings.writes_text and "outputs" not in record and "txt" not in formats:
        formats.insert(0, "txt")
    model_formats = [name for name in formats if name in MODEL_FORMATS]
    staged, failed = stage(record, model_formats, paths, settings, original, password)
    rewritten = set(formats) | {"json"}
    kept = [
        dict(entry) for entry in record.get("outputs") or () if entry.get("format") not in rewritten
    ]
    failure = sidecar.load(paths.error) if record.get("status") == "partial" else None
    sidecar.commit(
        paths,
        str(record.get("text", "")),
        dict(record, schema_version=sidecar.SCHEMA_VERSION),
        failure=failure,
        staged=staged,
        kept=[*kept, *failed],
        write_text="txt" in formats,
    )
    return formats


OpenOriginal = Callable[[], BinaryIO]
"""Opens the input file's bytes (the ones the record was made from) as a seekable stream."""


def stage(
    record: Mapping[str, Any],
    formats: Iterable[str],
    paths: SidecarPaths,
    settings: OutputSettings,
    original: OpenOriginal,
    password: str | None = None,
) -> tuple[list[Staged], list[dict[str, Any]]]:
    """Write each of ``formats`` (model formats only) to a temporary from ``record``'s model;
    ``password`` opens an encrypted PDF input (``pdf.password_file``; never recorded).

    Returns the files staged, and an error entry for each writer that failed
    on its own account. Raises OutputError (nothing left behind) when a file
    cannot be written at all.
    """
    document = document_of(record)
    staged: list[Staged] = []
    failed: list[dict[str, Any]] = []
    try:
        for name in formats:
            target = paths.output(name)
            try:
                staged.append(_stage_one(name, document, target, settings, original, password))
            except Exception as error:  # noqa: BLE001 - a writer's failure must not lose the OCR
                if isinstance(error, OutputError) and not _refused(name, error):
                    raise  # no room, no access: nothing is committed, the file is tried again
                failed.append(_failure_entry(name, target, settings, error))
    except BaseException:
        discard(staged)
        raise
    return staged, failed


def _stage_one(
    name: str,
    document: Document,
    target: Path,
    settings: OutputSettings,
    original: OpenOriginal,
    password: str | None,
) -> Staged:
    if name == "hocr":
        from ocrwatch.outputs.hocr import hocr_bytes

        return stage_bytes(name, target, hocr_bytes(document))
    if name == "alto":
        from ocrwatch.outputs.alto import alto_bytes

        return stage_bytes(name, target, alto_bytes(document))
    if name == "pdf":
        from ocrwatch.outputs.searchable import SearchablePdfOptions, write_searchable_pdf

        options = settings.options("pdf")

        def write(temp: Path) -> Mapping[str, Any]:
            with original() as stream:
                written = write_searchable_pdf(
                    document, stream, temp, SearchablePdfOptions(**options, password=password)
                )
            return written.describe()

        return stage_file(name, target, write, options=options)
    raise ValueError(f"not a format written from the page model: {name!r}")


def _failure_entry(
    name: str, target: Path, settings: OutputSettings, error: Exception
) -> dict[str, Any]:
    expected = _refused(name, error)
    if expected:
        logger.error("%s: not written: %s", target, error)
    else:
        logger.exception("%s: not written: the %s writer failed", target, name)
    entry: dict[str, Any] = {"format": name, "name": target.name}
    options = settings.options(name)
    if options:
        entry["options"] = options
    entry["error"] = {
        "classification": "bad_input" if expected else "internal",
        "message": str(error) or type(error).__name__,
    }
    entry["ocrwatch_version"] = __version__
    return entry


def _refused(name: str, error: Exception) -> bool:
    """True when the searchable PDF writer refused for good, for a reason it names (PDF/A under
    ``fail``, a password that does not open the input); not when the file could not be written."""
    if name != "pdf":
        return False
    from ocrwatch.outputs.searchable import PdfOutputError

    return isinstance(error, PdfOutputError) and error.classification != "output"


def opener(source: Source) -> OpenOriginal:
    """An :data:`OpenOriginal` over a source's data, asked for only when a writer opens it
    (an image's bytes are let go early in an inbox that writes no file from them)."""

    def open_original() -> BinaryIO:
        data = source.data
        return io.BytesIO(data) if isinstance(data, bytes) else data.stream()

    return open_original
