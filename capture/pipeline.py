"""Photos of printed sheets → crops → predictions → Kurakin's destruction rate with T = the photo.

Output folder (``physadv capture``)::

    OUT/crops/<photo>/p<page>_c<cell>_<kind>.png   every accepted cell, at its source size
    OUT/crops/<photo>/capture.json                the audit record: page homographies, markers used,
                                                  reference dots found (page mm, photo px), the page
                                                  model, identity bits read, every cell's crop geometry,
                                                  match score, displacement, glare and blur
    OUT/predictions.csv                           one row per accepted cell per photo
    OUT/rejected.csv                              photo, reason (a key of physadv.capture.detect.REASONS),
                                                  page, cell, detail — a photo, a page or a single cell
    OUT/results.json                              rows with the keys of ``physadv experiment`` (a patch
                                                  folder's scenes: those of physadv.results.PatchRow)
    OUT/.state/<photo key>.json                   what was done per photo (re-runs resume from these)

Every cell is checked against its own source PNG before it is classified
(:mod:`physadv.capture.verify`); a cell that fails is a rejection, never an observation, so it
is left out of every rate. Each accepted (photo, cell) is one observation: a cell photographed three times counts three times in
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
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from physadv.capture.detect import REASONS, PageDetection, PhotoDetection, Rejection, find_pages
from physadv.capture.patches import is_patch_manifest, patch_cells, patch_result_rows
from physadv.capture.verify import check_page
from physadv.attackset import read_attack_set
from physadv.classifiers import Classifier
from physadv.errors import InputError, PhysadvWarning
from physadv.fileio import atomic_write_json, atomic_write_text, parse_json
from physadv.images import image_files, pixel_sha256, read_rgb, to_tensor, write_png
from physadv.metrics import Predictions, accuracy, channel_severity, destruction_reports
from physadv.printouts.manifest import MAX_CELLS_PER_PAGE, MAX_PAGES, Cell, Manifest, Page, read_manifest
from physadv.results import PHOTO, AnyRow, PatchRow, ResultRow
from physadv.validation import MAX_CLASSES, Record

STATE_DIR, CROPS_DIR = ".state", "crops"
AUDIT_FILE = "capture.json"
STATE_VERSION = 3  # 3: pages that are not flat are modelled through reference dots (re-capture old records)
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
    rows: tuple[ResultRow, ...] | tuple[PatchRow, ...]  # PatchRow: the scene sheets of a patch folder
    photo_clean: dict[str, float | int | None]
    patch_sheet: bool = False  # the sheet of a patch folder's patches: checked crops, no result rows


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


def cell_sources(manifest: Manifest, manifest_dir: Path) -> dict[tuple[int, int], np.ndarray]:
    """Per (page, cell), the source PNG the cell was printed from, ``(h, w, 3)`` uint8 RGB.

    ``cell.file`` is read relative to the manifest's attack folder and must stay inside it; the
    pixels must have the cell's size and, when the manifest records one, its SHA-256.

    Raises:
        InputError: no attack folder, a file outside it, missing, unreadable or different.
    """
    if not manifest.attack_dir:
        raise InputError("the manifest names no attack folder (attack_dir); capture needs the source images")
    root = resolve_attack_dir(manifest, manifest_dir).resolve()
    sources = {}
    for page, cell in manifest.cells():
        path = (root / cell.file).resolve()
        if not path.is_relative_to(root):
            raise InputError(f"manifest cell {cell.index}: file {cell.file!r} lies outside the attack folder {root}")
        pixels = read_rgb(path)
        if (pixels.shape[1], pixels.shape[0]) != tuple(cell.size_px):
            raise InputError(f"{path}: {pixels.shape[1]}x{pixels.shape[0]} px, the manifest printed "
                             f"{cell.size_px[0]}x{cell.size_px[1]}")
        if cell.sha256 and pixel_sha256(pixels) != cell.sha256:
            raise InputError(f"{path}: not the image that was printed (pixel hash differs from the manifest)")
        sources[page.index, cell.index] = pixels
    return sources


def photo_key(relative: str) -> str:
    """File-name-safe, unique name for a photo's state and crop folder."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in relative)[-60:]
    return f"{stem}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}"


