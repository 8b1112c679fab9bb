"""``physadv experiment``: Kurakin et al.'s artificial-transformation experiment as one command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from physadv.attacks import METHODS, Attack
from physadv.channel import TRANSFORMS, check_strength, transform_kind
from physadv.classifiers import Classifier
from physadv.cli.cmd_attack import add_attack_options, eot_variant, resolve_target
from physadv.cli.common import (
    add_model_options,
    add_seed_option,
    classifier_from_args,
    comma_floats,
    comma_list,
    positive_int,
    sources_from_args,
)
from physadv.datasets import load_image_set, prepare
from physadv.eot import adversariality
from physadv.errors import InputError
from physadv.experiment import ExperimentConfig, Row, experiment_to_folder
from physadv.metrics import format_fraction

ORDER = 25
HELP = "attack, transform (brightness, contrast, blur, noise, JPEG) and measure the destruction rate"

def register(parser: argparse.ArgumentParser) -> None:
    defaults = "; ".join(f"{k}: {','.join(f'{s:g}' for s in v.default_strengths)} ({v.unit})"
                         for k, v in TRANSFORMS.items())
    parser.epilog = (
        "examples:\n"
        "  physadv experiment --out results/                      # bundled photos, default model\n"
        "  physadv experiment --model digits --images digits --limit 100 --eps 16,32 --out r-digits/\n"
        "  physadv experiment --images imgs/ --transforms jpeg --strengths jpeg=75,30,10 --out r/\n"
        "  physadv experiment --methods bim --eps 16 --eot photo --out r-eot/   # adds bim+eot rows\n"
        "  physadv experiment --model efficientnet_lite1 --source-model efficientnet_lite0 --out r-transfer/\n"
        f"default strengths: {defaults}.\n"
        "writes OUT/results.json and OUT/results.csv: one row per (method, eps, transform, strength, case),\n"
        "case = average (all images) or prefiltered (clean right and adversarial wrong, both with\n"
        "confidence >= 0.8); destruction_* are Kurakin's eq. (1), *_n their denominators. With --eot every\n"
        "row also has adversariality: the mean fraction of held-out transformations of that distribution\n"
        "under which the adversarial image still fools the model (Athalye et al. 2018).\n"
        "An interrupted run resumes: finished attacks are kept in OUT/results.json.")
    add_model_options(parser)
    parser.add_argument("--images", nargs="+", default=["samples"], metavar="IMAGES",
                        help="files, folders, or a built-in set: samples, digits")
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images")
    parser.add_argument("--methods", default="fgsm,bim,ll", help=f"comma-separated, from {','.join(METHODS)}")
    parser.add_argument("--eps", default="8,16", type=comma_floats, help="comma-separated ε values (0-255 units)")
    parser.add_argument("--transforms", default=",".join(TRANSFORMS), help="comma-separated transformations")
    parser.add_argument("--strengths", action="append", default=[], metavar="NAME=S1,S2",
                        help="strengths of one transformation (repeatable), e.g. jpeg=90,50,10")
    add_attack_options(parser)
    parser.add_argument("--adversariality-samples", type=int, default=100,
                        help="with --eot: held-out transformations per image for the adversariality column")
    parser.add_argument("--out", type=Path, default=Path("physadv-experiment"), help="output folder")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def parse_strengths(transforms: list[str], overrides: list[str]) -> dict[str, list[float]]:
    chosen = {name: list(transform_kind(name).default_strengths) for name in transforms}
    for item in overrides:
        name, _, values = item.partition("=")
        if name not in chosen:
            raise InputError(f"--strengths {item!r}: {name!r} is not among --transforms ({','.join(chosen)})")
        try:
            chosen[name] = comma_floats(values)
        except argparse.ArgumentTypeError as error:
            raise InputError(f"--strengths {item!r}: {error}") from None
    for name, strengths in chosen.items():
        for strength in strengths:
            check_strength(name, strength)
    return chosen


def format_table(rows: list[Row]) -> str:
    """One line per (method, ε, transformation, strength): accuracies of the average case and the
    top-1 destruction rate of both cases, each with its denominator."""
    cases = {(r["method"], r["eps"], r["transform"], r["strength"], r["case"]): r for r in rows}
    lines = [f"{'method':<10}{'eps':>5}  {'transform':<11}{'strength':>8}  {'acc clean':>9}{'acc adv':>8}"
             f"{'acc T(adv)':>11}  {'destruction avg':>16}  {'destruction prefilt.':>20}"]
    for (method, eps, transform, strength, case), r in cases.items():
        if case != "average":
            continue
        p = cases.get((method, eps, transform, strength, "prefiltered"), {})
        lines.append(f"{method:<10}{eps:>5g}  {transform:<11}{strength:>8g}  {format_fraction(r['top1_clean']):>9}"
                     f"{format_fraction(r['top1_adv']):>8}{format_fraction(r['top1_transformed']):>11}  "
                     f"{format_fraction(r['destruction_top1'], r['destruction_top1_n']):>16}  "
                     f"{format_fraction(p.get('destruction_top1'), p.get('destruction_top1_n', 0)):>20}")
    return "\n".join(lines) + "\n(top-1; accuracies over all images; full table in results.csv)"


def run(args: argparse.Namespace) -> int:
    methods = comma_list(args.methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    strengths = parse_strengths(comma_list(args.transforms), args.strengths)
    classifier = classifier_from_args(args)
    sources = sources_from_args(args, classifier)
    attacks = [Attack(method, eps, args.alpha, args.iterations, amp=args.amp) for method in methods for eps in args.eps]
    extras = None
    if args.eot:
        attacks += [eot_variant(attack, args)[0] for attack in attacks]

        def extras(attack: Attack, classifier: Classifier, adversarial: torch.Tensor, goals: torch.Tensor) -> dict:
            value = adversariality(classifier, adversarial, goals, attack.goal.targeted, args.eot,
                                   args.adversariality_samples, args.seed, args.eot_chunk)
            return {"adversariality": float(value.mean())}
    target = resolve_target(classifier, args.target)
    config = ExperimentConfig(attacks=attacks, transforms=strengths, target=target, batch_size=args.batch_size,
                              seed=args.seed, attack_extras=extras, sources=sources)
    images = prepare(load_image_set(args.images, classifier.labels, args.label, args.limit), classifier.image_size)
    config_key = {"model": classifier.name, "weights": classifier.weights, "label": args.label,
                  "images": [i.source for i in images], "methods": methods,
                  "eot": [args.eot, args.eot_samples, args.adversariality_samples] if args.eot else None,
                  "eps": args.eps, "alpha": args.alpha, "iterations": args.iterations, "transforms": strengths,
                  "target": args.target, "seed": args.seed,
                  "sources": [[s.name, s.weights] for s in sources]}
    rows = experiment_to_folder(classifier, images, config, args.out, config_key)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        print(format_table(rows))
        crafted = f" (attacks crafted on {rows[0]['source_model']})" if sources and rows else ""
        print(f"\n{len(images)} images, model {classifier.name}{crafted}; written {args.out / 'results.json'} "
              f"and {args.out / 'results.csv'}")
    return 0
