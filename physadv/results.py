"""Result rows: one measurement of one attack under one transformation, in one case.

``physadv experiment`` writes them (artificial transformations), ``physadv capture`` too (the print →
photo channel, transform :data:`PHOTO`), the run store keeps them and the report, ``evaluate`` and
``status`` read them. A row is a :class:`ResultRow`, its JSON (``results.json``, the store) the dict of
:meth:`ResultRow.to_json`, read back, checked, by :meth:`ResultRow.from_json`. An adversarial patch's
rows (``physadv patch`` held out, ``physadv capture`` of its scene sheets) are :class:`PatchRow`; their
JSON says so with ``case`` :data:`PATCH_CASE`, and :func:`row_from_json` reads either kind.

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
    PATCH = "patch"  # an adversarial patch's own held-out measurement (physadv patch), digital


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


PATCH_CASE = "patch"
"""The ``case`` of a :class:`PatchRow`'s JSON: what tells it from a :class:`ResultRow`'s."""
PATCH_VARIANTS = ("clean", "patch", "noise", "crop")
"""The scenes made at each placement of a patch (:mod:`physadv.patch.heldout`), in the order they are printed."""
PATCH_CONTROLS = ("noise", "crop")
PATCH_GOALS = ("target", "untargeted")
DIGITAL = "digital"
"""The transform of a patch's held-out rows, measured on the digital scenes (``physadv patch``)."""
MAX_CLASS_INDEX = 10**6


def variant_kind(variant: str) -> str:
    """``clean``, ``patch`` or ``control``: what a scene of ``variant`` is, in result rows and manifests."""
    return variant if variant in ("clean", "patch") else "control"


def variant_method(variant: str) -> str:
    """How result rows name a variant's scenes: ``patch``, ``control:noise``, ``control:crop``, ``clean``."""
    return f"control:{variant}" if variant in PATCH_CONTROLS else variant


@dataclass(frozen=True, kw_only=True)
class PatchRow:
    """One row of an adversarial patch run (Brown et al. 2017): the scenes of one variant at one area.

    Success is the patch's goal (``top-1 = target``, or ``top-1 ≠ true class`` untargeted) as a fraction of
    ``n`` scenes; top-1 accuracy is over the ``top1_n`` scenes with a known true class (``None``: none).
    ``*_digital`` is measured on the 8-bit scenes, ``*_photo`` on the photos of the printed scenes (the same
    observations; ``None`` in a held-out row, transform :data:`DIGITAL`).

    Attributes:
        variant: one of :data:`PATCH_VARIANTS` (the patch, a control patch, or the clean image).
        transform: :data:`PHOTO` (``physadv capture``) or :data:`DIGITAL` (``physadv patch``'s held-out images).
        area: the fraction of the image the patch covers.
        target: the target class index (``None``: untargeted), ``target_name`` its name.
        model: the classifier measured.
    """

    variant: str
    transform: str
    area: float
    target: int | None
    target_name: str | None
    n: int
    target_success_digital: float | None
    target_success_photo: float | None
    top1_digital: float | None
    top1_photo: float | None
    top1_n: int
    model: str

    @property
    def method(self) -> str:
        return variant_method(self.variant)

    @property
    def kind(self) -> str:
        return variant_kind(self.variant)

    @property
    def control(self) -> str | None:
        return self.variant if self.variant in PATCH_CONTROLS else None

    @property
    def goal(self) -> str:
        return "untargeted" if self.target is None else "target"

    # The keys the run store files every row under (a patch has no ε; its strength is the area).
    eps = 0.0
    case = PATCH_CASE

    @property
    def strength(self) -> float:
        return self.area

    @property
    def attack(self) -> tuple[str, float]:
        return self.method, self.eps

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object: the store's keys (``method``, ``eps``, ``transform``, ``strength``,
        ``case``), then the patch's."""
        return {"method": self.method, "eps": self.eps, "transform": self.transform, "strength": self.area,
                "case": self.case, "kind": self.kind, "control": self.control, "area": self.area, "goal": self.goal,
                "target": self.target, "target_name": self.target_name, "n": self.n,
                "target_success_digital": self.target_success_digital,
                "target_success_photo": self.target_success_photo, "top1_digital": self.top1_digital,
                "top1_photo": self.top1_photo, "top1_n": self.top1_n, "model": self.model}

    @classmethod
    def from_json(cls, data: object, where: str) -> "PatchRow":
        """A patch row read from a file (``where`` names it in errors), every field checked, the derived
        ones (``kind``, ``control``, ``goal``, ``eps``, ``strength``) against the others.

        Raises:
            InputError: not an object, an unknown or missing key, a value of the wrong type or range, or
                keys that contradict each other.
        """
        record = Record(data, where)
        record.only(_PATCH_FIELDS, "patch row key")
        methods = {variant_method(v): v for v in PATCH_VARIANTS}
        variant = methods[record.choice("method", tuple(methods))]
        transform = record.choice("transform", (PHOTO, DIGITAL))
        area = record.number("area", 0, 1)
        if area <= 0:
            raise record.fail("area", "a patch covers more than none of the image")
        target = record.integer("target", 0, MAX_CLASS_INDEX, optional=True)

        def fraction(key: str) -> float | None:
            return record.number(key, 0, 1, optional=True)

        row = cls(variant=variant, transform=transform, area=area, target=target,
                  target_name=record.text("target_name", optional=True, max_length=1024),
                  n=record.integer("n", 0, MAX_IMAGES_RECORDED),
                  target_success_digital=fraction("target_success_digital"),
                  target_success_photo=fraction("target_success_photo"), top1_digital=fraction("top1_digital"),
                  top1_photo=fraction("top1_photo"), top1_n=record.integer("top1_n", 0, MAX_IMAGES_RECORDED),
                  model=record.text("model", max_length=1024))
        expected = row.to_json()
        for key in ("eps", "strength", "case", "kind", "control", "goal"):
            if record.data.get(key) != expected[key]:
                raise record.fail(key, f"{record.data.get(key)!r} contradicts the row's other keys "
                                       f"(expected {expected[key]!r})")
        if transform == DIGITAL and (row.target_success_photo is not None or row.top1_photo is not None):
            raise record.fail("transform", "a digital row has no photo measurement")
        return row


_PATCH_FIELDS = ("method", "eps", "transform", "strength", "case", "kind", "control", "area", "goal", "target",
                 "target_name", "n", "target_success_digital", "target_success_photo", "top1_digital", "top1_photo",
                 "top1_n", "model")

AnyRow = ResultRow | PatchRow
"""A result row of either kind, as the run store and ``results.json`` hold them."""


def row_from_json(data: object, where: str) -> AnyRow:
    """A row of either kind read from a file: a :class:`PatchRow` if its ``case`` is :data:`PATCH_CASE`,
    else a :class:`ResultRow`, every field checked."""
    if isinstance(data, dict) and data.get("case") == PATCH_CASE:
        return PatchRow.from_json(data, where)
    return ResultRow.from_json(data, where)


def read_rows(items: object, where: str) -> list[ResultRow]:
    """The rows of a JSON list (``where`` names it in errors), each checked (:meth:`ResultRow.from_json`)."""
    if not isinstance(items, list):
        raise Record({}, where).fail(None, f"expected a list of rows, got {type(items).__name__}")
    return [ResultRow.from_json(item, f"{where}[{index}]") for index, item in enumerate(items)]
