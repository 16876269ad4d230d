"""The searchable PDF: each page's image as it came in, under an invisible text layer of its words.

A PDF input keeps its own pages, content and image streams byte for byte;
each page read by OCR gets a text layer (:mod:`~ocrwatch.outputs.textlayer`)
appended to its content, after its old invisible text (an earlier OCR's,
text drawn in render mode 3) is taken out so that a search does not find
every word twice; a page with its own text (``embedded``) or a failed page is
left as it is. An image input (every page of a TIFF) becomes one page per
frame at its physical size (:data:`ASSUMED_DPI` when the file does not say),
the image embedded as :mod:`~ocrwatch.outputs.pageimages` says. Boxes go
from the model's pixels to PDF points by the page's ``to_points`` (a PDF
page) or by the page's size (an image).

Orientation: ocrwatch's engines report the degrees the text is turned
clockwise on the page (Tesseract's ``ORIENTATION_PAGE_RIGHT`` is 90: the
text's top faces the page's right edge). With ``rotate_pages`` such a page
gets ``/Rotate`` turning it back (90 adds 270 degrees to its /Rotate).

It owns editing a PDF input's pages, building an image input's pages and the
write; PDF/A is :mod:`~ocrwatch.outputs.pdfa`'s, and which outputs an inbox
writes is ``write``'s. pikepdf is imported inside functions, so the package
imports without the ``pdf`` extra. Residual risks accepted: a text object
mixing visible and invisible text keeps its invisible part (removing it
could move the visible text after it); a form XObject whose old invisible
text is removed loses it on every page that draws it.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from ocrwatch.layout import Affine
from ocrwatch.outputs.model import Document, DocumentPage
from ocrwatch.outputs.pdfa import PdfOutputError
from ocrwatch.outputs.textlayer import GlyphlessFont, pdf_matrix, text_layer

if TYPE_CHECKING:
    import pikepdf

__all__ = [
    "PdfOutputError",
    "PdfWritten",
    "SearchablePdfOptions",
    "missing_dependency",
    "write_searchable_pdf",
]

POINTS_PER_INCH = 72.0
ASSUMED_DPI = 300.0
"""Resolution of an image that does not say its own, or says one below :data:`MIN_DPI`."""
MIN_DPI = 100.0
MIN_PIKEPDF = (10, 14)
INSTALL_HINT = "pip install 'ocrwatch[pdf]'"

_FONT_PREFIX = "OcrwatchText"
_TURNS = (90, 180, 270)
_INVISIBLE = 3
_HIDDEN_TEXT = re.compile(rb"(?<![\d.])\+?3(?:\.0*)?\s+Tr\b")
"""Where a content stream may set render mode 3; only a stream that matches is parsed."""
_SHOWS = frozenset({"Tj", "TJ", "'", '"'})
_MAX_FORM_DEPTH = 8


@dataclass(frozen=True)
class SearchablePdfOptions:
    """How the searchable PDF is written."""

    pdfa: Literal["2b", "none"] = "2b"
    on_pdfa_failure: Literal["plain", "fail"] = "plain"
    rotate_pages: bool = True
    password: str | None = None
    """The password of an encrypted PDF input (its encryption is kept, so PDF/A is not possible)."""


@dataclass(frozen=True)
class PdfWritten:
    """What was written: whether it is PDF/A, why not, and how many pages."""

    pdfa: str | None
    pdfa_error: str | None
    pages: int

    def describe(self) -> dict[str, Any]:
        """The entry for the ``.json``."""
        return {"pdfa": self.pdfa, "pdfa_error": self.pdfa_error, "pages": self.pages}


def missing_dependency() -> str | None:
    """Why searchable PDFs cannot be written here (pikepdf too old, PDF/A extras missing), or None."""
    try:
        import pikepdf
    except ImportError:
        return f"searchable PDF output needs pikepdf; install it with {INSTALL_HINT}"
    found = tuple(int(part) for part in re.findall(r"\d+", pikepdf.__version__)[:2])
    if found < MIN_PIKEPDF:
        return (
            f"searchable PDF output needs pikepdf {'.'.join(map(str, MIN_PIKEPDF))} or later "
            f"(found {pikepdf.__version__}); install it with {INSTALL_HINT}"
        )
    try:
        # The glyphless font is built with fontTools, which pikepdf.pdfa needs too.
        importlib.import_module("fontTools.fontBuilder")
        importlib.import_module("pikepdf.pdfa")
    except ImportError as error:
        return (
            f"searchable PDF output needs pikepdf's PDF/A extras ({error}); "
            f"install them with {INSTALL_HINT}"
        )
    return None


def write_searchable_pdf(
    document: Document, original: BinaryIO, target: Path, options: SearchablePdfOptions
) -> PdfWritten:
    """Write ``document``'s searchable PDF of the file in ``original`` to ``target``.

    With ``pdfa: 2b`` the PDF is prepared, written and validated; when it
    does not validate, ``fail`` raises and ``plain`` builds it again as a
    plain PDF, so that nothing PDF/A's preparation changed is kept. Raises
    PdfOutputError when pikepdf is missing, the input cannot be read again
    as the PDF it was, PDF/A fails under ``fail``, or the file cannot be written.
    """
    from ocrwatch.outputs import pdfa

    problem = missing_dependency()
    if problem is not None:
        raise PdfOutputError(problem, for_good=True)
    reason = None
    if options.pdfa != "none":
        with _built(document, original, options) as pdf:
            reason = pdfa.save_pdfa(pdf, target)
            if reason is None:
                return PdfWritten(pdfa=pdfa.FLAVOUR, pdfa_error=None, pages=len(pdf.pages))
        if options.on_pdfa_failure == "fail":
            message = f"the searchable PDF is not PDF/A-{pdfa.FLAVOUR}: {reason}"
            raise PdfOutputError(message, for_good=True)
    with _built(document, original, options) as pdf:
        pdfa.save_plain(pdf, target)
        return PdfWritten(pdfa=None, pdfa_error=reason, pages=len(pdf.pages))


def _built(document: Document, original: BinaryIO, options: SearchablePdfOptions) -> pikepdf.Pdf:
    """The searchable PDF in memory: the input PDF's pages with their text, or the image's pages."""
    import pikepdf

    original.seek(0)
    if document.format != "PDF":
        pdf = pikepdf.new()
        font = GlyphlessFont(pdf)
        _image_pages(pdf, document, original, font, options)
        font.finish()
        return pdf
    try:
        pdf = pikepdf.open(original, password=options.password or "")
    except pikepdf.PasswordError as error:
        message = f"the PDF is encrypted and the password does not open it: {error}"
        raise PdfOutputError(message, for_good=True) from error
    except pikepdf.PdfError as error:
        message = f"the PDF could not be read again to add its text: {error}"
        raise PdfOutputError(message, for_good=True) from error
    font = GlyphlessFont(pdf)
    _add_text_to_pdf(pdf, document, font, options)
    font.finish()
    return pdf


def _add_text_to_pdf(
    pdf: pikepdf.Pdf, document: Document, font: GlyphlessFont, options: SearchablePdfOptions
) -> None:
    """Give each page read by OCR its text layer (old invisible text out); turn sideways pages."""
    opening = pdf.make_stream(b"q\n")
    for entry in document.pages:
        if not 1 <= entry.number <= len(pdf.pages):
            continue
        page = pdf.pages[entry.number - 1]
        if entry.status == "done" and entry.text_source == "ocr":
            remove_invisible_text(pdf, page)
            if entry.to_points is not None and entry.words:
                layer = text_layer(entry, entry.to_points, font, _font_resource(page, font))
                page.contents_add(opening, prepend=True)
                page.contents_add(pdf.make_stream(b"Q\n" + layer))
        if options.rotate_pages:
            _turn_upright(page, entry)


def _image_pages(
    pdf: pikepdf.Pdf,
    document: Document,
    original: BinaryIO,
    font: GlyphlessFont,
    options: SearchablePdfOptions,
) -> None:
    """One page per frame of an image file: the image at its size, its words over it."""
    import pikepdf

    from ocrwatch.outputs.pageimages import page_images, placement

    entries = {entry.number: entry for entry in document.pages}
    for index, picture in enumerate(page_images(pdf, original)):
        entry = entries.get(index + 1)
        across, down = _resolution(picture.dpi, turned=picture.orientation >= 5)
        upright_width, upright_height = picture.upright_size
        size = (
            upright_width * POINTS_PER_INCH / across,
            upright_height * POINTS_PER_INCH / down,
        )
        page = pdf.add_blank_page(page_size=size)
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=picture.xobject))
        content = b"q " + pdf_matrix(placement(picture, size)) + b" cm /Im0 Do Q\n"
        if entry is not None and entry.status == "done" and entry.words:
            # The model's pixels are the upright image's; they fill the page whatever their count.
            width, height = entry.width or upright_width, entry.height or upright_height
            to_points = Affine(size[0] / width, 0, 0, 0, -size[1] / height, size[1])
            content += text_layer(entry, to_points, font, _font_resource(page, font))
        page.obj.Contents = pdf.make_stream(content)
        if entry is not None and options.rotate_pages:
            _turn_upright(page, entry)


def _font_resource(page: pikepdf.Page, font: GlyphlessFont) -> str:
    """The name ``page`` knows the text layer's font by, added under a name it does not use."""
    import pikepdf

    resources = page.obj.get("/Resources")
    if not isinstance(resources, pikepdf.Dictionary):
        resources = page.obj.Resources = pikepdf.Dictionary()
    fonts = resources.get("/Font")
    if not isinstance(fonts, pikepdf.Dictionary):
        fonts = resources.Font = pikepdf.Dictionary()
    number = 0
    while True:
        name = f"/{_FONT_PREFIX}{number or ''}"
        present = fonts.get(name)
        if present is None:
            fonts[name] = font.font
            return name
        if present.is_indirect and present.objgen == font.font.objgen:
            return name
        number += 1


