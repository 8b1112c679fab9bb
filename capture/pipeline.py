"""Photos of printed sheets → crops → predictions → Kurakin's destruction rate with T = the photo.

Output folder (``physadv capture``)::

    OUT/crops/<photo>/p<page>_c<cell>_<kind>.png   every accepted cell, at its source size
    OUT/predictions.csv                           one row per cell per photo
    OUT/rejected.csv                              photo, reason (a key of physadv.capture.detect.REASONS), detail
    OUT/results.json                              rows with the keys of ``physadv experiment``
    OUT/.state/<photo key>.json                   what was done per photo (re-runs resume from these)

Each (photo, cell) is one observation: a cell photographed three times counts three times in
the accuracies and in eq. (1), as Kurakin et al. counted each photo of an image. For eq. (1),
``C(X)`` and ``C(X_adv)`` are the classifier's predictions on the digital clean and adversarial
images (from the attack folder's ``attack.json`` when it was made with the same classifier, else
by classifying its PNGs), and ``C(T(X_adv))`` the prediction on the photographed adversarial crop.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from physadv.capture.crops import crop_cells
from physadv.capture.detect import PhotoDetection, Rejection, find_pages
from physadv.attackset import read_attack_set
from physadv.classifiers import Classifier
from physadv.errors import InputError
from physadv.experiment import Row
from physadv.fileio import atomic_write_json, atomic_write_text
from physadv.images import image_files, read_rgb, to_tensor, write_png
from physadv.metrics import Predictions, accuracy, destruction_reports
from physadv.printouts.manifest import Cell, Manifest, read_manifest

STATE_DIR, CROPS_DIR = ".state", "crops"
STATE_VERSION = 1
TOP_K = 5


@dataclass(frozen=True)
class CellObservation:
    """One photographed cell and the classifier's top-5 on its crop."""

    photo: str
    page: int
    cell: int
    image_id: str
    kind: str
    method: str
    eps: float
    label: int | None
    classes: tuple[int, ...]
    probabilities: tuple[float, ...]
    crop: str
    rms_px: float


@dataclass(frozen=True)
class CaptureResult:
    """What :func:`capture_folder` wrote: observations, rejections and the metric rows."""

    photos: int
    observations: tuple[CellObservation, ...]
    rejections: tuple[tuple[str, Rejection], ...]
    rows: tuple[Row, ...]
    photo_clean: dict[str, float | int | None]


def classify_crops(classifier: Classifier, crops: list[np.ndarray]) -> Predictions:
    """Top-5 of ``crops`` (RGB uint8, any sizes: same-sized crops are batched together)."""
    classes = np.zeros((len(crops), TOP_K), dtype=np.int64)
    probabilities = np.zeros((len(crops), TOP_K), dtype=np.float32)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, crop in enumerate(crops):
        by_size.setdefault(crop.shape, []).append(index)
    for indices in by_size.values():
        batch = to_tensor([crops[i] for i in indices], device=classifier.device)
        predictions = Predictions.from_probabilities(classifier.probabilities(batch), TOP_K)
        width = predictions.classes.shape[1]
        classes[indices, :width], probabilities[indices, :width] = predictions.classes, predictions.probabilities
    return Predictions(classes, probabilities)


def resolve_attack_dir(manifest: Manifest, manifest_dir: Path) -> Path:
    root = Path(manifest.attack_dir)
    return root if root.is_absolute() else manifest_dir / root


def digital_predictions(manifest: Manifest, manifest_dir: Path,
                        classifier: Classifier) -> dict[str, tuple[Predictions, Predictions]]:
    """Per image id, the top-5 on its digital clean and adversarial versions (one row each).

    Raises:
        InputError: the manifest's attack folder is missing or unreadable.
    """
    root = resolve_attack_dir(manifest, manifest_dir)
    if not manifest.attack_dir:
        raise InputError("the manifest names no attack folder (attack_dir); it is needed for the digital predictions")
    attack_set = read_attack_set(root)
    wanted = {cell.image_id for _, cell in manifest.cells()}
    images = [image for image in attack_set.images if image.id in wanted]
    if attack_set.settings.model == classifier.name:
        def guesses(top5) -> Predictions:
            return Predictions(np.array([[g.index for g in top5]]), np.array([[g.probability for g in top5]]))
        return {image.id: (guesses(image.clean_top5), guesses(image.adv_top5)) for image in images}
    pictures = [read_rgb(path) for image in images
                for path in (attack_set.clean_path(root, image), attack_set.adversarial_path(root, image))]
    predictions = classify_crops(classifier, pictures)
    return {image.id: (predictions.subset(slice(2 * i, 2 * i + 1)), predictions.subset(slice(2 * i + 1, 2 * i + 2)))
            for i, image in enumerate(images)}


