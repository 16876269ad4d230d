"""An image file's own structure, read from its bytes: a JPEG's frame, a PNG's chunks.

The searchable PDF passes an image file's compressed data through when PDF's
filters read it as it is (:mod:`.pageimages` decides); these functions say
what the data is without decoding a pixel. They own no PDF object.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MARKER = 0xFF
_START_OF_SCAN = 0xDA
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG frame markers (0xC4 defines Huffman tables, 0xC8 is reserved, 0xCC sets arithmetic coding)."""


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """The start-of-frame marker and sample precision of a JPEG, read from its segments."""
    position = 2  # past the start-of-image marker
    while position + 4 <= len(data):
        if data[position] != _MARKER:
            return None
        marker = data[position + 1]
        if marker == _MARKER:  # fill byte
            position += 1
            continue
        if marker in _START_OF_FRAME:
            return marker, data[position + 4] if position + 4 < len(data) else 0
        if marker == _START_OF_SCAN:
            return None
        (length,) = struct.unpack_from(">H", data, position + 2)
        position += 2 + length
    return None


def png_chunks(
    data: bytes,
) -> tuple[tuple[int, ...] | None, bytes | None, bytes | None, bytes]:
    """IHDR's fields, the palette, the ICC profile and the joined IDAT data; header None if unreadable."""
    if not data.startswith(PNG_SIGNATURE):
        return None, None, None, b""
    header: tuple[int, ...] | None = None
    palette = icc = None
    idat: list[bytes] = []
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR" and length == 13:
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
