"""Specifications of ocrwatch.documents.tiff: multi-page TIFFs read one page at a time."""

from __future__ import annotations

import io
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from ocrwatch.documents.tiff import TiffDocument, tiff_pages, verify_tiff
from ocrwatch.errors import ImageError
from ocrwatch.imaging.containers import tiff_directories
from tests.support import tiffs
from tests.support.render import page
from tests.support.tiffs import Page

MAX_PIXELS = 150_000_000
INK, PAPER = 0, 255


def pillow_allocations() -> int:
    """How many pixel buffers Pillow has created so far in this process."""
    return int(Image.core.get_stats()["new_count"])  # type: ignore[attr-defined]


def entry(data: bytes | bytearray, directory: int, tag: int) -> int:
    """Where the 12-byte entry of ``tag`` starts in the little-endian directory at ``directory``."""
    (count,) = struct.unpack_from("<H", data, directory)
    for position in range(directory + 2, directory + 2 + 12 * count, 12):
        if tag == struct.unpack_from("<H", data, position)[0]:
            return position
    raise AssertionError(f"no tag {tag}")


def text_page() -> Image.Image:
    """A bilevel 400x120 page reading 'Invoice 2024-17'."""
    image, _ = page(["Invoice 2024-17"], size=(400, 120), font_size=36)
    return image.convert("1")


def mixed_document() -> bytes:
    """Four pages as a document feeder mixes them: G4 text, LZW grey, JPEG colour, raw colour."""
    return multipage(
        (text_page(), {"compression": "group4", "dpi": (200, 200)}),
        (Image.new("L", (300, 200), 77), {"compression": "tiff_lzw", "dpi": (300, 300)}),
        (Image.new("RGB", (250, 150), (10, 120, 230)), {"compression": "jpeg", "dpi": (150, 150)}),
        (Image.new("RGB", (90, 60), (200, 20, 30)), {"compression": "raw", "dpi": (72, 72)}),
    )


