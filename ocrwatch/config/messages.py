"""Where a problem in the config file is: its line, its key path, and a plain message.

Owns turning pydantic's validation errors into one line per problem,
``<file>:<line>: at 'inboxes[1].crop.left': <message>``, sorted by line, and
finding the line of a key in the YAML tree. It neither reads files nor
validates anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def key_path(loc: Sequence[str | int]) -> str:
    """``('inboxes', 1, 'crop', 'left')`` as ``inboxes[1].crop.left``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def format_validation_error(
    error: ValidationError, path: Path, root: yaml.Node | None
) -> list[str]:
    """One line per problem: file, line, key path and a plain message."""
    found = []
    for item in error.errors(include_url=False):
        loc = _clean_loc(item["loc"])
        line = line_of(root, loc)
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


def line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
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
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
