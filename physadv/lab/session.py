"""A lab session end to end, in one run folder: attack → print → photograph → capture → report.

Run folder::

    RUN/physadv.sqlite                  the store (see :mod:`physadv.lab.store`)
    RUN/config.json                     the session's configuration
    RUN/attacks/<attack>/               physadv attack output (clean/, adv/, attack.json)
    RUN/sheets/<attack>/                sheets.pdf + manifest.json, one print job per attack
    RUN/photos/<attack>/                photos of those sheets (virtual camera, or yours)
    RUN/capture/<attack>/               physadv capture output
    RUN/report/                         report.html + report.pdf

Every stage skips what its outputs already hold, so a killed session re-run with the same
configuration resumes where it stopped; each stage's outputs are imported into the store right
after the stage, in one transaction.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from physadv.capture.calibrate import check_distribution, resolve_distribution
from physadv.capture.pipeline import capture_folder, photo_files
from physadv.attacks import METHODS, Attack, check_input_gradient
from physadv.attackset import (
    ADV_DIR,
    CLEAN_DIR,
    attack_to_folder,
    check_attack_inputs,
    read_attack_summary,
    stream_attack_set,
)
from physadv.channel import TRANSFORMS, check_strength
from physadv.classifiers import DEFAULT_MODEL, Classifier, check_recorded_model, load_classifier
from physadv.datasets import index_image_set
from physadv.eot import ADVERSARIALITY_SAMPLES, DISTRIBUTIONS, EOT_SAMPLES, adversariality, eot_gradient
from physadv.errors import InputError
from physadv.experiment import transformation_rows
from physadv.fileio import atomic_write_json, parse_json, parse_toml
from physadv.goals import attack_label
from physadv.images import read_rgb, to_tensor
from physadv.lab.store import RunLock, RunStore
from physadv.metrics import format_patch_table, format_table
from physadv.catalog import MAX_PHOTOS_PER_PAGE
from physadv.printouts.camera import RESOLUTIONS, TRUTH_FILE, photograph, read_truth
from physadv.printouts.manifest import read_manifest
from physadv.printouts.profiles import DEFAULT_PROFILE, load_profile
from physadv.printouts.sheets import PAPERS_MM, SheetLayout, parse_grid, print_attack_set
from physadv.results import PHOTO, AnyRow, PatchRow, ResultKind, ResultRow
from physadv.validation import MAX_SEED, Record, check_seed

CONFIG_FILE = "config.json"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d{1,2})?|mps")


@dataclass(frozen=True)
class AttackPlan:
    """One attack of a session; ``eot`` names an EOT distribution (``photo``, ``athalye2018``,
    ``profile:NAME|FILE.toml``)."""

    method: str
    eps: float
    eot: str | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        Attack(self.method, self.eps)  # validates method and ε with the attack's own messages

    @property
    def name(self) -> str:
        return attack_name(attack_label(self.method, self.eot), self.eps)


def attack_name(method_label: str, eps: float) -> str:
    """How a run names an attack, e.g. ``bim+eot-eps16``."""
    return f"{method_label}-eps{eps:g}"


DEMO_ATTACKS = (AttackPlan("fgsm", 8), AttackPlan("fgsm", 16), AttackPlan("bim", 8), AttackPlan("bim", 16),
                AttackPlan("ll", 8), AttackPlan("ll", 16), AttackPlan("bim", 16, eot="photo"))


@dataclass(frozen=True)
class SessionConfig:
    """Everything a session does; a TOML file sets any of these keys (see ``examples/lab.toml``).

    ``photos_per_page`` > 0 photographs every page that many times with the virtual camera at
    ``resolution``; 0 means real photos: put them in ``RUN/photos/<attack>/`` and continue the run.
    """

    model: str = DEFAULT_MODEL
    weights: str | None = None
    device: str = "auto"
    seed: int = 0
    images: tuple[str, ...] = ("samples",)
    label: str | None = None
    limit: int | None = None
    attacks: tuple[AttackPlan, ...] = DEMO_ATTACKS
    alpha: float = 1.0
    batch_size: int = 16
    eot_samples: int = EOT_SAMPLES
    eot_chunk: int | None = None
    adversariality_distribution: str = "photo"
    adversariality_samples: int = ADVERSARIALITY_SAMPLES
    transforms: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {"brightness": (-30.0, 30.0), "blur": (1.0, 2.0), "noise": (10.0,), "jpeg": (75.0, 30.0)})
    paper: str = "a4"
    grid: str = "2x3"
    cell_mm: float = 60.0
    photos_per_page: int = 1
    resolution: str | None = None
    camera_profile: str = DEFAULT_PROFILE

    def __post_init__(self) -> None:
        for key, kind in (("seed", int), ("batch_size", int), ("eot_samples", int), ("adversariality_samples", int),
                          ("photos_per_page", int), ("cell_mm", (int, float)), ("alpha", (int, float))):
            value = getattr(self, key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InputError(f"{key} must be a {'whole ' if kind is int else ''}number, got {value!r}")
        check_seed(self.seed)
        for key in ("batch_size", "eot_samples", "adversariality_samples"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be ≥ 1, got {getattr(self, key)}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise InputError(f"limit must be a whole number ≥ 1, got {self.limit!r}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            raise InputError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.paper not in PAPERS_MM:
            raise InputError(f"paper must be one of {', '.join(PAPERS_MM)}, got {self.paper!r}")
        self.layout()
        for name, strengths in self.transforms.items():
            for strength in strengths:
                check_strength(name, strength)
        if not isinstance(self.camera_profile, str):
            raise InputError(f"camera_profile must be a profile name or a .toml file, got {self.camera_profile!r}")
        load_profile(self.camera_profile)
        # A profile EOT (profile:NAME|FILE.toml) is read here, before any attack runs or any file is written.
        for spec in (self.adversariality_distribution, *(plan.eot for plan in self.attacks)):
            check_distribution(spec)
        if self.resolution is not None and self.resolution not in RESOLUTIONS:
            raise InputError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}")
        if not 0 <= self.photos_per_page <= MAX_PHOTOS_PER_PAGE:
            raise InputError(f"photos_per_page must be in 0..{MAX_PHOTOS_PER_PAGE:,}, got {self.photos_per_page:,}")
        if not self.attacks:
            raise InputError("a session needs at least one attack")
        names = [plan.name for plan in self.attacks]
        if len(set(names)) != len(names):
            raise InputError(f"attacks repeat: {', '.join(names)}")

    def layout(self) -> SheetLayout:
        columns, rows = parse_grid(self.grid)
        return SheetLayout(paper=self.paper, columns=columns, rows=rows, cell_mm=self.cell_mm)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so a stored configuration compares equal to its source."""
        return json.loads(json.dumps(asdict(self)))


