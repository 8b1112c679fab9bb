"""Defences of the adversarial-examples literature, trained on any classifier, any device.

Each defence fine-tunes the wrapped model of a :class:`~physadv.classifiers.Classifier` in place
(starting from its current weights) on labelled images in [0, 1]; :func:`save_checkpoint` writes a
checkpoint that ``load_classifier(name, weights=PATH)`` (``--model NAME --weights PATH``) loads.

- ``fgsm-rs``: FGSM with a random start (Wong, Rice & Kolter 2020, "Fast is better than free"):
  ``δ ~ U(−ε, ε)``, one signed-gradient step of ``α = 1.25 ε``, projected back on the ε-ball.
- ``pgd``: Madry et al. 2018's min-max training on projected gradient descent from a random start,
  ``steps`` steps of ``α = 2.5 ε / steps`` (their step-size rule).
- ``eot``: adversarial training under a channel: FGSM-RS crafted *through* a random transformation
  ``t`` drawn per image from a :class:`~physadv.eot.TransformDistribution`, and training on ``t(x + δ)``
  (any distribution: a built-in name such as ``photo``, kornia modules, or a calibrated profile).
- ``distill``: defensive distillation (Papernot et al. 2016): a teacher is trained at temperature
  ``T`` (softmax of logits / T) on the labels, then the student (initialised from the teacher) at
  ``T`` on the teacher's soft labels; it is deployed at T = 1. Known to mask gradients (Carlini &
  Wagner 2016): it is the case the gradient-masking check of ``compare-models`` exists for.
- ``gradreg``: input-gradient regularisation (Ross & Doshi-Velez 2018): cross-entropy plus
  ``λ · mean_i ‖∇_x J(x_i, y_i)‖²`` (double backpropagation; ``x`` in [0, 1] units).

ε is in 0–255 pixel units, as everywhere in physadv.
"""

from __future__ import annotations

import copy
import io
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from physadv.catalog import DEFENCE_DEFAULTS, DEFENCES
from physadv.classifiers import Classifier
from physadv.classifiers.wrapper import NonFiniteLogitsError, input_gradient
from physadv.datasets import load_image_set, prepare
from physadv.eot import DistributionSpec, TransformDistribution, derive_seed, distribution
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes
from physadv.images import check_images, to_tensor



@dataclass(frozen=True)
class DefenceConfig:
    """How to train one defence.

    Attributes:
        defence: one of :data:`DEFENCES`.
        eps: training ε in 0–255 pixel units (fgsm-rs, pgd, eot).
        epochs, batch_size, lr: the fine-tuning schedule (AdamW, cosine-annealed learning rate).
        steps: PGD steps per batch (pgd).
        temperature: distillation temperature T (distill); Papernot et al. used 100 on MNIST.
        gradreg_weight: λ of the input-gradient penalty (gradreg).
        distribution: the channel of ``eot`` (a :data:`physadv.eot.DISTRIBUTIONS` name, kornia modules
            or a :class:`~physadv.eot.TransformDistribution`).
        seed: seeds shuffling, random starts and transformations (explicit generators only).
    """

    defence: str
    eps: float = DEFENCE_DEFAULTS["eps"]
    epochs: int = DEFENCE_DEFAULTS["epochs"]
    batch_size: int = DEFENCE_DEFAULTS["batch_size"]
    lr: float = DEFENCE_DEFAULTS["lr"]
    steps: int = DEFENCE_DEFAULTS["steps"]
    temperature: float = DEFENCE_DEFAULTS["temperature"]
    gradreg_weight: float = DEFENCE_DEFAULTS["gradreg_weight"]
    distribution: DistributionSpec = field(default="photo", compare=False)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.defence not in DEFENCES:
            raise InputError(f"unknown defence {self.defence!r}; choose one of {', '.join(DEFENCES)}")
        checks = (("eps", 0 < self.eps <= 255, "a number in (0, 255] (0-255 pixel units)"),
                  ("epochs", self.epochs >= 1, "a whole number ≥ 1"),
                  ("batch_size", self.batch_size >= 1, "a whole number ≥ 1"),
                  ("lr", 0 < self.lr < 1, "in (0, 1)"),
                  ("steps", self.steps >= 1, "a whole number ≥ 1"),
                  ("temperature", self.temperature >= 1, "≥ 1"),
                  ("gradreg_weight", self.gradreg_weight >= 0, "≥ 0"))
        for name, ok, what in checks:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and ok):
                raise InputError(f"{name} must be {what}, got {value!r}")

    def record(self) -> dict:
        """The JSON-able settings stored in the checkpoint."""
        data = {k: v for k, v in asdict(self).items() if k != "distribution"}
        if self.defence == "eot":
            data["distribution"] = distribution(self.distribution).name
        return data


@dataclass(frozen=True)
class TrainingSummary:
    """What :func:`train_defence` reports: the configuration, the images, seconds taken and the
    final epoch's mean training loss and clean training accuracy."""

    config: DefenceConfig
    images: int
    seconds: float
    loss: float
    clean_accuracy: float


