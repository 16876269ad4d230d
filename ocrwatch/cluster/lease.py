"""Who scans which inbox, and who is alive: the scanner leases and the host records.

Per inbox, one host at a time holds the scanner lease: it watches the inbox,
walks it, and queues its files. The lease is a Redis key holding the
host's name with an expiry of ``lease_seconds``; its holder renews it every
third of that, and another host takes it within ``lease_seconds`` of the
holder's death. Renewing and releasing check the holder first (a Lua
script), so a host that stalled past its lease cannot renew or delete the
lease another host has taken since. Two scanners at once (a stall exactly
at the hand-over) are harmless: enqueue-once drops the second job.

The holder also publishes the inbox's settings fingerprint beside the
lease; workers whose own fingerprint differs stop taking that inbox's
files (config drift) and say so.

Each host keeps a record of itself (roles, version, what it holds, its
drift) under an expiring key, which ``ocrwatch status`` lists.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ocrwatch.cluster.jobs import Keys

if TYPE_CHECKING:
    import redis

_TAKE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

TAKEN, RENEWED, HELD_ELSEWHERE = 2, 1, 0
SETTINGS_LIFETIMES = 3
"""The published settings outlive the lease this many times over, so workers keep seeing them
through a scanner hand-over."""
HOST_LIFETIMES = 3
"""A host record expires this many leases after its last renewal."""


class Leases:
    """One host's side of the scanner leases and of its own host record."""

    def __init__(self, client: redis.Redis, keys: Keys, host: str, lease_seconds: float) -> None:
        self.client = client
        self.keys = keys
        self.host = host
        self.lease_ms = int(lease_seconds * 1000)
        self._take_or_renew = client.register_script(_TAKE_OR_RENEW)
        self._release = client.register_script(_RELEASE)

    def take_or_renew(self, inbox: str, settings: str) -> int:
        """TAKEN (it was free), RENEWED (this host held it) or HELD_ELSEWHERE."""
        result = int(
            self._take_or_renew(keys=[self.keys.scanner(inbox)], args=[self.host, self.lease_ms])
        )
        if result != HELD_ELSEWHERE:
            self.client.set(
                self.keys.settings(inbox), settings, px=self.lease_ms * SETTINGS_LIFETIMES
            )
        return result

    def release(self, inbox: str) -> None:
        """Give the lease up (a clean stop): another host may take it at once."""
        self._release(keys=[self.keys.scanner(inbox)], args=[self.host])

    def holder(self, inbox: str) -> str | None:
        value = self.client.get(self.keys.scanner(inbox))
        return str(value) if value else None

    def published_settings(self, inbox: str) -> str | None:
        """The fingerprint the inbox's scanner published, None when no scanner has yet."""
        value = self.client.get(self.keys.settings(inbox))
        return str(value) if value else None

    def announce(self, record: dict[str, Any]) -> None:
        """Write this host's record (expiring unless renewed)."""
        self.client.set(
            self.keys.host(self.host),
            json.dumps(record, sort_keys=True),
            px=self.lease_ms * HOST_LIFETIMES,
        )

    def leave(self) -> None:
        """Remove this host's record (a clean stop)."""
        self.client.delete(self.keys.host(self.host))

    def hosts(self) -> dict[str, dict[str, Any]]:
        """Every live host's record, by name."""
        found: dict[str, dict[str, Any]] = {}
        prefix = self.keys.host("")
        for key in self.client.scan_iter(match=self.keys.hosts_pattern(), count=100):
            value = self.client.get(key)
            if not value:
                continue
            try:
                found[str(key)[len(prefix) :]] = json.loads(value)
            except ValueError:
                continue
        return found
