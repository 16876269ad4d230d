"""Specifications of ocrwatch.imaging: bytes to upright pixels, pixels to an upload that fits."""

from __future__ import annotations

import io
import math
import struct
import tracemalloc
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import GifImagePlugin, Image, ImageOps

from ocrwatch import imaging
from ocrwatch.errors import ImageError
from ocrwatch.imaging.containers import MAX_COUNTED_FRAMES
from ocrwatch.imaging.frames import gif_frames

MAX_PIXELS = 150_000_000
FREE_TIER = 1_048_576
A4_300_DPI = (2480, 3508)

# Pillow's transpose that turns an upright picture into what a camera stores
# under each EXIF orientation (the inverse of what a viewer applies).
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def encoded(image: Image.Image, format_name: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **params)
    return buffer.getvalue()


def upright_marker() -> Image.Image:
    """A 96x64 white picture with two black squares that no flip or turn maps onto itself."""
    pixels = np.full((64, 96), 255, np.uint8)
    pixels[0:16, 0:16] = 0
    pixels[16:32, 32:48] = 0
    return Image.fromarray(pixels)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def tiny_pages_tiff(pages: int, *, value: int) -> bytes:
    """A little-endian TIFF of ``pages`` directories, each a 1x1 grey page sharing one pixel."""
    entries = [  # (tag, type, value): ImageWidth, ImageLength, BitsPerSample, Compression,
        # PhotometricInterpretation, StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts
        (256, 3, 1),
        (257, 3, 1),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),
        (277, 3, 1),
        (278, 3, 1),
        (279, 4, 1),
    ]
    directory_size = 2 + 12 * len(entries) + 4
    pixel_at = 8 + pages * directory_size
    directories = []
    for index in range(pages):
        next_at = 8 + (index + 1) * directory_size if index + 1 < pages else 0
        fields = b"".join(
            struct.pack("<HHII", tag, kind, 1, pixel_at if tag == 273 else field)
            for tag, kind, field in entries
        )
        directories.append(struct.pack("<H", len(entries)) + fields + struct.pack("<I", next_at))
    return b"II*\x00" + struct.pack("<I", 8) + b"".join(directories) + bytes([value])


GIF_TINY_HEADER = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x50\x50\x50\xff\xff\xff"
"""A 1x1 GIF89a screen with a two-colour global table: grey 80 at index 0, white at 1."""
GIF_TINY_FRAME = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02" + b"\x02\x44\x01" + b"\x00"
"""A 1x1 image descriptor and its LZW data (clear, index 0, end) in one sub-block."""


def tiny_frames_gif(frames: int, *, between: bytes = b"") -> bytes:
    """A GIF of ``frames`` 1x1 frames written block by block, ``between`` before each later one."""
    return GIF_TINY_HEADER + GIF_TINY_FRAME + (between + GIF_TINY_FRAME) * (frames - 1) + b";"


GREY_PALETTE = bytes(value for value in range(256) for _channel in range(3))
"""A 256-level grey palette, to save every frame of a GIF against one global colour table."""


def pillow_gif(count: int, **params: Any) -> bytes:
    """An animated GIF of ``count`` distinct 8x4 grey frames, saved by Pillow with ``params``."""
    frames = [Image.new("L", (8, 4), 7 * index) for index in range(count)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], **params)


def without_adobe_segment(jpeg: bytes) -> bytes:
    """The JPEG with its APP14 'Adobe' segment removed."""
    position = 2
    while jpeg[position + 1] != 0xDA:
        length = struct.unpack_from(">H", jpeg, position + 2)[0]
        if jpeg[position + 1] == 0xEE:
            return jpeg[:position] + jpeg[position + 2 + length :]
        position += 2 + length
    raise AssertionError("no Adobe segment")


def pillow_allocations() -> int:
    """How many pixel buffers Pillow has created so far in this process."""
    # Pillow asks callers to use Image.core rather than import PIL._imaging, but
    # PIL.Image does not re-export the name, so its inline types hide it.
    return int(Image.core.get_stats()["new_count"])  # type: ignore[attr-defined]


