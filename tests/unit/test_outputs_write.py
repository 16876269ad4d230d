"""Which files an inbox writes, in process: listed in the record, written without OCR when a
format is added, kept when one is removed, never lost to a writer's failure."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from ocrwatch import after, current, scan
from ocrwatch.current import FileFacts
from ocrwatch.finish import event
from ocrwatch.outcome import Outcome, Status
from ocrwatch.pipeline import process_file
from ocrwatch.plan import InboxPlan
from ocrwatch.sidecar import SidecarPaths
from ocrwatch.store import StateStore
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.records import legacy_record
from tests.support.render import page
from tests.support.tmpfs import leave_inodes, small_tmpfs


def inbox_with(folder: Path, **options: object) -> InboxPlan:
    return plan_for(folder, **options).inboxes[0]


def record_of(path: Path) -> dict:
    return json.loads(SidecarPaths.of(path).result.read_text())


def facts(path: Path) -> FileFacts:
    return FileFacts.of_stat(os.stat(path), lambda: hashlib.sha256(path.read_bytes()).hexdigest())


def an_image(inbox: InboxPlan, name: str = "scan.png") -> Path:
    path = inbox.path / name
    page(["a receipt", "total 12.50"], size=(400, 200))[0].save(path)
    return path


def said(found: current.Verdict | None) -> str:
    assert found is not None
    return found.message


def listed(record: dict) -> dict[str, dict]:
    return {entry["format"]: entry for entry in record["outputs"]}


def test_the_record_lists_every_file_it_vouches_for(tmp_path: Path) -> None:
    inbox = inbox_with(tmp_path, formats=["txt", "json", "hocr", "alto"])
    path = an_image(inbox)
    assert Status.DONE == process_file(path, inbox, FakeEngine()).status
    record = record_of(path)
    assert 3 == record["schema_version"]
    paths = SidecarPaths.of(path)
    entries = listed(record)
    assert ["txt", "hocr", "alto"] == [entry["format"] for entry in record["outputs"]]
    for name in ("txt", "hocr", "alto"):
        written = paths.output(name)
        info = written.stat()
        assert (written.name, info.st_size, info.st_mtime_ns) == (
            entries[name]["name"],
            entries[name]["size"],
            entries[name]["mtime_ns"],
        )
        assert hashlib.sha256(written.read_bytes()).hexdigest() == entries[name]["sha256"]
    # The record comes before the text, so that a scan reads it without the words.
    keys = list(record)
    assert keys.index("outputs") < keys.index("text")
    assert not paths.pdf.exists()


def test_the_default_writes_the_text_and_the_record_only(tmp_path: Path) -> None:
    inbox = inbox_with(tmp_path)
    path = an_image(inbox)
    process_file(path, inbox, FakeEngine())
    assert ["txt"] == [entry["format"] for entry in record_of(path)["outputs"]]
    names = sorted(child.name for child in inbox.path.iterdir())
    assert ["scan.png", "scan.png.json", "scan.png.txt"] == names


def test_an_added_format_is_written_from_the_record_without_ocr(tmp_path: Path) -> None:
    path = an_image(inbox_with(tmp_path))
    process_file(path, inbox_with(tmp_path), FakeEngine())
    text_before = SidecarPaths.of(path).text.stat().st_mtime_ns
    wider = inbox_with(tmp_path, formats=["txt", "json", "alto", "hocr"])
    assert current.verdict(path, wider, facts(path)) is None
    fake = FakeEngine()
    outcome = process_file(path, wider, fake)
    assert (Status.DONE, []) == (outcome.status, fake.calls)
    assert "wrote hocr, alto from its record, without OCR" == outcome.message
    assert {"txt", "hocr", "alto"} == set(listed(record_of(path)))
    assert text_before == SidecarPaths.of(path).text.stat().st_mtime_ns
    assert "a" in SidecarPaths.of(path).alto.read_text()
    again = FakeEngine()
    assert Status.SKIPPED == process_file(path, wider, again).status
    assert [] == again.calls


def test_a_removed_format_leaves_its_file_and_is_current(tmp_path: Path) -> None:
    wide = inbox_with(tmp_path, formats=["txt", "json", "alto"])
    path = an_image(wide)
    process_file(path, wide, FakeEngine())
    narrow = inbox_with(tmp_path)
    assert Status.SKIPPED == process_file(path, narrow, FakeEngine()).status
    assert SidecarPaths.of(path).alto.exists()
    # Chosen again, the file still vouched for needs nothing.
    assert Status.SKIPPED == process_file(path, wide, FakeEngine()).status


@pytest.mark.parametrize("change", ["deleted", "edited"])
def test_a_deleted_or_edited_output_is_written_again_without_ocr(
    tmp_path: Path, change: str
) -> None:
    inbox = inbox_with(tmp_path, formats=["txt", "json", "hocr"])
    path = an_image(inbox)
    process_file(path, inbox, FakeEngine())
    hocr = SidecarPaths.of(path).hocr
    original = hocr.read_bytes()
    if change == "deleted":
        hocr.unlink()
    else:
        hocr.write_bytes(original + b"<!-- edited -->")
    fake = FakeEngine()
    assert (Status.DONE, []) == (process_file(path, inbox, fake).status, fake.calls)
    assert original == hocr.read_bytes()


def test_a_version_2_record_stays_current_without_a_rewrite(tmp_path: Path) -> None:
    """Upgrading never touches a finished file whose inbox wants what version 2 wrote."""
    inbox = inbox_with(tmp_path)
    path = an_image(inbox)
    process_file(path, inbox, FakeEngine())
    paths = SidecarPaths.of(path)
    record = record_of(path)
    del record["outputs"]
    record["schema_version"] = 2
    paths.result.write_text(json.dumps(record))
    before = paths.result.stat().st_mtime_ns
    assert Status.SKIPPED == process_file(path, inbox, FakeEngine()).status
    assert before == paths.result.stat().st_mtime_ns
    # A format added to it: written from the record, and the .txt listed with it.
    wider = inbox_with(tmp_path, formats=["txt", "json", "alto"])
    fake = FakeEngine()
    assert (Status.DONE, []) == (process_file(path, wider, fake).status, fake.calls)
    assert {"txt", "alto"} == set(listed(record_of(path)))


def test_a_record_without_words_is_read_again_for_a_format_that_needs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = inbox_with(tmp_path)
    path = an_image(inbox)
    process_file(path, inbox, FakeEngine())
    paths = SidecarPaths.of(path)
    v1 = legacy_record(record_of(path), inbox, overlay=False, image={"format": "PNG", "frames": 1})
    paths.result.write_text(json.dumps(v1))
    assert Status.SKIPPED == process_file(path, inbox, FakeEngine()).status
    wider = inbox_with(tmp_path, formats=["txt", "json", "alto"])
    fake = FakeEngine()
    with caplog.at_level(logging.INFO, logger="ocrwatch.pipeline"):
        outcome = process_file(path, wider, fake)
    assert (Status.DONE, ["scan"]) == (outcome.status, fake.calls)
    assert "keeps no word boxes, which alto need" in caplog.text


def test_a_cached_verdict_does_not_hide_a_format_added_or_a_file_deleted(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state-cache")
    inbox = inbox_with(tmp_path)
    path = an_image(inbox)
    process_file(path, inbox, FakeEngine())
    stat_only = FileFacts.of_stat(os.stat(path))
    found = current.verdict(path, inbox, stat_only, cache=store)
    assert found is not None and "done" == found.status
    assert "cached verdict is current" == said(current.verdict(path, inbox, stat_only, cache=store))
    wider = inbox_with(tmp_path, formats=["txt", "json", "hocr"])
    assert current.verdict(path, wider, stat_only, cache=store) is None
    process_file(path, wider, FakeEngine())
    assert "sidecar is current" == said(current.verdict(path, wider, stat_only, cache=store))
    assert "cached verdict is current" == said(current.verdict(path, wider, stat_only, cache=store))
    SidecarPaths.of(path).hocr.unlink()
    assert current.verdict(path, wider, stat_only, cache=store) is None


def test_a_writer_that_fails_loses_no_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a writer is recorded, the text kept, and not retried until ocrwatch changes."""
    from ocrwatch.outputs import alto

    def broken(document: object) -> bytes:
        raise RuntimeError("writer bug")

    monkeypatch.setattr(alto, "alto_bytes", broken)
    inbox = inbox_with(tmp_path, formats=["txt", "json", "alto"])
    path = an_image(inbox)
    outcome = process_file(path, inbox, FakeEngine())
    assert Status.DONE == outcome.status
    paths = SidecarPaths.of(path)
    assert paths.text.read_text().startswith("text of scan")
    assert not paths.alto.exists()
    entry = listed(record_of(path))["alto"]
    assert ("internal", "writer bug") == (
        entry["error"]["classification"],
        entry["error"]["message"],
    )
    fake = FakeEngine()
    assert (Status.SKIPPED, []) == (process_file(path, inbox, fake).status, fake.calls)
    assert [] == [p.name for p in inbox.path.iterdir() if p.name.endswith(".ocrwatch-tmp")]


