"""The ``queue:`` section: several hosts sharing one set of inboxes through Redis.

Owns the options of distributed mode and what a valid one looks like. What
the options do is :mod:`ocrwatch.cluster`'s; without this section nothing of
it is imported and ocrwatch runs on one host as always.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ocrwatch.config.base import ConfigPath, Model

Role = Literal["scan", "work"]
RateScope = Literal["key", "host"]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Namespaces, inbox ids and host names: they become parts of Redis keys and log lines."""
URL_SCHEMES = ("redis", "rediss", "unix")


def checked_name(value: str | None) -> str | None:
    """``value`` if it may name a namespace, inbox or host (see :data:`NAME_PATTERN`)."""
    if value is not None and not NAME_PATTERN.match(value):
        raise ValueError(
            f"{value!r}: use letters, digits, '_', '-' and '.' (at most 64, not first)"
        )
    return value


class TlsConfig(Model):
    """Client certificates and a private CA for ``rediss://`` (system CAs when absent)."""

    ca_file: ConfigPath | None = Field(
        None, description="CA bundle that signed the server's certificate (default: the system's)."
    )
    cert_file: ConfigPath | None = Field(
        None, description="Client certificate, for servers that require one."
    )
    key_file: ConfigPath | None = Field(None, description="The client certificate's private key.")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class QueueConfig(Model):
    """Distributed mode: hosts share the inboxes' work through one Redis server."""

    url: str = Field(
        ...,
        description="redis://host:6379/0, rediss:// (TLS) or unix:///path/redis.sock; a user name "
        "may be in the URL, the password never (use password_file or the credential "
        "'redis-password').",
    )
    password_file: ConfigPath | None = Field(
        None,
        description="File holding the Redis password (first line); else the systemd credential "
        "'redis-password' when present; else no password.",
    )
    tls: TlsConfig | None = Field(None, description="Only with rediss://.")
    namespace: str = Field(
        "ocrwatch",
        description="Prefix of every key, so that several installations can share one server.",
    )
    roles: tuple[Role, ...] = Field(
        ("scan", "work"),
        description="scan: may hold an inbox's scanner lease (watch it and queue its files); "
        "work: reads queued files. A work-only host never walks the share.",
    )
    host_name: str | None = Field(
        None,
        description="This host's name in the cluster (its Redis consumer name); default: the "
        "machine's host name and a hash of the state folder, stable across restarts.",
    )
    lease_seconds: float = Field(
        30.0,
        ge=5,
        le=3600,
        description="How long a host's claim on a file, or on an inbox's scanner role, lasts "
        "without being renewed: another host takes over that long after a host dies.",
    )
    max_deliveries: int = Field(
        3,
        ge=1,
        le=100,
        description="A file whose reading kills this many workers (a crash, not an error) gets "
        "an .error.json instead of another try.",
    )
    rate_scope: RateScope = Field(
        "key",
        description="key: ocrspace.rate_limit and the API's pauses hold for all hosts together "
        "(one budget per API key); host: each host keeps its own window and pause (the API "
        "limits per IP address). A rejected key and max_requests_per_day are always shared.",
    )
    connect_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds to connect to Redis and to wait for an answer."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in URL_SCHEMES:
            raise ValueError(
                f"{value!r} is not a Redis URL: use redis://host:6379/0, rediss://... or unix:///path"
            )
        if parts.password:
            raise ValueError(
                "the URL holds a password: put it in password_file (or the systemd credential "
                "'redis-password') so that it is never in the config or the logs"
            )
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"{value!r} names no socket: unix:///run/redis/redis.sock")
        elif not parts.hostname:
            raise ValueError(f"{value!r} names no host")
        return value

    @field_validator("namespace", "host_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return checked_name(value)

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: tuple[Role, ...]) -> tuple[Role, ...]:
        if not value:
            raise ValueError("give at least one role: scan, work")
        return tuple(role for role in ("scan", "work") if role in value)

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> QueueConfig:
        if self.tls is not None and urlsplit(self.url).scheme != "rediss":
            raise ValueError("tls is only used with a rediss:// URL")
        return self
