"""Specification of the fake ocr.space server that tests and benchmarks use instead of the API."""

# SIM300 wants `actual == expected`; STYLE.md has tests read `expected == actual`.
# ruff: noqa: SIM300

from __future__ import annotations

import collections
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from tests.support import ocrspace_fixtures
from tests.support.ocrspace_server import (
    E400,
    E501,
    E555,
    FAULTS,
    FakeOcrSpace,
    rate_limit_sentence,
)
from tests.support.render import Placed, page, rotated

KEY = "TEST-KEY"
HTTP_TIMEOUT_SECONDS = 10.0
WAIT_SECONDS = 5.0
BOX_TOLERANCE_PIXELS = 4
REPOSITORY = Path(__file__).resolve().parents[2]
PAGE_LINES = ["The quick brown fox jumps", "over the lazy dog near", "the river bank today"]
# Tesseract's orientation detection needs a few lines more than PAGE_LINES to be sure.
TURNED_LINES = [
    "The quick brown fox jumps over the lazy dog",
    "near the river bank on a sunny day while",
    "children play football in the park and",
    "their parents read newspapers on benches",
    "under the old oak trees beside the lake",
    "where ducks swim quietly among the reeds",
]
BLANK = np.full((64, 64), 255, np.uint8)
SMALL_PNG = cv2.imencode(".png", BLANK)[1].tobytes()
VALID_FIELDS = {
    "language": "eng",
    "isOverlayRequired": "false",
    "filetype": "PNG",
    "OCREngine": "1",
}


def post(
    url: str,
    /,
    *,
    data: bytes = SMALL_PNG,
    filename: str = "page.png",
    fields: dict[str, str] | list[tuple[str, str]] | None = None,
    key: str | None = KEY,
    timeout: float = HTTP_TIMEOUT_SECONDS,
    **changes: str,
) -> requests.Response:
    """Upload like ocrwatch's client does; ``changes`` override single form fields."""
    headers = {} if key is None else {"apikey": key}
    form = fields if fields is not None else VALID_FIELDS | changes
    files = {"file": (filename, data, "application/octet-stream")}
    return requests.post(url, headers=headers, files=files, data=form, timeout=timeout)


def rendered_page(
    lines: list[str] = PAGE_LINES, *, size: tuple[int, int] = (1000, 300), degrees: float = 0
) -> tuple[Image.Image, list[Placed]]:
    """A page of ``lines`` in large clean type, turned anticlockwise by ``degrees``."""
    image, placed = page(lines, size=size, font_size=40)
    return rotated(image, degrees) if degrees else image, placed


def encoded(image: Image.Image, image_format: str) -> bytes:
    """``image`` in grey, encoded as PNG, JPEG or TIFF."""
    buffer = io.BytesIO()
    image.convert("L").save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture
def server() -> Iterator[FakeOcrSpace]:
    """A fake in text mode: every protocol check, no OCR cost."""
    with FakeOcrSpace(mode="text") as fake:
        yield fake


@pytest.fixture(scope="module")
def ocr_server() -> Iterator[FakeOcrSpace]:
    """One fake in tesseract mode shared by the OCR tests, so Tesseract loads once."""
    with FakeOcrSpace() as fake:
        yield fake


# --- Reading rendered pages --------------------------------------------------------------


@pytest.fixture(scope="module")
def page_answer(ocr_server: FakeOcrSpace) -> tuple[dict[str, Any], list[Placed]]:
    """The fake's answer to a rendered page uploaded as PNG with overlay, and where its words are."""
    image, placed = rendered_page()
    response = post(ocr_server.url, data=encoded(image, "PNG"), isOverlayRequired="true")
    assert (200, "application/json; charset=utf-8") == (
        response.status_code,
        response.headers["Content-Type"],
    )
    assert () == ocr_server.requests[-1].problems
    return response.json(), placed


