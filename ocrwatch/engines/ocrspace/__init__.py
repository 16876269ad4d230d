"""The ocr.space engine: :mod:`.client` fits uploads, sends them and retries; :mod:`.answer` reads
every answer shape the API returns. Importing this package loads neither."""
