"""The config file: search order, validation messages, path resolution, the plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocrwatch.config import find_config, load_config, parse_config
from ocrwatch.errors import ConfigError
from ocrwatch.geometry import BoxRule, Length, MarginRule
from ocrwatch.plan import make_plan

REPO = Path(__file__).resolve().parents[2]


def problems(text: str, path: Path = Path("/etc/ocrwatch/config.yaml")) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    return caught.value.problems


def test_seed_crop_is_expressible_as_left_margin() -> None:
    """The seed's `img[0:height, 400:width]` is `crop: {left: 400}`."""
    loaded = parse_config("inboxes: [{path: in, crop: {left: 400}}]", Path("/x/c.yaml"))
    crop = loaded.config.inboxes[0].crop
    assert crop is not None
    rule = crop.rule()
    assert MarginRule(left=Length(400)) == rule
    box = rule.resolve(1000, 800)
    assert (400, 0, 600, 800) == (box.x, box.y, box.width, box.height)


def test_every_problem_is_reported_at_once_with_file_line_and_key_path() -> None:
    """All errors come together, each naming file, line and key path."""
    found = problems(
        "engine: ocrspac\n"
        "ocrspace:\n"
        "  endpoint: ftp://x\n"
        "  bogus: 1\n"
        "inboxes:\n"
        "  - path: ./a\n"
        "  - path: ./b\n"
        "    crop:\n"
        "      left: 12.5\n"
    )
    assert [
        "/etc/ocrwatch/config.yaml:1: at 'engine': Input should be 'ocrspace' or 'tesseract' (got 'ocrspac')",
        "/etc/ocrwatch/config.yaml:3: at 'ocrspace.endpoint': 'ftp://x' is not an http(s) URL",
        "/etc/ocrwatch/config.yaml:4: at 'ocrspace.bogus': unknown key",
        "/etc/ocrwatch/config.yaml:9: at 'inboxes[1].crop.left': 12.5 is not a whole number of pixels; "
        "write a percentage as a string like '12.5%'",
    ] == found


def test_unknown_keys_are_errors_at_every_level() -> None:
    """A misspelt key is never silently ignored."""
    found = problems("inboxes:\n  - path: a\n    langauge: eng\n")
    assert ["/etc/ocrwatch/config.yaml:3: at 'inboxes[0].langauge': unknown key"] == found


def test_duplicate_keys_are_refused() -> None:
    """YAML would keep the last of two equal keys; ocrwatch refuses instead."""
    found = problems("engine: tesseract\nengine: ocrspace\n")
    assert [
        "/etc/ocrwatch/config.yaml:2: invalid YAML: duplicate key 'engine' (first on line 1)"
    ] == found


def test_malformed_yaml_names_the_line() -> None:
    """A syntax error points at its line."""
    found = problems("inboxes: [\n  {path: a\n")
    assert 1 == len(found)
    assert found[0].startswith("/etc/ocrwatch/config.yaml:3: invalid YAML:")


def test_top_level_must_be_a_mapping() -> None:
    """A list at the top level is explained, not a traceback."""
    assert [
        "/etc/ocrwatch/config.yaml: the top level must be a mapping of keys, not list"
    ] == problems("- a\n- b\n")


def test_crop_margins_and_box_cannot_mix() -> None:
    """Margins and a box in one crop rule are ambiguous and refused."""
    found = problems("inboxes: [{path: a, crop: {left: 1, x: 2}}]")
    assert [
        "/etc/ocrwatch/config.yaml:1: at 'inboxes[0].crop': use either margins (left/top/right/bottom) "
        "or a box (x/y/width/height), not both"
    ] == found


def test_lengths_accept_pixels_and_percentages() -> None:
    """Pixels as numbers or strings, percentages as strings, negative box offsets."""
    loaded = parse_config(
        "inboxes: [{path: a, crop: {x: '-50%', y: 10, width: '25%', height: '100px'}}]",
        Path("/c.yaml"),
    )
    crop = loaded.config.inboxes[0].crop
    assert crop is not None
    rule = crop.rule()
    assert isinstance(rule, BoxRule)
    box = rule.resolve(1000, 500)
    assert (500, 10, 250, 100) == (box.x, box.y, box.width, box.height)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """`path: scans` in /srv/conf/c.yaml means /srv/conf/scans; `~` expands."""
    loaded = parse_config("inboxes: [{path: scans, output: ~/out}]", tmp_path / "conf" / "c.yaml")
    inbox = loaded.config.inboxes[0]
    assert tmp_path / "conf" / "scans" == inbox.path
    assert Path(os.path.expanduser("~/out")) == inbox.output


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-c wins, then $OCRWATCH_CONFIG, then ./ocrwatch.yaml, then the XDG config folder."""
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    env = {"XDG_CONFIG_HOME": str(xdg)}
    (xdg / "ocrwatch").mkdir(parents=True)
    (xdg / "ocrwatch" / "config.yaml").write_text("{}")
    assert xdg / "ocrwatch" / "config.yaml" == find_config(None, env)
    (tmp_path / "ocrwatch.yaml").write_text("{}")
    assert Path("ocrwatch.yaml") == find_config(None, env)
    assert Path("/named.yaml") == find_config(None, {**env, "OCRWATCH_CONFIG": "/named.yaml"})
    assert Path("explicit.yaml") == find_config(
        "explicit.yaml", {**env, "OCRWATCH_CONFIG": "/named.yaml"}
    )


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    """A named file that does not exist says so."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert [f"{tmp_path / 'nope.yaml'}: config file not found"] == caught.value.problems


