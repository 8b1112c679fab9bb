"""``physadv experiment``: Kurakin et al.'s artificial-transformation experiment as one command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from physadv.catalog import ADVERSARIALITY_SAMPLES, CLEAN_METHOD, IMAGENET_C, METHODS, TRANSFORM_DEFAULTS
from physadv.cli.cmd_attack import add_attack_options, eot_variant
from physadv.cli.common import (
    add_data_options,
    add_images_argument,
    add_model_options,
    add_seed_option,
    classifier_and_shard,
    comma_floats,
    comma_list,
    images_from,
    output_dir,
    positive_int,
    sources_from_args,
)
from physadv.errors import InputError

ORDER = 25
HELP = "attack, transform (brightness, contrast, blur, noise, JPEG) and measure the destruction rate"

def register(parser: argparse.ArgumentParser) -> None:
    defaults = "; ".join(f"{k}: {','.join(f'{s:g}' for s in v.default_strengths)} ({v.unit})"
                         for k, v in TRANSFORM_DEFAULTS.items())
    parser.epilog = (
        "examples:\n"
        "  physadv experiment --out results/                      # bundled photos, default model\n"
        "  physadv experiment --model digits --images digits --limit 100 --eps 16,32 --out r-digits/\n"
        "  physadv experiment --images imgs/ --transforms jpeg --strengths jpeg=75,30,10 --out r/\n"
        "  physadv experiment --methods bim --eps 16 --eot photo --out r-eot/   # adds bim+eot rows\n"
        "  physadv experiment --model resnet50 --methods none --transforms imagenet-c --out c-base/\n"
        "  physadv experiment --transforms imagenet-c --baseline c-base/results.json --out c/   # mCE vs resnet50\n"
        "  physadv experiment --model efficientnet_lite1 --source-model efficientnet_lite0 --out r-transfer/\n"
        f"default strengths: {defaults}.\n"
        "writes OUT/results.json and OUT/results.csv: one row per (method, eps, transform, strength, case),\n"
        "case = average (all images) or prefiltered (clean right and adversarial wrong, both with\n"
        "confidence >= 0.8); destruction_* are Kurakin's eq. (1), *_n their denominators. With --eot every\n"
        "row also has adversariality: the mean fraction of held-out transformations of that distribution\n"
        "under which the adversarial image still fools the model (Athalye et al. 2018).\n"
        "ImageNet-C (Hendrycks & Dietterich 2019): --transforms imagenet-c applies its 15 corruptions at\n"
        "severities 1-5 (strength = severity) to the adversarial images and to the clean ones (rows with\n"
        "method none, eps 0: top1_transformed is the corruption accuracy); results.json's 'corruptions'\n"
        "gives the accuracy per corruption and overall and, with --baseline, CE per corruption and mCE:\n"
        "mean over corruptions of (sum over severities of the model's top-1 error / the baseline's).\n"
        "The baseline is another experiment's results.json on the same images, e.g. of the model the\n"
        "paper normalises by (AlexNet) or any reference model; --methods none skips the attacks.\n"
        "An interrupted run resumes: finished attacks and batches are kept.\n"
        "across GPUs: torchrun --nproc-per-node 8 -m physadv experiment --images val.csv ... (docs/how-to/scale-out.md)")
    add_model_options(parser)
    add_images_argument(parser, default=["samples"])
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images")
    parser.add_argument("--methods", default="fgsm,bim,ll",
                        help=f"comma-separated, from {','.join(METHODS)}; {CLEAN_METHOD}: no attack, clean images only")
    parser.add_argument("--eps", default="8,16", type=comma_floats, help="comma-separated ε values (0-255 units)")
    parser.add_argument("--transforms", default=",".join(TRANSFORM_DEFAULTS),
                        help=f"comma-separated transformations; {IMAGENET_C} adds the 15 ImageNet-C corruptions at "
                             f"severities 1-5, {IMAGENET_C}:NAME one of them")
    parser.add_argument("--strengths", action="append", default=[], metavar="NAME=S1,S2",
                        help="strengths of one transformation (repeatable), e.g. jpeg=90,50,10; imagenet-c=3 sets "
                             "the severities of every corruption")
    add_attack_options(parser)
    parser.add_argument("--adversariality-samples", type=int, default=ADVERSARIALITY_SAMPLES,
                        help="with --eot: held-out transformations per image for the adversariality column")
    parser.add_argument("--baseline", type=Path, metavar="RESULTS_JSON", default=None,
                        help="results.json of the baseline model for ImageNet-C's CE and mCE (see below)")
    parser.add_argument("--out", type=output_dir, default=Path("physadv-experiment"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    add_data_options(parser)
    add_seed_option(parser)
    parser.set_defaults(func=run)


def parse_strengths(transforms: list[str], overrides: list[str]) -> dict[str, list[float]]:
    from physadv.channel import check_strength, expand_transforms, is_corruption, transform_kind

    chosen = {name: list(transform_kind(name).default_strengths) for name in expand_transforms(transforms)}
    for item in overrides:
        name, _, values = item.partition("=")
        names = [n for n in chosen if is_corruption(n)] if name == IMAGENET_C else [name]
        if not names or any(n not in chosen for n in names):
            raise InputError(f"--strengths {item!r}: {name!r} is not among --transforms ({','.join(chosen)})")
        try:
            chosen.update({n: comma_floats(values) for n in names})
        except argparse.ArgumentTypeError as error:
            raise InputError(f"--strengths {item!r}: {error}") from None
        if not values.strip() or not all(chosen[n] for n in names):
            raise InputError(f"--strengths {item!r}: no strengths given (e.g. --strengths {name}=S1,S2)")
    for name, strengths in chosen.items():
        for strength in strengths:
            check_strength(name, strength)
    return chosen


def format_corruptions(summary: dict) -> str:
    """ImageNet-C: accuracy on the corrupted clean images per corruption (mean over severities) and, with a
    baseline, its CE; then the overall corruption accuracy and the mCE."""
    with_ce = "mce" in summary
    lines = [f"{'corruption':<20}{'accuracy':>9}" + (f"{'CE':>8}" if with_ce else "")]
    for name, values in summary["per_corruption"].items():
        ce = values.get("ce")
        lines.append(f"{name:<20}{values['accuracy']:>9.3f}"
                     + ((f"{ce:>8.3f}" if ce is not None else f"{'n/a':>8}") if with_ce else ""))
    lines.append(f"corruption accuracy {summary['corruption_accuracy']:.3f}" + (
        f"; mCE {'n/a' if summary['mce'] is None else format(summary['mce'], '.3f')} relative to "
        f"{summary['baseline']['model']}" if with_ce else "; pass --baseline RESULTS_JSON for CE and mCE"))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from physadv.attacks import Attack
    from physadv.classifiers import Classifier
    from physadv.datasets import index_image_set, sources_digest
    from physadv.eot import adversariality
    from physadv.channel import is_corruption
    from physadv.experiment import ExperimentConfig, corruption_summary, experiment_to_folder, read_baseline
    from physadv.metrics import format_table

    methods = comma_list(args.methods, unique=True)
    clean_only = CLEAN_METHOD in methods
    methods = [m for m in methods if m != CLEAN_METHOD]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    strengths = parse_strengths(comma_list(args.transforms), args.strengths)
    attacks = [Attack(method, eps, args.alpha, args.iterations, amp=args.amp) for method in methods for eps in args.eps]
    if args.eot:
        attacks += [eot_variant(attack, args)[0] for attack in attacks]

    from physadv.capture.calibrate import resolve_distribution

    held_out_eot = resolve_distribution(args.eot) if args.eot else None

    def adversariality_under_eot(attack: Attack, classifier: Classifier, adversarial: torch.Tensor,
                                 goals: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"adversariality": adversariality(classifier, adversarial, goals, attack.goal.targeted, held_out_eot,
                                                 args.adversariality_samples, args.seed, args.eot_chunk)}

    corruptions = any(is_corruption(name) for name in strengths)
    if args.baseline is not None and not corruptions:
        raise InputError("--baseline compares ImageNet-C errors: add --transforms imagenet-c (or imagenet-c:NAME)")
    with classifier_and_shard(args) as (classifier, shard):
        sources = sources_from_args(args, classifier)
        target = classifier.labels.target(args.target)
        config = ExperimentConfig(attacks=attacks, transforms=strengths, target=target, batch_size=args.batch_size,
                                  seed=args.seed, attack_extras=adversariality_under_eot if args.eot else None,
                                  clean_rows=clean_only or corruptions, sources=sources)
        images = index_image_set(images_from(args), classifier.labels, args.label, args.limit)
        images_digest = sources_digest(image.source for image in images)
        baseline = read_baseline(args.baseline, images_digest, strengths) if args.baseline else None
        config_key = {"model": classifier.name, "weights": classifier.weights, "label": args.label,
                      "images": images_digest, "methods": methods + [CLEAN_METHOD] * config.clean_rows,
                      "eot": [args.eot, args.eot_samples, args.adversariality_samples] if args.eot else None,
                      "eps": args.eps, "alpha": args.alpha, "iterations": args.iterations, "transforms": strengths,
                      "target": args.target, "seed": args.seed,
                      "sources": [[s.name, s.weights] for s in sources]}
        rows = experiment_to_folder(classifier, images, config, args.out, config_key,
                                    workers=args.workers, shard=shard, baseline=baseline)
        if not shard.is_main:
            return 0
    if args.json:
        json.dump([row.to_json() for row in rows], sys.stdout, indent=1)
        print()
    else:
        print(format_table(rows))
        print("(full table in results.csv)")
        summary = corruption_summary(rows, baseline)
        if summary:
            print("\n" + format_corruptions(summary))
        crafted = f" (attacks crafted on {rows[0].source_model})" if sources and rows else ""
        print(f"\n{len(images)} images, model {classifier.name}{crafted}; written {args.out / 'results.json'} "
              f"and {args.out / 'results.csv'}")
    return 0
