"""The configuration file: where it is found, its schema, and how it is validated.

Every option is declared once, in :mod:`ocrwatch.config.models` and
:mod:`ocrwatch.config.inbox`, with its default, bounds and description;
``config.example.yaml`` and ``ocrwatch schema`` are derived from these models.
Validation collects every problem at once and reports each as
``<file>:<line>: at '<key path>': <message>``.

The package only reads and validates. Choosing an engine per inbox, finding the
API key and checking folders on disk happen in :mod:`ocrwatch.plan`.

- :mod:`~ocrwatch.config.base`: the base model and shared value types (paths, lengths).
- :mod:`~ocrwatch.config.inbox`: the options of one inbox.
- :mod:`~ocrwatch.config.models`: the top level, the engine sections and metrics.
- :mod:`~ocrwatch.config.queue`: distributed mode (``queue:``).
- :mod:`~ocrwatch.config.schema`: the JSON Schema generated from the models.
- :mod:`~ocrwatch.config.search`: which file to read.
- :mod:`~ocrwatch.config.loading`: strict YAML, validation, the loaded result.
- :mod:`~ocrwatch.config.messages`: problems as ``file:line: at 'key': message``.

Import from here; the modules are an internal layout.
"""

from __future__ import annotations

from ocrwatch.config.base import ConfigPath, EngineName, LengthValue, Model
from ocrwatch.config.inbox import (
    DEFAULT_FORMATS,
    DEFAULT_PATTERNS,
    HOOK_PLACEHOLDERS,
    LANGUAGE_PATTERN,
    REGION_NAME_PATTERN,
    AfterAction,
    CropConfig,
    HookConfig,
    HookEvent,
    InboxConfig,
    OutputFormat,
    PdfaFailure,
    PdfaLevel,
    PdfConfig,
    RegionConfig,
    SearchablePdfConfig,
    TextLayer,
    WatchSetting,
)
from ocrwatch.config.loading import LoadedConfig, default_config, load_config, parse_config
from ocrwatch.config.messages import format_validation_error, key_path
from ocrwatch.config.models import (
    DEFAULT_ENDPOINT,
    DEFAULT_MAX_PIXELS,
    FREE_TIER_UPLOAD_BYTES,
    Config,
    MetricsConfig,
    OcrSpaceConfig,
    RateLimitConfig,
    TesseractConfig,
)
from ocrwatch.config.queue import QueueConfig, RateScope, Role, TlsConfig
from ocrwatch.config.schema import SCHEMA_ID, config_schema
from ocrwatch.config.search import ENV_CONFIG, find_config, search_paths

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_PATTERNS",
    "ENV_CONFIG",
    "FREE_TIER_UPLOAD_BYTES",
    "HOOK_PLACEHOLDERS",
    "LANGUAGE_PATTERN",
    "REGION_NAME_PATTERN",
    "SCHEMA_ID",
    "AfterAction",
    "Config",
    "ConfigPath",
    "CropConfig",
    "DEFAULT_FORMATS",
    "EngineName",
    "HookConfig",
    "HookEvent",
    "InboxConfig",
    "LengthValue",
    "LoadedConfig",
    "MetricsConfig",
    "Model",
    "OcrSpaceConfig",
    "PdfConfig",
    "QueueConfig",
    "RateLimitConfig",
    "RateScope",
    "Role",
    "TlsConfig",
    "RegionConfig",
    "TesseractConfig",
    "OutputFormat",
    "PdfaFailure",
    "PdfaLevel",
    "SearchablePdfConfig",
    "TextLayer",
    "WatchSetting",
    "config_schema",
    "default_config",
    "find_config",
    "format_validation_error",
    "key_path",
    "load_config",
    "parse_config",
    "search_paths",
]
