"""Looking at the cluster from outside: what ``status``, ``check`` and ``retry`` see in Redis.

Owns the operator's view of distributed mode: the live hosts and their
records, per inbox the scanner lease holder, the queue (entries waiting,
entries held and by whom), the settings the scanner published against this
config's own (drift), and the shared ocr.space gate; for ``check``, whether
Redis answers, its version and its eviction policy; for ``retry``, queueing
the files it sent back.

It takes no entry, holds no lease and writes no host record: nothing here
changes what the hosts do, except the jobs ``retry`` queues. A Redis that
cannot be reached is a finding (``unreachable`` in the view, with the
reason in words), never an exception, except for ``retry``, which must
say that its files were not queued.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrwatch.cluster.budget import SharedGate, api_key_hash
from ocrwatch.cluster.connection import (
    RedisUnavailable,
    connect,
    describe_error,
    is_redis_error,
    redis_module,
    shown_url,
)
from ocrwatch.cluster.jobs import GROUP, Job, JobError, Keys, consumer_name, relative_path
from ocrwatch.cluster.jobs import settings_fingerprint as fingerprint
from ocrwatch.cluster.lease import Leases
from ocrwatch.cluster.setup import NO_KEY
from ocrwatch.cluster.streams import JobQueue
from ocrwatch.errors import OcrwatchError
from ocrwatch.plan import InboxPlan, Plan
from ocrwatch.sidecar import utc_iso
from ocrwatch.store import default_state_dir

if TYPE_CHECKING:
    import redis

    from ocrwatch.config import QueueConfig
    from ocrwatch.ratelimit import GateState

SHOWN_ENTRIES = 10
"""Held entries listed per inbox (with their file, holder and deliveries); the rest are counted."""
MIN_REDIS_VERSION = (6, 2)
"""The oldest Redis with every command the queue uses (XAUTOCLAIM came in 6.2)."""
SAFE_EVICTION = "noeviction"


class _Access:
    """A client and the names of things, as this config and this host see them."""

    def __init__(
        self,
        plan: Plan,
        config_path: Path | None,
        env: Mapping[str, str] | None,
        state_dir: Path | None,
    ) -> None:
        config = plan.config.queue
        assert config is not None, "only for a config with queue:"
        self.plan = plan
        self.config: QueueConfig = config
        self.keys = Keys(config.namespace)
        folder = (
            state_dir if state_dir is not None else default_state_dir(plan.config.state_dir, env)
        )
        self.host = consumer_name(config.host_name, folder)
        self.client: redis.Redis = connect(config, config_path, env)
        self.queue = JobQueue(self.client, self.keys, self.host, config.lease_seconds)
        self.leases = Leases(self.client, self.keys, self.host, config.lease_seconds)

    def gate_state(self) -> GateState:
        """The shared ocr.space gate as this host's daemon would see it (same key, same scope)."""
        api_key = self.plan.api_key
        ocrspace = self.plan.config.ocrspace
        gate = SharedGate(
            self.client,
            self.keys,
            key_hash=lambda: api_key_hash(api_key.value) if api_key is not None else NO_KEY,
            host=self.host,
            scope=self.config.rate_scope,
            limit=ocrspace.rate_limit,
            max_requests_per_day=ocrspace.max_requests_per_day,
        )
        return gate.state()


def _base(plan: Plan) -> dict[str, Any]:
    config = plan.config.queue
    assert config is not None
    return {"url": shown_url(config.url), "namespace": config.namespace, "unreachable": None}


