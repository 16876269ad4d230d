"""Reading ocr.space answers: every recorded sample and every documented shape."""

from __future__ import annotations

import json

import pytest

from ocrwatch.engines.ocrspace_answer import read_answer
from ocrwatch.errors import (
    BadInputError,
    InvalidKeyError,
    OcrError,
    RateLimitError,
    TransientError,
)
from tests.support.paths import SAMPLES


def answer_of(body: object, status: int = 200) -> bytes:
    return json.dumps(body).encode()


def success(**overrides: object) -> dict[str, object]:
    page = {
        "TextOverlay": {"Lines": [], "HasOverlay": False, "Message": "Text overlay is not provided as it is not requested"},
        "TextOrientation": "0",
        "FileParseExitCode": 1,
        "ParsedText": "Hello\r\nWorld\r\n",
        "ErrorMessage": "",
        "ErrorDetails": "",
    }
    body: dict[str, object] = {
        "ParsedResults": [page],
        "OCRExitCode": 1,
        "IsErroredOnProcessing": False,
        "ProcessingTimeInMilliseconds": "421",
        "SearchablePDFURL": "Searchable PDF not generated as it was not requested.",
    }
    body.update(overrides)
    return body


def test_every_recorded_sample_is_understood() -> None:
    """Each file in the shared samples folder parses or raises its classified error."""
    expected = {
        "overlay_ok_jpn_a9t9_ocrapi-response.json": "ok",
        "overlay_ok_license_plate.json": "ok",
        "noverlay_ok_engine3_arabic_markdown.json": "ok",
        "multipage_partial_official_docs_example_ASSEMBLED.json": "ok",
        "error_exit99_parameter_invalid_perl_ocrspace_pod.json": "BadInputError",
        "error_exit3_not_a_valid_base64_image_issue5.json": "BadInputError",
    }
    seen = {}
    for sample in sorted(SAMPLES.glob("*.json")):
        try:
            read_answer(200, sample.read_bytes())
            seen[sample.name] = "ok"
        except OcrError as error:
            seen[sample.name] = type(error).__name__
    assert expected == seen


def test_license_plate_words_keep_float_coordinates_and_lines() -> None:
    """Overlay words come back with float boxes and their line index."""
    answer = read_answer(200, (SAMPLES / "overlay_ok_license_plate.json").read_bytes())
    page = answer.pages[0]
    assert "New Jersey\nZPT 958\nGarden State" == page.text
    assert [("New", 188.0, 48.0, 216.0, 56.0, 0), ("Jersey", 416.0, 48.0, 320.0, 76.0, 0)] == [
        (w.text, w.left, w.top, w.width, w.height, w.line) for w in page.words[:2]
    ]
    assert 2 == page.words[-1].line
    assert 421.0 == answer.processing_ms


def test_japanese_overlay_sample_has_all_lines() -> None:
    """The vendor's real overlay answer yields its 39 lines of words."""
    answer = read_answer(200, (SAMPLES / "overlay_ok_jpn_a9t9_ocrapi-response.json").read_bytes())
    assert 38 == max(word.line for word in answer.pages[0].words)
    assert answer.pages[0].text.startswith("選り抜き記事")


def test_partial_answer_keeps_good_pages_and_records_the_failed_one() -> None:
    """OCRExitCode 2: page 1 text kept (string exit code), page 2's error recorded."""
    answer = read_answer(200, (SAMPLES / "multipage_partial_official_docs_example_ASSEMBLED.json").read_bytes())
    assert 2 == answer.exit_code
    assert ["This is a sample parsed result", ""] == [page.text for page in answer.pages]
    assert [None, "...error message (if any); ...detailed error message (if any)"] == [p.error for p in answer.pages]


def test_crlf_becomes_lf() -> None:
    """Engine 1's \\r\\n line ends are normalised."""
    assert "Hello\nWorld\n" == read_answer(200, answer_of(success())).pages[0].text


@pytest.mark.parametrize("error_message", [None, "", [], "plain string", ["a", "b"]])
def test_error_message_in_any_shape_on_success(error_message: object) -> None:
    """ErrorMessage as null, empty, list or string does not disturb a success."""
    body = success(ErrorMessage=error_message)
    assert "Hello\nWorld\n" == read_answer(200, answer_of(body)).pages[0].text


def test_error_message_absent_and_numeric_times_and_string_exit_code() -> None:
    """Absent ErrorMessage, numeric processing time and string exit codes parse."""
    body = success(OCRExitCode="1", ProcessingTimeInMilliseconds=0.765)
    assert 0.765 == read_answer(200, answer_of(body)).processing_ms


