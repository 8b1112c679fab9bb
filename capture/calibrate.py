"""``physadv calibrate``: measure a printer + camera channel from photos of the calibration chart.

For every photo the chart is found and identified by :func:`physadv.capture.detect.find_pages`
(the chart is a one-cell sheet, :mod:`physadv.printouts.chart`); photos where it is not found, or
that show another run's chart, are skipped with the detector's reason. On the others:

- **patches**: the photo pixels inside each patch (inset by :data:`PATCH_INSET` of its side) give
  the patch's mean colour and, after removing a fitted plane (residual illumination gradient), its
  noise σ per channel, in photo pixels;
- **white**: the paper-white ramp step gives the photo's exposure (its mean level) and white
  balance (R/G, B/G); each photo is normalised to the mean white before the photos are pooled, and
  the spread of these gains is recorded;
- **tone curve** per channel: the grey ramp's printed level → normalised photographed level;
- **colour matrix**: the photographed colours of the ColorChecker (and grey) patches are taken
  back through the inverse tone curve and linearised (sRGB), and a 3×3 matrix from the printed
  linear sRGB is fitted with ``colour.characterisation.matrix_colour_correction`` (Cheung 2004, 3
  terms); fit quality is the mean CIEDE2000 between the model's and the measured patch colours;
- **sharpness**: every side of every slanted-edge square (ISO 12233 slanted edge) gives an edge
  spread function: each photo pixel near the side is mapped to its signed distance (page mm) from
  the printed edge by the chart's homography, and its level through the inverse tone curve.
  An erf (Gaussian-blurred step) fitted to it gives σ, from which the chart's own pixel box
  (``pitch/√12``) and the photo's pixel aperture (one photo pixel, ``/√12``) are removed in
  quadrature; MTF50 comes from the Fourier transform of the binned
  line spread function (4 bins per photo pixel, Hann window);
- **noise**: σ per channel against the photographed level, from all grey patches, less the 8-bit
  rounding of the saved photo (σ² − 1/12), which the virtual camera plays back by itself.

The result is a measured :class:`~physadv.printouts.profiles.CameraProfile` (scene and JPEG ranges
from a base profile), written as TOML, and one :class:`PhotoCalibration` per photo with its fit
quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from physadv.capture.detect import find_pages, project
from physadv.errors import InputError
from physadv.images import read_rgb
from physadv.printouts.camera import apply_colour_response, srgb_to_linear
from physadv.printouts.chart import chart_of, edge_square_corners
from physadv.printouts.manifest import Manifest
from physadv.printouts.profiles import CameraProfile, MeasuredChannel, load_profile, with_measured

PATCH_INSET = 0.2
EDGE_LENGTH_USED = 0.7  # middle share of each square side: away from the corners
EDGE_HALF_WIDTH_MM = 2.5
MIN_EDGE_PIXELS = 200
NOISE_BIN = 8.0  # levels: noise measurements closer than this are pooled into one table row


@dataclass(frozen=True)
class PhotoCalibration:
    """What one photo contributed: its figures and fit quality, or why it was skipped."""

    photo: str
    accepted: bool
    reason: str = ""
    detail: str = ""
    white_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    blur_sigma_mm: float = math.nan
    mtf50_cycles_per_mm: float = math.nan
    noise_mid_grey: float = math.nan
    tone_rms: float = math.nan
    delta_e_mean: float = math.nan
    marker_rms_px: float = math.nan

    def summary(self) -> str:
        if not self.accepted:
            return f"{self.photo}: skipped, {self.reason} ({self.detail})"
        white = "/".join(f"{v:.0f}" for v in self.white_rgb)
        return (f"{self.photo}: chart found (marker RMS {self.marker_rms_px:.2f} px), white {white}, "
                f"blur σ {self.blur_sigma_mm:.3f} mm, MTF50 {self.mtf50_cycles_per_mm:.2f} cycles/mm, "
                f"noise σ {self.noise_mid_grey:.2f} at mid grey, tone RMS {self.tone_rms:.2f}, ΔE00 {self.delta_e_mean:.2f}")


@dataclass(frozen=True)
class Calibration:
    """The measured profile and the per-photo records, in input order."""

    profile: CameraProfile
    photos: tuple[PhotoCalibration, ...]


@dataclass
class _Measurement:
    name: str
    patches: np.ndarray  # (P, 3) mean photographed level of each patch, in manifest order
    noise: np.ndarray  # (P, 3) σ per channel
    edges: list[tuple[np.ndarray, np.ndarray, float]]  # (distance mm, photographed grey level, mm per photo px)
    marker_rms_px: float
    pixels_per_mm: float


def _pixels_in(image: np.ndarray, homography: np.ndarray, corners_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Photo pixels inside the page-mm polygon: ``(N, 3)`` float values and their ``(N, 2)`` x, y."""
    polygon = project(homography, corners_mm)
    low = np.maximum(np.floor(polygon.min(axis=0)).astype(int), 0)
    high = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + 1, [image.shape[1], image.shape[0]])
    if (high <= low).any():
        return np.zeros((0, 3)), np.zeros((0, 2))
    mask = np.zeros((high[1] - low[1], high[0] - low[0]), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round((polygon - low) * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(mask)
    return image[ys + low[1], xs + low[0]].astype(np.float64), np.column_stack([xs + low[0], ys + low[1]])


def _box_corners(box: list[float], inset: float) -> np.ndarray:
    x, y, w, h = box
    dx, dy = w * inset, h * inset
    return np.array([[x + dx, y + dy], [x + w - dx, y + dy], [x + w - dx, y + h - dy], [x + dx, y + h - dy]])


def _patch_stats(image: np.ndarray, homography: np.ndarray, box: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean level and noise σ per channel of a patch; the σ is of the residual of a fitted plane."""
    values, xy = _pixels_in(image, homography, _box_corners(box, PATCH_INSET))
    if len(values) < 30:
        raise InputError("a chart patch covers fewer than 30 photo pixels: photograph the chart larger")
    design = np.column_stack([np.ones(len(xy)), xy - xy.mean(axis=0)])
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coefficients
    # The saved photo's rounding to 8 bits (uniform, variance 1/12) is played back by the virtual
    # camera's own rounding, so it is not part of the measured sensor noise.
    return coefficients[0], np.sqrt(np.maximum(residual.var(axis=0, ddof=3) - 1 / 12, 0.0))


def _measure(image: np.ndarray, manifest: Manifest, chart: dict, name: str) -> _Measurement | PhotoCalibration:
    detection = find_pages(image, manifest)
    if not detection.pages:
        rejection = detection.rejections[0]
        return PhotoCalibration(name, False, rejection.reason, rejection.detail)
    page = detection.pages[0]
    homography = page.homography
    stats = [_patch_stats(image, homography, patch["box_mm"]) for patch in chart["patches"]]
    inverse = np.linalg.inv(homography)
    edges = []
    for edge in chart["edges"]:
        corners = edge_square_corners(edge)
        for side in range(4):
            start, end = corners[side], corners[(side + 1) % 4]
            direction = (end - start) / np.linalg.norm(end - start)
            normal = np.array([direction[1], -direction[0]])  # clockwise square: points outwards, to the light side
            middle = (start + end) / 2
            half_length = EDGE_LENGTH_USED * edge["side_mm"] / 2
            region = np.array([middle - direction * half_length - normal * EDGE_HALF_WIDTH_MM,
                               middle + direction * half_length - normal * EDGE_HALF_WIDTH_MM,
                               middle + direction * half_length + normal * EDGE_HALF_WIDTH_MM,
                               middle - direction * half_length + normal * EDGE_HALF_WIDTH_MM])
            values, xy = _pixels_in(image, homography, region)
            if len(values) < MIN_EDGE_PIXELS:
                continue
            page_mm = project(inverse, xy.astype(np.float64))
            distance = (page_mm - middle) @ normal
            step = project(inverse, np.array([xy[0], xy[0] + [1, 0]], dtype=np.float64))
            edges.append((distance, values, float(np.linalg.norm(step[1] - step[0]))))
    side_mm = float(np.linalg.norm(np.subtract(*manifest.pages[0].markers[0].corners_mm[:2])))
    return _Measurement(name, np.array([s[0] for s in stats]), np.array([s[1] for s in stats]), edges,
                        page.rms_px, page.marker_side_px / side_mm)


def _monotone(levels: np.ndarray) -> np.ndarray:
    """Make a measured curve strictly increasing (noise can make neighbouring steps swap)."""
    return np.maximum.accumulate(levels) + np.arange(len(levels)) * 1e-3


def _inverse_tone(curve: np.ndarray, values: np.ndarray, channel: int | None = None) -> np.ndarray:
    """Photographed levels → printed levels through the tone curve (grey mean when ``channel`` is None)."""
    y = curve[:, 1:].mean(axis=1) if channel is None else curve[:, 1 + channel]
    return np.interp(values, _monotone(y), curve[:, 0])


def _erf_fit(distance: np.ndarray, levels: np.ndarray, mm_per_px: float) -> tuple[float, float]:
    """σ (mm) of an erf fitted to an edge spread function, and MTF50 (cycles/mm) of its binned LSF."""
    from scipy.optimize import curve_fit
    from scipy.special import erf

    def model(d, low, high, centre, sigma):
        return low + (high - low) * 0.5 * (1 + erf((d - centre) / (math.sqrt(2) * abs(sigma) + 1e-9)))

    start = (np.percentile(levels, 5), np.percentile(levels, 95), 0.0, 0.1)
    try:
        (low, high, centre, sigma), _ = curve_fit(model, distance, levels, p0=start, maxfev=4000)
    except RuntimeError:
        return math.nan, math.nan
    width = mm_per_px / 4
    bins = np.arange(-EDGE_HALF_WIDTH_MM, EDGE_HALF_WIDTH_MM + width, width)
    index = np.digitize(distance - centre, bins)
    counts = np.bincount(index, minlength=len(bins) + 1)[1:-1]
    sums = np.bincount(index, weights=levels, minlength=len(bins) + 1)[1:-1]
    filled = counts > 0
    centres = (bins[:-1] + bins[1:]) / 2
    esf = np.interp(centres, centres[filled], sums[filled] / counts[filled])
    lsf = np.gradient(esf) * np.hanning(len(esf))
    spectrum = np.abs(np.fft.rfft(lsf))
    frequencies = np.fft.rfftfreq(len(lsf), d=width)
    mtf = spectrum / spectrum[0]
    below = np.flatnonzero(mtf < 0.5)
    if not len(below) or below[0] == 0:
        return abs(float(sigma)), math.nan
    k = below[0]
    mtf50 = frequencies[k - 1] + (mtf[k - 1] - 0.5) / (mtf[k - 1] - mtf[k]) * (frequencies[k] - frequencies[k - 1])
    return abs(float(sigma)), float(mtf50)


def _delta_e(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    import colour

    def lab(levels):
        return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(levels, 0, 255) / 255.0))

    return colour.delta_E(lab(predicted), lab(measured), method="CIE 2000")


def calibrate(photos: list[str | Path], manifest: Manifest, *, base: CameraProfile | str = "lab", name: str = "measured",
              progress: bool = False) -> Calibration:
    """Measure the channel from ``photos`` of the chart of ``manifest`` (see the module doc).

    Args:
        photos: image files; unreadable ones and those without this chart are skipped with a reason.
        manifest: the chart's manifest (written by :func:`physadv.printouts.chart.write_chart`).
        base: the profile whose scene (pose) and JPEG ranges the measured profile keeps.
        name: the measured profile's name.

    Raises:
        InputError: ``manifest`` is not a chart's, or no photo shows the chart.
    """
    chart = chart_of(manifest)
    base = load_profile(base)
    records: list[PhotoCalibration | _Measurement] = []
    for path in tqdm(photos, desc="calibrating", unit="photo", disable=not progress):
        path = Path(path)
        try:
            image = read_rgb(path)
        except InputError as error:
            records.append(PhotoCalibration(path.name, False, "unreadable", str(error)))
            continue
        records.append(_measure(image, manifest, chart, path.name))
    measurements = [r for r in records if isinstance(r, _Measurement)]
    if not measurements:
        reasons = "; ".join(r.summary() for r in records if isinstance(r, PhotoCalibration))
        raise InputError(f"no photo shows this chart (run {manifest.run_id}): {reasons or 'no photos'}")
    profile, per_photo = _fit(measurements, chart, base, name)
    by_name = {p.photo: p for p in per_photo}
    return Calibration(profile, tuple(r if isinstance(r, PhotoCalibration) else by_name[r.name] for r in records))


def _fit(measurements: list[_Measurement], chart: dict, base: CameraProfile,
         name: str) -> tuple[CameraProfile, list[PhotoCalibration]]:
    patches = chart["patches"]
    printed = np.array([p["rgb"] for p in patches], dtype=np.float64)
    grey = [i for i, p in enumerate(patches) if p["kind"] == "grey"]
    ramp_levels = printed[grey, 0]
    white_index = grey[int(np.argmax(ramp_levels))]
    whites = np.array([m.patches[white_index] for m in measurements])
    mean_white = whites.mean(axis=0)
    gains = whites / mean_white  # per photo and channel, relative to the mean
    normalised = [m.patches / g for m, g in zip(measurements, gains)]
    curve = np.column_stack([ramp_levels, np.mean([n[grey] for n in normalised], axis=0)])
    order = np.argsort(curve[:, 0])
    curve = curve[order]

    # Colour matrix in linear light, from printed sRGB to the tone-linearised photographed colours.
    from colour.characterisation import matrix_colour_correction

    colour_rows = [i for i, p in enumerate(patches) if p["kind"] in ("colour", "grey")]
    target = np.concatenate([printed[colour_rows] for _ in normalised])
    observed = np.concatenate([n[colour_rows] for n in normalised])
    delinearised = np.column_stack([_inverse_tone(curve, observed[:, c], c) for c in range(3)])
    matrix = matrix_colour_correction(srgb_to_linear(target / 255), srgb_to_linear(np.clip(delinearised, 0, 255) / 255),
                                      method="Cheung 2004", terms=3)

    pitch = float(chart["pitch_mm"])
    noise_points = []
    per_photo, sigmas, mtfs = [], [], []
    measured_stub = MeasuredChannel(tuple(map(tuple, curve)), tuple(map(tuple, matrix)), 0.0, 0.0, ((0, 0, 0, 0),),
                                    (1, 1), (1, 1), (1, 1), 1.0, 1, 0.0)
    predicted = apply_colour_response(printed, measured_stub)
    colour_only = [i for i, p in enumerate(patches) if p["kind"] == "colour"]
    for m, g, n in zip(measurements, gains, normalised):
        edge_sigmas, edge_mtfs = [], []
        for distance, values, mm_per_px in m.edges:
            levels = _inverse_tone(curve, (values / g).mean(axis=1))
            sigma, mtf50 = _erf_fit(distance, levels, mm_per_px)
            if math.isfinite(sigma):
                # Neither the chart's pixels nor the photo's pixel aperture (boxes of one pixel) are
                # part of the channel's blur: the virtual camera's resampling plays the latter back.
                edge_sigmas.append(math.sqrt(max(sigma ** 2 - (pitch ** 2 + mm_per_px ** 2) / 12, 0.0)))
            if math.isfinite(mtf50):
                edge_mtfs.append(mtf50)
        sigma = float(np.median(edge_sigmas)) if edge_sigmas else math.nan
        mtf = float(np.median(edge_mtfs)) if edge_mtfs else math.nan
        sigmas.append(sigma)
        mtfs.append(mtf)
        flat_or_grey = [i for i, p in enumerate(patches) if p["kind"] in ("grey", "flat")]
        for i in flat_or_grey:
            noise_points.append((m.patches[i].mean(), *m.noise[i]))
        mid = min(flat_or_grey, key=lambda i: abs(m.patches[i].mean() - 128))
        per_photo.append(PhotoCalibration(
            m.name, True, white_rgb=tuple(float(v) for v in m.patches[white_index]), blur_sigma_mm=sigma,
            mtf50_cycles_per_mm=mtf, noise_mid_grey=float(m.noise[mid].mean()),
            tone_rms=float(np.sqrt(((n[grey][order] - curve[:, 1:]) ** 2).mean())),
            delta_e_mean=float(_delta_e(predicted[colour_only], n[colour_only]).mean()),
            marker_rms_px=m.marker_rms_px))
    noise = _noise_table(np.array(noise_points))
    sigma = float(np.nanmedian(sigmas)) if np.isfinite(sigmas).any() else 0.0
    mtf = float(np.nanmedian(mtfs)) if np.isfinite(mtfs).any() else 0.0
    exposure = gains.mean(axis=1)
    balance_r, balance_b = gains[:, 0] / gains[:, 1], gains[:, 2] / gains[:, 1]
    measured = MeasuredChannel(
        tone_curve=tuple(tuple(float(v) for v in row) for row in np.clip(curve, 0, 255)),
        colour_matrix=tuple(tuple(float(v) for v in row) for row in matrix),
        blur_sigma_mm=sigma, mtf50_cycles_per_mm=mtf, noise=noise,
        exposure_gain=(float(exposure.min()), float(exposure.max())),
        white_balance_r=(float(balance_r.min()), float(balance_r.max())),
        white_balance_b=(float(balance_b.min()), float(balance_b.max())),
        pixels_per_mm=float(np.mean([m.pixels_per_mm for m in measurements])), photos=len(measurements),
        delta_e_mean=float(np.mean([p.delta_e_mean for p in per_photo])))
    description = (f"measured by physadv calibrate from {len(measurements)} photo(s); "
                   f"pose and JPEG ranges from the {base.name} profile")
    return with_measured(base, name, description, measured), per_photo


def _noise_table(points: np.ndarray) -> tuple[tuple[float, float, float, float], ...]:
    """Rows (level, σR, σG, σB) pooled in bins of :data:`NOISE_BIN` levels, levels increasing."""
    points = points[np.argsort(points[:, 0])]
    rows: list[list[float]] = []
    for point in points:
        if rows and point[0] - rows[-1][0] < NOISE_BIN:
            rows[-1] = list(np.mean([rows[-1], point], axis=0))
        else:
            rows.append(list(point))
    return tuple(tuple(float(np.clip(v, 0, 255)) for v in row) for row in rows)


# --- EOT from a profile ------------------------------------------------------------------------------------

PROFILE_PREFIX = "profile:"
VIRTUAL_CALIBRATION_PHOTOS = 3
DEFAULT_PIXEL_MM = 25.4 / 96  # the default sheets print a 224-px image at 96 dpi (physadv print)


def measured_channel(profile: CameraProfile | str, *, progress: bool = False) -> MeasuredChannel:
    """The measured channel of ``profile``: its own for a measured profile; for a parametric one,
    the result of calibrating the virtual camera with that profile (the chart photographed
    :data:`VIRTUAL_CALIBRATION_PHOTOS` times), cached in ``$PHYSADV_HOME/profiles`` by the profile's hash."""
    import hashlib
    import tempfile

    from physadv.classifiers.digits import cache_dir
    from physadv.fileio import atomic_write_text
    from physadv.printouts.camera import photograph
    from physadv.printouts.chart import CHART_FILE, write_chart
    from physadv.printouts.profiles import profile_to_toml

    profile = load_profile(profile)
    if profile.measured is not None:
        return profile.measured
    digest = hashlib.sha256(profile_to_toml(profile).encode()).hexdigest()[:16]
    cached = cache_dir() / "profiles" / f"{profile.name}-{digest}.toml"
    if cached.is_file():
        measured = load_profile(cached).measured
        assert measured is not None
        return measured
    with tempfile.TemporaryDirectory() as work:
        manifest = write_chart(Path(work) / "chart", run_id=f"cal{digest[:5]}")
        photograph(Path(work) / "chart" / CHART_FILE, manifest, Path(work) / "photos", VIRTUAL_CALIBRATION_PHOTOS,
                   seed=int(digest[:8], 16), profile=profile, progress=progress)
        result = calibrate(sorted((Path(work) / "photos").glob("*.jpg")), manifest, base=profile,
                           name=f"{profile.name}-virtual")
    atomic_write_text(cached, profile_to_toml(result.profile, f"physadv: the {profile.name} profile's virtual camera, "
                                                              "calibrated on the chart"))
    assert result.profile.measured is not None
    return result.profile.measured


def profile_distribution(spec: str | CameraProfile, pixel_mm: float = DEFAULT_PIXEL_MM, *,
                         progress: bool = False):
    """The EOT distribution of a camera profile (``"profile:lab"``, ``"lab"``, a TOML file or a
    profile): its measured channel in the pixels of an image printed at ``pixel_mm`` per pixel.

    The blur σ becomes ``blur_sigma_mm / pixel_mm`` image pixels; the noise σ is divided by the number
    of photo pixels per image pixel along a side (when above 1), since capture area-averages them.
    The pose is left out: capture rectifies every cell (corner errors ≤ 0.2 photo px, bench_capture).
    """
    from physadv.eot import channel_distribution

    if isinstance(spec, str) and spec.startswith(PROFILE_PREFIX):
        spec = spec[len(PROFILE_PREFIX):]
    profile = load_profile(spec)
    measured = measured_channel(profile, progress=progress)
    averaging = max(1.0, measured.pixels_per_mm * pixel_mm)
    noise = [(row[0], *(v / averaging for v in row[1:])) for row in measured.noise]
    return channel_distribution(
        f"{PROFILE_PREFIX}{profile.name}", blur_sigma_px=measured.blur_sigma_mm / pixel_mm,
        tone_curve=measured.tone_curve, colour_matrix=measured.colour_matrix, exposure=measured.exposure_gain,
        white_balance_r=measured.white_balance_r, white_balance_b=measured.white_balance_b, noise=noise,
        description=f"the calibrated channel of camera profile {profile.name}")


def resolve_distribution(spec):
    """``spec`` for :func:`physadv.eot.eot_gradient` / :func:`~physadv.eot.adversariality`, with
    ``profile:NAME|FILE.toml`` turned into :func:`profile_distribution`."""
    if isinstance(spec, str) and spec.startswith(PROFILE_PREFIX):
        return profile_distribution(spec)
    return spec
