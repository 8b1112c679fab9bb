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
from typing import Any, Iterable, Iterator, Sequence, TextIO

import torch

from physadv.attacks import MAX_ITERATIONS, METHODS, Attack, check_input_gradient
from physadv.batches import PendingBatch, run_batches
from physadv.classifiers import Classifier
from physadv.datasets import ImageRef, batch_count, batch_slice
from physadv.distributed import SINGLE, Shard
from physadv.errors import InputError
from physadv.fileio import atomic_write_json, parse_json
from physadv.images import pixel_sha256, to_tensor, to_uint8, write_png
from physadv.jsonstream import atomic_write_json_with_list, scan_json_with_list
from physadv.labels import LabelSpace
from physadv.metrics import Predictions
from physadv.substitute.loading import substitute_provenance
from physadv.transfer import check_sources, source_name, transfer_attack
from physadv.validation import MAX_CLASSES, MAX_SEED, Record, check_seed

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
    oracle: str | None = None  # crafted on a substitute (physadv.substitute): the model it stands in for
    oracle_queries: int | None = None  # and the images that model labelled to train it


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


@dataclass(frozen=True)
class AttackSummary:
    """What :func:`attack_to_folder` returns: the attack and its counts. The per-image records stay in
    ``attack.json``; :func:`stream_attack_set` reads them one at a time."""

    settings: AttackSettings
    weights: str
    images: int
    succeeded: int
    quantisation_undid: int


_PER_IMAGE_SETTINGS = ("model", "method", "eps", "iterations", "source_model")


def _write_record(root: Path, settings: AttackSettings, weights: str, images: Iterable[AttackedImage]) -> None:
    """Write ``root/attack.json`` from ``images``, taken one at a time; each image's entry repeats the attack's
    model, method, ε and iterations so that one entry alone says how its adversarial image was made."""
    stamp = {key: getattr(settings, key) for key in _PER_IMAGE_SETTINGS}
    data = {"settings": asdict(settings), "weights": weights, "images": [], "schema": SCHEMA}
    atomic_write_json_with_list(Path(root) / RECORD_FILE, data, "images",
                                ({**asdict(image), **stamp} for image in images))


def write_attack_set(root: str | Path, attack_set: AttackSet) -> None:
    """Write ``root/attack.json`` (the JSON of ``dataclasses.asdict(attack_set)``, every image stamped
    with the attack's model, method, ε and iterations)."""
    _write_record(Path(root), attack_set.settings, attack_set.weights, attack_set.images)


MAX_IMAGES = 10_000_000  # more than ImageNet-21k: a larger count is a corrupt record


def _scan_record(path: Path) -> Iterator[tuple[str, Any]]:
    """``path``'s images one at a time, then the rest of the record (:func:`scan_json_with_list`)."""
    try:
        yield from scan_json_with_list(path, "images")
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path}: malformed attack record ({error})") from None


def _record_path(root: str | Path) -> Path:
    path = Path(root) / RECORD_FILE
    if not path.is_file():
        raise InputError(f"{root}: not an attack folder (no {RECORD_FILE}; `physadv attack ... --out DIR` writes one)")
    return path


def read_attack_header(root: str | Path) -> tuple[AttackSettings, str]:
    """The settings and weights of ``root/attack.json``, checked; its images are read past, not kept.

    Raises:
        InputError: no such folder or record, a record of another schema, or a malformed setting.
    """
    path = _record_path(root)
    data = next(value for kind, value in _scan_record(path) if kind == "rest")
    record = Record(data, str(path))
    if data.get("schema") != SCHEMA:
        raise InputError(f"{path}: unsupported schema {data.get('schema')!r} (expected {SCHEMA})")
    record.only(("schema", "settings", "weights", "images"))
    record.items("images", 0, MAX_IMAGES)
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
        image_size=settings.integer("image_size", 1, 4096), seed=settings.integer("seed", 0, MAX_SEED),
        eot=eot.data if eot is not None else {}, target=settings.integer("target", 0, MAX_CLASSES - 1, optional=True),
        label=settings.text("label", optional=True, max_length=256),
        source_model=settings.text("source_model", optional=True, max_length=1024),
        oracle=settings.text("oracle", optional=True, max_length=1024),
        oracle_queries=settings.integer("oracle_queries", 0, 2**53, optional=True))
    return attack_settings, record.text("weights")


