"""Image bytes in, upright pixels out; pixels in, an upload that fits a byte budget out.

This module owns two steps of every file's life:

* reading: identifying the format from the bytes, refusing decompression bombs
  from the header alone, telling half-written files (retry later) from broken
  ones (give up), decoding the first frame with Pillow and turning it into an
  upright uint8 array (EXIF orientation applied, alpha composited over white,
  16-bit and CMYK data brought to 8-bit grey or BGR);
* encoding: sending the file's own bytes when they are plain and fit, else
  choosing grey or colour and a JPEG quality and scale that fit the upload
  budget with as few encodes as possible (pure black-and-white pages go as a
  lossless 1-bit PNG, which is several times smaller than any JPEG of them).

It deliberately knows nothing of files on disk, configs or engines: callers
hand it bytes and limits and get arrays, :class:`ImageInfo` and
:class:`~ocrwatch.engines.base.Upload` back.

Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is global
state that other code in the process may rely on, so it is left alone: files
are opened through the format plugins directly, our ``max_pixels`` is checked
from the header before any pixel buffer exists (a WebP's size is read from
its bytes by hand, since libwebp allocates its canvas as Pillow opens the
file), and the guard Pillow still
applies inside some plugins (TIFF, GIF, MPO) is caught and reported. Residual
risk accepted: Pillow may emit its ``DecompressionBombWarning`` for TIFF pages
between its warning threshold (about 89 megapixels) and ``max_pixels``.
Truncated data is never decoded into a grey-filled image: Pillow's
``LOAD_TRUNCATED_IMAGES`` stays off and OpenCV, which accepts truncated JPEGs
silently, is never used to decode.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import (
    BmpImagePlugin,  # noqa: F401 - importing a plugin registers its format
    GifImagePlugin,  # noqa: F401
    Image,
    ImageFile,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

from ocrwatch.engines.base import Upload
from ocrwatch.errors import ImageError

SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP"})
"""Pillow format names this module decodes; MPO (a JPEG with extra frames) is read as JPEG."""

_EXIF_ORIENTATION = 0x0112
_MEGA = 1_000_000
_SHOWN_PREFIX = 8
"""Bytes of an unrecognised file quoted in the error message."""
_MAX_TIFF_PAGES = 10_000
"""Directories followed when checking a TIFF for truncation (guards against loops)."""

# has_colour: the image is shrunk to about this many pixels on its long side,
# then a pixel counts as coloured when its channels differ by the threshold
# (grey scans stay under 10 after averaging; logos and photos reach 100+),
# and the image when enough pixels do (0.25% is a logo a few cm wide on A4).
_COLOUR_SAMPLE_SIDE = 256
_CHROMA_THRESHOLD = 24
_COLOUR_FRACTION = 0.0025
_COLOUR_MIN_PIXELS = 4

# fit_upload. Small images go at quality 90, where Tesseract reads JPEG as
# well as the source (85 already costs colour-background text a few percent
# CER). Quality drops only as far as the budget needs, and not below 50: there
# 300-dpi text still reads the same and libjpeg's size curve flattens, so
# shrinking the image saves more. Never below a quarter of the size, though.
_JPEG_START_QUALITY = 90
_JPEG_FLOOR_QUALITY = 50
_MIN_SCALE = 0.25
_DIRECT_PIXELS = 2_000_000
"""Up to this size trial encodes are made on the whole image (and may be kept)."""
_SAMPLE_PIXELS = 1_000_000
"""Size of the tile sample of a larger image used for trial encodes."""
_TILE_ROWS = 16
"""Tile height: one row of JPEG blocks with 4:2:0 chroma."""
_TILE_WIDTH = 128
_MOSAIC_COLUMNS = 16
_SAMPLE_SEED = 20240601
_JPEG_OVERHEAD = 600
"""Bytes of markers and tables in every JPEG, not proportional to the area."""
_AIM = 0.97
"""Fraction of the budget that sample estimates aim for: they err by a few percent."""
_GOOD_ENOUGH = 0.9
"""Stop looking for a higher quality once a fitting one fills this much of the target."""
_QUALITY_EXPONENT = 0.8
"""Typical k in bytes ~ libjpeg_scale ** -k for document scans (0.3 bilevel .. 1.0 smooth)."""
_AREA_EXPONENT = 1.0
"""Typical g in bytes ~ pixels ** g when shrinking a scan (0.7 clean text .. 1.3 noisy)."""
_SHRINK_STEP = 0.98
_GROW_STEP = 1.02
"""Factors closer than this to one already tried are not worth another encode."""
_MAX_TRIALS = 6
_MAX_FULL_ENCODES = 3

# Exceptions Pillow raises for malformed or truncated input while opening or
# decoding. TypeError and IndexError are on the list because Image.open itself
# treats them as "not this format" (a TIFF without dimensions raises TypeError).
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    TypeError,
    IndexError,
)

# Leading bytes of each supported format, to recognise a file cut off inside
# its own signature (too short for Pillow to identify) as half-written.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "BMP": (b"BM",),
    "WEBP": (b"RIFF",),
}


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an image says, before any pixel is decoded."""

    format: str
    """Pillow format name (JPEG, PNG, TIFF, BMP, GIF, WEBP); MPO files say JPEG."""
    width: int
    """Width as stored, before EXIF orientation."""
    height: int
    mode: str
    """Pillow mode of the first frame (L, RGB, P, 1, I;16, CMYK, RGBA...)."""
    frames: int
    """Frames or pages in the file; only the first is decoded."""
    orientation: int
    """EXIF orientation 1..8; 1 when absent or invalid."""
    bits: int = 8
    """Bits per sample as stored (16 for a 16-bit PNG that Pillow reads as 8-bit RGB)."""
    transparent: bool = False
    """True when the file carries transparency (alpha channel, transparent colour or index)."""

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as a viewer shows the image, after EXIF orientation."""
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height

    @property
    def plain(self) -> bool:
        """True when the stored bytes are an 8-bit L/RGB JPEG or PNG, upright, one frame, opaque."""
        return (
            self.format in ("JPEG", "PNG")
            and self.mode in ("L", "RGB")
            and self.bits == 8
            and self.orientation == 1
            and self.frames == 1
            and not self.transparent
        )


@dataclass(frozen=True)
class DecodedImage:
    """The first frame of an image as upright uint8 pixels, and its header facts."""

    pixels: np.ndarray
    """Upright, C-contiguous, writeable uint8: HxW for grey or bilevel sources, HxWx3 BGR for colour."""
    info: ImageInfo


def probe(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Read an image's header facts without decoding pixels; raise ImageError if unusable."""
    image, info = _open(data, max_pixels=max_pixels)
    image.close()
    return info


