"""``python -m ocrwatch``: the same as the ``ocrwatch`` command."""

import sys

from ocrwatch.cli import main

sys.exit(main())
