"""The documentation keeps up with the code: every option is in the README and the example."""

from __future__ import annotations

import re

from pydantic import BaseModel

from ocrwatch.config import (
    Config,
    CropConfig,
    HookConfig,
    InboxConfig,
    MetricsConfig,
    OcrSpaceConfig,
    RateLimitConfig,
    TesseractConfig,
)
from tests.support.paths import REPO


def option_names(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_readme_documents_every_option() -> None:
    """Each config key appears in the README in backticks."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    prose = re.sub(r"```.*?```", "", readme, flags=re.DOTALL)
    spans = re.findall(r"`([^`]+)`", prose)
    documented = {word for span in spans for word in re.findall(r"[a-z_]+", span)}
    for model in (
        Config,
        OcrSpaceConfig,
        TesseractConfig,
        InboxConfig,
        RateLimitConfig,
        HookConfig,
        MetricsConfig,
    ):
        missing = option_names(model) - documented
        assert set() == missing, f"{model.__name__} options missing from README.md"


def test_example_config_mentions_every_option() -> None:
    """config.example.yaml shows (or comments) every key, so it doubles as a reference."""
    example = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    keys = set(re.findall(r"([a-z_]+):", example)) | set(re.findall(r"\{([a-z_]+):", example))
    for model in (
        Config,
        OcrSpaceConfig,
        TesseractConfig,
        InboxConfig,
        CropConfig,
        HookConfig,
        MetricsConfig,
    ):
        missing = (
            option_names(model)
            - keys
            - {"api_key"}
            - ({"x", "y", "width", "height"} if model is CropConfig else set())
        )
        assert set() == missing, f"{model.__name__} options missing from config.example.yaml"