def process_photo(image: np.ndarray, manifest: Manifest, classifier: Classifier, photo: str,
                  crops_dir: Path | None, sources: dict[tuple[int, int], np.ndarray]
                  ) -> tuple[PhotoDetection, list[CellObservation], list[Rejection], dict]:
    """Detect, crop, check and classify one photo ``(H, W, 3)`` uint8 RGB.

    Every cell is cropped and checked against ``sources[page, cell]``
    (:func:`physadv.capture.verify.check_cell`); accepted crops are classified and saved under
    ``crops_dir``, rejected cells are returned as :class:`Rejection` with their page and cell.

    Returns:
        the detection, the observations, the cell rejections and the audit record (``capture.json``).
    """
    detection = find_pages(image, manifest)
    cells: list[tuple[Cell, float, int]] = []
    crops: list[np.ndarray] = []
    rejected: list[Rejection] = []
    pages = {page.index: page for page in manifest.pages}
    audit_pages = []
    for page_detection in detection.pages:
        page = pages[page_detection.page]
        checks = []
        page_sources = {cell.index: sources[page.index, cell.index] for cell in page.cells}
        for cell, (crop, check) in zip(page.cells, check_page(image, page_detection, page, page_sources)):
            checks.append(check.record())
            if check.reason is not None:
                rejected.append(Rejection(check.reason, check.detail, page.index, cell.index))
                continue
            crops.append(crop)
            cells.append((cell, page_detection.rms_px, page.index))
        audit_pages.append({
            "page": page.index, "homography": [[float(v) for v in row] for row in page_detection.homography],
            "homography_maps": "page mm (x, y) -> photo px (OpenCV centres)",
            "markers": {str(i): [[round(float(v), 3) for v in point] for point in corners]
                        for i, corners in sorted(page_detection.marker_corners_px.items())},
            "model": "homography" if page_detection.page_model.flat else "thin-plate spline through markers and dots",
            "reference_dots": _dots_record(page, page_detection),
            "rms_px": round(page_detection.rms_px, 4), "blur_px": round(page_detection.blur_px, 4),
            "marker_side_px": round(page_detection.marker_side_px, 2),
            "identity_bits_read": page_detection.identity_bits_read, "cells": checks})
    predictions = classify_crops(classifier, crops)
    observations = []
    for (cell, rms, page_index), crop, classes, probabilities in zip(cells, crops, predictions.classes,
                                                                     predictions.probabilities):
        name = _crop_name(page_index, cell)
        if crops_dir is not None:
            write_png(crops_dir / name, crop)
        observations.append(CellObservation(
            photo=photo, page=page_index, cell=cell.index, image_id=cell.image_id, kind=cell.kind, method=cell.method,
            eps=cell.eps, label=cell.label, classes=tuple(int(c) for c in classes),
            probabilities=tuple(round(float(p), 6) for p in probabilities),
            crop=f"{CROPS_DIR}/{crops_dir.name}/{name}" if crops_dir is not None else "", rms_px=round(rms, 4)))
    audit = {"photo": photo, "size_px": [int(image.shape[1]), int(image.shape[0])], "run_id": manifest.run_id,
             "markers_found": detection.markers_found, "pages": audit_pages,
             "rejections": [asdict(r) for r in (*detection.rejections, *rejected)]}
    return detection, observations, rejected, audit


def _dots_record(page: Page, detection: PageDetection) -> dict:
    """The reference dots printed and those found: page mm, photo px, match score and (on a page that is
    not flat) the distance of the spline fitted without the dot."""
    found = []
    for dot in detection.dots:
        held_out = detection.held_out_px.get(dot.index)
        found.append({"dot": dot.index, "mm": [round(v, 3) for v in dot.centre_mm],
                      "px": [round(v, 3) for v in dot.photo_px], "score": round(dot.score, 4),
                      "held_out_px": None if held_out is None else round(held_out, 4)})
    return {"printed": len(page.reference_dots), "found": found}


