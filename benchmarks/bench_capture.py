"""Capture on the virtual camera's photos: recovery, accuracy, wrong crops and time, flat and stressed.

Flat photos, per resolution: the share of photos whose page is recovered (and, separately, with
one corner marker painted over), the 95th-percentile and maximum error of every cell corner of
the page model (the homography, or the spline through the reference dots when they say the page is
not flat) against the camera's true homography, the reference dots found of those printed, and the
time per photo of detection + cropping — without and with the content check, and with the content
check but the manifest's reference dots left out (so their cost is the difference; all measured
side by side on the same photos; decoding the JPEG and classifying excluded), on this machine's
threads (``cv2.getNumThreads()``). The live loop skips the QR check, hence its own row.

Stress table (``--stress``), per condition of :mod:`physadv.printouts.stress` and resolution:
photos with an accepted page, cells accepted, rejections by reason (photo, page or cell), and
**wrong crops**: accepted cells whose final crop geometry puts any cell corner or the centre more
than ``WRONG_PX`` source pixels from the ground truth, or that show another run's sheet; and the
pages accepted on the spline through their reference dots (not flat).

Blur index (``--blur-index``): :func:`physadv.capture.detect.photo_blur_px`, which names a photo
without a readable page "too blurry" above ``MAX_DETECT_BLUR_PX``, on sharp photos of the sheets,
on the stress condition's motion-blurred ones, on sharp photos given a straight box blur of a stated
share of the frame width (random direction), and on the bundled photographs (no sheet): per group
the index's range and how many photos still had a page found.

    python benchmarks/bench_capture.py --photos 40 --work /tmp/bench_capture
    python benchmarks/bench_capture.py --stress --photos 20 --resolutions 12mp,1080p
    python benchmarks/bench_capture.py --blur-index --photos 20 --resolutions 720p,1080p,12mp
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from printouts_stress import CONDITIONS, StressEffects, colliding_run_id, photo_points, stressed_shot  # noqa: E402

from physadv.capture.crops import cell_corners_mm, cell_to_page, crop_cells, density  # noqa: E402
from physadv.capture.detect import MAX_DETECT_BLUR_PX, find_pages, grey, photo_blur_px, project  # noqa: E402
from physadv.capture.verify import check_page  # noqa: E402
from physadv.images import read_rgb, write_png  # noqa: E402
from physadv.printouts.camera import RESOLUTIONS, encode_jpeg, photograph, read_truth, simulate_photo  # noqa: E402
from physadv.printouts.manifest import Manifest  # noqa: E402
from physadv.printouts.pdf import open_pdf, page_size_mm  # noqa: E402
from physadv.printouts.sheets import SheetImage, SheetLayout, write_sheets  # noqa: E402

RUN_ID = "bench001"
WRONG_PX = 1.5


def make_sheets(work: Path, run_id: str = RUN_ID, seed: int = 0) -> tuple[Path, object, dict[int, np.ndarray]]:
    """Two A4 pages of 64-px smooth random images (clean/adversarial pairs); returns the PDF, the
    manifest and every cell's source pixels."""
    rng = np.random.default_rng(seed)
    images, pixels = [], {}
    for index in range(12):
        pixels[index] = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64),
                                   interpolation=cv2.INTER_CUBIC)
        path = work / f"images_{run_id}" / f"{index}.png"
        write_png(path, pixels[index])
        images.append(SheetImage(path=path, image_id=str(index // 2), kind="clean" if index % 2 == 0 else "adversarial",
                                 file=path.name, label=index // 2))
    manifest = write_sheets(images, work / f"sheets_{run_id}", run_id=run_id, layout=SheetLayout(cell_mm=40.0),
                            keep_pairs=True)
    return work / f"sheets_{run_id}" / "sheets.pdf", manifest, pixels


def cover_marker(photo: np.ndarray, homography: np.ndarray, corners_mm, rng: np.random.Generator) -> np.ndarray:
    """Paint a random flat colour over a marker (and a 2 mm rim), as a thumb or a shadow would."""
    corners = np.asarray(corners_mm, dtype=np.float64)
    centre = corners.mean(axis=0)
    rim = centre + (corners - centre) * 1.2
    covered = photo.copy()
    cv2.fillConvexPoly(covered, project(homography, rim).round().astype(np.int32),
                       tuple(int(v) for v in rng.integers(0, 255, 3)))
    return covered


def page_sources(manifest, page_index: int, pixels: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return {cell.index: pixels[cell.index] for cell in manifest.pages[page_index].cells}


def without_dots(manifest: Manifest) -> Manifest:
    """The manifest as one written before reference dots existed."""
    return replace(manifest, pages=tuple(replace(page, reference_dots=()) for page in manifest.pages))


def measure(manifest, pixels, photos_dir: Path, occlude: bool, check_qr: bool = True) -> dict:
    _, truths = read_truth(photos_dir / "truth.json")
    rng = np.random.default_rng(1)
    found, errors, reasons = 0, [], Counter()
    times: dict[str, list[float]] = {"crop": [], "checked": [], "no_dots": []}
    cells, dots, printed = Counter(), 0, 0
    dotless = without_dots(manifest)
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
        times["crop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        detection = find_pages(photo, manifest, check_qr=check_qr)
        checks = [check for d in detection.pages
                  for _, check in check_page(photo, d, manifest.pages[d.page], page_sources(manifest, d.page, pixels))]
        times["checked"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for d in find_pages(photo, dotless, check_qr=check_qr).pages:
            check_page(photo, d, dotless.pages[d.page], page_sources(dotless, d.page, pixels))
        times["no_dots"].append(time.perf_counter() - start)
        cells.update("accepted" if c.reason is None else c.reason for c in checks)
        hits = [d for d in detection.pages if d.page == truth.page]
        reasons.update(r.reason for r in detection.rejections)
        if hits:
            found += 1
            dots += len(hits[0].dots)
            printed += len(page.reference_dots)
            points = np.concatenate([cell_corners_mm(cell) for cell in page.cells])
            errors.append(np.linalg.norm(hits[0].project(points) - project(homography, points), axis=1))
    error = np.concatenate(errors) if errors else np.array([np.nan])
    return {"found": found, "n": len(truths), "p95": float(np.percentile(error, 95)), "max": float(error.max()),
            "median_s": float(np.median(times["crop"])), "max_s": float(np.max(times["crop"])),
            "checked_median_s": float(np.median(times["checked"])), "checked_max_s": float(np.max(times["checked"])),
            "no_dots_median_s": float(np.median(times["no_dots"])), "reasons": dict(reasons), "cells": dict(cells),
            "dots": dots, "dots_printed": printed}


def crop_error_px(check, cell, shot, stress, page_mm, frame) -> float:
    """Largest distance, in source pixels, of the crop's corners and centre from the ground truth."""
    width, height = cell.size_px
    points = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5],
                       [(width - 1) / 2, (height - 1) / 2]])
    truth = photo_points(shot, stress, page_mm, frame, project(cell_to_page(cell), points))
    return float(np.linalg.norm(project(check.cell_to_photo, points) - truth, axis=1).max()
                 / density(check.cell_to_photo, cell.size_px))


def stress_row(condition: str, resolution: str, n: int, ours, theirs, seed: int = 0) -> dict:
    """Photograph ``n`` stressed photos (of ``theirs`` for colliding-id) and capture them with our manifest."""
    (pdf, manifest, pixels) = ours
    shown_pdf, shown_manifest = (theirs[0], theirs[1]) if condition == "colliding-id" else (pdf, manifest)
    document = open_pdf(shown_pdf)
    frame = RESOLUTIONS[resolution]
    photos_with_page, accepted, wrong, reasons, errors, on_dots = 0, 0, 0, Counter(), [], 0
    for index in range(n):
        page = shown_manifest.pages[index % len(shown_manifest.pages)]
        page_mm = page_size_mm(document, page.index)
        shot, stress = stressed_shot(np.random.default_rng([seed, index, CONDITIONS.index(condition)]), condition,
                                     page, page_mm, frame)
        photo, _ = simulate_photo(document, shot, frame, effects=StressEffects(shot, stress, page_mm, frame))
        photo = cv2.cvtColor(cv2.imdecode(np.frombuffer(encode_jpeg(photo, shot.jpeg_quality), np.uint8),
                                          cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        detection = find_pages(photo, manifest)
        reasons.update(r.reason for r in detection.rejections)
        any_cell = False
        for page_detection in detection.pages:
            on_dots += not page_detection.page_model.flat
            our_page = manifest.pages[page_detection.page]
            for cell, (_, check) in zip(our_page.cells, check_page(photo, page_detection, our_page,
                                                                    page_sources(manifest, our_page.index, pixels))):
                if check.reason is not None:
                    reasons[check.reason] += 1
                    continue
                accepted += 1
                any_cell = True
                if shown_manifest.run_id != manifest.run_id or page_detection.page != page.index:
                    wrong += 1
                    continue
                error = crop_error_px(check, cell, shot, stress, page_mm, frame)
                errors.append(error)
                wrong += error > WRONG_PX
        photos_with_page += any_cell
    document.close()
    error = np.array(errors) if errors else np.array([np.nan])
    return {"condition": condition, "resolution": resolution, "n": n, "photos": photos_with_page,
            "cells": accepted, "wrong": wrong, "reasons": dict(reasons), "on_dots": on_dots,
            "p95": float(np.percentile(error, 95)), "max": float(np.max(error))}


MOTION_SHARES = (0.003, 0.0045, 0.006, 0.008, 0.012)  # of the frame width: below, at and inside stress's 0.6-2 %


def motion_blurred(photo: np.ndarray, length_px: float, angle_deg: float) -> np.ndarray:
    """``photo`` smeared by a straight box blur of ``length_px`` at ``angle_deg`` (a camera shake)."""
    size = int(math.ceil(length_px)) | 1
    kernel = np.zeros((size, size), np.float32)
    centre, (dx, dy) = size // 2, (math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg)))
    cv2.line(kernel, (round(centre - dx * length_px / 2), round(centre - dy * length_px / 2)),
             (round(centre + dx * length_px / 2), round(centre + dy * length_px / 2)), 1.0, 1)
    return cv2.filter2D(photo, -1, kernel / kernel.sum())


def blur_index_rows(resolution: str, n: int, ours) -> list[tuple[str, list[float], int]]:
    """``(group, blur indices, photos with a page found)`` for one resolution."""
    (pdf, manifest, _) = ours
    document = open_pdf(pdf)
    frame = RESOLUTIONS[resolution]
    groups: dict[str, tuple[list[float], list[bool]]] = {}
    for condition in ("flat", "motion-blur"):
        for index in range(n):
            page = manifest.pages[index % len(manifest.pages)]
            page_mm = page_size_mm(document, page.index)
            rng = np.random.default_rng([index, CONDITIONS.index(condition)])
            shot, stress = stressed_shot(rng, condition, page, page_mm, frame)
            photo, _ = simulate_photo(document, shot, frame, effects=StressEffects(shot, stress, page_mm, frame))
            variants = [(condition, photo)]
            if condition == "flat":
                variants += [(f"flat + {share:.2%} motion", motion_blurred(photo, share * frame[0], rng.uniform(0, 180)))
                             for share in MOTION_SHARES]
            for group, image in variants:
                image = cv2.cvtColor(cv2.imdecode(np.frombuffer(encode_jpeg(image, shot.jpeg_quality), np.uint8),
                                                  cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                indices, found = groups.setdefault(group, ([], []))
                indices.append(photo_blur_px(grey(image)))
                found.append(bool(find_pages(image, manifest).pages))
    document.close()
    return [(group, indices, sum(found)) for group, (indices, found) in groups.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=40, help="photos per resolution (and per stress condition)")
    parser.add_argument("--resolutions", default=",".join(RESOLUTIONS))
    parser.add_argument("--stress", action="store_true", help="the stress table instead of the flat measurements")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="stress conditions to run")
    parser.add_argument("--blur-index", action="store_true", help="the photo blur index instead (see above)")
    parser.add_argument("--work", default="/tmp/bench_capture", help="folder for sheets and photos (reused)")
    args = parser.parse_args()
    work = Path(args.work)
    pdf, manifest, pixels = make_sheets(work)
    print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} threads; {args.photos} virtual-camera photos per "
          f"{'condition and ' if args.stress else ''}resolution")
    if args.blur_index:
        print(f"photo_blur_px (too blurry above {MAX_DETECT_BLUR_PX}): | resolution | photos | index min / median / "
              "max | photos with a page found |")
        for resolution in args.resolutions.split(","):
            for group, indices, found in blur_index_rows(resolution, args.photos, (pdf, manifest, pixels)):
                print(f"| {resolution} | {group} | {min(indices):.2f} / {np.median(indices):.2f} / {max(indices):.2f} "
                      f"| {found}/{len(indices)} |", flush=True)
        from physadv.datasets import _SAMPLES, _sample_pixels
        indices = {name: photo_blur_px(grey(_sample_pixels(reference))) for name, reference, _ in _SAMPLES}
        print("bundled photographs (no sheet):", ", ".join(f"{name} {value:.2f}" for name, value in indices.items()))
        return
    if args.stress:
        twin = make_sheets(work, colliding_run_id(RUN_ID), seed=1)
        print("| condition | resolution | photos with a page | pages on the dot model | cells accepted | wrong crops | "
              "crop error p95 / max (source px) | rejections by reason |")
        print("|---|---|---|---|---|---|---|---|")
        for resolution in args.resolutions.split(","):
            for condition in args.conditions.split(","):
                r = stress_row(condition, resolution, args.photos, (pdf, manifest, pixels), twin)
                reasons = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items())) or "—"
                accuracy = "—" if not np.isfinite(r["p95"]) else f"{r['p95']:.2f} / {r['max']:.2f}"
                print(f"| {condition} | {resolution} | {r['photos']}/{r['n']} | {r['on_dots']} | {r['cells']} | "
                      f"{r['wrong']} | "
                      f"{accuracy} | {reasons} |", flush=True)
        return
    for resolution in args.resolutions.split(","):
        photos_dir = work / f"photos_{resolution}"
        photograph(pdf, manifest, photos_dir, args.photos, resolution, seed=0, progress=True)
        for occlude, check_qr in ((False, True), (True, True), (False, False)):
            r = measure(manifest, pixels, photos_dir, occlude, check_qr)
            what = "1 marker covered" if occlude else "all markers" if check_qr else "no QR check (live)"
            print(f"{resolution:>6} {what:<18} "
                  f"recovered {r['found']}/{r['n']} ({r['found'] / r['n']:.1%})  "
                  f"cell-corner error p95 {r['p95']:.2f} px max {r['max']:.2f} px  "
                  f"time median {1000 * r['median_s']:.0f} ms max {1000 * r['max_s']:.0f} ms, "
                  f"with content check median {1000 * r['checked_median_s']:.0f} ms max "
                  f"{1000 * r['checked_max_s']:.0f} ms, same without reference dots median "
                  f"{1000 * r['no_dots_median_s']:.0f} ms  dots found {r['dots']}/{r['dots_printed']}  "
                  f"rejections {r['reasons']}  cells {r['cells']}", flush=True)


if __name__ == "__main__":
    main()