def test_a_searchable_pdf_is_told_from_a_users_by_its_record_not_its_name(tmp_path: Path) -> None:
    inbox = inbox_with(tmp_path, patterns=["*.pdf", "*.png"])
    source = an_image(inbox)
    process_file(source, inbox, FakeEngine())
    ours = SidecarPaths.of(source).pdf
    ours.write_bytes(b"%PDF-1.7\n% written for the test\n%%EOF\n")
    paths = SidecarPaths.of(source)
    record = record_of(source)
    info = ours.stat()
    record["outputs"].append(
        {
            "format": "pdf",
            "name": ours.name,
            "size": info.st_size,
            "mtime_ns": info.st_mtime_ns,
            "sha256": hashlib.sha256(ours.read_bytes()).hexdigest(),
        }
    )
    paths.result.write_text(json.dumps(record))
    mine = inbox.path / "letter.ocr.pdf"
    mine.write_bytes(ours.read_bytes())
    assert not scan.is_candidate(ours, inbox)
    assert scan.is_candidate(mine, inbox)
    assert Status.SKIPPED == process_file(ours, inbox, FakeEngine()).status
    with ours.open("ab") as stream:  # no longer what the record vouches for: a user's now
        stream.write(b"% edited\n")
    assert scan.is_candidate(ours, inbox)


