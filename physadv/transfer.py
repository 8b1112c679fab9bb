"""Transfer attacks (the black-box setting): craft on source model(s), evaluate on another.

An attack is crafted on one source model, or on an ensemble whose losses are averaged (Liu et al.
2017; Tramèr et al. 2018): the gradient followed is

.. math::
    \\nabla_X \\frac{1}{K}\\sum_{k=1}^{K} J_k(X, y),

each :math:`J_k` being the attack's own loss (plain cross-entropy, or its EOT expectation) on source
``k``. The target model is used only to evaluate the result. All models must share one label space
(the same classes in the same order), and the least-likely class of ``ll`` is the first source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from physadv.attacks import Attack, GradientFn
from physadv.classifiers import Classifier
from physadv.errors import InputError


@dataclass(frozen=True)
class EnsembleGradient:
    """A :data:`~physadv.attacks.GradientFn` that ignores the classifier it is given and returns the
    mean of ``inner``'s gradients on ``sources``: the gradient of their averaged losses."""

    sources: tuple[Classifier, ...]
    inner: GradientFn

    def __call__(self, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                 step: int = 0) -> torch.Tensor:
        total = self.inner(self.sources[0], images, labels, step)
        for source in self.sources[1:]:
            total = total + self.inner(source, images, labels, step)
        return total / len(self.sources)


def source_name(sources: Sequence[Classifier]) -> str:
    """How outputs name the source of an attack, e.g. ``efficientnet_lite0+efficientnet_lite1``."""
    return "+".join(source.name for source in sources)


def check_sources(target: Classifier, sources: Sequence[Classifier]) -> None:
    """Raise :class:`InputError` unless every source has ``target``'s classes, in its order, on its device."""
    if not sources:
        raise InputError("a transfer attack needs at least one source model")
    for source in sources:
        if source.labels.names != target.labels.names:
            raise InputError(f"source model {source.name} has other classes than {target.name} "
                             f"({source.num_classes} vs {target.num_classes}); a transfer attack needs one label space")
        if source.device != target.device:
            raise InputError(f"source model {source.name} is on {source.device}, {target.name} on {target.device}")


def transfer_attack(attack: Attack, sources: Sequence[Classifier]) -> Attack:
    """``attack`` following the averaged-loss gradient of ``sources`` (its own gradient on each)."""
    if not sources:
        raise InputError("a transfer attack needs at least one source model")
    return attack.with_gradient(EnsembleGradient(tuple(sources), attack.gradient), eot=attack.eot)