def _resolution(dpi: tuple[float, float] | None, *, turned: bool) -> tuple[float, float]:
    """Dots per inch across and down the upright image: the file's, else :data:`ASSUMED_DPI`."""
    if dpi is None or min(dpi) < MIN_DPI:
        return ASSUMED_DPI, ASSUMED_DPI
    return (dpi[1], dpi[0]) if turned else dpi


def _turn_upright(page: pikepdf.Page, entry: DocumentPage) -> None:
    if entry.orientation in _TURNS:
        rotation = int(page.obj.get("/Rotate", 0))
        page.obj.Rotate = (rotation + 360 - entry.orientation) % 360


def remove_invisible_text(pdf: pikepdf.Pdf, page: pikepdf.Page) -> int:
    """Take the text drawn in render mode 3 out of ``page`` and its forms; how many strings went."""
    import pikepdf

    removed = 0
    content = page.obj.get("/Contents")
    streams = list(content) if isinstance(content, pikepdf.Array) else [content]
    if any(
        isinstance(stream, pikepdf.Stream) and _HIDDEN_TEXT.search(stream.read_bytes())
        for stream in streams
    ):
        instructions, removed = _without_invisible_text(pikepdf.parse_content_stream(page))
        if removed:
            page.obj.Contents = pdf.make_stream(pikepdf.unparse_content_stream(instructions))
    return removed + _forms_without_invisible_text(page.obj.get("/Resources"), set(), 0)


