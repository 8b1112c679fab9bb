"""Reading sheet PDFs back: page sizes and renders (pypdfium2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pypdfium2 as pdfium

from physadv.errors import InputError

MM_PER_PT = 25.4 / 72


def open_pdf(path: str | Path) -> pdfium.PdfDocument:
    """Open a PDF; raise :class:`InputError` when it is missing or not a PDF."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (physadv print writes DIR/sheets.pdf)")
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        raise InputError(f"{path}: not a readable PDF ({error})") from None


def page_size_mm(document: pdfium.PdfDocument, index: int) -> tuple[float, float]:
    """(width, height) of page ``index`` in millimetres."""
    width, height = document[index].get_size()
    return width * MM_PER_PT, height * MM_PER_PT


def render_page(document: pdfium.PdfDocument, index: int, dpi: float, smooth_images: bool = True) -> np.ndarray:
    """Render page ``index`` at ``dpi`` as ``(H, W, 3)`` uint8 RGB.

    The bitmap is ``ceil(page size × dpi / 72)`` pixels and the page is stretched onto it exactly, so
    page millimetres ``(x, y)`` land at continuous pixel coordinates ``(x · W / width_mm, y · H / height_mm)``
    (pixel edges at integers). ``smooth_images=False`` scales embedded images by pixel replication, as a
    printer does, instead of interpolating them.
    """
    bitmap = document[index].render(scale=dpi / 72, no_smoothimage=not smooth_images, rev_byteorder=True)
    return np.ascontiguousarray(bitmap.to_numpy()[..., :3])