def test_hooks_and_moves_take_every_format_along(tmp_path: Path) -> None:
    inbox = inbox_with(
        tmp_path,
        formats=["txt", "json", "hocr", "alto"],
        after="move",
        done_dir=str(tmp_path / "done"),
    )
    path = an_image(inbox)
    outcome = process_file(path, inbox, FakeEngine())
    final = after.finish(path, inbox, success=True)
    assert final is not None and final.parent == tmp_path / "done"
    moved = SidecarPaths.of(final)
    assert all(moved.output(name).exists() for name in ("txt", "json", "hocr", "alto"))
    assert [] == sorted(child.name for child in inbox.path.iterdir())
    values = event(path, inbox, final, outcome, status="done", engine="fake").placeholders()
    assert (str(moved.hocr), str(moved.alto), "") == (values["hocr"], values["alto"], values["pdf"])


def test_the_outcome_of_an_outputs_only_run_counts_no_request(tmp_path: Path) -> None:
    path = an_image(inbox_with(tmp_path))
    process_file(path, inbox_with(tmp_path), FakeEngine())
    outcome = process_file(path, inbox_with(tmp_path, formats=["json", "hocr"]), FakeEngine())
    assert isinstance(outcome, Outcome) and Status.DONE == outcome.status
    assert 1 == record_of(path)["requests"]


