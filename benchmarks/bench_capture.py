"""Capture on the virtual camera's photos: recovery rate, cell-corner error, time per photo.

Prints, per resolution, the share of photos whose page is recovered (and, separately, with one
corner marker painted over), the 95th-percentile and maximum error of every cell corner against
the camera's true homography, and the time of detection + rectification + cropping (decoding the
JPEG and classifying excluded), on this machine's threads (``cv2.getNumThreads()``); the live loop
skips the QR check, hence its own row.

    python benchmarks/bench_capture.py --photos 40 --work /tmp/bench_capture
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from physadv.capture.crops import cell_corners_mm, crop_cells
from physadv.capture.detect import find_pages, project
from physadv.images import read_rgb, write_png
from physadv.printouts.camera import RESOLUTIONS, photograph, read_truth
from physadv.printouts.sheets import SheetImage, SheetLayout, write_sheets


def make_sheets(work: Path) -> tuple[Path, object]:
    """Two A4 pages of 64-px smooth random images (clean/adversarial pairs)."""
    rng = np.random.default_rng(0)
    images = []
    for index in range(12):
        pixels = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
        path = work / "images" / f"{index}.png"
        write_png(path, pixels)
        images.append(SheetImage(path=path, image_id=str(index // 2), kind="clean" if index % 2 == 0 else "adversarial",
                                 file=path.name, label=index // 2))
    manifest = write_sheets(images, work / "sheets", run_id="bench001", layout=SheetLayout(cell_mm=40.0),
                            keep_pairs=True)
    return work / "sheets" / "sheets.pdf", manifest


def cover_marker(photo: np.ndarray, homography: np.ndarray, corners_mm, rng: np.random.Generator) -> np.ndarray:
    """Paint a random flat colour over a marker (and a 2 mm rim), as a thumb or a shadow would."""
    corners = np.asarray(corners_mm, dtype=np.float64)
    centre = corners.mean(axis=0)
    rim = centre + (corners - centre) * 1.2
    covered = photo.copy()
    cv2.fillConvexPoly(covered, project(homography, rim).round().astype(np.int32),
                       tuple(int(v) for v in rng.integers(0, 255, 3)))
    return covered


def measure(manifest, photos_dir: Path, occlude: bool, check_qr: bool = True) -> dict:
    _, truths = read_truth(photos_dir / "truth.json")
    rng = np.random.default_rng(1)
    found, errors, times, reasons = 0, [], [], {}
    for truth in truths:
        photo = read_rgb(photos_dir / truth.file)
        homography = np.array(truth.homography)
        page = manifest.pages[truth.page]
        if occlude:
            photo = cover_marker(photo, homography, page.markers[rng.integers(4)].corners_mm, rng)
        start = time.perf_counter()
        detection = find_pages(photo, manifest, check_qr=check_qr)
        for page_detection in detection.pages:
            crop_cells(photo, page_detection, manifest.pages[page_detection.page])
        times.append(time.perf_counter() - start)
        hits = [d for d in detection.pages if d.page == truth.page]
        for rejection in detection.rejections:
            reasons[rejection.reason] = reasons.get(rejection.reason, 0) + 1
        if hits:
            found += 1
            points = np.concatenate([cell_corners_mm(cell) for cell in page.cells])
            errors.append(np.linalg.norm(project(hits[0].homography, points) - project(homography, points), axis=1))
    error = np.concatenate(errors) if errors else np.array([np.nan])
    return {"found": found, "n": len(truths), "p95": float(np.percentile(error, 95)), "max": float(error.max()),
            "median_s": float(np.median(times)), "max_s": float(np.max(times)), "reasons": reasons}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40, help="photos per resolution")
    parser.add_argument("--resolutions", default=",".join(RESOLUTIONS))
    parser.add_argument("--work", default="/tmp/bench_capture", help="folder for sheets and photos (reused)")
    args = parser.parse_args()
    work = Path(args.work)
    pdf, manifest = make_sheets(work)
    print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} threads; {args.photos} virtual-camera photos per resolution")
    for resolution in args.resolutions.split(","):
        photos_dir = work / f"photos_{resolution}"
        photograph(pdf, manifest, photos_dir, args.photos, resolution, seed=0, progress=True)
        for occlude, check_qr in ((False, True), (True, True), (False, False)):
            r = measure(manifest, photos_dir, occlude, check_qr)
            what = "1 marker covered" if occlude else "all markers" if check_qr else "no QR check (live)"
            print(f"{resolution:>6} {what:<18} "
                  f"recovered {r['found']}/{r['n']} ({r['found'] / r['n']:.1%})  "
                  f"cell-corner error p95 {r['p95']:.2f} px max {r['max']:.2f} px  "
                  f"time median {1000 * r['median_s']:.0f} ms max {1000 * r['max_s']:.0f} ms  rejections {r['reasons']}")


if __name__ == "__main__":
    main()
