"""Reading a config file: strict YAML, validation, and the loaded result.

Owns parsing YAML with line numbers kept (duplicate keys are refused rather
than silently overwritten), validating it against :class:`Config`, and the
built-in defaults used when there is no file. Which file to read is decided
in :mod:`ocrwatch.config.search`; problems are worded in
:mod:`ocrwatch.config.messages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ocrwatch import logs
from ocrwatch.config.messages import format_validation_error, key_path, line_of
from ocrwatch.config.models import Config
from ocrwatch.errors import ConfigError


class LoadedConfig:
    """A validated config, the file it came from (None for built-in defaults) and its YAML tree."""

    def __init__(self, config: Config, path: Path | None, root: yaml.Node | None = None) -> None:
        self.config = config
        self.path = path
        self.root = root

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "(built-in defaults)"

    def where(self, loc: Sequence[str | int]) -> str:
        """``file:line: at 'key.path': `` for messages about the key at ``loc``."""
        line = line_of(self.root, loc)
        place = f"{self.source}:{line}" if line and self.path else self.source
        return f"{place}: at '{key_path(loc)}': "


def load_config(path: Path) -> LoadedConfig:
    """Read and validate ``path``. Raises ConfigError listing every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file: {error}") from error
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> LoadedConfig:
    """Validate YAML ``text`` read from ``path``; relative paths resolve against its folder."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, not {type(data).__name__}"
        )
    base_dir = path.resolve().parent
    _register_inline_key(data)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, path, node)) from None
    return LoadedConfig(config, path, node)


def _register_inline_key(data: dict[str, Any]) -> None:
    """Scrub an inline key from every message, even one about an error elsewhere."""
    section = data.get("ocrspace")
    if isinstance(section, dict) and isinstance(section.get("api_key"), str):
        logs.register_secret(section["api_key"].strip())


def default_config() -> LoadedConfig:
    """The configuration used when no file exists (``once PATH`` without a config)."""
    return LoadedConfig(Config(), None)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(
    loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
