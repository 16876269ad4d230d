"""The invisible text layer: a generated glyphless font, and where each word goes in it.

A searchable PDF draws its words in text render mode 3 (neither filled nor
stroked), so the font needs no ink; it only has to be embedded (PDF/A asks
for it), select a real glyph for every code (PDF/A forbids showing
``.notdef``, even invisibly) and give each code its Unicode text. The font
program is built with fontTools at first use: a TrueType with an empty
``.notdef`` and one glyph, both :data:`ADVANCE` wide, whose outline is a
line of no area along the em's diagonal. That line paints nothing even in a
filling mode, but gives the glyph the em as its bounding box: PDFium drops a
turned character (text on a page with /Rotate, sideways text) whose glyph
box has no extent. It is used as a Type 0 font (Identity-H, a CIDFontType2
whose CIDToGIDMap sends every code in use to that glyph) with a ToUnicode
CMap, so each distinct character of a document, from any script and beyond
the BMP, gets its own two-byte code and comes back from text extraction as
itself. Vertical metrics: the em stands on the baseline, ascent 1000 and
descent -1 (not 0: poppler reads a zero descent as "unknown" and puts a
default 0.35 em below the baseline).

Each word is set from the left of its box to the right (``Tz`` stretches it
to fit), from its line's baseline where the engine gave one (else its box's
bottom) to its box's top, so that a viewer finds and highlights it where the
page shows it. Words of sideways text (orientation 90, 180 or 270: the text
turned clockwise by so many degrees) run along their boxes the way the text
runs. A space, stretched over the gap, follows each word but a line's last.
A right-to-left word (Hebrew, Arabic) goes in its visual order, as PDF
producers write it and extractors expect it.

It owns the font, the codes of the characters shown with it and the
operators that set a page's words; which pages get them is ``searchable``'s
business. Residual risk accepted: a document with more than 65,534 distinct
characters shows the excess as U+FFFD.
"""

from __future__ import annotations

import functools
import importlib
import io
import math
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocrwatch.layout import Affine, Baseline, Word
from ocrwatch.outputs.model import DocumentPage

if TYPE_CHECKING:
    import pikepdf

FONT_NAME = "OcrwatchGlyphless"
UNITS_PER_EM = 1000
ADVANCE = 500
"""Advance of every character, in thousandths of the font size: the text layer stretches
each word with horizontal scaling (``Tz``) to fill its box."""
ASCENT = 1000
DESCENT = -1

_LAST_CODE = 0xFFFF
_REPLACEMENT = "\ufffd"
_BFCHAR_BATCH = 100
"""Entries of one ``beginbfchar`` section: the CMap format allows at most 100."""
_FIXED_TIMESTAMP = 3_850_070_400
"""The font's created and modified dates (2026-01-01, in seconds since 1904 as TrueType
counts), fixed so that the same document gives the same bytes."""
_BLANK_GLYPH = 1
_FLAG_SYMBOLIC = 4

# (advance, up) unit vectors in pixels (y down) of text turned clockwise by each orientation.
_TEXT_FRAMES = {
    0: ((1.0, 0.0), (0.0, -1.0)),
    90: ((0.0, 1.0), (1.0, 0.0)),
    180: ((-1.0, 0.0), (0.0, 1.0)),
    270: ((0.0, -1.0), (-1.0, 0.0)),
}
_ALONG = 0.9
"""A baseline counts for a word when it runs this close to parallel (cosine) to its text."""
_GAP_FLOOR = 0.01
"""Narrowest space between two words, in font sizes: a space must not vanish altogether."""
_EM = ADVANCE / UNITS_PER_EM
_RIGHT_TO_LEFT = frozenset({"R", "AL"})
_LEFT_TO_RIGHT = "L"


@functools.cache
def font_program() -> bytes:
    """The TrueType font program: an empty ``.notdef`` and a glyph that paints nothing over the em."""
    # Imported by name: fontTools ships without type information.
    FontBuilder = importlib.import_module("fontTools.fontBuilder").FontBuilder
    TTGlyphPen = importlib.import_module("fontTools.pens.ttGlyphPen").TTGlyphPen

    names = [".notdef", "blank"]
    builder = FontBuilder(UNITS_PER_EM, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({})
    diagonal = TTGlyphPen(None)
    diagonal.moveTo((0, 0))
    diagonal.lineTo((ADVANCE, ASCENT))
    diagonal.closePath()
    builder.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "blank": diagonal.glyph()})
    builder.setupHorizontalMetrics({name: (ADVANCE, 0) for name in names})
    builder.setupHorizontalHeader(ascent=ASCENT, descent=DESCENT)
    builder.setupNameTable({"familyName": FONT_NAME, "styleName": "Regular"})
    builder.setupOS2(
        sTypoAscender=ASCENT,
        sTypoDescender=DESCENT,
        sTypoLineGap=0,
        usWinAscent=ASCENT,
        usWinDescent=-DESCENT,
        achVendID="NONE",
    )
    builder.setupPost()
    head = builder.font["head"]
    head.created = head.modified = _FIXED_TIMESTAMP
    builder.font.recalcTimestamp = False
    buffer = io.BytesIO()
    builder.save(buffer)
    return buffer.getvalue()


