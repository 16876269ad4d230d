"""``python -m ocrwatch``: the same as the ``ocrwatch`` command."""

from ocrwatch.cli import console

console()
