"""Reading one input file: once, without following links, with the facts that identify its bytes.

Distrust of the file system: the file is checked with ``lstat`` right before
it is opened, opened without following symlinks (unless the caller allows it),
checked again with ``fstat`` on the open descriptor, and read once; the hash,
size and mtime recorded all describe those same bytes.

An image is held in memory: it is small, and decoders want its bytes. A
document (a PDF, a TIFF, told by its first bytes) may be hundreds of
megabytes, so it is hashed as it streams past and stays on disk: its
:class:`FileBytes` reads what a page needs from the descriptor kept open,
and memory holds pages, not the file. Whoever reads such a source asks
:meth:`Source.changed` before trusting what was read: a file written to in
place while its pages were read no longer matches its hash.

An image's bytes are needed until its page is prepared for the engine, and
afterwards only by an output made from the file itself (the searchable
PDF): :meth:`Source.release` lets them go once nothing will read them
again, so that a file waiting for its answer holds its upload, not itself.
The facts (hash, size, times) stay: they describe the bytes that were read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO, Protocol, overload

from ocrwatch.documents import Closing
from ocrwatch.errors import FileError
from ocrwatch.sidecar import utc_iso

MAX_FILE_BYTES = 1024 * 1024 * 1024
"""Refuse files above 1 GiB before reading them: no page image is that large."""
PDF_SIGNATURE = b"%PDF-"
PDF_SIGNATURE_WINDOW = 1024
"""Readers accept a PDF whose header starts anywhere in its first KiB."""
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""The first four bytes of a TIFF (little- or big-endian, classic or BigTIFF)."""
_HASH_CHUNK = 1024 * 1024


class ByteSource(Protocol):
    """Bytes that can be measured and sliced: ``bytes`` itself, or a :class:`FileBytes`."""

    def __len__(self) -> int: ...

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...


def is_pdf(head: ByteSource) -> bool:
    """True when ``head`` (a file's first bytes, or all of them) carries a PDF header in its first KiB."""
    return PDF_SIGNATURE in head[:PDF_SIGNATURE_WINDOW]


def is_document_head(head: ByteSource) -> bool:
    """True for a PDF's or a TIFF's first bytes: a file that may hold many pages."""
    return is_pdf(head) or head[:4] in TIFF_SIGNATURES


class FileBytes(Closing):
    """A regular file's bytes, read on demand from a descriptor held open; sliced like ``bytes``.

    The length is that of the bytes hashed when the file was read. Reads are
    positional (``pread``), so threads may share it. Close it (or the
    :class:`Source` holding it) to let the descriptor go.
    """

    def __init__(self, handle: int, size: int, info: os.stat_result) -> None:
        self._handle = handle
        self._size = size
        self._info = info

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, key: int) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, int):
            position = key + self._size if key < 0 else key
            if not 0 <= position < self._size:
                raise IndexError("index out of range")
            return self.read_at(position, 1)[0]
        start, stop, step = key.indices(self._size)
        if step != 1:
            raise ValueError("FileBytes slices take no step")
        return self.read_at(start, stop - start)

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``, fewer only at the end of the hashed bytes."""
        length = max(0, min(length, self._size - offset))
        chunks = []
        while length > 0:
            chunk = os.pread(self._handle, length, offset)
            if not chunk:
                break  # the file shrank: the caller sees a short read, and changed() says why
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def stream(self) -> BinaryIO:
        """A file object at the start of the same open file, for readers that want one (Pillow,
        which hands its descriptor to libtiff); the caller closes it.

        Streams of one :class:`FileBytes` share a file position (reads through
        :meth:`read_at` do not use it): use one at a time.
        """
        stream = os.fdopen(os.dup(self._handle), "rb")
        stream.seek(0)
        return stream

    def changed(self) -> bool:
        """True when the file was written to (or cut) since it was opened and hashed."""
        now = os.fstat(self._handle)
        before = self._info
        return (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            self._size,
            before.st_mtime_ns,
            before.st_ctime_ns,
        )

    def close(self) -> None:
        """Let the descriptor go; calling it again does nothing."""
        if self._handle >= 0:
            os.close(self._handle)
            self._handle = -1


class Source(Closing):
    """The bytes of one file and the facts that identify them.

    ``data`` is the file's bytes for an image, a :class:`FileBytes` for a
    document; close the source (or use it as a context manager) when done.
    """

    def __init__(
        self,
        path: Path,
        data: bytes | FileBytes,
        *,
        size: int,
        mtime_ns: int,
        ctime_ns: int,
        sha256: str,
    ) -> None:
        self.path = path
        self._data: bytes | FileBytes | None = data
        self.size = size
        self.mtime_ns = mtime_ns
        self.ctime_ns = ctime_ns
        self.sha256 = sha256

    def __repr__(self) -> str:
        return f"Source({str(self.path)!r}, size={self.size}, sha256={self.sha256!r})"

    @property
    def data(self) -> bytes | FileBytes:
        """The file's bytes (an image) or its :class:`FileBytes` (a document).

        Raises SourceReleased once :meth:`release` let an image's bytes go.
        """
        if self._data is None:
            raise SourceReleased(f"{self.path}: its bytes were let go once its page was prepared")
        return self._data

    def release(self) -> None:
        """Let an image's bytes go: nothing will read them again (its page is prepared and no
        output is made from the file itself). A document's stay on disk until :meth:`close`."""
        if isinstance(self._data, bytes):
            self._data = None

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

    def changed(self) -> bool:
        """True when the file on disk no longer holds the bytes hashed (only a document is
        read from disk after it was hashed; an image's bytes were all in hand)."""
        return isinstance(self._data, FileBytes) and self._data.changed()

    def close(self) -> None:
        if isinstance(self._data, FileBytes):
            self._data.close()