class GlyphlessFont:
    """The font of one document's text layer, and the code of each character shown with it.

    Make it for a :class:`pikepdf.Pdf`, encode every string with
    :meth:`encode`, refer to :attr:`font` from the pages, and call
    :meth:`finish` once before saving: the ToUnicode CMap and the CIDToGIDMap
    can only be written when every character is known.
    """

    def __init__(self, pdf: pikepdf.Pdf) -> None:
        import pikepdf

        self._codes: dict[str, int] = {}
        self._to_unicode = pikepdf.Stream(pdf, b"")
        self._cid_to_gid = pikepdf.Stream(pdf, b"")
        program = font_program()
        font_file = pikepdf.Stream(pdf, program)
        font_file.Length1 = len(program)
        Name = pikepdf.Name
        descriptor = pikepdf.Dictionary(
            Type=Name.FontDescriptor,
            FontName=Name("/" + FONT_NAME),
            Flags=_FLAG_SYMBOLIC,
            FontBBox=[0, DESCENT, ADVANCE, ASCENT],
            ItalicAngle=0,
            Ascent=ASCENT,
            Descent=DESCENT,
            CapHeight=ASCENT,
            StemV=0,
            FontFile2=font_file,
        )
        cid_font = pikepdf.Dictionary(
            Type=Name.Font,
            Subtype=Name.CIDFontType2,
            BaseFont=Name("/" + FONT_NAME),
            CIDSystemInfo=pikepdf.Dictionary(
                Registry=pikepdf.String("Adobe"),
                Ordering=pikepdf.String("Identity"),
                Supplement=0,
            ),
            FontDescriptor=pdf.make_indirect(descriptor),
            DW=ADVANCE,
            CIDToGIDMap=self._cid_to_gid,
        )
        self.font: pikepdf.Dictionary = pdf.make_indirect(
            pikepdf.Dictionary(
                Type=Name.Font,
                Subtype=Name.Type0,
                BaseFont=Name("/" + FONT_NAME),
                Encoding=Name("/Identity-H"),
                DescendantFonts=[pdf.make_indirect(cid_font)],
                ToUnicode=self._to_unicode,
            )
        )

    def encode(self, text: str) -> bytes:
        """``text`` as this font's two-byte codes, one per character (code point)."""
        return b"".join(self._code(character).to_bytes(2, "big") for character in text)

    def finish(self) -> None:
        """Write the ToUnicode CMap and the CIDToGIDMap for every character encoded so far."""
        self._to_unicode.write(to_unicode_cmap(self._codes))
        last = max(self._codes.values(), default=0)
        # CID 0 stays .notdef (glyph 0); every code given out shows the one blank glyph.
        gids = b"\x00\x00" + _BLANK_GLYPH.to_bytes(2, "big") * last
        self._cid_to_gid.write(gids)

    def _code(self, character: str) -> int:
        code = self._codes.get(character)
        if code is not None:
            return code
        if len(self._codes) >= _LAST_CODE - 1 and character != _REPLACEMENT:
            # The last free code is kept for the replacement character.
            return self._code(_REPLACEMENT)
        code = self._codes[character] = len(self._codes) + 1
        return code


def to_unicode_cmap(codes: dict[str, int]) -> bytes:
    """A ToUnicode CMap mapping each two-byte code to its character (UTF-16BE, so any plane)."""
    entries = sorted((code, character) for character, code in codes.items())
    sections = []
    for start in range(0, len(entries), _BFCHAR_BATCH):
        batch = entries[start : start + _BFCHAR_BATCH]
        lines = [
            f"<{code:04X}> <{character.encode('utf-16-be').hex().upper()}>"
            for code, character in batch
        ]
        sections.append(f"{len(batch)} beginbfchar\n" + "\n".join(lines) + "\nendbfchar")
    body = "\n".join(sections)
    return (
        "/CIDInit /ProcSet findresource begin\n"
        "12 dict begin\n"
        "begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n"
        "/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{body}\n"
        "endcmap\n"
        "CMapName currentdict /CMap defineresource pop\n"
        "end\n"
        "end\n"
    ).encode("ascii")


@dataclass(frozen=True)
class _Placed:
    """A word laid out in PDF points: where its baseline starts, its directions, length and size."""

    origin: tuple[float, float]
    along: tuple[float, float]
    up: tuple[float, float]
    length: float
    size: float


def text_layer(page: DocumentPage, to_points: Affine, font: GlyphlessFont, font_name: str) -> bytes:
    """Content operators setting every word of ``page`` invisibly over its box, in ``font_name``."""
    frame = _TEXT_FRAMES.get(page.orientation or 0, _TEXT_FRAMES[0])
    operators = [b"BT", b"3 Tr"]
    for block in page.blocks:
        for line in block.lines:
            shown = []
            for word in line.words:
                where = _place(word, line.baseline, frame, to_points) if word.text.strip() else None
                if where is not None:
                    shown.append((word, where))
            operators.extend(_line_operators(shown, font, font_name))
    operators.append(b"ET\n")
    return b"\n".join(operators)