def config_from_mapping(data: object, base: SessionConfig | None = None,
                        where: str = "configuration") -> SessionConfig:
    """A :class:`SessionConfig` from parsed TOML/JSON, every key checked (a configuration is untrusted
    input); unknown keys are errors, never silently ignored. Keys not given keep ``base``'s values (default:
    :class:`SessionConfig`'s defaults); ``where`` names the file in errors."""
    record = Record(data, where)
    record.only([f.name for f in fields(SessionConfig)], "configuration key")
    readers = {
        "model": lambda key: record.text(key, max_length=256),
        "weights": lambda key: record.text(key, optional=True),
        "device": lambda key: record.text(key, max_length=16),
        "seed": lambda key: record.integer(key, 0, MAX_SEED),
        "images": lambda key: ((record.text(key),) if isinstance(record.data[key], str)
                               else tuple(Record({"image": i}, f"{where}.{key}").text("image")
                                          for i in record.items(key, 1, 10_000))),
        "label": lambda key: record.text(key, optional=True, max_length=256),
        "limit": lambda key: record.integer(key, 1, 10**9, optional=True),
        "attacks": lambda key: tuple(_read_plan(plan) for plan in record.records(key, 1, 1000)),
        "alpha": lambda key: record.number(key, 1e-6, 255),
        "batch_size": lambda key: record.integer(key, 1, 65_536),
        "eot_samples": lambda key: record.integer(key, 1, 100_000),
        "eot_chunk": lambda key: record.integer(key, 1, 10**7, optional=True),
        "adversariality_distribution": lambda key: _read_distribution(record, key),
        "adversariality_samples": lambda key: record.integer(key, 1, 1_000_000),
        "transforms": lambda key: _read_transforms(record.record(key)),
        "paper": lambda key: record.choice(key, tuple(PAPERS_MM)),
        "grid": lambda key: record.text(key, max_length=16),
        "cell_mm": lambda key: record.number(key, 1, 1000),
        "photos_per_page": lambda key: record.integer(key, 0, MAX_PHOTOS_PER_PAGE),
        "resolution": lambda key: record.choice(key, tuple(RESOLUTIONS), optional=True),
        "camera_profile": lambda key: record.text(key, max_length=4096),
    }
    return replace(SessionConfig() if base is None else base, **{key: readers[key](key) for key in record.data})


