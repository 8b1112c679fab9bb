"""``physadv calibrate``: seconds per 12-MP photo of the chart (virtual camera, profile ``lab``).

    python benchmarks/bench_calibrate.py --photos 4 --work /tmp/bench_calibrate
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from physadv.capture.calibrate import calibrate
from physadv.printouts.camera import photograph
from physadv.printouts.chart import CHART_FILE, write_chart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_calibrate"))
    parser.add_argument("--profile", default="lab")
    args = parser.parse_args()
    manifest = write_chart(args.work / "chart", run_id="benchcal")
    photograph(args.work / "chart" / CHART_FILE, manifest, args.work / "photos", args.photos, "12mp",
               profile=args.profile)
    photos = sorted((args.work / "photos").glob("*.jpg"))
    timings = []
    for photo in photos:  # one at a time: the per-photo cost, JPEG decoding included
        started = time.perf_counter()
        calibrate([photo], manifest)
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    result = calibrate(photos, manifest)
    together = time.perf_counter() - started
    print(f"calibrate, 12-MP photos of the chart ({args.profile}): per photo median {sorted(timings)[len(timings) // 2]:.2f} s, "
          f"max {max(timings):.2f} s; {len(photos)} photos together {together:.2f} s "
          f"({together / len(photos):.2f} s per photo)")
    for line in result.photos:
        print("  " + line.summary())


if __name__ == "__main__":
    main()
