"""Labelled image sets: folders, files and CSV lists of the user's, and the built-in sets ``samples`` and ``digits``.

Labels come from a WordNet id (``n01440764``) or a class name in the file name or its folder's name
(so ImageNet's ``val/<wnid>/*.JPEG`` trees and flat folders named by WordNet id both work), from the
``label`` column of a CSV list ``path,label``, or from an explicit label for the whole set.

A set is first *indexed* (:func:`index_image_set`: ids, labels and sources, no pixels) and then read
lazily, batch by batch, through :func:`image_batches` (a ``torch.utils.data`` pipeline whose worker
processes decode and resize), so memory does not grow with the number of images.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from functools import lru_cache
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from physadv.errors import InputError
from physadv.images import as_rgb_uint8, image_files, read_rgb, square_resize
from physadv.labels import LabelSpace
from physadv.validation import CONTROL_CHARACTERS

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


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image of a set, before its pixels are read.

    Attributes:
        id: unique within the set, safe as a file stem (outputs are named ``{id}.png``).
        label: class index in the classifier's label space, or ``None`` if unknown.
        source: where it came from (a path, or ``package:name`` for built-ins).
        path: the file to read, or ``None`` for a built-in image.
    """

    id: str
    label: int | None
    source: str
    path: Path | None = None


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


_DIGITS_SOURCE = "sklearn:digits/test/"


@lru_cache(maxsize=1)
def _digits_test():  # one copy per process (DataLoader workers included)
    from physadv.classifiers.digits import digits_split

    return digits_split("test")


def _class_or_none(labels: LabelSpace, name: str) -> int | None:
    try:
        return labels.index(name)
    except KeyError:
        return None


def sample_images(labels: LabelSpace) -> list[ImageRef]:
    """The labelled photographs bundled with scikit-image, scikit-learn and matplotlib."""
    return [ImageRef(image_id, _class_or_none(labels, class_name), reference)
            for image_id, reference, class_name in _SAMPLES]


def digit_images(labels: LabelSpace) -> list[ImageRef]:
    """The held-out split of scikit-learn's digits (the ``digits`` model never trained on it)."""
    return [ImageRef(f"digit{number:04d}_{digit}", _class_or_none(labels, str(int(digit))), f"{_DIGITS_SOURCE}{number}")
            for number, digit in enumerate(_digits_test().labels)]


def read_image(ref: ImageRef) -> np.ndarray:
    """The pixels of ``ref`` as ``(H, W, 3)`` uint8 RGB.

    Raises:
        InputError: the file is missing, unreadable or not an image.
    """
    if ref.path is not None:
        return read_rgb(ref.path)
    if ref.source.startswith(_DIGITS_SOURCE):
        return _digits_test().images[int(ref.source[len(_DIGITS_SOURCE):])]
    return as_rgb_uint8(_sample_pixels(ref.source))


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


MAX_LIST_ROWS = 10_000_000
MAX_LIST_FIELD = 4096


