"""Printable sheets: images on a pixel-exact grid, ArUco corner markers, QR codes and a manifest.

Page layout (millimetres, origin top-left, y down; see :mod:`physadv.printouts.manifest`)::

    +-------------------------------------------------------+
    | [ArUco TL] [QR] title: run, page         [ArUco TR]  |  top band, marker_mm tall
    |                                                       |
    |        +-------+  +-------+                           |
    |        | clean |  |  adv  |   columns x rows cells,   |
    |        +-------+  +-------+   a two-line label under  |
    |        label      label       each image              |
    |                                                       |
    | [ArUco BL] 50-mm bar, instructions  [QR] [ArUco BR]  |  bottom band
    +-------------------------------------------------------+

Pixel rule. Every image pixel is printed as a square of ``j/4`` pt (``j`` a whole number, so the
layout dpi is ``288/j``: 288, 144, 96, 72, 57.6, ...), chosen as the pitch closest to ``cell_mm``
divided by the largest image's side (or to the ``dpi`` asked for) among those that render exactly
(a few, such as j = 7, make pdfium stretch the page by a pixel). Images are never resampled in
the PDF; the page size and every image's position are whole multiples of the pitch, the page
size rounded to the nearest one (A4 at 96 dpi is 210.08 × 297.13 mm, inside paper tolerances).
So a renderer working at the layout dpi puts each image pixel on exactly one device pixel.

Markers: one ArUco ``DICT_4X4_1000`` marker per page corner, inside the margin, with ids from
:func:`physadv.printouts.manifest.marker_ids` (page identity at webcam resolution); an identity code
(:func:`physadv.printouts.manifest.identity_bits`, 50 bits, two 10 × 5-module blocks beside the
top-right and bottom-left markers) that capture must read before it crops; one QR code beside the
top-left and one beside the bottom-right marker with :func:`physadv.printouts.manifest.qr_payload`
(for phones and people). All are vector squares, crisp at any printer resolution.

Reference dots (:class:`physadv.printouts.manifest.ReferenceDot`): solid black discs of
:data:`DOT_MM` in the gutters between cells and around the grid (at each row's middle and between
rows, in every column gutter and beside the outer columns where there is room), each kept only where
a white zone of at least :data:`DOT_MM`/2 + :data:`DOT_RING_MM` around it touches no cell, label,
band or margin. Capture locates them to model a page that is not flat. Vector circles too.
"""

from __future__ import annotations

import io
import math
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from physadv.attackset import ADV_DIR, CLEAN_DIR, read_attack_set
from physadv.catalog import PAPERS_MM
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes
from physadv.images import pixel_sha256, read_rgb
from physadv.printouts.manifest import (
    ARUCO_DICTIONARY,
    CORNERS,
    MAX_PAGES,
    Cell,
    CellKind,
    IdentityBlock,
    Manifest,
    Marker,
    Page,
    QRCode,
    ReferenceDot,
    box_distance_mm,
    identity_bits,
    identity_modules,
    marker_ids,
    qr_payload,
    sheet_title,
    write_manifest,
)
from physadv.printouts.pdf import MM_PER_PT
from physadv.validation import check_run_id

SHEETS_FILE, MANIFEST_FILE = "sheets.pdf", "manifest.json"
QUARTER_PT_MM = MM_PER_PT / 4
MARKER_BITS = 6  # 4×4 data bits plus a one-bit black border
LABEL_MM = 8.0  # two lines of 6.5-pt text under each image
GAP_MM = 4.0  # between bands, markers, QR codes and columns; above a marker's one-bit quiet zone
SCALE_BAR_MM = 50.0
# Identity code: two blocks of 10 × 5 modules, each as tall as a marker (4-mm modules with 20-mm
# markers: ≥ 3 px per module on a 720p frame where the page fills 40 %), one beside the top-right
# and one beside the bottom-left marker, where the corner markers pin the geometry best.
IDENTITY_GRID = (10, 5)
MIN_TEXT_MM = 50.0
# Reference dots: 2.2 mm discs fit a 4-mm gutter with a 0.8-mm white ring. Where the page fills 40 %
# of the frame height a dot spans ≥ 1.6 px at 720p, ≥ 3.2 px at 1080p and ≥ 8.8 px at 12 MP; the
# white zone around it, 2 mm in a gutter, is what capture matches against (DOT_CLEAR_MAX_MM at most).
DOT_MM = 2.2
DOT_RING_MM = 0.8
DOT_CLEAR_MAX_MM = 3.0
FONT, BOLD = "Helvetica", "Helvetica-Bold"


