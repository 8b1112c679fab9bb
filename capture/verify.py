"""The content check: every crop is compared with its own source image before it is classified.

For each cell the crop cut with the page geometry is aligned to the cell's source PNG (clean
cells to the clean PNG, adversarial to the adversarial one) with :func:`cv2.findTransformECC`
(a translation) on band-limited grey copies: both are area-reduced to at most :data:`BAND_SIDE`
pixels and blurred with σ = :data:`BAND_SIGMA` there, so print, lens and JPEG blur do not count,
and the source is first mapped to the crop's tones (:func:`tone_matched`). A translation, not a
homography: on smooth 64-px images ECC's homography wandered by 2–5 % in scale on crops cut with
the true geometry (corners off by 1–3 px), its translation by ≤ 0.7 px.

The alignment gives

- a **score**: ECC's correlation coefficient of the aligned band-limited images (1 = identical up
  to gain and offset);
- a **displacement**: the largest shift of a cell corner it implies, in source pixels.

A cell is kept when the score is at least :data:`MIN_SCORE` and the displacement at most
:data:`MAX_SHIFT_FRACTION` of the cell's longer side (:data:`MAX_RESIDUAL_PX` for the final
geometry). Cells are first cut with the detection's page model (the homography, or on a page that
is not flat the spline through the marker corners and reference dots: :mod:`physadv.capture.mesh`).
When some cell's content sits more than :data:`REFINE_MIN_PX` from it, the model is refitted
through the same control points and the centres of the cells whose content was found, which gives
each cell its own homography (from its four corners); the photo is resampled on it and aligned
again. A cell whose residual is still above :data:`MAX_RESIDUAL_PX` is not explained by the model
and is rejected. The crop is always the photo's own pixels; only their geometry is refined.

Two more flags per cell:

- **glare**: more than :data:`GLARE_MAX_FRACTION` of the crop's pixels clipped (every channel of
  the 3 × 3 mean at or above :data:`CLIPPED_LEVEL`);
- **too blurry**: along either cell axis, the Gaussian σ that best turns the source into the crop
  (the smallest one within :data:`BLUR_TOLERANCE` of the best correlation, so smooth images are
  not called blurry) exceeds :data:`MAX_CELL_BLUR_PX` photo pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from physadv.capture.crops import cell_to_page, cell_to_photo, density, warp_cell
from physadv.capture.detect import MAX_BLUR_PX, PageDetection, project
from physadv.capture.mesh import PageModel
from physadv.printouts.manifest import Cell, Page

BAND_SIDE = 64
BAND_SIGMA = 1.0
# Calibrated on flat virtual-camera photos (benchmarks/bench_capture.py): right crops score
# ≥ 0.92 (720p), ≥ 0.97 (1080p), ≥ 0.98 (12 MP); a crop of another image of the run ≤ 0.46.
MIN_SCORE = 0.8
MAX_SHIFT_FRACTION = 0.1
# Translations measured on crops cut with the true geometry of flat virtual-camera pages reach
# 0.7 source px (720p): below REFINE_MIN_PX the marker geometry, more precise there, is kept.
REFINE_MIN_PX = 1.0
MAX_RESIDUAL_PX = 1.0
CLIPPED_LEVEL = 250
GLARE_MAX_FRACTION = 0.1
# The marker bound of physadv.capture.detect (photo pixels), applied to each cell.
MAX_CELL_BLUR_PX = MAX_BLUR_PX
BLUR_SIDE = 96
BLUR_GRID_PX = (0.0, 1.5, 3.0, 4.5, 6.0, 8.0, 11.0, 16.0)
BLUR_TOLERANCE = 0.002


@dataclass(frozen=True)
class CellCheck:
    """The content check of one cell.

    Attributes:
        cell: the manifest cell index.
        cell_to_photo: ``(3, 3)`` source pixel centres → photo pixels: the crop's final geometry.
        refined: whether the model refitted through the cells' content gave this cell's geometry.
        shift_px: largest cell-corner displacement between the page model and the content, source px.
        residual_px: the same for the final geometry (equal to ``shift_px`` when not refined).
        score: ECC correlation of the band-limited crop and source at the final geometry.
        glare: fraction of clipped crop pixels.
        blur_px: the cell's blur σ along its blurrier axis, photo pixels.
        reason: ``None`` when the cell is kept, else a key of :data:`physadv.capture.detect.REASONS`.
        detail: one line for ``rejected.csv``.
    """

    cell: int
    cell_to_photo: np.ndarray
    refined: bool
    shift_px: float
    residual_px: float
    score: float
    glare: float
    blur_px: float
    reason: str | None
    detail: str

    def record(self) -> dict:
        """JSON-ready summary for ``capture.json``."""
        return {"cell": self.cell, "cell_to_photo": [[float(v) for v in row] for row in self.cell_to_photo],
                "refined": self.refined, "shift_px": _round(self.shift_px), "residual_px": _round(self.residual_px),
                "score": _round(self.score), "glare": _round(self.glare), "blur_px": _round(self.blur_px),
                "accepted": self.reason is None, "reason": self.reason, "detail": self.detail}


def _round(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def grey_float(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB or ``(H, W)`` uint8 → ``(H, W)`` float32 luma."""
    return (cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image).astype(np.float32)


