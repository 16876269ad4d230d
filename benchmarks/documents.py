"""Multi-page documents: pages per second on both engines beside OCRmyPDF, peak memory, and CER.

The documents are built here from rendered A4 pages with known text (seeded
prose from :func:`tests.support.render.prose_lines`, 11 pt, one-inch
margins, a light paper tint, slight blur and sensor noise). Pages come in a
cycle of three, as a scanner with automatic colour detection writes them: a
colour JPEG at 200 dpi (with a coloured letterhead), a grey JPEG at 300 dpi
(both quality 92) and a bilevel page at 300 dpi. The PDF holds them as image
pages built with :mod:`tests.support.pdfs` (JPEG as DCT, bilevel as 1-bit
Flate); the TIFF holds the same pages, JPEG-compressed or CCITT G4, each
written as its own frame. Rendered pages are cached in ``--cache``; the
documents are rebuilt in the scratch folder every run.

Every read is a whole ``ocrwatch once`` process (start-up and model load
included) on a fresh inbox and state folder, held to two CPUs (or fewer if
the machine has fewer), so that its rate compares with a whole OCRmyPDF
process on the same CPUs:

1. pages per second for the timed PDF and TIFF, local engine;
2. the same with the ocr.space engine (default workers) against the fake
   server answering each request after 1 s; the server counts the requests;
3. the baseline: ``ocrmypdf --force-ocr -j 2 --sidecar OUT.txt IN.pdf
   OUT.pdf`` (Debian's OCRmyPDF with Ghostscript and Tesseract, its defaults:
   PDF/A output, the packaged ``eng`` model), whole process, on the same
   files. OCRmyPDF 14 reads the multi-page TIFF itself; should it refuse it,
   the TIFF is first made a PDF with ``img2pdf`` (which OCRmyPDF depends
   on), timed with it. Without ``ocrmypdf`` the rows say so and ocrwatch is
   still measured; nothing is installed;
4. the peak resident set (``ru_maxrss`` of the reader, started by the small
   launcher :mod:`benchmarks.peak` so that the benchmark's own memory is not
   charged to it, and the sum over its process tree sampled from ``/proc``,
   whichever is larger) of ``ocrwatch once`` reading a long PDF and a long TIFF (the same
   pages repeated, each page its own image) with the ocr.space engine and a
   server answering at once;
5. the character error rate of each PDF page's text against the same page
   read as a PNG (the PDF's embedded pixels) by the local engine, and of
   every reading against the ground truth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pikepdf
from PIL import Image, ImageDraw, ImageFilter, TiffImagePlugin

from benchmarks.harness import (
    API_KEY,
    REPO,
    Context,
    Row,
    Server,
    Target,
    child_env,
    daemon_config,
    link_or_copy,
    write_config,
)
from ocrwatch.once import OCRSPACE_WORKERS
from ocrwatch.sidecar import SCHEMA_VERSION
from tests.support import pdfs, render
from tests.support.scoring import cer

NAME = "documents"
CPUS = 2
"""CPUs each reader (ocrwatch or OCRmyPDF) may use."""
SERVER_LATENCY = 1.0
RSS_TARGET_MB = 400.0
OCRMYPDF_MISSING = "baseline unavailable: install the Debian package ocrmypdf"
TIFF_WITHOUT_IMG2PDF = "n/a (ocrmypdf reads PDFs)"
SAMPLE_SECONDS = 0.05
"""How often the process tree's memory is sampled."""
PROBE_TIMEOUT = 30.0
OCRMYPDF_INPUT_ERROR = 2
"""OCRmyPDF's exit status for an input file it cannot read."""

Kind = Literal["colour", "grey", "bilevel"]
KINDS: tuple[Kind, ...] = ("colour", "grey", "bilevel")
DPI: dict[Kind, int] = {"colour": 200, "grey": 300, "bilevel": 300}
A4_MM = (210, 297)
POINTS = 11
PAPER = (247, 244, 236)
LETTERHEAD = (30, 80, 170)
JPEG_QUALITY = 92
NOISE_SIGMA = 1.5
BLUR_PIXELS_AT_300_DPI = 0.6
INK_THRESHOLD = 128
PNG_COMPRESSION = 1
"""Reference PNGs are written fast: their size does not matter, only their pixels."""


