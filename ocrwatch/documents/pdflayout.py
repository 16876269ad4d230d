"""How a PDF page is laid out for rendering: its box, rotation, resolution and map back to points.

The resolution rule: a page whose only visible content is one image (a scan,
perhaps under an invisible OCR layer, perhaps inside a form XObject) renders
at that image's own resolution, its pixels over its placed size in inches,
clamped to :data:`SCAN_DPI_RANGE`; any other page renders at
:data:`DEFAULT_DPI`. Either is lowered, with a note, to keep the render
within the page's megapixel limit. The map from render pixels to PDF user
space accounts for the crop box and /Rotate, so that boxes found on the
pixels can be placed in the PDF.

This module reads a loaded page; it does not open documents or render
(``pdf`` does). Residual risk accepted: a scan whose image has a different
resolution across than down renders at the denser one.
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import pypdfium2.raw as pdfium

from ocrwatch.documents.pdfium import POINTS_PER_INCH, Handle, rect
from ocrwatch.errors import DocumentError
from ocrwatch.layout import Affine, Box

DEFAULT_MAX_PAGE_MPIXELS = 50.0
DEFAULT_DPI = 300.0
"""Resolution of a page that is not one scanned image (text, vector art, several images)."""
SCAN_DPI_RANGE = (200.0, 600.0)
"""A scanned page renders at its image's own resolution, clamped to this range."""

