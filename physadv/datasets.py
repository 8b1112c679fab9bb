"""Labelled image sets: folders or files of the user's, and the built-in sets ``samples`` and ``digits``.

Labels come from a WordNet id (``n01440764``) or a class name in the file name or its folder's name,
or from an explicit label for the whole set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from physadv.errors import InputError
from physadv.images import as_rgb_uint8, image_files, read_rgb, square_resize
from physadv.labels import LabelSpace

BUILTIN_SETS = ("samples", "digits")

# Real photographs shipped inside installed packages, with their ImageNet class.
_SAMPLES = (
    ("chelsea", "skimage:chelsea", "tiger cat"),
    ("coffee", "skimage:coffee", "espresso"),
    ("camera", "skimage:camera", "tripod"),
    ("rocket", "skimage:rocket", "missile"),
    ("china", "sklearn:china.jpg", "palace"),
    ("grace_hopper", "matplotlib:grace_hopper.jpg", "military uniform"),
)


@dataclass(frozen=True)
class LabelledImage:
    """One image of a set.

    Attributes:
        id: unique within the set, safe as a file stem (outputs are named ``{id}.png``).
        image: ``(H, W, 3)`` uint8 RGB.
        label: class index in the classifier's label space, or ``None`` if unknown.
        source: where it came from (a path, or ``package:name`` for built-ins).
    """

    id: str
    image: np.ndarray
    label: int | None
    source: str


def _sample_pixels(reference: str) -> np.ndarray:
    package, name = reference.split(":", 1)
    if package == "skimage":
        from skimage import data

        return getattr(data, name)()
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    import matplotlib

    return read_rgb(Path(matplotlib.get_data_path()) / "sample_data" / name)


def sample_images(labels: LabelSpace) -> list[LabelledImage]:
    """The labelled photographs bundled with scikit-image, scikit-learn and matplotlib."""
    images = []
    for image_id, reference, class_name in _SAMPLES:
        try:
            label = labels.index(class_name)
        except KeyError:
            label = None
        images.append(LabelledImage(image_id, as_rgb_uint8(_sample_pixels(reference)), label, reference))
    return images


def digit_images(labels: LabelSpace) -> list[LabelledImage]:
    """The held-out split of scikit-learn's digits (the ``digits`` model never trained on it)."""
    from physadv.classifiers.digits import digits_split

    split = digits_split("test")
    images = []
    for number, (image, digit) in enumerate(zip(split.images, split.labels)):
        try:
            label = labels.index(str(int(digit)))
        except KeyError:
            label = None
        images.append(LabelledImage(f"digit{number:04d}_{digit}", image, label, f"sklearn:digits/test/{number}"))
    return images


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def load_image_set(spec: str | Path | Sequence[str | Path], labels: LabelSpace, label: str | None = None,
                   limit: int | None = None) -> list[LabelledImage]:
    """Load images with their labels.

    Args:
        spec: ``"samples"``, ``"digits"``, a folder, a file, or a list of folders and files.
        labels: the classifier's classes, in which labels are resolved.
        label: one class (name, WordNet id or index) for every image, overriding file names.
        limit: keep only the first ``limit`` images (in sorted order).

    Raises:
        InputError: missing or unreadable files, no images, or an unknown ``label``.
    """
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not items:
        raise InputError("no images given")
    forced = None
    if label is not None:
        try:
            forced = labels.index(label)
        except KeyError as error:
            raise InputError(str(error.args[0])) from None
    result: list[LabelledImage] = []
    for item in items:
        if str(item) in BUILTIN_SETS and not Path(item).exists():
            result += sample_images(labels) if str(item) == "samples" else digit_images(labels)
            continue
        files = image_files([item])
        base = Path(item) if Path(item).is_dir() else None
        for path in files:
            stem = os.path.splitext(str(path.relative_to(base)) if base else path.name)[0]
            result.append(LabelledImage(_safe_id(stem), read_rgb(path), labels.label_of_path(path), str(path)))
    if forced is not None:
        result = [LabelledImage(i.id, i.image, forced, i.source) for i in result]
    if limit is not None:
        result = result[:limit]
    seen: dict[str, int] = {}
    unique = []
    for item in result:
        count = seen.get(item.id, 0)
        seen[item.id] = count + 1
        unique.append(item if count == 0 else LabelledImage(f"{item.id}_{count}", item.image, item.label, item.source))
    return unique


def prepare(images: Sequence[LabelledImage], size: int) -> list[LabelledImage]:
    """Centre-crop every image to a square of ``size`` pixels: the images that are attacked, saved and printed."""
    return [LabelledImage(i.id, square_resize(i.image, size), i.label, i.source) for i in images]
