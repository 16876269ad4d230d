"""Output formats: seconds per page to write hOCR, ALTO XML and the searchable PDF, and its size.

A format added to an inbox is written from the document's ``.json`` record,
without OCR; that is how one writer is timed alone here. The documents are
:mod:`benchmarks.documents`' timed scanned PDF and multi-page TIFF (the same
rendered pages, the same builders). For each, in an inbox of its own:

1. ``ocrwatch once`` reads it with ``formats: [txt, json]`` on the local
   engine (real word boxes, about a dozen words a line; not timed here);
2. for each case (hOCR, ALTO, the searchable PDF as PDF/A-2b, the same with
   ``pdfa: none``), its output file is deleted and ``ocrwatch once`` runs
   with ``formats: [txt, json, FORMAT]``, which writes that file from the
   record; then the very same command runs again, with nothing left to
   write. Each run is a whole process (as :mod:`benchmarks.documents` runs
   them, on the same CPUs, a fresh state folder each), so the difference of
   the two is the writer's time: the record's load and page model, the
   writer, the staged file and the ``.json`` written again. Seconds per page
   = the median difference over repeats ÷ pages;
3. every write is checked: the ``.json`` is still the read's (no OCR) and a
   finished record of every page, lists the file with its size and mtime
   and no error, the file is there (a PDF with every page; under ``2b``
   PDF/A-2b as the entry says, validated again here), and the second run
   changed nothing;
4. for the PDF input, every image XObject of each page (forms followed) is
   compared by its raw stream bytes with the input's: ocrwatch promises to
   add text only; OCRmyPDF's output is compared the same way, for context;
5. the searchable PDF's size over the input's, beside OCRmyPDF's output
   (:func:`benchmarks.documents.read_with_ocrmypdf`: ``--force-ocr -j 2``,
   its defaults, so PDF/A) over the same input, with its whole run's time
   (``small`` and ``full`` only: it takes ~12 s a document even at toy scale).

The PDF input is :func:`~benchmarks.documents.write_pdf`'s without the font
resource its page builder adds (see :func:`scanner_pdf`).

Not here: how fast pages are read (:mod:`benchmarks.documents`), and whether
the formats are right in detail (the tests' job; only what a run must leave
behind is checked).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
from pikepdf import pdfa

from benchmarks import documents
from benchmarks.documents import (
    SCALES,
    BaselineRead,
    Ocrmypdf,
    Page,
    Run,
    find_ocrmypdf,
    read_with_ocrmypdf,
    rendered_pages,
    write_pdf,
    write_tiff,
)
from benchmarks.harness import Context, Row, Target
from ocrwatch.sidecar import ALTO_SUFFIX, HOCR_SUFFIX, PDF_SUFFIX, RESULT_SUFFIX

NAME = "formats"
ENGINE = "tesseract"
"""The engine of every run: the record's settings name it, so it must not change between runs."""
REPEATS = {"tiny": 1, "small": 2, "full": 3}
BASELINE_SIZES = ("small", "full")
"""OCRmyPDF takes ~12 s a document even at toy scale; ``tiny`` (the smoke test) leaves it out."""
PDF_SECONDS_PER_PAGE = 0.5
"""Target for the searchable PDF: a quarter of the local engine's ~2 s a page on these pages."""
PDF_GROWTH = 1.10
"""Target for a PDF input's searchable PDF over the input: the text layer is all it adds."""
MAX_FORM_DEPTH = 8
SUFFIXES = {"hocr": HOCR_SUFFIX, "alto": ALTO_SUFFIX, "pdf": PDF_SUFFIX}
LABELS = {"pdf": "scanned PDF", "tiff": "multi-page TIFF"}


@dataclass(frozen=True)
class Case:
    """One file written from the record: a format, and for ``pdf`` its PDF/A level."""

    key: str
    format: str
    label: str
    pdfa: str | None = None

    def inbox_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"formats": ["txt", "json", self.format]}
        if self.pdfa is not None:
            options["searchable_pdf"] = {"pdfa": self.pdfa}
        return options


CASES = (
    Case("hocr", "hocr", "hOCR"),
    Case("alto", "alto", "ALTO XML"),
    Case("pdf", "pdf", "searchable PDF (PDF/A-2b, validated)", "2b"),
    Case("pdf-plain", "pdf", "searchable PDF (`pdfa: none`)", "none"),
)
READ_ONLY = {"formats": ["txt", "json"]}


