"""An image file's pages as PDF image XObjects, recompressed only where nothing else will do.

Each frame of an image file (one for JPEG, PNG, BMP, GIF, WEBP; every page
of a TIFF) becomes one :class:`PageImage`: the XObject holding its pixels as
stored, and the EXIF orientation still to apply, which :func:`placement`
turns into the matrix that shows it upright on its page (a turn or a mirror
of the matrix, never of the pixels). How the pixels get in:

- JPEG: the file's own bytes, as ``DCTDecode`` (an Adobe CMYK JPEG with the
  Decode array that undoes its inverted ink);
- a G4 TIFF page in one strip: that strip's bytes, as ``CCITTFaxDecode``;
- a JPEG TIFF page: its strips joined into one JPEG (``tiffjpeg``), as ``DCTDecode``;
- other bilevel pixels: encoded as CCITT G4 (by Pillow's libtiff), lossless;
- PNG (not interlaced, no transparency, not bilevel): the zlib stream of its
  IDAT chunks with PNG predictors, as ``FlateDecode``, palette kept as
  ``Indexed``, 16 bits kept;
- anything else: decoded, transparency composited over white (as the OCR
  saw it), palette kept, and Flate-compressed.

An embedded ICC profile whose colour space fits the pixels comes along as an
``ICCBased`` colour space. It owns turning frames into XObjects and where
they go on the page; it does not decide page sizes or add text
(``searchable`` does). Residual risks accepted: MPO files, arithmetic-coded JPEGs
and JPEG TIFF pages ``tiffjpeg`` declines are decoded and Flate-compressed, and a
16-bit TIFF or one with alpha is brought to 8 bits.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin

from ocrwatch.imaging.containers import has_transparency, open_image
from ocrwatch.layout import Affine
from ocrwatch.outputs.imagefiles import jpeg_frame, png_chunks, read_strips
from ocrwatch.outputs.tiffjpeg import JoinedJpeg, joined_jpeg
from ocrwatch.source import TIFF_SIGNATURES

if TYPE_CHECKING:
    import pikepdf

_NO_PIXEL_LIMIT = 1 << 62
"""The file was read and its size checked before it came here; Pillow must not refuse it now."""
_FLATE_LEVEL = 6
_PNG_PREDICTORS = 15
"""DecodeParms /Predictor: each row carries its own PNG filter type."""
_PNG_COLOURS = {0: 1, 2: 3, 3: 1}
"""Samples per pixel of the PNG colour types passed through: grey, RGB, palette."""
_TIFF_ORIENTATION = 0x0112
_TIFF_PHOTOMETRIC = 262
_TIFF_FILL_ORDER = 266
_TIFF_STRIP_OFFSETS = 273
_TIFF_STRIP_BYTES = 279
_MIN_IS_BLACK = 1
_WHITE = 255
_BYTE = 8
_DCT_FRAMES = frozenset({(0xC0, 8), (0xC1, 8), (0xC2, 8)})
"""Baseline, extended and progressive Huffman-coded frames of 8-bit samples: what DCTDecode reads."""
_ICC_SPACES = {b"GRAY": 1, b"RGB ": 3, b"CMYK": 4}
_DEVICE_SPACES = {1: "/DeviceGray", 3: "/DeviceRGB", 4: "/DeviceCMYK"}
_MODE_COMPONENTS = {"1": 1, "L": 1, "RGB": 3, "CMYK": 4}

# Stored pixels (x, y down) to upright pixels, per EXIF orientation, for a w x h image.
_EXIF_TURNS = {
    1: lambda w, h: Affine(1, 0, 0, 0, 1, 0),
    2: lambda w, h: Affine(-1, 0, w, 0, 1, 0),
    3: lambda w, h: Affine(-1, 0, w, 0, -1, h),
    4: lambda w, h: Affine(1, 0, 0, 0, -1, h),
    5: lambda w, h: Affine(0, 1, 0, 1, 0, 0),
    6: lambda w, h: Affine(0, -1, h, 1, 0, 0),
    7: lambda w, h: Affine(0, -1, h, -1, 0, w),
    8: lambda w, h: Affine(0, 1, 0, -1, 0, w),
}


@dataclass(frozen=True)
class PageImage:
    """One frame as an image XObject, and what placing it upright needs."""

    xobject: pikepdf.Stream
    width: int
    height: int
    """Pixel size as stored."""
    orientation: int
    """EXIF orientation (1 to 8) that placing it must still apply; 1 when upright as stored."""
    dpi: tuple[float, float] | None
    """What the file says, across and down as stored; None when it does not say."""

    @property
    def upright_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


def page_images(pdf: pikepdf.Pdf, original: BinaryIO) -> Iterator[PageImage]:
    """Each frame of the image file in ``original`` as a :class:`PageImage` of ``pdf``, in order."""
    original.seek(0)
    if original.read(len(TIFF_SIGNATURES[0])) in TIFF_SIGNATURES:
        original.seek(0)
        yield from _tiff_pages(pdf, original)
        return
    original.seek(0)
    data = original.read()
    image, info = open_image(data, max_pixels=_NO_PIXEL_LIMIT)
    with image:
        dpi = _dpi(image)
        if image.format == "JPEG" and _plain_jpeg(data, image):
            xobject = _jpeg(pdf, data, image)
            yield PageImage(xobject, *image.size, info.orientation, dpi)
            return
        # A bilevel PNG is smaller as G4, the scanners' own bilevel format.
        plain_png = image.format == "PNG" and not info.transparent and image.mode != "1"
        passed = _png(pdf, data) if plain_png else None
        if passed is not None:
            yield PageImage(passed, *image.size, info.orientation, dpi)
            return
        image.load()
        yield _decoded(pdf, image, info.orientation, dpi)


def placement(image: PageImage, page_size: tuple[float, float]) -> Affine:
    """The map from image space (the unit square) to a page of ``page_size`` points it fills upright."""
    width, height = image.width, image.height
    upright_width, upright_height = image.upright_size
    unit_to_stored = Affine(width, 0, 0, 0, -height, height)
    stored_to_upright = _EXIF_TURNS.get(image.orientation, _EXIF_TURNS[1])(width, height)
    page_width, page_height = page_size
    upright_to_page = Affine(
        page_width / upright_width, 0, 0, 0, -page_height / upright_height, page_height
    )
    return unit_to_stored.then(stored_to_upright).then(upright_to_page)


def _tiff_pages(pdf: pikepdf.Pdf, original: BinaryIO) -> Iterator[PageImage]:
    image = TiffImagePlugin.TiffImageFile(original)
    with image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            tags = image.tag_v2
            size = int(tags[TiffImagePlugin.IMAGEWIDTH]), int(tags[TiffImagePlugin.IMAGELENGTH])
            orientation = int(tags.get(_TIFF_ORIENTATION, 1))
            orientation = orientation if orientation in _EXIF_TURNS else 1
            dpi = _dpi(image)
            strip = _g4_strip(image, original)
            if strip is not None:
                photometric = int(tags.get(_TIFF_PHOTOMETRIC, 0))
                xobject = _g4_stream(pdf, strip, size, black_is_1=photometric == _MIN_IS_BLACK)
                yield PageImage(xobject, *size, orientation, dpi)
                continue
            joined = joined_jpeg(image, original)
            if joined is not None:
                yield PageImage(_joined_stream(pdf, joined, image), *size, orientation, dpi)
                continue
            image.load()
            if _TIFF_ORIENTATION in image.tag_v2:
                yield _decoded(pdf, image, orientation, dpi)
                continue
            # Pillow turned the page upright as it loaded it (and dropped the tag).
            upright_dpi = dpi if dpi is None or orientation < 5 else (dpi[1], dpi[0])
            yield _decoded(pdf, image, 1, upright_dpi)


def _g4_strip(image: TiffImagePlugin.TiffImageFile, original: BinaryIO) -> bytes | None:
    """The G4 data of a TIFF page held in one strip, filled most significant bit first."""
    tags = image.tag_v2
    offsets, counts = tags.get(_TIFF_STRIP_OFFSETS), tags.get(_TIFF_STRIP_BYTES)
    if image.info.get("compression") != "group4" or image.mode != "1":
        return None
    if not offsets or not counts or len(offsets) != 1 or int(tags.get(_TIFF_FILL_ORDER, 1)) != 1:
        return None
    (strip,) = read_strips(original, offsets, counts)
    return strip if len(strip) == int(counts[0]) else None


def _decoded(
    pdf: pikepdf.Pdf, image: Image.Image, orientation: int, dpi: tuple[float, float] | None
) -> PageImage:
    """A loaded frame compressed losslessly: G4 when bilevel, else Flate."""
    size = image.size
    if image.mode == "1":
        encoded = _g4_encoded(image)
        if encoded is not None:
            strip, black_is_1 = encoded
            xobject = _g4_stream(pdf, strip, size, black_is_1=black_is_1)
            return PageImage(xobject, *size, orientation, dpi)
    icc = image.info.get("icc_profile")
    if has_transparency(image):
        image = _over_white(image)
    if image.mode == "P":
        xobject = _indexed(pdf, image, icc)
    else:
        if image.mode not in _MODE_COMPONENTS:
            image = _eight_bits(image)
        xobject = _raw(pdf, image.tobytes(), image, icc)
    return PageImage(xobject, *size, orientation, dpi)


def _g4_encoded(image: Image.Image) -> tuple[bytes, bool] | None:
    """Bilevel pixels as one strip of CCITT G4, and whether it codes black as 1; None without libtiff."""
    buffer = io.BytesIO()
    try:
        image.save(buffer, "TIFF", compression="group4", strip_size=1 << 31)
    except (OSError, ValueError):
        return None
    buffer.seek(0)
    with TiffImagePlugin.TiffImageFile(buffer) as written:
        strip = _g4_strip(written, buffer)
        photometric = int(written.tag_v2.get(_TIFF_PHOTOMETRIC, 0))
    return None if strip is None else (strip, photometric == _MIN_IS_BLACK)


def _g4_stream(
    pdf: pikepdf.Pdf, data: bytes, size: tuple[int, int], *, black_is_1: bool
) -> pikepdf.Stream:
    import pikepdf

    parameters = pikepdf.Dictionary(K=-1, Columns=size[0], Rows=size[1])
    if black_is_1:
        parameters.BlackIs1 = True
    return _image_stream(
        pdf,
        data,
        size,
        colour_space=pikepdf.Name.DeviceGray,
        bits=1,
        Filter=pikepdf.Name.CCITTFaxDecode,
        DecodeParms=parameters,
    )


def _plain_jpeg(data: bytes, image: Image.Image) -> bool:
    """True for a JPEG that PDF's DCTDecode reads as it is: Huffman-coded, 8 bits, one frame."""
    frame = jpeg_frame(data)
    return image.mode in _MODE_COMPONENTS and image.mode != "1" and frame in _DCT_FRAMES


