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
import sys
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from physadv.capture.calibrate import resolve_distribution
from physadv.capture.pipeline import capture_folder, photo_files
from physadv.attacks import Attack
from physadv.attackset import attack_to_folder
from physadv.channel import check_strength
from physadv.classifiers import DEFAULT_MODEL, Classifier, load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.eot import adversariality, eot_gradient
from physadv.errors import InputError
from physadv.experiment import transformation_rows
from physadv.fileio import atomic_write_json
from physadv.images import read_rgb, to_tensor
from physadv.lab.store import RunLock, RunStore
from physadv.metrics import Predictions, format_fraction
from physadv.printouts.camera import RESOLUTIONS, photograph
from physadv.printouts.manifest import read_manifest
from physadv.printouts.profiles import DEFAULT_PROFILE, load_profile
from physadv.printouts.sheets import PAPERS_MM, SheetLayout, parse_grid, print_attack_set

CONFIG_FILE = "config.json"


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
        return attack_name(f"{self.method}{'+eot' if self.eot else ''}", self.eps)


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
    eot_samples: int = 8
    eot_chunk: int | None = None
    adversariality_distribution: str = "photo"
    adversariality_samples: int = 50
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
        for key in ("batch_size", "eot_samples", "adversariality_samples"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be ≥ 1, got {getattr(self, key)}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise InputError(f"limit must be a whole number ≥ 1, got {self.limit!r}")
        if self.paper not in PAPERS_MM:
            raise InputError(f"paper must be one of {', '.join(PAPERS_MM)}, got {self.paper!r}")
        self.layout()
        for name, strengths in self.transforms.items():
            for strength in strengths:
                check_strength(name, strength)
        if not isinstance(self.camera_profile, str):
            raise InputError(f"camera_profile must be a profile name or a .toml file, got {self.camera_profile!r}")
        load_profile(self.camera_profile)
        if self.resolution is not None and self.resolution not in RESOLUTIONS:
            raise InputError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}")
        if self.photos_per_page < 0:
            raise InputError("photos_per_page must be ≥ 0")
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


