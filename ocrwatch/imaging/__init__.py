"""Image bytes in, upright pixels out; pixels in, an upload that fits a byte budget out.

Three jobs, a module each:

* :mod:`.containers`: what the bytes are (format, size, frames, orientation),
  decompression bombs refused from the header, half-written files told from
  broken ones, with frames and pages counted by :mod:`.frames` from the
  container's structure;
* :mod:`.decode`: the first frame as upright uint8 pixels;
* :mod:`.upload`: the file's own bytes when they fit, else the smallest
  faithful encode under the budget (:class:`Upload`).

It deliberately knows nothing of files on disk, configs or engines: callers
hand it bytes and limits and get arrays, :class:`ImageInfo` and
:class:`Upload` back.
"""

from ocrwatch.imaging.containers import SUPPORTED_FORMATS, ImageInfo, probe
from ocrwatch.imaging.decode import DecodedImage, decode, verify
from ocrwatch.imaging.upload import Upload, fit_upload, has_colour, sendable

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
