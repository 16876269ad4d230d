"""The local engine: :mod:`.engine` runs Tesseract in process (tesserocr, one API per thread);
:mod:`.preprocess` prepares pages for it (flattening, polarity, deskew); :mod:`.languages` maps
language codes to the data files it needs. Importing this package loads none of them."""
