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


def describe_error(error: BaseException) -> str:
    """An exception of the user's code in a few words; ``sys.exit`` in it is no success, whatever its code."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"


class NonFiniteLogitsError(InputError):
    """The model computed NaN or infinite logits: its weights are not finite, or its numbers overflowed."""


def blank_images(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """A black and a white image, ``(2, 3, h, w)``: a probe of a model (two, so that a model mixing up its
    batch is caught)."""
    return torch.stack([torch.zeros(3, *size, device=device), torch.ones(3, *size, device=device)])


def input_gradient(loss: torch.Tensor, images: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """∇ of the scalar ``loss`` with respect to ``images`` (which require grad), shaped like ``images``.

    Raises:
        InputError: the loss does not depend on ``images``: the model's output ignores its input, so
            there is no gradient to attack or train with (autograd would fail with its own message).
    """
    gradient = None
    if loss.requires_grad:
        (gradient,) = torch.autograd.grad(loss, images, create_graph=create_graph, allow_unused=True)
    if gradient is None:
        raise InputError("the model's output does not depend on its input image, so it has no input gradient "
                         "to attack or train with")
    return gradient


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
        return self._checked_logits(self.model(self.preprocess(images)), len(images))

    def _checked_logits(self, logits: object, batch: int) -> torch.Tensor:
        """The model's output if it is ``(B, K)`` finite float logits; a user's own model may return anything,
        and wrong logits would otherwise fail deep inside an attack or a JSON writer."""
        expected = (batch, self.num_classes)
        if not isinstance(logits, torch.Tensor):
            raise InputError(f"{self.name}: the model returned {type(logits).__name__}, not a tensor of logits "
                             f"of shape {expected} (B images × K classes)")
        if tuple(logits.shape) != expected or not logits.is_floating_point():
            raise InputError(f"{self.name}: the model returned {logits.dtype} logits of shape {tuple(logits.shape)}, "
                             f"expected floating-point logits of shape {expected} (B images × K = "
                             f"{self.num_classes} classes)")
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteLogitsError(f"{self.name}: the model returned NaN or infinite logits, not finite numbers: "
                                       f"its weights{' (' + self.weights + ')' if self.weights else ''} or its code "
                                       "are broken")
        return logits

    @torch.no_grad()
    def check_outputs(self) -> None:
        """Classify a black and a white image, so that a model whose logits are not ``(2, K)`` finite floats,
        one per label (a user's factory, NaN weights), or whose code raises or calls ``sys.exit``, is refused
        when it is loaded, before any work or any file written."""
        try:
            self(blank_images(self.input_size, self.device))
        except InputError:
            raise
        except (Exception, SystemExit) as error:  # the model's own code failed (e.g. it takes another input size)
            first_line = (describe_error(error).splitlines() or [""])[0][:300]
            raise InputError(f"{self.name}: the model fails on a blank {self.input_size[0]}×{self.input_size[1]} "
                             f"image ({first_line})") from None

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities ``(B, K)`` of ``images`` ``(B, 3, H, W)`` in [0, 1], in batches."""
        check_images(images)
        if len(images) == 0:
            return torch.empty(0, self.num_classes, device=images.device)
        return torch.cat([self(images[i:i + batch_size].to(self.device)).float().softmax(-1)
                          for i in range(0, len(images), batch_size)])

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
