"""Find printed sheets in a photo: ArUco corner markers → page homography → identity code check.

Detection runs on a grey copy downscaled to at most :data:`DETECT_MAX_SIDE` pixels (ArUco's
adaptive thresholding costs grow with the pixel count, and 4×4 markers need only ~20 px), then
every marker corner is refined with :func:`cv2.cornerSubPix` on the full-resolution grey image.
All corners of all markers of a page (up to 16 points) go into a RANSAC homography, re-fitted by
least squares + Levenberg–Marquardt on the inliers (:func:`cv2.findHomography` with method 0).

The marker ids name a candidate page (one of 250 id blocks, so two runs may share them); the
page's 50-bit identity code, sampled through the page model, must then equal this run's
(:func:`read_identity`) before the page is accepted, whether or not its QR code can be read.

Pages that are not flat. The page's reference dots (manifests that have them) are located outward
from the markers (:func:`physadv.capture.mesh.locate_dots`). When every dot found lies within
:data:`FLAT_TOLERANCE_PX` (or :data:`FLAT_TOLERANCE_SOURCE_PX` source pixels of the page's cells, if
more) of the homography, the page is flat and the homography is its model.
Otherwise — or when the markers do not fit one flat page at all — the model is a thin-plate spline
through the marker corners and the dots (:class:`physadv.capture.mesh.PageModel`), accepted only when
at least :data:`MIN_DOTS` dots (and half of those printed) were found and every dot, left out of the
fit, is predicted within :data:`MAX_HELD_OUT_PX` (or one source pixel of the page's cells, if more):
else the page is rejected ("unexplained warp").

A page is only accepted when its geometry and identity can be trusted; otherwise it becomes a
:class:`Rejection` with a fixed reason keyword (see :data:`REASONS`) — a wrong crop is worse than
no crop, as Kurakin et al. discarded photos whose codes failed.

Coordinates: page millimetres (origin top-left, y down, as in :mod:`physadv.printouts.manifest`); photo
pixels in OpenCV's convention (pixel centres at integer coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from physadv.capture.mesh import FoundDot, PageModel, box_corners, leave_one_out_px, locate_dots
from physadv.printouts.manifest import IdentityBlock, Manifest, Page, identity_bits, page_of_marker, parse_qr_payload

DETECT_MAX_SIDE = 1600
MIN_MARKERS = 3
# RANSAC inlier threshold: a fraction of the marker side in photo pixels, at least RANSAC_MIN_PX
# (small, strongly tilted 720p markers have ~1 px corner errors). A 4 %
# error is far above corner noise and far below a marker at the wrong place.
RANSAC_FRACTION = 0.04
RANSAC_MIN_PX = 2.0
# The accepted fit: RMS reprojection error of the inlier corners. Corner noise measured on sharp
# synthetic photos is ~0.1–0.3 px; the bound leaves room for blur and JPEG at 12 MP and 720p.
MAX_RMS_PX = 1.5
MAX_RMS_FRACTION = 0.015
# Blur bound: Gaussian σ of the marker edges in photo pixels. Measured on virtual-camera photos with
# extra Gaussian blur: every page found with σ ≤ 4.2 px had a p95 cell-corner error ≤ 0.3 px; the one
# page still found at σ ≈ 5.5 px (12 MP) was off by 4 px. Blurrier markers are mostly not decoded.
MAX_BLUR_PX = 5.0
# A photo where no page is read is called "too blurry" (not "no markers") when its sharpest edges
# are blurred beyond MAX_DETECT_BLUR_PX (photo_blur_px, pixels of the copy markers are searched
# in). photo_blur_px is an index, not a calibrated σ: its 32-px tiles under-read long blurs. Measured
# with `benchmarks/bench_capture.py --blur-index --photos 20` (JPEG'd virtual-camera photos of the
# bench's sheets): sharp photos read ≤ 0.95 at 720p, ≤ 0.82 at 1080p and 12 MP, the bundled photographs
# (no sheet) ≤ 0.93; a straight shake of 0.6 % of the frame width or more reads ≥ 1.12 at every
# resolution, the stress condition's 0.6–2 % ≥ 1.02; of those photos 1 in 20 (720p, 0.6 %) or none
# still had a readable page.
# Shakes of 0.3–0.45 % straddle the bound (0.0–1.9) while 0–50 % of their pages are still read.
MAX_DETECT_BLUR_PX = 1.0
PRESMOOTH_PX = 1.0
# A tile's contrast is read over the tile and this rim: without it a blurred step cut by the tile's
# border showed a part of its height beside its full slope, and 11-15 px of motion at 1080p read as
# 0.4-0.8 (sharp), giving "no markers" (issue 12 review; ``benchmarks/bench_capture.py --blur-index``).
CONTRAST_HALO_PX = 16
BLUR_DIRECTIONS = 8
SHARPEST_TILE = 5  # the photo's blur is that of its 5th-sharpest tile: robust to a spike, blind to smooth areas
# Smaller markers give fewer than 2.3 px per bit, where decoding and corners become unreliable; the
# smallest virtual-camera pages at 720p (40 % fill) have ~19 px markers and p95 corner errors ≤ 0.3 px.
MIN_MARKER_SIDE_PX = 14.0
# Candidate quads with a perimeter under 4 % of the long side are not decoded at first: decoding
# the many small squares of a cluttered scene dominated the time (0.8 s → 0.15 s on a synthetic
# 12-MP photo full of small squares). Only when a page is seen with too few markers is the photo
# searched again down to 2 % (far markers of a small, strongly tilted page).
MIN_PERIMETER_RATE, RETRY_PERIMETER_RATE = 0.04, 0.02
MARKER_BITS = 6  # 4×4 data bits plus a one-bit black border on each side
# Identity code (physadv.printouts.manifest.identity_bits): a Manchester pair is read when its two
# modules differ by at least IDENTITY_CONFIDENCE of the block's contrast (10th–90th percentile of
# its modules); a page is confirmed when at least IDENTITY_MIN_BITS pairs are read and every one
# equals this run's bit. Another run's code matches IDENTITY_MIN_BITS read bits with probability
# 2^-40 ≈ 9e-13 (fewer bits read: "unconfirmed identity"). Any differing bit refuses the page;
# up to IDENTITY_MAX_MISREAD of the bits read differing is taken for a misread of our own code
# (seen on strongly curled pages, "unconfirmed identity"); more, for another run's code, which
# differs in half its bits (then "another run").
IDENTITY_MIN_BITS = 40
IDENTITY_CONFIDENCE = 0.25
IDENTITY_MIN_CONTRAST = 20.0
IDENTITY_MAX_MISREAD = 0.25
IDENTITY_SEARCH = (-4, -2, 0, 2, 4)  # module-grid shifts searched, in eighths of a module
# Reference dots, measured on virtual-camera photos (benchmarks/bench_capture.py): on flat pages
# every dot found lies within 0.4 px of the true homography (720p, 1080p, 12 MP) — up to 1.8 px under
# a glare spot at 12 MP (0.5 source px there) —, on curled ones up to 23 px off it; held out of the
# spline, a dot of a curled page is predicted within 0.6 px. A page is flat when every dot lies within
# FLAT_TOLERANCE_PX or FLAT_TOLERANCE_SOURCE_PX source pixels of its cells, whichever is more (less
# moves no crop measurably: the content check refines beyond 1 source px).
FLAT_TOLERANCE_PX = 1.0
FLAT_TOLERANCE_SOURCE_PX = 0.5
MAX_HELD_OUT_PX = 1.0
MIN_DOTS = 4

REASONS = {
    "unreadable": "the file is not an image OpenCV/Pillow can read",
    "no markers": "no ArUco marker found",
    "unknown run": "markers found, but none of this run's pages",
    "too few markers": f"fewer than {MIN_MARKERS} corner markers of a page found",
    "too small": "the page's markers are too small in the photo",
    "too blurry": "the marker edges are too blurred for trustworthy corners",
    "inconsistent geometry": "the markers do not fit one flat page (reprojection error too high)",
    "unexplained warp": "the page is not flat and no local model through its reference dots explains it",
    "another run": "the page's identity code or QR code names another run",
    "unconfirmed identity": "the page's identity code could not be read (covered, glare, too small)",
    "content mismatch": "a cell's crop does not match its source image (wrong picture, occluded, unexplained warp)",
    "misaligned": "a cell's crop is displaced from its source by more than the allowed fraction of the cell",
    "glare": "too many of a cell's pixels are clipped highlights",
}


@dataclass(frozen=True)
class Rejection:
    """Why a photo, or one page in it, gives no crops. ``reason`` is a key of :data:`REASONS`."""

    reason: str
    detail: str
    page: int | None = None
    cell: int | None = None


@dataclass(frozen=True)
class PageDetection:
    """One sheet found in a photo.

    Attributes:
        page: page index in the manifest.
        homography: ``(3, 3)`` float64, page mm → photo pixels.
        marker_ids: ids of the markers used (inliers).
        rms_px: RMS reprojection error of the inlier marker corners, photo pixels.
        blur_px: estimated Gaussian σ of the marker edges (the blurrier image axis), photo pixels.
        marker_side_px: mean marker side in the photo, pixels.
        identity_bits_read: identity-code bits read (all equal to this run's).
        marker_corners_px: ``{id: (4, 2) photo px}`` of the markers used.
        model: page mm → photo px: the homography, or the spline through markers and dots.
        dots: the reference dots found.
        held_out_px: per dot index, its distance from the spline fitted without it (non-flat pages).
    """

    page: int
    homography: np.ndarray
    marker_ids: tuple[int, ...]
    rms_px: float
    blur_px: float
    marker_side_px: float
    identity_bits_read: int = 0
    marker_corners_px: dict[int, np.ndarray] = field(default_factory=dict)
    model: PageModel | None = None
    dots: tuple[FoundDot, ...] = ()
    held_out_px: dict[int, float] = field(default_factory=dict)

    @property
    def page_model(self) -> PageModel:
        return self.model if self.model is not None else PageModel(self.homography)

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Page mm ``(N, 2)`` → photo pixels ``(N, 2)``, through the page model."""
        return self.page_model(points_mm)


@dataclass(frozen=True)
class PhotoDetection:
    """Everything found in one photo: accepted pages and rejected ones (or the whole photo)."""

    pages: tuple[PageDetection, ...]
    rejections: tuple[Rejection, ...]
    markers_found: int


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``(3, 3)`` homography to ``(N, 2)`` points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(points, homography).reshape(-1, 2)


@lru_cache(maxsize=None)
def _detector(dictionary: str, perimeter_rate: float) -> cv2.aruco.ArucoDetector:
    parameters = cv2.aruco.DetectorParameters()
    # A first sub-pixel pass on the downscaled copy: unrefined corners can be off by a few
    # full-resolution pixels, beyond the reach of the small final cornerSubPix window.
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    parameters.minMarkerPerimeterRate = perimeter_rate
    # Two thresholding passes (windows 7 and 17 px) instead of three (3, 13, 23): on 720p
    # virtual-camera frames the same 80/80 markers are found in 28 ms instead of 41 ms (median).
    parameters.adaptiveThreshWinSizeMin, parameters.adaptiveThreshWinSizeMax = 7, 17
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)), parameters)


