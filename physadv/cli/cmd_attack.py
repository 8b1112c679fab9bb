"""``physadv attack``: write clean and adversarial 8-bit PNGs plus ``attack.json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from physadv.attacks import METHODS, Attack
from physadv.attackset import (ADV_DIR, CLEAN_DIR, RECORD_FILE, AttackedImage, AttackSet, AttackSettings, Guess,
                               read_attack_set, write_attack_set)
from physadv.cli.common import add_model_options, add_seed_option, classifier_from_args
from physadv.classifiers import Classifier
from physadv.datasets import LabelledImage, load_image_set, prepare
from physadv.errors import InputError
from physadv.images import to_tensor, to_uint8, write_png
from physadv.metrics import Predictions

ORDER = 20
HELP = "attack images with FGSM, BIM, least-likely class or a target class"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv attack samples --method bim --eps 16 --out adv/\n"
        "  physadv attack photos/ --method target --target 'goldfish' --eps 8 --out adv-gold/\n"
        "  physadv attack digits --model digits --method fgsm --eps 32 --limit 40 --out adv-digits/\n"
        "writes OUT/clean/*.png and OUT/adv/*.png (8-bit, at the size they will be printed) and\n"
        "OUT/attack.json. eps and alpha are in 0-255 pixel units, as in Kurakin et al. (2017);\n"
        "iterations default to ceil(min(eps + 4, 1.25 eps)). An interrupted run resumes when re-run.")
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files, folders, or a built-in set: samples, digits")
    add_model_options(parser)
    add_attack_options(parser)
    parser.add_argument("--eps", type=float, default=16.0, help="L∞ budget ε in 0-255 pixel units")
    parser.add_argument("--method", choices=METHODS, default="bim",
                        help="fgsm, bim (basic iterative), ll (iterative least-likely class), target")
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=int, default=None, help="attack only the first N images")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def add_attack_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``attack`` and ``experiment``."""
    parser.add_argument("--alpha", type=float, default=1.0, help="step size α of the iterative methods (0-255 units)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations of the iterative methods (default ceil(min(eps + 4, 1.25 eps)))")
    parser.add_argument("--target", help="target class of --method target (name, WordNet id or index)")
    parser.add_argument("--batch-size", type=int, default=16, help="images attacked at once")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on CPU)")


def resolve_target(classifier: Classifier, target: str | None) -> int | None:
    if target is None:
        return None
    try:
        return classifier.labels.index(target)
    except KeyError as error:
        raise InputError(str(error.args[0])) from None


def _guesses(classifier: Classifier, predictions: Predictions, row: int) -> tuple[Guess, ...]:
    return tuple(Guess(int(c), classifier.labels.name(int(c)), round(float(p), 6))
                 for c, p in zip(predictions.classes[row], predictions.probabilities[row]))


def _resumable(out: Path, settings: AttackSettings) -> AttackSet | None:
    if not (out / RECORD_FILE).is_file():
        return None
    existing = read_attack_set(out)
    if existing.settings != settings:
        raise InputError(f"{out} already holds an attack with other settings ({existing.settings}); "
                         "choose another --out or delete that folder")
    return existing


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    classifier = classifier_from_args(args)
    attack = Attack(args.method, args.eps, args.alpha, args.iterations, amp=args.amp)
    target = resolve_target(classifier, args.target)
    if args.method == "target" and target is None:
        raise InputError("--method target needs --target CLASS")
    images = prepare(load_image_set(args.images, classifier.labels, args.label, args.limit), classifier.image_size)
    if args.method in ("fgsm", "bim"):
        unlabelled = [i.id for i in images if i.label is None]
        if unlabelled:
            raise InputError(f"{args.method} needs the true class of every image; no label for "
                             f"{', '.join(unlabelled[:5])}{' …' if len(unlabelled) > 5 else ''} "
                             "(name the class in the file/folder name or pass --label)")
    settings = AttackSettings(model=classifier.name, method=attack.label, eps=float(attack.eps),
                              alpha=attack.step_size, iterations=attack.steps, image_size=classifier.image_size,
                              seed=args.seed)
    existing = _resumable(args.out, settings)
    record = existing or AttackSet(settings=settings, weights=classifier.weights, images=())
    done = {image.id for image in record.images}
    todo = [image for image in images if image.id not in done]
    with tqdm(total=len(images), initial=len(images) - len(todo), desc=f"{attack.label} eps={args.eps:g}",
              unit="img") as bar:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start:start + args.batch_size]
            record = record.with_images(record.images + _attack_batch(classifier, attack, batch, target, args.out))
            write_attack_set(args.out, record)
            bar.update(len(batch))
    succeeded = sum(image.success for image in record.images)
    undone = sum(image.quantisation_undid for image in record.images)
    print(f"{attack.label} ε={args.eps:g} ({attack.steps} iterations) on {classifier.name}: "
          f"{succeeded}/{len(record.images)} adversarial images reach their goal; "
          f"8-bit rounding undid {undone} attack(s).", file=sys.stderr)
    print(args.out / RECORD_FILE)
    return 0


def _attack_batch(classifier: Classifier, attack: Attack, batch: list[LabelledImage], target: int | None,
                  out: Path) -> tuple[AttackedImage, ...]:
    device = classifier.device
    x = to_tensor([i.image for i in batch], device)
    labels = torch.tensor([i.label if i.label is not None else 0 for i in batch], device=device)
    targets = torch.full_like(labels, target) if target is not None else None
    result = attack(classifier, x, labels, targets)
    clean = Predictions.from_probabilities(classifier.probabilities(result.clean))
    adversarial_probabilities = classifier.probabilities(result.adversarial)
    adversarial = Predictions.from_probabilities(adversarial_probabilities)
    success = result.succeeded(adversarial_probabilities.argmax(-1))
    success_before_rounding = result.succeeded(classifier.probabilities(result.unquantised).argmax(-1))
    records = []
    for row, (image, clean_png, adversarial_png) in enumerate(zip(batch, to_uint8(result.clean),
                                                                  to_uint8(result.adversarial))):
        file = f"{image.id}.png"
        write_png(out / CLEAN_DIR / file, clean_png)
        write_png(out / ADV_DIR / file, adversarial_png)
        label = image.label
        records.append(AttackedImage(
            id=image.id, file=file, source=image.source, label=label,
            label_name=classifier.labels.name(label) if label is not None else None,
            wnid=classifier.labels.wnid(label) if label is not None else None,
            clean_top5=_guesses(classifier, clean, row), adv_top5=_guesses(classifier, adversarial, row),
            target=int(result.goal[row]) if result.targeted else None,
            success=bool(success[row]) if (label is not None or result.targeted) else False,
            quantisation_undid=bool(success_before_rounding[row] & ~success[row])))
    return tuple(records)
