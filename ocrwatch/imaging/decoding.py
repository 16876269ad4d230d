"""Decoding: image bytes in, the first frame as upright uint8 pixels out.

EXIF orientation is applied once (Pillow turns a TIFF upright as it loads
it; other formats are turned here), alpha composited over white, and 16-bit
and CMYK data brought to 8-bit grey or BGR. Truncated data is never decoded
into a grey-filled image: Pillow's ``LOAD_TRUNCATED_IMAGES`` stays off, and
OpenCV, which accepts truncated JPEGs silently, decodes only a JPEG that
:func:`verify` found complete.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import simplejpeg
from PIL import ExifTags, Image

from ocrwatch.imaging.containers import ImageInfo, has_transparency, load, open_image, verify


@dataclass(frozen=True)
class DecodedImage:
    """The first frame of an image as upright uint8 pixels, and its header facts."""

    pixels: np.ndarray
    """Upright, C-contiguous, writeable uint8: HxW for grey or bilevel sources, HxWx3 BGR for colour."""
    info: ImageInfo


def decode(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode the first frame of an image into upright pixels; raise ImageError if unusable."""
    fast = _decode_plain_jpeg(data, max_pixels=max_pixels)
    if fast is not None:
        return fast
    image, info = open_image(data, max_pixels=max_pixels)
    with image:
        load(image, info, data)
        turned = _turned_on_load(image, info)
        width, height = image.size
        if turned and info.orientation >= 5:
            width, height = height, width
        if (width, height) != (info.width, info.height):
            # A GIF frame may reach past the logical screen; trust what was decoded.
            info = replace(info, width=width, height=height)
        pixels = to_array(image, info)
        if not turned:
            pixels = upright(pixels, info.orientation)
    if not pixels.flags.writeable or not pixels.flags.c_contiguous:
        pixels = np.array(pixels, order="C")
    return DecodedImage(pixels=pixels, info=info)


def _turned_on_load(image: Image.Image, info: ImageInfo) -> bool:
    """True when Pillow applied the EXIF orientation itself as it loaded the pixels.

    Pillow does so for TIFF (not for JPEG, PNG or WebP) and then drops the
    tag from the image's EXIF, so an orientation still there was not applied.
    """
    return info.orientation != 1 and ExifTags.Base.Orientation not in image.getexif()


def _decode_plain_jpeg(data: bytes, *, max_pixels: int) -> DecodedImage | None:
    """A grey or RGB JPEG decoded by libjpeg-turbo (simplejpeg), once :func:`verify` found it complete.

    Pillow's full decode of a large colour JPEG costs two to three times
    libjpeg-turbo's own (its 4-byte pixels are packed and copied twice on the
    way to a BGR array). OpenCV's ``imdecode`` decodes into a buffer of its
    own and copies that into the array it returns: for an A4 scan 26 MB
    mapped, faulted in and copied for nothing, a quarter of the decode's
    time. simplejpeg drives the same libjpeg-turbo (the same default DCT and
    upsampling, so the same pixels) straight into a NumPy array. Neither
    says a word about a truncated JPEG (libjpeg-turbo fills the rest with
    grey), so :func:`verify` must pass first. Other JPEGs (CMYK, several
    frames), and any simplejpeg will not take (stray bytes between segments,
    say, which it reports where libjpeg only warns), take Pillow's path,
    which reads what can be read and says what cannot. None: not this case.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    info = verify(data, max_pixels=max_pixels)
    if info.format != "JPEG" or info.mode not in ("L", "RGB") or info.frames != 1:
        return None
    try:
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="GRAY" if info.mode == "L" else "BGR", strict=False
        )
    except ValueError:
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.shape[1::-1] != (info.width, info.height):
        return None
    pixels = upright(pixels, info.orientation)
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    return DecodedImage(pixels=pixels, info=info)


def to_array(image: Image.Image, info: ImageInfo) -> np.ndarray:
    """The decoded frame as uint8 grey (HxW) or BGR (HxWx3), alpha over white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        return _to_8bit(np.asarray(image), mode)
    if mode == "1":
        return np.asarray(image.convert("L"))
    if mode == "CMYK":
        if info.format == "JPEG" and "adobe" not in image.info:
            # Pillow assumes Adobe's inverted CMYK for every JPEG; without an
            # Adobe segment the samples are plain CMYK, so undo the inversion.
            image = Image.fromarray(255 - np.asarray(image), "CMYK")
        return _bgr(image.convert("RGB"))
    if has_transparency(image):
        grey = mode in ("L", "LA", "La") or (mode in ("P", "PA") and _grey_palette(image))
        target = "LA" if grey else "RGBA"
        return _composite(np.asarray(image if mode == target else image.convert(target)))
    if mode == "L":
        return np.asarray(image)
    if mode == "P" and _grey_palette(image):
        return np.asarray(image.convert("L"))
    return _bgr(image if mode == "RGB" else image.convert("RGB"))


def _bgr(image: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def _grey_palette(image: Image.Image) -> bool:
    """True when every palette entry the image uses is a shade of grey."""
    palette = image.getpalette("RGB")
    if palette is None:
        return False
    entries = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    histogram = image.histogram()[: len(entries)] if image.mode == "P" else None
    used = entries if histogram is None else entries[np.flatnonzero(histogram)]
    return bool((used[:, 0] == used[:, 1]).all() and (used[:, 1] == used[:, 2]).all())


def _composite(pixels: np.ndarray) -> np.ndarray:
    """Grey+alpha (HxWx2) or RGBA (HxWx4) composited over white paper."""
    alpha = np.ascontiguousarray(pixels[..., -1])
    if pixels.shape[-1] == 2:
        colour, weights = np.ascontiguousarray(pixels[..., 0]), alpha
    else:
        colour, weights = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR), cv2.merge((alpha,) * 3)
    if int(alpha.min()) == 255:
        return colour
    # white - (white - colour) * alpha: transparent pixels become paper.
    ink = cv2.multiply(cv2.bitwise_not(colour), weights, scale=1 / 255)
    return cv2.bitwise_not(ink)


def _to_8bit(pixels: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit or float grey scaled to 0..255 without clipping the range."""
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    if mode.startswith("I;16"):
        return cv2.convertScaleAbs(pixels, alpha=255 / 65535)
    low, high = float(pixels.min()), float(pixels.max())
    if mode == "F" and low >= 0.0 and high <= 1.0:
        low, high = 0.0, 1.0
    elif mode == "I" and low >= 0 and high <= 65535:
        # 32-bit containers usually hold 16-bit (or 8-bit) samples.
        low, high = 0.0, (65535.0 if high > 255 else 255.0)
    if high <= low:
        return np.full(pixels.shape, 0 if high <= 0 else 255, dtype=np.uint8)
    scale = 255 / (high - low)
    return cv2.convertScaleAbs(pixels.astype(np.float32), alpha=scale, beta=-low * scale)


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation so the array looks as a viewer shows the image."""
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.transpose(pixels)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(pixels), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels
