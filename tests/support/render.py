"""Deterministic test pages rendered with the font Pillow bundles (no system fonts needed).

Used by tests (words at known places), benchmarks (A4 scans) and to make the
sample images in ``examples/``: ``python -m tests.support.render examples``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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
    x0, y = origin
    for line in lines:
        x = x0
        for word in line.split():
            left, top, right, bottom = draw.textbbox((x, y), word, font=face)
            draw.text((x, y), word, font=face, fill=ink)
            placed.append(Placed(word, left, top, right - left, bottom - top))
            x = right + int(font_size * 0.35)
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
    words = ["invoice", "total", "amount", "payable", "within", "thirty", "days", "of", "receipt", "reference", "number", "customer", "account", "statement", "period", "balance", "forward", "payment", "received", "thank", "you"]
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
