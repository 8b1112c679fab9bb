"""``physadv patch``: train a universal adversarial patch (Brown et al. 2017) and measure it on held-out images."""

from __future__ import annotations

import argparse
import sys

from physadv.cli.common import (
    add_images_argument,
    add_model_options,
    add_seed_option,
    comma_floats,
    eot_spec,
    output_dir,
    positive_int,
)
from physadv.errors import InputError

ORDER = 25
HELP = "train a universal adversarial patch (Brown et al. 2017) and measure it against control patches"
DEFAULT_AREA = (0.05, 0.25)
DEFAULT_PRINTABLE = "profile:lab"
HOLDOUT_FRACTION = 0.25


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv patch digits --model digits --target 3 --out patch-3/\n"
        "  physadv patch photos/ --target toaster --area 0.1,0.3 --shape circle --out toaster/\n"
        "  physadv patch photos/ --target toaster --eot profile:my-phone.toml --out toaster-phone/\n"
        "  physadv patch train/ --untargeted --eval-images val/ --out untargeted/\n"
        "then: physadv print patch-3/ --out sheets/   (a patch sheet to cut out, and scene sheets)\n"
        "writes OUT/patch.png (RGBA for a circle), OUT/patch.json (every parameter, image hashes, held-out\n"
        "success by area against control patches of the same size and placement, and the mean ΔE00 between\n"
        "the patch and its simulated print) and OUT/scenes/. Areas are fractions of the image the patch\n"
        "covers. An interrupted run resumes when re-run with the same arguments.")
    add_images_argument(parser)
    add_model_options(parser)
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--target", metavar="CLASS", help="class the patch should make the model see (name, WordNet "
                                                        "id or index, e.g. toaster)")
    goal.add_argument("--untargeted", action="store_true", help="make the model miss each image's true class instead")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder (a new or empty one)")
    parser.add_argument("--area", type=comma_floats, default=list(DEFAULT_AREA), metavar="LOW,HIGH",
                        help="fractions of the image the patch covers in training, drawn uniformly (default "
                             f"{DEFAULT_AREA[0]:g},{DEFAULT_AREA[1]:g})")
    parser.add_argument("--eval-areas", type=comma_floats, default=None, metavar="A,B,...",
                        help="areas held-out success is measured at (default: low, middle and high of --area)")
    parser.add_argument("--rotation", type=float, default=22.5, help="placements rotate uniformly within ±this, degrees")
    parser.add_argument("--perspective", type=float, default=0.0,
                        help="each patch corner moves by up to this many half sides (0: no perspective; 0.2: a "
                             "patch seen at an angle)")
    parser.add_argument("--iterations", type=positive_int, default=500, help="Adam steps")
    parser.add_argument("--batch", type=positive_int, default=16, help="images (each with its own placement) per step")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate, in [0, 1] pixel units")
    parser.add_argument("--nps", type=float, default=5.0,
                        help="weight of the non-printability score (Sharif et al. 2016): pulls the patch's colours "
                             "into the printer's gamut")
    parser.add_argument("--tv", type=float, default=0.5, help="weight of the total variation (smoothness)")
    parser.add_argument("--shape", choices=("square", "circle"), default="square", help="patch shape")
    parser.add_argument("--patch-px", type=positive_int, default=None,
                        help="side of the patch in pixels (default: its side at the largest area, so it is never "
                             "enlarged in the images)")
    held = parser.add_mutually_exclusive_group()
    held.add_argument("--holdout", type=positive_int, default=None, metavar="N",
                      help="hold N of the images out of training to measure success on (default: a quarter of "
                           "them, drawn with --seed)")
    held.add_argument("--eval-images", nargs="+", default=None, metavar="IMAGES",
                      help="measure success on these images instead (all of IMAGES are trained on)")
    parser.add_argument("--eot", metavar="DISTRIBUTION", type=eot_spec, default=None,
                        help="also train through the print → photo channel: profile:NAME|FILE.toml (a camera "
                             "profile's calibrated channel) or a built-in distribution (default: placement only)")
    parser.add_argument("--printable", metavar="profile:NAME|FILE.toml", default=None,
                        help="the printer whose gamut NPS and the simulated print use (default: the --eot "
                             f"profile, else {DEFAULT_PRINTABLE})")
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def _printable_spec(args: argparse.Namespace) -> str:
    if args.printable is not None:
        return args.printable if args.printable.startswith("profile:") else f"profile:{args.printable}"
    return args.eot if args.eot and args.eot.startswith("profile:") else DEFAULT_PRINTABLE


def _split(images: list, holdout: int | None, seed: int) -> tuple[list, list]:
    """Training and held-out images: ``holdout`` of them (default a quarter) drawn with ``seed``."""
    import torch

    from physadv.eot import derive_seed

    count = holdout if holdout is not None else max(1, round(HOLDOUT_FRACTION * len(images)))
    if count >= len(images):
        raise InputError(f"--holdout {count}: only {len(images)} image(s), and at least one must be trained on")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(derive_seed("holdout", seed))).tolist()
    held = set(order[:count])
    return [i for k, i in enumerate(images) if k not in held], [i for k, i in enumerate(images) if k in held]


