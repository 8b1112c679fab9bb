"""Throughput of physadv's EOT-BIM against torchattacks.EOTPGD, side by side (a benchmark, not a test).

Both attack the same classifier on the same images with the same transformation distribution, number
of samples, ε, α and iterations; torchattacks sees the distribution as a model that draws fresh
transformations at every call, which is how its EOT is meant to be used. Repeats alternate between
the two so that load on the machine hits both alike; the best of the repeats is reported.
Needs torchattacks: ``pip install -e '.[bench]'``.

    python benchmarks/bench_eot.py                  # CPU, and CUDA when available
    python benchmarks/bench_eot.py --sweep          # also images×samples/s per chunk size
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch
import torchattacks
from torch import nn

from physadv.attacks import Attack
from physadv.classifiers import Classifier, load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.eot import TransformDistribution, default_chunk_size, derive_seed, distribution, eot_gradient
from physadv.images import to_tensor

IMAGE_SETS = {"digits": "digits", "efficientnet_lite0": "samples"}


class Resampled(nn.Module):
    """The classifier behind a fresh draw of transformations at every call."""

    def __init__(self, classifier: Classifier, transforms: TransformDistribution) -> None:
        super().__init__()
        self.classifier, self.transforms, self.calls = classifier, transforms, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        transformations = self.transforms.sample(len(images), images.shape[1:], derive_seed("bench", self.calls))
        self.calls += 1
        return self.classifier(self.transforms(images, transformations.to(images.device).params))


def _images(classifier: Classifier, model: str, count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    items = prepare(load_image_set(IMAGE_SETS[model], classifier.labels), classifier.image_size)
    items = list(itertools.islice(itertools.cycle(items), count))
    return to_tensor([i.image for i in items], device), torch.tensor([i.label for i in items], device=device)


def _seconds(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(IMAGE_SETS), choices=list(IMAGE_SETS))
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--distribution", default="photo")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--eps", type=float, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None, help="physadv's chunk (default: per device)")
    parser.add_argument("--sweep", nargs="*", type=int, default=None, metavar="CHUNK",
                        help="also time physadv at these chunk sizes (default 8 16 32 64 128 256)")
    args = parser.parse_args()

    transforms = distribution(args.distribution)
    print(f"EOT-BIM, {args.distribution}: {args.images} images × {args.samples} samples × {args.iterations} "
          f"iterations, ε={args.eps:g}, α=1 (0–255 units); best of {args.repeats}; torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'model':<20}{'device':<8}{'chunk':>6}{'physadv img/s':>15}{'torchattacks img/s':>20}{'ratio':>8}")
    sweeps = []
    for model, device_name in itertools.product(args.models, args.devices):
        device = torch.device(device_name)
        classifier = load_classifier(model).to(device)
        images, labels = _images(classifier, model, args.images, device)
        chunk = args.chunk_size or default_chunk_size(device, images.shape)
        bim = Attack("bim", eps=args.eps, alpha=1, iterations=args.iterations)

        def physadv_run(chunk_size: int = chunk) -> None:
            bim.with_gradient(eot_gradient(transforms, args.samples, chunk_size), eot="custom")(classifier, images, labels)

        reference = torchattacks.EOTPGD(Resampled(classifier, transforms), eps=args.eps / 255, alpha=1 / 255,
                                        steps=args.iterations, eot_iter=args.samples, random_start=False)
        physadv_run(), reference(images, labels)  # warm-up: lazy init, allocator, cuDNN autotuning
        times = {"physadv": [], "torchattacks": []}
        for _ in range(args.repeats):
            times["physadv"].append(_seconds(physadv_run, device))
            times["torchattacks"].append(_seconds(lambda: reference(images, labels), device))
        ours, theirs = (args.images / min(times[k]) for k in ("physadv", "torchattacks"))
        print(f"{model:<20}{device_name:<8}{chunk:>6}{ours:>15.2f}{theirs:>20.2f}{ours / theirs:>7.2f}×")
        if args.sweep is not None:
            for size in args.sweep or [8, 16, 32, 64, 128, 256]:
                seconds = min(_seconds(lambda: physadv_run(size), device) for _ in range(args.repeats))
                rate = args.images * args.samples * args.iterations / seconds
                sweeps.append(f"{model:<20}{device_name:<8}{size:>6}{rate:>24.1f}")
    if sweeps:
        print(f"\nchunk-size sweep (physadv EOT-BIM)\n{'model':<20}{'device':<8}{'chunk':>6}"
              f"{'transformed img/s':>24}")
        print("\n".join(sweeps))


if __name__ == "__main__":
    main()
