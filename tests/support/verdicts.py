"""Judging what the daemon left behind: sidecars, error sidecars, temporaries, requests, memory.

Owns the checks that several attack tests share: a result sidecar that is
complete and consistent (schema, ``.txt`` against ``text`` and
``text_sha256``, the image's own sha256), an error sidecar's verdict, the
temporaries a crash may leave, and the outcome a file *must* have had given
the faults the server really gave it (:func:`expected_outcome`), so that
randomly injected faults are still judged exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from ocrwatch.sidecar import TEMP_SUFFIX
from tests.support.ocrspace_server import FakeOcrSpace, RecordedRequest
from tests.support.paths import REPO

SCHEMA = json.loads(
    (REPO / "ocrwatch" / "schemas" / "sidecar.schema.json").read_text(encoding="utf-8")
)

# How ocr.space's answers must be classified (README, "What ocrwatch does with
# ocr.space's answers"). Rate limits and rejected keys stop every request and
# are attacked by their own tests.
SUCCESS_FAULTS = frozenset({None, "partial_exit2"})
PERMANENT_FAULTS = frozenset({"input_exit3", "input_exit99", "http400_e501"})
TRANSIENT_FAULTS = frozenset(
    {
        "timeout_exit6",
        "http500",
        "http502",
        "http503",
        "html_error",
        "slow",
        "reset_mid_body",
        "truncated_json",
        "malformed_json",
    }
)


def sidecar(image: Path, suffix: str, folder: Path | None = None) -> Path:
    """``image``'s sidecar with ``suffix`` (``.txt``, ``.json``, ``.error.json``)."""
    return (folder or image.parent) / (image.name + suffix)


def finished(image: Path, folder: Path | None = None) -> bool:
    """True once ``image`` has a result sidecar or an error sidecar."""
    return (
        sidecar(image, ".json", folder).exists() or sidecar(image, ".error.json", folder).exists()
    )


def done_record(
    image: Path, folder: Path | None = None, *, image_bytes: bytes | None = None
) -> dict[str, Any]:
    """The validated result record of ``image``; fails unless its sidecars are whole and agree."""
    record_path = sidecar(image, ".json", folder)
    record = json.loads(record_path.read_text(encoding="utf-8"))
    jsonschema.validate(record, SCHEMA)
    assert "done" == record["status"], record_path
    text = sidecar(image, ".txt", folder).read_bytes()
    assert record["text"].encode("utf-8") == text, (
        f"{record_path}: .txt differs from the record's text"
    )
    assert record["text_sha256"] == hashlib.sha256(text).hexdigest(), f"{record_path}: text_sha256"
    data = image.read_bytes() if image_bytes is None else image_bytes
    assert hashlib.sha256(data).hexdigest() == record["source"]["sha256"], (
        f"{record_path}: source sha256"
    )
    assert not sidecar(image, ".error.json", folder).exists(), (
        f"{image}: both a result and an error sidecar"
    )
    return record


def error_record(image: Path, folder: Path | None = None) -> dict[str, Any]:
    """The validated error record of ``image``; fails unless there is exactly an error sidecar."""
    path = sidecar(image, ".error.json", folder)
    record = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(record, SCHEMA)
    assert "failed" == record["status"], path
    assert not sidecar(image, ".json", folder).exists(), (
        f"{image}: both a result and an error sidecar"
    )
    return record


def verdict(image: Path, folder: Path | None = None) -> tuple[str, str | None]:
    """``("done", None)`` or ``("failed", classification)`` after checking the sidecars."""
    if sidecar(image, ".json", folder).exists():
        done_record(image, folder)
        return "done", None
    return "failed", error_record(image, folder)["error"]["classification"]


def temporaries(*roots: Path) -> list[Path]:
    """ocrwatch temporaries (``*.ocrwatch-tmp``) anywhere under ``roots``."""
    found = []
    for root in roots:
        for folder, _, names in os.walk(root):
            found += [Path(folder) / name for name in names if name.endswith(TEMP_SUFFIX)]
    return found


def orphans(folder: Path) -> list[Path]:
    """``.txt`` sidecars in ``folder`` without the ``.json`` that commits them."""
    return [
        text
        for text in folder.iterdir()
        if text.name.endswith(".txt")
        and not text.with_name(text.name[: -len(".txt")] + ".json").exists()
    ]


def requests_by_name(server: FakeOcrSpace) -> dict[str, list[RecordedRequest]]:
    """Every recorded upload per file name, in the order the server received them."""
    grouped: dict[str, list[RecordedRequest]] = {}
    for request in sorted(server.requests, key=lambda recorded: recorded.received_at):
        if request.filename is not None:
            grouped.setdefault(request.filename, []).append(request)
    return grouped


@dataclass(frozen=True)
class Expected:
    """What must have become of a file, given the answers it got."""

    status: str
    classification: str | None


def expected_outcome(
    faults: Sequence[str | None], *, attempts: int, transient_attempts: int
) -> Expected:
    """The outcome README's table prescribes for a file whose requests got ``faults`` in order.

    Fails when the sequence itself breaks the rules: a request after a final
    answer (a retried success or a retried bad input), or more requests than
    ``attempts * transient_attempts``.
    """
    limit = attempts * transient_attempts
    assert 1 <= len(faults) <= limit, f"{len(faults)} requests, bound is {limit}: {faults}"
    for index, fault in enumerate(faults):
        final = fault in SUCCESS_FAULTS or fault in PERMANENT_FAULTS
        if final:
            assert index == len(faults) - 1, f"sent again after a final answer ({fault}): {faults}"
            return (
                Expected("done", None)
                if fault in SUCCESS_FAULTS
                else Expected("failed", "bad_input")
            )
        assert fault in TRANSIENT_FAULTS, f"unexpected fault {fault}"
    assert len(faults) == limit, (
        f"gave up after {len(faults)} transient failures, bound is {limit}: {faults}"
    )
    return Expected("failed", "transient")


def peak_memory_bytes(pid: int) -> int:
    """The peak resident set size (VmHWM) of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def files_containing(needle: bytes, roots: Iterable[Path]) -> list[Path]:
    """Every regular file under ``roots`` (followed into folders, not links) whose bytes hold ``needle``."""
    hits = []
    for root in roots:
        paths = (
            [root]
            if root.is_file()
            else [Path(folder) / name for folder, _, names in os.walk(root) for name in names]
        )
        for path in paths:
            if path.is_symlink() or not path.is_file():
                continue
            try:
                if needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits
