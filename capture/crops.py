"""Rectify and crop the printed cells of a detected page, each at its source image's size.

Each cell is warped on its own with one combined homography (cell pixels → page mm → photo
pixels), so only the cell's region is ever resampled. Area interpolation: when the cell covers
more photo pixels than its source has, it is first warped bilinearly to an integer multiple ``k``
of the source size (``k`` ≥ the photo's own sampling density, so the bilinear warp loses nothing),
then reduced by ``k`` with :data:`cv2.INTER_AREA` — an exact k×k box filter. When the photo is
coarser than the source (webcams), the cell is warped bilinearly straight to the source size.

Pixel convention: OpenCV's (pixel centres at integer coordinates); cell pixel ``(u, v)`` covers
page millimetres ``x + [u, u + 1] · w / W``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from physadv.capture.detect import PageDetection, project
from physadv.printouts.manifest import Cell, Page

MAX_OVERSAMPLING = 8


def cell_to_page(cell: Cell, scale: int = 1) -> np.ndarray:
    """``(3, 3)`` homography from pixel centres of the cell at ``scale`` × its source size to page mm."""
    x, y, w, h = cell.box_mm
    width, height = cell.size_px
    sx, sy = w / (scale * width), h / (scale * height)
    return np.array([[sx, 0, x + 0.5 * sx], [0, sy, y + 0.5 * sy], [0, 0, 1]])


def cell_corners_mm(cell: Cell) -> np.ndarray:
    """``(4, 2)`` page mm of the cell's outer corners (top-left, top-right, bottom-right, bottom-left)."""
    x, y, w, h = cell.box_mm
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def oversampling(detection: PageDetection, cell: Cell) -> int:
    """Photo pixels per source pixel along the cell's longer projected edge, rounded up (≥ 1)."""
    corners = project(detection.homography, cell_corners_mm(cell))
    edges = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
    density = max(edges[0] / cell.size_px[0], edges[2] / cell.size_px[0],
                  edges[1] / cell.size_px[1], edges[3] / cell.size_px[1])
    return int(min(MAX_OVERSAMPLING, max(1, math.ceil(density - 1e-6))))


def crop_cell(image: np.ndarray, detection: PageDetection, cell: Cell) -> np.ndarray:
    """The cell rectified at its source size.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8 photo.
        detection: the page the cell is on.
        cell: the manifest cell.

    Returns:
        ``(h, w, C)`` (or ``(h, w)``) uint8 with ``(w, h) = cell.size_px``; photo channel order kept.
    """
    scale = oversampling(detection, cell)
    width, height = cell.size_px
    warped = cv2.warpPerspective(image, detection.homography @ cell_to_page(cell, scale),
                                 (scale * width, scale * height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if scale == 1:
        return warped
    return cv2.resize(warped, (width, height), interpolation=cv2.INTER_AREA)


def crop_cells(image: np.ndarray, detection: PageDetection, page: Page) -> list[np.ndarray]:
    """:func:`crop_cell` for every cell of ``page``, in manifest order."""
    return [crop_cell(image, detection, cell) for cell in page.cells]
