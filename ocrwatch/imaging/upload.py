"""Uploads: the bytes that go over the network, and whether a file's own bytes can.

Sends the file's own bytes when they are plain and fit; else hands the pixels
to :mod:`.fitting`, which finds the encode that fits. This module imports
neither OpenCV nor numpy, so a file sent as it is never loads them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ocrwatch.imaging.containers import ImageInfo

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Upload:
    """What was sent over the network: the bytes and how they relate to the image."""

    data: bytes = field(repr=False)
    filetype: str
    """ocr.space ``filetype`` value: JPG, PNG, GIF, TIF or BMP."""
    extension: str
    scale: float
    """Uploaded pixels per image pixel (1.0, or less after downscaling)."""
    width: int
    height: int
    grayscale: bool
    quality: int | None
    """JPEG quality of the final encode; None when the original bytes went as-is."""
    encodes: int
    """How many encodes it took to fit the budget (0 when the original went as-is)."""

    def describe(self) -> dict[str, Any]:
        """The upload's facts for a sidecar, without the bytes."""
        return {
            "bytes": len(self.data),
            "filetype": self.filetype,
            "scale": self.scale,
            "width": self.width,
            "height": self.height,
            "grayscale": self.grayscale,
            "quality": self.quality,
            "encodes": self.encodes,
        }


# --------------------------------------------------------------------------
# Uploads


def sendable(
    original: bytes, info: ImageInfo, *, max_bytes: int, max_side: int | None = None
) -> bool:
    """True when a whole file's own bytes can be uploaded unchanged: plain, within budget and size."""
    return (
        info.plain
        and len(original) <= max_bytes
        and (max_side is None or max(info.width, info.height) <= max_side)
    )


def fit_upload(
    pixels: np.ndarray | Callable[[], np.ndarray],
    *,
    max_bytes: int,
    max_side: int | None = None,
    original: bytes | None = None,
    info: ImageInfo | None = None,
) -> Upload:
    """Encode pixels into at most ``max_bytes``; raise ImageError if no sane encoding fits.

    ``original`` and ``info`` describe the whole file the pixels came from (only
    given when they are the whole file, uncropped): when it is :func:`sendable`
    it goes as it is, and ``pixels`` (which may be a function decoding them on
    demand) are never needed.
    """
    whole = callable(pixels) or pixels.shape[1::-1] == (info.upright_size if info else None)
    # Pixels of another size than the file mean a crop happened: the original is not what to read.
    if (
        original is not None
        and info is not None
        and whole
        and sendable(original, info, max_bytes=max_bytes, max_side=max_side)
    ):
        extension = "jpg" if info.format == "JPEG" else "png"
        width, height = info.upright_size
        return Upload(
            data=original,
            filetype=extension.upper(),
            extension=extension,
            scale=1.0,
            width=width,
            height=height,
            grayscale=info.mode == "L",
            quality=None,
            encodes=0,
        )
    # OpenCV and numpy load here, not at start: a file that goes as it is never needs them.
    from ocrwatch.imaging import fitting

    encoded = fitting.fit(
        pixels() if callable(pixels) else pixels, max_bytes=max_bytes, max_side=max_side
    )
    extension = "jpg" if encoded.quality is not None else "png"
    return Upload(
        data=encoded.data,
        filetype=extension.upper(),
        extension=extension,
        scale=encoded.scale,
        width=encoded.width,
        height=encoded.height,
        grayscale=encoded.grayscale,
        quality=encoded.quality,
        encodes=encoded.encodes,
    )