def test_engine_defaults_to_tesseract_without_a_key(tmp_path: Path) -> None:
    """No engine and no key: tesseract, and the plan says why."""
    (tmp_path / "in").mkdir()
    loaded = parse_config("inboxes: [{path: in}]", tmp_path / "c.yaml")
    plan = make_plan(loaded, env={})
    assert "tesseract" == plan.inboxes[0].rules.engine
    assert "no ocr.space API key found" in plan.inboxes[0].engine_reason


def test_engine_defaults_to_ocrspace_with_a_key(tmp_path: Path) -> None:
    """No engine and a key in the environment: ocrspace, and the key never shows."""
    (tmp_path / "in").mkdir()
    loaded = parse_config("inboxes: [{path: in}]", tmp_path / "c.yaml")
    plan = make_plan(loaded, env={"OCRSPACE_API_KEY": "K8SECRETVALUE"})
    assert "ocrspace" == plan.inboxes[0].rules.engine
    assert "K8SECRETVALUE" not in plan.inboxes[0].engine_reason
    assert "K8SECRETVALUE" not in repr(plan.api_key)


def test_plan_problems_are_collected_with_key_paths(tmp_path: Path) -> None:
    """Missing folders, a keyless ocr.space inbox and 'auto' on engine 1 are all reported."""
    (tmp_path / "b").mkdir()
    loaded = parse_config(
        "inboxes:\n  - path: missing\n  - path: b\n    engine: ocrspace\n    language: auto\n",
        tmp_path / "c.yaml",
    )
    with pytest.raises(ConfigError) as caught:
        make_plan(loaded, env={})
    config = tmp_path / "c.yaml"
    assert [
        f"{config}:2: at 'inboxes[0].path': folder {tmp_path / 'missing'} does not exist",
        f"{config}:3: at 'inboxes[1]': uses ocr.space but no API key was found: set ocrspace.api_key_file, "
        "$OCRSPACE_API_KEY, or the systemd credential ocrspace-api-key",
        f"{config}:5: at 'inboxes[1].language': 'auto' works only with ocrspace.ocr_engine 2 or 3 (ocr_engine is 1)",
    ] == caught.value.problems


def test_fingerprint_changes_with_result_shaping_settings_only(tmp_path: Path) -> None:
    """Crop changes the fingerprint; the upload endpoint and the obsolete overlay do not.

    The PDF options have their own fingerprint, so that changing them reads PDFs again
    but no image.
    """
    (tmp_path / "in").mkdir()

    def fingerprint(text: str) -> str:
        plan = make_plan(parse_config(text, tmp_path / "c.yaml"), env={})
        return plan.inboxes[0].rules.fingerprint

    base = fingerprint("engine: tesseract\ninboxes: [{path: in}]")
    assert base == fingerprint(
        "engine: tesseract\nocrspace: {endpoint: 'http://x/'}\ninboxes: [{path: in}]"
    )
    assert base != fingerprint("engine: tesseract\ninboxes: [{path: in, crop: {left: 3}}]")
    assert base == fingerprint("engine: tesseract\ninboxes: [{path: in, overlay: true}]")
    assert base == fingerprint("engine: tesseract\ninboxes: [{path: in, pdf: {text_layer: force}}]")

    def pdf_fingerprint(text: str) -> str:
        plan = make_plan(parse_config(text, tmp_path / "c.yaml"), env={})
        return plan.inboxes[0].rules.pdf_fingerprint

    pdf_base = pdf_fingerprint("engine: tesseract\ninboxes: [{path: in}]")
    assert pdf_base != pdf_fingerprint(
        "engine: tesseract\ninboxes: [{path: in, pdf: {text_layer: force}}]"
    )
    assert pdf_base == pdf_fingerprint(
        "engine: tesseract\ninboxes: [{path: in, pdf: {max_pages: 9}}]"
    )


def test_version_1_fingerprints_are_those_of_either_overlay(tmp_path: Path) -> None:
    """A v1 sidecar hashed `overlay` with the rest: both of its values stand for today's rules."""
    import hashlib
    import json

    (tmp_path / "in").mkdir()
    plan = make_plan(
        parse_config("engine: tesseract\ninboxes: [{path: in}]", tmp_path / "c.yaml"), env={}
    )
    rules = plan.inboxes[0].rules
    # What version 1 described and hashed: the same keys plus overlay.
    v1 = [{**rules.describe(), "overlay": overlay} for overlay in (False, True)]
    digests = {
        hashlib.sha256(
            json.dumps(described, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        for described in v1
    }
    assert digests == rules.legacy_fingerprints
    assert rules.fingerprint not in rules.legacy_fingerprints


def test_example_config_is_valid() -> None:
    """config.example.yaml parses (the full `check` runs in the CLI tests)."""
    loaded = load_config(REPO / "config.example.yaml")
    assert loaded.config.inboxes
