"""The calibration chart: one A4/letter page for measuring a printer + camera channel.

The chart is an attack sheet with one cell: it carries the same ArUco corner markers, QR codes,
title and scale bar (drawn by :func:`physadv.printouts.sheets.draw_sheets`), so ``physadv capture``'s
detector finds and identifies it like any sheet, and its one image is printed pixel-exactly at
:data:`CHART_DPI`. Inside that image (page millimetres, recorded in the manifest under
``extra["chart"]``):

- a grey ramp of :data:`RAMP_STEPS` patches from 0 to 255 (tone curve per channel; noise);
- the 24 patches of the X-Rite ColorChecker (sRGB values from colour-science's
  ``ColorChecker24 - After November 2014`` under D65) (colour matrix);
- five slanted-edge squares, dark on light at ISO 12233's low contrast, turned by
  :data:`EDGE_SLANT_DEG`, at the centre and near the four corners of the lower field (sharpness);
- four flat grey patches of 30 mm (noise against intensity).

Edges and squares are anti-aliased by area coverage (8× supersampling), so an edge sits at its
exact sub-pixel position; that coverage is a box of one chart pixel, whose σ (``pitch/√12``)
``physadv calibrate`` removes from the measured blur.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes
from physadv.images import write_png
from physadv.printouts.manifest import Manifest, write_manifest
from physadv.printouts.sheets import MANIFEST_FILE, SheetImage, SheetLayout, draw_sheets, layout_sheets, new_run_id
from physadv.validation import Record

CHART_SCHEMA = "physadv.chart/1"
CHART_FILE, CHART_PNG = "chart.pdf", "chart.png"
CHART_DPI = 144.0  # a 288/j pitch (j = 2): 0.176 mm, finer than the edges' expected blur
CHART_MM = 186.0  # the chart image's side; fits A4 and letter inside the markers
RAMP_STEPS = 18
EDGE_SLANT_DEG = 5.0
EDGE_SIDE_MM = 22.0
EDGE_DARK, EDGE_LIGHT = 50, 205  # ISO 12233:2014's low-contrast (about 4:1 in reflectance) edges
FLAT_LEVELS = (32, 96, 160, 224)
FLAT_MM = 30.0
SUPERSAMPLE = 8


def colorchecker_srgb() -> np.ndarray:
    """``(24, 3)`` uint8 sRGB of the ColorChecker patches (colour-science reference, Bradford-adapted to D65)."""
    import colour

    checker = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    xyy = np.array(list(checker.data.values()))
    rgb = colour.XYZ_to_sRGB(colour.xyY_to_XYZ(xyy), illuminant=checker.illuminant,
                             chromatic_adaptation_transform="Bradford")
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def chart_design() -> dict:
    """Patches and edges in chart millimetres (origin at the chart image's top-left corner)."""
    patches = []
    ramp_w = CHART_MM / RAMP_STEPS
    for step, level in enumerate(np.round(np.linspace(0, 255, RAMP_STEPS)).astype(int)):
        patches.append({"kind": "grey", "box_mm": [step * ramp_w, 0.0, ramp_w, 16.0], "rgb": [int(level)] * 3})
    colour_w = CHART_MM / 12
    for index, rgb in enumerate(colorchecker_srgb()):
        row, col = divmod(index, 12)
        patches.append({"kind": "colour", "box_mm": [col * colour_w, 20.0 + row * 16.0, colour_w, 16.0],
                        "rgb": [int(v) for v in rgb]})
    # The lower field: a 3×3 grid, edge squares at the corners and the centre, flat patches between.
    top, cell_w, cell_h = 56.0, CHART_MM / 3, (CHART_MM - 56.0) / 3
    edges, flats = [], iter(FLAT_LEVELS)
    for row in range(3):
        for col in range(3):
            cx, cy = (col + 0.5) * cell_w, top + (row + 0.5) * cell_h
            if (row + col) % 2 == 0:
                edges.append({"centre_mm": [cx, cy], "side_mm": EDGE_SIDE_MM, "angle_deg": EDGE_SLANT_DEG,
                              "dark": EDGE_DARK, "light": EDGE_LIGHT,
                              "field_mm": [cx - 18.0, cy - 18.0, 36.0, 36.0]})
            else:
                level = next(flats)
                patches.append({"kind": "flat", "box_mm": [cx - FLAT_MM / 2, cy - FLAT_MM / 2, FLAT_MM, FLAT_MM],
                                "rgb": [level] * 3})
    return {"patches": patches, "edges": edges}


def edge_square_corners(edge: dict) -> np.ndarray:
    """``(4, 2)`` corners (mm, chart or page frame alike) of a slanted square, clockwise from top-left."""
    half = edge["side_mm"] / 2
    angle = math.radians(edge["angle_deg"])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    square = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return square @ rotation.T + np.asarray(edge["centre_mm"])


def render_chart(design: dict, pitch_mm: float) -> np.ndarray:
    """The chart image ``(N, N, 3)`` uint8 at ``pitch_mm`` per pixel; white paper elsewhere."""
    side = int(round(CHART_MM / pitch_mm))
    big = np.full((side * SUPERSAMPLE, side * SUPERSAMPLE, 3), 255, dtype=np.uint8)
    scale = SUPERSAMPLE / pitch_mm

    def box(x: float, y: float, w: float, h: float) -> np.ndarray:
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])

    def fill(corners_mm: np.ndarray, rgb) -> None:
        # fillPoly with 8 fractional bits: vertices at 1/256 of a supersampled pixel.
        points = np.round(corners_mm * scale * 256).astype(np.int32)
        cv2.fillPoly(big, [points], tuple(int(v) for v in rgb), cv2.LINE_8, shift=8)

    for patch in design["patches"]:
        fill(box(*patch["box_mm"]), patch["rgb"])
    for edge in design["edges"]:
        fill(box(*edge["field_mm"]), [edge["light"]] * 3)
        fill(edge_square_corners(edge), [edge["dark"]] * 3)
    return cv2.resize(big, (side, side), interpolation=cv2.INTER_AREA)


