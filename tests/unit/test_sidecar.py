"""Sidecar names, atomic writes and the current-check."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ocrwatch import sidecar
from ocrwatch.sidecar import SidecarPaths
from tests.support.privileges import run_python


def test_names_keep_the_image_extension(tmp_path: Path) -> None:
    """scan.jpg and scan.png in one folder get distinct sidecars."""
    jpg = SidecarPaths.of(tmp_path / "scan.jpg")
    png = SidecarPaths.of(tmp_path / "scan.png")
    assert ["scan.jpg.txt", "scan.jpg.json", "scan.jpg.error.json"] == [
        jpg.text.name,
        jpg.result.name,
        jpg.error.name,
    ]
    assert len({jpg.text, jpg.result, png.text, png.result}) == 4


def test_commit_writes_text_then_record_and_drops_an_old_error(tmp_path: Path) -> None:
    """A commit leaves .txt and .json (with the text's hash) and removes .error.json."""
    paths = SidecarPaths.of(tmp_path / "a.png")
    paths.error.write_text("{}")
    sidecar.commit(paths, "héllo\n", {"schema_version": 1, "status": "done"})
    record = json.loads(paths.result.read_text(encoding="utf-8"))
    assert "héllo\n" == paths.text.read_text(encoding="utf-8")
    assert hashlib.sha256("héllo\n".encode()).hexdigest() == record["text_sha256"]
    assert not paths.error.exists()
    assert [] == [p.name for p in tmp_path.iterdir() if p.name.endswith(sidecar.TEMP_SUFFIX)]


def test_write_into_read_only_folder_raises_output_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A folder we cannot write gives OutputError, classified 'output' (retryable)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    code = (
        "from pathlib import Path\n"
        "from ocrwatch import sidecar\n"
        "from ocrwatch.errors import OutputError\n"
        "try:\n"
        f"    sidecar.write_atomic(Path({str(folder / 'x.txt')!r}), b'data')\n"
        "except OutputError as error:\n"
        "    print(error.classification, error.retryable, error)\n"
    )
    try:
        result = run_python(code)
    finally:
        folder.chmod(0o755)
    assert (
        f"output True cannot write sidecar {folder / 'x.txt'}: permission denied\n" == result.stdout
    ), result.stderr
    assert [] == list(folder.iterdir())


def test_files_get_the_mode_a_plain_open_would_give(tmp_path: Path) -> None:
    """Sidecars are not left at mkstemp's 0600."""
    path = tmp_path / "x.txt"
    sidecar.write_atomic(path, b"x")
    current = os.umask(0)
    os.umask(current)
    assert 0o666 & ~current == path.stat().st_mode & 0o777


def test_load_refuses_foreign_and_broken_json(tmp_path: Path) -> None:
    """Only records with our schema version count."""
    path = tmp_path / "r.json"
    path.write_text('{"schema_version": 99}')
    assert sidecar.load(path) is None
    path.write_text('{"schema_version": 1, "sta')
    assert sidecar.load(path) is None
    path.write_text('{"schema_version": 1}')
    assert {"schema_version": 1} == sidecar.load(path)


def test_matches_uses_size_and_mtime_before_hashing() -> None:
    """Equal size+mtime is current, other size is stale, other mtime needs the hash."""
    record = {"settings_fingerprint": "f", "source": {"size": 10, "mtime_ns": 5, "sha256": "abc"}}
    assert sidecar.matches(record, size=10, mtime_ns=5) is True
    assert sidecar.matches(record, size=11, mtime_ns=5) is False
    assert sidecar.matches(None, size=10, mtime_ns=5) is False
    assert sidecar.matches(record, size=10, mtime_ns=6) is None
    assert sidecar.same_content(record, "abc")


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    """Temporaries left by a crash go; other files stay."""
    (tmp_path / ".a.jpg.txt.x1y2.ocrwatch-tmp").write_text("partial")
    (tmp_path / "a.jpg").write_text("image")
    assert 1 == sidecar.remove_stale_temps(tmp_path)
    assert ["a.jpg"] == [p.name for p in tmp_path.iterdir()]


def test_the_head_of_a_record_is_read_without_its_pages(tmp_path: Path) -> None:
    """load_head stops at the text: a huge record is judged from its first fields."""
    path = tmp_path / "r.json"
    pages = [{"number": n, "words": ["w"] * 2000} for n in range(200)]
    record = {
        "schema_version": 2,
        "status": "partial",
        "source": {"sha256": "abc", "size": 3},
        "settings_fingerprint": "f",
        "text": "x" * 100_000,
        "pages": pages,
    }
    sidecar.write_atomic(path, json.dumps(record, indent=1).encode())
    assert path.stat().st_size > sidecar.HEAD_BYTES
    assert {
        "schema_version": 2,
        "status": "partial",
        "source": {"sha256": "abc", "size": 3},
        "settings_fingerprint": "f",
    } == sidecar.load_head(path)
    path.write_text(json.dumps({**record, "schema_version": 9}))
    assert sidecar.load_head(path) is None
    # Laid out otherwise (text first): loaded whole.
    small = {"text": "t", "schema_version": 2, "status": "done"}
    path.write_text(json.dumps(small))
    assert small == sidecar.load_head(path)
