"""An image file's own structure, read from its bytes: JPEG segments, TIFF strips, PNG chunks.

The searchable PDF passes an image file's compressed data through when PDF's
filters read it as it is (:mod:`.pageimages` decides); these functions say
what the data is without decoding a pixel. They own no PDF object.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import BinaryIO

from ocrwatch.imaging.frames import png_chunk_spans

Segment = tuple[int, bytes]
"""A JPEG marker segment: its marker byte and its body (after the length)."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SOI, EOI, SOS = b"\xff\xd8", b"\xff\xd9", 0xDA
"""A JPEG's start of image, end of image, and start-of-scan marker."""
_MARKER = 0xFF
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG frame markers (0xC4 defines Huffman tables, 0xC8 is reserved, 0xCC sets arithmetic coding)."""


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """The start-of-frame marker and sample precision of a JPEG, read from its segments."""
    parsed = jpeg_segments(data)
    for marker, body in parsed[0] if parsed else ():
        if marker in _START_OF_FRAME:
            return marker, body[0] if body else 0
    return None


def jpeg_segments(data: bytes, *, tables_only: bool = False) -> tuple[list[Segment], int] | None:
    """A JPEG stream's marker segments up to its first scan header (included), and where they end.

    With ``tables_only``, a stream of tables alone (a TIFF's JPEGTables: SOI,
    tables, EOI). None when the bytes are not such a stream.
    """
    if not data.startswith(SOI):
        return None
    found: list[Segment] = []
    position = len(SOI)
    while position + 4 <= len(data):
        if data[position] != _MARKER:
            return None
        marker = data[position + 1]
        if marker == _MARKER:  # fill byte
            position += 1
            continue
        if tables_only and data[position : position + 2] == EOI:
            return found, position
        (length,) = struct.unpack_from(">H", data, position + 2)
        found.append((marker, data[position + 4 : position + 2 + length]))
        position += 2 + length
        if marker == SOS:
            return None if tables_only else (found, position)
    return (found, position) if tables_only and data[position:] in (b"", EOI) else None


def read_strips(original: BinaryIO, offsets: Sequence[int], counts: Sequence[int]) -> list[bytes]:
    """The strips of a TIFF page as stored (``offsets`` and byte ``counts`` from its tags),
    read from ``original``, which is left where it was. A strip cut short comes back short."""
    position = original.tell()
    strips = []
    for offset, count in zip(offsets, counts, strict=True):
        original.seek(int(offset))
        strips.append(original.read(int(count)))
    original.seek(position)
    return strips


def png_chunks(
    data: bytes,
) -> tuple[tuple[int, ...] | None, bytes | None, bytes | None, bytes]:
    """IHDR's fields, the palette, the ICC profile and the joined IDAT data; header None if unreadable."""
    if not data.startswith(PNG_SIGNATURE):
        return None, None, None, b""
    header: tuple[int, ...] | None = None
    palette = icc = None
    idat: list[bytes] = []
    for kind, start, end in png_chunk_spans(data):
        body = data[start:end]
        if kind == b"IHDR" and end - start == 13:
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"iCCP":
            name_end = body.find(b"\x00")
            try:
                icc = zlib.decompress(body[name_end + 2 :]) if name_end > 0 else None
            except zlib.error:
                icc = None
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    return header, palette, icc, b"".join(idat)