@dataclass(frozen=True)
class _Scale:
    """How much one size reads."""

    pages: int
    """Pages of the timed PDF and TIFF (all distinct)."""
    lines: int
    """Lines of text on each page (36 fill an A4 page; fewer at toy scale)."""
    memory_pdf_pages: int
    memory_tiff_pages: int


SCALES = {
    "tiny": _Scale(pages=3, lines=8, memory_pdf_pages=20, memory_tiff_pages=10),
    "small": _Scale(pages=12, lines=36, memory_pdf_pages=100, memory_tiff_pages=40),
    "full": _Scale(pages=50, lines=36, memory_pdf_pages=500, memory_tiff_pages=200),
}


# --------------------------------------------------------------------------
# Pages


@dataclass(frozen=True)
class Page:
    """One rendered page as it is stored: JPEG bytes, or a 1-bit PNG for a bilevel page."""

    number: int
    kind: Kind
    dpi: int
    width: int
    height: int
    data: bytes
    text: str

    def pixels(self) -> Image.Image:
        """The page's pixels as stored (RGB, L, or 1)."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


def _kind(number: int) -> Kind:
    return KINDS[(number - 1) % len(KINDS)]


def _render_page(number: int, path: Path, *, lines: int) -> None:
    """Render page ``number`` with ``lines`` lines of text into ``path`` (+ ``.json``)."""
    kind = _kind(number)
    dpi = DPI[kind]
    size = (round(A4_MM[0] / 25.4 * dpi), round(A4_MM[1] / 25.4 * dpi))
    font_size = round(POINTS * dpi / 72)
    text = render.prose_lines(number, count=lines, width=size[0] - 2 * dpi, font_size=font_size)
    image, _ = render.page(
        text, size=size, origin=(dpi, dpi), font_size=font_size, background=PAPER
    )
    if kind == "colour":
        ImageDraw.Draw(image).rectangle(
            (size[0] - 2 * dpi, dpi // 3, size[0] - dpi, 2 * dpi // 3), fill=LETTERHEAD
        )
    blurred = image.filter(ImageFilter.GaussianBlur(BLUR_PIXELS_AT_300_DPI * dpi / 300))
    pixels = np.asarray(blurred).astype(np.float32)
    noise = np.random.default_rng(number).normal(0, NOISE_SIGMA, pixels.shape[:2])
    scan = Image.fromarray(np.clip(pixels + noise[..., np.newaxis], 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if kind == "bilevel":
        ink = np.asarray(scan.convert("L")) < INK_THRESHOLD
        Image.fromarray(~ink).convert("1").save(buffer, "PNG", dpi=(dpi, dpi))
    else:
        picture = scan if kind == "colour" else scan.convert("L")
        picture.save(buffer, "JPEG", quality=JPEG_QUALITY, dpi=(dpi, dpi))
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(buffer.getvalue())
    path.with_suffix(".json").write_text(json.dumps({"text": "\n".join(text)}))
    os.replace(temporary, path)


def _recipe_version() -> str:
    """Changes whenever the renderer or this page recipe does, so the cache is never stale."""
    recipe = repr((KINDS, DPI, A4_MM, POINTS, PAPER, LETTERHEAD, JPEG_QUALITY, NOISE_SIGMA))
    recipe += repr((BLUR_PIXELS_AT_300_DPI, INK_THRESHOLD))
    source = Path(render.__file__).read_bytes() + recipe.encode()
    return hashlib.sha256(source).hexdigest()[:12]


def rendered_pages(ctx: Context, count: int, lines: int) -> list[Page]:
    """Pages 1..``count``, rendered (in parallel) into the cache when missing."""
    folder = ctx.cache_dir / f"document-pages-{_recipe_version()}-{lines}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        number: folder / f"page-{number:05d}.{'png' if _kind(number) == 'bilevel' else 'jpg'}"
        for number in range(1, count + 1)
    }
    missing = [n for n, p in paths.items() if not (p.exists() and p.with_suffix(".json").exists())]
    if missing:
        ctx.log(f"documents: rendering {len(missing)} A4 page(s) into {folder} (cached)")
        workers = max(1, min(len(missing), os.cpu_count() or 1))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(partial(_render_page, lines=lines), missing, [paths[n] for n in missing]))
    pages = []
    for number, path in paths.items():
        kind = _kind(number)
        with Image.open(path) as image:
            width, height = image.size
        text = json.loads(path.with_suffix(".json").read_text())["text"]
        pages.append(Page(number, kind, DPI[kind], width, height, path.read_bytes(), text))
    return pages


# --------------------------------------------------------------------------
# Documents


def _jpeg_stream(pdf: pikepdf.Pdf, page: Page) -> pikepdf.Stream:
    """The page's own JPEG bytes as an image XObject (no second encode)."""
    return pikepdf.Stream(
        pdf,
        page.data,
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=page.width,
        Height=page.height,
        ColorSpace=pikepdf.Name.DeviceGray if page.kind == "grey" else pikepdf.Name.DeviceRGB,
        BitsPerComponent=8,
        Filter=pikepdf.Name.DCTDecode,
    )


