"""A JPEG-compressed TIFF frame's strips joined into one baseline JPEG, losslessly.

A TIFF page compressed as JPEG (TIFF Compression 7, TechNote 2) keeps each
strip as a small JPEG stream of its own, its tables usually held once in the
JPEGTables tag. :func:`joined_jpeg` makes one JPEG of the whole frame from
the very same entropy-coded data, the way libtiff's ``tiff2pdf`` does: the
tables, a frame header with the full height, a restart interval of one
strip's MCUs, and each strip's data after the next restart marker. PDF's
``DCTDecode`` then reads the page as it was scanned, with nothing decoded or
recompressed.

It owns reading the strips and their JPEG headers, the soundness checks and
the proof: the joined JPEG is used only when Pillow decodes it to exactly the
pixels it decodes from the TIFF frame. One exception: when chroma is sampled
down the page (4:2:0), the decoder interpolates it across each strip's edge
in the joined image, which libtiff, decoding strip by strip, cannot; the row
either side of each edge is then left out of the comparison (a wrong join
spoils whole MCU rows, so the rest still proves it). It does not build PDF
objects (:mod:`ocrwatch.outputs.pageimages` does). Anything it does not join
returns None and is decoded and recompressed there: tiled frames, old-style
JPEG (Compression 6), progressive, arithmetic or 12-bit JPEG, strips that
already carry restart markers, strips whose height is not a whole number of
MCU rows, planar or extra samples, MinIsWhite grey, a frame with an
orientation tag (Pillow turns such a frame as it loads it, so the proof would
compare different pixels), and frames whose decodes differ anyway.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import JpegImagePlugin, TiffImagePlugin

from ocrwatch.outputs.imagefiles import EOI, SOI, SOS, Segment, jpeg_segments, read_strips

_JPEG_COMPRESSION = 7
_TAG_COMPRESSION = 259
_TAG_PHOTOMETRIC = 262
_TAG_BITS = 258
_TAG_SAMPLES = 277
_TAG_ROWS_PER_STRIP = 278
_TAG_STRIP_OFFSETS = 273
_TAG_STRIP_BYTES = 279
_TAG_PLANAR = 284
_TAG_ORIENTATION = 274
_TAG_TILE_WIDTH = 322
_TAG_EXTRA_SAMPLES = 338
_TAG_JPEG_TABLES = 347
_BLACK_IS_ZERO, _RGB, _YCBCR = 1, 2, 6
_GREY, _COLOUR = 1, 3
_PHOTOMETRIC_COMPONENTS = {_BLACK_IS_ZERO: _GREY, _RGB: _COLOUR, _YCBCR: _COLOUR}
_MODES = {_GREY: "L", _COLOUR: "RGB"}

_DRI = 0xDD
_SEQUENTIAL_FRAMES = frozenset({0xC0, 0xC1})
"""Baseline and extended sequential Huffman frames: one scan, restart markers allowed."""
_DROPPED = frozenset(range(0xE0, 0xF0)) | {0xFE}
"""APPn and COM segments of a strip: not needed to decode, and a strip's JFIF would contradict RGB."""
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")
_RESTART_CYCLE = 8
_BLOCK = 8
_PRECISION = 8
"""Bits a sample: what DCTDecode reads and what a baseline frame holds."""
_MAX_INTERVAL = 0xFFFF
_ADOBE = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00"
"""Adobe's APP14 segment but its last byte, the transform: 0 for RGB as it is, 1 for YCbCr."""

"""A marker and its segment's body (past the length field)."""


@dataclass(frozen=True)
class JoinedJpeg:
    """A frame as one JPEG, and how PDF must read its colour."""

    data: bytes
    components: int
    colour_transform: int
    """PDF DCTDecode /ColorTransform: 1 when the JPEG holds YCbCr, 0 when RGB as it is."""


@dataclass(frozen=True)
class _Strip:
    headers: list[Segment]
    frame: Segment
    scan: bytes
    entropy: bytes


