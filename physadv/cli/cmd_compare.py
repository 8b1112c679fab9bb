"""``physadv compare``: plain vs EOT attack at equal ε, through the virtual print→photo channel."""

from __future__ import annotations

import argparse

from physadv.catalog import ADVERSARIALITY_SAMPLES, DEFAULT_MODEL, DISTRIBUTION_NAMES, EOT_SAMPLES, METHODS
from physadv.cli.cmd_demo import profile_spec
from physadv.cli.common import (
    add_device_option,
    add_images_argument,
    add_seed_option,
    eot_spec,
    images_from,
    output_dir,
    positive_int,
    resolve_device,
)

ORDER = 26
HELP = "compare a plain attack with its EOT variant: adversariality and destruction rate on photos"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv compare --method bim --eps 16 --out cmp-bim16\n"
        "  physadv compare --model digits --images digits --limit 20 --eps 32 --eot athalye2018 --out cmp-d\n"
        "  physadv compare --eot profile:lab --profile lab --out cmp-lab   # EOT fitted to the camera\n"
        "runs both attacks on the same images, measures adversariality under the EOT distribution\n"
        "(held-out transformations) and the destruction rate under the virtual camera; EOT should\n"
        "have the higher adversariality and the lower destruction rate. The folder is a run:\n"
        "`physadv report OUT` and `physadv status OUT` work on it, and re-running resumes.")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help="classifier")
    add_images_argument(parser, default=["samples"])
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images")
    parser.add_argument("--method", choices=[m for m in METHODS if m != "target"], default="bim")
    parser.add_argument("--eps", type=float, default=16.0, help="ε of both attacks (0-255 units)")
    parser.add_argument("--eot", type=eot_spec, default="photo",
                        help=f"EOT distribution: {', '.join(sorted(DISTRIBUTION_NAMES))} or profile:NAME|FILE.toml")
    parser.add_argument("--profile", default="lab", metavar="NAME|FILE.toml",
                        help="camera profile of the virtual camera: lab, handheld, webcam or a TOML file")
    parser.add_argument("--eot-samples", type=int, default=EOT_SAMPLES, help="transformations averaged per EOT step")
    parser.add_argument("--adversariality-samples", type=int, default=ADVERSARIALITY_SAMPLES,
                        help="held-out transformations per image")
    parser.add_argument("--photos-per-page", type=int, default=2, help="virtual photos of every sheet")
    parser.add_argument("--resolution", default=None, help="virtual camera: 12mp, 1080p or 720p (default: the profile's)")
    add_seed_option(parser)
    parser.add_argument("--out", type=output_dir, required=True, help="run folder")
    add_device_option(parser, session=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.reporting import build_report, summary
    from physadv.lab.session import AttackPlan, Session, SessionConfig

    config = SessionConfig(
        model=args.model, images=tuple(images_from(args)), limit=args.limit, seed=args.seed,
        attacks=(AttackPlan(args.method, args.eps), AttackPlan(args.method, args.eps, eot=args.eot)),
        eot_samples=args.eot_samples, adversariality_distribution=args.eot,
        adversariality_samples=args.adversariality_samples, transforms={}, photos_per_page=args.photos_per_page,
        resolution=args.resolution, camera_profile=profile_spec(args.profile))
    Session(args.out, config, resolve_device(args.device or config.device), user_model=args.model).run("compare")
    files = build_report(args.out)
    print(summary(args.out))
    print(f"\nreport: {files.html}")
    return 0
