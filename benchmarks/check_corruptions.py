"""physadv.corruptions against the imagecorruptions package, and the cost of each corruption.

Not a test: the package cannot be a dependency (see physadv/corruptions.py). Install the fork
beside physadv without its OpenCV, e.g. ``pip install --target /tmp/ic --no-deps
imagecorruptions-imaug==1.1.5 numba llvmlite`` and run
``PYTHONPATH=/tmp/ic python benchmarks/check_corruptions.py``. Without it, only the timings are printed.

For every corruption and severity it prints the largest pixel difference between the two on a
224-px photograph, with the package seeded through ``np.random.seed(seed)`` and physadv through
``seed``; and the CPU time physadv takes per image (median of ``--repeats``; CPU time rather than
wall time, so that other jobs on a shared machine disturb it less; run with OMP_NUM_THREADS=1 for
the cost on one core).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image
from skimage.data import chelsea
from skimage.filters import gaussian

from physadv.corruptions import CORRUPTIONS, SEVERITIES, corrupt


def original_glass_blur(x: np.ndarray, severity: int) -> np.ndarray:
    """Hendrycks' / imagecorruptions 1.1.2's glass blur with the global NumPy RNG (the fork uses numba's)."""
    c = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    x = np.uint8(gaussian(np.array(x) / 255., sigma=c[0], channel_axis=-1) * 255)
    for _ in range(c[2]):
        for h in range(x.shape[0] - c[1], c[1], -1):
            for w in range(x.shape[1] - c[1], c[1], -1):
                dx, dy = np.random.randint(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.uint8(np.clip(gaussian(x / 255., sigma=c[0], channel_axis=-1), 0, 1) * 255)


def reference(image: np.ndarray, name: str, severity: int, seed: int):
    try:
        import imagecorruptions
    except ImportError:
        return None
    np.random.seed(seed)
    if name == "glass_blur":
        return original_glass_blur(image, severity)
    if name == "impulse_noise":  # the package takes scikit-image's seed; physadv draws it from its RandomState
        return imagecorruptions.corrupt(image, severity, name, seed=int(np.random.randint(2 ** 31 - 1)))
    return imagecorruptions.corrupt(image, severity, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    image = np.asarray(Image.fromarray(chelsea()).resize((args.size, args.size), Image.BICUBIC))
    print(f"{'corruption':<18}{'severity':>9}{'max |Δ| vs package':>20}{'CPU ms / image':>16}")
    total = 0.0
    for name in CORRUPTIONS:
        for severity in SEVERITIES:
            times = []
            for _ in range(args.repeats):
                start = time.process_time()
                ours = corrupt(image, name, severity, args.seed)
                times.append(time.process_time() - start)
            theirs = reference(image, name, severity, args.seed)
            difference = "—" if theirs is None else str(int(np.abs(ours.astype(int) - theirs.astype(int)).max()))
            total += statistics.median(times)
            print(f"{name:<18}{severity:>9}{difference:>20}{1000 * statistics.median(times):>16.1f}")
    print(f"all {len(CORRUPTIONS) * len(SEVERITIES)} corruption × severity pairs of one {args.size}-px image: "
          f"{total:.1f} s CPU")


if __name__ == "__main__":
    main()
