"""Image preparation before Tesseract, and the geometry to map boxes back.

Each step is a plain function on uint8 numpy arrays; :func:`prepare` chains
them and returns the prepared image with the affine map from its pixels back to
the caller's, so word boxes land on the image the caller passed in.

Why each step is there: mean CER with the full pipeline against the pipeline
without that step, on the reference corpus of real scans (26 pages, ``pytest -m reference``) and on 72 copies of 12 of
its pages turned by +-3, 7 and 12 degrees (tessdata fast ``eng``, PSM
AUTO_OSD). Full pipeline: 0.0103 corpus, 0.0102 turned; plain Tesseract on
grayscale: 0.0402 and 0.64.

* Background flattening (divide by the paper, estimated by a grey-level closing
  wider than any stroke) evens out shadows and gradients before Tesseract's
  global Otsu threshold. Without it: 0.0364 and 0.133 (the unevenly lit
  ``skimage_page`` 0.43 against 0.02, text on a colour gradient 0.26 against 0).
  Skipped on bilevel scans, where there is nothing to even out and photos or
  black borders would turn white.
* Light text on a dark background is inverted first, because flattening
  assumes dark ink on light paper. Without it a terminal screenshot reads at
  0.75 instead of 0 (corpus 0.0390). Polarity is decided by counting
  glyph-sized blobs, not by the median grey: the median inverted a page
  photographed on a dark desk (``skimage_page`` on a dark border: 0.43
  against 0.02).
* Deskew, by a projection-profile search over +-15 degrees: Tesseract's layout
  analysis breaks down past a few degrees. Without it: 0.0137 and 0.58 (the
  1.5 degree ``ocrmypdf_skew`` 0.041 against 0.021, the magazine scan
  ``unlv_8071_093`` 0.094 against 0.047). The same search tells whether the
  lines run down the page (:attr:`Prepared.sideways`), which the engine takes
  as the cheap sign that a page lies on its side.
* Upscaling by 2 when the median glyph is under 10 pixels tall (screenshots,
  100 dpi): without it 0.0105 and 0.0136 (turned 100 dpi text 0.013 against
  0.0015). Only for images that stay under 4 megapixels, to keep the time.

The pipeline adds about 30 ms to a page, most of it the skew search; Tesseract's
reading takes the rest of a corpus page's half second (``benchmarks.accuracy``).

It does not own page orientation in steps of 90 degrees (:mod:`.osd` finds
that, the engine decides when to ask), cropping, or decoding files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

GRAY_LEVELS = 256
POLARITY_WORK_SIDE = 1000
"""Longer side (pixels) of the binarised copy whose blobs decide the polarity."""
LIGHT_TEXT_MAJORITY = 2.0
"""Light glyph-sized blobs must outnumber dark ones this many times to invert:
dark ink is the usual case, and photos give blobs of both kinds."""

BACKGROUND_WORK_SIDE = 800
"""Longer side (pixels) of the copy the paper is estimated on; the estimate is smooth."""
BACKGROUND_KERNEL = 0.04
"""Closing kernel as a fraction of that copy's longer side: wider than any glyph stroke."""
BACKGROUND_SMOOTHING = 0.25
"""Box blur of the estimate, as a fraction of the kernel. A blur as wide as the
kernel spread bright margins into the page and left a dark rim along its edges
(turned ``skimage_page``: CER 0.31 against 0.05)."""

SMALL_TEXT_HEIGHT = 10.0
"""Median glyph height (pixels) under which the image is upscaled: screen and
100 dpi text (7 to 9 pixels) gains, 150 dpi body text (10 to 11) reads as well
without and costs a third more time upscaled."""
UPSCALE_FACTOR = 2.0
MAX_UPSCALED_PIXELS = 4_000_000
"""No upscaling past this size: Tesseract's time grows with the pixel count."""
MIN_GLYPH_HEIGHT = 4
MIN_GLYPHS = 5
MIN_BLOB_HEIGHT = 3
"""Smallest blob counted as a glyph on a downscaled copy; smaller ones are noise."""

