"""The simulated channel: Kurakin et al.'s artificial image transformations, batched.

Functional core (``brightness``, ``contrast``, ``gaussian_blur``, ``gaussian_noise``, ``jpeg``) plus
:class:`ChannelTransform`, a named transformation at one strength. Strengths are in the units a
photographer would use: brightness offset and noise σ in 0–255 pixel units (like ε), blur σ in
pixels, contrast as a factor, JPEG as the encoder's quality (a real codec, one image at a time). Outputs are rounded to 8-bit levels,
as a saved photo would be. The ImageNet-C corruptions (:mod:`physadv.corruptions`) are registered
beside them as ``imagenet-c:<name>``, their strength the severity 1–5.

Shape:
    - Input: :math:`(B, 3, H, W)`, float RGB in [0, 1].
    - Output: :math:`(B, 3, H, W)`, float RGB in [0, 1], on 8-bit levels, on the input's device.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np
import torch
from PIL import Image

from physadv.catalog import CORRUPTION_UNIT, IMAGENET_C, TRANSFORM_DEFAULTS, is_corruption
from physadv.corruptions import CORRUPTIONS, SEVERITIES, check_severity, corrupt_images
from physadv.errors import InputError
from physadv.images import check_images, quantise, to_tensor, to_uint8


def brightness(images: torch.Tensor, offset: float) -> torch.Tensor:
    """Add ``offset`` (0–255 units) to every pixel, then clip to [0, 255]."""
    return quantise((images + offset / 255).clamp(0, 1))


def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiply every pixel by ``factor`` (Kurakin et al.'s contrast change), then clip."""
    if factor < 0:
        raise InputError(f"contrast factor must be ≥ 0, got {factor}")
    return quantise((images * factor).clamp(0, 1))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel ±3σ, reflected borders)."""
    import kornia

    if sigma < 0:
        raise InputError(f"blur sigma must be ≥ 0, got {sigma}")
    if sigma == 0:
        return quantise(images)
    size = 2 * math.ceil(3 * sigma) + 1
    # Replicated borders: reflection needs the kernel to be smaller than the image, which a strong
    # blur of a small image (a 64-px digit) is not.
    return quantise(kornia.filters.gaussian_blur2d(images, (size, size), (sigma, sigma),
                                                   border_type="replicate").clamp(0, 1))


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``sigma`` (0–255 units), then clip.

    ``generator`` must live on the images' device; pass a seeded one for reproducible noise.
    """
    if sigma < 0:
        raise InputError(f"noise sigma must be ≥ 0, got {sigma}")
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return quantise((images + noise * (sigma / 255)).clamp(0, 1))


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Save an ``(H, W, 3)`` uint8 image as a JPEG in memory at ``quality`` and read it back."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer).convert("RGB"))


def jpeg(images: torch.Tensor, quality: float) -> torch.Tensor:
    """Encode each image as a real JPEG at ``quality`` (1–100; Pillow's libjpeg, 4:2:0 chroma as
    phones and webcams save) and decode it."""
    if not 1 <= quality <= 100:
        raise InputError(f"JPEG quality must be in 1..100, got {quality}")
    return to_tensor([jpeg_roundtrip(image, round(quality)) for image in to_uint8(images)], images.device)


@dataclass(frozen=True)
class TransformKind:
    """One kind of transformation: how to apply it and its neutral (identity) strength."""

    name: str
    apply: Callable[..., torch.Tensor]
    unit: str
    neutral: float | None
    default_strengths: tuple[float, ...]
    random: bool = False  # takes a seeded generator


_APPLY = {"brightness": brightness, "contrast": contrast, "blur": gaussian_blur, "noise": gaussian_noise, "jpeg": jpeg}
TRANSFORMS: dict[str, TransformKind] = {
    **{name: TransformKind(name, _APPLY[name], d.unit, d.neutral, d.default_strengths, random=name == "noise")
       for name, d in TRANSFORM_DEFAULTS.items()},
    **{IMAGENET_C + ":" + name: TransformKind(IMAGENET_C + ":" + name, partial(corrupt_images, name=name),
                                              CORRUPTION_UNIT, None, tuple(float(s) for s in SEVERITIES), random=True)
       for name in CORRUPTIONS},
}
"""Kurakin et al.'s five transformations, then the 15 ImageNet-C corruptions as ``imagenet-c:<name>``."""


def expand_transforms(names: list[str]) -> list[str]:
    """``names`` with ``imagenet-c`` replaced by its 15 corruptions (each name once, in order)."""
    expanded = [t for name in names for t in ([k for k in TRANSFORMS if is_corruption(k)] if name == IMAGENET_C
                                              else [name])]
    return list(dict.fromkeys(expanded))


def check_strength(name: str, strength: float) -> None:
    """Raise :class:`InputError` unless ``strength`` is a finite, valid strength of transformation ``name``."""
    kind = transform_kind(name)
    if not math.isfinite(strength):
        raise InputError(f"{name} strength must be a finite number, got {strength}")
    if name == "jpeg" and not 1 <= strength <= 100:
        raise InputError(f"JPEG quality must be in 1..100, got {strength:g}")
    if is_corruption(name):
        check_severity(strength)
    if name in ("contrast", "blur", "noise") and strength < 0:
        raise InputError(f"{name} strength ({kind.unit}) must be ≥ 0, got {strength:g}")


def transform_kind(name: str) -> TransformKind:
    try:
        return TRANSFORMS[name]
    except KeyError:
        choices = [k for k in TRANSFORMS if not is_corruption(k)] + [IMAGENET_C, IMAGENET_C + ":<corruption>"]
        raise InputError(f"unknown transformation {name!r}; choose from {', '.join(choices)} (corruptions: "
                         f"{', '.join(CORRUPTIONS)})") from None


@dataclass(frozen=True)
class ChannelTransform:
    """A named transformation at one strength, e.g. ``ChannelTransform("jpeg", 50)``.

    Call it on a ``(B, 3, H, W)`` batch; ``generator`` seeds the noise (ignored by the others).
    """

    name: str
    strength: float

    def __post_init__(self) -> None:
        check_strength(self.name, self.strength)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_images(images)
        kind = transform_kind(self.name)
        if kind.random:
            return kind.apply(images, self.strength, generator)
        return kind.apply(images, self.strength)