def scan_page(*, logo: bool, photo: bool, seed: int = 7) -> np.ndarray:
    """A 300-dpi A4 BGR page: text lines, optional colour logo and photo, sensor noise, JPEG'd once."""
    width, height = A4_300_DPI
    page = np.full((height, width, 3), 246, np.uint8)
    for row, y in enumerate(range(300, height - 300, 64)):
        text = f"{row:02d} The quick brown fox jumps over the lazy dog, 0123456789 times."
        cv2.putText(
            page, text, (180, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (30, 30, 30), 3, cv2.LINE_AA
        )
    if logo:
        cv2.circle(page, (2150, 200), 110, (40, 40, 210), -1)
        cv2.rectangle(page, (2000, 150), (2120, 330), (200, 90, 30), -1)
    rng = np.random.default_rng(seed)
    if photo:
        ys, xs = np.mgrid[0:900, 0:1200].astype(np.float32) / 150
        picture = np.dstack([np.sin(xs + ys), np.sin(2 * ys), np.cos(xs - ys)]) * 100 + 128
        page[1200:2100, 1100:2300] = picture.astype(np.uint8)
    # Independent noise per channel, as a colour scanner makes it; tiled to stay fast.
    tile = rng.normal(0, 5, (256, 256, 3)).astype(np.int16)
    noise = np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]
    page = np.clip(page.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


@pytest.fixture(scope="module")
def colour_scan() -> np.ndarray:
    return scan_page(logo=True, photo=False)


@pytest.fixture(scope="module")
def grey_scan() -> np.ndarray:
    return scan_page(logo=False, photo=False)


@pytest.fixture(scope="module")
def photo_scan() -> np.ndarray:
    return scan_page(logo=False, photo=True)


# --------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize("format_name", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_to_the_same_upright_pixels(
    format_name: str, orientation: int
) -> None:
    """Whatever the EXIF orientation, the pixels come out as a viewer shows the picture."""
    upright = upright_marker()
    stored = upright if orientation == 1 else upright.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(
        stored,
        format_name,
        exif=exif.tobytes(),
        **({"quality": 95} if format_name == "JPEG" else {}),
    )
    viewer = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert (upright.width, upright.height) == viewer.size  # the fixture agrees with Pillow

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    expected = np.asarray(upright) > 127
    assert expected.tolist() == (decoded.pixels > 127).tolist()
    assert orientation == decoded.info.orientation
    assert (upright.width, upright.height) == decoded.info.upright_size


