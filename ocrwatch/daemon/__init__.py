"""``ocrwatch run``: the watching daemon. :class:`Daemon` is its life cycle; see ``docs/architecture.md``."""

from ocrwatch.daemon.lifecycle import Daemon

__all__ = ["Daemon"]