def _line_operators(
    shown: Sequence[tuple[Word, _Placed]], font: GlyphlessFont, font_name: str
) -> Iterator[bytes]:
    """One line's words, each followed but the last by a space stretched to the next."""
    for index, (word, where) in enumerate(shown):
        scale = 100 * where.length / (len(word.text) * _EM * where.size)
        yield (
            f"{font_name} {_number(where.size)} Tf {_number(scale)} Tz "
            f"{_unit(where.along[0])} {_unit(where.along[1])} {_unit(where.up[0])} "
            f"{_unit(where.up[1])} {_number(where.origin[0])} {_number(where.origin[1])} Tm"
        ).encode()
        yield b"<" + font.encode(_visual_order(word.text)).hex().encode() + b"> Tj"
        if index + 1 < len(shown):
            following = shown[index + 1][1]
            end = (
                where.origin[0] + where.length * where.along[0],
                where.origin[1] + where.length * where.along[1],
            )
            gap = _dot(_minus(following.origin, end), where.along)
            gap = max(gap, _GAP_FLOOR * where.size)
            yield f"{_number(100 * gap / (_EM * where.size))} Tz".encode()
            yield b"<" + font.encode(" ").hex().encode() + b"> Tj"


def _visual_order(text: str) -> str:
    """A word's characters in the order they stand on the page from left to right.

    PDF text extractors (PDFium, poppler) take a right-to-left word's
    characters as laid out left to right and turn them back to reading order,
    so a word whose first strong character is right-to-left goes in reversed.
    """
    for character in text:
        direction = unicodedata.bidirectional(character)
        if direction in _RIGHT_TO_LEFT:
            return text[::-1]
        if direction == _LEFT_TO_RIGHT:
            return text
    return text


def _place(
    word: Word,
    baseline: Baseline | None,
    frame: tuple[tuple[float, float], tuple[float, float]],
    to_points: Affine,
) -> _Placed | None:
    """Where ``word`` goes in points, or None for a box with no extent."""
    advance, up = frame
    corners = [
        (x, y)
        for x in (word.left, word.left + word.width)
        for y in (word.top, word.top + word.height)
    ]
    along = [_dot(corner, advance) for corner in corners]
    across = [_dot(corner, up) for corner in corners]
    start, end = min(along), max(along)
    bottom, top = min(across), max(across)
    base = _baseline_at(baseline, (start + end) / 2, frame)
    if base is None or not bottom <= base < top:
        base = bottom
    origin = _at(start, base, frame)
    mapped = to_points.point(*origin)
    finish = _minus(to_points.point(*_at(end, base, frame)), mapped)
    rise = _minus(to_points.point(*_at(start, top, frame)), mapped)
    length, size = math.hypot(*finish), math.hypot(*rise)
    if length <= 0 or size <= 0:
        return None
    return _Placed(
        origin=mapped,
        along=(finish[0] / length, finish[1] / length),
        up=(rise[0] / size, rise[1] / size),
        length=length,
        size=size,
    )


def _baseline_at(
    baseline: Baseline | None,
    position: float,
    frame: tuple[tuple[float, float], tuple[float, float]],
) -> float | None:
    """How high (along ``up``) the line's baseline is at ``position`` along the text; None if unknown."""
    if baseline is None:
        return None
    advance, up = frame
    first, last = baseline
    direction = _minus(last, first)
    span = _dot(direction, advance)
    if math.hypot(*direction) == 0 or abs(span) < _ALONG * math.hypot(*direction):
        return None
    fraction = (position - _dot(first, advance)) / span
    point = (first[0] + fraction * direction[0], first[1] + fraction * direction[1])
    return _dot(point, up)


def _at(
    position: float, height: float, frame: tuple[tuple[float, float], tuple[float, float]]
) -> tuple[float, float]:
    """The pixel ``position`` along the text and ``height`` up from it."""
    (ax, ay), (ux, uy) = frame
    return position * ax + height * ux, position * ay + height * uy


def _dot(first: tuple[float, float], second: tuple[float, float]) -> float:
    return first[0] * second[0] + first[1] * second[1]


def _minus(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    return first[0] - second[0], first[1] - second[1]


def pdf_matrix(affine: Affine) -> bytes:
    """``affine`` as the six numbers of a PDF matrix (``cm``, ``Tm``: a b c d e f)."""
    values = (affine.a, affine.d, affine.b, affine.e, affine.c, affine.f)
    return " ".join(_number(value) for value in values).encode()


def _number(value: float) -> str:
    """A size or place in points (or a percentage) to a hundredth: 1/7200 inch."""
    return _shortest(f"{value:.2f}")


def _unit(value: float) -> str:
    """A direction cosine to four places: within 0.1 point over a 1000-point line."""
    return _shortest(f"{value:.4f}")


def _shortest(text: str) -> str:
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text
