"""Resuming a document: the pages an earlier try read, and keeping each page as it is read.

A document's pages are kept in the daemon's state store as each finishes,
keyed by the file's path, its sha256 and the settings' fingerprints, so a
document interrupted by a pause, a shutdown, a crash or a transient error
resumes with the pages still missing. The store is a cache: losing it costs
the pages' requests again, never a result. A partial sidecar of the same
bytes gives back its finished pages too, so ``ocrwatch retry`` reads only
the failed ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from ocrwatch import current, sidecar
from ocrwatch.plan import Rules
from ocrwatch.source import Source


class PageStore(Protocol):
    """Where finished pages of documents are kept: the state store, or Redis in distributed mode."""

    def saved_pages(self, path: Path, sha256: str, fingerprint: str) -> dict[int, str]: ...

    def save_page(
        self, path: Path, sha256: str, fingerprint: str, number: int, entry: str
    ) -> None: ...

    def drop_pages(self, path: Path) -> None: ...


class KeptPages:
    """The pages of a document read before, and where each newly read page is kept.

    Pages come back from two places: the state store (what an interrupted
    try read) and a partial sidecar of these very bytes (what the try that
    left it read; its failed pages are read again). Failed pages are kept
    too, so that a document interrupted for another reason does not pay for
    them again, except when the partial sidecar shows this is a retry.
    """

    def __init__(
        self,
        store: PageStore | None,
        source: Source,
        rules: Rules,
        *,
        earlier: Path,
    ) -> None:
        """The pages kept for ``source``; ``earlier`` is its result sidecar, perhaps partial."""
        self.store = store
        self.source = source
        self.key = f"{rules.fingerprint}/{rules.pdf_fingerprint}"
        head = sidecar.load_head(earlier)
        retrying = (
            head is not None
            and head.get("status") == "partial"
            and current.same_settings(head, rules)
            and sidecar.same_content(head, source.sha256)
        )
        self.pages: dict[int, dict[str, Any]] = {}
        if store is not None:
            for number, text in store.saved_pages(source.path, source.sha256, self.key).items():
                entry = json.loads(text)
                if not (retrying and entry.get("status") == "failed"):
                    self.pages[number] = entry
        record = sidecar.load(earlier) if retrying else None
        for entry in (record or {}).get("pages") or []:
            if isinstance(entry, dict) and entry.get("status") == "done":
                self.pages[int(entry["number"])] = entry

    def keep(self, entry: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.save_page(
                self.source.path,
                self.source.sha256,
                self.key,
                int(entry["number"]),
                json.dumps(entry, ensure_ascii=False),
            )
