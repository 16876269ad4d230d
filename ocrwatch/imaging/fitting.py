"""Fitting: pixels in, the smallest faithful encode under a byte budget out.

Chooses grey or colour and a JPEG quality and scale that fit the budget with
as few encodes as possible: trial encodes of a large image are made on a
mosaic of full-resolution tiles, and the whole image is encoded once the
quality is known. Pure black-and-white pages go as a lossless 1-bit PNG,
which is several times smaller than any JPEG of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ocrwatch.errors import ImageError

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
_COARSE_STEP = 4
"""The first, coarse look at a large image encodes every this many rows of sample tiles."""
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


def has_colour(pixels: np.ndarray) -> bool:
    """True when the pixels carry colour beyond scanner noise and JPEG artefacts."""
    if pixels.ndim != 3:
        return False
    height, width = pixels.shape[:2]
    # Pick every n-th pixel down to about twice the final size, then average
    # 2x2 blocks: averaging cancels noise and fringes, picking keeps it fast.
    step = max(1, max(height, width) // (2 * _COLOUR_SAMPLE_SIDE))
    picked = cv2.resize(
        pixels,
        (max(1, width // step), max(1, height // step)),
        interpolation=cv2.INTER_NEAREST,
    )
    small = cv2.resize(
        picked,
        (max(1, picked.shape[1] // 2), max(1, picked.shape[0] // 2)),
        interpolation=cv2.INTER_AREA,
    )
    # OpenCV's per-channel max and min: numpy's reduction over the last axis is 50 times slower.
    blue, green, red = cv2.split(small)
    spread = cv2.subtract(cv2.max(cv2.max(blue, green), red), cv2.min(cv2.min(blue, green), red))
    coloured = cv2.countNonZero(
        cv2.threshold(spread, _CHROMA_THRESHOLD - 1, 255, cv2.THRESH_BINARY)[1]
    )
    return bool(coloured >= max(_COLOUR_MIN_PIXELS, _COLOUR_FRACTION * spread.size))


@dataclass(frozen=True)
class Encoded:
    """An encode that fits, and how it relates to the pixels it was made from."""

    data: bytes = field(repr=False)
    width: int
    height: int
    scale: float
    grayscale: bool
    quality: int | None
    """JPEG quality; None for the 1-bit PNG of a black-and-white page."""
    encodes: int


def fit(pixels: np.ndarray, *, max_bytes: int, max_side: int | None = None) -> Encoded:
    """Encode pixels into at most ``max_bytes`` (see :func:`~ocrwatch.imaging.upload.fit_upload`)."""
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
    mosaic = np.empty(
        (count // _MOSAIC_COLUMNS * _TILE_ROWS, _MOSAIC_COLUMNS * tile_width, *pixels.shape[2:]),
        dtype=pixels.dtype,
    )
    # Slices, not fancy indexing: a copy per tile is several times faster.
    for index, (band, column) in enumerate(zip(chosen // columns, chosen % columns, strict=True)):
        top, left = band * _TILE_ROWS, starts[column]
        row, slot = divmod(index, _MOSAIC_COLUMNS)
        mosaic[
            row * _TILE_ROWS : (row + 1) * _TILE_ROWS, slot * tile_width : (slot + 1) * tile_width
        ] = pixels[top : top + _TILE_ROWS, left : left + tile_width]
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

    def first_guess(self, target: float, *, start: int, floor: int) -> int:
        """Where the search should start: ``start``, or lower when a coarse look says it is far over.

        A large image's first trial at ``start`` mostly serves to tell how far
        off it is; a quarter of the sample (every fourth row of tiles, still
        spread over the whole image) tells that for a quarter of the cost.
        """
        if self.exact or self.sizes:
            return start
        rows = self.sample.shape[0] // _TILE_ROWS
        coarse = self.sample.reshape(rows, _TILE_ROWS, *self.sample.shape[1:])[::_COARSE_STEP]
        coarse = coarse.reshape(-1, *self.sample.shape[1:])
        data = self.encoder.jpeg(np.ascontiguousarray(coarse), start)
        factor = self.factor * self.sample.shape[0] / coarse.shape[0]
        estimate = (len(data) - _JPEG_OVERHEAD) * factor + _JPEG_OVERHEAD
        if estimate <= target:
            return start
        scale = _jpeg_scale(start) * (estimate / (target * _AIM)) ** (1 / _QUALITY_EXPONENT)
        return max(floor, min(start, math.floor(_quality_for(min(scale, 5000.0)))))

    def best_quality(self, target: float, *, start: int, floor: int) -> int | None:
        """The highest quality in floor..start whose size fits ``target``; None if none does."""
        fitting: int | None = None
        over: int | None = None
        quality = self.first_guess(target, start=start, floor=floor)
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
        # Standard Huffman tables: optimised ones save about 5% of the bytes
        # but make libjpeg-turbo's encode take 2.5 times as long.
        return self._encode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])

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

    def fit(self) -> Encoded:
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

    def _fit_downscaled(self, trials: _Trials) -> Encoded:
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

    def _upload(self, data: bytes, pixels: np.ndarray, *, quality: int | None) -> Encoded:
        height, width = pixels.shape[:2]
        return Encoded(
            data=data,
            width=width,
            height=height,
            scale=width / self.input_width,
            grayscale=pixels.ndim == 2,
            quality=quality,
            encodes=self.encoder.count,
        )
