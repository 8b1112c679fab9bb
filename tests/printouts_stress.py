"""Stress conditions for the virtual camera: the photos that broke capture elsewhere, made here.

Test and benchmark support (``tests/test_capture_stress.py``, ``benchmarks/bench_capture.py``), not
part of the installed package.

Each condition adds one thing to an ordinary virtual-camera photo (:mod:`physadv.printouts.camera`),
through the :class:`physadv.printouts.camera.PhotoEffects` hooks. The ranges are stress ranges, not
calibrated typical photos; where they come from is said per condition:

- ``flat``: nothing added (the reference).
- ``curl``: the sheet bent into a cylinder along its width or height, the middle 3–14 mm deeper or
  shallower than the edges (the range of the independent camera simulator of issue 12).
- ``glare``: a specular highlight on a random cell: a flat-topped spot of radius 4–10 % of the
  frame's short side adding 1.5–3× full scale, so its core clips.
- ``motion-blur``: a straight camera shake of 0.6–2 % of the frame width in any direction
  (a hand-held phone at 1/15–1/30 s), on top of the lens blur.
- ``halftone``: the print screened at 85 lines per inch (the coarse end of commercial 85–150 lpi)
  with the usual C 15°, M 75°, Y 0° angles, instead of continuous tone.
- ``colliding-id``: meant for sheets of *another* run whose marker ids equal ours
  (:func:`colliding_run_id`), with their QR codes covered: capture must refuse every one.
- ``small-3-markers``: the page fills only 30–45 % of the frame (20-mm markers of 20–35 px at
  1080p) and one corner marker is covered, so the page rests on a 3-marker fit.

:func:`stressed_shot` draws a condition's parameters; :func:`photo_points` is the ground truth
(page mm → photo px, through the bend for ``curl``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from physadv.errors import InputError
from physadv.printouts.camera import PhotoEffects, Shot, page_homography, page_projection, sample_shot
from physadv.printouts.manifest import Page, run_marker_offset

CONDITIONS = ("flat", "curl", "glare", "motion-blur", "halftone", "colliding-id", "small-3-markers")
CURL_SAG_MM = (3.0, 14.0)
GLARE_RADIUS = (0.04, 0.10)
GLARE_GAIN = (1.5, 3.0)
MOTION_FRACTION = (0.006, 0.02)
HALFTONE_LPI = 85.0
HALFTONE_ANGLES_DEG = (15.0, 75.0, 0.0)  # screens of the R, G, B channels' inks: cyan, magenta, yellow
SMALL_FILL = (0.30, 0.45)
COVER_RIM = 1.2  # a cover spans 1.2 × the marker, as a thumb does


@dataclass(frozen=True)
class Stress:
    """One condition's drawn parameters; lengths in mm unless ``_px``, angles in degrees.

    ``curl_sag_mm`` > 0 lifts the edges toward the camera, < 0 the middle; ``curl_axis`` "x" bends
    along the page's width. ``glare_centre_mm`` is on the page; ``glare_gain`` in full-scale units.
    ``covers_mm`` are page boxes (x, y, w, h) painted with ``cover_rgb``.
    """

    condition: str
    curl_sag_mm: float = 0.0
    curl_axis: str = "x"
    glare_centre_mm: tuple[float, float] = (0.0, 0.0)
    glare_radius_px: float = 0.0
    glare_gain: float = 0.0
    motion_px: float = 0.0
    motion_deg: float = 0.0
    halftone_lpi: float = 0.0
    covers_mm: tuple[tuple[float, float, float, float], ...] = ()
    cover_rgb: tuple[int, int, int] = (255, 255, 255)


def colliding_run_id(run_id: str) -> str:
    """A run id whose pages have exactly the marker ids of ``run_id``'s pages (1 in 250 do)."""
    offset = run_marker_offset(run_id)
    return next(f"{run_id}-twin{k}" for k in range(1_000_000) if run_marker_offset(f"{run_id}-twin{k}") == offset)


