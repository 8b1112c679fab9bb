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
from physadv.capture.mesh import PageModel
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


def cell_to_photo(model: PageModel, cell: Cell) -> np.ndarray:
    """``(3, 3)`` source pixel centres of ``cell`` → photo pixels: the page homography on a flat page,
    else the model's homography of the cell's box (exact at its four corners)."""
    return model.box_homography(cell_corners_mm(cell)) @ cell_to_page(cell)


def density(cell_to_photo: np.ndarray, size_px: tuple[int, int]) -> float:
    """Photo pixels per source pixel along the longest projected edge of a cell whose pixel
    centres map to the photo by ``cell_to_photo`` ``(3, 3)``."""
    width, height = size_px
    corners = project(cell_to_photo, np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                                                [-0.5, height - 0.5]]))
    edges = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
    return float(max(edges[0] / width, edges[2] / width, edges[1] / height, edges[3] / height))


def warp_cell(image: np.ndarray, cell_to_photo: np.ndarray, size_px: tuple[int, int]) -> np.ndarray:
    """The photo resampled on a cell's pixel grid: ``cell_to_photo`` maps the centres of the
    ``size_px`` = (w, h) source pixels to photo pixels; area-averaged as in the module docstring."""
    scale = int(min(MAX_OVERSAMPLING, max(1, math.ceil(density(cell_to_photo, size_px) - 1e-6))))
    width, height = size_px
    # Pixel centres at ``scale`` × the source size → source pixel centres: u = (u_k + 0.5) / k − 0.5.
    finer = np.array([[1 / scale, 0, 0.5 / scale - 0.5], [0, 1 / scale, 0.5 / scale - 0.5], [0, 0, 1]])
    warped = cv2.warpPerspective(image, cell_to_photo @ finer, (scale * width, scale * height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    if scale == 1:
        return warped
    return cv2.resize(warped, (width, height), interpolation=cv2.INTER_AREA)


def crop_cell(image: np.ndarray, detection: PageDetection, cell: Cell) -> np.ndarray:
    """The cell rectified at its source size with the page model (:func:`cell_to_photo`).

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8 photo.
        detection: the page the cell is on.
        cell: the manifest cell.

    Returns:
        ``(h, w, C)`` (or ``(h, w)``) uint8 with ``(w, h) = cell.size_px``; photo channel order kept.
    """
    return warp_cell(image, cell_to_photo(detection.page_model, cell), cell.size_px)


def crop_cells(image: np.ndarray, detection: PageDetection, page: Page) -> list[np.ndarray]:
    """:func:`crop_cell` for every cell of ``page``, in manifest order."""
    return [crop_cell(image, detection, cell) for cell in page.cells]
