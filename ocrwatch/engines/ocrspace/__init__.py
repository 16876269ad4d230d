"""The ocr.space engine: :mod:`.client` sends uploads and retries; :mod:`.answer` reads what comes back."""

from ocrwatch.engines.ocrspace.client import OcrSpaceEngine, upload_name

__all__ = ["OcrSpaceEngine", "upload_name"]