def _images_of(path: Path) -> Iterator[AttackedImage]:
    seen: set[str] = set()
    images = Record({}, str(path))
    for index, (kind, item) in enumerate(_scan_record(path)):
        if kind != "item":
            break
        if index >= MAX_IMAGES:
            raise images.fail("images", f"more than {MAX_IMAGES} items")
        image = _read_image(Record(item, f"{path}.images[{index}]"))
        if image.id in seen:
            raise images.fail("images", "image ids repeat")
        seen.add(image.id)
        yield image


def stream_attack_set(root: str | Path) -> tuple[AttackSettings, str, Iterator[AttackedImage]]:
    """The settings and weights of ``root/attack.json``, checked, and its images in order, read and
    checked one at a time as the iterator is consumed: memory does not grow with their number.

    Raises:
        InputError: no such folder or record, a record of another schema, a malformed field, repeated ids
            (those of the images as they are read).
    """
    settings, weights = read_attack_header(root)
    return settings, weights, _images_of(_record_path(root))


def read_attack_set(root: str | Path) -> AttackSet:
    """Read ``root/attack.json`` whole, checking every field (an attack folder is untrusted input): for
    the small sets that are printed and photographed; :func:`stream_attack_set` streams large ones.

    Raises:
        InputError: no such folder or record, a record of another schema, or a malformed field.
    """
    settings, weights, images = stream_attack_set(root)
    return AttackSet(settings=settings, weights=weights, images=tuple(images))


def read_attack_summary(root: str | Path) -> AttackSummary:
    """The settings of ``root/attack.json`` and its counts, its images read one at a time."""
    settings, weights, images = stream_attack_set(root)
    count = succeeded = undone = 0
    for image in images:
        count, succeeded, undone = count + 1, succeeded + image.success, undone + image.quantisation_undid
    return AttackSummary(settings, weights, count, succeeded, undone)


def _read_guesses(record: Record, key: str) -> tuple[Guess, ...]:
    guesses = []
    for guess in record.records(key, 1, 1000):
        guess.only(("index", "name", "probability"))
        guesses.append(Guess(guess.integer("index", 0, MAX_CLASSES - 1), guess.text("name", max_length=256),
                             guess.number("probability", 0, 1)))
    return tuple(guesses)


def read_guesses(data: object, where: str) -> tuple[Guess, ...]:
    """A top-5 read back from anywhere but ``attack.json`` (a run's store), checked as there."""
    return _read_guesses(Record({"top5": data}, where), "top5")


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


def _check_resumable(out: Path, settings: AttackSettings, weights: str) -> bool:
    """Whether ``out`` already holds a record of this attack (refusing one of another)."""
    if not (out / RECORD_FILE).is_file():
        return False
    existing, existing_weights = read_attack_header(out)
    if existing != settings or existing_weights != weights:
        raise InputError(f"{out} already holds an attack with other settings ({existing}); "
                         "choose another output folder or delete that one")
    return True


def check_attack_inputs(attack: Attack, images: Sequence[ImageRef], target: int | None,
                        batch_size: int = 1, crafting: Sequence[Classifier] = ()) -> None:
    """Raise :class:`InputError` unless ``attack`` can run on ``images`` (labels, target, at least one
    image, a positive batch size) with the gradients of the ``crafting`` models (each followed once,
    :func:`~physadv.attacks.check_input_gradient`)."""
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
    if target is not None and not attack.goal.needs_target:
        raise InputError(f"a target class goes with the targeted method only: {attack.method} has its own goal "
                         f"({attack.goal.success}); drop --target or use --method target")
    for model in crafting:
        check_input_gradient(model)


def _part_path(out: Path, batch_size: int, number: int) -> Path:
    return out / PARTS_DIR / f"b{batch_size}-{number:07d}.json"


def _read_part(path: Path) -> list[AttackedImage]:
    """The images of one finished batch (a part file holds one batch: small)."""
    try:
        items = Record({"images": parse_json(path.read_text(encoding="utf-8"))}, str(path))
        return [_read_image(item) for item in items.records("images", 0, MAX_IMAGES)]
    except (OSError, ValueError, InputError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"{path}: malformed part record ({error}); delete it to attack that batch again") from None


def _finished_ids(out: Path, images: Sequence[ImageRef], labels: LabelSpace) -> set[str]:
    """Ids of the images ``attack.json`` and the part files not merged yet hold, each checked against the
    image set and the model's ``labels`` (:func:`_check_finished`) before it is kept."""
    refs = {ref.id: ref for ref in images}
    finished = {_check_finished(image, refs, labels, out / RECORD_FILE).id for image in _images_of(out / RECORD_FILE)}
    for path in sorted((out / PARTS_DIR).glob("*.json")):
        finished.update(_check_finished(image, refs, labels, path).id for image in _read_part(path))
    return finished


