"""The page model of a sheet that need not be flat, and the printed reference dots it rests on.

A :class:`PageModel` maps page millimetres to photo pixels: the page homography, plus — for a page
that is not flat — a thin-plate spline of the photo-pixel displacement from it, through control
points whose photo positions were measured (marker corners, reference dots, cell centres). Any box
of the page (a cell, an identity block, a QR code) gets its own homography from its four corners.

Reference dots (:class:`physadv.printouts.manifest.ReferenceDot`) are located by
:func:`locate_dots`, outward from the markers: each round predicts the dots nearest to what is
already known with the model through it, searches each within :data:`DOT_SEARCH_MM` of its prediction
(on the photo rectified to :data:`DOT_PX_PER_MM` by the model's local homography), and adds those
found. A dot is found when the normalised cross-correlation of the rectified photo with the dot and
its white zone (the template blurred as the photo is) peaks at :data:`DOT_MIN_SCORE` or more and the
dot is darker than its zone by :data:`DOT_MIN_CONTRAST` grey levels; its centre is the dark-mass
centroid around that peak. A dot not found cleanly is dropped, never guessed.

:func:`leave_one_out_px` tells whether a model explains the page: each dot is predicted by the model
fitted without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import cv2
import numpy as np

from physadv.printouts.manifest import ReferenceDot

TPS_SCALE_MM = 100.0  # control points are fitted in decimetres: keeps the spline's system well conditioned
DOT_PX_PER_MM = 4.0
DOT_SEARCH_MM = 2.5
DOT_ROUND_MM = 25.0  # each round adds the dots within this of the nearest already-known one
# On flat virtual-camera photos the dots found score 0.70–0.96 (the lowest at 720p, where a few dots
# of the smallest pages fall below and are dropped) and are 35 grey levels or more darker than their zone.
DOT_MIN_SCORE = 0.7
DOT_MIN_CONTRAST = 25.0


@dataclass(frozen=True, eq=False)
class PageModel:
    """Page mm → photo px.

    Attributes:
        homography: ``(3, 3)`` page mm → photo px.
        points_mm: ``(N, 2)`` control points of the spline (none: the page is flat).
        shifts_px: ``(N, 2)`` their measured photo positions minus the homography's.
    """

    homography: np.ndarray
    points_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    shifts_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def flat(self) -> bool:
        return len(self.points_mm) == 0

    @cached_property
    def _spline(self):
        from scipy.interpolate import RBFInterpolator

        return RBFInterpolator(self.points_mm / TPS_SCALE_MM, self.shifts_px, kernel="thin_plate_spline")

    def __call__(self, points_mm: np.ndarray) -> np.ndarray:
        """``(N, 2)`` page mm → ``(N, 2)`` photo px."""
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 2)
        flat = cv2.perspectiveTransform(points.reshape(-1, 1, 2), self.homography).reshape(-1, 2)
        return flat if self.flat else flat + self._spline(points / TPS_SCALE_MM)

    def box_homography(self, corners_mm: np.ndarray) -> np.ndarray:
        """``(3, 3)`` page mm → photo px exact at a box's four corners ``(4, 2)`` mm (the page
        homography itself on a flat page)."""
        if self.flat:
            return self.homography
        corners = np.asarray(corners_mm, dtype=np.float64)
        return cv2.getPerspectiveTransform(corners.astype(np.float32), self(corners).astype(np.float32)).astype(
            np.float64)

    def with_points(self, points_mm: np.ndarray, photo_px: np.ndarray) -> "PageModel":
        """The model through control points at page ``points_mm`` seen at ``photo_px`` (both ``(N, 2)``)."""
        points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 2)
        flat = cv2.perspectiveTransform(points.reshape(-1, 1, 2), self.homography).reshape(-1, 2)
        return PageModel(self.homography, points, np.asarray(photo_px, dtype=np.float64).reshape(-1, 2) - flat)


def box_corners(box_mm: tuple[float, float, float, float]) -> np.ndarray:
    """``(4, 2)`` corners (top-left, top-right, bottom-right, bottom-left) of a box (x, y, w, h)."""
    x, y, w, h = box_mm
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


@dataclass(frozen=True)
class FoundDot:
    """A reference dot located in the photo: its index in the page's dots, page mm, photo px, the
    correlation score and the dot's contrast with its white zone (grey levels)."""

    index: int
    centre_mm: tuple[float, float]
    photo_px: tuple[float, float]
    score: float
    contrast: float


@dataclass(frozen=True, eq=False)
class _Template:
    """A dot and its white zone at :data:`DOT_PX_PER_MM` (dark 0, white 1), blurred, with the
    masks of its core (inner half of the dot), its centroid window and its paper ring."""

    image: np.ndarray
    offsets: tuple[np.ndarray, np.ndarray]
    core: np.ndarray
    inner: np.ndarray
    ring: np.ndarray


