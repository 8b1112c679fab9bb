"""The print at the printer's addressable grid: screen, dot gain, toner grain, misregistration, banding.

:func:`print_on_device` turns a page rendered at the printer's resolution (``device_dpi``, pixel
replication as the printer's RIP does) into the sheet as a camera sees it under white light, area-
averaged down to a whole fraction of the device grid (``device_dpi / factor``), in linear light (a
screen finer than the camera's pixels must be averaged in light, not in encoded levels: averaging the
sRGB levels of a 50 % dot pattern is 20-40 levels too dark). Per
ink (cyan, magenta, yellow: the complements of R, G, B; no black plate, see ``docs/channel.md``):

1. **RIP**: each level becomes an ink coverage ``a`` such that a large flat area prints the tone of
   the continuous-tone model (:func:`physadv.printouts.camera.print_page`: ink and paper levels, print
   gamma), Yule–Nielsen dot gain included: a calibrated printer compensates its mean dot gain, so what
   is left of it is how it mixes fine detail;
2. **screen**: a clustered-dot AM screen (:func:`screen_cell`: the requested lpi and angle snapped to
   a rational-tangent cell of whole device dots, as PostScript's ``setscreen`` does; round-dot spot
   function; ``S · (levels − 1) + 1`` tone levels for a cell of ``S`` dots), or Floyd–Steinberg error
   diffusion (Pillow) for inkjets, or none (continuous tone on the device grid);
3. **toner spread**: Gaussian blur of σ ``print.blur_mm`` on the device grid;
4. **graininess**: the ink's optical density varies from dot to dot with σ ``graininess`` per
   42.3-µm tile (ISO/IEC 13660's tile; one 600-dpi dot);
5. **misregistration**: the ink's whole plane shifted by its drawn displacement (mm);
6. **banding**: the ink's tone value modulated along the paper feed by ``1 + A sin(2π y / period + φ)``;
7. **Yule–Nielsen**: optical dot gain: reflectances mix as ``R^(1/n)`` over about one screen cell
   (:func:`yule_nielsen`; ``n`` = 1 is Murray–Davies: plain averaging of reflectance).

Steps 5-7 act on the average over ``factor × factor`` dots (4-16 times fewer pixels): they are smooth
at that scale (a shift by bilinear interpolation, a slow gain, a mixing over a whole cell).

Every step is the identity at its neutral setting (tested in ``tests/test_channel_fidelity.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from physadv.colour import linear_to_srgb, srgb_to_linear

ISO_13660_TILE_MM = 25.4 / 600  # 42.3 µm: the tile over which ISO/IEC 13660 measures graininess
GRAIN_TILE = 1024  # device dots: the grain field is a tile of this side repeated (as the sensor noise)
LINEAR_MAX = 65535  # linear light as uint16


@dataclass(frozen=True)
class DevicePrint:
    """One print's device parameters (drawn per photo by :func:`physadv.printouts.camera.sample_shot`).

    Lengths in mm; ``misregistration_mm`` is ``(dx, dy)`` of the cyan, magenta and yellow planes;
    ``banding`` is ``(amplitude, period_mm, phase_rad)``."""

    device_dpi: float
    halftone_lpi: float = 0.0
    screen_angles_deg: tuple[float, float, float] = (15.0, 75.0, 0.0)
    dot_levels: int = 2
    error_diffusion: bool = False
    yule_nielsen_n: float = 1.0
    graininess: float = 0.0
    misregistration_mm: tuple[float, float, float, float, float, float] = (0.0,) * 6
    banding: tuple[float, float, float] = (0.0, 1.0, 0.0)
    blur_mm: float = 0.0
    seed: int = 0


# --- the screen ---------------------------------------------------------------------------------------------


def screen_cell(dpi: float, lpi: float, angle_deg: float) -> tuple[int, int]:
    """The rational-tangent cell ``(p, q)`` (device dots) nearest to ``lpi`` at ``angle_deg``: the screen's
    period vector. Its actual frequency is ``dpi / hypot(p, q)`` lpi at ``atan2(q, p)``; the cell holds
    ``p² + q²`` dots, so a binary screen prints ``p² + q² + 1`` tone levels."""
    period = dpi / lpi
    angle = math.radians(angle_deg)
    p, q = round(period * math.cos(angle)), round(period * math.sin(angle))
    if p == 0 and q == 0:
        p = 1
    return p, q


def screen_frequency(dpi: float, cell: tuple[int, int]) -> tuple[float, float]:
    """``(lpi, angle_deg)`` that the cell ``(p, q)`` really prints at ``dpi``."""
    p, q = cell
    return dpi / math.hypot(p, q), math.degrees(math.atan2(q, p))


@lru_cache(maxsize=16)
def _rank_tile(cell: tuple[int, int]) -> np.ndarray:
    """``(S, S)`` int32: the order in which the dots of a round-dot cell ``(p, q)`` fill (0 first), S = p² + q².

    Dot (x, y) has cell coordinates u = (xp + yq)/S, v = (yp − xq)/S; the lattice of the cell vectors
    (p, q), (−q, p) has index S in the device grid, so the pattern repeats every S dots in x and y and
    holds S classes of dots. Classes are ranked by PostScript's round-dot spot function 1 − (u² + v²)
    around the cell centre (highest fills first)."""
    p, q = cell
    size = p * p + q * q
    y, x = np.mgrid[0:size, 0:size]
    u_index, v_index = (x * p + y * q) % size, (y * p - x * q) % size
    u, v = (u_index + 0.5) / size * 2 - 1, (v_index + 0.5) / size * 2 - 1
    spot = 1 - (u * u + v * v)
    # One rank per class (u_index, v_index); ties broken by the class index so the order is total.
    classes = u_index * size + v_index
    order = np.lexsort((classes.ravel(), -spot.ravel()))
    rank_of_class: dict[int, int] = {}
    for flat in order:
        key = int(classes.flat[flat])
        if key not in rank_of_class:
            rank_of_class[key] = len(rank_of_class)
    ranks = np.vectorize(rank_of_class.__getitem__)(classes)
    assert len(rank_of_class) == size
    return ranks.astype(np.int32)


@lru_cache(maxsize=8)
def _thresholds(shape: tuple[int, int], cell: tuple[int, int], levels: int) -> tuple[np.ndarray, ...]:
    """The uint8 threshold maps of a screen over a page of ``shape``: dot ``(x, y)`` of rank ``r`` in a cell
    of ``S`` dots is exposed to step ``j`` of ``levels − 1`` when its coverage ``a`` (0-255) exceeds map ``j``,
    i.e. when ``a · S / 255 − r ≥ (j − ½) / (levels − 1)``: dots fill in rank order, each one in
    ``levels − 1`` steps, so a flat area of coverage ``a`` prints ``round(a · S (levels − 1)) / (S (levels − 1))``."""
    ranks = _rank_tile(cell)
    size = ranks.shape[0]
    maps = []
    for step in range(1, levels):
        exact = 255.0 * (ranks + (step - 0.5) / (levels - 1)) / size
        tile = np.clip(np.ceil(exact) - 1, 0, 255).astype(np.uint8)
        reps = (-(-shape[0] // size), -(-shape[1] // size))
        maps.append(np.ascontiguousarray(np.tile(tile, reps)[:shape[0], :shape[1]]))
    return tuple(maps)


def screen(coverage: np.ndarray, cell: tuple[int, int], levels: int = 2) -> np.ndarray:
    """Clustered-dot screening of a coverage map ``(H, W)`` uint8 (255 = full ink) → dot fill ``(H, W)``
    uint8 in ``levels`` steps (255 = the dot fully exposed)."""
    maps = _thresholds(coverage.shape, cell, levels)
    if levels == 2:
        return cv2.compare(coverage, maps[0], cv2.CMP_GT)
    total = np.zeros(coverage.shape, np.uint16)
    for threshold in maps:
        total += cv2.compare(coverage, threshold, cv2.CMP_GT) // 255
    return np.round(total.astype(np.float32) * (255.0 / (levels - 1))).astype(np.uint8)


def error_diffusion(coverage: np.ndarray) -> np.ndarray:
    """Floyd–Steinberg error diffusion of a coverage map ``(H, W)`` uint8 → binary dot fill (0/255), Pillow's."""
    from PIL import Image

    # Pillow dithers brightness: ink where the dithered image is black.
    dithered = Image.fromarray(255 - coverage).convert("1", dither=Image.Dither.FLOYDSTEINBERG)
    return np.where(np.asarray(dithered), 0, 255).astype(np.uint8)