def _read_plan(record: Record) -> AttackPlan:
    record.only([f.name for f in fields(AttackPlan)], "attack key")
    target = record.data.get("target")
    return AttackPlan(method=record.choice("method", METHODS), eps=record.number("eps", 0, 255),
                      eot=_read_distribution(record, "eot", optional=True),
                      target=str(target) if isinstance(target, int) and not isinstance(target, bool)
                      else record.text("target", optional=True, max_length=256))


def _read_distribution(record: Record, key: str, optional: bool = False) -> str | None:
    """An EOT distribution: a built-in name or ``profile:NAME|FILE.toml`` (the profile is read when used)."""
    value = record.text(key, optional=optional, max_length=4096)
    if value is not None and value not in DISTRIBUTIONS and not (value.startswith("profile:") and len(value) > 8):
        raise record.fail(key, f"{value!r} is not one of {', '.join(sorted(DISTRIBUTIONS))} or profile:NAME|FILE.toml")
    return value


def _read_transforms(record: Record) -> dict[str, tuple[float, ...]]:
    record.only(tuple(TRANSFORMS), "transformation")
    return {name: tuple(Record({"strength": v}, f"{record.where}.{name}").number("strength", -1e6, 1e6)
                        for v in record.items(name, 1, 100)) for name in record.data}


def load_config(path: str | Path, base: SessionConfig | None = None) -> SessionConfig:
    try:
        with open(path, "rb") as stream:
            data = parse_toml(stream.read().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such configuration file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror or error})") from None
    return config_from_mapping(data, base, str(path))


def stored_config(run_dir: Path) -> SessionConfig:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{run_dir}: not a physadv run (no {CONFIG_FILE}; create one with `physadv run new`)")
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable run configuration ({error}); it is damaged — restore it, "
                         "or start a new run") from None
    return config_from_mapping(data, where=str(path))


class Stage:
    """One step of a session for one attack, in the manner of DVC's stages: it knows whether its
    outputs are already there (:meth:`done`) and how to make them (:meth:`run`)."""

    description = ""

    def __init__(self, work: "AttackWork") -> None:
        self.work = work

    def done(self) -> bool:
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError


