"""The job queue on Redis Streams: enqueue once, deliver, keep alive, hand over, acknowledge.

Each inbox has one stream with one consumer group (``workers``); each host
is one consumer, named stably (:func:`~ocrwatch.cluster.jobs.consumer_name`).
Redis does delivery, the pending list and the hand-over of a dead host's
entries (XAUTOCLAIM after ``lease_seconds`` of silence). What this module
adds, each as one Lua script so that it is atomic:

* enqueue once: a file's mark (its size and mtime) is set with the entry, so
  a file unchanged is queued once however many scans find it; the mark goes
  with the acknowledgement, or expires;
* an owner-checked keepalive: an entry's idle time is reset only while this
  host still owns it (a plain XCLAIM would let a stalled former owner take
  an entry back from the host that took it over);
* acknowledge and delete: acknowledged entries leave the stream, so Redis
  holds the backlog and nothing more;
* release: on a clean stop, held entries go back as new entries (delivered
  to the next free host at once, not after a lease).

A delivery's count (how many times Redis handed the entry out) is what the
worker uses to tell a file that crashed hosts from the files that were only
in flight beside it (:mod:`ocrwatch.cluster.node`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocrwatch.cluster.jobs import GROUP, Job, JobError, Keys

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

QUEUED_MARK_SECONDS = 7 * 86400
"""How long an enqueue-once mark outlives a lost entry (a backlog older than this may be queued twice;
the second job finds the sidecars current and sends nothing)."""

_ENQUEUE = """
local mark = redis.call('GET', KEYS[2])
if mark == ARGV[1] then return 0 end
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return -1 end
local id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return id
"""

_KEEPALIVE = """
local kept = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if entry[1] and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

_OWNER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
local ok, entry = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if not ok then return '' end
if entry[1] then return entry[1][2] end
return ''
"""

_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""

_RELEASE = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (entry[1] and entry[1][2] == ARGV[2]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[3])
return 1
"""

