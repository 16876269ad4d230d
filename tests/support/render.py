"""Deterministic test pages rendered with the font Pillow bundles (no system fonts needed).

Used by tests (words at known places), benchmarks (A4 scans) and to make the
sample images in ``examples/``: ``python -m tests.support.render examples``.

The page kinds in :data:`KINDS` stand in for real scans: each generator takes
a seed and returns a :class:`Rendered` page with exactly the text it shows, in
reading order, so accuracy is measured against ground truth that cannot be
wrong. They draw English prose written for ocrwatch (:data:`PROSE`), with a
seeded random generator, and take tens of milliseconds each.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

A4_300DPI = (2480, 3508)


@dataclass(frozen=True)
class Placed:
    """A word drawn at a known box (pixels of the rendered image)."""

    text: str
    left: int
    top: int
    width: int
    height: int


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def page(
    lines: list[str],
    *,
    size: tuple[int, int] = (1200, 800),
    origin: tuple[int, int] = (60, 60),
    font_size: int = 36,
    line_gap: float = 1.6,
    background: tuple[int, int, int] = (255, 255, 255),
    ink: tuple[int, int, int] = (0, 0, 0),
) -> tuple[Image.Image, list[Placed]]:
    """An RGB page with ``lines`` of text, and the box of every word drawn."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    placed: list[Placed] = []
    x, y = origin
    for line in lines:
        placed += _draw_words(draw, line.split(), (x, y), face, font_size, ink)
        y += int(font_size * line_gap)
    return image, placed


def rotated(image: Image.Image, degrees: float) -> Image.Image:
    """``image`` turned anticlockwise by ``degrees``, grown to fit, padded with white."""
    return image.rotate(
        degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255)
    )


def a4_scan(seed: int, *, colour_logo: bool = True) -> Image.Image:
    """A 300-dpi A4 colour 'scan': paragraphs of text, a colour logo, paper tint and noise."""
    rng = np.random.default_rng(seed)
    words = [
        "invoice",
        "total",
        "amount",
        "payable",
        "within",
        "thirty",
        "days",
        "of",
        "receipt",
        "reference",
        "number",
        "customer",
        "account",
        "statement",
        "period",
        "balance",
        "forward",
        "payment",
        "received",
        "thank",
        "you",
    ]
    lines = [" ".join(rng.choice(words, size=9)) for _ in range(60)]
    image, _ = page(
        lines,
        size=A4_300DPI,
        origin=(220, 480),
        font_size=44,
        line_gap=1.55,
        background=(250, 247, 240),
    )
    draw = ImageDraw.Draw(image)
    if colour_logo:
        draw.ellipse((220, 160, 520, 400), fill=(200, 40, 40))
        draw.rectangle((560, 200, 1100, 360), fill=(30, 80, 170))
    pixels = np.asarray(image).astype(np.int16)
    pixels += rng.normal(0, 6, pixels.shape).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------
# Page kinds with exact ground truth

PROSE = (
    "The ferry left the harbour at seven and crossed the bay in forty minutes.",
    "Most of the passengers were farmers taking their cheese to the market.",
    "A small boy counted the gulls that followed the boat and lost track at ninety.",
    "The library opens late on Thursdays so that people can come after work.",
    "Every book returned after the due date costs the reader a few coins.",
    "Our neighbour grows tomatoes, beans and pumpkins behind a low stone wall.",
    "When the rain stopped, the whole street smelled of wet leaves and bread.",
    "The baker starts his ovens before dawn and sells out by noon most days.",
    "Please keep this letter with your records until the end of the year.",
    "The meeting was moved to the second floor because the hall was too cold.",
    "She wrote the address on the envelope twice to make sure it was clear.",
    "Trains to the coast run every hour on weekdays and every two hours on Sunday.",
    "The old bridge was closed for repairs, so the bus took the long road.",
    "He mended the clock with a borrowed screwdriver and a great deal of patience.",
    "Visitors are asked to leave their umbrellas at the door of the museum.",
    "The garden committee meets on the first Monday of every month.",
    "A warm wind came down from the hills and dried the washing in an hour.",
    "The invoice lists three chairs, one table and the cost of delivery.",
    "Our office will be closed on the public holiday and open again the next morning.",
    "The river was so low that summer that children could walk across it.",
    "Fresh paint on the benches meant that nobody sat down in the park that day.",
    "The recipe calls for two eggs, a cup of flour and a pinch of salt.",
    "Letters from abroad took about a week to arrive in those years.",
    "The teacher asked everyone to write a short story about their street.",
    "A lamp in the window showed that someone was still awake upstairs.",
    "The shop on the corner sells newspapers, stamps and postcards of the town.",
    "Heavy snow fell overnight and the school opened two hours late.",
    "The lighthouse keeper kept a diary of every ship that passed the point.",
    "Tickets for the concert can be bought at the town hall until Friday.",
    "The bicycle had a bell, a basket and a lamp that worked only sometimes.",
    "Two cats slept on the warm roof of the garage all afternoon.",
    "The new timetable is posted on the board beside the station entrance.",
)
"""Plain English sentences written for ocrwatch's test pages."""

