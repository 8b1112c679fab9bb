"""Kurakin et al.'s artificial-transformation experiment: attack → transform → destruction rate.

For every attack (method, ε) the adversarial images are made once; every transformation at every
strength is then applied to them and to nothing else, and :func:`physadv.metrics.destruction_reports`
gives one row for the average case and one for the prefiltered case.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from physadv.attacks import Attack
from physadv.channel import ChannelTransform, transform_kind
from physadv.classifiers import Classifier
from physadv.datasets import LabelledImage
from physadv.errors import InputError
from physadv.fileio import atomic_write_json, atomic_write_text
from physadv.images import to_tensor
from physadv.metrics import PREFILTER_CONFIDENCE, Predictions, destruction_reports
from physadv.transfer import check_sources, source_name, transfer_attack

Row = dict[str, float | int | str | None]

RESULTS_JSON, RESULTS_CSV = "results.json", "results.csv"
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
        attack_extras: ``(attack, classifier, adversarial (N, 3, H, W), goals (N,)) → {key: value}``, added
            to every row of that attack (e.g. adversariality).
        sources: empty for white-box attacks; else the model(s) the attacks are crafted on (transfer,
            :mod:`physadv.transfer`), the classifier only evaluating them.
    """

    attacks: Sequence[Attack]
    transforms: dict[str, Sequence[float]]
    target: int | None = None
    batch_size: int = 16
    seed: int = 0
    prefilter_confidence: float = PREFILTER_CONFIDENCE
    attack_extras: Callable[[Attack, Classifier, torch.Tensor, torch.Tensor], dict[str, float]] | None = field(
        default=None, compare=False)
    sources: Sequence[Classifier] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in self.transforms:
            transform_kind(name)
        if any(a.goal.needs_target for a in self.attacks) and self.target is None:
            raise InputError("the targeted method needs a target class (--target CLASS)")
        if not any(self.transforms.values()):
            raise InputError("no transformations given (e.g. --transforms brightness,jpeg)")
        if not self.attacks:
            raise InputError("no attacks given (e.g. --methods fgsm,bim --eps 8,16)")
        if self.batch_size < 1:
            raise InputError(f"batch size must be ≥ 1, got {self.batch_size}")