def _band(grey: np.ndarray, factor: float, sigma: float) -> np.ndarray:
    height, width = grey.shape
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA) if factor < 1 else grey
    return cv2.GaussianBlur(small, (0, 0), sigma)


def _to_source(warp: np.ndarray, factor_xy: tuple[float, float]) -> np.ndarray:
    """A working-size warp (pixel centres at integers) expressed in source pixels."""
    fx, fy = factor_xy
    scale = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
    return np.linalg.inv(scale) @ warp @ scale


def tone_matched(crop_grey: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The source ``(h, w, 3)`` as the crop's grey would show it: a least-squares fit of the crop's
    grey on the source's channels and their squares (ink, paper, colour cast, saturation and print
    gamma change colours; without it ECC absorbs the mismatch into the geometry)."""
    channels = source.reshape(-1, source.shape[-1]).astype(np.float32) / 255 if source.ndim == 3 \
        else source.reshape(-1, 1).astype(np.float32) / 255
    design = np.concatenate([np.ones((len(channels), 1), np.float32), channels, channels ** 2], axis=1)
    blurred = (cv2.GaussianBlur(x, (0, 0), 1.0) for x in (crop_grey, design.reshape(*crop_grey.shape, -1)))
    target, features = next(blurred).reshape(-1).astype(np.float64), next(blurred).reshape(len(design), -1)
    features = features.astype(np.float64)
    # The 7 × 7 normal equations: lstsq on the whole (pixels × 7) system took 10–25 ms a cell here.
    coefficients = np.linalg.lstsq(features.T @ features, features.T @ target, rcond=None)[0]
    return (design @ coefficients).reshape(crop_grey.shape).astype(np.float32)


def align(crop_grey: np.ndarray, source: np.ndarray) -> tuple[float, np.ndarray]:
    """ECC alignment of a crop to its source: ``(h, w)`` float32 grey crop, ``(h, w, 3)`` uint8 source.

    Returns:
        the correlation coefficient (``-inf`` when ECC fails) and the ``(3, 3)`` warp from source
        pixels to crop pixels (identity on failure).
    """
    height, width = crop_grey.shape
    factor = min(1.0, BAND_SIDE / max(height, width))
    template = _band(tone_matched(crop_grey, source), factor, BAND_SIGMA)
    moving = _band(crop_grey, factor, BAND_SIGMA)
    factor_xy = (template.shape[1] / width, template.shape[0] / height)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    try:
        score, shift = cv2.findTransformECC(template, moving, np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION,
                                            criteria, None, 1)
    except cv2.error:
        return -math.inf, np.eye(3)
    warp = np.vstack([shift, [0, 0, 1]])
    return float(score), _to_source(warp.astype(np.float64), factor_xy)


def corner_shift(warp: np.ndarray, size_px: tuple[int, int]) -> float:
    """Largest displacement (source px) of the cell's outer corners under ``warp``."""
    width, height = size_px
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    return float(np.linalg.norm(project(warp, corners) - corners, axis=1).max())


def glare_fraction(crop: np.ndarray) -> float:
    """Share of pixels whose 3 × 3 mean is clipped in every channel."""
    lowest = crop.min(axis=2) if crop.ndim == 3 else crop
    return float((cv2.blur(lowest, (3, 3)) >= CLIPPED_LEVEL).mean())


def blur_px(crop_grey: np.ndarray, source_grey: np.ndarray, photo_per_source: float) -> float:
    """The crop's blur σ (photo px) along its blurrier axis, relative to its source (see module doc)."""
    height, width = source_grey.shape
    factor = min(1.0, BLUR_SIDE / max(height, width))
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    crop, source = ((cv2.resize(x, size, interpolation=cv2.INTER_AREA) if factor < 1 else x)
                    for x in (crop_grey, source_grey))
    per_photo_px = factor / max(photo_per_source, 1e-6)  # working px per photo px
    crop = (crop - crop.mean()) / (crop.std() + 1e-6)
    worst = 0.0
    for axis in (0, 1):
        scores = {}
        for sigma in BLUR_GRID_PX:
            working = sigma * per_photo_px
            if working > max(size) / 3:
                break
            blurred = source if sigma == 0 else cv2.GaussianBlur(
                source, (0, 0), sigmaX=working if axis == 0 else 1e-3, sigmaY=working if axis == 1 else 1e-3)
            blurred = (blurred - blurred.mean()) / (blurred.std() + 1e-6)
            scores[sigma] = float((crop * blurred).mean())
        best = max(scores.values())
        worst = max(worst, min(sigma for sigma, score in scores.items() if score >= best - BLUR_TOLERANCE))
    return worst


@dataclass(frozen=True)
class _Measurement:
    crop: np.ndarray
    score: float
    warp: np.ndarray
    shift_px: float


