"""The virtual camera: synthetic photographs of printed sheets, with their true geometry.

Each photo simulates the channel print → scene → light → sensor. Every range comes from a camera
profile (:mod:`physadv.printouts.profiles`; the figures below are those of ``handheld``, the original
camera); a measured profile (``physadv calibrate``) replaces steps 1, 3 and 4 by the tone curve,
colour matrix, blur and noise it measured (:func:`_play_back`):

1. **print**: the page is rendered (pypdfium2, images by pixel replication as a printer does) at
   about the photo's resolution, ink-spread blur is applied, and the tone range is squeezed from
   [0, 255] to [ink, paper] per channel with a print gamma;
2. **scene**: the sheet is posed in 3-D (tilt about both page axes up to ±25°, any in-plane
   rotation, focal length of a phone or webcam lens) and scaled so that it fills 40–90 % of the
   frame, then warped (``cv2.warpPerspective``) onto a procedurally generated cluttered background;
3. **light**: one illumination field over the whole frame (linear gradient, vignetting, a soft
   shadow edge, exposure) and a colour cast with reduced saturation;
4. **sensor**: lens blur, Gaussian noise whose variance grows with brightness (read + shot noise),
   the phone's auto exposure and white balance (white patch on the frame's brightest 2 %,
   :data:`AWB_PERCENTILE`), and JPEG.

With ``print.device_dpi`` > 0 step 1 happens on the printer's addressable grid
(:mod:`physadv.printouts.printer`: screen or error diffusion, Yule–Nielsen dot gain, toner grain,
misregistration, banding), and step 4 can run a phone's pipeline (:mod:`physadv.printouts.isp`: Bayer
mosaic and demosaicing, denoising, tone curve, sharpening; 4:2:0 or 4:4:4 JPEG). At their neutral
settings (the ``handheld`` and ``webcam`` profiles) the photo is the one the camera took before they existed.

Every random draw comes from ``numpy.random.default_rng([seed, index])``, so photo ``index`` of a
seed is the same photo whatever else is generated, and all drawn parameters are recorded in
:class:`Shot`. The true homography maps page millimetres ``(x, y)`` (origin top-left, y down) to
photo pixels ``(x, y)`` in OpenCV's convention (centre of the top-left pixel at ``(0, 0)``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from physadv.catalog import MAX_PHOTOS_PER_PAGE, RESOLUTIONS
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes, atomic_write_json, parse_json
from physadv.validation import check_seed, is_safe_name
from physadv.printouts.manifest import Manifest, sheet_title
from physadv.printouts.pdf import open_pdf, page_size_mm, render_page
from physadv.colour import linear_to_srgb, srgb_to_linear
from physadv.printouts.printer import multiply_by_tile
from physadv.printouts.profiles import CameraProfile, MeasuredChannel, load_profile, profile_to_toml

SCHEMA = "physadv.photos/1"
TRUTH_FILE = "truth.json"
# Rendering resolution relative to the sharpest part of the projected page: a little above 1 so the
# warp only ever shrinks the render (bilinear shrinking by < 2 barely aliases).
RENDER_OVERSAMPLING = 1.25
NOISE_TILE = 1024
# The profiles state sensor.lens_blur_px in pixels of a frame up to this wide (1080p; the lab
# profile's source converts its 4032-px phone figures to it). A wider frame of the same optics spreads
# the blur over proportionally more pixels, so σ grows with width / 1920; a narrower frame (a 720p
# webcam) is a sensor of its own whose σ the profile states directly, so it is never scaled down.
LENS_BLUR_REFERENCE_WIDTH_PX = 1920
# Auto white balance and exposure by the white patch (max-RGB) method: each channel is scaled so that
# its brightest (100 - AWB_PERCENTILE) % of pixels, usually the paper, land at AWB_WHITE_LEVEL. A high
# percentile rather than the maximum, so that a few noisy or specular pixels do not set the gain.
# 240 = 0.94 of full scale, the middle of the 0.93-0.96 that office paper's reflectance encodes to in
# sRGB (the lab profile's print.paper_level source): the camera renders paper as paper, not as 255.
# Both are estimates of a phone's pipeline, not measured here.
AWB_PERCENTILE = 98.0
AWB_WHITE_LEVEL = 240.0


@dataclass(frozen=True)
class Shot:
    """Everything drawn at random for one photo. Lengths in mm unless ``_px``; angles in degrees;
    tones and noise in 0–255 units; colours RGB."""

    page: int
    tilt_x_deg: float
    tilt_y_deg: float
    roll_deg: float
    fill: float
    focal_px: float
    position: tuple[float, float]
    print_blur_mm: float
    paper_rgb: tuple[float, float, float]
    ink_rgb: tuple[float, float, float]
    print_gamma: float
    background_seed: int
    gradient: tuple[float, float]
    vignetting: float
    shadow: tuple[float, float, float, float]
    exposure: float
    colour_cast: tuple[float, float, float]
    saturation: float
    lens_blur_px: float
    read_noise: float
    shot_noise: float
    jpeg_quality: int
    halftone_lpi: float = 0.0
    auto_white_balance: bool = True
    profile: str = "handheld"
    # The print on the device grid (physadv.printouts.printer.DevicePrint) and the phone's pipeline
    # (physadv.printouts.isp); the defaults are the neutral settings. misregistration_mm: (dx, dy) of the
    # cyan, magenta, yellow planes; banding: (amplitude, period mm, phase rad); denoise_sigma: the
    # bilateral's range σ in 0-255 units.
    device_dpi: float = 0.0
    screen_angles_deg: tuple[float, float, float] = (15.0, 75.0, 0.0)
    dot_levels: int = 2
    error_diffusion: bool = False
    yule_nielsen_n: float = 1.0
    graininess: float = 0.0
    misregistration_mm: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    banding: tuple[float, float, float] = (0.0, 1.0, 0.0)
    demosaic: bool = False
    denoise_sigma: float = 0.0
    denoise_radius_px: float = 1.0
    sharpen_amount: float = 0.0
    sharpen_radius_px: float = 1.0
    tone_contrast: float = 1.0
    chroma_subsampling: bool = True

    @property
    def runs_isp(self) -> bool:
        """Whether any step of the phone's pipeline beyond white balance is on."""
        return self.demosaic or self.denoise_sigma > 0 or self.tone_contrast != 1 or self.sharpen_amount > 0


