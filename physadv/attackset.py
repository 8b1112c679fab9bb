"""The on-disk result of ``physadv attack``: ``DIR/clean/*.png``, ``DIR/adv/*.png``, ``DIR/attack.json``.

Clean and adversarial PNGs share file names and are 8-bit, at the size they will be printed.
``attack.json`` records the attack and, per image, its label and the clean and adversarial top-5.
It is rewritten atomically after every batch, so an interrupted attack keeps what it finished and a
re-run with the same parameters only attacks the rest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from physadv.attacks import Attack
from physadv.classifiers import Classifier
from physadv.datasets import LabelledImage
from physadv.errors import InputError
from physadv.fileio import atomic_write_json
from physadv.images import to_tensor, to_uint8, write_png
from physadv.metrics import Predictions
from physadv.transfer import check_sources, source_name, transfer_attack

SCHEMA = "physadv.attack/1"
CLEAN_DIR, ADV_DIR, RECORD_FILE = "clean", "adv", "attack.json"


@dataclass(frozen=True)
class Guess:
    """One of the top-5: class index, class name, probability."""

    index: int
    name: str
    probability: float


@dataclass(frozen=True)
class AttackedImage:
    id: str
    file: str
    source: str
    label: int | None
    label_name: str | None
    wnid: str | None
    clean_top5: tuple[Guess, ...]
    adv_top5: tuple[Guess, ...]
    target: int | None
    success: bool
    quantisation_undid: bool


@dataclass(frozen=True)
class AttackSettings:
    """What must match for a re-run to resume an existing folder."""

    model: str
    method: str
    eps: float
    alpha: float
    iterations: int
    image_size: int
    seed: int
    eot: dict = field(default_factory=dict)
    target: int | None = None
    label: str | None = None
    source_model: str | None = None  # transfer attacks: the model(s) it was crafted on, e.g. "a+b"


@dataclass(frozen=True)
class AttackSet:
    settings: AttackSettings
    weights: str
    images: tuple[AttackedImage, ...]
    schema: str = SCHEMA

    def clean_path(self, root: Path, image: AttackedImage) -> Path:
        return Path(root) / CLEAN_DIR / image.file

    def adversarial_path(self, root: Path, image: AttackedImage) -> Path:
        return Path(root) / ADV_DIR / image.file

    def with_images(self, images: tuple[AttackedImage, ...]) -> "AttackSet":
        return replace(self, images=images)


_PER_IMAGE_SETTINGS = ("model", "method", "eps", "iterations", "source_model")


def write_attack_set(root: str | Path, attack_set: AttackSet) -> None:
    """Write ``root/attack.json``; each image's entry repeats the attack's model, method, ε and
    iterations so that one entry alone says how its adversarial image was made."""
    data = asdict(attack_set)
    stamp = {key: data["settings"][key] for key in _PER_IMAGE_SETTINGS}
    data["images"] = [{**image, **stamp} for image in data["images"]]
    atomic_write_json(Path(root) / RECORD_FILE, data)


def read_attack_set(root: str | Path) -> AttackSet:
    """Read ``root/attack.json``.

    Raises:
        InputError: no such folder or record, or a record of another schema.
    """
    path = Path(root) / RECORD_FILE
    if not path.is_file():
        raise InputError(f"{root}: not an attack folder (no {RECORD_FILE}; `physadv attack ... --out DIR` writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise InputError(f"{path}: unsupported schema {data.get('schema')!r} (expected {SCHEMA})")
        images = tuple(
            AttackedImage(**{**{k: v for k, v in item.items() if k not in _PER_IMAGE_SETTINGS},
                             "clean_top5": tuple(Guess(**g) for g in item["clean_top5"]),
                             "adv_top5": tuple(Guess(**g) for g in item["adv_top5"])})
            for item in data["images"])
        return AttackSet(settings=AttackSettings(**data["settings"]), weights=data["weights"], images=images)
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: malformed attack record ({error})") from None


def _guesses(classifier: Classifier, predictions: Predictions, row: int) -> tuple[Guess, ...]:
    return tuple(Guess(int(c), classifier.labels.name(int(c)), round(float(p), 6))
                 for c, p in zip(predictions.classes[row], predictions.probabilities[row]))


def _resumable(out: Path, settings: AttackSettings, weights: str) -> AttackSet | None:
    if not (out / RECORD_FILE).is_file():
        return None
    existing = read_attack_set(out)
    if existing.settings != settings or existing.weights != weights:
        raise InputError(f"{out} already holds an attack with other settings ({existing.settings}); "
                         "choose another output folder or delete that one")
    return existing


def check_attack_inputs(attack: Attack, images: Sequence[LabelledImage], target: int | None,
                        batch_size: int = 1) -> None:
    """Raise :class:`InputError` unless ``attack`` can run on ``images`` (labels, target, at least one
    image, a positive batch size)."""
    if not images:
        raise InputError("no images to attack")
    if batch_size < 1:
        raise InputError(f"batch size must be ≥ 1, got {batch_size}")
    if attack.goal.needs_labels:
        unlabelled = [i.id for i in images if i.label is None]
        if unlabelled:
            raise InputError(f"{attack.method} needs the true class of every image; no label for "
                             f"{', '.join(unlabelled[:5])}{' …' if len(unlabelled) > 5 else ''} "
                             "(name the class in the file/folder name or pass --label)")
    if attack.goal.needs_target and target is None:
        raise InputError("the targeted method needs a target class (--target CLASS)")


def attack_to_folder(classifier: Classifier, attack: Attack, images: Sequence[LabelledImage], out: str | Path, *,
                     target: int | None = None, batch_size: int = 16, seed: int = 0, eot: dict | None = None,
                     label: str | None = None, progress: bool = True, sources: Sequence[Classifier] = ()) -> AttackSet:
    """Attack prepared ``images`` batch by batch and write ``out`` (PNGs and ``attack.json``).

    With ``sources``, the attack is crafted on them (a transfer attack, :mod:`physadv.transfer`) and
    ``classifier`` only evaluates it; ``attack.json`` records both models.

    ``attack.json`` is rewritten after every batch, so an interrupted call keeps the finished
    batches and a repeated call with the same settings attacks only the rest.

    Raises:
        InputError: an untargeted attack on unlabelled images, a missing target, or ``out`` holding an
            attack with other settings.
    """
    out = Path(out)
    check_attack_inputs(attack, images, target, batch_size)
    crafting = classifier
    if sources:
        check_sources(classifier, sources)
        attack, crafting = transfer_attack(attack, sources), sources[0]
    settings = AttackSettings(model=classifier.name, method=attack.label, eps=float(attack.eps),
                              alpha=attack.step_size, iterations=attack.steps, image_size=classifier.image_size,
                              seed=seed, eot=eot or {}, target=target, label=label,
                              source_model=source_name(sources) if sources else None)
    record = _resumable(out, settings, classifier.weights) or AttackSet(settings=settings, weights=classifier.weights, images=())
    done = {image.id for image in record.images}
    todo = [image for image in images if image.id not in done]
    with tqdm(total=len(images), initial=len(images) - len(todo), desc=f"{attack.label} eps={attack.eps:g}",
              unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            record = record.with_images(record.images + _attack_batch(classifier, attack, batch, target, out,
                                                                             crafting))
            write_attack_set(out, record)
            bar.update(len(batch))
    return record


def _attack_batch(classifier: Classifier, attack: Attack, batch: list[LabelledImage], target: int | None,
                  out: Path, crafting: Classifier) -> tuple[AttackedImage, ...]:
    device = classifier.device
    x = to_tensor([i.image for i in batch], device)
    labels = torch.tensor([i.label if i.label is not None else 0 for i in batch], device=device)
    targets = torch.full_like(labels, target) if target is not None else None
    result = attack(crafting, x, labels, targets)
    clean = Predictions.from_probabilities(classifier.probabilities(result.clean))
    adversarial_probabilities = classifier.probabilities(result.adversarial)
    adversarial = Predictions.from_probabilities(adversarial_probabilities)
    success = result.succeeded(adversarial_probabilities.argmax(-1))
    success_before_rounding = result.succeeded(classifier.probabilities(result.unquantised).argmax(-1))
    records = []
    for row, (image, clean_png, adversarial_png) in enumerate(zip(batch, to_uint8(result.clean),
                                                                  to_uint8(result.adversarial))):
        file = f"{image.id}.png"
        write_png(out / CLEAN_DIR / file, clean_png)
        write_png(out / ADV_DIR / file, adversarial_png)
        label = image.label
        records.append(AttackedImage(
            id=image.id, file=file, source=image.source, label=label,
            label_name=classifier.labels.name(label) if label is not None else None,
            wnid=classifier.labels.wnid(label) if label is not None else None,
            clean_top5=_guesses(classifier, clean, row), adv_top5=_guesses(classifier, adversarial, row),
            target=int(result.goal[row]) if result.targeted else None,
            success=bool(success[row]) if (label is not None or result.targeted) else False,
            quantisation_undid=bool(success_before_rounding[row] & ~success[row])))
    return tuple(records)
