"""``physadv print``: PDF sheets of an attack folder (or any images) plus their manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from physadv.catalog import PAPERS_MM
from physadv.cli.common import output_dir
from physadv.errors import InputError

ORDER = 30
HELP = "lay out clean/adversarial pairs on printable PDF sheets with ArUco markers, QR codes and a manifest"


def grid(text: str) -> tuple[int, int]:
    from physadv.printouts.sheets import parse_grid

    try:
        return parse_grid(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_id(text: str) -> str:
    from physadv.validation import check_run_id

    try:
        return check_run_id(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv print adv/ --out sheets/\n"
        "  physadv print adv/ --out sheets/ --paper letter --grid 2x4 --cell-mm 45\n"
        "  physadv print photos/ --out sheets/ --grid 3x4 --dpi 144   # any images, no attack folder\n"
        "  physadv print patch-3/ --out sheets/ --size-mm 60   # a patch folder (physadv patch)\n"
        "writes OUT/sheets.pdf and OUT/manifest.json; for a patch folder, OUT/patch/ (the patch and its\n"
        "controls to cut out) and OUT/scenes/ (held-out images with each patch at its recorded placement),\n"
        "each with its sheets.pdf and manifest.json. Each image pixel is printed as a square of a\n"
        "whole number of quarter points (dpi 288/j: 288, 144, 96, 72, ...), the one closest to\n"
        "--cell-mm (or --dpi), so images are never resampled. Print at 100% / actual size.")
    parser.add_argument("source", metavar="ADV_DIR",
                        help="folder written by `physadv attack` (or image files/folders to print as they are)")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    parser.add_argument("--paper", choices=tuple(PAPERS_MM), default="a4", help="paper size")
    parser.add_argument("--grid", type=grid, default=None, metavar="CxR",
                        help="columns x rows of images per page (default 2x3: even columns for clean/adversarial "
                             "pairs; scene sheets of a patch folder: 4x4)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--cell-mm", type=float, default=None,
                      help="printed side of the (largest) image, mm (default 60; scene sheets of a patch folder: 35)")
    size.add_argument("--dpi", type=float, default=None, help="image pixels per inch, instead of --cell-mm")
    parser.add_argument("--margin-mm", type=float, default=10.0, help="page margin (printers cannot print the edge)")
    parser.add_argument("--marker-mm", type=float, default=20.0, help="side of the ArUco corner markers")
    parser.add_argument("--qr-mm", type=float, default=18.0, help="side of the QR codes")
    parser.add_argument("--size-mm", type=float, default=None,
                        help="patch folders: printed side of the patch and of each control patch, mm (default 50)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="the model the sheets are for: a folder made for another is refused (default: no check)")
    parser.add_argument("--run-id", type=run_id, default=None,
                        help="run id in the markers, identity codes and QR codes, a plain name (letters, digits, "
                             "'.', '_', '+', '-'; at most 128 characters); it must be unique, since capture accepts "
                             "any sheet printed with the same id (default: 64 random bits)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.attackset import RECORD_FILE, read_attack_set
    from physadv.images import image_files
    from physadv.lab.store import RunLock, record_in_run
    from physadv.patch.folder import RECORD_FILE as PATCH_RECORD
    from physadv.printouts.sheets import SheetImage, SheetLayout, print_attack_set, write_sheets

    source = Path(args.source)
    if (source / PATCH_RECORD).is_file():
        return _print_patch(args, source)
    if args.size_mm is not None:
        raise InputError("--size-mm is for patch folders (physadv patch); this is not one")
    columns, rows = args.grid or (2, 3)
    layout = SheetLayout(paper=args.paper, columns=columns, rows=rows, cell_mm=args.cell_mm or 60.0,
                         dpi=args.dpi, margin_mm=args.margin_mm, marker_mm=args.marker_mm, qr_mm=args.qr_mm)
    if (source / RECORD_FILE).is_file():
        if args.model is not None and read_attack_set(source).settings.model != args.model:
            raise InputError(f"{source} holds an attack on {read_attack_set(source).settings.model}, not {args.model}")
        # An attack still being written holds its folder's lock: refuse before writing a partial PDF.
        with RunLock(source, "print"):
            manifest = print_attack_set(source, args.out, layout, run_id=args.run_id, progress=True)
        record_in_run(source, lambda store, attack: store.record_sheets(attack, manifest, args.out / "sheets.pdf"))
    else:
        images = [SheetImage(path=path, image_id=path.stem, file=str(path)) for path in image_files([source])]
        manifest = write_sheets(images, args.out, args.run_id, layout, progress=True)
    _summary(manifest, args.out)
    return 0


def _summary(manifest, out: Path) -> None:
    cells = sum(len(page.cells) for page in manifest.pages)
    print(f"run {manifest.run_id}: {cells} images on {len(manifest.pages)} {manifest.paper.upper()} page(s), "
          f"{manifest.layout_dpi:g} dpi; print at 100% / actual size", file=sys.stderr)
    print(out / "sheets.pdf")
    print(out / "manifest.json")


def _print_patch(args: argparse.Namespace, source: Path) -> int:
    """The patch sheet and the scene sheets of a patch folder, recorded in its run store."""
    from physadv.lab.store import RunLock, RunStore, find_run, record_in_run
    from physadv.patch.folder import read_patch_record
    from physadv.printouts.patchsheets import DEFAULT_PATCH_MM, DEFAULT_SCENE_LAYOUT, print_patch_folder
    from physadv.printouts.sheets import SheetLayout

    columns, rows = args.grid or (DEFAULT_SCENE_LAYOUT.columns, DEFAULT_SCENE_LAYOUT.rows)
    layout = SheetLayout(paper=args.paper, columns=columns, rows=rows, cell_mm=args.cell_mm or DEFAULT_SCENE_LAYOUT.cell_mm,
                         dpi=args.dpi, margin_mm=args.margin_mm, marker_mm=args.marker_mm, qr_mm=args.qr_mm)
    with RunLock(source, "print"):
        record = read_patch_record(source)
        if find_run(source) == source.resolve():
            with RunStore(source, create=False) as store:
                recorded = store.run_info().model
            if recorded != record.model:
                raise InputError(f"{source}: patch.json names {record.model}, but the run was made with {recorded}: "
                                 "a patch folder from another model")
        patch, scenes = print_patch_folder(source, args.out, size_mm=args.size_mm or DEFAULT_PATCH_MM,
                                           scene_layout=layout, model=args.model, run_id=args.run_id, progress=True)
    record_in_run(source, lambda store, attack: store.record_sheets(attack, scenes, args.out / "scenes" / "sheets.pdf"))
    side = patch.pages[0].cells[0].box_mm[2]
    print(f"patch sheet: the patch and 2 control patches at {side:.1f} mm ({patch.layout_dpi:g} dpi), one per page: "
          "print at 100%, cut out along their edge", file=sys.stderr)
    _summary(patch, args.out / "patch")
    _summary(scenes, args.out / "scenes")
    return 0
