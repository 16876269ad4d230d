"""Every ocr.space answer fixture, served by the local server, through ``ocrwatch once``.

For each documented answer shape the run must end the documented way: text and
JSON sidecars for a usable answer; an error sidecar with the right
classification for a failure, after one request for a failure retrying cannot
heal and ``ocrspace.attempts`` requests for one it may; no sidecar at all for a
rate limit (the file waits for the window to pass); and an early stop with
exit code 2 for a rejected key.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from ocrwatch.records import without_overlay
from tests.support import ocrspace_fixtures
from tests.support.commands import SCHEMA, ocrwatch, record, save, text_of, write_config
from tests.support.ocrspace_server import FakeOcrSpace, RecordedRequest
from tests.support.render import page

KEY = "K8-REPLAY-KEY-0007"
ATTEMPTS = 2
"""Requests a transient failure gets (one backoff of at most a second between them)."""

Word = tuple[str, float, float, float, float, int]


@dataclass(frozen=True)
class Done:
    """Sidecars written: the .txt content, and each page as the .json records it."""

    text: str
    pages: tuple[tuple[str, int | None, str | None, tuple[Word, ...]], ...]
    """(text, orientation, error, words) of each page."""


@dataclass(frozen=True)
class Failed:
    """An error sidecar with this classification, after this many requests."""

    classification: str
    requests: int


@dataclass(frozen=True)
class Deferred:
    """A rate limit longer than ``once`` waits: no sidecar, the file is left for later."""

    limit: int
    window: int


@dataclass(frozen=True)
class KeyRejected:
    """The run stops at the first answer with exit code 2 and writes no sidecar."""


def read(
    text: str,
    *,
    orientation: int | None = 0,
    error: str | None = None,
    words: tuple[Word, ...] = (),
) -> tuple[str, int | None, str | None, tuple[Word, ...]]:
    return (text, orientation, error, words)


ENGINE = Failed("engine", 1)
BAD_INPUT = Failed("bad_input", 1)
TRANSIENT = Failed("transient", ATTEMPTS)
EXPECTED: dict[str, Done | Failed | Deferred | KeyRejected] = {
    "ok_engine3_markdown": Done(
        "# Annual report\n\n## Summary\n\nRevenue grew in every quarter.\n",
        (read("# Annual report\n\n## Summary\n\nRevenue grew in every quarter.\n"),),
    ),
    "ok_engine3_overlay_blocks_without_line_text": Done(
        "Delivery note\nSigned\n",
        (
            read(
                "Delivery note\nSigned\n",
                words=(
                    ("Delivery", 30, 25, 160, 40, 0),
                    ("note", 200, 25, 90, 40, 0),
                    ("Signed", 30, 90, 120, 36, 1),
                ),
            ),
        ),
    ),
    "ok_error_message_absent": Done(
        "Invoice 2041\nDue within thirty days\n", (read("Invoice 2041\nDue within thirty days\n"),)
    ),
    "ok_error_message_null": Done(
        "Minutes of the spring meeting\n", (read("Minutes of the spring meeting\n"),)
    ),
    "ok_exit_codes_as_strings": Done("Gate code 4471\n", (read("Gate code 4471\n"),)),
    "ok_orientation_270": Done("Turned page\n", (read("Turned page\n", orientation=270),)),
    "ok_overlay_float_and_negative_coordinates": Done(
        "Kiel harbour\n",
        (
            read(
                "Kiel harbour\n",
                words=(
                    ("Kiel", -1.0, 14.5, 81.25, 33.0, 0),
                    ("harbour", 92.67, 11.67, 150.0, 35.5, 0),
                ),
            ),
        ),
    ),
    "ok_overlay_key_alias": Done(
        "Platform 9\n",
        (
            read(
                "Platform 9\n", words=(("Platform", 12, 20, 140, 30, 0), ("9", 162, 20, 18, 30, 0))
            ),
        ),
    ),
    "ok_overlay_lines_and_words": Done(
        "Order 7731\nShip to Leeds\n",
        (
            read(
                "Order 7731\nShip to Leeds\n",
                words=(
                    ("Order", 40, 32, 96, 24, 0),
                    ("7731", 150, 32, 72, 24, 0),
                    ("Ship", 40, 80, 64, 24, 1),
                    ("to", 114, 80, 30, 24, 1),
                    ("Leeds", 154, 80, 86, 24, 1),
                ),
            ),
        ),
    ),
    "ok_page_without_message_or_orientation": Done(
        "Room 12 is closed\n", (read("Room 12 is closed\n", orientation=None),)
    ),
    "ok_page_without_text_overlay": Done("Closed on Sundays\n", (read("Closed on Sundays\n"),)),
    "ok_processing_time_number": Done("Parcel 5 of 12\n", (read("Parcel 5 of 12\n"),)),
    "ok_searchable_pdf_not_applicable": Done(
        "Delivered on Monday\n", (read("Delivered on Monday\n"),)
    ),
    # Trailing tabs go, as all trailing blanks do; the tabs between cells stay.
    "ok_table_tabs": Done(
        "Item\tQty\tPrice\nBread\t2\t4.80\nMilk\t1\t1.10\n",
        (read("Item\tQty\tPrice\nBread\t2\t4.80\nMilk\t1\t1.10\n"),),
    ),
    "ok_two_pages": Done(
        "Page one of two\n\nPage two of two\n",
        (read("Page one of two\n"), read("Page two of two\n")),
    ),
    "partial_exit2_first_page_timed_out": Done(
        "Second page text\n",
        (read("", error="Timed out waiting for results"), read("Second page text\n")),
    ),
    "partial_exit2_second_page_parse_error": Done(
        "Chapter one\n",
        (
            read("Chapter one\n"),
            read("", error="Page 2 could not be parsed; The OCR engine gave up on this page"),
        ),
    ),
    "e400_400_no_content_provided": BAD_INPUT,
    "e501_400_invalid_base64_data_uri": BAD_INPUT,
    "error_e216_file_type_with_code": BAD_INPUT,
    "error_exit3_error_message_string": BAD_INPUT,
    "error_exit3_file_size_exceeds": BAD_INPUT,
    "error_exit3_invalid_base64_list": BAD_INPUT,
    "error_exit3_page_validation_error": BAD_INPUT,
    "error_exit99_parameter_name_invalid": BAD_INPUT,
    "error_exit99_unable_to_recognize_file_type": BAD_INPUT,
    "error_exit99_value_invalid": BAD_INPUT,
    "error_exit3_engine_parse_error": ENGINE,
    "error_exit3_page_file_not_found": ENGINE,
    "error_exit3_page_timeout_code_only": TRANSIENT,
    "error_exit4_fatal_error": TRANSIENT,
    "error_exit6_timed_out": TRANSIENT,
    "http404_not_found": TRANSIENT,
    "http500_iis_error_page": TRANSIENT,
    "http503_service_unavailable": TRANSIENT,
    "rate_limit_403_json_string_demo_key": Deferred(10, 600),
    "rate_limit_403_json_string_free_daily": Deferred(500, 86400),
    "rate_limit_403_plain_text_free_daily": Deferred(500, 86400),
    "rate_limit_xml_wrapped_string": Deferred(10, 600),
    "invalid_key_403_e555_error_object": KeyRejected(),
    "invalid_key_403_json_string": KeyRejected(),
}


def sidecars(inbox: Path) -> list[str]:
    return sorted(path.name for path in inbox.iterdir() if path.name != "scan.png")


def expecting(kind: type) -> list[str]:
    return sorted(name for name, expected in EXPECTED.items() if isinstance(expected, kind))


@dataclass(frozen=True)
class Run:
    """What one ``once`` run against a replaying server left behind."""

    inbox: Path
    result: subprocess.CompletedProcess[str]
    requests: list[RecordedRequest]


def replay(name: str, folder: Path) -> Run:
    """Run ``once`` over one rendered page while the server answers every request with fixture ``name``."""
    inbox = folder / "in"
    image, _ = page(["Replayed answer"], size=(480, 120), font_size=32)
    save(image, inbox / "scan.png")
    with FakeOcrSpace.replaying(name, api_key=KEY) as fake:
        config = {
            "ocrspace": {"endpoint": fake.url, "attempts": ATTEMPTS},
            "workers": 1,
            "inboxes": [{"path": "in", "overlay": True}],
        }
        result = ocrwatch(
            "once", "-c", str(write_config(folder, config)), env={"OCRSPACE_API_KEY": KEY}
        )
        requests = fake.requests
    # The server answers with the fixture only when the upload follows the protocol.
    assert [()] * len(requests) == [request.problems for request in requests]
    return Run(inbox, result, requests)


def test_every_fixture_has_an_expected_run() -> None:
    """The table above and tests/data/ocrspace name the same answers."""
    assert sorted(EXPECTED) == ocrspace_fixtures.names()


@pytest.mark.parametrize("name", expecting(Done))
def test_a_usable_answer_gives_text_and_json_sidecars(tmp_path: Path, name: str) -> None:
    """One request; the .txt holds the answer's text, the .json its words and the raw answer.

    An answer of several pages (as for a PDF) is one request's result: its
    words follow each other, each line counted once across the pages, its
    orientation is the first page's, its page errors are joined.
    """
    expected = EXPECTED[name]
    assert isinstance(expected, Done)
    run = replay(name, tmp_path)
    assert (0, 1) == (run.result.returncode, len(run.requests)), run.result.stderr
    data = record(run.inbox / "scan.png")
    result = data["pages"][0]["results"][0]
    orientations = [page[1] for page in expected.pages if page[1] is not None]
    errors = [page[2] for page in expected.pages if page[2]]
    assert (
        expected.text,
        orientations[0] if orientations else None,
        "; ".join(errors) or None,
        [word[:5] for page in expected.pages for word in page[3]],
    ) == (
        text_of(run.inbox / "scan.png"),
        result["orientation"],
        result.get("error"),
        [(w["text"], w["left"], w["top"], w["width"], w["height"]) for w in result["words"]],
    )
    lines = [
        (page_index, word[5]) for page_index, page in enumerate(expected.pages) for word in page[3]
    ]
    # Words of one engine line share one line of the record, and lines do not repeat.
    assert len(set(lines)) == len({w["line"] for w in result["words"]})
    assert (without_overlay(ocrspace_fixtures.load(name).body), 1) == (
        result["raw"],
        data["requests"],
    )
    assert ["scan.png.json", "scan.png.txt"] == sidecars(run.inbox)


@pytest.mark.parametrize("name", expecting(Failed))
def test_a_failure_gives_an_error_sidecar_after_the_right_number_of_requests(
    tmp_path: Path, name: str
) -> None:
    """Bad input and engine failures are sent once, transient ones ocrspace.attempts times; exit 1."""
    expected = EXPECTED[name]
    assert isinstance(expected, Failed)
    run = replay(name, tmp_path)
    assert (1, expected.requests) == (run.result.returncode, len(run.requests)), run.result.stderr
    failure = json.loads((run.inbox / "scan.png.error.json").read_text(encoding="utf-8"))
    jsonschema.validate(failure, SCHEMA)
    assert (expected.classification, expected.requests) == (
        failure["error"]["classification"],
        failure["requests"],
    )
    assert ["scan.png.error.json"] == sidecars(run.inbox)


@pytest.mark.parametrize("name", expecting(Deferred))
def test_a_long_rate_limit_leaves_the_file_for_later(tmp_path: Path, name: str) -> None:
    """One request; the N and S of the sentence are reported, no sidecar is written; exit 1."""
    expected = EXPECTED[name]
    assert isinstance(expected, Deferred)
    run = replay(name, tmp_path)
    assert (1, 1) == (run.result.returncode, len(run.requests)), run.result.stderr
    line = (
        f"deferred {run.inbox / 'scan.png'}: [rate_limit] ocr.space rate limit: "
        f"{expected.limit} requests per {expected.window} s used up"
    )
    assert line in run.result.stderr
    assert [] == sidecars(run.inbox)


@pytest.mark.parametrize("name", expecting(KeyRejected))
def test_a_rejected_key_stops_the_run(tmp_path: Path, name: str) -> None:
    """One request, then the run stops with exit 2 and leaves the file without any sidecar."""
    run = replay(name, tmp_path)
    assert (2, 1) == (run.result.returncode, len(run.requests)), run.result.stderr
    assert "ocrwatch: stopped early: ocr.space rejected the API key" in run.result.stderr
    assert [] == sidecars(run.inbox)
