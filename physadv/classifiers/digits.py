"""A small CNN on scikit-learn's bundled handwritten digits: the fast real classifier for CI.

The 8×8 digits are drawn dark on white (as they would be printed) and upsampled to
:data:`DIGIT_SIZE` pixels. The held-out quarter of the data (stratified, fixed seed) is never
trained on; it is the built-in image set ``digits``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from physadv.classifiers.wrapper import Classifier, Normalise
from physadv.fileio import atomic_write_bytes, cache_dir
from physadv.labels import label_space

DIGIT_SIZE = 64
MODEL_INPUT = 32
WEIGHTS_NAME = "digits-cnn-v1.pt"
TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class DigitsSplit:
    """uint8 images ``(N, DIGIT_SIZE, DIGIT_SIZE, 3)`` and labels ``(N,)`` of one split."""

    images: np.ndarray
    labels: np.ndarray


def digits_split(part: str) -> DigitsSplit:
    """The ``"train"`` or ``"test"`` split of ``load_digits()`` as printable RGB images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    train_idx, test_idx = train_test_split(np.arange(len(data.target)), test_size=TEST_FRACTION,
                                           stratify=data.target, random_state=SPLIT_SEED)
    indices = {"train": train_idx, "test": test_idx}[part]
    ink = (255 - data.images[indices] * (255 / 16)).round().astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(d).resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BILINEAR))
                       for d in ink])
    return DigitsSplit(np.repeat(images[..., None], 3, axis=3), data.target[indices].astype(np.int64))


class DigitsCNN(nn.Module):
    """Three conv blocks on the grey level of a ``(B, 3, 32, 32)`` input, normalised to [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 32), block(32, 64), block(64, 128))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(128 * 4 * 4, 10))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images.mean(dim=1, keepdim=True)))


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random affine jitter and brightness/contrast changes, so the model is not brittle to a photo."""
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.4
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    warped = F.grid_sample(batch - 1, grid, align_corners=False, padding_mode="zeros") + 1
    contrast = 0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=generator)
    offset = (torch.rand(n, 1, 1, 1, generator=generator) - 0.5) * 0.2
    return ((warped - 0.5) * contrast + 0.5 + offset).clamp(0, 1)


def build_digits_classifier(model: nn.Module | None = None, weights: str = "") -> Classifier:
    return Classifier(model if model is not None else DigitsCNN(), name="digits",
                      labels=label_space([str(d) for d in range(10)]), input_size=(MODEL_INPUT, MODEL_INPUT),
                      preprocess=Normalise((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), weights=weights,
                      image_size=DIGIT_SIZE)


def train_digits(path: Path | None = None, epochs: int = 30, seed: int = 0, progress: bool = True) -> tuple[Path, float]:
    """Train :class:`DigitsCNN` on the training split, save it atomically, return (path, held-out accuracy)."""
    from tqdm.auto import tqdm

    path = path or cache_dir() / WEIGHTS_NAME
    # Weight initialisation and dropout draw from torch's global RNG: seed it inside a fork, so training is
    # the same for a seed (the cached checkpoint stays valid) and the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        train, test = digits_split("train"), digits_split("test")
        x = torch.from_numpy(train.images).permute(0, 3, 1, 2).float().div(255)
        x = F.interpolate(x, size=(MODEL_INPUT, MODEL_INPUT), mode="bilinear", antialias=True, align_corners=False)
        y = torch.from_numpy(train.labels)
        net = DigitsCNN()
        classifier = build_digits_classifier(net)
        optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        steps_per_epoch = (len(x) + 63) // 64
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
        for _ in tqdm(range(epochs), desc="training digits CNN", unit="epoch", disable=not progress):
            net.train()
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                batch = order[start:start + 64]
                logits = net(classifier.preprocess(_augment(x[batch], generator)))
                loss = F.cross_entropy(logits, y[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
    net.eval()
    probabilities = classifier.probabilities(torch.from_numpy(test.images).permute(0, 3, 1, 2).float().div(255))
    accuracy = (probabilities.argmax(-1).numpy() == test.labels).mean().item()
    buffer = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "held_out_accuracy": accuracy, "seed": seed}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path, accuracy