def photo_key(relative: str) -> str:
    """File-name-safe, unique name for a photo's state and crop folder."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in relative)[-60:]
    return f"{stem}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}"


def process_photo(image: np.ndarray, manifest: Manifest, classifier: Classifier, photo: str,
                  crops_dir: Path | None) -> tuple[PhotoDetection, list[CellObservation]]:
    """Detect, crop and classify one photo ``(H, W, 3)`` uint8 RGB; crops are saved under ``crops_dir``."""
    detection = find_pages(image, manifest)
    cells: list[tuple[Cell, float, int]] = []
    crops: list[np.ndarray] = []
    pages = {page.index: page for page in manifest.pages}
    for page_detection in detection.pages:
        page = pages[page_detection.page]
        crops += crop_cells(image, page_detection, page)
        cells += [(cell, page_detection.rms_px, page.index) for cell in page.cells]
    predictions = classify_crops(classifier, crops)
    observations = []
    for (cell, rms, page_index), crop, classes, probabilities in zip(cells, crops, predictions.classes,
                                                                     predictions.probabilities):
        name = f"p{page_index}_c{cell.index:03d}_{cell.kind}.png"
        if crops_dir is not None:
            write_png(crops_dir / name, crop)
        observations.append(CellObservation(
            photo=photo, page=page_index, cell=cell.index, image_id=cell.image_id, kind=cell.kind, method=cell.method,
            eps=cell.eps, label=cell.label, classes=tuple(int(c) for c in classes),
            probabilities=tuple(round(float(p), 6) for p in probabilities),
            crop=f"{CROPS_DIR}/{crops_dir.name}/{name}" if crops_dir is not None else "", rms_px=round(rms, 4)))
    return detection, observations


def photo_files(photos_dir: Path) -> list[Path]:
    """The image files under ``photos_dir``; :class:`InputError` when it is no folder or holds none."""
    if not photos_dir.is_dir():
        raise InputError(f"{photos_dir}: no such folder of photos")
    return image_files([photos_dir])


def capture_folder(photos_dir: str | Path, manifest_path: str | Path, classifier: Classifier, out: str | Path,
                   *, progress: bool = True, workers: int = 1) -> CaptureResult:
    """Capture every photo in ``photos_dir`` (recursively) and write ``out`` (see the module doc).

    Photos already recorded in ``out/.state`` with the same size, modification time, run and
    classifier are not processed again; the CSVs and results are rebuilt from all records of the
    photos present now. ``workers`` > 1 processes that many photos at once in threads (decoding,
    OpenCV and torch release the GIL); every photo is independent and the records are merged in
    photo order, so the outputs are the same as with one worker.

    Raises:
        InputError: no such folder, no photos, an unreadable manifest or attack folder.
    """
    if workers < 1:
        raise InputError(f"workers must be ≥ 1, got {workers}")
    photos_dir, out = Path(photos_dir), Path(out)
    photos = photo_files(photos_dir)
    manifest = read_manifest(manifest_path)
    digital = digital_predictions(manifest, Path(manifest_path).parent, classifier)
    records: list[dict | None] = []
    pending: list[tuple[int, Path, str, dict, Path]] = []
    for path in photos:
        relative = path.relative_to(photos_dir).as_posix()
        stat = path.stat()
        identity = {"version": STATE_VERSION, "photo": relative, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                    "run_id": manifest.run_id, "model": classifier.name}
        state_path = out / STATE_DIR / f"{photo_key(relative)}.json"
        record = _read_state(state_path)
        if record is None or record["identity"] != identity:
            pending.append((len(records), path, relative, identity, state_path))
            record = None
        records.append(record)

    def capture(job: tuple[int, Path, str, dict, Path]) -> dict:
        _, path, relative, identity, _ = job
        return {"identity": identity, **_capture_one(path, relative, manifest, classifier, out)}

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=len(photos), initial=len(photos) - len(pending), desc="photos", unit="photo",
                  disable=not progress) as bar:
            # map() yields in submission order: each record is saved once it and those before it are done.
            for job, record in zip(pending, pool.map(capture, pending) if pool else map(capture, pending)):
                atomic_write_json(job[4], record)
                records[job[0]] = record
                bar.update()
    finally:
        if pool is not None:  # on an error or Ctrl-C, wait for the photos in progress only
            pool.shutdown(cancel_futures=True)
    observations = tuple(CellObservation(**{**o, "classes": tuple(o["classes"]),
                                            "probabilities": tuple(o["probabilities"])})
                         for record in records for o in record["observations"])
    rejections = tuple((record["identity"]["photo"], Rejection(**r)) for record in records for r in record["rejections"])
    rows, photo_clean = metric_rows(observations, digital)
    _write_outputs(out, observations, rejections, rows, photo_clean, manifest, classifier, len(photos))
    return CaptureResult(len(photos), observations, rejections, tuple(rows), photo_clean)


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _capture_one(path: Path, relative: str, manifest: Manifest, classifier: Classifier, out: Path) -> dict:
    try:
        image = read_rgb(path)
    except InputError as error:
        return {"observations": [], "rejections": [asdict(Rejection("unreadable", str(error)))]}
    detection, observations = process_photo(image, manifest, classifier, relative, out / CROPS_DIR / photo_key(relative))
    return {"observations": [asdict(o) for o in observations], "rejections": [asdict(r) for r in detection.rejections]}


def metric_rows(observations: tuple[CellObservation, ...], digital: dict[str, tuple[Predictions, Predictions]]
                ) -> tuple[list[Row], dict[str, float | int | None]]:
    """Destruction reports per (method, ε) over the photographed adversarial cells, and the photo
    accuracy of the clean crops. Cells without a label or digital predictions are left out."""
    usable = [o for o in observations if o.label is not None and o.image_id in digital]
    clean_photos = [o for o in usable if o.kind == "clean"]
    photo_clean: dict[str, float | int | None] = {"n": len(clean_photos)}
    if clean_photos:
        predictions = _stack(clean_photos)
        labels = np.array([o.label for o in clean_photos])
        photo_clean.update(top1=accuracy(predictions, labels, 1).value, top5=accuracy(predictions, labels, 5).value)
    else:
        photo_clean.update(top1=None, top5=None)
    rows: list[Row] = []
    for method, eps in sorted({(o.method, o.eps) for o in usable if o.kind == "adversarial"}):
        group = [o for o in usable if o.kind == "adversarial" and (o.method, o.eps) == (method, eps)]
        clean = _concat([digital[o.image_id][0] for o in group])
        adversarial = _concat([digital[o.image_id][1] for o in group])
        for report in destruction_reports(clean, adversarial, _stack(group), np.array([o.label for o in group])):
            rows.append({"method": method, "eps": eps, "transform": "photo", "strength": None, **report.row()})
    return rows, photo_clean


def _stack(observations: list[CellObservation]) -> Predictions:
    return Predictions(np.array([o.classes for o in observations]), np.array([o.probabilities for o in observations]))


def _concat(parts: list[Predictions]) -> Predictions:
    return Predictions(np.concatenate([p.classes for p in parts]), np.concatenate([p.probabilities for p in parts]))


PREDICTION_COLUMNS = ("photo", "page", "cell", "image_id", "kind", "method", "eps", "label", "label_name",
                      *(f"class{k}" for k in range(1, TOP_K + 1)), *(f"name{k}" for k in range(1, TOP_K + 1)),
                      *(f"prob{k}" for k in range(1, TOP_K + 1)), "correct_top1", "correct_top5", "rms_px", "crop")


def _csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_outputs(out: Path, observations: tuple[CellObservation, ...], rejections: tuple[tuple[str, Rejection], ...],
                   rows: list[Row], photo_clean: dict, manifest: Manifest, classifier: Classifier, photos: int) -> None:
    names = classifier.labels.names
    table = []
    for o in observations:
        known = o.label is not None
        table.append({
            "photo": o.photo, "page": o.page, "cell": o.cell, "image_id": o.image_id, "kind": o.kind,
            "method": o.method, "eps": o.eps, "label": "" if not known else o.label,
            "label_name": names[o.label] if known and o.label < len(names) else "",
            **{f"class{k + 1}": c for k, c in enumerate(o.classes)},
            **{f"name{k + 1}": names[c] for k, c in enumerate(o.classes)},
            **{f"prob{k + 1}": p for k, p in enumerate(o.probabilities)},
            "correct_top1": "" if not known else int(o.classes[0] == o.label),
            "correct_top5": "" if not known else int(o.label in o.classes),
            "rms_px": o.rms_px, "crop": o.crop})
    atomic_write_text(out / "predictions.csv", _csv(table, PREDICTION_COLUMNS))
    atomic_write_text(out / "rejected.csv", _csv(
        [{"photo": photo, "reason": r.reason, "detail": r.detail if r.page is None else f"page {r.page}: {r.detail}"}
         for photo, r in rejections], ("photo", "reason", "detail")))
    accepted = {o.photo for o in observations}
    atomic_write_json(out / "results.json", {
        "run_id": manifest.run_id, "model": classifier.name, "transform": "photo",
        "observation": "each (photo, cell) pair counts once",
        "photos": photos, "photos_with_pages": len(accepted), "cells_observed": len(observations),
        "rejections": len(rejections), "photo_clean": photo_clean, "rows": rows})
