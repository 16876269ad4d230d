"""The local engine: :mod:`.engine` runs Tesseract in process (tesserocr, one API per thread);
:mod:`.preprocess` prepares pages for it (flattening, polarity, deskew); :mod:`.languages` maps
language codes to the data files it needs; :mod:`.osd` finds a page's orientation, for the
engine's pages that read unsure and to send ocr.space pages upright. Importing this package loads none of them."""
