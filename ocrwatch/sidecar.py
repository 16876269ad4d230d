"""Sidecar files: their names, atomic writing, and the record comparisons :mod:`ocrwatch.current` uses.

For an image ``scan.jpg`` the sidecars are ``scan.jpg.txt`` (the text),
``scan.jpg.json`` (the record: source, settings, text, boxes, timings) and, when
the file failed, ``scan.jpg.error.json``. Keeping the image's extension in the
name keeps ``scan.jpg`` and ``scan.png`` in one folder apart.

Every file is written to a temporary name in the same folder
(``.scan.jpg.txt.<random>.ocrwatch-tmp``) and flushed with fsync. For a result
both temporaries are written first, so a full disk or a write error leaves
nothing but temporaries (which are removed); only then is the ``.txt`` renamed
into place, then the ``.json``, and the folder is fsynced. The ``.json`` is the
commit mark: a reader that sees it sees a complete ``.txt`` of the same run,
and ``text_sha256`` in the record lets it check.

Every registered secret (the API key) is scrubbed from whatever is written,
since answers from servers and proxies may quote request details.

The sidecars are the source of truth for what was done. Residual risks
accepted: a crash between the two renames leaves a new ``.txt`` beside an old
or missing ``.json`` (the ``.json`` is then not current, so the image is done
again at the next start); a file system that does not honour fsync (some
network shares) may lose a sidecar at power loss, with the same effect.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocrwatch import logs
from ocrwatch.errors import OutputError

SCHEMA_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
"""Record versions :func:`load` returns: version 1 (one page per file) is still honoured."""
TEXT_SUFFIX = ".txt"
RESULT_SUFFIX = ".json"
ERROR_SUFFIX = ".error.json"
TEMP_SUFFIX = ".ocrwatch-tmp"
MAX_SIDECAR_BYTES = 512 * 1024 * 1024
"""A record larger than this is not ours (a 500-page dense document's is tens of MiB)."""
HEAD_BYTES = 64 * 1024
"""What :func:`load_head` reads first: the identity fields of any record ocrwatch writes."""
HEAD_END = "text"
"""Records put every field that says whether they are current before this one."""
MIN_FREE_BYTES = 4 * 1024 * 1024
"""Below this much free space a folder is treated as full before any OCR is spent."""


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is
    # not safe while other threads create files.
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()


@dataclass(frozen=True)
class SidecarPaths:
    """The three sidecar paths of one image."""

    text: Path
    result: Path
    error: Path

    @classmethod
    def of(cls, image: Path, folder: Path | None = None) -> SidecarPaths:
        """The sidecars of ``image``, in ``folder`` (default: beside the image)."""
        folder = image.parent if folder is None else folder
        name = image.name
        return cls(
            text=folder / (name + TEXT_SUFFIX),
            result=folder / (name + RESULT_SUFFIX),
            error=folder / (name + ERROR_SUFFIX),
        )


def is_own_file(name: str) -> bool:
    """True for names ocrwatch writes itself (sidecars and temporary files)."""
    return name.endswith((TEXT_SUFFIX, RESULT_SUFFIX, TEMP_SUFFIX))


def utc_iso(epoch: float) -> str:
    """``epoch`` seconds as an ISO 8601 UTC timestamp with milliseconds."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Raises OutputError (with the cause chained) when the folder is not writable,
    the disk is full, or anything else stops the write; no temporary file is left.
    """
    temp = _write_temp(path, data)
    _install([(temp, path)])


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a fsynced temporary beside ``path``. Raises OutputError, leaving nothing behind."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder
        )
    except OSError as error:
        raise OutputError(f"cannot write sidecar {path}: {_describe(error)}") from error
    temp = Path(temp_name)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(handle, view)
                view = view[written:]
            # mkstemp creates 0600; give the file the mode a plain open() would.
            os.fchmod(handle, 0o666 & ~_UMASK)
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(f"cannot write sidecar {path}: {_describe(error)}") from error
    return temp


def _install(moves: list[tuple[Path, Path]]) -> None:
    """Rename each temporary over its target, in order, then fsync their folders."""
    try:
        for temp, path in moves:
            os.replace(temp, path)
        for folder in {path.parent for _, path in moves}:
            _fsync_folder(folder)
    except OSError as error:
        for temp, _ in moves:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise OutputError(f"cannot write sidecar {moves[-1][1]}: {_describe(error)}") from error


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
        raise OutputError(f"cannot write sidecars in {folder}: {_describe(error)}") from error
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
) -> None:
    """Write the text and the record (the commit mark), then drop an old error sidecar.

    ``failure`` (a partial document's error record) is written as the error
    sidecar instead, renamed after the record: a crash between the two leaves
    a partial record without its error sidecar, which is not current, so the
    file's failed pages are read again. Raises OutputError when any cannot be
    written; then none is changed.
    """
    encoded_text = logs.redact(text).encode("utf-8", errors="backslashreplace")
    record = dict(record, text_sha256=hashlib.sha256(encoded_text).hexdigest())
    temps: list[tuple[Path, Path]] = []
    try:
        temps.append((_write_temp(paths.text, encoded_text), paths.text))
        temps.append((_write_temp(paths.result, _encode(record)), paths.result))
        if failure is not None:
            temps.append((_write_temp(paths.error, _encode(failure)), paths.error))
    except OutputError:
        for temp, _ in temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    _install(temps)
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


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files left in ``folder`` by a crash; return how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
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


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError as error:
        # Some file systems (and some FUSE mounts) refuse fsync on folders.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(handle)


def _describe(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if error.errno in (errno.EROFS,):
        return "read-only file system"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or str(error)
