"""Models side by side: the same attacks, ε, transformations and virtual print→photo channel on a base
model and its defended versions, with a gradient-masking check.

Folder::

    OUT/models/<n>-<slug>/   one lab session per model (physadv.lab.session): attacks, sheets, photos, capture
    OUT/comparison.json      the rows below, and the settings
    OUT/comparison.csv
    OUT/report/comparison.html, comparison.pdf   the comparison as a report section

Per model and attack: clean accuracy, white-box adversarial accuracy (digital), accuracy on the
photographed adversarial images and the photo destruction rate (average case), and, for every model
but the base, the accuracy under the same attack crafted on the base model (transfer, digital), or, for a
model given a substitute (``--source-model substitute:DIR``), on that substitute: a black-box attack that
saw only the model's labels (Papernot et al. 2017; ``transfer_source`` and ``oracle_queries`` say which).

**Gradient-masking check.** A transfer attack only approximates the defended model's loss, so on a
model whose gradients are informative it is weaker than the white-box attack: white-box accuracy ≤
transfer accuracy, up to sampling noise. "Black-box attacks beat white-box attacks" is the first
sign of obfuscated gradients listed by Athalye, Carlini & Wagner (2018); defensive distillation is
the textbook case (Carlini & Wagner 2016). A model is flagged when its white-box accuracy exceeds
its transfer accuracy by more than :data:`MASKING_MARGIN` (10 percentage points) *and* by more than
two standard errors of the difference of two binomial proportions over the images (so that a
handful of images cannot raise the flag by chance).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from physadv.catalog import MASKING_MARGIN
from physadv.attacks import Attack
from physadv.classifiers import Classifier, load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.errors import InputError
from physadv.experiment import run_attack_batched
from physadv.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from physadv.images import to_tensor
from physadv.lab.session import AttackPlan, Session, SessionConfig
from physadv.lab.store import RunStore
from physadv.metrics import format_fraction
from physadv.report.content import Report, Section, Table, Text
from physadv.report.html import render_html
from physadv.report.pdf import render_pdf
from physadv.substitute.loading import SubstituteClassifier, check_oracle
from physadv.results import Case, ResultKind, ResultRow

COLUMNS = ["model", "weights", "attack", "eps", "n", "clean", "white_box", "transfer", "photo_clean", "photo_adv",
           "destruction", "destruction_n", "masking_flag", "transfer_source", "oracle_queries"]


@dataclass(frozen=True)
class ModelRef:
    """A model to compare: ``NAME`` or ``NAME@WEIGHTS`` (any ``--model`` form, and a weights file)."""

    model: str
    weights: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelRef":
        model, sep, weights = text.rpartition("@")
        if not sep:
            return cls(text)
        if not model or not weights:
            raise InputError(f"{text!r}: expected MODEL or MODEL@WEIGHTS_FILE")
        return cls(model, weights)

    @property
    def label(self) -> str:
        return f"{self.model}@{Path(self.weights).name}" if self.weights else self.model

    def slug(self, number: int) -> str:
        return f"{number}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", self.label)[:60]


def masking_flag(white_box: float, transfer: float, n: int) -> bool:
    """Whether white-box accuracy exceeds transfer accuracy by more than :data:`MASKING_MARGIN` and two
    standard errors (``n`` images each)."""
    if n < 1:
        return False
    standard_error = math.sqrt((white_box * (1 - white_box) + transfer * (1 - transfer)) / n)
    return white_box - transfer > max(MASKING_MARGIN, 2 * standard_error)


def transfer_accuracy(target: Classifier, source: Classifier, attack: Attack, images: torch.Tensor,
                      labels: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy of ``target`` on ``attack`` crafted on ``source`` (digital)."""
    from physadv.transfer import transfer_attack

    adversarial, _, _ = run_attack_batched(transfer_attack(attack, [source]), target, images, labels, None,
                                           batch_size, source=source)
    return float((target.probabilities(adversarial, batch_size).argmax(-1).cpu() == labels).float().mean())


def _photo_row(store: RunStore, plan: AttackPlan) -> ResultRow | None:
    rows = [r for r in store.rows(ResultKind.CAPTURE, plan.name) if r.case == Case.AVERAGE]
    return rows[0] if rows else None


