"""The images the benchmarks feed in, and how text is scored against ground truth.

Owns: ~1 megapixel JPEG pages (phone-photo sized), 300-dpi A4 colour scans
from :func:`tests.support.render.a4_scan` with the text they show (cached on
disk, since rendering one takes about a second), distinct tiny PNGs for
backlog runs, pages with ground truth (the shared corpus, or where it is
absent the rendered page kinds of :data:`tests.support.render.KINDS`), and
the character error rate.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from tests.support import render
from tests.support.paths import corpus_images, ground_truth

MEGAPIXEL_SIZE = (1224, 816)
"""About one megapixel, 3:2 like a phone photo."""
MEGAPIXEL_QUALITY = 90
A4_QUALITY = 92
"""Scanners' 'high quality' JPEG setting; a 300-dpi A4 colour page comes out at about 2.7 MB."""
SMALL_SIDE = 64
RENDERED_SEED = 1
WORDS = (
    "invoice",
    "receipt",
    "total",
    "amount",
    "payable",
    "within",
    "thirty",
    "days",
    "customer",
    "account",
    "statement",
    "period",
    "balance",
    "forward",
    "payment",
    "received",
    "reference",
    "number",
    "delivery",
    "address",
    "order",
    "quantity",
    "price",
    "tax",
    "discount",
    "subtotal",
    "signature",
    "date",
    "page",
    "copy",
    "original",
    "thank",
    "you",
)


# --------------------------------------------------------------------------
# ~1 MP pages


def megapixel_jpeg(seed: int) -> bytes:
    """A distinct ~1 MP colour JPEG of a text page with mild sensor noise, quality 90."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, size=8)) for _ in range(14)]
    image, _ = render.page(
        lines, size=MEGAPIXEL_SIZE, origin=(50, 40), font_size=30, background=(246, 244, 238)
    )
    pixels = np.asarray(image).astype(np.int16)
    pixels += rng.normal(0, 3, pixels.shape).astype(np.int16)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG", quality=MEGAPIXEL_QUALITY)
    return buffer.getvalue()


# --------------------------------------------------------------------------
# A4 scans


@dataclass(frozen=True)
class A4Scan:
    """A rendered A4 scan on disk and the lines of text drawn on it, with their bottom rows."""

    path: Path
    lines: tuple[str, ...]
    bottoms: tuple[int, ...]

    @property
    def text(self) -> str:
        """The lines that lie on the page: ``a4_scan`` draws 60, and only the first ~44 fit on A4."""
        height = render.A4_300DPI[1]
        return "\n".join(
            line for line, bottom in zip(self.lines, self.bottoms, strict=True) if bottom <= height
        )

    def top(self, count: int) -> tuple[np.ndarray, str]:
        """BGR pixels of the page down to just below line ``count``, and those lines' text."""
        pixels = cv2.imdecode(np.fromfile(self.path, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise RuntimeError(f"cannot decode {self.path}")
        bottom = min(pixels.shape[0], self.bottoms[count - 1] + 24)
        return np.ascontiguousarray(pixels[:bottom]), "\n".join(self.lines[:count])


@contextlib.contextmanager
def _recording_pages() -> Iterator[list[tuple[list[str], list[Any]]]]:
    """Record what :func:`render.page` draws while ``a4_scan`` runs.

    ``a4_scan`` returns only the image; the words it drew are its ground truth.
    It looks ``page`` up in its module at call time, so wrapping that name
    observes the exact lines without re-deriving its random choices.
    """
    drawn: list[tuple[list[str], list[Any]]] = []
    original = render.page

    def recording(lines: list[str], **options: Any) -> Any:
        result = original(lines, **options)
        drawn.append((list(lines), list(result[1])))
        return result

    render.page = recording
    try:
        yield drawn
    finally:
        render.page = original


def _render_a4(seed: int, path: Path) -> None:
    with _recording_pages() as drawn:
        image = render.a4_scan(seed)
    lines, placed = drawn[-1]
    bottoms = []
    words = iter(placed)
    for line in lines:
        boxes = [next(words) for _ in line.split()]
        bottoms.append(max(box.top + box.height for box in boxes))
    temporary = path.with_suffix(".tmp")
    image.save(temporary, "JPEG", quality=A4_QUALITY)
    path.with_suffix(".json").write_text(json.dumps({"lines": lines, "bottoms": bottoms}))
    os.replace(temporary, path)


def _renderer_version() -> str:
    source = Path(render.__file__).read_bytes()
    return hashlib.sha256(source + f"q{A4_QUALITY}".encode()).hexdigest()[:12]


def a4_scans(seeds: range | list[int], cache_dir: Path, *, log: Any = None) -> list[A4Scan]:
    """The A4 scans for ``seeds``, rendered (in parallel) into ``cache_dir`` when missing."""
    folder = cache_dir / f"a4-{_renderer_version()}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {seed: folder / f"a4-{seed:05d}.jpg" for seed in seeds}
    missing = [
        seed
        for seed, path in paths.items()
        if not (path.exists() and path.with_suffix(".json").exists())
    ]
    if missing:
        if log is not None:
            log(f"rendering {len(missing)} A4 scan(s) into {folder} (about 1 s each, cached)")
        with ProcessPoolExecutor(
            max_workers=max(1, min(len(missing), os.cpu_count() or 1))
        ) as pool:
            list(pool.map(_render_a4, missing, [paths[seed] for seed in missing]))
    scans = []
    for seed in seeds:
        meta = json.loads(paths[seed].with_suffix(".json").read_text())
        scans.append(A4Scan(paths[seed], tuple(meta["lines"]), tuple(meta["bottoms"])))
    return scans


# --------------------------------------------------------------------------
# Tiny PNGs


def small_png(index: int) -> bytes:
    """A distinct 64x64 grey PNG (seeded noise), a few kB."""
    rng = np.random.default_rng(index)
    pixels = rng.integers(0, 256, (SMALL_SIDE, SMALL_SIDE), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return encoded.tobytes()


# --------------------------------------------------------------------------
# The corpus


@dataclass(frozen=True)
class PageSet:
    """Images with their ground truth, and the name of the set they come from, for the report."""

    label: str
    pages: list[tuple[Path, str]]


def corpus(cache_dir: Path, limit: int | None = None) -> PageSet:
    """The shared corpus with its ground truth, or the rendered pages where it is absent.

    Smallest files first when limited. Without ``../shared`` (a fresh clone) the
    page kinds ocrwatch renders itself stand in, so every measurement still runs
    and says which set it read.
    """
    images = corpus_images()
    if images:
        pages = [(path, ground_truth(path)) for path in images]
        label = "corpus"
    else:
        pages = rendered_pages(cache_dir)
        label = "rendered pages"
    if limit is not None:
        pages = sorted(pages, key=lambda page: page[0].stat().st_size)[:limit]
    return PageSet(label, pages)


def rendered_pages(cache_dir: Path) -> list[tuple[Path, str]]:
    """Every page kind of :data:`render.KINDS` as a file in ``cache_dir``, with its exact text."""
    folder = cache_dir / f"rendered-{_renderer_version()}"
    pages = []
    for kind, make in render.KINDS.items():
        page = make(RENDERED_SEED)
        path = folder / f"{kind}{page.suffix}"
        if not path.exists():
            os.replace(page.write(folder, f".{kind}.tmp"), path)
        pages.append((path, page.text))
    return pages