def read_image_list(path: Path, labels: LabelSpace) -> list[ImageRef]:
    """The images of a CSV list with rows ``path,label`` (an optional header ``path,label`` first).

    Paths are relative to the list's folder (or absolute: a list only says what to read) and must name
    existing files; an empty label means "from the file or folder name". Every row is checked before
    anything is read. A byte-order mark, as spreadsheet programs write, is skipped.

    Raises:
        InputError: naming the first bad row (a missing file, a label that names no class, a
            malformed row) and how many more there are.
    """
    base = path.parent
    refs: list[ImageRef] = []
    first_error: tuple[int, str] | None = None
    bad_rows = 0

    def bad(line: int, message: str) -> None:
        nonlocal first_error, bad_rows
        first_error = first_error or (line, message)
        bad_rows += 1

    try:
        with open(path, newline="", encoding="utf-8-sig") as stream:
            for line, row in enumerate(csv.reader(stream), 1):
                if line > MAX_LIST_ROWS:
                    raise InputError(f"{path}: more than {MAX_LIST_ROWS:,} rows")
                if not row or (line == 1 and [c.strip().lower() for c in row] == ["path", "label"]):
                    continue
                if len(row) not in (1, 2) or any(len(cell) > MAX_LIST_FIELD for cell in row):
                    bad(line, f"expected `path,label`, got {len(row)} field(s)")
                    continue
                relative, label_text = row[0].strip(), (row[1].strip() if len(row) == 2 else "")
                file = base / relative
                if not relative or not file.is_file():
                    bad(line, f"{relative or '(empty path)'}: no such file (paths are relative to the list)")
                    continue
                if label_text:
                    try:
                        label = labels.index(label_text)
                    except KeyError as error:
                        bad(line, str(error.args[0]))
                        continue
                else:
                    label = labels.label_of_path(file)
                refs.append(ImageRef(_safe_id(os.path.splitext(relative)[0]), label, str(file), file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: not a readable CSV list ({error})") from None
    if first_error is not None:
        line, message = first_error
        raise InputError(f"{path} line {line}: {message}"
                         + (f" (and {bad_rows - 1} more bad row(s))" if bad_rows > 1 else ""))
    if not refs:
        raise InputError(f"{path}: the list names no images")
    return refs


def sources_digest(sources: Iterable[str]) -> str:
    """``sha256:`` and the SHA-256 of the images' sources in order (each UTF-8, NUL-terminated): what a
    results file records to recognise its image set, instead of every path."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.encode("utf-8", "surrogatepass") + b"\0")
    return f"sha256:{digest.hexdigest()}"


def _index_item(item: str | Path, labels: LabelSpace) -> list[ImageRef]:
    if str(item) in BUILTIN_SETS and not Path(item).exists():
        return sample_images(labels) if str(item) == "samples" else digit_images(labels)
    path = Path(item)
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_image_list(path, labels)
    base = path if path.is_dir() else None
    return [ImageRef(_safe_id(os.path.splitext(str(file.relative_to(base)) if base else file.name)[0]),
                     labels.label_of_path(file), str(file), file)
            for file in image_files([item])]


def index_image_set(spec: str | Path | Sequence[str | Path], labels: LabelSpace, label: str | None = None,
                    limit: int | None = None) -> list[ImageRef]:
    """The images of a set with their labels, without reading any pixels.

    Args:
        spec: ``"samples"``, ``"digits"``, a folder, a file, a CSV list (``*.csv``, rows ``path,label``),
            or a list of these.
        labels: the classifier's classes, in which labels are resolved.
        label: one class (name, WordNet id or index) for every image, overriding file names.
        limit: keep only the first ``limit`` images (in sorted order).

    Raises:
        InputError: missing files, a bad CSV list, no images, or an unknown ``label``.
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
    refs = [ref for item in items for ref in _index_item(item, labels)]
    odd = next((ref.source for ref in refs if CONTROL_CHARACTERS.search(ref.source)), None)
    if odd is not None:
        # Its path goes into attack records and manifests, whose readers refuse control characters.
        raise InputError(f"{odd!r}: a file name with a control character (a tab, a newline…); rename it")
    if forced is not None:
        refs = [ImageRef(r.id, forced, r.source, r.path) for r in refs]
    if limit is not None:
        refs = refs[:limit]
    seen: dict[str, int] = {}
    unique = []
    for ref in refs:
        count = seen.get(ref.id, 0)
        seen[ref.id] = count + 1
        unique.append(ref if count == 0 else ImageRef(f"{ref.id}_{count}", ref.label, ref.source, ref.path))
    return unique


def load_image_set(spec: str | Path | Sequence[str | Path], labels: LabelSpace, label: str | None = None,
                   limit: int | None = None) -> list[LabelledImage]:
    """:func:`index_image_set` with every image read into memory: for small sets only (tests, demos);
    large ones go through :func:`image_batches`."""
    return [LabelledImage(r.id, read_image(r), r.label, r.source)
            for r in index_image_set(spec, labels, label, limit)]


def prepare(images: Sequence[LabelledImage], size: int) -> list[LabelledImage]:
    """Centre-crop every image to a square of ``size`` pixels: the images that are attacked, saved and printed."""
    return [LabelledImage(i.id, square_resize(i.image, size), i.label, i.source) for i in images]


def default_workers() -> int:
    """Decoding processes per physadv process: up to 4, sharing this machine's cores between the
    processes ``torchrun`` started on it."""
    per_process = (os.cpu_count() or 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(4, per_process))


class PreparedImages(Dataset):
    """``refs`` read and centre-cropped to ``size``×``size`` on demand; item ``i`` is
    ``(i, (size, size, 3) uint8 pixels or None, error message)``."""

    def __init__(self, refs: Sequence[ImageRef], size: int) -> None:
        self.refs, self.size = refs, size

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            return index, square_resize(read_image(self.refs[index]), self.size), ""
        except InputError as error:  # carried to the main process as one line, not a worker traceback
            return index, None, str(error)


def _stack(items: list[tuple[int, np.ndarray | None, str]]) -> tuple[list[int], torch.Tensor | str]:
    indices = [index for index, _, _ in items]
    errors = [message for _, _, message in items if message]
    if errors:
        return indices, errors[0]
    return indices, torch.from_numpy(np.stack([pixels for _, pixels, _ in items]))


def batch_count(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def batch_slice(number: int, count: int, batch_size: int) -> range:
    """Indices of batch ``number`` of a set of ``count`` images: batches are fixed by the batch size
    alone, so a batch holds the same images however the work is split or resumed."""
    return range(number * batch_size, min((number + 1) * batch_size, count))


def image_batches(refs: Sequence[ImageRef], size: int, batch_size: int, numbers: Sequence[int],
                  workers: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """Read batches ``numbers`` of ``refs`` (see :func:`batch_slice`) in ``workers`` processes.

    Yields:
        ``(batch number, (B, size, size, 3) uint8 tensor)``, in the order of ``numbers``.

    Raises:
        InputError: an image that cannot be read.
    """
    # The batches' indices are made as the loader asks for them, not listed for the whole set up front.
    loader = DataLoader(PreparedImages(refs, size), batch_sampler=(list(batch_slice(n, len(refs), batch_size))
                                                                    for n in numbers),
                        num_workers=min(workers, len(numbers)), collate_fn=_stack)  # idle workers cost memory
    for number, (_, pixels) in zip(numbers, loader):
        if isinstance(pixels, str):
            raise InputError(pixels)
        yield number, pixels