@dataclass(frozen=True)
class PhotoTruth:
    """One synthetic photo: its file (relative to the photo folder), the page shown, the true
    page-mm → photo-pixel homography ``(3, 3)`` row-major, and the drawn parameters."""

    index: int
    file: str
    page: int
    size_px: tuple[int, int]
    homography: tuple[tuple[float, float, float], ...]
    shot: Shot


def sample_shot(rng: np.random.Generator, page: int, frame: tuple[int, int],
                profile: CameraProfile | str = "handheld") -> Shot:
    """Draw the parameters of one photo of ``page`` in a ``frame`` = (width, height) pixel photo,
    every range from ``profile`` (a :class:`~physadv.printouts.profiles.CameraProfile` or a name).

    A measured profile draws the pose, the exposure and white-balance gains (relative to the
    measured tone curve) and the JPEG quality; its tone curve, colour matrix, blur and noise are
    fixed and played back by :func:`simulate_photo`."""
    profile = load_profile(profile)
    width, height = frame
    diagonal = math.hypot(width, height)
    if profile.measured is not None:
        return _sample_measured_shot(rng, page, frame, profile)
    paper = 255 * profile.uniform(rng, "print.paper_level") + profile.uniform(rng, "print.paper_tint", 3)
    ink = profile.uniform(rng, "print.ink_level") + profile.uniform(rng, "print.ink_tint", 3)
    shadow_angle = rng.uniform(0, 2 * math.pi)
    return Shot(
        page=page,
        tilt_x_deg=profile.uniform(rng, "scene.tilt_deg"), tilt_y_deg=profile.uniform(rng, "scene.tilt_deg"),
        roll_deg=profile.uniform(rng, "scene.roll_deg"), fill=profile.uniform(rng, "scene.fill"),
        focal_px=diagonal / 2 / math.tan(math.radians(profile.uniform(rng, "scene.field_of_view_deg")) / 2),
        position=tuple(rng.uniform(0, 1, 2)),
        print_blur_mm=profile.uniform(rng, "print.blur_mm"),
        paper_rgb=tuple(np.clip(paper, 0, 255)), ink_rgb=tuple(np.clip(ink, 0, 255)),
        print_gamma=profile.uniform(rng, "print.gamma"),
        background_seed=int(rng.integers(2 ** 31)),
        gradient=tuple(profile.uniform(rng, "light.gradient", 2)),
        vignetting=profile.uniform(rng, "light.vignetting"),
        # A straight shadow edge (unit normal angle, offset from the centre as a fraction of the
        # half-diagonal, darkening, softness as a fraction of the diagonal); strength 0 when no shadow falls.
        shadow=(shadow_angle, profile.uniform(rng, "light.shadow_offset"),
                profile.uniform(rng, "light.shadow_strength") * (rng.uniform() < profile.value("light.shadow_probability")),
                profile.uniform(rng, "light.shadow_softness")),
        exposure=profile.uniform(rng, "light.exposure"),
        colour_cast=tuple(profile.uniform(rng, "light.colour_cast", 3)),
        saturation=profile.uniform(rng, "light.saturation"),
        lens_blur_px=profile.uniform(rng, "sensor.lens_blur_px") * max(1.0, width / LENS_BLUR_REFERENCE_WIDTH_PX),
        read_noise=profile.uniform(rng, "sensor.read_noise"), shot_noise=profile.uniform(rng, "sensor.shot_noise"),
        jpeg_quality=_jpeg_quality(rng, profile),
        halftone_lpi=profile.value("print.halftone_lpi"),
        auto_white_balance=bool(profile.value("sensor.auto_white_balance")),
        profile=profile.name,
        **_device_and_isp(rng, profile),
    )


