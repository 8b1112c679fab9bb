"""The manifest of a printed run: what is where on every page (versioned JSON schema).

Coordinates are millimetres on the page, origin at the top-left corner, x to the right and y
downwards (image convention), so a page-to-photo homography maps ``(x_mm, y_mm)`` directly.

Page identity is carried by the four ArUco corner markers, which are found even in 720p webcam
frames, and confirmed by the page's identity code (:func:`identity_bits`: 50 bits of a hash of
the run id and page, in two blocks of large modules); marker ids alone take one of 250 values, so
two runs can share them. The QR codes (run and page, readable by any phone) are a cross-check.

Reference dots (:class:`ReferenceDot`, optional: manifests written before they existed have none)
are small black discs printed in the gutters between cells, each with a white zone around it; capture
locates them to model a page that is not flat.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from physadv.errors import InputError
from physadv.fileio import atomic_write_json, parse_json
from physadv.validation import MAX_CLASSES, Record

SCHEMA = "physadv.manifest/1"
ARUCO_DICTIONARY = "DICT_4X4_1000"
ARUCO_DICTIONARY_SIZE = 1000
CORNERS = ("top_left", "top_right", "bottom_right", "bottom_left")
CellKind = Literal["clean", "adversarial", "patch", "control"]  # patch, control: a patch run's sheets
CELL_KINDS: tuple[CellKind, ...] = get_args(CellKind)

# Caps on what a manifest may describe. A manifest is untrusted input: these keep a corrupt or
# hostile one from asking for absurd allocations (a 100000² crop) or endless loops.
MAX_PAGES = ARUCO_DICTIONARY_SIZE // 4  # one run's marker ids cover this many pages
MIN_PAGE_MM, MAX_PAGE_MM = 50.0, 2000.0  # a postcard to an A0 poster
MAX_CELLS_PER_PAGE, MAX_GRID = 1000, 1000
MAX_CELL_PX = 4096  # side of a printed image in pixels; 4096² RGB is 50 MB per crop
MAX_REFERENCE_DOTS = 400
MAX_DOT_MM = 20.0


class ManifestError(InputError):
    """A manifest file is missing, unreadable or of another schema."""


def run_marker_offset(run_id: str) -> int:
    """First marker id of a run: a hash of the run id, a multiple of 4."""
    digest = int(hashlib.sha256(run_id.encode()).hexdigest(), 16)
    return 4 * (digest % (ARUCO_DICTIONARY_SIZE // 4))


def marker_ids(run_id: str, page: int) -> tuple[int, int, int, int]:
    """ArUco ids of the (top-left, top-right, bottom-right, bottom-left) markers of ``page``.

    Pages of one run use consecutive blocks of four ids starting at :func:`run_marker_offset`,
    wrapping around the dictionary; so up to 250 pages of a run have distinct ids.
    """
    first = run_marker_offset(run_id) + 4 * page
    return tuple((first + corner) % ARUCO_DICTIONARY_SIZE for corner in range(4))  # type: ignore[return-value]


def page_of_marker(run_id: str, marker_id: int) -> tuple[int, int]:
    """Inverse of :func:`marker_ids`: ``(page, corner index)`` of a marker id in this run."""
    relative = (marker_id - run_marker_offset(run_id)) % ARUCO_DICTIONARY_SIZE
    return relative // 4, relative % 4


def sheet_title(run_id: str) -> str:
    """The title of a run's sheets PDF, which ties the PDF to its manifest."""
    return f"physadv run {run_id}"


IDENTITY_BITS = 50  # Manchester-coded: two modules per bit, in two 5 × 10-module blocks per page
MAX_IDENTITY_MODULES = 400


def identity_bits(run_id: str, page: int, count: int = IDENTITY_BITS) -> tuple[int, ...]:
    """The page's identity code: the first ``count`` bits of SHA-256 of the run id and page.

    Printed as Manchester-coded module pairs (see :func:`identity_modules`); capture requires the
    bits read from the sheet to equal these before it crops anything, so a sheet of another run is
    refused even when its marker ids coincide with ours and its QR code is unreadable.
    """
    digest = int.from_bytes(hashlib.sha256(f"physadv-identity:{run_id}:{page}".encode()).digest(), "big")
    return tuple((digest >> (255 - k)) & 1 for k in range(count))


