"""PDFs built for tests, small and deterministic (but for encryption salts): scans, text layers, bombs.

Owns building the bytes only; tests decide what must come of them. Page
images come from :mod:`tests.support.render`, so the words on them and their
boxes are known; text is set in Helvetica, which every PDF reader carries,
so no font is embedded. Sizes are in points (1/72 inch) unless a name says
pixels.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence

import numpy as np
import pikepdf
from PIL import Image

from ocrwatch.layout import Box
from tests.support.render import Placed

POINTS_PER_INCH = 72
_FONT = "/F1"


def save(
    pdf: pikepdf.Pdf, *, encryption: pikepdf.Encryption | None = None, linearize: bool = False
) -> bytes:
    buffer = io.BytesIO()
    # An encrypted file's ID cannot be deterministic: its keys are salted at random.
    pdf.save(
        buffer,
        deterministic_id=encryption is None,
        encryption=encryption or False,
        linearize=linearize,
    )
    return buffer.getvalue()


def helvetica(pdf: pikepdf.Pdf) -> pikepdf.Dictionary:
    """A resource dictionary naming Helvetica as /F1."""
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    return pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))


def jpeg_image(pdf: pikepdf.Pdf, image: Image.Image) -> pikepdf.Stream:
    """``image`` as a JPEG image XObject (grey stays grey, anything else becomes RGB)."""
    grey = image.mode in ("L", "1")
    picture = image.convert("L" if grey else "RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=92)
    return pikepdf.Stream(
        pdf,
        buffer.getvalue(),
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=picture.width,
        Height=picture.height,
        ColorSpace=pikepdf.Name.DeviceGray if grey else pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
        Filter=pikepdf.Name.DCTDecode,
    )


def bilevel_image(pdf: pikepdf.Pdf, ink: np.ndarray) -> pikepdf.Stream:
    """A 1-bit Flate image XObject from a boolean array, True where there is ink (black)."""
    rows = np.packbits(~ink, axis=1)  # DeviceGray 1-bit: 0 is black, 1 is white
    return bilevel_stream(
        pdf, zlib.compress(rows.tobytes(), 6), width=ink.shape[1], height=ink.shape[0]
    )


def bilevel_stream(
    pdf: pikepdf.Pdf, compressed: bytes, *, width: int, height: int
) -> pikepdf.Stream:
    return pikepdf.Stream(
        pdf,
        compressed,
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=width,
        Height=height,
        ColorSpace=pikepdf.Name.DeviceGray,
        BitsPerComponent=1,
        Filter=pikepdf.Name.FlateDecode,
    )


def add_image_page(
    pdf: pikepdf.Pdf,
    picture: pikepdf.Stream,
    *,
    dpi: float,
    rotate: int = 0,
    text: bytes = b"",
) -> pikepdf.Page:
    """A page exactly the size of ``picture`` placed at ``dpi``, with ``text`` (content operators) over it."""
    width = int(picture.Width) * POINTS_PER_INCH / dpi
    height = int(picture.Height) * POINTS_PER_INCH / dpi
    content = f"q {width:.4f} 0 0 {height:.4f} 0 0 cm /Im0 Do Q\n".encode() + text
    page = pdf.add_blank_page(page_size=(width, height))
    page.obj.Contents = pdf.make_stream(content)
    resources = helvetica(pdf)
    resources.XObject = pikepdf.Dictionary(Im0=picture)
    page.obj.Resources = resources
    if rotate:
        page.obj.Rotate = rotate
    return page


def text_layer(
    words: Sequence[Placed], *, dpi: float, page_height: float, invisible: bool
) -> bytes:
    """Content operators that set each word in Helvetica over its box of a ``dpi`` page image.

    Each word starts at its box's left edge, on a baseline a fifth of the box
    above its bottom, at a size of the box's height: close to where the image
    shows it, as an OCR layer would be.
    """
    scale = POINTS_PER_INCH / dpi
    operators = [b"BT", b"3 Tr" if invisible else b"0 Tr"]
    for word in words:
        size = word.height * scale
        x = word.left * scale
        y = page_height - (word.top + word.height) * scale + size / 5
        operators.append(f"{_FONT} {size:.3f} Tf 1 0 0 1 {x:.3f} {y:.3f} Tm".encode())
        operators.append(b"(" + _escaped(word.text) + b") Tj")
    operators.append(b"ET")
    return b"\n".join(operators) + b"\n"


def scanned(
    image: Image.Image,
    *,
    dpi: float,
    rotate: int = 0,
    words: Sequence[Placed] = (),
    pages: int = 1,
) -> bytes:
    """A scan: each page is ``image`` as a JPEG at ``dpi``, with an invisible text layer of ``words``."""
    pdf = pikepdf.new()
    height = image.height * POINTS_PER_INCH / dpi
    layer = text_layer(words, dpi=dpi, page_height=height, invisible=True) if words else b""
    for _ in range(pages):
        add_image_page(pdf, jpeg_image(pdf, image), dpi=dpi, rotate=rotate, text=layer)
    return save(pdf)


def bilevel_scan(image: Image.Image, *, dpi: float) -> bytes:
    """A bilevel scan: ``image`` thresholded to 1 bit, Flate-compressed, at ``dpi``."""
    pdf = pikepdf.new()
    ink = np.asarray(image.convert("L")) < 128
    add_image_page(pdf, bilevel_image(pdf, ink), dpi=dpi)
    return save(pdf)


def born_digital(
    lines: Sequence[str],
    *,
    font_size: float = 12,
    origin: tuple[float, float] = (72, 720),
    page_size: tuple[float, float] = (612, 792),
) -> bytes:
    """A page of visible Helvetica text: line ``i``'s baseline starts at ``origin`` moved down ``i`` leadings."""
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=page_size)
    leading = font_size * 1.5
    operators = [f"BT {_FONT} {font_size} Tf {leading} TL {origin[0]} {origin[1]} Td".encode()]
    operators += [b"(" + _escaped(line) + b") Tj T*" for line in lines]
    operators.append(b"ET")
    page.obj.Contents = pdf.make_stream(b"\n".join(operators))
    page.obj.Resources = helvetica(pdf)
    return save(pdf)