def _device_and_isp(rng: np.random.Generator, profile: CameraProfile) -> dict:
    """The print-engine and phone-pipeline fields of a :class:`Shot` (drawn after all the others, so that
    adding them changed no earlier draw)."""
    read, shot = profile.range("sensor.read_noise"), profile.range("sensor.shot_noise")
    misregistration = []
    for _ in range(3):
        length, angle = profile.uniform(rng, "print.misregistration_mm"), rng.uniform(0, 2 * math.pi)
        misregistration += [length * math.cos(angle), length * math.sin(angle)]
    banding = (profile.uniform(rng, "print.banding_amplitude"), profile.uniform(rng, "print.banding_period_mm"),
               rng.uniform(0, 2 * math.pi))
    # The denoiser is tuned to the sensor's noise: its range σ is a multiple of the noise σ at mid grey
    # (the middle of the profile's read and shot noise ranges, as an ISP's fixed noise model would be).
    noise_mid_grey = math.hypot(sum(read) / 2, sum(shot) / 2 * math.sqrt(128))
    return dict(
        device_dpi=profile.value("print.device_dpi"),
        screen_angles_deg=tuple(profile.value(f"print.screen_angle_{ink}_deg") for ink in ("cyan", "magenta", "yellow")),
        dot_levels=int(profile.value("print.dot_levels")),
        error_diffusion=bool(profile.value("print.error_diffusion")),
        yule_nielsen_n=profile.uniform(rng, "print.yule_nielsen_n"),
        graininess=profile.uniform(rng, "print.graininess"),
        misregistration_mm=tuple(misregistration), banding=banding,
        demosaic=bool(profile.value("sensor.demosaic")),
        denoise_sigma=profile.uniform(rng, "sensor.denoise_strength") * noise_mid_grey,
        denoise_radius_px=profile.uniform(rng, "sensor.denoise_radius_px"),
        sharpen_amount=profile.uniform(rng, "sensor.sharpen_amount"),
        sharpen_radius_px=profile.uniform(rng, "sensor.sharpen_radius_px"),
        tone_contrast=profile.uniform(rng, "sensor.tone_contrast"),
        chroma_subsampling=bool(profile.value("sensor.jpeg_chroma_subsampling")),
    )


def _jpeg_quality(rng: np.random.Generator, profile: CameraProfile) -> int:
    low, high = profile.range("sensor.jpeg_quality")
    return int(rng.integers(round(low), round(high) + 1))


def _sample_measured_shot(rng: np.random.Generator, page: int, frame: tuple[int, int], profile: CameraProfile) -> Shot:
    measured = profile.measured
    assert measured is not None
    diagonal = math.hypot(*frame)
    exposure = rng.uniform(*measured.exposure_gain)
    balance = (rng.uniform(*measured.white_balance_r), 1.0, rng.uniform(*measured.white_balance_b))
    return Shot(
        page=page,
        tilt_x_deg=profile.uniform(rng, "scene.tilt_deg"), tilt_y_deg=profile.uniform(rng, "scene.tilt_deg"),
        roll_deg=profile.uniform(rng, "scene.roll_deg"), fill=profile.uniform(rng, "scene.fill"),
        focal_px=diagonal / 2 / math.tan(math.radians(profile.uniform(rng, "scene.field_of_view_deg")) / 2),
        position=tuple(rng.uniform(0, 1, 2)), print_blur_mm=measured.blur_sigma_mm,
        paper_rgb=(255.0, 255.0, 255.0), ink_rgb=(0.0, 0.0, 0.0), print_gamma=1.0,
        background_seed=int(rng.integers(2 ** 31)), gradient=(0.0, 0.0), vignetting=0.0,
        shadow=(0.0, 0.0, 0.0, 0.1), exposure=exposure, colour_cast=balance, saturation=1.0,
        lens_blur_px=0.0, read_noise=0.0, shot_noise=0.0, jpeg_quality=_jpeg_quality(rng, profile),
        auto_white_balance=False, profile=profile.name, misregistration_mm=_plane_shifts(rng, measured.misregistration_mm))


def _plane_shifts(rng: np.random.Generator, rms_mm: float) -> tuple[float, ...]:
    """(dx, dy) of 3 colour planes, each moved in its own random direction by the length that puts them
    ``rms_mm`` (RMS) from their mean, as calibrate measures misregistration (``L √(2/3) = rms``);
    no draw at all when it is 0 (the photos of older measured profiles stay as they were)."""
    if rms_mm <= 0:
        return (0.0,) * 6
    angles = rng.uniform(0, 2 * math.pi, 3)
    length = rms_mm * math.sqrt(1.5)
    return tuple(float(v) for angle in angles for v in (length * math.cos(angle), length * math.sin(angle)))


def page_homography(shot: Shot, page_mm: tuple[float, float], frame: tuple[int, int]) -> np.ndarray:
    """The ``(3, 3)`` homography page mm → photo pixels of ``shot`` (see :func:`page_projection`)."""
    projection = page_projection(shot, page_mm, frame)
    return projection[:, [0, 1, 3]] / projection[2, 3]