def verify(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Check that the whole image decodes, as cheaply as its format allows; raise ImageError like decode.

    A JPEG is decoded at 1/8 scale: libjpeg still reads every entropy-coded
    byte, so a truncated file fails exactly as in a full decode, for a fraction
    of the work. Other formats are decoded in full and the pixels dropped.
    """
    image, info = _open(data, max_pixels=max_pixels)
    with image:
        if info.format == "JPEG":
            image.draft(image.mode, (max(1, info.width // 8), max(1, info.height // 8)))
        _load(image, info, data)
    return info


def decode(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode the first frame of an image into upright pixels; raise ImageError if unusable."""
    fast = _decode_plain_jpeg(data, max_pixels=max_pixels)
    if fast is not None:
        return fast
    image, info = _open(data, max_pixels=max_pixels)
    with image:
        _load(image, info, data)
        if image.size != (info.width, info.height):
            # A GIF frame may reach past the logical screen; trust what was decoded.
            info = replace(info, width=image.width, height=image.height)
        pixels = _upright(_to_array(image, info), info.orientation)
    if not pixels.flags.writeable or not pixels.flags.c_contiguous:
        pixels = np.array(pixels, order="C")
    return DecodedImage(pixels=pixels, info=info)


def _decode_plain_jpeg(data: bytes, *, max_pixels: int) -> DecodedImage | None:
    """A gray or RGB JPEG decoded by OpenCV, after a 1/8-scale check that it is complete.

    Pillow's full decode of a large colour JPEG costs two to three times
    OpenCV's (its 4-byte pixels are packed and copied twice on the way to a
    BGR array). OpenCV, though, fills a truncated JPEG with grey without a
    word, so :func:`verify` must pass first. Other JPEGs (CMYK, several
    frames) and every other format take Pillow's path. None: not this case.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    info = verify(data, max_pixels=max_pixels)
    if info.format != "JPEG" or info.mode not in ("L", "RGB") or info.frames != 1:
        return None
    flags = (cv2.IMREAD_GRAYSCALE if info.mode == "L" else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.shape[1::-1] != (info.width, info.height):
        return None
    pixels = _upright(pixels, info.orientation)
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    return DecodedImage(pixels=pixels, info=info)


def _load(image: ImageFile.ImageFile, info: ImageInfo, data: bytes) -> None:
    """Decode ``image``'s pixel data; raise ImageError (incomplete or permanent) if it fails."""
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"image is {info.width}x{info.height}, above Pillow's own decompression-bomb "
            f"limit: {error}"
        ) from error
    except _PILLOW_ERRORS as error:
        raise _decode_error(data, info.format, error, image) from error


