"""What each effect of the print engine and the phone's pipeline does to Kurakin et al.'s measurements.

On a fixed image set (the first ``--limit`` images of ``../shared/data/imagenet-sample``), attacks every
image with FGSM, BIM and LL at ε 8 and 16 (once; shared by every configuration), prints the sheets (A4,
2×3, each clean image beside its adversarial twin), and for each configuration of the ``lab`` camera
takes one virtual photo per page (seed 0: the same poses, light and noise draws in every configuration),
captures it and records:

- the clean change: top-1 (and top-5) of the photographed clean cells minus that of the same digital
  images, pooled over the six attacks' sheets, in points (negative: a drop);
- the average-case top-1 destruction rate of each attack (Kurakin's eq. 1) with its n.

Configurations: ``before`` (no print engine, no phone pipeline: the camera before issue 22), ``lab``
(everything on) and ``lab`` without one effect at a time (``physadv.printouts.profiles.EFFECTS``; lab's tone
curve is the identity, so it is not ablated). Results go to ``WORK/ablation.json`` after every
configuration; a rerun with the same ``--work`` reuses attacks, sheets, photos and captures.

    python benchmarks/bench_channel_ablation.py --limit 48 --work /tmp/ablation [--configs before,lab,...]
    python benchmarks/bench_kurakin_tables.py --work /tmp/ablation --config lab   # Tables 1-3 side by side
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_profiles import attack_all  # noqa: E402

from physadv.capture.pipeline import capture_folder  # noqa: E402
from physadv.classifiers import load_classifier  # noqa: E402
from physadv.fileio import atomic_write_json  # noqa: E402
from physadv.metrics import KURAKIN_CLEAN_DROP_POINTS, KURAKIN_DESTRUCTION  # noqa: E402
from physadv.printouts.camera import photograph  # noqa: E402
from physadv.printouts.manifest import read_manifest  # noqa: E402
from physadv.printouts.profiles import EFFECTS, CameraProfile, load_profile, without_effects  # noqa: E402
from physadv.printouts.sheets import SheetLayout, print_attack_set  # noqa: E402

ABLATED = [name for name in EFFECTS if name != "tone-curve"]


def configurations(names: list[str]) -> dict[str, CameraProfile]:
    lab = load_profile("lab")
    every = {"before": without_effects(lab, ["print engine", "phone pipeline"]), "lab": lab,
             **{f"lab without {name}": without_effects(lab, [name]) for name in ABLATED}}
    unknown = [name for name in names if name not in every]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    return {name: every[name] for name in names}


def photograph_and_capture(work: Path, sheets: dict[str, Path], profile: CameraProfile, classifier) -> dict:
    results = {}
    for name, folder in sheets.items():
        manifest = read_manifest(folder / "manifest.json")
        photos = work / "photos" / name
        photograph(folder / "sheets.pdf", manifest, photos, len(manifest.pages), seed=0, profile=profile)
        capture_folder(photos, folder / "manifest.json", classifier, work / "capture" / name, progress=False)
        results[name] = json.loads((work / "capture" / name / "results.json").read_text())
    return results


def summary(results: dict[str, dict]) -> dict:
    """Pooled clean drop and the average-case destruction rates of one configuration."""
    pooled = [r["photo_clean"] for r in results.values() if r["photo_clean"]["n"]]
    n = sum(c["n"] for c in pooled)
    change = {k: 100 * sum((c[k] - c[f"digital_{k}"]) * c["n"] for c in pooled) / n for k in ("top1", "top5")}
    rows = {}
    for result in results.values():
        for row in result["rows"]:
            if row["case"] == "average":
                rows[f"{row['method']}-eps{row['eps']:g}"] = {
                    "top1": row["destruction_top1"], "n_top1": row["destruction_top1_n"],
                    "top5": row["destruction_top5"], "n_top5": row["destruction_top5_n"]}
    return {"clean_n": n, "clean_change_top1": change["top1"], "clean_change_top5": change["top5"], "destruction": rows,
            "rejected_photos": sum(r["rejections"] for r in results.values()),
            "photos": sum(r["photos"] for r in results.values())}


def print_table(table: dict[str, dict]) -> None:
    attacks = [f"{m}-eps{e}" for m in ("fgsm", "bim", "ll") for e in (8, 16)]
    print("| configuration | clean top-1, photo − digital (points) | "
          + " | ".join(a.replace("-eps", " ε").upper().replace(" Ε", " ε") for a in attacks) + " |")
    print("|---|---|" + "---|" * len(attacks))
    for name, s in table.items():
        cells = []
        for attack in attacks:
            row = s["destruction"].get(attack)
            cells.append("n/a" if row is None or row["top1"] is None else f"{row['top1']:.2f} (n={row['n_top1']})")
        print(f"| {name} | {s['clean_change_top1']:+.1f} (n={s['clean_n']}) | " + " | ".join(cells) + " |")
    paper = " | ".join(f"{KURAKIN_DESTRUCTION[m, e][0]:.2f}" for m in ("fgsm", "bim", "ll") for e in (8, 16))
    print(f"| Kurakin et al. 2017 (Inception v3) | {KURAKIN_CLEAN_DROP_POINTS['top1']:+.1f} | {paper} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=48, help="images of the fixed set (every attack on all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_channel_ablation"))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--configs", default=",".join(["before", "lab", *(f"lab without {n}" for n in ABLATED)]))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rows", type=int, default=3, help="rows of cells per A4 sheet (2 columns); 2 for "
                        "models whose images do not fit 3 rows at 96 dpi (EfficientNet-Lite2's 260 px)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chosen = configurations([c.strip() for c in args.configs.split(",") if c.strip()])
    classifier = load_classifier(args.model)
    started = time.perf_counter()
    folders = attack_all(args.work, args.limit, args.limit, classifier)
    sheets = {}
    for name, folder in folders.items():
        sheets[name] = args.work / "sheets" / name
        if not (sheets[name] / "manifest.json").is_file():
            print_attack_set(folder, sheets[name], SheetLayout(rows=args.rows))
    print(f"attacks and sheets: {time.perf_counter() - started:.0f} s, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    record = args.work / "ablation.json"
    table = json.loads(record.read_text())["configurations"] if record.is_file() else {}
    for name, profile in chosen.items():
        started = time.perf_counter()
        results = photograph_and_capture(args.work / "configs" / name.replace(" ", "-"), sheets, profile, classifier)
        table[name] = {**summary(results), "seconds": round(time.perf_counter() - started),
                       "load_average": [round(v, 1) for v in os.getloadavg()]}
        atomic_write_json(record, {"model": args.model, "limit": args.limit, "configurations": table})
        print(f"{name}: {table[name]['seconds']} s, load {table[name]['load_average']}", flush=True)
    print(f"\n{args.model}, first {args.limit} images of the ImageNet sample, one virtual 12-MP photo per page, "
          "average-case top-1 destruction (n = images the attack fooled whose clean image was right):")
    print_table({name: table[name] for name in table if name in chosen})


if __name__ == "__main__":
    main()
