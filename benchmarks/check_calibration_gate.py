"""The figures behind ``physadv calibrate``'s quality gate, measured on virtual-camera photos.

For photos of the chart taken with each built-in profile and with three measured channels (those
of tests/test_calibrate.py), it prints what each photo gives for the two per-photo checks of
:func:`physadv.capture.calibrate._assess` (largest fall of the grey ramp between neighbouring steps,
in levels; mean CIEDE2000 of the chart model fitted to that photo alone), and the pooled ΔE00 of
each profile's photos. It then paints an opaque box (a random colour) over one region of the chart
in each lab photo (part of the ramp, part of the colour patches, a flat patch, an edge square) and
prints the same figures, so that the thresholds can be seen to separate the two.

    python benchmarks/check_calibration_gate.py --photos 8 --work /tmp/check_gate
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from physadv.capture import calibrate as cal
from physadv.capture.detect import project
from physadv.images import read_rgb
from physadv.printouts.camera import photograph
from physadv.printouts.chart import CHART_FILE, chart_of, write_chart
from physadv.printouts.manifest import read_manifest
from physadv.printouts.profiles import load_profile, with_measured

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_calibrate import CHANNELS, known_channel  # noqa: E402  (the known channels the tests round-trip)

def figures(measurement, chart) -> tuple[float, float, float]:
    """Ramp fall, own colour ΔE00 and worst flat ΔE00: the figures the gate itself computes."""
    return cal._gate_figures(measurement, chart)[1:]


def pooled_delta_e(measurements, chart) -> float:
    """The pooled ΔE00 the gate compares with POOLED_DELTA_E_MAX, as calibrate's own fit gives it."""
    profile, _ = cal._fit(measurements, chart, load_profile("lab"), "gate-check")
    return profile.measured.delta_e_mean


def occlusions(chart) -> dict[str, list[float]]:
    """Page-mm boxes (x, y, w, h) to paint over: one region of each kind."""
    patches = chart["patches"]
    grey = [p["box_mm"] for p in patches if p["kind"] == "grey"]
    colour = [p["box_mm"] for p in patches if p["kind"] == "colour"]
    flat = [p["box_mm"] for p in patches if p["kind"] == "flat"]
    edge = chart["edges"][0]["field_mm"]
    return {"ramp, 4 steps": [grey[6][0], grey[6][1] - 2, 4 * grey[6][2], grey[6][3] + 4],
            "ramp, 1 step": [grey[12][0] + 1, grey[12][1] + 1, grey[12][2] - 2, grey[12][3] - 2],
            "colours, 3 patches": [colour[3][0], colour[3][1], 3 * colour[3][2], colour[3][3]],
            "a flat patch": [flat[0][0] - 2, flat[0][1] - 2, flat[0][2] + 4, flat[0][3] + 4],
            "an edge square": list(edge)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=8, help="photos per profile")
    parser.add_argument("--work", type=Path, default=Path("/tmp/check_gate"))
    args = parser.parse_args()
    chart_dir = args.work / "chart"
    # physadv chart refuses a folder holding a manifest: a rerun reads the chart it wrote before.
    manifest = (read_manifest(chart_dir / "manifest.json") if (chart_dir / "manifest.json").exists()
                else write_chart(chart_dir, run_id="gatechk1"))
    chart = chart_of(manifest)
    profiles = {name: load_profile(name) for name in ("lab", "handheld", "webcam")}
    profiles.update({name: with_measured(load_profile("lab"), name, "known", known_channel(*channel))
                     for name, channel in CHANNELS.items()})
    good_fall, good_delta_e, good_flat = [], [], []
    by_profile = {}
    lab_photos = []
    for name, profile in profiles.items():
        folder = args.work / name
        photograph(chart_dir / CHART_FILE, manifest, folder, args.photos, seed=1, profile=profile)
        truth = json.loads((folder / "truth.json").read_text())
        measurements = []
        for photo in truth["photos"]:
            m = cal._measure(read_rgb(folder / photo["file"]), manifest, chart, photo["file"])
            shadow = photo["shot"]["shadow"][2] > 0
            if not isinstance(m, cal._Measurement):
                print(f"{name:15s} {photo['file']}: {m.reason} ({m.detail})")
                continue
            fall, delta_e, flat = figures(m, chart)
            measurements.append(m)
            good_fall.append(fall)
            good_delta_e.append(delta_e)
            good_flat.append(flat)
            print(f"{name:15s} {photo['file']}: ramp fall {fall:5.2f}, own ΔE00 {delta_e:5.2f}, flats {flat:5.2f}"
                  f"{', shadow on the frame' if shadow else ''}")
            if name == "lab":
                lab_photos.append((folder / photo["file"], np.array(photo["homography"])))
        if len(measurements) > 1:
            print(f"{name:15s} pooled ΔE00 of {len(measurements)} photos: {pooled_delta_e(measurements, chart):.2f}")
        by_profile[name] = measurements
    for first, second in (("lab", "handheld"), ("lab", "webcam"), ("lab", "soft-noisy"), ("sharp-quiet", "dark-contrasty")):
        mixed = by_profile[first][:4] + by_profile[second][:4]
        print(f"mixed {first} + {second}: pooled ΔE00 {pooled_delta_e(mixed, chart):.2f}")
    print(f"good photos: ramp fall max {max(good_fall):.2f}, own ΔE00 max {max(good_delta_e):.2f} "
          f"(median {np.median(good_delta_e):.2f}), flats ΔE00 max {max(good_flat):.2f}, n = {len(good_fall)}")
    rng = np.random.default_rng(0)
    for region, box in occlusions(chart).items():
        falls, delta_es, flats = [], [], []
        for path, homography in lab_photos:
            image = read_rgb(path).copy()
            x, y, w, h = box
            corners = project(homography, np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=float))
            cv2.fillConvexPoly(image, np.round(corners).astype(np.int32), tuple(int(v) for v in rng.integers(0, 256, 3)))
            m = cal._measure(image, manifest, chart, path.name)
            if not isinstance(m, cal._Measurement):
                print(f"occluded {region}: {m.reason}")
                continue
            fall, delta_e, flat = figures(m, chart)
            falls.append(fall)
            delta_es.append(delta_e)
            flats.append(flat)
        print(f"occluded {region:20s}: ramp fall min {min(falls):6.2f} (max {max(falls):6.2f}), "
              f"own ΔE00 min {min(delta_es):5.2f} (max {max(delta_es):5.2f}), "
              f"flats ΔE00 min {min(flats):5.2f} (max {max(flats):5.2f})")


if __name__ == "__main__":
    main()