def _flate_rows(page: Page) -> bytes:
    """A bilevel page's rows packed as PDF's 1-bit grey wants them (1 is white), compressed."""
    ink = np.asarray(page.pixels().convert("L")) < INK_THRESHOLD
    return zlib.compress(np.packbits(~ink, axis=1).tobytes(), 6)


def write_pdf(path: Path, pages: Sequence[Page], count: int) -> Path:
    """A PDF of ``count`` image pages cycling through ``pages``; each page its own image object."""
    flate = {page.number: _flate_rows(page) for page in pages if page.kind == "bilevel"}
    pdf = pikepdf.new()
    for index in range(count):
        page = pages[index % len(pages)]
        if page.kind == "bilevel":
            picture = pdfs.bilevel_stream(
                pdf, flate[page.number], width=page.width, height=page.height
            )
        else:
            picture = _jpeg_stream(pdf, page)
        pdfs.add_image_page(pdf, picture, dpi=page.dpi)
    pdf.save(path, deterministic_id=True)
    return path


def write_tiff(path: Path, pages: Sequence[Page], count: int) -> Path:
    """A multi-page TIFF of ``count`` pages cycling through ``pages``: G4 or JPEG per page.

    Pillow's ``save_all`` gives every frame the same compression and holds all
    of them in memory; its appending writer, which ``save_all`` uses, lets
    each page have its own and takes one page at a time.
    """
    with TiffImagePlugin.AppendingTiffWriter(str(path), new=True) as tiff:
        for index in range(count):
            page = pages[index % len(pages)]
            image = page.pixels()
            options: dict[str, Any] = {"dpi": (page.dpi, page.dpi)}
            if page.kind == "bilevel":
                options["compression"] = "group4"
            else:
                options.update(compression="jpeg", quality=JPEG_QUALITY)
            image.save(tiff, "TIFF", **options)
            tiff.newFrame()
    return path


def _write_png(page: Page, path: Path) -> None:
    page.pixels().save(path, "PNG", compress_level=PNG_COMPRESSION, dpi=(page.dpi, page.dpi))


def write_pngs(folder: Path, pages: Sequence[Page]) -> list[Path]:
    """Each page's stored pixels as a PNG, the PDF's pixels exactly."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"page-{page.number:05d}.png" for page in pages]
    with ProcessPoolExecutor(max_workers=max(1, min(len(pages), CPUS))) as pool:
        list(pool.map(_write_png, pages, paths))
    return paths


# --------------------------------------------------------------------------
# Running a reader


def reader_cpus() -> list[int]:
    """The CPUs a reader may use: the first ``CPUS`` of ours."""
    return sorted(os.sched_getaffinity(0))[:CPUS]


def _tree_rss_kib(root: int) -> int:
    """VmRSS summed over ``root`` and its descendants (0 for a process that is gone)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields.get("PPid", "0").strip() or 0)
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in tree)


