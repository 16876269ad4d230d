"""The published schemas match the code, and the example config uses its schema."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import yaml

from ocrwatch.config import config_schema
from tests.support.paths import REPO

CONFIG_SCHEMA = REPO / "ocrwatch" / "schemas" / "config.schema.json"


def test_committed_config_schema_is_generated_from_the_models() -> None:
    """ocrwatch/schemas/config.schema.json is exactly what the models produce (regenerate with `ocrwatch schema`)."""
    assert config_schema() == json.loads(CONFIG_SCHEMA.read_text())


def test_schema_command_prints_both_schemas() -> None:
    """`ocrwatch schema` prints the config schema; `--sidecar` the sidecar schema."""
    config = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "schema"], capture_output=True, text=True, check=True
    )
    assert config_schema() == json.loads(config.stdout)
    side = subprocess.run(
        [sys.executable, "-m", "ocrwatch", "schema", "--sidecar"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (REPO / "ocrwatch" / "schemas" / "sidecar.schema.json").read_text() == side.stdout


def test_example_config_points_editors_at_the_schema_and_validates() -> None:
    """The example starts with the yaml-language-server comment and passes the schema."""
    example = (REPO / "config.example.yaml").read_text()
    assert example.startswith(
        "# yaml-language-server: $schema=ocrwatch/schemas/config.schema.json\n"
    )
    jsonschema.validate(yaml.safe_load(example), json.loads(CONFIG_SCHEMA.read_text()))


def test_schema_rejects_what_the_config_loader_rejects() -> None:
    """Unknown keys and malformed lengths fail in editors too, not only at start."""
    schema = json.loads(CONFIG_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({"inboxes": [{"path": "x", "crop": {"left": "12.5 pct"}}]}))
    assert list(validator.iter_errors({"inboxes": [{"path": "x", "colour": "red"}]}))
    assert [] == list(
        validator.iter_errors({"ocrspace": {"endpoint": "https://a/"}, "inboxes": [{"path": "x"}]})
    )
