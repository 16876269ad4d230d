"""Documents' per-page progress shared through Redis, so a host taking over does not pay again.

In distributed mode the pages a host has read of a document are kept in
Redis (a hash per file, keyed by inbox id and path relative to the inbox)
instead of in the host's own state store, so that the host taking over a
document from a dead one reads only the pages still missing. Like the
state store it is a cache: Redis lost costs those pages' requests again,
never a result. While Redis cannot be reached, pages are kept in this
host's state store instead (they help this host's next try).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ocrwatch.cluster.connection import describe_error, is_redis_error
from ocrwatch.cluster.jobs import Keys
from ocrwatch.resume import PageStore

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

PAGES_LIFETIME_SECONDS = 7 * 86400
"""How long the pages of an unfinished document stay after their last page was read."""


class SharedPages:
    """A :class:`~ocrwatch.resume.PageStore` in Redis; files outside any inbox use ``local``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        locate: Callable[[Path], tuple[str, str] | None],
        local: PageStore | None,
    ) -> None:
        """``locate(path)`` gives the inbox id and relative path of a file, None outside inboxes."""
        self.client = client
        self.keys = keys
        self.locate = locate
        self.local = local

    def _key(self, path: Path) -> str | None:
        found = self.locate(path)
        return self.keys.pages(*found) if found is not None else None

    def saved_pages(self, path: Path, sha256: str, fingerprint: str) -> dict[int, str]:
        key = self._key(path)
        pages: dict[int, str] = {}
        if key is not None:
            try:
                stored = self.client.hgetall(key)
            except Exception as error:
                if not is_redis_error(error):
                    raise
                logger.warning(
                    "%s: pages read before are not at hand: %s", path, describe_error(error)
                )
                stored = {}
            prefix = f"{sha256}|{fingerprint}|"
            for field, entry in stored.items():
                if str(field).startswith(prefix):
                    pages[int(str(field)[len(prefix) :])] = str(entry)
        if self.local is not None:
            for number, entry in self.local.saved_pages(path, sha256, fingerprint).items():
                pages.setdefault(number, entry)
        return pages

    def save_page(self, path: Path, sha256: str, fingerprint: str, number: int, entry: str) -> None:
        key = self._key(path)
        if key is not None:
            try:
                prefix = f"{sha256}|{fingerprint}|"
                stale = [f for f in self.client.hkeys(key) if not str(f).startswith(prefix)]
                with self.client.pipeline() as pipe:
                    if stale:
                        pipe.hdel(key, *stale)
                    pipe.hset(key, f"{prefix}{number}", entry)
                    pipe.expire(key, PAGES_LIFETIME_SECONDS)
                    pipe.execute()
                return
            except Exception as error:
                if not is_redis_error(error):
                    raise
                logger.warning(
                    "%s: page %d kept on this host only: %s", path, number, describe_error(error)
                )
        if self.local is not None:
            self.local.save_page(path, sha256, fingerprint, number, entry)

    def drop_pages(self, path: Path) -> None:
        key = self._key(path)
        if key is not None:
            try:
                self.client.delete(key)
            except Exception as error:
                if not is_redis_error(error):
                    raise
                logger.debug("%s: pages not dropped from Redis: %s", path, describe_error(error))
        if self.local is not None:
            self.local.drop_pages(path)