def test_no_room_for_every_file_leaves_none_of_them(tmp_path: Path) -> None:
    """Out of inodes after the .txt and the hOCR are staged: nothing is left, not even a
    temporary, and the file is tried again; with room, every file is written."""
    with small_tmpfs(tmp_path / "out", "size=16m,nr_inodes=64") as output:
        inbox = inbox_with(tmp_path, formats=["txt", "json", "hocr", "alto"], output=str(output))
        path = an_image(inbox)
        leave_inodes(output, 3)  # the .txt, the hOCR, the ALTO: no room for the .json
        outcome = process_file(path, inbox, FakeEngine(), give_up=())
        assert (Status.RETRY, "output") == (outcome.status, outcome.classification)
        assert [] == [
            child.name for child in output.iterdir() if not child.name.startswith(".fill")
        ]
        for filler in output.glob(".fill*"):
            filler.unlink()
        assert Status.DONE == process_file(path, inbox, FakeEngine()).status
        written = sorted(child.name for child in output.iterdir())
        assert [
            "scan.png.alto.xml",
            "scan.png.hocr",
            "scan.png.json",
            "scan.png.txt",
        ] == written


def test_a_pdf_that_cannot_be_pdfa_under_fail_is_recorded_and_the_text_kept(tmp_path: Path) -> None:
    """PDF/A refused (a CMYK JPEG has no sRGB equivalent here) with on_pdfa_failure: fail: no
    searchable PDF, the reason in the record, the text written; not tried again while nothing
    changes. With plain, a plain searchable PDF saying why it is not PDF/A."""
    strict = inbox_with(
        tmp_path, formats=["txt", "json", "pdf"], searchable_pdf={"on_pdfa_failure": "fail"}
    )
    path = strict.path / "cmyk.jpg"
    image, _ = page(["printed in four colours"], size=(600, 200))
    image.convert("CMYK").save(path, dpi=(300, 300))
    assert Status.DONE == process_file(path, strict, FakeEngine()).status
    paths = SidecarPaths.of(path)
    entry = listed(record_of(path))["pdf"]
    assert ("bad_input", False, True) == (
        entry["error"]["classification"],
        paths.pdf.exists(),
        paths.text.exists(),
    )
    assert "PDF/A" in entry["error"]["message"]
    fake = FakeEngine()
    assert (Status.SKIPPED, []) == (process_file(path, strict, fake).status, fake.calls)
    lenient = inbox_with(tmp_path, formats=["txt", "json", "pdf"])
    assert (Status.DONE, []) == (process_file(path, lenient, fake).status, fake.calls)
    written = listed(record_of(path))["pdf"]
    assert (None, True) == (written["pdfa"], paths.pdf.exists())
    assert written["pdfa_error"]
    assert {"pdfa": "2b", "on_pdfa_failure": "plain", "rotate_pages": True} == written["options"]


def test_a_regions_words_sit_at_their_true_place_in_every_format(tmp_path: Path) -> None:
    """Regions are read apart, but their words are placed on the whole page: a word of the
    lower region starts at that region's top, in the record, the hOCR and the ALTO alike."""
    inbox = inbox_with(
        tmp_path,
        formats=["txt", "json", "hocr", "alto"],
        regions={
            "upper": {"x": 0, "y": 0, "width": "100%", "height": 100},
            "lower": {"x": 40, "y": 100, "width": 300, "height": 100},
        },
    )
    path = an_image(inbox)
    assert Status.DONE == process_file(path, inbox, FakeEngine()).status
    results = record_of(path)["pages"][0]["results"]
    lower = next(result for result in results if result["name"] == "lower")
    assert (40.0, 100.0) == (lower["words"][0]["left"], lower["words"][0]["top"])
    hocr = SidecarPaths.of(path).hocr.read_text()
    alto = SidecarPaths.of(path).alto.read_text()
    assert 'title="bbox 40 100 ' in hocr
    assert 'HPOS="40" VPOS="100"' in alto
