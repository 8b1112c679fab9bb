"""``physadv train-defence``: fine-tune a classifier with a defence and save a loadable checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from physadv.cli.common import add_model_options, add_seed_option, classifier_from_args, positive_int
from physadv.catalog import DEFENCE_DEFAULTS, DEFENCES, DISTRIBUTION_NAMES

ORDER = 27
HELP = "train a defence (fgsm-rs, pgd, eot, distill, gradreg) into a checkpoint that --weights loads"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv train-defence --model digits --defence pgd --eps 16 --out digits-pgd.pt\n"
        "  physadv train-defence --model digits --defence distill --temperature 100 --lr 1e-2 --out digits-distill.pt\n"
        "  physadv train-defence --model timm:resnet18 --data train/ --defence fgsm-rs --eps 4 --out r18-fast.pt\n"
        "  physadv attack digits --model digits --weights digits-pgd.pt --eps 16 --out adv-pgd/\n"
        "  physadv compare-models digits digits@digits-pgd.pt --images digits --out cmp/\n"
        "defences: fgsm-rs (Wong et al. 2020, random start + one step of 1.25 eps), pgd (Madry et al. 2018,\n"
        "--steps steps of 2.5 eps/steps), eot (FGSM-RS through a random transformation of --eot, training on\n"
        "the transformed image), distill (defensive distillation at --temperature, Papernot et al. 2016),\n"
        "gradreg (cross-entropy + --gradreg-weight x squared input-gradient norm, Ross & Doshi-Velez 2018).\n"
        "Training starts from --model's weights and runs at the model's input size; --data digits is the\n"
        "training split of scikit-learn's digits (the image set `digits` is the held-out split).")
    add_model_options(parser)
    parser.add_argument("--defence", choices=DEFENCES, required=True, help="which defence")
    parser.add_argument("--data", nargs="+", default=["digits"], metavar="IMAGES",
                        help="training images: digits (built in) or folders/files with the class in their names")
    parser.add_argument("--label", help="class of every training image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="train on the first N images only")
    parser.add_argument("--eps", type=float, default=DEFENCE_DEFAULTS["eps"], help="training ε (0-255 units)")
    parser.add_argument("--epochs", type=positive_int, default=DEFENCE_DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=positive_int, default=DEFENCE_DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFENCE_DEFAULTS["lr"], help="AdamW learning rate (cosine schedule)")
    parser.add_argument("--steps", type=positive_int, default=DEFENCE_DEFAULTS["steps"], help="PGD steps (pgd)")
    parser.add_argument("--temperature", type=float, default=DEFENCE_DEFAULTS["temperature"], help="T (distill)")
    parser.add_argument("--gradreg-weight", type=float, default=DEFENCE_DEFAULTS["gradreg_weight"], help="λ (gradreg)")
    parser.add_argument("--eot", default="photo", choices=sorted(DISTRIBUTION_NAMES),
                        help="channel distribution of the eot defence")
    parser.add_argument("--out", type=Path, required=True,
                        help="checkpoint file to write (checked before training: a new file, or a checkpoint this "
                             "command wrote; any other file is never replaced)")
    add_seed_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.defences import DefenceConfig, check_checkpoint_path, save_checkpoint, train_defence, training_images

    check_checkpoint_path(args.out)
    config = DefenceConfig(args.defence, eps=args.eps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           steps=args.steps, temperature=args.temperature, gradreg_weight=args.gradreg_weight,
                           distribution=args.eot, seed=args.seed)
    classifier = classifier_from_args(args)
    images, labels = training_images(args.data if len(args.data) > 1 else args.data[0], classifier, args.label,
                                     args.limit)
    summary = train_defence(classifier, images, labels, config)
    path = save_checkpoint(classifier, args.out, config, args.model)
    print(f"{args.defence} on {classifier.name}: {summary.images} images, {config.epochs} epoch(s) in "
          f"{summary.seconds:.0f} s; last epoch's training loss {summary.loss:.3f}, accuracy on its training "
          f"inputs {summary.clean_accuracy:.3f}", file=sys.stderr)
    print(f"load it with: --model {args.model} --weights {path}", file=sys.stderr)
    print(path)
    return 0