def grey(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB/BGR or ``(H, W)`` uint8 → ``(H, W)`` uint8 (channel order barely matters for
    black-on-white markers, so BGR frames from OpenCV and RGB photos are both accepted)."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def detect_markers(grey_image: np.ndarray, dictionary: str, max_side: int = DETECT_MAX_SIDE,
                   perimeter_rate: float = MIN_PERIMETER_RATE) -> tuple[np.ndarray, np.ndarray]:
    """ArUco markers, corners refined to sub-pixel accuracy at full resolution.

    Args:
        grey_image: ``(H, W)`` uint8.
        dictionary: OpenCV name of the ArUco dictionary, e.g. ``"DICT_4X4_1000"``.
        max_side: long side of the copy the markers are searched in.
        perimeter_rate: smallest marker perimeter searched for, as a fraction of that long side.

    Returns:
        ``ids`` ``(M,)`` int and ``corners`` ``(M, 4, 2)`` float64 photo pixels in OpenCV's corner
        order (marker top-left, top-right, bottom-right, bottom-left).
    """
    scale = min(1.0, max_side / max(grey_image.shape))
    small = grey_image if scale == 1.0 else cv2.resize(grey_image, None, fx=scale, fy=scale,
                                                       interpolation=cv2.INTER_AREA)
    found, ids, _ = _detector(dictionary, perimeter_rate).detectMarkers(small)
    if ids is None or len(ids) == 0:
        return np.zeros(0, dtype=int), np.zeros((0, 4, 2))
    # ArUco reports the outermost black pixel centres; in full-resolution pixels with centres at
    # integers, a downscaled pixel centre c maps to (c + 0.5) / scale - 0.5.
    corners = (np.concatenate(found).reshape(-1, 4, 2).astype(np.float64) + 0.5) / scale - 0.5
    return ids.reshape(-1).astype(int), _refine_corners(grey_image, corners)