def config_from_mapping(data: dict[str, Any], base: SessionConfig = SessionConfig()) -> SessionConfig:
    """A :class:`SessionConfig` from parsed TOML/JSON; unknown keys are errors, not silently ignored."""
    known = {f.name for f in fields(SessionConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown configuration key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = dict(data)
    try:
        if "attacks" in values:
            values["attacks"] = tuple(AttackPlan(**plan) for plan in values["attacks"])
        if "images" in values:
            values["images"] = (values["images"],) if isinstance(values["images"], str) else tuple(values["images"])
        if "transforms" in values:
            values["transforms"] = {k: tuple(float(s) for s in v) for k, v in values["transforms"].items()}
        return replace(base, **values)
    except TypeError as error:
        raise InputError(f"bad configuration: {error}") from None


def load_config(path: str | Path, base: SessionConfig = SessionConfig()) -> SessionConfig:
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise InputError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    return config_from_mapping(data, base)


def stored_config(run_dir: Path) -> SessionConfig:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{run_dir}: not a physadv run (no {CONFIG_FILE}; create one with `physadv run new`)")
    return config_from_mapping(json.loads(path.read_text()))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Session:
    """Runs (or resumes) a session in ``run_dir``; holds the run's lock while it works."""

    def __init__(self, run_dir: str | Path, config: SessionConfig, device: torch.device, progress: bool = True):
        self.run_dir = Path(run_dir)
        self.config = config
        self.device = device
        self.progress = progress

    def run(self, command: str = "run") -> None:
        with RunLock(self.run_dir, command), RunStore(self.run_dir) as store:
            path = self.run_dir / CONFIG_FILE
            if path.is_file() and json.loads(path.read_text()) != self.config.to_json():
                raise InputError(f"{self.run_dir} was started with another configuration; "
                                 "continue it with `physadv run continue` or choose a new folder")
            atomic_write_json(path, self.config.to_json())
            classifier = load_classifier(self.config.model, weights=self.config.weights, device=self.device)
            store.set_meta(config=self.config.to_json())
            store.record_model(classifier.name, classifier.weights)
            images = prepare(load_image_set(list(self.config.images), classifier.labels, self.config.label,
                                            self.config.limit), classifier.image_size)
            for number, plan in enumerate(self.config.attacks, 1):
                _say(f"[{number}/{len(self.config.attacks)}] {plan.name}")
                self._one_attack(store, classifier, images, plan)

    def _one_attack(self, store: RunStore, classifier: Classifier, images, plan: AttackPlan) -> None:
        config = self.config
        folder = self.run_dir / "attacks" / plan.name
        attack = Attack(plan.method, plan.eps, config.alpha)
        eot = {}
        if plan.eot:
            eot = {"distribution": plan.eot, "samples": config.eot_samples}
            attack = attack.with_gradient(eot_gradient(resolve_distribution(plan.eot), config.eot_samples,
                                                       config.eot_chunk, config.seed),
                                          name=f"{plan.method}+eot")
        target = classifier.labels.index(plan.target) if plan.target else None
        attack_set = attack_to_folder(classifier, attack, images, folder, target=target, batch_size=config.batch_size,
                                      seed=config.seed, eot=eot, label=config.label, progress=self.progress)
        store.record_attack(plan.name, folder, store.meta()["weights_sha256"], eot)

        clean = to_tensor([read_rgb(attack_set.clean_path(folder, i)) for i in attack_set.images])
        adversarial = to_tensor([read_rgb(attack_set.adversarial_path(folder, i)) for i in attack_set.images])
        goal = torch.tensor([i.target if i.target is not None else (i.label or 0) for i in attack_set.images])
        targeted = attack_set.images[0].target is not None
        labels = np.array([i.label if i.label is not None else -1 for i in attack_set.images])
        key = f"adversariality:{plan.name}"
        if key not in store.meta():
            _say(f"  adversariality under '{config.adversariality_distribution}' "
                 f"({config.adversariality_samples} held-out transformations per image)")
            value = adversariality(classifier, adversarial, goal, targeted,
                                   resolve_distribution(config.adversariality_distribution),
                                   config.adversariality_samples, config.seed, config.eot_chunk)
            store.set_meta(**{key: float(value.mean())})
        extras = {"adversariality": store.meta()[key],
                  "quantisation_undid": sum(i.quantisation_undid for i in attack_set.images)}
        if not store.count("results", f"source = 'experiment:{plan.name}'") and config.transforms:
            _say("  artificial transformations")
            clean_predictions = Predictions.from_probabilities(classifier.probabilities(clean, config.batch_size))
            rows = transformation_rows(classifier, clean_predictions, adversarial, labels, config.transforms,
                                       {"method": attack.label, "eps": float(plan.eps), "iterations": attack.steps},
                                       extras, batch_size=config.batch_size, seed=config.seed)
            store.record_results(f"experiment:{plan.name}", rows)

        sheets = self.run_dir / "sheets" / plan.name
        if not (sheets / "manifest.json").is_file() or not (sheets / "sheets.pdf").is_file():
            _say("  printing sheets")
            print_attack_set(folder, sheets, config.layout(), progress=self.progress)
        manifest = read_manifest(sheets / "manifest.json")
        store.record_sheets(plan.name, manifest, sheets / "sheets.pdf")

        photos = self.run_dir / "photos" / plan.name
        if config.photos_per_page:
            _say(f"  photographing (virtual camera, profile {config.camera_profile})")
            photograph(sheets / "sheets.pdf", manifest, photos, config.photos_per_page * len(manifest.pages),
                       config.resolution, config.seed, profile=config.camera_profile, progress=self.progress)
        if photos.is_dir() and photo_files(photos):
            _say("  capturing and re-classifying")
            out = self.run_dir / "capture" / plan.name
            result = capture_folder(photos, sheets / "manifest.json", classifier, out, progress=self.progress)
            store.record_capture(plan.name, out)
            store.record_results(f"capture:{plan.name}", [{**row, **extras} for row in result.rows])
        else:
            _say(f"  waiting for photos: print {sheets / 'sheets.pdf'} at 100% and put photos of it in {photos}/")


def next_steps(run_dir: Path, store: RunStore, planned: Sequence[str]) -> list[str]:
    """What is left to do in a run, in words; ``planned`` are the attack names of its configuration
    (those of a run made implicitly by ``physadv attack`` are the ones it has recorded)."""
    steps = []
    for name in planned:
        folder = store.query("SELECT folder FROM attacks WHERE name = ?", name)
        here = os.path.normpath
        if not folder:
            steps.append(f"attack {name}")
        elif not store.count("pages", f"attack = '{name}'"):
            steps.append(f"print {name}: physadv print {here(run_dir / folder[0]['folder'])} --out SHEETS_DIR")
        elif not store.count("photos", f"attack = '{name}'"):
            pdf = store.query("SELECT pdf FROM pages WHERE attack = ? LIMIT 1", name)[0]["pdf"]
            steps.append(f"photograph the sheets of {name} ({here(run_dir / pdf)}) and capture the photos: "
                         f"physadv capture PHOTOS_DIR --manifest {here((run_dir / pdf).parent / 'manifest.json')}")
    if not steps and not (run_dir / "report" / "report.html").is_file():
        steps.append(f"physadv report {run_dir}")
    return steps


def status_counts(store: RunStore) -> dict[str, int]:
    return {
        "attacks": store.count("attacks"),
        "images attacked": store.count("images"),
        "pages printed": store.count("pages"),
        "photos": store.query("SELECT COUNT(DISTINCT attack || '/' || photo) FROM photos")[0][0],
        "rejected": store.query("SELECT COUNT(*) FROM photos WHERE accepted = 0")[0][0],
        "cells classified": store.count("predictions"),
    }


def headline(rows: Sequence[dict]) -> str:
    """Kurakin-style table of the photo rows: accuracy on photos and destruction rates with n."""
    photo = [r for r in rows if r["transform"] == "photo"]
    if not photo:
        return "no photo results yet"
    lines = [f"{'attack':<10}{'eps':>5}  {'case':<12}{'n':>4}  {'acc clean':>9}{'acc adv':>8}{'acc photo':>10}"
             f"  {'destruction top-1':>18}  {'top-5':>14}  {'adversariality':>14}"]
    for r in sorted(photo, key=lambda r: (r["method"], r["eps"], r["case"])):
        lines.append(f"{r['method']:<10}{r['eps']:>5g}  {r['case']:<12}{r['n_images']:>4}  "
                     f"{format_fraction(r['top1_clean']):>9}{format_fraction(r['top1_adv']):>8}"
                     f"{format_fraction(r['top1_transformed']):>10}"
                     f"  {format_fraction(r['destruction_top1'], r['destruction_top1_n']):>18}"
                     f"  {format_fraction(r['destruction_top5'], r['destruction_top5_n']):>14}"
                     f"  {format_fraction(r.get('adversariality')):>14}")
    return "\n".join(lines)
