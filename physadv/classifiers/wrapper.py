"""The :class:`Classifier` wrapper: one calling convention for every image classifier."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from physadv.errors import InputError
from physadv.images import check_images
from physadv.labels import LabelSpace

Preprocess = Callable[[torch.Tensor], torch.Tensor]


class CentreCrop(nn.Module):
    """The central ``(h, w)`` of a ``(B, C, H, W)`` tensor (timm's and torchvision's evaluation crop)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        top = (images.shape[-2] - self.size[0]) // 2
        left = (images.shape[-1] - self.size[1]) // 2
        return images[..., top:top + self.size[0], left:left + self.size[1]]


class Normalise(nn.Module):
    """Per-channel ``(x - mean) / std`` on a ``(B, 3, H, W)`` tensor in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


IMAGENET_NORMALISE = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class Classifier(nn.Module):
    """An image classifier that takes what physadv saves and prints: RGB in [0, 1], any size.

    The model's own resize and normalisation happen inside, so attacks perturb the very pixels that
    are written to PNG. The wrapped model is kept in eval mode: :meth:`train` cannot switch it to
    training behaviour (batch-norm statistics and dropout would make attacks and accuracy depend on
    the batch).

    Args:
        model: maps preprocessed ``(B, C, h, w)`` tensors to logits ``(B, K)``.
        name: short name recorded in outputs (e.g. ``"efficientnet_lite0"``).
        labels: the ``K`` classes, in logit order.
        input_size: ``(h, w)`` the model expects; other sizes are resized (bilinear, antialiased).
        preprocess: applied after the resize, e.g. :class:`Normalise`.
        weights: where the weights came from (file path or package), recorded in outputs.
        image_size: side of the square images prepared for this model, saved and printed
            (defaults to the larger side of ``input_size``).
        interpolation: how other sizes are resized to ``input_size``: ``"bilinear"`` or ``"bicubic"``
            (antialiased), as the model's own preprocessing does.

    Shape:
        - Input: :math:`(B, 3, H, W)`, float in [0, 1], on :attr:`device`.
        - Output: :math:`(B, K)` logits.
    """

    def __init__(self, model: nn.Module, *, name: str, labels: LabelSpace, input_size: tuple[int, int],
                 preprocess: Preprocess | None = None, weights: str = "", image_size: int | None = None,
                 interpolation: str = "bilinear") -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.labels = labels
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.weights = weights
        self.image_size = int(image_size or max(self.input_size))
        if interpolation not in ("bilinear", "bicubic"):
            raise InputError(f"interpolation must be bilinear or bicubic, got {interpolation!r}")
        self.interpolation = interpolation
        super().train(False)

    def train(self, mode: bool = True) -> "Classifier":
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode=self.interpolation, align_corners=False,
                                   antialias=True)
        return self.model(self.preprocess(images))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities ``(B, K)`` of ``images`` ``(B, 3, H, W)`` in [0, 1], in batches."""
        check_images(images)
        if len(images) == 0:
            return torch.empty(0, self.num_classes, device=images.device)
        return torch.cat([self.checked_logits(images[i:i + batch_size].to(self.device)).float().softmax(-1)
                          for i in range(0, len(images), batch_size)])

    def checked_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The logits ``(B, K)`` of ``images`` ``(B, 3, H, W)``, refused unless there is one finite logit per
        class: NaN weights or a model with fewer outputs than labels would otherwise give confident garbage."""
        logits = self(images)
        expected = (len(images), self.num_classes)
        if tuple(logits.shape) != expected:
            raise InputError(f"{self.name} gave logits of shape {tuple(logits.shape)} for {len(images)} image(s), "
                             f"expected {expected}: one per class of its {self.num_classes} labels")
        if not bool(torch.isfinite(logits).all()):
            raise InputError(f"{self.name} gave logits that are not finite (NaN or infinity): its weights"
                             f"{' (' + self.weights + ')' if self.weights else ''} or its code are broken")
        return logits

    def check_labels(self, labels: torch.Tensor, batch: int) -> torch.Tensor:
        """``labels`` as a ``(B,)`` long tensor on :attr:`device`; :class:`InputError` if not class indices."""
        labels = torch.as_tensor(labels, device=self.device)
        if labels.shape != (batch,):
            raise InputError(f"labels must have shape ({batch},), one per image, got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex():
            raise InputError(f"labels must be integer class indices, got dtype {labels.dtype}")
        if batch and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise InputError(f"labels must lie in 0..{self.num_classes - 1} for {self.name}, "
                             f"got values in [{labels.min().item()}, {labels.max().item()}]")
        return labels.long()