SKEW_WORK_SIDE = 1000
"""Longer side (pixels) of the binarised copy the skew is measured on."""
SKEW_MAX_POINTS = 30_000
"""Ink pixels sampled for the projection profiles; more adds time, not precision."""
SKEW_MIN_POINTS = 50
MAX_SKEW = 15.0
"""Degrees searched either way; past this a page is more likely turned by 90 degrees."""
MIN_SKEW = 0.3
"""Degrees under which a page is left alone: rotating costs more than it gains."""
SKEW_COARSE_POINTS = 8_000
"""Ink pixels sampled for the coarse search, which only has to land within a step of the
best angle (the fine search then uses every sampled pixel): a quarter off the search's time,
the same angles on the corpus pages, upright, on their side and tilted by 3 to 12 degrees."""
SKEW_COARSE_STEP = 1.0
SKEW_FINE_STEP = 0.05
PAPER_WHITE = 255
ROUNDING_SLACK = 1e-6
"""Keeps float noise (12.0000001) from adding a whole pixel to a box or a canvas."""


@dataclass(frozen=True)
class Affine:
    """A 2x3 affine map of points: ``x' = a*x + b*y + c``, ``y' = d*x + e*y + f``."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 1.0
    f: float = 0.0

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> Affine:
        """The map of an OpenCV 2x3 matrix."""
        (a, b, c), (d, e, f) = matrix.tolist()
        return cls(a, b, c, d, e, f)

    def matrix(self) -> np.ndarray:
        """This map as an OpenCV 2x3 float64 matrix."""
        return np.array([[self.a, self.b, self.c], [self.d, self.e, self.f]], dtype=np.float64)

    def inverse(self) -> Affine:
        """The map undoing this one (the maps made here are never singular)."""
        return Affine.from_matrix(cv2.invertAffineTransform(self.matrix()))

    def apply(self, x: float, y: float) -> tuple[float, float]:
        """Where the point ``x, y`` goes."""
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f


IDENTITY = Affine()


@dataclass(frozen=True, eq=False)
class Prepared:
    """An image ready for Tesseract and how its pixels relate to the caller's."""

    image: np.ndarray
    """uint8 HxW, dark text on light background."""
    to_input: Affine
    """Maps pixel centres of ``image`` to pixel centres of the input."""
    input_width: int
    input_height: int
    skew: float = 0.0
    """Degrees the input was turned anticlockwise to level its lines (0.0: not turned)."""
    scale: float = 1.0
    inverted: bool = False
    flattened: bool = False
    sideways: bool = False
    """The text lines run down the image: it lies on its side (measured for deskew, or when
    :func:`prepare` is asked for the direction)."""

    def box_in_input(
        self, left: int, top: int, right: int, bottom: int
    ) -> tuple[int, int, int, int]:
        """A box in ``image`` pixels as ``(left, top, width, height)`` in the input.

        After a rotation the box is the axis-aligned bounding box of its mapped
        corners, widened to whole pixels and clipped to the input.
        """
        if self.to_input == IDENTITY:
            return left, top, right - left, bottom - top
        # Box edges lie half a pixel from the pixel centres the map is defined on.
        corners = [
            self.to_input.apply(x - 0.5, y - 0.5) for x in (left, right) for y in (top, bottom)
        ]
        xs = [x + 0.5 for x, _ in corners]
        ys = [y + 0.5 for _, y in corners]
        # Whole pixels that contain the mapped box, like the boxes Tesseract gives.
        mapped_left = min(max(math.floor(min(xs) + ROUNDING_SLACK), 0), self.input_width)
        mapped_right = min(max(math.ceil(max(xs) - ROUNDING_SLACK), 0), self.input_width)
        mapped_top = min(max(math.floor(min(ys) + ROUNDING_SLACK), 0), self.input_height)
        mapped_bottom = min(max(math.ceil(max(ys) - ROUNDING_SLACK), 0), self.input_height)
        return mapped_left, mapped_top, mapped_right - mapped_left, mapped_bottom - mapped_top


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 HxW (gray) or HxWx3 (BGR) image as gray. Raises ValueError for anything else."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"the image is empty ({'x'.join(map(str, image.shape))})")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")


def _histogram(gray: np.ndarray) -> np.ndarray:
    return cv2.calcHist([gray], [0], None, [GRAY_LEVELS], [0, GRAY_LEVELS]).ravel()