def photo_files(photos_dir: Path, out: Path | None = None) -> list[Path]:
    """The image files under ``photos_dir``, less those under ``out`` (capture's own crops, when its
    output folder lies inside the photos); :class:`InputError` when it is no folder or holds none."""
    if not photos_dir.is_dir():
        raise InputError(f"{photos_dir}: no such folder of photos")
    photos = image_files([photos_dir])
    if out is not None:
        own = out.resolve()
        photos = [photo for photo in photos if not photo.resolve().is_relative_to(own)]
        if not photos:
            raise InputError(f"{photos_dir}: no photos outside the output folder {out}")
    return photos


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
    photos = photo_files(photos_dir, out)
    manifest = read_manifest(manifest_path)
    classes = len(classifier.labels.names)
    foreign = sorted({cell.label for _, cell in manifest.cells() if cell.label is not None and cell.label >= classes})
    if foreign:
        raise InputError(f"{manifest_path}: label(s) {', '.join(map(str, foreign[:5]))} are not classes of "
                         f"{classifier.name} ({classes} classes); capture with the model the sheets were made for")
    manifest_dir = Path(manifest_path).parent
    patch = patch_cells(manifest, resolve_attack_dir(manifest, manifest_dir)) if is_patch_manifest(manifest) else None
    digital = digital_predictions(manifest, manifest_dir, classifier) if patch is None else {}
    sources = cell_sources(manifest, manifest_dir)
    records: list[dict | None] = []
    pending: list[tuple[int, Path, str, dict, Path]] = []
    redone: list[str] = []
    for path in photos:
        relative = path.relative_to(photos_dir).as_posix()
        stat = path.stat()
        identity = {"version": STATE_VERSION, "photo": relative, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                    "run_id": manifest.run_id, "model": classifier.name}
        state_path = out / STATE_DIR / f"{photo_key(relative)}.json"
        record = _read_state(state_path, identity, manifest, classes, out)
        if record is False:
            redone.append(relative)
        if not record:
            pending.append((len(records), path, relative, identity, state_path))
        records.append(record)

    def capture(job: tuple[int, Path, str, dict, Path]) -> dict:
        _, path, relative, identity, _ = job
        return {"identity": identity, **_capture_one(path, relative, manifest, classifier, out, sources)}

    if redone:
        warnings.warn(f"{len(redone)} record(s) in {out / STATE_DIR} (e.g. of {redone[0]}) do not match the manifest, "
                      "the model or their crops; those photos are captured again", PhysadvWarning, stacklevel=2)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=len(photos), initial=len(photos) - len(pending), desc="photos", unit="photo",
                  disable=not progress) as bar:
            # map() yields in submission order: each record is saved once it and those before it are done.
            for job, record in zip(pending, pool.map(capture, pending) if pool else map(capture, pending)):
                atomic_write_json(job[4], {"identity": record["identity"],
                                           "observations": [asdict(o) for o in record["observations"]],
                                           "rejections": [asdict(r) for r in record["rejections"]]})
                records[job[0]] = record
                bar.update()
    finally:
        if pool is not None:  # on an error or Ctrl-C, wait for the photos in progress only
            pool.shutdown(cancel_futures=True)
    observations = tuple(o for record in records for o in record["observations"])
    rejections = tuple((record["identity"]["photo"], r) for record in records for r in record["rejections"])
    if patch is None:
        rows, photo_clean = metric_rows(observations, digital)
    else:
        # The digital scene of every cell, as printed (the sources capture checked the crops against).
        keys = sorted(sources)
        printed = classify_crops(classifier, [sources[key] for key in keys])
        rows, photo_clean = patch_result_rows(list(observations), patch[1], {
            key: printed.subset(slice(k, k + 1)) for k, key in enumerate(keys)}, patch[0], classifier.name)
    _write_outputs(out, observations, rejections, rows, photo_clean, manifest, classifier, len(photos))
    return CaptureResult(len(photos), observations, rejections, tuple(rows), photo_clean,
                         patch_sheet=patch is not None and all(cell.area is None for cell in patch[1].values()))


def _read_state(path: Path, identity: dict, manifest: Manifest, classes: int, out: Path) -> dict | None | bool:
    """The record of a photo processed before with the same ``identity``: ``None`` when there is none or
    it is of another identity (the photo changed), ``False`` when it does not pass :func:`_state_record`.
    Either way the photo is processed again: a state file is a file like any other, and never trusted."""
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not isinstance(data, dict) or data.get("identity") != identity:
        return None if isinstance(data, dict) and "identity" in data else False
    try:
        return _state_record(Record(data, str(path)), identity, manifest, classes, out)
    except InputError:
        return False


