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

from physadv.errors import InputError
from physadv.fileio import atomic_write_json

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


_PER_IMAGE_SETTINGS = ("model", "method", "eps", "iterations")


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
