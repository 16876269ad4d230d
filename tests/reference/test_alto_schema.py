"""ALTO files ocrwatch writes are valid against the ALTO 4.4 schema, read offline.

The schema is ``schemas/alto-4-4.xsd`` of the shared material, unmodified.
It imports XLink from the Library of Congress's site; the parser here may
not reach the network, and a resolver answers that one import with
``tests/support/xlink.xsd``, our own declaration of the ``simpleLink``
attributes. Files come from a page Tesseract read, from a partial document
(a failed and an empty page), from the hand-made record of the unit tests,
and from real PDFs of the shared material read through the pipeline.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from ocrwatch.engines.tesseract.engine import TesseractEngine
from ocrwatch.errors import BadInputError
from ocrwatch.outcome import Status
from ocrwatch.outputs.alto import alto_bytes
from ocrwatch.outputs.model import document_of
from ocrwatch.pipeline import process_file
from tests.support.fake_engine import FakeEngine
from tests.support.paths import DOCUMENTS, REPO, SHARED
from tests.support.plans import plan_for
from tests.support.render import page
from tests.unit.test_outputs_hocr_alto import hand_record, record_of, scanned_pdf

pytestmark = pytest.mark.reference

ALTO_SCHEMA = SHARED / "schemas" / "alto-4-4.xsd"
XLINK_LOCATION = "http://www.loc.gov/standards/xlink/xlink.xsd"
OUR_XLINK = REPO / "tests" / "support" / "xlink.xsd"


class OfflineXlink(etree.Resolver):  # type: ignore[misc]
    """Answers the ALTO schema's import of XLink with our own small schema."""

    def resolve(self, url: str, public_id: str | None, context: Any) -> Any:
        if url == XLINK_LOCATION:
            return self.resolve_filename(str(OUR_XLINK), context)
        return None


@functools.cache
def alto_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(OfflineXlink())
    return etree.XMLSchema(etree.parse(str(ALTO_SCHEMA), parser))


def problems(data: bytes) -> list[str]:
    """What the schema finds wrong with ``data``: empty for a valid file."""
    schema = alto_schema()
    if schema.validate(etree.fromstring(data)):
        return []
    return [f"{error.line}: {error.message}" for error in schema.error_log]


@pytest.fixture(scope="module")
def tesseract() -> Any:
    engine = TesseractEngine(env={})
    yield engine
    engine.close()


def test_the_validator_rejects_what_the_schema_forbids() -> None:
    """A confidence over 1 and a page without its number fail: the check is not vacuous."""
    valid = alto_bytes(document_of(hand_record()))
    assert [] == problems(valid)
    broken = valid.replace(b'WC="0.916"', b'WC="91.6"').replace(b' PHYSICAL_IMG_NR="3"', b"")
    found = problems(broken)
    assert (2, True, True) == (
        len(found),
        any("WC" in problem for problem in found),
        any("PHYSICAL_IMG_NR" in problem for problem in found),
    )


def test_alto_of_a_page_tesseract_read_is_valid(tmp_path: Path, tesseract: Any) -> None:
    """Blocks, lines, words with WC, SP and BASELINE from a real read are valid ALTO 4.4."""
    inbox = plan_for(tmp_path, crop={"left": 20}).inboxes[0]
    image, _ = page(["Valid ALTO from Tesseract", "with two lines & more"], size=(1000, 260))
    path = inbox.path / "page.png"
    image.save(path)
    assert Status.DONE == process_file(path, inbox, tesseract).status
    data = alto_bytes(document_of(record_of(path)))
    assert (b"BASELINE=" in data, b"WC=" in data, b"<SP " in data) == (True, True, True)
    assert [] == problems(data)


def test_alto_of_a_document_with_a_failed_and_an_empty_page_is_valid(tmp_path: Path) -> None:
    """A partial PDF read by the fake engine (its failed page says why) is valid ALTO 4.4."""
    inbox = plan_for(tmp_path).inboxes[0]
    path = scanned_pdf(inbox.path / "scan.pdf")
    engine = FakeEngine(
        texts={"scan": "a & b < c", "scan-p3": ""},
        failures={"scan-p2": BadInputError("E301: <page> unreadable")},
    )
    engine.page_workers = 1
    assert Status.PARTIAL == process_file(path, inbox, engine).status
    data = alto_bytes(document_of(record_of(path)))
    assert b"processing_failed_2" in data
    assert [] == problems(data)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("ocrmypdf_3small.pdf", "ocr"),  # three small scans, one 50 pixels high, read by Tesseract
        ("pikepdf_fourpages.pdf", "embedded"),  # typed pages: their own text, no OCR
    ],
)
def test_alto_of_a_real_pdf_read_through_the_pipeline_is_valid(
    tmp_path: Path, tesseract: Any, name: str, source: str
) -> None:
    """Real PDFs made elsewhere, read by the pipeline: every page present, the file valid."""
    inbox = plan_for(tmp_path).inboxes[0]
    path = inbox.path / name
    shutil.copyfile(DOCUMENTS / name, path)
    assert Status.DONE == process_file(path, inbox, tesseract).status
    document = document_of(record_of(path))
    data = alto_bytes(document)
    root = etree.fromstring(data)
    namespace = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
    assert (len(document.pages), sum(len(model.words) for model in document.pages) > 0) == (
        len(root.findall(".//a:Page", namespace)),
        len(root.findall(".//a:String", namespace)) > 0,
    )
    assert {source} == {model.text_source for model in document.pages}
    assert [] == problems(data)
