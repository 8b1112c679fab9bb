"""Virtual-camera speed and how well corner markers and QR codes survive its photos.

For each resolution, photographs the sheets of a synthetic attack folder and reports seconds per
photo, the share of photos in which ArUco finds all four / at least three corner markers of the
page, the worst corner error against the recorded homography, and the share in which zxing-cpp
decodes a QR code of the page. Usage::

    python benchmarks/bench_printouts.py [--n 20] [--resolutions 12mp,1080p,720p]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from printouts_fixtures import SOURCES, make_attack_dir  # noqa: E402

from physadv.printouts.camera import RESOLUTIONS, photograph  # noqa: E402
from physadv.printouts.manifest import qr_payload  # noqa: E402
from physadv.printouts.sheets import print_attack_set  # noqa: E402


def marker_errors(photo: np.ndarray, homography: np.ndarray, page) -> dict[int, float]:
    """Worst corner error (px) of each of the page's markers that ArUco finds in ``photo``."""
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_1000)
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary).detectMarkers(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    truth = {m.id: np.asarray(m.corners_mm, dtype=np.float64) for m in page.markers}
    found = {}
    for marker_id, points in zip([] if ids is None else ids.ravel(), corners):
        if int(marker_id) in truth:
            expected = cv2.perspectiveTransform(truth[int(marker_id)][None], homography)[0]
            found[int(marker_id)] = float(np.abs(points[0] - expected).max())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--resolutions", default=",".join(RESOLUTIONS))
    args = parser.parse_args()
    import zxingcpp

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        manifest = print_attack_set(make_attack_dir(root / "attack", list(SOURCES)), root / "sheets")
        print(f"{'resolution':<10} {'s/photo':>8} {'4 markers':>10} {'>=3':>6} {'max err px':>10} {'QR':>6}")
        for resolution in args.resolutions.split(","):
            start = time.perf_counter()
            photos = photograph(root / "sheets" / "sheets.pdf", manifest, root / resolution, args.n, resolution)
            seconds = (time.perf_counter() - start) / args.n
            all_four = three = qr = 0
            worst = 0.0
            for truth in photos:
                photo = cv2.imread(str(root / resolution / truth.file))
                page = manifest.pages[truth.page]
                errors = marker_errors(photo, np.asarray(truth.homography), page)
                all_four += len(errors) == 4
                three += len(errors) >= 3
                worst = max([worst, *errors.values()])
                texts = {r.text for r in zxingcpp.read_barcodes(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))}
                qr += qr_payload(manifest.run_id, truth.page) in texts
            print(f"{resolution:<10} {seconds:8.2f} {all_four / args.n:10.0%} {three / args.n:6.0%} {worst:10.2f} "
                  f"{qr / args.n:6.0%}")


if __name__ == "__main__":
    main()
