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
        InputError: an unknown paper.
    """
    out = Path(out_dir)
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


def chart_of(manifest: Manifest) -> dict:
    """The chart record of a chart manifest, checked.

    Raises:
        InputError: the manifest is not a chart's (e.g. an attack sheet's), or its record is malformed.
    """
    chart = manifest.extra.get("chart") if isinstance(manifest.extra, dict) else None
    if not isinstance(chart, dict) or chart.get("schema") != CHART_SCHEMA:
        raise InputError("the manifest is not a calibration chart's (make one with `physadv chart --out DIR`)")
    try:
        pitch = float(chart["pitch_mm"])
        width, height = manifest.page_size_mm
        for patch in chart["patches"]:
            x, y, w, h = (float(v) for v in patch["box_mm"])
            if not (0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 0 and h > 0):
                raise ValueError(f"patch box {patch['box_mm']} outside the page")
            if patch["kind"] not in ("grey", "colour", "flat") or len(patch["rgb"]) != 3 or \
                    not all(isinstance(v, int) and 0 <= v <= 255 for v in patch["rgb"]):
                raise ValueError(f"bad patch {patch!r:.80}")
        for edge in chart["edges"]:
            cx, cy = (float(v) for v in edge["centre_mm"])
            if not (0 < cx < width and 0 < cy < height and 0 < float(edge["side_mm"]) < 100
                    and 0 < abs(float(edge["angle_deg"])) < 45 and 0 <= edge["dark"] < edge["light"] <= 255):
                raise ValueError(f"bad edge {edge!r:.80}")
        if not (0 < pitch < 1) or not chart["edges"] or len(chart["patches"]) < 16:
            raise ValueError("too few patches or edges, or a bad pitch")
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed chart record in the manifest: {error}") from None
    return chart
