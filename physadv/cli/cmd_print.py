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
        "writes OUT/sheets.pdf and OUT/manifest.json. Each image pixel is printed as a square of a\n"
        "whole number of quarter points (dpi 288/j: 288, 144, 96, 72, ...), the one closest to\n"
        "--cell-mm (or --dpi), so images are never resampled. Print at 100% / actual size.")
    parser.add_argument("source", metavar="ADV_DIR",
                        help="folder written by `physadv attack` (or image files/folders to print as they are)")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    parser.add_argument("--paper", choices=tuple(PAPERS_MM), default="a4", help="paper size")
    parser.add_argument("--grid", type=grid, default=(2, 3), metavar="CxR",
                        help="columns x rows of images per page (even columns for clean/adversarial pairs)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--cell-mm", type=float, default=60.0, help="printed side of the (largest) image, mm")
    size.add_argument("--dpi", type=float, default=None, help="image pixels per inch, instead of --cell-mm")
    parser.add_argument("--margin-mm", type=float, default=10.0, help="page margin (printers cannot print the edge)")
    parser.add_argument("--marker-mm", type=float, default=20.0, help="side of the ArUco corner markers")
    parser.add_argument("--qr-mm", type=float, default=18.0, help="side of the QR codes")
    parser.add_argument("--run-id", type=run_id, default=None,
                        help="run id in the markers, identity codes and QR codes, a plain name (letters, digits, "
                             "'.', '_', '+', '-'; at most 128 characters); it must be unique, since capture accepts "
                             "any sheet printed with the same id (default: 64 random bits)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.attackset import RECORD_FILE
    from physadv.images import image_files
    from physadv.lab.store import RunLock, record_in_run
    from physadv.printouts.sheets import SheetImage, SheetLayout, print_attack_set, write_sheets

    layout = SheetLayout(paper=args.paper, columns=args.grid[0], rows=args.grid[1], cell_mm=args.cell_mm,
                         dpi=args.dpi, margin_mm=args.margin_mm, marker_mm=args.marker_mm, qr_mm=args.qr_mm)
    source = Path(args.source)
    if (source / RECORD_FILE).is_file():
        # An attack still being written holds its folder's lock: refuse before writing a partial PDF.
        with RunLock(source, "print"):
            manifest = print_attack_set(source, args.out, layout, run_id=args.run_id, progress=True)
        record_in_run(source, lambda store, attack: store.record_sheets(attack, manifest, args.out / "sheets.pdf"))
    else:
        images = [SheetImage(path=path, image_id=path.stem, file=str(path)) for path in image_files([source])]
        manifest = write_sheets(images, args.out, args.run_id, layout, progress=True)
    cells = sum(len(page.cells) for page in manifest.pages)
    print(f"run {manifest.run_id}: {cells} images on {len(manifest.pages)} {manifest.paper.upper()} page(s), "
          f"{manifest.layout_dpi:g} dpi; print at 100% / actual size", file=sys.stderr)
    print(args.out / "sheets.pdf")
    print(args.out / "manifest.json")
    return 0
