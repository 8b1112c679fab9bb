"""The phone's image pipeline after the sensor: Bayer mosaic and demosaicing, denoising, tone curve, sharpening.

:func:`physadv.printouts.camera.simulate_photo` applies them in a phone ISP's order, after the white
balance: the sensor samples one colour per pixel (Bayer RGGB, :func:`bayer_mosaic`), OpenCV's
edge-aware demosaicing fills in the others (:func:`demosaic`), a bilateral filter on the luma removes
noise below its range σ (:func:`denoise`), an unsharp mask on the luma sharpens (:func:`sharpen`) and a
global tone curve sets the contrast (:func:`tone_curve`); the JPEG's 4:2:0 chroma subsampling is the
encoder's (:func:`physadv.printouts.camera.encode_jpeg`). Each is the identity at its neutral setting
(demosaicing off, strength 0, contrast 1, amount 0), tested in ``tests/test_channel_fidelity.py``.

Images are ``(H, W, 3)`` uint8 RGB unless said otherwise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# OpenCV names a Bayer pattern by the 2×2 block that starts at the second row and column, so the
# sensor layout R G / G B (RGGB, from the top-left pixel) is its "BG" (checked in the tests).
_RGGB_EDGE_AWARE = cv2.COLOR_BayerBG2RGB_EA
_RGGB_CHANNEL = np.array([[0, 1], [1, 2]])  # channel sampled at (y mod 2, x mod 2)


def bayer_mosaic(image: np.ndarray, gains: np.ndarray | None = None) -> np.ndarray:
    """The colour filter array's samples ``(H, W)`` of an RGB image ``(H, W, 3)`` (any dtype): R at even
    rows and columns, B at odd rows and columns, G elsewhere (RGGB); each multiplied by its channel's
    white-balance gain ``gains`` ``(3,)`` when given (an ISP balances the mosaic before demosaicing)."""
    mosaic = np.empty(image.shape[:2], image.dtype if gains is None else np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            channel = _RGGB_CHANNEL[dy, dx]
            samples = image[dy::2, dx::2, channel]
            mosaic[dy::2, dx::2] = samples if gains is None else samples * np.float32(gains[channel])
    return mosaic


def demosaic(mosaic: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 from an RGGB mosaic ``(H, W)`` uint8 (OpenCV's edge-aware demosaicing)."""
    return cv2.demosaicing(mosaic, _RGGB_EDGE_AWARE)


def denoise(luma: np.ndarray, sigma_range: float, sigma_space_px: float) -> np.ndarray:
    """Bilateral filter (OpenCV) of a luma plane ``(H, W)`` uint8: neighbours within ~``sigma_space_px``
    whose level differs by less than ~``sigma_range`` are averaged; ``sigma_range`` 0 returns ``luma``.
    The window reaches 1.5 σ each side (a 7-px window at σ 1.5-2; each step wider doubles the cost)."""
    if sigma_range <= 0:
        return luma
    diameter = 2 * math.ceil(1.5 * sigma_space_px) + 1
    return cv2.bilateralFilter(luma, diameter, float(sigma_range), float(sigma_space_px))


def sharpen(luma: np.ndarray, amount: float, radius_px: float) -> np.ndarray:
    """Unsharp mask of a luma plane ``(H, W)`` uint8: ``Y + amount · (Y − G_radius * Y)``; ``amount`` 0
    returns ``luma`` unchanged."""
    if amount <= 0:
        return luma
    return cv2.addWeighted(luma, 1 + amount, cv2.GaussianBlur(luma, (0, 0), radius_px), -amount, 0)


def on_luma(image: np.ndarray, sigma_range: float, sigma_space_px: float, amount: float,
            radius_px: float) -> np.ndarray:
    """:func:`denoise` then :func:`sharpen` on the luma (Y of YCrCb) of an RGB image, as phone ISPs do
    (chroma untouched: no colour fringes from the sharpening); the image itself when both are off."""
    if sigma_range <= 0 and amount <= 0:
        return image
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    ycrcb[..., 0] = sharpen(denoise(np.ascontiguousarray(ycrcb[..., 0]), sigma_range, sigma_space_px),
                            amount, radius_px)
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def tone_curve(contrast: float) -> np.ndarray:
    """``(256,)`` uint8 lookup table of a global tone curve on the encoded levels: black and white stay,
    the slope at mid grey is ``contrast`` (a normalised logistic for > 1, its inverse for < 1; 1 = identity)."""
    levels = np.arange(256) / 255.0
    if contrast == 1:
        return np.arange(256, dtype=np.uint8)
    steep = max(contrast, 1 / contrast)
    k = _logistic_steepness(steep)
    low, high = _logistic(-k / 2), _logistic(k / 2)
    curve = (_logistic(k * (levels - 0.5)) - low) / (high - low)
    if contrast < 1:  # the mirror image about y = x: the inverse function
        curve = np.interp(levels, curve, levels)
    return np.clip(np.round(curve * 255), 0, 255).astype(np.uint8)


def _logistic(x):
    return 1 / (1 + np.exp(-x))


def _logistic_steepness(slope: float) -> float:
    """k whose normalised logistic on [0, 1] has ``slope`` at 0.5 (bisection: the slope grows with k)."""
    low, high = 1e-6, 200.0
    for _ in range(100):
        k = (low + high) / 2
        midslope = (k / 4) / (_logistic(k / 2) - _logistic(-k / 2))
        low, high = (k, high) if midslope < slope else (low, k)
    return (low + high) / 2
