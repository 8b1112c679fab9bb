"""Class labels: ImageNet index ↔ WordNet id ↔ name, and labels read from file names.

A :class:`LabelSpace` is the ordered list of a classifier's classes. ImageNet classifiers share
:func:`imagenet_labels` (the torchvision order, i.e. sorted WordNet ids); other classifiers carry
their own names (``digits`` uses ``"0"`` … ``"9"``).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

from physadv.errors import InputError

WNID_PATTERN = re.compile(r"(?<![a-z0-9])n\d{8}(?![0-9])")


def normalise_name(name: str) -> str:
    """Canonical form of a class name for matching: lower case, ``_``/``-``/spaces folded to one space."""
    return " ".join(re.split(r"[\s_\-]+", name.strip().lower())).strip()


@dataclass(frozen=True)
class LabelSpace:
    """The ordered classes of a classifier.

    Args:
        names: human-readable class names, index ``i`` is class ``i``.
        wnids: WordNet ids in the same order (ImageNet only), or empty.
    """

    names: tuple[str, ...]
    wnids: tuple[str, ...] = ()
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)
    _by_wnid: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.wnids and len(self.wnids) != len(self.names):
            raise ValueError("wnids and names must have the same length")
        by_name: dict[str, int] = {}
        for index, name in enumerate(self.names):
            by_name.setdefault(normalise_name(name), index)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_wnid", {w: i for i, w in enumerate(self.wnids)})

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]

    def wnid(self, index: int) -> str | None:
        return self.wnids[index] if self.wnids else None

    def target(self, label: str | None) -> int | None:
        """The class index of a target class a user named (``--target``): :meth:`index`, or ``None`` for none.

        Raises:
            InputError: ``label`` is not a class of this space (one line, naming it).
        """
        if label is None:
            return None
        try:
            return self.index(label)
        except KeyError as error:
            raise InputError(str(error.args[0])) from None

    def index(self, label: str | int) -> int:
        """Class index of ``label``: an index, a WordNet id or a class name (any case, ``_`` or spaces).

        Raises:
            KeyError: with a message naming the label when it is not a class of this space.
        """
        if not isinstance(label, str):
            return self._checked_index(int(label))
        text = label.strip()
        if re.fullmatch(r"[+-]?\d+", text):  # an index: "-1" must not be read as the class named "1"
            return self._checked_index(int(text))
        if text in self._by_wnid:
            return self._by_wnid[text]
        key = normalise_name(text)
        if key in self._by_name:
            return self._by_name[key]
        raise KeyError(f"unknown class {label!r}: not a class index, WordNet id or class name of this model")

    def _checked_index(self, index: int) -> int:
        if not 0 <= index < len(self.names):
            raise KeyError(f"class index {index} is out of range 0..{len(self.names) - 1}")
        return index

    def find_in_text(self, text: str) -> int | None:
        """Class named in a file or folder name: a WordNet id anywhere in it, else the whole name
        (after dropping a leading ``NNN_``/``nNNNNNNNN_`` and trailing ``_NNN`` counters)."""
        match = WNID_PATTERN.search(text)
        if match and match.group(0) in self._by_wnid:
            return self._by_wnid[match.group(0)]
        stem = re.sub(r"^\d+[_\-\s]+", "", text)
        stem = re.sub(r"[_\-\s]+\d+$", "", stem)
        for candidate in (text, stem):
            key = normalise_name(candidate)
            if key in self._by_name:
                return self._by_name[key]
        return None

    def label_of_path(self, path: Path) -> int | None:
        """Class named by a file's stem or, failing that, by its parent folder."""
        for text in (path.stem, path.parent.name):
            index = self.find_in_text(text)
            if index is not None:
                return index
        return None


@lru_cache(maxsize=1)
def imagenet_labels() -> LabelSpace:
    """The 1000 ImageNet-1k classes in torchvision order (sorted WordNet ids)."""
    text = resources.files("physadv.data").joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    return LabelSpace(names=tuple(r["name"] for r in rows), wnids=tuple(r["wnid"] for r in rows))


def label_space(names: Sequence[str]) -> LabelSpace:
    return LabelSpace(names=tuple(names))
