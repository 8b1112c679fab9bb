"""physadv's Tables 1, 2 and 3 beside Kurakin et al. 2017's (arXiv:1607.02533v4), with n and 95 % intervals.

Reads the captures that ``bench_channel_ablation.py`` (or ``bench_profiles.py``-style runs with the same
layout) left in ``--work``: ``sheets/<attack>/manifest.json`` and ``configs/<config>/capture/<attack>/
predictions.csv`` for the six attacks (FGSM, BIM, LL at ε 16 and 8). Per attack row and case:

- Tables 1 (average case) and 2 (prefiltered case): top-1 and top-5 accuracy of the photos of the clean
  images, of the photos of the adversarial images, of the clean and the adversarial source images;
- Table 3: the destruction rate (Kurakin's eq. 1, :func:`physadv.metrics.destruction_rate`), top-1 and top-5.

The prefiltered case is Kurakin's (section 3.2): clean image right and adversarial image wrong in top-1
*and* top-5, both top-1 predictions with confidence ≥ 0.8 (physadv's own reports ask top-1 only). Each
figure is ``value [95 % Wilson interval] (k/n)``; the paper's is beside it (n = 102 images per row).

    python benchmarks/bench_kurakin_tables.py --work /tmp/bench_channel_ablation --config lab
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from physadv.capture.pipeline import digital_predictions
from physadv.classifiers import load_classifier
from physadv.metrics import (KURAKIN_ACCURACY, KURAKIN_DESTRUCTION, KURAKIN_DESTRUCTION_PREFILTERED, KURAKIN_IMAGES,
                             PREFILTER_CONFIDENCE, Predictions, destruction_rate, wilson_interval)
from physadv.printouts.manifest import read_manifest

ROWS = (("fgsm", 16), ("fgsm", 8), ("bim", 16), ("bim", 8), ("ll", 16), ("ll", 8))
NAMES = {"fgsm": "FGSM (fast)", "bim": "BIM (iter. basic)", "ll": "LL (l.l. class)"}


def cell(k: int, n: int) -> str:
    if n == 0:
        return "n/a (0/0)"
    low, high = wilson_interval(k, n)
    return f"{k / n:.2f} [{low:.2f}, {high:.2f}] ({k}/{n})"


def photographed(path: Path) -> dict[tuple[str, str], tuple[bool, bool]]:
    """(image id, kind) → (correct top-1, correct top-5) of its photographed crop (its first photo)."""
    seen: dict[tuple[str, str], tuple[bool, bool]] = {}
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = (row["image_id"], row["kind"])
            seen.setdefault(key, (row["correct_top1"] in ("1", "True", "true"), row["correct_top5"] in ("1", "True", "true")))
    return seen


def attack_rows(work: Path, config: str, method: str, eps: int, classifier) -> dict[str, dict]:
    name = f"{method}-eps{eps}"
    sheets = work / "sheets" / name
    manifest = read_manifest(sheets / "manifest.json")
    digital = digital_predictions(manifest, sheets, classifier)
    photos = photographed(work / "configs" / config / "capture" / name / "predictions.csv")
    labels_of = {cell.image_id: cell.label for _, cell in manifest.cells() if cell.label is not None}
    ids = [i for i in digital if i in labels_of and (i, "clean") in photos and (i, "adversarial") in photos]
    labels = np.array([labels_of[i] for i in ids])
    clean = Predictions(np.concatenate([digital[i][0].classes for i in ids]),
                        np.concatenate([digital[i][0].probabilities for i in ids]))
    adversarial = Predictions(np.concatenate([digital[i][1].classes for i in ids]),
                              np.concatenate([digital[i][1].probabilities for i in ids]))
    photo = {kind: np.array([photos[i, kind] for i in ids]).reshape(-1, 2) for kind in ("clean", "adversarial")}
    prefiltered = (clean.correct(labels, 1) & (clean.confidence >= PREFILTER_CONFIDENCE)
                   & ~adversarial.correct(labels, 5) & (adversarial.confidence >= PREFILTER_CONFIDENCE))
    out = {}
    for case, mask in (("average", np.ones(len(ids), bool)), ("prefiltered", prefiltered)):
        columns = {}
        for k, column in ((1, 0), (5, 1)):
            columns[f"photo clean top-{k}"] = photo["clean"][mask, column]
            columns[f"photo adv top-{k}"] = photo["adversarial"][mask, column]
            columns[f"source clean top-{k}"] = clean.correct(labels, k)[mask]
            columns[f"source adv top-{k}"] = adversarial.correct(labels, k)[mask]
            rate = destruction_rate(clean.correct(labels, k)[mask], adversarial.correct(labels, k)[mask],
                                    photo["adversarial"][mask, column])
            columns[f"destruction top-{k}"] = (rate.numerator, rate.n)
        out[case] = columns
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--config", default="lab", help="the configuration's folder name under WORK/configs")
    parser.add_argument("--model", default="efficientnet_lite0")
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    if not (args.work / "configs" / args.config).is_dir():
        sys.exit(f"{args.work / 'configs' / args.config}: no such configuration (run bench_channel_ablation.py first)")
    rows = {(m, e): attack_rows(args.work, args.config, m, e, classifier) for m, e in ROWS}
    print(f"{args.model} through {args.config}; Kurakin et al. 2017: Inception v3, Ricoh MP C5503 at 600 dpi, "
          f"Nexus 5X, {KURAKIN_IMAGES} images per row. physadv: value [95 % Wilson interval] (k/n).")
    for table, case in (("Table 1 (average case)", "average"), ("Table 2 (prefiltered case)", "prefiltered")):
        print(f"\n### {table}: accuracy\n")
        print("| attack | photos, clean top-1 | photos, clean top-5 | photos, adv. top-1 | photos, adv. top-5 "
              "| source, clean top-1 | source, adv. top-1 |")
        print("|---|---|---|---|---|---|---|")
        for (method, eps), result in rows.items():
            columns = result[case]
            paper = KURAKIN_ACCURACY[case][method, eps]
            figures = []
            for key, reference in (("photo clean top-1", paper[0][0]), ("photo clean top-5", paper[0][1]),
                                   ("photo adv top-1", paper[1][0]), ("photo adv top-5", paper[1][1]),
                                   ("source clean top-1", paper[2][0]), ("source adv top-1", paper[3][0])):
                values = columns[key]
                figures.append(f"{cell(int(values.sum()), len(values))} · paper {reference:.3f}")
            print(f"| {NAMES[method]} ε={eps} | " + " | ".join(figures) + " |")
    print("\n### Table 3: destruction rate\n")
    print("| attack | average top-1 | average top-5 | prefiltered top-1 | prefiltered top-5 |")
    print("|---|---|---|---|---|")
    for (method, eps), result in rows.items():
        figures = []
        for case, paper in (("average", KURAKIN_DESTRUCTION), ("prefiltered", KURAKIN_DESTRUCTION_PREFILTERED)):
            for k, index in ((1, 0), (5, 1)):
                numerator, n = result[case][f"destruction top-{k}"]
                figures.append(f"{cell(numerator, n)} · paper {paper[method, eps][index]:.3f}")
        print(f"| {NAMES[method]} ε={eps} | " + " | ".join(figures) + " |")


if __name__ == "__main__":
    main()