def tiny_pages(count: int) -> bytes:
    """A little-endian TIFF of ``count`` 1x1 white pages, 114 bytes of directory each, one shared strip.

    Built by hand, as a page-count bomb is: Pillow writes about a page a
    millisecond, too slow for tens of thousands.
    """
    entries = [
        (256, 3, 1),  # width
        (257, 3, 1),  # height
        (258, 3, 8),  # bits per sample
        (259, 3, 1),  # no compression
        (262, 3, 1),  # black is zero
        (273, 4, None),  # strip offset: the shared byte
        (277, 3, 1),  # samples per pixel
        (278, 3, 1),  # rows per strip
        (279, 4, 1),  # strip byte count
    ]
    size = 2 + 12 * len(entries) + 4
    strip = 8 + count * size
    directory = bytearray(struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        directory += struct.pack("<HHII", tag, kind, 1, strip if value is None else value)
    chain = [bytes(directory) + struct.pack("<I", 8 + (index + 1) * size) for index in range(count)]
    chain[-1] = bytes(directory) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + b"".join(chain) + b"\xff"


def facts(
    document: TiffDocument,
) -> list[tuple[int, int, int, str, str, tuple[float, float] | None]]:
    return [
        (p.index, p.info.width, p.info.height, p.info.mode, p.compression, p.dpi)
        for p in document.pages
    ]


# --------------------------------------------------------------------------
# Pages from their directories


def test_every_page_is_described_from_its_directory_without_decoding_pixels() -> None:
    """Page count, size, mode, compression and dpi of each page come from the directories alone."""
    data = mixed_document()
    before = pillow_allocations()

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        described = facts(document)

    assert [
        (0, 400, 120, "1", "group4", (200.0, 200.0)),
        (1, 300, 200, "L", "tiff_lzw", (300.0, 300.0)),
        (2, 250, 150, "RGB", "jpeg", (150.0, 150.0)),
        (3, 90, 60, "RGB", "raw", (72.0, 72.0)),
    ] == described
    assert before == pillow_allocations()


def test_resolution_is_read_per_page_in_inches_centimetres_or_not_at_all() -> None:
    """dpi follows each page's tags: inches as they are, centimetres converted, None without a unit or tags."""
    grey = Image.new("L", (8, 8), PAPER)
    data = multipage(
        (grey, {}),
        (grey.copy(), {"dpi": (300, 150)}),
        (grey.copy(), {"resolution_unit": 3, "x_resolution": 118.11, "y_resolution": 118.11}),
        (grey.copy(), {"resolution_unit": 1, "x_resolution": 1, "y_resolution": 1}),
    )

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        resolutions = [p.dpi for p in document.pages]

    assert [None, (300.0, 150.0), (300.0, 300.0), None] == resolutions


# --------------------------------------------------------------------------
# Decoding one page


def test_each_page_decodes_to_the_arrays_an_image_would() -> None:
    """Bilevel and grey pages give HxW grey, colour pages HxWx3 BGR: uint8, C-contiguous, writeable."""
    with tiff_pages(mixed_document(), max_pixels=MAX_PIXELS) as document:
        decoded = [document.decode(index) for index in range(len(document.pages))]

    assert [(120, 400), (200, 300), (150, 250, 3), (60, 90, 3)] == [d.pixels.shape for d in decoded]
    assert [("uint8", True, True)] * 4 == [
        (str(d.pixels.dtype), d.pixels.flags.c_contiguous, d.pixels.flags.writeable)
        for d in decoded
    ]
    assert [[INK, PAPER], [77], [[230, 120, 10]], [[30, 20, 200]]] == [
        np.unique(decoded[0].pixels).tolist(),
        np.unique(decoded[1].pixels).tolist(),
        np.unique(decoded[2].pixels.reshape(-1, 3), axis=0).tolist(),
        np.unique(decoded[3].pixels.reshape(-1, 3), axis=0).tolist(),
    ]
    assert [("TIFF", 4)] * 4 == [(d.info.format, d.info.frames) for d in decoded]


def test_a_g4_text_page_decodes_to_exactly_its_ink() -> None:
    """A bilevel page read back from G4 has ink (0) and paper (255) exactly where they were drawn."""
    text = text_page()
    data = multipage((Image.new("L", (10, 10), PAPER), {}), (text, {"compression": "group4"}))

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        pixels = document.decode(1).pixels

    assert np.asarray(text.convert("L")).tolist() == pixels.tolist()


def test_pages_decoded_earlier_keep_their_pixels() -> None:
    """Decoding the next page of the same size does not touch the array of the one before."""
    data = multipage(*[(Image.new("L", (40, 30), value), {}) for value in (10, 20, 30)])

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        arrays = [document.decode(index).pixels for index in (0, 1, 2, 0)]

    assert [[10], [20], [30], [10]] == [np.unique(pixels).tolist() for pixels in arrays]


def test_a_page_with_an_orientation_tag_comes_out_upright() -> None:
    """A page stored turned, with orientation 6, decodes as a viewer shows it, turned once only."""
    upright = np.full((64, 96), PAPER, np.uint8)
    upright[0:16, 0:16] = INK
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # 64 wide, 96 high
    turned = Image.Exif()
    turned[0x0112] = 6
    data = multipage((Image.new("L", (10, 10), PAPER), {}), (stored, {"exif": turned}))

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        info = document.pages[1].info
        pixels = document.decode(1).pixels

    assert (64, 96, 6, (96, 64)) == (info.width, info.height, info.orientation, info.upright_size)
    assert upright.tolist() == pixels.tolist()


def test_16_bit_and_cmyk_pages_are_brought_to_8_bit_as_images_are() -> None:
    """A 16-bit ramp becomes the 8-bit ramp and a CMYK cyan page becomes BGR cyan."""
    ramp = np.tile(np.arange(256, dtype=np.uint16) * 257, (4, 1))  # 0, 257, ... 65535
    data = multipage(
        (Image.fromarray(ramp), {}),
        (Image.new("CMYK", (6, 4), (255, 0, 0, 0)), {}),
    )

    with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
        grey, cyan = document.decode(0), document.decode(1)

    assert [list(range(256))] * 4 == grey.pixels.tolist()
    assert (16, "CMYK") == (grey.info.bits, cyan.info.mode)
    assert [[255, 255, 0]] == np.unique(cyan.pixels.reshape(-1, 3), axis=0).tolist()


def test_two_hundred_pages_are_read_one_at_a_time() -> None:
    """200 pages decode in turn, each its own, with memory for a few pages rather than 200."""
    width, height, count = 320, 240, 200
    pages: list[Page] = [(Image.new("L", (width, height), index), {}) for index in range(count)]
    data = multipage((pages[0][0], {"compression": "tiff_lzw"}), *pages[1:])

    tracemalloc.start()
    try:
        with tiff_pages(data, max_pixels=MAX_PIXELS) as document:
            start, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            values = [int(document.decode(index).pixels.mean()) for index in range(count)]
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert list(range(count)) == values
    assert peak - start < 10 * width * height  # all 200 pages would be 200 times that


# --------------------------------------------------------------------------
# Completeness: cut off, corrupt, too large


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("inside the header", "TIFF data ends early (truncated at 6 bytes)"),
        ("inside page 2's strip", "TIFF data ends early (truncated at {cut} bytes)"),
        ("inside page 3's directory", "TIFF data ends early (truncated at {cut} bytes)"),
        ("inside page 4's values", "page 4 of 4: TIFF data ends early (truncated at {cut} bytes)"),
        ("inside page 4's strip", "page 4 of 4: TIFF data ends early (truncated at {cut} bytes)"),
        ("at page 4's last byte", "page 4 of 4: TIFF data ends early (truncated at {cut} bytes)"),
    ],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on cut TIFFs
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
def test_a_file_cut_off_in_any_page_is_incomplete(where: str, expected: str) -> None:
    """A multi-page TIFF cut short anywhere is half-written (retry later), never a shorter document."""
    data = mixed_document()
    directories = tiff_directories(data)
    assert directories is not None and 4 == len(directories)
    cut = {
        "inside the header": 6,
        "inside page 2's strip": sum(tiffs.strip(data, 1)) // 2,
        "inside page 3's directory": directories[2] + 20,
        # Bits per sample of an RGB page, (8, 8, 8), are stored outside the directory.
        "inside page 4's values": struct.unpack_from(
            "<I", data, entry(data, directories[3], 258) + 8
        )[0]
        + 2,
        "inside page 4's strip": sum(tiffs.strip(data, 3)) // 2,
        "at page 4's last byte": tiffs.strip(data, 3)[1] - 1,
    }[where]

    with pytest.raises(ImageError) as caught:
        verify_tiff(data[:cut], max_pixels=MAX_PIXELS)

    assert ("incomplete", expected.format(cut=cut)) == (
        caught.value.classification,
        str(caught.value),
    )


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on cut TIFFs
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
def test_every_cut_of_a_small_document_is_incomplete() -> None:
    """Cut at any byte, a four-page G4, LZW, JPEG and raw TIFF is half-written, never complete or broken."""
    data = multipage(
        (Image.new("1", (64, 16), 1), {"compression": "group4", "dpi": (200, 200)}),
        (Image.new("L", (24, 16), 77), {"compression": "tiff_lzw"}),
        (Image.new("RGB", (16, 16), (10, 120, 230)), {"compression": "jpeg"}),
        (Image.new("RGB", (8, 4), (200, 20, 30)), {"compression": "raw"}),
    )
    classifications = set()
    for cut in range(len(data)):
        with pytest.raises(ImageError) as caught:
            verify_tiff(data[:cut], max_pixels=MAX_PIXELS)
        classifications.add(caught.value.classification)

    assert (1232, {"incomplete"}) == (len(data), classifications)
    assert 4 == len(verify_tiff(data, max_pixels=MAX_PIXELS))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on cut TIFFs