@dataclass(frozen=True)
class Run:
    """One reader process: how long it took, how it ended, its memory."""

    seconds: float
    returncode: int
    max_rss_kib: int
    """``ru_maxrss`` of the reader as :mod:`benchmarks.peak` saw it: its largest single process."""
    tree_peak_kib: int
    """The largest sum of VmRSS over the process tree, sampled every 50 ms."""

    @property
    def peak_mb(self) -> float:
        return max(self.max_rss_kib, self.tree_peak_kib) * 1024 / 1e6


def run_measured(
    command: Sequence[str], *, log: Path, timeout: float, env: dict[str, str] | None = None
) -> Run:
    """Run ``command`` on :func:`reader_cpus`; its wall time and peak memory.

    Raises RuntimeError when it runs past ``timeout`` (it is killed).
    """
    cpus = reader_cpus()
    peak = 0
    done = threading.Event()
    report = log.with_suffix(".peak.json")
    with log.open("ab") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.peak", str(report), *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env if env is not None else child_env(),
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            start_new_session=True,
        )

        def sample() -> None:
            nonlocal peak
            while not done.wait(SAMPLE_SECONDS):
                peak = max(peak, _tree_rss_kib(process.pid))

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        # Its own session, so that a run past the timeout is stopped with its children.
        killer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
        killer.start()
        try:
            # The launcher's own usage counts the benchmark's memory at the fork: unused.
            _, status, _ = os.wait4(process.pid, 0)
        finally:
            seconds = time.perf_counter() - started
            killer.cancel()
            done.set()
            sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if seconds >= timeout:
        raise RuntimeError(f"{command[0]} ran past {timeout:g} s and was killed; log {log}")
    reader_kib = int(json.loads(report.read_text())["max_rss_kib"])
    return Run(seconds, process.returncode, reader_kib, peak)


def once_run(
    ctx: Context,
    folder: Path,
    *,
    engine: str,
    name: str,
    server: Server | None = None,
    timeout: float,
    inbox_options: dict[str, Any] | None = None,
) -> Run:
    """``ocrwatch once`` over ``folder`` (an inbox of its own, with ``inbox_options``) with a
    fresh state folder. Raises RuntimeError when it exits with a failure."""
    work = ctx.folder(NAME, "runs", name)
    config = daemon_config(
        [folder],
        state_dir=work / "state",
        endpoint=server.url if server is not None else None,
        engine=engine,
        inbox_options=inbox_options,
    )
    config_path = write_config(work / "config.yaml", config)
    env = child_env(OCRSPACE_API_KEY=API_KEY, XDG_STATE_HOME=str(work / "xdg-state"))
    command = [sys.executable, "-m", "ocrwatch", "once", "-c", str(config_path), str(folder)]
    log = work / "once.log"
    run = run_measured(command, log=log, timeout=timeout, env=env)
    if run.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ocrwatch once ({name}) exited {run.returncode}; log {log}:\n{tail}")
    return run


def _once_served(
    ctx: Context, folder: Path, *, latency: float, name: str, timeout: float
) -> tuple[Run, int | None]:
    """:func:`once_run` with the ocr.space engine against a server of its own answering after
    ``latency``; the run and the requests the server counted."""
    with Server(ctx.folder(NAME), latency=latency, name=f"server-{name}") as server:
        run = once_run(ctx, folder, engine="ocrspace", server=server, name=name, timeout=timeout)
        return run, server.stop()


