"""Photos/s of ``capture_folder`` with 1 worker against N, side by side, and whether the outputs match.

    python benchmarks/bench_capture_workers.py PHOTOS_DIR MANIFEST [--model NAME] [--workers 2] [--repeats 2]

Each repeat captures the folder afresh into a temporary folder with 1 worker, then with N
(interleaved, so both see the same machine load); the best time of each is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from physadv.capture.pipeline import STATE_DIR, capture_folder, photo_files
from physadv.classifiers import load_classifier
from physadv.printouts.manifest import read_manifest


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and STATE_DIR not in p.parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--model", default=None, help="default: the manifest's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    manifest = read_manifest(args.manifest)
    classifier = load_classifier(args.model or manifest.model or next(c.model for _, c in manifest.cells()))
    count = len(photo_files(args.photos))
    best: dict[int, float] = {}
    results: dict[int, dict[str, bytes]] = {}
    for _ in range(args.repeats):
        for workers in (1, args.workers):
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                capture_folder(args.photos, args.manifest, classifier, folder, progress=False, workers=workers)
                best[workers] = min(best.get(workers, float("inf")), time.perf_counter() - start)
                results[workers] = outputs(Path(folder))
    speedup = best[1] / best[args.workers]
    print(f"{count} photos, {classifier.name}: 1 worker {count / best[1]:.2f} photos/s, {args.workers} workers "
          f"{count / best[args.workers]:.2f} photos/s: {speedup:.2f}x (efficiency {speedup / args.workers:.0%}); "
          f"outputs identical: {results[1] == results[args.workers]}")


if __name__ == "__main__":
    main()
