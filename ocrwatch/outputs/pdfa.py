"""Saving the searchable PDF: as PDF/A-2b, validated as it is written, or as a plain PDF.

PDF/A is pikepdf's :mod:`pikepdf.pdfa`. ``prepare`` adds what the standard
asks of the document as a whole (an sRGB output intent from the ICC profile
pikepdf ships, XMP metadata declaring PDF/A-2b, annotation flags) and
``save`` writes the file beside the target, validates those very bytes and
only then moves them into place. What it cannot fix (a font the input did
not embed, encryption, constructs its validator does not check such as
patterns and shadings) comes back as findings, which :func:`summary` turns
into the one line the ``.json`` records. Since preparing changed the
document (output intents replaced, hidden annotations removed), the caller
builds the plain PDF afresh rather than saving the prepared one.

It owns the saves and the verdict; it does not build pages or text
(``searchable``) or decide what a failure means (``on_pdfa_failure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrwatch.errors import OutputError

if TYPE_CHECKING:
    import pikepdf
    from pikepdf.pdfa import Report

FLAVOUR = "2b"
MAX_FINDINGS_TOLD = 3
"""Findings quoted in ``pdfa_error``; the rest are counted."""


class PdfOutputError(OutputError):
    """The searchable PDF was not written: PDF/A failed under ``fail``, or the file itself.

    A file that could not be written may be written later (``output``); a
    document that cannot be PDF/A, or a machine without the ``pdf`` extra,
    never will be (``bad_input``).
    """

    def __init__(self, message: str, *, for_good: bool = False) -> None:
        super().__init__(message)
        if for_good:
            self.classification = "bad_input"


def save_pdfa(pdf: pikepdf.Pdf, target: Path) -> str | None:
    """Prepare ``pdf`` for PDF/A-2b and write it to ``target`` if it validates; else why not.

    Nothing is written when it does not validate. Raises PdfOutputError when
    the file cannot be written.
    """
    import pikepdf
    from pikepdf import pdfa

    if pdf.is_encrypted:
        return "the input PDF is encrypted, and PDF/A forbids encryption"
    try:
        _stamp(pdf)
        pdfa.save(pdf, target, FLAVOUR, **_save_options())
    except pdfa.PdfaError as error:
        return summary(error.report)
    except ValueError as error:
        return f"pikepdf cannot prepare it for PDF/A: {error}"
    except (OSError, pikepdf.PdfError) as error:
        raise PdfOutputError(f"the searchable PDF could not be written: {error}") from error
    return None


def save_plain(pdf: pikepdf.Pdf, target: Path) -> None:
    """Write ``pdf`` to ``target`` as it is; an encrypted input keeps its encryption and passwords.

    Raises PdfOutputError when the file cannot be written.
    """
    import pikepdf

    try:
        _stamp(pdf)
        pdf.save(target, encryption=pdf.is_encrypted, **_save_options())
    except (OSError, pikepdf.PdfError) as error:
        raise PdfOutputError(f"the searchable PDF could not be written: {error}") from error


def summary(report: Report) -> str:
    """The findings of a failed validation in one line: how many, and the first few."""
    findings = report.findings
    told = "; ".join(
        f"{finding.rule} at {finding.where}: {finding.message}"
        for finding in findings[:MAX_FINDINGS_TOLD]
    )
    more = len(findings) - MAX_FINDINGS_TOLD
    counts = f"{len(report.violations)} violation(s), {len(report.unsupported)} not checkable"
    return f"{counts}: {told}" + (f"; and {more} more" if more > 0 else "")


def _stamp(pdf: pikepdf.Pdf) -> None:
    """Name ocrwatch as the producer (in the XMP and the document information alike, as PDF/A
    wants), and as the creating tool of a PDF it built from images."""
    from ocrwatch import __version__

    with pdf.open_metadata(set_pikepdf_as_editor=False) as metadata:
        metadata["pdf:Producer"] = f"ocrwatch {__version__}"
        if "xmp:CreatorTool" not in metadata:
            metadata["xmp:CreatorTool"] = f"ocrwatch {__version__}"


def _save_options() -> dict[str, Any]:
    """Settings of both saves: streams already compressed are written as they are, byte for byte."""
    import pikepdf

    return {
        "compress_streams": True,
        "recompress_flate": False,
        "object_stream_mode": pikepdf.ObjectStreamMode.generate,
    }