def read_record(document: Path, pages: int) -> dict[str, Any]:
    """The document's ``.json``, checked to be a finished read of every page."""
    record_path = document.with_name(document.name + ".json")
    if not record_path.exists():
        raise RuntimeError(f"no {record_path.name}: ocrwatch does not read this document yet")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    found = (record.get("schema_version"), record.get("status"), len(record.get("pages", [])))
    if found != (SCHEMA_VERSION, "done", pages):
        raise RuntimeError(
            f"{record_path.name}: schema, status, pages {found}, "
            f"expected ({SCHEMA_VERSION}, 'done', {pages})"
        )
    return record


def _page_texts(record: dict[str, Any]) -> list[str]:
    return [str(page.get("text", "")) for page in record["pages"]]


# --------------------------------------------------------------------------
# OCRmyPDF


@dataclass(frozen=True)
class Ocrmypdf:
    """OCRmyPDF on this machine, and how to make a PDF of a TIFF should it refuse one."""

    program: str
    version: str
    img2pdf: list[str] | None
    """``img2pdf`` as a program, or as the module beside OCRmyPDF (which depends on it)."""


@dataclass(frozen=True)
class BaselineRead:
    """What the baseline made of one document: its run (None if it could not), texts, label."""

    run: Run | None
    texts: list[str]
    label: str