# --- reflectance ------------------------------------------------------------------------------------------------


def tone_targets(ink: float, paper: float, gamma: float) -> np.ndarray:
    """``(256,)`` printed level per page level: the continuous-tone print's tone reproduction."""
    return np.clip(ink + (paper - ink) * (np.arange(256) / 255.0) ** gamma, 0, 255)


def rip_coverage(ink: float, paper: float, gamma: float, n: float, exact: bool = False) -> np.ndarray:
    """``(256,)`` ink coverage per page level (0-255) such that a large flat area prints the tone of
    :func:`tone_targets` under Yule–Nielsen mixing with ``n`` (the printer's calibration): uint8 for a
    screen (which quantises far more coarsely), float32 when ``exact`` (continuous tone)."""

    target = srgb_to_linear(tone_targets(ink, paper, gamma) / 255.0)
    paper_r, ink_r = srgb_to_linear(paper / 255.0), srgb_to_linear(ink / 255.0)
    top, bottom = paper_r ** (1 / n), ink_r ** (1 / n)
    coverage = np.clip((top - target ** (1 / n)) / max(top - bottom, 1e-9), 0, 1) * 255
    return coverage.astype(np.float32) if exact else np.round(coverage).astype(np.uint8)


def linear_to_levels(linear: np.ndarray) -> np.ndarray:
    """Linear light ``(...)`` uint16 (65535 = 1) → sRGB levels uint8, through a full table."""
    return _encoding_table()[linear]


