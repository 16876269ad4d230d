"""Reading ocr.space answers: every answer fixture, and hand-built variants of the documented shapes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from ocrwatch.engines.ocrspace.answer import read_answer
from ocrwatch.errors import (
    BadInputError,
    InvalidKeyError,
    OcrError,
    RateLimitError,
    TransientError,
)
from ocrwatch.layout import Block, Box, Line, Word
from tests.support import ocrspace_fixtures


def answer_of(body: object, status: int = 200) -> bytes:
    return json.dumps(body).encode()


def success(**overrides: object) -> dict[str, object]:
    page = {
        "TextOverlay": {
            "Lines": [],
            "HasOverlay": False,
            "Message": "Text overlay is not provided as it is not requested",
        },
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


@dataclass(frozen=True)
class PageRead:
    """One page of a usable answer: its text, orientation, error and words."""

    text: str
    orientation: int | None = 0
    error: str | None = None
    words: tuple[tuple[str, float, float, float, float, int], ...] = ()
    """(text, left, top, width, height, line) of each word."""


@dataclass(frozen=True)
class Read:
    """A usable answer: its pages, OCRExitCode and processing time."""

    pages: tuple[PageRead, ...]
    processing_ms: float | None
    exit_code: int = 1


@dataclass(frozen=True)
class Refused:
    """An answer that is no result: the exact error raised and what it says."""

    error: type[OcrError]
    classification: str
    message: str
    pause: tuple[float, int | None, int | None] | None = None
    """(retry_after, limit N, window S) of a rate limit."""


def outcome(fixture: ocrspace_fixtures.Fixture) -> Read | Refused:
    """What the parser makes of a fixture, in the terms of the table below."""
    try:
        answer = read_answer(fixture.status, fixture.body_bytes)
    except OcrError as error:
        pause = None
        if isinstance(error, RateLimitError):
            pause = (error.retry_after, error.limit, error.window)
        return Refused(type(error), error.classification, str(error), pause)
    pages = tuple(
        PageRead(
            page.text,
            page.orientation,
            page.error,
            tuple((w.text, w.left, w.top, w.width, w.height, w.line) for w in page.words),
        )
        for page in answer.pages
    )
    return Read(pages, answer.processing_ms, answer.exit_code)


VALID_PARAMETERS = (
    "apikey,url,language,isoverlayrequired,base64image,iscreatesearchablepdf,"
    "issearchablepdfhidetextlayer,filetype,addressparsing,scale,detectorientation,istable,"
    "ocrengine,detectcheckbox,checkboxtemplate,checkboxtemplateregex"
)
BASE64_MESSAGE = (
    "Not a valid base64 image. The accepted base64 image format is "
    "'data:image/<content_type>;base64,<base64_image_content>'."
)
EXPECTED: dict[str, Read | Refused] = {
    # Usable answers.
    "ok_engine3_markdown": Read(
        (PageRead("# Annual report\n\n## Summary\n\nRevenue grew in every quarter.\n"),), 4810.0
    ),
    "ok_engine3_overlay_blocks_without_line_text": Read(
        (
            PageRead(
                "Delivery note\nSigned\n",
                words=(
                    ("Delivery", 30.0, 25.0, 160.0, 40.0, 0),
                    ("note", 200.0, 25.0, 90.0, 40.0, 0),
                    ("Signed", 30.0, 90.0, 120.0, 36.0, 1),
                ),
            ),
        ),
        6120.0,
    ),
    "ok_error_message_absent": Read((PageRead("Invoice 2041\nDue within thirty days\n"),), 734.0),
    "ok_error_message_null": Read((PageRead("Minutes of the spring meeting\n"),), 388.0),
    "ok_exit_codes_as_strings": Read((PageRead("Gate code 4471\n"),), 95.0),
    "ok_orientation_270": Read((PageRead("Turned page\n", orientation=270),), 512.0),
    "ok_overlay_float_and_negative_coordinates": Read(
        (
            PageRead(
                "Kiel harbour\n",
                words=(
                    ("Kiel", -1.0, 14.5, 81.25, 33.0, 0),
                    ("harbour", 92.66666412353516, 11.666666030883789, 150.0, 35.5, 0),
                ),
            ),
        ),
        640.0,
    ),
    "ok_overlay_key_alias": Read(
        (
            PageRead(
                "Platform 9\n",
                words=(("Platform", 12.0, 20.0, 140.0, 30.0, 0), ("9", 162.0, 20.0, 18.0, 30.0, 0)),
            ),
        ),
        0.43,
    ),
    "ok_overlay_lines_and_words": Read(
        (
            PageRead(
                "Order 7731\nShip to Leeds\n",
                words=(
                    ("Order", 40.0, 32.0, 96.0, 24.0, 0),
                    ("7731", 150.0, 32.0, 72.0, 24.0, 0),
                    ("Ship", 40.0, 80.0, 64.0, 24.0, 1),
                    ("to", 114.0, 80.0, 30.0, 24.0, 1),
                    ("Leeds", 154.0, 80.0, 86.0, 24.0, 1),
                ),
            ),
        ),
        1022.0,
    ),
    "ok_page_without_message_or_orientation": Read(
        (PageRead("Room 12 is closed\n", orientation=None),), 211.0
    ),
    "ok_page_without_text_overlay": Read((PageRead("Closed on Sundays\n"),), 305.0),
    "ok_processing_time_number": Read((PageRead("Parcel 5 of 12\n"),), 0.912),
    "ok_searchable_pdf_not_applicable": Read((PageRead("Delivered on Monday\n"),), 1433.0),
    "ok_table_tabs": Read(
        (PageRead("Item\tQty\tPrice\t\nBread\t2\t4.80\t\nMilk\t1\t1.10\t\n"),), 902.0
    ),
    "ok_two_pages": Read((PageRead("Page one of two\n"), PageRead("Page two of two\n")), 1870.0),
    # Partial answers keep the pages that were read and say why the others failed.
    "partial_exit2_first_page_timed_out": Read(
        (PageRead("", error="Timed out waiting for results"), PageRead("Second page text\n")),
        7014.0,
        exit_code=2,
    ),
    "partial_exit2_second_page_parse_error": Read(
        (
            PageRead("Chapter one\n"),
            PageRead("", error="Page 2 could not be parsed; The OCR engine gave up on this page"),
        ),
        2950.0,
        exit_code=2,
    ),
    # The input is at fault: never retried.
    "e400_400_no_content_provided": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (HTTP 400: E400: No content provided)",
    ),
    "e501_400_invalid_base64_data_uri": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (HTTP 400: E501: Not an image or PDF Invalid base64 Data URI.)",
    ),
    "error_e216_file_type_with_code": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (OCRExitCode 99: Unable to recognize the file type; E216)",
    ),
    "error_exit3_error_message_string": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input "
        "(OCRExitCode 3: File failed validation. The base64 file is invalid.)",
    ),
    "error_exit3_file_size_exceeds": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input "
        "(OCRExitCode 3: File size exceeds the maximum size limit. Maximum size limit 1024 KB)",
    ),
    "error_exit3_invalid_base64_list": Refused(
        BadInputError,
        "bad_input",
        f"ocr.space rejected the input (OCRExitCode 3: {BASE64_MESSAGE})",
    ),
    "error_exit3_page_validation_error": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (OCRExitCode 3: Validation of the page did not pass)",
    ),
    "error_exit99_parameter_name_invalid": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (OCRExitCode 99: Parameter name 'pages' is invalid. "
        f"Valid parameters: {VALID_PARAMETERS}; "
        "Please check if you need to URL encode the URL passed in request parameters.)",
    ),
    "error_exit99_unable_to_recognize_file_type": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input (OCRExitCode 99: Unable to recognize the file type)",
    ),
    "error_exit99_value_invalid": Refused(
        BadInputError,
        "bad_input",
        "ocr.space rejected the input "
        "(OCRExitCode 99: Value for parameter 'isOverlayRequired' is invalid)",
    ),
    # The engine failed on this input: not retried either.
    "error_exit3_engine_parse_error": Refused(
        OcrError,
        "engine",
        "ocr.space could not read the image (OCRExitCode 3: The OCR engine could not read this page)",
    ),
    "error_exit3_page_file_not_found": Refused(
        OcrError, "engine", "ocr.space could not read the image (OCRExitCode 3: File not found)"
    ),
    # The service failed: retried.
    "error_exit3_page_timeout_code_only": Refused(
        TransientError, "transient", "ocr.space timed out (OCRExitCode 3: FileParseExitCode -20)"
    ),
    "error_exit4_fatal_error": Refused(
        TransientError,
        "transient",
        "ocr.space failed (OCRExitCode 4: A fatal error occurred during parsing; Unknown error)",
    ),
    "error_exit6_timed_out": Refused(
        TransientError,
        "transient",
        "ocr.space timed out (OCRExitCode 6: Timed out waiting for results)",
    ),
    "http404_not_found": Refused(
        TransientError,
        "transient",
        "ocr.space failed (HTTP 404: 404 - File or directory not found.)",
    ),
    "http500_iis_error_page": Refused(
        TransientError, "transient", "ocr.space failed (HTTP 500: 500 - Internal server error.)"
    ),
    "http503_service_unavailable": Refused(
        TransientError, "transient", "ocr.space failed (HTTP 503: Service Unavailable)"
    ),
    # A quota window is full: pause for the S seconds the sentence names.
    "rate_limit_403_json_string_demo_key": Refused(
        RateLimitError,
        "rate_limit",
        "ocr.space rate limit: 10 requests per 600 s used up",
        pause=(600.0, 10, 600),
    ),
    "rate_limit_403_json_string_free_daily": Refused(
        RateLimitError,
        "rate_limit",
        "ocr.space rate limit: 500 requests per 86400 s used up",
        pause=(86400.0, 500, 86400),
    ),
    "rate_limit_403_plain_text_free_daily": Refused(
        RateLimitError,
        "rate_limit",
        "ocr.space rate limit: 500 requests per 86400 s used up",
        pause=(86400.0, 500, 86400),
    ),
    "rate_limit_xml_wrapped_string": Refused(
        RateLimitError,
        "rate_limit",
        "ocr.space rate limit: 10 requests per 600 s used up",
        pause=(600.0, 10, 600),
    ),
    # The key is rejected: fatal until it changes.
    "invalid_key_403_e555_error_object": Refused(
        InvalidKeyError,
        "invalid_key",
        "ocr.space rejected the API key (HTTP 403: E555: API key not valid "
        "The API key sent with the request is not valid.)",
    ),
    "invalid_key_403_json_string": Refused(
        InvalidKeyError,
        "invalid_key",
        "ocr.space rejected the API key (HTTP 403: The API key is invalid)",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_fixture_reads_as_its_table_entry_says(name: str) -> None:
    """Each answer fixture gives exactly its expected pages, or exactly its classified error."""
    assert EXPECTED[name] == outcome(ocrspace_fixtures.load(name))


def test_the_table_and_the_fixture_folder_name_the_same_answers() -> None:
    """A fixture without an expectation, or an expectation without a fixture, fails here."""
    assert sorted(EXPECTED) == ocrspace_fixtures.names()


def test_the_fixture_readme_lists_every_fixture() -> None:
    """tests/data/ocrspace/README.md names each fixture file, and no other."""
    readme = (ocrspace_fixtures.FOLDER / "README.md").read_text(encoding="utf-8")
    listed = sorted(set(re.findall(r"`([a-z0-9_]+)\.json`", readme)))
    assert ocrspace_fixtures.names() == listed


def test_no_two_fixtures_are_the_same_answer() -> None:
    """Each fixture stands for its own shape: no two share status, content type and body."""
    answers = [ocrspace_fixtures.load(name) for name in ocrspace_fixtures.names()]
    distinct = {(answer.status, answer.content_type, answer.body_bytes) for answer in answers}
    assert len(answers) == len(distinct)


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
    page["Overlay"] = {
        "Lines": [
            {
                "LineText": "x",
                "Words": [{"WordText": "x", "Left": -1.0, "Top": "2.5", "Height": 3, "Width": 4}],
            }
        ]
    }
    word = read_answer(200, answer_of(body)).pages[0].words[0]
    assert (-1.0, 2.5, 4.0, 3.0) == (word.left, word.top, word.width, word.height)


@pytest.mark.parametrize(
    ("status", "body", "content"),
    [
        (
            403,
            b'"You may only perform this action upto maximum 10 number of times within 600 seconds"',
            "json",
        ),
        (
            403,
            b"You may only perform this action upto maximum 500 number of times within 86400 seconds",
            "text",
        ),
    ],
)
def test_rate_limit_sentence_as_json_string_or_plain_text(
    status: int, body: bytes, content: str
) -> None:
    """The rate-limit 403 yields N and S, whether JSON-quoted or plain."""
    with pytest.raises(RateLimitError) as caught:
        read_answer(status, body)
    expected = (600.0, 10, 600) if b"600" in body else (86400.0, 500, 86400)
    assert expected == (caught.value.retry_after, caught.value.limit, caught.value.window)


@pytest.mark.parametrize(
    "body",
    [
        b'"The API key is invalid"',
        b'{"error":"E555: API key not valid","details":"Check your key"}',
    ],
)
def test_invalid_key_legacy_and_2026(body: bytes) -> None:
    """Both invalid-key answers are fatal InvalidKeyError."""
    with pytest.raises(InvalidKeyError):
        read_answer(403, body)


def test_2026_error_object_is_bad_input() -> None:
    """HTTP 400 with {error, details} is a permanent input error, with both parts in the message."""
    with pytest.raises(BadInputError) as caught:
        read_answer(
            400, b'{"error":"E501: Not an image or PDF","details":"Invalid base64 Data URI."}'
        )
    assert "E501: Not an image or PDF Invalid base64 Data URI." in str(caught.value)


def test_timeout_exit_code_6_is_transient() -> None:
    """OCRExitCode 6 'Timed out waiting for results' is retried."""
    body = {
        "ParsedResults": [],
        "OCRExitCode": 6,
        "IsErroredOnProcessing": True,
        "ErrorMessage": ["Timed out waiting for results"],
        "ProcessingTimeInMilliseconds": "5890",
    }
    with pytest.raises(TransientError):
        read_answer(200, answer_of(body))


def test_exit_3_engine_failure_is_not_retried() -> None:
    """OCRExitCode 3 with a page parse error (-10) is an engine failure, not transient."""
    body = {
        "ParsedResults": [
            {"FileParseExitCode": -10, "ParsedText": None, "ErrorMessage": "parse error"}
        ],
        "OCRExitCode": 3,
        "IsErroredOnProcessing": True,
        "ErrorMessage": None,
    }
    with pytest.raises(OcrError) as caught:
        read_answer(200, answer_of(body))
    assert "engine" == caught.value.classification


def test_unable_to_recognize_file_type_is_bad_input() -> None:
    """E216 / unknown file type is the client's fault and not retried."""
    body = {
        "OCRExitCode": 99,
        "IsErroredOnProcessing": True,
        "ErrorMessage": ["Unable to recognize the file type", "E216"],
    }
    with pytest.raises(BadInputError):
        read_answer(200, answer_of(body))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    """HTTP 5xx, with any body, is retried."""
    with pytest.raises(TransientError):
        read_answer(
            status,
            b"<html><head><title>502 - Web server received an invalid response</title></head></html>",
        )


