"""Seconds per 12-MP virtual photo: the print on the device grid and the phone's pipeline against the
channel without them, side by side in one run.

Takes the same shots (same seed, same pages) of the test sheets through ``lab`` (600-dpi screened print,
phone pipeline) and ``lab`` with the print engine and the phone pipeline switched off (the camera as it
was before them), alternating, and prints the median seconds per photo (simulation + JPEG encoding, as
``photograph`` spends them), their ratio, and what each half costs. Issue 22's limit: at most 2x.

    python benchmarks/bench_channel_speed.py [--photos 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from printouts_fixtures import SOURCES, make_attack_dir  # noqa: E402

from physadv.printouts.camera import RESOLUTIONS, encode_jpeg, sample_shot, simulate_photo  # noqa: E402
from physadv.printouts.pdf import open_pdf  # noqa: E402
from physadv.printouts.profiles import load_profile, without_effects  # noqa: E402
from physadv.printouts.sheets import print_attack_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=6, help="photos per variant (after one warm-up each)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV threads")
    parser.add_argument("--resolution", default="12mp", choices=list(RESOLUTIONS))
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    lab = load_profile("lab")
    variants = {"before (no print engine, no phone pipeline)": without_effects(lab, ["print engine", "phone pipeline"]),
                "print engine only": without_effects(lab, ["phone pipeline"]),
                "phone pipeline only": without_effects(lab, ["print engine"]),
                "lab (both)": lab}
    frame = RESOLUTIONS[args.resolution]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        print_attack_set(make_attack_dir(root / "attack", list(SOURCES)), root / "sheets")
        document = open_pdf(root / "sheets" / "sheets.pdf")
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        loads = [os.getloadavg()[0]]
        for index in range(args.photos + 1):
            for name, profile in variants.items():
                shot = sample_shot(np.random.default_rng([0, index]), index % len(document), frame, profile)
                started = time.perf_counter()
                photo, _ = simulate_photo(document, shot, frame, profile)
                encode_jpeg(photo, shot.jpeg_quality, not shot.chroma_subsampling)
                if index:  # the first round warms caches (screen thresholds, pdfium)
                    seconds[name].append(time.perf_counter() - started)
            loads.append(os.getloadavg()[0])
        document.close()
    before = statistics.median(seconds[next(iter(variants))])
    print(f"{args.resolution} photo ({frame[0]} x {frame[1]}), {args.photos} photos per variant, OpenCV threads "
          f"{args.threads}, 1-min load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    print("| variant | median s/photo | min | max | ratio to before |")
    print("|---|---|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {max(values):.2f} | {median / before:.2f} |")


if __name__ == "__main__":
    main()
