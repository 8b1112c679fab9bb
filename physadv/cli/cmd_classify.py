"""``physadv classify``: top-5 per image and, where labels are known, top-1/top-5 accuracy."""

from __future__ import annotations

import argparse

from physadv.cli.common import add_images_argument, add_model_options, classifier_from_args, images_from, print_json

ORDER = 10
HELP = "classify images (top-5 each; accuracy when labels are known)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("examples:\n"
                     "  physadv classify samples\n"
                     "  physadv classify photos/ --model digits --json\n"
                     "  physadv classify cat.jpg --label 'tabby'\n"
                     "labels come from a WordNet id (n01440764) or class name in the file or folder name.")
    add_images_argument(parser)
    add_model_options(parser)
    parser.add_argument("--label", help="class of every image (name, WordNet id or index)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with keys top1, top5, n, images")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from physadv.datasets import load_image_set, prepare
    from physadv.images import to_tensor
    from physadv.metrics import Predictions, accuracy

    classifier = classifier_from_args(args)
    images = prepare(load_image_set(images_from(args), classifier.labels, args.label), classifier.image_size)
    probabilities = classifier.probabilities(to_tensor([i.image for i in images]), args.batch_size)
    predictions = Predictions.from_probabilities(probabilities)
    labelled = [n for n, i in enumerate(images) if i.label is not None]
    labels = [images[n].label for n in labelled]
    subset = predictions.subset(labelled)
    top1, top5 = accuracy(subset, labels, 1), accuracy(subset, labels, 5)
    records = []
    for image, classes, probs in zip(images, predictions.classes, predictions.probabilities):
        records.append({
            "id": image.id, "source": image.source, "label": image.label,
            "label_name": classifier.labels.name(image.label) if image.label is not None else None,
            "top5": [{"index": int(c), "name": classifier.labels.name(int(c)), "probability": float(p)}
                     for c, p in zip(classes, probs)]})
    if args.json:
        print_json({"model": classifier.name, "top1": None if not top1.n else top1.value,
                    "top5": None if not top5.n else top5.value, "n": top1.n, "images": records})
        return 0
    for record in records:
        guesses = ", ".join(f"{g['name']} {g['probability']:.2f}" for g in record["top5"])
        truth = f"  [true: {record['label_name']}]" if record["label"] is not None else ""
        print(f"{record['id']}: {guesses}{truth}")
    if top1.n:
        print(f"top-1 accuracy {top1}   top-5 accuracy {top5}   ({classifier.name})")
    else:
        print("no labels known: name the class in the file/folder name or pass --label to get accuracy")
    return 0
