"""The page model engines fill: text, words in reading order, and their blocks and lines.

A :class:`Page` holds what an engine read from one image: the text, the
words with their boxes (``words``, what the sidecars record), and the same
words grouped into :class:`Block` and :class:`Line` for outputs that keep
the layout (hOCR, ALTO). Every box and baseline is in pixels of the image
given to the engine until something moves it; :func:`map_page` is the one
way to move or scale a page, so words, lines, baselines and blocks always
travel together. The maps it moves them by are :class:`ScaleShift` and the
general :class:`Affine` (a turn, or pixels to a PDF's points).

It owns the model and moving it between pixel spaces. It deliberately does
not own reading it (the engines) or writing it (``records`` and the outputs
to come), and it imports nothing of ocrwatch, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

Point = tuple[float, float]
"""``x, y`` in pixels, measured like box edges (``0, 0`` is the image's top-left corner)."""
Baseline = tuple[Point, Point]
"""Where a line's text sits: its left and right end. Two points rather than hOCR's slope and
offset, because points stay exact under any affine map and slope and offset follow from them."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle: ``left, top`` are its least x and y, ``width, height`` its extent.

    In pixels (y down) ``left, top`` is the top-left corner. In PDF points
    (y up) it is the bottom-left one: there ``top`` is the lower edge's y and
    ``bottom`` the upper edge's.
    """

    left: float
    top: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @classmethod
    def around(cls, boxes: list[Box]) -> Box:
        """The smallest box holding every one of ``boxes``. Raises ValueError if there are none."""
        if not boxes:
            raise ValueError("no boxes to enclose")
        left = min(box.left for box in boxes)
        top = min(box.top for box in boxes)
        right = max(box.right for box in boxes)
        bottom = max(box.bottom for box in boxes)
        return cls(left=left, top=top, width=right - left, height=bottom - top)


@dataclass(frozen=True)
class Word:
    """One recognised word and its box, in pixels of the image given to the engine."""

    text: str
    left: float
    top: float
    width: float
    height: float
    line: int = 0
    """Index of the word's line on the page, counted as the engine counts its lines."""
    confidence: float | None = None
    """How sure the engine is, 0 to 100 (Tesseract's scale); None when it does not say."""

    @property
    def box(self) -> Box:
        return Box(self.left, self.top, self.width, self.height)


@dataclass(frozen=True)
class Line:
    """One line of text: its box, its words in reading order and, where known, its baseline."""

    box: Box
    words: tuple[Word, ...]
    baseline: Baseline | None = None


@dataclass(frozen=True)
class Block:
    """A region of text the engine found (a paragraph, a column, a caption) and its lines."""

    box: Box
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Page:
    """The text of one page (one image, or one frame of a multi-page input)."""

    text: str
    words: tuple[Word, ...] = ()
    """Every word in reading order; the same words the blocks hold, when there are blocks."""
    orientation: int | None = None
    """Degrees the engine turned the page to read it (0, 90, 180, 270), if it says."""
    error: str | None = None
    """Set when this page failed while others succeeded (ocr.space partial results)."""
    blocks: tuple[Block, ...] = ()
    """The layout, when the engine gives one: blocks of lines of words, in reading order."""


class PixelMap(Protocol):
    """An affine map from one image's pixels to another's (or to a PDF's points), and what it makes of a box.

    ``box`` gives the axis-aligned box a mapped box lands in: the box itself
    for a scale and a shift, the box around its mapped corners for a rotation.
    """

    def point(self, x: float, y: float) -> Point: ...

    def box(self, box: Box) -> Box: ...


@dataclass(frozen=True)
class ScaleShift:
    """The map ``x / scale + dx, y / scale + dy``: back from a scaled copy, or out of a crop."""

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0
    """How many times larger the pixels mapped from are (an upload shrunk to half: 0.5)."""

    def point(self, x: float, y: float) -> Point:
        return x / self.scale + self.dx, y / self.scale + self.dy

    def box(self, box: Box) -> Box:
        left, top = self.point(box.left, box.top)
        # Width and height are divided, not taken from the mapped corners, so that the
        # numbers are the ones sidecars have always recorded, to the last bit.
        return Box(left, top, box.width / self.scale, box.height / self.scale)


@dataclass(frozen=True)
class Affine:
    """The map ``(x, y) -> (a*x + b*y + c, d*x + e*y + f)``: any turn, flip, scale or shift."""

    a: float
    b: float
    c: float
    d: float
    e: float
    f: float

    def point(self, x: float, y: float) -> Point:
        return self.a * x + self.b * y + self.c, self.d * x + self.e * y + self.f

    def box(self, box: Box) -> Box:
        """The axis-aligned box around ``box``'s four corners after the map."""
        corners = [self.point(x, y) for x in (box.left, box.right) for y in (box.top, box.bottom)]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        return Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    def inverse(self) -> Affine:
        """The map that undoes this one; raises ValueError if it is singular."""
        determinant = self.a * self.e - self.b * self.d
        if determinant == 0:
            raise ValueError("singular transform has no inverse")
        a, b = self.e / determinant, -self.b / determinant
        d, e = -self.d / determinant, self.a / determinant
        return Affine(a, b, -(a * self.c + b * self.f), d, e, -(d * self.c + e * self.f))

    def then(self, second: Affine) -> Affine:
        """This map followed by ``second``."""
        return Affine(
            second.a * self.a + second.b * self.d,
            second.a * self.b + second.b * self.e,
            second.a * self.c + second.b * self.f + second.c,
            second.d * self.a + second.e * self.d,
            second.d * self.b + second.e * self.e,
            second.d * self.c + second.e * self.f + second.f,
        )


def map_page(page: Page, pixel_map: PixelMap) -> Page:
    """``page`` with every word, line, baseline and block moved by ``pixel_map``."""
    return replace(
        page,
        words=tuple(_word(word, pixel_map) for word in page.words),
        blocks=tuple(
            Block(
                box=pixel_map.box(block.box),
                lines=tuple(_line(line, pixel_map) for line in block.lines),
            )
            for block in page.blocks
        ),
    )


def _line(line: Line, pixel_map: PixelMap) -> Line:
    baseline = line.baseline
    if baseline is not None:
        start, end = baseline
        baseline = (pixel_map.point(*start), pixel_map.point(*end))
    return Line(
        box=pixel_map.box(line.box),
        words=tuple(_word(word, pixel_map) for word in line.words),
        baseline=baseline,
    )


def _word(word: Word, pixel_map: PixelMap) -> Word:
    box = pixel_map.box(word.box)
    return replace(word, left=box.left, top=box.top, width=box.width, height=box.height)
