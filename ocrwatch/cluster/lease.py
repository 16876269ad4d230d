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
drift) under an expiring key, which ``ocrwatch status`` lists. The record
carries the process's instance id (:mod:`ocrwatch.cluster.identity`), and a
record under this host's name with another instance id is never
overwritten: two daemons under one name are told apart, not merged.
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

_ANNOUNCE = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and record['instance'] and record['instance'] ~= ARGV[1] then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""

_FORGET = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, record = pcall(cjson.decode, current)
if ok and type(record) == 'table' and record['instance'] == ARGV[1] and record['seen'] == tonumber(ARGV[2]) then
  return redis.call('DEL', KEYS[1])
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

    def __init__(
        self, client: redis.Redis, keys: Keys, host: str, lease_seconds: float, instance: str = ""
    ) -> None:
        self.client = client
        self.keys = keys
        self.host = host
        self.instance = instance
        self.lease_ms = int(lease_seconds * 1000)
        self._take_or_renew = client.register_script(_TAKE_OR_RENEW)
        self._release = client.register_script(_RELEASE)
        self._announce = client.register_script(_ANNOUNCE)
        self._forget = client.register_script(_FORGET)

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

    def announce(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Write this host's record (expiring unless renewed), unless another instance's is there.

        Returns that other record (nothing written), or None once this one is written.
        """
        other = self._announce(
            keys=[self.keys.host(self.host)],
            args=[
                self.instance,
                json.dumps({**record, "instance": self.instance}, sort_keys=True),
                self.lease_ms * HOST_LIFETIMES,
            ],
        )
        return _parsed(other) if other else None

    def record(self) -> dict[str, Any] | None:
        """The record under this host's name, whoever wrote it; None if there is none."""
        return _parsed(self.client.get(self.keys.host(self.host)))

    def forget(self, record: dict[str, Any]) -> None:
        """Delete the record under this host's name if it is still ``record`` (a dead instance's)."""
        self._forget(
            keys=[self.keys.host(self.host)],
            args=[str(record.get("instance")), repr(float(record.get("seen") or 0))],
        )

    def leave(self) -> None:
        """Remove this host's record (a clean stop), unless another instance wrote it."""
        current = self.record()
        if current is None or self.is_mine(current):
            self.client.delete(self.keys.host(self.host))

    def is_mine(self, record: dict[str, Any]) -> bool:
        """True for this process's own record, or one without an instance id (written by a
        version before them), which nothing can tell from its own."""
        return record.get("instance") in (None, self.instance)

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


def _parsed(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
