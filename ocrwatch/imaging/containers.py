"""Image containers: what a file's bytes are, before any pixel is decoded.

Identifies the format from the bytes, reads the header facts
(:class:`ImageInfo`), refuses decompression bombs from the header alone, and
tells a half-written file (retry later) from a broken one (give up).

Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is global
state that other code in the process may rely on, so it is left alone: files
are opened through the format plugins directly, our ``max_pixels`` is checked
from the header before any pixel buffer exists (a WebP's size is read from
its bytes by hand, since libwebp allocates its canvas as Pillow opens the
file), and the guard Pillow still applies inside some plugins (TIFF, GIF,
MPO) is caught and reported. Residual risk accepted: Pillow may emit its
``DecompressionBombWarning`` for TIFF pages between its warning threshold
(about 89 megapixels) and ``max_pixels``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import (
    BmpImagePlugin,  # noqa: F401 - importing a plugin registers its format
    GifImagePlugin,
    Image,
    ImageFile,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

from ocrwatch.errors import ImageError
from ocrwatch.imaging.frames import gif_frames, jpeg_complete, png_chunk_spans, unpack_at
from ocrwatch.imaging.frames import tiff_directories as tiff_directories  # documents.tiff uses it

if TYPE_CHECKING:
    from ocrwatch.source import ByteSource

SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP"})
"""Pillow format names this module decodes; MPO (a JPEG with extra frames) is read as JPEG."""

MAX_COUNTED_FRAMES = 10_000
"""Frames or pages counted in a file; one with more says this many (see :attr:`ImageInfo.frames`)."""

_EXIF_ORIENTATION = 0x0112
_MEGA = 1_000_000
_SHOWN_PREFIX = 8
"""Bytes of an unrecognised file quoted in the error message."""
_TIFF_VALUE_SIZES = {
    **dict.fromkeys((1, 2, 6, 7), 1),  # BYTE, ASCII, SBYTE, UNDEFINED
    **dict.fromkeys((3, 8), 2),  # SHORT, SSHORT
    **dict.fromkeys((4, 9, 11, 13), 4),  # LONG, SLONG, FLOAT, IFD
    **dict.fromkeys((5, 10, 12, 16, 17, 18), 8),  # RATIONAL, SRATIONAL, DOUBLE, LONG8, SLONG8, IFD8
}
"""Bytes per value of each TIFF field type."""

# Exceptions Pillow raises for malformed or truncated input while opening or
# decoding. TypeError and IndexError are on the list because Image.open itself
# treats them as "not this format" (a TIFF without dimensions raises TypeError);
# KeyError is what a TIFF directory naming a compression Pillow does not know raises.
PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    TypeError,
    IndexError,
    KeyError,
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
    """Height as stored, before EXIF orientation."""
    mode: str
    """Pillow mode of the first frame (L, RGB, P, 1, I;16, CMYK, RGBA...)."""
    frames: int
    """Frames or pages in the file, up to :data:`MAX_COUNTED_FRAMES` (a file with more says
    that many); only the first is decoded."""
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


def probe(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Read an image's header facts without decoding pixels; raise ImageError if unusable."""
    image, info = open_image(data, max_pixels=max_pixels)
    image.close()
    return info


def load(image: ImageFile.ImageFile, info: ImageInfo, data: ByteSource) -> None:
    """Decode ``image``'s pixel data; raise ImageError (incomplete or permanent) if it fails."""
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"image is {info.width}x{info.height}, above Pillow's own decompression-bomb "
            f"limit: {error}"
        ) from error
    except PILLOW_ERRORS as error:
        raise decode_error(data, info.format, error, image) from error


def open_image(data: bytes, *, max_pixels: int) -> tuple[ImageFile.ImageFile, ImageInfo]:
    """Identify the format, parse the header and check the size; raise ImageError."""
    if not data:
        raise ImageError("file is empty (0 bytes)", incomplete=True)
    format_name = _identify(data)
    if format_name == "WEBP":
        # libwebp allocates the whole canvas as Pillow opens the file: check first.
        check_size(_webp_size(data), max_pixels)
    factory, _accept = Image.OPEN[format_name]
    try:
        # The plugin's factory, not Image.open: Image.open would apply Pillow's
        # global pixel limit (and warn) before ours could.
        image = factory(io.BytesIO(data), "")
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"image is above Pillow's own decompression-bomb limit: {error}"
        ) from error
    except PILLOW_ERRORS as error:
        raise decode_error(data, _format_of(format_name), error, None) from error

    width, height = _stored_size(image)
    try:
        check_size((width, height), max_pixels)
    except ImageError:
        image.close()
        raise
    info_format = _format_of(image.format or format_name)
    try:
        frames = _frame_count(image, data)
        orientation = _orientation(image, data, info_format)
    except PILLOW_ERRORS as error:
        image.close()
        raise decode_error(data, info_format, error, image) from error
    info = ImageInfo(
        format=info_format,
        width=width,
        height=height,
        mode=image.mode,
        frames=frames,
        orientation=orientation,
        bits=_bits(data, info_format, image.mode),
        transparent=has_transparency(image),
    )
    return image, info


