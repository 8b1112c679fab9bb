"""Sheets of a patch folder (``physadv patch``): the patch to cut out, and the scenes it was measured on.

- **Patch sheet** (``OUT/patch/``): the adversarial patch and its two control patches, one per page, each
  at ``size_mm`` (snapped to the pixel rule of :mod:`physadv.printouts.sheets`), with the usual markers
  and codes, so ``physadv capture`` finds and checks a photo of it. Cut the patches out along their edge
  and place them in a real scene.
- **Scene sheets** (``OUT/scenes/``): every held-out image at every measured area, side by side as
  clean | patch | noise control | crop control, each composited at its recorded placement. Photographed
  and captured, they give the patch's success and the controls' through the print → photo channel.

Both are ordinary sheets with manifests whose ``attack_dir`` is the patch folder: capture checks every
crop against the file the cell was printed from, which ``patch.json`` names with its pixel hash.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from physadv.errors import InputError
from physadv.patch.folder import check_patch_files, read_patch_record
from physadv.results import PATCH_VARIANTS as VARIANTS
from physadv.results import variant_kind, variant_method
from physadv.fileio import atomic_write_bytes
from physadv.printouts.manifest import Manifest, write_manifest
from physadv.printouts.sheets import (
    MANIFEST_FILE,
    SHEETS_FILE,
    SheetImage,
    SheetLayout,
    draw_sheets,
    layout_sheets,
    new_run_id,
)

PATCH_SHEET_DIR, SCENE_SHEET_DIR = "patch", "scenes"
DEFAULT_PATCH_MM = 50.0
DEFAULT_SCENE_LAYOUT = SheetLayout(columns=len(VARIANTS), rows=4, cell_mm=35.0)
"""Scene sheets: one held-out image at one area per row; 4 × 4 cells of about 35 mm (34 mm for 64-px digits,
40 mm for 224-px ImageNet images after the pixel rule) fit A4 and letter with 10-mm margins."""


def scene_image_id(image: str, area: float) -> str:
    """A scene cell's image id: the held-out image at an area (``digit0002_4@0.25``)."""
    return f"{image}@{area:g}"


def print_patch_folder(patch_dir: str | Path, out_dir: str | Path, *, size_mm: float = DEFAULT_PATCH_MM,
                       scene_layout: SheetLayout = DEFAULT_SCENE_LAYOUT, model: str | None = None,
                       run_id: str | None = None, progress: bool = False) -> tuple[Manifest, Manifest]:
    """Write the patch sheet (``out_dir/patch/``) and the scene sheets (``out_dir/scenes/``) of a patch folder.

    Args:
        size_mm: printed side of each patch (snapped to an exact pixel pitch; the manifest records it).
        scene_layout: paper, cell size and rows of the scene sheets; its columns must be 4.
        model: when given, the model the sheets are meant for: a folder made for another is refused.
        run_id: the scene sheets' run id (the patch sheet's is derived from it); default random.

    Returns:
        the patch sheet's and the scene sheets' manifests.

    Raises:
        InputError: not a patch folder, a record that fails its checks, a file that is not the one
            recorded, a folder made for another model, or a layout that does not fit.
    """
    root = Path(patch_dir)
    record = read_patch_record(root)
    if model is not None and model != record.model:
        raise InputError(f"{root} holds a patch made for {record.model}, not {model}: a patch is specific to the "
                         "model it was trained on")
    if scene_layout.columns != len(VARIANTS):
        raise InputError(f"--grid {scene_layout.columns}x{scene_layout.rows}: scene sheets print "
                         f"{' | '.join(VARIANTS)} side by side, so they need {len(VARIANTS)} columns")
    check_patch_files(root, record)
    out = Path(out_dir)
    held = {entry.id: entry for entry in record.held_out}
    target = record.target_name if record.target is not None else "untargeted"
    patch_images = [SheetImage(path=root / entry.print_file, image_id=entry.name, kind=variant_kind(entry.name),
                               file=entry.print_file, method=variant_method(entry.name), model=record.model)
                    for entry in record.patches]
    scene_images = [SheetImage(path=root / scene.files[variant], image_id=scene_image_id(scene.image, scene.area),
                               kind=variant_kind(variant), file=scene.files[variant], source=held[scene.image].source,
                               label=held[scene.image].label, label_name=held[scene.image].label_name,
                               method=variant_method(variant), model=record.model)
                    for scene in sorted(record.scenes, key=lambda s: (s.area, s.image)) for variant in VARIANTS]
    run_id = run_id or new_run_id()
    # Both laid out before either is written: a size that does not fit leaves nothing behind.
    planned = []
    for folder, images, layout, sheet_run, title in (
            (out / PATCH_SHEET_DIR, patch_images, replace(scene_layout, columns=1, rows=1, cell_mm=size_mm, dpi=None),
             f"{run_id}-patch", f"patch ({target}) on {record.model}: cut out along its edge"),
            (out / SCENE_SHEET_DIR, scene_images, scene_layout, run_id,
             f"patch ({target}) on {record.model}: clean | patch | noise control | crop control")):
        manifest, pixels = layout_sheets(images, sheet_run, layout, model=record.model,
                                         attack_dir=os.path.relpath(root.resolve(), folder.resolve()), progress=progress)
        planned.append((folder, manifest, pixels, title))
    for folder, manifest, pixels, title in planned:
        atomic_write_bytes(folder / SHEETS_FILE, draw_sheets(manifest, pixels, title=title, progress=progress))
        write_manifest(manifest, folder / MANIFEST_FILE)
    return planned[0][1], planned[1][1]
