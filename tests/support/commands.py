"""Running the ``ocrwatch`` command as a user would, and reading what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from PIL import Image

from tests.support.paths import REPO

SCHEMA = json.loads((REPO / "ocrwatch" / "schemas" / "sidecar.schema.json").read_text())
"""The published sidecar schema: every sidecar a test reads is validated against it."""
KEY = "K8-DISTINCTIVE-KEY-0042"
"""An ocr.space key distinctive enough to be searched for in everything written."""
COMMAND_TIMEOUT_SECONDS = 300
FREE_TIER_BYTES = 1_048_576
"""The free tier's upload limit, which every upload of a default config must fit."""


def ocrwatch(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ocrwatch ARGS`` in a fresh process, with ``env`` added to this one's."""
    return subprocess.run(
        [sys.executable, "-m", "ocrwatch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    """``config`` as ``folder/ocrwatch.yaml``, keys in the order given."""
    path = folder / "ocrwatch.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def record(image: Path) -> dict[str, Any]:
    """The ``.json`` sidecar of ``image``, validated against the schema."""
    data: dict[str, Any] = json.loads(
        image.with_name(image.name + ".json").read_text(encoding="utf-8")
    )
    jsonschema.validate(data, SCHEMA)
    return data


def text_of(image: Path) -> str:
    """The ``.txt`` sidecar of ``image``."""
    return image.with_name(image.name + ".txt").read_text(encoding="utf-8")


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    """Save ``image`` at ``path``, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def read_through_fake_ocrspace(folder: Path, truths: dict[Path, str], *, below: float) -> None:
    """``ocrwatch once`` over ``folder/in`` against the local ocr.space server reading with Tesseract.

    Checks what any page set must satisfy on the ocr.space path: every upload
    passes the server's protocol checks and fits the 1 MiB free-tier budget,
    each file's text reads with a CER below ``below``, each record names
    ocr.space and keeps the raw answer, and the key shows nowhere.
    """
    from tests.support.ocrspace_server import FakeOcrSpace  # late: the server pulls in Tesseract
    from tests.support.scoring import cer

    inbox = folder / "in"
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        config = write_config(
            folder, {"ocrspace": {"endpoint": fake.url}, "inboxes": [{"path": "in"}]}
        )
        result = ocrwatch("once", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})
        requests = fake.requests
    assert 0 == result.returncode, result.stderr
    assert [()] * len(truths) == [request.problems for request in requests]
    assert all(len(request.data) <= FREE_TIER_BYTES for request in requests)
    for path, truth in truths.items():
        assert cer(text_of(path), truth) < below, path.name
        data = record(path)
        assert "ocrspace" == data["engine"]["name"]
        assert 1 == data["pages"][0]["results"][0]["raw"]["OCRExitCode"]
    assert KEY not in result.stderr + "".join(p.read_text() for p in inbox.glob("*.json"))