def training_images(spec: str | Path | Sequence[str | Path], classifier: Classifier, label: str | None = None,
                    limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 3, h, w)`` in [0, 1] at ``classifier.input_size`` and labels ``(N,)`` to train on.

    Training runs at the model's input size: a resize averages neighbouring pixels, so the ε-ball of
    the printed image maps into the ε-ball there, and the (antialiased) resize is not differentiated
    at every step (it dominates the time of small models on a CPU).

    ``"digits"`` is the *training* split of scikit-learn's digits (the built-in image set ``digits``
    is the held-out split, which a defence must never see); anything else goes through
    :func:`physadv.datasets.load_image_set` (folders, files; classes from file or folder names).
    """
    if str(spec) == "digits" and not Path(spec).exists():
        from physadv.classifiers.digits import digits_split

        split = digits_split("train")
        images = torch.from_numpy(split.images).permute(0, 3, 1, 2).float().div(255)
        labels = torch.from_numpy(split.labels)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
    else:
        items = prepare(load_image_set(spec, classifier.labels, label, limit), classifier.image_size)
        unlabelled = [i.id for i in items if i.label is None]
        if unlabelled:
            raise InputError(f"{len(unlabelled)} training image(s) have no label ({', '.join(unlabelled[:5])}); "
                             "name the class in the file or folder name or pass --label")
        images, labels = to_tensor([i.image for i in items]), torch.tensor([i.label for i in items])
    images = F.interpolate(images, size=classifier.input_size, mode=classifier.interpolation, antialias=True,
                           align_corners=False).clamp(0, 1)
    return images, labels


# --- the inner maximisations --------------------------------------------------------------------------------

Forward = Callable[[torch.Tensor], torch.Tensor]


def _input_gradient(forward: Forward, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    images = images.detach().requires_grad_(True)
    return input_gradient(F.cross_entropy(forward(images), labels), images)


def _random_start(images: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.rand(images.shape, generator=generator, device=generator.device).to(images.device)
    return (noise * 2 - 1) * eps


def fgsm_rs_examples(forward: Forward, images: torch.Tensor, labels: torch.Tensor, eps: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Wong et al. 2020: random start in the ε-ball (ε in [0, 1] units), one step of 1.25 ε, projected."""
    delta = _random_start(images, eps, generator)
    gradient = _input_gradient(forward, (images + delta).clamp(0, 1), labels)
    delta = (delta + 1.25 * eps * gradient.sign()).clamp(-eps, eps)
    return (images + delta).clamp(0, 1).detach()


