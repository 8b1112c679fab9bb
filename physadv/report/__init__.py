"""The run report: Kurakin-style tables, plots and a gallery, as one self-contained HTML file and a PDF.

:func:`write_report` is the entry point. The content is built once (:mod:`physadv.report.content`)
and rendered twice (:mod:`physadv.report.html`, :mod:`physadv.report.pdf`), so both files always show
the same numbers. This package is the top floor: nothing in physadv's core imports it.
"""

from __future__ import annotations

from pathlib import Path

from physadv.fileio import atomic_write_bytes, atomic_write_text
from physadv.report.content import GalleryItem, ReportData, ReportFiles, build_report
from physadv.report.html import render_html
from physadv.report.pdf import render_pdf

__all__ = ["GalleryItem", "ReportData", "ReportFiles", "write_report"]


def write_report(data: ReportData, out_dir: Path) -> ReportFiles:
    """Write ``out_dir/report.html`` and ``out_dir/report.pdf`` (each atomically) and return their paths."""
    out_dir = Path(out_dir)
    report = build_report(data)
    files = ReportFiles(html=out_dir / "report.html", pdf=out_dir / "report.pdf")
    atomic_write_text(files.html, render_html(report))
    atomic_write_bytes(files.pdf, render_pdf(report))
    return files
