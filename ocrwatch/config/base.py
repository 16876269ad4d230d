"""The base model and the value types every section of the config file shares.

Owns what a single value means: paths anchored at the config file's folder,
lengths in pixels or percent, engine names. The sections themselves live in
:mod:`ocrwatch.config.inbox` and :mod:`ocrwatch.config.models`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

from ocrwatch.geometry import Length

EngineName = Literal["ocrspace", "tesseract"]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Expand ``~`` and anchor relative paths at the config file's folder."""
    path = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]

LengthValue = Annotated[
    Length,
    BeforeValidator(Length.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer"},
                {"type": "string", "pattern": r"^-?\d+(\.\d+)?%$|^-?\d+(px)?$"},
            ],
            "description": "Pixels (whole number) or a percentage of the image side, like '12.5%'.",
        }
    ),
]


class Model(BaseModel):
    """A config section: unknown keys are errors, and a validated section never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