def _own_substitutes(models: Sequence[ModelRef], substitutes: Sequence[str], base: Classifier,
                     device: torch.device) -> dict[int, SubstituteClassifier]:
    """The substitutes of ``substitutes`` (``substitute:DIR`` specs) by the number of the model each stands in
    for; a substitute of none of ``models`` is refused, before any work."""
    from physadv.substitute.loading import load_substitute
    from physadv.substitute.oracle import OracleIdentity

    loaded = [load_substitute(spec, device) for spec in substitutes]
    if not loaded:
        return {}
    identities = [OracleIdentity.of(base if number == 0 else load_classifier(ref.model, weights=ref.weights))
                  for number, ref in enumerate(models)]
    own: dict[int, SubstituteClassifier] = {}
    for substitute in loaded:
        number = next((n for n, i in enumerate(identities) if substitute.provenance.oracle.same_model(i)), None)
        if number is None:
            raise InputError(f"{substitute.provenance.folder} is a substitute of "
                             f"{substitute.provenance.oracle.describe()}, none of the compared models: a substitute "
                             "stands in for its own oracle only")
        if number in own:
            raise InputError(f"two substitutes of {models[number].label}: give one per model")
        own[number] = substitute
    return own


def compare_models(models: Sequence[ModelRef], out: str | Path, base_config: SessionConfig, device: torch.device,
                   progress: bool = True, substitutes: Sequence[str] = ()) -> list[dict]:
    """Run the comparison into ``out`` (resumable: every model's session resumes) and return its rows.

    ``models[0]`` is the base (undefended) model; ``base_config`` gives the images, attacks (untargeted
    only), transformations and channel, the same for every model. ``substitutes`` (``substitute:DIR`` specs,
    :mod:`physadv.substitute`) each stand in for one of the models: that model's transfer column is the
    attack crafted on its substitute (a black-box attack on it) rather than on the base model.
    """
    if len(models) < 2:
        raise InputError("compare-models needs a base model and at least one other model")
    if any(plan.method not in ("fgsm", "bim") or plan.eot for plan in base_config.attacks):
        raise InputError("compare-models compares untargeted plain attacks (fgsm, bim)")
    out = Path(out)
    base = load_classifier(models[0].model, weights=models[0].weights, device=device)
    own_substitutes = _own_substitutes(models, substitutes, base, device)
    rows: list[dict] = []
    for number, ref in enumerate(models):
        config = replace(base_config, model=ref.model, weights=ref.weights)
        run_dir = out / "models" / ref.slug(number)
        Session(run_dir, config, device, progress, user_model=ref.model).run("compare-models")
        classifier = base if number == 0 else load_classifier(ref.model, weights=ref.weights, device=device)
        if classifier.labels.names != base.labels.names:
            raise InputError(f"{ref.label} has other classes than the base model {models[0].label}")
        source = own_substitutes.get(number) or (None if number == 0 else base)
        if isinstance(source, SubstituteClassifier):
            check_oracle(source, classifier)
        images = prepare(load_image_set(list(config.images), classifier.labels, config.label, config.limit),
                         classifier.image_size)
        x, y = to_tensor([i.image for i in images]), torch.tensor([i.label for i in images])
        with RunStore(run_dir, create=False) as store:
            for plan in config.attacks:
                attack = Attack(plan.method, plan.eps, config.alpha)
                adversarial, _, _ = run_attack_batched(attack, classifier, x, y, None, config.batch_size)
                white = float((classifier.probabilities(adversarial).argmax(-1).cpu() == y).float().mean())
                clean = float((classifier.probabilities(x).argmax(-1).cpu() == y).float().mean())
                transfer = None if source is None else transfer_accuracy(classifier, source, attack, x, y,
                                                                         config.batch_size)
                photo = _photo_row(store, plan)
                rows.append({
                    "model": ref.label, "weights": classifier.weights, "attack": plan.method, "eps": float(plan.eps),
                    "n": len(images), "clean": clean, "white_box": white, "transfer": transfer,
                    "photo_clean": store.photo_clean_accuracy()["top1"],
                    "photo_adv": photo.top1_transformed if photo else None,
                    "destruction": photo.destruction_top1 if photo else None,
                    "destruction_n": photo.destruction_top1_n if photo else None,
                    "masking_flag": bool(transfer is not None and masking_flag(white, transfer, len(images))),
                    "transfer_source": None if source is None else (models[0].label if source is base else source.name),
                    "oracle_queries": source.provenance.oracle_queries if isinstance(source, SubstituteClassifier)
                    else None})
    write_comparison(out, rows, base_config)
    return rows