def _to_page(design: dict, origin_mm: tuple[float, float]) -> dict:
    ox, oy = origin_mm
    patches = [{**p, "box_mm": [p["box_mm"][0] + ox, p["box_mm"][1] + oy, *p["box_mm"][2:]]}
               for p in design["patches"]]
    edges = [{**e, "centre_mm": [e["centre_mm"][0] + ox, e["centre_mm"][1] + oy],
              "field_mm": [e["field_mm"][0] + ox, e["field_mm"][1] + oy, *e["field_mm"][2:]]} for e in design["edges"]]
    return {"patches": patches, "edges": edges}


def write_chart(out_dir: str | Path, *, paper: str = "a4", run_id: str | None = None) -> Manifest:
    """Write ``out_dir/chart.pdf``, ``out_dir/chart.png`` (the chart image) and ``out_dir/manifest.json``.

    The manifest is an ordinary sheet manifest (one page, one cell ``chart``) whose
    ``extra["chart"]`` records every patch (kind, ``box_mm`` x/y/w/h on the page, printed ``rgb``)
    and edge (centre, side, slant, dark and light levels) in page millimetres, plus the chart's
    pixel pitch.

    Raises:
        InputError: an unknown paper, or ``out_dir`` already holds a manifest (a chart's or sheets').
    """
    out = Path(out_dir)
    if (out / MANIFEST_FILE).exists():
        # Overwriting it would orphan what it describes: the sheets beside it, or the printed copies
        # of an earlier chart (their photos would then show an "unknown run").
        raise InputError(f"{out} already holds a {MANIFEST_FILE} (of a chart or of sheets); choose another "
                         "output folder or remove it")
    layout = SheetLayout(paper=paper, columns=1, rows=1, dpi=CHART_DPI, marker_mm=20.0, qr_mm=18.0)
    probe, _ = _layout(out, layout, run_id or new_run_id(), np.zeros((8, 8, 3), np.uint8))
    pitch = 25.4 / probe.layout_dpi
    pixels = render_chart(chart_design(), pitch)
    manifest, images = _layout(out, layout, probe.run_id, pixels)
    cell = manifest.pages[0].cells[0]
    chart = {"schema": CHART_SCHEMA, "pitch_mm": pitch, **_to_page(chart_design(), cell.box_mm[:2])}
    manifest = replace(manifest, extra={**manifest.extra, "chart": chart})
    atomic_write_bytes(out / CHART_FILE, draw_sheets(manifest, images, title="physadv calibration chart: "
                                                     "grey ramp, ColorChecker colours, slanted edges, flat greys"))
    write_manifest(manifest, out / MANIFEST_FILE)
    return manifest


def _layout(out: Path, layout: SheetLayout, run_id: str, pixels: np.ndarray) -> tuple[Manifest, list[np.ndarray]]:
    write_png(out / CHART_PNG, pixels)
    image = SheetImage(path=out / CHART_PNG, image_id="chart", kind="clean", file=CHART_PNG, source="physadv chart",
                       label_name="calibration chart")
    return layout_sheets([image], run_id, layout)


PATCH_KINDS = ("grey", "colour", "flat")
MAX_PATCHES, MAX_EDGES = 1000, 100  # the chart has 46 and 5; more is a corrupt or hostile record
# A patch narrower than this is no patch of a chart: the inner 60 % that calibrate reads (3 mm of 5)
# would hold fewer than 30 photo pixels at 2 px/mm, about what a 720p frame gives an A4 page filling it.
MIN_PATCH_MM = 5.0
# physadv calibrate reads a band this far to each side of a slanted edge: it must lie on the page,
# and a square's side must be wider than two bands, or one side's band reaches the opposite side.
EDGE_BAND_MM = 2.5