def pgd_examples(forward: Forward, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Madry et al. 2018: PGD from a random start, ``steps`` steps of ``2.5 ε / steps`` (ε in [0, 1] units)."""
    alpha = 2.5 * eps / steps
    adversarial = (images + _random_start(images, eps, generator)).clamp(0, 1)
    for _ in range(steps):
        gradient = _input_gradient(forward, adversarial, labels)
        adversarial = torch.min(torch.max(adversarial + alpha * gradient.sign(), images - eps), images + eps)
        adversarial = adversarial.clamp(0, 1).detach()
    return adversarial


def _transformed(channel: TransformDistribution, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x ↦ t_i(x_i)``: one transformation per image, drawn from ``channel`` with ``seed``."""
    def apply(images: torch.Tensor) -> torch.Tensor:
        transformations = channel.sample(len(images), images.shape[1:], seed).to(images.device)
        return channel(images, transformations.select(torch.arange(len(images), device=images.device)))

    return apply


# --- training -----------------------------------------------------------------------------------------------


def _batch_loss(config: DefenceConfig, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator, channel: TransformDistribution | None, batch_seed: int,
                teacher: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits on the clean batch) of one batch under ``config.defence``."""
    eps = config.eps / 255
    if config.defence == "fgsm-rs":
        adversarial = fgsm_rs_examples(classifier, images, labels, eps, generator)
        logits = classifier(adversarial)
        return F.cross_entropy(logits, labels), logits
    if config.defence == "pgd":
        adversarial = pgd_examples(classifier, images, labels, eps, config.steps, generator)
        logits = classifier(adversarial)
        return F.cross_entropy(logits, labels), logits
    if config.defence == "eot":
        transform = _transformed(channel, batch_seed)
        through_channel = lambda x: classifier(transform(x))  # noqa: E731 (the model behind the channel)
        adversarial = fgsm_rs_examples(through_channel, images, labels, eps, generator)
        logits = through_channel(adversarial)
        return F.cross_entropy(logits, labels), logits
    if config.defence == "gradreg":
        images = images.detach().requires_grad_(True)
        logits = classifier(images)
        loss = F.cross_entropy(logits, labels)
        gradient = input_gradient(F.cross_entropy(logits, labels, reduction="sum"), images, create_graph=True)
        return loss + config.gradreg_weight * gradient.pow(2).flatten(1).sum(1).mean(), logits
    # distill: hard labels at T for the teacher phase, the teacher's soft labels at T for the student.
    logits = classifier(images)
    if teacher is None:
        return F.cross_entropy(logits / config.temperature, labels), logits
    with torch.no_grad():
        soft = teacher(images).div(config.temperature).softmax(-1)
    return -(soft * F.log_softmax(logits / config.temperature, -1)).sum(-1).mean(), logits


def _fit(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, config: DefenceConfig,
         generator: torch.Generator, channel: TransformDistribution | None, teacher: nn.Module | None,
         progress: bool, phase: str) -> tuple[float, float]:
    model, device = classifier.model, classifier.device
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    batches = math.ceil(len(images) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs * batches)
    loss_sum = correct = 0.0
    model.train()
    try:
        for epoch in tqdm(range(config.epochs), desc=phase, unit="epoch", disable=not progress):
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(
                derive_seed("defence-order", config.seed, phase, epoch)))
            loss_sum = correct = 0.0
            for number, start in enumerate(range(0, len(images), config.batch_size)):
                index = order[start:start + config.batch_size]
                if len(index) < 2:  # batch-norm statistics need two images
                    continue
                x, y = images[index].to(device), labels[index].to(device)
                try:
                    loss, logits = _batch_loss(config, classifier, x, y, generator, channel,
                                               derive_seed("defence-eot", config.seed, epoch, number), teacher)
                except NonFiniteLogitsError:
                    loss = torch.tensor(float("nan"))  # the weights diverged before the loss did
                if not torch.isfinite(loss):
                    raise InputError(f"{config.defence}: the loss became {loss.item()} in epoch {epoch + 1}; "
                                     "lower --lr (or --gradreg-weight)")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                loss_sum += loss.item() * len(index)
                correct += (logits.argmax(-1) == y).sum().item()
    finally:
        model.eval()
    return loss_sum / len(images), correct / len(images)


def train_defence(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, config: DefenceConfig,
                  progress: bool = True) -> TrainingSummary:
    """Fine-tune ``classifier``'s model in place with ``config.defence``; it is left in eval mode.

    Args:
        images: :math:`(N, 3, H, W)` float RGB in [0, 1] (e.g. :func:`training_images`).
        labels: :math:`(N,)` class indices of ``classifier``.

    Raises:
        InputError: bad images or labels, or a loss that diverged.
    """
    check_images(images)
    if len(images) == 0:
        raise InputError("no training images")
    labels = classifier.check_labels(labels, len(images)).cpu()
    images = images.float()
    device = classifier.device
    generator = torch.Generator(device=device).manual_seed(derive_seed("defence", config.seed))
    channel = distribution(config.distribution) if config.defence == "eot" else None
    if channel is not None:
        channel = channel.to(device)
    started = time.perf_counter()
    teacher = None
    if config.defence == "distill":
        _fit(classifier, images, labels, config, generator, None, None, progress, f"distill: teacher at T={config.temperature:g}")
        teacher = copy.deepcopy(classifier).eval()
    loss, accuracy = _fit(classifier, images, labels, config, generator, channel, teacher, progress,
                          "distill: student" if teacher is not None else config.defence)
    return TrainingSummary(config, len(images), time.perf_counter() - started, loss, accuracy)


CHECKPOINT_KEYS = frozenset({"state_dict", "defence", "base_model"})
"""What :func:`save_checkpoint` writes: a file holding them is ours, and a re-run may replace it."""


def is_defence_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint :func:`save_checkpoint` wrote (read as weights only, never code;
    tensors memory-mapped, so a large file is not read to answer)."""
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        return False
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # torch raises many types for a foreign or corrupt file: either way, not ours
        return False
    return isinstance(state, dict) and CHECKPOINT_KEYS <= set(state)


def check_checkpoint_path(path: str | Path) -> Path:
    """``path`` if :func:`save_checkpoint` may write there: a new file in a folder that exists or can be
    made, or a checkpoint of ours (a re-run replaces it). Checked before training, so that a run never
    trains for hours and then fails to save, and never replaces a file that is not ours.

    Raises:
        InputError: ``path`` is a folder, an existing file that is not a defence checkpoint, or in no
            writable folder.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; name the checkpoint file to write, e.g. {path / 'defence.pt'}")
    if path.exists() and not (path.is_file() and is_defence_checkpoint(path)):
        raise InputError(f"{path} exists and is not a physadv defence checkpoint; physadv never replaces it "
                         "(choose another file, or move that one away yourself)")
    existing = next((p for p in path.absolute().parents if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there ({existing} is not a writable folder)")
    return path


def save_checkpoint(classifier: Classifier, path: str | Path, config: DefenceConfig, base: str) -> Path:
    """Write ``{"state_dict", "defence", "base_model"}`` to ``path`` atomically: load it with
    ``load_classifier(base, weights=path)`` (``--model BASE --weights PATH``). Only a new file or a
    checkpoint of ours is written over (:func:`check_checkpoint_path`)."""
    check_checkpoint_path(path)
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in classifier.model.state_dict().items()}
    torch.save({"state_dict": state, "defence": config.record(), "base_model": base}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
