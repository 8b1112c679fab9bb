"""The on-disk result of ``physadv patch``: a patch folder and its record ``patch.json``.

Layout::

    DIR/patch.png                      the patch (RGB; RGBA with its alpha mask for a circle)
    DIR/control-noise.png              the control patches, same size and shape
    DIR/control-crop.png
    DIR/print/{patch,control-noise,control-crop}.png
                                       what is printed: RGB, a shaped patch on white paper
    DIR/scenes/clean/<image>.png       held-out images, and each at each area with each patch
    DIR/scenes/<variant>/a<area>/<image>.png
    DIR/patch.json                     the record (schema physadv.patch/1), written last
    DIR/.patch-state/checkpoint.pt     the optimiser's state while training (removed when done)

``patch.json`` holds the model's name (a name: never imported), the target, every parameter, the
SHA-256 of every training and held-out image and of every file above, the recorded placements, the
held-out results by area and the patch's mean ΔE00 to its simulated print. It is untrusted input when
read back (:func:`read_patch_record`): every field is checked, and every file it names must be a
plain relative path inside the folder.

A folder whose ``patch.json`` has the same fingerprint (model, images, parameters) is done; a
checkpoint with the same fingerprint is resumed; anything else is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from physadv.classifiers import Classifier
from physadv.datasets import LabelledImage
from physadv.eot import TransformDistribution
from physadv.errors import InputError
from physadv.fileio import atomic_write_bytes, atomic_write_json, parse_json
from physadv.images import pixel_sha256, quantise, read_rgb, to_tensor, to_uint8, write_png
from physadv.patch.geometry import SHAPES
from physadv.patch.heldout import CONTROLS, VARIANTS, control_patches, make_scenes, result_rows
from physadv.patch.printability import mean_delta_e00, simulated_print
from physadv.patch.train import PatchConfig, TrainingSet, check_area_range, train_patch
from physadv.validation import MAX_CLASSES, MAX_TEXT, Record, is_safe_name

SCHEMA = "physadv.patch/1"
RECORD_FILE, STATE_DIR, CHECKPOINT_FILE = "patch.json", ".patch-state", "checkpoint.pt"
PRINT_DIR, SCENES_DIR = "print", "scenes"
PATCH_NAMES = ("patch", *CONTROLS)
"""The patches of a folder: the adversarial one and the controls."""
MAX_IMAGES = 100_000
MAX_AREAS = 16


def patch_file(name: str) -> str:
    """The file of the patch called ``name`` (``patch``, ``noise``, ``crop``)."""
    return "patch.png" if name == "patch" else f"control-{name}.png"


def area_folder(area: float) -> str:
    return f"a{area:g}"


def scene_file(variant: str, area: float, image_id: str) -> str:
    return f"{SCENES_DIR}/clean/{image_id}.png" if variant == "clean" else \
        f"{SCENES_DIR}/{variant}/{area_folder(area)}/{image_id}.png"


@dataclass(frozen=True)
class PatchFile:
    """One patch of the folder: its file, the RGB file that is printed, and the printed pixels' SHA-256."""

    name: str
    file: str
    print_file: str
    sha256: str


@dataclass(frozen=True)
class ImageEntry:
    """A training or held-out image: its id, where it came from, its pixels' SHA-256 and its class."""

    id: str
    source: str
    sha256: str
    label: int | None
    label_name: str | None


@dataclass(frozen=True)
class SceneEntry:
    """A held-out image at one area: the placement (corners, image px) and, per variant, file, pixel
    SHA-256 and the digital top-1."""

    image: str
    area: float
    corners: tuple[tuple[float, float], ...]
    files: dict[str, str]
    sha256: dict[str, str]
    top1: dict[str, int]


