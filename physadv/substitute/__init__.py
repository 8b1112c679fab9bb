"""Papernot et al.'s black-box substitute attack: learn a stand-in for a model from its labels alone.

The attacker may only show the target model (the *oracle* :math:`\\tilde O`) images and read the
label it gives each (Papernot, McDaniel, Goodfellow, Jha, Celik & Swami 2017, "Practical Black-Box
Attacks against Machine Learning", Algorithm 1). From a small initial set :math:`S_0` of ``n`` images
it trains a substitute :math:`F` in rounds :math:`\\rho = 0 … \\rho_{max}`:

.. math::
    D_\\rho = \\{(x, \\tilde O(x)) : x \\in S_\\rho\\},\\quad F \\leftarrow \\mathrm{train}(F, D_\\rho),\\quad
    S_{\\rho+1} = S_\\rho \\cup
        \\{\\mathrm{q}(x + \\lambda_\\rho\\,\\mathrm{sgn}(J_F(x)[\\tilde O(x)])) : x \\in S_\\rho\\}

(Jacobian-based dataset augmentation): each new point steps from an old one along the sign of the
substitute's gradient of the oracle's label, where the substitute's output changes fastest, i.e. towards
the decision boundaries the substitute must learn. :math:`J_F(x)[c]` is the gradient of the
substitute's logit ``c`` (as in cleverhans' ``jacobian_augmentation``, the paper's reference code);
``q`` clips to [0, 1] and rounds to 8-bit levels (an image sent to an oracle is a file).
:math:`\\lambda_\\rho = \\lambda\\,(-1)^{\\lfloor \\rho/\\tau \\rfloor}` is the periodic step size: the
direction flips every :math:`\\tau` rounds. Only the new points are sent to the oracle, so the
queries are :math:`n\\,2^{\\rho_{max}}`. With *reservoir sampling* (Papernot, McDaniel & Goodfellow 2016,
arXiv:1605.07277), the augmentations from round :math:`\\sigma` on step from only :math:`\\kappa` points
of :math:`S_\\rho` drawn uniformly without replacement, and the queries fall to
:math:`n\\,2^{\\sigma} + \\kappa(\\rho_{max} - \\sigma)`.

Modules: :mod:`.oracle` (the labels-only :class:`~.oracle.LabelOracle`), :mod:`.architectures` (the
substitutes), :mod:`.record` (the folder and its checked record), :mod:`.training` (Algorithm 1,
resumable) and :mod:`.loading` (``substitute:DIR`` as a transfer attack's source). This module holds the
names and settings, without importing torch, so ``physadv --help`` can show them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from physadv.errors import InputError

SUBSTITUTE_PREFIX = "substitute:"
"""``--source-model substitute:DIR`` crafts on the substitute in ``DIR``."""

DEFAULT_ROUNDS = 6
"""ρ_max, the augmentations: from n = 100 images, 100 · 2⁶ = 6,400 queries, the budget in Papernot et al.'s
abstract (cleverhans' ``DATA_AUG = 6`` counts training rounds, i.e. 5 augmentations)."""
DEFAULT_STEP = 25.5
"""λ in 0–255 units: 0.1 on [0, 1] inputs, the paper's MNIST value (cleverhans' ``LMBDA``)."""
DEFAULT_PERIOD = 3
"""τ: cleverhans' ``mnist_blackbox`` flips the step's sign every 3 rounds."""
DEFAULT_EPOCHS, DEFAULT_BATCH_SIZE, DEFAULT_LEARNING_RATE = 10, 128, 1e-3
"""Per round: 10 epochs of Adam at 1e-3 in batches of 128 (cleverhans' ``NB_EPOCHS_S``, ``BATCH_SIZE``,
``LEARNING_RATE``)."""
MAX_ROUNDS = 30
"""ρ_max beyond this is a typo: n · 2³⁰ queries is far past any oracle's patience."""

ARCHITECTURES = {
    "cnn32": "2 strided conv + 2×200 dense layers at 32 px (Papernot et al.'s MNIST substitutes)",
    "cnn112": "4 strided conv layers + global average pooling at 112 px, for ImageNet-size images",
}
"""The built-in substitutes (:data:`physadv.substitute.architectures.BUILDERS` builds them)."""
SMALL_IMAGES = 64
"""Oracles shown images of at most this side (digits: 64, MNIST: 28, CIFAR: 32) get ``cnn32``, larger
ones ``cnn112``: a substitute sees the oracle's image, resized to its own input."""


def default_architecture(image_size: int) -> str:
    return "cnn32" if image_size <= SMALL_IMAGES else "cnn112"


def is_file_architecture(name: str) -> bool:
    """Whether ``name`` is a ``FILE.py:FACTORY`` (the user's own code)."""
    path, sep, factory = name.rpartition(":")
    return bool(sep) and path.endswith(".py") and factory.isidentifier()


def is_substitute_spec(text: str) -> bool:
    return text.startswith(SUBSTITUTE_PREFIX)


@dataclass(frozen=True)
class SubstituteConfig:
    """How to train a substitute (see the module docstring for the symbols).

    Attributes:
        rounds: ρ_max: the substitute is trained at ρ = 0 … ρ_max; the training set grows to n·2^ρ_max.
        step: λ, in 0–255 pixel units.
        period: τ, rounds between flips of the step's sign (0: never flip).
        epochs: training epochs per round.
        batch_size, learning_rate: Adam's, for training.
        reservoir_after: σ: from round σ on, augment only ``reservoir_size`` points (``None``: all).
        reservoir_size: κ.
        seed: initialisation, shuffling, dropout and the reservoir draws.
    """

    rounds: int = DEFAULT_ROUNDS
    step: float = DEFAULT_STEP
    period: int = DEFAULT_PERIOD
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = DEFAULT_BATCH_SIZE
    learning_rate: float = DEFAULT_LEARNING_RATE
    reservoir_after: int | None = None
    reservoir_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(0 <= self.rounds <= MAX_ROUNDS, f"ρ (--rounds) must be in 0..{MAX_ROUNDS}, got {self.rounds}"),
                  (math.isfinite(self.step) and 0 < self.step <= 255,
                   f"λ (--lambda) must be in (0, 255], got {self.step:g}"),
                  (self.period >= 0, f"τ (--tau) must be 0 (never flip) or more, got {self.period}"),
                  (self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}"),
                  (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
                  (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 10,
                   f"--lr must be in (0, 10], got {self.learning_rate:g}"),
                  ((self.reservoir_after is None) == (self.reservoir_size is None),
                   "reservoir sampling needs both σ (--reservoir-after) and κ (--reservoir-size)")]
        if self.reservoir_after is not None and self.reservoir_size is not None:
            checks += [(0 <= self.reservoir_after <= self.rounds,
                        f"σ (--reservoir-after) must be in 0..ρ = {self.rounds}, got {self.reservoir_after}"),
                       (self.reservoir_size >= 1,
                        f"κ (--reservoir-size) must be at least 1, got {self.reservoir_size}")]
        for ok, message in checks:
            if not ok:
                raise InputError(message)

    def step_at(self, round_: int) -> float:
        """λ_ρ = λ·(−1)^⌊ρ/τ⌋, in 0–255 units."""
        return self.step * (-1 if self.period and (round_ // self.period) % 2 else 1)

    def augmented_at(self, round_: int, size: int) -> int:
        """How many of ``size`` points the augmentation after round ``round_`` steps from (and so queries)."""
        if self.reservoir_after is not None and self.reservoir_size is not None and round_ >= self.reservoir_after:
            return min(self.reservoir_size, size)
        return size

    def to_json(self) -> dict:
        reservoir = None if self.reservoir_after is None else {"after": self.reservoir_after,
                                                               "size": self.reservoir_size}
        return {"rounds": self.rounds, "lambda": self.step, "tau": self.period, "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate, "reservoir": reservoir,
                "seed": self.seed}


def planned_queries(initial: int, config: SubstituteConfig) -> int:
    """Oracle queries of a whole run from ``initial`` images: n·2^ρ, or n·2^σ + κ(ρ − σ) with reservoir
    sampling."""
    size = initial
    for round_ in range(config.rounds):
        size += config.augmented_at(round_, size)
    return size