def identity_modules(bits: tuple[int, ...], columns: int, rows: int) -> "list[list[bool]]":
    """Dark (True) / light modules of one identity block, row-major: bit ``b`` is the pair
    (dark, light) when ``b`` is 1 and (light, dark) when 0; pairs run along each row."""
    pairs = iter(bits)
    matrix = []
    for _ in range(rows):
        line: list[bool] = []
        for _ in range(columns // 2):
            bit = next(pairs)
            line += [bool(bit), not bit]
        matrix.append(line)
    return matrix


def qr_payload(run_id: str, page: int) -> str:
    return f"physadv:run={run_id};page={page}"


def parse_qr_payload(payload: str) -> tuple[str, int] | None:
    """``(run_id, page)`` from a QR payload written by :func:`qr_payload`, else ``None``."""
    if not payload.startswith("physadv:"):
        return None
    fields = dict(part.split("=", 1) for part in payload[len("physadv:"):].split(";") if "=" in part)
    try:
        return fields["run"], int(fields["page"])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class Marker:
    """One ArUco marker: its id, which page corner it sits at, and its four corners (mm) in
    OpenCV's order (top-left, top-right, bottom-right, bottom-left of the marker)."""

    id: int
    corner: str
    corners_mm: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class QRCode:
    payload: str
    box_mm: tuple[float, float, float, float]  # x, y, width, height


@dataclass(frozen=True)
class IdentityBlock:
    """One block of the page's identity code: ``box_mm`` (x, y, width, height) split into
    ``columns`` × ``rows`` square modules; the page's blocks carry consecutive bits of
    :func:`identity_bits`, in the order listed, each block row-major."""

    box_mm: tuple[float, float, float, float]
    columns: int
    rows: int

    @property
    def bits(self) -> int:
        return self.columns * self.rows // 2


@dataclass(frozen=True)
class ReferenceDot:
    """A solid black disc printed as a reference point: its centre (page mm), diameter (mm), and the
    radius (mm) of the disc around its centre in which nothing else is printed (white paper)."""

    centre_mm: tuple[float, float]
    diameter_mm: float
    clear_mm: float


@dataclass(frozen=True)
class Cell:
    """One printed image.

    ``box_mm`` is (x, y, width, height) of the image itself (no border, no label); ``size_px`` is
    the source PNG's (width, height); ``sha256`` hashes the PNG's decoded RGB pixels (uint8, HWC).
    """

    index: int
    row: int
    col: int
    box_mm: tuple[float, float, float, float]
    size_px: tuple[int, int]
    image_id: str
    kind: CellKind
    file: str
    source: str
    label: int | None
    label_name: str | None
    method: str
    eps: float
    model: str
    sha256: str


@dataclass(frozen=True)
class Page:
    index: int
    markers: tuple[Marker, ...]
    qr_codes: tuple[QRCode, ...]
    cells: tuple[Cell, ...]
    identity: tuple[IdentityBlock, ...] = ()
    reference_dots: tuple[ReferenceDot, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """Everything the capture side needs to find, identify and crop the printed cells."""

    run_id: str
    created: str
    paper: str
    page_size_mm: tuple[float, float]
    layout_dpi: float
    marker_size_mm: float
    pages: tuple[Page, ...]
    model: str = ""
    attack_dir: str = ""
    schema: str = SCHEMA
    aruco_dictionary: str = ARUCO_DICTIONARY
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "manifest") -> "Manifest":
        """Read a manifest from parsed JSON, checking every field (a manifest is untrusted input).

        Raises:
            ManifestError: another schema, or any field of the wrong type, out of range or unsafe.
        """
        record = Record(data, where, ManifestError)
        if record.data.get("schema") != SCHEMA:
            raise ManifestError(f"{where}: unsupported manifest schema {record.data.get('schema')!r} "
                                f"(this physadv reads {SCHEMA})")
        record.only([f.name for f in fields(cls)])
        page_size = record.numbers("page_size_mm", 2, MIN_PAGE_MM, MAX_PAGE_MM)
        pages = tuple(_read_page(page, page_size) for page in record.records("pages", 1, MAX_PAGES))
        indices = [page.index for page in pages]
        if len(set(indices)) != len(indices):
            raise record.fail("pages", "page indices repeat")
        run_id = record.name("run_id")
        marker_size = record.number("marker_size_mm", 1, min(page_size) / 2)
        for number, page in enumerate(pages):
            for corner, marker in enumerate(page.markers):
                _check_marker_square(marker, marker_size, f"{where}.pages[{number}].markers[{corner}].corners_mm")
            # Capture names a page by its marker ids: they must be the ones physadv prints for this run and page.
            expected = list(zip(marker_ids(run_id, page.index), CORNERS))
            if [(marker.id, marker.corner) for marker in page.markers] != expected:
                raise record.fail(f"pages[{number}].markers", f"ids and corners {[(m.id, m.corner) for m in page.markers]} "
                                                             f"are not run {run_id!r}'s for page {page.index} ({expected})")
        extra = record.record("extra", optional=True)
        return cls(run_id=run_id, created=record.text("created", max_length=64) or "",
                   paper=record.text("paper", max_length=32) or "", page_size_mm=page_size,
                   layout_dpi=record.number("layout_dpi", 1, 10_000),
                   marker_size_mm=marker_size,
                   pages=pages, model=record.text("model", optional=True, max_length=256) or "",
                   attack_dir=record.text("attack_dir", optional=True) or "", schema=SCHEMA,
                   aruco_dictionary=record.choice("aruco_dictionary", (ARUCO_DICTIONARY,), optional=True)
                   or ARUCO_DICTIONARY, extra=extra.data if extra is not None else {})

    def cells(self) -> list[tuple[Page, Cell]]:
        return [(page, cell) for page in self.pages for cell in page.cells]


def _read_point(values: list, where: str, page_size: tuple[float, float]) -> tuple[float, float]:
    point = Record({"point": values}, where, ManifestError).numbers("point", 2, -MAX_PAGE_MM, MAX_PAGE_MM)
    if not (0 <= point[0] <= page_size[0] and 0 <= point[1] <= page_size[1]):
        raise ManifestError(f"{where}: point {point} lies outside the {page_size[0]:g} × {page_size[1]:g} mm page")
    return point


def _read_box(record: Record, key: str, page_size: tuple[float, float]) -> tuple[float, float, float, float]:
    x, y, width, height = record.numbers(key, 4, 0, MAX_PAGE_MM)
    if width <= 0 or height <= 0 or x + width > page_size[0] or y + height > page_size[1]:
        raise record.fail(key, f"box {x:g}, {y:g}, {width:g} × {height:g} mm is empty or leaves the page")
    return x, y, width, height


def _read_page(record: Record, page_size: tuple[float, float]) -> Page:
    record.only([f.name for f in fields(Page)])
    markers = []
    for marker in record.records("markers", 4, 4):
        marker.only([f.name for f in fields(Marker)])
        corners = tuple(_read_point(point, f"{marker.where}.corners_mm[{i}]", page_size)
                        for i, point in enumerate(marker.items("corners_mm", 4, 4)))
        markers.append(Marker(marker.integer("id", 0, ARUCO_DICTIONARY_SIZE - 1), marker.choice("corner", CORNERS),
                              corners))
    qr_codes = []
    for code in record.records("qr_codes", 0, 8):
        code.only([f.name for f in fields(QRCode)])
        qr_codes.append(QRCode(code.text("payload", max_length=256), _read_box(code, "box_mm", page_size)))
    cells = tuple(_read_cell(cell, page_size) for cell in record.records("cells", 0, MAX_CELLS_PER_PAGE))
    if len({cell.index for cell in cells}) != len(cells):
        raise record.fail("cells", "cell indices repeat")
    identity = []
    for block in record.records("identity", 0, MAX_IDENTITY_MODULES) if record.has("identity") else ():
        block.only([f.name for f in fields(IdentityBlock)])
        columns, rows = block.integer("columns", 2, MAX_IDENTITY_MODULES), block.integer("rows", 1, MAX_IDENTITY_MODULES)
        if columns % 2:
            raise block.fail("columns", f"{columns}: expected an even number (bits are pairs of modules)")
        identity.append(IdentityBlock(_read_box(block, "box_mm", page_size), columns, rows))
    modules = sum(block.columns * block.rows for block in identity)
    if modules > MAX_IDENTITY_MODULES or modules // 2 > IDENTITY_BITS:
        raise record.fail("identity", f"{modules} identity modules, at most {2 * IDENTITY_BITS}")
    boxes = ([_marker_box(marker) for marker in markers] + [code.box_mm for code in qr_codes]
             + [block.box_mm for block in identity] + [cell.box_mm for cell in cells])
    dots = tuple(_read_dot(dot, page_size, boxes) for dot in (
        record.records("reference_dots", 0, MAX_REFERENCE_DOTS) if record.has("reference_dots") else ()))
    if len({dot.centre_mm for dot in dots}) != len(dots):
        raise record.fail("reference_dots", "dots repeat")
    return Page(index=record.integer("index", 0, MAX_PAGES - 1), markers=tuple(markers), qr_codes=tuple(qr_codes),
                cells=cells, identity=tuple(identity), reference_dots=dots)


MARKER_SHAPE_TOLERANCE = 0.01
"""Relative error allowed in a marker's sides and diagonals: physadv prints exact squares, and the
manifest rounds nothing, so 1 % only absorbs a hand-edited decimal."""


def _check_marker_square(marker: Marker, size: float, where: str) -> None:
    """A marker's corners must be a square of ``marker_size_mm`` (capture fits homographies to them
    and calibrate takes its scale from them; a degenerate one would divide by zero)."""
    corners = [complex(*point) for point in marker.corners_mm]
    sides = [abs(corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    diagonals = [abs(corners[2] - corners[0]), abs(corners[3] - corners[1])]
    if (any(abs(side - size) > MARKER_SHAPE_TOLERANCE * size for side in sides)
            or any(abs(d - size * math.sqrt(2)) > MARKER_SHAPE_TOLERANCE * size * math.sqrt(2) for d in diagonals)):
        raise ManifestError(f"{where}: {[list(p) for p in marker.corners_mm]} is not a square of the "
                            f"marker size {size:g} mm")


def _marker_box(marker: Marker) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in marker.corners_mm], [y for _, y in marker.corners_mm]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def box_distance_mm(point: tuple[float, float], box: tuple[float, float, float, float]) -> float:
    """Distance (mm) from a point to a box (x, y, width, height); 0 inside it."""
    x, y, width, height = box
    return math.hypot(max(x - point[0], 0.0, point[0] - x - width), max(y - point[1], 0.0, point[1] - y - height))


def _read_dot(record: Record, page_size: tuple[float, float], boxes: list) -> ReferenceDot:
    record.only([f.name for f in fields(ReferenceDot)])
    centre = _read_point(record.items("centre_mm", 2, 2), f"{record.where}.centre_mm", page_size)
    diameter = record.number("diameter_mm", 0.1, MAX_DOT_MM)
    clear = record.number("clear_mm", diameter / 2, 2 * MAX_DOT_MM)
    if any(box_distance_mm(centre, box) < clear for box in boxes):
        raise record.fail("clear_mm", f"the {clear:g}-mm white zone around the dot at {centre[0]:g}, {centre[1]:g} mm "
                                      "overlaps a cell, marker, identity block or QR code")
    return ReferenceDot(centre, diameter, clear)


def _read_cell(record: Record, page_size: tuple[float, float]) -> Cell:
    record.only([f.name for f in fields(Cell)])
    sha256 = record.text("sha256", max_length=64)
    if sha256 and not re.fullmatch("[0-9a-f]{64}", sha256):  # empty: not recorded
        raise record.fail("sha256", "expected 64 lowercase hex digits (or nothing)")
    return Cell(index=record.integer("index", 0, MAX_CELLS_PER_PAGE - 1), row=record.integer("row", 0, MAX_GRID),
                col=record.integer("col", 0, MAX_GRID), box_mm=_read_box(record, "box_mm", page_size),
                size_px=record.integers("size_px", 2, 1, MAX_CELL_PX), image_id=record.text("image_id", max_length=256),
                kind=record.choice("kind", CELL_KINDS), file=record.text("file"), source=record.text("source"),
                label=record.integer("label", 0, MAX_CLASSES - 1, optional=True),
                label_name=record.text("label_name", optional=True, max_length=256),
                method=record.text("method", max_length=64), eps=record.number("eps", 0, 255),
                model=record.text("model", max_length=256), sha256=sha256)


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as JSON atomically (readers never see a half-written file)."""
    atomic_write_json(path, manifest.to_dict())


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest (physadv print writes DIR/manifest.json)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a readable manifest ({error})") from None
    return Manifest.from_dict(data, str(path))
