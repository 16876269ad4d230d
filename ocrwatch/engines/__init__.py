"""The engine registry: a plain mapping from config name to factory.

Engine modules import heavy native libraries (tesserocr, requests' pools), so
they are imported only when an engine of that kind is created or checked.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ocrwatch.engines.base import OcrEngine, OcrRequest, OcrResult, Page, Upload, Word
from ocrwatch.errors import EngineUnavailableError

if TYPE_CHECKING:
    from ocrwatch.apikey import ApiKey, KeyHolder
    from ocrwatch.config import Config
    from ocrwatch.ratelimit import RequestGate

__all__ = [
    "REGISTRY",
    "OcrEngine",
    "OcrRequest",
    "OcrResult",
    "Page",
    "Upload",
    "Word",
    "create_engine",
    "language_problem",
]

REGISTRY: Mapping[str, str] = {
    "ocrspace": "ocrwatch.engines.ocrspace:OcrSpaceEngine",
    "tesseract": "ocrwatch.engines.tesseract:TesseractEngine",
}


def engine_class(name: str) -> type[OcrEngine]:
    """The class registered as ``name``. Raises EngineUnavailableError if it cannot load."""
    try:
        module_name, _, class_name = REGISTRY[name].partition(":")
    except KeyError:
        raise EngineUnavailableError(f"unknown engine {name!r}; known: {', '.join(REGISTRY)}") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EngineUnavailableError(f"the {name} engine cannot load: {error}") from error
    engine: type[OcrEngine] = getattr(module, class_name)
    return engine


def create_engine(
    name: str,
    config: Config,
    *,
    api_key: ApiKey | KeyHolder | None = None,
    workers: int = 4,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
    gate: RequestGate | None = None,
) -> OcrEngine:
    """A ready engine of kind ``name`` built from ``config``.

    ``gate`` lets several ocr.space engine objects (before and after a reload)
    share one rate limit and pause state.
    """
    factories: dict[str, Callable[[], OcrEngine]] = {
        "ocrspace": lambda: _ocrspace(config, api_key, workers, stop, gate),
        "tesseract": lambda: _tesseract(config, env),
    }
    if name not in factories:
        raise EngineUnavailableError(f"unknown engine {name!r}; known: {', '.join(REGISTRY)}")
    return factories[name]()


def _ocrspace(
    config: Config,
    api_key: ApiKey | KeyHolder | None,
    workers: int,
    stop: threading.Event | None,
    gate: RequestGate | None,
) -> OcrEngine:
    if api_key is None:
        raise EngineUnavailableError("the ocrspace engine needs an API key")
    engine = engine_class("ocrspace")
    return engine(config.ocrspace, api_key, pool_size=workers, stop=stop, gate=gate)  # type: ignore[call-arg]


def _tesseract(config: Config, env: Mapping[str, str] | None) -> OcrEngine:
    engine = engine_class("tesseract")
    return engine(tessdata=config.tesseract.tessdata, deskew=config.tesseract.deskew, env=env)  # type: ignore[call-arg]


def language_problem(
    name: str, language: str, config: Config, env: Mapping[str, str], *, detect_orientation: bool = True
) -> str | None:
    """Why engine ``name`` cannot read ``language`` here (with orientation data if asked), or None."""
    if name != "tesseract":
        return None
    try:
        engine = _tesseract(config, env)
        try:
            engine.check_language(language, detect_orientation=detect_orientation)  # type: ignore[call-arg]
        finally:
            engine.close()
    except EngineUnavailableError as error:
        return str(error)
    return None
