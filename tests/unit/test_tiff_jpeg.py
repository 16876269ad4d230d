"""JPEG-compressed TIFF pages reach the searchable PDF as their own JPEG data, strips joined.

TIFFs come from Pillow (libtiff's JPEG encoder: RGB, grey and YCbCr, in
many strips) and from a small writer here that stores Pillow JPEGs as strips
(4:2:0 subsampling, strips that are not whole MCU rows). The PDF's image is
read back with pikepdf, decoded by Pillow and rendered by PDFium.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pikepdf
import pypdfium2
import pytest
from PIL import Image, ImageDraw, TiffImagePlugin

from ocrwatch.outputs.model import document_of
from ocrwatch.outputs.searchable import SearchablePdfOptions, write_searchable_pdf
from ocrwatch.outputs.tiffjpeg import joined_jpeg
from ocrwatch.pipeline import process_file
from ocrwatch.sidecar import SidecarPaths
from tests.support import render, tiffs
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for

DPI = 300
SIZE = (1240, 880)
STRIP_BYTES = 40_000
"""Small strips, so every colour page has many (Pillow writes 300 dpi A4 in ~147)."""
SHOWN = 3.0
"""Mean grey levels PDFium's rendering may differ from the page as Pillow decodes it."""
SIZE_RATIO = (0.95, 1.1)
"""The PDF's size over the TIFF's: the same JPEG data, plus a text layer."""


def scan(mode: str) -> Image.Image:
    """A text page on a coloured gradient, as a scanner would send it, in ``mode``."""
    image, _ = render.page(["Invoice 4711 for services", "payable in thirty days"], size=SIZE)
    ramp = np.linspace(0, 90, SIZE[0], dtype=np.float64)[None, :, None]
    tint = np.asarray(image, dtype=np.float64) - ramp * np.array([0.2, 0.6, 1.0])
    coloured = Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8), "RGB")
    ImageDraw.Draw(coloured).ellipse((800, 500, 1100, 820), fill=(200, 40, 60))
    return coloured.convert(mode)


def searchable(tmp_path: Path, data: bytes) -> Path:
    """``data`` as ``scan.tif`` read by the pipeline (fake engine), then written as a searchable PDF."""
    plan = plan_for(tmp_path)
    source = plan.inboxes[0].path / "scan.tif"
    source.write_bytes(data)
    process_file(source, plan.inboxes[0], FakeEngine())
    document = document_of(json.loads(SidecarPaths.of(source).result.read_text()))
    target = tmp_path / "out.pdf"
    with source.open("rb") as original:
        write_searchable_pdf(document, original, target, SearchablePdfOptions())
    return target


def page_images(path: Path) -> list[tuple[str, bytes]]:
    """Each page's one image: its filter and its stream bytes as stored."""
    with pikepdf.open(path) as pdf:
        found = []
        for page in pdf.pages:
            (image,) = [x for x in page.obj.Resources.XObject.values() if x.Subtype == "/Image"]
            found.append((str(image.get("/Filter")), bytes(image.read_raw_bytes())))
        return found


def tiff_frames(data: bytes) -> list[Image.Image]:
    """Each frame of a TIFF as Pillow decodes it."""
    frames = []
    with Image.open(io.BytesIO(data)) as image:
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(image.copy())
    return frames


def shown(path: Path, index: int) -> np.ndarray:
    """Page ``index`` as PDFium renders it at the scan's resolution, grey."""
    document = pypdfium2.PdfDocument(str(path))
    try:
        bitmap = document[index].render(scale=DPI / 72, grayscale=True).to_pil().convert("L")
    finally:
        document.close()
    return np.asarray(bitmap, dtype=np.int16)[: SIZE[1], : SIZE[0]]


def strips_of(data: bytes, index: int = 0) -> int:
    with TiffImagePlugin.TiffImageFile(io.BytesIO(data)) as image:
        image.seek(index)
        return len(image.tag_v2[tiffs.STRIP_OFFSETS])


