"""Printability and smoothness of a patch: the non-printability score, total variation, and ΔE00.

- **NPS** (Sharif et al. 2016, "Accessorize to a crime"): how far a patch's colours lie from the
  colours a printer can make. Sharif et al. multiply each pixel's distances to all printable
  colours; with a few hundred colours at distances below 1 that product underflows to 0 in float32,
  so, as Thys et al. (2019, "Fooling automated surveillance cameras") do, each pixel counts its
  distance to the *nearest* printable colour: :math:`\\mathrm{NPS}(p) = \\operatorname{mean}_{x}
  \\min_{c \\in P} \\lVert p_x - c \\rVert_2`, in RGB units of [0, 1].
- **TV**: the anisotropic total variation (kornia's), which keeps the patch smooth enough to survive
  the print's and the lens's blur (Sharif et al.; Eykholt et al. 2018).
- **ΔE00**: CIEDE2000 between a patch and its simulated print, the answer to "will it print?".

The printable colours are any :math:`(K, 3)` tensor in [0, 1]: a camera profile's measured palette, or
a printer model applied to :func:`rgb_grid` (``physadv patch`` builds them from a profile).

The simulated print (:func:`simulated_print`) is what a colour-managed print of the patch can show at
best: each colour the printer can make is reproduced, each other colour becomes the nearest one it
can make (CIELAB distance; ICC's relative colorimetric intent clips out-of-gamut colours the same
way). So the ΔE00 between a patch and its simulated print is its colours' distance from the
printer's gamut: 0 for a patch the printer can reproduce, large for saturated or extreme colours it
cannot. How an uncalibrated print shifts every colour (tone curve, colour matrix) is the channel's
business: ``--eot profile:NAME`` trains through it.
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.losses import total_variation as _kornia_total_variation

SIMULATED_PRINT_GRID_LEVELS = 65
"""Levels per channel of the RGB grid whose printed colours make the gamut of :func:`simulated_print`
(65³ = 274,625 colours, 4 levels apart). Measured on the lab profile's virtual printer (colours printed
from random inputs, so inside its gamut by construction): the nearest grid colour is 0.37 ΔE00 away on
average (p95 0.65); with 33 levels 0.73, with 17 levels 1.46. Building the search tree takes 0.15 s."""

PRINTABLE_GRID_LEVELS = 8
"""Levels per channel of the RGB grid a printer model is applied to for the NPS term: 8³ = 512 colours,
36 levels apart (0-255 units), so a colour inside the gamut is at most 31 levels (s·√3/2) from one of
them before the printer compresses the grid. Sharif et al. printed 30 colours; more cost time in the
pixel-to-colour distances of every step (P² × K)."""


def rgb_grid(levels: int = PRINTABLE_GRID_LEVELS) -> torch.Tensor:
    """:math:`(levels^3, 3)` RGB values in [0, 1]: every combination of ``levels`` equally spaced levels."""
    axis = torch.linspace(0, 1, levels)
    return torch.cartesian_prod(axis, axis, axis)


def non_printability_score(patch: torch.Tensor, printable: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean distance (RGB, [0, 1] units) from each patch pixel to its nearest printable colour.

    Args:
        patch: :math:`(3, P, P)` or :math:`(B, 3, P, P)` in [0, 1].
        printable: :math:`(K, 3)` printable colours in [0, 1].
        mask: :math:`(1, P, P)` weights of the pixels that are printed (the patch's shape); ``None``: all.

    Returns:
        a scalar tensor, differentiable with respect to ``patch``.
    """
    if printable.ndim != 2 or printable.shape[1] != 3 or not len(printable):
        raise ValueError(f"printable colours must have shape (K, 3) with K ≥ 1, got {tuple(printable.shape)}")
    pixels = patch.reshape(-1, 3, patch.shape[-2] * patch.shape[-1]).transpose(1, 2).reshape(-1, 3)
    nearest = torch.cdist(pixels, printable.to(pixels)).min(dim=1).values
    if mask is None:
        return nearest.mean()
    weights = mask.reshape(-1).to(nearest).repeat(nearest.numel() // mask.numel())
    return (nearest * weights).sum() / weights.sum()


def total_variation(patch: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of :math:`(3, P, P)` or :math:`(B, 3, P, P)`: the mean absolute
    difference of vertical and horizontal neighbours (kornia, ``reduction='mean'``), summed over
    channels and averaged over the batch; a scalar."""
    return _kornia_total_variation(patch, reduction="mean").sum(dim=-1).mean()


def delta_e00(reference: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """CIEDE2000 (colour-science) between sRGB colours ``(..., 3)`` in 0-255 units, per colour."""
    import colour

    return np.asarray(colour.delta_E(_cielab(reference), _cielab(sample), method="CIE 2000"), dtype=np.float64)


def _cielab(levels: np.ndarray) -> np.ndarray:
    import colour

    return colour.XYZ_to_Lab(colour.sRGB_to_XYZ(np.clip(np.asarray(levels, dtype=np.float64), 0, 255) / 255))


def simulated_print(levels: np.ndarray, gamut: np.ndarray) -> np.ndarray:
    """Each colour of ``levels`` ``(..., 3)`` (0-255 units) replaced by the nearest (CIELAB) colour of
    ``gamut`` ``(K, 3)``, the colours the printer makes (0-255 units): the best print of ``levels``."""
    from scipy.spatial import cKDTree

    gamut = np.asarray(gamut, dtype=np.float64)
    _, nearest = cKDTree(_cielab(gamut)).query(_cielab(levels).reshape(-1, 3))
    return gamut[nearest].reshape(np.shape(levels))


def mean_delta_e00(reference: np.ndarray, sample: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 over the pixels of two ``(H, W, 3)`` images in 0-255 units, weighted by ``mask``
    ``(H, W)`` in [0, 1] (the printed part of a shaped patch)."""
    per_pixel = delta_e00(reference, sample)
    weights = np.ones(per_pixel.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    return float((per_pixel * weights).sum() / weights.sum())