def stressed_shot(rng: np.random.Generator, condition: str, page: Page, page_mm: tuple[float, float],
                  frame: tuple[int, int]) -> tuple[Shot, Stress]:
    """An ordinary shot of ``page`` (:func:`physadv.printouts.camera.sample_shot`) plus ``condition``.

    Raises:
        InputError: an unknown condition.
    """
    if condition not in CONDITIONS:
        raise InputError(f"unknown stress condition {condition!r} (use {', '.join(CONDITIONS)})")
    shot = sample_shot(rng, page.index, frame)
    stress = Stress(condition)
    if condition == "curl":
        stress = replace(stress, curl_sag_mm=float(rng.uniform(*CURL_SAG_MM) * rng.choice([-1, 1])),
                         curl_axis=str(rng.choice(["x", "y"])))
    elif condition == "glare":
        cell = page.cells[int(rng.integers(len(page.cells)))]
        x, y, w, h = cell.box_mm
        stress = replace(stress, glare_centre_mm=(x + w * rng.uniform(0.2, 0.8), y + h * rng.uniform(0.2, 0.8)),
                         glare_radius_px=float(rng.uniform(*GLARE_RADIUS) * min(frame)),
                         glare_gain=float(rng.uniform(*GLARE_GAIN)))
    elif condition == "motion-blur":
        stress = replace(stress, motion_px=float(rng.uniform(*MOTION_FRACTION) * frame[0]),
                         motion_deg=float(rng.uniform(0, 180)))
    elif condition == "halftone":
        stress = replace(stress, halftone_lpi=HALFTONE_LPI)
    elif condition == "colliding-id":
        stress = replace(stress, covers_mm=tuple(code.box_mm for code in page.qr_codes),
                         cover_rgb=(255, 255, 255))
    elif condition == "small-3-markers":
        shot = replace(shot, fill=float(rng.uniform(*SMALL_FILL)))
        corners = np.asarray(page.markers[int(rng.integers(len(page.markers)))].corners_mm)
        low, high = corners.min(axis=0), corners.max(axis=0)
        centre, half = (low + high) / 2, COVER_RIM * (high - low) / 2
        stress = replace(stress, covers_mm=((*(centre - half), *(2 * half)),),
                         cover_rgb=tuple(int(v) for v in rng.integers(60, 200, 3)))
    return shot, stress


def _curl_radius(sag_mm: float, span_mm: float) -> float:
    """Radius of the cylinder whose arc of length ``span_mm`` has depth ``sag_mm`` (bisection)."""
    low, high = span_mm / math.pi, 1e7  # a half-circle at most
    for _ in range(100):
        radius = math.sqrt(low * high)
        depth = radius * (1 - math.cos(span_mm / (2 * radius)))
        low, high = (radius, high) if depth > sag_mm else (low, radius)
    return math.sqrt(low * high)


def photo_points(shot: Shot, stress: Stress, page_mm: tuple[float, float], frame: tuple[int, int],
                 points_mm: np.ndarray) -> np.ndarray:
    """Where page points ``(N, 2)`` mm land in the photo ``(N, 2)`` px: the ground truth."""
    points = np.asarray(points_mm, dtype=np.float64).reshape(-1, 2)
    if stress.curl_sag_mm == 0:
        homography = page_homography(shot, page_mm, frame)
        return cv2.perspectiveTransform(points.reshape(-1, 1, 2), homography).reshape(-1, 2)
    axis = 0 if stress.curl_axis == "x" else 1
    span = page_mm[axis]
    radius = _curl_radius(abs(stress.curl_sag_mm), span)
    arc = points[:, axis] - span / 2
    bent = points.copy()
    bent[:, axis] = span / 2 + radius * np.sin(arc / radius)
    depth = -math.copysign(1.0, stress.curl_sag_mm) * radius * (1 - np.cos(arc / radius))
    homogeneous = np.column_stack([bent, depth, np.ones(len(points))]) @ page_projection(shot, page_mm, frame).T
    return homogeneous[:, :2] / homogeneous[:, 2:]


