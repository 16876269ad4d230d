"""The project's own ocr.space answers: one file per documented shape, in ``tests/data/ocrspace``.

Owns: reading those files and turning each into the HTTP answer it stands for
(status, content type and body bytes). The file format and the list of
fixtures are described in ``tests/data/ocrspace/README.md``; what each answer
must mean to ocrwatch is stated by the tests that use them, not here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[1] / "data" / "ocrspace"
SUFFIX = ".json"
KEYS = ("about", "status", "content_type", "body")


@dataclass(frozen=True)
class Fixture:
    """One recorded-style answer: what it stands for, and the HTTP answer itself."""

    name: str
    about: str
    """The documented behaviour this answer stands for, with its section in API.md."""
    status: int
    content_type: str
    body: object
    """The JSON value of a JSON answer, or the exact text of any other answer."""

    @property
    def is_json(self) -> bool:
        """True when the answer's content type is JSON, so ``body`` is a JSON value."""
        return is_json_type(self.content_type)

    @property
    def body_bytes(self) -> bytes:
        """The body as the server sends it: compact UTF-8 JSON, or the text in UTF-8."""
        if self.is_json:
            return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()
        assert isinstance(self.body, str)  # load() checked it
        return self.body.encode()


def is_json_type(content_type: str) -> bool:
    """True for ``application/json`` with or without parameters."""
    return content_type.split(";")[0].strip().lower() == "application/json"


def names() -> list[str]:
    """Every fixture's name (its file name without ``.json``), sorted."""
    return sorted(path.stem for path in FOLDER.glob(f"*{SUFFIX}"))


def load(name: str) -> Fixture:
    """The fixture called ``name`` (``.json`` optional).

    Raises FileNotFoundError for an unknown name and ValueError for a file that
    does not follow the format.
    """
    stem = name.removesuffix(SUFFIX)
    path = FOLDER / f"{stem}{SUFFIX}"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or tuple(sorted(data)) != tuple(sorted(KEYS)):
        raise ValueError(f"{path}: expected exactly the keys {', '.join(KEYS)}")
    about, status, content_type, body = (data[key] for key in KEYS)
    if not isinstance(about, str) or not about.startswith("API.md "):
        raise ValueError(f"{path}: 'about' must name the API.md section it stands for")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f"{path}: 'status' must be an HTTP status code")
    if not isinstance(content_type, str) or not content_type:
        raise ValueError(f"{path}: 'content_type' must be a non-empty string")
    if not is_json_type(content_type) and not isinstance(body, str):
        raise ValueError(f"{path}: a {content_type} answer needs its body as a string")
    return Fixture(stem, about, status, content_type, body)