@pytest.mark.filterwarnings("ignore:Truncated File Read:UserWarning")
def test_pages_before_the_cut_still_decode() -> None:
    """With the last page cut off, the pages before it decode; only the whole file is incomplete."""
    data = mixed_document()
    cut = data[: sum(tiffs.strip(data, 3)) // 2]

    with tiff_pages(cut, max_pixels=MAX_PIXELS) as document:
        shapes = [document.decode(index).pixels.shape for index in range(3)]
        with pytest.raises(ImageError) as caught:
            document.decode(3)

    assert [(120, 400), (200, 300), (150, 250, 3)] == shapes
    assert "incomplete" == caught.value.classification


def test_a_corrupt_middle_page_is_bad_input_naming_the_page() -> None:
    """Garbage in page 2's LZW strip fails for good, naming page 2; pages 1 and 3 still decode."""
    noise = np.random.default_rng(11).integers(0, 256, (30, 40), dtype=np.uint8)
    data = bytearray(
        multipage(*[(Image.fromarray(noise), {"compression": "tiff_lzw"}) for _ in range(3)])
    )
    start, end = tiffs.strip(bytes(data), 1)
    data[start:end] = np.random.default_rng(12).integers(0, 256, end - start, np.uint8).tobytes()

    with pytest.raises(ImageError) as caught:
        verify_tiff(bytes(data), max_pixels=MAX_PIXELS)
    with tiff_pages(bytes(data), max_pixels=MAX_PIXELS) as document:
        others = [document.decode(index).pixels.tolist() for index in (0, 2)]

    assert ("bad_input", "page 2 of 3: TIFF data is corrupt (decoder error -2)") == (
        caught.value.classification,
        str(caught.value),
    )
    assert [noise.tolist()] * 2 == others


def test_a_page_with_an_unknown_compression_is_refused_naming_it() -> None:
    """A directory naming a compression Pillow does not know is bad input, found before decoding."""
    data = bytearray(multipage(*[(Image.new("L", (8, 8), PAPER), {}) for _ in range(3)]))
    directories = tiff_directories(bytes(data))
    assert directories is not None
    struct.pack_into("<H", data, entry(data, directories[1], 259) + 8, 12345)  # compression

    with pytest.raises(ImageError) as caught:
        tiff_pages(bytes(data), max_pixels=MAX_PIXELS)

    assert ("bad_input", "page 2 of 3: TIFF compression 12345 is not supported") == (
        caught.value.classification,
        str(caught.value),
    )


def test_a_page_above_max_pixels_is_refused_before_any_page_is_decoded() -> None:
    """Each page's header is checked against max_pixels; the offending page is named, nothing decoded."""
    data = multipage(
        (Image.new("L", (100, 100), PAPER), {}),
        (Image.new("L", (3000, 2000), PAPER), {"compression": "tiff_lzw"}),
        (Image.new("L", (100, 100), PAPER), {}),
    )
    before = pillow_allocations()

    with pytest.raises(ImageError) as caught:
        tiff_pages(data, max_pixels=1_000_000)

    assert (
        "bad_input",
        "page 2 of 3: image is 3000x2000 = 6.0 megapixels, above the limit of 1.0 megapixels "
        "(max_pixels)",
    ) == (caught.value.classification, str(caught.value))
    assert before == pillow_allocations()


# --------------------------------------------------------------------------
# Page counts


def test_hand_built_tiny_pages_are_real_pages() -> None:
    """The page-count bomb below is made of valid pages: three of them read as three white pixels."""
    with tiff_pages(tiny_pages(3), max_pixels=MAX_PIXELS) as document:
        pixels = [document.decode(index).pixels.tolist() for index in range(3)]

    assert [[[PAPER]]] * 3 == pixels


def test_a_page_count_bomb_is_refused_before_any_page_is_read() -> None:
    """50,000 tiny pages are refused as over max_pages, without Pillow allocating a pixel."""
    data = tiny_pages(50_000)
    before = pillow_allocations()

    with pytest.raises(ImageError) as caught:
        tiff_pages(data, max_pixels=MAX_PIXELS)

    assert ("bad_input", "TIFF has more pages than the limit of 500 (max_pages)") == (
        caught.value.classification,
        str(caught.value),
    )
    assert before == pillow_allocations()


def test_directories_past_the_limit_are_never_walked() -> None:
    """A bomb cut off at its 600th directory is still refused for its page count, not waited for."""
    data = tiny_pages(50_000)
    directories = tiff_directories(data, limit=600)
    assert directories is not None

    with pytest.raises(ImageError) as caught:
        tiff_pages(data[: directories[-1] + 1], max_pixels=MAX_PIXELS)

    assert ("bad_input", "TIFF has more pages than the limit of 500 (max_pages)") == (
        caught.value.classification,
        str(caught.value),
    )


def test_max_pages_itself_is_allowed() -> None:
    """A file of exactly max_pages pages opens; one more page is refused."""
    with tiff_pages(tiny_pages(3), max_pixels=MAX_PIXELS, max_pages=3) as document:
        count = len(document.pages)
    with pytest.raises(ImageError) as caught:
        tiff_pages(tiny_pages(4), max_pixels=MAX_PIXELS, max_pages=3)

    assert 3 == count
    assert "TIFF has more pages than the limit of 3 (max_pages)" == str(caught.value)


# --------------------------------------------------------------------------
# Not a TIFF


def test_other_bytes_are_not_a_tiff() -> None:
    """A PNG is refused for good, quoting its first bytes; empty or a cut signature is incomplete."""
    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, "PNG")
    outcomes = []
    for data in (png.getvalue(), b"", b"II*"):
        with pytest.raises(ImageError) as caught:
            tiff_pages(data, max_pixels=MAX_PIXELS)
        outcomes.append((caught.value.classification, str(caught.value)))

    assert [
        ("bad_input", "not a TIFF (starts with b'\\x89PNG\\r\\n\\x1a\\n')"),
        ("incomplete", "file is empty (0 bytes)"),
        ("incomplete", "TIFF data ends early (truncated at 3 bytes)"),
    ] == outcomes


def multipage(*pages: Page) -> bytes:
    """A TIFF of ``pages``, each written with its own save parameters (compression, dpi, exif...)."""
    return tiffs.multipage(pages)
