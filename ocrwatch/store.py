"""The daemon's small embedded store: a cache in front of the sidecars, and a few facts.

The sidecars are the truth about what was done. This SQLite file only makes
that truth cheap to consult (so a restart over ten thousand finished images
does not parse ten thousand JSON files) and remembers what sidecars cannot:
how often a file was tried, until when ocr.space asked us to pause, and the
pages of a document read so far (so an interrupted document resumes without
paying for its finished pages again).

Losing it is harmless: a missing store is created empty, a corrupt one is
moved aside and replaced, and if the store fails while running, the daemon
logs it once and carries on without it. Every cached "current" verdict is
checked against the image's and the sidecar's size and mtime before use, so
an edited image or a deleted sidecar is never skipped because of the cache.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ocrwatch.errors import AlreadyRunning, ConfigError

logger = logging.getLogger(__name__)

STORE_NAME = "state.sqlite3"
STATUS_FILE = "status.json"
"""Rewritten by the daemon every few seconds; read by ``ocrwatch status``."""
LOCK_FILE = "lock"
"""Held (flock) by the running daemon, with its process id inside."""
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    sidecar_size INTEGER NOT NULL,
    sidecar_mtime_ns INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt REAL NOT NULL,
    classification TEXT,
    message TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pages (
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    number INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (path, number)
);
"""


def _key(path: Path) -> bytes:
    """A path as stored: its bytes, so names that are not valid UTF-8 work too."""
    return os.fsencode(path)


