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
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from physadv.attacks import Attack
from physadv.attackset import attack_to_folder
from physadv.classifiers import load_classifier
from physadv.capture.pipeline import capture_folder
from physadv.datasets import index_image_set
from physadv.metrics import KURAKIN_DESTRUCTION, format_fraction, severity_lines
from physadv.printouts.camera import photograph
from physadv.printouts.manifest import read_manifest
from physadv.printouts.sheets import print_attack_set

ATTACKS = (("fgsm", 8), ("fgsm", 16), ("bim", 8), ("bim", 16), ("ll", 8), ("ll", 16))
ITERATIVE = {"bim", "ll"}
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def attack_all(work: Path, limit: int, iterative_limit: int, classifier) -> dict[str, Path]:
    """Attack folders by name; the iterative methods (10-20 gradient steps each) on the first
    ``iterative_limit`` images only, because on a shared 2-core CPU they take ~1 s per image and step."""
    images = index_image_set([str(DATA)], classifier.labels, None, limit)
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
    sheets = {name: print_sheets(folder, args.work / "sheets" / name) for name, folder in folders.items()}
    for profile in args.profiles.split(","):
        started = time.perf_counter()
        results = {name: photograph_and_capture(args.work / profile, name, sheets[name], profile, classifier)
                   for name in folders}
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"\nprofile {profile} ({time.perf_counter() - started:.0f} s, one photo per page; load average {load})")
        report(results)


def print_sheets(attack_dir: Path, out: Path) -> Path:
    if not (out / "manifest.json").is_file():
        print_attack_set(attack_dir, out)
    return out


def photograph_and_capture(work: Path, name: str, sheets: Path, profile: str, classifier) -> dict:
    manifest = read_manifest(sheets / "manifest.json")
    photos = work / "photos" / name
    photograph(sheets / "sheets.pdf", manifest, photos, len(manifest.pages), seed=0, profile=profile, progress=True)
    out = work / "capture" / name
    capture_folder(photos, sheets / "manifest.json", classifier, out, progress=True)
    return json.loads((out / "results.json").read_text())


def report(results: dict[str, dict]) -> None:
    first = results["fgsm-eps8"]
    severity = first["channel_severity"]
    print(f"channel severity on the {severity['n']} clean images of the fgsm-eps8 sheets (one photo per page):")
    for line in severity_lines(severity):
        print("  " + line)
    pooled = [r["photo_clean"] for r in results.values()]
    n = sum(c["n"] for c in pooled)
    digital = sum(c["digital_top1"] * c["n"] for c in pooled) / n
    photo = sum(c["top1"] * c["n"] for c in pooled) / n
    print(f"  pooled over every sheet: top-1 {digital:.3f} → {photo:.3f} ({100 * (photo - digital):+.1f} points, "
          f"n={n} observations)")
    print(f"  rejected photos: {sum(r['rejections'] for r in results.values())} of "
          f"{sum(r['photos'] for r in results.values())}")
    print("| attack | ε | images | photo top-1 (adv.) | destruction top-1, average | destruction top-5, average "
          "| Kurakin et al. 2017 Table 3 (top-1 / top-5) |")
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        for row in result["rows"]:
            if row["case"] != "average":
                continue
            print(f"| {row['method']} | {row['eps']:g} | {row['n_images']} | {format_fraction(row['top1_transformed'])} "
                  f"| {format_fraction(row['destruction_top1'], row['destruction_top1_n'])} "
                  f"| {format_fraction(row['destruction_top5'], row['destruction_top5_n'])} "
                  f"| {'{:.3f} / {:.3f}'.format(*KURAKIN_DESTRUCTION[row['method'], int(row['eps'])])} |")


if __name__ == "__main__":
    main()