def test_jpeg_tiff_pages_become_their_own_jpeg_data_and_show_the_same_pixels(tmp_path) -> None:
    """RGB, grey and YCbCr JPEG pages in many strips: one DCTDecode image each, pixel for pixel."""
    options = {"compression": "jpeg", "strip_size": STRIP_BYTES, "dpi": (DPI, DPI)}
    pages = [(scan(mode), options) for mode in ("RGB", "L", "YCbCr")]
    data = tiffs.multipage(pages)
    assert all(strips_of(data, index) > 4 for index in range(3))

    target = searchable(tmp_path, data)

    images = page_images(target)
    assert ["/DCTDecode"] * 3 == [kind for kind, _ in images]
    for index, ((_, jpeg), frame) in enumerate(zip(images, tiff_frames(data), strict=True)):
        with Image.open(io.BytesIO(jpeg)) as decoded:
            assert (frame.mode, frame.size) == (decoded.mode, decoded.size)
            assert np.array_equal(np.asarray(frame), np.asarray(decoded))
        grey = np.asarray(frame.convert("L"), dtype=np.int16)
        assert np.abs(shown(target, index) - grey).mean() < SHOWN
    low, high = SIZE_RATIO
    assert low < target.stat().st_size / len(data) < high


def test_a_jpeg_tiff_page_in_one_strip_becomes_one_jpeg(tmp_path) -> None:
    """One strip with its tables kept apart (JPEGTables) still makes a whole JPEG, as DCTDecode."""
    image = scan("L")
    data = tiffs.multipage([(image, {"compression": "jpeg", "strip_size": tiffs.ONE_STRIP})])
    assert 1 == strips_of(data)

    [(kind, jpeg)] = page_images(searchable(tmp_path, data))

    assert "/DCTDecode" == kind
    with Image.open(io.BytesIO(jpeg)) as decoded:
        assert np.array_equal(np.asarray(tiff_frames(data)[0]), np.asarray(decoded))


def test_rgb_and_ycbcr_pages_say_which_they_are_in_the_jpeg_and_in_the_pdf(tmp_path) -> None:
    """Adobe's APP14 transform and /ColorTransform agree: 0 for an RGB page, 1 for a YCbCr one."""
    options = {"compression": "jpeg", "strip_size": STRIP_BYTES}
    data = tiffs.multipage([(scan(mode), options) for mode in ("RGB", "YCbCr")])

    with pikepdf.open(searchable(tmp_path, data)) as pdf:
        said = []
        for page in pdf.pages:
            (image,) = [x for x in page.Resources.XObject.values() if x.Subtype == "/Image"]
            jpeg = bytes(image.read_raw_bytes())
            adobe = jpeg[2:18]
            assert adobe.startswith(b"\xff\xee\x00\x0eAdobe")
            said.append((adobe[-1], int(image.DecodeParms.ColorTransform)))

    assert [(0, 0), (1, 1)] == said


def joined_of(data: bytes) -> bytes | None:
    buffer = io.BytesIO(data)
    with TiffImagePlugin.TiffImageFile(buffer) as image:
        joined = joined_jpeg(image, buffer)
        return None if joined is None else joined.data


def test_a_dropped_restart_marker_breaks_the_joined_pixels() -> None:
    """The restart markers between strips carry the join: without one the pixels are not the page's."""
    data = tiffs.multipage([(scan("RGB"), {"compression": "jpeg", "strip_size": STRIP_BYTES})])
    joined = joined_of(data)
    assert joined is not None
    marker = joined.index(b"\xff\xd1")  # between the second and third strips
    broken = joined[:marker] + joined[marker + 2 :]

    try:
        with Image.open(io.BytesIO(broken)) as decoded:
            decoded.load()
            same = np.array_equal(np.asarray(decoded), np.asarray(tiff_frames(data)[0]))
    except OSError:
        same = False
    assert not same


# --- TIFFs whose strips are whole JPEGs of Pillow's, written here -------------------------


