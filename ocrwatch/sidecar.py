"""Sidecar files: their names, atomic writing, and the record comparisons :mod:`ocrwatch.current` uses.

For an image ``scan.jpg`` the sidecars are ``scan.jpg.txt`` (the text),
``scan.jpg.json`` (the record: source, settings, text, boxes, timings, the
files written) and, when the file failed, ``scan.jpg.error.json``; an inbox
may also want ``scan.jpg.hocr``, ``scan.jpg.alto.xml`` and the searchable
``scan.jpg.ocr.pdf`` (:mod:`ocrwatch.outputs`). Keeping the image's extension
in the name keeps ``scan.jpg`` and ``scan.png`` in one folder apart.

Every file is written to a temporary in the same folder and fsynced first
(:mod:`ocrwatch.staging`), so a full disk or a write error leaves nothing but
temporaries (which are removed); only then are they renamed into place, the
``.json`` last, and the folder is fsynced. The ``.json`` is the commit mark: a
reader that sees it sees complete files of the same run, which the record
lists (``outputs``: name, size, mtime, sha256; ``text_sha256`` too).

Every registered secret (the API key) is scrubbed from whatever is written,
since answers from servers and proxies may quote request details.

The sidecars are the source of truth for what was done. Residual risks
accepted: a crash between the renames leaves new files beside an old
or missing ``.json`` (the ``.json`` is then not current, so the image is done
again at the next start); a file system that does not honour fsync (some
network shares) may lose a sidecar at power loss, with the same effect.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrwatch import logs
from ocrwatch.errors import OutputError
from ocrwatch.staging import (
    FORMATS,
    HEAD_END,
    Staged,
    describe,
    install,
    output_entry,
    with_outputs,
    write_temp,
)
from ocrwatch.staging import (
    TEMP_SUFFIX as TEMP_SUFFIX,
)
from ocrwatch.staging import (
    remove_quietly as remove_quietly,
)

SCHEMA_VERSION = 3
READABLE_VERSIONS = frozenset({1, 2, 3})
"""Record versions :func:`load` returns: version 1 (one page per file) and 2 (no list of the
files written) are still honoured."""
TEXT_SUFFIX = ".txt"
RESULT_SUFFIX = ".json"
ERROR_SUFFIX = ".error.json"
HOCR_SUFFIX = ".hocr"
ALTO_SUFFIX = ".alto.xml"
PDF_SUFFIX = ".ocr.pdf"
"""A searchable PDF. Not told apart by name alone: a user's own ``x.ocr.pdf`` is an input."""
MAX_SIDECAR_BYTES = 512 * 1024 * 1024
"""A record larger than this is not ours (a 500-page dense document's is tens of MiB)."""
HEAD_BYTES = 64 * 1024
"""What :func:`load_head` reads first: the identity fields of any record ocrwatch writes."""
MIN_FREE_BYTES = 4 * 1024 * 1024
"""Below this much free space a folder is treated as full before any OCR is spent."""


@dataclass(frozen=True)
class SidecarPaths:
    """The sidecar paths of one input: text, record, error, and the other formats."""

    text: Path
    result: Path
    error: Path
    hocr: Path
    alto: Path
    pdf: Path

    @classmethod
    def of(cls, image: Path, folder: Path | None = None) -> SidecarPaths:
        """The sidecars of ``image``, in ``folder`` (default: beside the image)."""
        folder = image.parent if folder is None else folder
        name = image.name
        return cls(
            text=folder / (name + TEXT_SUFFIX),
            result=folder / (name + RESULT_SUFFIX),
            error=folder / (name + ERROR_SUFFIX),
            hocr=folder / (name + HOCR_SUFFIX),
            alto=folder / (name + ALTO_SUFFIX),
            pdf=folder / (name + PDF_SUFFIX),
        )

    def output(self, format_name: str) -> Path:
        """The file of output format ``format_name`` (``txt``, ``json``, ``hocr``, ``alto``, ``pdf``)."""
        return {
            "txt": self.text,
            "json": self.result,
            "hocr": self.hocr,
            "alto": self.alto,
            "pdf": self.pdf,
        }[format_name]


def is_own_file(name: str) -> bool:
    """True for names ocrwatch writes itself (sidecars and temporary files); a searchable PDF
    (``.ocr.pdf``) is not told by its name (see :func:`ocrwatch.current.is_own_output`)."""
    return name.endswith((TEXT_SUFFIX, RESULT_SUFFIX, TEMP_SUFFIX, HOCR_SUFFIX, ALTO_SUFFIX))


def utc_iso(epoch: float) -> str:
    """``epoch`` seconds as an ISO 8601 UTC timestamp with milliseconds."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Raises OutputError (with the cause chained) when the folder is not writable,
    the disk is full, or anything else stops the write; no temporary file is left.
    """
    temp = write_temp(path, data)
    install([(temp, path)])


