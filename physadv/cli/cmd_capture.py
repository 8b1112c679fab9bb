"""``physadv capture``: find the sheets in a folder of photos, crop every cell, re-classify, score."""

from __future__ import annotations

import argparse
import sys

from physadv.cli.common import (
    add_device_option,
    check_worker_count,
    output_dir,
    positive_int,
    print_json,
    resolve_device,
)
from physadv.errors import InputError

ORDER = 50
HELP = "find the printed sheets in photos, crop and re-classify every cell, measure the destruction rate"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n"
                     "  physadv capture photos/ --manifest sheets/manifest.json --out captured/\n"
                     "  physadv capture photos/ --manifest sheets/manifest.json --model digits --out captured/\n"
                     "  physadv capture photos/ --manifest sheets/manifest.json --workers 4 --out captured/\n"
                     "--workers N processes N photos at once; the outputs are the same as with one worker.\n"
                     "re-running on the same folder only processes photos that are new or changed.")
    parser.add_argument("photos", metavar="PHOTOS_DIR", help="folder of photos of the printed sheets (searched recursively)")
    parser.add_argument("--manifest", required=True, metavar="PATH", help="the run's manifest.json (written by physadv print)")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="classifier, as `physadv models` lists them (default: the run's own classifier; "
                             "a FILE.py:FACTORY recorded in the manifest is never imported unless you name it here)")
    parser.add_argument("--weights", metavar="PATH", default=None, help="weights file for --model")
    add_device_option(parser)
    parser.add_argument("--out", required=True, type=output_dir, metavar="DIR",
                        help="output folder (crops/ with a capture.json per photo, predictions.csv, rejected.csv, "
                             "results.json)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="photos processed at once (threads; about the number of CPU cores for a large folder)")
    parser.add_argument("--json", action="store_true", help="print results.json's content instead of a summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from physadv.capture.pipeline import capture_folder, photo_files, resolve_attack_dir
    from physadv.classifiers import check_recorded_model, load_classifier
    from physadv.lab.store import RunStore, record_in_run
    from physadv.metrics import channel_severity, patch_row_line, severity_lines
    from physadv.printouts.manifest import read_manifest
    from physadv.results import PatchRow

    check_worker_count(args.workers)
    photo_files(Path(args.photos), Path(args.out))
    manifest = read_manifest(args.manifest)
    run_model = manifest.model or next((cell.model for _, cell in manifest.cells() if cell.model), None)
    if not (args.model or run_model):
        raise InputError(f"{args.manifest} names no model; pass --model NAME")
    model = args.model or check_recorded_model(run_model, args.manifest)
    classifier = load_classifier(model, weights=args.weights, device=resolve_device(args.device))
    result = capture_folder(args.photos, args.manifest, classifier, args.out, workers=args.workers)

    def record(store: RunStore, attack: str) -> None:
        if not store.record_capture_unless_empty(attack, Path(args.out), result.rows):
            print(f"note: no cell of these photos was captured; the run's earlier results for {attack} are kept",
                  file=sys.stderr)

    # A run's store holds the results of its own classifier; another model's go to OUT only.
    if result.patch_sheet:
        print("note: a patch sheet: its crops are checked against the patches; there are no results to record "
              "(capture photos of the scene sheets, or classify photos of real scenes with --target)", file=sys.stderr)
    elif classifier.name == run_model:
        refused = record_in_run(resolve_attack_dir(manifest, Path(args.manifest).parent), record, manifest)
        if refused:
            print(f"note: {refused}; results are in {args.out} only", file=sys.stderr)
    else:
        print(f"note: {classifier.name} is not the run's model ({run_model}): results are in {args.out} only, "
              "not in the run's store", file=sys.stderr)
    if args.json:
        print_json({"rows": [row.to_json() for row in result.rows], "photo_clean": result.photo_clean})
        return 0
    photos_with_pages = len({o.photo for o in result.observations})
    print(f"{result.photos} photos: {photos_with_pages} with sheets, {len(result.observations)} cells re-classified "
          f"with {classifier.name}, {len(result.rejections)} rejections (see {args.out}/rejected.csv)")
    clean = result.photo_clean
    for line in severity_lines(channel_severity(clean["digital_top1"], clean["digital_top5"], clean["top1"],
                                                clean["top5"], clean["n"])):
        print(line)
    for row in result.rows:
        if isinstance(row, PatchRow):
            print(patch_row_line(row))
            continue
        destruction = "n/a" if row.destruction_top1 is None else f"{row.destruction_top1:.3f}"
        print(f"{row.method} eps={row.eps:g} {row.case:<11} n={row.n_images:<4} "
              f"destruction top-1 {destruction} (n={row.destruction_top1_n})")
    return 0