def test_success_answer_has_the_documented_shape(
    page_answer: tuple[dict[str, Any], list[Placed]],
) -> None:
    """A read upload is answered in API.md's success shape: keys, types and fixed values."""
    body = page_answer[0]
    first_page = body["ParsedResults"][0]
    top_keys = ["ParsedResults", "OCRExitCode", "IsErroredOnProcessing"]
    top_keys += ["ProcessingTimeInMilliseconds", "SearchablePDFURL"]
    page_keys = ["TextOverlay", "TextOrientation", "FileParseExitCode", "ParsedText"]
    page_keys += ["ErrorMessage", "ErrorDetails"]
    assert top_keys == list(body)
    assert page_keys == list(first_page)
    assert (1, False, "Searchable PDF not generated as it was not requested.") == (
        body["OCRExitCode"],
        body["IsErroredOnProcessing"],
        body["SearchablePDFURL"],
    )
    assert body["ProcessingTimeInMilliseconds"].isdigit()
    assert ("0", 1, "", "") == (
        first_page["TextOrientation"],
        first_page["FileParseExitCode"],
        first_page["ErrorMessage"],
        first_page["ErrorDetails"],
    )


def test_png_upload_is_read_with_word_boxes_in_uploaded_pixels(
    page_answer: tuple[dict[str, Any], list[Placed]],
) -> None:
    """The page's text comes back with \\r\\n line ends, one overlay line per text line, boxes in place."""
    body, placed = page_answer
    first_page = body["ParsedResults"][0]
    lines = first_page["TextOverlay"]["Lines"]
    first = placed[0]
    expected_first_word = {
        "WordText": first.text,
        "Left": first.left,
        "Top": first.top,
        "Height": first.height,
        "Width": first.width,
    }
    assert "".join(f"{line}\r\n" for line in PAGE_LINES) == first_page["ParsedText"]
    assert (True, "Total lines: 3") == (
        first_page["TextOverlay"]["HasOverlay"],
        first_page["TextOverlay"]["Message"],
    )
    assert ["LineText", "Words", "MaxHeight", "MinTop"] == list(lines[0])
    assert PAGE_LINES == [line["LineText"] for line in lines]
    assert expected_first_word == pytest.approx(lines[0]["Words"][0], abs=BOX_TOLERANCE_PIXELS)


def test_jpeg_upload_without_overlay_gets_the_not_requested_overlay(
    ocr_server: FakeOcrSpace,
) -> None:
    """Without isOverlayRequired the text comes back and TextOverlay says it was not requested."""
    image, _ = rendered_page()
    response = post(
        ocr_server.url, data=encoded(image, "JPEG"), filename="page.jpeg", filetype="JPG"
    )
    first_page = response.json()["ParsedResults"][0]
    expected_overlay = {
        "Lines": [],
        "HasOverlay": False,
        "Message": "Text overlay is not provided as it is not requested",
    }
    assert expected_overlay == first_page["TextOverlay"]
    assert "".join(f"{line}\r\n" for line in PAGE_LINES) == first_page["ParsedText"]


def test_tiff_upload_is_read_as_sent(ocr_server: FakeOcrSpace) -> None:
    """A TIFF, uploaded byte for byte as TIF, is read."""
    image, _ = rendered_page()
    response = post(
        ocr_server.url, data=encoded(image, "TIFF"), filename="scan.tiff", filetype="TIF"
    )
    assert (
        "".join(f"{line}\r\n" for line in PAGE_LINES)
        == (response.json()["ParsedResults"][0]["ParsedText"])
    )


def test_detect_orientation_reads_an_upside_down_page(ocr_server: FakeOcrSpace) -> None:
    """With detectOrientation the page is read in Tesseract's AUTO_OSD mode, so a turned page reads."""
    image, _ = rendered_page(TURNED_LINES, size=(1400, 700), degrees=180)
    response = post(ocr_server.url, data=encoded(image, "PNG"), detectOrientation="true")
    assert (
        "".join(f"{line}\r\n" for line in TURNED_LINES)
        == (response.json()["ParsedResults"][0]["ParsedText"])
    )


def test_language_without_traineddata_falls_back_to_english(ocr_server: FakeOcrSpace) -> None:
    """A language Tesseract lacks is read as eng, and the record notes it."""
    response = post(ocr_server.url, language="ger")
    assert 1 == response.json()["OCRExitCode"]
    expected = ("language 'ger' (deu) is not installed; read as eng",)
    assert expected == ocr_server.requests[-1].notes


