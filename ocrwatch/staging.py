"""Writing output files so that readers see the old file or the whole new one, and the ``.json`` last.

A file is first written in full to a temporary beside its target
(``.scan.jpg.txt.<random>.ocrwatch-tmp``) and fsynced; when every file of a
result is staged, they are renamed into place in order and their folders
fsynced (:func:`install`). A :class:`Staged` output also carries what the
record says of it: its sha256, the options it was made under, what its
writer achieved; :func:`output_entry` is that entry, and
:func:`with_outputs` places the list of them in a record before its text.

Errors that stop a write (no space, no access) are raised as OutputError,
with no temporary left. This module owns temporaries and renames; what the
files are is :mod:`ocrwatch.sidecar`'s (names, records, the commit) and
:mod:`ocrwatch.outputs`' (the formats).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrwatch import logs
from ocrwatch.errors import OutputError

TEMP_SUFFIX = ".ocrwatch-tmp"
HEAD_END = "text"
"""Records put every field that says whether they are current before this one."""


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is
    # not safe while other threads create files.
    current = os.umask(0o022)
    os.umask(current)
    return current


_UMASK = _read_umask()


def write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a fsynced temporary beside ``path``. Raises OutputError, leaving nothing behind."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=folder
        )
    except OSError as error:
        raise OutputError(f"cannot write sidecar {path}: {describe(error)}") from error
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
        raise OutputError(f"cannot write sidecar {path}: {describe(error)}") from error
    return temp


def install(moves: list[tuple[Path, Path]]) -> None:
    """Rename each temporary over its target, in order, then fsync their folders."""
    try:
        for temp, path in moves:
            os.replace(temp, path)
        for folder in {path.parent for _, path in moves}:
            fsync_folder(folder)
    except OSError as error:
        for temp, _ in moves:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise OutputError(f"cannot write sidecar {moves[-1][1]}: {describe(error)}") from error


@dataclass(frozen=True)
class Staged:
    """An output file written in full to a temporary beside its target, waiting for :func:`commit`."""

    format: str
    temp: Path
    target: Path
    sha256: str
    options: Mapping[str, Any] = field(default_factory=dict)
    """The settings the file was made under (the searchable PDF's); a change writes it again."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """What its writer says it achieved (PDF/A or why not), for the record."""


def stage_bytes(
    format_name: str, target: Path, data: bytes, *, options: Mapping[str, Any] | None = None
) -> Staged:
    """``data`` staged for ``target``. Raises OutputError, leaving nothing behind."""
    data = data if format_name == "pdf" else logs.redact_bytes(data)
    temp = write_temp(target, data)
    return Staged(format_name, temp, target, hashlib.sha256(data).hexdigest(), options or {})


def stage_file(
    format_name: str,
    target: Path,
    write: Callable[[Path], Mapping[str, Any]],
    *,
    options: Mapping[str, Any] | None = None,
) -> Staged:
    """Let ``write`` fill a temporary beside ``target`` (it returns what it achieved), then
    fsync it. Raises OutputError for a write that fails for want of space or access (nothing is
    left behind); anything else ``write`` raises goes through, after the temporary is removed."""
    temp = write_temp(target, b"")
    try:
        facts = write(temp)
        digest = hashlib.sha256()
        with open(temp, "rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
            os.fsync(stream.fileno())
    except OSError as error:
        remove_quietly(temp)
        raise OutputError(f"cannot write {target}: {describe(error)}") from error
    except BaseException:
        remove_quietly(temp)
        raise
    return Staged(format_name, temp, target, digest.hexdigest(), options or {}, facts)


def discard(staged: Iterable[Staged]) -> None:
    """Remove the temporaries of outputs that will not be committed."""
    for output in staged:
        remove_quietly(output.temp)


FORMATS = ("txt", "json", "hocr", "alto", "pdf")
"""Every output format, in the order records list them."""


def output_entry(output: Staged) -> dict[str, Any]:
    info = os.stat(output.temp)  # the rename keeps size and mtime
    entry: dict[str, Any] = {
        "format": output.format,
        "name": output.target.name,
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "sha256": output.sha256,
    }
    if output.options:
        entry["options"] = dict(output.options)
    entry.update(output.facts)
    return entry


def with_outputs(record: dict[str, Any], outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """``record`` with ``outputs`` placed just before ``text`` (or last, when it has none)."""
    placed: dict[str, Any] = {}
    for key, value in record.items():
        if key == HEAD_END:
            placed["outputs"] = outputs
        if key != "outputs":
            placed[key] = value
    placed.setdefault("outputs", outputs)
    return placed


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def fsync_folder(folder: Path) -> None:
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


def describe(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    if error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if error.errno in (errno.EROFS,):
        return "read-only file system"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or str(error)
