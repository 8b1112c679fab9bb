"""physadv live, headless: a short video of synthetic sheet photos in, annotated video and per-frame report out."""

from __future__ import annotations

import json

import cv2
import numpy as np

from physadv.cli.main import main
from physadv.printouts.manifest import write_manifest
from test_capture import cell_images, make_manifest, page_homography, photograph, render_page


def test_live_headless_over_generated_video(tmp_path, digits_classifier):
    manifest = make_manifest("run-live", labels=[0, 1, 2, 3, 4, 5])
    write_manifest(manifest, tmp_path / "manifest.json")
    page = render_page(manifest, manifest.pages[0], cell_images(12))
    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    shown = [True] * 8 + [False] * 4
    for visible in shown:
        pages = [(page, page_homography((1280, 720), rng.uniform(0.6, 0.9), rng.uniform(-40, 40), 0.04, rng))]
        writer.write(cv2.cvtColor(photograph(pages if visible else [], (1280, 720), rng, quality=95), cv2.COLOR_RGB2BGR))
    writer.release()

    out = tmp_path / "live"
    assert main(["live", "--camera", str(video), "--manifest", str(tmp_path / "manifest.json"), "--model", "digits",
                 "--device", "cpu", "--headless", "--out", str(out)]) == 0
    record = json.loads((out / "live.json").read_text())
    assert record["frames"] == len(shown)
    seen = [bool(report["pages"]) for report in record["reports"]]
    assert sum(seen[:8]) >= 7 and not any(seen[8:])
    for report in record["reports"]:
        assert len(report["top5"]) == 5
        assert len(report["cells"]) == 12 * len(report["pages"])
        assert all(cell["fooled"] == (cell["kind"] == "adversarial" and cell["predicted"] != cell["label"])
                   for cell in report["cells"])
    annotated = cv2.VideoCapture(str(out / "live.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == len(shown)
    annotated.release()
    assert main(["live", "--camera", str(tmp_path / "none.mp4"), "--model", "digits", "--headless",
                 "--out", str(out)]) == 2
