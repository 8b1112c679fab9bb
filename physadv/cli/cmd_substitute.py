"""``physadv substitute``: train a substitute of a model from its labels alone (Papernot et al. 2017)."""

from __future__ import annotations

import argparse
import sys

from physadv.cli.common import (
    add_data_options,
    add_device_option,
    add_images_argument,
    add_seed_option,
    check_worker_count,
    images_from,
    output_dir,
    positive_int,
    resolve_device,
)
from physadv.errors import InputError
from physadv.substitute import (
    ARCHITECTURES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_PERIOD,
    DEFAULT_ROUNDS,
    DEFAULT_STEP,
    SMALL_IMAGES,
    SUBSTITUTE_PREFIX,
)

ORDER = 22
HELP = "black box: train a substitute of a model from its labels alone, for transfer attacks (Papernot et al.)"


def register(parser: argparse.ArgumentParser) -> None:
    architectures = "\n".join(f"  {name:<8}{text}" for name, text in ARCHITECTURES.items())
    parser.epilog = (
        "examples:\n"
        "  physadv substitute digits --oracle digits --limit 100 --out sub-digits/\n"
        f"  physadv attack digits --model digits --source-model {SUBSTITUTE_PREFIX}sub-digits/ --method fgsm \\\n"
        "      --eps 64 --out adv-blackbox/          # crafted on the substitute, evaluated on the oracle\n"
        "  physadv substitute --oracle timm:resnet18 photos/ --rounds 4 --reservoir-after 2 \\\n"
        "      --reservoir-size 400 --out sub-r18/   # n*2^2 + 400*2 queries instead of n*2^4\n"
        "The oracle (any --model form) is asked for labels only, and every image it labels is counted. From\n"
        "the initial IMAGES S0 (their own labels are not used) the substitute trains in rounds rho = 0..--rounds;\n"
        "after each, every training point x adds x + lambda_rho * sign(gradient of the substitute's logit of x's\n"
        "oracle label), clipped and rounded to 8 bits, which the oracle labels (Jacobian-based dataset\n"
        "augmentation). lambda_rho = lambda * (-1)^floor(rho/tau). Queries: n * 2^rounds; with reservoir\n"
        "sampling, the augmentations from round sigma on step from kappa random points only:\n"
        "n * 2^sigma + kappa * (rounds - sigma). Defaults: cleverhans' mnist_blackbox (docs/substitute.md).\n"
        f"architectures (auto: cnn32 for images up to {SMALL_IMAGES} px, else cnn112):\n{architectures}\n"
        "  FILE.py:FACTORY  your own, as for --model (trained from scratch; name it again when you use the\n"
        f"                  substitute: {SUBSTITUTE_PREFIX}DIR@FILE.py:FACTORY)\n"
        "writes OUT/substitute.json (oracle, architecture, settings, the initial images' SHA-256, per-round\n"
        "queries, oracle_queries), OUT/substitute.safetensors and OUT/rounds/. An interrupted run resumes\n"
        "when re-run; re-running a finished one does nothing.")
    add_images_argument(parser)
    parser.add_argument("--oracle", required=True, metavar="MODEL",
                        help="the model under attack, queried for labels only: any --model form (`physadv models`)")
    parser.add_argument("--oracle-weights", metavar="PATH", default=None, help="weights file of --oracle")
    parser.add_argument("--oracle-labels", metavar="FILE", default=None,
                        help="class names of --oracle, one per line in logit order (default: the model's own)")
    parser.add_argument("--offline", action="store_true", help="never download the oracle's weights")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images as S0")
    parser.add_argument("--architecture", default="auto", metavar="NAME",
                        help=f"the substitute: auto, {', '.join(ARCHITECTURES)} or FILE.py:FACTORY (below)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, metavar="RHO",
                        help="rho_max: augmentations, i.e. training rounds after the first (queries: n * 2^rounds)")
    parser.add_argument("--lambda", dest="step", type=float, default=DEFAULT_STEP, metavar="LAMBDA",
                        help="augmentation step lambda, 0-255 pixel units (25.5 = the paper's 0.1)")
    parser.add_argument("--tau", type=int, default=DEFAULT_PERIOD,
                        help="the step's sign flips every tau rounds (0: never)")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, help="training epochs per round")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="training batch size")
    parser.add_argument("--lr", type=float, default=DEFAULT_LEARNING_RATE, help="Adam learning rate")
    parser.add_argument("--reservoir-after", type=int, default=None, metavar="SIGMA",
                        help="reservoir sampling: from round sigma on, augment only --reservoir-size points")
    parser.add_argument("--reservoir-size", type=positive_int, default=None, metavar="KAPPA",
                        help="kappa: points augmented (and queried) per round with reservoir sampling")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    add_device_option(parser)
    add_data_options(parser)
    add_seed_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.classifiers import load_classifier
    from physadv.datasets import default_workers, index_image_set
    from physadv.lab.store import RunLock
    from physadv.substitute import SubstituteConfig, is_substitute_spec
    from physadv.substitute.oracle import LabelOracle
    from physadv.substitute.training import train_substitute

    if is_substitute_spec(args.oracle):
        raise InputError(f"--oracle {args.oracle}: the oracle is the model under attack, not a substitute")
    config = SubstituteConfig(rounds=args.rounds, step=args.step, period=args.tau, epochs=args.epochs,
                              batch_size=args.batch_size, learning_rate=args.lr,
                              reservoir_after=args.reservoir_after, reservoir_size=args.reservoir_size,
                              seed=args.seed)
    workers = default_workers() if args.workers is None else args.workers
    if workers < 0:
        raise InputError(f"--workers must be 0 or more, got {workers}")
    check_worker_count(workers)
    device = resolve_device(args.device)
    with RunLock(args.out, "substitute"):
        classifier = load_classifier(args.oracle, weights=args.oracle_weights, device=device,
                                     offline=True if args.offline else None, labels=args.oracle_labels)
        images = index_image_set(images_from(args), classifier.labels, limit=args.limit)
        oracle = LabelOracle(classifier, args.oracle)
        del classifier  # from here on the oracle answers labels only
        summary = train_substitute(oracle, images, args.out, config, args.architecture, device, workers=workers,
                                   announce=lambda plan: print(plan, file=sys.stderr))
    record = summary.record
    if summary.already_finished:
        print(f"{args.out}: already finished ({record.architecture.name}, {len(record.rounds)} rounds, "
              f"{record.oracle_queries} oracle queries); nothing to do", file=sys.stderr)
    else:
        resumed = f" (resumed: {summary.steps_found} steps were done)" if summary.steps_found else ""
        print(f"trained {record.architecture.name} on {record.rounds[-1].points} points{resumed}: "
              f"{record.oracle_queries} oracle queries ({oracle.queries} in this run); agreement with the oracle "
              f"on its training set {record.rounds[-1].agreement:.3f}", file=sys.stderr)
        code = f"@{record.architecture.name}" if record.architecture.file_sha256 else ""
        print(f"use it with: --source-model {SUBSTITUTE_PREFIX}{args.out}{code}", file=sys.stderr)
    print(args.out / "substitute.json")
    return 0