def test_undecodable_image_is_an_engine_parse_error(ocr_server: FakeOcrSpace) -> None:
    """Bytes with a PNG signature that OpenCV cannot decode get exit 3 and FileParseExitCode -10."""
    response = post(ocr_server.url, data=SMALL_PNG[:40])
    body = response.json()
    assert (3, True) == (body["OCRExitCode"], body["IsErroredOnProcessing"])
    assert [-10] == [page["FileParseExitCode"] for page in body["ParsedResults"]]


# --- Protocol checks ---------------------------------------------------------------------


def exit_code(response: requests.Response) -> int | None:
    """OCRExitCode of a JSON object answer, else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("OCRExitCode") if isinstance(body, dict) else None


VIOLATIONS: list[tuple[str, dict[str, Any], list[str], int, int | None]] = [
    (
        "apikey as a form field",
        {"apikey": KEY},
        ["apikey sent as a form field; ocrwatch sends it in the apikey header"],
        200,
        99,
    ),
    (
        "a parameter ocrwatch must not send",
        {"url": "http://example.com/a.png"},
        ["parameter 'url' is valid for ocr.space but ocrwatch must not send it"],
        200,
        99,
    ),
    (
        "a capitalised boolean",
        {"isOverlayRequired": "True"},
        ["Value for parameter 'isOverlayRequired' is invalid: 'True' (lowercase true or false)"],
        200,
        99,
    ),
    (
        "a boolean sent as 1",
        {"scale": "1"},
        ["Value for parameter 'scale' is invalid: '1' (lowercase true or false)"],
        200,
        99,
    ),
    (
        "an engine that does not exist, answered like the real API",
        {"OCREngine": "5"},
        ["Value for parameter 'OCREngine' is invalid: '5' (1, 2 or 3)"],
        200,
        6,
    ),
    (
        "a two-letter language",
        {"language": "en"},
        ["Value for parameter 'language' is invalid: 'en' (3 lowercase letters or auto)"],
        200,
        99,
    ),
    (
        "language auto with engine 1",
        {"language": "auto"},
        ["language 'auto' needs OCREngine 2 or 3, not 1"],
        200,
        99,
    ),
    (
        "a filetype that contradicts the bytes",
        {"filetype": "JPG"},
        ["filetype 'JPG' does not match the bytes, which are PNG"],
        200,
        99,
    ),
    (
        "a file name without extension",
        {"filename": "page"},
        ["upload filename 'page' has no image extension"],
        200,
        99,
    ),
    (
        "a file name whose extension contradicts the bytes",
        {"filename": "page.jpg"},
        ["upload filename 'page.jpg' says JPG but the bytes are PNG"],
        200,
        99,
    ),
    (
        "bytes that are no image or PDF, answered with the 2026 error object",
        {"data": b"PK\x03\x04 a zip archive", "filename": "page.zip"},
        ["upload 'page.zip' is not a JPG, PNG, GIF, TIF or BMP image, or a PDF"],
        400,
        None,
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected_problems", "expected_status", "expected_exit"),
    [case[1:] for case in VIOLATIONS],
    ids=[case[0] for case in VIOLATIONS],
)
def test_protocol_violation_is_recorded_and_refused(
    server: FakeOcrSpace,
    changes: dict[str, Any],
    expected_problems: list[str],
    expected_status: int,
    expected_exit: int | None,
) -> None:
    """Each protocol violation lands in the record's problems and gets the real API's refusal."""
    upload = {name: value for name, value in changes.items() if name in ("data", "filename")}
    fields = {name: value for name, value in changes.items() if name not in upload}
    response = post(server.url, **upload, **fields)
    assert expected_problems == list(server.requests[-1].problems)
    assert (expected_status, expected_exit) == (response.status_code, exit_code(response))


def exit99_naming(parameter: str) -> Any:
    """The documented exit-99 answer (fixture error_exit99_parameter_name_invalid) for ``parameter``."""
    body = FakeOcrSpace.sample("error_exit99_parameter_name_invalid")
    return json.loads(body.replace(b"'pages'", f"'{parameter}'".encode()))


def test_unknown_parameter_gets_the_documented_exit99_answer(server: FakeOcrSpace) -> None:
    """An unknown parameter gets exactly the documented exit-99 body, without ParsedResults."""
    response = post(server.url, pages="3")
    assert (200, exit99_naming("pages")) == (response.status_code, response.json())
    assert ("Parameter name 'pages' is invalid",) == server.requests[-1].problems


def test_missing_filetype_is_flagged(server: FakeOcrSpace) -> None:
    """An upload without filetype is flagged, since ocrwatch always sends it."""
    fields = {key: value for key, value in VALID_FIELDS.items() if key != "filetype"}
    response = post(server.url, fields=fields)
    expected = ("filetype is missing; ocrwatch sends it from a magic-byte sniff",)
    assert expected == server.requests[-1].problems
    assert 99 == exit_code(response)


def test_repeated_parameter_is_flagged(server: FakeOcrSpace) -> None:
    """A parameter sent twice, in any case, is flagged."""
    fields = [*VALID_FIELDS.items(), ("Language", "eng")]
    post(server.url, fields=fields)
    assert ("parameter 'Language' sent more than once",) == server.requests[-1].problems


def test_two_file_parts_are_flagged(server: FakeOcrSpace) -> None:
    """An upload with two file parts is flagged."""
    files = [("file", ("a.png", SMALL_PNG)), ("file2", ("b.png", SMALL_PNG))]
    headers = {"apikey": KEY}
    requests.post(
        server.url, headers=headers, files=files, data=VALID_FIELDS, timeout=HTTP_TIMEOUT_SECONDS
    )
    assert ("2 file parts; exactly one expected",) == server.requests[-1].problems


def test_query_string_is_flagged(server: FakeOcrSpace) -> None:
    """Parameters in the URL's query string are flagged: the key must never be in a URL."""
    post(f"{server.url}?apikey={KEY}")
    expected = (f"query string 'apikey={KEY}'; parameters belong in the form body",)
    assert expected == server.requests[-1].problems