def _refine_corners(grey_image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """cornerSubPix on each marker's outer corners with a window smaller than one marker bit, so
    that only the two border edges meeting at the corner pull on it (the data bits start one bit in)."""
    refined = corners.copy()
    sides = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).mean(axis=1)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    halves = np.clip(np.floor(0.4 * sides / MARKER_BITS), 2, 12).astype(int)
    for half in np.unique(halves):
        chosen = halves == half
        points = corners[chosen].reshape(-1, 1, 2).astype(np.float32)
        cv2.cornerSubPix(grey_image, points, (int(half), int(half)), (-1, -1), criteria)
        moved = points.reshape(-1, 4, 2).astype(np.float64)
        # A corner that wandered more than a window away latched onto something else: keep the
        # detector's estimate for it.
        far = np.linalg.norm(moved - corners[chosen], axis=2) > half
        refined[chosen] = np.where(far[..., None], corners[chosen], moved)
    return refined


def blur_bits(grey_image: np.ndarray, homography: np.ndarray, marker_corners_mm: np.ndarray) -> float:
    """Gaussian σ of a marker's edges in marker bits (0 = perfectly sharp), along the blurrier axis.

    The marker plus one bit of margin is warped to a canonical 8 px/bit image; for a blurred step
    of contrast ``c`` the steepest gradient is ``c / (σ √(2π))``, so σ follows from the robust
    contrast (5th–95th percentile) and the 99th-percentile gradient. Each axis is measured on its
    own (the marker's edges run along both), so motion blur, which leaves edges along the motion
    sharp, is measured by the edges it smears.
    """
    per_bit = 8
    side_mm = float(np.linalg.norm(marker_corners_mm[1] - marker_corners_mm[0]))
    bit_mm = side_mm / MARKER_BITS
    size = per_bit * (MARKER_BITS + 2)
    origin = marker_corners_mm.min(axis=0) - bit_mm
    canonical_to_mm = np.array([[bit_mm / per_bit, 0, origin[0]], [0, bit_mm / per_bit, origin[1]], [0, 0, 1]])
    patch = cv2.warpPerspective(grey_image, homography @ canonical_to_mm, (size, size),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    patch = patch.astype(np.float32)
    low, high = np.percentile(patch, (5, 95))
    gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3) / 8
    steepest = float(min(np.percentile(np.abs(gx), 99), np.percentile(np.abs(gy), 99)))
    if high - low < 1 or steepest <= 0:
        return math.inf
    return float((high - low) / (steepest * math.sqrt(2 * math.pi)) / per_bit)


