"""Recorded ocr.space answers from public sources, read by the parser and replayed through ``once``.

The project's own fixtures (``tests/data/ocrspace``) cover every documented
shape in the default suite; these recordings check that real answers agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ocrwatch.engines.ocrspace.answer import read_answer
from ocrwatch.errors import OcrError
from ocrwatch.records import without_overlay
from tests.support.commands import SCHEMA, ocrwatch, record, save, text_of, write_config
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.paths import SAMPLES
from tests.support.render import page

KEY = "K8-DISTINCTIVE-KEY-0042"
SAMPLE_OUTCOMES = {
    "overlay_ok_jpn_a9t9_ocrapi-response.json": ("done", "選り抜き記事"),
    "overlay_ok_license_plate.json": ("done", "New Jersey\nZPT 958\nGarden State\n"),
    "noverlay_ok_engine3_arabic_markdown.json": ("done", "# الفهرس"),
    "multipage_partial_official_docs_example_ASSEMBLED.json": (
        "done",
        "This is a sample parsed result\n",
    ),
    "error_exit99_parameter_invalid_perl_ocrspace_pod.json": ("failed", "bad_input"),
    "error_exit3_not_a_valid_base64_image_issue5.json": ("failed", "bad_input"),
}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_every_recorded_sample_is_understood() -> None:
    """Each recorded sample parses, or raises its classified error."""
    expected = {
        "overlay_ok_jpn_a9t9_ocrapi-response.json": "ok",
        "overlay_ok_license_plate.json": "ok",
        "noverlay_ok_engine3_arabic_markdown.json": "ok",
        "multipage_partial_official_docs_example_ASSEMBLED.json": "ok",
        "error_exit99_parameter_invalid_perl_ocrspace_pod.json": "BadInputError",
        "error_exit3_not_a_valid_base64_image_issue5.json": "BadInputError",
    }
    seen = {}
    for path in sorted(SAMPLES.glob("*.json")):
        try:
            read_answer(200, path.read_bytes())
            seen[path.name] = "ok"
        except OcrError as error:
            seen[path.name] = type(error).__name__
    assert expected == seen


def test_license_plate_words_keep_float_coordinates_and_lines() -> None:
    """Overlay words come back with float boxes and their line index."""
    answer = read_answer(200, sample("overlay_ok_license_plate.json"))
    first_page = answer.pages[0]
    assert "New Jersey\nZPT 958\nGarden State" == first_page.text
    assert [("New", 188.0, 48.0, 216.0, 56.0, 0), ("Jersey", 416.0, 48.0, 320.0, 76.0, 0)] == [
        (w.text, w.left, w.top, w.width, w.height, w.line) for w in first_page.words[:2]
    ]
    assert 2 == first_page.words[-1].line
    assert 421.0 == answer.processing_ms


def test_japanese_overlay_sample_has_all_lines() -> None:
    """The vendor's real overlay answer yields its 39 lines of words."""
    answer = read_answer(200, sample("overlay_ok_jpn_a9t9_ocrapi-response.json"))
    assert 38 == max(word.line for word in answer.pages[0].words)
    assert answer.pages[0].text.startswith("選り抜き記事")


def test_partial_answer_keeps_good_pages_and_records_the_failed_one() -> None:
    """OCRExitCode 2: page 1 text kept (string exit code), page 2's error recorded."""
    answer = read_answer(200, sample("multipage_partial_official_docs_example_ASSEMBLED.json"))
    assert 2 == answer.exit_code
    assert ["This is a sample parsed result", ""] == [p.text for p in answer.pages]
    assert [None, "...error message (if any); ...detailed error message (if any)"] == [
        p.error for p in answer.pages
    ]


@pytest.mark.parametrize("name", sorted(SAMPLE_OUTCOMES))
def test_every_recorded_answer_shape_gives_correct_sidecars(tmp_path: Path, name: str) -> None:
    """Replaying each real recorded answer yields the right .txt/.json, or the right error sidecar."""
    inbox = tmp_path / "in"
    image, _ = page(["any"], size=(400, 120))
    save(image, inbox / "scan.png")
    expected_status, expected = SAMPLE_OUTCOMES[name]
    with FakeOcrSpace(mode="fixed", body=sample(name), api_key=KEY) as fake:
        config = {"ocrspace": {"endpoint": fake.url}, "inboxes": [{"path": "in", "overlay": True}]}
        result = ocrwatch(
            "once", "-c", str(write_config(tmp_path, config)), env={"OCRSPACE_API_KEY": KEY}
        )
        assert 1 == len(fake.requests)
    if expected_status == "done":
        assert 0 == result.returncode, result.stderr
        assert text_of(inbox / "scan.png").startswith(expected)
        assert (
            without_overlay(json.loads(sample(name)))
            == (record(inbox / "scan.png")["pages"][0]["results"][0]["raw"])
        )
    else:
        assert 1 == result.returncode
        error = json.loads((inbox / "scan.png.error.json").read_text())
        jsonschema.validate(error, SCHEMA)
        assert expected == error["error"]["classification"]
        assert not (inbox / "scan.png.json").exists()
