"""How many samples the EOT defaults need: the reason for physadv.catalog.EOT_SAMPLES and ADVERSARIALITY_SAMPLES.

(a) EOT gradient: BIM steps along the gradient's sign, so the question is how often the sign from N samples
    agrees with the sign of a 256-sample reference (per pixel), for N = 4 … 32.
(b) Adversariality: the spread (standard deviation over 5 held-out seeds) of the mean adversariality of a
    batch for n = 25 … 200 held-out transformations.

    python benchmarks/bench_eot_defaults.py                       # digits CNN (trained and cached on first use)
    python benchmarks/bench_eot_defaults.py --model efficientnet_lite0 --images 8
"""

from __future__ import annotations

import argparse
import statistics

import torch

from physadv.attacks import Attack
from physadv.classifiers import Classifier, load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.eot import TransformDistribution, adversariality, distribution, mean_gradient
from physadv.images import to_tensor

IMAGE_SETS = {"digits": "digits", "efficientnet_lite0": "samples"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits", choices=tuple(IMAGE_SETS))
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--distribution", default="photo")
    parser.add_argument("--eps", type=float, default=32.0)
    parser.add_argument("--only", choices=("gradient", "adversariality"), default=None, help="measure only (a) or (b)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classifier = load_classifier(args.model, device=torch.device("cpu"))
    images = prepare(load_image_set(IMAGE_SETS[args.model], classifier.labels, limit=args.images), classifier.image_size)
    x = to_tensor([i.image for i in images])
    y = torch.tensor([i.label for i in images])
    transforms = distribution(args.distribution)
    if args.only != "adversariality":
        sign_agreement(classifier, x, y, transforms, args)
    if args.only != "gradient":
        adversariality_spread(classifier, x, y, transforms, args)


def sign_agreement(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, transforms: TransformDistribution,
                   args: argparse.Namespace) -> None:
    reference = mean_gradient(classifier, x, y, transforms, transforms.sample(256, x.shape[1:], 10_000)).sign()
    print(f"{args.model}, {args.images} images, '{args.distribution}': EOT gradient sign agreement with 256 samples")
    for n in (4, 8, 16, 32):
        agreement = [float((mean_gradient(classifier, x, y, transforms, transforms.sample(n, x.shape[1:], seed))
                            .sign() == reference).float().mean()) for seed in range(3)]
        print(f"  {n:>3} samples: {statistics.mean(agreement):.3f}")


def adversariality_spread(classifier: Classifier, x: torch.Tensor, y: torch.Tensor,
                          transforms: TransformDistribution, args: argparse.Namespace) -> None:
    adversarial = Attack("bim", args.eps)(classifier, x, y).adversarial
    print(f"adversariality of BIM ε={args.eps:g}: mean over images, and its std over 5 held-out seeds")
    for n in (25, 50, 100, 200):
        means = [float(adversariality(classifier, adversarial, y, False, transforms, n, seed).mean())
                 for seed in range(5)]
        print(f"  n={n:>3}: mean {statistics.mean(means):.3f}, std {statistics.stdev(means):.4f}")


if __name__ == "__main__":
    main()
