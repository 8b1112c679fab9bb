"""Capture of a patch folder's sheets (:mod:`physadv.printouts.patchsheets`): which cell is which scene,
and the result rows of the photographed scenes.

Every cell of a patch manifest must be a file ``patch.json`` names, with the pixel hash it records: a
scene (a held-out image at an area, clean or with the patch or a control) or, on the patch sheet, one
of the patches to cut out. A row per variant and area gives, over the photographed cells (each (photo,
cell) one observation), the patch's goal met (``target_success``) and the top-1 accuracy, on the
photo and on the digital scene of the same observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physadv.errors import InputError
from physadv.metrics import Predictions, accuracy
from physadv.patch.folder import PatchRecord, read_patch_record
from physadv.patch.heldout import VARIANTS, success
from physadv.printouts.manifest import Manifest
from physadv.results import PHOTO, PatchRow, variant_kind

PATCH_KINDS = ("patch", "control")


@dataclass(frozen=True)
class PatchCell:
    """What a printed cell of a patch run shows: its variant and, for a scene, the area (``None``: a
    patch of the patch sheet)."""

    variant: str
    area: float | None


def is_patch_manifest(manifest: Manifest) -> bool:
    """Whether ``manifest`` prints a patch run's sheets (it has patch or control cells)."""
    return any(cell.kind in PATCH_KINDS for _, cell in manifest.cells())


def patch_cells(manifest: Manifest, patch_dir: Path) -> tuple[PatchRecord, dict[tuple[int, int], PatchCell]]:
    """The patch record of the manifest's folder and, per (page, cell), what the cell shows.

    Raises:
        InputError: a cell that is none of the record's files, or whose kind or hash differs from it.
    """
    record = read_patch_record(patch_dir)
    files: dict[str, tuple[PatchCell, str]] = {
        entry.print_file: (PatchCell(entry.name, None), entry.sha256) for entry in record.patches}
    for scene in record.scenes:
        for variant in VARIANTS:
            files.setdefault(scene.files[variant], (PatchCell(variant, scene.area), scene.sha256[variant]))
    cells = {}
    for page, cell in manifest.cells():
        known = files.get(cell.file)
        if known is None or cell.sha256 != known[1] or cell.kind != variant_kind(known[0].variant):
            raise InputError(f"manifest page {page.index} cell {cell.index}: {cell.file!r} is not a {cell.kind} "
                             f"image of the patch folder {patch_dir} (not in its patch.json, or another image)")
        # A clean image is printed once per area: its area is the one its row of the sheet was printed for.
        area = known[0].area if known[0].variant != "clean" else _area_of(cell.image_id, record)
        cells[page.index, cell.index] = PatchCell(known[0].variant, area)
    return record, cells


def _area_of(image_id: str, record: PatchRecord) -> float:
    """The area of a clean scene cell, from its image id ``<image>@<area>`` (checked against the record)."""
    image, _, area_text = image_id.rpartition("@")
    try:
        area = float(area_text)
    except ValueError:
        area = None
    if area not in record.eval_areas or image not in {entry.id for entry in record.held_out}:
        raise InputError(f"manifest cell {image_id!r}: not a held-out image at a held-out area of the patch folder")
    return area


def patch_result_rows(observations: list, cells: dict[tuple[int, int], PatchCell],
                      digital: dict[tuple[int, int], Predictions], record: PatchRecord,
                      model: str) -> tuple[list[PatchRow], dict]:
    """Rows per (variant, area) over the photographed scene cells, and the clean scenes' photo accuracy
    (``photo_clean``, as :func:`physadv.capture.pipeline.metric_rows` gives it)."""
    rows: list[PatchRow] = []
    scenes = [o for o in observations if cells[o.page, o.cell].area is not None]
    for area in record.eval_areas:
        for variant in VARIANTS:
            group = [o for o in scenes if cells[o.page, o.cell] == PatchCell(variant, area)]
            if not group:
                continue
            photo = [int(o.classes[0]) for o in group]
            printed = [int(digital[o.page, o.cell].top1[0]) for o in group]
            labels = [o.label for o in group]

            def rate(predicted: list[int]) -> float | None:
                hits = [success(p, label, record.target) for p, label in zip(predicted, labels)]
                hits = [h for h in hits if h is not None]
                return sum(hits) / len(hits) if hits else None

            known = [k for k, label in enumerate(labels) if label is not None]
            top1 = [sum(predicted[k] == labels[k] for k in known) / len(known) if known else None
                    for predicted in (printed, photo)]
            rows.append(PatchRow(variant=variant, area=area, transform=PHOTO, n=len(group),
                                 target_success_digital=rate(printed), target_success_photo=rate(photo),
                                 top1_digital=top1[0], top1_photo=top1[1], top1_n=len(known), target=record.target,
                                 target_name=record.target_name, model=model))
    clean = [o for o in scenes if cells[o.page, o.cell].variant == "clean" and o.label is not None]
    photo_clean: dict = {"n": len(clean)}
    if clean:
        labels = np.array([o.label for o in clean])
        taken = Predictions(np.array([o.classes for o in clean]), np.array([o.probabilities for o in clean]))
        printed = Predictions.concatenate([digital[o.page, o.cell] for o in clean])
        photo_clean.update(top1=accuracy(taken, labels, 1).value, top5=accuracy(taken, labels, 5).value,
                           digital_top1=accuracy(printed, labels, 1).value, digital_top5=accuracy(printed, labels, 5).value)
    else:
        photo_clean.update(top1=None, top5=None, digital_top1=None, digital_top5=None)
    return rows, photo_clean