@dataclass
class AttackWork:
    """What the stages of one attack share: the session, the store, the classifier and the plan."""

    session: "Session"
    store: RunStore
    classifier: Classifier
    images: Sequence
    plan: AttackPlan
    target: int | None

    @property
    def folder(self) -> Path:
        return self.session.run_dir / "attacks" / self.plan.name

    @property
    def sheets(self) -> Path:
        return self.session.run_dir / "sheets" / self.plan.name

    @property
    def photos(self) -> Path:
        return self.session.run_dir / "photos" / self.plan.name

    @property
    def capture(self) -> Path:
        return self.session.run_dir / "capture" / self.plan.name

    def attacked_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]]:
        """The attack folder's images read back from its 8-bit PNGs, a batch at a time: clean ``(B, 3, H, W)``,
        adversarial ``(B, 3, H, W)``, goals ``(B,)`` and labels ``(B,)`` (−1 unknown)."""
        _, _, images = stream_attack_set(self.folder)
        while batch := list(islice(images, self.session.config.batch_size)):
            yield (to_tensor([read_rgb(self.folder / CLEAN_DIR / i.file) for i in batch]),
                   to_tensor([read_rgb(self.folder / ADV_DIR / i.file) for i in batch]),
                   torch.tensor([i.target if i.target is not None else (i.label or 0) for i in batch]),
                   np.array([i.label if i.label is not None else -1 for i in batch]))

    def attack(self) -> Attack:
        config = self.session.config
        attack = Attack(self.plan.method, self.plan.eps, config.alpha)
        if self.plan.eot:
            attack = attack.with_gradient(eot_gradient(resolve_distribution(self.plan.eot), config.eot_samples,
                                                       config.eot_chunk, config.seed), eot=self.plan.eot)
        return attack

    def eot_record(self) -> dict:
        return {"distribution": self.plan.eot, "samples": self.session.config.eot_samples} if self.plan.eot else {}

    def with_extras(self, rows: Sequence[ResultRow]) -> list[ResultRow]:
        """``rows`` with what every result row of this attack carries besides its metrics."""
        adversariality = self.store.adversariality(self.plan.name)
        undone = read_attack_summary(self.folder).quantisation_undid
        return [replace(row, adversariality=adversariality, quantisation_undid=undone) for row in rows]


class AttackStage(Stage):
    description = "attacking"

    def done(self) -> bool:
        return self.work.store.attack_folder(self.work.plan.name) is not None

    def run(self) -> None:
        work, config = self.work, self.work.session.config
        attack_to_folder(work.classifier, work.attack(), work.images, work.folder, target=work.target,
                         batch_size=config.batch_size, seed=config.seed, eot=work.eot_record(), label=config.label,
                         progress=work.session.progress)
        work.store.record_attack(work.plan.name, work.folder, work.store.run_info().weights_sha256 or "",
                                 work.eot_record())


class AdversarialityStage(Stage):
    @property
    def description(self) -> str:
        config = self.work.session.config
        return (f"adversariality under '{config.adversariality_distribution}' "
                f"({config.adversariality_samples} held-out transformations per image)")

    def done(self) -> bool:
        return self.work.store.adversariality(self.work.plan.name) is not None

    def run(self) -> None:
        work, config = self.work, self.work.session.config
        targeted, distribution = work.attack().goal.targeted, resolve_distribution(config.adversariality_distribution)
        value = torch.cat([adversariality(work.classifier, adversarial, goal, targeted, distribution,
                                          config.adversariality_samples, config.seed, config.eot_chunk).cpu()
                           for _, adversarial, goal, _ in work.attacked_batches()])
        work.store.record_adversariality(work.plan.name, float(value.mean()))


class TransformStage(Stage):
    description = "artificial transformations"

    def done(self) -> bool:
        return not self.work.session.config.transforms or self.work.store.has_results(ResultKind.EXPERIMENT,
                                                                                      self.work.plan.name)

    def run(self) -> None:
        work, config = self.work, self.work.session.config
        rows = transformation_rows(work.classifier, ((clean, adversarial, labels)
                                                     for clean, adversarial, _, labels in work.attacked_batches()),
                                   config.transforms, work.attack(), seed=config.seed)
        work.store.record_results(ResultKind.EXPERIMENT, work.plan.name, work.with_extras(rows))