GROCERIES = (
    "Bread",
    "Milk",
    "Apples",
    "Butter",
    "Coffee",
    "Cheese",
    "Tomatoes",
    "Rice",
    "Eggs",
    "Honey",
    "Soap",
    "Lemons",
    "Carrots",
    "Flour",
)
RECEIPT_WIDTH = 400
"""Pixels across a receipt: at 480 Tesseract's layout analysis reads the prices as a column of their own."""
WORD_GAP = 0.35
"""Space between words drawn by :func:`page`, as a fraction of the font size."""
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


@dataclass(frozen=True)
class Rendered:
    """A generated page and exactly what it shows.

    ``text`` holds the page's lines in reading order, one per line; ``words``
    the box of every drawn word in the image's pixels, empty when the page was
    turned after drawing. ``encoded`` holds the file's bytes when its encoding
    is part of the case (a low-quality JPEG); otherwise the page is a PNG.
    """

    image: Image.Image
    text: str
    words: tuple[Placed, ...] = ()
    encoded: bytes | None = None

    @property
    def suffix(self) -> str:
        return ".png" if self.encoded is None else ".jpg"

    def write(self, folder: Path, stem: str) -> Path:
        """Save the page as ``folder/stem`` plus its suffix, making the folder; the path written."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}{self.suffix}"
        if self.encoded is None:
            self.image.save(path, "PNG")
        else:
            path.write_bytes(self.encoded)
        return path


def prose_lines(seed: int, *, count: int, width: int, font_size: int) -> list[str]:
    """``count`` lines of :data:`PROSE` in an order ``seed`` picks, wrapped to ``width`` pixels."""
    face = font(font_size)
    gap = int(font_size * WORD_GAP)
    words = [
        word
        for index in np.random.default_rng(seed).permutation(len(PROSE))
        for word in PROSE[index].split()
    ]
    lines: list[str] = []
    line: list[str] = []
    used = 0.0
    for word in words * (1 + count // 8):
        length = face.getlength(word)
        if line and used + gap + length > width:
            lines.append(" ".join(line))
            if len(lines) == count:
                break
            line, used = [], 0.0
        used += (gap if line else 0) + length
        line.append(word)
    return lines


def _typeset(
    lines: list[str],
    *,
    font_size: int,
    width: int,
    margin: int,
    background: tuple[int, int, int] = WHITE,
    ink: tuple[int, int, int] = BLACK,
    height: int | None = None,
) -> Rendered:
    if height is None:
        height = 2 * margin + int(font_size * 1.6) * len(lines)
    image, placed = page(
        lines,
        size=(width, height),
        origin=(margin, margin),
        font_size=font_size,
        background=background,
        ink=ink,
    )
    return Rendered(image, "\n".join(lines), tuple(placed))


def printed(seed: int, *, dpi: int = 300, points: float = 11, lines: int = 6) -> Rendered:
    """Clean black text on white, ``points`` high at ``dpi`` (11 points at 300 dpi: 46 pixels)."""
    font_size = round(points * dpi / 72)
    margin = dpi // 2
    return _typeset(
        prose_lines(seed, count=lines, width=4 * dpi, font_size=font_size),
        font_size=font_size,
        width=4 * dpi + 2 * margin,
        margin=margin,
    )


def turned(rendered: Rendered, degrees: float) -> Rendered:
    """``rendered`` turned anticlockwise by ``degrees`` (exact for quarter turns), without boxes."""
    quarter_turns = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }
    if degrees % 360 in quarter_turns:
        image = rendered.image.transpose(quarter_turns[int(degrees % 360)])
    else:
        paper = rendered.image.convert("RGB")
        image = paper.rotate(
            degrees,
            resample=Image.Resampling.BICUBIC,
            expand=True,
            fillcolor=paper.getpixel((0, 0)),
        )
    return Rendered(image, rendered.text)


def scan_noise(seed: int) -> Rendered:
    """A grey 300-dpi scan off a worn flatbed: soft, grainy, flecked, shadowed along one edge."""
    clean = printed(seed, dpi=300)
    rng = np.random.default_rng(seed)
    soft = clean.image.convert("L").filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(soft).astype(np.float32)
    width = pixels.shape[1]
    pixels *= 1 - 0.5 * np.exp(-np.arange(width) / (0.03 * width))[np.newaxis, :]
    pixels += rng.normal(0, 14, pixels.shape)
    flecks = rng.random(pixels.shape)
    pixels[flecks < 0.0008] = 0
    pixels[flecks > 0.9992] = 255
    return Rendered(_to_image(pixels), clean.text, clean.words)


def tinted(seed: int) -> Rendered:
    """Dark blue text on paper that runs from yellow to pink across the page."""
    plain = _typeset(
        prose_lines(seed, count=4, width=800, font_size=30),
        font_size=30,
        width=940,
        margin=70,
        background=(250, 232, 150),
        ink=(25, 40, 120),
    )
    pixels = np.asarray(plain.image).astype(np.float32)
    across = np.linspace(0.0, 1.0, pixels.shape[1])[np.newaxis, :]
    pixels[..., 1] *= 1 - 0.25 * across
    pixels[..., 2] *= 1 + 0.3 * across
    return Rendered(_to_image(pixels), plain.text, plain.words)


def low_contrast(seed: int) -> Rendered:
    """Mid-grey text on light-grey paper: 50 grey levels between ink and paper."""
    return _typeset(
        prose_lines(seed, count=4, width=800, font_size=30),
        font_size=30,
        width=940,
        margin=70,
        background=(200, 200, 200),
        ink=(150, 150, 150),
    )


def screenshot_dark(seed: int) -> Rendered:
    """A dark-theme window at 96 dpi: light 16-pixel text on near-black, a lighter title bar."""
    bar = 36
    body = _typeset(
        prose_lines(seed, count=8, width=880, font_size=16),
        font_size=16,
        width=960,
        margin=40,
        background=(30, 33, 39),
        ink=(215, 218, 222),
    )
    image = Image.new("RGB", (body.image.width, body.image.height + bar), (52, 56, 64))
    image.paste(body.image, (0, bar))
    draw = ImageDraw.Draw(image)
    for index, colour in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
        left = 14 + 22 * index
        draw.ellipse((left, 11, left + 14, 25), fill=colour)
    words = tuple(Placed(w.text, w.left, w.top + bar, w.width, w.height) for w in body.words)
    return Rendered(image, body.text, words)


def receipt(seed: int) -> Rendered:
    """A narrow till receipt: items on the left, their prices in a right-aligned column, a total."""
    rng = np.random.default_rng(seed)
    items = [str(item) for item in rng.choice(GROCERIES, size=7, replace=False)]
    cents = [int(value) for value in rng.integers(45, 990, size=len(items))]
    rows = [("MARKET STREET GROCERY", ""), (f"2024-03-{1 + seed % 28:02d} 10:42", "")]
    rows += [(item, f"{price / 100:.2f}") for item, price in zip(items, cents, strict=True)]
    rows += [("TOTAL", f"{sum(cents) / 100:.2f}"), ("THANK YOU", "")]
    font_size, margin, width = 26, 30, RECEIPT_WIDTH
    step = int(font_size * 1.6)
    image = Image.new("RGB", (width, 2 * margin + step * (len(rows) + 1)), (250, 250, 246))
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    placed: list[Placed] = []
    y = margin
    for label, price in rows:
        if label == "TOTAL":
            draw.rectangle((margin, y, width - margin, y + 2), fill=BLACK)
            y += step // 2
        placed += _draw_words(draw, label.split(), (margin, y), face, font_size, BLACK)
        if price:
            right = width - margin - int(face.getlength(price))
            placed += _draw_words(draw, [price], (right, y), face, font_size, BLACK)
        y += step
    text = "\n".join(f"{label} {price}".strip() for label, price in rows)
    return Rendered(image, text, tuple(placed))


def two_column(seed: int) -> Rendered:
    """A page set in two columns; its text reads down the left column, then down the right."""
    font_size, margin, column, gutter, count = 28, 60, 480, 140, 5
    lines = prose_lines(seed, count=2 * count, width=column, font_size=font_size)
    step = int(font_size * 1.6)
    image = Image.new("RGB", (2 * margin + 2 * column + gutter, 2 * margin + step * count), WHITE)
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    placed: list[Placed] = []
    for index, line in enumerate(lines):
        left = margin + (index // count) * (column + gutter)
        top = margin + (index % count) * step
        placed += _draw_words(draw, line.split(), (left, top), face, font_size, BLACK)
    return Rendered(image, "\n".join(lines), tuple(placed))


def jpeg(seed: int, *, quality: int = 12) -> Rendered:
    """A 150-dpi page saved as a JPEG of ``quality``: blocky, with ringing round every stroke."""
    clean = printed(seed, dpi=150)
    buffer = io.BytesIO()
    clean.image.save(buffer, "JPEG", quality=quality)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return Rendered(decoded, clean.text, clean.words, encoded=buffer.getvalue())


def book_spread(seed: int) -> tuple[Rendered, str]:
    """A phone photo of an open book on a dark desk, and the text of the page that must not be read.

    The wanted page is the right-hand one and starts exactly at half the
    width, so ``crop: {left: 50%}`` keeps it; the returned page's text and
    boxes are that page's alone. A shadow darkens both pages toward the gutter.
    """
    page_size, desk, font_size, inner = (760, 1000), 80, 26, 60
    width, height = 2 * page_size[0] + 2 * desk, page_size[1] + 2 * desk
    lines = prose_lines(seed, count=24, width=page_size[0] - 2 * inner, font_size=font_size)
    photo = Image.new("RGB", (width, height), (52, 46, 40))
    wanted: tuple[Placed, ...] = ()
    for side, text in enumerate((lines[:12], lines[12:])):
        sheet = _typeset(
            text,
            font_size=font_size,
            width=page_size[0],
            margin=inner,
            background=(236, 230, 214),
            height=page_size[1],
        )
        left = desk + side * page_size[0]
        photo.paste(sheet.image, (left, desk))
        if side == 1:
            wanted = tuple(
                Placed(w.text, w.left + left, w.top + desk, w.width, w.height) for w in sheet.words
            )
    pixels = np.asarray(photo).astype(np.float32)
    from_gutter = np.abs(np.arange(width) - width / 2)
    pixels *= (1 - 0.6 * np.exp(-from_gutter / 35))[np.newaxis, :, np.newaxis]
    pixels *= np.linspace(1.0, 0.85, height)[:, np.newaxis, np.newaxis]
    pixels += np.random.default_rng(seed).normal(0, 4, pixels.shape)
    return Rendered(_to_image(pixels), "\n".join(lines[12:]), wanted), "\n".join(lines[:12])


def _draw_words(
    draw: ImageDraw.ImageDraw,
    words: list[str],
    origin: tuple[int, int],
    face: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    font_size: int,
    ink: tuple[int, int, int],
) -> list[Placed]:
    x, y = origin
    placed = []
    for word in words:
        # Pillow types the box as floats (the origin may be fractional); from an
        # integer origin it is whole pixels, as Placed records them.
        left, top, right, bottom = map(int, draw.textbbox((x, y), word, font=face))
        draw.text((x, y), word, font=face, fill=ink)
        placed.append(Placed(word, left, top, right - left, bottom - top))
        x = right + int(font_size * WORD_GAP)
    return placed


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


KINDS: dict[str, Callable[[int], Rendered]] = {
    "clean_300dpi": partial(printed, dpi=300),
    "clean_150dpi": partial(printed, dpi=150),
    "small_100dpi": partial(printed, dpi=100, points=9),
    "scan_noise": scan_noise,
    "skew_2deg": lambda seed: turned(printed(seed, dpi=150), 2),
    "skew_minus_5deg": lambda seed: turned(printed(seed, dpi=150), -5),
    "turned_90": lambda seed: turned(printed(seed, dpi=150), 90),
    "turned_180": lambda seed: turned(printed(seed, dpi=150), 180),
    "tinted": tinted,
    "low_contrast": low_contrast,
    "screenshot_dark": screenshot_dark,
    "receipt": receipt,
    "two_column": two_column,
    "jpeg_q12": partial(jpeg, quality=12),
}
"""Every page kind that stands alone, by name: a generator from a seed to a page."""


EXAMPLES = {
    "letter.png": [
        "Dear reader,",
        "ocrwatch turns scans and photos into text.",
        "Drop an image into a watched folder and a",
        "text file appears next to it a moment later.",
    ],
    "receipt.png": [
        "CORNER SHOP",
        "Bread 2.40",
        "Milk 1.10",
        "Apples 3.25",
        "TOTAL 6.75",
    ],
}


def make_examples(folder: Path) -> None:
    """Write the sample images shipped in ``examples/``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in EXAMPLES.items():
        image, _ = page(lines, size=(1000, 120 + 58 * len(lines)), font_size=36)
        image.convert("L").save(folder / name, optimize=True)
    tilted, _ = page(
        ["This page was scanned a little crooked.", "ocrwatch straightens it before reading."],
        size=(1100, 260),
        font_size=36,
    )
    rotated(tilted, 4).convert("L").save(folder / "tilted.png", optimize=True)


if __name__ == "__main__":
    make_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "examples"))