@dataclass
class Measured:
    """What one document gave: run times by case, output sizes, image checks, the baseline."""

    kind: str
    document: Path
    pages: int
    read_seconds: float
    write: dict[str, list[float]] = field(default_factory=dict)
    again: dict[str, list[float]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    images: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Case key (or ``ocrmypdf``) -> (image streams byte-identical to the input's, images)."""
    baseline: BaselineRead | None = None
    baseline_size: int | None = None

    def per_page(self, key: str) -> float:
        differences = [w - a for w, a in zip(self.write[key], self.again[key], strict=True)]
        return statistics.median(differences) / self.pages


def run(ctx: Context) -> list[Row]:
    scale = SCALES[ctx.size_name]
    pages = rendered_pages(ctx, scale.pages, scale.lines)
    ocrmypdf = find_ocrmypdf()
    inputs = {
        "pdf": scanner_pdf(ctx, ctx.folder(NAME, "pdf") / "scan.pdf", pages, scale.pages),
        "tiff": write_tiff(ctx.folder(NAME, "tiff") / "scan.tif", pages, scale.pages),
    }
    repeats = REPEATS[ctx.size_name]
    measured = [
        _measure(ctx, kind, document, scale.pages, repeats=repeats, ocrmypdf=ocrmypdf)
        for kind, document in inputs.items()
    ]
    return [row for each in measured for row in _rows(each, repeats)]


def scanner_pdf(ctx: Context, path: Path, pages: Sequence[Page], count: int) -> Path:
    """:func:`~benchmarks.documents.write_pdf`'s PDF without the Helvetica resource its page
    builder gives every page and no page here draws: a scanner's PDF has no font, and pikepdf's
    PDF/A check reports an unused, unembedded font as not checkable, which ends PDF/A."""
    built = write_pdf(ctx.folder(NAME, "built") / path.name, pages, count)
    with pikepdf.open(built) as pdf:
        for page in pdf.pages:
            del page.obj.Resources["/Font"]
        pdf.save(path, deterministic_id=True)
    built.unlink()
    return path


def _measure(
    ctx: Context,
    kind: str,
    document: Path,
    count: int,
    *,
    repeats: int,
    ocrmypdf: Ocrmypdf | None,
) -> Measured:
    """Read ``document`` once, time each case's write against a run with nothing to write."""
    ctx.log(f"formats: {count}-page {kind}, read with formats [txt, json] on the local engine")
    read = _run(ctx, document, READ_ONLY, name=f"{kind}-read", timeout=120 + 20 * count)
    timings = documents.read_record(document, count).get("timings")
    measured = Measured(kind, document, count, read.seconds)
    for repeat in range(repeats):
        for case in CASES:
            output = document.with_name(document.name + SUFFIXES[case.format])
            output.unlink(missing_ok=True)
            name = f"{kind}-{case.key}-{repeat}"
            timeout = 60 + 5 * count
            written = _run(ctx, document, case.inbox_options(), name=name, timeout=timeout)
            _check_written(document, case, count, timings=timings)
            before = _stamps(document, output)
            again = _run(ctx, document, case.inbox_options(), name=f"{name}-again", timeout=timeout)
            if _stamps(document, output) != before:
                raise RuntimeError(f"{name}: the run with nothing to write changed the files")
            measured.write.setdefault(case.key, []).append(written.seconds)
            measured.again.setdefault(case.key, []).append(again.seconds)
            if case.format == "pdf":
                measured.sizes[case.key] = output.stat().st_size
                if kind == "pdf" and repeat == 0:
                    measured.images[case.key] = same_images(document, output)
            ctx.log(
                f"formats: {kind} {case.key}: {written.seconds:.2f} s, "
                f"nothing to write {again.seconds:.2f} s"
            )
    if ctx.size_name not in BASELINE_SIZES:
        measured.baseline = BaselineRead(None, [], f"OCRmyPDF not run at size {ctx.size_name}")
        return measured
    ctx.log(f"formats: OCRmyPDF over the {count}-page {kind}, for its output's size")
    folder = ctx.folder(NAME, "ocrmypdf", kind)
    measured.baseline = read_with_ocrmypdf(ocrmypdf, document, folder, pages=count)
    if measured.baseline.run is not None:
        measured.baseline_size = (folder / "out.pdf").stat().st_size
        if kind == "pdf":
            measured.images["ocrmypdf"] = same_images(document, folder / "out.pdf")
    return measured


def _run(
    ctx: Context, document: Path, inbox_options: dict[str, Any], *, name: str, timeout: float
) -> Run:
    """``ocrwatch once`` on the local engine over ``document``'s inbox with ``inbox_options``."""
    return documents.once_run(
        ctx,
        document.parent,
        engine=ENGINE,
        name=f"formats-{name}",
        timeout=timeout,
        inbox_options=inbox_options,
    )


def _check_written(document: Path, case: Case, count: int, *, timings: Any) -> None:
    """The record is still the read's (``timings`` unchanged: no OCR) and lists ``case``'s file
    as written, with the file's own size and mtime.

    Raises RuntimeError when the record, the entry or the file is not what the run should leave.
    """
    record = documents.read_record(document, count)
    if record.get("timings") != timings:
        raise RuntimeError(f"{document.name} was read again instead of written from its record")
    name = document.name + SUFFIXES[case.format]
    entries = [entry for entry in record.get("outputs") or () if entry.get("format") == case.format]
    if len(entries) != 1 or entries[0].get("name") != name:
        raise RuntimeError(f"{document.name}.json lists {entries!r}, not one {name}")
    entry = entries[0]
    if "error" in entry:
        raise RuntimeError(f"{name} was not written: {entry['error']}")
    path = document.with_name(name)
    if not path.is_file():
        raise RuntimeError(f"{name} is listed but missing")
    info = path.stat()
    if (info.st_size, info.st_mtime_ns) != (entry.get("size"), entry.get("mtime_ns")):
        raise RuntimeError(f"{name}: size and mtime differ from the record's entry")
    if case.pdfa is not None:
        _check_pdf(path, entry, case, count)


def _check_pdf(path: Path, entry: dict[str, Any], case: Case, count: int) -> None:
    achieved = "2b" if case.pdfa == "2b" else None
    found = ((entry.get("options") or {}).get("pdfa"), entry.get("pdfa"), entry.get("pages"))
    if found != (case.pdfa, achieved, count):
        raise RuntimeError(
            f"{path.name}: options.pdfa, pdfa, pages {found}, expected "
            f"({case.pdfa}, {achieved}, {count}); pdfa_error: {entry.get('pdfa_error')}"
        )
    with pikepdf.open(path) as pdf:
        if len(pdf.pages) != count:
            raise RuntimeError(f"{path.name} has {len(pdf.pages)} pages, not {count}")
    if achieved is not None:
        # Once more, on the file as it stands, apart from the validation ocrwatch did as it wrote.
        report = pdfa.validate_written(path, achieved)
        if not report.passed:
            raise RuntimeError(
                f"{path.name} claims PDF/A-{achieved} but fails: {report.findings[:3]}"
            )


def _stamps(document: Path, output: Path) -> list[tuple[int, int] | None]:
    """Size and mtime of the record and the output file (None for one that is missing)."""
    stamps: list[tuple[int, int] | None] = []
    for path in (document.with_name(document.name + RESULT_SUFFIX), output):
        try:
            info = path.stat()
        except FileNotFoundError:
            stamps.append(None)
        else:
            stamps.append((info.st_size, info.st_mtime_ns))
    return stamps


# --------------------------------------------------------------------------
# Image streams


def same_images(original: Path, made: Path) -> tuple[int, int]:
    """(image XObjects of ``original`` whose raw stream bytes recur on the same page of
    ``made``, image XObjects of ``original``), pages paired in order."""
    before, after = _image_digests(original), _image_digests(made)
    identical = sum(
        sum((Counter(theirs) & Counter(ours)).values())
        for theirs, ours in zip(before, after, strict=False)
    )
    return identical, sum(len(page) for page in before)


def _image_digests(path: Path) -> list[list[str]]:
    """For each page, the sha256 of every image XObject's raw (still encoded) stream."""
    with pikepdf.open(path) as pdf:
        return [_images_of(page.obj.get("/Resources"), depth=0) for page in pdf.pages]


def _images_of(resources: Any, *, depth: int) -> list[str]:
    if not isinstance(resources, pikepdf.Dictionary):
        return []
    xobjects = resources.get("/XObject")
    if not isinstance(xobjects, pikepdf.Dictionary):
        return []
    digests = []
    for _, xobject in xobjects.items():
        if not isinstance(xobject, pikepdf.Stream):
            continue
        subtype = xobject.get("/Subtype")
        if subtype == pikepdf.Name.Image:
            digests.append(hashlib.sha256(xobject.read_raw_bytes()).hexdigest())
        elif subtype == pikepdf.Name.Form and depth < MAX_FORM_DEPTH:
            digests.extend(_images_of(xobject.get("/Resources"), depth=depth + 1))
    return digests


# --------------------------------------------------------------------------
# Rows


def _rows(measured: Measured, repeats: int) -> list[Row]:
    label = f"{measured.pages}-page {LABELS[measured.kind]}"
    rows = []
    for case in CASES:
        write = statistics.median(measured.write[case.key])
        again = statistics.median(measured.again[case.key])
        notes = (
            f"write run {write:.2f} s, the same run with nothing to write {again:.2f} s "
            f"(median of {repeats}); entry and file checked"
        )
        if case.key in measured.sizes:
            notes += f"; {measured.sizes[case.key] / 1e6:.2f} MB"
        rows.append(
            Row(
                NAME,
                f"formats: {case.label}, {label}",
                measured.per_page(case.key),
                "s/page",
                target=Target("<=", PDF_SECONDS_PER_PAGE, text=f"≤ {PDF_SECONDS_PER_PAGE:g} s/page")
                if case.format == "pdf"
                else None,
                notes=notes,
                details={
                    "write_seconds": measured.write[case.key],
                    "nothing_to_write_seconds": measured.again[case.key],
                    "read_seconds": measured.read_seconds,
                },
            )
        )
    rows.append(_size_row(measured, label))
    return rows


def _size_row(measured: Measured, label: str) -> Row:
    given = measured.document.stat().st_size
    ours, plain = measured.sizes["pdf"], measured.sizes["pdf-plain"]
    read = measured.baseline
    assert read is not None
    notes = (
        f"input {given / 1e6:.2f} MB; ours {ours / 1e6:.2f} MB as PDF/A-2b, "
        f"{plain / 1e6:.2f} MB with `pdfa: none` ({plain / given:.3g}×)"
    )
    baseline_label = read.label
    if read.run is not None and measured.baseline_size is not None:
        seconds = read.run.seconds
        baseline_label += f", PDF/A, its whole run {seconds:.0f} s, OCR included"
        notes += (
            f"; OCRmyPDF {measured.baseline_size / 1e6:.2f} MB in {seconds:.1f} s "
            f"({measured.pages / seconds:.3g} pages/s)"
        )
    if measured.kind == "pdf":
        told = {"pdf": "PDF/A-2b", "pdf-plain": "`pdfa: none`", "ocrmypdf": "OCRmyPDF's"}
        counts = [
            f"{what} {measured.images[key][0]}/{measured.images[key][1]}"
            for key, what in told.items()
            if key in measured.images
        ]
        kept = all(
            measured.images[key][0] == measured.images[key][1] for key in ("pdf", "pdf-plain")
        )
        notes += f"; image streams byte-identical to the input's: {', '.join(counts)}" + (
            "" if kept else " — ocrwatch CHANGED some images"
        )
    return Row(
        NAME,
        f"formats: searchable PDF size ÷ input, {label}",
        ours / given,
        "× input",
        baseline=None if measured.baseline_size is None else measured.baseline_size / given,
        baseline_label=baseline_label,
        target=Target("<=", PDF_GROWTH, text=f"≤ {PDF_GROWTH:g}× input")
        if measured.kind == "pdf"
        else None,
        notes=notes,
        details={
            "input_bytes": given,
            "pdfa_bytes": ours,
            "plain_bytes": plain,
            "ocrmypdf_bytes": measured.baseline_size,
            "ocrmypdf_seconds": None if read.run is None else read.run.seconds,
            "images_identical": measured.images,
        },
    )