@pytest.mark.parametrize(
    "body",
    [
        b'{"ParsedResults": [{"ParsedText": "abc',
        b"not json at all",
        b"<!DOCTYPE html><html><title>Error</title></html>",
        b"",
    ],
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
        read_answer(
            503,
            b"<html><head><title>Service Unavailable</title></head><body>"
            + b"x" * 5000
            + b"</body></html>",
        )
    assert "ocr.space failed (HTTP 503: Service Unavailable)" == str(caught.value)


def test_overlay_lines_become_one_block_of_lines_around_their_words() -> None:
    """The overlay's lines form one block; each line's box spans its words, with no baseline."""
    fixture = ocrspace_fixtures.load("ok_overlay_lines_and_words")
    page = read_answer(fixture.status, fixture.body_bytes).pages[0]
    order = Word("Order", 40, 32, 96, 24, line=0)
    number = Word("7731", 150, 32, 72, 24, line=0)
    ship = Word("Ship", 40, 80, 64, 24, line=1)
    to = Word("to", 114, 80, 30, 24, line=1)
    leeds = Word("Leeds", 154, 80, 86, 24, line=1)
    expected = (
        Block(
            box=Box(40, 32, 200, 72),
            lines=(
                Line(box=Box(40, 32, 182, 24), words=(order, number), baseline=None),
                Line(box=Box(40, 80, 200, 24), words=(ship, to, leeds), baseline=None),
            ),
        ),
    )
    assert expected == page.blocks
    assert (order, number, ship, to, leeds) == page.words


def test_overlay_words_carry_no_confidence() -> None:
    """ocr.space gives no confidence, so none is made up."""
    fixture = ocrspace_fixtures.load("ok_overlay_lines_and_words")
    page = read_answer(fixture.status, fixture.body_bytes).pages[0]
    assert {None} == {word.confidence for word in page.words}


def test_a_page_without_overlay_lines_has_no_blocks() -> None:
    """Without an overlay there is no layout, not an empty block."""
    assert () == read_answer(200, answer_of(success())).pages[0].blocks


def test_overlay_lines_without_usable_words_are_left_out() -> None:
    """A line whose words all lack a box makes no line; the next line keeps its own index."""
    body = success()
    page = body["ParsedResults"][0]  # type: ignore[index]
    page["TextOverlay"] = {
        "Lines": [
            {"LineText": "?", "Words": [{"WordText": "?", "Left": 1}]},
            {
                "LineText": "y",
                "Words": [{"WordText": "y", "Left": 5, "Top": 6, "Height": 7, "Width": 8}],
            },
        ]
    }
    blocks = read_answer(200, answer_of(body)).pages[0].blocks
    word = Word("y", 5, 6, 8, 7, line=1)
    assert (Block(Box(5, 6, 8, 7), (Line(Box(5, 6, 8, 7), (word,)),)),) == blocks
