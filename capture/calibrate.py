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
  the printed edge by the chart's homography, and its level through the inverse of the photo's own
  tone curve (so one photo's blur never depends on the others). An erf (Gaussian-blurred step)
  fitted to it gives σ, from which the chart's own pixel box (``pitch/√12``) and the photo's pixel
  aperture (one photo pixel, ``/√12``) are removed in quadrature: the blur σ is the channel's.
  MTF50 comes from the Fourier transform of the binned line spread function (4 bins per photo
  pixel, Hann window) and is left as photographed, both apertures included;
- **noise**: σ per channel against the photographed level, from all grey patches, less the 8-bit
  rounding of the saved photo (σ² − 1/12), which the virtual camera plays back by itself;
- **misregistration** (issue 22): at every side of every slanted edge an erf is fitted to each channel
  alone; a colour plane displaced by ``d`` moves an edge with outward normal ``n`` by ``n · d``, so a
  least-squares fit over the sides gives each plane's displacement from the mean of the three, and the
  figure is their RMS (mm). Demosaicing, 4:2:0 chroma and desaturation mix the planes: a phone's photo
  shows less than the print has (by about 20 % through the ``lab`` pipeline);
- **halftone frequency** (issue 22): the inner part of each flat patch is resampled on a page-mm grid at
  the photo's resolution and the strongest peak of its power spectrum above 1.9 cycles/mm (50 lpi) is
  the screen's frequency, as photographed (its alias when the screen is finer than the photo's Nyquist
  frequency, as ``lab``'s 150 lpi is at 12 MP); it needs two flats that agree within 5 %.

Toner graininess is not measured: ISO/IEC 13660 defines it over 42.3-µm tiles, and a 12-MP photo of an A4
chart samples about 0.12 mm per pixel (nine such tiles); what is left of it at that scale is far below
the sensor noise (``tests/test_channel_fidelity.py``: σ 0.06 density per dot changes nothing measurable).

Before pooling, each photo is judged alone (:func:`_assess`): a photo whose grey ramp falls from
one step to the next, or whose own chart model (tone curve + matrix fitted to it alone) cannot
explain its colour patches or flat greys, shows a covered or shaded chart; one whose edges fit no
erf has no blur figure; one whose colour planes lie more than :data:`MISREGISTRATION_MAX_MM` apart
shows motion or lens colour fringes, not a print; all are skipped with the reason, as are photos too
small in the frame. A screen frequency on which the flats disagree is no figure (n/a), not a rejection. If
the pooled colour fit is still worse than :data:`POOLED_DELTA_E_MAX`, no profile is made.

The result is a measured :class:`~physadv.printouts.profiles.CameraProfile` (scene and JPEG ranges
from a base profile), written as TOML, and one :class:`PhotoCalibration` per photo with its fit
quality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from physadv.capture.detect import find_pages, project
from physadv.errors import InputError
from physadv.images import read_rgb
from physadv.colour import srgb_to_linear
from physadv.printouts.camera import apply_colour_response
from physadv.printouts.chart import EDGE_BAND_MM, chart_of, edge_square_corners
from physadv.printouts.manifest import Manifest
from physadv.printouts.profiles import CameraProfile, MeasuredChannel, load_profile, with_measured
from physadv.validation import CONTROL_CHARACTERS, PLAIN_NAME_RULE, is_safe_name

PATCH_INSET = 0.2
EDGE_LENGTH_USED = 0.7  # middle share of each square side: away from the corners
EDGE_HALF_WIDTH_MM = EDGE_BAND_MM  # the band read each side of an edge (the chart checks it lies on the page)
MIN_EDGE_PIXELS = 200
MIN_PATCH_PIXELS = 30  # a patch's mean and plane-fitted noise σ need a few dozen pixels
NOISE_BIN = 8.0  # levels: noise measurements closer than this are pooled into one table row

# Quality gate of one photo: the chart model (tone curve from the photo's own grey ramp, 3×3 colour
# matrix) fitted to that photo alone must explain its own patches. Measured on 44 virtual-camera
# photos of the chart (benchmarks/check_calibration_gate.py: 8 each of lab, handheld, webcam, less 4
# webcam photos too small to measure, and of the 3 known channels of tests/test_calibrate.py) against
# the same photos of the lab profile with an opaque box painted over one region. Each limit is 1.5 ×
# the worst good photo, rounded up to a half; every box over the ramp, colours or a flat is caught.
#
# Mean ΔE00 over the colour patches: good photos 0.06-2.63 (the worst: handheld with a shadow edge
# across the frame); a box over 3 colour patches 5.5-10, over 4 ramp steps 11-22.
SELF_DELTA_E_GOOD = 2.63
SELF_DELTA_E_MAX = 4.0
# Largest ΔE00 of a flat patch against the grey its own ramp predicts: good photos up to 10.5 (the
# flats lie below the ramp, so uneven light moves them: handheld, shadow edge); a box over a flat 25-60.
FLAT_DELTA_E_GOOD = 10.5
FLAT_DELTA_E_MAX = 16.0
# Largest fall of the grey ramp from one step to the next, in levels: 0.00 on every good photo (a
# monotone tone curve); a box over one step 22-167. The limit is noise, not measured: a patch mean of
# ≥ 30 pixels (MIN_PATCH_PIXELS) at σ ≤ 5 levels has a standard error ≤ 1 level, and 5 levels is
# 3.5 standard errors of the difference of two such means where the curve is flat (clipped).
RAMP_FALL_MAX = 5.0
# Misregistration (issue 22): the colour planes' displacement from their mean, RMS over the planes, from
# per-channel erf centres at the slanted edges. Prints register to about 0.1 mm (the lab profile's range);
# 0.5 mm is five times that: a photo beyond it shows motion blur or lens colour fringes, not a print.
MISREGISTRATION_MAX_MM = 0.5
# The halftone screen in the flat patches: a spectral peak at least this many times the median power above
# 1.9 cycles/mm (screens are 50-300 lpi, 1.97-11.8 cycles/mm; illumination, shading and a printer's banding,
# periods of 0.5 mm and more, lie below), the same within 5 % on at least two flats (else no figure).
SCREEN_MIN_CYCLES_PER_MM = 1.9
SCREEN_PEAK_RATIO = 200.0
SCREEN_AGREEMENT = 0.05
# The pooled fit: mean ΔE00 over all accepted photos and colour patches. Good sets: lab 1.26,
# webcam 1.45, handheld 3.12 (8 photos each); two setups mixed 4 + 4 photos: 1.4-2.9; the occluded
# photo of the review with a good one: 20.9. Above this no profile is written.
POOLED_DELTA_E_MAX = 5.0


@dataclass(frozen=True)
class PhotoCalibration:
    """What one photo contributed: its figures and fit quality, or why it was skipped.

    ``tone_rms`` and ``delta_e_mean`` compare the photo with the channel fitted to all accepted
    photos; ``tone_rms`` is NaN when only one photo was accepted (the fit is then its own ramp)."""

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
    misregistration_mm: float = math.nan
    screen_lpi: float = math.nan

    def summary(self) -> str:
        if not self.accepted:
            return f"{self.photo}: skipped, {self.reason} ({self.detail})"
        white = "/".join(f"{v:.0f}" for v in self.white_rgb)
        tone = f"tone RMS {self.tone_rms:.2f}" if math.isfinite(self.tone_rms) else "tone RMS n/a (needs 2+ photos)"
        return (f"{self.photo}: chart found (marker RMS {self.marker_rms_px:.2f} px), white {white}, "
                f"blur σ {self.blur_sigma_mm:.3f} mm, MTF50 {self.mtf50_cycles_per_mm:.2f} cycles/mm, "
                f"noise σ {self.noise_mid_grey:.2f} at mid grey, {tone}, ΔE00 {self.delta_e_mean:.2f}, "
                f"misregistration {_figure(self.misregistration_mm, '.3f', ' mm')}, "
                f"screen {_figure(self.screen_lpi, '.0f', ' lpi')}")


def _figure(value: float, spec: str, unit: str) -> str:
    return format(value, spec) + unit if math.isfinite(value) else "n/a"


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
    # (distance mm along the outward normal, photographed levels (N, 3), mm per photo px, the normal (2,))
    edges: list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]
    marker_rms_px: float
    pixels_per_mm: float
    screens: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (flats, 3) cycles/mm, NaN: none
    blur_sigma_mm: float = math.nan  # from the photo's own tone curve (set by _assess)
    mtf50_cycles_per_mm: float = math.nan
    misregistration_mm: float = math.nan
    screen_lpi: float = math.nan


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