def test_a_png_exif_chunk_after_the_pixels_is_seen_by_probe() -> None:
    """An eXIf chunk placed after IDAT still sets the orientation, without decoding."""
    data = encoded(upright_marker(), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    iend = data.rindex(b"IEND") - 4
    moved = data[:iend] + png_chunk(b"eXIf", exif.tobytes()[6:]) + data[iend:]
    before = pillow_allocations()

    info = imaging.probe(moved, max_pixels=MAX_PIXELS)

    assert 6 == info.orientation
    assert before == pillow_allocations()


@pytest.mark.parametrize("compression", ["raw", "tiff_lzw"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_tiff_orientation_is_applied_once(compression: str, orientation: int) -> None:
    """A TIFF with an orientation tag comes out as a viewer shows it, turned once, with its stored size."""
    upright = upright_marker()
    stored = upright if orientation == 1 else upright.transpose(STORED_AS[orientation])
    data = encoded(stored, "TIFF", compression=compression, tiffinfo={0x0112: orientation})

    info = imaging.probe(data, max_pixels=MAX_PIXELS)
    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    expected = (stored.width, stored.height, orientation, (upright.width, upright.height))
    assert expected == (info.width, info.height, info.orientation, info.upright_size)
    assert expected == (
        decoded.info.width,
        decoded.info.height,
        decoded.info.orientation,
        decoded.info.upright_size,
    )
    assert (np.asarray(upright) > 127).tolist() == (decoded.pixels > 127).tolist()


# --------------------------------------------------------------------------
# Modes


@pytest.mark.parametrize("format_name", ["PNG", "TIFF"])
def test_16_bit_grey_full_range_maps_to_full_8_bit_range(format_name: str) -> None:
    """A 16-bit ramp over 0..65535 becomes a ramp over 0..255, scaled rather than clipped."""
    ramp = np.tile(np.arange(256, dtype=np.uint16) * 257, (4, 1))  # 0, 257, ... 65535
    data = encoded(Image.fromarray(ramp), format_name)

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert [list(range(256))] * 4 == decoded.pixels.tolist()
    assert 16 == decoded.info.bits


def test_16_bit_colour_png_keeps_its_full_range_and_is_not_plain() -> None:
    """A 16-bit RGB PNG decodes to full-range 8-bit BGR and is not sent as-is."""
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(1, 256)
    bgr = np.dstack([ramp, np.zeros_like(ramp), 65535 - ramp])
    ok, png = cv2.imencode(".png", bgr)
    assert ok

    decoded = imaging.decode(png.tobytes(), max_pixels=MAX_PIXELS)

    assert [0, 0, 255] == decoded.pixels[0, 0].tolist()
    assert [255, 0, 0] == decoded.pixels[0, 255].tolist()
    assert (16, False) == (decoded.info.bits, decoded.info.plain)


CMYK_PATCHES = {
    "cyan": ((255, 0, 0, 0), (255, 255, 0)),
    "magenta": ((0, 255, 0, 0), (255, 0, 255)),
    "yellow": ((0, 0, 255, 0), (0, 255, 255)),
    "black": ((0, 0, 0, 255), (0, 0, 0)),
    "paper": ((0, 0, 0, 0), (255, 255, 255)),
}


def cmyk_strip() -> np.ndarray:
    return np.concatenate(
        [np.full((32, 32, 4), cmyk, np.uint8) for cmyk, _bgr in CMYK_PATCHES.values()], axis=1
    )


def patch_colours(pixels: np.ndarray) -> list[list[int]]:
    return [pixels[16, 32 * index + 16].tolist() for index in range(len(CMYK_PATCHES))]


def assert_close(
    expected: Sequence[Sequence[int]], actual: Sequence[Sequence[int]], tolerance: int = 12
) -> None:
    assert np.abs(np.array(expected) - np.array(actual)).max() <= tolerance, (expected, actual)


def test_adobe_cmyk_jpeg_decodes_to_the_right_colours() -> None:
    """An Adobe (inverted) CMYK JPEG shows cyan as cyan and paper as white."""
    data = encoded(Image.fromarray(cmyk_strip(), "CMYK"), "JPEG", quality=95)
    assert b"Adobe" in data

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert_close([bgr for _cmyk, bgr in CMYK_PATCHES.values()], patch_colours(decoded.pixels))


def test_plain_cmyk_jpeg_without_adobe_segment_decodes_to_the_right_colours() -> None:
    """A CMYK JPEG without an Adobe segment stores plain (not inverted) ink values."""
    # Pillow always writes inverted samples, so hand it inverted ink to store plain ink.
    data = encoded(Image.fromarray(255 - cmyk_strip(), "CMYK"), "JPEG", quality=95)

    decoded = imaging.decode(without_adobe_segment(data), max_pixels=MAX_PIXELS)

    assert_close([bgr for _cmyk, bgr in CMYK_PATCHES.values()], patch_colours(decoded.pixels))


def test_palette_with_transparent_index_shows_white_paper() -> None:
    """Transparent palette entries become white; opaque ones keep their colour, as BGR."""
    indices = np.zeros((8, 8), np.uint8)
    indices[:, 4:] = 1
    image = Image.fromarray(indices, "P")
    image.putpalette([0, 0, 0, 200, 30, 10] + [0] * 762)
    data = encoded(image, "PNG", transparency=0)

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert (8, 8, 3) == decoded.pixels.shape
    assert [255, 255, 255] == decoded.pixels[0, 0].tolist()
    assert [10, 30, 200] == decoded.pixels[0, 7].tolist()


def test_grey_palette_without_transparency_stays_grey() -> None:
    """A palette holding only greys decodes to a 2-D grey array with the palette's values."""
    image = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    image.putpalette([40, 40, 40, 220, 220, 220] + [0] * 762)

    decoded = imaging.decode(encoded(image, "PNG"), max_pixels=MAX_PIXELS)

    assert [[40, 220], [220, 40]] == decoded.pixels.tolist()


def test_rgba_is_composited_over_white() -> None:
    """Transparent pixels read as paper, half-transparent black as mid grey, opaque as is."""
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[:, 0] = (10, 20, 30, 0)
    rgba[:, 1] = (0, 0, 0, 128)
    rgba[:, 2] = (10, 20, 30, 255)

    decoded = imaging.decode(encoded(Image.fromarray(rgba, "RGBA"), "PNG"), max_pixels=MAX_PIXELS)

    assert [[255, 255, 255], [127, 127, 127], [30, 20, 10]] == decoded.pixels[0].tolist()


def test_grey_with_alpha_is_composited_over_white_and_stays_grey() -> None:
    """LA images come out 2-D, with transparency turned into white paper."""
    la = np.array([[[0, 0], [0, 128], [60, 255]]], np.uint8)

    decoded = imaging.decode(encoded(Image.fromarray(la, "LA"), "PNG"), max_pixels=MAX_PIXELS)

    assert [[255, 127, 60]] == decoded.pixels.tolist()


def test_bilevel_decodes_to_0_and_255_grey() -> None:
    """Mode 1 images become 2-D uint8 arrays of 0 and 255."""
    bits = Image.fromarray(np.array([[0, 255, 0], [255, 0, 255]], np.uint8)).convert("1")

    decoded = imaging.decode(encoded(bits, "TIFF", compression="group4"), max_pixels=MAX_PIXELS)

    assert [[0, 255, 0], [255, 0, 255]] == decoded.pixels.tolist()
    assert "1" == decoded.info.mode


def test_animated_gif_gives_its_first_frame_and_frame_count() -> None:
    """Only the first frame of an animated GIF is decoded; frames counts them all."""
    frames = [Image.new("L", (20, 10), value) for value in (30, 120, 210)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert (3, [30]) == (decoded.info.frames, np.unique(decoded.pixels).tolist())


@pytest.mark.parametrize("count", [1, 2, 37])
@pytest.mark.parametrize(
    "params",
    [
        {"palette": GREY_PALETTE},  # one global colour table, no local ones
        {},  # Pillow gives each later frame its own local colour table
        {"palette": GREY_PALETTE, "comment": b"scanned", "loop": 0},  # comment, NETSCAPE2.0
        {"comment": b"x" * 600, "loop": 0, "duration": 40},  # long comment, graphic control
    ],
)
def test_gif_frames_walked_from_the_blocks_are_pillows_count(
    count: int, params: dict[str, Any]
) -> None:
    """Walking a GIF's blocks counts the frames Pillow's n_frames counts, whatever blocks it holds."""
    data = pillow_gif(count, **params)

    with GifImagePlugin.GifImageFile(io.BytesIO(data)) as image:
        pillows = image.n_frames
    walked = gif_frames(data, limit=MAX_COUNTED_FRAMES)

    assert (count, count) == (pillows, walked)


def test_gif_bytes_between_blocks_are_skipped_as_pillow_skips_them() -> None:
    """Stray bytes between a GIF's blocks neither end the count nor add a frame."""
    data = tiny_frames_gif(3, between=b"\x00\x00")

    with GifImagePlugin.GifImageFile(io.BytesIO(data)) as image:
        pillows = image.n_frames
    walked = gif_frames(data, limit=MAX_COUNTED_FRAMES)

    assert (3, 3) == (pillows, walked)


@pytest.mark.parametrize(
    ("frames", "expected"),
    [(MAX_COUNTED_FRAMES, MAX_COUNTED_FRAMES), (MAX_COUNTED_FRAMES + 1, MAX_COUNTED_FRAMES)],
)
def test_a_gif_of_more_frames_than_the_cap_says_the_cap(frames: int, expected: int) -> None:
    """Up to MAX_COUNTED_FRAMES frames probe and decode count them all; past it they say the cap."""
    data = tiny_frames_gif(frames)

    info = imaging.probe(data, max_pixels=MAX_PIXELS)
    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert (expected, expected, [[80]]) == (
        info.frames,
        decoded.info.frames,
        decoded.pixels.tolist(),
    )


def test_an_animated_gif_cut_inside_a_block_is_incomplete() -> None:
    """A GIF that ends inside a block after its first frame is half-written, as a cut TIFF chain is."""
    between = b"!\xfe\x05later\x00" + b"!\xf9\x04\x00\x0a\x00\x00\x00"  # comment, control
    data = tiny_frames_gif(3, between=between)
    first_frame_ends = len(GIF_TINY_HEADER + GIF_TINY_FRAME)
    block_ends = gif_block_ends(first_frame_ends, [between[:9], between[9:], GIF_TINY_FRAME] * 2)
    expected = {
        cut: ("incomplete", f"GIF data ends early (truncated at {cut} bytes)")
        for cut in range(first_frame_ends + 1, len(data) - 1)
        if cut not in block_ends
    }

    actual = {}
    for cut in expected:
        with pytest.raises(ImageError) as caught:
            imaging.decode(data[:cut], max_pixels=MAX_PIXELS)
        actual[cut] = (caught.value.classification, str(caught.value))

    assert expected == actual
    assert 3 == imaging.decode(data, max_pixels=MAX_PIXELS).info.frames


def test_a_gif_without_its_trailer_is_read_with_the_frames_it_has() -> None:
    """Ending after a whole block without the 0x3B trailer (some encoders do) is a complete GIF."""
    between = b"!\xfe\x05later\x00"
    data = tiny_frames_gif(3, between=between)
    first_frame_ends = len(GIF_TINY_HEADER + GIF_TINY_FRAME)
    ends = sorted(gif_block_ends(first_frame_ends, [between, GIF_TINY_FRAME] * 2))

    frames = [imaging.decode(data[:cut], max_pixels=MAX_PIXELS).info.frames for cut in ends]

    assert [1, 1, 2, 2, 3] == frames


def gif_block_ends(start: int, blocks: list[bytes]) -> set[int]:
    """The offsets at which each of ``blocks``, laid one after another from ``start``, ends (and ``start``)."""
    ends = {start}
    for block in blocks:
        start += len(block)
        ends.add(start)
    return ends


def test_multi_page_tiff_gives_its_first_page_and_page_count() -> None:
    """Only the first page of a multi-page TIFF is decoded; frames counts the pages."""
    pages = [Image.new("L", (20, 10), value) for value in (50, 100, 150, 200)]
    data = encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert (4, [50]) == (decoded.info.frames, np.unique(decoded.pixels).tolist())


def test_a_tiff_of_more_pages_than_the_cap_says_the_cap() -> None:
    """Past MAX_COUNTED_FRAMES pages, probe and decode say that many: later directories are never read."""
    data = tiny_pages_tiff(MAX_COUNTED_FRAMES + 1, value=90)

    info = imaging.probe(data, max_pixels=MAX_PIXELS)
    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    expected = (MAX_COUNTED_FRAMES, MAX_COUNTED_FRAMES, [[90]])
    assert expected == (info.frames, decoded.info.frames, decoded.pixels.tolist())


def test_tiff_with_exactly_the_cap_of_pages_counts_them_all() -> None:
    """Up to the cap, frames is the exact number of pages."""
    data = tiny_pages_tiff(MAX_COUNTED_FRAMES, value=90)

    assert MAX_COUNTED_FRAMES == imaging.probe(data, max_pixels=MAX_PIXELS).frames


@pytest.mark.parametrize(
    ("format_name", "params"), [("WEBP", {"lossless": True}), ("BMP", {}), ("PNG", {})]
)
def test_colour_formats_decode_to_exact_bgr(format_name: str, params: dict[str, Any]) -> None:
    """Lossless colour files come out as C-contiguous, writeable BGR with the same values."""
    rgb = np.random.default_rng(3).integers(0, 256, (12, 17, 3), dtype=np.uint8)

    decoded = imaging.decode(
        encoded(Image.fromarray(rgb), format_name, **params), max_pixels=MAX_PIXELS
    )

    assert rgb[..., ::-1].tolist() == decoded.pixels.tolist()
    assert (format_name, 17, 12) == (decoded.info.format, decoded.info.width, decoded.info.height)
    assert decoded.pixels.flags.c_contiguous and decoded.pixels.flags.writeable


def test_grey_jpeg_decodes_to_a_writeable_2d_array() -> None:
    """A greyscale JPEG stays 2-D and may be changed in place by later steps."""
    data = encoded(Image.new("L", (16, 8), 77), "JPEG", quality=95)

    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    assert (8, 16) == decoded.pixels.shape
    assert decoded.pixels.flags.writeable


@pytest.mark.parametrize("grey", [False, True])
def test_a_plain_jpeg_decodes_to_libjpeg_turbos_own_pixels(
    photo_scan: np.ndarray, grey: bool
) -> None:
    """The fast path gives exactly what OpenCV's decoder (the same library) gives."""
    page = cv2.cvtColor(photo_scan, cv2.COLOR_BGR2GRAY) if grey else photo_scan
    ok, jpeg = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok

    decoded = imaging.decode(jpeg.tobytes(), max_pixels=MAX_PIXELS)

    expected = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    assert expected is not None
    assert decoded.pixels.shape == expected.shape
    assert np.array_equal(decoded.pixels, expected)
    assert decoded.pixels.flags.c_contiguous and decoded.pixels.flags.writeable


def test_a_jpeg_with_stray_bytes_between_segments_still_decodes() -> None:
    """libjpeg only warns of "extraneous bytes before marker"; the file is read, not failed."""
    rgb = np.random.default_rng(5).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    data = jpeg.tobytes()
    start_of_scan = data.index(b"\xff\xda")
    damaged = data[:start_of_scan] + b"\x00\x01\x02" + data[start_of_scan:]

    decoded = imaging.decode(damaged, max_pixels=MAX_PIXELS)

    expected = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert expected is not None
    assert np.array_equal(decoded.pixels, expected)


@pytest.mark.parametrize(
    ("image", "format_name", "expected"),
    [
        (Image.new("RGB", (4, 4)), "JPEG", True),
        (Image.new("L", (4, 4)), "PNG", True),
        (Image.new("P", (4, 4)), "PNG", False),
        (Image.new("RGBA", (4, 4)), "PNG", False),
        (Image.new("RGB", (4, 4)), "TIFF", False),
        (Image.new("CMYK", (4, 4)), "JPEG", False),
    ],
)
def test_plain_means_an_8_bit_grey_or_rgb_jpeg_or_png(
    image: Image.Image, format_name: str, expected: bool
) -> None:
    """Only 8-bit L/RGB JPEG and PNG files without orientation or alpha may be sent as they are."""
    assert expected == imaging.probe(encoded(image, format_name), max_pixels=MAX_PIXELS).plain


# --------------------------------------------------------------------------
# Refusals


def test_zero_bytes_is_incomplete() -> None:
    """An empty file is one still being written: retry later."""
    with pytest.raises(ImageError) as caught:
        imaging.decode(b"", max_pixels=MAX_PIXELS)

    assert "incomplete" == caught.value.classification


@pytest.mark.parametrize(
    ("format_name", "params"),
    [
        ("JPEG", {"quality": 90}),
        ("JPEG", {"quality": 90, "progressive": True}),
        ("PNG", {}),
        ("GIF", {}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("WEBP", {"quality": 80}),
        ("BMP", {}),
    ],
)
@pytest.mark.parametrize("kept", [0.05, 0.5, 0.95])
@pytest.mark.parametrize("read", [imaging.decode, imaging.verify])
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on cut TIFFs
def test_truncated_files_are_incomplete(
    format_name: str, params: dict[str, Any], kept: float, read: Callable[..., object]
) -> None:
    """A file cut short anywhere is reported as half-written, never decoded as grey filler."""
    noise = np.random.default_rng(5).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    data = encoded(image.convert("P") if format_name == "GIF" else image, format_name, **params)
    cut = data[: max(1, int(len(data) * kept))]

    with pytest.raises(ImageError) as caught:
        read(cut, max_pixels=MAX_PIXELS)

    assert "incomplete" == caught.value.classification
    assert f"{format_name} data ends early (truncated at {len(cut)} bytes)" == str(caught.value)


@pytest.mark.parametrize("read", [imaging.decode, imaging.verify])
def test_a_jpeg_whose_end_is_still_zeros_is_incomplete(read: Callable[..., object]) -> None:
    """A file given its full size before its bytes (some copiers do) is half-written until the end arrives."""
    noise = np.random.default_rng(6).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), "JPEG", quality=90)
    half = len(data) // 2
    preallocated = data[:half] + bytes(len(data) - half)

    with pytest.raises(ImageError) as caught:
        read(preallocated, max_pixels=MAX_PIXELS)

    assert "incomplete" == caught.value.classification


def test_text_named_jpg_is_not_an_image() -> None:
    """Text is a permanent failure whose message quotes the first bytes."""
    with pytest.raises(ImageError) as caught:
        imaging.decode(b"Invoice 2024-17\nTotal: 42 EUR\n", max_pixels=MAX_PIXELS)

    assert "bad_input" == caught.value.classification
    assert "not an image (starts with b'Invoice ')" == str(caught.value)


def test_pdf_is_not_an_image() -> None:
    """PDF bytes are refused permanently, naming what they start with."""
    with pytest.raises(ImageError) as caught:
        imaging.decode(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", max_pixels=MAX_PIXELS)

    assert ("bad_input", "not an image (starts with b'%PDF-1.4')") == (
        caught.value.classification,
        str(caught.value),
    )


def test_formats_pillow_knows_but_ocrwatch_does_not_read_are_named() -> None:
    """An icon file is refused permanently as an unsupported format."""
    with pytest.raises(ImageError) as caught:
        imaging.decode(encoded(Image.new("RGB", (16, 16)), "ICO"), max_pixels=MAX_PIXELS)

    assert ("bad_input", "unsupported image format 'ICO'") == (
        caught.value.classification,
        str(caught.value),
    )


def test_corrupt_but_complete_png_is_a_permanent_failure() -> None:
    """Damaged pixel data in a complete file is not worth retrying."""
    data = bytearray(encoded(Image.new("RGB", (64, 64), "white"), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 12] = b"\xff\xff\xff\xff"

    with pytest.raises(ImageError) as caught:
        imaging.decode(bytes(data), max_pixels=MAX_PIXELS)

    assert "bad_input" == caught.value.classification
    assert str(caught.value).startswith("PNG data is corrupt")


@pytest.mark.parametrize("read", [imaging.probe, imaging.decode])
def test_decompression_bomb_is_refused_from_the_header(read: Callable[..., object]) -> None:
    """A PNG claiming 100000x100000 pixels is refused before any pixel buffer exists."""
    data = png_claiming(100_000, 100_000)
    allocations = pillow_allocations()
    tracemalloc.start()

    with pytest.raises(ImageError) as caught:
        read(data, max_pixels=MAX_PIXELS)

    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (
        "image is 100000x100000 = 10000.0 megapixels, above the limit of 150.0 megapixels (max_pixels)"
        == str(caught.value)
    )
    assert "bad_input" == caught.value.classification
    assert allocations == pillow_allocations()
    assert peak < 1_000_000


def test_webp_bomb_is_refused_before_libwebp_allocates_its_canvas() -> None:
    """A WebP header claiming 16383x16383 pixels is refused from its bytes alone."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (16382).to_bytes(3, "little") * 2
    data = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x

    with pytest.raises(ImageError) as caught:
        imaging.probe(data, max_pixels=MAX_PIXELS)

    assert str(caught.value).startswith("image is 16383x16383 = 268.4 megapixels")


def test_our_pixel_limit_replaces_pillows() -> None:
    """A 225-megapixel header passes a 300-megapixel limit although Pillow's own is lower."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        info = imaging.probe(png_claiming(15_000, 15_000), max_pixels=300_000_000)

    assert (15_000, 15_000) == (info.width, info.height)


# --------------------------------------------------------------------------
# Colour


def test_grey_scan_with_colour_noise_has_no_colour(grey_scan: np.ndarray) -> None:
    """Per-channel sensor noise and JPEG chroma artefacts are not colour worth keeping."""
    assert not imaging.has_colour(grey_scan)


def test_scan_with_a_colour_logo_has_colour(colour_scan: np.ndarray) -> None:
    """A logo of a few centimetres on an A4 page is colour."""
    assert imaging.has_colour(colour_scan)


def test_grey_arrays_have_no_colour() -> None:
    """2-D pixels are grey by definition."""
    assert not imaging.has_colour(np.zeros((10, 10), np.uint8))


# --------------------------------------------------------------------------
# Uploads


def test_a4_colour_scan_fits_the_free_tier(colour_scan: np.ndarray) -> None:
    """A 300-dpi A4 colour scan becomes a colour JPEG within 1 MiB, full size."""
    upload = imaging.fit_upload(colour_scan, max_bytes=FREE_TIER)

    assert len(upload.data) <= FREE_TIER
    assert ("JPG", "jpg", False, 1.0) == (
        upload.filetype,
        upload.extension,
        upload.grayscale,
        upload.scale,
    )
    decoded = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert (A4_300_DPI[1], A4_300_DPI[0], 3) == decoded.shape
    assert upload.quality is not None and 50 <= upload.quality <= 90


def test_black_and_white_page_is_sent_in_grey(grey_scan: np.ndarray) -> None:
    """A colour scan of a black-and-white page is uploaded as a grey JPEG."""
    upload = imaging.fit_upload(grey_scan, max_bytes=FREE_TIER)

    assert upload.grayscale
    decoded = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert 2 == decoded.ndim
    assert len(upload.data) <= FREE_TIER


def test_page_with_a_colour_photo_keeps_its_colour(photo_scan: np.ndarray) -> None:
    """A page holding a colour photo is uploaded in colour."""
    upload = imaging.fit_upload(photo_scan, max_bytes=FREE_TIER)

    assert not upload.grayscale
    assert len(upload.data) <= FREE_TIER


@pytest.fixture
def encoded_shapes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shape of every array OpenCV encodes during the test, in order (the real encoder runs)."""
    shapes: list[tuple[int, ...]] = []
    real_imencode = cv2.imencode

    def recording_imencode(extension: str, pixels: np.ndarray, params: list[int]) -> Any:
        shapes.append(pixels.shape)
        return real_imencode(extension, pixels, params)

    monkeypatch.setattr(cv2, "imencode", recording_imencode)
    return shapes


def test_encodes_counts_every_encode(
    colour_scan: np.ndarray, encoded_shapes: list[tuple[int, ...]]
) -> None:
    """The encode count includes trial encodes on samples, not only the final one."""
    upload = imaging.fit_upload(colour_scan, max_bytes=FREE_TIER)

    assert len(encoded_shapes) == upload.encodes


def test_a_large_scan_takes_one_full_encode_and_uses_the_budget(
    colour_scan: np.ndarray, encoded_shapes: list[tuple[int, ...]]
) -> None:
    """Trials on samples find the quality: the whole page is encoded once, close under the budget."""
    upload = imaging.fit_upload(colour_scan, max_bytes=FREE_TIER)

    shapes = encoded_shapes
    assert [colour_scan.shape] == [shape for shape in shapes if shape == colour_scan.shape]
    assert sum(math.prod(shape) for shape in shapes[:-1]) < colour_scan.size / 2
    assert 0.85 * FREE_TIER <= len(upload.data) <= FREE_TIER


def test_small_images_are_never_upscaled() -> None:
    """An image smaller than every limit keeps its size."""
    pixels = np.random.default_rng(1).integers(0, 256, (90, 130), dtype=np.uint8)

    upload = imaging.fit_upload(pixels, max_bytes=FREE_TIER, max_side=5000)

    assert (130, 90, 1.0) == (upload.width, upload.height, upload.scale)


def test_scale_maps_upload_pixels_back_to_input_pixels(grey_scan: np.ndarray) -> None:
    """When a tight budget forces a downscale, scale times the input size gives the upload size."""
    upload = imaging.fit_upload(grey_scan, max_bytes=150_000)

    decoded = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    height, width = decoded.shape[:2]
    assert len(upload.data) <= 150_000
    assert 0.25 <= upload.scale < 1.0
    assert (width, height) == (upload.width, upload.height)
    assert round(A4_300_DPI[0] * upload.scale) == width
    assert abs(round(A4_300_DPI[1] * upload.scale) - height) <= 1
    assert 50 == upload.quality


def test_small_plain_jpeg_goes_as_it_is() -> None:
    """The file's own bytes are sent when they are a plain JPEG within every limit."""
    data = encoded(Image.new("RGB", (300, 200), (200, 30, 30)), "JPEG", quality=90)
    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    upload = imaging.fit_upload(
        decoded.pixels, max_bytes=FREE_TIER, original=data, info=decoded.info
    )

    assert data == upload.data
    assert ("JPG", None, 0, 1.0) == (upload.filetype, upload.quality, upload.encodes, upload.scale)


def test_cropped_pixels_are_encoded_not_replaced_by_the_original() -> None:
    """Pixels that no longer match the file's size are encoded even when the file is plain."""
    data = encoded(Image.new("L", (300, 200), 128), "PNG")
    decoded = imaging.decode(data, max_pixels=MAX_PIXELS)

    upload = imaging.fit_upload(
        decoded.pixels[:100, :100], max_bytes=FREE_TIER, original=data, info=decoded.info
    )

    assert (100, 100, 1) == (upload.width, upload.height, upload.encodes)


def test_max_side_is_honoured() -> None:
    """No side of the upload exceeds max_side, and scale says how much it shrank."""
    pixels = np.random.default_rng(2).integers(0, 256, (1200, 3000), dtype=np.uint8)

    upload = imaging.fit_upload(pixels, max_bytes=FREE_TIER, max_side=1000)

    assert (1000, 400) == (upload.width, upload.height)
    assert 1000 / 3000 == upload.scale


def test_black_and_white_pixels_go_as_lossless_png() -> None:
    """A page of pure black and white is sent as a 1-bit PNG that decodes to the same pixels."""
    pixels = np.full((400, 300), 255, np.uint8)
    pixels[100:120, 50:250] = 0

    upload = imaging.fit_upload(pixels, max_bytes=FREE_TIER)

    assert ("PNG", "png", None, True) == (
        upload.filetype,
        upload.extension,
        upload.quality,
        upload.grayscale,
    )
    decoded = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert decoded is not None
    assert pixels.tolist() == decoded.tolist()


def test_impossible_budget_is_an_image_error(colour_scan: np.ndarray) -> None:
    """A budget no sane quality and size can meet raises ImageError saying so."""
    with pytest.raises(ImageError) as caught:
        imaging.fit_upload(colour_scan, max_bytes=2_000)

    assert str(caught.value).startswith("cannot fit a 2480x3508 image into 2000 bytes")
