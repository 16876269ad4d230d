"""Lengths and boxes as written in crop and region rules, and their resolution to pixels.

A rule is written against an image of unknown size (``left: 400``,
``width: "50%"``); only when an image arrives does it become a pixel box.
This module owns that step and its errors. It knows nothing of files or
engines.

Boxes are in the coordinates of the image as a viewer shows it: upright,
after its EXIF orientation is applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ocrwatch.errors import CropError

_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_NUMBER = re.compile(r"^\s*(-?\d+)\s*(?:px)?\s*$")


@dataclass(frozen=True)
class Length:
    """A distance in a rule: whole pixels, or a percentage of the image side."""

    value: float
    percent: bool = False

    @classmethod
    def parse(cls, raw: Any) -> Length:
        """Read ``400``, ``"400"``, ``"400px"`` or ``"12.5%"``; raise ValueError otherwise."""
        if isinstance(raw, Length):
            return raw
        if isinstance(raw, bool):
            raise ValueError("expected pixels (a whole number) or a percentage like '12.5%'")
        if isinstance(raw, int):
            return cls(float(raw))
        if isinstance(raw, float):
            if raw.is_integer():
                return cls(raw)
            raise ValueError(
                f"{raw} is not a whole number of pixels; write a percentage as a string like '{raw}%'"
            )
        if isinstance(raw, str):
            if match := _PERCENT.match(raw):
                value = float(match.group(1))
                if abs(value) > 100:
                    raise ValueError(f"{raw!r} is more than 100%")
                return cls(value, percent=True)
            if match := _NUMBER.match(raw):
                return cls(float(match.group(1)))
        raise ValueError(
            f"{raw!r} is not a length: expected pixels (a whole number) or a percentage like '12.5%'"
        )

    def __str__(self) -> str:
        if self.percent:
            return f"{self.value:g}%"
        return str(int(self.value))

    def pixels(self, side: int) -> int:
        """This length in pixels of an image side ``side`` pixels long (may be negative)."""
        if self.percent:
            return round(self.value * side / 100.0)
        return int(self.value)


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: ``x, y`` is the top-left corner."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class MarginRule:
    """Cut this much off each edge."""

    left: Length | None = None
    top: Length | None = None
    right: Length | None = None
    bottom: Length | None = None

    def resolve(self, width: int, height: int, *, what: str = "crop") -> Box:
        """The box left after cutting the margins from a ``width`` x ``height`` image."""
        cuts = {}
        for name, length, side in (
            ("left", self.left, width),
            ("right", self.right, width),
            ("top", self.top, height),
            ("bottom", self.bottom, height),
        ):
            pixels = length.pixels(side) if length is not None else 0
            if pixels < 0:
                raise CropError(f"{what}.{name} is negative ({length})")
            cuts[name] = pixels
        box = Box(
            x=cuts["left"],
            y=cuts["top"],
            width=width - cuts["left"] - cuts["right"],
            height=height - cuts["top"] - cuts["bottom"],
        )
        if box.width <= 0 or box.height <= 0:
            raise CropError(
                f"{what} leaves nothing of a {width}x{height} image "
                f"(left {cuts['left']}, right {cuts['right']}, top {cuts['top']}, "
                f"bottom {cuts['bottom']} pixels)"
            )
        return box

    def describe(self) -> dict[str, str]:
        return {
            name: str(value)
            for name, value in (
                ("left", self.left),
                ("top", self.top),
                ("right", self.right),
                ("bottom", self.bottom),
            )
            if value is not None
        }


@dataclass(frozen=True)
class BoxRule:
    """A rectangle; negative ``x``/``y`` count from the right/bottom edge."""

    x: Length
    y: Length
    width: Length | None = None
    height: Length | None = None

    def resolve(self, width: int, height: int, *, what: str = "box") -> Box:
        """The pixel box of this rule inside a ``width`` x ``height`` image.

        Raises CropError when the box does not lie inside the image: a rule that
        misses the image is a mistake to report, never a silent full-image OCR.
        """
        x = self.x.pixels(width)
        y = self.y.pixels(height)
        if self.x.value < 0:
            x += width
        if self.y.value < 0:
            y += height
        box_width = self.width.pixels(width) if self.width is not None else width - x
        box_height = self.height.pixels(height) if self.height is not None else height - y
        if box_width <= 0 or box_height <= 0:
            raise CropError(f"{what} has no area ({box_width}x{box_height} pixels)")
        box = Box(x=x, y=y, width=box_width, height=box_height)
        if x < 0 or y < 0 or box.right > width or box.bottom > height:
            raise CropError(
                f"{what} x={x} y={y} width={box_width} height={box_height} "
                f"does not fit inside the {width}x{height} image"
            )
        return box

    def describe(self) -> dict[str, str]:
        described = {"x": str(self.x), "y": str(self.y)}
        if self.width is not None:
            described["width"] = str(self.width)
        if self.height is not None:
            described["height"] = str(self.height)
        return described


CropRule = MarginRule | BoxRule
