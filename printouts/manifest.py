"""The manifest of a printed run: what is where on every page (versioned JSON schema).

Coordinates are millimetres on the page, origin at the top-left corner, x to the right and y
downwards (image convention), so a page-to-photo homography maps ``(x_mm, y_mm)`` directly.

Page identity is carried by the four ArUco corner markers, which are found even in 720p webcam
frames, and confirmed by the page's identity code (:func:`identity_bits`: 50 bits of a hash of
the run id and page, in two blocks of large modules); marker ids alone take one of 250 values, so
two runs can share them. The QR codes (run and page, readable by any phone) are a cross-check.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from physadv.errors import InputError
from physadv.fileio import atomic_write_json

SCHEMA = "physadv.manifest/1"
ARUCO_DICTIONARY = "DICT_4X4_1000"
ARUCO_DICTIONARY_SIZE = 1000
CORNERS = ("top_left", "top_right", "bottom_right", "bottom_left")
CellKind = Literal["clean", "adversarial"]


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
    def from_dict(cls, data: dict) -> "Manifest":
        if data.get("schema") != SCHEMA:
            raise ManifestError(f"unsupported manifest schema {data.get('schema')!r} (this physadv reads {SCHEMA})")
        try:
            pages = tuple(
                Page(index=p["index"],
                     markers=tuple(Marker(m["id"], m["corner"], tuple(tuple(c) for c in m["corners_mm"]))
                                   for m in p["markers"]),
                     qr_codes=tuple(QRCode(q["payload"], tuple(q["box_mm"])) for q in p["qr_codes"]),
                     cells=tuple(Cell(**{**c, "box_mm": tuple(c["box_mm"]), "size_px": tuple(c["size_px"])})
                                 for c in p["cells"]),
                     identity=tuple(IdentityBlock(tuple(b["box_mm"]), b["columns"], b["rows"])
                                    for b in p.get("identity", ())))
                for p in data["pages"])
            fields = {k: v for k, v in data.items() if k != "pages"}
            fields["page_size_mm"] = tuple(fields["page_size_mm"])
            manifest = cls(pages=pages, **fields)
        except (KeyError, TypeError, AttributeError) as error:
            raise ManifestError(f"malformed manifest: {error}") from None
        for page in manifest.pages:
            _check_identity(page, manifest.page_size_mm)
        return manifest

    def cells(self) -> list[tuple[Page, Cell]]:
        return [(page, cell) for page in self.pages for cell in page.cells]


def _check_identity(page: Page, page_size_mm: tuple[float, float]) -> None:
    """The identity blocks of a page read from a file: whole module grids inside the page, at most
    :data:`MAX_IDENTITY_MODULES` modules and :data:`IDENTITY_BITS` bits in all."""
    total = 0
    for block in page.identity:
        numbers = block.box_mm
        if not (len(numbers) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                          for v in numbers)):
            raise ManifestError(f"page {page.index}: identity box_mm must be 4 finite numbers, got {numbers!r}")
        x, y, w, h = numbers
        if not (w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= page_size_mm[0] + 1e-6
                and y + h <= page_size_mm[1] + 1e-6):
            raise ManifestError(f"page {page.index}: identity box {numbers!r} lies outside the page")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (block.columns, block.rows)) \
                or block.columns < 2 or block.rows < 1 or block.columns % 2:
            raise ManifestError(f"page {page.index}: identity grid {block.columns}x{block.rows} "
                                "(an even number of columns ≥ 2 and ≥ 1 row expected)")
        total += block.columns * block.rows
    if total > MAX_IDENTITY_MODULES or total // 2 > IDENTITY_BITS:
        raise ManifestError(f"page {page.index}: {total} identity modules, at most {2 * IDENTITY_BITS}")


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as JSON atomically (readers never see a half-written file)."""
    atomic_write_json(path, manifest.to_dict())


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest (physadv print writes DIR/manifest.json)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a readable manifest ({error})") from None
    return Manifest.from_dict(data)
