"""SIGHUP: read the config again and apply it without dropping a file.

Inboxes are added and removed, changed watch settings re-watch the inbox,
new rules apply to files not yet started, waiting files stay queued, a new
key replaces the old one before a blocked gate opens, a changed daily budget
applies at once (today's count stays), and engines whose settings changed
are replaced for the next file. An invalid config is refused whole: the
running one stays, and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ocrwatch.apikey import KeyHolder
from ocrwatch.config import load_config
from ocrwatch.daemon.context import Context
from ocrwatch.daemon.workers import Workers
from ocrwatch.errors import ConfigError
from ocrwatch.plan import InboxPlan, Plan, make_plan
from ocrwatch.ratelimit import Gate
from ocrwatch.watcher import Watcher

logger = logging.getLogger(__name__)


def load_new_plan(config_path: Path | None, context: Context) -> Plan:
    """The plan the config file describes now. Raises OcrwatchError (ConfigError) when it cannot be used."""
    if config_path is None:
        raise ConfigError("no config file to reload")
    plan = make_plan(load_config(config_path), env=context.env)
    if plan.config.queue != context.plan.config.queue:
        raise ConfigError(
            "the queue: section changed; it takes effect on restart only (systemctl restart ocrwatch)"
        )
    if plan.config.queue is not None:
        ids = {inbox.path: inbox.config.id for inbox in context.plan.inboxes}
        moved = [str(i.path) for i in plan.inboxes if ids.get(i.path, i.config.id) != i.config.id]
        if moved:
            raise ConfigError(f"an inbox's id changed ({', '.join(moved)}); restart to apply it")
    return plan


def apply_plan(
    plan: Plan,
    context: Context,
    *,
    watcher: Watcher,
    watch: Callable[[InboxPlan], None],
    workers: Workers,
    gate: Gate,
) -> None:
    """Switch the running daemon to ``plan``."""
    for warning in plan.warnings:
        logger.warning("%s", warning)
    old = {inbox.path: inbox for inbox in context.plan.inboxes}
    new = {inbox.path: inbox for inbox in plan.inboxes}
    previous = context.plan
    context.plan = plan
    for path in old.keys() - new.keys():
        watcher.unwatch(path)
        dropped = context.tracker.drop_inbox(path)
        logger.info(
            "stopped watching %s (removed from the config; %d waiting file(s) left as they are)",
            path,
            dropped,
        )
    for path, inbox in new.items():
        before = old.get(path)
        if before is None:
            watch(inbox)
        elif (
            before.recursive,
            before.config.watch,
            before.config.poll_interval,
            before.config.patterns,
        ) != (
            inbox.recursive,
            inbox.config.watch,
            inbox.config.poll_interval,
            inbox.config.patterns,
        ) or before.excluded != inbox.excluded:
            watcher.unwatch(path)
            watch(inbox)
    context.tracker.update_inboxes(new)
    _reload_engines(previous, plan, workers=workers, gate=gate)


def _reload_engines(previous: Plan, plan: Plan, *, workers: Workers, gate: Gate) -> None:
    gate.set_limit(plan.config.ocrspace.rate_limit)
    gate.set_budget(plan.config.ocrspace.max_requests_per_day)
    if plan.api_key is not None:
        # The key first, then the gate: workers released by unblock must send the new key.
        if workers.keys is None:
            workers.keys = KeyHolder(plan.api_key)
        elif workers.keys.replace(plan.api_key):
            logger.info("ocr.space: using the %s", plan.api_key)
    if gate.state().blocked:
        # A reload is the operator saying "try again", with a new key or the same one.
        logger.info("ocr.space: trying again after the reload")
        gate.unblock()
    for name in sorted(plan.engines):
        slot = workers.slots.get(name)
        if slot is None:
            workers.add(name)
            continue
        section = "ocrspace" if name == "ocrspace" else "tesseract"
        if getattr(previous.config, section) != getattr(plan.config, section):
            slot.replace(workers.create_engine(name, slot.workers))
            logger.info("engine %s: new settings in use", name)
