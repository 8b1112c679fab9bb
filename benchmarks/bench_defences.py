"""The digits defence table (a benchmark, not a test): every defence of ``physadv train-defence``
trained from the cached digits CNN, then ``compare-models`` on the held-out digits: clean accuracy,
white-box BIM ("PGD") accuracy, transfer accuracy from the undefended model, accuracy on virtual
photos of the adversarial images and the photo destruction rate.

    python benchmarks/bench_defences.py --out /tmp/bench-defences --limit 60
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from physadv.classifiers import load_classifier
from physadv.defences import DefenceConfig, save_checkpoint, train_defence, training_images
from physadv.lab.model_comparison import ModelRef, compare_models, format_comparison
from physadv.lab.session import AttackPlan, SessionConfig

DEFENCES = {
    "fgsm-rs": DefenceConfig("fgsm-rs", eps=16, epochs=1, lr=3e-3),
    "pgd": DefenceConfig("pgd", eps=16, epochs=1, steps=3, lr=3e-3),
    "eot": DefenceConfig("eot", eps=16, epochs=1, lr=3e-3, distribution="photo"),
    "distill": DefenceConfig("distill", epochs=4, lr=1e-2, temperature=100, batch_size=32),
    "gradreg": DefenceConfig("gradreg", epochs=1, lr=3e-3, gradreg_weight=1.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=60, help="held-out digits evaluated")
    parser.add_argument("--train-limit", type=int, default=None, help="training digits (default: all 1347)")
    parser.add_argument("--eps", type=float, nargs="+", default=[16.0, 32.0])
    args = parser.parse_args()
    refs = [ModelRef("digits")]
    for name, config in DEFENCES.items():
        path = args.out / f"digits-{name}.pt"
        if not path.is_file():
            classifier = load_classifier("digits")
            images, labels = training_images("digits", classifier, limit=args.train_limit if name != "distill" else 400)
            started = time.perf_counter()
            train_defence(classifier, images, labels, config, progress=False)
            print(f"{name}: trained in {time.perf_counter() - started:.0f} s ({len(images)} images, {config})", flush=True)
            save_checkpoint(classifier, path, config, "digits")
        refs.append(ModelRef("digits", str(path)))
    session = SessionConfig(images=("digits",), limit=args.limit, attacks=tuple(AttackPlan("bim", e) for e in args.eps),
                            transforms={}, photos_per_page=1, resolution="720p", adversariality_samples=20)
    rows = compare_models(refs, args.out / "comparison", session, torch.device("cpu"), progress=False)
    print(format_comparison(rows))


if __name__ == "__main__":
    main()