_MEGA = 1_000_000
_HIDDEN_TEXT = frozenset({pdfium.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium.FPDF_TEXTRENDERMODE_CLIP})
_GREY_SPACES = frozenset({pdfium.FPDF_COLORSPACE_DEVICEGRAY, pdfium.FPDF_COLORSPACE_CALGRAY})
_IDENTITY = Affine(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class ScanImage:
    """The one image a scanned page consists of."""

    width: int
    height: int
    """Its pixel size as stored."""
    dpi: float
    """Its resolution as placed: pixels per inch along its denser axis."""
    grey: bool
    """True for a grey or bilevel image."""


@dataclass(frozen=True)
class PdfPage:
    """A page laid out for rendering: its size, rotation, resolution and the map back to PDF points."""

    index: int
    width: float
    height: float
    """Size in points as shown, after /Rotate."""
    rotation: int
    """/Rotate: 0, 90, 180 or 270 degrees clockwise."""
    crop_box: Box
    """The visible box (crop box within the media box) in PDF user space points (y up: its
    ``top`` is the lower edge)."""
    scan: ScanImage | None
    """The page's only content when it is one image (an invisible text layer aside); else None."""
    dpi: float
    size: tuple[int, int]
    """The render's (width, height) in pixels."""
    to_points: Affine
    """Maps render pixels (origin top left, y down) to PDF user space points; a
    :class:`~ocrwatch.layout.PixelMap`, so it serves as a page's ``to_points``."""
    notes: tuple[str, ...] = ()


def lay_out(page: Handle, index: int, page_count: int, *, max_page_mpixels: float) -> PdfPage:
    """A loaded page laid out for rendering; call with ``PDFIUM_LOCK`` held.

    Raises DocumentError (bad_input) for a page without a visible area.
    """
    crop_box = rect(pdfium.FPDF_GetPageBoundingBox, page)
    shown = (pdfium.FPDF_GetPageWidthF(page), pdfium.FPDF_GetPageHeightF(page))
    if crop_box is None or min(shown) <= 0:
        raise DocumentError(f"page {index + 1} of {page_count} has no visible area")
    rotation = pdfium.FPDFPage_GetRotation(page) % 4 * 90
    scan = _sole_image(page)
    wanted = (
        DEFAULT_DPI if scan is None else min(max(scan.dpi, SCAN_DPI_RANGE[0]), SCAN_DPI_RANGE[1])
    )
    dpi, size, notes = _fit(shown, wanted, max_page_mpixels * _MEGA)
    return PdfPage(
        index=index,
        width=shown[0],
        height=shown[1],
        rotation=rotation,
        crop_box=crop_box,
        scan=scan,
        dpi=dpi,
        size=size,
        to_points=pixels_to_points(crop_box, rotation, size, shown),
        notes=notes,
    )


def pixels_to_points(
    crop_box: Box, rotation: int, size: tuple[int, int], shown: tuple[float, float]
) -> Affine:
    """The map from rendered page pixels (origin top left, y down) to PDF user space points.

    ``crop_box`` is the visible box in user space, ``rotation`` the page's
    /Rotate (clockwise degrees), ``size`` the render's pixel size and
    ``shown`` the page's size in points as displayed (after /Rotate).
    """
    # In points y grows upwards: the box's least y, its ``top``, is the page's lower edge.
    left, right = crop_box.left, crop_box.right
    bottom, top = crop_box.top, crop_box.bottom
    # Points per pixel along the rendered x and y axes.
    across, down = shown[0] / size[0], shown[1] / size[1]
    if rotation == 90:
        return Affine(0.0, down, left, across, 0.0, bottom)
    if rotation == 180:
        return Affine(-across, 0.0, right, 0.0, down, bottom)
    if rotation == 270:
        return Affine(0.0, -down, right, -across, 0.0, top)
    return Affine(across, 0.0, left, 0.0, -down, top)


def _fit(
    shown: tuple[float, float], dpi: float, max_pixels: float
) -> tuple[float, tuple[int, int], tuple[str, ...]]:
    """The resolution, pixel size and notes of a render at ``dpi``, lowered to fit ``max_pixels``."""
    size = _pixel_size(shown, dpi)
    if size[0] * size[1] <= max_pixels:
        return dpi, size, ()
    fitted = dpi * math.sqrt(max_pixels / (size[0] * size[1]))
    while _pixel_size(shown, fitted)[0] * _pixel_size(shown, fitted)[1] > max_pixels:
        fitted *= 0.999
    fitted_size = _pixel_size(shown, fitted)
    note = (
        f"rendered at {fitted:.0f} dpi instead of {dpi:.0f}: {size[0]} x {size[1]} pixels "
        f"would pass the {max_pixels / _MEGA:g}-megapixel page limit"
    )
    return fitted, fitted_size, (note,)


def _pixel_size(shown: tuple[float, float], dpi: float) -> tuple[int, int]:
    scale = dpi / POINTS_PER_INCH
    return max(1, round(shown[0] * scale)), max(1, round(shown[1] * scale))


def _sole_image(page: Handle) -> ScanImage | None:
    """The image that is a page's only visible content (inside forms too), or None."""
    found: list[tuple[Handle, Affine]] = []
    objects = [
        pdfium.FPDFPage_GetObject(page, i) for i in range(pdfium.FPDFPage_CountObjects(page))
    ]
    if not _collect_images(objects, _IDENTITY, found) or len(found) != 1:
        return None
    image, placement = found[0]
    metadata = pdfium.FPDF_IMAGEOBJ_METADATA()
    if not pdfium.FPDFImageObj_GetImageMetadata(image, page, ctypes.byref(metadata)):
        return None
    width, height = metadata.width, metadata.height
    # The placement maps the unit square onto the page: its columns are the
    # image's width and height in points.
    across = math.hypot(placement.a, placement.d) / POINTS_PER_INCH
    down = math.hypot(placement.b, placement.e) / POINTS_PER_INCH
    if not (width and height and across and down):
        return None
    bilevel_mask = (
        metadata.bits_per_pixel == 1 and metadata.colorspace == pdfium.FPDF_COLORSPACE_UNKNOWN
    )
    return ScanImage(
        width=width,
        height=height,
        dpi=max(width / across, height / down),
        grey=metadata.colorspace in _GREY_SPACES or bilevel_mask,
    )


def _collect_images(
    objects: list[Handle], outer: Affine, found: list[tuple[Handle, Affine]]
) -> bool:
    """Gather image objects with their placement into ``found``; False at the first other visible object."""
    for item in objects:
        kind = pdfium.FPDFPageObj_GetType(item)
        if (
            kind == pdfium.FPDF_PAGEOBJ_TEXT
            and pdfium.FPDFTextObj_GetTextRenderMode(item) in _HIDDEN_TEXT
        ):
            continue
        if kind not in (pdfium.FPDF_PAGEOBJ_IMAGE, pdfium.FPDF_PAGEOBJ_FORM):
            return False
        placement = _matrix(item).then(outer)
        if kind == pdfium.FPDF_PAGEOBJ_IMAGE:
            found.append((item, placement))
            if len(found) > 1:
                return False
            continue
        inner = [
            pdfium.FPDFFormObj_GetObject(item, i)
            for i in range(pdfium.FPDFFormObj_CountObjects(item))
        ]
        if not _collect_images(inner, placement, found):
            return False
    return True


def _matrix(item: Handle) -> Affine:
    """A page object's matrix: from its own space to its container's."""
    matrix = pdfium.FS_MATRIX()
    if not pdfium.FPDFPageObj_GetMatrix(item, ctypes.byref(matrix)):
        return _IDENTITY
    # PDF writes [a b c d e f] for x' = a x + c y + e, y' = b x + d y + f.
    return Affine(matrix.a, matrix.c, matrix.e, matrix.b, matrix.d, matrix.f)
