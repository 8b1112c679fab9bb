"""Papernot et al.'s Algorithm 1 (see :mod:`physadv.substitute`), resumable.

Every file is written atomically and the record after it, so a run killed anywhere resumes from its last
finished step: a labelled round is not asked again, a trained one not trained again. A round's training
is seeded by the run's seed and the round alone and starts from the previous round's saved weights, so
the resumed substitute is the one an uninterrupted run makes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from physadv.classifiers import Classifier
from physadv.datasets import ImageRef, batch_count, image_batches
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes, atomic_write_json
from physadv.images import pixel_sha256
from physadv.substitute import DEFAULT_BATCH_SIZE, SubstituteConfig, planned_queries
from physadv.substitute.architectures import ArchitectureRef, build_substitute, seeded
from physadv.substitute.oracle import ORACLE_BATCH, LabelOracle, as_float
from physadv.substitute.record import (
    RECORD_FILE,
    WEIGHTS_FILE,
    RoundRecord,
    SubstituteRecord,
    load_weights,
    points_path,
    read_points,
    read_record,
    sha256_of,
    tensors_to_bytes,
    weights_path,
)

_TRAINING, _DROPOUT, _RESERVOIR = 1, 2, 3  # what a round's seed is for


def _round_seed(seed: int, round_: int, purpose: int) -> int:
    """A seed fixed by the run's seed, the round and the purpose alone (so a resumed round draws what the
    uninterrupted one would have)."""
    return int(np.random.SeedSequence([seed % 2**64, round_, purpose]).generate_state(1)[0])


@torch.no_grad()
def _predict(classifier: Classifier, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([classifier(as_float(points[i:i + batch_size].to(classifier.device))).argmax(-1).cpu()
                      for i in range(0, len(points), batch_size)])


def train_round(substitute: Classifier, points: torch.Tensor, labels: torch.Tensor, config: SubstituteConfig,
                round_: int, progress: bool = False) -> float:
    """Train ``substitute`` for ``config.epochs`` epochs of Adam on ``points`` (uint8 ``(N, 3, H, W)``) and
    the oracle's ``labels``; return its agreement with those labels afterwards."""
    from tqdm.auto import tqdm

    device, net = substitute.device, substitute.model
    generator = torch.Generator().manual_seed(_round_seed(config.seed, round_, _TRAINING))
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    with seeded(_round_seed(config.seed, round_, _DROPOUT), device):
        net.train()  # the Classifier stays in eval mode; its inner model trains
        try:
            for _ in tqdm(range(config.epochs), desc=f"round {round_}: training on {len(points)} points",
                          unit="epoch", disable=not progress, leave=False):
                order = torch.randperm(len(points), generator=generator)
                for start in range(0, len(points), config.batch_size):
                    batch = order[start:start + config.batch_size]
                    loss = F.cross_entropy(substitute(as_float(points[batch].to(device))), labels[batch].to(device))
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
        finally:
            net.eval()
    return float((_predict(substitute, points, config.batch_size) == labels).float().mean())