def _batches(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def _predict(classifier: Classifier, images: torch.Tensor, batch_size: int) -> Predictions:
    return Predictions.from_probabilities(classifier.probabilities(images, batch_size))


def run_attack_batched(attack: Attack, classifier: Classifier, images: torch.Tensor, labels: torch.Tensor,
                       target: int | None, batch_size: int, progress: tqdm | None = None,
                       source: Classifier | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Adversarial versions of ``images`` (N, 3, H, W) and the attack's goals (N,), on the CPU, and how
    many attacks the 8-bit rounding undid on ``classifier`` (successful before rounding, not after).

    ``source`` (default ``classifier``) is the model the attack is called with: a transfer attack's
    first source, whose labels and least-likely classes define the goals."""
    adversarial, goals, undone = [], [], 0
    for part in _batches(len(images), batch_size):
        x = images[part].to(classifier.device)
        y = labels[part].to(classifier.device)
        targets = torch.full_like(y, target) if target is not None else None
        result = attack(source if source is not None else classifier, x, y, targets)
        before = result.succeeded(classifier.probabilities(result.unquantised).argmax(-1))
        after = result.succeeded(classifier.probabilities(result.adversarial).argmax(-1))
        undone += int((before & ~after).sum())
        adversarial.append(result.adversarial.cpu())
        goals.append(result.goal.cpu())
        if progress is not None:
            progress.update(part.stop - part.start)
    return torch.cat(adversarial), torch.cat(goals), undone


def transformation_rows(classifier: Classifier, clean_predictions: Predictions, adversarial: torch.Tensor,
                        labels: np.ndarray, transforms: dict[str, Sequence[float]], key: Row, extras: Row, *,
                        batch_size: int = 16, seed: int = 0,
                        confidence: float = PREFILTER_CONFIDENCE) -> list[Row]:
    """Rows of one attack's adversarial images ``(N, 3, H, W)`` under every transformation and strength.

    ``key`` (method, eps, iterations) starts every row and ``extras`` ends it; the noise is seeded
    with ``seed`` afresh for every strength, so a row does not depend on which rows came before.
    """
    adversarial_predictions = _predict(classifier, adversarial, batch_size)
    rows = []
    for name, strengths in transforms.items():
        for strength in strengths:
            generator = torch.Generator(device=classifier.device).manual_seed(seed)
            transformed = torch.cat([
                ChannelTransform(name, strength)(adversarial[part].to(classifier.device), generator).cpu()
                for part in _batches(len(adversarial), batch_size)])
            transformed_predictions = _predict(classifier, transformed, batch_size)
            for report in destruction_reports(clean_predictions, adversarial_predictions, transformed_predictions,
                                              labels, confidence):
                rows.append({**key, "transform": name, "strength": float(strength), **report.row(), **extras})
    return rows


def run_experiment(classifier: Classifier, images: Sequence[LabelledImage], config: ExperimentConfig,
                   done: set[tuple[str, float]] = frozenset(),
                   on_attack_done: Callable[[list[Row]], None] | None = None, progress: bool = True) -> list[Row]:
    """Run the experiment and return its rows (see the ``physadv experiment`` contract).

    Args:
        images: labelled, prepared (square, same size) images.
        done: ``(method label, ε)`` pairs to skip (already computed by an interrupted run).
        on_attack_done: called with each attack's rows as soon as they exist, so a caller can save them.
    """
    unlabelled = [i.id for i in images if i.label is None]
    if unlabelled:
        raise InputError(f"{len(unlabelled)} image(s) have no label ({', '.join(unlabelled[:5])}"
                         f"{', …' if len(unlabelled) > 5 else ''}); name the class in the file or folder name "
                         "(WordNet id or class name) or pass --label")
    if not images:
        raise InputError("no images to attack")
    clean = to_tensor([i.image for i in images])
    labels_np = np.array([i.label for i in images])
    labels = torch.from_numpy(labels_np)
    clean_predictions = _predict(classifier, clean, config.batch_size)
    pending = [a for a in config.attacks if (a.label, float(a.eps)) not in done]
    source = None
    if config.sources:
        check_sources(classifier, config.sources)
        pending, source = [transfer_attack(a, config.sources) for a in pending], config.sources[0]
    models = {"model": classifier.name, "source_model": source_name(config.sources or [classifier])}
    rows: list[Row] = []
    with tqdm(total=len(pending) * len(images), desc="attacking", unit="img", disable=not progress) as bar:
        for attack in pending:
            bar.set_postfix_str(f"{attack.label} eps={attack.eps:g}")
            adversarial, goals, undone = run_attack_batched(attack, classifier, clean, labels, config.target,
                                                     config.batch_size, bar, source)
            extras = config.attack_extras(attack, classifier, adversarial, goals) if config.attack_extras else {}
            attack_rows = transformation_rows(
                classifier, clean_predictions, adversarial, labels_np, config.transforms,
                {"method": attack.label, "eot": attack.eot or "", "eps": float(attack.eps), "iterations": attack.steps},
                {"quantisation_undid": undone, **models, **extras}, batch_size=config.batch_size, seed=config.seed,
                confidence=config.prefilter_confidence)
            rows += attack_rows
            if on_attack_done is not None:
                on_attack_done(attack_rows)
    return rows


def write_results(out: Path, config_key: dict, rows: list[Row]) -> None:
    """Write ``out/results.json`` (``config_key`` and the rows) and ``out/results.csv``, each atomically."""
    atomic_write_json(out / RESULTS_JSON, {"config": config_key, "rows": rows})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS + sorted({k for r in rows for k in r} - set(RESULT_COLUMNS)))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / RESULTS_CSV, buffer.getvalue())


def previous_rows(out: Path, config_key: dict) -> list[Row]:
    """Rows an interrupted run of the same configuration saved; another configuration's are refused."""
    path = out / RESULTS_JSON
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable results file ({error}); choose another --out") from None
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("method"), str)
                                             and isinstance(r.get("eps"), (int, float)) for r in rows):
        raise InputError(f"{path}: not a physadv results file (no list of rows with method and eps); "
                         "choose another --out")
    if data.get("config") != json.loads(json.dumps(config_key)):
        raise InputError(f"{out} holds results of another configuration; choose another --out or delete that folder")
    return rows


def experiment_to_folder(classifier: Classifier, images: Sequence[LabelledImage], config: ExperimentConfig,
                         out: str | Path, config_key: dict, progress: bool = True) -> list[Row]:
    """Run the experiment, saving ``out/results.json`` and ``results.csv`` after every attack.

    ``config_key`` (JSON-able) identifies the configuration: a re-run with the same key resumes an
    interrupted run, skipping the attacks it finished; a folder holding another key is refused.
    """
    out = Path(out)
    rows = previous_rows(out, config_key)
    done = {(r["method"], float(r["eps"])) for r in rows}

    def save(new_rows: list[Row]) -> None:
        rows.extend(new_rows)
        write_results(out, config_key, rows)

    run_experiment(classifier, images, config, done=done, on_attack_done=save, progress=progress)
    write_results(out, config_key, rows)
    return rows