def _fit_page(page: Page, found: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray | None, list[int], float]:
    """RANSAC + least-squares/LM homography from the markers ``found`` (id, ``(4, 2)`` corners).

    Returns the homography (or ``None``), the ids of markers whose four corners are all inliers,
    and their RMS reprojection error in pixels.
    """
    by_id = {marker.id: np.asarray(marker.corners_mm, dtype=np.float64) for marker in page.markers}
    source = np.concatenate([by_id[i] for i, _ in found])
    target = np.concatenate([corners for _, corners in found])
    side = float(np.mean([np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1).mean() for _, c in found]))
    homography, mask = cv2.findHomography(source, target, cv2.RANSAC, max(RANSAC_MIN_PX, RANSAC_FRACTION * side),
                                          maxIters=500, confidence=0.999)
    if homography is None:
        return None, [], math.inf
    # A marker counts with three inlier corners: one corner can be pulled off by a shadow edge or
    # neighbouring print while the marker is still where it should be.
    inlier_corner = mask.reshape(-1).astype(bool)
    inlier_marker = inlier_corner.reshape(-1, 4).sum(axis=1) >= 3
    kept = [i for (i, _), ok in zip(found, inlier_marker) if ok]
    if len(kept) < MIN_MARKERS:
        return homography, kept, math.inf
    chosen = inlier_corner & np.repeat(inlier_marker, 4)
    homography, _ = cv2.findHomography(source[chosen], target[chosen], 0)
    if homography is None:
        return None, [], math.inf
    error = project(homography, source[chosen]) - target[chosen]
    return homography, kept, float(np.sqrt((error ** 2).sum(axis=1).mean()))


def _plausible(homography: np.ndarray, page_size_mm: tuple[float, float]) -> bool:
    """The page outline maps to a convex, non-mirrored quadrilateral (a real view of a flat sheet)."""
    width, height = page_size_mm
    outline = project(homography, np.array([[0, 0], [width, 0], [width, height], [0, height]]))
    edges = np.roll(outline, -1, axis=0) - outline
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    return bool((turns > 0).all())


