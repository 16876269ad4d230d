"""``ocrwatch once`` end to end on the reference corpus, against its ground truth."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.commands import ocrwatch, read_through_fake_ocrspace, text_of, write_config
from tests.support.paths import corpus_images, ground_truth
from tests.support.scoring import cer


def chosen(folder: Path, names: set[str]) -> list[Path]:
    """Copies of the named corpus images in ``folder``, with their sources; every name must exist."""
    folder.mkdir()
    sources = [path for path in corpus_images() if path.name in names]
    assert names == {path.name for path in sources}
    for source in sources:
        shutil.copyfile(source, folder / source.name)
    return sources


def test_corpus_through_the_local_engine(tmp_path: Path) -> None:
    """Real corpus pages read by the local engine land within a sane CER of their ground truth."""
    inbox = tmp_path / "in"
    sources = chosen(
        inbox,
        {
            "tess_phototest.tif",
            "syn_clean_sans_150dpi.png",
            "syn_rotated_90.png",
            "tess_phototest_rotated_180.png",
        },
    )
    config = write_config(tmp_path, {"engine": "tesseract", "inboxes": [{"path": "in"}]})
    result = ocrwatch("once", "-c", str(config))
    assert 0 == result.returncode, result.stderr
    for source in sources:
        assert cer(text_of(inbox / source.name), ground_truth(source)) < 0.03, source.name


def test_corpus_through_ocrspace_engine_against_local_server(tmp_path: Path) -> None:
    """The ocr.space path end to end: uploads that pass the protocol checks, text within CER bounds."""
    sources = chosen(
        tmp_path / "in", {"tess_phototest.tif", "syn_jpeg_q12.jpg", "ocrmypdf_linn.png"}
    )
    truths = {tmp_path / "in" / source.name: ground_truth(source) for source in sources}
    read_through_fake_ocrspace(tmp_path, truths, below=0.05)
