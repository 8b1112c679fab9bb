"""The ImageNet-C common corruptions (Hendrycks & Dietterich 2019): 15 corruptions × 5 severities.

Why a re-implementation: the ``imagecorruptions`` package (1.1.2, 2020) does not import on our
stack (``pkg_resources`` is gone), ``fog`` fails on NumPy 2 (``np.float_``) and ``glass_blur`` on
scikit-image ≥ 0.19 (``multichannel``). Its maintained fork ``imagecorruptions-imaug`` (1.1.5) works
with NumPy 2 but requires ``opencv-python``, the GUI build that writes the same ``cv2`` package as
our ``opencv-python-headless`` (OpenCV's docs: install only one), plus numba and llvmlite
(208 MB). So this module follows the definitions of ``imagecorruptions`` line by line (the
resolution-independent versions of Hendrycks' ``make_imagenet_c.py`` that RobustBench and
mmdetection use), for RGB images, with these differences:

- randomness comes from an explicit ``numpy.random.RandomState`` per image, never NumPy's global
  state; with the same seed the draws are the ones ``imagecorruptions`` makes after
  ``np.random.seed(seed)`` (``benchmarks/check_corruptions.py`` compares the two image by image);
- ``impulse_noise`` seeds scikit-image's ``random_noise`` from that ``RandomState``;
- ``frost`` picks one of the first five frost pictures, as Hendrycks' code and ``imagecorruptions``
  1.1.2 do (the fork draws from six); ``fog``'s plasma map is float64 as in the original (the fork
  uses float32);
- ``glass_blur``'s pixel "swap" is the original's NumPy statement ``x[h, w], x[h', w'] = x[h', w'],
  x[h, w]`` on array views, which copies ``x[h', w']`` into ``x[h, w]``; we write that copy
  directly.

The frost pictures in ``physadv/data/frost`` are Hendrycks' (Apache-2.0, via imagecorruptions).
Every corruption takes and returns an ``(H, W, 3)`` uint8 RGB image of at least 32 × 32 pixels; the
float result is truncated to uint8 as ``imagecorruptions.corrupt`` does.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from io import BytesIO
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scipy_zoom
from skimage.color import hsv2rgb, rgb2hsv
from skimage.filters import gaussian
from skimage.util import random_noise

from physadv.catalog import SEVERITIES
from physadv.errors import InputError
from physadv.images import to_tensor, to_uint8

MIN_SIDE = 32
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")

Corruption = Callable[[np.ndarray, int, np.random.RandomState], np.ndarray]


# --- helpers (imagecorruptions' names in the docstrings) -----------------------------------------------------

def _disk(radius: int, alias_blur: float) -> np.ndarray:
    """``disk``: an anti-aliased disk kernel."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        grid, ksize = np.arange(-radius, radius + 1), (5, 5)
    x, y = np.meshgrid(grid, grid)
    aliased = np.array((x ** 2 + y ** 2) <= radius ** 2, dtype=np.float32)
    aliased /= np.sum(aliased)
    return cv2.GaussianBlur(aliased, ksize=ksize, sigmaX=alias_blur)


