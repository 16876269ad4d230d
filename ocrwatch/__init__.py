"""ocrwatch: a hot-folder OCR daemon."""

__version__ = "0.1.0"