@dataclass(frozen=True)
class PatchRecord:
    """``patch.json``."""

    model: str
    image_size: int
    target: int | None
    target_name: str | None
    parameters: dict
    eot: str | None
    printable: str
    fingerprint: str
    patches: tuple[PatchFile, ...]
    training: tuple[ImageEntry, ...]
    held_out: tuple[ImageEntry, ...]
    excluded_of_target_class: int
    eval_areas: tuple[float, ...]
    scenes: tuple[SceneEntry, ...]
    results: tuple[dict, ...]
    delta_e00: float
    last_step: dict
    created: str
    schema: str = SCHEMA

    @property
    def config(self) -> PatchConfig:
        return PatchConfig(**{**self.parameters, "area": tuple(self.parameters["area"])})

    @property
    def goal(self) -> str:
        return "untargeted" if self.target is None else "target"

    def patch(self, name: str) -> PatchFile:
        return next(p for p in self.patches if p.name == name)

    def to_dict(self) -> dict:
        return asdict(self)


def _fingerprint(classifier: Classifier, config: PatchConfig, eot: str | None, printable: str,
                 printable_colours: torch.Tensor | None, training: Sequence[LabelledImage],
                 held_out: Sequence[LabelledImage], areas: Sequence[float]) -> str:
    colours = (hashlib.sha256(printable_colours.float().cpu().numpy().tobytes()).hexdigest()
               if printable_colours is not None else "")
    text = json.dumps({"model": classifier.name, "weights": classifier.weights, "image_size": classifier.image_size,
                       "config": config.record(), "eot": eot, "printable": printable, "colours": colours,
                       "training": [pixel_sha256(i.image) for i in training],
                       "held_out": [pixel_sha256(i.image) for i in held_out], "areas": list(areas)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(image: LabelledImage, classifier: Classifier) -> ImageEntry:
    return ImageEntry(image.id, image.source, pixel_sha256(image.image), image.label,
                      None if image.label is None else classifier.labels.name(image.label))


def _rgba(pixels: np.ndarray, mask: torch.Tensor) -> np.ndarray:
    alpha = mask[0].mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return np.dstack([pixels, alpha])


def _write_patch_files(out: Path, name: str, patch: torch.Tensor, mask: torch.Tensor, square: bool) -> PatchFile:
    """The patch as saved (RGB, or RGBA for a shape) and as printed (RGB on white paper)."""
    pixels = to_uint8(patch[None])[0]
    file = patch_file(name)
    if square:
        write_png(out / file, pixels)
        return PatchFile(name, file, file, pixel_sha256(pixels))
    buffer = io.BytesIO()
    Image.fromarray(_rgba(pixels, mask), "RGBA").save(buffer, format="PNG")
    atomic_write_bytes(out / file, buffer.getvalue())
    on_paper = to_uint8(quantise((patch * mask + (1 - mask)).cpu()[None]))[0]
    printed = f"{PRINT_DIR}/{file}"
    write_png(out / printed, on_paper)
    return PatchFile(name, file, printed, pixel_sha256(on_paper))


def make_patch(classifier: Classifier, training: Sequence[LabelledImage], held_out: Sequence[LabelledImage],
               config: PatchConfig, out: Path, *, areas: Sequence[float], channel: TransformDistribution,
               eot: str | None, printable: torch.Tensor | None, gamut: np.ndarray, printable_name: str,
               progress: bool = False) -> tuple[PatchRecord, bool]:
    """Train a patch on ``training``, evaluate it on ``held_out`` and write the folder ``out``.

    Args:
        training: prepared images (square, ``classifier.image_size``) the patch is trained on.
        held_out: prepared images, as ``training``, its success is measured on.
        areas: the areas held-out success is measured at.
        channel: the EOT distribution of the print → photo channel (identity: none).
        eot: its name as given (recorded), or ``None``.
        printable: :math:`(K, 3)` colours in [0, 1] of the NPS term.
        gamut: ``(G, 3)`` colours (0-255) the printer makes, for the simulated print.
        printable_name: where ``printable`` and ``gamut`` come from (recorded).

    Returns:
        the record and whether it was made now (``False``: the folder already held this patch).

    Raises:
        InputError: no training or held-out images, an area outside (0, 1), a folder that holds
            another patch or attack.
    """
    if not training:
        raise InputError("no training images left (hold fewer out, or give --eval-images)")
    # Six significant digits: what names their folders and sheet cells (``a0.25``, ``digit0002_4@0.25``).
    areas = tuple(sorted(set(check_area_range(tuple(float(f"{area:g}") for area in areas), "held-out area"))))
    if not 1 <= len(areas) <= MAX_AREAS:
        raise InputError(f"between 1 and {MAX_AREAS} held-out areas, got {len(areas)}")
    fingerprint = _fingerprint(classifier, config, eot, printable_name, printable, training, held_out, areas)
    if (out / RECORD_FILE).is_file():
        existing = read_patch_record(out)
        if existing.fingerprint == fingerprint:
            return existing, False
        raise InputError(f"{out} already holds a patch made with other images or settings; choose another --out")
    if (out / "attack.json").exists():
        raise InputError(f"{out} holds an attack (attack.json); choose an empty or new --out folder")
    target_kept = [i for i in held_out if config.target is None or i.label != config.target]
    if not target_kept:
        raise InputError("no held-out image left to measure the patch on (all are of the target class)")
    data = TrainingSet(to_tensor([i.image for i in training]),
                       torch.tensor([-1 if i.label is None else i.label for i in training]))
    trained = train_patch(classifier, data, config, channel, printable, checkpoint=out / STATE_DIR / CHECKPOINT_FILE,
                          fingerprint=fingerprint, progress=progress)
    patch = quantise(trained.patch[None].cpu())[0]
    mask = trained.mask.cpu()
    controls = control_patches(config.patch_px, data.images, data.labels, config.target, config.seed)
    square = config.shape == "square"
    files = (_write_patch_files(out, "patch", patch, mask, square),
             _write_patch_files(out, "noise", controls.noise, mask, square),
             _write_patch_files(out, "crop", controls.crop, mask, square))
    evaluation = to_tensor([i.image for i in target_kept])
    scenes = make_scenes(classifier, evaluation, [i.id for i in target_kept], patch, controls, mask, list(areas),
                         config)
    entries = []
    for scene in scenes:
        image = target_kept[scene.image]
        names = {variant: scene_file(variant, scene.area, image.id) for variant in VARIANTS}
        for variant, name in names.items():
            if variant != "clean" or scene.area == areas[0]:
                write_png(out / name, scene.pixels[variant])
        entries.append(SceneEntry(image.id, scene.area, tuple(tuple(round(float(v), 4) for v in point)
                                                             for point in scene.corners.tolist()),
                                  names, {v: pixel_sha256(scene.pixels[v]) for v in VARIANTS}, dict(scene.top1)))
    levels = to_uint8(patch[None])[0].astype(np.float64)
    delta_e = mean_delta_e00(levels, simulated_print(levels, gamut), mask[0].numpy())
    record = PatchRecord(
        model=classifier.name, image_size=classifier.image_size, target=config.target,
        target_name=None if config.target is None else classifier.labels.name(config.target),
        parameters=config.record(), eot=eot, printable=printable_name, fingerprint=fingerprint, patches=files,
        training=tuple(_entry(i, classifier) for i in training),
        held_out=tuple(_entry(i, classifier) for i in target_kept),
        excluded_of_target_class=len(held_out) - len(target_kept), eval_areas=areas, scenes=tuple(entries),
        results=tuple(result_rows(scenes, [i.label for i in target_kept], config.target)),
        delta_e00=round(delta_e, 4), last_step={k: round(v, 6) for k, v in trained.last.items()},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    atomic_write_json(out / RECORD_FILE, record.to_dict())
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)
    return record, True


# --- reading ----------------------------------------------------------------------------------------------


def _relative_file(record: Record, key: str) -> str:
    """A file the record names: a relative path of plain names (no ``..``, no absolute path)."""
    text = record.text(key, max_length=512)
    parts = text.split("/")
    if not all(is_safe_name(part) for part in parts):
        raise record.fail(key, f"{text!r} is not a plain relative path inside the patch folder")
    return text


def _sha(record: Record, key: str) -> str:
    text = record.text(key, max_length=64)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise record.fail(key, "expected 64 lowercase hex digits")
    return text


def _image_entry(record: Record, classes: int) -> ImageEntry:
    record.only([f.name for f in fields(ImageEntry)])
    return ImageEntry(record.name("id"), record.text("source"), _sha(record, "sha256"),
                      record.integer("label", 0, classes - 1, optional=True),
                      record.text("label_name", optional=True, max_length=256))


def _scene_entry(record: Record, areas: tuple[float, ...], image_size: int) -> SceneEntry:
    record.only([f.name for f in fields(SceneEntry)])
    area = record.number("area", 0, 1)
    if area not in areas:
        raise record.fail("area", f"{area:g} is not one of the held-out areas {list(areas)}")
    corners = tuple(tuple(Record({"xy": point}, f"{record.where}.corners[{k}]").numbers("xy", 2, -4 * image_size,
                                                                                         5 * image_size))
                    for k, point in enumerate(record.items("corners", 4, 4)))
    image = record.name("image")
    files, hashes, top1 = (record.record(key) for key in ("files", "sha256", "top1"))
    for table in (files, hashes, top1):
        table.only(VARIANTS, "variant")
    names = {variant: _relative_file(files, variant) for variant in VARIANTS}
    for variant, name in names.items():
        if name != scene_file(variant, area, image):
            raise files.fail(variant, f"{name!r} is not where a {variant} scene of {image} at area {area:g} lives")
    return SceneEntry(image, area, corners, names, {v: _sha(hashes, v) for v in VARIANTS},
                      {v: top1.integer(v, 0, MAX_CLASSES - 1) for v in VARIANTS})


def _result_row(record: Record, areas: tuple[float, ...]) -> dict:
    record.only(("kind", "control", "area", "n", "target_success", "top1", "top1_n"))
    row = {"kind": record.choice("kind", ("clean", "patch", "control")),
           "control": record.choice("control", CONTROLS, optional=True), "area": record.number("area", 0, 1),
           "n": record.integer("n", 0, MAX_IMAGES), "target_success": record.number("target_success", 0, 1, optional=True),
           "top1": record.number("top1", 0, 1, optional=True), "top1_n": record.integer("top1_n", 0, MAX_IMAGES)}
    if (row["kind"] == "control") != (row["control"] is not None) or row["area"] not in areas:
        raise record.fail(None, "a control row names its control, others none; its area is a held-out area")
    return row


def patch_record_from_dict(data: object, where: str) -> PatchRecord:
    """Read ``patch.json``'s parsed content, checking every field (it is untrusted input)."""
    record = Record(data, where)
    if record.data.get("schema") != SCHEMA:
        raise record.fail("schema", f"{record.data.get('schema')!r} is not {SCHEMA!r} (not a patch folder of "
                                    "this physadv)")
    record.only([f.name for f in fields(PatchRecord)])
    image_size = record.integer("image_size", 1, 8192)
    parameters = record.record("parameters")
    parameters.only([f.name for f in fields(PatchConfig)], "parameter")
    values = {f.name: parameters.data.get(f.name) for f in fields(PatchConfig)}
    area = parameters.numbers("area", 2, 0, 1)
    parameters.choice("shape", SHAPES)
    for key in ("patch_px", "iterations", "batch", "seed"):
        parameters.integer(key, -(2 ** 63), 2 ** 63 - 1)
    for key in ("rotation", "perspective", "learning_rate", "nps_weight", "tv_weight"):
        parameters.number(key, 0, 1e4)
    target = parameters.integer("target", 0, MAX_CLASSES - 1, optional=True)
    try:
        config = PatchConfig(**{**values, "area": area})
    except InputError as error:
        raise record.fail("parameters", str(error)) from None
    if record.integer("target", 0, MAX_CLASSES - 1, optional=True) != target:
        raise record.fail("target", "differs from parameters.target")
    eval_areas = tuple(record.numbers("eval_areas", len(record.items("eval_areas", 1, MAX_AREAS)), 0, 1))
    try:
        check_area_range(eval_areas, "eval_areas")
    except InputError as error:
        raise record.fail("eval_areas", str(error)) from None
    patches = []
    for entry in record.records("patches", len(PATCH_NAMES), len(PATCH_NAMES)):
        entry.only([f.name for f in fields(PatchFile)])
        patches.append(PatchFile(entry.choice("name", PATCH_NAMES), _relative_file(entry, "file"),
                                 _relative_file(entry, "print_file"), _sha(entry, "sha256")))
    if [p.name for p in patches] != list(PATCH_NAMES) or any(
            p.file != patch_file(p.name) or p.print_file not in (p.file, f"{PRINT_DIR}/{p.file}") for p in patches):
        raise record.fail("patches", f"expected {', '.join(map(patch_file, PATCH_NAMES))} in that order, each printed "
                                     f"from itself or from {PRINT_DIR}/")
    training = tuple(_image_entry(r, MAX_CLASSES) for r in record.records("training", 1, MAX_IMAGES))
    held_out = tuple(_image_entry(r, MAX_CLASSES) for r in record.records("held_out", 1, MAX_IMAGES))
    held_ids = {entry.id for entry in held_out}
    if len(held_ids) != len(held_out):
        raise record.fail("held_out", "image ids repeat")
    scenes = tuple(_scene_entry(r, eval_areas, image_size)
                   for r in record.records("scenes", 1, MAX_IMAGES * MAX_AREAS))
    if {(s.image, s.area) for s in scenes} != {(i, a) for i in held_ids for a in eval_areas} \
            or len(scenes) != len(held_ids) * len(eval_areas):
        raise record.fail("scenes", "expected one scene per held-out image and area")
    last = record.record("last_step")
    last.only(("task", "nps", "tv", "success"))
    last_step = {key: last.number(key, -1e9, 1e9) for key in ("task", "nps", "tv", "success")}
    return PatchRecord(
        model=record.text("model", max_length=256), image_size=image_size, target=target,
        target_name=record.text("target_name", optional=True, max_length=256), parameters=config.record(),
        eot=record.text("eot", optional=True, max_length=MAX_TEXT), printable=record.text("printable"),
        fingerprint=_sha(record, "fingerprint"), patches=tuple(patches), training=training, held_out=held_out,
        excluded_of_target_class=record.integer("excluded_of_target_class", 0, MAX_IMAGES), eval_areas=eval_areas,
        scenes=scenes, results=tuple(_result_row(r, eval_areas) for r in record.records("results", 0, 4 * MAX_AREAS)),
        delta_e00=record.number("delta_e00", 0, 200), last_step=last_step,
        created=record.text("created", max_length=64))


def read_patch_record(folder: str | Path) -> PatchRecord:
    """``folder/patch.json``, every field checked.

    Raises:
        InputError: no record, unreadable, another schema, or any field wrong.
    """
    path = Path(folder) / RECORD_FILE
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{folder}: not a patch folder (no {RECORD_FILE}; `physadv patch` writes it)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a readable patch record ({error})") from None
    return patch_record_from_dict(data, str(path))


def check_patch_files(folder: str | Path, record: PatchRecord) -> dict[str, np.ndarray]:
    """Every file the record prints, read and compared with its recorded SHA-256, by path.

    Raises:
        InputError: a file missing, outside the folder, unreadable, or not the one recorded.
    """
    root = Path(folder).resolve()
    wanted = {p.print_file: p.sha256 for p in record.patches}
    for scene in record.scenes:
        for variant in VARIANTS:
            wanted[scene.files[variant]] = scene.sha256[variant]
    pixels = {}
    for name, sha in wanted.items():
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise InputError(f"{folder}/{RECORD_FILE}: {name!r} lies outside the patch folder")
        image = read_rgb(path)
        if pixel_sha256(image) != sha:
            raise InputError(f"{path}: not the image the patch run wrote (pixel hash differs from {RECORD_FILE})")
        pixels[name] = image
    return pixels