class PrintStage(Stage):
    description = "printing sheets"

    def done(self) -> bool:
        return ((self.work.sheets / "manifest.json").is_file() and (self.work.sheets / "sheets.pdf").is_file()
                and self.work.store.sheets_pdf(self.work.plan.name) is not None)

    def run(self) -> None:
        work = self.work
        if not (work.sheets / "manifest.json").is_file() or not (work.sheets / "sheets.pdf").is_file():
            print_attack_set(work.folder, work.sheets, work.session.config.layout(), progress=work.session.progress)
        work.store.record_sheets(work.plan.name, read_manifest(work.sheets / "manifest.json"),
                                 work.sheets / "sheets.pdf")


class PhotographStage(Stage):
    """The virtual camera (``photos_per_page`` > 0); with real photos there is nothing to do."""

    @property
    def description(self) -> str:
        return f"photographing (virtual camera, profile {self.work.session.config.camera_profile})"

    def _count(self) -> int:
        manifest = read_manifest(self.work.sheets / "manifest.json")
        return self.work.session.config.photos_per_page * len(manifest.pages)

    def done(self) -> bool:
        if not self.work.session.config.photos_per_page:
            return True
        truth = self.work.photos / TRUTH_FILE
        return truth.is_file() and len(read_truth(truth)[1]) >= self._count()

    def run(self) -> None:
        work, config = self.work, self.work.session.config
        photograph(work.sheets / "sheets.pdf", read_manifest(work.sheets / "manifest.json"), work.photos,
                   self._count(), config.resolution, config.seed, profile=config.camera_profile,
                   progress=work.session.progress)


class CaptureStage(Stage):
    description = "capturing and re-classifying"

    def photos(self) -> list[Path]:
        return photo_files(self.work.photos) if self.work.photos.is_dir() else []

    def done(self) -> bool:
        """Done when the recorded capture covers exactly the photos there are now (or there are none)."""
        photos = self.photos()
        if not photos:
            return True
        return self.work.store.photos_of(self.work.plan.name) == {path.relative_to(self.work.photos).as_posix()
                                                                   for path in photos}

    def run(self) -> None:
        work = self.work
        result = capture_folder(work.photos, work.sheets / "manifest.json", work.classifier, work.capture,
                                progress=work.session.progress)
        if not work.store.record_capture_unless_empty(work.plan.name, work.capture, work.with_extras(result.rows)):
            work.session.say(f"  no cell of the photos in {work.photos} was captured; the earlier results are kept")


STAGES: tuple[type[Stage], ...] = (AttackStage, AdversarialityStage, TransformStage, PrintStage, PhotographStage,
                                   CaptureStage)
"""The stages of every attack, in order."""


