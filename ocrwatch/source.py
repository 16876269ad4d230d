"""Reading one input file: once, without following links, with the facts that identify its bytes.

Distrust of the file system: the file is checked with ``lstat`` right before
it is opened, opened without following symlinks (unless the caller allows it),
checked again with ``fstat`` on the open descriptor, and read once; the hash,
size and mtime recorded all describe those same bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrwatch.errors import FileError
from ocrwatch.sidecar import utc_iso

MAX_FILE_BYTES = 1024 * 1024 * 1024
"""Refuse files above 1 GiB before reading them: no page image is that large."""


@dataclass(frozen=True)
class Source:
    """The bytes of one file and the facts that identify them."""

    path: Path
    data: bytes = field(repr=False)
    size: int
    mtime_ns: int
    ctime_ns: int
    sha256: str

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.path.name,
            "size": self.size,
            "mtime": utc_iso(self.mtime_ns / 1e9),
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "sha256": self.sha256,
        }


class SourceGone(Exception):
    """The file disappeared (deleted or renamed) before it could be read, or before it was sent."""


def read_head(path: Path, size: int, *, follow_symlinks: bool = False) -> bytes:
    """The first ``size`` bytes of ``path``, opened as :func:`read_source` opens it.

    Raises SourceGone, or FileError for anything but a readable regular file.
    """
    handle = _open(path, follow_symlinks=follow_symlinks)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise FileError("is not a regular file")
        return os.read(handle, size)
    except OSError as error:
        raise FileError(f"cannot read the file: {error.strerror or error}") from error
    finally:
        os.close(handle)


def _open(path: Path, *, follow_symlinks: bool) -> int:
    """An open descriptor of ``path``, refusing links unless allowed and never waiting on a FIFO."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None
    except OSError as error:
        raise FileError(f"cannot inspect the file: {error.strerror or error}") from error
    if stat.S_ISLNK(info.st_mode) and not follow_symlinks:
        raise FileError(
            "is a symbolic link; links are not followed (set follow_symlinks: true to allow)"
        )
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise SourceGone(str(path)) from None
    except OSError as error:
        raise FileError(f"cannot open the file: {error.strerror or error}") from error


def read_source(path: Path, *, follow_symlinks: bool = False) -> Source:
    """Read ``path`` once. Raises SourceGone, or FileError for anything but a readable regular file."""
    handle = _open(path, follow_symlinks=follow_symlinks)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise FileError("is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise FileError(
                f"is {info.st_size} bytes, larger than any page image ({MAX_FILE_BYTES} max)"
            )
        # One read for the whole file (and one byte more, to see it grew): a regular
        # file gives it all at once, and a single chunk is joined without a copy, so
        # a large document is held once, not twice.
        chunks = []
        remaining = info.st_size + 1
        while remaining > 0:
            chunk = os.read(handle, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as error:
        raise FileError(f"cannot read the file: {error.strerror or error}") from error
    finally:
        os.close(handle)
    return Source(
        path=path,
        data=data,
        size=len(data),
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        sha256=hashlib.sha256(data).hexdigest(),
    )
