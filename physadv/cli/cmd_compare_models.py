"""``physadv compare-models``: a base model and defended ones under the same attacks and channel."""

from __future__ import annotations

import argparse
from pathlib import Path

from physadv.catalog import MASKING_MARGIN
from physadv.cli.cmd_experiment import parse_strengths
from physadv.cli.common import (
    add_device_option,
    add_seed_option,
    comma_floats,
    comma_list,
    positive_int,
    resolve_device,
)
from physadv.errors import InputError

ORDER = 28
HELP = "compare a base model with defended models: clean, white-box, transfer and photo accuracy, destruction"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv train-defence --model digits --defence pgd --out digits-pgd.pt\n"
        "  physadv train-defence --model digits --defence distill --out digits-distill.pt\n"
        "  physadv compare-models digits digits@digits-pgd.pt digits@digits-distill.pt \\\n"
        "      --images digits --limit 40 --eps 16 --out cmp-defences/\n"
        "MODEL is any --model form, MODEL@FILE adds a weights file; the first is the base (undefended)\n"
        "model. Every model gets the same attacks, eps, transformations and virtual print->photo channel\n"
        "(a lab session each, in OUT/models/), and every other model also the attack crafted on the base\n"
        "(transfer). A model is flagged for gradient masking when its white-box accuracy exceeds its\n"
        f"transfer accuracy by more than {MASKING_MARGIN:.0%} and two standard errors: a transferred attack\n"
        "is weaker than the white-box one unless the model's own gradients mislead (Athalye et al. 2018).\n"
        "Writes OUT/comparison.json, OUT/comparison.csv and OUT/report/comparison.html/.pdf; re-running resumes.")
    parser.add_argument("models", nargs="+", metavar="MODEL[@WEIGHTS]", help="base model first, then defended models")
    parser.add_argument("--images", nargs="+", default=["samples"], help="files, folders, samples or digits")
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images")
    parser.add_argument("--methods", default="bim", help="comma-separated: fgsm, bim")
    parser.add_argument("--eps", type=comma_floats, default=[16.0], help="comma-separated ε (0-255 units)")
    parser.add_argument("--transforms", default="", help="artificial transformations too, e.g. jpeg,blur")
    parser.add_argument("--photos-per-page", type=int, default=1,
                        help="virtual photos of every sheet (0: digital only, or your own photos later)")
    parser.add_argument("--resolution", default="720p", help="virtual camera: 12mp, 1080p or 720p")
    parser.add_argument("--adversariality-samples", type=positive_int, default=20,
                        help="held-out photo transformations per image for the adversariality column")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    add_seed_option(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.lab.model_comparison import compare_models, format_table, parse_models
    from physadv.lab.session import AttackPlan, SessionConfig

    methods = comma_list(args.methods)
    if not methods or any(m not in ("fgsm", "bim") for m in methods):
        raise InputError(f"--methods {args.methods!r}: compare-models takes fgsm and/or bim")
    transforms = parse_strengths(comma_list(args.transforms), []) if args.transforms else {}
    config = SessionConfig(
        images=tuple(args.images), label=args.label, limit=args.limit, seed=args.seed, batch_size=args.batch_size,
        attacks=tuple(AttackPlan(m, eps) for m in methods for eps in args.eps), transforms=transforms,
        photos_per_page=args.photos_per_page, resolution=args.resolution,
        adversariality_samples=args.adversariality_samples)
    rows = compare_models(parse_models(args.models), args.out, config, resolve_device(args.device))
    print(format_table(rows))
    print(f"\nwritten {args.out / 'comparison.csv'} and {args.out / 'report' / 'comparison.html'}")
    return 0
