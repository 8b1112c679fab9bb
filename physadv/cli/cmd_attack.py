"""``physadv attack``: write clean and adversarial 8-bit PNGs plus ``attack.json``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from physadv.catalog import DISTRIBUTION_NAMES, EOT_SAMPLES, METHODS
from physadv.cli.common import (
    add_data_options,
    add_images_argument,
    add_model_options,
    eot_spec,
    add_seed_option,
    classifier_and_shard,
    images_from,
    output_dir,
    positive_int,
    sources_from_args,
)
from physadv.errors import InputError

if TYPE_CHECKING:
    from physadv.attacks import Attack

ORDER = 20
HELP = "attack images with FGSM, BIM, least-likely class or a target class"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  physadv attack samples --method bim --eps 16 --out adv/\n"
        "  physadv attack photos/ --method target --target 'goldfish' --eps 8 --out adv-gold/\n"
        "  physadv attack digits --model digits --method fgsm --eps 32 --limit 40 --out adv-digits/\n"
        "  physadv attack samples --method bim --eps 16 --eot photo --eot-samples 16 --out adv-eot/\n"
        "  physadv attack samples --method bim --eps 16 --eot profile:my-phone.toml --out adv-mine/\n"
        "  physadv attack samples --model efficientnet_lite2 --source-model efficientnet_lite0,efficientnet_lite1 \\\n"
        "      --method bim --eps 16 --out adv-transfer/   # crafted on the ensemble, evaluated on Lite2\n"
        "writes OUT/clean/*.png and OUT/adv/*.png (8-bit, at the size they will be printed) and\n"
        "OUT/attack.json. eps and alpha are in 0-255 pixel units, as in Kurakin et al. (2017);\n"
        "iterations default to ceil(min(eps + 4, 1.25 eps)). An interrupted run resumes when re-run.\n"
        "across GPUs: torchrun --nproc-per-node 8 -m physadv attack val.csv ... (docs/how-to/scale-out.md)")
    add_images_argument(parser)
    add_model_options(parser)
    add_attack_options(parser)
    parser.add_argument("--eps", type=float, default=16.0, help="L∞ budget ε in 0-255 pixel units")
    parser.add_argument("--method", choices=METHODS, default="bim",
                        help="fgsm, bim (basic iterative), ll (iterative least-likely class), target")
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="attack only the first N images")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder")
    add_data_options(parser)
    add_seed_option(parser)
    parser.set_defaults(func=run)


def add_attack_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``attack`` and ``experiment``."""
    parser.add_argument("--alpha", type=float, default=1.0, help="step size α of the iterative methods (0-255 units)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="iterations of the iterative methods (default ceil(min(eps + 4, 1.25 eps)))")
    parser.add_argument("--target", help="target class of --method target (name, WordNet id or index)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images attacked at once")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA (ignored on CPU)")
    parser.add_argument("--eot", metavar="DISTRIBUTION", type=eot_spec,
                        help="expectation over transformation: follow the mean gradient over transformations "
                             f"drawn from this distribution ({', '.join(sorted(DISTRIBUTION_NAMES))}, or "
                             "profile:NAME|FILE.toml for a camera profile's calibrated channel)")
    parser.add_argument("--eot-samples", type=int, default=EOT_SAMPLES, help="transformations averaged per EOT step")
    parser.add_argument("--eot-chunk", type=int, default=None,
                        help="images × samples per forward pass (default: by device; see benchmarks/bench_eot.py)")
    parser.add_argument("--source-model", metavar="A[,B,...]", default=None,
                        help="transfer attack (black box): craft on this model, or on the ensemble of these "
                             "(averaged losses), and evaluate on --model; same model forms as --model, or "
                             "substitute:DIR, a substitute of --model trained from its labels (physadv substitute)")
    parser.add_argument("--source-weights", metavar="W[,W2,...]", default=None,
                        help="weights files of the --source-model models, in the same order")


def eot_variant(attack: Attack, args: argparse.Namespace) -> tuple[Attack, dict]:
    """``attack`` with the EOT gradient of ``--eot`` (named e.g. ``bim+eot``) and its record."""
    from physadv.capture.calibrate import resolve_distribution
    from physadv.eot import eot_gradient

    gradient = eot_gradient(resolve_distribution(args.eot), args.eot_samples, args.eot_chunk, args.seed)
    return (attack.with_gradient(gradient, eot=args.eot),
            {"distribution": args.eot, "samples": args.eot_samples})


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from physadv.attacks import Attack
    from physadv.attackset import RECORD_FILE, attack_to_folder, check_attack_inputs
    from physadv.capture.calibrate import check_distribution
    from physadv.datasets import index_image_set
    from physadv.lab.session import attack_name
    from physadv.lab.store import RunStore

    check_distribution(args.eot)  # a profile:FILE that is missing or invalid fails before anything is written
    with ExitStack() as stack:
        attack = Attack(args.method, args.eps, args.alpha, args.iterations, amp=args.amp)
        # Rank 0 holds the run (a second attack on OUT is refused at once).
        classifier, shard = stack.enter_context(classifier_and_shard(args, lock="attack"))
        sources = sources_from_args(args, classifier)
        target = classifier.labels.target(args.target)
        if attack.goal.needs_target and target is None:
            raise InputError("--method target needs --target CLASS")
        images = index_image_set(images_from(args), classifier.labels, args.label, args.limit)
        eot: dict = {}
        if args.eot:
            attack, eot = eot_variant(attack, args)
        check_attack_inputs(attack, images, target, args.batch_size, crafting=sources or [classifier])
        # The output folder is a run of its own: its store records this attack, and `physadv print` and
        # `physadv capture` of it add their results, so `physadv status/report/evaluate OUT` work.
        store = shard.agree(lambda: stack.enter_context(RunStore(args.out)), share=False)
        summary = attack_to_folder(classifier, attack, images, args.out, target=target,
                                   batch_size=args.batch_size, seed=args.seed, eot=eot, label=args.label,
                                   workers=args.workers, shard=shard, sources=sources)
        if store is None:
            return 0
        weights_sha256 = store.record_model(classifier.name, classifier.weights)
        store.record_attack(attack_name(attack.label, attack.eps), args.out, weights_sha256, eot)
    print(f"{attack.label} ε={attack.eps:g} ({attack.steps} iterations) on {classifier.name}"
          f"{' (crafted on ' + summary.settings.source_model + ')' if sources else ''}: "
          f"{summary.succeeded}/{summary.images} adversarial images reach their goal; "
          f"8-bit rounding undid {summary.quantisation_undid} attack(s).", file=sys.stderr)
    print(args.out / RECORD_FILE)
    return 0
