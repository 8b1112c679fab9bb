"""The on-disk result of ``physadv attack``: ``DIR/clean/*.png``, ``DIR/adv/*.png``, ``DIR/attack.json``.

Clean and adversarial PNGs share file names and are 8-bit, at the size they will be printed.
``attack.json`` records the attack and, per image, its label, the clean and adversarial top-5 and
the SHA-256 of both PNGs' pixels. Images are read and attacked batch by batch; every finished batch
leaves its PNGs and a part record in ``DIR/.parts/``, so an interrupted attack keeps what it finished
and a re-run with the same parameters only attacks the rest. Under ``torchrun`` every rank attacks its
share of the batches (:mod:`physadv.distributed`) and rank 0 merges the parts into ``attack.json``.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Sequence

import torch

from physadv.attacks import MAX_ITERATIONS, METHODS, Attack
from physadv.classifiers import Classifier
from physadv.datasets import ImageRef, batch_count, batch_slice, image_batches
from physadv.distributed import SINGLE, Shard
from physadv.errors import InputError
from physadv.fileio import atomic_write_json
from physadv.images import pixel_sha256, to_tensor, to_uint8, write_png
from physadv.metrics import Predictions
from physadv.validation import MAX_CLASSES, Record
from physadv.transfer import check_sources, source_name, transfer_attack

SCHEMA = "physadv.attack/1"
CLEAN_DIR, ADV_DIR, RECORD_FILE, PARTS_DIR = "clean", "adv", "attack.json", ".parts"


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
    clean_sha256: str = ""
    adv_sha256: str = ""


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


MAX_IMAGES = 10_000_000  # more than ImageNet-21k: a larger count is a corrupt record


def read_attack_set(root: str | Path) -> AttackSet:
    """Read ``root/attack.json``, checking every field (an attack folder is untrusted input).

    Raises:
        InputError: no such folder or record, a record of another schema, or a malformed field.
    """
    path = Path(root) / RECORD_FILE
    if not path.is_file():
        raise InputError(f"{root}: not an attack folder (no {RECORD_FILE}; `physadv attack ... --out DIR` writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: malformed attack record ({error})") from None
    record = Record(data, str(path))
    if data.get("schema") != SCHEMA:
        raise InputError(f"{path}: unsupported schema {data.get('schema')!r} (expected {SCHEMA})")
    record.only(("schema", "settings", "weights", "images"))
    settings = record.record("settings")
    settings.only([f.name for f in fields(AttackSettings)])
    eot = settings.record("eot", optional=True)
    method = settings.text("method", max_length=64)
    base_method = method.removesuffix("+eot")
    if base_method not in METHODS:
        raise settings.fail("method", f"{method!r} is not an attack method ({', '.join(METHODS)}, with +eot)")
    attack_settings = AttackSettings(
        model=settings.text("model", max_length=256), method=method, eps=settings.number("eps", 0, 255),
        alpha=settings.number("alpha", 0, 255), iterations=settings.integer("iterations", 0, MAX_ITERATIONS),
        image_size=settings.integer("image_size", 1, 4096), seed=settings.integer("seed", -2**63, 2**64 - 1),
        eot=eot.data if eot is not None else {}, target=settings.integer("target", 0, MAX_CLASSES - 1, optional=True),
        label=settings.text("label", optional=True, max_length=256),
        source_model=settings.text("source_model", optional=True, max_length=1024))
    images = tuple(_read_image(item) for item in record.records("images", 0, MAX_IMAGES))
    if len({image.id for image in images}) != len(images):
        raise record.fail("images", "image ids repeat")
    return AttackSet(settings=attack_settings, weights=record.text("weights"), images=images)


def _read_guesses(record: Record, key: str) -> tuple[Guess, ...]:
    guesses = []
    for guess in record.records(key, 1, 1000):
        guess.only(("index", "name", "probability"))
        guesses.append(Guess(guess.integer("index", 0, MAX_CLASSES - 1), guess.text("name", max_length=256),
                             guess.number("probability", 0, 1)))
    return tuple(guesses)


def _read_image(record: Record) -> AttackedImage:
    record.only([f.name for f in fields(AttackedImage)] + list(_PER_IMAGE_SETTINGS))
    file = record.name("file")
    if not file.endswith(".png"):
        raise record.fail("file", f"{file!r} is not a .png file name")
    return AttackedImage(
        id=record.text("id", max_length=256), file=file, source=record.text("source"),
        label=record.integer("label", 0, MAX_CLASSES - 1, optional=True),
        label_name=record.text("label_name", optional=True, max_length=256),
        wnid=record.text("wnid", optional=True, max_length=64), clean_top5=_read_guesses(record, "clean_top5"),
        adv_top5=_read_guesses(record, "adv_top5"), target=record.integer("target", 0, MAX_CLASSES - 1, optional=True),
        success=record.boolean("success"), quantisation_undid=record.boolean("quantisation_undid"),
        clean_sha256=_read_sha256(record, "clean_sha256"), adv_sha256=_read_sha256(record, "adv_sha256"))


def _read_sha256(record: Record, key: str) -> str:
    value = record.text(key, optional=True, max_length=64) or ""
    if value and not re.fullmatch("[0-9a-f]{64}", value):
        raise record.fail(key, "expected 64 lowercase hex digits")
    return value


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


def check_attack_inputs(attack: Attack, images: Sequence[ImageRef], target: int | None,
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


def _part_path(out: Path, batch_size: int, number: int) -> Path:
    return out / PARTS_DIR / f"b{batch_size}-{number:07d}.json"


def _part_records(out: Path) -> dict[str, AttackedImage]:
    """Images finished by batches not yet merged into ``attack.json``, by id."""
    records: dict[str, AttackedImage] = {}
    for path in sorted((out / PARTS_DIR).glob("*.json")):
        try:
            items = Record({"images": json.loads(path.read_text(encoding="utf-8"))}, str(path))
            records.update({image.id: image for image in map(_read_image, items.records("images", 0, MAX_IMAGES))})
        except (json.JSONDecodeError, UnicodeDecodeError, InputError) as error:
            raise InputError(f"{path}: malformed part record ({error}); delete it to attack that batch again") from None
    return records


def _merge(out: Path, record: AttackSet, images: Sequence[ImageRef]) -> AttackSet:
    """``record`` plus the part records, in the order of ``images`` (earlier images not among them
    last), written to ``attack.json``; then the parts go."""
    finished = {image.id: image for image in record.images} | _part_records(out)
    order = [ref.id for ref in images if ref.id in finished]
    listed = set(order)
    order += [image.id for image in record.images if image.id not in listed]
    merged = record.with_images(tuple(finished[i] for i in order))
    write_attack_set(out, merged)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    return merged


def attack_to_folder(classifier: Classifier, attack: Attack, images: Sequence[ImageRef], out: str | Path, *,
                     target: int | None = None, batch_size: int = 16, seed: int = 0, eot: dict | None = None,
                     label: str | None = None, progress: bool = True, workers: int = 0,
                     shard: Shard = SINGLE, sources: Sequence[Classifier] = ()) -> AttackSet:
    """Attack ``images`` batch by batch (read, centre-cropped to the classifier's size) and write ``out``.

    With ``sources``, the attack is crafted on them (a transfer attack, :mod:`physadv.transfer`) and
    ``classifier`` only evaluates it; ``attack.json`` records both models.

    Batch ``k`` is always images ``k·batch_size …``, whoever attacks it: the outputs do not depend on
    how the work was split (``shard``) or resumed. A repeated call with the same settings attacks
    only the batches not finished yet.

    Args:
        workers: processes that read and resize images (0: in this process).
        shard: this process's share of the batches; every rank of the group must call this.

    Returns:
        the merged record, on every rank.

    Raises:
        InputError: an untargeted attack on unlabelled images, a missing target, an unreadable image,
            or ``out`` holding an attack with other settings.
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
    pending = None
    if shard.is_main:
        record = _resumable(out, settings, classifier.weights) or AttackSet(settings=settings,
                                                                            weights=classifier.weights, images=())
        write_attack_set(out, record)  # the settings are on disk before any part is
        done = {image.id for image in record.images} | set(_part_records(out))
        pending = [n for n in range(batch_count(len(images), batch_size))
                   if any(images[i].id not in done for i in batch_slice(n, len(images), batch_size))]
    pending = shard.broadcast(pending)
    sizes = {n: len(batch_slice(n, len(images), batch_size)) for n in pending}
    with shard.progress(total=len(images), initial=len(images) - sum(sizes.values()), progress=progress,
                        desc=f"{attack.label} eps={attack.eps:g}", unit="img") as bar:
        for round_size, (number, pixels) in zip(shard.round_totals([sizes[n] for n in pending]),
                                                image_batches(images, classifier.image_size, batch_size,
                                                              shard.mine(pending), workers)):
            batch = [images[i] for i in batch_slice(number, len(images), batch_size)]
            records = _attack_batch(classifier, attack, batch, pixels, target, out, crafting)
            atomic_write_json(_part_path(out, batch_size, number), [asdict(r) for r in records])
            bar.update(round_size)
    shard.barrier()
    merged = _merge(out, read_attack_set(out), images) if shard.is_main else None
    shard.barrier()
    return merged or read_attack_set(out)


def _attack_batch(classifier: Classifier, attack: Attack, batch: list[ImageRef], pixels: torch.Tensor,
                  target: int | None, out: Path, crafting: Classifier) -> tuple[AttackedImage, ...]:
    device = classifier.device
    x = to_tensor(pixels.numpy(), device)
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
            quantisation_undid=bool(success_before_rounding[row] & ~success[row]),
            clean_sha256=pixel_sha256(clean_png), adv_sha256=pixel_sha256(adversarial_png)))
    return tuple(records)