class StressEffects(PhotoEffects):
    """The hooks of one stressed photo."""

    def __init__(self, shot: Shot, stress: Stress, page_mm: tuple[float, float], frame: tuple[int, int]):
        self.shot, self.stress, self.page_mm, self.frame = shot, stress, page_mm, frame
        self.min_render_dpi = 4 * stress.halftone_lpi

    def on_print(self, render: np.ndarray, render_px_per_mm: float, photo_px_per_mm: float) -> np.ndarray:
        render = render.copy()
        for x, y, w, h in self.stress.covers_mm:
            top_left = (int(x * render_px_per_mm), int(y * render_px_per_mm))
            bottom_right = (int(math.ceil((x + w) * render_px_per_mm)), int(math.ceil((y + h) * render_px_per_mm)))
            cv2.rectangle(render, top_left, bottom_right, self.stress.cover_rgb, -1)
        if self.stress.halftone_lpi:
            render = _halftone(render, render_px_per_mm * 25.4 / self.stress.halftone_lpi)
            # The screen is finer than the photo: low-pass it before the warp shrinks it (no aliasing).
            ratio = render_px_per_mm / photo_px_per_mm
            if ratio > 1:
                render = cv2.GaussianBlur(render, (0, 0), 0.5 * ratio)
        return render

    def place(self, printed: np.ndarray, mm_to_render: np.ndarray, photo: np.ndarray) -> bool:
        if self.stress.curl_sag_mm == 0:
            return False
        width, height = self.frame
        coarse = (max(2, width // 8), max(2, height // 8))
        # Photo positions whose bilinear upsampling by cv2.resize lands exactly on the frame's pixels.
        us = (np.arange(coarse[0]) + 0.5) * width / coarse[0] - 0.5
        vs = (np.arange(coarse[1]) + 0.5) * height / coarse[1] - 0.5
        targets = np.stack(np.meshgrid(us, vs), axis=-1).reshape(-1, 2)
        flat = page_homography(self.shot, self.page_mm, self.frame)
        inverse = np.linalg.inv(flat)

        def unflatten(points: np.ndarray) -> np.ndarray:
            return cv2.perspectiveTransform(points.reshape(-1, 1, 2), inverse).reshape(-1, 2)

        wanted = unflatten(targets)
        page = wanted.copy()
        for _ in range(8):  # fixed point of page ↦ page + (H⁻¹(target) − H⁻¹(F(page))); the bend is gentle
            page += wanted - unflatten(photo_points(self.shot, self.stress, self.page_mm, self.frame, page))
        render_xy = page @ mm_to_render[:2, :2].T + mm_to_render[:2, 2]
        maps = [cv2.resize(render_xy[:, k].reshape(coarse[1], coarse[0]).astype(np.float32), self.frame,
                           interpolation=cv2.INTER_LINEAR) for k in (0, 1)]
        cv2.remap(printed, maps[0], maps[1], cv2.INTER_LINEAR, dst=photo, borderMode=cv2.BORDER_TRANSPARENT)
        return True

    def on_sensor(self, photo: np.ndarray) -> np.ndarray:
        if self.stress.motion_px < 1:
            return photo
        length = self.stress.motion_px
        size = int(math.ceil(length)) | 1
        kernel = np.zeros((size + 2, size + 2), np.float32)
        angle = math.radians(self.stress.motion_deg)
        centre = (size + 1) / 2
        steps = np.linspace(-length / 2, length / 2, 4 * size)
        for step in steps:  # splat sample points of the motion path bilinearly
            x, y = centre + step * math.cos(angle), centre + step * math.sin(angle)
            x0, y0 = int(math.floor(x)), int(math.floor(y))
            fx, fy = x - x0, y - y0
            kernel[y0, x0] += (1 - fx) * (1 - fy)
            kernel[y0, x0 + 1] += fx * (1 - fy)
            kernel[y0 + 1, x0] += (1 - fx) * fy
            kernel[y0 + 1, x0 + 1] += fx * fy
        return cv2.filter2D(photo, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)

    def on_light(self, light: np.ndarray) -> np.ndarray:
        if not self.stress.glare_gain:
            return light
        centre = photo_points(self.shot, self.stress, self.page_mm, self.frame,
                              np.array([self.stress.glare_centre_mm]))[0]
        height, width = light.shape[:2]
        ys, xs = np.ogrid[:height, :width]
        distance = np.hypot(xs - centre[0], ys - centre[1]) / self.stress.glare_radius_px
        spot = (255 * self.stress.glare_gain * np.exp(-distance ** 4)).astype(np.float32)
        return light + spot[..., None]


def _halftone(render: np.ndarray, period_px: float) -> np.ndarray:
    """Clustered-dot screening: each channel's ink (1 − value) printed as dots on its rotated screen."""
    height, width = render.shape[:2]
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    out = np.empty_like(render)
    for channel, angle in enumerate(HALFTONE_ANGLES_DEG):
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        u, v = (xs * c + ys * s) * (2 * math.pi / period_px), (-xs * s + ys * c) * (2 * math.pi / period_px)
        threshold = 0.5 - 0.25 * (np.cos(u) + np.cos(v))  # lowest at the dot centres
        ink = 1 - render[..., channel].astype(np.float32) / 255
        out[..., channel] = np.where(ink > threshold, 0, 255)
    return out