def page_projection(shot: Shot, page_mm: tuple[float, float], frame: tuple[int, int]) -> np.ndarray:
    """The ``(3, 4)`` projection of page points ``(x, y, z, 1)`` (mm; ``z`` away from the camera,
    0 on the flat sheet) to homogeneous photo pixels of ``shot``.

    The page, centred on the optical axis, is rotated in 3-D and projected by a pinhole camera with
    focal length ``shot.focal_px``; its distance is set so that the projected page's bounding box
    spans ``shot.fill`` of the frame in its tighter direction, and the image is then shifted so the
    box sits at ``shot.position`` (0–1 in each direction) of the free space.
    """
    width_mm, height_mm = page_mm
    ax, ay, az = (math.radians(a) for a in (shot.tilt_x_deg, shot.tilt_y_deg, shot.roll_deg))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    rotation = rz @ rx @ ry
    centre = np.array([[1, 0, -width_mm / 2], [0, 1, -height_mm / 2], [0, 0, 1]])
    outline = np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], dtype=np.float64)
    frame_w, frame_h = frame
    camera = np.array([[shot.focal_px, 0, 0], [0, shot.focal_px, 0], [0, 0, 1]])
    distance = shot.focal_px * max(width_mm, height_mm) / (shot.fill * min(frame))
    for _ in range(4):  # the box's size is nearly ∝ 1/distance; a few fixed-point steps settle it
        pose = np.column_stack([rotation[:, 0], rotation[:, 1], [0, 0, distance]])
        homography = camera @ pose @ centre
        box = _project(homography, outline)
        extent = max((box[:, 0].max() - box[:, 0].min()) / frame_w, (box[:, 1].max() - box[:, 1].min()) / frame_h)
        distance *= extent / shot.fill
    pose = np.column_stack([rotation[:, 0], rotation[:, 1], [0, 0, distance]])
    homography = camera @ pose @ centre
    box = _project(homography, outline)
    low, high = box.min(axis=0), box.max(axis=0)
    free = np.array([frame_w - 1, frame_h - 1]) - (high - low)
    shift = np.asarray(shot.position) * free - low
    centre_3d = np.array([[1, 0, 0, -width_mm / 2], [0, 1, 0, -height_mm / 2], [0, 0, 1, 0], [0, 0, 0, 1]])
    projection = (np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ camera
                  @ np.column_stack([rotation, [0, 0, distance]]) @ centre_3d)
    return projection / projection[2, 3]


def _project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography).reshape(-1, 2)


