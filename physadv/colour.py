"""Colour maths shared by the stages: the sRGB transfer function (IEC 61966-2-1).

NumPy only, no torch: the virtual camera (:mod:`physadv.printouts.camera`), the printer model
(:mod:`physadv.printouts.printer`) and calibration (:mod:`physadv.capture.calibrate`) all convert
between sRGB-encoded values and linear light with these two functions.
"""

from __future__ import annotations

import numpy as np


def srgb_to_linear(levels: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear light in [0, 1] (IEC 61966-2-1), any shape."""
    return np.where(levels <= 0.04045, levels / 12.92, ((levels + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light → sRGB-encoded values in [0, 1] (IEC 61966-2-1), any shape; clipped to [0, 1] first."""
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
