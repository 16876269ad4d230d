"""Image bytes in, upright pixels out; pixels in, an upload that fits a byte budget out.

Three jobs, a module each:

* :mod:`.containers`: what the bytes are (format, size, frames, orientation),
  decompression bombs refused from the header, half-written files told from
  broken ones, with frames and pages counted by :mod:`.frames` from the
  container's structure;
* :mod:`.decoding`: the first frame as upright uint8 pixels;
* :mod:`.upload`: the file's own bytes when they fit (:class:`Upload`), else
  :mod:`.fitting`: the smallest faithful encode under the budget.

OpenCV and numpy load with :mod:`.decoding` and :mod:`.fitting`, on first use
(``imaging.decode``, ``imaging.has_colour``, or a fit that needs an
encode): a JPEG sent to ocr.space as it is never loads them, which is a
fifth of a short ``ocrwatch once``'s start-up.

It deliberately knows nothing of files on disk, configs or engines: callers
hand it bytes and limits and get arrays, :class:`ImageInfo` and
:class:`Upload` back.
"""

from typing import TYPE_CHECKING, Any

from ocrwatch.imaging.containers import SUPPORTED_FORMATS, ImageInfo, probe, verify
from ocrwatch.imaging.upload import Upload, fit_upload, sendable

if TYPE_CHECKING:
    from ocrwatch.imaging.decoding import DecodedImage, decode
    from ocrwatch.imaging.fitting import has_colour

_LATER = {"DecodedImage": "decoding", "decode": "decoding", "has_colour": "fitting"}
"""Names whose modules load OpenCV and numpy: imported when first asked for."""


def __getattr__(name: str) -> Any:
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LATER[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "ImageInfo",
    "Upload",
    "decode",
    "fit_upload",
    "has_colour",
    "probe",
    "sendable",
    "verify",
]