def _check_finished(image: AttackedImage, refs: dict[str, ImageRef], labels: LabelSpace, where: Path) -> AttackedImage:
    """``image`` as a finished record of this attack: its classes are the model's, named as the model
    names them, and an image of the set has the set's source and label (a record that says otherwise was
    written for other images)."""
    named = [(guess.index, guess.name) for guess in (*image.clean_top5, *image.adv_top5)]
    if image.label is not None:
        named.append((image.label, image.label_name))
    indices = [index for index, _ in named] + ([image.target] if image.target is not None else [])
    ref = refs.get(image.id)
    if max(indices, default=0) >= len(labels):
        problem = f"class {max(indices)} of a model with {len(labels)} classes"
    elif any(labels.name(index) != name for index, name in named):
        index, name = next((index, name) for index, name in named if labels.name(index) != name)
        problem = f"class {index} named {name!r}"[:200] + f", which the model names {labels.name(index)!r}"
    elif ref is not None and (ref.source, ref.label) != (image.source, image.label):
        problem = f"source and label {image.source!r}, {image.label} where the images have {ref.source!r}, {ref.label}"
    else:
        return image
    raise InputError(f"{where}: image {image.id!r}: {problem}; delete "
                     f"{'it' if where.parent.name == PARTS_DIR else 'the folder'} to attack those images again")


class _Sorted:
    """Image records sorted into one file per batch (and one for images outside the set), on disk: the
    merge then holds one batch at a time. Lines are JSON records; a later line of an id wins."""

    def __init__(self, folder: Path, positions: dict[str, int], batch_size: int) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # what a killed merge left
        folder.mkdir(parents=True)
        self.folder, self.positions, self.batch_size = folder, positions, batch_size
        self.open_path: Path | None = None
        self.stream: TextIO | None = None

    def _path(self, number: int | None) -> Path:
        return self.folder / ("outside.jsonl" if number is None else f"{number:07d}.jsonl")

    def add(self, image: AttackedImage, outside: bool = True) -> None:
        """File ``image`` under its batch; an image outside the set is kept only if ``outside``."""
        position = self.positions.get(image.id)
        if position is None and not outside:
            return
        path = self._path(None if position is None else position // self.batch_size)
        if path != self.open_path:  # consecutive images mostly share a batch: one file open at a time
            self.close()
            self.stream, self.open_path = open(path, "a", encoding="utf-8"), path
        self.stream.write(json.dumps(asdict(image)) + "\n")

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self.open_path = None

    def read(self, number: int | None) -> Iterator[AttackedImage]:
        path = self._path(number)
        if not path.is_file():
            return
        with open(path, encoding="utf-8") as stream:
            for line_number, line in enumerate(stream, 1):
                try:
                    yield _read_image(Record(parse_json(line), f"{path} line {line_number}"))
                except ValueError as error:
                    raise InputError(f"{path} line {line_number}: malformed ({error}); delete "
                                     f"{self.folder} and re-run") from None


def _in_order(out: Path, positions: dict[str, int]) -> bool:
    """Whether ``attack.json`` lists the set's images in the set's order, before any image outside it."""
    last, outside = -1, False
    for image in _images_of(out / RECORD_FILE):
        position = positions.get(image.id)
        if position is None:
            outside = True
        elif outside or position < last:
            return False
        else:
            last = position
    return True


def _merged_images(out: Path, images: Sequence[ImageRef], batch_size: int) -> Iterator[AttackedImage]:
    """The finished images in the order of ``images``, then those of ``attack.json`` outside the set (in
    their order there). A batch's part file wins over other records of its images; the records of
    ``attack.json`` and of part files written with another batch size are first sorted by batch on disk."""
    parts = out / PARTS_DIR
    positions = {ref.id: position for position, ref in enumerate(images)}
    other_sizes = [path for path in sorted(parts.glob("*.json")) if not path.name.startswith(f"b{batch_size}-")]
    earlier = _Sorted(parts / "earlier", positions, batch_size)
    try:
        for image in _images_of(out / RECORD_FILE):
            earlier.add(image)
        for path in other_sizes:
            for image in _read_part(path):
                earlier.add(image, outside=False)
    finally:
        earlier.close()
    for number in range(batch_count(len(images), batch_size)):
        finished = {image.id: image for image in earlier.read(number)}
        part = _part_path(out, batch_size, number)
        if part.is_file():
            finished.update((image.id, image) for image in _read_part(part))
        yield from (finished[images[i].id] for i in batch_slice(number, len(images), batch_size)
                    if images[i].id in finished)
    yield from earlier.read(None)


def _merge(out: Path, settings: AttackSettings, weights: str, images: Sequence[ImageRef], batch_size: int) -> None:
    """Write ``attack.json`` from itself and the part files (:func:`_merged_images`), streaming; then the
    parts go. Nothing is rewritten when there are no parts and the record is already in order."""
    if any((out / PARTS_DIR).glob("*.json")) or not _in_order(out, {ref.id: n for n, ref in enumerate(images)}):
        _write_record(out, settings, weights, _merged_images(out, images, batch_size))
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)