def levels_to_linear(levels: np.ndarray) -> np.ndarray:
    """sRGB levels ``(H, W)`` or ``(H, W, 3)`` uint8 → linear light uint16 (65535 = 1)."""

    table = np.round(srgb_to_linear(np.arange(256) / 255.0) * LINEAR_MAX).astype(np.uint16)
    return cv2.LUT(np.ascontiguousarray(levels), table)


@lru_cache(maxsize=1)
def _encoding_table() -> np.ndarray:

    return np.round(linear_to_srgb(np.arange(LINEAR_MAX + 1) / LINEAR_MAX) * 255).astype(np.uint8)


def grain_tile(sigma_density: float, n: float, top: float, bottom: float, seed: int) -> np.ndarray:
    """``(GRAIN_TILE, GRAIN_TILE)`` float32 factor on a dot's fill for toner grain: the ink's Yule–Nielsen
    term ``bottom = R_ink^(1/n)`` becomes ``bottom · 10^(−σ z / n)`` (density noise of σ ``sigma_density``,
    ``z`` standard normal per dot), so the mixed value ``top − f (top − bottom)`` becomes
    ``top − f h (top − bottom)`` with ``h = (top − bottom · 10^(−σ z / n)) / (top − bottom)``."""
    rng = np.random.default_rng(seed)
    grain = 10.0 ** (-sigma_density * rng.standard_normal((GRAIN_TILE, GRAIN_TILE)) / n)
    return ((top - bottom * grain) / max(top - bottom, 1e-9)).astype(np.float32)


def multiply_by_tile(plane: np.ndarray, tile: np.ndarray, offset: tuple[int, int] = (0, 0)) -> None:
    """Multiply ``plane`` ``(H, W[, C])`` float32 in place by ``tile`` ``(T, T[, C])`` rolled by ``offset``
    and repeated over it (the camera's sensor noise and the toner grain: cheaper than drawing every pixel)."""
    tile = np.roll(tile, offset, axis=(0, 1))
    size_y, size_x = tile.shape[:2]
    for top in range(0, plane.shape[0], size_y):
        for left in range(0, plane.shape[1], size_x):
            block = plane[top:top + size_y, left:left + size_x]
            block *= tile[:block.shape[0], :block.shape[1]]