# --------------------------------------------------------------------------
# Opening and classifying


def _open(data: bytes, *, max_pixels: int) -> tuple[ImageFile.ImageFile, ImageInfo]:
    """Identify the format, parse the header and check the size; raise ImageError."""
    if not data:
        raise ImageError("file is empty (0 bytes)", incomplete=True)
    format_name = _identify(data)
    if format_name == "WEBP":
        # libwebp allocates the whole canvas as Pillow opens the file: check first.
        _check_size(_webp_size(data), max_pixels)
    factory, _accept = Image.OPEN[format_name]
    try:
        # The plugin's factory, not Image.open: Image.open would apply Pillow's
        # global pixel limit (and warn) before ours could.
        image = factory(io.BytesIO(data), "")
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"image is above Pillow's own decompression-bomb limit: {error}"
        ) from error
    except _PILLOW_ERRORS as error:
        raise _decode_error(data, _format_of(format_name), error, None) from error

    width, height = image.size
    try:
        _check_size((width, height), max_pixels)
    except ImageError:
        image.close()
        raise
    info_format = _format_of(image.format or format_name)
    try:
        frames = int(getattr(image, "n_frames", 1))
        orientation = _orientation(image, data, info_format)
    except _PILLOW_ERRORS as error:
        image.close()
        raise _decode_error(data, info_format, error, image) from error
    info = ImageInfo(
        format=info_format,
        width=width,
        height=height,
        mode=image.mode,
        frames=max(frames, 1),
        orientation=orientation,
        bits=_bits(data, info_format, image.mode),
        transparent=_transparent(image),
    )
    return image, info