def jacobian_augmentation(substitute: Classifier, points: torch.Tensor, labels: torch.Tensor, step: float,
                          batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Papernot et al.'s new points ``q(x + step·sgn(∇_x F(x)[label]))``, one per point.

    Args:
        points: :math:`(N, 3, H, W)` uint8.
        labels: :math:`(N,)` the oracle's labels of ``points``.
        step: λ_ρ in 0–255 units (negative: the other way).

    Returns:
        :math:`(N, 3, H, W)` uint8: clipped to [0, 255] and rounded to the nearest level.
    """
    new = [points[:0]]
    for start in range(0, len(points), batch_size):
        x = as_float(points[start:start + batch_size].to(substitute.device)).requires_grad_(True)
        chosen = substitute(x).gather(1, labels[start:start + batch_size].to(substitute.device)[:, None]).sum()
        (gradient,) = torch.autograd.grad(chosen, x)
        moved = x.detach().mul(255) + step * gradient.sign()
        new.append(moved.round().clamp(0, 255).to(torch.uint8).cpu())
    return torch.cat(new)


def reservoir_sample(count: int, size: int, seed: int, round_: int) -> torch.Tensor:
    """Indices of ``min(size, count)`` of ``count`` points, uniform without replacement and in order: the
    sample reservoir sampling draws from a stream of ``count`` items, here from a set already in memory."""
    generator = torch.Generator().manual_seed(_round_seed(seed, round_, _RESERVOIR))
    return torch.randperm(count, generator=generator)[:size].sort().values


@dataclass(frozen=True)
class SubstituteSummary:
    """What :func:`train_substitute` returns: the record, and what this call found done."""

    record: SubstituteRecord
    already_finished: bool = False
    steps_found: int = 0  # labelled and trained rounds an interrupted run had left in the folder


def _initial_points(images: Sequence[ImageRef], size: int, workers: int) -> tuple[torch.Tensor, tuple]:
    """S0 as ``(N, 3, size, size)`` uint8, and each image's (id, pixel SHA-256)."""
    numbers = list(range(batch_count(len(images), ORACLE_BATCH)))
    pixels = torch.cat([batch for _, batch in image_batches(images, size, ORACLE_BATCH, numbers, workers)])
    hashes = tuple((ref.id, pixel_sha256(p)) for ref, p in zip(images, pixels.numpy()))
    return pixels.permute(0, 3, 1, 2).contiguous(), hashes


def _check_same_run(out: Path, found: SubstituteRecord, wanted: SubstituteRecord) -> None:
    if not found.oracle.same_model(wanted.oracle):
        raise InputError(f"{out} holds a substitute of another oracle, {found.oracle.describe()}, not of "
                         f"{wanted.oracle.describe()}; choose another --out or delete that folder")
    differences = [what for what, a, b in (("architecture", found.architecture, wanted.architecture),
                                           ("settings", found.config, wanted.config),
                                           ("initial images", found.images, wanted.images)) if a != b]
    if differences:
        raise InputError(f"{out} holds a substitute made with other {' and '.join(differences)}; re-run with the "
                         "same options to resume it, or choose another --out")


def train_substitute(oracle: LabelOracle, images: Sequence[ImageRef], out: str | Path,
                     config: SubstituteConfig = SubstituteConfig(), architecture: str = "auto",
                     device: torch.device | str = "cpu", progress: bool = True, workers: int = 0,
                     announce: Callable[[str], None] | None = None) -> SubstituteSummary:
    """Train a substitute of ``oracle`` into the folder ``out``, resuming what an interrupted run left there.

    Args:
        oracle: the model under attack, seen through its labels alone.
        images: the initial set S0 (their own labels, if any, are not used: the oracle labels them).
        architecture: ``auto`` (:func:`~physadv.substitute.default_architecture`), a built-in name, or the
            user's ``FILE.py:FACTORY`` (a factory as for ``--model``; trained here from scratch).
        device: where the substitute trains.
        workers: processes that read and resize the initial images (0: in this process).
        announce: told the plan (queries in all and still to ask) once the folder is found fit to work in.

    Raises:
        InputError: no images; ``out`` holding a substitute of another oracle or made with other settings,
            or a changed or malformed file of its own.
    """
    if not images:
        raise InputError("no initial images to train the substitute from")
    out, size = Path(out), oracle.image_size
    reference = ArchitectureRef.choose(architecture, size)
    initial, hashes = _initial_points(images, size, workers)
    wanted = SubstituteRecord(oracle.identity, reference, config, hashes)
    if (out / RECORD_FILE).exists():
        record = read_record(out)
        _check_same_run(out, record, wanted)
        if record.finished:
            return SubstituteSummary(record, already_finished=True)
    else:
        record = wanted
        atomic_write_json(out / RECORD_FILE, record.to_json())  # the settings are on disk before any point
    found = len(record.rounds) + sum(r.weights_sha256 is not None for r in record.rounds)
    if announce is not None:
        total = planned_queries(len(images), config)
        announce(f"substitute of {oracle.identity.name}: {len(images)} initial images, rounds 0..{config.rounds}, "
                 f"{total} oracle queries in all" + (f", {total - record.oracle_queries} still to ask"
                                                     if record.rounds else ""))

    substitute = build_substitute(reference, oracle.labels, size, config.seed, device)
    point_sets, label_sets = [], []
    for entry in record.rounds:
        points, labels = read_points(points_path(out, entry.round), entry.points_sha256, size, oracle.identity.classes)
        point_sets.append(points)
        label_sets.append(labels)
    trained = [r for r in record.rounds if r.weights_sha256 is not None]
    if trained:
        load_weights(substitute.model, weights_path(out, trained[-1].round), trained[-1].weights_sha256)

    def save(updated: SubstituteRecord) -> SubstituteRecord:
        atomic_write_json(out / RECORD_FILE, updated.to_json())
        return updated

    for round_ in range(config.rounds + 1):
        if round_ == len(record.rounds):  # this round's new points, labelled by the oracle
            if round_ == 0:
                new = initial
            else:
                points, labels = torch.cat(point_sets), torch.cat(label_sets)
                chosen = reservoir_sample(len(points), config.augmented_at(round_ - 1, len(points)), config.seed,
                                          round_ - 1)
                new = jacobian_augmentation(substitute, points[chosen], labels[chosen], config.step_at(round_ - 1),
                                            config.batch_size)
            answers = oracle(new)
            data = tensors_to_bytes({"points": new, "labels": answers})
            atomic_write_bytes(points_path(out, round_), data)
            point_sets.append(new)
            label_sets.append(answers)
            record = save(replace(record, rounds=record.rounds + (
                RoundRecord(round_, len(new), sum(len(p) for p in point_sets), sha256_of(data)),)))
        if record.rounds[round_].weights_sha256 is None:  # train on everything labelled so far
            agreement = train_round(substitute, torch.cat(point_sets), torch.cat(label_sets), config, round_,
                                    progress)
            data = tensors_to_bytes(substitute.model.state_dict())
            atomic_write_bytes(weights_path(out, round_), data)
            entry = replace(record.rounds[round_], weights_sha256=sha256_of(data), agreement=agreement)
            record = save(replace(record, rounds=record.rounds[:round_] + (entry,)))
    data = tensors_to_bytes(substitute.model.state_dict())
    atomic_write_bytes(out / WEIGHTS_FILE, data)
    return SubstituteSummary(save(replace(record, weights_sha256=sha256_of(data))), steps_found=found)
