"""``physadv classify``: top-5 per image and, where labels are known, top-1/top-5 accuracy."""

from __future__ import annotations

import argparse
import sys
from typing import Iterator

from physadv.cli.common import (
    add_data_options,
    add_images_argument,
    add_model_options,
    classifier_and_shard,
    images_from,
    positive_int,
)

ORDER = 10
HELP = "classify images (top-5 each; accuracy when labels are known)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n"
                     "  physadv classify samples\n"
                     "  physadv classify photos/ --model digits --json\n"
                     "  physadv classify cat.jpg --label 'tabby'\n"
                     "  physadv classify imagenet/val/ --limit 5000 --workers 8\n"
                     "  torchrun --nproc-per-node 8 -m physadv classify val.csv --json   # docs/how-to/scale-out.md\n"
                     "labels come from a WordNet id (n01440764) or class name in the file or folder name,\n"
                     "or from the label column of a CSV list `path,label`.")
    add_images_argument(parser)
    add_model_options(parser)
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--limit", type=positive_int, default=None, help="classify only the first N images")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images per forward pass")
    add_data_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with keys top1, top5, n, images")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from physadv.datasets import batch_count, batch_slice, image_batches, index_image_set
    from physadv.images import to_tensor
    from physadv.jsonstream import write_json_with_list
    from physadv.metrics import Predictions, accuracy

    with classifier_and_shard(args) as (classifier, shard):
        images = index_image_set(images_from(args), classifier.labels, args.label, args.limit)
        numbers = list(range(batch_count(len(images), args.batch_size)))
        sizes = [len(batch_slice(n, len(images), args.batch_size)) for n in numbers]
        mine: list[tuple[int, Predictions]] = []
        with shard.progress(total=len(images), desc="classifying", unit="img") as bar, shard.own_share():
            for amount, (number, pixels) in zip(shard.round_totals(sizes), image_batches(
                    images, classifier.image_size, args.batch_size, shard.mine(numbers), args.workers)):
                probabilities = classifier.probabilities(to_tensor(pixels.numpy(), classifier.device), len(pixels))
                mine.append((number, Predictions.from_probabilities(probabilities)))
                bar.update(amount)
        batches = sorted((batch for part in shard.gather(mine) for batch in part), key=lambda batch: batch[0])
        if not shard.is_main:
            return 0
    # Per image, only its top-5 (60 bytes) and label are kept; the records are made as they are printed.
    predictions = Predictions.concatenate([p for _, p in batches])
    labels = np.array([-1 if image.label is None else image.label for image in images])
    labelled = labels >= 0
    subset = predictions.subset(labelled)
    top1, top5 = accuracy(subset, labels[labelled], 1), accuracy(subset, labels[labelled], 5)

    def records() -> Iterator[dict]:
        for image, classes, probs in zip(images, predictions.classes, predictions.probabilities):
            yield {"id": image.id, "source": image.source, "label": image.label,
                   "label_name": classifier.labels.name(image.label) if image.label is not None else None,
                   "top5": [{"index": int(c), "name": classifier.labels.name(int(c)), "probability": float(p)}
                            for c, p in zip(classes, probs)]}

    if args.json:
        write_json_with_list(sys.stdout, {"model": classifier.name, "top1": None if not top1.n else top1.value,
                                          "top5": None if not top5.n else top5.value, "n": top1.n, "images": []},
                             "images", records())
        return 0
    for record in records():
        guesses = ", ".join(f"{g['name']} {g['probability']:.2f}" for g in record["top5"])
        truth = f"  [true: {record['label_name']}]" if record["label"] is not None else ""
        print(f"{record['id']}: {guesses}{truth}")
    if top1.n:
        print(f"top-1 accuracy {top1}   top-5 accuracy {top5}   ({classifier.name})")
    else:
        print("no labels known: name the class in the file/folder name or pass --label to get accuracy")
    return 0