@dataclass(frozen=True)
class SheetLayout:
    """Paper and grid options; lengths in millimetres.

    ``cell_mm`` is the printed side of the largest image; ``dpi``, when given, replaces it (image
    pixels per inch). Both are snapped to the pixel rule in the module docstring.
    """

    paper: str = "a4"
    columns: int = 2
    rows: int = 3
    cell_mm: float = 60.0
    dpi: float | None = None
    margin_mm: float = 10.0
    marker_mm: float = 20.0
    qr_mm: float = 18.0


@dataclass(frozen=True)
class SheetImage:
    """One image to print and what its label and manifest cell say about it.

    ``path`` is read when the sheets are laid out; ``file`` is how the manifest names it (relative
    to the attack folder for attack sets); ``sha256``, when given, is the pixel hash the image must
    have (an attack record's: what is printed is what was attacked and evaluated).
    """

    path: Path
    image_id: str
    kind: CellKind = "clean"
    file: str = ""
    source: str = ""
    label: int | None = None
    label_name: str | None = None
    method: str = ""
    eps: float = 0.0
    model: str = ""
    sha256: str = ""


def attack_set_images(attack_dir: str | Path) -> tuple[list[SheetImage], dict[str, str]]:
    """The clean/adversarial pairs of a ``physadv attack`` folder, in pair order.

    Returns:
        the images (clean, adversarial, clean, adversarial, ...) and the manifest fields taken from
        the attack (``model``, ``run_id`` when the attack record has one).
    """
    root = Path(attack_dir)
    attack = read_attack_set(root)
    settings = attack.settings
    images = []
    for item in attack.images:
        for kind, folder, path, sha256 in (
                ("clean", CLEAN_DIR, attack.clean_path(root, item), item.clean_sha256),
                ("adversarial", ADV_DIR, attack.adversarial_path(root, item), item.adv_sha256)):
            images.append(SheetImage(path=path, image_id=item.id, kind=kind, file=f"{folder}/{item.file}",
                                     source=item.source, label=item.label, label_name=item.label_name,
                                     method=settings.method, eps=settings.eps, model=settings.model, sha256=sha256))
    return images, {"model": settings.model}


def parse_grid(text: str) -> tuple[int, int]:
    """``COLUMNSxROWS`` such as ``2x3`` → ``(2, 3)``.

    Raises:
        InputError: not of that form, or fewer than one column or row.
    """
    try:
        columns, rows = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise InputError(f"grid: expected COLUMNSxROWS such as 2x3, got {text!r}") from None
    if columns < 1 or rows < 1:
        raise InputError(f"grid: at least 1x1, got {text!r}")
    return columns, rows


def new_run_id() -> str:
    """64 random bits: a page's identity code is a hash of its run id, so two runs share codes only when
    they share an id (probability 2⁻⁶⁴ for two new ones; a ``--run-id`` of your own must be unique)."""
    return secrets.token_hex(8)


