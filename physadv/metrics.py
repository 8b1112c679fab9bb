"""Accuracy and Kurakin et al.'s destruction rate (their eq. 1), always with the counts.

.. math::
    d = \\frac{\\sum_k C(X^k, y^k)\\,\\overline{C(X^k_{adv}, y^k)}\\,C(T(X^k_{adv}), y^k)}
             {\\sum_k C(X^k, y^k)\\,\\overline{C(X^k_{adv}, y^k)}}

``C`` is 1 when the image is classified correctly (top-1 or top-5) and ``T`` the transformation
(an artificial one, or print-and-photograph). The *prefiltered* case keeps only images whose clean
version is classified correctly and whose adversarial version incorrectly, both top-1 with
confidence ≥ 0.8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from physadv.errors import InputError
from physadv.goals import label_goal
from physadv.results import PHOTO, Case, PatchRow, ResultRow

if TYPE_CHECKING:  # only Predictions.from_probabilities takes a tensor: tables and reports need no torch
    import torch

PREFILTER_CONFIDENCE = 0.8


@dataclass(frozen=True)
class Predictions:
    """Top-5 classes ``(N, 5)`` and their probabilities ``(N, 5)`` for N images (numpy)."""

    classes: np.ndarray
    probabilities: np.ndarray

    @classmethod
    def from_probabilities(cls, probabilities: torch.Tensor, k: int = 5) -> "Predictions":
        """From softmax outputs ``(N, K)``."""
        values, indices = probabilities.float().topk(min(k, probabilities.shape[-1]), dim=-1)
        return cls(indices.cpu().numpy(), values.cpu().numpy())

    @property
    def top1(self) -> np.ndarray:
        return self.classes[:, 0]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities[:, 0]

    def correct(self, labels: np.ndarray, k: int = 1) -> np.ndarray:
        """``(N,)`` bool: the label is among the top ``k`` predictions."""
        labels = np.asarray(labels).reshape(-1, 1)
        return (self.classes[:, :k] == labels).any(axis=1)

    @classmethod
    def concatenate(cls, parts: list["Predictions"]) -> "Predictions":
        """The predictions of several batches, in order (to compute a metric over a streamed set)."""
        return cls(np.concatenate([p.classes for p in parts]), np.concatenate([p.probabilities for p in parts]))

    def subset(self, mask: np.ndarray) -> "Predictions":
        return Predictions(self.classes[mask], self.probabilities[mask])


@dataclass(frozen=True)
class Rate:
    """``numerator / n`` with its counts; ``value`` is NaN when ``n`` is 0 (nothing to measure)."""

    numerator: int
    n: int

    @property
    def value(self) -> float:
        return self.numerator / self.n if self.n else math.nan

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.numerator}/{self.n})" if self.n else "n/a (0/0)"

    def __add__(self, other: "Rate") -> "Rate":
        """The rate over both rates' images (of disjoint sets, e.g. two batches)."""
        return Rate(self.numerator + other.numerator, self.n + other.n)


def format_fraction(value: float | None, n: int | None = None) -> str:
    """A fraction for people: ``0.40``, or ``0.40 (8/20)`` with its denominator ``n``; ``n/a`` (``n/a (n=0)``)
    when undefined, never ``nan``."""
    if value is None or not math.isfinite(value) or n == 0:
        return "n/a" if n is None else f"n/a (n={n})"
    return f"{value:.2f}" if n is None else f"{value:.2f} ({round(value * n)}/{n})"


def format_table(rows: Sequence[ResultRow]) -> str:
    """Result rows as a text table, one line per row: accuracies over the row's images, then the
    destruction rates (Kurakin et al.'s eq. (1)) with their counts and, where measured, adversariality."""
    adversariality = any(r.adversariality is not None for r in rows)
    lines = [f"{'method':<10}{'eps':>5}  {'transform':<11}{'strength':>8}  {'case':<12}{'n':>4}  {'acc clean':>9}"
             f"{'acc adv':>8}{'acc T(adv)':>11}  {'destruction top-1':>18}  {'top-5':>14}"
             + (f"  {'adversariality':>14}" if adversariality else "")]
    for r in rows:
        strength = "" if r.strength is None else f"{r.strength:g}"
        lines.append(f"{r.method:<10}{r.eps:>5g}  {r.transform:<11}{strength:>8}  {r.case:<12}"
                     f"{r.n_images:>4}  {format_fraction(r.top1_clean):>9}{format_fraction(r.top1_adv):>8}"
                     f"{format_fraction(r.top1_transformed):>11}"
                     f"  {format_fraction(r.destruction_top1, r.destruction_top1_n):>18}"
                     f"  {format_fraction(r.destruction_top5, r.destruction_top5_n):>14}"
                     + (f"  {format_fraction(r.adversariality):>14}" if adversariality else ""))
    goals = {r.method: label_goal(r.method, r.eot) for r in rows if r.adversariality is not None}
    targeted = sorted(method for method, goal in goals.items() if goal is not None and goal.targeted)
    if targeted:
        lines.append("adversariality counts successes: " + "; ".join(
            f"{method}: {goals[method].success}" for method in targeted)
            + " (a destruction rate asks only whether the true class came back)")
    return "\n".join(lines)


