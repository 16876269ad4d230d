"""What happens to an image once it is finished: keep it, move it, or delete it.

Runs only after the pipeline has made the sidecars durable (written, fsynced,
renamed), so moving or deleting an image can never lose its text. Called by
:mod:`ocrwatch.finish`, the finishing path of ``once`` and the daemon alike.

A moved image takes its sidecars along when they sit beside it; with an
``output`` folder they stay where they are. Names that already exist in the
target folder get a numbered suffix rather than being overwritten.
Sub-folders of a recursive inbox are mirrored.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

from ocrwatch.plan import InboxPlan
from ocrwatch.sidecar import TEMP_SUFFIX, SidecarPaths

logger = logging.getLogger(__name__)


def finish(path: Path, inbox: InboxPlan, *, success: bool) -> Path | None:
    """Apply the inbox's rule to a finished image; return where it went (None: it stays or is gone).

    Raises OSError when the move or delete fails; the image then stays where it is.
    """
    if success and inbox.config.after == "delete":
        path.unlink()
        logger.info("deleted %s (its sidecars are written)", path)
        return None
    if success and inbox.config.after == "move" and inbox.done_dir is not None:
        moved = relocate(path, inbox, inbox.done_dir, failed=False)
        logger.info("moved %s to %s", path, moved)
        return moved
    if not success and inbox.failed_dir is not None:
        moved = relocate(path, inbox, inbox.failed_dir, failed=True)
        logger.info("moved failed %s to %s", path, moved)
        return moved
    return path


def sidecars_after(path: Path, inbox: InboxPlan, final: Path | None) -> SidecarPaths:
    """Where the sidecars of ``path`` are once :func:`finish` put the image at ``final``."""
    if final is not None and final != path and inbox.output is None:
        return SidecarPaths.of(final)
    return SidecarPaths.of(path, inbox.sidecar_dir(path))


def changes_location(inbox: InboxPlan, *, success: bool) -> bool:
    """True when :func:`finish` would move or delete the image."""
    if success:
        return inbox.config.after == "delete" or (
            inbox.config.after == "move" and inbox.done_dir is not None
        )
    return inbox.failed_dir is not None


def relocate(path: Path, inbox: InboxPlan, folder: Path, *, failed: bool) -> Path:
    """Move an image, and its sidecars when they sit beside it, into ``folder``."""
    try:
        relative = path.parent.relative_to(inbox.path)
    except ValueError:
        relative = Path()
    target_folder = folder / relative
    target_folder.mkdir(parents=True, exist_ok=True)
    target = free_name(target_folder, path.name)
    move(path, target)
    if inbox.output is None:
        before, after = SidecarPaths.of(path), SidecarPaths.of(target)
        formats = ("txt", "hocr", "alto", "pdf", "json")  # the record, the commit mark, last
        pairs = (
            [(before.error, after.error)]
            if failed
            else [(before.output(name), after.output(name)) for name in formats]
        )
        for source, destination in pairs:
            with contextlib.suppress(FileNotFoundError):
                move(source, destination)
    return target


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem-N.ext`` for the first N not taken."""
    candidate = folder / name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    index = 1
    while candidate.exists() or SidecarPaths.of(candidate).result.exists():
        candidate = folder / (f"{stem}-{index}.{suffix}" if dot else f"{stem}-{index}")
        index += 1
    return candidate


def move(source: Path, destination: Path) -> None:
    """Rename, or copy durably and delete when the destination is on another file system."""
    try:
        os.rename(source, destination)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        temporary = destination.with_name(f".{destination.name}.move{TEMP_SUFFIX}")
        try:
            shutil.copy2(source, temporary)
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, destination)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        source.unlink()