def find_ocrmypdf() -> Ocrmypdf | None:
    """``ocrmypdf`` on ``PATH``, or None; it is never installed from here."""
    program = shutil.which("ocrmypdf")
    if program is None:
        return None
    result = subprocess.run(
        [program, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
    )
    version = result.stdout.strip().split("+")[0] or "(unknown version)"
    img2pdf = shutil.which("img2pdf")
    if img2pdf is not None:
        return Ocrmypdf(program, version, [img2pdf])
    with open(program, "rb") as handle:
        first = handle.readline().decode(errors="replace")
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") else ""
    if interpreter and os.path.exists(interpreter):
        probe = subprocess.run(
            [interpreter, "-c", "import img2pdf"],
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
        if probe.returncode == 0:
            return Ocrmypdf(program, version, [interpreter, "-m", "img2pdf"])
    return Ocrmypdf(program, version, None)


def _baseline_env() -> dict[str, str]:
    """Ours, without the variables that would point Tesseract at ocrwatch's model or threads."""
    return {
        key: value
        for key, value in child_env().items()
        if key not in ("TESSDATA_PREFIX", "OMP_THREAD_LIMIT")
    }


def _ocrmypdf_once(ocrmypdf: Ocrmypdf, source: Path, folder: Path, *, timeout: float) -> Run:
    sidecar = folder / "out.txt"
    command = [
        ocrmypdf.program,
        "--force-ocr",
        "-j",
        str(len(reader_cpus())),
        "--sidecar",
        str(sidecar),
        str(source),
        str(folder / "out.pdf"),
    ]
    return run_measured(command, log=folder / "ocrmypdf.log", timeout=timeout, env=_baseline_env())


def read_with_ocrmypdf(
    ocrmypdf: Ocrmypdf | None, document: Path, folder: Path, *, pages: int
) -> BaselineRead:
    """OCRmyPDF over ``document``, whole process; a TIFF it refuses goes through img2pdf first.

    Raises RuntimeError when it fails on a PDF, or on a TIFF made a PDF.
    """
    if ocrmypdf is None:
        return BaselineRead(None, [], OCRMYPDF_MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    timeout = 300 + 60 * pages
    label = f"OCRmyPDF {ocrmypdf.version} --force-ocr -j {len(reader_cpus())}, whole process"
    run = _ocrmypdf_once(ocrmypdf, document, folder, timeout=timeout)
    if run.returncode == OCRMYPDF_INPUT_ERROR and document.suffix == ".tif":
        if ocrmypdf.img2pdf is None:
            return BaselineRead(None, [], TIFF_WITHOUT_IMG2PDF)
        source = folder / f"{document.stem}.pdf"
        made = run_measured(
            [*ocrmypdf.img2pdf, "-o", str(source), str(document)],
            log=folder / "img2pdf.log",
            timeout=timeout,
            env=_baseline_env(),
        )
        if made.returncode != 0:
            raise RuntimeError(f"img2pdf exited {made.returncode}; log {folder / 'img2pdf.log'}")
        run = _ocrmypdf_once(ocrmypdf, source, folder, timeout=timeout)
        run = dataclasses.replace(
            run,
            seconds=made.seconds + run.seconds,
            max_rss_kib=max(made.max_rss_kib, run.max_rss_kib),
            tree_peak_kib=max(made.tree_peak_kib, run.tree_peak_kib),
        )
        label = f"img2pdf, then {label}"
    if run.returncode != 0:
        tail = (folder / "ocrmypdf.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ocrmypdf exited {run.returncode}; log in {folder}:\n{tail}")
    texts = (folder / "out.txt").read_text(encoding="utf-8", errors="replace").split("\f")
    return BaselineRead(run, texts[:pages], label)


# --------------------------------------------------------------------------
# The measurement


@dataclass
class _Measured:
    """Everything one run found, by document: ``pdf``, ``tiff``, ``png`` (the PDF's pages as files)."""

    scale: _Scale
    cpus: int
    truths: list[str]
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    local: dict[str, Run] = dataclasses.field(default_factory=dict)
    baseline: dict[str, BaselineRead] = dataclasses.field(default_factory=dict)
    remote: dict[str, Run] = dataclasses.field(default_factory=dict)
    memory: dict[str, Run] = dataclasses.field(default_factory=dict)
    requests: dict[str, int | None] = dataclasses.field(default_factory=dict)
    texts: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def run(ctx: Context) -> list[Row]:
    scale = SCALES[ctx.size_name]
    pages = rendered_pages(ctx, scale.pages, scale.lines)
    ocrmypdf = find_ocrmypdf()
    measured = _Measured(scale, len(reader_cpus()), [page.text for page in pages])
    ctx.log(
        f"documents: {scale.pages}-page PDF and TIFF, {measured.cpus} CPU(s) per reader; "
        + (f"OCRmyPDF {ocrmypdf.version}" if ocrmypdf else "OCRmyPDF missing")
    )
    timed = {
        "pdf": write_pdf(ctx.folder(NAME, "local-pdf") / "scan.pdf", pages, scale.pages),
        "tiff": write_tiff(ctx.folder(NAME, "local-tiff") / "scan.tif", pages, scale.pages),
    }
    pngs = write_pngs(ctx.folder(NAME, "local-png"), pages)
    measured.sizes = {kind: path.stat().st_size for kind, path in timed.items()}
    _read_locally(ctx, measured, timed, pngs, ocrmypdf)
    _read_remotely(ctx, measured, timed)
    _measure_memory(ctx, measured, pages)
    return _rows(measured)


def _read_locally(
    ctx: Context,
    measured: _Measured,
    timed: dict[str, Path],
    pngs: list[Path],
    ocrmypdf: Ocrmypdf | None,
) -> None:
    """ocrwatch's local engine and OCRmyPDF, alternating per document; then the PNG pages."""
    count = measured.scale.pages
    timeout = 120 + 20 * count
    for kind, document in timed.items():
        ctx.log(f"documents: ocrwatch once, local engine, {count}-page {kind}")
        run = once_run(
            ctx, document.parent, engine="tesseract", name=f"local-{kind}", timeout=timeout
        )
        measured.local[kind] = run
        measured.texts[kind] = _page_texts(read_record(document, count))
        ctx.log(f"documents: {count / run.seconds:.3g} pages/s; OCRmyPDF, {kind}")
        read = read_with_ocrmypdf(
            ocrmypdf, document, ctx.folder(NAME, "ocrmypdf", kind), pages=count
        )
        measured.baseline[kind] = read
        if read.run is not None:
            measured.texts[f"ocrmypdf-{kind}"] = read.texts
            ctx.log(f"documents: OCRmyPDF {count / read.run.seconds:.3g} pages/s")
    ctx.log(f"documents: ocrwatch once, local engine, the PDF's {count} pages as PNG files")
    folder = pngs[0].parent
    measured.local["png"] = once_run(
        ctx, folder, engine="tesseract", name="local-png", timeout=timeout
    )
    measured.texts["png"] = [
        png.with_name(png.name + ".txt").read_text(encoding="utf-8") for png in pngs
    ]


def _read_remotely(ctx: Context, measured: _Measured, timed: dict[str, Path]) -> None:
    """ocr.space against a server answering after :data:`SERVER_LATENCY`; one server per document."""
    count = measured.scale.pages
    for kind, document in timed.items():
        folder = ctx.folder(NAME, f"ocrspace-{kind}")
        link_or_copy(document, folder / document.name)
        ctx.log(f"documents: ocrwatch once, ocr.space (server {SERVER_LATENCY:g} s), {kind}")
        measured.remote[kind], measured.requests[kind] = _once_served(
            ctx, folder, latency=SERVER_LATENCY, name=f"ocrspace-{kind}", timeout=120 + 10 * count
        )
        read_record(folder / document.name, count)


def _measure_memory(ctx: Context, measured: _Measured, pages: list[Page]) -> None:
    """Peak memory of ``ocrwatch once`` over a long PDF, then a long TIFF (ocr.space, server 0 s)."""
    for kind, count in _long(measured.scale).items():
        folder = ctx.folder(NAME, f"memory-{kind}")
        if kind == "pdf":
            document = write_pdf(folder / "long.pdf", pages, count)
        else:
            document = write_tiff(folder / "long.tif", pages, count)
        measured.sizes[f"memory-{kind}"] = document.stat().st_size
        ctx.log(
            f"documents: peak memory, {count}-page {kind} ({document.stat().st_size / 1e6:.0f} MB)"
        )
        run, measured.requests[f"memory-{kind}"] = _once_served(
            ctx, folder, latency=0.0, name=f"memory-{kind}", timeout=300 + 2 * count
        )
        measured.memory[kind] = run
        read_record(document, count)
        ctx.log(f"documents: peak {run.peak_mb:.0f} MB in {run.seconds:.1f} s")
        document.unlink()


def _long(scale: _Scale) -> dict[str, int]:
    return {"pdf": scale.memory_pdf_pages, "tiff": scale.memory_tiff_pages}


# --------------------------------------------------------------------------
# Rows


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _mean_cer(texts: Sequence[str], truths: Sequence[str]) -> float:
    return _mean([cer(text, truth) for text, truth in zip(texts, truths, strict=True)])


def _rate(pages: int, run: Run | None) -> float | None:
    return None if run is None else pages / run.seconds


def _rows(measured: _Measured) -> list[Row]:
    return [
        *_speed_rows(measured),
        _requests_row(measured),
        *_memory_rows(measured),
        *_accuracy_rows(measured),
    ]


def _speed_rows(measured: _Measured) -> list[Row]:
    count, cpus = measured.scale.pages, measured.cpus
    label = {"pdf": f"{count}-page scanned PDF", "tiff": f"{count}-page multi-page TIFF"}
    stored = {"pdf": "DCT / 1-bit Flate images", "tiff": "JPEG / G4 frames"}
    rows = []
    for kind in ("pdf", "tiff"):
        read = measured.baseline[kind]
        notes = (
            f"{measured.sizes[kind] / 1e6:.1f} MB; pages cycle colour 200 dpi, grey 300 dpi, "
            f"bilevel 300 dpi ({stored[kind]}), {measured.scale.lines} lines each; each side a "
            f"whole process on {cpus} CPU(s)"
        )
        if kind == "pdf":
            png_rate = _rate(count, measured.local["png"])
            notes += f"; the same pages as {count} PNG files: {png_rate:.3g} pages/s"
        notes += f"; peak memory: ocrwatch {measured.local[kind].peak_mb:.0f} MB"
        if read.run is not None:
            notes += f", OCRmyPDF {read.run.peak_mb:.0f} MB (its process tree)"
        rows.append(
            Row(
                NAME,
                f"documents: local engine, {label[kind]}",
                _rate(count, measured.local[kind]),
                "pages/s",
                baseline=_rate(count, read.run),
                baseline_label=read.label,
                notes=notes,
                details={
                    "seconds": measured.local[kind].seconds,
                    "baseline_seconds": None if read.run is None else read.run.seconds,
                    "png_seconds": measured.local["png"].seconds,
                    "bytes": measured.sizes[kind],
                },
            )
        )
    in_flight = min(OCRSPACE_WORKERS, count)
    for kind in ("pdf", "tiff"):
        rows.append(
            Row(
                NAME,
                f"documents: ocr.space (server {SERVER_LATENCY:g} s), {label[kind]}",
                _rate(count, measured.remote[kind]),
                "pages/s",
                baseline=in_flight / SERVER_LATENCY,
                baseline_label=f"ideal: {in_flight} requests in flight ÷ latency",
                notes="`ocrwatch once`, start-up included" if kind == "pdf" else "",
                details={"seconds": measured.remote[kind].seconds},
            )
        )
    return rows


def _requests_row(measured: _Measured) -> Row:
    count = measured.scale.pages
    expected = {"pdf": count, "tiff": count}
    expected.update({f"memory-{kind}": pages for kind, pages in _long(measured.scale).items()})
    counted = [measured.requests.get(key) for key in expected]
    sent = None if None in counted else float(sum(n or 0 for n in counted))
    return Row(
        NAME,
        "documents: ocr.space requests at the server, all four documents",
        sent,
        "count",
        baseline=float(sum(expected.values())),
        baseline_label="pages",
        target=_Equal("<=", 0.0, on="delta", text="= pages"),
        notes=", ".join(
            f"{key} {measured.requests.get(key)}/{pages}" for key, pages in expected.items()
        ),
        details={"requests": measured.requests, "pages": expected},
    )


def _memory_rows(measured: _Measured) -> list[Row]:
    rows = []
    for kind, pages in _long(measured.scale).items():
        run = measured.memory[kind]
        what = "PDF" if kind == "pdf" else "TIFF of A4 pages"
        rows.append(
            Row(
                NAME,
                f"documents: peak memory, `ocrwatch once` on a {pages}-page {what}",
                run.peak_mb,
                "MB",
                target=Target("<=", RSS_TARGET_MB, text=f"< {RSS_TARGET_MB:.0f} MB"),
                notes=(
                    f"file {measured.sizes[f'memory-{kind}'] / 1e6:.0f} MB; ocr.space engine, "
                    f"server 0 s, {run.seconds:.1f} s; ru_maxrss {run.max_rss_kib / 1024:.0f} MiB, "
                    f"process tree sampled {run.tree_peak_kib / 1024:.0f} MiB"
                ),
                details={"run": dataclasses.asdict(run), "bytes": measured.sizes[f"memory-{kind}"]},
            )
        )
    return rows


def _accuracy_rows(measured: _Measured) -> list[Row]:
    count = measured.scale.pages
    truth = {key: _mean_cer(texts, measured.truths) for key, texts in measured.texts.items()}
    read = measured.baseline["pdf"]
    return [
        Row(
            NAME,
            f"documents: local engine CER, PDF pages against the same pages as PNG (n={count})",
            _mean_cer(measured.texts["pdf"], measured.texts["png"]),
            "",
            notes="mean over pages; mean CER against the ground truth: "
            + ", ".join(f"{key} {value:.4f}" for key, value in truth.items()),
            details={"against_truth": truth},
        ),
        Row(
            NAME,
            f"documents: local engine CER against the ground truth, PDF pages (n={count})",
            truth["pdf"],
            "",
            baseline=truth.get("ocrmypdf-pdf"),
            baseline_label="OCRmyPDF's sidecar" if read.run is not None else read.label,
        ),
    ]


class _Equal(Target):
    """A bound met only when the value equals the baseline."""

    def met(self, row: Row) -> bool | None:
        if row.value is None or row.baseline is None:
            return None
        return row.value == row.baseline
