"""Documents through ``ocrwatch once``: PDFs and multi-page TIFFs, page by page, with real engines.

Every page is a rendered page whose text is known exactly, so each page of a
result is checked against its own ground truth. ocr.space is the local fake
server reading uploads with Tesseract; it counts requests and keeps every
upload, which is how "no request" and "one request per page" are checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pikepdf
import pytest
from PIL import ImageDraw

from ocrwatch import __version__
from tests.support import pdfs, render, tiffs
from tests.support.commands import KEY, ocrwatch, record, text_of, write_config
from tests.support.ocrspace_fixtures import load as load_answer
from tests.support.ocrspace_server import Answer, FakeOcrSpace, RecordedRequest
from tests.support.render import Placed, Rendered
from tests.support.scoring import cer, fold
from tests.support.verdicts import done_record, error_record

SCAN_DPI = 150
"""Resolution of the test scans: small pages, quick to read."""
RENDER_DPI = 200
"""What a page that is one image below 200 dpi renders at (the lower bound of 200-600)."""
TEXT_PAGE_DPI = 300
"""What a page that is not one image renders at."""
CER_BUDGET = 0.005
"""One character in two hundred: either engine reads these clean pages exactly (measured 0 on every page)."""
WORD_TOLERANCE = 8
"""Pixels a word's box may lie from where the page drew it."""
MARKER = (10, 10, 40, 40)
"""A black square in the top-left margin of a scan page: the fake server fails the page that shows it."""
DEFAULT_MAX_PAGES = 500
BOMB_PAGES = 20_000
PASSWORD = "correct horse"


# --------------------------------------------------------------------------
# Pages and documents


@cache
def scans() -> tuple[Rendered, ...]:
    """Three clean 150-dpi pages of 3, 4 and 5 lines (so three heights)."""
    return tuple(render.printed(seed, dpi=SCAN_DPI, lines=2 + seed) for seed in (1, 2, 3))


def marked(page: Rendered) -> Rendered:
    """``page`` with the :data:`MARKER` square drawn in its margin."""
    image = page.image.copy()
    ImageDraw.Draw(image).rectangle(MARKER, fill=(0, 0, 0))
    return Rendered(image, page.text, page.words)


def combined(documents: Sequence[bytes]) -> bytes:
    """The pages of ``documents`` in order, as one PDF."""
    with contextlib.ExitStack() as stack:
        pdf = pikepdf.new()
        for data in documents:
            part = stack.enter_context(pikepdf.open(io.BytesIO(data)))
            pdf.pages.extend(part.pages)
        return pdfs.save(pdf)


def scan_pdf(pages: Sequence[Rendered], *, dpi: float = SCAN_DPI) -> bytes:
    """A scan: one page per rendered page, each a JPEG at ``dpi``."""
    return combined([pdfs.scanned(page.image, dpi=dpi) for page in pages])


BORN_DIGITAL_SIZE = (360.0, 144.0)
"""A small page in points, so that rendering it at 300 dpi costs little."""
BORN_DIGITAL_FONT = 14.0
BORN_DIGITAL_ORIGIN = (36.0, 100.0)
BORN_DIGITAL_LINES = ("The library opens late on Thursdays", "Fresh bread sells out by noon")


def born_digital() -> bytes:
    """A page of visible Helvetica text: :data:`BORN_DIGITAL_LINES` from :data:`BORN_DIGITAL_ORIGIN` down."""
    return pdfs.born_digital(
        list(BORN_DIGITAL_LINES),
        font_size=BORN_DIGITAL_FONT,
        origin=BORN_DIGITAL_ORIGIN,
        page_size=BORN_DIGITAL_SIZE,
    )


def layered(page: Rendered) -> tuple[bytes, str]:
    """A scan of ``page`` under an invisible text layer that says other words, and what it says.

    The layer spells each word backwards on the word's box: the same letters,
    so the same width, yet text taken from the layer cannot be mistaken for
    text read from the pixels.
    """
    words = [Placed(w.text[::-1], w.left, w.top, w.width, w.height) for w in page.words]
    said = "\n".join(
        " ".join(word[::-1] for word in line.split()) for line in page.text.splitlines()
    )
    return pdfs.scanned(page.image, dpi=SCAN_DPI, words=words), said