def is_light_on_dark(gray: np.ndarray) -> bool:
    """True when the text is light on a dark ground, as in a terminal screenshot.

    Text is many glyph-sized blobs: after an Otsu split, count them on the light
    side and on the dark side. Counting blobs, not pixels, keeps a page
    photographed on a dark desk (mostly dark pixels) the right way round.
    """
    small = _shrink(gray, min(1.0, POLARITY_WORK_SIDE / max(gray.shape)))
    _, dark = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    light_glyphs = len(_glyph_heights(cv2.bitwise_not(dark), minimum=MIN_BLOB_HEIGHT))
    return light_glyphs > LIGHT_TEXT_MAJORITY * len(_glyph_heights(dark, minimum=MIN_BLOB_HEIGHT))


def _glyph_heights(ink: np.ndarray, *, minimum: int) -> np.ndarray:
    """Heights of the blobs of ``ink`` (non-zero pixels) that are the size of a glyph."""
    stats: np.ndarray = cv2.connectedComponentsWithStats(ink, connectivity=8)[2]
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    widths = stats[1:, cv2.CC_STAT_WIDTH]
    height, width = ink.shape
    glyph_sized = (heights >= minimum) & (heights <= height / 4) & (widths <= width / 4)
    return np.asarray(heights[glyph_sized])


def is_bilevel(gray: np.ndarray) -> bool:
    """True when the image has at most two grey levels (a fax-like scan)."""
    return int(np.count_nonzero(_histogram(gray))) <= 2


def estimate_background(gray: np.ndarray) -> np.ndarray:
    """The paper without the ink: a grey-level closing wider than strokes, at full size."""
    height, width = gray.shape
    factor = min(1.0, BACKGROUND_WORK_SIDE / max(height, width))
    small = _shrink(gray, factor)
    kernel_side = max(3, round(BACKGROUND_KERNEL * max(small.shape))) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_side, kernel_side))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    blur_side = round(kernel_side * BACKGROUND_SMOOTHING) | 1
    if blur_side > 1:
        paper = cv2.blur(paper, (blur_side, blur_side))
    if factor < 1.0:
        paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    return paper


def flatten_background(gray: np.ndarray) -> np.ndarray:
    """``gray`` divided by its paper, so the paper is white everywhere and ink keeps its contrast."""
    return cv2.divide(gray, estimate_background(gray), scale=PAPER_WHITE)


def text_height(gray: np.ndarray) -> float | None:
    """Median height in pixels of glyph-sized dark blobs; None when there are too few."""
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    heights = _glyph_heights(ink, minimum=MIN_GLYPH_HEIGHT)
    if len(heights) < MIN_GLYPHS:
        return None
    return float(np.median(heights))


def upscale_factor(gray: np.ndarray) -> float:
    """:data:`UPSCALE_FACTOR` for small text in a small image, else 1.0."""
    height, width = gray.shape
    if height * width * UPSCALE_FACTOR**2 > MAX_UPSCALED_PIXELS:
        return 1.0
    glyph_height = text_height(gray)
    if glyph_height is not None and glyph_height < SMALL_TEXT_HEIGHT:
        return UPSCALE_FACTOR
    return 1.0


@dataclass(frozen=True)
class TextLines:
    """Which way the text lines of a page run, as :func:`estimate_skew` measures them."""

    skew: float
    """Degrees the lines are turned clockwise (-15 to 15); 0.0 when there is no text."""
    sideways: bool = False
    """True when the lines run down the page, not across it: the page lies on its side."""


def estimate_skew(gray: np.ndarray) -> TextLines:
    """How far the text lines are turned, and whether they run down the page.

    Searches the angle whose projection profile of the ink is sharpest, across
    rows (upright or upside-down pages) and across columns (pages turned by 90
    degrees), on a binarised copy at most 1000 pixels wide: coarse steps on a
    sample of the ink, then fine steps around each direction's best on all of it.
    """
    height, width = gray.shape
    small = _shrink(gray, min(1.0, SKEW_WORK_SIDE / max(height, width)))
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    ys, xs = np.nonzero(ink)
    if len(xs) < SKEW_MIN_POINTS:
        return TextLines(0.0)
    step = math.ceil(len(xs) / SKEW_MAX_POINTS)
    xs = xs[::step].astype(np.float32)
    ys = ys[::step].astype(np.float32)
    sample = max(1, len(xs) // SKEW_COARSE_POINTS)
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + SKEW_FINE_STEP, SKEW_COARSE_STEP)
    best = TextLines(0.0)
    best_energy = -1.0
    for sideways in (False, True):
        energies = _profile_energy(xs[::sample], ys[::sample], coarse, sideways)
        angle = float(coarse[np.argmax(energies)])
        fine = np.arange(
            angle - SKEW_COARSE_STEP, angle + SKEW_COARSE_STEP + SKEW_FINE_STEP / 2, SKEW_FINE_STEP
        )
        energies = _profile_energy(xs, ys, fine, sideways)
        index = int(np.argmax(energies))
        if energies[index] > best_energy:
            best = TextLines(round(float(fine[index]), 2), sideways)
            best_energy = float(energies[index])
    return best