def _check_size(size: tuple[int, int] | None, max_pixels: int) -> None:
    """Refuse an image whose header promises more pixels than ``max_pixels`` (or none)."""
    if size is None:
        return
    width, height = size
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height / _MEGA:.1f} megapixels, above the "
            f"limit of {max_pixels / _MEGA:.1f} megapixels (max_pixels)"
        )
    if width <= 0 or height <= 0:
        raise ImageError(f"image has no pixels ({width}x{height})")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP header (VP8X, VP8L or VP8 chunk); None if it cannot say."""
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


def _identify(data: bytes) -> str:
    """The Pillow plugin name for a supported format, or raise ImageError."""
    prefix = data[:16]
    for name in ("JPEG", "PNG", "TIFF", "GIF", "WEBP", "BMP"):
        _factory, accept = Image.OPEN[name]
        if accept is not None and accept(prefix) is True:
            return name
    for name, signatures in _SIGNATURES.items():
        if len(data) < 12 and any(
            signature.startswith(data) or data.startswith(signature) for signature in signatures
        ):
            raise ImageError(_truncated_message(name, data), incomplete=True)
    other = _other_format(prefix)
    if other is not None:
        raise ImageError(f"unsupported image format {other!r}")
    raise ImageError(f"not an image (starts with {data[:_SHOWN_PREFIX]!r})")


def _other_format(prefix: bytes) -> str | None:
    """The name of a format Pillow knows but ocrwatch does not read, from its signature."""
    Image.init()
    for name, (_factory, accept) in list(Image.OPEN.items()):
        # Plugins without a signature check (TGA, SPIDER...) would claim anything.
        if accept is None or _format_of(name) in SUPPORTED_FORMATS:
            continue
        try:
            if accept(prefix):
                return name
        except _PILLOW_ERRORS:
            continue
    return None


def _format_of(name: str) -> str:
    return "JPEG" if name == "MPO" else name


def _decode_error(
    data: bytes, format_name: str, error: BaseException, image: ImageFile.ImageFile | None
) -> ImageError:
    """Classify a Pillow failure: half-written data (retry) or a broken file (give up)."""
    if _looks_truncated(data, format_name, image) or _is_truncation(error):
        return ImageError(_truncated_message(format_name, data), incomplete=True)
    return ImageError(f"{format_name} data is corrupt ({error})")


def _truncated_message(format_name: str, data: bytes) -> str:
    return f"{format_name} data ends early (truncated at {len(data)} bytes)"


def _is_truncation(error: BaseException) -> bool:
    return isinstance(error, EOFError | struct.error) or "truncated" in str(error).lower()


def _looks_truncated(data: bytes, format_name: str, image: ImageFile.ImageFile | None) -> bool:
    """True when the container's own structure says bytes are missing at the end."""
    checks: dict[str, Callable[[], bool]] = {
        "JPEG": lambda: not _jpeg_complete(data),
        "PNG": lambda: not _png_chunks(data)[0],
        "GIF": lambda: not data.rstrip(b"\x00").endswith(b";"),
        "WEBP": lambda: len(data) < 12 or struct.unpack_from("<I", data, 4)[0] + 8 > len(data),
        # A BMP header declares the file size; its reserved bytes are zero.
        "BMP": lambda: (
            len(data) < 14
            or (data[6:10] == bytes(4) and struct.unpack_from("<I", data, 2)[0] > len(data))
        ),
        "TIFF": lambda: _tiff_truncated(data, image),
    }
    check = checks.get(format_name)
    return check is not None and check()


def _jpeg_complete(data: bytes) -> bool:
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
            return data.find(b"\xff\xd9", position) != -1
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    return False


def _png_chunks(data: bytes) -> tuple[bool, bytes | None]:
    """Walk the chunk headers: (whether IEND is there, the eXIf payload if any)."""
    position = 8
    exif: bytes | None = None
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IEND":
            return True, exif
        if kind == b"eXIf" and exif is None:
            exif = data[position + 8 : position + 8 + length]
        position += 12 + length
    return False, exif


