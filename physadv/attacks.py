"""Kurakin et al.'s attacks: FGSM, BIM, iterative least-likely class and targeted, fully batched.

All attacks work in 0–255 pixel units, as in the paper, on images that are first rounded to 8-bit
levels. With ``X`` the clean image, one iterative step is

.. math::
    X_{N+1} = \\mathrm{Clip}_{X,\\epsilon}\\{X_N \\pm \\alpha\\,\\mathrm{sign}(\\nabla_X J(X_N, y))\\},\\qquad
    \\mathrm{Clip}_{X,\\epsilon}\\{X'\\} = \\min\\{255, X+\\epsilon, \\max\\{0, X-\\epsilon, X'\\}\\}

ascending the loss of the true class (FGSM, BIM) or descending the loss of a target class
(least-likely class, targeted). FGSM is the single step ``α = ε``. The returned adversarial image is
on 8-bit levels, rounded towards the clean image so that ``‖x_adv − x‖∞ ≤ ε`` holds exactly.

The gradient is pluggable (:data:`GradientFn`): the EOT attacks of :mod:`physadv.eot` pass the mean
gradient over sampled transformations, everything else here stays the same.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F

from physadv.catalog import METHODS
from physadv.classifiers import Classifier
from physadv.classifiers.wrapper import blank_images, input_gradient
from physadv.errors import InputError
from physadv.goals import METHOD_GOALS, Goal, Method, attack_label
from physadv.images import check_images, quantise
from physadv.validation import check_integer, check_number

MAX_ITERATIONS = 10_000
"""Most iterations an attack may take: ε = 255 with α = 1 needs 319 (Kurakin's rule), so 10,000 leaves
room for small α while refusing a count that would run for days (``--iterations 1e12``)."""

GradientFn = Callable[[Classifier, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``(classifier, images (B, 3, H, W) in [0, 1], labels (B,), step) → ∇ of the per-image loss, (B, 3, H, W)``.

``step`` counts the attack's iterations from 0; a randomised gradient (EOT) seeds its draws with it,
so an image's attack is the same whichever call or batch it comes in."""


def cross_entropy_gradient(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                           step: int = 0) -> torch.Tensor:
    """∇_X of the cross-entropy ``J(X, y)`` of each image (images are independent: the losses are summed)."""
    images = images.detach().requires_grad_(True)
    return input_gradient(F.cross_entropy(classifier(images).float(), labels, reduction="sum"), images)


def check_input_gradient(classifier: Classifier) -> None:
    """Follow ``classifier``'s input gradient once, on blank images, so that a model without one (its
    output ignores the image) is refused before an attack writes anything."""
    blank = blank_images(classifier.input_size, classifier.device)
    try:
        cross_entropy_gradient(classifier, blank, torch.zeros(len(blank), dtype=torch.long, device=classifier.device))
    except InputError as error:
        raise InputError(f"{classifier.name}: {error}") from None


def default_iterations(eps: float) -> int:
    """Kurakin et al.'s ``min(ε + 4, 1.25 ε)``, rounded up (so ``α = 1`` can always reach ``ε``)."""
    return math.ceil(min(eps + 4, 1.25 * eps) - 1e-9) if eps > 0 else 0


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns (all tensors on the classifier's device).

    Attributes:
        clean: :math:`(B, 3, H, W)`, the input rounded to 8-bit levels (the image that is saved).
        adversarial: :math:`(B, 3, H, W)`, on 8-bit levels, ``‖adversarial − clean‖∞ ≤ ε/255``.
        unquantised: :math:`(B, 3, H, W)`, the last iterate before rounding to 8-bit levels.
        goal: :math:`(B,)`, the true labels (fgsm, bim) or the targets (ll, target).
        targeted: whether success means ``argmax = goal`` (ll, target) rather than ``argmax ≠ goal``.
        method, eps, alpha, iterations: the attack that produced it (ε and α in 0–255 units).
    """

    clean: torch.Tensor
    adversarial: torch.Tensor
    unquantised: torch.Tensor
    goal: torch.Tensor
    targeted: bool
    method: str
    eps: float
    alpha: float
    iterations: int

    def succeeded(self, predictions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` bool: whether ``predictions`` (class indices) meet the attack's goal."""
        return predictions == self.goal if self.targeted else predictions != self.goal


@dataclass(frozen=True)
class Attack:
    """One of Kurakin et al.'s attacks with its parameters (immutable; call it on a batch).

    Args:
        method: ``"fgsm"``, ``"bim"`` (basic iterative), ``"ll"`` (iterative least-likely class) or
            ``"target"`` (iterative, towards given classes).
        eps: ε, the L∞ budget in 0–255 pixel units.
        alpha: step size α in 0–255 units (iterative methods; FGSM uses α = ε).
        iterations: number of steps; ``None`` means :func:`default_iterations` ``(ε)``.
        amp: on CUDA, run forward and backward under bfloat16 autocast (faster; gradients' signs
            rarely change). Ignored on CPU.
        gradient: the gradient to follow; :func:`cross_entropy_gradient` for the plain attacks.
        eot: the name of the EOT distribution ``gradient`` averages over (:mod:`physadv.eot`), or
            ``None`` for a plain attack. It is recorded in outputs, and :attr:`label` says e.g. ``bim+eot``.

    Example:
        >>> result = Attack("bim", eps=16)(classifier, images, labels)
        >>> result.adversarial.shape == images.shape
        True
    """

    method: Method
    eps: float
    alpha: float = 1.0
    iterations: int | None = None
    amp: bool = False
    gradient: GradientFn = cross_entropy_gradient
    eot: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown attack method {self.method!r}; choose one of {', '.join(METHODS)}")
        # -0.0 + 0.0 is 0.0 (check_number adds it): "--eps -0" is ε = 0, and prints so.
        object.__setattr__(self, "eps", check_number(
            self.eps, 0, 255, lambda m: InputError(f"eps must be a number in [0, 255] (0–255 pixel units): {m}")))
        check_number(self.alpha, 1e-6, 255,
                     lambda m: InputError(f"alpha must be a positive number of 0–255 pixel units: {m}"))
        if self.iterations is not None:
            check_integer(self.iterations, 0, MAX_ITERATIONS,
                          lambda m: InputError(f"iterations must be a whole number: {m}"))

    @property
    def steps(self) -> int:
        """Number of gradient steps this attack takes."""
        if self.method == "fgsm":
            return 1 if self.eps > 0 else 0
        return default_iterations(self.eps) if self.iterations is None else int(self.iterations)

    @property
    def step_size(self) -> float:
        return float(self.eps) if self.method == "fgsm" else float(self.alpha)

    @property
    def goal(self) -> Goal:
        return METHOD_GOALS[self.method]

    @property
    def label(self) -> str:
        """The name outputs record: the method, with ``+eot`` for an EOT attack."""
        return attack_label(self.method, self.eot)

    def with_gradient(self, gradient: GradientFn, eot: str | None = None) -> "Attack":
        """This attack following ``gradient``; ``eot`` names its transformation distribution, if any."""
        return replace(self, gradient=gradient, eot=eot)

    def __call__(self, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor | None = None,
                 targets: torch.Tensor | None = None) -> AttackResult:
        """Attack a batch.

        Args:
            classifier: the model under attack (left in eval mode).
            images: :math:`(B, 3, H, W)`, float RGB in [0, 1].
            labels: :math:`(B,)` true class indices (needed by fgsm and bim).
            targets: :math:`(B,)` target class indices (needed by ``target``).

        Returns:
            :class:`AttackResult` on ``classifier.device``.
        """
        check_images(images)
        classifier.eval()
        batch = images.shape[0]
        clean = quantise(images.to(classifier.device, torch.float32))
        if self.goal is Goal.UNTARGETED:
            if labels is None:
                raise InputError(f"{self.method} needs the true labels of the images")
            goal = classifier.check_labels(labels, batch)
        elif self.goal is Goal.LEAST_LIKELY:
            with torch.no_grad(), self._autocast(clean):
                goal = classifier(clean).argmin(dim=-1)
        else:
            if targets is None:
                raise InputError("the targeted attack needs target classes (--target CLASS)")
            goal = classifier.check_labels(targets, batch)
        # Iterate in 0–255 units, where integer ε and α keep every iterate exactly on 8-bit levels.
        clean_levels = clean.mul(255).round_()
        levels = self._iterate(classifier, clean_levels, goal, descend=self.goal.targeted)
        # Round towards the clean image: stays on 8-bit levels and inside the ε-ball for any ε.
        adversarial = (clean_levels + torch.trunc(levels - clean_levels)) / 255
        unquantised = levels / 255
        return AttackResult(clean=clean, adversarial=adversarial, unquantised=unquantised, goal=goal,
                            targeted=self.goal.targeted, method=self.label, eps=float(self.eps), alpha=self.step_size,
                            iterations=self.steps)

    def _autocast(self, images: torch.Tensor):
        if self.amp and images.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _iterate(self, classifier: Classifier, clean_levels: torch.Tensor, goal: torch.Tensor,
                 descend: bool) -> torch.Tensor:
        step = -self.step_size if descend else self.step_size
        lower = (clean_levels - self.eps).clamp_(min=0)
        upper = (clean_levels + self.eps).clamp_(max=255)
        levels = clean_levels.clone()
        for iteration in range(self.steps):
            with self._autocast(levels):
                gradient = self.gradient(classifier, levels / 255, goal, iteration)
            levels = torch.minimum(torch.maximum(levels + step * gradient.sign(), lower), upper)
        return levels


def fgsm(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, eps: float) -> AttackResult:
    """Fast gradient sign method: ``X + ε·sign(∇_X J(X, y_true))``, kept in [0, 255]."""
    return Attack("fgsm", eps)(classifier, images, labels)


def bim(classifier: Classifier, images: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float = 1.0,
        iterations: int | None = None) -> AttackResult:
    """Basic iterative method (ascends the loss of the true class)."""
    return Attack("bim", eps, alpha, iterations)(classifier, images, labels)


def least_likely(classifier: Classifier, images: torch.Tensor, eps: float, alpha: float = 1.0,
                 iterations: int | None = None) -> AttackResult:
    """Iterative least-likely class method (descends the loss of the clean image's least-likely class)."""
    return Attack("ll", eps, alpha, iterations)(classifier, images)


def targeted(classifier: Classifier, images: torch.Tensor, targets: torch.Tensor, eps: float, alpha: float = 1.0,
             iterations: int | None = None) -> AttackResult:
    """Iterative method towards chosen ``targets`` (descends their loss)."""
    return Attack("target", eps, alpha, iterations)(classifier, images, targets=targets)