def preflight(folder: Path) -> None:
    """Make sure sidecars can be written to ``folder`` before OCR costs anything.

    Raises OutputError when the folder cannot be created or written, or when it
    is nearly full.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".ocrwatch-probe.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(handle)
        os.unlink(probe)
        info = os.statvfs(folder)
    except OSError as error:
        raise OutputError(f"cannot write sidecars in {folder}: {describe(error)}") from error
    free = info.f_bavail * info.f_frsize
    if free < MIN_FREE_BYTES:
        raise OutputError(
            f"cannot write sidecars in {folder}: only {free // 1024} KiB free on the device"
        )


def commit(
    paths: SidecarPaths,
    text: str,
    record: dict[str, Any],
    *,
    failure: dict[str, Any] | None = None,
    staged: Sequence[Staged] = (),
    kept: Sequence[Mapping[str, Any]] = (),
    write_text: bool = True,
) -> None:
    """Write the text, the staged outputs and the record (the commit mark), then drop an old
    error sidecar.

    ``write_text`` False writes no ``.txt`` (an inbox whose formats leave it
    out); ``text_sha256`` is recorded all the same.
    The record lists every file written (``outputs``: name, size, mtime,
    sha256), before its ``text`` so that :func:`load_head` reads it, and
    carries the entries in ``kept`` over (outputs still current, or that
    failed). ``failure`` (a partial document's error record) is written as
    the error sidecar, renamed after the record: a crash between the two
    leaves a partial record without its error sidecar, which is not current,
    so the file's failed pages are read again. Raises OutputError when any
    cannot be written; then none is changed and the staged temporaries are
    removed.
    """
    temps: list[tuple[Path, Path]] = [(output.temp, output.target) for output in staged]
    try:
        outputs = [dict(entry) for entry in kept]
        encoded_text = logs.redact(text).encode("utf-8", errors="backslashreplace")
        record = dict(record, text_sha256=hashlib.sha256(encoded_text).hexdigest())
        if write_text:
            temp = write_temp(paths.text, encoded_text)
            temps.insert(0, (temp, paths.text))
            written = Staged("txt", temp, paths.text, record["text_sha256"])
            outputs.append(output_entry(written))
        outputs.extend(output_entry(output) for output in staged)
        record = with_outputs(
            record, sorted(outputs, key=lambda entry: FORMATS.index(entry["format"]))
        )
        temps.append((write_temp(paths.result, _encode(record)), paths.result))
        if failure is not None:
            temps.append((write_temp(paths.error, _encode(failure)), paths.error))
    except (OutputError, OSError) as error:
        for temp, _ in temps:
            remove_quietly(temp)
        if isinstance(error, OutputError):
            raise
        raise OutputError(f"cannot write sidecars of {paths.result}: {describe(error)}") from error
    install(temps)
    if failure is None:
        remove_quietly(paths.error)


def record_failure(paths: SidecarPaths, record: dict[str, Any]) -> None:
    """Write the error sidecar of a failed image."""
    write_atomic(paths.error, _encode(record))


def load(path: Path) -> dict[str, Any] | None:
    """The JSON record at ``path``, or None when it is missing, unreadable or not ours."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_SIDECAR_BYTES:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("schema_version") not in READABLE_VERSIONS:
        return None
    return record


def load_head(path: Path) -> dict[str, Any] | None:
    """The fields of the record at ``path`` that come before its text: enough to judge it.

    A document's record holds every page's words and may run to tens of
    megabytes; whether it is current is told by a few fields at its start
    (version, status, source, fingerprints). This reads the top-level fields
    one by one from the first :data:`HEAD_BYTES` and stops at ``text``. A
    record laid out otherwise (hand-made, or longer fields first) is loaded
    whole. None as :func:`load` gives None.
    """
    try:
        with path.open("rb") as handle:
            start = handle.read(HEAD_BYTES)
    except OSError:
        return None
    head = _top_fields(start.decode("utf-8", errors="replace"))
    if head is None or "schema_version" not in head:
        return load(path)
    if head.get("schema_version") not in READABLE_VERSIONS:
        return None
    return head


def _top_fields(text: str) -> dict[str, Any] | None:
    """The top-level fields of a JSON object before ``HEAD_END``; None when ``text`` cuts first."""
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}
    position = _skip(text, 0)
    if not text.startswith("{", position):
        return None
    position += 1
    try:
        while True:
            position = _skip(text, position)
            if text.startswith("}", position):
                return fields
            key, position = decoder.raw_decode(text, position)
            if not isinstance(key, str) or key == HEAD_END:
                return fields if key == HEAD_END else None
            position = _skip(text, position)
            if not text.startswith(":", position):
                return None
            value, position = decoder.raw_decode(text, _skip(text, position + 1))
            fields[key] = value
            position = _skip(text, position)
            if text.startswith(",", position):
                position += 1
    except ValueError:
        return None


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def matches(record: dict[str, Any] | None, *, size: int, mtime_ns: int) -> bool | None:
    """Whether ``record`` describes this file, judged by size and mtime alone.

    True: same size and mtime (no need to hash). False: the size differs, so
    it is stale. None: same size, other mtime; only the sha256 can tell.
    Whether it was made with the same settings is :mod:`ocrwatch.current`'s
    question.
    """
    if record is None:
        return False
    source = record.get("source")
    if not isinstance(source, dict) or source.get("size") != size:
        return False
    if source.get("mtime_ns") == mtime_ns:
        return True
    return None


def same_content(record: dict[str, Any] | None, sha256: str) -> bool:
    """True when ``record`` was made from bytes with this sha256."""
    source = record.get("source") if record else None
    return isinstance(source, dict) and source.get("sha256") == sha256


def remove_stale_temps(folder: Path, *, older_than: float | None = None) -> int:
    """Delete temporary files left in ``folder`` by a crash; return how many.

    ``older_than`` (seconds) spares younger ones: in distributed mode another
    host may be writing them right now.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
                if older_than is not None and now - entry.stat().st_mtime < older_than:
                    continue
                os.unlink(entry.path)
                removed += 1
    return removed


def _encode(record: dict[str, Any]) -> bytes:
    """The record as UTF-8 JSON, secrets scrubbed.

    A file name that is not valid UTF-8 reaches Python as lone surrogates, which
    UTF-8 cannot hold; such records are written with ASCII escapes instead, which
    every JSON reader accepts and which load back to the same name.
    """
    text = logs.redact(json.dumps(record, ensure_ascii=False, indent=1)) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (logs.redact(json.dumps(record, ensure_ascii=True, indent=1)) + "\n").encode("ascii")
