"""``physadv classify``: top-5 per image and, where labels are known, top-1/top-5 accuracy."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from physadv.cli.common import (
    add_data_options,
    add_images_argument,
    add_model_options,
    classifier_and_shard,
    images_from,
    positive_int,
)

if TYPE_CHECKING:
    from physadv.classify import TargetHits

ORDER = 10
HELP = "classify images (top-5 each; accuracy when labels are known)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n"
                     "  physadv classify samples\n"
                     "  physadv classify photos/ --model digits --json\n"
                     "  physadv classify cat.jpg --label 'tabby'\n"
                     "  physadv classify imagenet/val/ --limit 5000 --workers 8\n"
                     "  physadv classify scene-photos/ --target toaster   # photos of real scenes with a printed patch\n"
                     "  torchrun --nproc-per-node 8 -m physadv classify val.csv --json   # docs/how-to/scale-out.md\n"
                     "labels come from a WordNet id (n01440764) or class name in the file or folder name,\n"
                     "or from the label column of a CSV list `path,label`.")
    add_images_argument(parser)
    add_model_options(parser)
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="classify only the first N images")
    parser.add_argument("--target", metavar="CLASS",
                        help="report this class's probability per image and its hit rate (top-1 = CLASS): photos of "
                             "scenes with a printed adversarial patch (name, WordNet id or index)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    add_data_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with keys top1, top5, n, images (and target with --target)")
    parser.set_defaults(func=run)


def target_line(hits: TargetHits) -> str:
    from physadv.metrics import format_fraction

    mean = "n/a" if hits.mean_probability is None else f"{hits.mean_probability:.3f}"
    return (f"target {hits.name}: hit rate (top-1 = target) {format_fraction(hits.hit_rate, hits.n)}, "
            f"mean probability {mean}")


def run(args: argparse.Namespace) -> int:
    from physadv.classify import classify_images
    from physadv.datasets import index_image_set
    from physadv.jsonstream import write_json_with_list

    with classifier_and_shard(args) as (classifier, shard):
        target = classifier.labels.target(args.target)
        images = index_image_set(images_from(args), classifier.labels, args.label, args.limit)
        result = classify_images(classifier, images, batch_size=args.batch_size, shard=shard, workers=args.workers,
                                 target=target)
        if result is None:  # another rank than 0: rank 0 prints
            return 0
    top1, top5, hits = result.top1, result.top5, result.target
    if args.json:
        write_json_with_list(sys.stdout, {"model": result.model, "top1": None if not top1.n else top1.value,
                                          "top5": None if not top5.n else top5.value, "n": top1.n,
                                          **({"target": hits.to_json()} if hits is not None else {}), "images": []},
                             "images", result.records())
        return 0
    for record in result.records():
        guesses = ", ".join(f"{g['name']} {g['probability']:.2f}" for g in record["top5"])
        truth = f"  [true: {record['label_name']}]" if record["label"] is not None else ""
        chosen = f"  [{hits.name}: {record['target_probability']:.2f}]" if hits is not None else ""
        print(f"{record['id']}: {guesses}{truth}{chosen}")
    if hits is not None:
        print(target_line(hits))
    if top1.n:
        print(f"top-1 accuracy {top1}   top-5 accuracy {top5}   ({result.model})")
    else:
        print("no labels known: name the class in the file/folder name or pass --label to get accuracy")
    return 0
