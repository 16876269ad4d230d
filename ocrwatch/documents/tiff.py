"""Multi-page TIFFs: every page's facts from its directory, then its pixels one page at a time.

:func:`tiff_pages` refuses what cannot be read before any pixel is decoded:
data that is not a TIFF, a chain of directories cut off by the end of the
file, more pages than ``max_pages`` (only that many directory headers are
walked, so a file of a million tiny pages costs as little as one of 501), a
directory Pillow cannot make sense of, and a page whose header promises more
than ``max_pixels``. :meth:`TiffDocument.decode` then decodes one page into
the array :func:`ocrwatch.imaging.decode` gives for an image (upright uint8,
HxW grey or HxWx3 BGR, C-contiguous), with the pixel helpers of
:mod:`ocrwatch.imaging.decoding`. :func:`verify_tiff` decodes every page in
turn and keeps none: a multi-page TIFF is complete only when all its pages
decode.

Truncation is told from corruption by :mod:`ocrwatch.imaging.containers`
(the chain of directories, the values they point to, the strips of the page
at hand): a file cut off anywhere is ``incomplete``, a broken page is
``bad_input``; messages about one page name it, counted from 1 as a viewer
counts them.

Memory: the file's bytes when they are in memory (a file read from disk
through :class:`~ocrwatch.source.FileBytes` is not held), one page in Pillow's buffer (reused or replaced by
the next page) and the arrays the caller keeps. A document is not safe to
share between threads; open one per thread.

Not here: single images (:mod:`ocrwatch.imaging`), writing TIFFs, OCR.
Residual risks accepted: a finished file whose directory points past its own
end (a broken writer) looks cut off, so it waits as ``incomplete`` until the
inbox's deadline rather than failing at once; garbage in an uncompressed,
PackBits or G4 strip decodes to garbage pixels without an error; and Pillow
may warn ``DecompressionBombWarning`` for pages between its warning threshold
and ``max_pixels``, as for single images.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, TiffImagePlugin

from ocrwatch.documents import DEFAULT_MAX_PAGES, Closing
from ocrwatch.errors import ImageError
from ocrwatch.imaging.containers import (
    PILLOW_ERRORS,
    ImageInfo,
    check_size,
    decode_error,
    has_transparency,
    load,
    tiff_directories,
    truncated_message,
)
from ocrwatch.imaging.decoding import DecodedImage, to_array, upright
from ocrwatch.source import TIFF_SIGNATURES, ByteSource, FileBytes

SIGNATURES = TIFF_SIGNATURES

_FORMAT = "TIFF"
_SHOWN_PREFIX = 8
_INCH = 2
_CENTIMETRE = 3
_CENTIMETRES_PER_INCH = 2.54
_DPI_DECIMALS = 2
"""Resolutions in centimetres become inches with float noise (118.11 * 2.54): rounded off."""


@dataclass(frozen=True)
class TiffPage:
    """One page as its directory describes it, before any of its pixels is decoded."""

    index: int
    """Position in the file, from 0."""
    info: ImageInfo
    """Size as stored, mode, orientation, bits and transparency; ``frames`` is the page count."""
    compression: str
    """Pillow's name for the compression: raw, group4, tiff_lzw, jpeg, tiff_adobe_deflate..."""
    dpi: tuple[float, float] | None
    """(horizontal, vertical) dots per inch from the resolution tags; None when absent or unitless."""


class TiffDocument(Closing):
    """A TIFF whose directories have been read: its pages, each decoded on request.

    Made by :func:`tiff_pages`. Close it, or use it as a context manager;
    not safe to share between threads.
    """

    def __init__(
        self,
        image: TiffImagePlugin.TiffImageFile,
        data: ByteSource,
        stream: BinaryIO,
        *,
        page_count: int,
        max_pixels: int,
    ) -> None:
        """Read every page's directory of a TIFF Pillow has opened from ``stream``; raise
        ImageError as :func:`tiff_pages`."""
        self._image = image
        self._data = data  # where a failed page is told cut off from broken
        self._stream = stream  # what Pillow reads each page from
        self._page_count = page_count
        try:
            self.pages: tuple[TiffPage, ...] = tuple(
                self._read_page(index, max_pixels) for index in range(page_count)
            )
        except ImageError:
            self.close()
            raise

    def close(self) -> None:
        """Let go of Pillow's image, its page buffer and the file; calling it again does nothing."""
        self._image.close()
        self._stream.close()

    def decode(self, index: int) -> DecodedImage:
        """Decode page ``index`` (from 0) into upright pixels; raise ImageError naming the page.

        ``incomplete`` when the file is cut off (its directories or this
        page's strips lie past the end), ``bad_input`` when the page is broken.
        """
        page = self.pages[index]
        self._seek(index)
        try:
            load(self._image, page.info, self._data)
        except ImageError as error:
            raise _on_page(index, self._page_count, error) from error
        pixels = to_array(self._image, page.info)
        if ExifTags.Base.Orientation in self._image.tag_v2:
            # Pillow turns a TIFF page upright as it loads it and then drops
            # the tag; a tag still there was not applied.
            pixels = upright(pixels, page.info.orientation)
        if not pixels.flags.writeable or not pixels.flags.c_contiguous:
            pixels = np.array(pixels, order="C")
        return DecodedImage(pixels=pixels, info=page.info)

    def _read_page(self, index: int, max_pixels: int) -> TiffPage:
        """Page ``index``'s facts from its directory; raise ImageError if above ``max_pixels``."""
        self._seek(index)
        image = self._image
        tags = image.tag_v2
        orientation = tags.get(ExifTags.Base.Orientation, 1)
        info = ImageInfo(
            format=_FORMAT,
            # Pillow's own size is already turned for orientations 5 to 8.
            width=int(tags[TiffImagePlugin.IMAGEWIDTH]),
            height=int(tags[TiffImagePlugin.IMAGELENGTH]),
            mode=image.mode,
            frames=self._page_count,
            orientation=orientation if orientation in range(1, 9) else 1,
            bits=max(tags.get(TiffImagePlugin.BITSPERSAMPLE, (1,))),
            transparent=has_transparency(image),
        )
        try:
            check_size((info.width, info.height), max_pixels)
        except ImageError as error:
            raise _on_page(index, self._page_count, error) from error
        return TiffPage(
            index=index,
            info=info,
            compression=str(image.info.get("compression", "raw")),
            dpi=_dpi(tags),
        )

    def _seek(self, index: int) -> None:
        """Put Pillow on page ``index`` (reading its directory); raise ImageError naming it."""
        try:
            self._image.seek(index)
        except PILLOW_ERRORS as error:
            raise _on_page(index, self._page_count, _directory_error(self._data, error)) from error