def _patch_stats(values: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean level and noise σ per channel of a patch's pixels; the σ is of the residual of a fitted plane."""
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
    pixels_per_mm = page.marker_side_px / manifest.marker_size_mm
    stats = []
    for index, patch in enumerate(chart["patches"]):
        values, xy = _pixels_in(image, homography, _box_corners(patch["box_mm"], PATCH_INSET))
        if len(values) < MIN_PATCH_PIXELS:
            return PhotoCalibration(name, False, "chart too small in the photo",
                                    f"{patch['kind']} patch {index} covers {len(values)} photo pixels, fewer than "
                                    f"{MIN_PATCH_PIXELS} ({pixels_per_mm:.1f} px/mm): photograph the chart larger")
        stats.append(_patch_stats(values, xy))
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
            edges.append((distance, values, float(np.linalg.norm(step[1] - step[0])), normal))
    if not edges:
        return PhotoCalibration(name, False, "no slanted edge measurable",
                                f"every edge band covers fewer than {MIN_EDGE_PIXELS} photo pixels "
                                f"({pixels_per_mm:.1f} px/mm): photograph the chart larger")
    flats = [patch for patch in chart["patches"] if patch["kind"] == "flat"]
    screen = [_screen_frequency(image, homography, patch["box_mm"], pixels_per_mm) for patch in flats]
    return _Measurement(name, np.array([s[0] for s in stats]), np.array([s[1] for s in stats]), edges,
                        page.rms_px, pixels_per_mm, screens=np.array(screen))


def _monotone(levels: np.ndarray) -> np.ndarray:
    """Make a measured curve strictly increasing (noise can make neighbouring steps swap)."""
    return np.maximum.accumulate(levels) + np.arange(len(levels)) * 1e-3


def _inverse_tone(curve: np.ndarray, values: np.ndarray, channel: int | None = None) -> np.ndarray:
    """Photographed levels → printed levels through the tone curve (grey mean when ``channel`` is None)."""
    y = curve[:, 1:].mean(axis=1) if channel is None else curve[:, 1 + channel]
    return np.interp(values, _monotone(y), curve[:, 0])


def _erf_fit(distance: np.ndarray, levels: np.ndarray, mm_per_px: float) -> tuple[float, float]:
    """σ (mm) of an erf fitted to an edge spread function, and MTF50 (cycles/mm) of its binned LSF."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit
    from scipy.special import erf

    def model(d, low, high, centre, sigma):
        return low + (high - low) * 0.5 * (1 + erf((d - centre) / (math.sqrt(2) * abs(sigma) + 1e-9)))

    start = (np.percentile(levels, 5), np.percentile(levels, 95), 0.0, 0.1)
    try:
        with warnings.catch_warnings():  # only the parameters are used, never their covariance
            warnings.simplefilter("ignore", OptimizeWarning)
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


@dataclass(frozen=True)
class _ChannelFit:
    """Tone curve and colour matrix fitted to some photos, with each photo's white-normalised patches."""

    curve: np.ndarray  # (K, 4) printed grey level, photographed R, G, B; printed levels increasing
    matrix: np.ndarray  # (3, 3)
    gains: np.ndarray  # (N, 3) each photo's paper white relative to the mean white
    normalised: list[np.ndarray]  # (P, 3) per photo: its patches divided by its gains
    ramp: np.ndarray  # indices of the grey patches, in increasing printed level

    def predicted(self, printed: np.ndarray) -> np.ndarray:
        """Photographed levels the fitted channel gives the printed ``(..., 3)`` colours."""
        stub = MeasuredChannel(tuple(map(tuple, self.curve)), tuple(map(tuple, self.matrix)), 0.0, 0.0,
                               ((0, 0, 0, 0),), (1, 1), (1, 1), (1, 1), 1.0, 1, 0.0)
        return apply_colour_response(printed, stub)


def _fit_channel(measurements: list[_Measurement], chart: dict) -> _ChannelFit:
    from colour.characterisation import matrix_colour_correction

    patches = chart["patches"]
    printed = np.array([p["rgb"] for p in patches], dtype=np.float64)
    grey = np.array([i for i, p in enumerate(patches) if p["kind"] == "grey"])
    ramp = grey[np.argsort(printed[grey, 0])]
    whites = np.array([m.patches[ramp[-1]] for m in measurements])  # the chart's ramp ends at paper white
    gains = whites / whites.mean(axis=0)  # per photo and channel, relative to the mean
    normalised = [m.patches / g for m, g in zip(measurements, gains)]
    curve = np.column_stack([printed[ramp, 0], np.mean([n[ramp] for n in normalised], axis=0)])
    # Colour matrix in linear light, from printed sRGB to the tone-linearised photographed colours.
    colour_rows = [i for i, p in enumerate(patches) if p["kind"] in ("colour", "grey")]
    target = np.concatenate([printed[colour_rows] for _ in normalised])
    observed = np.concatenate([n[colour_rows] for n in normalised])
    delinearised = np.column_stack([_inverse_tone(curve, observed[:, c], c) for c in range(3)])
    matrix = matrix_colour_correction(srgb_to_linear(target / 255), srgb_to_linear(np.clip(delinearised, 0, 255) / 255),
                                      method="Cheung 2004", terms=3)
    return _ChannelFit(curve, np.asarray(matrix), gains, normalised, ramp)


def _colour_delta_e(fit: _ChannelFit, normalised: np.ndarray, chart: dict, kind: str = "colour") -> np.ndarray:
    """CIEDE2000 between ``fit``'s prediction and a photo's (normalised) patches of ``kind``, one per patch."""
    rows = [i for i, p in enumerate(chart["patches"]) if p["kind"] == kind]
    printed = np.array([chart["patches"][i]["rgb"] for i in rows], dtype=np.float64)
    return np.asarray(_delta_e(fit.predicted(printed), normalised[rows]), dtype=np.float64)


def _gate_figures(m: _Measurement, chart: dict) -> tuple[_ChannelFit, float, float, float]:
    """The chart model fitted to this photo alone, and what the quality gate judges of it: the largest
    fall of its grey ramp between neighbouring steps (levels), the mean ΔE00 of its colour patches and
    the largest ΔE00 of its flat patches (``benchmarks/check_calibration_gate.py`` measures these)."""
    own = _fit_channel([m], chart)
    ramp = own.curve[:, 1:]
    return (own, float(np.max(ramp[:-1] - ramp[1:], initial=0.0)),
            float(_colour_delta_e(own, own.normalised[0], chart).mean()),
            float(_colour_delta_e(own, own.normalised[0], chart, "flat").max()))


def _assess(m: _Measurement, chart: dict, pitch_mm: float) -> PhotoCalibration | None:
    """Judge one photo on its own: its chart model must explain its colours, its ramp must rise, and
    at least one slanted edge must fit. Sets ``m``'s blur and MTF50; returns why it is skipped, or None."""
    own, fall, self_delta_e, flat_delta_e = _gate_figures(m, chart)
    hint = "is something covering or shading part of the chart?"
    if not fall <= RAMP_FALL_MAX:
        return PhotoCalibration(m.name, False, "implausible chart measurement",
                                f"its grey ramp falls by {fall:.0f} levels from one step to the next (at most "
                                f"{RAMP_FALL_MAX:g}: a tone curve rises); {hint}")
    if not self_delta_e <= SELF_DELTA_E_MAX:
        return PhotoCalibration(m.name, False, "implausible chart measurement",
                                f"the chart model fitted to this photo misses its colour patches by ΔE00 "
                                f"{self_delta_e:.1f} (at most {SELF_DELTA_E_MAX:g}; good photos ≤ {SELF_DELTA_E_GOOD:g}); {hint}")
    if not flat_delta_e <= FLAT_DELTA_E_MAX:
        return PhotoCalibration(m.name, False, "implausible chart measurement",
                                f"a flat grey patch differs from what its grey ramp predicts by ΔE00 {flat_delta_e:.1f} "
                                f"(at most {FLAT_DELTA_E_MAX:g}; good photos ≤ {FLAT_DELTA_E_GOOD:g}); {hint}")
    sigmas, mtfs = [], []
    for distance, values, mm_per_px, _ in m.edges:
        sigma, mtf50 = _erf_fit(distance, _inverse_tone(own.curve, values.mean(axis=1)), mm_per_px)
        if math.isfinite(sigma):
            # Neither the chart's pixels nor the photo's pixel aperture (boxes of one pixel) are
            # part of the channel's blur: the virtual camera's resampling plays the latter back.
            # MTF50 stays as photographed, apertures included (see profiles.MEASURED_UNITS).
            sigmas.append(math.sqrt(max(sigma ** 2 - (pitch_mm ** 2 + mm_per_px ** 2) / 12, 0.0)))
        if math.isfinite(mtf50):
            mtfs.append(mtf50)
    if not sigmas or not mtfs:
        return PhotoCalibration(m.name, False, "no slanted edge measurable",
                                f"no erf fits the {len(m.edges)} edge profile(s) (blur σ and MTF50 unknown)")
    m.blur_sigma_mm, m.mtf50_cycles_per_mm = float(np.median(sigmas)), float(np.median(mtfs))
    planes = _plane_displacements(m.edges, own.curve)
    if planes is not None:
        m.misregistration_mm = float(np.sqrt((planes ** 2).sum(axis=1).mean()))
        if not m.misregistration_mm <= MISREGISTRATION_MAX_MM:
            return PhotoCalibration(m.name, False, "implausible chart measurement",
                                    f"its colour planes lie {m.misregistration_mm:.2f} mm apart at the slanted edges (at "
                                    f"most {MISREGISTRATION_MAX_MM:g}: a print's misregistration is a tenth of that); "
                                    "is the photo blurred by motion or its lens's colour fringes strong?")
    m.screen_lpi = _agreed_screen_lpi(m.screens)
    return None


def _plane_displacements(edges: list, curve: np.ndarray) -> np.ndarray | None:
    """``(3, 2)`` mm: each colour plane's displacement (x, y on the page) from the mean of the three, by least
    squares over the slanted edges: a plane moved by ``d`` moves an edge with outward normal ``n`` by
    ``n · d``, which the erf centre fitted to that channel shows. None with fewer than 2 edge directions."""
    normals, offsets = [], []
    for distance, values, _, normal in edges:
        centres = [_edge_centre(distance, _inverse_tone(curve, values[:, c], c)) for c in range(3)]
        if all(math.isfinite(c) for c in centres):
            normals.append(normal)
            offsets.append(np.asarray(centres) - np.mean(centres))
    if len(normals) < 2 or np.linalg.matrix_rank(np.array(normals)) < 2:
        return None
    displacement, *_ = np.linalg.lstsq(np.array(normals), np.array(offsets), rcond=None)
    return displacement.T


def _edge_centre(distance: np.ndarray, levels: np.ndarray) -> float:
    """Where (mm along the normal) an erf fitted to an edge profile crosses half way; NaN when none fits."""
    from scipy.optimize import OptimizeWarning, curve_fit
    from scipy.special import erf

    def model(d, low, high, centre, sigma):
        return low + (high - low) * 0.5 * (1 + erf((d - centre) / (math.sqrt(2) * abs(sigma) + 1e-9)))

    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            parameters, _ = curve_fit(model, distance, levels, maxfev=4000,
                                      p0=(np.percentile(levels, 5), np.percentile(levels, 95), 0.0, 0.1))
    except RuntimeError:
        return math.nan
    centre = float(parameters[2])
    return centre if abs(centre) < EDGE_HALF_WIDTH_MM else math.nan


def _screen_frequency(image: np.ndarray, homography: np.ndarray, box_mm: list[float],
                      pixels_per_mm: float) -> np.ndarray:
    """``(3,)`` cycles per page mm of the strongest periodic pattern in a flat patch, per channel: the
    halftone screen's frequency as photographed (its alias, when the screen is finer than the photo's
    Nyquist frequency). NaN where no peak stands :data:`SCREEN_PEAK_RATIO` above the spectrum's median.

    The patch's inner part is resampled on a page-mm grid at the photo's resolution (so frequencies are
    in page units whatever the pose), a plane is removed, a Hann window applied and the 2-D power
    spectrum searched above :data:`SCREEN_MIN_CYCLES_PER_MM`."""
    x, y, w, h = box_mm
    size = int(min(w, h) * (1 - 2 * PATCH_INSET) * pixels_per_mm)
    if size < 16:
        return np.full(3, np.nan)
    step = 1 / pixels_per_mm
    to_page = np.array([[step, 0, x + w * PATCH_INSET], [0, step, y + h * PATCH_INSET], [0, 0, 1]])
    grid = cv2.warpPerspective(image, homography @ to_page, (size, size),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP).astype(np.float64)
    ys, xs = np.mgrid[0:size, 0:size]
    design = np.column_stack([np.ones(size * size), xs.ravel(), ys.ravel()])
    window = np.outer(np.hanning(size), np.hanning(size))
    frequencies = np.fft.fftfreq(size, d=step)
    radius = np.hypot(*np.meshgrid(frequencies, frequencies))
    search = radius >= SCREEN_MIN_CYCLES_PER_MM
    found = np.full(3, np.nan)
    for channel in range(3):
        values = grid[..., channel].ravel()
        coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
        residual = (values - design @ coefficients).reshape(size, size) * window
        power = np.abs(np.fft.fft2(residual)) ** 2
        peak = np.argmax(np.where(search, power, 0))
        if power.flat[peak] >= SCREEN_PEAK_RATIO * np.median(power[search]):
            found[channel] = radius.flat[peak]
    return found


def _agreed_screen_lpi(screens: np.ndarray) -> float:
    """The screen's frequency in lines per inch (the median over flat patches and channels), when the flat
    patches that show one agree within :data:`SCREEN_AGREEMENT`; NaN otherwise (no screen, or noise)."""
    per_patch = [np.nanmedian(row) for row in screens if np.isfinite(row).any()]
    if len(per_patch) < 2:
        return math.nan
    median = float(np.median(per_patch))
    if max(abs(f - median) for f in per_patch) > SCREEN_AGREEMENT * median:
        return math.nan
    return median * 25.4


def calibrate(photos: list[str | Path], manifest: Manifest, *, base: CameraProfile | str = "lab", name: str = "measured",
              progress: bool = False) -> Calibration:
    """Measure the channel from ``photos`` of the chart of ``manifest`` (see the module doc).

    Each photo is first judged on its own (:func:`_assess`): one without this chart, too small in
    the frame, whose chart model cannot explain its own colours (something covers or shades the
    chart) or without a measurable slanted edge is skipped with the reason. The others are pooled.

    Args:
        photos: image files; each is named in the records by its path as given.
        manifest: the chart's manifest (written by :func:`physadv.printouts.chart.write_chart`).
        base: the profile whose scene (pose) and JPEG ranges the measured profile keeps.
        name: the measured profile's name (a plain name: it may become part of a file name).

    Raises:
        InputError: ``manifest`` is not a chart's, ``name`` is not a plain name, no photo could be
            used, or the pooled colour fit is worse than :data:`POOLED_DELTA_E_MAX`.
    """
    if not is_safe_name(name):
        raise InputError(f"profile name {name!r} is not a plain name ({PLAIN_NAME_RULE})")
    chart = chart_of(manifest)
    base = load_profile(base)
    pitch = float(chart["pitch_mm"])
    records: list[PhotoCalibration | _Measurement] = []
    for path in tqdm(photos, desc="calibrating", unit="photo", disable=not progress):
        shown = _shown(path)
        try:
            image = read_rgb(Path(path))
        except InputError as error:
            records.append(PhotoCalibration(shown, False, "unreadable", str(error)))
            continue
        record = _measure(image, manifest, chart, shown)
        if isinstance(record, _Measurement):
            record = _assess(record, chart, pitch) or record
        records.append(record)
    measurements = [r for r in records if isinstance(r, _Measurement)]
    if not measurements:
        reasons = "; ".join(r.summary() for r in records if isinstance(r, PhotoCalibration))
        raise InputError(f"no photo of this chart (run {manifest.run_id}) could be used: {reasons or 'no photos'}")
    profile, per_photo = _fit(measurements, chart, base, name)
    pooled = profile.measured
    assert pooled is not None
    if not pooled.delta_e_mean <= POOLED_DELTA_E_MAX:
        each = ", ".join(f"{p.photo} {p.delta_e_mean:.1f}" for p in per_photo[:10])
        raise InputError(f"the {len(measurements)} usable photo(s) do not make one channel: the pooled colour fit "
                         f"misses by ΔE00 {pooled.delta_e_mean:.1f} (at most {POOLED_DELTA_E_MAX:g}; per photo: {each}); "
                         "calibrate photos of one printer, camera and light at a time")
    fitted = iter(per_photo)  # in the order of ``measurements``, which is the order of ``records``
    return Calibration(profile, tuple(r if isinstance(r, PhotoCalibration) else next(fitted) for r in records))


def _shown(path: str | Path) -> str:
    """How a photo is named in records and profile comments: its path as given, control characters
    escaped (they would break the TOML comment and the terminal line)."""
    text = str(path)
    return ascii(text) if CONTROL_CHARACTERS.search(text) else text


def _fit(measurements: list[_Measurement], chart: dict, base: CameraProfile,
         name: str) -> tuple[CameraProfile, list[PhotoCalibration]]:
    patches = chart["patches"]
    fit = _fit_channel(measurements, chart)
    noise_points = []
    per_photo = []
    flat_or_grey = [i for i, p in enumerate(patches) if p["kind"] in ("grey", "flat")]
    for m, n in zip(measurements, fit.normalised):
        for i in flat_or_grey:
            noise_points.append((m.patches[i].mean(), *m.noise[i]))
        mid = min(flat_or_grey, key=lambda i: abs(m.patches[i].mean() - 128))
        # With one photo the pooled curve is that photo's ramp: its residual is 0 by construction.
        tone_rms = float(np.sqrt(((n[fit.ramp] - fit.curve[:, 1:]) ** 2).mean())) if len(measurements) > 1 else math.nan
        per_photo.append(PhotoCalibration(
            m.name, True, white_rgb=tuple(float(v) for v in m.patches[fit.ramp[-1]]), blur_sigma_mm=m.blur_sigma_mm,
            mtf50_cycles_per_mm=m.mtf50_cycles_per_mm, noise_mid_grey=float(m.noise[mid].mean()),
            tone_rms=tone_rms, delta_e_mean=float(_colour_delta_e(fit, n, chart).mean()),
            marker_rms_px=m.marker_rms_px, misregistration_mm=m.misregistration_mm, screen_lpi=m.screen_lpi))
    noise = _noise_table(np.array(noise_points))
    exposure = fit.gains.mean(axis=1)
    balance_r, balance_b = fit.gains[:, 0] / fit.gains[:, 1], fit.gains[:, 2] / fit.gains[:, 1]
    measured = MeasuredChannel(
        tone_curve=tuple(tuple(float(v) for v in row) for row in np.clip(fit.curve, 0, 255)),
        colour_matrix=tuple(tuple(float(v) for v in row) for row in fit.matrix),
        blur_sigma_mm=float(np.median([m.blur_sigma_mm for m in measurements])),
        mtf50_cycles_per_mm=float(np.median([m.mtf50_cycles_per_mm for m in measurements])), noise=noise,
        exposure_gain=(float(exposure.min()), float(exposure.max())),
        white_balance_r=(float(balance_r.min()), float(balance_r.max())),
        white_balance_b=(float(balance_b.min()), float(balance_b.max())),
        pixels_per_mm=float(np.mean([m.pixels_per_mm for m in measurements])), photos=len(measurements),
        delta_e_mean=float(np.mean([p.delta_e_mean for p in per_photo])),
        misregistration_mm=_median_or_zero([m.misregistration_mm for m in measurements]),
        halftone_lpi=_median_or_zero([m.screen_lpi for m in measurements]))
    description = (f"measured by physadv calibrate from {len(measurements)} photo(s); "
                   f"pose and JPEG ranges from the {base.name} profile")
    return with_measured(base, name, description, measured), per_photo


def _median_or_zero(values: list[float]) -> float:
    """The median of the finite figures; 0 (none found) when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.median(finite)) if finite else 0.0


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
# Photos of the chart the virtual camera takes at most to get VIRTUAL_CALIBRATION_PHOTOS usable ones: at
# 720p (webcam) a drawn pose can leave the chart too small for its edges (issue 9 review: one of 9
# webcam variants had no usable photo among its first 3).
VIRTUAL_CALIBRATION_MAX_PHOTOS = 4 * VIRTUAL_CALIBRATION_PHOTOS
DEFAULT_PIXEL_MM = 25.4 / 96  # the default sheets print a 224-px image at 96 dpi (physadv print)


def measured_channel(profile: CameraProfile | str, *, progress: bool = False) -> MeasuredChannel:
    """The measured channel of ``profile``: its own for a measured profile; for a parametric one,
    the result of calibrating the virtual camera with that profile (the chart photographed
    :data:`VIRTUAL_CALIBRATION_PHOTOS` times), cached in ``$PHYSADV_HOME/profiles`` by the profile's hash."""
    import hashlib
    import tempfile

    from physadv.fileio import cache_dir
    from physadv.fileio import atomic_write_text
    from physadv.printouts.camera import photograph
    from physadv.printouts.chart import CHART_FILE, write_chart
    from physadv.printouts.profiles import profile_to_toml

    profile = load_profile(profile)
    if profile.measured is not None:
        return profile.measured
    digest = hashlib.sha256(profile_to_toml(profile).encode()).hexdigest()[:16]
    # The file is named by the profile's hash; its name only prefixes it, and only when it is a plain
    # name (a profile read from a file has one; one built in Python might not).
    prefix = f"{profile.name}-" if is_safe_name(profile.name) else ""
    cached = cache_dir() / "profiles" / f"{prefix}{digest}.toml"
    if cached.is_file():
        measured = load_profile(cached).measured
        assert measured is not None
        return measured
    with tempfile.TemporaryDirectory() as work:
        manifest = write_chart(Path(work) / "chart", run_id=f"cal{digest[:5]}")
        result, failure = None, ""
        for count in range(VIRTUAL_CALIBRATION_PHOTOS, VIRTUAL_CALIBRATION_MAX_PHOTOS + 1, VIRTUAL_CALIBRATION_PHOTOS):
            # photograph keeps the photos already taken with this seed and adds the next ones.
            photograph(Path(work) / "chart" / CHART_FILE, manifest, Path(work) / "photos", count,
                       seed=int(digest[:8], 16), profile=profile, progress=progress)
            try:
                result = calibrate(sorted((Path(work) / "photos").glob("*.jpg")), manifest, base=profile,
                                   name=f"{prefix}virtual")
            except InputError as error:
                result, failure = None, str(error).replace(work, "…")
                continue
            if sum(photo.accepted for photo in result.photos) >= VIRTUAL_CALIBRATION_PHOTOS:
                break
        if result is None:
            raise InputError(f"camera profile {profile.name!r}: its virtual camera took no usable photo of the "
                             f"chart in {VIRTUAL_CALIBRATION_MAX_PHOTOS} tries, so it has no channel to draw EOT "
                             f"from ({failure})")
    atomic_write_text(cached, profile_to_toml(result.profile, f"physadv: the {profile.name} profile's virtual camera, "
                                                              "calibrated on the chart"))
    assert result.profile.measured is not None
    return result.profile.measured


def profile_distribution(spec: str | CameraProfile, pixel_mm: float = DEFAULT_PIXEL_MM, *,
                         progress: bool = False):
    """The EOT distribution of a camera profile (``"profile:lab"``, ``"lab"``, a TOML file or a
    profile): its measured channel in the pixels of an image printed at ``pixel_mm`` per pixel.

    The blur σ becomes ``blur_sigma_mm / pixel_mm`` image pixels, and so does the misregistration; the
    noise σ is divided by the number of photo pixels per image pixel along a side (when above 1), since
    capture area-averages them.
    The pose is left out: capture rectifies every cell (corner errors ≤ 0.2 photo px, bench_capture).
    """
    from physadv.eot import channel_distribution

    profile = profile_of(spec) if isinstance(spec, str) else spec
    measured = measured_channel(profile, progress=progress)
    averaging = max(1.0, measured.pixels_per_mm * pixel_mm)
    noise = [(row[0], *(v / averaging for v in row[1:])) for row in measured.noise]
    return channel_distribution(
        f"{PROFILE_PREFIX}{profile.name}", blur_sigma_px=measured.blur_sigma_mm / pixel_mm,
        tone_curve=measured.tone_curve, colour_matrix=measured.colour_matrix, exposure=measured.exposure_gain,
        white_balance_r=measured.white_balance_r, white_balance_b=measured.white_balance_b, noise=noise,
        misregistration_px=measured.misregistration_mm / pixel_mm,
        description=f"the calibrated channel of camera profile {profile.name}")


def profile_of(spec: str) -> CameraProfile:
    """The camera profile of ``"profile:NAME|FILE.toml"`` (or of ``NAME|FILE.toml``), read and checked.

    Raises:
        InputError: no such profile, or an invalid one (the message names the key).
    """
    return load_profile(spec.removeprefix(PROFILE_PREFIX))


def check_distribution(spec: str | None) -> None:
    """Check an EOT distribution named on the command line or in a configuration before any work:
    a ``profile:`` one must name a readable, valid profile (built-in names are checked by the reader)."""
    if isinstance(spec, str) and spec.startswith(PROFILE_PREFIX):
        profile_of(spec)


def resolve_distribution(spec):
    """``spec`` for :func:`physadv.eot.eot_gradient` / :func:`~physadv.eot.adversariality`, with
    ``profile:NAME|FILE.toml`` turned into :func:`profile_distribution`."""
    if isinstance(spec, str) and spec.startswith(PROFILE_PREFIX):
        return profile_distribution(spec)
    return spec