def _state_record(record: Record, identity: dict, manifest: Manifest, classes: int, out: Path) -> dict:
    """A state record, every field checked: each observation is of a cell of the manifest, says of it
    exactly what the manifest says (image, kind, method, ε, label), has a top-5 of this model's classes
    with probabilities that could be a softmax's, and its crop is there; each rejection is one of
    :data:`~physadv.capture.detect.REASONS`, and no cell is observed twice."""
    record.only(("identity", "observations", "rejections"))
    cells = {(page.index, cell.index): cell for page, cell in manifest.cells()}
    crops = f"{CROPS_DIR}/{photo_key(identity['photo'])}/"
    observations = [_observation(o, identity["photo"], cells, crops, classes, out)
                    for o in record.records("observations", 0, len(cells))]
    if len({(o.page, o.cell) for o in observations}) != len(observations):
        raise record.fail("observations", "a cell is observed twice")
    rejections = []
    for r in record.records("rejections", 0, 10_000):
        r.only([f.name for f in fields(Rejection)])
        rejections.append(Rejection(r.choice("reason", tuple(REASONS)), r.text("detail"),
                                    r.integer("page", 0, MAX_PAGES - 1, optional=True),
                                    r.integer("cell", 0, MAX_CELLS_PER_PAGE - 1, optional=True)))
    return {"identity": identity, "observations": observations, "rejections": rejections}


def _observation(record: Record, photo: str, cells: dict[tuple[int, int], Cell], crops: str, classes: int,
                 out: Path) -> CellObservation:
    """A stored observation (see :func:`_state_record`)."""
    record.only([f.name for f in fields(CellObservation)])
    page, index = record.integer("page", 0, MAX_PAGES - 1), record.integer("cell", 0, MAX_CELLS_PER_PAGE - 1)
    cell = cells.get((page, index))
    if cell is None:
        raise record.fail(None, f"page {page} has no cell {index} in the manifest")
    observation = CellObservation(
        photo=record.text("photo"), page=page, cell=index, image_id=record.text("image_id", max_length=256),
        kind=record.text("kind", max_length=16), method=record.text("method", max_length=64),
        eps=record.number("eps", 0, 255), label=record.integer("label", 0, MAX_CLASSES - 1, optional=True),
        classes=record.integers("classes", TOP_K, 0, classes - 1),
        probabilities=record.numbers("probabilities", TOP_K, 0, 1), crop=record.text("crop", max_length=512),
        rms_px=record.number("rms_px", 0, 1e6))
    expected = CellObservation(photo, page, index, cell.image_id, cell.kind, cell.method, cell.eps, cell.label,
                               observation.classes, observation.probabilities, crops + _crop_name(page, cell),
                               observation.rms_px)
    if observation != expected:
        differing = [f.name for f in fields(CellObservation) if getattr(observation, f.name) != getattr(expected, f.name)]
        raise record.fail(None, f"{', '.join(differing)} differ from what the manifest and the photo say")
    # A model with fewer than five classes has its top-5 padded with class 0 at probability 0 (classify_crops).
    width, probabilities = min(TOP_K, classes), observation.probabilities
    if (len(set(observation.classes[:width])) != width or any(observation.classes[width:])
            or any(probabilities[width:]) or any(a < b for a, b in zip(probabilities, probabilities[1:]))
            or sum(probabilities) > 1 + 1e-3):
        raise record.fail("classes", "not a top-5: classes repeat or probabilities are not a softmax's, in order")
    if not (out / observation.crop).is_file():
        raise record.fail("crop", f"{observation.crop} is missing")
    return observation


def _crop_name(page_index: int, cell: Cell) -> str:
    return f"p{page_index}_c{cell.index:03d}_{cell.kind}.png"