def attack_to_folder(classifier: Classifier, attack: Attack, images: Sequence[ImageRef], out: str | Path, *,
                     target: int | None = None, batch_size: int = 16, seed: int = 0, eot: dict | None = None,
                     label: str | None = None, progress: bool = True, workers: int = 0,
                     shard: Shard = SINGLE, sources: Sequence[Classifier] = ()) -> AttackSummary:
    """Attack ``images`` batch by batch (read, centre-cropped to the classifier's size) and write ``out``.

    With ``sources``, the attack is crafted on them (a transfer attack, :mod:`physadv.transfer`) and
    ``classifier`` only evaluates it; ``attack.json`` records both models.

    Batch ``k`` is always images ``k·batch_size …``, whoever attacks it: the outputs do not depend on
    how the work was split (``shard``) or resumed. A repeated call with the same settings attacks
    only the batches not finished yet. Memory does not grow with the number of images beyond their
    ids: each batch's records go to a part file, and rank 0 merges the parts into ``attack.json``
    one batch at a time.

    Args:
        workers: processes that read and resize images (0: in this process).
        shard: this process's share of the batches; every rank of the group must call this.

    Returns:
        the attack's settings and counts, on every rank (the records are in ``attack.json``:
        :func:`stream_attack_set`).

    Raises:
        InputError: an untargeted attack on unlabelled images, a missing target, an unreadable image,
            or ``out`` holding an attack with other settings.
    """
    out = Path(out)
    check_attack_inputs(attack, images, target, batch_size, crafting=sources or [classifier])
    check_seed(seed)  # the range read_attack_header accepts: a folder must read its own record
    crafting = classifier
    if sources:
        check_sources(classifier, sources)
        attack, crafting = transfer_attack(attack, sources), sources[0]
    settings = AttackSettings(model=classifier.name, method=attack.label, eps=float(attack.eps),
                              alpha=attack.step_size, iterations=attack.steps, image_size=classifier.image_size,
                              seed=seed, eot=eot or {}, target=target, label=label,
                              source_model=source_name(sources) if sources else None,
                              **substitute_provenance(sources))

    def pending() -> list[PendingBatch]:
        return [PendingBatch(n, len(batch_slice(n, len(images), batch_size)))
                for n in _pending_batches(out, settings, classifier.weights, images, batch_size,
                                             classifier.labels)]

    def work(batch: PendingBatch, pixels: torch.Tensor) -> None:
        refs = [images[i] for i in batch_slice(batch.number, len(images), batch_size)]
        records = _attack_batch(classifier, attack, refs, pixels, target, out, crafting)
        atomic_write_json(_part_path(out, batch_size, batch.number), [asdict(r) for r in records])

    def merge(_: list[None]) -> AttackSummary:
        _merge(out, settings, classifier.weights, images, batch_size)
        return read_attack_summary(out)

    # Rank 0 alone reads and writes the record; what it refuses (another attack in ``out``, a malformed
    # part) is refused by every rank.
    return run_batches(pending, work, merge, images=images, image_size=classifier.image_size, batch_size=batch_size,
                       shard=shard, workers=workers, progress=progress, total=len(images),
                       desc=f"{attack.label} eps={attack.eps:g}", unit="img")


def _pending_batches(out: Path, settings: AttackSettings, weights: str, images: Sequence[ImageRef],
                     batch_size: int, labels: LabelSpace) -> list[int]:
    """The numbers of the batches of ``images`` that ``out`` does not hold yet; a new ``out`` gets its
    record first (the settings are on disk before any part is), one of another attack is refused."""
    if not _check_resumable(out, settings, weights):
        _write_record(out, settings, weights, ())
    done = _finished_ids(out, images, labels)
    return [n for n in range(batch_count(len(images), batch_size))
            if any(images[i].id not in done for i in batch_slice(n, len(images), batch_size))]


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
