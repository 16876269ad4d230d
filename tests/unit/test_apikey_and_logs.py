"""The API key lookup order, and that the key never reaches a log line."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from ocrwatch import logs
from ocrwatch.apikey import find_api_key
from ocrwatch.config import OcrSpaceConfig
from ocrwatch.errors import ConfigError

KEY = "K8-DISTINCTIVE-TEST-KEY-7f3a"


def test_key_file_wins_over_environment_and_credentials(tmp_path: Path) -> None:
    """api_key_file is used first; the source names the file, not the key."""
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    lookup = find_api_key(
        OcrSpaceConfig(api_key_file=key_file), None, {"OCRSPACE_API_KEY": "other"}
    )
    assert lookup.key is not None
    assert (KEY, f"file {key_file}", ()) == (lookup.key.value, lookup.key.source, lookup.warnings)
    assert KEY not in repr(lookup.key) and KEY not in str(lookup.key)


def test_environment_then_credential(tmp_path: Path) -> None:
    """Without a file: $OCRSPACE_API_KEY, then $CREDENTIALS_DIRECTORY/ocrspace-api-key."""
    (tmp_path / "ocrspace-api-key").write_text(KEY)
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    lookup = find_api_key(OcrSpaceConfig(), None, env)
    assert lookup.key is not None and "systemd credential ocrspace-api-key" == lookup.key.source
    lookup = find_api_key(OcrSpaceConfig(), None, {**env, "OCRSPACE_API_KEY": "from-env-1234"})
    assert lookup.key is not None and "environment variable OCRSPACE_API_KEY" == lookup.key.source
    assert find_api_key(OcrSpaceConfig(), None, {}).key is None


def test_world_readable_key_file_and_inline_key_warn(tmp_path: Path) -> None:
    """Keys others can read are allowed, with a warning that says how to fix it."""
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    lookup = find_api_key(OcrSpaceConfig(api_key_file=key_file), None, {})
    assert [
        f"API key file {key_file} is readable by other users; restrict it with: chmod 600 {key_file}"
    ] == list(lookup.warnings)
    config_file = tmp_path / "c.yaml"
    config_file.write_text("x")
    config_file.chmod(0o644)
    lookup = find_api_key(OcrSpaceConfig(api_key=KEY), config_file, {})
    assert 1 == len(lookup.warnings) and "inline" in lookup.warnings[0]
    assert all(KEY not in warning for warning in lookup.warnings)


def test_empty_key_file_is_a_config_error(tmp_path: Path) -> None:
    """An empty key file is named in a clear error."""
    key_file = tmp_path / "key"
    key_file.write_text("\n")
    with pytest.raises(ConfigError) as caught:
        find_api_key(OcrSpaceConfig(api_key_file=key_file), tmp_path / "c.yaml", {})
    assert [
        f"{tmp_path / 'c.yaml'}: at 'ocrspace.api_key_file': {key_file} is empty"
    ] == caught.value.problems


def test_found_keys_are_scrubbed_from_every_log_line(tmp_path: Path) -> None:
    """Whatever code logs the key by mistake, the line shows *** instead."""
    find_api_key(OcrSpaceConfig(), None, {"OCRSPACE_API_KEY": KEY})
    stream = io.StringIO()
    logs.setup(0, stream=stream, env={})
    try:
        logging.getLogger("ocrwatch.test").warning("leaking %s in a message", KEY)
        try:
            raise RuntimeError(f"exception text with {KEY}")
        except RuntimeError:
            logging.getLogger("ocrwatch.test").exception("failed")
    finally:
        logs.setup(0)
    output = stream.getvalue()
    assert KEY not in output
    assert "leaking *** in a message" in output and "exception text with ***" in output


def test_journal_lines_carry_priority_on_every_line(tmp_path: Path) -> None:
    """Under the journal each line, tracebacks included, starts with its syslog priority."""
    handle = (tmp_path / "stream").open("w")
    info = __import__("os").fstat(handle.fileno())
    logs.setup(0, stream=handle, env={"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    try:
        logger = logging.getLogger("ocrwatch.test")
        logger.warning("disk nearly full")
        logger.info("done a.jpg")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed b.jpg")
    finally:
        logs.setup(0)
        handle.close()
    lines = (tmp_path / "stream").read_text().splitlines()
    assert ["<4>disk nearly full", "<6>done a.jpg", "<3>failed b.jpg"] == lines[:3]
    assert all(line.startswith("<3>") for line in lines[3:]) and len(lines) > 4