def test_parameter_names_are_case_insensitive(server: FakeOcrSpace) -> None:
    """Parameter names in any case, and language auto with engine 2, pass every check."""
    fields = {"LANGUAGE": "auto", "ocrengine": "2", "isoverlayrequired": "true", "FileType": "PNG"}
    response = post(server.url, fields=fields)
    assert (200, 1) == (response.status_code, exit_code(response))
    assert () == server.requests[-1].problems


def test_urlencoded_body_without_file_gets_e400(server: FakeOcrSpace) -> None:
    """A urlencoded body is flagged and, carrying no file, gets the 2026 "no content" error."""
    response = requests.post(
        server.url,
        headers={"apikey": KEY},
        data={"base64Image": "data:x"},
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    expected_problems = (
        "body is 'application/x-www-form-urlencoded', not multipart/form-data",
        "parameter 'base64Image' is valid for ocr.space but ocrwatch must not send it",
        "no file part",
    )
    assert expected_problems == server.requests[-1].problems
    assert 400 == response.status_code
    assert {"error": E400[0], "details": E400[1]} == response.json()


def test_no_file_is_answered_before_the_key_is_checked(server: FakeOcrSpace) -> None:
    """A request with neither file nor key gets the 400 "no content" error, not the 403."""
    response = requests.post(
        server.url, files={"language": (None, "eng")}, timeout=HTTP_TIMEOUT_SECONDS
    )
    assert (400, E400[0]) == (response.status_code, response.json()["error"])


def test_wrong_key_gets_the_legacy_403(server: FakeOcrSpace) -> None:
    """A wrong key gets HTTP 403 with the JSON string "The API key is invalid"."""
    response = post(server.url, key="WRONG")
    record = server.requests[-1]
    assert (403, '"The API key is invalid"') == (response.status_code, response.text)
    assert "application/json; charset=utf-8" == response.headers["Content-Type"]
    assert ("apikey 'WRONG' is not the server's key",) == record.problems
    assert "WRONG" == record.headers["apikey"]


def test_missing_key_gets_403(server: FakeOcrSpace) -> None:
    """A request without apikey header gets HTTP 403."""
    response = post(server.url, key=None)
    assert (403, ("apikey missing",)) == (response.status_code, server.requests[-1].problems)


def test_wrong_key_can_get_the_2026_error_object() -> None:
    """With key_error="e555" a wrong key gets HTTP 403 with the E555 error object."""
    with FakeOcrSpace(mode="text", key_error="e555") as server:
        response = post(server.url, key="WRONG")
    assert (403, {"error": E555[0], "details": E555[1]}) == (response.status_code, response.json())


def test_without_api_key_any_key_is_accepted() -> None:
    """With api_key=None the key is not checked."""
    with FakeOcrSpace(mode="text", api_key=None) as server:
        response = post(server.url, key="anything")
    assert (200, 1) == (response.status_code, exit_code(response))


def test_lenient_server_records_problems_and_answers_anyway() -> None:
    """With strict=False problems are recorded but the upload is answered as a success."""
    with FakeOcrSpace(mode="text", strict=False) as server:
        response = post(server.url, isOverlayRequired="True")
        problems = server.requests[-1].problems
    assert (200, 1) == (response.status_code, exit_code(response))
    assert 1 == len(problems)


def test_path_is_case_insensitive_and_other_paths_are_404(server: FakeOcrSpace) -> None:
    """/Parse/Image works like /parse/image, other paths get 404 and GET gets 405."""
    base = server.url.removesuffix("/parse/image")
    statuses = [
        post(f"{base}/Parse/Image").status_code,
        post(f"{base}/parse/imageurl").status_code,
        requests.get(server.url, timeout=HTTP_TIMEOUT_SECONDS).status_code,
    ]
    assert [200, 404, 405] == statuses


# --- Answer modes ------------------------------------------------------------------------


def test_text_mode_answers_the_given_text_with_a_trivial_overlay() -> None:
    """Text mode answers its text with \\r\\n line ends and one overlay line per text line."""
    with FakeOcrSpace(mode="text", text="Hello  world\nSecond line") as server:
        page = post(server.url, isOverlayRequired="true").json()["ParsedResults"][0]
    first_line = page["TextOverlay"]["Lines"][0]
    expected_words = [
        {"WordText": "Hello", "Left": 10.0, "Top": 10.0, "Height": 20.0, "Width": 50.0},
        {"WordText": "world", "Left": 80.0, "Top": 10.0, "Height": 20.0, "Width": 50.0},
    ]
    assert "Hello  world\r\nSecond line\r\n" == page["ParsedText"]
    assert ["Hello world", "Second line"] == [
        line["LineText"] for line in page["TextOverlay"]["Lines"]
    ]
    assert expected_words == first_line["Words"]
    assert "Total lines: 2" == page["TextOverlay"]["Message"]


def test_fixed_mode_answers_the_given_body_status_and_type() -> None:
    """Fixed mode JSON-encodes a str body and sends the given status."""
    with FakeOcrSpace(mode="fixed", body="The API key is invalid", status=403) as server:
        response = post(server.url)
    assert (403, '"The API key is invalid"') == (response.status_code, response.text)


def test_mode_can_change_while_serving(server: FakeOcrSpace) -> None:
    """Setting mode on a running server changes the next answer."""
    server.mode = "fixed"
    server.body = {"OCRExitCode": 4}
    assert {"OCRExitCode": 4} == post(server.url).json()


def test_fixed_mode_sends_a_sample_unchanged() -> None:
    """Fixed mode with FakeOcrSpace.sample(name) as body sends those bytes, with status 200."""
    body = FakeOcrSpace.sample("ok_table_tabs.json")
    with FakeOcrSpace(mode="fixed", body=body) as server:
        response = post(server.url)
    assert (200, body) == (response.status_code, response.content)


@pytest.mark.parametrize("name", ocrspace_fixtures.names())
def test_every_fixture_replays_with_its_status_type_and_bytes(name: str) -> None:
    """replaying(name) answers an accepted upload with the fixture's status, content type and body."""
    fixture = ocrspace_fixtures.load(name)
    with FakeOcrSpace.replaying(name) as server:
        response = post(server.url)
    assert (fixture.status, fixture.content_type, fixture.body_bytes) == (
        response.status_code,
        response.headers["Content-Type"],
        response.content,
    )


def test_replaying_still_refuses_protocol_violations() -> None:
    """A replaying fake checks the upload first: a wrong key gets the 403, not the fixture."""
    with FakeOcrSpace.replaying("ok_two_pages") as server:
        response = post(server.url, key="WRONG")
    assert (403, '"The API key is invalid"') == (response.status_code, response.text)


# --- Answer fixtures ---------------------------------------------------------------------


def test_a_json_fixture_is_sent_as_compact_json() -> None:
    """A JSON string body is sent with its quotes; an object compactly, non-ASCII kept as UTF-8."""
    rate_limit = ocrspace_fixtures.load("rate_limit_403_json_string_demo_key")
    expected = b'"' + rate_limit_sentence(10, 600).encode() + b'"'
    assert expected == rate_limit.body_bytes
    assert b'{"error":"E400: No content provided"}' == FakeOcrSpace.sample(
        "e400_400_no_content_provided"
    )


def test_a_text_fixture_is_sent_as_its_exact_text() -> None:
    """A body of another content type is sent as its text, without quotes."""
    expected = rate_limit_sentence(500, 86400).encode()
    assert expected == ocrspace_fixtures.load("rate_limit_403_plain_text_free_daily").body_bytes


def test_a_fixture_without_its_documented_behaviour_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load() refuses a file whose about does not name its API.md section, or a non-string text body."""
    monkeypatch.setattr(ocrspace_fixtures, "FOLDER", tmp_path)
    vague = {"about": "a 403", "status": 403, "content_type": "text/plain", "body": "x"}
    typed = {"about": "API.md 5.1", "status": 403, "content_type": "text/plain", "body": {}}
    (tmp_path / "vague.json").write_text(json.dumps(vague))
    (tmp_path / "typed.json").write_text(json.dumps(typed))
    with pytest.raises(ValueError, match="must name the API.md section"):
        ocrspace_fixtures.load("vague")
    with pytest.raises(ValueError, match="needs its body as a string"):
        ocrspace_fixtures.load("typed")


@pytest.mark.parametrize(
    ("fault", "name"),
    [
        ("rate_limit_json", "rate_limit_403_json_string_demo_key"),
        ("invalid_key_legacy", "invalid_key_403_json_string"),
        ("invalid_key_e555", "invalid_key_403_e555_error_object"),
    ],
)
def test_faults_of_a_documented_shape_answer_like_its_fixture(fault: str, name: str) -> None:
    """The fake's own refusals are byte for byte the fixture of the same documented answer."""
    fixture = ocrspace_fixtures.load(name)
    with FakeOcrSpace(mode="text", script=[fault]) as server:
        response = post(server.url)
    assert (fixture.status, fixture.content_type, fixture.body_bytes) == (
        response.status_code,
        response.headers["Content-Type"],
        response.content,
    )


# --- Latency and rate limit --------------------------------------------------------------


def test_latency_delays_every_answer(server: FakeOcrSpace) -> None:
    """With latency set, no answer arrives sooner than that."""
    server.latency = 0.3
    started = time.monotonic()
    post(server.url)
    assert time.monotonic() - started >= server.latency


def test_rate_limit_refuses_beyond_n_requests_in_a_sliding_window() -> None:
    """Beyond N requests within S seconds the answer is 403 with the rate-limit JSON string."""
    now = [0.0]
    with FakeOcrSpace(mode="text", rate_limit=(2, 60), clock=lambda: now[0]) as server:
        statuses = [post(server.url).status_code for _ in range(3)]
        refusal = post(server.url)
        now[0] = 59.9
        statuses.append(post(server.url).status_code)
        now[0] = 60.0
        statuses.append(post(server.url).status_code)
    assert [200, 200, 403, 403, 200] == statuses
    assert rate_limit_sentence(2, 60) == refusal.json()
    assert "application/json; charset=utf-8" == refusal.headers["Content-Type"]


def test_rate_limit_can_answer_plain_text() -> None:
    """With rate_limit_text the refusal is the bare sentence as text/plain."""
    with FakeOcrSpace(mode="text", rate_limit=(0, 60), rate_limit_text=True) as server:
        response = post(server.url)
    assert (403, rate_limit_sentence(0, 60)) == (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("text/plain")


# --- Faults ------------------------------------------------------------------------------

BASE64_MESSAGE = (
    "Not a valid base64 image. The accepted base64 image format is "
    "'data:image/<content_type>;base64,<base64_image_content>'."
)
JSON_FAULTS: dict[str, tuple[int, Any]] = {
    "rate_limit_json": (403, rate_limit_sentence(10, 600)),
    "invalid_key_legacy": (403, "The API key is invalid"),
    "invalid_key_e555": (403, {"error": E555[0], "details": E555[1]}),
    "timeout_exit6": (
        200,
        {
            "ParsedResults": [],
            "OCRExitCode": 6,
            "IsErroredOnProcessing": True,
            "ErrorMessage": ["Timed out waiting for results"],
            "ProcessingTimeInMilliseconds": "5890",
        },
    ),
    "input_exit3": (
        200,
        {
            "ParsedResults": None,
            "OCRExitCode": 3,
            "IsErroredOnProcessing": True,
            "ErrorMessage": [BASE64_MESSAGE],
            "ErrorDetails": BASE64_MESSAGE,
            "ProcessingTimeInMilliseconds": "1",
            "SearchablePDFURL": None,
        },
    ),
    "input_exit99": (200, exit99_naming("attributes")),
    "http400_e501": (400, {"error": E501[0], "details": E501[1]}),
}


@pytest.mark.parametrize(("fault", "expected"), JSON_FAULTS.items(), ids=list(JSON_FAULTS))
def test_json_fault_has_its_status_and_body(fault: str, expected: tuple[int, Any]) -> None:
    """Each JSON fault answers its status and body once, then the server answers normally."""
    with FakeOcrSpace(mode="text", script=[fault]) as server:
        faulted, normal = post(server.url), post(server.url)
        records = server.requests
        counts = server.fault_counts
    assert expected == (faulted.status_code, faulted.json())
    assert "application/json; charset=utf-8" == faulted.headers["Content-Type"]
    assert 1 == exit_code(normal)
    assert [fault, None] == [record.fault for record in records]
    assert collections.Counter({fault: 1}) == counts


NON_JSON_FAULTS: dict[str, tuple[int, str | None, str]] = {
    "rate_limit_text": (403, "text/plain; charset=utf-8", rate_limit_sentence(10, 600)),
    "http500": (500, "text/html", "<!DOCTYPE html><html><head><title>500"),
    "http502": (502, None, ""),
    "http503": (503, "text/html", "<HTML><HEAD><TITLE>Service Unavailable"),
    "html_error": (200, "text/html", "<html><head><title>Runtime Error"),
    "malformed_json": (200, "application/json; charset=utf-8", "Object reference not set"),
    "truncated_json": (200, "application/json; charset=utf-8", '{"ParsedResults":[{"TextOverlay"'),
}


@pytest.mark.parametrize(("fault", "expected"), NON_JSON_FAULTS.items(), ids=list(NON_JSON_FAULTS))
def test_non_json_fault_has_its_status_type_and_body(
    fault: str, expected: tuple[int, str | None, str]
) -> None:
    """Each fault that breaks JSON answers its status, content type and a body that is not JSON."""
    status, content_type, start = expected
    with FakeOcrSpace(mode="text", script=[fault]) as server:
        response = post(server.url)
    assert (status, content_type) == (response.status_code, response.headers.get("Content-Type"))
    assert response.text.startswith(start)
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_partial_exit2_has_a_good_page_and_a_failed_one() -> None:
    """partial_exit2 answers exit 2 with one read page and one FileParseExitCode -10 page."""
    with FakeOcrSpace(mode="text", script=["partial_exit2"]) as server:
        body = post(server.url).json()
    pages = body["ParsedResults"]
    assert (2, False, None) == (
        body["OCRExitCode"],
        body["IsErroredOnProcessing"],
        body["ErrorMessage"],
    )
    assert [1, -10] == [page["FileParseExitCode"] for page in pages]
    assert (None, None) == (pages[1]["TextOverlay"], pages[1]["ParsedText"])


def test_reset_mid_body_breaks_the_connection() -> None:
    """reset_mid_body sends part of the body and then resets the connection."""
    with FakeOcrSpace(mode="text", script=["reset_mid_body"]) as server:
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            post(server.url)
        record = server.wait_for_requests(1, WAIT_SECONDS)[0]
    assert (200, "reset_mid_body") == (record.status, record.fault)


def test_slow_fault_answers_normally_after_slow_seconds() -> None:
    """slow sleeps slow_seconds and then answers normally."""
    with FakeOcrSpace(mode="text", script=["slow"], slow_seconds=0.2) as server:
        started = time.monotonic()
        response = post(server.url)
        elapsed = time.monotonic() - started
    assert 1 == exit_code(response)
    assert elapsed >= 0.2


def test_slow_fault_does_not_hold_up_close() -> None:
    """A client times out on a slow answer, and close() still returns long before slow_seconds."""
    server = FakeOcrSpace(mode="text", script=["slow"])
    try:
        with pytest.raises(requests.ReadTimeout):
            post(server.url, timeout=0.2)
    finally:
        closer = threading.Thread(target=server.close)
        closer.start()
        closer.join(WAIT_SECONDS)
    assert not closer.is_alive()


def test_fault_shares_are_drawn_from_a_seeded_generator() -> None:
    """Faults by share hit some requests, counted, and the same seed hits the same ones."""
    runs = []
    for _ in range(2):
        with FakeOcrSpace(mode="text", faults={"http503": 0.5}, seed=7) as server:
            statuses = [post(server.url).status_code for _ in range(20)]
            runs.append((statuses, server.fault_counts["http503"]))
    (statuses, count), repeat = runs
    assert (statuses, count) == repeat
    assert statuses.count(503) == count
    assert 0 < count < 20


def test_unknown_fault_names_and_overfull_shares_are_refused() -> None:
    """Constructing with an unknown fault or shares above 1 raises ValueError."""
    with pytest.raises(ValueError, match="unknown faults"):
        FakeOcrSpace(script=["boom"])
    with pytest.raises(ValueError, match="add up to at most 1"):
        FakeOcrSpace(faults={"http500": 0.7, "http503": 0.4})


def test_every_fault_name_is_covered_here() -> None:
    """Every fault the server knows has a test in this file."""
    tested = {*JSON_FAULTS, *NON_JSON_FAULTS, "partial_exit2", "reset_mid_body", "slow"}
    assert sorted(FAULTS) == sorted(tested)


# --- Records and life cycle --------------------------------------------------------------


def test_requests_are_recorded_with_what_was_sent(server: FakeOcrSpace) -> None:
    """A record keeps the key header, form fields, file name, bytes and part content type."""
    requests.post(
        server.url,
        headers={"apikey": KEY},
        files={"file": ("a.png", SMALL_PNG, "image/png")},
        data=VALID_FIELDS,
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    record = server.requests[0]
    assert ("POST", "/parse/image", 200, None) == (
        record.method,
        record.path,
        record.status,
        record.fault,
    )
    assert KEY == record.headers["apikey"]
    assert VALID_FIELDS == record.form
    assert ("a.png", SMALL_PNG, "image/png") == (record.filename, record.data, record.content_type)


def test_count_wait_and_reset(server: FakeOcrSpace) -> None:
    """count_by_filename counts uploads per name, wait_for_requests waits, reset forgets."""
    for filename in ("a.png", "b.png", "a.png"):
        post(server.url, filename=filename)
    waited = server.wait_for_requests(3, WAIT_SECONDS)
    counts = server.count_by_filename()
    server.reset()
    assert 3 == len(waited)
    assert collections.Counter({"a.png": 2, "b.png": 1}) == counts
    assert [] == server.requests
    with pytest.raises(TimeoutError):
        server.wait_for_requests(1, 0.05)


def test_close_stops_serving_kept_alive_connections_too() -> None:
    """After close() even a pooled keep-alive connection gets no answer."""
    server = FakeOcrSpace(mode="text")
    with requests.Session() as session:
        session.headers["apikey"] = KEY
        files = {"file": ("page.png", SMALL_PNG)}
        first = session.post(
            server.url, files=files, data=VALID_FIELDS, timeout=HTTP_TIMEOUT_SECONDS
        )
        server.close()
        with pytest.raises(requests.ConnectionError):
            session.post(server.url, files=files, data=VALID_FIELDS, timeout=HTTP_TIMEOUT_SECONDS)
    assert 200 == first.status_code


def test_command_line_serves_until_sigterm() -> None:
    """The CLI prints its URL first, serves with the given options and exits 0 on SIGTERM."""
    command = [sys.executable, "-m", "tests.support.ocrspace_server", "--port", "0"]
    command += ["--mode", "text", "--api-key", "K", "--fault", "http503=1", "--seed", "3"]
    process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        status = post(url, key="K").status_code
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(WAIT_SECONDS)
    finally:
        process.kill()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/parse/image")
    assert (503, 0) == (status, returncode)