def _max_scale(homography: np.ndarray, page_mm: tuple[float, float]) -> float:
    """Largest photo-pixels-per-mm over the page (the Jacobian's top singular value; it peaks at a corner)."""
    width, height = page_mm
    worst = 0.0
    for x, y in ((0, 0), (width, 0), (width, height), (0, height)):
        h = homography
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        u, v = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w, (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        jacobian = np.array([[h[0, 0] - u * h[2, 0], h[0, 1] - u * h[2, 1]],
                             [h[1, 0] - v * h[2, 0], h[1, 1] - v * h[2, 1]]]) / w
        worst = max(worst, float(np.linalg.norm(jacobian, 2)))
    return worst


def print_page(render: np.ndarray, pixels_per_mm: float, shot: Shot) -> np.ndarray:
    """The printed sheet as the camera sees it under white light: ``(H, W, 3)`` uint8 → uint8."""
    # Always applied, however small: Shot.print_blur_mm then is the blur the photo had. (It once was
    # skipped below 0.3 render px, where it changes a rendered chart by at most 2-3 levels at its
    # edges; the blur costs 34 ms on a 12-MP render, against seconds per photo.)
    sigma = shot.print_blur_mm * pixels_per_mm
    blurred = cv2.GaussianBlur(render, (0, 0), sigma) if sigma > 0 else render
    levels = (np.arange(256) / 255.0) ** shot.print_gamma
    ink, paper = np.asarray(shot.ink_rgb), np.asarray(shot.paper_rgb)
    table = np.clip(ink + (paper - ink) * levels[:, None], 0, 255).astype(np.uint8)
    return cv2.LUT(blurred, table.reshape(1, 256, 3))


def background(seed: int, frame: tuple[int, int]) -> np.ndarray:
    """A cluttered desk: smooth colour field, texture, random shapes, lines, text and checkers.

    Returns ``(H, W, 3)`` uint8 RGB of ``frame`` = (width, height).
    """
    rng = np.random.default_rng(seed)
    width, height = frame
    # The smooth colour field and the texture are built at 1/8 resolution: resizing up is cheap, and
    # only the shapes drawn afterwards need full-resolution edges.
    small = (width // 8 + 1, height // 8 + 1)
    coarse = cv2.resize(rng.uniform(60, 200, (4, 5, 3)).astype(np.float32), small, interpolation=cv2.INTER_CUBIC)
    coarse += rng.normal(0, rng.uniform(4, 14), (small[1], small[0], 1)).astype(np.float32)
    image = cv2.resize(cv2.add(coarse, 0, dtype=cv2.CV_8U), frame, interpolation=cv2.INTER_LINEAR)
    scale = min(width, height)
    for _ in range(int(rng.integers(15, 40))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = int(scale * rng.uniform(0.03, 0.25))
        kind = rng.integers(5)
        if kind == 0:
            cv2.circle(image, centre, size, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corners = rng.uniform(-size, size, (int(rng.integers(3, 7)), 2)) + centre
            cv2.fillPoly(image, [corners.astype(np.int32)], colour, cv2.LINE_AA)
        elif kind == 2:
            end = (centre[0] + int(rng.uniform(-3, 3) * size), centre[1] + int(rng.uniform(-3, 3) * size))
            cv2.line(image, centre, end, colour, max(1, size // 10), cv2.LINE_AA)
        elif kind == 3:
            cv2.putText(image, "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789 "), 12)), centre,
                        cv2.FONT_HERSHEY_SIMPLEX, size / 60, colour, max(1, size // 25), cv2.LINE_AA)
        else:  # black-and-white squares: the distractors a marker detector must reject
            step = max(2, size // 4)
            for row in range(4):
                for col in range(4):
                    if rng.uniform() < 0.5:
                        top_left = (centre[0] + col * step, centre[1] + row * step)
                        cv2.rectangle(image, top_left, (top_left[0] + step, top_left[1] + step), (0, 0, 0), -1)
    return image


def _illumination(shot: Shot, frame: tuple[int, int]) -> np.ndarray:
    """``(H, W, 1)`` float32 light level (gradient × vignetting × shadow × exposure); smooth, so
    it is computed at 1/8 resolution and upsampled."""
    width, height = frame
    small = (max(2, width // 8), max(2, height // 8))
    x, y = np.meshgrid(np.linspace(-1, 1, small[0]), np.linspace(-1, 1, small[1]))
    light = 1 + shot.gradient[0] * x + shot.gradient[1] * y
    light *= 1 - shot.vignetting * (x ** 2 + y ** 2) / 2
    angle, offset, strength, softness = shot.shadow
    # Signed distance to the shadow edge, in half-diagonals (so the edge crosses the frame for |offset| < 1).
    diagonal = math.hypot(width, height)
    signed = x * (width / diagonal) * math.cos(angle) + y * (height / diagonal) * math.sin(angle) - offset
    light *= 1 - strength / (1 + np.exp(-signed / softness))
    light = np.clip(light * shot.exposure, 0.05, None).astype(np.float32)
    return cv2.resize(light, frame, interpolation=cv2.INTER_LINEAR)[..., None]


class PhotoEffects:
    """Hooks for conditions beyond the ordinary photo, called by :func:`simulate_photo`
    (``tests/printouts_stress.py`` implements curl, glare, motion blur, halftone, ...); this base
    class changes nothing."""

    min_render_dpi: float = 0.0

    def on_print(self, render: np.ndarray, render_px_per_mm: float, photo_px_per_mm: float) -> np.ndarray:
        """The rendered page ``(H, W, 3)`` uint8 before ink and paper are applied."""
        return render

    def place(self, printed: np.ndarray, mm_to_render: np.ndarray, photo: np.ndarray) -> bool:
        """Draw the printed sheet into ``photo`` in place; ``False`` leaves it to the flat homography."""
        return False

    def on_sensor(self, photo: np.ndarray) -> np.ndarray:
        """The photo ``(H, W, 3)`` uint8 after lens blur, before light and noise."""
        return photo

    def on_light(self, light: np.ndarray) -> np.ndarray:
        """The lit photo ``(H, W, 3)`` float32 (0–255 scale, may exceed 255) before noise."""
        return light


def simulate_photo(document, shot: Shot, frame: tuple[int, int], profile: CameraProfile | str = "handheld",
                   effects: PhotoEffects | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One photo of ``shot.page`` of an open pypdfium2 ``document``, drawn by :func:`sample_shot`
    from ``profile`` (a measured profile is played back by :func:`_play_back`), with optional ``effects``
    (stress conditions).

    Returns:
        the photo ``(H, W, 3)`` uint8 RGB (before JPEG) and the ``(3, 3)`` page-mm → photo-pixel
        homography (of the flat sheet).
    """
    effects = effects or PhotoEffects()
    profile = load_profile(profile)
    page_mm = page_size_mm(document, shot.page)
    homography = page_homography(shot, page_mm, frame)
    photo_px_per_mm = _max_scale(homography, page_mm)
    if shot.device_dpi > 0 and profile.measured is None:
        photo = _device_print_through_lens(document, shot, page_mm, frame, homography, photo_px_per_mm, effects)
    else:
        dpi = min(600.0, max(effects.min_render_dpi, photo_px_per_mm * RENDER_OVERSAMPLING * 25.4))
        render = render_page(document, shot.page, dpi, smooth_images=False)
        # The bitmap is the page stretched onto whole pixels: per-axis scale, pixel edges at integers.
        sx, sy = render.shape[1] / page_mm[0], render.shape[0] / page_mm[1]
        mm_to_render = np.array([[sx, 0, -0.5], [0, sy, -0.5], [0, 0, 1]])
        if profile.measured is not None:
            return _play_back(render, (sx + sy) / 2, homography @ np.linalg.inv(mm_to_render), shot, frame,
                              profile.measured), homography
        printed = print_page(effects.on_print(render, (sx + sy) / 2, photo_px_per_mm), (sx + sy) / 2, shot)
        photo = background(shot.background_seed, frame)
        if not effects.place(printed, mm_to_render, photo):
            cv2.warpPerspective(printed, homography @ np.linalg.inv(mm_to_render), frame, dst=photo,
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
        photo = cv2.transform(photo, _cast_matrix(shot))
        # Lens blur before the light field: they nearly commute (the field is smooth), and blurring
        # 8-bit pixels is several times faster than blurring floats.
        photo = cv2.GaussianBlur(photo, (0, 0), shot.lens_blur_px)
    photo = effects.on_sensor(photo)
    light = effects.on_light(photo * _illumination(shot, frame))
    noisy = light * shot.shot_noise ** 2
    noisy += shot.read_noise ** 2
    cv2.sqrt(noisy, noisy)
    _multiply_by_noise(noisy, shot.background_seed + 1)
    raw = cv2.add(light, noisy, dtype=cv2.CV_32F)
    if shot.runs_isp:
        return _phone_pipeline(raw, shot), homography
    if shot.auto_white_balance:
        return _auto_white_balance(raw), homography
    return np.clip(raw, 0, 255).astype(np.uint8), homography


def _cast_matrix(shot: Shot) -> np.ndarray:
    """``(3, 3)`` float32: the light's colour cast and the print's reduced saturation."""
    cast = np.asarray(shot.colour_cast, dtype=np.float32)
    grey = np.full((3, 3), (1 - shot.saturation) / 3, dtype=np.float32)
    return (grey + shot.saturation * np.eye(3, dtype=np.float32)) * cast[:, None]


def _device_print_through_lens(document, shot: Shot, page_mm: tuple[float, float], frame: tuple[int, int],
                               homography: np.ndarray, photo_px_per_mm: float, effects: PhotoEffects) -> np.ndarray:
    """The sheet printed on the device grid (:func:`physadv.printouts.printer.print_on_device`), placed in
    the scene, colour-cast and blurred by the lens, all in linear light (the screen is finer than the
    photo's pixels: averaging it in encoded levels would darken it by tens of levels); returned as sRGB
    levels ``(H, W, 3)`` uint8. The print is averaged over blocks of whole dots about one photo pixel wide
    (the sensor pixel's aperture, at the sharpest corner of the page) before the warp resamples it."""
    from physadv.printouts.printer import DevicePrint, levels_to_linear, linear_to_levels, print_on_device

    factor = max(1, round(shot.device_dpi / (photo_px_per_mm * 25.4)))
    device = render_page(document, shot.page, shot.device_dpi, smooth_images=False)
    dots_x, dots_y = device.shape[1] / page_mm[0], device.shape[0] / page_mm[1]
    device = effects.on_print(device, (dots_x + dots_y) / 2, photo_px_per_mm)
    engine = DevicePrint(device_dpi=shot.device_dpi, halftone_lpi=shot.halftone_lpi,
                         screen_angles_deg=shot.screen_angles_deg, dot_levels=shot.dot_levels,
                         error_diffusion=shot.error_diffusion, yule_nielsen_n=shot.yule_nielsen_n,
                         graininess=shot.graininess, misregistration_mm=shot.misregistration_mm,
                         banding=shot.banding, blur_mm=shot.print_blur_mm, seed=shot.background_seed + 2)
    printed = print_on_device(device, factor, engine, shot.ink_rgb, shot.paper_rgb, shot.print_gamma)
    sx, sy = dots_x / factor, dots_y / factor
    mm_to_render = np.array([[sx, 0, -0.5], [0, sy, -0.5], [0, 0, 1]])
    photo = levels_to_linear(background(shot.background_seed, frame))
    if not effects.place(printed, mm_to_render, photo):
        cv2.warpPerspective(printed, homography @ np.linalg.inv(mm_to_render), frame, dst=photo,
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    photo = cv2.transform(photo, _cast_matrix(shot))
    return linear_to_levels(cv2.GaussianBlur(photo, (0, 0), shot.lens_blur_px))


def _phone_pipeline(raw: np.ndarray, shot: Shot) -> np.ndarray:
    """The sensor's RGB ``(H, W, 3)`` float32 → the phone's processed photo, uint8: white balance (on the
    mosaic when demosaicing), demosaicing, denoising and sharpening of the luma, tone curve
    (:mod:`physadv.printouts.isp`)."""
    from physadv.printouts.isp import bayer_mosaic, demosaic, on_luma, tone_curve

    gains = _white_balance_gains(raw) if shot.auto_white_balance else np.ones(3, np.float32)
    if shot.demosaic:
        image = demosaic(np.clip(bayer_mosaic(raw, gains), 0, 255).astype(np.uint8))
    else:
        image = np.clip(raw * gains, 0, 255).astype(np.uint8)
    image = on_luma(image, shot.denoise_sigma, shot.denoise_radius_px, shot.sharpen_amount, shot.sharpen_radius_px)
    return cv2.LUT(image, tone_curve(shot.tone_contrast)) if shot.tone_contrast != 1 else image


def apply_colour_response(printed: np.ndarray, measured: MeasuredChannel) -> np.ndarray:
    """Printed sRGB levels ``(..., 3)`` in 0-255 → photographed levels (float32): the colour matrix
    in linear light, then the tone curve per channel (the model ``physadv calibrate`` fits)."""
    linear = srgb_to_linear(np.asarray(printed, dtype=np.float32) / 255.0)
    mixed = linear @ np.asarray(measured.colour_matrix, dtype=np.float32).T
    encoded = (linear_to_srgb(mixed) * 255.0).astype(np.float32)
    curve = np.asarray(measured.tone_curve, dtype=np.float64)
    return np.stack([np.interp(encoded[..., c], curve[:, 0], curve[:, 1 + c]) for c in range(3)],
                    axis=-1).astype(np.float32)


def _play_back(render: np.ndarray, pixels_per_mm: float, render_to_photo: np.ndarray, shot: Shot,
               frame: tuple[int, int], measured: MeasuredChannel) -> np.ndarray:
    """A measured profile's channel: blur (page mm) on the printed levels, its colour planes' measured
    misregistration, colour matrix and tone curve, the pose, this photo's exposure and white-balance
    gains, noise σ(level) per photo pixel."""
    sigma = measured.blur_sigma_mm * pixels_per_mm
    blurred = cv2.GaussianBlur(render, (0, 0), sigma) if sigma > 0 else render  # as print_page: always
    if any(shot.misregistration_mm):
        from physadv.printouts.printer import shift_plane

        blurred = np.dstack([shift_plane(np.ascontiguousarray(blurred[..., c]), shot.misregistration_mm[2 * c] * pixels_per_mm,
                                         shot.misregistration_mm[2 * c + 1] * pixels_per_mm, fill=255)
                             for c in range(3)])
    # The colour response of all 256³ colours would not fit a LUT; a 32³ grid with trilinear
    # interpolation is within 0.1 level of the exact response (smooth in each channel).
    printed = _colour_grid_lookup(blurred, measured)
    photo = background(shot.background_seed, frame).astype(np.float32)
    cv2.warpPerspective(printed, render_to_photo, frame, dst=photo, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)
    photo *= np.float32(shot.exposure) * np.asarray(shot.colour_cast, dtype=np.float32)
    sigma_map = measured.noise_sigma(np.clip(photo, 0, 255)).astype(np.float32)
    _multiply_by_noise(sigma_map, shot.background_seed + 1)
    return np.clip(photo + sigma_map, 0, 255).astype(np.uint8)


def _colour_grid_lookup(image: np.ndarray, measured: MeasuredChannel, nodes: int = 33) -> np.ndarray:
    """:func:`apply_colour_response` of ``(H, W, 3)`` uint8 by trilinear interpolation in a grid."""
    axis = np.linspace(0, 255, nodes, dtype=np.float32)
    grid = apply_colour_response(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1), measured)
    position = image.astype(np.float32) * ((nodes - 1) / 255.0)
    low = np.minimum(position.astype(np.int32), nodes - 2)
    frac = position - low
    out = np.zeros(image.shape, dtype=np.float32)
    for corner in range(8):
        bits = [(corner >> k) & 1 for k in range(3)]
        weight = np.ones(image.shape[:2], dtype=np.float32)
        for k, bit in enumerate(bits):
            weight *= frac[..., k] if bit else 1 - frac[..., k]
        out += weight[..., None] * grid[low[..., 0] + bits[0], low[..., 1] + bits[1], low[..., 2] + bits[2]]
    return out


def _auto_white_balance(raw: np.ndarray) -> np.ndarray:
    """A phone's auto exposure and white balance (white patch): scale each channel so that its
    brightest pixels (:data:`AWB_PERCENTILE`) land at :data:`AWB_WHITE_LEVEL`, as a camera pipeline
    does before it saves the JPEG; without it every photo keeps the cast and exposure of its light,
    which no phone or webcam delivers."""
    return np.clip(raw * _white_balance_gains(raw), 0, 255).astype(np.uint8)


def _white_balance_gains(raw: np.ndarray) -> np.ndarray:
    """``(3,)`` float32 gains of :func:`_auto_white_balance`."""
    small = raw[::8, ::8].reshape(-1, 3)
    return (AWB_WHITE_LEVEL / np.maximum(np.percentile(small, AWB_PERCENTILE, axis=0), 1.0)).astype(np.float32)


def _multiply_by_noise(sigma: np.ndarray, seed: int) -> None:
    """Multiply ``sigma`` (H, W, 3) float32 in place by standard normal noise: a 1024² tile repeated
    from a random offset, because drawing 36 M normals per 12-MP photo costs more than the rest."""
    rng = np.random.default_rng(seed)
    tile = rng.standard_normal((NOISE_TILE, NOISE_TILE, sigma.shape[2]), dtype=np.float32)
    multiply_by_tile(sigma, tile, tuple(int(v) for v in rng.integers(0, NOISE_TILE, 2)))


def encode_jpeg(photo: np.ndarray, quality: int, full_chroma: bool = False) -> bytes:
    """JPEG bytes of ``(H, W, 3)`` uint8 RGB; chroma subsampled 4:2:0 as cameras do, or kept whole
    (4:4:4) when ``full_chroma`` (a measured profile's photos, whose noise already went through a JPEG)."""
    options = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if full_chroma:
        options += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), options)
    if not ok:
        raise InputError("JPEG encoding failed")
    return data.tobytes()


def _truth_header(pdf: Path, manifest: Manifest | None, resolution: str, seed: int, profile: CameraProfile) -> dict:
    return {"schema": SCHEMA, "pdf": str(pdf), "pdf_sha256": hashlib.sha256(pdf.read_bytes()).hexdigest(),
            "run_id": manifest.run_id if manifest else None, "resolution": resolution,
            "size_px": list(RESOLUTIONS[resolution]), "seed": seed, "profile": profile.name,
            "profile_sha256": hashlib.sha256(profile_to_toml(profile).encode()).hexdigest()}


def read_truth(path: str | Path) -> tuple[dict, list[PhotoTruth]]:
    """``(header, photos)`` of a ``truth.json`` written by :func:`photograph`."""
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise InputError(f"{path}: unsupported schema {data.get('schema')!r} (expected {SCHEMA})")
        photos = [PhotoTruth(index=p["index"], file=p["file"], page=p["page"], size_px=tuple(p["size_px"]),
                             homography=tuple(tuple(row) for row in p["homography"]),
                             shot=Shot(**{k: tuple(v) if isinstance(v, list) else v for k, v in p["shot"].items()}))
                  for p in data["photos"]]
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (physadv photograph writes PHOTOS/{TRUTH_FILE})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path}: not a readable truth record ({error})") from None
    unsafe = [p.file for p in photos if not is_safe_name(p.file) or not isinstance(p.index, int)]
    if unsafe:  # a truth record is untrusted: its file names must not lead out of its folder
        raise InputError(f"{path}: not a truth record of physadv photograph (photo file {unsafe[0]!r})")
    header = {k: v for k, v in data.items() if k != "photos"}
    return header, photos


def photograph(pdf: str | Path, manifest: Manifest | None, out_dir: str | Path, n: int, resolution: str | None = None,
               seed: int = 0, *, profile: CameraProfile | str = "handheld", progress: bool = False) -> list[PhotoTruth]:
    """Take ``n`` synthetic photos of the pages of ``pdf`` (photo ``i`` shows page ``i mod pages``).

    Writes ``out_dir/photo_XXXX.jpg`` and ``out_dir/truth.json`` (atomically, after every photo).
    Photos already recorded there for the same PDF, resolution and seed are kept, so an
    interrupted run resumes.

    Args:
        pdf: sheets written by :func:`physadv.printouts.sheets.write_sheets`.
        manifest: its manifest (only the run id is recorded); ``None`` photographs any PDF.
        out_dir: the photo folder.
        n: number of photos.
        resolution: a key of :data:`RESOLUTIONS`; ``None``: the profile's.
        seed: the seed of every random draw.
        profile: a camera profile or its name/TOML file (:func:`physadv.printouts.profiles.load_profile`);
            the Python default is ``handheld``, the original camera (the CLI defaults to ``lab``).

    Returns:
        the truth of every photo, in index order.

    Raises:
        InputError: bad ``n``, ``resolution`` or profile, an unreadable PDF, or an ``out_dir`` holding
            photos of other settings.
    """
    profile = load_profile(profile)
    resolution = resolution or profile.resolution
    if resolution not in RESOLUTIONS:
        raise InputError(f"unknown resolution {resolution!r} (use {', '.join(RESOLUTIONS)})")
    if n < 1:
        raise InputError(f"the number of photos must be at least 1, got {n}")
    check_seed(seed)
    pdf, out = Path(pdf), Path(out_dir)
    document = open_pdf(pdf)
    document_title = document.get_metadata_dict().get("Title")
    if manifest is not None and document_title != sheet_title(manifest.run_id):
        document.close()
        raise InputError(f"{pdf} is not the PDF of the manifest's run {manifest.run_id} (its title is "
                         f"{document_title!r}); pass the manifest written beside this PDF")
    pages = len(document)
    if n > MAX_PHOTOS_PER_PAGE * pages:
        document.close()
        raise InputError(f"{n:,} photos of {pages} page(s): at most {MAX_PHOTOS_PER_PAGE:,} per page "
                         f"({MAX_PHOTOS_PER_PAGE * pages:,} in all)")
    header = _truth_header(pdf, manifest, resolution, seed, profile)
    done: dict[int, PhotoTruth] = {}
    if (out / TRUTH_FILE).is_file():
        existing, photos = read_truth(out / TRUTH_FILE)
        differing = [key for key in ("pdf_sha256", "resolution", "seed", "profile_sha256") if existing.get(key) != header[key]]
        if differing:
            raise InputError(f"{out} already holds photos of another "
                             f"{' and '.join(d.replace('_sha256', '') for d in differing)} "
                             f"({TRUTH_FILE}); choose another --out")
        done = {p.index: p for p in photos if p.index < n and (out / p.file).is_file()}
    frame = RESOLUTIONS[resolution]
    with tqdm(total=n, initial=len(done), desc=f"photographing ({resolution}, {profile.name})", unit="photo",
              disable=None if progress else True) as bar:
        for index in range(n):
            if index in done:
                continue
            shot = sample_shot(np.random.default_rng([seed, index]), index % pages, frame, profile)
            photo, homography = simulate_photo(document, shot, frame, profile)
            name = f"photo_{index:04d}.jpg"
            full_chroma = profile.measured is not None or not shot.chroma_subsampling
            atomic_write_bytes(out / name, encode_jpeg(photo, shot.jpeg_quality, full_chroma))
            done[index] = PhotoTruth(index, name, shot.page, frame,
                                     tuple(tuple(float(v) for v in row) for row in homography), shot)
            atomic_write_json(out / TRUTH_FILE, {**header, "photos": [asdict(done[i]) for i in sorted(done)]})
            bar.update()
    document.close()
    return [done[i] for i in range(n)]