def strip_tiff(
    image: Image.Image, rows: int, subsampling: tuple[int, int], **jpeg_options: int
) -> bytes:
    """A one-page YCbCr TIFF whose strips of ``rows`` are each a complete Pillow JPEG."""
    chroma = {(1, 1): 0, (2, 1): 1, (2, 2): 2}[subsampling]
    strips = []
    for top in range(0, image.height, rows):
        band = image.crop((0, top, image.width, min(top + rows, image.height)))
        buffer = io.BytesIO()
        band.save(buffer, "JPEG", quality=90, subsampling=chroma, **jpeg_options)
        strips.append(buffer.getvalue())
    count = len(strips)
    offsets_at = 8
    counts_at = offsets_at + 4 * count
    bits_at = counts_at + 4 * count
    data_at = bits_at + 6
    offsets, position = [], data_at
    for strip in strips:
        offsets.append(position)
        position += len(strip)
    entries = [
        (256, 4, 1, struct.pack("<I", image.width)),
        (257, 4, 1, struct.pack("<I", image.height)),
        (258, 3, 3, struct.pack("<I", bits_at)),
        (259, 3, 1, struct.pack("<HH", 7, 0)),
        (262, 3, 1, struct.pack("<HH", 6, 0)),
        (273, 4, count, struct.pack("<I", offsets_at)),
        (277, 3, 1, struct.pack("<HH", 3, 0)),
        (278, 4, 1, struct.pack("<I", rows)),
        (279, 4, count, struct.pack("<I", counts_at)),
        (284, 3, 1, struct.pack("<HH", 1, 0)),
        (530, 3, 2, struct.pack("<HH", *subsampling)),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in entries)
    ifd += struct.pack("<I", 0)
    head = b"II*\x00" + struct.pack("<I", position)
    body = struct.pack(f"<{count}I", *offsets) + struct.pack(f"<{count}I", *map(len, strips))
    return head + body + struct.pack("<3H", 8, 8, 8) + b"".join(strips) + ifd


@pytest.mark.parametrize(
    ("rows", "subsampling", "expected"),
    [
        (64, (1, 1), "/DCTDecode"),
        (32, (2, 1), "/DCTDecode"),
        (16, (2, 2), "/DCTDecode"),
        (12, (1, 1), "/FlateDecode"),  # 12 rows: one and a half MCU rows a strip
        (24, (2, 2), "/FlateDecode"),  # 24 rows: one and a half 16-row MCU rows
    ],
)
def test_strips_that_are_whole_jpegs_are_joined_only_when_they_end_on_mcu_rows(
    tmp_path, rows, subsampling, expected
) -> None:
    """Strips with their own tables join; cut mid-MCU they are decoded instead; both show the page.

    With chroma sampled down the page (4:2:0) the joined image interpolates it across strip
    edges and libtiff does not: the row either side of an edge may differ, no other.
    """
    data = strip_tiff(scan("RGB"), rows, subsampling)
    frame = np.asarray(tiff_frames(data)[0].convert("RGB"), np.int16)

    target = searchable(tmp_path, data)

    assert expected == page_images(target)[0][0]
    assert_shows(target, frame, rows if subsampling[1] > 1 else 0)


def test_strips_with_restart_markers_of_their_own_are_decoded_instead(tmp_path) -> None:
    """Restart markers inside strips leave no room for the join's own: the page is Flate, exact."""
    data = strip_tiff(scan("RGB"), 64, (1, 1), restart_marker_rows=2)
    assert b"\xff\xd0" in data
    frame = np.asarray(tiff_frames(data)[0].convert("RGB"), np.int16)

    target = searchable(tmp_path, data)

    assert "/FlateDecode" == page_images(target)[0][0]
    assert_shows(target, frame, 0)


def assert_shows(target: Path, frame: np.ndarray, edge_rows: int) -> None:
    """The PDF's image decodes to ``frame`` (bar the rows around every ``edge_rows``th), PDFium shows it."""
    with pikepdf.open(target) as pdf:
        (image,) = [x for x in pdf.pages[0].Resources.XObject.values() if x.Subtype == "/Image"]
        assert isinstance(image, pikepdf.Stream)
        pixels = np.asarray(pikepdf.PdfImage(image).as_pil_image().convert("RGB"), np.int16)
    steps = range(edge_rows, SIZE[1], edge_rows) if edge_rows else range(0)
    edges = [row for edge in steps for row in (edge - 1, edge)]
    away = np.delete(np.abs(pixels - frame), edges, axis=0)
    assert 0 == away.max()
    grey = np.asarray(Image.fromarray(frame.astype(np.uint8)).convert("L"), np.int16)
    assert np.abs(shown(target, 0) - grey).mean() < SHOWN