def _forms_without_invisible_text(resources: object, seen: set[tuple[int, int]], depth: int) -> int:
    import pikepdf

    if not isinstance(resources, pikepdf.Dictionary) or depth > _MAX_FORM_DEPTH:
        return 0
    removed = 0
    forms = resources.get("/XObject")
    for form in forms.values() if isinstance(forms, pikepdf.Dictionary) else ():
        if not isinstance(form, pikepdf.Stream) or form.get("/Subtype") != pikepdf.Name.Form:
            continue
        if form.is_indirect and form.objgen in seen:
            continue
        seen.add(form.objgen)
        if _HIDDEN_TEXT.search(form.read_bytes()):
            instructions, count = _without_invisible_text(pikepdf.parse_content_stream(form))
            if count:
                form.write(pikepdf.unparse_content_stream(instructions))
                removed += count
        removed += _forms_without_invisible_text(form.get("/Resources"), seen, depth + 1)
    return removed


def _without_invisible_text(instructions: list[Any]) -> tuple[list[Any], int]:
    """The instructions without the strings of text objects that show only invisible text.

    A text object (BT to ET) all of whose strings are drawn in render mode 3
    keeps every operator but its strings (``'`` and ``"`` keep their line
    moves), so that the text state it leaves behind is the same.
    """
    kept: list[Any] = []
    text_object: list[Any] | None = None
    shows: list[tuple[int, int]] = []
    mode, saved, removed = 0, [], 0
    for instruction in instructions:
        operator = str(getattr(instruction, "operator", ""))
        if operator == "q":
            saved.append(mode)
        elif operator == "Q":
            mode = saved.pop() if saved else 0
        elif operator == "Tr":
            mode = _render_mode(instruction.operands, mode)
        elif operator == "BT":
            text_object, shows = [], []
        if text_object is None:
            kept.append(instruction)
            continue
        if operator in _SHOWS:
            shows.append((len(text_object), mode))
        text_object.append(instruction)
        if operator == "ET":
            if shows and all(shown_mode == _INVISIBLE for _, shown_mode in shows):
                strings = {position for position, _ in shows}
                text_object = [
                    moved
                    for position, item in enumerate(text_object)
                    for moved in (_line_moves(item) if position in strings else [item])
                ]
                removed += len(strings)
            kept.extend(text_object)
            text_object = None
    kept.extend(text_object or ())
    return kept, removed


def _render_mode(operands: Any, current: int) -> int:
    """The mode a ``Tr`` sets; a malformed one (ignored by readers) leaves ``current``."""
    try:
        return int(operands[0])
    except (IndexError, TypeError, ValueError):
        return current


def _line_moves(instruction: Any) -> list[Any]:
    """What is left of a string-showing instruction without its string: its move to the next line."""
    import pikepdf

    operator = str(instruction.operator)
    Instruction, Operator = pikepdf.ContentStreamInstruction, pikepdf.Operator
    if operator == "'":
        return [Instruction([], Operator("T*"))]
    if operator == '"':
        word_spacing, char_spacing = instruction.operands[0], instruction.operands[1]
        return [
            Instruction([word_spacing], Operator("Tw")),
            Instruction([char_spacing], Operator("Tc")),
            Instruction([], Operator("T*")),
        ]
    return []
