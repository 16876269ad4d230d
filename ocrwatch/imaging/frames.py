"""Frame and page counts of multi-frame containers, a PNG's chunks and a JPEG's end, read from their structure alone.

Walks a TIFF's chain of directory headers and a GIF's blocks, up to a cap,
without reading a tag or decoding a pixel: Pillow's ``n_frames`` reads every
TIFF directory in full (about a minute for 100,000 tiny directories) and
walks every GIF frame, so a large file of tiny frames would hold a worker
just to count frames that are never read. What a count means for a file
(the cap, truncation) is decided by :mod:`ocrwatch.imaging.containers`.

Residual risk accepted: a GIF's blocks and sub-blocks are walked one by
one and only frames are capped, so a file made of hundreds of millions of
empty extensions or one-byte sub-blocks (which no encoder writes) still
takes over a minute per gibibyte to count (Pillow's own walk of it takes
longer).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocrwatch.source import ByteSource

_MAX_TIFF_PAGES = 10_000
"""Directories followed when checking a TIFF for truncation (guards against loops)."""
_PNG_SIGNATURE_BYTES = 8
_GIF_HEADER = 13
"""Bytes of a GIF's signature, version and logical screen descriptor."""
_GIF_SCREEN_FLAGS = 10
"""Offset of the logical screen descriptor's flags."""
_GIF_DESCRIPTOR_FIELDS = 9
"""Bytes of an image descriptor after its 0x2C introducer: position, size, flags."""
_GIF_COLOUR_TABLE = 0x80
"""Flag of a screen or image descriptor: a colour table follows it."""
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = b"!,;"
_GIF_INTRODUCERS = frozenset((_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER))
"""The bytes that begin a GIF block."""
_GIF_BLOCK = re.compile(rb"[!,;]")
"""The next block, past bytes that begin none (Pillow skips them)."""


def tiff_directories(data: ByteSource, *, limit: int = _MAX_TIFF_PAGES) -> list[int] | None:
    """Offsets of a TIFF's first ``limit`` directories (pages) in chain order; None if cut off.

    Only the chain of directory headers is walked, no tag is read. None when
    the header or a directory lies past the end of ``data``. A chain that
    links back to a directory already seen ends there, as in Pillow. ``data``
    is only sliced, a few bytes per directory, so a file read from disk on
    demand is walked without being read whole.
    """
    if len(data) < 16:
        return None
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets, 20-byte entries
    offset_format, count_format, entry_size = ("Q", "Q", 20) if big else ("I", "H", 12)
    offset = unpack_at(order + offset_format, data, 8 if big else 4)
    directories: list[int] = []
    seen: set[int] = set()
    count_size = struct.calcsize(count_format)
    offset_size = struct.calcsize(offset_format)
    while offset and offset not in seen and len(directories) < limit:
        seen.add(offset)
        directories.append(offset)
        if offset + count_size > len(data):
            return None
        entries = unpack_at(order + count_format, data, offset)
        next_at = offset + count_size + entries * entry_size
        if next_at + offset_size > len(data):
            return None
        offset = unpack_at(order + offset_format, data, next_at)
    return directories


def unpack_at(format_: str, data: ByteSource, offset: int) -> int:
    """The one number of ``format_`` stored at ``offset``; raise struct.error past the end."""
    value: int = struct.unpack(format_, data[offset : offset + struct.calcsize(format_)])[0]
    return value


def png_chunk_spans(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each chunk of a PNG whose header lies in ``data``, in order: its type, and where its
    body starts and ends (past the end of ``data`` in a file cut short). Starts after the
    signature, which it does not check; nothing is copied."""
    position = _PNG_SIGNATURE_BYTES
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        yield kind, position + 8, position + 8 + length
        position += 12 + length


def gif_frames(data: bytes, *, limit: int) -> int | None:
    """Image descriptors (frames) in a GIF, counting up to ``limit``; None if cut off.

    Walks the header, the global colour table, then the blocks: extensions
    and image data as chains of sub-blocks, image descriptors with their
    local colour tables, up to the 0x3B trailer. Nothing is decompressed.
    None when ``data`` ends inside a block, or before the first frame is
    whole, unless ``limit`` frames were counted first; a GIF that ends
    after a whole block without the trailer counts the frames it has (some
    encoders leave the trailer out). Bytes that begin no block are skipped,
    as Pillow skips them.
    """
    end = len(data)
    if end < _GIF_HEADER:
        return None
    position = _GIF_HEADER + _colour_table_size(data[_GIF_SCREEN_FLAGS])
    frames = 0
    while frames < limit:
        if position >= end:
            # Ending exactly after a whole block, with a frame read, is a GIF whose
            # encoder left out the trailer (viewers read those); ending inside a block
            # or before any frame is a file still being written.
            return frames if position == end and frames else None
        introducer = data[position]
        if introducer not in _GIF_INTRODUCERS:
            found = _GIF_BLOCK.search(data, position)
            if found is None:
                return None
            position = found.start()
            introducer = data[position]
        position += 1
        if introducer == _GIF_TRAILER:
            return frames
        if introducer == _GIF_EXTENSION:
            position += 1  # the extension's label
        else:
            if position + _GIF_DESCRIPTOR_FIELDS > end:
                return None
            flags = data[position + _GIF_DESCRIPTOR_FIELDS - 1]
            # The fields, the local colour table, the LZW minimum code size.
            position += _GIF_DESCRIPTOR_FIELDS + _colour_table_size(flags) + 1
            frames += 1
        # Sub-blocks, each a length byte and that many bytes, up to an empty one.
        while position < end and (size := data[position]):
            position += size + 1
        position += 1
        if position > end:
            return None
    return frames


def _colour_table_size(flags: int) -> int:
    """Bytes of the colour table a screen or image descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & _GIF_COLOUR_TABLE else 0


def jpeg_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first start-of-scan."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            position += 1  # tolerate fill bytes and junk between segments
            continue
        marker = data[position + 1]
        if marker in (0xFF, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 1 if marker == 0xFF else 2
            continue
        if marker == 0xDA:
            # From the end: the marker is almost always in the last bytes.
            return data.rfind(b"\xff\xd9", position) != -1
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    return False
