"""Upload fit: every upload under the 1 MB budget, how many encodes it takes, what it costs in CER.

For each corpus image (or rendered page, where the shared corpus is absent)
and each generated 300-dpi A4 colour scan, this calls
:func:`ocrwatch.imaging.fit_upload` as the ocr.space engine does (the file's
own bytes offered as the original), then reads both the original pixels and
the decoded upload with ocrwatch's :class:`TesseractEngine` (one thread) and
compares their character error rates. When the upload is the file's own
bytes the pixels are the same, so the second read is skipped. The baseline
is the seed's way: one JPEG quality-90 encode, whatever its size.
"""

from __future__ import annotations

import time
from typing import TypedDict

import cv2
import numpy as np

from benchmarks.harness import Context, Row, Target
from benchmarks.images import a4_scans, corpus
from ocrwatch import imaging
from ocrwatch.config import DEFAULT_MAX_PIXELS, FREE_TIER_UPLOAD_BYTES
from ocrwatch.engines.base import OcrRequest
from ocrwatch.engines.tesseract.engine import TesseractEngine
from tests.support.scoring import cer

NAME = "upload_fit"
FIRST_A4_SEED = 1
CER_TOLERANCE = 0.005
MIB = 1024 * 1024


class _Fit(TypedDict):
    """One image's upload and what it cost, as :func:`_measure` records it."""

    name: str
    bytes: int
    encodes: int
    quality: int | None
    scale: float
    grayscale: bool
    fit_cpu_seconds: float
    cer_original: float
    cer_fitted: float
    seed_q90_bytes: int


def _read(engine: TesseractEngine, pixels: np.ndarray, name: str) -> str:
    return engine.recognize(OcrRequest(image=pixels, name=name)).text


def _seed_encode_bytes(pixels: np.ndarray) -> int:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("OpenCV could not encode")
    return len(encoded)


def _measure(
    engine: TesseractEngine,
    name: str,
    pixels: np.ndarray,
    truth: str,
    original: bytes | None,
    info: imaging.ImageInfo | None,
) -> _Fit:
    started = time.process_time()
    upload = imaging.fit_upload(
        pixels, max_bytes=FREE_TIER_UPLOAD_BYTES, original=original, info=info
    )
    fit_seconds = time.process_time() - started
    before = cer(_read(engine, pixels, name), truth)
    if original is not None and upload.data is original:
        after = before
    else:
        fitted = imaging.decode(upload.data, max_pixels=DEFAULT_MAX_PIXELS).pixels
        after = cer(_read(engine, fitted, name), truth)
    return {
        "name": name,
        "bytes": len(upload.data),
        "encodes": upload.encodes,
        "quality": upload.quality,
        "scale": upload.scale,
        "grayscale": upload.grayscale,
        "fit_cpu_seconds": round(fit_seconds, 4),
        "cer_original": round(before, 5),
        "cer_fitted": round(after, 5),
        "seed_q90_bytes": _seed_encode_bytes(pixels),
    }


def run(ctx: Context) -> list[Row]:
    size = ctx.size
    engine = TesseractEngine()
    measured: dict[str, list[_Fit]] = {"corpus": [], "a4": []}
    page_set = corpus(ctx.cache_dir, size.fit_corpus)
    try:
        ctx.log(
            f"upload fit: {len(page_set.pages)} images ({page_set.label}), {size.fit_a4} A4 scans"
        )
        for path, truth in page_set.pages:
            data = path.read_bytes()
            decoded = imaging.decode(data, max_pixels=DEFAULT_MAX_PIXELS)
            measured["corpus"].append(
                _measure(engine, path.name, decoded.pixels, truth, data, decoded.info)
            )
        for scan in a4_scans(
            range(FIRST_A4_SEED, FIRST_A4_SEED + size.fit_a4), ctx.cache_dir, log=ctx.log
        ):
            if size.fit_a4_lines is None:
                data = scan.path.read_bytes()
                decoded = imaging.decode(data, max_pixels=DEFAULT_MAX_PIXELS)
                entry = _measure(
                    engine, scan.path.name, decoded.pixels, scan.text, data, decoded.info
                )
            else:
                pixels, truth = scan.top(size.fit_a4_lines)
                entry = _measure(engine, scan.path.name, pixels, truth, None, None)
            measured["a4"].append(entry)
            ctx.log(
                f"upload fit {scan.path.name}: {entry['bytes']} bytes, {entry['encodes']} encodes, "
                f"CER {entry['cer_original']} -> {entry['cer_fitted']}"
            )
    finally:
        engine.close()
    return _rows(measured, size.fit_a4_lines, page_set.label)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _rows(measured: dict[str, list[_Fit]], a4_lines: int | None, pages_label: str) -> list[Row]:
    everything = measured["corpus"] + measured["a4"]
    largest = max(float(entry["bytes"]) for entry in everything)
    seed_largest = max(float(entry["seed_q90_bytes"]) for entry in everything)
    over = sum(1 for entry in everything if float(entry["bytes"]) > FREE_TIER_UPLOAD_BYTES)
    seed_over = sum(
        1 for entry in everything if float(entry["seed_q90_bytes"]) > FREE_TIER_UPLOAD_BYTES
    )
    encodes = _mean([float(entry["encodes"]) for entry in everything])
    sent_as_is = sum(1 for entry in everything if entry["encodes"] == 0)
    a4_label = "A4 scans" if a4_lines is None else f"A4 scans (top {a4_lines} lines)"
    rows = [
        Row(
            NAME,
            f"largest upload, {len(everything)} images ({pages_label} + {a4_label})",
            largest / MIB,
            "MiB",
            baseline=seed_largest / MIB,
            baseline_label="seed: one q90 encode",
            target=Target("<=", FREE_TIER_UPLOAD_BYTES / MIB, text="≤ 1 MiB (the budget), all"),
            notes=f"{over} of {len(everything)} over budget (seed's q90: {seed_over})",
            details={"images": everything},
        ),
        Row(
            NAME,
            "encodes per image (mean)",
            encodes,
            "",
            baseline=1.0,
            baseline_label="seed: always one",
            notes=f"{sent_as_is} of {len(everything)} sent as their own bytes (0 encodes)",
        ),
    ]
    for key, label in (("corpus", pages_label), ("a4", a4_label)):
        entries = measured[key]
        if not entries:
            continue
        fitted = _mean([float(entry["cer_fitted"]) for entry in entries])
        original = _mean([float(entry["cer_original"]) for entry in entries])
        worst = max(
            entries, key=lambda entry: float(entry["cer_fitted"]) - float(entry["cer_original"])
        )
        rows.append(
            Row(
                NAME,
                f"local-engine CER reading the upload, {label} (n={len(entries)})",
                fitted,
                "",
                baseline=original,
                baseline_label="the original pixels",
                target=Target("<=", CER_TOLERANCE, on="delta", text=f"Δ ≤ {CER_TOLERANCE}"),
                notes=f"Δ {fitted - original:+.4f}; worst image {worst['name']} "
                f"({worst['cer_original']} -> {worst['cer_fitted']})",
            )
        )
    return rows