def _share(value: float | None, n: int) -> str:
    return "n/a" if value is None or not n else f"{value:.2f} ({round(value * n)}/{n})"


def patch_row_line(row: PatchRow) -> str:
    """One result row of a patch run in words, e.g. ``patch area 0.25 n=28: target success digital 0.68
    (19/28), photo 0.61 (17/28); top-1 digital …``."""
    photo = row.transform == PHOTO
    return (f"{row.method:<13} area {row.area:<5g} n={row.n:<4} target success digital "
            f"{_share(row.target_success_digital, row.n)}"
            + (f", photo {_share(row.target_success_photo, row.n)}" if photo else "")
            + f"; top-1 digital {_share(row.top1_digital, row.top1_n)}"
            + (f", photo {_share(row.top1_photo, row.top1_n)}" if photo else ""))


def patch_order(row: PatchRow) -> tuple:
    """Photo rows first, then by area; at each area the patch, its controls, then the clean images."""
    return row.transform != PHOTO, row.area, ("patch", "noise", "crop", "clean").index(row.variant)


def format_patch_table(rows: Sequence[PatchRow]) -> str:
    """Patch rows as text: per area, the patch, its controls and the clean images, with n."""
    head = (f"target success = top-1 is {rows[0].target_name}" if rows and rows[0].target is not None
            else "target success = top-1 is not the true class")
    return "\n".join([f"adversarial patch ({head}); controls: same size and placement",
                      *map(patch_row_line, sorted(rows, key=patch_order))])


def accuracy(predictions: Predictions, labels: np.ndarray, k: int = 1) -> Rate:
    correct = predictions.correct(labels, k)
    return Rate(int(correct.sum()), int(correct.size))


def destruction_rate(clean_correct: np.ndarray, adversarial_correct: np.ndarray,
                     transformed_correct: np.ndarray) -> Rate:
    """Kurakin's eq. (1) from three ``(N,)`` bool arrays of ``C(·, y)``."""
    clean_correct, adversarial_correct, transformed_correct = (
        np.asarray(a, dtype=bool) for a in (clean_correct, adversarial_correct, transformed_correct))
    attacked = clean_correct & ~adversarial_correct
    return Rate(int((attacked & transformed_correct).sum()), int(attacked.sum()))


def prefilter(clean: Predictions, adversarial: Predictions, labels: np.ndarray,
              confidence: float = PREFILTER_CONFIDENCE) -> np.ndarray:
    """``(N,)`` bool: clean right and adversarial wrong (top-1), both with confidence ≥ ``confidence``."""
    return (clean.correct(labels) & (clean.confidence >= confidence)
            & ~adversarial.correct(labels) & (adversarial.confidence >= confidence))


@dataclass(frozen=True)
class DestructionReport:
    """Accuracies and destruction rates of one transformation on one case."""

    case: Case
    n_images: int
    top1_clean: Rate
    top1_adv: Rate
    top1_transformed: Rate
    top5_clean: Rate
    top5_adv: Rate
    top5_transformed: Rate
    destruction_top1: Rate
    destruction_top5: Rate

    def __add__(self, other: "DestructionReport") -> "DestructionReport":
        """The report over both reports' images (of disjoint sets, e.g. two batches; the same case): every
        count adds up, so a streamed set's report is the sum of its batches'."""
        if other.case != self.case:
            raise ValueError(f"cannot add a {other.case} report to a {self.case} one")
        return DestructionReport(self.case, self.n_images + other.n_images,
                                 *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)[2:]))

    def result_row(self, *, method: str, eps: float, transform: str, strength: float | None,
                   **about: Any) -> ResultRow:
        """This report as the row of attack ``(method, eps)`` under ``transform`` at ``strength``; ``about``
        sets the row's optional fields (:class:`~physadv.results.ResultRow`)."""
        def fraction(rate: Rate) -> float | None:
            return None if rate.n == 0 else rate.value

        return ResultRow(
            method=method, eps=eps, transform=transform, strength=strength, case=self.case, n_images=self.n_images,
            top1_clean=fraction(self.top1_clean), top1_adv=fraction(self.top1_adv),
            top1_transformed=fraction(self.top1_transformed),
            top5_clean=fraction(self.top5_clean), top5_adv=fraction(self.top5_adv),
            top5_transformed=fraction(self.top5_transformed),
            destruction_top1=fraction(self.destruction_top1), destruction_top5=fraction(self.destruction_top5),
            destruction_top1_n=self.destruction_top1.n, destruction_top5_n=self.destruction_top5.n, **about)


