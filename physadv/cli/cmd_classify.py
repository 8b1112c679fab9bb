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
                     "  physadv classify scene-photos/ --target toaster   # photos of real scenes with a printed patch\n"
                     "  torchrun --nproc-per-node 8 -m physadv classify val.csv --json   # README: Scaling out\n"
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
                        help="print one JSON object with keys top1, top5, n, images")
    parser.set_defaults(func=run)


def target_hits(predictions, target_probabilities, target: int, classifier) -> dict:
    """The target class's hit rate (top-1 = target) and mean probability over the images."""
    n = len(predictions.classes)
    hits = int((predictions.top1 == target).sum())
    return {"index": target, "name": classifier.labels.name(target), "n": n, "hits": hits,
            "hit_rate": hits / n if n else None,
            "mean_probability": float(target_probabilities.mean()) if n else None}


def target_line(hits: dict) -> str:
    from physadv.metrics import format_fraction

    mean = "n/a" if hits["mean_probability"] is None else f"{hits['mean_probability']:.3f}"
    return (f"target {hits['name']}: hit rate (top-1 = target) {format_fraction(hits['hit_rate'], hits['n'])}, "
            f"mean probability {mean}")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from physadv.cli.cmd_attack import resolve_target

    from physadv.datasets import batch_count, batch_slice, image_batches, index_image_set
    from physadv.images import to_tensor
    from physadv.jsonstream import write_json_with_list
    from physadv.metrics import Predictions, accuracy

    with classifier_and_shard(args) as (classifier, shard):
        target = resolve_target(classifier, args.target)
        images = index_image_set(images_from(args), classifier.labels, args.label, args.limit)
        numbers = list(range(batch_count(len(images), args.batch_size)))
        sizes = [len(batch_slice(n, len(images), args.batch_size)) for n in numbers]
        mine: list[tuple[int, Predictions, np.ndarray]] = []
        with shard.progress(total=len(images), desc="classifying", unit="img") as bar, shard.own_share():
            for amount, (number, pixels) in zip(shard.round_totals(sizes), image_batches(
                    images, classifier.image_size, args.batch_size, shard.mine(numbers), args.workers)):
                probabilities = classifier.probabilities(to_tensor(pixels.numpy(), classifier.device), len(pixels))
                chosen = probabilities[:, target].cpu().numpy() if target is not None else np.zeros(0)
                mine.append((number, Predictions.from_probabilities(probabilities), chosen))
                bar.update(amount)
        batches = sorted((batch for part in shard.gather(mine) for batch in part), key=lambda batch: batch[0])
        if not shard.is_main:
            return 0
    # Per image, only its top-5 (60 bytes), label and target probability are kept; the records are made
    # as they are printed.
    predictions = Predictions.concatenate([p for _, p, _ in batches])
    target_probabilities = np.concatenate([t for _, _, t in batches]) if target is not None else None
    labels = np.array([-1 if image.label is None else image.label for image in images])
    labelled = labels >= 0
    subset = predictions.subset(labelled)
    top1, top5 = accuracy(subset, labels[labelled], 1), accuracy(subset, labels[labelled], 5)

    hits = None if target is None else target_hits(predictions, target_probabilities, target, classifier)

    def records() -> Iterator[dict]:
        for k, (image, classes, probs) in enumerate(zip(images, predictions.classes, predictions.probabilities)):
            yield {"id": image.id, "source": image.source, "label": image.label,
                   "label_name": classifier.labels.name(image.label) if image.label is not None else None,
                   "top5": [{"index": int(c), "name": classifier.labels.name(int(c)), "probability": float(p)}
                            for c, p in zip(classes, probs)],
                   **({"target_probability": float(target_probabilities[k])} if hits is not None else {})}

    if args.json:
        write_json_with_list(sys.stdout, {"model": classifier.name, "top1": None if not top1.n else top1.value,
                                          "top5": None if not top5.n else top5.value, "n": top1.n,
                                          **({"target": hits} if hits is not None else {}), "images": []},
                             "images", records())
        return 0
    for record in records():
        guesses = ", ".join(f"{g['name']} {g['probability']:.2f}" for g in record["top5"])
        truth = f"  [true: {record['label_name']}]" if record["label"] is not None else ""
        chosen = f"  [{hits['name']}: {record['target_probability']:.2f}]" if hits is not None else ""
        print(f"{record['id']}: {guesses}{truth}{chosen}")
    if hits is not None:
        print(target_line(hits))
    if top1.n:
        print(f"top-1 accuracy {top1}   top-5 accuracy {top5}   ({classifier.name})")
    else:
        print("no labels known: name the class in the file/folder name or pass --label to get accuracy")
    return 0
