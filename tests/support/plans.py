"""Plans for in-process tests: a config file in a temp folder, resolved as ``ocrwatch`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ocrwatch.config import load_config
from ocrwatch.plan import Plan, make_plan

KEY = "K8-FAKE-KEY-FOR-PLANS"
"""An API key for plans whose inboxes use the ocr.space engine (no request ever leaves)."""


def write_config(folder: Path, config: dict[str, Any]) -> Path:
    """``config`` as ``folder/ocrwatch.yaml``, with every inbox folder created."""
    for inbox in config.get("inboxes", []):
        (folder / inbox["path"]).mkdir(parents=True, exist_ok=True)
    path = folder / "ocrwatch.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def plan_for(folder: Path, **inbox: Any) -> Plan:
    """A plan with one ocr.space inbox ``folder/in`` (created), its options as given."""
    config = {
        "engine": "ocrspace",
        "state_dir": str(folder / "state"),
        "inboxes": [{"path": str(folder / "in"), **inbox}],
    }
    return make_plan(load_config(write_config(folder, config)), env={"OCRSPACE_API_KEY": KEY})