def destruction_reports(clean: Predictions, adversarial: Predictions, transformed: Predictions,
                        labels: np.ndarray, confidence: float = PREFILTER_CONFIDENCE) -> list[DestructionReport]:
    """The average case (all images) and the prefiltered case, for predictions on clean images,
    their adversarial versions and the transformed adversarial images."""
    labels = np.asarray(labels)
    reports = []
    for case, mask in ((Case.AVERAGE, np.ones(len(labels), dtype=bool)),
                       (Case.PREFILTERED, prefilter(clean, adversarial, labels, confidence))):
        c, a, t, y = clean.subset(mask), adversarial.subset(mask), transformed.subset(mask), labels[mask]
        reports.append(DestructionReport(
            case=case, n_images=int(mask.sum()),
            top1_clean=accuracy(c, y, 1), top1_adv=accuracy(a, y, 1), top1_transformed=accuracy(t, y, 1),
            top5_clean=accuracy(c, y, 5), top5_adv=accuracy(a, y, 5), top5_transformed=accuracy(t, y, 5),
            destruction_top1=destruction_rate(c.correct(y, 1), a.correct(y, 1), t.correct(y, 1)),
            destruction_top5=destruction_rate(c.correct(y, 5), a.correct(y, 5), t.correct(y, 5)),
        ))
    return reports


# Kurakin et al. 2017 (arXiv:1607.02533v4), Table 1, average case: photos (Nexus 5X) of 600-dpi laser
# prints of clean ImageNet images against the digital images, Inception v3, the mean of the six rows:
# top-1 79.3 % → 73.9 %, top-5 95.6 % → 92.0 %.
KURAKIN_CLEAN_DROP_POINTS = {"top1": -5.4, "top5": -3.6}
# The same paper, Table 3, average case: destruction rate of the photo transformation, (top-1, top-5),
# by (method, ε), to print beside ours.
KURAKIN_DESTRUCTION = {("fgsm", 16): (0.125, 0.400), ("fgsm", 8): (0.333, 0.400),
                       ("bim", 16): (0.404, 0.694), ("bim", 8): (0.521, 0.905),
                       ("ll", 16): (0.722, 0.851), ("ll", 8): (0.863, 0.946)}
# The same paper's Tables 1-3 in full, by (method, ε): 102 images per experiment (section 3.2), a Ricoh
# MP C5503 laser at 600 dpi, a Nexus 5X, Inception v3. Tables 1 (average case) and 2 (prefiltered case):
# accuracy (top-1, top-5) of the photos of the clean images, of the photos of the adversarial images, of
# the clean source images and of the adversarial source images. Table 3: destruction rate (top-1, top-5)
# in the average and the prefiltered case. Their prefilter also asks the adversarial image to be wrong in
# top-5; physadv's (prefilter) asks top-1 only.
KURAKIN_IMAGES = 102
KURAKIN_ACCURACY = {
    "average": {("fgsm", 16): ((0.798, 0.919), (0.364, 0.677), (0.853, 0.941), (0.363, 0.588)),
                ("fgsm", 8): ((0.706, 0.931), (0.490, 0.735), (0.775, 0.971), (0.304, 0.578)),
                ("bim", 16): ((0.729, 0.896), (0.490, 0.750), (0.814, 0.951), (0.284, 0.314)),
                ("bim", 8): ((0.725, 0.931), (0.510, 0.873), (0.735, 0.931), (0.265, 0.314)),
                ("ll", 16): ((0.711, 0.900), (0.600, 0.833), (0.794, 0.961), (0.010, 0.010)),
                ("ll", 8): ((0.765, 0.941), (0.696, 0.922), (0.784, 0.980), (0.000, 0.069))},
    "prefiltered": {("fgsm", 16): ((0.818, 0.970), (0.051, 0.394), (1.0, 1.0), (0.0, 0.0)),
                    ("fgsm", 8): ((0.771, 0.958), (0.146, 0.708), (1.0, 1.0), (0.0, 0.0)),
                    ("bim", 16): ((0.933, 0.978), (0.600, 0.878), (1.0, 1.0), (0.0, 0.0)),
                    ("bim", 8): ((0.892, 0.980), (0.647, 0.912), (1.0, 1.0), (0.0, 0.0)),
                    ("ll", 16): ((0.958, 1.000), (0.875, 0.979), (1.0, 1.0), (0.0, 0.0)),
                    ("ll", 8): ((0.960, 1.000), (0.889, 0.970), (1.0, 1.0), (0.0, 0.0))},
}
KURAKIN_DESTRUCTION_PREFILTERED = {("fgsm", 16): (0.051, 0.394), ("fgsm", 8): (0.146, 0.708),
                                   ("bim", 16): (0.600, 0.878), ("bim", 8): (0.647, 0.912),
                                   ("ll", 16): (0.875, 0.979), ("ll", 8): (0.889, 0.970)}