def _measure(image: np.ndarray, cell_to_photo: np.ndarray, source: np.ndarray) -> _Measurement:
    size = (source.shape[1], source.shape[0])
    crop = warp_cell(image, cell_to_photo, size)
    score, warp = align(grey_float(crop), source)
    return _Measurement(crop, score, warp, corner_shift(warp, size) if math.isfinite(score) else math.inf)


def _usable(measurement: _Measurement, size: tuple[int, int]) -> bool:
    """Content found, near enough, and not washed out by glare: fit to be a reference point."""
    return (measurement.score >= MIN_SCORE and measurement.shift_px <= MAX_SHIFT_FRACTION * max(size)
            and glare_fraction(measurement.crop) <= GLARE_MAX_FRACTION)


def _refined_model(detection: PageDetection, page: Page,
                   cells: list[tuple[Cell, np.ndarray, _Measurement]]) -> PageModel | None:
    """The page model through its control points — every corner of the markers used and every
    reference dot found — and the centre of every cell whose content was found, where it was found;
    ``None`` with fewer than the 3 points a spline needs."""
    by_id = {marker.id: np.asarray(marker.corners_mm, dtype=np.float64) for marker in page.markers}
    points = [by_id[i] for i in detection.marker_corners_px] + [np.array([dot.centre_mm]) for dot in detection.dots]
    pixels = [np.asarray(c) for c in detection.marker_corners_px.values()] + [np.array([dot.photo_px])
                                                                             for dot in detection.dots]
    for cell, geometry, measurement in cells:
        if _usable(measurement, cell.size_px):
            centre = np.array([[(cell.size_px[0] - 1) / 2, (cell.size_px[1] - 1) / 2]])
            points.append(project(cell_to_page(cell), centre))
            pixels.append(project(geometry, project(measurement.warp, centre)))
    if sum(len(group) for group in points) < 3:
        return None
    return PageModel(detection.homography).with_points(np.concatenate(points), np.concatenate(pixels))


def check_page(image: np.ndarray, detection: PageDetection, page: Page,
               sources: dict[int, np.ndarray]) -> list[tuple[np.ndarray, CellCheck]]:
    """Crop every cell of a detected page and check it against its source (see the module doc).

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo.
        detection: the page found in it.
        page: the manifest page.
        sources: per cell index, the ``(h, w, 3)`` uint8 RGB source image.

    Returns:
        per cell, in manifest order: the crop ``(h, w, 3)`` uint8 (the photo's pixels on the final
        geometry) and its check.
    """
    first = []
    for cell in page.cells:
        geometry = cell_to_photo(detection.page_model, cell)
        first.append((cell, geometry, _measure(image, geometry, sources[cell.index])))
    curled = any(_usable(m, cell.size_px) and m.shift_px > REFINE_MIN_PX for cell, _, m in first)
    mesh = _refined_model(detection, page, first) if curled else None
    results = []
    for cell, geometry, measurement in first:
        source = sources[cell.index]
        final, refined = measurement, False
        if mesh is not None and _usable(measurement, cell.size_px):
            geometry = cell_to_photo(mesh, cell)
            final, refined = _measure(image, geometry, source), True
        results.append((final.crop, _verdict(cell.index, geometry, refined, measurement, final, source)))
    return results


def _verdict(cell_index: int, cell_to_photo: np.ndarray, refined: bool, first: _Measurement,
             final: _Measurement, source: np.ndarray) -> CellCheck:
    size = (source.shape[1], source.shape[0])
    glare = glare_fraction(final.crop)
    blur = blur_px(grey_float(final.crop), grey_float(source), density(cell_to_photo, size))
    limit = MAX_SHIFT_FRACTION * max(size)
    reason, detail = None, ""
    if glare > GLARE_MAX_FRACTION:
        reason, detail = "glare", f"{glare:.0%} of the cell clipped > {GLARE_MAX_FRACTION:.0%}"
    elif not (first.score >= MIN_SCORE and final.score >= MIN_SCORE):
        score = min(first.score, final.score)
        # ECC fails (score -inf) when either image is flat: a uniform source cannot vouch for any crop.
        reason, detail = "content mismatch", (f"match score {score:.3f} < {MIN_SCORE}" if math.isfinite(score) else
                                              "no alignment: the crop or its source has no texture to match")
    elif first.shift_px > limit:
        reason, detail = "misaligned", f"content {first.shift_px:.1f} source px from the page geometry > {limit:.1f} px"
    elif final.shift_px > MAX_RESIDUAL_PX:
        reason, detail = "misaligned", (f"residual {final.shift_px:.2f} source px > {MAX_RESIDUAL_PX} px "
                                        f"({'after refitting through the cells' if refined else 'page model'})")
    elif blur > MAX_CELL_BLUR_PX:
        reason, detail = "too blurry", f"cell blur σ {blur:.1f} photo px > {MAX_CELL_BLUR_PX} px"
    return CellCheck(cell_index, cell_to_photo, refined, first.shift_px, final.shift_px, final.score, glare, blur,
                     reason, detail)