def _qr_run(grey_image: np.ndarray, model: PageModel, page: Page) -> str | None:
    """The run id printed in the page's QR code, or ``None`` when there is none or it is unreadable.

    The QR box is warped upright at 8 px/mm (a 25 mm code at ~200 px) before decoding, so the check
    costs a few milliseconds whatever the photo's size.
    """
    import zxingcpp

    per_mm = 8.0
    for code in page.qr_codes:
        x, y, w, h = code.box_mm
        margin = 0.2 * max(w, h)
        size = (int((w + 2 * margin) * per_mm), int((h + 2 * margin) * per_mm))
        to_mm = np.array([[1 / per_mm, 0, x - margin], [0, 1 / per_mm, y - margin], [0, 0, 1]])
        patch = cv2.warpPerspective(grey_image, model.box_homography(box_corners(code.box_mm)) @ to_mm, size,
                                    flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderValue=255)
        for result in zxingcpp.read_barcodes(patch):
            parsed = parse_qr_payload(result.text)
            if parsed is not None:
                return parsed[0]
    return None


@dataclass(frozen=True)
class IdentityReading:
    """What was read of a page's identity code: pairs read with confidence, and how many of them
    differ from this run's bits, out of ``total``."""

    read: int
    differing: int
    total: int


def read_identity(grey_image: np.ndarray, model: PageModel, page: Page, run_id: str) -> IdentityReading:
    """Compare the identity code printed on ``page`` with the one of ``run_id``.

    Each block is warped upright at 8 px per module (by ``model``'s homography of that block) and
    every module's mean is taken over its central half, on the best-registered grid
    (:func:`_module_means`); a Manchester pair's bit is the sign of (right − left), read only when
    the difference is at least
    :data:`IDENTITY_CONFIDENCE` of the block's contrast — a differential reading that needs no
    threshold and survives light gradients.
    """
    expected = identity_bits(run_id, page.index)
    per_module, read, differing, offset = 8, 0, 0, 0
    for block in page.identity:
        values = _module_means(grey_image, model.box_homography(box_corners(block.box_mm)), block, per_module)
        low, high = np.percentile(values, (10, 90))
        contrast = float(high - low)
        differences = (values[:, 1::2] - values[:, 0::2]).reshape(-1)  # light − dark when the bit is 1
        bits = np.array(expected[offset:offset + block.bits])
        offset += block.bits
        if contrast < IDENTITY_MIN_CONTRAST:
            continue
        confident = np.abs(differences) >= IDENTITY_CONFIDENCE * contrast
        read += int(confident.sum())
        differing += int(((differences > 0) != (bits == 1))[confident].sum())
    return IdentityReading(read, differing, offset)