def _plasma_fractal(rng: np.random.RandomState, mapsize: int, wibbledecay: float) -> np.ndarray:
    """``plasma_fractal``: a diamond-square height map in [0, 1] of side ``mapsize`` (a power of two)."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize, wibble = mapsize, 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squares = corners + np.roll(corners, shift=-1, axis=0)
        squares += np.roll(squares, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squares)
        down_right = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        up_left = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        left = (down_right + np.roll(down_right, 1, axis=0)) + (up_left + np.roll(up_left, -1, axis=1))
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(left)
        top = (down_right + np.roll(down_right, 1, axis=1)) + (up_left + np.roll(up_left, -1, axis=0))
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(top)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def _clipped_zoom(image: np.ndarray, zoom_factor: float) -> np.ndarray:
    """``clipped_zoom``: zoom into the centre by ``zoom_factor`` (linear interpolation)."""
    ch0 = int(np.ceil(image.shape[0] / float(zoom_factor)))
    top0 = (image.shape[0] - ch0) // 2
    ch1 = int(np.ceil(image.shape[1] / float(zoom_factor)))
    top1 = (image.shape[1] - ch1) // 2
    return scipy_zoom(image[top0:top0 + ch0, top1:top1 + ch1], (zoom_factor, zoom_factor, 1), order=1)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``shift``: translate by whole pixels, repeating the edge."""
    if dx < 0:
        shifted = np.roll(image, shift=image.shape[1] + dx, axis=1)
        shifted[:, dx:] = shifted[:, dx - 1:dx]
    elif dx > 0:
        shifted = np.roll(image, shift=dx, axis=1)
        shifted[:, :dx] = shifted[:, dx:dx + 1]
    else:
        shifted = image
    if dy < 0:
        shifted = np.roll(shifted, shift=image.shape[0] + dy, axis=0)
        shifted[dy:, :] = shifted[dy - 1:dy, :]
    elif dy > 0:
        shifted = np.roll(shifted, shift=dy, axis=0)
        shifted[:dy, :] = shifted[dy:dy + 1, :]
    return shifted


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """``_motion_blur``: a one-sided Gaussian line kernel of ``2 radius + 1`` taps at ``angle`` degrees."""
    width = radius * 2 + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    kernel = kernel / np.sum(kernel)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    blurred = np.zeros_like(x, dtype=np.float32)
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break  # the motion left the image
        blurred = blurred + kernel[i] * _shift(x, dx, dy)
    return blurred


def _next_power_of_2(x: int) -> int:
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


@lru_cache(maxsize=len(FROST_FILES))
def _frost_picture(index: int) -> np.ndarray:
    """Frost picture ``index`` as OpenCV reads it (BGR uint8)."""
    data = resources.files("physadv.data").joinpath("frost", FROST_FILES[index]).read_bytes()
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


# --- the corruptions -------------------------------------------------------------------------------------------

def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [.08, .12, 0.18, 0.26, 0.38][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [60, 25, 12, 5, 3][severity - 1]
    x = np.array(x) / 255.
    return np.clip(rng.poisson(x * c) / float(c), 0, 1) * 255


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]
    x = random_noise(np.array(x) / 255., mode="s&p", rng=int(rng.randint(2 ** 31 - 1)), amount=c)
    return np.clip(x, 0, 1) * 255


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    x = np.array(x) / 255.
    kernel = _disk(radius=c[0], alias_blur=c[1])
    channels = np.array([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]).transpose((1, 2, 0))
    return np.clip(channels, 0, 1) * 255


