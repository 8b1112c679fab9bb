"""Camera profiles: every range of the virtual camera, with its unit and where it comes from.

A profile is a TOML file (schema ``physadv.profile/1``). Each parameter is a table with ``range``
``[low, high]`` (or ``value`` for a constant), its ``unit`` and the ``source`` of the range::

    schema = "physadv.profile/1"
    name = "lab"
    description = "..."
    resolution = "12mp"

    [scene.tilt_deg]
    range = [-5.0, 5.0]
    unit = "deg"
    source = "near-frontal phone held over the sheet; ..."

Two kinds of profile share the ``[scene]`` section (pose of the sheet in the photo) and the JPEG
quality:

- **parametric** (the built-ins ``handheld``, ``lab``, ``webcam``): ``[print]``, ``[light]`` and
  ``[sensor]`` ranges drive :func:`physadv.printouts.camera.sample_shot` (print tone range and blur,
  illumination field, colour cast, lens blur, read and shot noise, auto white balance);
- **measured** (written by ``physadv calibrate``): a ``[measured]`` section with the tone curve
  per channel, a 3×3 colour matrix, the equivalent Gaussian blur in page mm, noise σ against
  intensity and the spread of exposure and white balance across the photos; the camera plays
  these back instead of the parametric print/light/sensor model.

Every key is checked on reading: a missing key, a value of the wrong type, a non-finite number or
one outside the physically meaningful bounds of :data:`PARAMETERS` is an :class:`InputError` that
names the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from physadv.catalog import CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE
from physadv.catalog import RESOLUTIONS
from physadv.errors import InputError
from physadv.fileio import parse_toml
from physadv.validation import CONTROL_CHARACTERS, MAX_TEXT, PLAIN_NAME_RULE, check_number, is_safe_name

SCHEMA = "physadv.profile/1"
BUILTIN_PROFILES, DEFAULT_PROFILE = CAMERA_PROFILES, DEFAULT_CAMERA_PROFILE
MAX_PROFILE_BYTES = 1 << 20

# key → (unit, lowest allowed, highest allowed): the bounds of what is physically meaningful, not of
# what is likely; the likely ranges live in the profiles, with their sources.
SCENE = {
    "scene.tilt_deg": ("deg", -80.0, 80.0),
    "scene.roll_deg": ("deg", -360.0, 360.0),
    "scene.fill": ("fraction of the frame", 0.05, 1.0),
    "scene.field_of_view_deg": ("deg, diagonal", 10.0, 150.0),
}
PARAMETRIC = {
    "print.blur_mm": ("mm, Gaussian σ", 0.0, 2.0),
    "print.paper_level": ("fraction of 255", 0.0, 1.0),
    "print.paper_tint": ("0-255 units, per channel", -50.0, 50.0),
    "print.ink_level": ("0-255 units", 0.0, 255.0),
    "print.ink_tint": ("0-255 units, per channel", -50.0, 50.0),
    "print.gamma": ("exponent", 0.2, 5.0),
    "print.halftone_lpi": ("lines per inch of the clustered-dot screen, 0 = no screen", 0.0, 300.0),
    # The print at the printer's addressable grid (physadv.printouts.printer); each is the identity at
    # its neutral value (device_dpi 0, halftone_lpi 0, error_diffusion false, yule_nielsen_n 1, graininess 0,
    # misregistration 0, banding amplitude 0).
    "print.device_dpi": ("dots per inch of the printer's addressable grid, 0 = continuous tone at the photo's "
                         "resolution", 0.0, 2400.0),
    "print.screen_angle_cyan_deg": ("deg, angle of the cyan screen (the R channel's ink)", -90.0, 90.0),
    "print.screen_angle_magenta_deg": ("deg, angle of the magenta screen (the G channel's ink)", -90.0, 90.0),
    "print.screen_angle_yellow_deg": ("deg, angle of the yellow screen (the B channel's ink)", -90.0, 90.0),
    "print.dot_levels": ("exposure levels of one addressable dot, 2 = binary", 2.0, 256.0),
    "print.error_diffusion": ("true = Floyd-Steinberg error diffusion (inkjet), false = clustered-dot screen "
                              "or none", 0.0, 1.0),
    "print.yule_nielsen_n": ("Yule-Nielsen n, 1 = no optical dot gain (Murray-Davies)", 1.0, 10.0),
    "print.graininess": ("ISO/IEC 13660 graininess: σ of optical density over 42.3-µm tiles of a solid", 0.0, 0.5),
    "print.misregistration_mm": ("mm, displacement of each ink plane (random direction)", 0.0, 2.0),
    "print.banding_amplitude": ("fraction of the ink's tone value, peak", 0.0, 0.5),
    "print.banding_period_mm": ("mm, period along the paper feed (page y)", 0.1, 100.0),
    "light.gradient": ("relative change per half frame", -1.0, 1.0),
    "light.vignetting": ("relative fall-off at the frame corners", 0.0, 1.0),
    "light.shadow_probability": ("probability", 0.0, 1.0),
    "light.shadow_offset": ("half-diagonals from the centre", -2.0, 2.0),
    "light.shadow_strength": ("fraction of light removed", 0.0, 1.0),
    "light.shadow_softness": ("fraction of the diagonal", 0.001, 1.0),
    "light.exposure": ("gain", 0.1, 5.0),
    "light.colour_cast": ("gain per channel", 0.2, 5.0),
    "light.saturation": ("factor", 0.0, 2.0),
    "sensor.lens_blur_px": ("px, Gaussian σ, of a frame up to 1920 px wide (scaled with the width above)", 0.0, 20.0),
    "sensor.read_noise": ("0-255 units, σ", 0.0, 50.0),
    "sensor.shot_noise": ("sqrt(0-255 units), σ² = shot² · level", 0.0, 5.0),
    "sensor.auto_white_balance": ("true = on, false = off", 0.0, 1.0),
    # The phone's pipeline (physadv.printouts.isp), each the identity at its neutral value.
    "sensor.demosaic": ("true = Bayer RGGB mosaic + OpenCV edge-aware demosaicing, false = RGB per pixel", 0.0, 1.0),
    "sensor.denoise_strength": ("bilateral range σ / sensor noise σ at mid grey, 0 = no denoising", 0.0, 10.0),
    "sensor.denoise_radius_px": ("px, spatial σ of the bilateral denoiser", 0.5, 5.0),
    "sensor.sharpen_amount": ("unsharp-mask gain: out = in + amount · (in - blur(in)), 0 = none", 0.0, 5.0),
    "sensor.sharpen_radius_px": ("px, Gaussian σ of the unsharp mask", 0.3, 10.0),
    "sensor.tone_contrast": ("slope at mid grey of the tone curve on the encoded levels, 1 = identity", 0.5, 2.0),
    "sensor.jpeg_chroma_subsampling": ("true = 4:2:0 chroma, false = 4:4:4", 0.0, 1.0),
}
# Switches, not ranges: ``value = true`` or ``false`` only (stored as 1.0 / 0.0), so that 0.5 is never "on".
BOOLEANS = frozenset({"sensor.auto_white_balance", "print.error_diffusion", "sensor.demosaic",
                      "sensor.jpeg_chroma_subsampling"})
# Facts of one device, not ranges drawn per photo: ``value = x`` only.
CONSTANTS = frozenset({"print.halftone_lpi", "print.device_dpi", "print.screen_angle_cyan_deg",
                       "print.screen_angle_magenta_deg", "print.screen_angle_yellow_deg", "print.dot_levels"})
ALWAYS = {"sensor.jpeg_quality": ("libjpeg quality", 1.0, 100.0)}
PARAMETERS = {**SCENE, **PARAMETRIC, **ALWAYS}

# Each effect of the print engine, of the phone's pipeline and of its JPEG encoder, and the keys that switch
# it off: at these values it is the identity (tests/test_channel_fidelity.py). "print engine" and "phone
# pipeline" switch off all of theirs at once; with both off the camera is the one physadv had before them.
PRINT_EFFECTS = {
    "halftone": {"print.halftone_lpi": 0.0},
    "yule-nielsen": {"print.yule_nielsen_n": 1.0},
    "graininess": {"print.graininess": 0.0},
    "misregistration": {"print.misregistration_mm": 0.0},
    "banding": {"print.banding_amplitude": 0.0},
}
PHONE_EFFECTS = {
    "demosaic": {"sensor.demosaic": 0.0},
    "denoise": {"sensor.denoise_strength": 0.0},
    "sharpen": {"sensor.sharpen_amount": 0.0},
    "tone-curve": {"sensor.tone_contrast": 1.0},
}
EFFECTS = {
    **PRINT_EFFECTS,
    "print engine": {**{k: v for effect in PRINT_EFFECTS.values() for k, v in effect.items()},
                     "print.device_dpi": 0.0, "print.error_diffusion": 0.0},
    **PHONE_EFFECTS,
    "phone pipeline": {k: v for effect in PHONE_EFFECTS.values() for k, v in effect.items()},
    # The JPEG encoder's, outside the pipeline: physadv's camera always saved 4:2:0.
    "chroma-420": {"sensor.jpeg_chroma_subsampling": 0.0},
}


@dataclass(frozen=True)
class Parameter:
    """One profile parameter: drawn uniformly from ``[low, high]`` (``low == high`` is a constant)."""

    low: float
    high: float
    unit: str
    source: str

    @property
    def range(self) -> tuple[float, float]:
        return self.low, self.high


# The unit of every [measured] figure, written as comments into each measured profile. blur_sigma_mm
# and mtf50_cycles_per_mm differ on purpose: σ is the channel's own blur (what the virtual camera
# plays back, which adds the photo's pixels by resampling), MTF50 is what the photos showed.
MEASURED_UNITS = {
    "tone_curve": "rows (printed grey level, photographed R, G, B), 0-255 units",
    "colour_matrix": "3x3, linear-light sRGB of the print -> of the photo, before the tone curve",
    "blur_sigma_mm": "page mm, Gaussian σ of print + optics, without the chart's pixel box (pitch/√12) "
                     "and the photo's pixel aperture (1 px/√12)",
    "mtf50_cycles_per_mm": "cycles per page mm where the edges' MTF falls to 0.5, as photographed: "
                           "includes the chart's and the photo's pixel apertures",
    "noise": "rows (photographed level, σ R, σ G, σ B), 0-255 units per photo pixel, without 8-bit rounding",
    "exposure_gain": "(low, high) gain of the paper white across the photos, relative to their mean",
    "white_balance_r": "(low, high) R/G gain of the paper white across the photos, relative to their mean",
    "white_balance_b": "(low, high) B/G gain of the paper white across the photos, relative to their mean",
    "pixels_per_mm": "photo pixels per page mm of the calibration photos (mean)",
    "photos": "photos the figures come from",
    "delta_e_mean": "CIEDE2000, mean over the colour patches and photos, of the fitted tone curve + matrix",
    "misregistration_mm": "mm, RMS displacement of the R, G, B planes from their mean at the slanted edges "
                          "(median over the photos; 0 = none measured)",
    "halftone_lpi": "lines per inch of the screen in the flat patches as photographed (an alias when finer than "
                    "the photo's Nyquist frequency; median over the photos; 0 = none found)",
}


@dataclass(frozen=True)
class MeasuredChannel:
    """What ``physadv calibrate`` measured, played back by the virtual camera.

    Attributes:
        tone_curve: ``(K, 4)`` rows ``(printed grey level, photographed R, G, B)``, 0-255 units,
            printed levels strictly increasing.
        colour_matrix: ``(3, 3)`` applied to linear-light sRGB of the printed colour before the
            tone curve (rows: output R, G, B).
        blur_sigma_mm: equivalent Gaussian σ of the print→photo blur, page mm, without the chart's
            pixel box and the photo's pixel aperture (the virtual camera's resampling adds the latter).
        mtf50_cycles_per_mm: spatial frequency where the edge MTF falls to 0.5, cycles per page mm,
            as photographed: the chart's and the photo's pixel apertures included.
        noise: ``(L, 4)`` rows ``(photographed level, σ R, σ G, σ B)``, 0-255 units, per photo pixel.
        exposure_gain, white_balance_r, white_balance_b: ``(low, high)`` spread of the paper white's
            gain (mean) and R/G, B/G balance across the photos, relative to their mean (gains).
        pixels_per_mm: photo pixels per page mm of the calibration photos (mean).
        photos: how many photos the figures come from.
        delta_e_mean: mean CIEDE2000 of the fitted tone curve + matrix on the colour patches.
    """

    tone_curve: tuple[tuple[float, float, float, float], ...]
    colour_matrix: tuple[tuple[float, float, float], ...]
    blur_sigma_mm: float
    mtf50_cycles_per_mm: float
    noise: tuple[tuple[float, float, float, float], ...]
    exposure_gain: tuple[float, float]
    white_balance_r: tuple[float, float]
    white_balance_b: tuple[float, float]
    pixels_per_mm: float
    photos: int
    delta_e_mean: float
    misregistration_mm: float = 0.0
    halftone_lpi: float = 0.0

    def tone_lut(self) -> np.ndarray:
        """``(256, 3)`` float32: photographed level per printed level and channel."""
        curve = np.asarray(self.tone_curve, dtype=np.float64)
        levels = np.arange(256, dtype=np.float64)
        return np.stack([np.interp(levels, curve[:, 0], curve[:, 1 + c]) for c in range(3)], axis=1).astype(np.float32)

    def noise_sigma(self, levels: np.ndarray) -> np.ndarray:
        """σ (0-255 units) of the noise at photographed ``levels`` ``(..., 3)``, per channel."""
        table = np.asarray(self.noise, dtype=np.float64)
        return np.stack([np.interp(levels[..., c], table[:, 0], table[:, 1 + c]) for c in range(3)], axis=-1)


@dataclass(frozen=True)
class CameraProfile:
    """A camera profile (see the module doc). ``parameters`` maps ``section.key`` → :class:`Parameter`."""

    name: str
    description: str
    resolution: str
    parameters: dict[str, Parameter]
    measured: MeasuredChannel | None = None
    origin: str = ""
    extra: dict = field(default_factory=dict)

    def range(self, key: str) -> tuple[float, float]:
        return self.parameters[key].range

    def value(self, key: str) -> float:
        low, high = self.parameters[key].range
        if low != high:
            raise InputError(f"profile {self.name}: {key} must be a single value, not a range")
        return low

    def uniform(self, rng: np.random.Generator, key: str, size: int | None = None):
        """A uniform draw from the range of ``key`` (the same call, hence the same numbers, as
        ``rng.uniform(low, high, size)``)."""
        low, high = self.range(key)
        return rng.uniform(low, high, size) if size is not None else rng.uniform(low, high)


# --- reading ---------------------------------------------------------------------------------------------


def _where(origin: str, key: str) -> str:
    return f"camera profile {origin}: {key}"


def _number(value: Any, origin: str, key: str) -> float:
    return check_number(value, -math.inf, math.inf,
                        lambda problem: InputError(f"{_where(origin, key)}: {problem}"))


def _bounded(value: Any, low: float, high: float, origin: str, key: str, unit: str = "") -> float:
    number = _number(value, origin, key)
    if not low <= number <= high:
        raise InputError(f"{_where(origin, key)} = {number:g} is outside [{low:g}, {high:g}]{' ' + unit if unit else ''}")
    return number


def _text(value: str, origin: str, key: str) -> str:
    """A free-text field: it is written back into TOML files and printed, so no control characters."""
    if len(value) > MAX_TEXT:
        raise InputError(f"{_where(origin, key)} is longer than {MAX_TEXT} characters")
    if CONTROL_CHARACTERS.search(value):
        raise InputError(f"{_where(origin, key)} = {value[:100]!r} holds a control character")
    return value


def _parameter(table: Any, key: str, origin: str) -> Parameter:
    unit, low, high = PARAMETERS[key]
    if not isinstance(table, dict):
        raise InputError(f"{_where(origin, key)} must be a table with range (or value), unit and source")
    unknown = sorted(set(table) - {"range", "value", "unit", "source"})
    if unknown:
        raise InputError(f"{_where(origin, key)}: unknown field(s) {', '.join(unknown)}")
    for text in ("unit", "source"):
        if not isinstance(table.get(text), str) or not table[text].strip():
            raise InputError(f"{_where(origin, key)}.{text} is missing (every range states its {text})")
        _text(table[text], origin, f"{key}.{text}")
    if key in BOOLEANS:
        if "range" in table or not isinstance(table.get("value"), bool):
            raise InputError(f"{_where(origin, key)} is a switch: value = true or false, "
                             f"got {table.get('value', table.get('range'))!r}")
        flag = float(table["value"])
        return Parameter(flag, flag, table["unit"], table["source"])
    if ("range" in table) == ("value" in table):
        raise InputError(f"{_where(origin, key)} needs exactly one of range = [low, high] or value = x")
    if "value" in table:
        values = [table["value"]] * 2
    else:
        values = table["range"]
        if not isinstance(values, list) or len(values) != 2:
            raise InputError(f"{_where(origin, key)}.range must be [low, high], got {values!r}")
    lo, hi = (_bounded(v, low, high, origin, f"{key}.range", unit) for v in values)
    if lo > hi:
        raise InputError(f"{_where(origin, key)}.range: low {lo:g} > high {hi:g}")
    return Parameter(lo, hi, table["unit"], table["source"])


def _rows(value: Any, width: int, origin: str, key: str, low: float, high: float, min_rows: int = 2,
          max_rows: int = 256) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not min_rows <= len(value) <= max_rows:
        raise InputError(f"{_where(origin, key)} must be a list of {min_rows}-{max_rows} rows")
    rows = []
    for index, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width:
            raise InputError(f"{_where(origin, key)}[{index}] must have {width} numbers")
        rows.append(tuple(_bounded(v, low, high, origin, f"{key}[{index}]") for v in row))
    return tuple(rows)


def _pair(value: Any, origin: str, key: str, low: float, high: float) -> tuple[float, float]:
    (a, b), = _rows([value], 2, origin, key, low, high, min_rows=1)
    if a > b:
        raise InputError(f"{_where(origin, key)}: low {a:g} > high {b:g}")
    return a, b


def _measured(table: Any, origin: str) -> MeasuredChannel:
    if not isinstance(table, dict):
        raise InputError(f"{_where(origin, 'measured')} must be a table")
    required = ("tone_curve", "colour_matrix", "blur_sigma_mm", "mtf50_cycles_per_mm", "noise", "exposure_gain",
                "white_balance_r", "white_balance_b", "pixels_per_mm", "photos", "delta_e_mean")
    for key in required:
        if key not in table:
            raise InputError(f"{_where(origin, 'measured.' + key)} is missing")
    optional = ("misregistration_mm", "halftone_lpi")  # measured since issue 22: older profiles lack them
    unknown = sorted(set(table) - set(required) - set(optional))
    if unknown:
        raise InputError(f"{_where(origin, 'measured')}: unknown key(s) {', '.join(unknown)}")
    tone = _rows(table["tone_curve"], 4, origin, "measured.tone_curve", 0, 255)
    if any(b[0] <= a[0] for a, b in zip(tone, tone[1:])):
        raise InputError(f"{_where(origin, 'measured.tone_curve')}: printed levels must increase strictly")
    matrix = _rows(table["colour_matrix"], 3, origin, "measured.colour_matrix", -5, 5, min_rows=3, max_rows=3)
    noise = _rows(table["noise"], 4, origin, "measured.noise", 0, 255, min_rows=1)
    if any(b[0] <= a[0] for a, b in zip(noise, noise[1:])):
        raise InputError(f"{_where(origin, 'measured.noise')}: levels must increase strictly")
    photos = _bounded(table["photos"], 1, 10_000, origin, "measured.photos")
    return MeasuredChannel(
        tone_curve=tone, colour_matrix=matrix,  # type: ignore[arg-type]
        blur_sigma_mm=_bounded(table["blur_sigma_mm"], 0, 5, origin, "measured.blur_sigma_mm", "mm"),
        mtf50_cycles_per_mm=_bounded(table["mtf50_cycles_per_mm"], 0, 1000, origin, "measured.mtf50_cycles_per_mm"),
        noise=noise,  # type: ignore[arg-type]
        exposure_gain=_pair(table["exposure_gain"], origin, "measured.exposure_gain", 0.1, 10),
        white_balance_r=_pair(table["white_balance_r"], origin, "measured.white_balance_r", 0.1, 10),
        white_balance_b=_pair(table["white_balance_b"], origin, "measured.white_balance_b", 0.1, 10),
        pixels_per_mm=_bounded(table["pixels_per_mm"], 0.1, 1000, origin, "measured.pixels_per_mm"),
        photos=int(photos), delta_e_mean=_bounded(table["delta_e_mean"], 0, 200, origin, "measured.delta_e_mean"),
        misregistration_mm=_bounded(table.get("misregistration_mm", 0.0), 0, 5, origin, "measured.misregistration_mm", "mm"),
        halftone_lpi=_bounded(table.get("halftone_lpi", 0.0), 0, 1000, origin, "measured.halftone_lpi", "lpi"))


def profile_from_mapping(data: dict, origin: str) -> CameraProfile:
    """Validate parsed TOML ``data`` into a :class:`CameraProfile`; ``origin`` names it in errors."""
    if data.get("schema") != SCHEMA:
        raise InputError(f"{_where(origin, 'schema')} must be {SCHEMA!r}, got {data.get('schema')!r}")
    for key in ("name", "description", "resolution"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InputError(f"{_where(origin, key)} is missing (a string)")
        _text(data[key], origin, key)
    # The name becomes part of file names (the cache of a profile's virtual calibration) and of
    # records: a plain name, never a path.
    if not is_safe_name(data["name"]):
        raise InputError(f"{_where(origin, 'name')} = {data['name']!r} is not a plain name ({PLAIN_NAME_RULE})")
    if "source" in data and not isinstance(data["source"], str):
        raise InputError(f"{_where(origin, 'source')} must be a string")
    if "source" in data:
        _text(data["source"], origin, "source")
    if data["resolution"] not in RESOLUTIONS:
        raise InputError(f"{_where(origin, 'resolution')} must be one of {', '.join(RESOLUTIONS)}, "
                         f"got {data['resolution']!r}")
    measured = _measured(data["measured"], origin) if "measured" in data else None
    wanted = {**SCENE, **ALWAYS} if measured else PARAMETERS
    parameters = {}
    sections = {"scene", "print", "light", "sensor"}
    unknown = sorted(set(data) - sections - {"schema", "name", "description", "resolution", "measured", "source"})
    if unknown:
        raise InputError(f"camera profile {origin}: unknown key(s) {', '.join(unknown)}")
    for section in sorted(sections & set(data)):
        if not isinstance(data[section], dict):
            raise InputError(f"{_where(origin, section)} must be a table")
        for key in data[section]:
            if f"{section}.{key}" in wanted:
                continue
            if measured is not None and f"{section}.{key}" in PARAMETERS:
                # The [measured] section replaces the print, light and sensor model: a parametric key
                # beside it would never be used, so it is refused rather than silently ignored.
                raise InputError(f"{_where(origin, f'{section}.{key}')} is not a key of a measured profile "
                                 "(its [measured] section replaces the print, light and sensor ranges)")
            known = ", ".join(k for k in wanted if k.startswith(section + ".")) or "none"
            raise InputError(f"{_where(origin, f'{section}.{key}')} is not a profile key (known: {known})")
    for key in wanted:
        section, name = key.split(".")
        table = data.get(section, {}).get(name) if isinstance(data.get(section), dict) else None
        if table is None:
            raise InputError(f"{_where(origin, key)} is missing ({PARAMETERS[key][0]})")
        parameters[key] = _parameter(table, key, origin)
    profile = CameraProfile(data["name"], data["description"], data["resolution"], parameters, measured, origin)
    if measured is None:
        _check_print_engine(profile, origin)
    return profile


def _check_print_engine(profile: CameraProfile, origin: str) -> None:
    """The print keys that only make sense together: a screen needs the addressable grid it is built on."""
    for key in sorted(CONSTANTS):
        low, high = profile.range(key)
        if low != high:
            raise InputError(f"{_where(origin, key)} is a fact of the device: value = x, not range = [{low:g}, {high:g}]")
    dpi, lpi = profile.value("print.device_dpi"), profile.value("print.halftone_lpi")
    levels = profile.value("print.dot_levels")
    if 0 < dpi < 150:
        raise InputError(f"{_where(origin, 'print.device_dpi')} = {dpi:g}: use 0 (continuous tone) or a printer's "
                         "150-2400 dpi")
    if 0 < lpi < 50:
        raise InputError(f"{_where(origin, 'print.halftone_lpi')} = {lpi:g}: use 0 (no screen) or 50-300 lpi")
    if lpi > 0 and not 2 * lpi <= dpi:
        raise InputError(f"{_where(origin, 'print.halftone_lpi')} = {lpi:g} needs print.device_dpi of at least "
                         f"{2 * lpi:g} (a screen cell is at least 2 dots wide), got {dpi:g}")
    if levels != round(levels):
        raise InputError(f"{_where(origin, 'print.dot_levels')} = {levels:g} is not a whole number of levels")
    if profile.value("print.error_diffusion"):
        if dpi == 0 or lpi > 0:
            raise InputError(f"{_where(origin, 'print.error_diffusion')} = true needs print.device_dpi > 0 and "
                             f"print.halftone_lpi = 0 (one screen per print), got {dpi:g} dpi and {lpi:g} lpi")
    if dpi == 0:
        # These act on the device grid (physadv.printouts.printer); a continuous-tone print has none.
        for key, neutral in (("print.graininess", 0.0), ("print.misregistration_mm", 0.0),
                             ("print.banding_amplitude", 0.0), ("print.yule_nielsen_n", 1.0)):
            if profile.range(key) != (neutral, neutral):
                raise InputError(f"{_where(origin, key)} acts on the printer's addressable grid: it needs "
                                 f"print.device_dpi > 0 (or {key} = {neutral:g})")


def _builtin_text(name: str) -> str:
    return resources.files("physadv.printouts").joinpath("profiles", f"{name}.toml").read_text(encoding="utf-8")


def load_profile(spec: str | Path | CameraProfile) -> CameraProfile:
    """A built-in profile by name (:data:`BUILTIN_PROFILES`) or a profile TOML file.

    Raises:
        InputError: an unknown name, an unreadable or invalid file (the message names the key).
    """
    if isinstance(spec, CameraProfile):
        return spec
    text_spec = str(spec)
    if text_spec in BUILTIN_PROFILES:
        return profile_from_mapping(tomllib.loads(_builtin_text(text_spec)), text_spec)
    path = Path(text_spec)
    if path.suffix.lower() != ".toml":
        raise InputError(f"camera profile {text_spec!r}: use a built-in ({', '.join(BUILTIN_PROFILES)}) or a .toml file")
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise InputError(f"camera profile {path}: larger than {MAX_PROFILE_BYTES} bytes")
        data = parse_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"camera profile {path}: no such file (built-ins: {', '.join(BUILTIN_PROFILES)})") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"camera profile {path}: not readable TOML ({error})") from None
    return profile_from_mapping(data, str(path))


# --- writing ---------------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(round(float(value), 6))


def profile_to_toml(profile: CameraProfile, header: str = "") -> str:
    """TOML text of ``profile`` that :func:`load_profile` reads back to an equal profile."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"schema = {_toml_value(SCHEMA)}", f"name = {_toml_value(profile.name)}",
              f"description = {_toml_value(profile.description)}", f"resolution = {_toml_value(profile.resolution)}"]
    for key, parameter in profile.parameters.items():
        lines.append(f"\n[{key}]")
        if key in BOOLEANS:
            lines.append(f"value = {_toml_value(bool(parameter.low))}")
        elif parameter.low == parameter.high:
            lines.append(f"value = {_toml_value(parameter.low)}")
        else:
            lines.append(f"range = {_toml_value([parameter.low, parameter.high])}")
        lines += [f"unit = {_toml_value(parameter.unit)}", f"source = {_toml_value(parameter.source)}"]
    if profile.measured is not None:
        lines.append("\n[measured]")
        lines.append(f"# measured by physadv calibrate on {profile.measured.photos} photo(s) of the chart; units:")
        lines += [f"#   {name}: {unit}" for name, unit in MEASURED_UNITS.items()]
        for name, value in profile.measured.__dict__.items():
            if name in ("tone_curve", "noise", "colour_matrix"):
                rows = ",\n  ".join(_toml_value(list(row)) for row in value)
                lines.append(f"{name} = [\n  {rows},\n]")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def without_effects(profile: CameraProfile, effects: list[str] | tuple[str, ...]) -> CameraProfile:
    """``profile`` with each of ``effects`` (names of :data:`EFFECTS`) at its neutral value, named
    ``NAME-no-EFFECT-...`` and read back through the profile reader (so the result is a valid profile).

    Raises:
        InputError: an unknown effect, or a measured profile (it has no such keys).
    """
    unknown = [name for name in effects if name not in EFFECTS]
    if unknown:
        raise InputError(f"unknown effect(s) {', '.join(unknown)}; choose from {', '.join(EFFECTS)}")
    if profile.measured is not None:
        raise InputError(f"camera profile {profile.name}: a measured profile has no print or phone effects to switch off")
    parameters = dict(profile.parameters)
    for name in effects:
        for key, neutral in EFFECTS[name].items():
            parameters[key] = Parameter(neutral, neutral, parameters[key].unit, f"neutral: {name} switched off")
    name = "-".join([profile.name, *(f"no-{effect.replace(' ', '-')}" for effect in effects)])
    changed = replace(profile, name=name, description=f"{profile.description} (without {', '.join(effects)})",
                      parameters=parameters)
    return profile_from_mapping(tomllib.loads(profile_to_toml(changed)), name)


def with_measured(base: CameraProfile, name: str, description: str, measured: MeasuredChannel,
                  scene: dict[str, Parameter] | None = None) -> CameraProfile:
    """A measured profile: ``base``'s scene and JPEG ranges (replaced by ``scene`` where given) and
    the ``measured`` channel."""
    parameters = {key: base.parameters[key] for key in SCENE}
    parameters.update(scene or {})
    # The measured blur and noise are those of the saved photos, their JPEG included: quality 100
    # (quantisation step 1, and whole chroma: see camera.encode_jpeg) replays them without smoothing
    # the noise a second time.
    parameters["sensor.jpeg_quality"] = Parameter(100.0, 100.0, "libjpeg quality",
                                                  "measured photos: blur and noise already include their JPEG")
    return replace(base, name=name, description=description, parameters=parameters, measured=measured, origin=name)