class Session:
    """Runs (or resumes) a session in ``run_dir``; holds the run's lock while it works.

    ``user_model`` is the model the user named themselves (their ``--model``): the only ``FILE.py:FACTORY``
    the session may import. A configuration may have been read from a file, so any other code spec in
    ``config.model`` is refused (:func:`~physadv.classifiers.check_recorded_model`).
    """

    def __init__(self, run_dir: str | Path, config: SessionConfig, device: torch.device, progress: bool = True,
                 user_model: str | None = None):
        self.run_dir = Path(run_dir)
        self.config = config
        self.device = device
        self.progress = progress
        self.user_model = user_model

    def say(self, message: str) -> None:
        """A stage's one-line news on stderr; quiet with ``progress=False``, like the progress bars."""
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def run(self, command: str = "run") -> None:
        with RunLock(self.run_dir, command):
            path = self.run_dir / CONFIG_FILE
            if path.is_file() and stored_config(self.run_dir).to_json() != self.config.to_json():
                hint = ("its config.json changed since it started; restore it" if command == "run continue"
                        else f"continue it with `physadv run continue {self.run_dir}`")
                raise InputError(f"{self.run_dir} was started with another configuration; {hint}, "
                                 "or choose a new folder")
            # Everything that can be wrong with the configuration is found before anything is written.
            where = str(path) if path.is_file() else "the session's configuration"
            model = check_recorded_model(self.config.model, where, self.user_model)
            classifier = load_classifier(model, weights=self.config.weights, device=self.device)
            targets = {plan.name: self._target(classifier, plan) for plan in self.config.attacks}
            images = index_image_set(list(self.config.images), classifier.labels, self.config.label,
                                     self.config.limit)
            check_input_gradient(classifier)
            for plan in self.config.attacks:
                check_attack_inputs(Attack(plan.method, plan.eps, self.config.alpha), images, targets[plan.name],
                                    self.config.batch_size)
            with RunStore(self.run_dir) as store:
                planned = {plan.name for plan in self.config.attacks}
                unplanned = [name for name in store.attack_names() if name not in planned]
                if unplanned:  # its rows would be counted beside the planned attacks' in every summary
                    raise InputError(f"{store.path} records attack(s) {', '.join(unplanned)} that the run's "
                                     "configuration does not plan: it belongs to another run; choose a new folder")
                atomic_write_json(path, self.config.to_json())
                store.record_config(self.config.to_json())
                store.record_model(classifier.name, classifier.weights)
                for number, plan in enumerate(self.config.attacks, 1):
                    self.say(f"[{number}/{len(self.config.attacks)}] {plan.name}")
                    work = AttackWork(self, store, classifier, images, plan, targets[plan.name])
                    for stage in (stage_type(work) for stage_type in STAGES):
                        if not stage.done():
                            self.say(f"  {stage.description}")
                            stage.run()
                    if self.config.photos_per_page == 0 and not CaptureStage(work).photos():
                        self.say(f"  waiting for photos: print {work.sheets / 'sheets.pdf'} at 100% and put photos "
                                 f"of it in {work.photos}/")

    @staticmethod
    def _target(classifier: Classifier, plan: AttackPlan) -> int | None:
        if plan.target is None:
            return None
        try:
            return classifier.labels.index(plan.target)
        except KeyError as error:
            raise InputError(f"attack {plan.name}: target {error.args[0]}") from None


def next_steps(run_dir: Path, store: RunStore, planned: Sequence[str]) -> list[str]:
    """What is left to do in a run, in words; ``planned`` are the attack names of its configuration
    (those of a run made implicitly by ``physadv attack`` are the ones it has recorded)."""
    steps = []
    for name in planned:
        folder, pdf = store.attack_folder(name), store.sheets_pdf(name)
        here = os.path.normpath
        if folder is None:
            steps.append(f"attack {name}")
        elif pdf is None:
            steps.append(f"print {name}: physadv print {here(run_dir / folder)} --out SHEETS_DIR")
        elif not store.photos_of(name):
            steps.append(f"photograph the sheets of {name} ({here(run_dir / pdf)}) and capture the photos: "
                         f"physadv capture PHOTOS_DIR --manifest {here((run_dir / pdf).parent / 'manifest.json')}")
    if not steps and not (run_dir / "report" / "report.html").is_file():
        steps.append(f"physadv report {run_dir}")
    return steps


def status_counts(store: RunStore) -> dict[str, int]:
    counts = store.counts()
    return {"attacks": counts.attacks, "images attacked": counts.images, "pages printed": counts.pages,
            "photos": counts.photos, "rejected": counts.rejected_photos, "cells classified": counts.predictions}


def headline(rows: Sequence[AnyRow]) -> str:
    """Kurakin-style table of the photo rows: accuracy on photos and destruction rates with n; a patch
    run's photo rows as its own table (targeted success and top-1, patch against controls, by area)."""
    photo = [r for r in rows if isinstance(r, ResultRow) and r.transform == PHOTO]
    patch = [r for r in rows if isinstance(r, PatchRow) and r.transform == PHOTO]
    if not photo and not patch:
        return "no photo results yet"
    tables = [format_table(sorted(photo, key=lambda r: (r.method, r.eps, r.case)))] if photo else []
    return "\n\n".join(tables + ([format_patch_table(patch)] if patch else []))
