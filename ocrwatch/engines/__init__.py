"""The engine registry: config name to engine class, loaded on first use.

Engine modules import heavy native libraries (tesserocr, requests' pools), so
each is imported only when an engine of that kind is created or checked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ocrwatch.engines.base import EngineSetup, OcrEngine, OcrRequest, OcrResult, Page, Word
from ocrwatch.errors import EngineUnavailableError
from ocrwatch.imaging import Upload

if TYPE_CHECKING:
    from ocrwatch.apikey import ApiKey, KeyHolder
    from ocrwatch.config import Config
    from ocrwatch.ratelimit import Gate

__all__ = [
    "REGISTRY",
    "EngineSetup",
    "OcrEngine",
    "OcrRequest",
    "OcrResult",
    "Page",
    "Upload",
    "Word",
    "create_engine",
    "engine_class",
    "language_problem",
]


def _ocrspace() -> type[OcrEngine]:
    from ocrwatch.engines.ocrspace.client import OcrSpaceEngine

    return OcrSpaceEngine


def _tesseract() -> type[OcrEngine]:
    from ocrwatch.engines.tesseract.engine import TesseractEngine

    return TesseractEngine


REGISTRY: Mapping[str, Callable[[], type[OcrEngine]]] = {
    "ocrspace": _ocrspace,
    "tesseract": _tesseract,
}
"""Each engine's name in the config, and how to load its class."""


def engine_class(name: str) -> type[OcrEngine]:
    """The class registered as ``name``. Raises EngineUnavailableError if it is unknown or cannot load."""
    try:
        load = REGISTRY[name]
    except KeyError:
        raise EngineUnavailableError(
            f"unknown engine {name!r}; known: {', '.join(REGISTRY)}"
        ) from None
    try:
        return load()
    except ImportError as error:
        raise EngineUnavailableError(f"the {name} engine cannot load: {error}") from error


def create_engine(
    name: str,
    config: Config,
    *,
    api_key: ApiKey | KeyHolder | None = None,
    workers: int = 4,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    gate: Gate | None = None,
) -> OcrEngine:
    """A ready engine of kind ``name`` built from ``config``. Raises EngineUnavailableError."""
    setup = EngineSetup(
        config=config, api_key=api_key, workers=workers, env=env, stop=stop, gate=gate
    )
    return engine_class(name).create(setup)


def language_problem(
    name: str,
    language: str,
    config: Config,
    env: Mapping[str, str],
    *,
    detect_orientation: bool = True,
) -> str | None:
    """Why engine ``name`` cannot read ``language`` here (with orientation data if asked), or None."""
    try:
        engine_type = engine_class(name)
        if not engine_type.needs_language_data:
            return None
        engine = engine_type.create(EngineSetup(config=config, env=env))
        try:
            engine.check_language(language, detect_orientation=detect_orientation)
        finally:
            engine.close()
    except EngineUnavailableError as error:
        return str(error)
    return None