def _module_means(grey_image: np.ndarray, homography: np.ndarray, block: IdentityBlock, per_module: int) -> np.ndarray:
    """``(rows, columns)`` mean grey of each module's central half, on the module grid shifted by
    up to half a module (:data:`IDENTITY_SEARCH`) to where the Manchester pairs differ most: a
    curled page moves the block off the homography by a millimetre or two. The search maximises
    the contrast of the pairs, whatever bits they carry, so it favours no run's code."""
    x, y, w, h = block.box_mm
    unit = w / block.columns
    step = unit / per_module
    to_mm = np.array([[step, 0, x - unit + 0.5 * step], [0, step, y - unit + 0.5 * step], [0, 0, 1]])
    size = ((block.columns + 2) * per_module, (block.rows + 2) * per_module)
    patch = cv2.warpPerspective(grey_image, homography @ to_mm, size,
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    patch = patch.astype(np.float32)
    quarter = per_module // 4
    best, best_contrast = None, -1.0
    for dy in IDENTITY_SEARCH:
        for dx in IDENTITY_SEARCH:
            top, left = per_module + dy, per_module + dx
            grid = patch[top:top + block.rows * per_module, left:left + block.columns * per_module]
            modules = grid.reshape(block.rows, per_module, block.columns, per_module)
            means = modules[:, quarter:per_module - quarter, :, quarter:per_module - quarter].mean(axis=(1, 3))
            contrast = float(np.abs(means[:, 1::2] - means[:, 0::2]).mean())
            if contrast > best_contrast:
                best, best_contrast = means, contrast
    return best


def photo_blur_px(grey_image: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> float:
    """Gaussian σ, in pixels of the copy markers are searched in, of the sharpest high-contrast
    edges of a photo along its blurriest direction: for a photo where no page could be read, it tells a
    motion-blurred or defocused photo ("too blurry") from one without a sheet.

    On a copy downscaled like marker detection, every 32-px tile with a contrast (5th–95th
    percentile of the tile and a :data:`CONTRAST_HALO_PX` rim around it, so that an edge cut by the
    tile's border counts its whole step) of at least 40 grey levels gives
    σ = contrast / (steepest derivative · √(2π)) along each of :data:`BLUR_DIRECTIONS` directions
    (0°, 22.5°, …, 157.5°); the :data:`SHARPEST_TILE`-th smallest over tiles is the photo's σ in that
    direction, and the largest is returned. Along a motion blur's direction every edge is smeared (an
    edge at angle α to it by L·cos α, its derivative there reduced by cos α), so the direction within
    11.25° of the motion sees it whatever the edges (with four directions, edges almost parallel to
    the motion looked sharp 22.5° off it).
    """
    scale = min(1.0, max_side / max(grey_image.shape))
    small = grey_image if scale == 1.0 else cv2.resize(grey_image, None, fx=scale, fy=scale,
                                                       interpolation=cv2.INTER_AREA)
    tile = 32
    rows, cols = small.shape[0] // tile, small.shape[1] // tile
    if rows == 0 or cols == 0:
        return math.inf
    image = small[:rows * tile, :cols * tile].astype(np.float32)
    # Sensor noise would make the steepest derivative of a tile a noise spike (and blur look small):
    # measure on a copy smoothed by PRESMOOTH_PX and take that σ back out in quadrature.
    image = cv2.GaussianBlur(image, (0, 0), PRESMOOTH_PX)
    padded = np.pad(image, CONTRAST_HALO_PX, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (tile + 2 * CONTRAST_HALO_PX,) * 2)[::tile, ::tile]
    low, high = np.percentile(windows.reshape(rows * cols, -1), (5, 95), axis=1)
    contrast = high - low
    busy = contrast >= 40
    if not busy.any():
        return math.inf
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3) / 8
    worst = 0.0
    for step in range(BLUR_DIRECTIONS):
        angle = math.pi * step / BLUR_DIRECTIONS
        gradient = np.abs(math.cos(angle) * gx + math.sin(angle) * gy)
        steepest = gradient.reshape(rows, tile, cols, tile).transpose(0, 2, 1, 3).reshape(rows * cols, -1).max(axis=1)
        sigma = contrast[busy] / (np.maximum(steepest[busy], 1e-3) * math.sqrt(2 * math.pi))
        worst = max(worst, float(np.sort(sigma)[min(SHARPEST_TILE, len(sigma)) - 1]))
    return math.sqrt(max(worst ** 2 - PRESMOOTH_PX ** 2, 0.0))


def find_pages(image: np.ndarray, manifest: Manifest, *, max_side: int = DETECT_MAX_SIDE,
               check_qr: bool = True) -> PhotoDetection:
    """Find every sheet of ``manifest``'s run in a photo.

    Markers are grouped by the page their id belongs to (:func:`physadv.printouts.manifest.page_of_marker`);
    ids that map to no page of the manifest come from another run. Each page needs at least
    :data:`MIN_MARKERS` of its four corner markers, a consistent fit, sharp enough edges and a
    readable size, and its identity code (:func:`read_identity`) must be read and equal this run's:
    marker ids of two runs can coincide, identity codes practically cannot. When the QR code is
    readable it must name this run too; pages of manifests without an identity code need it.
    A page whose manifest has reference dots is modelled through them when it is not flat (see the
    module doc): then its markers need not fit one flat page, but the spline must explain its dots.

    Args:
        image: ``(H, W, 3)`` uint8 RGB or BGR, or ``(H, W)`` uint8 grey.
        manifest: the run's manifest.
        max_side: long side, pixels, of the copy markers are searched in.
        check_qr: decode the page's QR code to confirm the run (skipped in the live loop for speed).

    Returns:
        The accepted pages and, for the photo or each page that failed, a :class:`Rejection`.
    """
    grey_image = grey(image)
    ids, corners = detect_markers(grey_image, manifest.aruco_dictionary, max_side)
    if len(ids) == 0:
        blur = photo_blur_px(grey_image, max_side)
        if math.isfinite(blur) and blur > MAX_DETECT_BLUR_PX:  # no edges at all (a blank photo): no markers
            return PhotoDetection((), (Rejection("too blurry", f"no marker readable; photo edge σ {blur:.1f} px > "
                                                               f"{MAX_DETECT_BLUR_PX} px (at {max_side} px)"),), 0)
        return PhotoDetection((), (Rejection("no markers", "no ArUco marker in the photo"),), 0)
    pages = {page.index: page for page in manifest.pages}
    groups = _group_by_page(ids, corners, manifest.run_id, pages)
    if any(len({i for i, _ in found}) < MIN_MARKERS for found in groups.values()):
        ids, corners = detect_markers(grey_image, manifest.aruco_dictionary, max_side, RETRY_PERIMETER_RATE)
        groups = _group_by_page(ids, corners, manifest.run_id, pages)
    if not groups:
        return PhotoDetection((), (Rejection("unknown run", f"{len(ids)} marker(s), ids {sorted(set(ids.tolist()))[:8]}"
                                             f" belong to no page of run {manifest.run_id}"),), len(ids))
    accepted, rejected = [], []
    for page_index, found in sorted(groups.items()):
        outcome = _check_page(grey_image, manifest, pages[page_index], found, check_qr)
        (accepted if isinstance(outcome, PageDetection) else rejected).append(outcome)
    if not accepted and rejected and all(r.reason == "too few markers" for r in rejected):
        blur = photo_blur_px(grey_image, max_side)
        if math.isfinite(blur) and blur > MAX_DETECT_BLUR_PX:
            rejected = [Rejection("too blurry", f"{r.detail} readable; photo edge σ {blur:.1f} px > "
                                                f"{MAX_DETECT_BLUR_PX} px (at {max_side} px)", r.page) for r in rejected]
    return PhotoDetection(tuple(accepted), tuple(rejected), len(ids))


def _group_by_page(ids: np.ndarray, corners: np.ndarray, run_id: str,
                   pages: dict[int, Page]) -> dict[int, list[tuple[int, np.ndarray]]]:
    groups: dict[int, list[tuple[int, np.ndarray]]] = {}
    for marker_id, marker_corners in zip(ids, corners):
        page_index, _ = page_of_marker(run_id, int(marker_id))
        if page_index in pages:
            groups.setdefault(page_index, []).append((int(marker_id), marker_corners))
    return groups


def _check_page(grey_image: np.ndarray, manifest: Manifest, page: Page, found: list[tuple[int, np.ndarray]],
                check_qr: bool) -> PageDetection | Rejection:
    distinct = {marker_id for marker_id, _ in found}
    if len(distinct) < MIN_MARKERS:
        return Rejection("too few markers", f"{len(distinct)} of 4 corner markers", page.index)
    side = float(np.mean([np.linalg.norm(c - np.roll(c, 1, axis=0), axis=1).mean() for _, c in found]))
    if side < MIN_MARKER_SIDE_PX:
        return Rejection("too small", f"markers {side:.1f} px < {MIN_MARKER_SIDE_PX} px", page.index)
    by_id = {marker.id: np.asarray(marker.corners_mm, dtype=np.float64) for marker in page.markers}
    homography, kept, rms = _fit_page(page, found)
    flat_fit = None
    if homography is None or len(set(kept)) < MIN_MARKERS or not _plausible(homography, manifest.page_size_mm):
        flat_fit = f"{len(set(kept))} marker(s) fit one page"
    elif rms > max(MAX_RMS_PX, MAX_RMS_FRACTION * side):
        flat_fit = f"RMS reprojection error {rms:.2f} px"
    if flat_fit is not None:
        # Perhaps a page that is not flat: every marker (once each) pins the spline through the dots.
        if not page.reference_dots or len(distinct) != len(found):
            return Rejection("inconsistent geometry", flat_fit, page.index)
        kept = sorted(distinct)
        source = np.concatenate([by_id[i] for i, _ in found])
        homography, _ = cv2.findHomography(source, np.concatenate([c for _, c in found]), 0)
        if homography is None or not _plausible(homography, manifest.page_size_mm):
            return Rejection("inconsistent geometry", flat_fit, page.index)
    corners_px = {i: c for i, c in found if i in set(kept)}
    outcome = _page_model(grey_image, page, homography, corners_px, by_id, flat_fit)
    if isinstance(outcome, Rejection):
        return outcome
    model, dots, held_out = outcome
    if flat_fit is None:
        blur_models = {i: homography for i in set(kept)}
    else:  # each marker by its own corners: the page homography misses some of them
        blur_models = {i: cv2.findHomography(by_id[i], corners_px[i], 0)[0] for i in kept}
        error = (project(homography, np.concatenate([by_id[i] for i in corners_px]))
                 - np.concatenate(list(corners_px.values())))
        rms = float(np.sqrt((error ** 2).sum(axis=1).mean()))
    blur = float(np.median([blur_bits(grey_image, blur_models[i], by_id[i]) for i in set(kept)])) * side / MARKER_BITS
    if blur > MAX_BLUR_PX:
        return Rejection("too blurry", f"edge σ {blur:.1f} px > {MAX_BLUR_PX} px", page.index)
    identity = read_identity(grey_image, model, page, manifest.run_id) if page.identity else None
    if identity is not None and identity.differing > IDENTITY_MAX_MISREAD * max(identity.read, 1):
        return Rejection("another run", f"identity code: {identity.differing} of {identity.read} bits read differ "
                                        f"from run {manifest.run_id!r}", page.index)
    run = _qr_run(grey_image, model, page) if check_qr or identity is None else None
    if run is not None and run != manifest.run_id:
        return Rejection("another run", f"QR code says run {run!r}, manifest is {manifest.run_id!r}", page.index)
    if identity is None and run is None:
        return Rejection("unconfirmed identity", "the manifest has no identity code and the QR code is unreadable",
                         page.index)
    if identity is not None and (identity.read < IDENTITY_MIN_BITS or identity.differing):
        return Rejection("unconfirmed identity", f"identity code: {identity.read} of {identity.total} bits read "
                                                 f"({identity.differing} differ), {IDENTITY_MIN_BITS} needed", page.index)
    return PageDetection(page.index, homography, tuple(sorted(set(kept))), rms, blur, side,
                         identity.read if identity else 0, corners_px, model, tuple(dots), held_out)


def source_px_mm(page: Page) -> float:
    """The finest source-pixel pitch of the page's cells, mm (0 for a page without cells)."""
    return min((cell.box_mm[2] / cell.size_px[0] for cell in page.cells), default=0.0)


def _page_model(grey_image: np.ndarray, page: Page, homography: np.ndarray, corners_px: dict[int, np.ndarray],
                by_id: dict[int, np.ndarray], flat_fit: str | None
                ) -> tuple[PageModel, list[FoundDot], dict[int, float]] | Rejection:
    """The page's model (see the module doc): the homography when the markers fit one flat page and
    every dot found agrees with it, else the spline through markers and dots, if it explains them."""
    flat = PageModel(homography)
    if not page.reference_dots:
        return flat, [], {}
    known_mm = np.concatenate([by_id[i] for i in corners_px])
    known_px = np.concatenate(list(corners_px.values()))
    dots = locate_dots(grey_image, flat, page.reference_dots, known_mm, known_px)
    dots_mm = np.array([d.centre_mm for d in dots]).reshape(-1, 2)
    dots_px = np.array([d.photo_px for d in dots]).reshape(-1, 2)
    # One source pixel of the page's cells in photo pixels (the homography's scale, averaged over the dots).
    source_px = source_px_mm(page) * float(np.mean([
        np.linalg.norm(project(homography, [[x + 1, y]]) - project(homography, [[x, y]])) for x, y in dots_mm]
    )) if dots else 0.0
    off = np.linalg.norm(dots_px - project(homography, dots_mm), axis=1) if dots else np.zeros(0)
    if flat_fit is None and (off <= max(FLAT_TOLERANCE_PX, FLAT_TOLERANCE_SOURCE_PX * source_px)).all():
        return flat, dots, {}
    why = flat_fit or f"a reference dot {off.max():.1f} px off the page homography"
    reason = "inconsistent geometry" if flat_fit else "unexplained warp"
    needed = max(MIN_DOTS, math.ceil(len(page.reference_dots) / 2))
    if len(dots) < needed:
        return Rejection(reason, f"{why}; {len(dots)} of {len(page.reference_dots)} reference dots found, "
                                 f"{needed} needed for a local model", page.index)
    model = flat.with_points(np.concatenate([known_mm, dots_mm]), np.concatenate([known_px, dots_px]))
    errors = leave_one_out_px(model, list(range(len(known_mm), len(model.points_mm))))
    held_out = {dot.index: errors[len(known_mm) + k] for k, dot in enumerate(dots)}
    limit = max(MAX_HELD_OUT_PX, source_px)
    worst = max(held_out, key=held_out.get)
    if held_out[worst] > limit:
        return Rejection("unexplained warp", f"{why}; the local model misses reference dot {worst}, fitted without "
                                             f"it, by {held_out[worst]:.2f} px > {limit:.2f} px", page.index)
    return model, dots, held_out
