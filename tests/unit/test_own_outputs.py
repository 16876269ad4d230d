"""Telling ocrwatch's own searchable PDFs from a user's ``x.ocr.pdf``, including while one is committed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ocrwatch import current
from ocrwatch.outcome import Status
from ocrwatch.pipeline import process_file
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for


@pytest.mark.parametrize(
    ("formats", "beside", "age", "expected"),
    [
        (["txt", "json", "pdf"], True, 0.0, True),  # ours, its .json not yet in place
        (["txt", "json", "pdf"], True, 60.0, False),  # long unlisted: a user's
        (["txt", "json", "pdf"], False, 0.0, False),  # no input beside it: a user's
        (["txt", "json"], True, 0.0, False),  # the inbox writes no PDF: a user's
    ],
)
def test_a_new_unlisted_x_ocr_pdf_beside_x_may_be_ours(
    tmp_path: Path, formats: list[str], beside: bool, age: float, expected: bool
) -> None:
    """Only a young x.ocr.pdf next to its x, in an inbox that writes PDFs, is waited for."""
    inbox = plan_for(tmp_path, formats=formats).inboxes[0]
    output = inbox.path / "scan.pdf.ocr.pdf"
    output.write_bytes(b"%PDF-1.7\n")
    if beside:
        (inbox.path / "scan.pdf").write_bytes(b"%PDF-1.7\n")
    stamp = time.time() - age
    os.utime(output, (stamp, stamp))

    assert expected == current.may_be_own_output(output, inbox)


def test_the_pipeline_looks_again_later_at_what_may_be_its_own_pdf(tmp_path: Path) -> None:
    """Read in the moment between the PDF's rename and the .json's, the file is retried, not read."""
    inbox = plan_for(tmp_path, formats=["txt", "json", "pdf"]).inboxes[0]
    (inbox.path / "scan.pdf").write_bytes(b"%PDF-1.7\n")
    output = inbox.path / "scan.pdf.ocr.pdf"
    output.write_bytes(b"%PDF-1.7\n")
    engine = FakeEngine()

    outcome = process_file(output, inbox, engine)

    assert (Status.RETRY, "incomplete") == (outcome.status, outcome.classification)
    assert [] == engine.calls
    assert not (inbox.path / "scan.pdf.ocr.pdf.json").exists()
