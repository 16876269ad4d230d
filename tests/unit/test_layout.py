"""The page model: boxes around boxes, affine maps, and moving a whole page between pixel spaces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from ocrwatch.layout import (
    Affine,
    Block,
    Box,
    Line,
    Page,
    PixelMap,
    Point,
    ScaleShift,
    Word,
    map_page,
)


def two_word_page() -> Page:
    """A page of one block holding one line of two words, with a baseline and confidences."""
    first = Word("Order", 40, 32, 96, 24, line=0, confidence=91.5)
    second = Word("7731", 150, 32, 72, 24, line=0)
    line = Line(box=Box(40, 32, 182, 24), words=(first, second), baseline=((40, 52), (222, 54)))
    return Page(
        text="Order 7731",
        words=(first, second),
        orientation=90,
        error="partly read",
        blocks=(Block(box=Box(30, 20, 200, 50), lines=(line,)),),
    )


def test_scale_and_shift_move_words_lines_baselines_and_blocks_together() -> None:
    """Mapping out of a half-size upload placed at 10, 20 doubles every box and point and shifts it."""
    first = Word("Order", 90, 84, 192, 48, line=0, confidence=91.5)
    second = Word("7731", 310, 84, 144, 48, line=0)
    line = Line(box=Box(90, 84, 364, 48), words=(first, second), baseline=((90, 124), (454, 128)))
    expected = Page(
        text="Order 7731",
        words=(first, second),
        orientation=90,
        error="partly read",
        blocks=(Block(box=Box(70, 60, 400, 100), lines=(line,)),),
    )
    assert expected == map_page(two_word_page(), ScaleShift(dx=10, dy=20, scale=0.5))


def test_the_page_words_and_the_block_words_stay_the_same_words() -> None:
    """After a map, the page's words are still the words its lines hold, in reading order."""
    page = map_page(two_word_page(), ScaleShift(dx=3.5, dy=-2, scale=0.75))
    in_lines = tuple(word for block in page.blocks for line in block.lines for word in line.words)
    assert page.words == in_lines


def test_scale_and_shift_give_the_numbers_sidecars_have_always_recorded() -> None:
    """A word's box is divided by the scale and then shifted, with sizes divided, not subtracted."""
    word = Word("seven", left=7, top=11, width=13, height=17, line=2)
    expected = Word(
        "seven", left=7 / 0.3 + 5.5, top=11 / 0.3 + 6.25, width=13 / 0.3, height=17 / 0.3, line=2
    )
    page = map_page(Page("seven", words=(word,)), ScaleShift(dx=5.5, dy=6.25, scale=0.3))
    assert (expected,) == page.words


def test_a_page_without_layout_maps_its_words_only() -> None:
    """An engine that gives words but no blocks keeps having no blocks."""
    page = map_page(Page("a", words=(Word("a", 1, 2, 3, 4),)), ScaleShift(dx=1, dy=1))
    assert (Word("a", 2, 3, 3, 4),) == page.words
    assert () == page.blocks


@dataclass(frozen=True)
class Transpose:
    """Swaps x and y: an affine map that is neither a scale nor a shift."""

    def point(self, x: float, y: float) -> Point:
        return y, x

    def box(self, box: Box) -> Box:
        return Box(box.top, box.left, box.height, box.width)


def test_any_affine_map_moves_baseline_points_and_boxes_by_its_own_rules() -> None:
    """Baselines go through the map's point rule and every box through its box rule."""
    page = map_page(two_word_page(), Transpose())
    line = page.blocks[0].lines[0]
    assert Box(20, 30, 50, 200) == page.blocks[0].box
    assert Box(32, 40, 24, 182) == line.box
    assert ((52, 40), (54, 222)) == line.baseline
    assert [Box(32, 40, 24, 96), Box(32, 150, 24, 72)] == [word.box for word in line.words]
    assert [91.5, None] == [word.confidence for word in page.words]


def test_box_around_boxes_spans_them_all() -> None:
    """The box around a line's words reaches from the leftmost top to the rightmost bottom."""
    boxes = [Box(40, 80, 64, 24), Box(114, 78, 30, 24), Box(154, 80, 86, 30)]
    assert Box(40, 78, 200, 32) == Box.around(boxes)


def test_box_around_nothing_is_refused() -> None:
    """There is no box around no boxes."""
    with pytest.raises(ValueError, match="no boxes"):
        Box.around([])


QUARTER_TURN = Affine(0.0, -1.0, 100.0, 1.0, 0.0, 0.0)
"""Turns a 100-pixel-high image a quarter clockwise: ``(x, y) -> (100 - y, x)``."""


def test_an_affine_map_moves_a_point_by_its_six_numbers() -> None:
    """``(x, y)`` goes to ``(a*x + b*y + c, d*x + e*y + f)``."""
    assert (2 * 7 + 3 * 11 + 5, -1 * 7 + 4 * 11 + 6) == Affine(2, 3, 5, -1, 4, 6).point(7, 11)
    assert (90.0, 7.0) == QUARTER_TURN.point(7, 10)


def test_a_quarter_turn_turns_a_box_into_its_turned_box() -> None:
    """A box turned a quarter is the box its corners land in: width and height swap."""
    assert Box(40, 10, 40, 30) == QUARTER_TURN.box(Box(10, 20, 30, 40))


def test_the_box_of_a_box_turned_45_degrees_holds_all_its_corners() -> None:
    """Turned 45 degrees, a 2-pixel square lands in the 2-root-2 square around its corners."""
    half = math.sqrt(0.5)
    box = Affine(half, -half, 0.0, half, half, 0.0).box(Box(0, 0, 2, 2))
    side = 2 * math.sqrt(2)
    assert pytest.approx((-side / 2, 0.0, side, side)) == (box.left, box.top, box.width, box.height)


def test_an_affine_inverse_takes_points_and_boxes_back() -> None:
    """inverse() undoes the map: a point comes back, and so does a box turned by a quarter."""
    forward = Affine(2.0, 0.5, 3.0, -0.25, 1.5, 7.0)
    back = forward.inverse()
    assert pytest.approx((7.0, 11.0)) == back.point(*forward.point(7, 11))
    box = Box(10, 20, 30, 40)
    assert box == QUARTER_TURN.inverse().box(QUARTER_TURN.box(box))
    identity = forward.then(back)
    assert pytest.approx((1, 0, 0, 0, 1, 0)) == (
        identity.a,
        identity.b,
        identity.c,
        identity.d,
        identity.e,
        identity.f,
    )


def test_then_applies_the_first_map_and_then_the_second() -> None:
    """``first.then(second)`` sends a point where ``second`` sends ``first``'s image of it."""
    first, second = Affine(2, 3, 5, -1, 4, 6), QUARTER_TURN
    assert second.point(*first.point(7, 11)) == first.then(second).point(7, 11)


def test_a_singular_affine_map_has_no_inverse() -> None:
    """A map that squashes the plane onto a line cannot be undone."""
    with pytest.raises(ValueError, match="singular"):
        Affine(1, 2, 0, 2, 4, 0).inverse()


def test_an_affine_map_moves_a_whole_page() -> None:
    """An Affine is a PixelMap: a quarter turn moves words, lines, baselines and blocks together."""
    pixel_map: PixelMap = QUARTER_TURN
    page = map_page(two_word_page(), pixel_map)
    line = page.blocks[0].lines[0]
    assert Box(30, 30, 50, 200) == page.blocks[0].box
    assert ((48, 40), (46, 222)) == line.baseline
    assert [Box(44, 40, 24, 96), Box(44, 150, 24, 72)] == [word.box for word in line.words]