SEVERE_DROP_POINTS = 15.0


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % for z = 1.96); (nan, nan) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def channel_severity(digital_top1: float | None, digital_top5: float | None, photo_top1: float | None,
                     photo_top5: float | None, n: int) -> dict[str, float | int | bool | None]:
    """How much the print → photo channel costs the *clean* images: accuracy on their photos against
    the digital images (the same n observations), the change in points and Kurakin et al.'s anchor.

    ``severe`` is true when top-1 falls by more than :data:`SEVERE_DROP_POINTS` points: such a channel
    destroys clean images too, and its destruction rates are not comparable with the paper's.
    """
    def points(photo: float | None, digital: float | None) -> float | None:
        return None if photo is None or digital is None else round(100 * (photo - digital), 1)

    change1, change5 = points(photo_top1, digital_top1), points(photo_top5, digital_top5)
    return {"n": n, "digital_top1": digital_top1, "digital_top5": digital_top5, "photo_top1": photo_top1,
            "photo_top5": photo_top5, "change_top1_points": change1, "change_top5_points": change5,
            "kurakin_change_top1_points": KURAKIN_CLEAN_DROP_POINTS["top1"],
            "kurakin_change_top5_points": KURAKIN_CLEAN_DROP_POINTS["top5"],
            "severe": change1 is not None and -change1 > SEVERE_DROP_POINTS}


def severity_lines(severity: dict | None) -> list[str]:
    """The channel severity in words: one line, plus a plain warning when it is severe."""
    if not severity or not severity.get("n") or severity.get("change_top1_points") is None:
        return ["channel severity: n/a (no photographed clean images with labels)"]
    s = severity
    lines = [f"channel severity (clean images, photo vs digital, n={s['n']}): top-1 {s['digital_top1']:.3f} → "
             f"{s['photo_top1']:.3f} ({s['change_top1_points']:+.1f} points), top-5 {s['digital_top5']:.3f} → "
             f"{s['photo_top5']:.3f} ({s['change_top5_points']:+.1f} points); Kurakin et al. 2017: "
             f"{s['kurakin_change_top1_points']:+.1f} / {s['kurakin_change_top5_points']:+.1f} points"]
    if s["severe"]:
        lines.append(f"WARNING: this channel destroys clean images too (top-1 falls {-s['change_top1_points']:.1f} "
                     f"points, more than {SEVERE_DROP_POINTS:g}); its destruction rates are not comparable with "
                     "Kurakin et al.'s.")
    return lines


def corruption_errors(errors: dict[str, dict[int, float]],
                      baseline: dict[str, dict[int, float]]) -> tuple[dict[str, float | None], float | None]:
    """ImageNet-C's corruption errors (Hendrycks & Dietterich 2019, eq. 1) and their mean, mCE.

    ``errors[c][s]`` is the model's top-1 error under corruption ``c`` at severity ``s``, ``baseline``
    the same for the baseline model. ``CE_c = Σ_s errors[c][s] / Σ_s baseline[c][s]``; ``mCE = mean_c CE_c``.
    A CE is ``None`` when the baseline makes no error under ``c``; mCE is then ``None`` too.

    Raises:
        InputError: the baseline lacks a corruption or severity the model has.
    """
    ce: dict[str, float | None] = {}
    for name, by_severity in errors.items():
        missing = sorted(set(by_severity) - set(baseline.get(name, {})))
        if missing:
            raise InputError(f"the baseline has no {name} error at severity {', '.join(map(str, missing))}")
        denominator = sum(baseline[name][s] for s in by_severity)
        ce[name] = sum(by_severity.values()) / denominator if denominator > 0 else None
    values = list(ce.values())
    mce = float(np.mean(values)) if values and None not in values else None
    return ce, mce
