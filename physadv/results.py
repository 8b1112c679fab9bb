"""Result rows: one measurement of one attack under one transformation, in one case.

``physadv experiment`` writes them (artificial transformations), ``physadv capture`` too (the print →
photo channel, transform :data:`PHOTO`), the run store keeps them and the report, ``evaluate`` and
``status`` read them. A row is a :class:`ResultRow`, its JSON (``results.json``, the store) the dict of
:meth:`ResultRow.to_json`, read back, checked, by :meth:`ResultRow.from_json`.

No dependencies beyond the standard library, so that rendering a report does not import torch.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, fields
from typing import Any

from physadv.validation import Record

PHOTO = "photo"
"""The transform of rows measured on photos of printed sheets (``physadv capture``)."""


class Case(enum.StrEnum):
    """Which images a row counts (Kurakin et al. 2017, section 4): ``AVERAGE`` all of them;
    ``PREFILTERED`` those whose clean version is classified right and adversarial version wrong, both
    with high confidence."""

    AVERAGE = "average"
    PREFILTERED = "prefiltered"


class ResultKind(enum.StrEnum):
    """Where the rows of an attack in a run's store come from."""

    EXPERIMENT = "experiment"  # artificial transformations of the digital images
    CAPTURE = "capture"  # photos of the printed sheets


MAX_ITERATIONS_RECORDED = 10**9  # far above any attack's (physadv.attacks.MAX_ITERATIONS): a larger one is corrupt
MAX_IMAGES_RECORDED = 10**12


@dataclass(frozen=True, kw_only=True)
class ResultRow:
    """One row: accuracies as fractions in [0, 1] (``None`` when no image counts), Kurakin's eq. (1)
    destruction rates with their denominators ``*_n``.

    The optional fields say how the attack was made and what else was measured; ``None`` where a row
    does not say (a capture's rows name only method and ε), and then absent from its JSON.

    Attributes:
        method: the attack's label (e.g. ``bim+eot``), or ``none`` for the clean images.
        eps: ε in 0-255 units.
        transform: a transformation name (:data:`physadv.channel.TRANSFORMS`) or :data:`PHOTO`.
        strength: the transformation's strength in its unit; ``None`` for :data:`PHOTO`.
        eot: the EOT distribution the attack was made with, ``""`` for a plain attack.
        quantisation_undid: images whose attack the 8-bit rounding undid.
        model: the classifier evaluated; ``source_model`` the one(s) the attack was crafted on.
        adversariality: mean fraction of held-out transformations under which the attack still succeeds.
        oracle: for a transfer attack crafted on black-box substitutes (``physadv substitute``), the model(s)
            whose labels trained them; ``oracle_queries`` the images those oracles labelled.
    """

    method: str
    eot: str | None = None
    eps: float
    iterations: int | None = None
    transform: str
    strength: float | None
    case: Case
    n_images: int
    top1_clean: float | None
    top1_adv: float | None
    top1_transformed: float | None
    top5_clean: float | None
    top5_adv: float | None
    top5_transformed: float | None
    destruction_top1: float | None
    destruction_top5: float | None
    destruction_top1_n: int
    destruction_top5_n: int
    quantisation_undid: int | None = None
    model: str | None = None
    source_model: str | None = None
    adversariality: float | None = None
    oracle: str | None = None
    oracle_queries: int | None = None

    @property
    def attack(self) -> tuple[str, float]:
        """``(method, eps)``: the attack the row measures."""
        return self.method, self.eps

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object, in field order; optional fields that are ``None`` are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.name in _OPTIONAL and getattr(self, f.name) is None)}

    @classmethod
    def from_json(cls, data: object, where: str) -> "ResultRow":
        """A row read from a file (``where`` names it in errors), every field checked.

        Raises:
            InputError: not an object, an unknown or missing key, a value of the wrong type or range.
        """
        record = Record(data, where)
        record.only(_FIELDS, "row key")

        def fraction(key: str) -> float | None:
            return record.number(key, 0, 1, optional=True)

        def count(key: str, optional: bool = False) -> int | None:
            return record.integer(key, 0, MAX_IMAGES_RECORDED, optional=optional)

        def text(key: str, optional: bool = False) -> str | None:
            return record.text(key, optional=optional, max_length=1024)

        if record.data.get("strength") is None and record.has("strength"):
            strength = None
        else:
            strength = record.number("strength", -math.inf, math.inf)
        return cls(method=text("method"), eot=text("eot", True), eps=record.number("eps", 0, 255),
                   iterations=record.integer("iterations", 0, MAX_ITERATIONS_RECORDED, optional=True),
                   transform=text("transform"), strength=strength,
                   case=Case(record.choice("case", tuple(case.value for case in Case))), n_images=count("n_images"),
                   **{f"top{k}_{of}": fraction(f"top{k}_{of}") for k in (1, 5)
                      for of in ("clean", "adv", "transformed")},
                   destruction_top1=fraction("destruction_top1"), destruction_top5=fraction("destruction_top5"),
                   destruction_top1_n=count("destruction_top1_n"), destruction_top5_n=count("destruction_top5_n"),
                   quantisation_undid=count("quantisation_undid", True), model=text("model", True),
                   source_model=text("source_model", True), adversariality=fraction("adversariality"),
                   oracle=text("oracle", True), oracle_queries=count("oracle_queries", True))


_FIELDS = tuple(f.name for f in fields(ResultRow))
_OPTIONAL = frozenset(("eot", "iterations", "quantisation_undid", "model", "source_model", "adversariality",
                       "oracle", "oracle_queries"))


def read_rows(items: object, where: str) -> list[ResultRow]:
    """The rows of a JSON list (``where`` names it in errors), each checked (:meth:`ResultRow.from_json`)."""
    if not isinstance(items, list):
        raise Record({}, where).fail(None, f"expected a list of rows, got {type(items).__name__}")
    return [ResultRow.from_json(item, f"{where}[{index}]") for index, item in enumerate(items)]
