"""Files that land in inboxes to attack ocrwatch: small pages in every pixel format, and broken ones.

Owns building the bytes only; tests decide where they go and what must come of
them. Pages are rendered with :mod:`tests.support.render`, so they carry known
words that a reading engine (the fake server in ``tesseract`` mode) can find
again. The broken files are built by hand from the formats' own structures:
headers that claim enormous sizes (decompression bombs), files cut short,
non-images under image names.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

from tests.support.render import page

PAGE_SIZE = (560, 110)
FONT_SIZE = 44


def grey_page(words: str, *, size: tuple[int, int] = PAGE_SIZE) -> np.ndarray:
    """``words`` in black on white, as an 8-bit grey array."""
    image, _ = page([words], size=size, origin=(20, 25), font_size=FONT_SIZE)
    return np.asarray(image.convert("L"))


def encoded(image: Image.Image, format_name: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **params)
    return buffer.getvalue()


def page_bytes(words: str, format_name: str = "PNG", *, size: tuple[int, int] = PAGE_SIZE) -> bytes:
    """A plain 8-bit grey page in ``format_name``."""
    return encoded(Image.fromarray(grey_page(words, size=size)), format_name)


def pixel_formats(words: dict[str, str]) -> dict[str, bytes]:
    """One file per unusual pixel format, each showing ``words[name]``.

    Every one of these must be read like a plain page: README 'Inputs' promises
    16-bit, CMYK, palette, alpha (over white) and bilevel images.
    """
    files: dict[str, bytes] = {}
    for name, text in words.items():
        grey = grey_page(text)
        rgb = Image.fromarray(grey).convert("RGB")
        if name == "grey16.png":
            files[name] = encoded(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")
        elif name == "rgb48.png":
            deep = np.dstack([grey, grey, grey]).astype(np.uint16) * 257
            files[name] = _cv2_encoded(".png", deep)
        elif name == "grey16.tif":
            files[name] = encoded(Image.fromarray(grey.astype(np.uint16) * 257), "TIFF")
        elif name == "cmyk.jpg":
            files[name] = encoded(rgb.convert("CMYK"), "JPEG", quality=92)
        elif name == "cmyk.tif":
            files[name] = encoded(rgb.convert("CMYK"), "TIFF")
        elif name == "palette.png":
            files[name] = encoded(
                rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG"
            )
        elif name == "palette.gif":
            files[name] = encoded(
                rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "GIF"
            )
        elif name == "alpha-only.png":
            # Colour channels black everywhere; only the alpha channel draws the
            # letters. Over white that is black text; with alpha dropped it is a
            # black rectangle with nothing to read.
            alpha = 255 - grey
            black = np.zeros((*grey.shape, 3), np.uint8)
            files[name] = encoded(Image.fromarray(np.dstack([black, alpha]), "RGBA"), "PNG")
        elif name == "grey-alpha.png":
            alpha = 255 - grey
            files[name] = encoded(Image.fromarray(np.dstack([grey * 0, alpha]), "LA"), "PNG")
        elif name == "palette-transparent.png":
            # White background as the transparent palette index: over white it must stay white.
            indexed = Image.fromarray(np.where(grey < 128, 1, 0).astype(np.uint8), "P")
            indexed.putpalette([255, 0, 0, 0, 0, 0] + [0] * (256 * 3 - 6))
            files[name] = encoded(indexed, "PNG", transparency=0)
        elif name == "bilevel-g4.tif":
            files[name] = encoded(Image.fromarray(grey).convert("1"), "TIFF", compression="group4")
        elif name == "lossless.webp":
            files[name] = encoded(rgb, "WEBP", lossless=True)
        elif name == "bmp8.bmp":
            files[name] = encoded(Image.fromarray(grey), "BMP")
        else:
            raise ValueError(f"no recipe for {name}")
    return files


def _cv2_encoded(extension: str, pixels: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels)
    assert ok, f"OpenCV could not encode {extension}"
    return bytes(buffer.data)


def two_frames(first: str, second: str, format_name: str) -> bytes:
    """An animated GIF or multi-page TIFF whose frames show different words."""
    frames = [Image.fromarray(grey_page(words)) for words in (first, second)]
    if format_name == "GIF":
        frames = [frame.convert("P") for frame in frames]
        return encoded(
            frames[0], "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0
        )
    return encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])


# ----------------------------------------------------------------------------
# Broken and hostile files


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes of valid PNG structure whose header claims width x height RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_bomb(width: int = 65_500, height: int = 65_500) -> bytes:
    """A small real JPEG with its frame header rewritten to claim width x height."""
    data = bytearray(page_bytes("bomb", "JPEG"))
    position = 2
    while position < len(data):
        marker = data[position + 1]
        length = struct.unpack_from(">H", data, position + 2)[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, position + 5, height, width)
            return bytes(data)
        position += 2 + length
    raise AssertionError("no SOF marker")


def gif_bomb(width: int = 65_535, height: int = 65_535) -> bytes:
    """A GIF whose logical screen and first image both claim width x height."""
    data = bytearray(page_bytes("bomb", "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    descriptor = data.index(b",", 13 + 3 * (2 ** ((data[10] & 7) + 1)) if data[10] & 0x80 else 13)
    struct.pack_into("<HH", data, descriptor + 5, width, height)
    return bytes(data)


def tiff_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """An uncompressed grey TIFF claiming width x height, with 64 bytes of pixel data."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 0),  # StripOffsets, patched below
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height & 0xFFFFFFFF),  # StripByteCounts
    ]
    ifd_offset = 8
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = ifd_offset + ifd_size
    entries[5] = (273, 4, 1, data_offset)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += (
            struct.pack("<HHII", tag, kind, count, value)
            if kind == 4
            else struct.pack("<HHIHH", tag, kind, count, value, 0)
        )
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + b"\x00" * 64


def webp_bomb(width: int = 16_384, height: int = 16_384) -> bytes:
    """A WebP whose VP8X header claims a width x height canvas."""
    vp8x = (
        struct.pack("<I", 0)
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )
    chunk = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def bmp_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 24-bit BMP header claiming width x height, with almost no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\x00" * 64
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


BOMBS = {
    "bomb.png": png_bomb,
    "bomb.jpg": jpeg_bomb,
    "bomb.gif": gif_bomb,
    "bomb.tif": tiff_bomb,
    "bomb.webp": webp_bomb,
    "bomb.bmp": bmp_bomb,
}


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first ``fraction`` of ``data``: what a writer that never finished leaves."""
    return data[: max(1, int(len(data) * fraction))]