def read_sheet_pixels(path: str | Path) -> np.ndarray:
    """An image to print as ``(H, W, 3)`` uint8; only 8-bit RGB files are accepted, because any
    conversion would print something other than what was attacked and evaluated."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            mode = image.mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from None
    if mode != "RGB":
        raise InputError(f"{path}: image mode {mode}, expected 8-bit RGB (convert it, e.g. with Pillow "
                         "`.convert('RGB')`, and attack the converted file)")
    return read_rgb(path)


def _renders_whole(quarters: int, page_px: int) -> bool:
    # Renderers size the bitmap as ceil(page_pt · dpi/72) (pdfium with the page size in float32); for
    # a few pitches that product lands a hair above the integer and the page is stretched by a pixel.
    page_pt = float(np.float32(page_px * quarters / 4))
    return math.ceil(page_pt * ((288 / quarters) / 72)) == page_px


def _pitch_quarters(ideal_pt: float, paper_mm: tuple[float, float]) -> int:
    """The pixel pitch in quarter points: the nearest to ``ideal_pt`` that renders exactly."""
    first = max(1, round(4 * ideal_pt))
    for candidate in sorted(range(max(1, first - 8), first + 9), key=lambda j: (abs(j - 4 * ideal_pt), j)):
        if all(_renders_whole(candidate, round(side / (candidate * QUARTER_PT_MM))) for side in paper_mm):
            return candidate
    raise InputError(f"no exact pixel pitch near {ideal_pt:.3g} pt")  # unreachable for real papers


@dataclass(frozen=True)
class _Grid:
    """Geometry shared by every page; lengths in pitch units (``px``) or mm."""

    pitch_mm: float
    quarters: int
    page_px: tuple[int, int]
    slot_px: int
    origin_px: tuple[int, int]
    column_step_px: int
    row_step_px: int

    def mm(self, px: float) -> float:
        return px * self.pitch_mm


def _plan_grid(layout: SheetLayout, largest_px: int) -> _Grid:
    if layout.paper not in PAPERS_MM:
        raise InputError(f"unknown paper {layout.paper!r} (use {' or '.join(PAPERS_MM)})")
    if layout.columns < 1 or layout.rows < 1:
        raise InputError(f"the grid needs at least 1 column and 1 row, got {layout.columns}x{layout.rows}")
    for name in ("cell_mm", "margin_mm", "marker_mm", "qr_mm"):
        if not (math.isfinite(getattr(layout, name)) and getattr(layout, name) > 0):
            raise InputError(f"{name} must be a positive length in mm, got {getattr(layout, name)}")
    if layout.dpi is not None and not (math.isfinite(layout.dpi) and layout.dpi > 0):
        raise InputError(f"dpi must be positive, got {layout.dpi}")
    paper = PAPERS_MM[layout.paper]
    ideal_pt = 72 / layout.dpi if layout.dpi else layout.cell_mm / largest_px / MM_PER_PT
    quarters = _pitch_quarters(ideal_pt, paper)
    pitch = quarters * QUARTER_PT_MM
    page_px = (round(paper[0] / pitch), round(paper[1] / pitch))
    width, height = page_px[0] * pitch, page_px[1] * pitch
    band = layout.margin_mm + max(layout.marker_mm, layout.qr_mm) + GAP_MM
    if (2 * layout.marker_mm + 2 * GAP_MM + layout.qr_mm + _identity_width(layout) + GAP_MM + MIN_TEXT_MM
            > width - 2 * layout.margin_mm):
        raise InputError(f"markers of {layout.marker_mm:g} mm, identity codes of {_identity_width(layout):g} mm and "
                         f"QR codes of {layout.qr_mm:g} mm do not fit across {layout.paper.upper()}; make them smaller")
    available = (width - 2 * layout.margin_mm, height - 2 * band)
    cell = largest_px * pitch
    column_step = math.ceil((cell + GAP_MM) / pitch)
    row_step = math.ceil((cell + LABEL_MM + GAP_MM / 2) / pitch)
    needed = ((layout.columns - 1) * column_step * pitch + cell, (layout.rows - 1) * row_step * pitch + cell + LABEL_MM)
    if needed[0] > available[0] or needed[1] > available[1]:
        raise InputError(
            f"a {layout.columns}x{layout.rows} grid of {cell:.1f}-mm cells ({largest_px} px at {288 / quarters:g} dpi) "
            f"needs {needed[0]:.0f} × {needed[1]:.0f} mm, but {layout.paper.upper()} with {layout.margin_mm:g}-mm margins "
            f"and {layout.marker_mm:g}-mm markers leaves {available[0]:.0f} × {available[1]:.0f} mm; "
            "choose a smaller --cell-mm or fewer columns/rows")
    origin = (round((layout.margin_mm + (available[0] - needed[0]) / 2) / pitch),
              round((band + (available[1] - needed[1]) / 2) / pitch))
    return _Grid(pitch, quarters, page_px, largest_px, origin, column_step, row_step)


def _reference_dots(grid: _Grid, layout: SheetLayout, size: tuple[float, float]) -> tuple[ReferenceDot, ...]:
    """The reference dots of every page of the grid (see the module docstring)."""
    width, height = size
    band = layout.margin_mm + max(layout.marker_mm, layout.qr_mm) + GAP_MM
    slot, column_step, row_step = (grid.mm(v) for v in (grid.slot_px, grid.column_step_px, grid.row_step_px))
    left, top = grid.mm(grid.origin_px[0]), grid.mm(grid.origin_px[1])
    # Every slot with its label below it, the bands (markers, codes, text) and the paper margins.
    obstacles = [(left + c * column_step, top + r * row_step, slot, slot + LABEL_MM)
                 for r in range(layout.rows) for c in range(layout.columns)]
    obstacles += [(0, 0, width, band - GAP_MM / 2), (0, height - band + GAP_MM / 2, width, band),
                  (0, 0, layout.margin_mm, height), (width - layout.margin_mm, 0, layout.margin_mm, height)]
    gutter = column_step - slot
    xs = [left - gutter / 2] + [left + c * column_step + slot + gutter / 2 for c in range(layout.columns)]
    # Above the grid, then each row's middle and the middle of the gap below it (between the labels).
    ys = [top - gutter / 2] + [top + r * row_step + offset for r in range(layout.rows)
                               for offset in (slot / 2, (slot + row_step) / 2)]
    dots = []
    for y in ys:
        for x in xs:
            clear = min(DOT_CLEAR_MAX_MM, min(box_distance_mm((x, y), box) for box in obstacles))
            if clear >= DOT_MM / 2 + DOT_RING_MM:
                dots.append(ReferenceDot((x, y), DOT_MM, math.floor(clear * 100) / 100))
    return tuple(dots)


def _markers(run_id: str, page: int, size: tuple[float, float], layout: SheetLayout) -> tuple[Marker, ...]:
    width, height = size
    m, s = layout.margin_mm, layout.marker_mm
    origins = {"top_left": (m, m), "top_right": (width - m - s, m),
               "bottom_right": (width - m - s, height - m - s), "bottom_left": (m, height - m - s)}
    return tuple(Marker(marker_id, corner, ((x, y), (x + s, y), (x + s, y + s), (x, y + s)))
                 for marker_id, corner in zip(marker_ids(run_id, page), CORNERS) for x, y in [origins[corner]])


def _identity_width(layout: SheetLayout) -> float:
    columns, rows = IDENTITY_GRID
    return layout.marker_mm * columns / rows


def _identity(page: int, size: tuple[float, float], layout: SheetLayout) -> tuple[IdentityBlock, ...]:
    width, height = size
    m, s, w = layout.margin_mm, layout.marker_mm, _identity_width(layout)
    return (IdentityBlock((width - m - s - GAP_MM - w, m, w, s), *IDENTITY_GRID),
            IdentityBlock((m + s + GAP_MM, height - m - s, w, s), *IDENTITY_GRID))


def _qr_codes(run_id: str, page: int, size: tuple[float, float], layout: SheetLayout) -> tuple[QRCode, ...]:
    width, height = size
    m, s, q = layout.margin_mm, layout.marker_mm, layout.qr_mm
    band = max(s, q)
    top = (m + s + GAP_MM, m + (band - q) / 2)
    bottom = (width - m - s - GAP_MM - q, height - m - band + (band - q) / 2)
    return tuple(QRCode(qr_payload(run_id, page), (x, y, q, q)) for x, y in (top, bottom))


def layout_sheets(images: Sequence[SheetImage], run_id: str, layout: SheetLayout = SheetLayout(), *,
                  model: str = "", attack_dir: str = "", keep_pairs: bool = False,
                  progress: bool = False) -> tuple[Manifest, list[np.ndarray]]:
    """Place ``images`` on pages, in reading order, and describe them in a manifest.

    Args:
        images: what to print, in order.
        run_id: names the run in marker ids and QR codes.
        layout: paper, grid and sizes.
        model: recorded in the manifest.
        attack_dir: recorded in the manifest.
        keep_pairs: images come as (clean, adversarial) pairs that must share a row.
        progress: show a progress bar while reading images.

    Returns:
        the manifest and each image's ``(H, W, 3)`` uint8 pixels, in the order of ``images``.

    Raises:
        InputError: no images, an unreadable or non-RGB image, a grid that does not fit the paper,
            or (with ``keep_pairs``) an odd number of columns.
    """
    check_run_id(run_id)
    if not images:
        raise InputError("nothing to print: no images")
    if keep_pairs and layout.columns % 2:
        raise InputError(f"--grid {layout.columns}x{layout.rows}: clean and adversarial images are printed side by "
                         "side, so the number of columns must be even")
    pixels = [read_sheet_pixels(image.path)
              for image in tqdm(images, desc="reading images", unit="img", disable=None if progress else True)]
    hashes = [pixel_sha256(p) for p in pixels]
    for image, digest in zip(images, hashes):
        if image.sha256 and digest != image.sha256:
            raise InputError(f"{image.path}: not the image the attack wrote (its pixel hash differs from the "
                             "attack record's); re-run the attack into a new folder")
    grid = _plan_grid(layout, max(max(p.shape[:2]) for p in pixels))
    size = (grid.mm(grid.page_px[0]), grid.mm(grid.page_px[1]))
    per_page = layout.columns * layout.rows
    pages_needed = -(-len(images) // per_page)
    if pages_needed > MAX_PAGES:
        raise InputError(f"{len(images)} images need {pages_needed} pages; one run's marker ids cover {MAX_PAGES} "
                         "pages: print them in several runs (e.g. attack them in several folders)")
    dots = _reference_dots(grid, layout, size)
    pages = []
    for page_index, start in enumerate(range(0, len(images), per_page)):
        cells = []
        for index in range(start, min(start + per_page, len(images))):
            image, height, width = images[index], *pixels[index].shape[:2]
            row, col = divmod(index - start, layout.columns)
            # Smaller images sit centred in the slot of the largest one, still on the pixel grid.
            x = grid.origin_px[0] + col * grid.column_step_px + (grid.slot_px - width) // 2
            y = grid.origin_px[1] + row * grid.row_step_px + (grid.slot_px - height) // 2
            cells.append(Cell(index=index, row=row, col=col, box_mm=(grid.mm(x), grid.mm(y), grid.mm(width),
                                                                     grid.mm(height)),
                              size_px=(width, height), image_id=image.image_id, kind=image.kind,
                              file=image.file or str(image.path), source=image.source, label=image.label,
                              label_name=image.label_name, method=image.method, eps=image.eps,
                              model=image.model, sha256=hashes[index]))
        pages.append(Page(index=page_index, markers=_markers(run_id, page_index, size, layout),
                          qr_codes=_qr_codes(run_id, page_index, size, layout), cells=tuple(cells),
                          identity=_identity(page_index, size, layout), reference_dots=dots))
    manifest = Manifest(run_id=run_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        paper=layout.paper, page_size_mm=size, layout_dpi=288 / grid.quarters,
                        marker_size_mm=layout.marker_mm, pages=tuple(pages), model=model, attack_dir=attack_dir,
                        extra={"grid": [layout.columns, layout.rows], "margin_mm": layout.margin_mm,
                               "pixel_pitch_pt": grid.quarters / 4})
    return manifest, pixels


def _module_runs(matrix: np.ndarray) -> list[tuple[int, int, int]]:
    """Horizontal runs (row, first column, length) of the dark modules of a 0/1 matrix."""
    runs = []
    for row, line in enumerate(matrix):
        padded = np.concatenate([[0], line.astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        runs.extend((row, int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2]))
    return runs


def _aruco_bits(marker_id: int) -> np.ndarray:
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))
    return cv2.aruco.generateImageMarker(dictionary, marker_id, MARKER_BITS, borderBits=1) == 0


def _qr_bits(payload: str) -> np.ndarray:
    import segno

    return np.array(segno.make(payload, error="m", micro=False).matrix, dtype=bool)


class _PdfPage:
    """Draws on one reportlab page in manifest coordinates (mm, origin top-left, y down)."""

    def __init__(self, canvas, height_mm: float):
        self.canvas, self.height_mm = canvas, height_mm

    def pt(self, x_mm: float, y_mm: float, h_mm: float = 0.0) -> tuple[float, float]:
        return x_mm / MM_PER_PT, (self.height_mm - y_mm - h_mm) / MM_PER_PT

    def modules(self, dark: np.ndarray, x: float, y: float, side: float) -> None:
        # One filled path for all modules: separate squares would leave anti-aliased seams between them.
        unit = side / dark.shape[0]
        path = self.canvas.beginPath()
        for row, col, length in _module_runs(dark):
            left, bottom = self.pt(x + col * unit, y + row * unit, unit)
            path.rect(left, bottom, length * unit / MM_PER_PT, unit / MM_PER_PT)
        self.canvas.drawPath(path, fill=1, stroke=0)

    def text(self, x: float, y_baseline: float, text: str, size: float, font: str = FONT,
             max_width_mm: float | None = None) -> None:
        from reportlab.pdfbase.pdfmetrics import stringWidth

        if max_width_mm is not None:
            limit = max_width_mm / MM_PER_PT
            while text and stringWidth(text, font, size) > limit:
                text = text[:-2] + "…" if len(text) > 1 else ""
        self.canvas.setFont(font, size)
        self.canvas.drawString(*self.pt(x, y_baseline), text)


def _cell_label(cell: Cell) -> tuple[str, str]:
    first = f"{cell.image_id} — {cell.kind}"
    if cell.kind == "adversarial":
        second = f"{cell.method} eps={cell.eps:g}/255 · {cell.model}"
    elif cell.kind in ("patch", "control"):
        second = f"{cell.method} · {cell.model}"
    else:
        second = f"true class: {cell.label_name}" if cell.label_name else (cell.model or "")
    return first, second


def draw_sheets(manifest: Manifest, pixels: Sequence[np.ndarray], *, title: str = "",
                progress: bool = False) -> bytes:
    """The PDF bytes of ``manifest``'s pages, with ``pixels[cell.index]`` in each cell, embedded
    losslessly (Flate) at exactly the cell's box."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    width, height = manifest.page_size_mm
    buffer = io.BytesIO()
    # invariant: no timestamps or random ids, so the same inputs give the same bytes.
    canvas = Canvas(buffer, pagesize=(width / MM_PER_PT, height / MM_PER_PT), invariant=1, pageCompression=1)
    canvas.setTitle(sheet_title(manifest.run_id))
    canvas.setCreator("physadv print")
    draw = _PdfPage(canvas, height)
    margin = manifest.extra.get("margin_mm", 10.0)
    for page in tqdm(manifest.pages, desc="drawing pages", unit="page", disable=None if progress else True):
        for marker in page.markers:
            (x, y), side = marker.corners_mm[0], manifest.marker_size_mm
            draw.modules(_aruco_bits(marker.id), x, y, side)
        for code in page.qr_codes:
            x, y, side, _ = code.box_mm
            draw.modules(_qr_bits(code.payload), x, y, side)
        bits = iter(identity_bits(manifest.run_id, page.index))
        for block in page.identity:
            x, y, _, block_height = block.box_mm
            dark = identity_modules(tuple(next(bits) for _ in range(block.bits)), block.columns, block.rows)
            draw.modules(np.array(dark, dtype=bool), x, y, block_height)
        for dot in page.reference_dots:
            canvas.circle(*draw.pt(*dot.centre_mm), dot.diameter_mm / 2 / MM_PER_PT, stroke=0, fill=1)
        for cell in page.cells:
            x, y, w, h = cell.box_mm
            left, bottom = draw.pt(x, y, h)
            canvas.drawImage(ImageReader(Image.fromarray(pixels[cell.index])), left, bottom,
                             w / MM_PER_PT, h / MM_PER_PT)
            for line, text in enumerate(_cell_label(cell)):
                draw.text(x, y + h + 3.2 + 3.0 * line, text, 6.5, BOLD if line == 0 else FONT, max_width_mm=w)
        top_qr, bottom_qr = page.qr_codes[0].box_mm, page.qr_codes[-1].box_mm
        text_left = top_qr[0] + top_qr[2] + GAP_MM
        text_right = page.identity[0].box_mm[0] if page.identity else page.markers[1].corners_mm[0][0]
        text_width = text_right - GAP_MM - text_left
        # The page number first: a long run id is what gets cut where the line does not fit.
        draw.text(text_left, margin + 5, f"Page {page.index + 1} of {len(manifest.pages)} — physadv run "
                                         f"{manifest.run_id}", 10, BOLD, text_width)
        if title:
            draw.text(text_left, margin + 10, title, 8, FONT, text_width)
        draw.text(text_left, margin + 15, "Print at 100% / \"Actual size\", in colour,", 7, FONT, text_width)
        draw.text(text_left, margin + 18.5, "on plain white paper (no \"fit to page\").", 7, FONT, text_width)
        bar_left = (page.identity[-1].box_mm[0] + page.identity[-1].box_mm[2] if page.identity
                    else page.markers[3].corners_mm[1][0]) + GAP_MM
        bar_top = height - margin - manifest.marker_size_mm + 3
        canvas.rect(*draw.pt(bar_left, bar_top, 1.5), SCALE_BAR_MM / MM_PER_PT, 1.5 / MM_PER_PT, fill=1, stroke=0)
        note_width = bottom_qr[0] - GAP_MM - bar_left
        draw.text(bar_left, bar_top + 6, f"This bar is {SCALE_BAR_MM:g} mm long when printed correctly.",
                  7, FONT, note_width)
        draw.text(bar_left, bar_top + 10, "Keep the corner squares and codes visible in photos.",
                  7, FONT, note_width)
        draw.text(bar_left, bar_top + 14, f"{manifest.paper.upper()}, images at {manifest.layout_dpi:g} dpi.",
                  7, FONT, note_width)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def write_sheets(images: Sequence[SheetImage], out_dir: str | Path, run_id: str | None = None,
                 layout: SheetLayout = SheetLayout(), *, model: str = "", attack_dir: str = "", title: str = "",
                 keep_pairs: bool = False, progress: bool = False) -> Manifest:
    """Lay out ``images``, write ``out_dir/sheets.pdf`` and ``out_dir/manifest.json`` (atomically).

    ``run_id`` (a plain name) defaults to a fresh 16-hex-digit id. See :func:`layout_sheets` for the other
    arguments and the errors raised.
    """
    run_id = new_run_id() if run_id is None else run_id  # an empty one is refused, as capture would refuse it
    manifest, pixels = layout_sheets(images, run_id, layout, model=model, attack_dir=attack_dir,
                                     keep_pairs=keep_pairs, progress=progress)
    out = Path(out_dir)
    atomic_write_bytes(out / SHEETS_FILE, draw_sheets(manifest, pixels, title=title, progress=progress))
    write_manifest(manifest, out / MANIFEST_FILE)
    return manifest


def print_attack_set(attack_dir: str | Path, out_dir: str | Path, layout: SheetLayout = SheetLayout(), *,
                     run_id: str | None = None, progress: bool = False) -> Manifest:
    """Sheets of a ``physadv attack`` folder: each clean image beside its adversarial twin.

    The run id is ``run_id``, else a fresh random one. The manifest names the attack folder
    relative to ``out_dir``, so the run can be moved or copied as a whole.
    """
    images, info = attack_set_images(attack_dir)
    if not images:
        raise InputError(f"{attack_dir}: the attack folder holds no images yet")
    first = images[0]
    attack_dir_relative = os.path.relpath(Path(attack_dir).resolve(), Path(out_dir).resolve())
    return write_sheets(images, out_dir, run_id, layout, model=info["model"],
                        attack_dir=attack_dir_relative, keep_pairs=True, progress=progress,
                        title=f"{first.method} eps={first.eps:g}/255 on {first.model}: each clean image "
                              "beside its adversarial twin")
