"""The JSON Schema of the config file, generated from the models.

Editors use it through ``ocrwatch/schemas/config.schema.json``; ``ocrwatch
schema`` prints it. The committed file is checked against this function.
"""

from __future__ import annotations

from typing import Any

from ocrwatch.config.models import Config

SCHEMA_ID = "https://ocrwatch.invalid/schemas/config.schema.json"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, generated from the models (for editors and ``ocrwatch schema``)."""
    schema = Config.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "ocrwatch configuration",
    }
