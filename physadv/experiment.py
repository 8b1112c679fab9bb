"""Kurakin et al.'s artificial-transformation experiment: attack → transform → destruction rate.

For every attack (method, ε) the adversarial images are made once; every transformation at every
strength is then applied to them and to nothing else, and :func:`physadv.metrics.destruction_reports`
gives one row for the average case and one for the prefiltered case.

Images stream through batch by batch: each batch is read once, attacked by every attack, and only
its predictions are kept (``OUT/.parts/``, a few hundred bytes per image and attack), never the
images. Under ``torchrun`` the ranks share the batches and rank 0 turns the parts into the rows.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from physadv.attacks import Attack, check_input_gradient
from physadv.catalog import CLEAN_METHOD
from physadv.channel import ChannelTransform, is_corruption, transform_kind
from physadv.classifiers import Classifier
from physadv.corruptions import SEVERITIES
from physadv.batches import PendingBatch, run_batches
from physadv.datasets import ImageRef, batch_count, batch_slice, sources_digest
from physadv.distributed import SINGLE, Shard
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, parse_json
from physadv.images import to_tensor
from physadv.metrics import (
    PREFILTER_CONFIDENCE,
    DestructionReport,
    Predictions,
    corruption_errors,
    destruction_reports,
)
from physadv.substitute.loading import substitute_provenance
from physadv.results import Case, ResultRow, read_rows
from physadv.transfer import check_sources, source_name, transfer_attack

RESULTS_JSON, RESULTS_CSV, PARTS_DIR = "results.json", "results.csv", ".parts"
RESULT_COLUMNS = ["method", "eot", "eps", "iterations", "transform", "strength", "case", "n_images", "top1_clean", "top1_adv",
           "top1_transformed", "top5_clean", "top5_adv", "top5_transformed", "destruction_top1",
           "destruction_top5", "destruction_top1_n", "destruction_top5_n", "quantisation_undid", "model",
           "source_model"]
"""The leading columns of ``results.csv``; extra keys (e.g. ``adversariality``) follow, sorted."""


@dataclass(frozen=True)
class ExperimentConfig:
    """What to run.

    Attributes:
        attacks: the attacks, each applied to every image (their ε in 0–255 units).
        transforms: transformation name → strengths (see :data:`physadv.channel.TRANSFORMS`).
        target: class index for the ``target`` method.
        batch_size: images per attack batch.
        seed: seeds the noise transformation.
        attack_extras: ``(attack, classifier, adversarial (B, 3, H, W), goals (B,)) → {key: (B,) values}``
            per batch; every row of that attack gets each key's mean over all images (e.g. adversariality).
        clean_rows: also transform the clean images, in rows with method ``none`` and ε 0: their
            ``top1_transformed`` is the accuracy under each transformation (ImageNet-C's corruption accuracy).
        sources: empty for white-box attacks; else the model(s) the attacks are crafted on (transfer,
            :mod:`physadv.transfer`), the classifier only evaluating them.
    """

    attacks: Sequence[Attack]
    transforms: dict[str, Sequence[float]]
    target: int | None = None
    batch_size: int = 16
    seed: int = 0
    prefilter_confidence: float = PREFILTER_CONFIDENCE
    attack_extras: Callable[[Attack, Classifier, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]] | None = field(
        default=None, compare=False)
    clean_rows: bool = False
    sources: Sequence[Classifier] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in self.transforms:
            transform_kind(name)
        if any(a.goal.needs_target for a in self.attacks) and self.target is None:
            raise InputError("the targeted method needs a target class (--target CLASS)")
        if self.target is not None and not any(a.goal.needs_target for a in self.attacks):
            raise InputError("a target class goes with the targeted method only: add target to --methods or "
                             "drop --target")
        if not any(self.transforms.values()):
            raise InputError("no transformations given (e.g. --transforms brightness,jpeg)")
        if not self.attacks and not self.clean_rows:
            raise InputError("no attacks given (e.g. --methods fgsm,bim --eps 8,16)")
        if self.batch_size < 1:
            raise InputError(f"batch size must be ≥ 1, got {self.batch_size}")


@dataclass(frozen=True)
class _Untouched(Attack):
    """The clean images themselves (FGSM at ε = 0 takes no step), labelled :data:`CLEAN_METHOD`: the
    pseudo-attack of :attr:`ExperimentConfig.clean_rows`, streamed and resumed like the real ones."""

    @property
    def label(self) -> str:
        return CLEAN_METHOD


UNTOUCHED = _Untouched("fgsm", 0)


def _predict(classifier: Classifier, images: torch.Tensor) -> Predictions:
    return Predictions.from_probabilities(classifier.probabilities(images, len(images)))


def _noise_seed(seed: int, first_image: int) -> int:
    """Seed of the noise of the batch starting at image ``first_image``: fixed by the batch, so the
    noise does not depend on which batches came before or which process ran them."""
    return int(np.random.SeedSequence([seed, first_image]).generate_state(1)[0])


def transformed_predictions(classifier: Classifier, adversarial: torch.Tensor, transforms: dict[str, Sequence[float]],
                            seed: int, first_image: int) -> dict[tuple[str, float], Predictions]:
    """Predictions on one batch of adversarial images ``(B, 3, H, W)`` (on the classifier's device)
    under every transformation and strength; ``first_image`` (the batch's position) seeds the noise."""
    predictions = {}
    for name, strengths in transforms.items():
        for strength in strengths:
            generator = torch.Generator(device=classifier.device).manual_seed(_noise_seed(seed, first_image))
            predictions[(name, float(strength))] = _predict(classifier, ChannelTransform(name, strength)(adversarial,
                                                                                                         generator))
    return predictions


def _reports(clean: Predictions, adversarial: Predictions, transformed: dict[tuple[str, float], Predictions],
             labels: np.ndarray, confidence: float) -> dict[tuple[str, float], list[DestructionReport]]:
    return {key: destruction_reports(clean, adversarial, predictions, labels, confidence)
            for key, predictions in transformed.items()}


def _rows(reports: dict[tuple[str, float], list[DestructionReport]], attack: Attack, **about: Any) -> list[ResultRow]:
    return [report.result_row(method=attack.label, eot=attack.eot or "", eps=float(attack.eps),
                              iterations=attack.steps, transform=name, strength=strength, **about)
            for (name, strength), cases in reports.items() for report in cases]


def _add_reports(totals: dict[tuple[str, float], list[DestructionReport]],
                 batch: dict[tuple[str, float], list[DestructionReport]]) -> dict[tuple[str, float], list[DestructionReport]]:
    """``totals`` plus one batch's reports: their counts add up (:meth:`DestructionReport.__add__`)."""
    return {key: [a + b for a, b in zip(totals[key], cases)] if key in totals else cases for key, cases in batch.items()}


def transformation_rows(classifier: Classifier, batches: Iterable[tuple[torch.Tensor, torch.Tensor, np.ndarray]],
                        transforms: dict[str, Sequence[float]], attack: Attack, *, seed: int = 0,
                        confidence: float = PREFILTER_CONFIDENCE, **about: Any) -> list[ResultRow]:
    """Rows of ``attack`` under every transformation and strength, from ``batches`` of clean images
    ``(B, 3, H, W)``, their adversarial versions ``(B, 3, H, W)`` and labels ``(B,)``, as
    :func:`experiment_to_folder` computes them (the same noise for the same batches), one batch in
    memory at a time; ``about`` sets the rows' other optional fields (e.g. ``adversariality``)."""
    totals: dict[tuple[str, float], list[DestructionReport]] = {}
    first_image = 0
    for clean, adversarial, labels in batches:
        x = adversarial.to(classifier.device)
        totals = _add_reports(totals, _reports(
            _predict(classifier, clean.to(classifier.device)), _predict(classifier, x),
            transformed_predictions(classifier, x, transforms, seed, first_image), labels, confidence))
        first_image += len(labels)
    return _rows(totals, attack, **about)


def run_attack_batched(attack: Attack, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                       target: int | None, batch_size: int,
                       source: Classifier | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Adversarial versions of images already in memory, ``(N, 3, H, W)``, with the attack's goals
    ``(N,)`` (both on the CPU) and how many attacks the 8-bit rounding undid on ``classifier``.

    ``source`` (default ``classifier``) is the model the attack is called with: a transfer attack's
    first source, whose labels and least-likely classes define the goals. For image sets on disk,
    :func:`experiment_to_folder` streams instead."""
    adversarial, goals, undone = [], [], 0
    for number in range(batch_count(len(images), batch_size)):
        part = batch_slice(number, len(images), batch_size)
        x = images[part.start:part.stop].to(classifier.device)
        y = labels[part.start:part.stop].to(classifier.device)
        targets = torch.full_like(y, target) if target is not None else None
        result = attack(source if source is not None else classifier, x, y, targets)
        before = result.succeeded(classifier.probabilities(result.unquantised).argmax(-1))
        after = result.succeeded(classifier.probabilities(result.adversarial).argmax(-1))
        undone += int((before & ~after).sum())
        adversarial.append(result.adversarial.cpu())
        goals.append(result.goal.cpu())
    return torch.cat(adversarial), torch.cat(goals), undone


def _attack_key(attack: Attack) -> tuple[str, float]:
    return attack.label, float(attack.eps)


def _part_path(out: Path, attack: Attack, batch_size: int, number: int) -> Path:
    method, eps = _attack_key(attack)
    return out / PARTS_DIR / f"{method}_eps{eps!r}" / f"b{batch_size}-{number:07d}.npz"


def _save_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _attack_batch(classifier: Classifier, config: ExperimentConfig, attacks: Sequence[Attack], x: torch.Tensor,
                  labels: torch.Tensor, first_image: int, paths: Sequence[Path], crafting: Classifier) -> None:
    """Attack one batch ``x`` (B, 3, H, W) with each of ``attacks``, crafted on ``crafting`` (``classifier``
    itself, or a transfer attack's first source), and save each attack's predictions on ``classifier``."""
    clean = _predict(classifier, x)
    for attack, path in zip(attacks, paths):
        targets = torch.full_like(labels, config.target) if config.target is not None else None
        result = attack(classifier if attack is UNTOUCHED else crafting, x, labels, targets)
        before = result.succeeded(classifier.probabilities(result.unquantised).argmax(-1))
        adversarial_probabilities = classifier.probabilities(result.adversarial)
        after = result.succeeded(adversarial_probabilities.argmax(-1))
        arrays = {"clean_classes": clean.classes, "clean_probabilities": clean.probabilities,
                  "undone": (before & ~after).cpu().numpy()}
        predictions = {"adv": Predictions.from_probabilities(adversarial_probabilities),
                       **{f"t{n}": p for n, p in enumerate(transformed_predictions(
                           classifier, result.adversarial, config.transforms, config.seed, first_image).values())}}
        for name, p in predictions.items():
            arrays[f"{name}_classes"], arrays[f"{name}_probabilities"] = p.classes, p.probabilities
        if config.attack_extras is not None and attack is not UNTOUCHED:
            for name, values in config.attack_extras(attack, classifier, result.adversarial, result.goal).items():
                arrays[f"extra_{name}"] = torch.as_tensor(values).float().cpu().numpy()
        _save_predictions(path, arrays)


def _load_part(path: Path, size: int, names: set[str] | None, classes: int) -> dict[str, np.ndarray]:
    """The arrays of one batch's part, checked (:func:`_part_problem`): a part left by an interrupted
    run is a file like any other, and a damaged one must not become rows."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: unreadable part ({error}); delete it to attack that batch again") from None
    problem = _part_problem(arrays, size, names, classes)
    if problem:
        raise InputError(f"{path}: not a part of this experiment ({problem}); delete it to attack that batch again")
    return arrays


def _part_problem(arrays: dict[str, np.ndarray], size: int, names: set[str] | None, classes: int) -> str | None:
    """What is wrong with a part's arrays, if anything: each of the ``size`` images has top-k classes
    (whole numbers in [0, ``classes``), the model's classes, 1 ≤ k ≤ 5) with probabilities in [0, 1], an
    ``undone`` flag and finite extras; and the part holds the arrays of the attack's other parts (``names``)."""
    if "clean_classes" not in arrays:
        return "no clean_classes"
    if names is not None and arrays.keys() != names:
        return f"arrays {sorted(arrays)} where the other parts have {sorted(names)}"
    for name, array in arrays.items():
        if name.endswith("_classes"):
            probabilities = arrays.get(name.removesuffix("_classes") + "_probabilities")
            fits = (array.dtype.kind in "iu" and array.ndim == 2 and array.shape[0] == size
                    and 1 <= array.shape[1] <= 5 and probabilities is not None and probabilities.shape == array.shape)
            if fits and array.size and not 0 <= array.min() <= array.max() < classes:
                return f"array {name!r} holds classes in [{array.min()}, {array.max()}], the model has {classes}"
        elif name.endswith("_probabilities"):
            fits = (name.removesuffix("_probabilities") + "_classes" in arrays  # whose shape is checked there
                    and array.dtype.kind == "f" and bool(np.isfinite(array).all())
                    and (array.size == 0 or 0 <= array.min() <= array.max() <= 1))
        elif name == "undone":
            fits = array.dtype == np.bool_ and array.shape == (size,)
        elif name.startswith("extra_"):
            fits = array.dtype.kind == "f" and array.shape == (size,) and bool(np.isfinite(array).all())
        else:
            return f"unknown array {name!r}"
        if not fits:
            return f"array {name!r} of {array.dtype} {array.shape} does not fit {size} images"
    return None


def _attack_rows(config: ExperimentConfig, attack: Attack, paths: Sequence[Path], parts: Sequence[range],
                 labels: np.ndarray, models: dict[str, str], classes: int) -> list[ResultRow]:
    """The rows of one attack from its parts (one per batch, images ``parts``), read one at a time: the
    counts of :func:`destruction_reports` add up over batches, and of each image only its extras stay."""
    strengths = [(name, float(strength)) for name, values in config.transforms.items() for strength in values]
    totals: dict[tuple[str, float], list[DestructionReport]] = {}
    names: set[str] | None = None
    undone, extras = 0, {}
    for path, part in zip(paths, parts):
        arrays = _load_part(path, len(part), names, classes)
        names = set(arrays)

        def predictions(name: str) -> Predictions:
            return Predictions(arrays[f"{name}_classes"], arrays[f"{name}_probabilities"])

        batch = _reports(predictions("clean"), predictions("adv"),
                         {key: predictions(f"t{n}") for n, key in enumerate(strengths)},
                         labels[part.start:part.stop], config.prefilter_confidence)
        totals = _add_reports(totals, batch)
        undone += int(arrays["undone"].sum())
        for name, values in arrays.items():
            if name.startswith("extra_"):
                extras.setdefault(name.removeprefix("extra_"), []).append(values)
    return _rows(totals, attack, quantisation_undid=undone, **models,
                 **{name: float(np.concatenate(values).mean()) for name, values in extras.items()})


def write_results(out: Path, config_key: dict, rows: Sequence[ResultRow], corruptions: dict | None = None) -> None:
    """Write ``out/results.json`` (``config_key``, the rows and, when given, the ImageNet-C summary of
    :func:`corruption_summary`) and ``out/results.csv``, each atomically."""
    records = [row.to_json() for row in rows]
    atomic_write_json(out / RESULTS_JSON, {"config": config_key, "rows": records,
                                           **({"corruptions": corruptions} if corruptions else {})})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS + sorted({k for r in records for k in r}
                                                                       - set(RESULT_COLUMNS)))
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(out / RESULTS_CSV, buffer.getvalue())


def corruption_top1_errors(rows: Sequence[ResultRow]) -> dict[str, dict[int, float]]:
    """Top-1 error per ImageNet-C corruption and severity, from the clean images' rows (average case)."""
    errors: dict[str, dict[int, float]] = {}
    for row in rows:
        if (row.method != CLEAN_METHOD or row.case != Case.AVERAGE or not is_corruption(row.transform)
                or row.top1_transformed is None):
            continue
        if row.strength not in SEVERITIES:
            raise InputError(f"row {row.transform} severity {row.strength!r}: not a severity 1-5")
        errors.setdefault(row.transform.split(":", 1)[1], {})[int(row.strength)] = 1 - row.top1_transformed
    return errors


def corruption_summary(rows: Sequence[ResultRow], baseline: Baseline | None = None) -> dict | None:
    """ImageNet-C summary of the clean images' rows: accuracy per corruption (mean over its severities)
    and over all of them; with a baseline, each corruption's CE and the mCE (Hendrycks & Dietterich 2019).
    ``None`` when the rows hold no corruption."""
    errors = corruption_top1_errors(rows)
    if not errors:
        return None
    summary: dict = {
        "corruption_accuracy": float(np.mean([1 - e for by in errors.values() for e in by.values()])),
        "per_corruption": {name: {"accuracy": float(np.mean([1 - e for e in by.values()])),
                                  "severities": sorted(by)} for name, by in errors.items()}}
    if baseline is not None:
        ce, mce = corruption_errors(errors, corruption_top1_errors(baseline.rows))
        for name, value in ce.items():
            summary["per_corruption"][name]["ce"] = value
        summary.update(mce=mce, baseline={"model": baseline.model, "file": baseline.source})
    return summary


@dataclass(frozen=True)
class Baseline:
    """The results of the model that ImageNet-C errors are relative to (``physadv experiment --baseline``)."""

    model: str
    source: str
    rows: list[ResultRow]


def read_results(path: Path) -> tuple[dict, list[ResultRow]] | None:
    """The config and rows of a ``results.json`` of ``physadv experiment``, checked; ``None`` if there is none."""
    if not path.is_file():
        return None
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable results file ({error})") from None
    if not isinstance(data, dict) or "rows" not in data:
        raise InputError(f"{path}: not a physadv results file (no list of rows)")
    config = data.get("config")
    return config if isinstance(config, dict) else {}, read_rows(data["rows"], f"{path}: rows")


def _with_images_digest(config: dict) -> dict:
    """A results file's ``config`` with its list of image sources (as earlier versions recorded them)
    replaced by their :func:`~physadv.datasets.sources_digest`, as ``physadv experiment`` records them now."""
    images = config.get("images")
    if isinstance(images, list) and all(isinstance(source, str) for source in images):
        return {**config, "images": sources_digest(images)}
    return config


def read_baseline(path: str | Path, images: str | None = None,
                  transforms: dict[str, Sequence[float]] | None = None) -> Baseline:
    """The baseline of an ImageNet-C comparison: a results.json of ``physadv experiment`` with the clean
    rows of the corruptions (e.g. ``--methods none --transforms imagenet-c``), on the images whose
    :func:`~physadv.datasets.sources_digest` is ``images``, with an error for every corruption and
    severity among ``transforms`` (checked here, before any work, rather than when the mCE is taken)."""
    path = Path(path)
    results = read_results(path)
    if results is None:
        raise InputError(f"{path}: no such results file (make one with physadv experiment --methods none "
                         "--transforms imagenet-c --model BASELINE)")
    config, rows = results
    model = config.get("model")
    measured = corruption_top1_errors(rows)
    if not isinstance(model, str) or not measured:
        raise InputError(f"{path}: holds no model name or no ImageNet-C rows of clean images (method "
                         f"{CLEAN_METHOD!r}); make it with physadv experiment --transforms imagenet-c")
    if images is not None and _with_images_digest(config).get("images") != images:
        raise InputError(f"{path}: the baseline was measured on other images; mCE compares models on the same images")
    for name, strengths in (transforms or {}).items():
        if is_corruption(name):
            missing = sorted({int(s) for s in strengths} - set(measured.get(name.split(":", 1)[1], {})))
            if missing:
                raise InputError(f"{path}: the baseline has no {name} error at severity "
                                 f"{', '.join(map(str, missing))}; run it with the same --transforms and --strengths")
    return Baseline(model, str(path), rows)


def previous_rows(out: Path, config_key: dict) -> list[ResultRow]:
    """Rows an interrupted run of the same configuration saved; another configuration's are refused."""
    path = out / RESULTS_JSON
    try:
        results = read_results(path)
    except InputError as error:
        raise InputError(f"{error}; choose another --out") from None
    if results is None:
        return []
    config, rows = results
    if _with_images_digest(config) != json.loads(json.dumps(config_key)):
        raise InputError(f"{out} holds results of another configuration; choose another --out or delete that folder")
    return rows


def experiment_to_folder(classifier: Classifier, images: Sequence[ImageRef], config: ExperimentConfig,
                         out: str | Path, config_key: dict, progress: bool = True, workers: int = 0,
                         shard: Shard = SINGLE, baseline: Baseline | None = None) -> list[ResultRow]:
    """Run the experiment on labelled ``images`` (read and centre-cropped to the classifier's size)
    and write ``out/results.json`` (with the ImageNet-C summary of :func:`corruption_summary`, relative
    to ``baseline`` if given) and ``results.csv``.

    ``config_key`` (JSON-able) identifies the configuration: a re-run with the same key resumes an
    interrupted run, skipping the attacks and batches it finished; a folder holding another key is
    refused. Every rank of ``shard``'s group must call this; each returns all the rows.

    Args:
        workers: processes that read and resize images (0: in this process).
    """
    out = Path(out)
    unlabelled = [i.id for i in images if i.label is None]
    if unlabelled:
        raise InputError(f"{len(unlabelled)} image(s) have no label ({', '.join(unlabelled[:5])}"
                         f"{', …' if len(unlabelled) > 5 else ''}); name the class in the file or folder name "
                         "(WordNet id or class name) or pass --label")
    if not images:
        raise InputError("no images to attack")
    size, count = config.batch_size, len(images)
    crafting = classifier
    if config.sources:
        check_sources(classifier, config.sources)
        crafting = config.sources[0]
    for model in (config.sources or [classifier]) if config.attacks else ():
        check_input_gradient(model)  # before results.json is written
    models = {"model": classifier.name, "source_model": source_name(config.sources or [classifier]),
              **substitute_provenance(config.sources)}
    crafted = [transfer_attack(a, config.sources) if config.sources else a for a in config.attacks]
    attacks = [UNTOUCHED, *crafted] if config.clean_rows else crafted

    def save(rows: list[ResultRow]) -> None:
        write_results(out, config_key, rows, corruption_summary(rows, baseline))

    def pending() -> list[PendingBatch]:
        """Per batch not finished yet, the attacks it still needs (by index into ``attacks``)."""
        rows = previous_rows(out, config_key)
        save(rows)  # the configuration is on disk before any part is
        done = {row.attack for row in rows}
        pending = [n for n, a in enumerate(attacks) if _attack_key(a) not in done]
        return [PendingBatch(number, len(batch_slice(number, count, size)) * len(todo), todo)
                for number in range(batch_count(count, size))
                if (todo := [n for n in pending if not _part_path(out, attacks[n], size, number).is_file()])]

    labels = np.array([image.label for image in images])

    def work(batch: PendingBatch, pixels: torch.Tensor) -> None:
        part = batch_slice(batch.number, count, size)
        batch_attacks = [attacks[n] for n in batch.todo]
        _attack_batch(classifier, config, batch_attacks, to_tensor(pixels.numpy(), classifier.device),
                      torch.from_numpy(labels[part.start:part.stop]).to(classifier.device), part.start,
                      [_part_path(out, attack, size, batch.number) for attack in batch_attacks], crafting)

    def merge(_: list[None]) -> list[ResultRow]:
        rows = previous_rows(out, config_key)
        done = {row.attack for row in rows}
        numbers = range(batch_count(count, size))
        for attack in attacks:
            if _attack_key(attack) in done:
                continue
            rows += _attack_rows(config, attack, [_part_path(out, attack, size, n) for n in numbers],
                                 [batch_slice(n, count, size) for n in numbers], labels, models,
                                 classifier.num_classes)
            save(rows)
        shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
        return previous_rows(out, config_key)

    # Rank 0 alone reads and writes the results; what it refuses (another configuration in ``out``) is
    # refused by every rank, and the others wait for the merge, and fail with it.
    return run_batches(pending, work, merge, images=images, image_size=classifier.image_size, batch_size=size,
                       shard=shard, workers=workers, progress=progress, desc="attacking", unit="img")