def shift_plane(plane: np.ndarray, dx_px: float, dy_px: float, fill: float = 0) -> np.ndarray:
    """``plane`` ``(H, W)`` moved by ``(dx, dy)`` pixels (bilinear); uncovered pixels take ``fill``."""
    if dx_px == 0 and dy_px == 0:
        return plane
    matrix = np.float32([[1, 0, dx_px], [0, 1, dy_px]])
    return cv2.warpAffine(plane, matrix, (plane.shape[1], plane.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def banding_profile(rows: int, rows_per_mm: float, banding: tuple[float, float, float]) -> np.ndarray:
    """``(rows, 1)`` float32 factor ``1 + A sin(2π y / period + φ)`` on the ink's tone value, page y in mm."""
    amplitude, period_mm, phase = banding
    y_mm = (np.arange(rows) + 0.5) / rows_per_mm
    return (1 + amplitude * np.sin(2 * math.pi * y_mm / period_mm + phase)).astype(np.float32)[:, None]


def area_average(plane: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``plane`` ``(H, W)`` float32 over ``factor × factor`` blocks (a remainder of under ``factor``
    rows or columns is dropped)."""
    if factor == 1:
        return plane
    height, width = plane.shape[0] // factor, plane.shape[1] // factor
    return cv2.resize(plane[:height * factor, :width * factor], (width, height), interpolation=cv2.INTER_AREA)


# --- the print -----------------------------------------------------------------------------------------------


def print_on_device(render: np.ndarray, factor: int, device: DevicePrint, ink_rgb: tuple[float, float, float],
                    paper_rgb: tuple[float, float, float], gamma: float) -> np.ndarray:
    """The printed sheet's linear reflectance ``(H // factor, W // factor, 3)`` uint16 (65535 = 1), each pixel
    the mean over ``factor × factor`` dots, from a page rendered on the device grid ``render``
    ``(H, W, 3)`` uint8 (see the module doc for the steps)."""

    dots_per_mm = device.device_dpi / 25.4
    height, width = render.shape[0] // factor, render.shape[1] // factor
    screened = device.halftone_lpi > 0 or device.error_diffusion
    n = device.yule_nielsen_n if screened else 1.0
    sigma = device.blur_mm * dots_per_mm
    # Yule–Nielsen's mixing area: one screen cell (σ half a period), or 2 dots between error-diffused dots.
    mixing_sigma = (device.device_dpi / device.halftone_lpi) if device.halftone_lpi > 0 else 2.0
    banding = (banding_profile(height, dots_per_mm / factor, device.banding)
               if device.banding[0] > 0 else None)
    out = np.empty((height, width, 3), np.uint16)
    rng = np.random.default_rng(device.seed)
    for channel in range(3):
        ink, paper = float(ink_rgb[channel]), float(paper_rgb[channel])
        paper_r, ink_r = srgb_to_linear(paper / 255.0), srgb_to_linear(ink / 255.0)
        top, bottom = paper_r ** (1 / n), ink_r ** (1 / n)
        coverage = cv2.LUT(np.ascontiguousarray(render[..., channel]), rip_coverage(ink, paper, gamma, n, not screened))
        if device.error_diffusion:
            fill = error_diffusion(coverage)
        elif device.halftone_lpi > 0:
            fill = screen(coverage, screen_cell(device.device_dpi, device.halftone_lpi,
                                                device.screen_angles_deg[channel]), device.dot_levels)
        else:
            fill = coverage
        if sigma > 0:
            fill = cv2.GaussianBlur(fill, (0, 0), sigma)
        fill = fill.astype(np.float32)
        if device.graininess > 0:
            tile = grain_tile(device.graininess * _grain_scale(device.device_dpi), n, top, bottom,
                              int(rng.integers(2 ** 31)))
            multiply_by_tile(fill, tile, tuple(int(v) for v in rng.integers(0, GRAIN_TILE, 2)))
        mean_fill = area_average(fill, factor)
        # The plane's displacement, applied after the area average (4-16x fewer pixels; a bilinear shift of
        # the average differs from averaging the shifted dots only by the interpolation's smoothing).
        dx, dy = device.misregistration_mm[2 * channel:2 * channel + 2]
        mean_fill = shift_plane(mean_fill, dx * dots_per_mm / factor, dy * dots_per_mm / factor)
        if banding is not None:
            mean_fill *= banding
        # v = top − (top − bottom) f: the Yule–Nielsen mixed value (the reflectance itself when n = 1).
        mixed = mean_fill * np.float32(-(top - bottom) / 255.0)
        mixed += np.float32(top)
        if n != 1:
            mixed = yule_nielsen(mixed, n, mixing_sigma / factor)
        out[..., channel] = np.clip(mixed * np.float32(LINEAR_MAX) + np.float32(0.5), 0, LINEAR_MAX).astype(np.uint16)
    return out


def yule_nielsen(mixed: np.ndarray, n: float, sigma_px: float) -> np.ndarray:
    """Reflectance ``(H, W)`` float32 from Yule–Nielsen mixed values ``v = R_local^(1/n)``: light that enters
    the paper next to a dot spreads under it (optical dot gain), so each point reflects its own ``v`` times
    ``m^(n−1)``, ``m`` the Gaussian mean of ``v`` over ``sigma_px`` (about one screen cell). A flat area
    (``m`` constant) reflects ``m^n``, Yule and Nielsen's law, which the RIP compensated; paper between dots
    reflects less than bare paper, a dot more than a solid (for n = 2 this is the paper point-spread model
    ``R = R_p T (G * T)`` of Ruckdeschel and Hauser 1978, ``T`` the ink's transmittance)."""
    local = cv2.GaussianBlur(mixed, (0, 0), sigma_px) if sigma_px > 0 else mixed.copy()
    np.maximum(local, np.float32(1e-6), out=local)
    return mixed * local ** np.float32(n - 1)


def _grain_scale(dpi: float) -> float:
    """Per-dot density σ for ISO/IEC 13660's per-tile σ: a tile of (tile / dot)² independent dots averages
    their noise, so each dot varies by tile / dot times more (1 at 600 dpi, 2 at 1200)."""
    return max(1.0, ISO_13660_TILE_MM / (25.4 / dpi))