def huge_bilevel(
    *, side: float = 8400, pixels: int = 20_000, square: tuple[int, int, int]
) -> bytes:
    """One ``side``-point square page holding a ``pixels``-square white bilevel image.

    ``square`` is (left, top, size) in image pixels of one black square, drawn
    so that the render can be checked. The image is compressed row by row, so
    it is never whole in memory.
    """
    left, top, size = square
    row_bytes = (pixels + 7) // 8
    white = np.full(pixels, False)
    inked = white.copy()
    inked[left : left + size] = True
    white_row, inked_row = np.packbits(~white).tobytes(), np.packbits(~inked).tobytes()
    assert row_bytes == len(white_row)
    compressor = zlib.compressobj(6)
    chunks = [
        compressor.compress(inked_row if top <= row < top + size else white_row)
        for row in range(pixels)
    ]
    chunks.append(compressor.flush())
    pdf = pikepdf.new()
    picture = bilevel_stream(pdf, b"".join(chunks), width=pixels, height=pixels)
    add_image_page(pdf, picture, dpi=pixels * POINTS_PER_INCH / side)
    return save(pdf)


def blank(count: int, *, page_size: tuple[float, float] = (612, 792)) -> bytes:
    """``count`` empty pages (sharing one empty content stream); 0 gives a valid PDF without pages."""
    pdf = pikepdf.new()
    for _ in range(count):
        pdf.add_blank_page(page_size=page_size)
    return save(pdf)


def encrypted(data: bytes, *, user: str, owner: str) -> bytes:
    """``data`` re-saved with AES-256 encryption under a user and an owner password."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return save(pdf, encryption=pikepdf.Encryption(user=user, owner=owner))


def linearized(data: bytes) -> bytes:
    """``data`` re-saved linearized ("fast web view": the first page's objects first)."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return save(pdf, linearize=True)


def broken() -> bytes:
    """A header, some bytes that are no PDF object, and an end marker."""
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\nthis is not an object\n%%EOF\n"


def _escaped(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def with_update(data: bytes, *, padding: int = 8192) -> bytes:
    """``data`` (one page, a classic cross-reference table) plus an incremental update adding a page.

    The new page's content stream carries ``padding`` bytes of comment, so
    that a cut inside the update lies well before its ``%%EOF``.
    """
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pages_number = pdf.Root.Pages.objgen[0]
        first_page = pdf.pages[0].obj.objgen[0]
        root = pdf.Root.objgen[0]
        size = int(pdf.trailer.Size)
        box = " ".join(str(float(value)) for value in pdf.pages[0].mediabox)
    previous = int(data[data.rindex(b"startxref") :].split()[1])
    page, content = size, size + 1
    stream = b"%" + b"-" * padding + b"\n0 0 m 100 100 l S\n"
    objects = {
        pages_number: f"<< /Type /Pages /Kids [{first_page} 0 R {page} 0 R] /Count 2 >>".encode(),
        page: f"<< /Type /Page /Parent {pages_number} 0 R /MediaBox [{box}] /Contents {content} 0 R >>".encode(),
        content: f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"endstream",
    }
    update = bytearray(b"\n")
    offsets = {}
    for number, body in objects.items():
        offsets[number] = len(data) + len(update)
        update += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    table = len(data) + len(update)
    update += b"xref\n0 1\n0000000000 65535 f \n"
    for number in sorted(offsets):
        update += f"{number} 1\n{offsets[number]:010d} 00000 n \n".encode()
    update += (
        f"trailer\n<< /Size {content + 1} /Root {root} 0 R /Prev {previous} >>\n"
        f"startxref\n{table}\n%%EOF\n"
    ).encode()
    return data + bytes(update)


def with_crop_box(data: bytes, crop_box: Box) -> bytes:
    """``data`` with its first page's /CropBox set to ``crop_box``, in points (y up: its top is the lower edge)."""
    edges = (crop_box.left, crop_box.top, crop_box.right, crop_box.bottom)
    with pikepdf.open(io.BytesIO(data)) as pdf:
        # PDF writes a rectangle as [left bottom right top], which is these edges in this order.
        pdf.pages[0].obj.CropBox = pikepdf.Array(edges)
        return save(pdf)