def _tiff_truncated(data: bytes, image: ImageFile.ImageFile | None) -> bool:
    """True when a directory in the chain, or the first page's strips, lie past the end."""
    if len(data) < 16:
        return True
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets, 20-byte entries
    offset_format, count_format, entry_size = ("Q", "Q", 20) if big else ("I", "H", 12)
    offset = struct.unpack_from(order + offset_format, data, 8 if big else 4)[0]
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < _MAX_TIFF_PAGES:
        seen.add(offset)
        count_size = struct.calcsize(count_format)
        if offset + count_size > len(data):
            return True
        entries = struct.unpack_from(order + count_format, data, offset)[0]
        next_at = offset + count_size + entries * entry_size
        if next_at + struct.calcsize(offset_format) > len(data):
            return True
        offset = struct.unpack_from(order + offset_format, data, next_at)[0]
    if not isinstance(image, TiffImagePlugin.TiffImageFile):
        return False
    tags = image.tag_v2
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # strips, tiles
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets is None or counts is None:
            continue
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        if any(int(o) + int(c) > len(data) for o, c in zip(offsets, counts, strict=False)):
            return True
    return False


def _orientation(image: ImageFile.ImageFile, data: bytes, format_name: str) -> int:
    """EXIF orientation 1..8 from the header; 1 when absent or invalid."""
    if format_name == "PNG" and "exif" not in image.info:
        # Pillow's PNG getexif() decodes the whole image to look for an eXIf
        # chunk after the pixel data; walking the chunk headers is enough.
        image.info["exif"] = _png_chunks(data)[1] or b""
    value = image.getexif().get(_EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _bits(data: bytes, format_name: str, mode: str) -> int:
    """Bits per sample as stored; Pillow hides 16-bit colour PNGs behind 8-bit modes."""
    if format_name == "PNG" and len(data) > 24:
        return data[24]
    if mode.startswith("I;16") or mode == "I":
        return 16
    return 1 if mode == "1" else 8


def _transparent(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


# --------------------------------------------------------------------------
# Pixels


def _to_array(image: Image.Image, info: ImageInfo) -> np.ndarray:
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
    if _transparent(image):
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


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
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


# --------------------------------------------------------------------------
# Colour


def has_colour(pixels: np.ndarray) -> bool:
    """True when the pixels carry colour beyond scanner noise and JPEG artefacts."""
    if pixels.ndim != 3:
        return False
    height, width = pixels.shape[:2]
    # Pick every n-th pixel down to about twice the final size, then average
    # 2x2 blocks: averaging cancels noise and fringes, picking keeps it fast.
    step = max(1, max(height, width) // (2 * _COLOUR_SAMPLE_SIDE))
    picked = np.ascontiguousarray(pixels[::step, ::step])
    small = cv2.resize(
        picked,
        (max(1, picked.shape[1] // 2), max(1, picked.shape[0] // 2)),
        interpolation=cv2.INTER_AREA,
    )
    spread = cv2.subtract(np.max(small, axis=2), np.min(small, axis=2))
    coloured = cv2.countNonZero(
        cv2.threshold(spread, _CHROMA_THRESHOLD - 1, 255, cv2.THRESH_BINARY)[1]
    )
    return bool(coloured >= max(_COLOUR_MIN_PIXELS, _COLOUR_FRACTION * spread.size))


# --------------------------------------------------------------------------
# Uploads


def sendable(original: bytes, info: ImageInfo, *, max_bytes: int, max_side: int | None = None) -> bool:
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
    whole = not isinstance(pixels, np.ndarray) or pixels.shape[1::-1] == (info.upright_size if info else None)
    # Pixels of another size than the file mean a crop happened: the original is not what to read.
    if original is not None and info is not None and whole and sendable(
        original, info, max_bytes=max_bytes, max_side=max_side
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
    if callable(pixels):
        pixels = pixels()
    if (
        pixels.dtype != np.uint8
        or pixels.ndim not in (2, 3)
        or (pixels.ndim == 3 and pixels.shape[2] != 3)
    ):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    if max_bytes <= 0 or (max_side is not None and max_side <= 0):
        raise ValueError(f"max_bytes and max_side must be positive, got {max_bytes}, {max_side}")
    height, width = pixels.shape[:2]
    if pixels.ndim == 3 and not has_colour(pixels):
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    if max_side is not None and max(width, height) > max_side:
        pixels = _resized(pixels, max_side / max(width, height))
    return _Fitter(pixels, max_bytes=max_bytes, input_width=width).fit()


def _bilevel(pixels: np.ndarray) -> bool:
    return cv2.countNonZero(cv2.inRange(pixels, 1, 254)) == 0


def _resized(pixels: np.ndarray, factor: float) -> np.ndarray:
    """Pixels scaled down by ``factor`` with area averaging; never up."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if factor >= 1.0 or size == (width, height):
        return pixels
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


def _jpeg_scale(quality: float) -> float:
    """libjpeg's quantisation-table scale (percent) for a quality setting."""
    return 5000 / quality if quality < 50 else 200 - 2 * quality


def _quality_for(scale: float) -> float:
    return 5000 / scale if scale > 100 else (200 - scale) / 2


def _tile_sample(pixels: np.ndarray) -> tuple[np.ndarray, float]:
    """A mosaic of full-resolution tiles spread over the image, and how many times larger the image is.

    JPEG spends its bytes block by block, so tiles at full resolution predict
    the size of the whole far better than a downscaled copy would. Tiles are
    drawn at random (fixed seed) from every stretch of the image, so that a
    regular line pitch cannot line up with the sampling; many small tiles
    rather than a few full-width bands keep the estimate within a few percent.
    """
    height, width = pixels.shape[:2]
    tile_width = min(_TILE_WIDTH, width)
    bands = height // _TILE_ROWS
    columns = max(1, width // tile_width)
    # Column starts spread so that the last tile ends at the right edge.
    starts = np.linspace(0, width - tile_width, columns).round().astype(np.intp)
    wanted = round(_SAMPLE_PIXELS / (_TILE_ROWS * tile_width) / _MOSAIC_COLUMNS) * _MOSAIC_COLUMNS
    count = max(_MOSAIC_COLUMNS, min(wanted, bands * columns // _MOSAIC_COLUMNS * _MOSAIC_COLUMNS))
    edges = np.linspace(0, bands * columns, count + 1)
    offsets = np.random.default_rng(_SAMPLE_SEED).random(count)
    chosen = np.minimum(edges[:-1] + offsets * np.diff(edges), bands * columns - 1).astype(np.intp)
    row_index = (chosen // columns)[:, None] * _TILE_ROWS + np.arange(_TILE_ROWS)
    column_index = starts[chosen % columns][:, None] + np.arange(tile_width)
    tiles = pixels[row_index[:, :, None], column_index[:, None, :]]
    # (count, rows, width[, 3]) -> mosaic of _MOSAIC_COLUMNS tiles per row.
    grid = tiles.reshape(count // _MOSAIC_COLUMNS, _MOSAIC_COLUMNS, *tiles.shape[1:])
    mosaic = np.ascontiguousarray(np.swapaxes(grid, 1, 2)).reshape(
        count // _MOSAIC_COLUMNS * _TILE_ROWS, _MOSAIC_COLUMNS * tile_width, *pixels.shape[2:]
    )
    return mosaic, height * width / (mosaic.shape[0] * mosaic.shape[1])


class _Trials:
    """Estimated JPEG sizes of one working image, measured on a sample of it."""

    def __init__(self, encoder: _Encoder, pixels: np.ndarray) -> None:
        self.encoder = encoder
        self.pixels = pixels
        if (
            pixels.shape[0] * pixels.shape[1] <= _DIRECT_PIXELS
            or pixels.shape[0] < _MOSAIC_COLUMNS * _TILE_ROWS
        ):
            self.sample, self.factor = pixels, 1.0
        else:
            self.sample, self.factor = _tile_sample(pixels)
        self.calibration = 1.0
        self.sizes: dict[int, float] = {}
        self.encoded: dict[int, bytes] = {}
        """Encodes of the whole image made along the way (when the sample is the image)."""

    @property
    def exact(self) -> bool:
        return self.factor == 1.0

    def size(self, quality: int) -> float:
        """The (estimated) size of the whole image at ``quality``."""
        if quality not in self.sizes:
            data = self.encoder.jpeg(self.sample, quality)
            if self.exact:
                self.encoded[quality] = data
                self.sizes[quality] = len(data)
            else:
                self.sizes[quality] = (len(data) - _JPEG_OVERHEAD) * self.factor + _JPEG_OVERHEAD
        return self.sizes[quality] * self.calibration

    def full(self, quality: int) -> bytes:
        """The whole image encoded at ``quality``; calibrates later estimates."""
        if quality in self.encoded:
            return self.encoded[quality]
        data = self.encoder.jpeg(self.pixels, quality)
        self.encoded[quality] = data
        self.calibration = len(data) / self.sizes[quality] if quality in self.sizes else 1.0
        return data

    def best_quality(self, target: float, *, start: int, floor: int) -> int | None:
        """The highest quality in floor..start whose size fits ``target``; None if none does."""
        fitting: int | None = None
        over: int | None = None
        quality = start
        for _ in range(_MAX_TRIALS):
            size = self.size(quality)
            if size <= target:
                fitting = quality if fitting is None else max(fitting, quality)
            else:
                over = quality if over is None else min(over, quality)
            low = floor if fitting is None else fitting + 1
            high = start if over is None else over - 1
            if low > high or (fitting == quality and size >= _GOOD_ENOUGH * target):
                break
            # Aim a little under: landing just over the target costs another trial.
            quality = min(max(self._predict(target * _AIM), low), high)
        if fitting is None and over is not None and over > floor:
            return floor if self.size(floor) <= target else None
        return fitting

    def _predict(self, target: float) -> int:
        """The quality whose size should be ``target``, from a power law in libjpeg's scale."""
        # Bytes follow scale ** -exponent closely on documents; fit the exponent
        # to the two measurements nearest the target, or assume a typical one.
        known = sorted(self.sizes, key=lambda q: abs(math.log(self.size(q) / target)))[:2]
        exponent = _QUALITY_EXPONENT
        if len(known) == 2 and self.size(known[0]) != self.size(known[1]):
            ratio = math.log(_jpeg_scale(known[1]) / _jpeg_scale(known[0]))
            if ratio != 0:
                fitted = math.log(self.size(known[0]) / self.size(known[1])) / ratio
                exponent = min(max(fitted, 0.2), 2.0)
        reference = known[0]
        scale = float(_jpeg_scale(reference) * (self.size(reference) / target) ** (1 / exponent))
        return math.floor(_quality_for(min(max(scale, 1.0), 5000.0)))


class _Encoder:
    """cv2.imencode with a count of every call, trial or final."""

    def __init__(self) -> None:
        self.count = 0

    def jpeg(self, pixels: np.ndarray, quality: int) -> bytes:
        return self._encode(
            ".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1]
        )

    def bilevel_png(self, pixels: np.ndarray) -> bytes:
        return self._encode(".png", pixels, [cv2.IMWRITE_PNG_BILEVEL, 1])

    def _encode(self, extension: str, pixels: np.ndarray, params: list[int]) -> bytes:
        self.count += 1
        ok, buffer = cv2.imencode(extension, pixels, params)
        if not ok:
            raise ImageError(f"OpenCV could not encode a {pixels.shape} image as {extension}")
        return bytes(buffer.data)


class _Fitter:
    """The search for an encoding of one image that fits the byte budget."""

    def __init__(self, pixels: np.ndarray, *, max_bytes: int, input_width: int) -> None:
        self.pixels = pixels
        self.max_bytes = max_bytes
        self.input_width = input_width
        self.encoder = _Encoder()

    def fit(self) -> Upload:
        if self.pixels.ndim == 2 and _bilevel(self.pixels):
            # Black-and-white pages: a 1-bit PNG is lossless and several times
            # smaller than any JPEG of the same page.
            data = self.encoder.bilevel_png(self.pixels)
            if len(data) <= self.max_bytes:
                return self._upload(data, self.pixels, quality=None)
        trials = _Trials(self.encoder, self.pixels)
        for _ in range(_MAX_FULL_ENCODES):
            quality = trials.best_quality(
                self._target(trials), start=_JPEG_START_QUALITY, floor=_JPEG_FLOOR_QUALITY
            )
            if quality is None:
                break
            data = trials.full(quality)
            if len(data) <= self.max_bytes:
                return self._upload(data, self.pixels, quality=quality)
        return self._fit_downscaled(trials)

    def _fit_downscaled(self, trials: _Trials) -> Upload:
        """Shrink the image at the floor quality until it fits; raise ImageError if it cannot."""
        floor = _JPEG_FLOOR_QUALITY
        points = [(1.0, trials.size(floor))]
        """(factor, estimated bytes at the floor quality) for every size tried."""
        best: tuple[float, float, _Trials] | None = None
        """The largest factor known to fit, its size and trials."""
        over = 1.0
        """The smallest factor known not to fit."""
        for _ in range(_MAX_TRIALS + _MAX_FULL_ENCODES):
            factor = self._predict_factor(points, self.max_bytes * _AIM)
            factor = max(min(factor, over * _SHRINK_STEP), _MIN_SCALE)
            if best is not None:
                best_factor, best_size, best_trials = best
                if (
                    best_size >= _GOOD_ENOUGH * self._target(best_trials)
                    or factor <= best_factor * _GROW_STEP
                ):
                    data = best_trials.full(floor)
                    if len(data) <= self.max_bytes:
                        return self._upload(data, best_trials.pixels, quality=floor)
                    points.append((best_factor, len(data)))
                    best, over = None, best_factor
                    continue
            if factor >= over:  # over is already at the smallest sane size
                break
            pixels = _resized(self.pixels, factor)
            candidate = _Trials(self.encoder, pixels)
            size = candidate.size(floor)
            points.append((factor, size))
            if size <= self._target(candidate):
                if best is None or factor > best[0]:
                    best = (factor, size, candidate)
            else:
                over = factor
        height, width = self.pixels.shape[:2]
        smallest = min(points)
        raise ImageError(
            f"cannot fit a {width}x{height} image into {self.max_bytes} bytes: at JPEG quality "
            f"{floor} and {smallest[0]:.0%} of its size it still takes about {smallest[1]:.0f} bytes"
        )

    @staticmethod
    def _predict_factor(points: list[tuple[float, float]], target: float) -> float:
        """The scale factor whose size should be ``target``, from bytes ~ area ** exponent."""
        known = sorted(points, key=lambda point: abs(math.log(point[1] / target)))[:2]
        exponent = _AREA_EXPONENT
        if len(known) == 2 and known[0][0] != known[1][0] and known[0][1] != known[1][1]:
            fitted = math.log(known[0][1] / known[1][1]) / (2 * math.log(known[0][0] / known[1][0]))
            exponent = min(max(fitted, 0.3), 2.0)
        factor, size = known[0]
        return float(factor * (target / size) ** (1 / (2 * exponent)))

    def _target(self, trials: _Trials) -> float:
        """The size to aim for: the budget itself when measured exactly, a bit less when estimated."""
        return self.max_bytes * (1.0 if trials.exact else _AIM)

    def _upload(self, data: bytes, pixels: np.ndarray, *, quality: int | None) -> Upload:
        height, width = pixels.shape[:2]
        extension = "jpg" if quality is not None else "png"
        return Upload(
            data=data,
            filetype=extension.upper(),
            extension=extension,
            scale=width / self.input_width,
            width=width,
            height=height,
            grayscale=pixels.ndim == 2,
            quality=quality,
            encodes=self.encoder.count,
        )