def _jpeg(pdf: pikepdf.Pdf, data: bytes, image: Image.Image) -> pikepdf.Stream:
    import pikepdf

    components = _MODE_COMPONENTS[image.mode]
    extra: dict[str, object] = {"Filter": pikepdf.Name.DCTDecode}
    if image.mode == "CMYK" and "adobe" in image.info:
        # Adobe's CMYK JPEGs store inverted ink; the Decode array turns it back.
        extra["Decode"] = pikepdf.Array([1, 0] * components)
    colour_space = _colour_space(pdf, components, image.info.get("icc_profile"))
    return _image_stream(pdf, data, image.size, colour_space=colour_space, bits=8, **extra)


def _joined_stream(pdf: pikepdf.Pdf, joined: JoinedJpeg, image: Image.Image) -> pikepdf.Stream:
    import pikepdf

    parameters = pikepdf.Dictionary(ColorTransform=joined.colour_transform)  # RGB 0, YCbCr 1
    colour_space = _colour_space(pdf, joined.components, image.info.get("icc_profile"))
    extra = {"Filter": pikepdf.Name.DCTDecode, "DecodeParms": parameters}
    return _image_stream(pdf, joined.data, image.size, colour_space=colour_space, bits=8, **extra)


def _png(pdf: pikepdf.Pdf, data: bytes) -> pikepdf.Stream | None:
    """A PNG's compressed rows as they are, when PDF's Flate predictors can read them; else None."""
    import pikepdf

    header, palette, icc, idat = png_chunks(data)
    if header is None or not idat:
        return None
    width, height, bits, colour_type, _compression, _filter, interlace = header
    if interlace or colour_type not in _PNG_COLOURS or (colour_type == 3 and palette is None):
        return None
    colours = _PNG_COLOURS[colour_type]
    parameters = pikepdf.Dictionary(
        Predictor=_PNG_PREDICTORS, Colors=colours, BitsPerComponent=bits, Columns=width
    )
    base = _colour_space(pdf, 3 if colour_type == 3 else colours, icc)
    colour_space: object = base
    if colour_type == 3:
        assert palette is not None
        colour_space = pikepdf.Array([pikepdf.Name.Indexed, base, len(palette) // 3 - 1, palette])
    return _image_stream(
        pdf,
        idat,
        (width, height),
        colour_space=colour_space,
        bits=bits,
        Filter=pikepdf.Name.FlateDecode,
        DecodeParms=parameters,
    )


def _indexed(pdf: pikepdf.Pdf, image: Image.Image, icc: bytes | None) -> pikepdf.Stream:
    import pikepdf

    palette = bytes(image.getpalette("RGB") or b"")
    colours = max(1, len(palette) // 3)
    base = _colour_space(pdf, 3, icc)
    colour_space = pikepdf.Array([pikepdf.Name.Indexed, base, colours - 1, palette])
    return _image_stream(
        pdf,
        zlib.compress(image.tobytes(), _FLATE_LEVEL),
        image.size,
        colour_space=colour_space,
        bits=8,
        Filter=pikepdf.Name.FlateDecode,
    )


def _raw(pdf: pikepdf.Pdf, pixels: bytes, image: Image.Image, icc: bytes | None) -> pikepdf.Stream:
    import pikepdf

    components = _MODE_COMPONENTS[image.mode]
    return _image_stream(
        pdf,
        zlib.compress(pixels, _FLATE_LEVEL),
        image.size,
        colour_space=_colour_space(pdf, components, icc),
        bits=1 if image.mode == "1" else 8,
        Filter=pikepdf.Name.FlateDecode,
    )


def _over_white(image: Image.Image) -> Image.Image:
    """``image`` with its transparency composited over white paper, grey staying grey."""
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (_WHITE, _WHITE, _WHITE, _WHITE))
    flat = Image.alpha_composite(paper, rgba).convert("RGB")
    return flat.convert("L") if _grey(image) else flat


def _grey(image: Image.Image) -> bool:
    if image.mode in ("LA", "La", "L", "I;16", "I"):
        return True
    palette = (image.getpalette("RGB") if image.mode in ("P", "PA") else None) or []
    return bool(palette) and palette[0::3] == palette[1::3] == palette[2::3]


def _eight_bits(image: Image.Image) -> Image.Image:
    """A frame in a mode PDF takes as it is (bilevel, grey, RGB, CMYK); 16-bit grey keeps its top byte."""
    if image.mode.startswith("I;16"):
        pixels = np.asarray(image).astype(np.uint16)
        return Image.fromarray((pixels >> _BYTE).astype(np.uint8), "L")
    return image.convert("L" if _grey(image) else "RGB")


def _colour_space(pdf: pikepdf.Pdf, components: int, icc: bytes | None) -> object:
    """``ICCBased`` on the image's own profile when it fits ``components``, else the device space."""
    import pikepdf

    device = pikepdf.Name(_DEVICE_SPACES[components])
    if not icc or len(icc) < 128 or _ICC_SPACES.get(icc[16:20]) != components:
        return device
    profile = pikepdf.Stream(pdf, icc)
    profile.N = components
    profile.Alternate = device
    return pikepdf.Array([pikepdf.Name.ICCBased, profile])


def _image_stream(
    pdf: pikepdf.Pdf,
    data: bytes,
    size: tuple[int, int],
    *,
    colour_space: object,
    bits: int,
    **entries: object,
) -> pikepdf.Stream:
    import pikepdf

    stream = pikepdf.Stream(pdf, data)
    stream.Type = pikepdf.Name.XObject
    stream.Subtype = pikepdf.Name.Image
    stream.Width, stream.Height = size
    stream.ColorSpace = colour_space
    stream.BitsPerComponent = bits
    for key, value in entries.items():
        stream[pikepdf.Name("/" + key)] = value
    return stream


def _dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    if dpi is None:
        return None
    try:
        across, down = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (across, down) if across > 0 and down > 0 else None
