"""Substitute architectures: the built-in ones (:data:`physadv.substitute.ARCHITECTURES`) and the user's
``FILE.py:FACTORY``, built with seeded initial weights."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from physadv.catalog import RANDOM_WEIGHTS
from physadv.classifiers import Classifier, Normalise, load_classifier
from physadv.fileio import file_sha256
from physadv.errors import InputError
from physadv.labels import LabelSpace
from physadv.substitute import ARCHITECTURES, default_architecture, is_file_architecture


def _cnn32(classes: int) -> nn.Module:
    # Papernot et al.'s MNIST substitutes: two conv layers, then two dense layers of 200 units (cleverhans'
    # tutorial keeps the dense pair). Strided convolutions stand in for conv + max-pooling (Springenberg et
    # al. 2015's all-convolutional net): 3.6x faster to train on a CPU (measured, batch 128 at 32 px). No batch
    # norm or dropout, so training and attacking see one function.
    return nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64 * 8 * 8, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                         nn.Linear(200, classes))


def _cnn112(classes: int) -> nn.Module:
    # ImageNet-size inputs at 112 px: four strided conv layers (112 → 7 px), global average pooling and one
    # dense layer: 0.39 M parameters + 257 per class, small enough to learn from a few thousand labels.
    return nn.Sequential(nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(128, 256, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, classes))


BUILDERS: dict[str, tuple[int, Callable[[int], nn.Module]]] = {"cnn32": (32, _cnn32), "cnn112": (112, _cnn112)}
"""Name → (input side in pixels, ``classes → module`` taking [-1, 1] inputs): the built-ins of
:data:`physadv.substitute.ARCHITECTURES`."""


@dataclass(frozen=True)
class ArchitectureRef:
    """A substitute's architecture as a record names it: a built-in name, or a ``FILE.py:FACTORY`` the user
    named on the command line with the SHA-256 of that file. A loader compares that hash with the file the
    user names then; physadv never imports a file because a record names it."""

    name: str
    file_sha256: str | None = None

    @classmethod
    def choose(cls, name: str, image_size: int) -> "ArchitectureRef":
        """The user's ``--architecture`` (``auto``: by the oracle's image size)."""
        if name == "auto":
            return cls(default_architecture(image_size))
        if name in ARCHITECTURES:
            return cls(name)
        if is_file_architecture(name):
            path = Path(name.rpartition(":")[0]).expanduser()
            if not path.is_file():
                raise InputError(f"--architecture {name}: {path} does not exist")
            return cls(name, file_sha256(path))
        raise InputError(f"--architecture {name!r}: choose auto, {', '.join(ARCHITECTURES)} or FILE.py:FACTORY")


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global RNG (weight initialisation, dropout) seeded inside, and as it was outside."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed % 2**64)
        yield


def build_substitute(architecture: ArchitectureRef, labels: LabelSpace, image_size: int, seed: int,
                     device: torch.device | str = "cpu", name: str = "substitute") -> Classifier:
    """A freshly initialised substitute (the same weights for the same seed) shown ``image_size`` images.

    Raises:
        InputError: a user architecture whose file is not the recorded one, or that does not have one
            output per class.
    """
    device = torch.device(device)
    with seeded(seed, device):
        if architecture.name in BUILDERS:
            side, build = BUILDERS[architecture.name]
            classifier = Classifier(build(len(labels)), name=name, labels=labels, input_size=(side, side),
                                    preprocess=Normalise((0.5,) * 3, (0.5,) * 3), image_size=image_size)
        else:
            path = Path(architecture.name.rpartition(":")[0]).expanduser()
            if architecture.file_sha256 is not None and (not path.is_file()
                                                          or file_sha256(path) != architecture.file_sha256):
                raise InputError(f"{architecture.name}: not the file the substitute was trained with (its "
                                 "SHA-256 differs)")
            classifier = load_classifier(architecture.name, weights=RANDOM_WEIGHTS)
            if classifier.num_classes != len(labels):
                raise InputError(f"--architecture {architecture.name}: it has {classifier.num_classes} outputs, "
                                 f"the oracle {len(labels)} classes")
            classifier.name, classifier.labels, classifier.image_size = name, labels, image_size
    return classifier.to(device)
