"""Which files in an inbox are candidates, and listing them.

Shared by ``once`` and the daemon, so that a file the watcher would skip is
skipped by a scan too. Junk is never a candidate, whatever the patterns say:
hidden files, the temporary names scanners, browsers, rsync and office
programs use while writing, desktop metadata, and ocrwatch's own sidecars and
temporary files.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ocrwatch import current, sidecar
from ocrwatch.plan import InboxPlan

JUNK_NAMES = frozenset(
    {"thumbs.db", "desktop.ini", ".ds_store", "@eadir", "#recycle", "lost+found"}
)
JUNK_PATTERNS = (
    ".*",  # hidden files, rsync's .name.XXXXXX, our own temporaries
    "~$*",  # office lock files
    "*~",  # editor backups
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "*.swp",
    "*.filepart",  # WinSCP
    "*.!sync",  # Syncthing-style partials
    "*.sb-????????-??????",  # macOS safe-save temporaries
)


def is_junk(name: str) -> bool:
    """True for names that are never OCR'd: temporaries, metadata, our own outputs."""
    lowered = name.lower()
    if lowered in JUNK_NAMES or sidecar.is_own_file(name):
        return True
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in JUNK_PATTERNS)


def is_candidate(path: Path, inbox: InboxPlan, excluded: Iterable[Path] = ()) -> bool:
    """True when ``path`` (a file name within ``inbox``) should be OCR'd by it."""
    if is_junk(path.name) or not inbox.matches(path.name) or not inbox.contains(path):
        return False
    try:
        relative = path.parent.relative_to(inbox.path)
    except ValueError:
        return False
    if any(is_junk(part) for part in relative.parts):
        return False
    if any(path.is_relative_to(folder) for folder in excluded):
        return False
    return not current.is_own_output(path, inbox)


def walk(inbox: InboxPlan, excluded: Iterable[Path] = ()) -> Iterator[Path]:
    """The candidate files in ``inbox`` right now, in a stable order (names sorted per folder).

    Symbolic links are listed (the pipeline decides whether to follow them);
    folders reached through links are not entered. Unreadable sub-folders are
    skipped.
    """
    excluded = tuple(excluded)
    pending = [inbox.path]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if (
                    inbox.recursive
                    and not is_junk(entry.name)
                    and not any(path.is_relative_to(folder) for folder in excluded)
                ):
                    subfolders.append(path)
                continue
            if is_candidate(path, inbox, excluded):
                yield path
        pending.extend(reversed(subfolders))
