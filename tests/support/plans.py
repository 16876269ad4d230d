"""Plans for in-process tests: a config file in a temp folder, resolved as ``ocrwatch`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocrwatch.config import load_config
from ocrwatch.plan import Plan, make_plan
from tests.support.commands import KEY, write_config


def write_config_with_folders(folder: Path, config: dict[str, Any]) -> Path:
    """``config`` as ``folder/ocrwatch.yaml``, with every inbox folder created."""
    for inbox in config.get("inboxes", []):
        (folder / inbox["path"]).mkdir(parents=True, exist_ok=True)
    return write_config(folder, config)


def plan_for(folder: Path, **inbox: Any) -> Plan:
    """A plan with one ocr.space inbox ``folder/in`` (created), its options as given, and the test key."""
    config = {
        "engine": "ocrspace",
        "state_dir": str(folder / "state"),
        "inboxes": [{"path": str(folder / "in"), **inbox}],
    }
    return make_plan(
        load_config(write_config_with_folders(folder, config)), env={"OCRSPACE_API_KEY": KEY}
    )