_RECLAIM = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(claimed[2]) do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
  local deliveries = 1
  if pending[1] then deliveries = pending[1][4] end
  out[#out + 1] = {entry[1], entry[2], deliveries}
end
if claimed[3] then
  for _, id in ipairs(claimed[3]) do redis.call('XACK', KEYS[1], ARGV[1], id) end
end
return out
"""

_OWN_PENDING = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[3], ARGV[2])
local out = {}
for _, entry in ipairs(pending) do
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, entry[1])
  if claimed[1] then
    out[#out + 1] = {entry[1], claimed[1][2], entry[4] + 1}
  else
    redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  end
end
return out
"""


@dataclass
class Delivery:
    """One queue entry this host holds: which inbox, its id, the job, and its delivery count."""

    inbox: str
    id: str
    job: Job | None
    deliveries: int
    error: str | None = None
    """Why the job could not be read (``job`` is then None)."""
    text: str = ""
    """The job as queued, handed back unchanged on a clean stop even when unreadable here."""

    @property
    def earlier(self) -> int:
        """Deliveries before this one that never finished: a crash, a kill, a lost host."""
        return self.deliveries - 1


class JobQueue:
    """The queue operations of one host (one consumer) on every inbox's stream."""

    def __init__(self, client: redis.Redis, keys: Keys, consumer: str, lease_seconds: float):
        self.client = client
        self.keys = keys
        self.consumer = consumer
        self.lease_ms = int(lease_seconds * 1000)
        self._enqueue = client.register_script(_ENQUEUE)
        self._keepalive = client.register_script(_KEEPALIVE)
        self._owner = client.register_script(_OWNER)
        self._ack = client.register_script(_ACK)
        self._release = client.register_script(_RELEASE)
        self._reclaim = client.register_script(_RECLAIM)
        self._own_pending = client.register_script(_OWN_PENDING)

    def ensure_group(self, inbox: str) -> bool:
        """Create the inbox's stream and group if missing; True when they were missing."""
        try:
            self.client.xgroup_create(self.keys.stream(inbox), GROUP, id="0", mkstream=True)
        except Exception as error:
            if "BUSYGROUP" in str(error):
                return False
            raise
        return True

    def enqueue(self, job: Job, *, max_backlog: int) -> str | None:
        """Queue ``job`` unless this file, unchanged, is queued already (then None).

        Returns the entry id, None when already queued, or ``"full"`` when the
        stream holds ``max_backlog`` entries (the scanner comes back later).
        """
        result = self._enqueue(
            keys=[self.keys.stream(job.inbox), self.keys.queued(job.inbox, job.path)],
            args=[job.facts, job.encode(), QUEUED_MARK_SECONDS, max_backlog],
        )
        if result == 0:
            return None
        if result == -1:
            return "full"
        return str(result)

    def read(self, inboxes: list[str], count: int, block_ms: int) -> list[Delivery]:
        """Up to ``count`` new entries over ``inboxes`` (at most ``count`` in all), waiting up to ``block_ms``."""
        if count <= 0 or not inboxes:
            return []
        if count >= len(inboxes):
            each, chosen = count // len(inboxes), inboxes
        else:
            each, chosen = 1, inboxes[:count]
        answer = self.client.xreadgroup(
            GROUP,
            self.consumer,
            {self.keys.stream(inbox): ">" for inbox in chosen},
            count=each,
            block=block_ms,
        )
        by_stream = {self.keys.stream(inbox): inbox for inbox in chosen}
        deliveries = []
        for stream, entries in _stream_entries(answer):
            for entry_id, fields in entries:
                deliveries.append(self._delivery(by_stream[stream], entry_id, fields, 1))
        return deliveries

    def own_pending(self, inbox: str, count: int) -> list[Delivery]:
        """Entries this consumer held when it last stopped (after a crash or kill), claimed again."""
        rows = self._own_pending(
            keys=[self.keys.stream(inbox)], args=[GROUP, self.consumer, max(count, 1)]
        )
        return [self._delivery(inbox, row[0], _fields(row[1]), int(row[2])) for row in rows]

    def reclaim(self, inbox: str, count: int) -> list[Delivery]:
        """Entries other consumers left idle for a whole lease: taken over (XAUTOCLAIM)."""
        if count <= 0:
            return []
        rows = self._reclaim(
            keys=[self.keys.stream(inbox)], args=[GROUP, self.consumer, self.lease_ms, count]
        )
        return [self._delivery(inbox, row[0], _fields(row[1]), int(row[2])) for row in rows]

    def keepalive(self, deliveries: list[Delivery]) -> set[str]:
        """Renew the lease of each entry this host still owns; return the ids still owned."""
        kept: set[str] = set()
        by_inbox: dict[str, list[str]] = {}
        for delivery in deliveries:
            by_inbox.setdefault(delivery.inbox, []).append(delivery.id)
        for inbox, ids in by_inbox.items():
            result = self._keepalive(
                keys=[self.keys.stream(inbox)], args=[GROUP, self.consumer, *ids]
            )
            kept.update(str(entry_id) for entry_id in result)
        return kept

    def owner(self, delivery: Delivery) -> str | None:
        """Who holds the entry now: a consumer name, or None when Redis no longer knows it."""
        result = self._owner(keys=[self.keys.stream(delivery.inbox)], args=[GROUP, delivery.id])
        return str(result) or None

    def ack(self, delivery: Delivery) -> None:
        """The file is done (or failed for good): remove its entry and its enqueue-once mark."""
        job = delivery.job
        # An unreadable job has no mark of its own: a mark name nothing uses stands in.
        mark = self.keys.queued(delivery.inbox, job.path if job else "\0unreadable")
        self._ack(
            keys=[self.keys.stream(delivery.inbox), mark, self.keys.starts(delivery.inbox)],
            args=[GROUP, delivery.id, job.facts if job else ""],
        )

    def release(self, delivery: Delivery) -> bool:
        """Give an entry back for any host to take at once (on a clean stop)."""
        text = delivery.job.encode() if delivery.job is not None else delivery.text
        if not text:
            return False
        return bool(
            self._release(
                keys=[self.keys.stream(delivery.inbox), self.keys.starts(delivery.inbox)],
                args=[GROUP, self.consumer, delivery.id, text],
            )
        )

    def starts(self, delivery: Delivery) -> int:
        """How many times a host started reading this entry and did not finish (a crash or
        kill ended it): held and not started does not count."""
        value = self.client.hget(self.keys.starts(delivery.inbox), delivery.id)
        return int(value or 0)

    def started(self, delivery: Delivery) -> None:
        """A host starts reading the entry now (forgotten with its acknowledgement)."""
        key = self.keys.starts(delivery.inbox)
        with self.client.pipeline() as pipe:
            pipe.hincrby(key, delivery.id, 1)
            pipe.expire(key, QUEUED_MARK_SECONDS)
            pipe.execute()

    def depth(self, inbox: str) -> dict[str, Any]:
        """The inbox's queue: entries waiting or held, and the holders' counts."""
        stream = self.keys.stream(inbox)
        length = self.client.xlen(stream)
        try:
            summary = self.client.xpending(stream, GROUP)
        except Exception as error:
            if "NOGROUP" in str(error):
                return {"length": length, "pending": 0, "holders": {}}
            raise
        holders = {str(c["name"]): int(c["pending"]) for c in summary.get("consumers") or []}
        return {"length": length, "pending": int(summary.get("pending") or 0), "holders": holders}

    def _delivery(
        self, inbox: str, entry_id: str, fields: dict[str, str], deliveries: int
    ) -> Delivery:
        text = fields.get("job")
        try:
            if text is None:
                raise JobError("the entry has no job field")
            return Delivery(inbox, str(entry_id), Job.decode(text), deliveries, text=text)
        except JobError as error:
            return Delivery(
                inbox, str(entry_id), None, deliveries, error=str(error), text=text or ""
            )


def _fields(raw: Any) -> dict[str, str]:
    """A stream entry's fields as Lua returns them (a flat list) or as redis-py does (a dict)."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    items = list(raw or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _stream_entries(answer: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """XREADGROUP's answer in either protocol version, as (stream, [(id, fields)])."""
    if not answer:
        return []
    pairs = answer.items() if isinstance(answer, dict) else answer
    return [
        (str(stream), [(str(i), _fields(f)) for i, f in entries if f is not None])
        for stream, entries in pairs
    ]