class SourceReleased(RuntimeError):
    """An image's bytes were asked for after :meth:`Source.release` let them go: a bug."""


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


def _regular(handle: int) -> os.stat_result:
    """The open file's status; raise FileError unless it is a regular file within the size limit."""
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        raise FileError("is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise FileError(
            f"is {info.st_size} bytes, larger than any page image ({MAX_FILE_BYTES} max)"
        )
    return info


def _read_all(handle: int, size: int) -> bytes:
    """The whole file, and one byte more if it grew since its status was taken.

    A regular file gives it all at once, and a single chunk is joined without
    a copy, so an image is held once, not twice.
    """
    chunks = []
    remaining = size + 1
    while remaining > 0:
        chunk = os.read(handle, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _hash_all(handle: int) -> tuple[str, int]:
    """SHA-256 and length of everything from the descriptor's position to its end, a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    while read := os.readv(handle, [buffer]):
        digest.update(view[:read])
        size += read
    return digest.hexdigest(), size


def read_source(path: Path, *, follow_symlinks: bool = False) -> Source:
    """Read ``path`` once: an image into memory, a document hashed and kept open on disk.

    Close the source returned. Raises SourceGone, or FileError for anything
    but a readable regular file.
    """
    handle = _open(path, follow_symlinks=follow_symlinks)
    try:
        info = _regular(handle)
        head = os.pread(handle, PDF_SIGNATURE_WINDOW, 0)
        data: bytes | FileBytes
        if is_document_head(head):
            sha256, size = _hash_all(handle)
            data = FileBytes(handle, size, info)
            handle = -1  # the source owns it now
        else:
            data = _read_all(handle, info.st_size)
            sha256, size = hashlib.sha256(data).hexdigest(), len(data)
    except OSError as error:
        raise FileError(f"cannot read the file: {error.strerror or error}") from error
    finally:
        if handle >= 0:
            os.close(handle)
    return Source(
        path=path,
        data=data,
        size=size,
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        sha256=sha256,
    )


def open_bytes(path: Path, *, follow_symlinks: bool = False) -> FileBytes:
    """``path``'s bytes on disk, opened as :func:`read_source` opens it but not hashed, for a
    look inside (its page count). Close it. Raises SourceGone, or FileError."""
    handle = _open(path, follow_symlinks=follow_symlinks)
    try:
        info = _regular(handle)
    except BaseException:
        os.close(handle)
        raise
    return FileBytes(handle, info.st_size, info)


def hash_file(path: Path, *, follow_symlinks: bool = False) -> str:
    """SHA-256 of ``path`` as :func:`read_source` would record it, without holding the file.

    Raises SourceGone, or FileError for anything but a readable regular file.
    """
    handle = _open(path, follow_symlinks=follow_symlinks)
    try:
        _regular(handle)
        return _hash_all(handle)[0]
    except OSError as error:
        raise FileError(f"cannot read the file: {error.strerror or error}") from error
    finally:
        os.close(handle)
