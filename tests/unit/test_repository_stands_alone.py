"""The default suite needs nothing outside the repository.

Third-party material (real scans, real PDFs, recorded ocr.space answers) sits
outside the clone and is read only by the reference suite (``tests/reference``)
and, optionally, by the benchmarks' corpus loader. CI runs the default suite
with that material hidden; these tests name the offending line before then.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.paths import REPO

# Names in tests/support/paths.py that point outside the repository.
OUTSIDE_NAMES = {"SHARED", "CORPUS", "DOCUMENTS", "SAMPLES", "corpus_images", "ground_truth"}
# Where reading the outside material is allowed: the reference suite, the module
# that says where the material is, and the benchmarks' corpus loader (which
# falls back to rendered pages).
ALLOWED = {
    REPO / "tests" / "reference",
    REPO / "tests" / "support" / "paths.py",
    REPO / "benchmarks" / "images.py",
    Path(__file__).resolve(),  # names the folder to look for it
}
OUTSIDE_TEXT = re.compile(
    r"\.\./shared|OCRWATCH_SHARED|/shared/(corpus|documents|ocrspace|systemd-lab)"
)


def python_files() -> list[Path]:
    folders = [REPO / "ocrwatch", REPO / "tests", REPO / "benchmarks"]
    return sorted(
        path
        for folder in folders
        for path in folder.rglob("*.py")
        if not any(path == allowed or path.is_relative_to(allowed) for allowed in ALLOWED)
    )


def imported_outside_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "tests.support.paths"
        for alias in node.names
        if alias.name in OUTSIDE_NAMES
    }


def test_only_the_reference_suite_imports_the_outside_material() -> None:
    """No module outside the reference suite imports the paths of the third-party material."""
    offenders = {
        str(path.relative_to(REPO)): sorted(names)
        for path in python_files()
        if (names := imported_outside_names(path))
    }
    assert {} == offenders


def test_no_file_names_the_outside_folder() -> None:
    """No code, test script or test data outside the reference suite names ../shared."""
    candidates = [
        path
        for path in (REPO / "tests").rglob("*")
        if path.is_file() and path.suffix in {".py", ".sh", ".yaml", ".conf", ".json"}
    ]
    candidates += python_files()
    offenders = sorted(
        {
            f"{path.relative_to(REPO)}:{number}"
            for path in candidates
            if not any(path == allowed or path.is_relative_to(allowed) for allowed in ALLOWED)
            for number, line in enumerate(
                path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
            )
            if OUTSIDE_TEXT.search(line)
        }
    )
    assert [] == offenders