def cluster_view(
    plan: Plan,
    config_path: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """The cluster as Redis holds it, for ``ocrwatch status`` (plain data, JSON-ready).

    ``state_dir`` is the local daemon's, which names this host when the
    config does not. A Redis that fails gives ``unreachable`` and no more.
    """
    view = _base(plan)
    try:
        access = _Access(plan, config_path, env, state_dir)
        view["host"] = access.host
        view["hosts"] = _hosts(access)
        view["inboxes"] = [_inbox(access, inbox_id) for inbox_id in _inbox_ids(plan, view["hosts"])]
        view["ocrspace"] = _gate(access.gate_state()) if "ocrspace" in plan.engines else None
    except OcrwatchError as error:  # a password file that cannot be read: the view says so
        view["unreachable"] = str(error)
    except Exception as error:
        if not is_redis_error(error):
            raise
        view["unreachable"] = describe_error(error)
    return view


def _hosts(access: _Access) -> list[dict[str, Any]]:
    """Every live host's record, by name, with when it last wrote it (hosts' clocks may differ)."""
    now = time.time()
    hosts = []
    for name, record in sorted(access.leases.hosts().items()):
        seen = record.get("seen")
        when = float(seen) if isinstance(seen, (int, float)) else None
        hosts.append(
            {
                **record,
                "host": name,
                "seen": utc_iso(when) if when is not None else None,
                "seen_seconds_ago": max(0.0, round(now - when, 1)) if when is not None else None,
            }
        )
    return hosts


def _inbox_ids(plan: Plan, hosts: list[dict[str, Any]]) -> list[str]:
    """This config's inbox ids, then those other hosts scan that this config lacks."""
    ids = [inbox.config.id for inbox in plan.inboxes if inbox.config.id is not None]
    for record in hosts:
        ids += [str(inbox_id) for inbox_id in record.get("scanning") or []]
    return list(dict.fromkeys(ids))


def _inbox(access: _Access, inbox_id: str) -> dict[str, Any]:
    local = next((i for i in access.plan.inboxes if i.config.id == inbox_id), None)
    depth = access.queue.depth(inbox_id)
    published = access.leases.published_settings(inbox_id)
    own = fingerprint(local) if local is not None else None
    return {
        "id": inbox_id,
        "path": str(local.path) if local is not None else None,
        "scanner": access.leases.holder(inbox_id),
        "entries": int(depth["length"]),
        "waiting": max(0, int(depth["length"]) - int(depth["pending"])),
        "held": int(depth["pending"]),
        "holders": depth["holders"],
        "held_entries": _held_entries(access, inbox_id) if depth["pending"] else [],
        "settings": {
            "published": published,
            "own": own,
            "drift": published is not None and own is not None and published != own,
        },
    }


def _held_entries(access: _Access, inbox_id: str) -> list[dict[str, Any]]:
    """The first held entries of an inbox: which file, which host, how long, how often delivered."""
    stream = access.keys.stream(inbox_id)
    rows = access.client.xpending_range(stream, GROUP, min="-", max="+", count=SHOWN_ENTRIES)
    entries = []
    for row in rows:
        entry_id = str(row["message_id"])
        found = access.client.xrange(stream, min=entry_id, max=entry_id, count=1)
        path = None
        if found:
            try:
                path = Job.decode((found[0][1] or {}).get("job", "")).path
            except JobError:
                path = None  # a job of another version: shown by its entry id
        entries.append(
            {
                "id": entry_id,
                "path": path,
                "host": str(row["consumer"]),
                "idle_seconds": round(int(row["time_since_delivered"]) / 1000, 1),
                "deliveries": int(row["times_delivered"]),
            }
        )
    return entries


def _gate(state: GateState) -> dict[str, Any]:
    return {
        "paused_until": utc_iso(state.paused_until) if state.paused_until else None,
        "pause_reason": state.pause_reason,
        "blocked": state.blocked,
        "requests_today": state.requests_today,
        "max_requests_per_day": state.max_requests_per_day,
        "budget_until": utc_iso(state.budget_until) if state.budget_until else None,
        "budget_reason": state.budget_reason,
        "unreachable": state.unreachable,
    }


def render_cluster(view: dict[str, Any]) -> str:
    """The cluster section ``ocrwatch status`` prints."""
    head = f"cluster: {view['url']}, namespace {view['namespace']}"
    if view.get("unreachable"):
        return f"{head}\n  unreachable: {view['unreachable']}"
    lines = [f"{head}, this host {view.get('host')}"]
    hosts = view.get("hosts") or []
    lines.append(f"  hosts ({len(hosts)}):" if hosts else "  hosts: none alive")
    lines += ["    " + _describe_host(record) for record in hosts]
    for inbox in view.get("inboxes") or []:
        lines.append("")
        lines += _describe_inbox(inbox)
    gate = view.get("ocrspace")
    if gate is not None:
        lines.append("")
        lines.append(f"  ocr.space (shared by all hosts): {_describe_gate(gate)}")
        used, budget = gate.get("requests_today"), gate.get("max_requests_per_day")
        lines.append(
            f"    requests today (UTC): {used}"
            + (f" of the daily budget of {budget}" if budget else "")
        )
    return "\n".join(lines)


def _describe_host(record: dict[str, Any]) -> str:
    roles = record.get("roles") or []
    parts = [
        f"{record['host']}: roles {', '.join(roles) or 'none'}",
        f"version {record.get('version', '?')}",
    ]
    if "work" in roles:
        parts.append(f"holding {record.get('held', 0)} of {record.get('capacity', '?')}")
    if record.get("suspects"):
        parts.append(f"{record['suspects']} suspect(s) read alone")
    if record.get("scanning"):
        parts.append(f"scanning {', '.join(record['scanning'])}")
    if record.get("seen_seconds_ago") is not None:
        parts.append(f"seen {record['seen_seconds_ago']:.0f} s ago")
    text = "; ".join(parts)
    if record.get("drift"):
        text += f"; CONFIG DRIFT in {', '.join(record['drift'])} (takes none of their files)"
    if record.get("unreachable"):
        text += f"; cannot reach Redis: {record['unreachable']}"
    return text


def _describe_inbox(inbox: dict[str, Any]) -> list[str]:
    where = inbox.get("path") or "not in this config"
    lines = [
        f"  inbox {inbox['id']} ({where})",
        f"    scanner: {inbox.get('scanner') or 'none (no host holds the lease: nothing new is queued)'}",
    ]
    held = inbox.get("held", 0)
    holders = ", ".join(f"{host} {count}" for host, count in sorted(inbox["holders"].items()))
    lines.append(
        f"    queue: {inbox['entries']} entries, {inbox['waiting']} waiting, {held} held"
        + (f" ({holders})" if holders else "")
    )
    for entry in inbox.get("held_entries") or []:
        lines.append(
            f"      {entry['path'] or entry['id']}: held by {entry['host']}, idle "
            f"{entry['idle_seconds']:.0f} s, delivered {entry['deliveries']} time(s)"
        )
    if held > len(inbox.get("held_entries") or []):
        lines.append(f"      and {held - len(inbox['held_entries'])} more held")
    settings = inbox["settings"]
    if settings["drift"]:
        lines.append(
            f"    settings: CONFIG DRIFT: this config's settings ({settings['own']}) differ from "
            f"those the scanner published ({settings['published']}); a host running it takes "
            "none of this inbox's files"
        )
    elif settings["published"] is None:
        lines.append("    settings: none published yet (no scanner has held the lease lately)")
    elif settings["own"] is not None:
        lines.append("    settings: this config agrees with the scanner's")
    return lines


def _describe_gate(gate: dict[str, Any]) -> str:
    if gate.get("unreachable"):
        return f"held: {gate['unreachable']}"
    if gate.get("blocked"):
        return f"STOPPED for every host, {gate['blocked']} (a reload after fixing the key lifts it)"
    if gate.get("paused_until"):
        return f"paused until {gate['paused_until']} ({gate.get('pause_reason')})"
    if gate.get("budget_until"):
        return f"waiting until {gate['budget_until']}: {gate.get('budget_reason')}"
    return "requests flowing"


def redis_check(
    plan: Plan,
    config_path: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """What ``ocrwatch check`` finds of the config's Redis: reachable, version, eviction, hosts.

    Raises ConfigError when the password file cannot be read (a config
    problem, as check reports others); a Redis that fails is ``unreachable``.
    """
    report = _base(plan)
    access = _Access(plan, config_path, env, state_dir)
    report["host"] = access.host
    try:
        info = access.client.info("server")
        report["version"] = str(info.get("redis_version", "?"))
        report["problems"] = _version_problems(report["version"])
        report["maxmemory_policy"], report["policy_unchecked"] = _eviction(access.client)
        report["hosts"] = _hosts(access)
    except Exception as error:
        if not is_redis_error(error):
            raise
        report["unreachable"] = describe_error(error)
    return report


def _version_problems(version: str) -> list[str]:
    try:
        numbers = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return []
    if numbers < MIN_REDIS_VERSION:
        needed = ".".join(str(part) for part in MIN_REDIS_VERSION)
        return [
            f"Redis {version} is too old: distributed mode needs {needed} or later (XAUTOCLAIM)"
        ]
    return []


def _eviction(client: redis.Redis) -> tuple[str | None, str | None]:
    """The server's maxmemory-policy, or None and why it could not be read.

    ``INFO memory`` tells it (Redis 6.2 and later) without CONFIG, which an ACL
    user limited to what ocrwatch needs may not run; CONFIG GET is the fallback.
    """
    try:
        policy = client.info("memory").get("maxmemory_policy")
        if not policy:
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis_module().ResponseError as error:
        # Refused (an ACL, a renamed command, a managed service): not a failure.
        return None, describe_error(error)
    return (str(policy), None) if policy else (None, "the server did not say")


def render_check(report: dict[str, Any]) -> list[str]:
    """The lines ``ocrwatch check`` prints about Redis (problems come as ``error:``/``warning:`` lines)."""
    lines = [
        f"queue: {report['url']}, namespace {report['namespace']}, this host {report.get('host')}"
    ]
    if report.get("unreachable"):
        lines.append(f"  error: {report['unreachable']}")
        return lines
    lines.append(f"  Redis:     reachable, version {report['version']}")
    lines += [f"  error: {problem}" for problem in report.get("problems") or []]
    policy = report.get("maxmemory_policy")
    if policy is None:
        lines.append(
            f"  warning: maxmemory-policy could not be checked: {report.get('policy_unchecked')}"
        )
        lines.append(
            f"           make sure it is {SAFE_EVICTION}: evicted queue entries are lost work"
        )
    elif policy != SAFE_EVICTION:
        lines.append(
            f"  warning: maxmemory-policy is {policy}: under memory pressure Redis evicts keys, and "
            f"an evicted queue entry is lost work; set maxmemory-policy {SAFE_EVICTION}"
        )
    else:
        lines.append(f"  eviction:  maxmemory-policy {policy}")
    hosts = report.get("hosts") or []
    if hosts:
        lines.append(f"  hosts:     {len(hosts)} alive")
        lines += [f"    {_describe_host(record)}" for record in hosts]
    else:
        lines.append("  hosts:     none alive")
    return lines


def requeue(
    plan: Plan,
    paths: list[tuple[Path, InboxPlan]],
    config_path: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    state_dir: Path | None = None,
) -> list[tuple[Path, str]]:
    """Queue each file for the cluster (``ocrwatch retry``); what happened to each.

    Raises RedisUnavailable when Redis fails (the files stay unqueued until
    the inbox's scanner finds them at a rescan).
    """
    access = _Access(plan, config_path, env, state_dir)
    done = []
    try:
        for path, inbox in paths:
            inbox_id = inbox.config.id
            if inbox_id is None or not inbox.contains(path):
                done.append((path, "not in a shared inbox: not queued"))
                continue
            try:
                info = path.stat()
            except OSError as error:
                done.append((path, f"not queued: {error.strerror or error}"))
                continue
            access.queue.ensure_group(inbox_id)
            job = Job(
                inbox=inbox_id,
                path=relative_path(path, inbox),
                size=info.st_size,
                mtime_ns=info.st_mtime_ns,
                settings=fingerprint(inbox),
                by=access.host,
            )
            # No backlog limit: the operator asked for these files now.
            result = access.queue.enqueue(job, max_backlog=0)
            done.append((path, f"queued in inbox {inbox_id}" if result else "queued already"))
    except Exception as error:
        if not is_redis_error(error):
            raise
        raise RedisUnavailable(
            f"{describe_error(error)} at {shown_url(access.config.url)}: the files were not "
            "queued (or not all); the inbox's scanner host queues them at its next rescan"
        ) from error
    return done