def format_comparison(rows: Sequence[dict]) -> str:
    header = (f"{'model':<34}{'attack':<7}{'eps':>4}  {'clean':>6}{'white-box':>10}{'transfer':>9}"
              f"{'photo clean':>12}{'photo adv':>10}{'destruction':>18}  flag")
    lines = [header]
    for r in rows:
        lines.append(f"{r['model'][:33]:<34}{r['attack']:<7}{r['eps']:>4g}  {format_fraction(r['clean']):>6}"
                     f"{format_fraction(r['white_box']):>10}{format_fraction(r['transfer']):>9}"
                     f"{format_fraction(r['photo_clean']):>12}{format_fraction(r['photo_adv']):>10}"
                     f"{format_fraction(r['destruction'], r['destruction_n'] or 0):>18}  "
                     f"{'GRADIENT MASKING?' if r['masking_flag'] else ''}")
    return "\n".join(lines) + (
        f"\n(top-1 accuracies; transfer: the attack crafted on {rows[0]['model']}"
        f"{' or on the model’s substitute' if any(r.get('oracle_queries') is not None for r in rows) else ''}; "
        "photo: the virtual print→photo "
        f"channel; flag: white-box accuracy above transfer accuracy by > {MASKING_MARGIN:.0%} and 2 standard errors)"
        if rows else "")


def write_comparison(out: Path, rows: Sequence[dict], config: SessionConfig) -> None:
    atomic_write_json(out / "comparison.json", {"config": config.to_json(), "masking_margin": MASKING_MARGIN,
                                                 "rows": list(rows)})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "comparison.csv", buffer.getvalue())
    flagged = sorted({r["model"] for r in rows if r["masking_flag"]})
    own_substitute = ("; or on the model's own substitute, as transfer_source says in comparison.csv"
                      if any(r.get("oracle_queries") is not None for r in rows) else "")
    table = Table(caption="Per model and attack: top-1 accuracy clean, under the white-box attack, under the same "
                          f"attack crafted on the base model {rows[0]['model']} (transfer{own_substitute}), on photos "
                          "of the adversarial "
                          "images, and the photo destruction rate (average case).",
                  header=("model", "attack", "ε", "clean", "white-box", "transfer", "photo clean", "photo adv",
                          "destruction"),
                  body=tuple((r["model"], r["attack"], f"{r['eps']:g}", format_fraction(r["clean"]),
                              format_fraction(r["white_box"]), format_fraction(r["transfer"]),
                              format_fraction(r["photo_clean"]), format_fraction(r["photo_adv"]),
                              format_fraction(r["destruction"], r["destruction_n"] or 0)) for r in rows),
                  key_columns=3)
    verdict = (Text(f"Gradient masking suspected for {', '.join(flagged)}: white-box accuracy exceeds transfer "
                    f"accuracy by more than {MASKING_MARGIN:.0%} (and two standard errors). Its white-box robustness "
                    "is not evidence of robustness.", missing=True) if flagged
               else Text("No model's white-box accuracy exceeds its transfer accuracy by more than "
                         f"{MASKING_MARGIN:.0%}: no sign of gradient masking."))
    report = Report(title="physadv model comparison", subtitle=f"{len(rows[0:1]) and rows[0]['n']} images, seed "
                                                                f"{config.seed}",
                    sections=(Section("Defences, digitally and through the channel", (table, verdict)),))
    atomic_write_text(out / "report" / "comparison.html", render_html(report))
    atomic_write_bytes(out / "report" / "comparison.pdf", render_pdf(report))


def parse_models(texts: Sequence[str]) -> list[ModelRef]:
    refs = [ModelRef.parse(t) for t in texts]
    labels = [r.label for r in refs]
    if len(set(labels)) != len(labels):
        raise InputError(f"models repeat: {', '.join(labels)}")
    return refs