def _capture_one(path: Path, relative: str, manifest: Manifest, classifier: Classifier, out: Path,
                 sources: dict[tuple[int, int], np.ndarray]) -> dict:
    crops_dir = out / CROPS_DIR / photo_key(relative)
    try:
        image = read_rgb(path)
    except InputError as error:
        rejections = [Rejection("unreadable", str(error))]
        atomic_write_json(crops_dir / AUDIT_FILE, {"photo": relative, "run_id": manifest.run_id, "pages": [],
                                                   "rejections": [asdict(r) for r in rejections]})
        return {"observations": [], "rejections": rejections}
    detection, observations, rejected, audit = process_photo(image, manifest, classifier, relative, crops_dir, sources)
    atomic_write_json(crops_dir / AUDIT_FILE, audit)
    return {"observations": observations, "rejections": [*detection.rejections, *rejected]}


def metric_rows(observations: tuple[CellObservation, ...], digital: dict[str, tuple[Predictions, Predictions]]
                ) -> tuple[list[ResultRow], dict[str, float | int | None]]:
    """Destruction reports per (method, ε) over the photographed adversarial cells, and the photo
    accuracy of the clean crops. Cells without a label or digital predictions are left out."""
    usable = [o for o in observations if o.label is not None and o.image_id in digital]
    clean_photos = [o for o in usable if o.kind == "clean"]
    photo_clean: dict[str, float | int | None] = {"n": len(clean_photos)}
    if clean_photos:
        predictions = _stack(clean_photos)
        labels = np.array([o.label for o in clean_photos])
        digital_clean = _concat([digital[o.image_id][0] for o in clean_photos])
        photo_clean.update(top1=accuracy(predictions, labels, 1).value, top5=accuracy(predictions, labels, 5).value,
                           digital_top1=accuracy(digital_clean, labels, 1).value,
                           digital_top5=accuracy(digital_clean, labels, 5).value)
    else:
        photo_clean.update(top1=None, top5=None, digital_top1=None, digital_top5=None)
    rows: list[ResultRow] = []
    for method, eps in sorted({(o.method, o.eps) for o in usable if o.kind == "adversarial"}):
        group = [o for o in usable if o.kind == "adversarial" and (o.method, o.eps) == (method, eps)]
        clean = _concat([digital[o.image_id][0] for o in group])
        adversarial = _concat([digital[o.image_id][1] for o in group])
        for report in destruction_reports(clean, adversarial, _stack(group), np.array([o.label for o in group])):
            rows.append(report.result_row(method=method, eps=eps, transform=PHOTO, strength=None))
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
                   rows: Sequence[AnyRow], photo_clean: dict, manifest: Manifest, classifier: Classifier, photos: int) -> None:
    names = classifier.labels.names
    table = []
    for o in observations:
        known = o.label is not None
        table.append({
            "photo": o.photo, "page": o.page, "cell": o.cell, "image_id": o.image_id, "kind": o.kind,
            "method": o.method, "eps": o.eps, "label": "" if not known else o.label,
            "label_name": names[o.label] if known else "",
            **{f"class{k + 1}": c for k, c in enumerate(o.classes)},
            **{f"name{k + 1}": names[c] for k, c in enumerate(o.classes)},
            **{f"prob{k + 1}": p for k, p in enumerate(o.probabilities)},
            "correct_top1": "" if not known else int(o.classes[0] == o.label),
            "correct_top5": "" if not known else int(o.label in o.classes),
            "rms_px": o.rms_px, "crop": o.crop})
    atomic_write_text(out / "predictions.csv", _csv(table, PREDICTION_COLUMNS))
    atomic_write_text(out / "rejected.csv", _csv(
        [{"photo": photo, "reason": r.reason, "page": "" if r.page is None else r.page,
          "cell": "" if r.cell is None else r.cell, "detail": r.detail} for photo, r in rejections],
        ("photo", "reason", "page", "cell", "detail")))
    accepted = {o.photo for o in observations}
    atomic_write_json(out / "results.json", {
        "run_id": manifest.run_id, "model": classifier.name, "transform": PHOTO,
        "observation": "each (photo, cell) pair counts once",
        "photos": photos, "photos_with_pages": len(accepted), "cells_observed": len(observations),
        "rejections": len(rejections), "photo_clean": photo_clean,
        "channel_severity": channel_severity(photo_clean["digital_top1"], photo_clean["digital_top5"],
                                             photo_clean["top1"], photo_clean["top5"], photo_clean["n"]),
        "rows": [row.to_json() for row in rows]})
