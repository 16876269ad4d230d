"""Connecting to the cluster's Redis: URL, password, TLS, timeouts, and readable failures.

The password comes from ``queue.password_file``, else the systemd credential
``redis-password`` (``$CREDENTIALS_DIRECTORY``), else there is none. It is
registered with :mod:`ocrwatch.logs` so that no log line shows it, and the
URL may not carry one (the config refuses it).

redis-py is imported here and in the other modules of this package only, so
that a host without ``queue:`` never loads it; without the ``redis`` extra a
``queue:`` section is a config error naming the extra.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ocrwatch import logs
from ocrwatch.apikey import read_secret_file
from ocrwatch.config import QueueConfig
from ocrwatch.errors import ConfigError, OcrwatchError

if TYPE_CHECKING:
    import redis

CREDENTIAL_NAME = "redis-password"
EXTRA_MISSING = (
    "queue: needs the Redis client: pip install 'ocrwatch[redis]' (redis-py is not installed)"
)


class RedisUnavailable(OcrwatchError):
    """Redis cannot be reached or refused us; nothing new is taken or sent meanwhile."""


def redis_module() -> Any:
    """redis-py, or a ConfigError naming the extra that brings it."""
    try:
        import redis
        import redis.backoff
        import redis.exceptions
        import redis.retry
    except ImportError:
        raise ConfigError(EXTRA_MISSING) from None
    return redis


def password(
    config: QueueConfig, config_path: Path | None, env: Mapping[str, str] | None = None
) -> str | None:
    """The Redis password, from its file or credential; None when there is none."""
    env = os.environ if env is None else env
    value: str | None = None
    if config.password_file is not None:
        value = read_secret_file(config.password_file, "queue.password_file", config_path)
    elif env.get("CREDENTIALS_DIRECTORY"):
        credential = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME
        if credential.exists():
            value = read_secret_file(credential, f"credential {CREDENTIAL_NAME}", None)
    if value is not None:
        logs.register_secret(value)
    return value


def shown_url(url: str) -> str:
    """The URL as logs and status show it (it never holds a password; the user name stays)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=""))


def connect(
    config: QueueConfig, config_path: Path | None, env: Mapping[str, str] | None = None
) -> redis.Redis:
    """A client for ``config.url`` (not yet connected: the first command connects).

    Raises ConfigError for a missing extra or an unreadable password file.
    """
    module = redis_module()
    options: dict[str, Any] = {
        "password": password(config, config_path, env),
        "socket_timeout": config.connect_timeout,
        "socket_connect_timeout": config.connect_timeout,
        "decode_responses": True,
        "health_check_interval": 15,
        "client_name": "ocrwatch",
        # One quick retry, not redis-py's ten with backoff: while Redis is down a call must
        # fail fast, so that workers and the stop are not held for seconds per call.
        "retry": module.retry.Retry(module.backoff.ExponentialBackoff(cap=0.5, base=0.05), 1),
    }
    if config.tls is not None:
        tls = config.tls
        if tls.ca_file is not None:
            options["ssl_ca_certs"] = str(tls.ca_file)
        if tls.cert_file is not None and tls.key_file is not None:
            options["ssl_certfile"] = str(tls.cert_file)
            options["ssl_keyfile"] = str(tls.key_file)
    client: redis.Redis = module.Redis.from_url(config.url, **options)
    return client


def describe_error(error: BaseException) -> str:
    """A Redis failure in words an operator can act on."""
    module = redis_module()
    text = str(error) or type(error).__name__
    if isinstance(error, module.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return f"Redis refused the password ({text}): check queue.password_file"
    if isinstance(error, module.TimeoutError):
        return f"Redis did not answer in time ({text})"
    if isinstance(error, module.ConnectionError):
        return f"cannot reach Redis ({text})"
    if isinstance(error, module.exceptions.NoPermissionError) or "NOPERM" in text:
        return f"the Redis user may not run a command ocrwatch needs ({text})"
    if isinstance(error, module.exceptions.OutOfMemoryError) or "OOM" in text:
        return f"Redis is out of memory ({text}); use maxmemory-policy noeviction and more memory"
    return f"Redis failed: {text}"


def is_redis_error(error: BaseException) -> bool:
    """True for any failure redis-py raises (connection, timeout, a command's error)."""
    module = redis_module()
    return isinstance(error, module.RedisError)
