"""The oracle of a substitute attack: a classifier seen through its labels alone, and counted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from physadv.classifiers import Classifier
from physadv.fileio import file_sha256
from physadv.labels import LabelSpace

ORACLE_BATCH = 64
"""Images per call of the oracle: a labelling API's batch, and bounded memory locally."""


def labels_sha256(labels: LabelSpace) -> str:
    """The identity of a label space: SHA-256 of its class names, one per line, in logit order."""
    return hashlib.sha256("\n".join(labels.names).encode("utf-8")).hexdigest()


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as floats in [0, 1]; float images as they are."""
    return images.float().div(255) if images.dtype == torch.uint8 else images


@dataclass(frozen=True)
class OracleIdentity:
    """What names an oracle in a record: compared, never loaded.

    Attributes:
        spec: the ``--oracle`` as the user typed it (for people; not compared).
        name: the classifier's name (``digits``, ``timm:resnet18``, ``model.py:factory``).
        weights_sha256: SHA-256 of its weights file, ``None`` when it has none (random, or set in code).
        labels_sha256: :func:`labels_sha256` of its classes.
        classes: how many classes it has.
        image_size: the side of the square images it is shown, in pixels.
    """

    spec: str
    name: str
    weights_sha256: str | None
    labels_sha256: str
    classes: int
    image_size: int

    @classmethod
    def of(cls, classifier: Classifier, spec: str | None = None) -> "OracleIdentity":
        weights = classifier.weights
        digest = file_sha256(weights) if weights and Path(weights).is_file() else None
        return cls(spec or classifier.name, classifier.name, digest, labels_sha256(classifier.labels),
                   classifier.num_classes, classifier.image_size)

    def same_model(self, other: "OracleIdentity") -> bool:
        """Whether ``other`` names the same model (whatever either spec says)."""
        return (self.name, self.weights_sha256, self.labels_sha256, self.classes, self.image_size) == (
            other.name, other.weights_sha256, other.labels_sha256, other.classes, other.image_size)

    def describe(self) -> str:
        weights = f" (weights sha256 {self.weights_sha256[:12]}…)" if self.weights_sha256 else ""
        return f"{self.name}{weights}"


class LabelOracle:
    """A classifier as Papernot et al.'s black box: shown a batch of images, it answers each one's label
    (the argmax) and nothing else, and counts every image it has labelled (:attr:`queries`).

    The substitute trainer takes this type, never a :class:`Classifier`: scores, probabilities and
    gradients do not leave it. What it does expose is what an attacker of a labelling API knows: its
    class names (:attr:`labels`) and the size of the images it takes (:attr:`image_size`).

    Shape:
        - Input: :math:`(B, 3, H, W)` uint8, or float in [0, 1].
        - Output: :math:`(B,)` int64 labels, on the CPU.
    """

    __slots__ = ("_answer", "_queries", "identity", "labels")

    def __init__(self, classifier: Classifier, spec: str | None = None) -> None:
        device = classifier.device

        @torch.no_grad()
        def answer(images: torch.Tensor) -> torch.Tensor:
            return torch.cat([classifier(as_float(images[i:i + ORACLE_BATCH].to(device))).argmax(-1).cpu()
                              for i in range(0, len(images), ORACLE_BATCH)])

        self._answer = answer  # the classifier lives in this closure only, not in an attribute
        self._queries = 0
        self.identity = OracleIdentity.of(classifier, spec)
        self.labels = classifier.labels

    @property
    def image_size(self) -> int:
        return self.identity.image_size

    @property
    def queries(self) -> int:
        """Images labelled so far (each one counts one query)."""
        return self._queries

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if len(images) == 0:
            return torch.empty(0, dtype=torch.long)
        labels = self._answer(images)
        self._queries += len(images)
        return labels
