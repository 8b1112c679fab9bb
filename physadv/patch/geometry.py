"""Where a patch goes in an image, and the image with the patch in it (the functional core).

A placement is the patch's four corners in image pixels: a square of the side that gives it the
asked-for area, rotated about its centre and, optionally, with each corner moved at random (a
perspective view). Compositing warps the patch onto those corners with one homography per image
(:func:`kornia.geometry.transform.warp_perspective`, bilinear) and lays it over the image with its
alpha mask (premultiplied, so its anti-aliased edge blends instead of darkening). Everything is
differentiable with respect to the patch.

Coordinates: image pixel ``(i, j)`` covers ``[j, j + 1] × [i, i + 1]`` in ``(x, y)``, so a corner
``(0, 0)`` is the image's top-left edge, not the first pixel's centre.

Shape:
    - Patch: :math:`(3, P, P)`, float RGB in [0, 1]; its mask :math:`(1, P, P)` in [0, 1].
    - Images: :math:`(B, 3, H, W)`, float RGB in [0, 1].
    - Corners: :math:`(B, 4, 2)` ``(x, y)`` image pixels, in the order top-left, top-right,
      bottom-right, bottom-left of the patch.
"""

from __future__ import annotations

from typing import Literal

import torch
from kornia.geometry.transform import get_perspective_transform, warp_perspective

Shape = Literal["square", "circle"]
SHAPES: tuple[Shape, ...] = ("square", "circle")

MASK_SUPERSAMPLING = 8
"""Sub-pixels per side when a shape's mask is drawn: its edge pixels get their covered fraction (to
1/64), so a circle's area and its printed outline do not depend on the patch's resolution."""


def shape_mask(shape: Shape, size: int) -> torch.Tensor:
    """The alpha mask of a ``size`` × ``size`` patch of ``shape``: :math:`(1, P, P)` in [0, 1]; a circle
    touches the patch's sides and its edge pixels hold the fraction of them it covers."""
    if shape == "square":
        return torch.ones(1, size, size)
    if shape != "circle":
        raise ValueError(f"unknown patch shape {shape!r}")
    fine = size * MASK_SUPERSAMPLING
    centres = (torch.arange(fine, dtype=torch.float64) + 0.5) / fine * 2 - 1
    inside = (centres[None, :] ** 2 + centres[:, None] ** 2 <= 1).double()
    return inside.view(size, MASK_SUPERSAMPLING, size, MASK_SUPERSAMPLING).mean(dim=(1, 3)).float()[None]


def side_for_area(area: torch.Tensor, image_size: tuple[int, int], mask_fraction: float) -> torch.Tensor:
    """The side (pixels) of a patch whose shape covers ``area`` (fraction of the image) when its mask
    covers ``mask_fraction`` of its square (1 for a square, π/4 for a circle)."""
    height, width = image_size
    return torch.sqrt(area * height * width / mask_fraction)


def _rotate(points: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    radians = torch.deg2rad(degrees)[:, None]
    cos, sin = torch.cos(radians), torch.sin(radians)
    x, y = points[..., 0], points[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)


def corners_of(centre: torch.Tensor, side: torch.Tensor, angle: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Corners :math:`(B, 4, 2)` of squares of ``side`` (B,) px centred at ``centre`` (B, 2), rotated by
    ``angle`` (B,) degrees (clockwise on the screen: y points down), each corner first moved by
    ``jitter`` (B, 4, 2) times the half side."""
    unit = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=centre.dtype,
                        device=centre.device)
    half = (side / 2)[:, None, None]
    return centre[:, None, :] + _rotate((unit + jitter) * half, angle)


def sample_corners(n: int, image_size: tuple[int, int], area: tuple[float, float], rotation: float,
                   perspective: float, mask_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` random placements :math:`(n, 4, 2)`: area uniform in ``area`` (fractions of the image
    covered by the shape), rotation uniform in ±``rotation`` degrees, each corner moved by up to
    ``perspective`` half sides in x and y, and the centre uniform over the positions where the rotated
    square stays inside the image (the image centre when it cannot).

    Draws from ``generator`` only (CPU), in a fixed order, so a seed gives the same placements anywhere.
    """
    height, width = image_size
    uniform = torch.rand(n, 6 + 8, generator=generator, dtype=torch.float64)
    areas = area[0] + (area[1] - area[0]) * uniform[:, 0]
    side = side_for_area(areas, image_size, mask_fraction)
    angle = (2 * uniform[:, 1] - 1) * rotation
    jitter = (2 * uniform[:, 6:].view(n, 4, 2) - 1) * perspective
    radians = torch.deg2rad(angle)
    reach = side / 2 * (torch.cos(radians).abs() + torch.sin(radians).abs()) * (1 + perspective)
    centre = torch.stack([_centre_in(uniform[:, 2], reach, width), _centre_in(uniform[:, 3], reach, height)], dim=1)
    return corners_of(centre, side, angle, jitter).float()


def _centre_in(u: torch.Tensor, reach: torch.Tensor, length: int) -> torch.Tensor:
    low = reach.clamp(max=length / 2)
    return low + u * (length - 2 * low)


def homographies(corners: torch.Tensor, patch_size: int) -> torch.Tensor:
    """:math:`(B, 3, 3)` maps from patch pixel centres to image pixel centres that put the patch's
    outer edges on ``corners`` (kornia's ``align_corners=True`` convention: centres at integers)."""
    edge = torch.tensor([[-0.5, -0.5], [patch_size - 0.5, -0.5], [patch_size - 0.5, patch_size - 0.5],
                         [-0.5, patch_size - 0.5]], dtype=torch.float64, device=corners.device)
    source = edge.expand(corners.shape[0], 4, 2)
    return get_perspective_transform(source, corners.double() - 0.5).float()


def composite(images: torch.Tensor, patch: torch.Tensor, mask: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """``images`` with ``patch`` (alpha ``mask``) laid over each at its ``corners``: :math:`(B, 3, H, W)`.

    Differentiable with respect to ``patch`` (and ``images``); the result stays in [0, 1].
    """
    batch, _, height, width = images.shape
    matrices = homographies(corners.to(images.device), patch.shape[-1])
    layers = torch.cat([patch * mask, mask], dim=0).to(images.dtype)[None].expand(batch, -1, -1, -1)
    warped = warp_perspective(layers, matrices, (height, width), mode="bilinear", padding_mode="zeros",
                              align_corners=True)
    colour, alpha = warped[:, :3], warped[:, 3:]
    return (images * (1 - alpha) + colour).clamp(0, 1)


def mask_fraction(mask: torch.Tensor) -> float:
    """The fraction of its square a patch's mask covers (1 for a square, about π/4 for a circle)."""
    return float(mask.mean())
