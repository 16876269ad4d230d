"""Which config file to use: the one named, else the first found in the usual places.

Owns the search order (``-c``, ``$OCRWATCH_CONFIG``, ``./ocrwatch.yaml``, the
XDG config folder, ``/etc/ocrwatch``). It does not read the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_CONFIG = "OCRWATCH_CONFIG"


def search_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """The places looked at, in order, when neither ``-c`` nor ``$OCRWATCH_CONFIG`` is set."""
    env = os.environ if env is None else env
    paths = [Path("ocrwatch.yaml")]
    config_home = env.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    paths.append(Path(config_home) / "ocrwatch" / "config.yaml")
    paths.append(Path("/etc/ocrwatch/config.yaml"))
    return paths


def find_config(
    explicit: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path | None:
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