def test_overlay_alias_and_negative_coordinates() -> None:
    """`Overlay` is accepted for `TextOverlay`; negative and string coordinates parse."""
    body = success()
    page = body["ParsedResults"][0]  # type: ignore[index]
    page.pop("TextOverlay")
    page["Overlay"] = {"Lines": [{"LineText": "x", "Words": [{"WordText": "x", "Left": -1.0, "Top": "2.5", "Height": 3, "Width": 4}]}]}
    word = read_answer(200, answer_of(body)).pages[0].words[0]
    assert (-1.0, 2.5, 4.0, 3.0) == (word.left, word.top, word.width, word.height)


@pytest.mark.parametrize(
    ("status", "body", "content"),
    [
        (403, b'"You may only perform this action upto maximum 10 number of times within 600 seconds"', "json"),
        (403, b"You may only perform this action upto maximum 500 number of times within 86400 seconds", "text"),
    ],
)
def test_rate_limit_sentence_as_json_string_or_plain_text(status: int, body: bytes, content: str) -> None:
    """The rate-limit 403 yields N and S, whether JSON-quoted or plain."""
    with pytest.raises(RateLimitError) as caught:
        read_answer(status, body)
    expected = (600.0, 10, 600) if b"600" in body else (86400.0, 500, 86400)
    assert expected == (caught.value.retry_after, caught.value.limit, caught.value.window)


@pytest.mark.parametrize(
    "body",
    [b'"The API key is invalid"', b'{"error":"E555: API key not valid","details":"Check your key"}'],
)
def test_invalid_key_legacy_and_2026(body: bytes) -> None:
    """Both invalid-key answers are fatal InvalidKeyError."""
    with pytest.raises(InvalidKeyError):
        read_answer(403, body)


def test_2026_error_object_is_bad_input() -> None:
    """HTTP 400 with {error, details} is a permanent input error, with both parts in the message."""
    with pytest.raises(BadInputError) as caught:
        read_answer(400, b'{"error":"E501: Not an image or PDF","details":"Invalid base64 Data URI."}')
    assert "E501: Not an image or PDF Invalid base64 Data URI." in str(caught.value)


def test_timeout_exit_code_6_is_transient() -> None:
    """OCRExitCode 6 'Timed out waiting for results' is retried."""
    body = {"ParsedResults": [], "OCRExitCode": 6, "IsErroredOnProcessing": True,
            "ErrorMessage": ["Timed out waiting for results"], "ProcessingTimeInMilliseconds": "5890"}
    with pytest.raises(TransientError):
        read_answer(200, answer_of(body))


def test_exit_3_engine_failure_is_not_retried() -> None:
    """OCRExitCode 3 with a page parse error (-10) is an engine failure, not transient."""
    body = {"ParsedResults": [{"FileParseExitCode": -10, "ParsedText": None, "ErrorMessage": "parse error"}],
            "OCRExitCode": 3, "IsErroredOnProcessing": True, "ErrorMessage": None}
    with pytest.raises(OcrError) as caught:
        read_answer(200, answer_of(body))
    assert "engine" == caught.value.classification


def test_unable_to_recognize_file_type_is_bad_input() -> None:
    """E216 / unknown file type is the client's fault and not retried."""
    body = {"OCRExitCode": 99, "IsErroredOnProcessing": True, "ErrorMessage": ["Unable to recognize the file type", "E216"]}
    with pytest.raises(BadInputError):
        read_answer(200, answer_of(body))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    """HTTP 5xx, with any body, is retried."""
    with pytest.raises(TransientError):
        read_answer(status, b"<html><head><title>502 - Web server received an invalid response</title></head></html>")


@pytest.mark.parametrize(
    "body",
    [b'{"ParsedResults": [{"ParsedText": "abc', b"not json at all", b"<!DOCTYPE html><html><title>Error</title></html>", b""],
)
def test_truncated_malformed_html_and_empty_bodies_are_transient(body: bytes) -> None:
    """A 200 that is not a readable result is retried, and the message says what came back."""
    with pytest.raises(TransientError) as caught:
        read_answer(200, body)
    assert "HTTP 200" in str(caught.value) or "malformed JSON" in str(caught.value)


def test_success_shape_without_results_is_transient() -> None:
    """OCRExitCode 1 with ParsedResults null cannot be a result."""
    with pytest.raises(TransientError):
        read_answer(200, answer_of(success(ParsedResults=None)))


def test_html_title_is_used_in_messages() -> None:
    """An IIS error page is summarised by its title, not dumped."""
    with pytest.raises(TransientError) as caught:
        read_answer(503, b"<html><head><title>Service Unavailable</title></head><body>" + b"x" * 5000 + b"</body></html>")
    assert "ocr.space failed (HTTP 503: Service Unavailable)" == str(caught.value)
