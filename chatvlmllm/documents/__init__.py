"""Documents: uploaded bytes → pages, and everything read from a page.

- `loading`: sniff and open images, multi-page TIFF and PDF; render one page at a time within pixel bounds.
- `layout`: the layout structure document models answer with (elements, boxes, tables), mapped onto the page.
- `markup`: model output formats (DocTags, grounding tags) parsed into that layout structure.
- `reading_order`: OCR text boxes → lines in reading order (columns, receipts).
- `search`: find text in a page's lines.
- `ocr_cache`: OCR results per page, in memory and in the database.
- `text_layer`, `layer_check`, `lexicon`: a PDF page's own text layer with line boxes, and whether to trust it.
- `index`, `reading`, `citations`: every page read once (a background job that resumes), a full-text index per
  document, retrieval, the extractive answer and the citation checker.

Imports nothing above it (no models, engines or chat).
"""
