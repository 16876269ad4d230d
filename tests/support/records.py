"""Records as earlier versions of ocrwatch wrote them, for upgrade tests."""

from __future__ import annotations

import hashlib
import json

from ocrwatch.plan import InboxPlan


def legacy_record(record: dict, inbox: InboxPlan, *, overlay: bool, image: dict) -> dict:
    """``record`` as version 1 wrote it: one page at the top level, overlay in the fingerprint,
    no words."""
    described = {**inbox.rules.describe(), "overlay": overlay}
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return {
        "schema_version": 1,
        "status": "done",
        "source": record["source"],
        "image": image,
        "settings": described,
        "settings_fingerprint": hashlib.sha256(canonical.encode()).hexdigest(),
        "text": record["text"],
        "results": [],
    }