def tiff_pages(
    data: ByteSource, *, max_pixels: int, max_pages: int = DEFAULT_MAX_PAGES
) -> TiffDocument:
    """Read a TIFF's directories, decoding no pixel; raise ImageError if it cannot be read.

    ``incomplete`` when the data ends inside the header, the chain of
    directories or the values they point to; ``bad_input`` when it is not a TIFF, has no pages or more
    than ``max_pages`` (refused after ``max_pages + 1`` directory headers,
    before a tag is read), or a page's directory is broken or promises more
    than ``max_pixels`` pixels (naming the page).
    """
    if not data:
        raise ImageError("file is empty (0 bytes)", incomplete=True)
    if data[:4] not in SIGNATURES:
        if len(data) < 4 and any(signature.startswith(data[:4]) for signature in SIGNATURES):
            raise ImageError(truncated_message(_FORMAT, data), incomplete=True)
        raise ImageError(f"not a TIFF (starts with {data[:_SHOWN_PREFIX]!r})")
    directories = tiff_directories(data, limit=max_pages + 1)
    if directories is None:
        raise ImageError(truncated_message(_FORMAT, data), incomplete=True)
    if not directories:
        raise ImageError("TIFF has no pages")
    if len(directories) > max_pages:
        raise ImageError(f"TIFF has more pages than the limit of {max_pages} (max_pages)")
    # A file on disk is read through a descriptor of its own: Pillow hands it to
    # libtiff, which reads a page's strips where they lie. From memory, libtiff
    # is given the whole file for every page it decodes.
    stream = data.stream() if isinstance(data, FileBytes) else io.BytesIO(data[:])
    try:
        image = TiffImagePlugin.TiffImageFile(stream)
    except PILLOW_ERRORS as error:
        stream.close()
        raise _on_page(0, len(directories), _directory_error(data, error)) from error
    return TiffDocument(image, data, stream, page_count=len(directories), max_pixels=max_pixels)


def verify_tiff(
    data: ByteSource, *, max_pixels: int, max_pages: int = DEFAULT_MAX_PAGES
) -> tuple[TiffPage, ...]:
    """Decode every page in turn, keeping none; the pages, or ImageError as from :meth:`TiffDocument.decode`."""
    with tiff_pages(data, max_pixels=max_pixels, max_pages=max_pages) as document:
        for index in range(len(document.pages)):
            document.decode(index)
        return document.pages


def _directory_error(data: ByteSource, error: BaseException) -> ImageError:
    """Classify a failure to read a page's directory: cut off, an unknown compression, corrupt."""
    failure = decode_error(data, _FORMAT, error, None)
    if failure.classification != "incomplete" and isinstance(error, KeyError):
        # Pillow looks the compression up in its table; a miss raises KeyError.
        return ImageError(f"{_FORMAT} compression {error} is not supported")
    return failure


def _on_page(index: int, page_count: int, error: ImageError) -> ImageError:
    """``error`` reworded to name the page, keeping its classification."""
    return ImageError(
        f"page {index + 1} of {page_count}: {error}",
        incomplete=error.classification == "incomplete",
    )


def _dpi(tags: TiffImagePlugin.ImageFileDirectory_v2) -> tuple[float, float] | None:
    """Dots per inch from the resolution tags; None when absent, zero or without a unit."""
    unit = tags.get(TiffImagePlugin.RESOLUTION_UNIT, _INCH)  # the specification's default
    if unit not in (_INCH, _CENTIMETRE):
        return None
    scale = _CENTIMETRES_PER_INCH if unit == _CENTIMETRE else 1.0
    values = []
    for tag in (TiffImagePlugin.X_RESOLUTION, TiffImagePlugin.Y_RESOLUTION):
        value = tags.get(tag)
        if value is None:
            return None
        try:
            dots = float(value) * scale
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        if not math.isfinite(dots) or dots <= 0:
            return None
        values.append(round(dots, _DPI_DECIMALS))
    return values[0], values[1]