def glass_blur(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    sigma, max_delta, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    x = np.uint8(gaussian(np.array(x) / 255., sigma=sigma, channel_axis=-1) * 255)
    height, width = x.shape[:2]
    rows = range(height - max_delta, max_delta, -1)
    columns = range(width - max_delta, max_delta, -1)
    for _ in range(iterations):
        # One draw of all offsets gives the same stream as the original's draw of two per pixel.
        offsets = rng.randint(-max_delta, max_delta, size=(len(rows) * len(columns), 2)).tolist()
        k = 0
        for h in rows:
            for w in columns:
                dx, dy = offsets[k]
                k += 1
                x[h, w] = x[h + dy, w + dx]
    return np.clip(gaussian(x / 255., sigma=sigma, channel_axis=-1), 0, 1) * 255


def motion_blur(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    angle = rng.uniform(-45, 45)
    return np.clip(_motion_blur(np.array(x), radius=c[0], sigma=c[1], angle=angle), 0, 255)


def zoom_blur(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
         np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)][severity - 1]
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        layer = _clipped_zoom(x, zoom_factor)[:x.shape[0], :x.shape[1], :]
        out[:layer.shape[0], :layer.shape[1]] += layer
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def snow(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
         (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = _clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = np.clip(snow_layer.squeeze(), 0, 1)
    snow_layer = _motion_blur(snow_layer, radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45))
    snow_layer = (np.round(snow_layer * 255).astype(np.uint8) / 255.)[..., np.newaxis]
    snow_layer = snow_layer[:x.shape[0], :x.shape[1], :]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(x.shape[0], x.shape[1], 1)
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def frost(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][severity - 1]
    picture = _frost_picture(rng.randint(5))
    scale = 1.1 * max(1.0, x.shape[0] / picture.shape[0], x.shape[1] / picture.shape[1])
    size = (int(np.ceil(picture.shape[1] * scale)), int(np.ceil(picture.shape[0] * scale)))
    picture = cv2.resize(picture, dsize=size, interpolation=cv2.INTER_CUBIC)
    top = rng.randint(0, picture.shape[0] - x.shape[0])
    left = rng.randint(0, picture.shape[1] - x.shape[1])
    picture = picture[top:top + x.shape[0], left:left + x.shape[1]][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(x) + c[1] * picture, 0, 255)


def fog(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][severity - 1]
    map_size = _next_power_of_2(int(max(x.shape)))
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * _plasma_fractal(rng, map_size, c[1])[:x.shape[0], :x.shape[1]][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [.1, .2, .3, .4, .5][severity - 1]
    x = rgb2hsv(np.array(x) / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(hsv2rgb(x), 0, 1) * 255


def contrast(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [0.4, .3, .2, .1, .05][severity - 1]
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    image = np.array(x, dtype=np.float32) / 255.
    shape = image.shape
    sigma = np.array(shape[:2]) * 0.01
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    max_dx = max_dy = shape[0] * 0.005
    dx = (gaussian(rng.uniform(-max_dx, max_dx, size=shape[:2]), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)[..., np.newaxis]
    dy = (gaussian(rng.uniform(-max_dy, max_dy, size=shape[:2]), sigma, mode="reflect", truncate=3)
          * alpha).astype(np.float32)[..., np.newaxis]
    grid_x, grid_y, grid_z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(grid_y + dy, (-1, 1)), np.reshape(grid_x + dx, (-1, 1)), np.reshape(grid_z, (-1, 1))
    return np.clip(map_coordinates(image, indices, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def pixelate(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]
    height, width = x.shape[:2]
    image = Image.fromarray(x).resize((int(width * c), int(height * c)), Image.BOX)
    return np.asarray(image.resize((width, height), Image.NEAREST))


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.RandomState) -> np.ndarray:
    c = [25, 18, 15, 10, 7][severity - 1]
    buffer = BytesIO()
    Image.fromarray(x).save(buffer, "JPEG", quality=c)
    return np.asarray(Image.open(buffer))


CORRUPTIONS: dict[str, Corruption] = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog,
    brightness, contrast, elastic_transform, pixelate, jpeg_compression)}
"""The 15 corruptions of ImageNet-C, in the paper's order (noise, blur, weather, digital)."""


def check_severity(severity: float) -> int:
    """``severity`` as an int; :class:`InputError` unless it is one of 1..5."""
    if severity not in SEVERITIES:
        raise InputError(f"corruption severity must be one of 1, 2, 3, 4, 5, got {severity:g}")
    return int(severity)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corruption ``name`` at ``severity`` (1–5) of one ``(H, W, 3)`` uint8 RGB image, seeded by ``seed``."""
    if name not in CORRUPTIONS:
        raise InputError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"corruptions take (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputError(f"ImageNet-C corruptions need images of at least {MIN_SIDE}×{MIN_SIDE} px, "
                         f"got {image.shape[1]}×{image.shape[0]}")
    result = CORRUPTIONS[name](image, check_severity(severity), np.random.RandomState(seed))
    return np.uint8(result)


def corrupt_images(images: torch.Tensor, severity: float, generator: torch.Generator | None = None, *,
                   name: str) -> torch.Tensor:
    """Corrupt a batch ``(B, 3, H, W)`` in [0, 1]; one seed per image is drawn from ``generator``.

    Returns:
        :math:`(B, 3, H, W)` on 8-bit levels, on the images' device.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2 ** 31 - 1, (len(images),), generator=generator, device=device).tolist()
    return to_tensor([corrupt(image, name, int(severity), seed) for image, seed in zip(to_uint8(images), seeds)],
                     images.device)
