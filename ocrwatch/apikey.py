"""Finding the ocr.space API key without ever showing it.

The key is looked up in this order: ``ocrspace.api_key_file`` or the inline
``ocrspace.api_key`` (only one may be set), the environment variable
``OCRSPACE_API_KEY``, then the systemd credential ``ocrspace-api-key`` in
``$CREDENTIALS_DIRECTORY``. Only :class:`ApiKey` holds the value; its ``repr``
and ``str`` show where it came from, never what it is, and every key found is
registered with :mod:`ocrwatch.logs` so that log lines are scrubbed of it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ocrwatch import logs
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.errors import ConfigError

ENV_KEY = "OCRSPACE_API_KEY"
CREDENTIAL_NAME = "ocrspace-api-key"
MAX_KEY_FILE_BYTES = 4096


@dataclass(frozen=True)
class ApiKey:
    """An API key and a description of where it was found."""

    value: str = field(repr=False)
    source: str

    def __str__(self) -> str:
        return f"API key from {self.source}"


class KeyHolder:
    """The key in use, shared by every ocr.space engine object of a process.

    A reload replaces the key here, so a request that was waiting at the gate
    while the old key was rejected goes out with the new one.
    """

    def __init__(self, key: ApiKey) -> None:
        self._key = key
        self._lock = threading.Lock()

    @property
    def key(self) -> ApiKey:
        with self._lock:
            return self._key

    def replace(self, key: ApiKey) -> bool:
        """Use ``key`` from now on; True when it differs from the one before."""
        with self._lock:
            changed = key.value != self._key.value
            self._key = key
            return changed


@dataclass(frozen=True)
class KeyLookup:
    """The result of looking for a key: the key (or None) and warnings to log."""

    key: ApiKey | None
    warnings: tuple[str, ...] = ()


def find_api_key(
    config: OcrSpaceConfig, config_path: Path | None, env: Mapping[str, str] | None = None
) -> KeyLookup:
    """Look for the key in the documented order. Raises ConfigError for an unreadable key file."""
    env = os.environ if env is None else env
    warnings: list[str] = []
    key: ApiKey | None = None
    if config.api_key_file is not None:
        value = read_secret_file(config.api_key_file, "ocrspace.api_key_file", config_path)
        if _readable_by_others(config.api_key_file):
            warnings.append(
                f"API key file {config.api_key_file} is readable by other users; "
                f"restrict it with: chmod 600 {config.api_key_file}"
            )
        key = ApiKey(value, f"file {config.api_key_file}")
    elif config.api_key is not None:
        value = config.api_key.get_secret_value().strip()
        if not value:
            raise ConfigError(_where(config_path, "ocrspace.api_key") + "is empty")
        if config_path is not None and _readable_by_others(config_path):
            warnings.append(
                f"{config_path} holds the API key inline and is readable by other users; "
                "move the key to a file named by ocrspace.api_key_file (mode 600) or a credential"
            )
        key = ApiKey(value, f"inline ocrspace.api_key in {config_path or 'the config'}")
    elif env.get(ENV_KEY, "").strip():
        key = ApiKey(env[ENV_KEY].strip(), f"environment variable {ENV_KEY}")
    elif env.get("CREDENTIALS_DIRECTORY"):
        credential = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME
        if credential.exists():
            value = read_secret_file(credential, f"credential {CREDENTIAL_NAME}", None)
            key = ApiKey(value, f"systemd credential {CREDENTIAL_NAME}")
    if key is not None:
        logs.register_secret(key.value)
    return KeyLookup(key, tuple(warnings))


def read_secret_file(path: Path, what: str, config_path: Path | None) -> str:
    """The first line of a file holding one secret (a key, a password); raises ConfigError."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            _where(config_path, what) + f"cannot read {path}: {error.strerror or error}"
        ) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(
            _where(config_path, what) + f"{path} is too large to hold a key or password"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(_where(config_path, what) + f"{path} is not a text file") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(_where(config_path, what) + f"{path} is empty")
    if any(char.isspace() for char in lines[0]):
        raise ConfigError(
            _where(config_path, what)
            + f"the first line of {path} contains spaces; it should hold only the key"
        )
    return lines[0]


def _where(config_path: Path | None, key: str) -> str:
    if config_path is None:
        return f"{key}: "
    return f"{config_path}: at '{key}': "


def _readable_by_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IROTH)