def joined_jpeg(frame: TiffImagePlugin.TiffImageFile, original: BinaryIO) -> JoinedJpeg | None:
    """The current frame of ``frame`` as one JPEG proven to decode to its pixels; None if not sound.

    Loads the frame (to compare pixels) and leaves ``original`` where it was.
    """
    tags = frame.tag_v2
    photometric = int(tags.get(_TAG_PHOTOMETRIC, -1))
    components = _PHOTOMETRIC_COMPONENTS.get(photometric)
    if (
        components is None
        or int(tags.get(_TAG_COMPRESSION, 0)) != _JPEG_COMPRESSION
        or int(tags.get(_TAG_SAMPLES, 1)) != components
        or tuple(tags.get(_TAG_BITS, (1,))) != (_PRECISION,) * components
        or int(tags.get(_TAG_PLANAR, 1)) != 1
        or int(tags.get(_TAG_ORIENTATION, 1)) != 1
        or any(tag in tags for tag in (_TAG_TILE_WIDTH, _TAG_EXTRA_SAMPLES))
    ):
        return None
    width, height = frame.size
    rows = min(int(tags.get(_TAG_ROWS_PER_STRIP, height)), height)
    offsets, counts = tags.get(_TAG_STRIP_OFFSETS), tags.get(_TAG_STRIP_BYTES)
    if not offsets or not counts or len(offsets) != len(counts) or rows <= 0:
        return None
    if len(offsets) != -(-height // rows):
        return None
    tables = jpeg_segments(bytes(tags.get(_TAG_JPEG_TABLES, SOI + EOI)), tables_only=True)
    strips = [_strip(data) for data in read_strips(original, offsets, counts)]
    if tables is None or any(strip is None for strip in strips):
        return None
    data = _join([s for s in strips if s], tables[0], (width, height), rows, components)
    if data is None:
        return None
    # Chroma sampled down the page is interpolated across a strip's edge in the joined
    # image but not when libtiff decodes each strip alone: the rows either side may differ.
    seams = range(rows, height, rows) if _vertical_sampling(data) > 1 else range(0)
    transform = 1 if photometric == _YCBCR else 0
    if components == _COLOUR:
        # Said twice (here and in the PDF's /ColorTransform), so no reader has to guess
        # from component identifiers, which libtiff does not always write.
        data = data[:2] + _ADOBE + bytes((transform,)) + data[2:]
    joined = JoinedJpeg(data, components, transform)
    return joined if _same_pixels(joined, frame, seams) else None


def _strip(data: bytes) -> _Strip | None:
    """One strip's headers, frame, scan header and entropy-coded data; None if it is not one plain scan."""
    parsed = jpeg_segments(data)
    if parsed is None or not parsed[0] or parsed[0][-1][0] != SOS:
        return None
    segments, scan_end = parsed
    end = data.rfind(EOI)
    frames = [segment for segment in segments if segment[0] in _SEQUENTIAL_FRAMES]
    others = [(m, body) for m, body in segments[:-1] if m not in _DROPPED]
    if end < scan_end or len(frames) != 1 or any(m == _DRI for m, _ in others):
        return None
    entropy = data[scan_end:end]
    if _RESTART.search(entropy):
        return None
    headers = [segment for segment in others if segment[0] not in _SEQUENTIAL_FRAMES]
    return _Strip(headers, frames[0], segments[-1][1], entropy)


def _join(
    strips: list[_Strip],
    tables: list[Segment],
    size: tuple[int, int],
    rows: int,
    components: int,
) -> bytes | None:
    """The strips as one JPEG, restart markers between them; None if they do not fit together."""
    width, height = size
    first = strips[0]
    marker, body = first.frame
    if len(body) != 6 + 3 * components or body[0] != _PRECISION or body[5] != components:
        return None
    precision, _, frame_width, count = struct.unpack_from(">BHHB", body)
    sampling = [body[7 + 3 * index] for index in range(components)]
    mcu_width = _BLOCK * max(factor >> 4 for factor in sampling)
    mcu_height = _BLOCK * max(factor & 0x0F for factor in sampling)
    if frame_width != width or (len(strips) > 1 and rows % mcu_height):
        return None
    for index, strip in enumerate(strips):
        strip_marker, strip_body = strip.frame
        if (strip_marker, strip_body[:1] + strip_body[3:]) != (marker, body[:1] + body[3:]):
            return None
        (strip_height,) = struct.unpack_from(">H", strip_body, 1)
        expected = min(rows, height - index * rows)
        if (strip.headers, strip.scan) != (first.headers, first.scan):
            return None
        if strip_height != expected and not (index == len(strips) - 1 and strip_height == rows):
            return None
    interval = -(-width // mcu_width) * (rows // mcu_height)
    if len(strips) > 1 and interval > _MAX_INTERVAL:
        return None
    frame = struct.pack(">BHHB", precision, height, frame_width, count) + body[6:]
    parts = [SOI]
    parts += [_segment(m, b) for m, b in tables + first.headers]
    parts.append(_segment(marker, frame))
    if len(strips) > 1:
        parts.append(_segment(_DRI, struct.pack(">H", interval)))
    parts.append(_segment(SOS, first.scan))
    for index, strip in enumerate(strips):
        if index:
            parts.append(bytes((0xFF, 0xD0 + (index - 1) % _RESTART_CYCLE)))
        parts.append(strip.entropy)
    parts.append(EOI)
    return b"".join(parts)


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def _vertical_sampling(data: bytes) -> int:
    """The largest vertical sampling factor in a joined JPEG's frame header."""
    parsed = jpeg_segments(data)
    assert parsed is not None  # built by _join
    (body,) = [body for marker, body in parsed[0] if marker in _SEQUENTIAL_FRAMES]
    return max(body[7 + 3 * index] & 0x0F for index in range(body[5]))


def _same_pixels(joined: JoinedJpeg, frame: TiffImagePlugin.TiffImageFile, seams: range) -> bool:
    """True when Pillow decodes the joined JPEG to exactly the frame's own pixels.

    The row above and the row below each of ``seams`` are left out of the comparison.
    """
    frame.load()
    if frame.mode != _MODES[joined.components]:
        return False
    try:
        # Not Image.open: the frame's size was accepted upstream, no pixel limit applies here.
        with JpegImagePlugin.JpegImageFile(io.BytesIO(joined.data)) as decoded:
            decoded.load()
            if (decoded.mode, decoded.size) != (frame.mode, frame.size):
                return False
            if not seams:
                return decoded.tobytes() == frame.tobytes()
            loose = [row for seam in seams for row in (seam - 1, seam)]
            kept = np.delete(np.asarray(decoded), loose, axis=0)
            return bool(np.array_equal(kept, np.delete(np.asarray(frame), loose, axis=0)))
    except (OSError, ValueError, SyntaxError):
        return False
