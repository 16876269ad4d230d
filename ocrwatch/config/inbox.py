"""The sections of one inbox: its folder, crop, regions, watching, what happens after, hooks.

Owns the per-inbox options, their defaults, bounds and descriptions, and the
checks that concern one inbox alone. Checks that need the machine (does the
folder exist, is there a key for its engine) or several inboxes at once
(overlapping folders) belong to :mod:`ocrwatch.plan`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema, field_validator, model_validator

from ocrwatch.config.base import ConfigPath, EngineName, LengthValue, Model
from ocrwatch.config.queue import checked_name
from ocrwatch.geometry import BoxRule, CropRule, Length, MarginRule

DEFAULT_PATTERNS = (
    "*.jpg",
    "*.jpeg",
    "*.png",
    "*.tif",
    "*.tiff",
    "*.bmp",
    "*.gif",
    "*.webp",
    "*.pdf",
)
LANGUAGE_PATTERN = re.compile(r"^(?:[a-z]{3}|auto)$")
REGION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

WatchSetting = Literal["auto", "native", "poll"]
"""How an inbox notices new files, as configured (``auto`` is decided per mount by the watcher)."""
AfterAction = Literal["keep", "move", "delete"]
"""What happens to an image once its sidecars are written."""
TextLayer = Literal["skip", "redo", "force"]
OutputFormat = Literal["txt", "json", "hocr", "alto", "pdf"]
DEFAULT_FORMATS: tuple[OutputFormat, ...] = ("txt", "json")
PdfaLevel = Literal["2b", "none"]
PdfaFailure = Literal["plain", "fail"]
"""Which PDF pages are OCR'd: those without text, also those with only invisible text, or all."""


class CropConfig(Model):
    """Cut margins off the image, or keep one box of it, before OCR."""

    left: LengthValue | None = Field(None, description="Cut this much off the left edge.")
    top: LengthValue | None = Field(None, description="Cut this much off the top edge.")
    right: LengthValue | None = Field(None, description="Cut this much off the right edge.")
    bottom: LengthValue | None = Field(None, description="Cut this much off the bottom edge.")
    x: LengthValue | None = Field(
        None, description="Box: left edge; negative counts from the right edge."
    )
    y: LengthValue | None = Field(
        None, description="Box: top edge; negative counts from the bottom."
    )
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
            raise ValueError(
                "empty crop: give margins (left/top/right/bottom) or a box (x/y/width/height)"
            )
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


HOOK_PLACEHOLDERS = (
    "image",
    "text",
    "json",
    "error",
    "status",
    "inbox",
    "name",
    "hocr",
    "alto",
    "pdf",
)
HookEvent = Literal["done", "failed", "partial"]


class HookConfig(Model):
    """Run a command or POST a JSON summary after a file is done or failed."""

    events: Annotated[
        tuple[HookEvent, ...],
        WithJsonSchema(
            {
                "anyOf": [
                    {"enum": ["done", "failed", "partial"]},
                    {
                        "type": "array",
                        "items": {"enum": ["done", "failed", "partial"]},
                        "minItems": 1,
                    },
                ]
            }
        ),
    ] = Field(
        ("done", "failed", "partial"),
        description="Which outcomes trigger the hook: done, failed, partial (a document some "
        "of whose pages failed).",
    )
    command: tuple[str, ...] | None = Field(
        None,
        description="Program and arguments, run without a shell; placeholders "
        "{image} {text} {json} {error} {status} {inbox} {name} are replaced.",
    )
    url: str | None = Field(
        None, description="POST a JSON summary of the file to this http(s) URL."
    )
    timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds before the command is killed or the POST given up.",
    )

    @field_validator("events", mode="before")
    @classmethod
    def _events_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("command")
    @classmethod
    def _command(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if not value or not value[0].strip():
                raise ValueError(
                    "give the program and its arguments as a list, e.g. ['/usr/local/bin/notify', '{image}']"
                )
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
            raise ValueError("events: name at least one of done, failed, partial")
        return self


class PdfConfig(Model):
    """How an inbox reads PDFs."""

    text_layer: TextLayer = Field(
        "skip",
        description="Text a page already has: skip (use any text, OCR only pages without), "
        "redo (also OCR pages whose only text is invisible, like an earlier OCR layer), "
        "force (OCR every page).",
    )
    password_file: ConfigPath | None = Field(
        None,
        description="A file whose first line is the password of this inbox's encrypted PDFs.",
    )
    max_pages: int = Field(
        500,
        ge=1,
        le=100_000,
        description="PDFs and TIFFs with more pages are refused before any page is read.",
    )
    max_page_mpixels: float = Field(
        50.0,
        gt=0,
        le=1000,
        description="Largest page render in megapixels; a larger page is rendered at a lower "
        "resolution, with a note.",
    )


class SearchablePdfConfig(Model):
    """How the searchable PDF (format ``pdf``) is made."""

    pdfa: PdfaLevel = Field(
        "2b", description="PDF/A level of the output, validated as it is written, or none."
    )
    on_pdfa_failure: PdfaFailure = Field(
        "plain",
        description="When the output cannot be PDF/A: plain (write a plain searchable PDF) or "
        "fail (write none and record the error; the text sidecars are kept).",
    )
    rotate_pages: bool = Field(
        True, description="Turn pages whose text runs sideways upright in the output (/Rotate)."
    )


class InboxConfig(Model):
    """One watched folder and the rules for the images that land in it."""

    id: str | None = Field(
        None,
        description="The inbox's name across hosts (each may mount it elsewhere); required with "
        "`queue:`, where it names the inbox's queue in Redis.",
    )
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
    overlay: bool = Field(
        False,
        description="Obsolete and ignored: word boxes, lines and blocks are always recorded.",
    )
    detect_orientation: bool = Field(True, description="Let the engine turn sideways pages.")
    scale: bool = Field(False, description="ocr.space server-side upscaling for low-res images.")
    table: bool = Field(False, description="Keep table rows line by line (ocr.space isTable).")
    pdf: PdfConfig = Field(
        default_factory=PdfConfig, description="How PDFs are read: text layer, password, limits."
    )
    output: ConfigPath | None = Field(
        None, description="Folder for sidecars (default: next to each image)."
    )
    formats: tuple[OutputFormat, ...] = Field(
        DEFAULT_FORMATS,
        description="Files written for each input: txt, json (always written: the record), "
        "hocr, alto (ALTO XML 4), pdf (searchable PDF, needs ocrwatch[pdf]).",
    )
    searchable_pdf: SearchablePdfConfig = Field(
        default_factory=SearchablePdfConfig,
        description="How the searchable PDF is made: PDF/A level, what a PDF/A failure does, "
        "page rotation.",
    )
    follow_symlinks: bool = Field(
        False, description="OCR files that are symbolic links (by default they are refused)."
    )
    watch: WatchSetting = Field(
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
    after: AfterAction = Field(
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

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: tuple[OutputFormat, ...]) -> tuple[OutputFormat, ...]:
        """In a fixed order, once each, with ``json`` (the record and commit mark) always."""
        chosen = set(value) | {"json"}
        order: tuple[OutputFormat, ...] = ("txt", "json", "hocr", "alto", "pdf")
        return tuple(name for name in order if name in chosen)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return checked_name(value)

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
