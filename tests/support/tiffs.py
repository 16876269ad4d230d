"""Multi-page TIFFs built for tests, small and deterministic: a document feeder's mix, a broken page.

Owns building the bytes only; tests decide what must come of them. Page
images come from :mod:`tests.support.render`, so each page's text is known.
Each page is written with its own compression, as a feeder that sends text
pages as G4, grey pages as LZW and photos as JPEG does.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, TiffImagePlugin

from tests.support.render import Rendered

Page = tuple[Image.Image, dict[str, Any]]
"""A page and Pillow's TIFF save options for it (compression, dpi)."""

STRIP_OFFSETS, STRIP_BYTE_COUNTS = 273, 279
ONE_STRIP = 1 << 26
"""Bytes per strip enough for any test page to be one strip."""
THRESHOLD = 128
"""Grey levels below this are ink on a bilevel page."""
FEEDER_KINDS = (("1", "group4"), ("L", "tiff_lzw"), ("RGB", "jpeg"))
"""(mode, compression) of a feeder's pages, in turn."""


def multipage(pages: Sequence[Page]) -> bytes:
    """A TIFF of ``pages`` in order, each written with its own save options."""
    (first, first_options), *rest = pages
    for image, options in rest:
        # Pillow writes an appended page with the first page's options
        # overlaid with the page's own encoderinfo.
        image.encoderinfo = options
    buffer = io.BytesIO()
    first.save(
        buffer, "TIFF", save_all=True, append_images=[image for image, _ in rest], **first_options
    )
    return buffer.getvalue()


def feeder(pages: Sequence[Rendered], *, dpi: int) -> bytes:
    """``pages`` as a feeder mixes them, in turn: bilevel G4, grey LZW, colour JPEG (then again)."""
    built: list[Page] = []
    for index, rendered in enumerate(pages):
        mode, compression = FEEDER_KINDS[index % len(FEEDER_KINDS)]
        options: dict[str, Any] = {"compression": compression, "dpi": (dpi, dpi)}
        if mode == "1":
            image = rendered.image.convert("L").point(lambda v: 255 if v >= THRESHOLD else 0)
            image = image.convert("1")
        else:
            image = rendered.image.convert(mode)
        if compression == "jpeg":
            options["quality"] = 90
        built.append((image, options))
    return multipage(built)


def strip(data: bytes, index: int) -> tuple[int, int]:
    """Where page ``index``'s (first) strip starts and ends in ``data``."""
    with TiffImagePlugin.TiffImageFile(io.BytesIO(data)) as image:
        image.seek(index)
        start = int(image.tag_v2[STRIP_OFFSETS][0])
        return start, start + int(image.tag_v2[STRIP_BYTE_COUNTS][0])


def with_garbage_page(pages: Sequence[Rendered], *, broken: int, dpi: int, seed: int = 12) -> bytes:
    """``pages`` as grey LZW pages of one strip each, page ``broken`` (from 0) overwritten with noise.

    Noise in an LZW strip is a decoder error, not a picture: the page is
    broken for good, while the file around it is whole.
    """
    data = bytearray(
        multipage(
            [
                (
                    rendered.image.convert("L"),
                    {"compression": "tiff_lzw", "dpi": (dpi, dpi), "strip_size": ONE_STRIP},
                )
                for rendered in pages
            ]
        )
    )
    start, end = strip(bytes(data), broken)
    data[start:end] = np.random.default_rng(seed).integers(0, 256, end - start, np.uint8).tobytes()
    return bytes(data)
