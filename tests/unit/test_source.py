"""Reading a file once: an image into memory, a document hashed and left on disk, no descriptor leaked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ocrwatch.errors import FileError
from ocrwatch.outcome import Status
from ocrwatch.pipeline import process_file
from ocrwatch.source import FileBytes, SourceGone, hash_file, open_bytes, read_source
from tests.support.fake_engine import FakeEngine
from tests.support.plans import plan_for
from tests.support.render import page


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_image_is_held_in_memory_and_a_document_is_left_on_disk(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    page(["an image"], size=(200, 100))[0].save(image)
    pdf = tmp_path / "b.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4000 + b"\n%%EOF\n")
    with read_source(image) as source:
        assert source.data == image.read_bytes()
        assert not source.changed()
    with read_source(pdf) as source:
        assert isinstance(source.data, FileBytes)
        assert (pdf.stat().st_size, hashlib.sha256(pdf.read_bytes()).hexdigest()) == (
            source.size,
            source.sha256,
        )
        assert source.sha256 == hash_file(pdf)


def test_file_bytes_slice_like_bytes_and_stop_at_the_bytes_hashed(tmp_path: Path) -> None:
    path = tmp_path / "c.tif"
    content = b"II*\x00" + bytes(range(256)) * 40
    path.write_bytes(content)
    with read_source(path) as source:
        data = source.data
        assert isinstance(data, FileBytes)
        for key in (slice(None), slice(3, 70), slice(-50, None), slice(-5, -1), slice(9000, None)):
            assert content[key] == data[key]
        assert (content[7], content[-1], len(content)) == (data[7], data[-1], len(data))
        with pytest.raises(IndexError):
            data[len(content)]
        with path.open("ab") as stream:
            stream.write(b"more")
        assert content == data[:]  # what was hashed, not what came after
        assert source.changed()
        with data.stream() as stream:
            assert content + b"more" == stream.read()


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    with pytest.raises(SourceGone):
        read_source(tmp_path / "missing.pdf")
    with pytest.raises(FileError, match="not a regular file"):
        read_source(tmp_path)
    os.mkfifo(tmp_path / "pipe.pdf")
    with pytest.raises(FileError, match="not a regular file"):
        open_bytes(tmp_path / "pipe.pdf")


def test_reading_documents_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """A daemon reads documents for months: each one's descriptor is let go, read or failed."""
    inbox = plan_for(tmp_path).inboxes[0]
    tiff = inbox.path / "pages.tif"
    first, _ = page(["one"], size=(300, 200))
    second, _ = page(["two"], size=(300, 200))
    first.save(tiff, save_all=True, append_images=[second])
    broken = inbox.path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot a pdf at all\n%%EOF\n")
    before = open_descriptors()
    outcomes = [
        process_file(path, inbox, FakeEngine(), force=True).status for path in (tiff, broken) * 3
    ]
    assert [Status.DONE, Status.FAILED] * 3 == outcomes
    assert before == open_descriptors()