def chart_of(manifest: Manifest) -> dict:
    """The chart record of a chart manifest, checked field by field (a manifest is untrusted input).

    A chart is one page; its record holds ``schema``, ``pitch_mm``, ``patches`` (``kind``, ``box_mm``,
    ``rgb``) and ``edges`` (``centre_mm``, ``side_mm``, ``angle_deg``, ``dark``, ``light``, ``field_mm``),
    nothing else. It needs a grey ramp of at least 2 distinct neutral levels including paper white
    (255), at least one colour patch, one flat patch and one edge square; every box lies on the page.

    Raises:
        InputError: the manifest is not a chart's (e.g. an attack sheet's), or its record is malformed
            (the message names the field).
    """
    chart = manifest.extra.get("chart") if isinstance(manifest.extra, dict) else None
    if not isinstance(chart, dict) or chart.get("schema") != CHART_SCHEMA:
        raise InputError("the manifest is not a calibration chart's (make one with `physadv chart --out DIR`)")
    record = Record(chart, "malformed chart record in the manifest: extra.chart")
    record.only(("schema", "pitch_mm", "patches", "edges"))
    if len(manifest.pages) != 1:
        raise record.fail(None, f"a chart is one page, the manifest has {len(manifest.pages)}")
    page = manifest.page_size_mm
    record.number("pitch_mm", 1e-3, 1.0)
    patches = [_chart_patch(patch, page) for patch in record.records("patches", 1, MAX_PATCHES)]
    edges = [_chart_edge(edge, page) for edge in record.records("edges", 1, MAX_EDGES)]
    greys = [p["rgb"][0] for p in patches if p["kind"] == "grey"]
    if len(set(greys)) != len(greys):
        raise record.fail("patches", f"grey levels repeat ({sorted(greys)}): each level of the ramp is one patch")
    if len(greys) < 2 or 255 not in greys:
        raise record.fail("patches", f"the grey ramp needs at least 2 levels including paper white 255, "
                                     f"got {sorted(greys)}")
    for kind in ("colour", "flat"):
        if not any(p["kind"] == kind for p in patches):
            raise record.fail("patches", f"no {kind} patch")
    return {**chart, "patches": patches, "edges": edges}


def _inside(box: tuple[float, ...], page: tuple[float, float]) -> bool:
    x, y, w, h = box
    return w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= page[0] and y + h <= page[1]


def _chart_patch(patch: Record, page: tuple[float, float]) -> dict:
    patch.only(("kind", "box_mm", "rgb"))
    kind = patch.choice("kind", PATCH_KINDS)
    box = patch.numbers("box_mm", 4, 0, 10_000)
    if not _inside(box, page) or min(box[2:]) < MIN_PATCH_MM:
        raise patch.fail("box_mm", f"{list(box)} is not a box of at least {MIN_PATCH_MM:g} mm on the "
                                   f"{page[0]:g} × {page[1]:g} mm page")
    rgb = patch.integers("rgb", 3, 0, 255)
    if kind != "colour" and len(set(rgb)) != 1:
        raise patch.fail("rgb", f"{list(rgb)}: a {kind} patch is neutral (R = G = B)")
    return {"kind": kind, "box_mm": list(box), "rgb": list(rgb)}


def _chart_edge(edge: Record, page: tuple[float, float]) -> dict:
    edge.only(("centre_mm", "side_mm", "angle_deg", "dark", "light", "field_mm"))
    record = {"centre_mm": list(edge.numbers("centre_mm", 2, 0, 10_000)),
              "side_mm": edge.number("side_mm", 2 * EDGE_BAND_MM + 1e-6, 100),
              "angle_deg": edge.number("angle_deg", -45, 45), "dark": edge.integer("dark", 0, 254),
              "light": edge.integer("light", 1, 255), "field_mm": list(edge.numbers("field_mm", 4, 0, 10_000))}
    if record["angle_deg"] == 0 or abs(record["angle_deg"]) == 45:
        raise edge.fail("angle_deg", f"{record['angle_deg']:g}: a slanted edge is turned by more than 0 and less than 45°")
    if record["dark"] >= record["light"]:
        raise edge.fail("dark", f"{record['dark']} is not darker than light {record['light']}")
    corners = edge_square_corners(record)
    reach = np.array([corners.min(axis=0) - EDGE_BAND_MM, corners.max(axis=0) + EDGE_BAND_MM])
    if reach.min() < 0 or reach[1, 0] > page[0] or reach[1, 1] > page[1]:
        raise edge.fail("centre_mm", f"the {record['side_mm']:g}-mm square at {record['centre_mm']} (with the "
                                     f"{EDGE_BAND_MM:g}-mm band read around it) leaves the {page[0]:g} × {page[1]:g} mm page")
    if not _inside(tuple(record["field_mm"]), page):
        raise edge.fail("field_mm", f"{record['field_mm']} is not a box on the page")
    return record
