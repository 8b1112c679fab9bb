"""Classify an image set: the top-5 of every image and, where labels are known, top-1/top-5 accuracy; with a
target class (photos of scenes with a printed adversarial patch), its probability per image and hit rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from physadv.batches import PendingBatch, run_batches
from physadv.classifiers import Classifier
from physadv.datasets import ImageRef, batch_count, batch_slice
from physadv.distributed import SINGLE, Shard
from physadv.errors import InputError
from physadv.images import to_tensor
from physadv.labels import LabelSpace
from physadv.metrics import Predictions, Rate, accuracy


@dataclass(frozen=True)
class TargetHits:
    """A target class over a classification: how many images had it as top-1 (``hits`` of ``n``), and its
    mean probability (``None`` for no images)."""

    index: int
    name: str
    n: int
    hits: int
    mean_probability: float | None

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "n": self.n, "hits": self.hits, "hit_rate": self.hit_rate,
                "mean_probability": self.mean_probability}


@dataclass(frozen=True)
class Classification:
    """The top-5 of every one of ``images``, in order, and the accuracy over those with a label.

    Per image only its top-5 (60 bytes) is kept: :meth:`records` makes the per-image records as they are used.
    """

    model: str
    labels: LabelSpace
    images: Sequence[ImageRef]
    predictions: Predictions
    top1: Rate
    top5: Rate
    target: TargetHits | None = None
    target_probabilities: np.ndarray | None = None  # (N,): the target class's probability per image

    def records(self) -> Iterator[dict[str, Any]]:
        """Per image: ``id``, ``source``, ``label`` and ``label_name`` (``None`` when unknown), its
        ``top5`` as ``{"index", "name", "probability"}`` and, with a target class, ``target_probability``."""
        for k, (image, classes, probabilities) in enumerate(zip(self.images, self.predictions.classes,
                                                                self.predictions.probabilities)):
            yield {"id": image.id, "source": image.source, "label": image.label,
                   "label_name": self.labels.name(image.label) if image.label is not None else None,
                   "top5": [{"index": int(c), "name": self.labels.name(int(c)), "probability": float(p)}
                            for c, p in zip(classes, probabilities)],
                   **({"target_probability": float(self.target_probabilities[k])}
                      if self.target_probabilities is not None else {})}


def classify_images(classifier: Classifier, images: Sequence[ImageRef], *, batch_size: int = 32,
                    shard: Shard = SINGLE, workers: int = 0, progress: bool = True,
                    target: int | None = None) -> Classification | None:
    """Classify ``images`` (read and centre-cropped to the classifier's size) batch by batch.

    Every rank of ``shard``'s group must call this; each classifies its share of the batches.

    Args:
        workers: processes that read and resize images (0: in this process).
        target: a class index (:meth:`~physadv.labels.LabelSpace.target`) whose probability per image and
            hit rate (top-1 = target) the classification also holds.

    Returns:
        the classification on rank 0; ``None`` on the other ranks.

    Raises:
        InputError: no images, or one that cannot be read.
    """
    count = len(images)
    if not count:
        raise InputError("no images to classify")

    def pending() -> list[PendingBatch]:
        return [PendingBatch(n, len(batch_slice(n, count, batch_size))) for n in range(batch_count(count, batch_size))]

    if target is not None and not 0 <= target < len(classifier.labels):
        raise InputError(f"target class {target} is not a class of {classifier.name} ({len(classifier.labels)} classes)")

    def work(_: PendingBatch, pixels: torch.Tensor) -> tuple[Predictions, np.ndarray | None]:
        probabilities = classifier.probabilities(to_tensor(pixels.numpy(), classifier.device), len(pixels))
        # Of the full distribution only the top-5 and the target's column are kept.
        chosen = probabilities[:, target].cpu().numpy() if target is not None else None
        return Predictions.from_probabilities(probabilities), chosen

    def merge(batches: list[tuple[Predictions, np.ndarray | None]]) -> Classification:
        predictions = Predictions.concatenate([p for p, _ in batches])
        labels = np.array([-1 if image.label is None else image.label for image in images])
        labelled = labels >= 0
        subset = predictions.subset(labelled)
        hits, chosen = None, None
        if target is not None:
            chosen = np.concatenate([c for _, c in batches])
            hits = TargetHits(target, classifier.labels.name(target), count, int((predictions.top1 == target).sum()),
                              float(chosen.mean()))
        return Classification(classifier.name, classifier.labels, images, predictions,
                              accuracy(subset, labels[labelled], 1), accuracy(subset, labels[labelled], 5),
                              hits, chosen)

    return run_batches(pending, work, merge, images=images, image_size=classifier.image_size, batch_size=batch_size,
                       shard=shard, workers=workers, progress=progress, share=False, desc="classifying", unit="img")
