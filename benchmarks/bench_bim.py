"""BIM throughput: physadv vs torchattacks.BIM vs a bare forward+backward loop (the physical limit).

All three run the same model, batch, ε, α and number of iterations, interleaved in one process, so
the ratios compare like with like. Not a test: run it by hand, on CPU and on a GPU when you have one.
Needs torchattacks: ``pip install -e '.[bench]'``.

    python benchmarks/bench_bim.py --model efficientnet_lite0 --batch 8 --repeats 6
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from physadv.attacks import Attack
from physadv.classifiers import load_classifier
from physadv.datasets import load_image_set, prepare
from physadv.images import to_tensor


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(classifier, images, labels, iterations):
    for _ in range(iterations):
        x = images.detach().requires_grad_(True)
        loss = F.cross_entropy(classifier(x), labels, reduction="sum")
        torch.autograd.grad(loss, x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eps", type=float, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    import torchattacks

    device = torch.device(args.device)
    classifier = load_classifier(args.model, device=device)
    pool = prepare(load_image_set("digits" if args.model == "digits" else "samples", classifier.labels),
                   classifier.image_size)
    images = to_tensor([pool[i % len(pool)].image for i in range(args.batch)], device)
    labels = torch.tensor([pool[i % len(pool)].label for i in range(args.batch)], device=device)
    attack = Attack("bim", args.eps)
    iterations = attack.steps
    theirs = torchattacks.BIM(classifier, eps=args.eps / 255, alpha=1 / 255, steps=iterations)
    contenders = {
        "bare forward+backward": lambda: bare_loop(classifier, images, labels, iterations),
        "physadv BIM": lambda: attack(classifier, images, labels),
        "torchattacks.BIM": lambda: theirs(images, labels),
    }
    for run in contenders.values():  # warm-up (allocator, cudnn autotuning, lazy imports)
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(args.repeats):
        # Rotate the order so that no contender always runs first (or right after another) in a round.
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            run = contenders[name]
            synchronise(device)
            start = time.perf_counter()
            run()
            synchronise(device)
            times[name].append(time.perf_counter() - start)
    bare = min(times["bare forward+backward"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"BIM ε={args.eps:g}, {iterations} iterations, batch {args.batch}, {args.model}, {name}, "
          f"best of {args.repeats} (load on the machine only ever adds time)")
    print(f"{'':<24}{'images/s':>10}{'ms/iter':>10}{'vs bare':>9}")
    for contender, samples in times.items():
        seconds = min(samples)
        print(f"{contender:<24}{args.batch / seconds:>10.1f}{1000 * seconds / iterations:>10.1f}{bare / seconds:>9.2f}")
    ratio = min(times["torchattacks.BIM"]) / min(times["physadv BIM"])
    print(f"physadv is {ratio:.2f}× torchattacks' speed")


if __name__ == "__main__":
    main()