def default_state_dir(configured: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """Where state lives: the config's ``state_dir``, systemd's ``$STATE_DIRECTORY``, or XDG."""
    env = os.environ if env is None else env
    if configured is not None:
        return configured
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "ocrwatch"


def lock_state_dir(folder: Path) -> int:
    """Take the state folder for this process: one daemon per state folder.

    Returns the descriptor holding the lock (close it to release); the lock
    file holds this process's id for ``ocrwatch status``. Raises
    AlreadyRunning when another process holds it, ConfigError when the folder
    cannot be used.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise ConfigError(f"cannot use state folder {folder}: {error.strerror or error}") from error
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        owner = os.pread(handle, 32, 0).decode(errors="replace").strip()
        os.close(handle)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise AlreadyRunning(
                f"another ocrwatch (pid {owner or '?'}) is running with state folder {folder}"
            ) from None
        raise
    os.ftruncate(handle, 0)
    os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
    return handle


@dataclass(frozen=True)
class CachedFile:
    """The cached verdict for one image."""

    size: int
    mtime_ns: int
    fingerprint: str
    status: str
    """``done`` (result sidecar), or ``failed`` or ``partial`` (error sidecar)."""
    sidecar_size: int
    sidecar_mtime_ns: int


@dataclass(frozen=True)
class Attempts:
    count: int
    first_attempt: float


class StateStore:
    """Thread-safe access to the store; every method degrades to a no-op if the store breaks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / STORE_NAME
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._open()

    def _open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._connection = self._connect()
        except sqlite3.DatabaseError as error:
            self._set_aside(error)
        except OSError as error:
            logger.warning(
                "state store %s unavailable (%s); running without a cache", self.path, error
            )
            self._connection = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"unknown store version {version}")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            connection.execute("SELECT count(*) FROM files").fetchone()
        except sqlite3.DatabaseError:
            connection.close()
            raise
        return connection

    def _set_aside(self, error: Exception) -> None:
        aside = self.path.with_name(f"{STORE_NAME}.corrupt-{int(time.time())}")
        logger.warning(
            "state store %s is unreadable (%s); moving it to %s and starting afresh",
            self.path,
            error,
            aside,
        )
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(str(self.path) + suffix)
        try:
            self._connection = self._connect()
        except (sqlite3.DatabaseError, OSError) as again:
            logger.warning(
                "state store %s still unusable (%s); running without a cache", self.path, again
            )
            self._connection = None

    @contextlib.contextmanager
    def _use(self) -> Iterator[sqlite3.Connection | None]:
        with self._lock:
            if self._connection is None:
                yield None
                return
            try:
                yield self._connection
            except sqlite3.Error as error:
                logger.warning(
                    "state store %s failed (%s); running without a cache", self.path, error
                )
                with contextlib.suppress(sqlite3.Error):
                    self._connection.close()
                self._connection = None

    @property
    def available(self) -> bool:
        return self._connection is not None

    def cached(self, path: Path) -> CachedFile | None:
        with self._use() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT size, mtime_ns, fingerprint, status, sidecar_size, sidecar_mtime_ns FROM files WHERE path=?",
                (_key(path),),
            ).fetchone()
            return CachedFile(*row) if row else None
        return None

    def remember(self, path: Path, entry: CachedFile) -> None:
        with self._use() as db:
            if db is not None:
                db.execute(
                    "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?)",
                    (
                        _key(path),
                        entry.size,
                        entry.mtime_ns,
                        entry.fingerprint,
                        entry.status,
                        entry.sidecar_size,
                        entry.sidecar_mtime_ns,
                        time.time(),
                    ),
                )

    def forget(self, path: Path) -> None:
        with self._use() as db:
            if db is not None:
                db.execute("DELETE FROM files WHERE path=?", (_key(path),))
                db.execute("DELETE FROM attempts WHERE path=?", (_key(path),))
                db.execute("DELETE FROM pages WHERE path=?", (_key(path),))

    def attempts(self, path: Path, size: int, mtime_ns: int) -> Attempts | None:
        """Earlier tries of this exact file version (same size and mtime), if any."""
        with self._use() as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT attempts, first_attempt FROM attempts WHERE path=? AND size=? AND mtime_ns=?",
                (_key(path), size, mtime_ns),
            ).fetchone()
            return Attempts(*row) if row else None
        return None

    def record_attempt(
        self,
        path: Path,
        *,
        size: int,
        mtime_ns: int,
        attempts: Attempts,
        classification: str,
        message: str,
    ) -> None:
        with self._use() as db:
            if db is not None:
                db.execute(
                    "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?,?)",
                    (
                        _key(path),
                        size,
                        mtime_ns,
                        attempts.count,
                        attempts.first_attempt,
                        classification,
                        message,
                    ),
                )

    def clear_attempts(self, path: Path) -> None:
        with self._use() as db:
            if db is not None:
                db.execute("DELETE FROM attempts WHERE path=?", (_key(path),))

    def saved_pages(self, path: Path, sha256: str, fingerprint: str) -> dict[int, str]:
        """The pages of this version of ``path`` read so far under ``fingerprint``: number to entry."""
        with self._use() as db:
            if db is None:
                return {}
            rows = db.execute(
                "SELECT number, entry FROM pages WHERE path=? AND sha256=? AND fingerprint=?",
                (_key(path), sha256, fingerprint),
            ).fetchall()
            return {int(number): str(entry) for number, entry in rows}
        return {}

    def save_page(self, path: Path, sha256: str, fingerprint: str, number: int, entry: str) -> None:
        """Keep one page's finished entry; pages of another version of the file are dropped."""
        key = _key(path)
        with self._use() as db:
            if db is not None:
                db.execute(
                    "DELETE FROM pages WHERE path=? AND (sha256<>? OR fingerprint<>?)",
                    (key, sha256, fingerprint),
                )
                db.execute(
                    "INSERT OR REPLACE INTO pages VALUES (?,?,?,?,?)",
                    (key, sha256, fingerprint, number, entry),
                )

    def drop_pages(self, path: Path) -> None:
        """Forget the pages kept for ``path`` (its sidecars now hold them)."""
        with self._use() as db:
            if db is not None:
                db.execute("DELETE FROM pages WHERE path=?", (_key(path),))

    def get(self, key: str) -> str | None:
        with self._use() as db:
            if db is None:
                return None
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return str(row[0]) if row else None
        return None

    def put(self, key: str, value: str | None) -> None:
        with self._use() as db:
            if db is not None:
                if value is None:
                    db.execute("DELETE FROM meta WHERE key=?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._connection.close()
                self._connection = None