def _profile_energy(
    xs: np.ndarray, ys: np.ndarray, angles: np.ndarray, across_columns: bool
) -> np.ndarray:
    """Sum of squared one-pixel bin counts of the ink projected at each angle.

    For ink turned clockwise by ``t``, lines ``y*cos t - x*sin t`` (rows) or
    columns ``x*cos t + y*sin t`` are constant; the sharpest profile wins.
    """
    radians = np.deg2rad(angles).astype(np.float32)[:, np.newaxis]
    if across_columns:
        projected = xs * np.cos(radians) + ys * np.sin(radians)
    else:
        projected = ys * np.cos(radians) - xs * np.sin(radians)
    bins = (projected - projected.min(axis=1, keepdims=True)).astype(np.int64)
    bin_count = int(bins.max()) + 1
    bins += np.arange(len(angles), dtype=np.int64)[:, np.newaxis] * bin_count
    counts = np.bincount(bins.ravel(), minlength=len(angles) * bin_count)
    counts = counts.reshape(len(angles), bin_count).astype(np.float64)
    return np.asarray((counts * counts).sum(axis=1))


def warp(gray: np.ndarray, *, angle: float, scale: float) -> tuple[np.ndarray, Affine]:
    """``gray`` turned anticlockwise by ``angle`` degrees and scaled, on a canvas that fits it all.

    Returns the image and the map from input to output pixel centres. New
    corners are filled with white paper.
    """
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    cosine, sine = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_width = max(1, math.ceil(width * cosine + height * sine - ROUNDING_SLACK))
    out_height = max(1, math.ceil(width * sine + height * cosine - ROUNDING_SLACK))
    matrix[0, 2] += (out_width - width) / 2
    matrix[1, 2] += (out_height - height) / 2
    warped = cv2.warpAffine(
        gray,
        matrix,
        (out_width, out_height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=PAPER_WHITE,
    )
    return warped, Affine.from_matrix(matrix)


def prepare(image: np.ndarray, *, deskew: bool = True, direction: bool = False) -> Prepared:
    """Run every step on a uint8 HxW or HxWx3 BGR image. Raises ValueError for other arrays.

    With ``direction`` the text lines' direction is measured even without ``deskew``
    (:attr:`Prepared.sideways`), for the engine to decide whether orientation detection pays.
    """
    gray = to_gray(image)
    input_height, input_width = gray.shape
    inverted = is_light_on_dark(gray)
    if inverted:
        gray = cv2.bitwise_not(gray)
    flattened = not is_bilevel(gray)
    if flattened:
        gray = flatten_background(gray)
    scale = upscale_factor(gray)
    lines = estimate_skew(gray) if deskew or direction else TextLines(0.0)
    skew = lines.skew if deskew else 0.0
    if not MIN_SKEW <= abs(skew) <= MAX_SKEW:
        skew = 0.0
    to_input = IDENTITY
    if skew != 0.0 or scale != 1.0:
        gray, to_output = warp(gray, angle=skew, scale=scale)
        to_input = to_output.inverse()
    return Prepared(
        image=np.ascontiguousarray(gray),
        to_input=to_input,
        input_width=input_width,
        input_height=input_height,
        skew=skew,
        scale=scale,
        inverted=inverted,
        flattened=flattened,
        sideways=lines.sideways,
    )


def _shrink(gray: np.ndarray, factor: float) -> np.ndarray:
    if factor >= 1.0:
        return gray
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