def run(args: argparse.Namespace) -> int:
    from physadv.capture.calibrate import check_distribution, measured_channel, profile_of, resolve_distribution
    from physadv.cli.common import classifier_from_args, images_from
    from physadv.datasets import load_image_set, prepare
    from physadv.eot import distribution, identity
    from physadv.lab.store import RunLock, RunStore
    from physadv.patch.folder import RECORD_FILE, make_patch
    from physadv.patch.geometry import mask_fraction, shape_mask, side_for_area
    from physadv.patch.printability import PRINTABLE_GRID_LEVELS, SIMULATED_PRINT_GRID_LEVELS, rgb_grid
    from physadv.patch.train import PatchConfig, check_area_range
    from physadv.printouts.camera import apply_colour_response
    from physadv.results import DIGITAL, PatchRow, ResultKind
    from physadv.validation import is_safe_name

    import torch

    if len(args.area) != 2:
        raise InputError(f"--area takes LOW,HIGH, got {len(args.area)} number(s)")
    area = check_area_range(tuple(args.area), "--area")
    areas = check_area_range(tuple(args.eval_areas), "--eval-areas") if args.eval_areas else \
        tuple(sorted({area[0], round((area[0] + area[1]) / 2, 6), area[1]}))
    check_distribution(args.eot)  # a profile that is missing or invalid fails before anything is written
    printable_spec = _printable_spec(args)
    printer = profile_of(printable_spec)
    with RunLock(args.out, "patch"):
        classifier = classifier_from_args(args)
        target = classifier.labels.target(args.target)
        # Never enlarged in an image: its side at the largest area.
        patch_px = args.patch_px or max(2, round(float(side_for_area(
            torch.tensor(area[1]), (classifier.image_size, classifier.image_size),
            mask_fraction(shape_mask(args.shape, 64))))))
        config = PatchConfig(target=target, patch_px=patch_px, area=area, rotation=args.rotation,
                             perspective=args.perspective, iterations=args.iterations, batch=args.batch,
                             learning_rate=args.lr, nps_weight=args.nps, tv_weight=args.tv, shape=args.shape,
                             seed=args.seed)
        images = prepare(load_image_set(images_from(args), classifier.labels, args.label, args.limit),
                         classifier.image_size)
        if args.eval_images:
            training = images
            held_out = prepare(load_image_set(args.eval_images, classifier.labels, args.label), classifier.image_size)
        else:
            training, held_out = _split(images, args.holdout, args.seed)
        odd = next((i.id for i in held_out if not is_safe_name(i.id)), None)
        if odd is not None:
            raise InputError(f"held-out image id {odd!r} cannot name a file (ids are file names: shorten or rename it)")
        measured = measured_channel(printer, progress=True)
        printable = torch.from_numpy(apply_colour_response(rgb_grid(PRINTABLE_GRID_LEVELS).numpy() * 255, measured)
                                     / 255).float().clamp(0, 1)
        gamut = apply_colour_response(rgb_grid(SIMULATED_PRINT_GRID_LEVELS).numpy() * 255, measured)
        channel = distribution(resolve_distribution(args.eot)) if args.eot else identity()
        record, made = make_patch(classifier, training, held_out, config, args.out, areas=areas, channel=channel,
                                  eot=args.eot, printable=printable, gamut=gamut,
                                  printable_name=f"{printable_spec} (its printer's colours on an RGB grid)",
                                  progress=True)
        with RunStore(args.out) as store:
            weights_sha256 = store.record_model(classifier.name, classifier.weights)
            store.record_patch("patch", args.out, record.config, args.eot, classifier.name, classifier.weights,
                               weights_sha256)
            store.record_results(ResultKind.PATCH, "patch", [PatchRow(
                variant=row["control"] or row["kind"], area=row["area"], transform=DIGITAL, n=row["n"],
                target_success_digital=row["target_success"], target_success_photo=None, top1_digital=row["top1"],
                top1_photo=None, top1_n=row["top1_n"], target=record.target, target_name=record.target_name,
                model=record.model) for row in record.results])
    goal = f"target {record.target_name}" if record.target is not None else "untargeted"
    print(f"{'patch' if made else 'already made: patch'} of {config.patch_px} px ({config.shape}) on {record.model}, "
          f"{goal}, {len(record.training)} training images, {len(record.held_out)} held out "
          f"({record.excluded_of_target_class} of the target class left out); mean ΔE00 to its simulated print "
          f"{record.delta_e00:.2f}", file=sys.stderr)
    for area_value in record.eval_areas:
        parts = {(r["control"] or r["kind"]): r for r in record.results if r["area"] == area_value}
        text = ", ".join(f"{name} {_fraction(parts[name]['target_success'])}" for name in ("patch", "noise", "crop", "clean"))
        print(f"  area {area_value:g}: success {text} (n={parts['patch']['n']})", file=sys.stderr)
    print(args.out / RECORD_FILE)
    return 0


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
