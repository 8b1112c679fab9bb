"""8-bit image I/O and the tensor convention of physadv.

Every image tensor is ``(B, 3, H, W)``, float, RGB, values in ``[0, 1]``. Images saved to disk are
8-bit PNGs; :func:`quantise` maps a tensor onto the 256 levels those files can hold, so what is
evaluated is exactly what is saved and printed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from physadv.errors import InputError, PhysadvWarning
from physadv.fileio import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB, honouring EXIF orientation.

    Raises:
        InputError: the file is missing, unreadable or not an image.
    """
    path = Path(path)
    try:
        # Pillow warns of a decompression bomb from inside open (and again when decoding); physadv says it
        # once, in its own words, after reading.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                rgb = _decode_rgb(image)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{path}: not a readable image ({error})") from None
    for warning in caught:
        if not issubclass(warning.category, Image.DecompressionBombWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if any(issubclass(warning.category, Image.DecompressionBombWarning) for warning in caught):
        height, width = rgb.shape[:2]
        warnings.warn(f"{path} is a {width * height / 1e6:.0f}-megapixel image ({width}×{height}); decoding it "
                      f"took {rgb.nbytes / 2**20:.0f} MiB", PhysadvWarning, stacklevel=2)
    return rgb


def _decode_rgb(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: Pillow's convert("RGB") would clip it; keep the top 8 bits instead.
        wide = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8))
    if image.mode == "F":  # 32-bit float grey (TIFF): Pillow's convert("RGB") would clip [0, 1] to black
        image = Image.fromarray(_float_levels(np.asarray(image, dtype=np.float64)))
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _float_levels(values: np.ndarray) -> np.ndarray:
    """Float pixels as 8-bit levels: in [0, 1], the usual convention for float images, or else in
    [0, 255] (any value above 1 says which). Negative, non-finite or larger values have no reading.

    Raises:
        ValueError: values outside [0, 255] or not finite.
    """
    finite = np.isfinite(values).all()
    if not finite or values.min() < 0 or values.max() > 255:
        found = f"values in [{values.min():g}, {values.max():g}]" if finite else "values that are not finite"
        raise ValueError(f"a float image with {found}; float images are read in [0, 1] or [0, 255]")
    return np.round(values * (255 if values.max() <= 1 else 1)).astype(np.uint8)


def as_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Any ``(H, W)``, ``(H, W, 1|3|4)`` uint8 or [0, 1]-float array as ``(H, W, 3)`` uint8."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating) or array.min() < 0 or array.max() > 1:
            raise InputError(f"expected a uint8 image or floats in [0, 1], got {array.dtype} "
                             f"in [{array.min()}, {array.max()}]")
        array = np.round(array * 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``image`` (H, W, 3) uint8 to a square and resize it to ``size``×``size`` (Lanczos)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 image (lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(as_rgb_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of ``(H, W, 3)`` uint8 pixels (row-major HWC bytes): an image's identity in records."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 image as PNG atomically (a partial file is never left behind)."""
    atomic_write_bytes(path, encode_png(image))


def to_tensor(images: Sequence[np.ndarray] | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stack ``(H, W, 3)`` uint8 images of one size into a ``(B, 3, H, W)`` float tensor in [0, 1]."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    shapes = {np.asarray(image).shape for image in images}
    if len(shapes) != 1:
        raise InputError(f"images in one batch must share a size, got {sorted(shapes)}")
    batch = np.stack([as_rgb_uint8(image) for image in images])
    return torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` tensor in [0, 1] → ``(B, H, W, 3)`` uint8 (rounded to the nearest level)."""
    check_images(images)
    return images.detach().mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Round a ``(B, 3, H, W)`` tensor in [0, 1] to the 256 levels of an 8-bit file."""
    return images.mul(255).round().clamp(0, 255).div(255)


def check_images(images: torch.Tensor, channels: int = 3) -> None:
    """Raise :class:`InputError` unless ``images`` is a float ``(B, channels, H, W)`` tensor in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != channels:
        raise InputError(f"images must have shape (B, {channels}, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise InputError(f"images must be float in [0, 1], got dtype {images.dtype}")
    if images.numel() and (images.min() < 0 or images.max() > 1 or torch.isnan(images).any()):
        raise InputError(f"images must lie in [0, 1], got values in [{images.min().item():.4g}, {images.max().item():.4g}]"
                         " (divide 8-bit pixels by 255)")


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named by ``paths`` (files, or folders searched recursively), sorted, no duplicates.

    Raises:
        InputError: a path does not exist, or no image file is found.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES and not child.name.startswith("."):
                    found[child] = None
        elif path.is_file():
            found[path] = None
        else:
            raise InputError(f"{path}: no such file or folder")
    if not found:
        raise InputError("no image files found in " + ", ".join(str(p) for p in paths)
                         + f" (looked for {', '.join(IMAGE_SUFFIXES)})")
    return list(found)
