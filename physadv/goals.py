"""What an attack is after, as types (as foolbox's criteria are): :class:`Goal` per method, and the
names outputs record for attacks. No dependencies, so reports and tables can read these facts without
importing torch; :mod:`physadv.attacks` implements the attacks.
"""

from __future__ import annotations

import enum
from typing import Literal

Method = Literal["fgsm", "bim", "ll", "target"]  # the names of physadv.catalog.METHODS


def attack_label(method: str, eot: str | None) -> str:
    """The name outputs record for an attack: its method, with ``+eot`` for an EOT variant."""
    return f"{method}+eot" if eot else method


def label_goal(label: str, eot: str | None) -> "Goal | None":
    """The goal of the attack that :func:`attack_label` named ``label`` (``None`` for a name that is
    not an attack's, e.g. the clean pseudo-attack of a results file)."""
    method = label.removesuffix("+eot") if eot else label
    return METHOD_GOALS.get(method)  # type: ignore[arg-type]


class Goal(enum.Enum):
    """What success means for an attack, and so what it needs (as foolbox's criteria are types).

    - ``UNTARGETED``: leave the true class (fgsm, bim); needs the true labels.
    - ``LEAST_LIKELY``: reach the clean image's least-likely class (ll); needs nothing.
    - ``TARGET``: reach a given class (target); needs a target class.
    """

    UNTARGETED = "untargeted"
    LEAST_LIKELY = "least-likely"
    TARGET = "target"

    @property
    def needs_labels(self) -> bool:
        return self is Goal.UNTARGETED

    @property
    def needs_target(self) -> bool:
        return self is Goal.TARGET

    @property
    def targeted(self) -> bool:
        """Success is ``argmax = goal`` (rather than ``argmax ≠ goal``)."""
        return self is not Goal.UNTARGETED

    @property
    def success(self) -> str:
        """What counts as success, in words: what adversariality counts for this goal. For the
        targeted goals it is stricter than a destruction rate, which only asks whether the true class
        came back: an ll image that drifts to some other wrong class is neither destroyed nor a success."""
        return {Goal.UNTARGETED: "top-1 ≠ true class", Goal.LEAST_LIKELY: "top-1 = least-likely class",
                Goal.TARGET: "top-1 = target class"}[self]


METHOD_GOALS: dict[Method, Goal] = {"fgsm": Goal.UNTARGETED, "bim": Goal.UNTARGETED, "ll": Goal.LEAST_LIKELY,
                                    "target": Goal.TARGET}