def verify(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Check that the whole image is there and its header sound, as cheaply as its format allows.

    Raises ImageError like :func:`decode`. A JPEG is complete when an
    end-of-image marker follows its first scan: inside entropy-coded data
    every 0xFF byte is stuffed, so the marker cannot appear there by chance,
    and a file cut short (still being written, or copied in part) lacks it.
    Reading the scan itself would cost most of a decode and find nothing more
    that matters: libjpeg reports damaged entropy data as warnings, not errors.
    Other formats are decoded in full and the pixels dropped.
    """
    image, info = open_image(data, max_pixels=max_pixels)
    with image:
        if info.format == "JPEG":
            if not jpeg_complete(data):
                raise ImageError(truncated_message("JPEG", data), incomplete=True)
        else:
            load(image, info, data)
    return info


def check_size(size: tuple[int, int] | None, max_pixels: int) -> None:
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
            raise ImageError(truncated_message(name, data), incomplete=True)
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
        except PILLOW_ERRORS:
            continue
    return None


def _format_of(name: str) -> str:
    return "JPEG" if name == "MPO" else name


def decode_error(
    data: ByteSource, format_name: str, error: BaseException, image: ImageFile.ImageFile | None
) -> ImageError:
    """Classify a Pillow failure: half-written data (retry) or a broken file (give up)."""
    if _looks_truncated(data, format_name, image) or _is_truncation(error):
        return ImageError(truncated_message(format_name, data), incomplete=True)
    return ImageError(f"{format_name} data is corrupt ({error})")


def truncated_message(format_name: str, data: ByteSource) -> str:
    """The message of an ImageError for data that ends early."""
    return f"{format_name} data ends early (truncated at {len(data)} bytes)"


def _is_truncation(error: BaseException) -> bool:
    return isinstance(error, EOFError | struct.error) or "truncated" in str(error).lower()


def _looks_truncated(
    source: ByteSource, format_name: str, image: ImageFile.ImageFile | None
) -> bool:
    """True when the container's own structure says bytes are missing at the end.

    A TIFF's structure is read where it lies (a document's may be on disk);
    other formats are in memory already.
    """
    if format_name == "TIFF":
        return _tiff_truncated(source, image)
    data = source if isinstance(source, bytes) else source[:]
    checks: dict[str, Callable[[], bool]] = {
        "JPEG": lambda: not jpeg_complete(data),
        "PNG": lambda: not _png_chunks(data)[0],
        "GIF": lambda: not data.rstrip(b"\x00").endswith(b";"),
        "WEBP": lambda: len(data) < 12 or struct.unpack_from("<I", data, 4)[0] + 8 > len(data),
        # A BMP header declares the file size; its reserved bytes are zero.
        "BMP": lambda: (
            len(data) < 14
            or (data[6:10] == bytes(4) and struct.unpack_from("<I", data, 2)[0] > len(data))
        ),
    }
    check = checks.get(format_name)
    return check is not None and check()


def _png_chunks(data: bytes) -> tuple[bool, bytes | None]:
    """Walk the chunk headers: (whether IEND is there, the eXIf payload if any)."""
    exif: bytes | None = None
    for kind, start, end in png_chunk_spans(data):
        if kind == b"IEND":
            return True, exif
        if kind == b"eXIf" and exif is None:
            exif = data[start:end]
    return False, exif


def _tiff_values_cut(data: ByteSource, directory: int) -> bool:
    """True when a value the directory at ``directory`` points to lies past the end of ``data``.

    Pillow skips such a tag with a warning, so a file cut inside the values
    of its last directory fails as if corrupt (an unknown pixel layout).
    """
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    entry_format, entry_size, inline = ("HHQQ", 20, 8) if big else ("HHII", 12, 4)
    count_format = "Q" if big else "H"
    first = directory + struct.calcsize(count_format)
    entries = unpack_at(order + count_format, data, directory)
    table = data[first : first + entries * entry_size]  # one read for the whole directory
    for position in range(0, len(table) - entry_size + 1, entry_size):
        _tag, kind, count, value = struct.unpack_from(order + entry_format, table, position)
        size = count * _TIFF_VALUE_SIZES.get(kind, 0)
        if size > inline and value + size > len(data):
            return True
    return False


def _tiff_truncated(data: ByteSource, image: ImageFile.ImageFile | None) -> bool:
    """True when a directory in the chain, a value it points to, or the current page's strips lie past the end."""
    directories = tiff_directories(data)
    if directories is None or any(_tiff_values_cut(data, offset) for offset in directories):
        return True
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


def _stored_size(image: ImageFile.ImageFile) -> tuple[int, int]:
    """(width, height) as stored; Pillow reports a TIFF's already turned for orientations 5 to 8."""
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        # Pillow has checked both tags as it opened the file.
        tags = image.tag_v2
        return int(tags[TiffImagePlugin.IMAGEWIDTH]), int(tags[TiffImagePlugin.IMAGELENGTH])
    return image.size


def _frame_count(image: ImageFile.ImageFile, data: bytes) -> int:
    """Frames or pages, at least 1 and at most MAX_COUNTED_FRAMES; raise EOFError if a TIFF or GIF is cut off.

    TIFF directories and GIF blocks are walked by :mod:`.frames` up to the
    cap, in milliseconds, where Pillow's ``n_frames`` would read them all. A
    GIF that ends before its trailer is as half-written as a TIFF whose
    directory chain is cut, even when its first frame is whole. WebP and MPO
    keep Pillow's count, which their headers already hold.
    """
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        directories = tiff_directories(data, limit=MAX_COUNTED_FRAMES)
        if directories is None:
            raise EOFError("TIFF directory chain ends early")
        count = len(directories)
    elif isinstance(image, GifImagePlugin.GifImageFile):
        frames = gif_frames(data, limit=MAX_COUNTED_FRAMES)
        if frames is None:
            raise EOFError("GIF blocks end early")
        count = frames
    else:
        count = int(getattr(image, "n_frames", 1))
    return min(max(count, 1), MAX_COUNTED_FRAMES)


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


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