@lru_cache(maxsize=64)
def _template(diameter_mm: float, clear_mm: float, blur_tenths: int) -> _Template:
    half = int(math.floor(clear_mm * DOT_PX_PER_MM))
    ys, xs = np.mgrid[-half:half + 1, -half:half + 1]
    distance = np.hypot(xs, ys) / DOT_PX_PER_MM
    # Area coverage of each pixel by the disc, by its distance to the rim (±½ px of anti-aliasing).
    ink = np.clip((diameter_mm / 2 - distance) * DOT_PX_PER_MM + 0.5, 0, 1)
    image = (1 - ink).astype(np.float32)
    if blur_tenths > 3:
        image = cv2.GaussianBlur(image, (0, 0), blur_tenths / 10)
    window = diameter_mm / 2 + 0.5 * (clear_mm - diameter_mm / 2)  # halfway into the white zone
    return _Template(image, (xs, ys), distance <= diameter_mm / 4, distance <= window, distance > window)


def locate_dot(grey_image: np.ndarray, model: PageModel, dot: ReferenceDot, index: int,
               search_mm: float = DOT_SEARCH_MM) -> FoundDot | None:
    """Find one reference dot near where ``model`` puts it (see the module doc), or ``None``."""
    cx, cy = dot.centre_mm
    reach = dot.clear_mm + search_mm
    local = model.box_homography(box_corners((cx - reach, cy - reach, 2 * reach, 2 * reach)))
    size = int(round(2 * reach * DOT_PX_PER_MM)) + 1
    step = 1 / DOT_PX_PER_MM
    to_mm = np.array([[step, 0, cx - reach], [0, step, cy - reach], [0, 0, 1]])
    patch = cv2.warpPerspective(grey_image, local @ to_mm, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    # The photo's own sampling blurs the dot: about 0.5 photo px, in rectified pixels.
    ends = cv2.perspectiveTransform(np.array([[[cx, cy]], [[cx + 1, cy]]], dtype=np.float64), local).reshape(2, 2)
    photo_px_per_mm = float(np.linalg.norm(ends[1] - ends[0]))
    template = _template(dot.diameter_mm, dot.clear_mm, round(5 * DOT_PX_PER_MM / max(photo_px_per_mm, 1e-6)))
    scores = cv2.matchTemplate(patch, template.image, cv2.TM_CCOEFF_NORMED)
    _, score, _, (px, py) = cv2.minMaxLoc(scores)
    if not math.isfinite(score) or score < DOT_MIN_SCORE:
        return None
    half = template.image.shape[0] // 2
    centre = np.array([px + half, py + half], dtype=np.float64)  # rectified px of the dot's centre
    window = patch[py:py + 2 * half + 1, px:px + 2 * half + 1]
    paper = float(np.median(window[template.ring]))
    contrast = paper - float(window[template.core].mean())
    if contrast < DOT_MIN_CONTRAST:
        return None
    mass = np.clip(paper - window, 0, None) * template.inner
    xs, ys = template.offsets
    centre += np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
    point_mm = np.array([[cx - reach + centre[0] * step, cy - reach + centre[1] * step]])
    photo = cv2.perspectiveTransform(point_mm.reshape(1, 1, 2), local).reshape(2)
    return FoundDot(index, (float(cx), float(cy)), (float(photo[0]), float(photo[1])), float(score), contrast)


def locate_dots(grey_image: np.ndarray, model: PageModel, dots: tuple[ReferenceDot, ...],
                known_mm: np.ndarray, known_px: np.ndarray) -> list[FoundDot]:
    """Locate every dot, outward from the control points ``known_mm`` ``(N, 2)`` seen at ``known_px``
    (the marker corners), refitting ``model``'s spline through all found so far after each round.

    On a flat model with no known points, every dot is searched around the homography at once.
    """
    known_mm = np.asarray(known_mm, dtype=np.float64).reshape(-1, 2)
    known_px = np.asarray(known_px, dtype=np.float64).reshape(-1, 2)
    found: list[FoundDot] = []
    pending = list(range(len(dots)))
    points, current = known_mm, model
    while pending:
        centres = np.array([dots[i].centre_mm for i in pending])
        nearest = np.linalg.norm(centres[:, None] - points[None], axis=2).min(axis=1) if len(points) else \
            np.zeros(len(pending))
        this_round = [i for i, d in zip(pending, nearest) if d <= nearest.min() + DOT_ROUND_MM]
        pending = [i for i in pending if i not in this_round]
        for index in this_round:
            dot = locate_dot(grey_image, current, dots[index], index)
            if dot is not None:
                found.append(dot)
        if pending:
            points = np.concatenate([known_mm, np.array([d.centre_mm for d in found]).reshape(-1, 2)])
            pixels = np.concatenate([known_px, np.array([d.photo_px for d in found]).reshape(-1, 2)])
            if len(points) >= 3:
                current = model.with_points(points, pixels)
    return found


def leave_one_out_px(model: PageModel, held_out: list[int]) -> dict[int, float]:
    """For each control point index in ``held_out``: how far (photo px) the model fitted without
    it puts it from where it was seen."""
    errors = {}
    flat = cv2.perspectiveTransform(model.points_mm.reshape(-1, 1, 2), model.homography).reshape(-1, 2)
    for index in held_out:
        keep = np.arange(len(model.points_mm)) != index
        reduced = PageModel(model.homography, model.points_mm[keep], model.shifts_px[keep])
        predicted = reduced(model.points_mm[index:index + 1])[0]
        errors[index] = float(np.linalg.norm(predicted - (flat[index] + model.shifts_px[index])))
    return errors
