"""Channel severity and destruction rates per camera profile, on the ImageNet sample.

For each built-in camera profile (``lab``, ``handheld``, ``webcam``): attack ``--limit`` images of
``../shared/data/imagenet-sample`` with FGSM, BIM and LL at ε = 8 and 16 (the attacks are computed
once and shared by every profile), print them (A4, 2×3, clean beside adversarial), take one
virtual photo per page through the profile, capture, and print:

- the channel severity: top-1/top-5 on the photos of the clean images against the digital clean
  images, the drop in points and n, beside Kurakin et al. 2017's anchor;
- the average-case top-1 destruction rate of every attack, beside Kurakin et al. 2017 Table 3.

    python benchmarks/bench_profiles.py --limit 96 --work /tmp/bench_profiles [--profiles lab]
    python benchmarks/bench_profiles.py --attacks-only ...   # only the (slow) attack stage
    python benchmarks/bench_profiles.py --calibrate-timing   # seconds per 12-MP photo of `physadv calibrate`
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from physadv.attacks import Attack
from physadv.attackset import attack_to_folder
from physadv.classifiers import load_classifier
from physadv.datasets import load_image_set, prepare

ATTACKS = (("fgsm", 8), ("fgsm", 16), ("bim", 8), ("bim", 16), ("ll", 8), ("ll", 16))
ITERATIVE = {"bim", "ll"}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def attack_all(work: Path, limit: int, iterative_limit: int, classifier) -> dict[str, Path]:
    """Attack folders by name; the iterative methods (10-20 gradient steps each) on the first
    ``iterative_limit`` images only, because on a shared 2-core CPU they take ~1 s per image and step."""
    images = prepare(load_image_set([str(DATA)], classifier.labels, None, limit), classifier.image_size)
    folders = {}
    for method, eps in ATTACKS:
        name = f"{method}-eps{eps}"
        folders[name] = work / "attacks" / name
        chosen = images[:iterative_limit] if method in ITERATIVE else images
        attack_to_folder(classifier, Attack(method, eps), chosen, folders[name], batch_size=16, progress=True)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_profiles"))
    parser.add_argument("--iterative-limit", type=int, default=24, help="images for BIM and LL")
    parser.add_argument("--profiles", default="lab,handheld,webcam")
    parser.add_argument("--attacks-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    classifier = load_classifier("efficientnet_lite0")
    started = time.perf_counter()
    folders = attack_all(args.work, args.limit, args.iterative_limit, classifier)
    print(f"attacks: {time.perf_counter() - started:.0f} s", flush=True)
    if args.attacks_only:
        return


if __name__ == "__main__":
    main()
