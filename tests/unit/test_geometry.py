"""Crop and region rules resolved against real image sizes."""

from __future__ import annotations

import pytest

from ocrwatch.errors import CropError
from ocrwatch.geometry import Box, BoxRule, Length, MarginRule


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (400, Length(400)),
        ("400", Length(400)),
        ("400px", Length(400)),
        ("12.5%", Length(12.5, percent=True)),
        ("-20%", Length(-20, percent=True)),
        (-5, Length(-5)),
    ],
)
def test_lengths_parse(raw: object, expected: Length) -> None:
    """Pixels and percentages are read in their documented spellings."""
    assert expected == Length.parse(raw)


@pytest.mark.parametrize("raw", [True, 1.5, "12.5 pct", "abc", "101%", None])
def test_bad_lengths_are_refused(raw: object) -> None:
    """Anything else is a ValueError with a readable message."""
    with pytest.raises(ValueError):
        Length.parse(raw)


def test_margins_in_percent_round_to_pixels() -> None:
    """12.5% of 1000 pixels is 125."""
    box = MarginRule(left=Length(12.5, True), bottom=Length(10, True)).resolve(1000, 500)
    assert Box(125, 0, 875, 450) == box


def test_margins_that_leave_nothing_fail_clearly() -> None:
    """Cutting 400 px off a 300 px wide image is a per-file error."""
    with pytest.raises(CropError) as caught:
        MarginRule(left=Length(400)).resolve(300, 200)
    assert "crop leaves nothing of a 300x200 image" in str(caught.value)


def test_box_from_far_edges() -> None:
    """Negative x/y count from the right and bottom edges."""
    box = BoxRule(x=Length(-200), y=Length(-100), width=Length(150), height=Length(50)).resolve(
        1000, 800
    )
    assert Box(800, 700, 150, 50) == box


def test_box_defaults_to_the_far_edges() -> None:
    """Without width/height the box runs to the right and bottom edges."""
    assert Box(10, 20, 90, 30) == BoxRule(x=Length(10), y=Length(20)).resolve(100, 50)


def test_box_outside_the_image_is_an_error_not_a_full_image() -> None:
    """A box that does not fit raises CropError naming the numbers."""
    with pytest.raises(CropError) as caught:
        BoxRule(x=Length(900), y=Length(0), width=Length(200), height=Length(10)).resolve(1000, 800)
    assert "x=900 y=0 width=200 height=10 does not fit inside the 1000x800 image" in str(
        caught.value
    )