def end_of_first_page(linearized: bytes) -> int:
    """Where a linearized PDF's first-page section ends: its linearization dictionary's /E."""
    found = re.search(rb"/Linearized.*?/E\s+(\d+)", linearized[:1024], re.S)
    assert found is not None, "not a linearized PDF"
    return int(found.group(1))


# --------------------------------------------------------------------------
# Running and judging


def once(
    folder: Path, server: FakeOcrSpace | None = None, **inbox: Any
) -> subprocess.CompletedProcess[str]:
    """``ocrwatch once`` over ``folder/in``: through ``server`` as ocr.space, else the local engine."""
    config: dict[str, Any] = {"engine": "tesseract"}
    if server is not None:
        config = {"engine": "ocrspace", "ocrspace": {"endpoint": server.url}}
    config["inboxes"] = [{"path": "in", **inbox}]
    return ocrwatch("once", "-c", str(write_config(folder, config)), env={"OCRSPACE_API_KEY": KEY})


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        yield fake


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def upload_size(request: RecordedRequest) -> tuple[int, int]:
    """(width, height) of the image a request uploaded."""
    pixels = cv2.imdecode(np.frombuffer(request.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert pixels is not None, f"upload {request.filename} is not an image"
    return pixels.shape[1], pixels.shape[0]


def rendered_size(page: Rendered, *, dpi: float = RENDER_DPI) -> tuple[int, int]:
    """The size in pixels of a :data:`SCAN_DPI` scan page rendered at ``dpi``."""
    return round(page.image.width * dpi / SCAN_DPI), round(page.image.height * dpi / SCAN_DPI)


def words_of(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [word for result in page["results"] for word in result["words"]]


def outside(page: dict[str, Any]) -> list[dict[str, Any]]:
    """The words of a recorded page whose box is not inside the page's pixels."""
    width, height = page["image"]["width"], page["image"]["height"]
    return [
        word
        for word in words_of(page)
        if not (
            0 <= word["left"]
            and 0 <= word["top"]
            and word["left"] + word["width"] <= width + 1
            and word["top"] + word["height"] <= height + 1
        )
    ]


def to_points(matrix: dict[str, float], x: float, y: float) -> tuple[float, float]:
    """A page pixel in PDF points through a record's ``to_points``."""
    return (
        matrix["a"] * x + matrix["b"] * y + matrix["c"],
        matrix["d"] * x + matrix["e"] * y + matrix["f"],
    )


def misplaced(page: dict[str, Any], drawn: Sequence[Placed], scale: float) -> list[str]:
    """Words drawn once and read once whose box lies more than WORD_TOLERANCE from the drawn box, scaled."""
    read = words_of(page)
    found = {
        word["text"]: word for word in read if [w["text"] for w in read].count(word["text"]) == 1
    }
    once_drawn = [word for word in drawn if [w.text for w in drawn].count(word.text) == 1]
    assert len([word for word in once_drawn if word.text in found]) >= len(once_drawn) // 2
    return [
        word.text
        for word in once_drawn
        if word.text in found
        and (
            abs(found[word.text]["left"] - word.left * scale) > WORD_TOLERANCE
            or abs(found[word.text]["top"] - word.top * scale) > WORD_TOLERANCE
        )
    ]


def rates(texts: Sequence[str], pages: Sequence[Rendered]) -> list[float]:
    """The character error rate of each text against its page's ground truth, rounded for reading."""
    assert len(texts) == len(pages), texts
    return [round(cer(text, page.text), 4) for text, page in zip(texts, pages, strict=True)]


def all_close(texts: Sequence[str], pages: Sequence[Rendered]) -> bool:
    return all(rate < CER_BUDGET for rate in rates(texts, pages))


def summary_count(stderr: str, label: str) -> int:
    """The count ``once``'s summary table gives ``label`` (0 when the row is absent)."""
    found = re.search(rf"^{re.escape(label)} +(\d+)$", stderr, re.M)
    return int(found.group(1)) if found else 0


# --------------------------------------------------------------------------
# Scanned PDFs


def test_a_scanned_pdf_is_read_page_by_page_by_the_local_engine(
    tmp_path: Path, inbox: Path
) -> None:
    """Three scan pages: three parts of the .txt split by form feeds, each its page's text, boxed on its page."""
    pages = scans()
    document = write(inbox / "scan.pdf", scan_pdf(pages))

    result = once(tmp_path)

    assert 0 == result.returncode, result.stderr
    data = done_record(document)
    assert ({"format": "PDF", "pages": 3, "frames": 3}, []) == (
        data["document"],
        data["failed_pages"],
    )
    parts = text_of(document).split("\f")
    assert 3 == len(parts) and all(part.endswith("\n") for part in parts), parts
    assert all_close(parts, pages), rates(parts, pages)
    assert parts == [page["text"] for page in data["pages"]]
    for number, (entry, page) in enumerate(zip(data["pages"], pages, strict=True), start=1):
        width, height = rendered_size(page)
        assert (number, "done", "ocr") == (entry["number"], entry["status"], entry["text_source"])
        assert (width, height, [RENDER_DPI, RENDER_DPI]) == (
            entry["image"]["width"],
            entry["image"]["height"],
            entry["image"]["dpi"],
        )
        # The top-left pixel corner is the page's top-left in points (y up), the bottom-right its bottom-right.
        points = (page.image.width * 72 / SCAN_DPI, page.image.height * 72 / SCAN_DPI)
        corners = [to_points(entry["to_points"], x, y) for x, y in ((0, 0), (width, height))]
        assert [0.0, points[1], points[0], 0.0] == pytest.approx(
            [*corners[0], *corners[1]], abs=0.05
        )
        assert len(words_of(entry)) >= len(page.words) // 2
        assert [] == outside(entry)
        assert [] == misplaced(entry, page.words, RENDER_DPI / SCAN_DPI)


def test_a_scanned_pdf_costs_one_ocrspace_request_per_page(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Through ocr.space each page is one upload of that page alone, and comes back with words."""
    pages = scans()
    document = write(inbox / "scan.pdf", scan_pdf(pages))

    result = once(tmp_path, server)

    assert 0 == result.returncode, result.stderr
    assert [()] * 3 == [request.problems for request in server.requests]
    assert sorted(rendered_size(page) for page in pages) == sorted(
        upload_size(request) for request in server.requests
    )
    data = done_record(document)
    assert [(1, "ocr", 1), (2, "ocr", 1), (3, "ocr", 1)] == [
        (page["number"], page["text_source"], page["requests"]) for page in data["pages"]
    ]
    assert 3 == data["requests"]
    texts = [entry["text"] for entry in data["pages"]]
    assert all_close(texts, pages), rates(texts, pages)
    assert [True] * 3 == [bool(words_of(entry)) for entry in data["pages"]]
    assert [[]] * 3 == [outside(entry) for entry in data["pages"]]


# --------------------------------------------------------------------------
# Text a PDF already has


def test_a_born_digital_pdf_is_read_from_its_own_text_at_no_cost(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Visible text is taken as it is, with a box on the page for every word, and nothing is sent."""
    document = write(inbox / "letter.pdf", born_digital())

    result = once(tmp_path, server)

    assert 0 == result.returncode, result.stderr
    assert [] == server.requests
    data = done_record(document)
    (page,) = data["pages"]
    assert ("embedded", 0) == (page["text_source"], page["requests"])
    assert "\n".join(BORN_DIGITAL_LINES) + "\n" == text_of(document)
    assert " ".join(BORN_DIGITAL_LINES).split() == [word["text"] for word in words_of(page)]
    assert [] == outside(page)
    scale = TEXT_PAGE_DPI / 72
    width, height = page["image"]["width"], page["image"]["height"]
    assert (round(BORN_DIGITAL_SIZE[0] * scale), round(BORN_DIGITAL_SIZE[1] * scale)) == (
        width,
        height,
    )
    # The first word of each line starts at the line's origin and sits on its baseline.
    first_words = [word for word in words_of(page) if word["text"] in ("The", "Fresh")]
    left, baseline = BORN_DIGITAL_ORIGIN
    leading = BORN_DIGITAL_FONT * 1.5
    for index, word in enumerate(first_words):
        baseline_pixels = (BORN_DIGITAL_SIZE[1] - (baseline - index * leading)) * scale
        assert abs(word["left"] - left * scale) <= 3, word
        assert word["top"] < baseline_pixels <= word["top"] + word["height"] + 2, word


def test_text_layer_force_sends_every_page_even_with_text(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """``pdf: {text_layer: force}`` OCRs born-digital pages: one request each, text read from pixels."""
    document = write(inbox / "letter.pdf", combined([born_digital(), born_digital()]))

    result = once(tmp_path, server, pdf={"text_layer": "force"})

    assert 0 == result.returncode, result.stderr
    assert 2 == len(server.requests)
    data = done_record(document)
    assert ["ocr", "ocr"] == [page["text_source"] for page in data["pages"]]
    for page in data["pages"]:
        assert cer(page["text"], "\n".join(BORN_DIGITAL_LINES)) < CER_BUDGET


@pytest.mark.parametrize(
    ("text_layer", "source", "requests"), [("skip", "embedded", 0), ("redo", "ocr", 1)]
)
def test_an_invisible_text_layer_is_kept_by_skip_and_replaced_by_redo(
    tmp_path: Path,
    inbox: Path,
    server: FakeOcrSpace,
    text_layer: str,
    source: str,
    requests: int,
) -> None:
    """An earlier OCR layer over a scan: skip takes its words for free, redo reads the pixels again."""
    page = scans()[0]
    data, layer_text = layered(page)
    document = write(inbox / "ocred.pdf", data)

    result = once(tmp_path, server, pdf={"text_layer": text_layer})

    assert 0 == result.returncode, result.stderr
    assert requests == len(server.requests)
    (entry,) = done_record(document)["pages"]
    assert source == entry["text_source"]
    expected = layer_text if text_layer == "skip" else page.text
    assert cer(text_of(document), expected) < CER_BUDGET
    backwards = page.words[0].text[::-1]
    assert (backwards in text_of(document).split()) == (text_layer == "skip")
    assert words_of(entry) and [] == outside(entry)


def test_a_mixed_pdf_pays_only_for_its_scanned_page(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Page 1 born digital, page 2 a scan: one request, for page 2, and each page's own text."""
    page = scans()[1]
    document = write(inbox / "mixed.pdf", combined([born_digital(), scan_pdf([page])]))

    result = once(tmp_path, server)

    assert 0 == result.returncode, result.stderr
    assert [rendered_size(page)] == [upload_size(request) for request in server.requests]
    data = done_record(document)
    assert [("embedded", 0), ("ocr", 1)] == [
        (entry["text_source"], entry["requests"]) for entry in data["pages"]
    ]
    first, second = text_of(document).split("\f")
    assert "\n".join(BORN_DIGITAL_LINES) + "\n" == first
    assert cer(second, page.text) < CER_BUDGET


# --------------------------------------------------------------------------
# Multi-page TIFFs


@cache
def feeder_pages() -> tuple[Rendered, ...]:
    """Three pages of three sizes: a clean page for G4, a longer one for LZW, a tinted one for JPEG."""
    return (
        render.printed(4, dpi=SCAN_DPI, lines=3),
        render.printed(5, dpi=SCAN_DPI, lines=5),
        render.tinted(6),
    )


def test_a_multipage_tiff_of_g4_lzw_and_jpeg_pages_is_read_whole(
    tmp_path: Path, inbox: Path
) -> None:
    """A feeder's TIFF (G4, LZW, JPEG pages of three sizes): every page read, at its own size."""
    pages = feeder_pages()
    document = write(inbox / "feed.tif", tiffs.feeder(pages, dpi=SCAN_DPI))

    result = once(tmp_path)

    assert 0 == result.returncode, result.stderr
    data = done_record(document)
    assert {"format": "TIFF", "pages": 3, "frames": 3} == data["document"]
    assert [(p.image.width, p.image.height) for p in pages] == [
        (entry["image"]["width"], entry["image"]["height"]) for entry in data["pages"]
    ]
    assert [([SCAN_DPI, SCAN_DPI], None, "ocr")] * 3 == [
        (entry["image"]["dpi"], entry["to_points"], entry["text_source"]) for entry in data["pages"]
    ]
    parts = text_of(document).split("\f")
    assert all_close(parts, pages), rates(parts, pages)
    assert [[]] * 3 == [outside(entry) for entry in data["pages"]]


def test_a_tiff_with_a_broken_page_fails_naming_it_and_the_run_goes_on(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Noise in page 2's strip fails the TIFF as bad input naming page 2, at no cost; a PNG beside it is read."""
    broken = write(inbox / "broken.tif", tiffs.with_garbage_page(scans(), broken=1, dpi=SCAN_DPI))
    good = scans()[0].write(inbox, "good")

    result = once(tmp_path, server)

    assert 1 == result.returncode
    error = error_record(broken)["error"]
    assert "bad_input" == error["classification"]
    assert re.search(r"\bpage 2\b", error["message"]), error["message"]
    assert not broken.with_name("broken.tif.txt").exists()
    assert cer(text_of(good), scans()[0].text) < CER_BUDGET
    assert [(scans()[0].image.width, scans()[0].image.height)] == [
        upload_size(request) for request in server.requests
    ]


# --------------------------------------------------------------------------
# PDFs that cannot be read


@cache
def page_count_bomb() -> bytes:
    """20,000 empty pages sharing one content stream (about 5 MB)."""
    return pdfs.blank(BOMB_PAGES)


def test_bad_pdfs_each_fail_clearly_at_no_cost_and_the_run_goes_on(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Encrypted, broken, pageless and 20,000-page PDFs each get an error sidecar saying why; a good PDF is read."""
    encrypted = write(
        inbox / "locked.pdf",
        pdfs.encrypted(scan_pdf(scans()[:1]), user=PASSWORD, owner="owner secret"),
    )
    broken = write(inbox / "broken.pdf", pdfs.broken())
    empty = write(inbox / "empty.pdf", pdfs.blank(0))
    bomb = write(inbox / "bomb.pdf", page_count_bomb())
    good = write(inbox / "good.pdf", scan_pdf(scans()[:1]))

    result = once(tmp_path, server)

    assert 1 == result.returncode
    errors = {path.name: error_record(path)["error"] for path in (encrypted, broken, empty, bomb)}
    assert {name: "bad_input" for name in errors} == {
        name: error["classification"] for name, error in errors.items()
    }
    assert "encrypted" in errors["locked.pdf"]["message"]
    assert "no pages" in errors["empty.pdf"]["message"]
    assert (
        f"PDF has {BOMB_PAGES} pages, more than the limit of {DEFAULT_MAX_PAGES}"
        in errors["bomb.pdf"]["message"]
    )
    assert 1 == len(server.requests), "only the good PDF's page costs a request"
    assert cer(text_of(good), scans()[0].text) < CER_BUDGET


def test_an_encrypted_pdf_is_read_with_its_password_file(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """With ``pdf.password_file`` holding the user password an encrypted scan is read; one locked otherwise is not."""
    secret = tmp_path / "pdf-password"
    secret.write_text(PASSWORD + "\n")
    document = write(
        inbox / "locked.pdf",
        pdfs.encrypted(scan_pdf(scans()[:2]), user=PASSWORD, owner="owner secret"),
    )
    other = write(
        inbox / "other.pdf",
        pdfs.encrypted(scan_pdf(scans()[:1]), user="another password", owner="another owner"),
    )

    result = once(tmp_path, server, pdf={"password_file": str(secret)})

    assert 1 == result.returncode, result.stderr
    assert 2 == len(server.requests)
    parts = text_of(document).split("\f")
    assert all_close(parts, scans()[:2]), rates(parts, scans()[:2])
    assert PASSWORD not in document.with_name("locked.pdf.json").read_text()
    error = error_record(other)["error"]
    assert ("bad_input", True) == (error["classification"], "encrypted" in error["message"])
    assert PASSWORD not in other.with_name("other.pdf.error.json").read_text()


def truncations() -> dict[str, bytes]:
    """A 3-page scan PDF, plain and linearized, and a 3-page TIFF, cut where a writer may still be at work."""
    whole = scan_pdf(scans())
    linear = pdfs.linearized(whole)
    tiff = tiffs.feeder(feeder_pages(), dpi=SCAN_DPI)
    return {
        "third.pdf": whole[: len(whole) // 3],
        "two-thirds.pdf": whole[: 2 * len(whole) // 3],
        "in-xref.pdf": whole[: whole.rindex(b"\nxref\n") + 40],
        "linearized-first-page.pdf": linear[: end_of_first_page(linear)],
        "second-page.tif": tiff[: sum(tiffs.strip(tiff, 1)) // 2],
    }


def test_truncated_documents_fail_as_incomplete_at_no_cost(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Documents cut short are still being written: with no time to wait they fail as incomplete, unsent.

    The cuts: a third and two thirds into a PDF, inside its cross-reference
    table, a linearized PDF right after its first page's section (which holds
    a trailer and an end marker of its own), and a TIFF inside its second page.
    """
    cuts = [write(inbox / name, data) for name, data in truncations().items()]
    good = scans()[2].write(inbox, "good")

    result = once(tmp_path, server, incomplete_timeout=0)

    assert 1 == result.returncode
    assert {path.name: "incomplete" for path in cuts} == {
        path.name: error_record(path)["error"]["classification"] for path in cuts
    }
    assert [scans()[2].image.size] == [upload_size(request) for request in server.requests], (
        "only the whole PNG beside them is sent"
    )
    assert cer(text_of(good), scans()[2].text) < CER_BUDGET


def test_a_pdf_whose_pages_all_load_but_without_its_end_marker_is_read_with_a_note(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """Every page loads but ``%%EOF`` is missing: after the incomplete timeout (0 here) it is read, noting so."""
    whole = scan_pdf(scans()[:2])
    document = write(inbox / "unterminated.pdf", whole[: whole.rindex(b"%%EOF")])

    result = once(tmp_path, server, incomplete_timeout=0)

    assert 0 == result.returncode, result.stderr
    assert 2 == len(server.requests)
    data = done_record(document)
    assert "%%EOF" in data.get("note", ""), data.get("note")
    assert 2 == data["document"]["pages"]


# --------------------------------------------------------------------------
# Records of the previous release


V1_OCRSPACE_SETTINGS: dict[str, Any] = {
    "engine": "ocrspace",
    "language": "eng",
    "crop": None,
    "regions": None,
    "overlay": False,
    "detect_orientation": True,
    "ocrspace": {"ocr_engine": 1, "max_upload_bytes": 1_048_576, "scale": False, "table": False},
}
"""What release 1 recorded as the settings of a default ocr.space inbox (overlay was one of them)."""


def v1_fingerprint(settings: dict[str, Any]) -> str:
    """Release 1's settings fingerprint: the SHA-256 of the settings as canonical JSON."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_v1_sidecars(
    image: Path, *, text: str, format: str, size: tuple[int, int], frames: int
) -> None:
    """The .txt and .json release 1 wrote for ``image`` read through ocr.space: one page, at the top level."""
    data = image.read_bytes()
    info = image.stat()
    record: dict[str, Any] = {
        "schema_version": 1,
        "status": "done",
        "ocrwatch_version": __version__,
        "source": {
            "path": str(image),
            "name": image.name,
            "size": info.st_size,
            "mtime": "2026-11-30T10:00:00.000Z",
            "mtime_ns": info.st_mtime_ns,
            "ctime_ns": info.st_ctime_ns,
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "image": {
            "format": format,
            "mode": "RGB",
            "width": size[0],
            "height": size[1],
            "stored_width": size[0],
            "stored_height": size[1],
            "orientation": 1,
            "frames": frames,
        },
        "settings": V1_OCRSPACE_SETTINGS,
        "settings_fingerprint": v1_fingerprint(V1_OCRSPACE_SETTINGS),
        "engine": {"name": "ocrspace", "ocr_engine": 1},
        "crop": None,
        "text": text,
        "results": [
            {
                "name": None,
                "box": {"x": 0, "y": 0, "width": size[0], "height": size[1]},
                "text": text,
                "pages": [{"text": text, "orientation": 0, "error": None}],
                "seconds": 0.5,
                "attempts": 1,
                "upload": None,
            }
        ],
        "attempt": 1,
        "requests": 1,
        "timings": {"started": "2026-11-30T10:00:01.000Z", "finished": "2026-11-30T10:00:02.000Z"},
        "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    if frames > 1:
        record["note"] = f"only the first of {frames} frames/pages was read"
    image.with_name(image.name + ".txt").write_text(text, encoding="utf-8")
    image.with_name(image.name + ".json").write_text(json.dumps(record, indent=1) + "\n")


def test_a_release_1_record_of_an_image_is_current(
    tmp_path: Path, inbox: Path, server: FakeOcrSpace
) -> None:
    """An image read by release 1, unchanged since, costs nothing: its sidecars are left as they are."""
    page = scans()[0]
    image = page.write(inbox, "old")
    write_v1_sidecars(image, text=page.text + "\n", format="PNG", size=page.image.size, frames=1)
    before = image.with_name("old.png.json").read_bytes()

    result = once(tmp_path, server)

    assert 0 == result.returncode, result.stderr
    assert [] == server.requests
    assert 1 == summary_count(result.stderr, "skipped (sidecar current)"), result.stderr
    assert before == image.with_name("old.png.json").read_bytes()


def test_a_release_1_record_of_a_multipage_tiff_is_read_again(tmp_path: Path, inbox: Path) -> None:
    """Release 1 read only the first of a TIFF's three pages: now all three are read, one request each."""
    pages = feeder_pages()
    document = write(inbox / "feed.tif", tiffs.feeder(pages, dpi=SCAN_DPI))
    write_v1_sidecars(
        document, text=pages[0].text + "\n", format="TIFF", size=pages[0].image.size, frames=3
    )

    with FakeOcrSpace(mode="text", api_key=KEY) as server:
        result = once(tmp_path, server)

    assert 0 == result.returncode, result.stderr
    assert 3 == len(server.requests)
    data = done_record(document)
    assert (3, 3) == (data["schema_version"], data["document"]["pages"])
    assert 3 == len(text_of(document).split("\f"))


# --------------------------------------------------------------------------
# A page that fails for good


def shows_marker(upload: bytes) -> bool:
    """Whether an uploaded page shows :data:`MARKER` (dark at its centre, wherever the page was scaled)."""
    pixels = cv2.imdecode(np.frombuffer(upload, np.uint8), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        return False
    # Every scan page is SCAN_DPI; the square's centre is at a fixed fraction of its width.
    width = scans()[0].image.width
    centre = (MARKER[0] + MARKER[2]) / 2 / width
    x = y = round(centre * pixels.shape[1])
    return bool(pixels[y - 2 : y + 3, x - 2 : x + 3].mean() < 64)


def refuse_marked(upload: bytes) -> Answer | None:
    """ocr.space's answer to a file it cannot recognise (exit 99), for an upload showing the marker.

    A permanent failure: retrying it would spend quota for nothing.
    """
    if not shows_marker(upload):
        return None
    refusal = load_answer("error_exit99_unable_to_recognize_file_type")
    return Answer(refusal.status, refusal.body_bytes, refusal.content_type)


def test_a_page_failing_for_good_leaves_a_partial_record_and_retry_reads_only_it(
    tmp_path: Path, inbox: Path
) -> None:
    """Page 2 refused: pages 1 and 3 are kept, the file is partial and listed; retry sends page 2 alone."""
    pages = list(scans())
    pages[1] = marked(pages[1])
    document = write(inbox / "scan.pdf", scan_pdf(pages))
    server = FakeOcrSpace(mode="tesseract", api_key=KEY, answer_for=refuse_marked)
    with server:
        first = once(tmp_path, server)
        first_requests = len(server.requests)
        config = str(tmp_path / "ocrwatch.yaml")
        data = record(document)
        listed = ocrwatch("failed", "-c", config, env={"OCRSPACE_API_KEY": KEY})
        retried = ocrwatch("retry", "-c", config, str(document), env={"OCRSPACE_API_KEY": KEY})
        server.answer_for = None
        server.reset()
        second = once(tmp_path, server)
        resent = server.requests

    assert 1 == first.returncode, first.stderr
    assert 3 == first_requests, "page 2's refusal is final: it is not sent again"
    assert ("partial", [2]) == (data["status"], data["failed_pages"])
    assert [("done", "ocr"), ("failed", None), ("done", "ocr")] == [
        (page["status"], page["text_source"]) for page in data["pages"]
    ]
    assert "bad_input" == data["pages"][1]["error"]["classification"]
    parts = data["text"].split("\f")
    assert 3 == len(parts) and "" == parts[1]
    assert cer(parts[0], pages[0].text) < CER_BUDGET and cer(parts[2], pages[2].text) < CER_BUDGET
    assert 0 == listed.returncode and str(document) in listed.stdout, listed.stdout
    assert 0 == retried.returncode, retried.stderr
    assert 0 == second.returncode, second.stderr
    assert [rendered_size(pages[1])] == [upload_size(request) for request in resent]
    again = done_record(document)
    assert ([], ["done"] * 3) == (again["failed_pages"], [p["status"] for p in again["pages"]])
    assert all_close(text_of(document).split("\f"), pages)
    assert fold(parts[0]) == fold(text_of(document).split("\f")[0]), "page 1 was kept, not re-read"


def test_a_once_run_that_gave_up_on_a_page_resumes_the_document_next_time(
    tmp_path: Path, inbox: Path
) -> None:
    """Page 3 gets only 503s until the run gives up: pages 1 and 2 are kept, and the next run
    (--retry-failed) sends page 3 alone."""
    pages = list(scans())
    pages[2] = marked(pages[2])
    document = write(inbox / "scan.pdf", scan_pdf(pages))
    unavailable = Answer(503, b"Service Unavailable", "text/plain")

    def failing_page_3(upload: bytes) -> Answer | None:
        return unavailable if shows_marker(upload) else None

    server = FakeOcrSpace(mode="tesseract", api_key=KEY, answer_for=failing_page_3)
    config = write_config(
        tmp_path,
        {
            "engine": "ocrspace",
            "ocrspace": {"endpoint": server.url, "attempts": 1},
            "inboxes": [{"path": "in"}],
        },
    )
    env = {"OCRSPACE_API_KEY": KEY}
    with server:
        first = ocrwatch("once", "-c", str(config), env=env)
        sent_first = len(server.requests)
        failure = error_record(document)["error"]["classification"]
        server.answer_for = None
        second = ocrwatch("once", "--retry-failed", "-c", str(config), env=env)
        resent = server.requests[sent_first:]

    assert (1, "transient", 3) == (first.returncode, failure, sent_first), first.stderr
    assert 0 == second.returncode, second.stderr
    assert [True] == [shows_marker(request.data) for request in resent]
    assert all_close(text_of(document).split("\f"), pages)
