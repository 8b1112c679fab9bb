"""physadv live, headless: a short video of synthetic sheet photos in, annotated video and per-frame report out."""

from __future__ import annotations

import json

import cv2
import numpy as np

from physadv.cli.main import main
from physadv.images import write_png
from physadv.printouts.manifest import Manifest, write_manifest
from test_capture import cell_images, make_manifest, page_homography, photograph, render_page


def test_live_headless_over_generated_video(tmp_path, digits_classifier):
    images = cell_images(12)
    manifest = make_manifest("run-live", labels=[0, 1, 2, 3, 4, 5])
    manifest = Manifest(**{**manifest.__dict__, "attack_dir": "attack"})
    for cell in manifest.pages[0].cells:
        write_png(tmp_path / "attack" / cell.file, images[cell.index])
    write_manifest(manifest, tmp_path / "manifest.json")
    page = render_page(manifest, manifest.pages[0], images)
    # The same sheet with every picture in another cell: its identity is ours, its crops are not.
    shuffled = render_page(manifest, manifest.pages[0], images[6:] + images[:6])
    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    shown = [page] * 8 + [shuffled] * 2 + [None] * 2
    for printed in shown:
        pages = [(printed, page_homography((1280, 720), rng.uniform(0.6, 0.9), rng.uniform(-40, 40), 0.04, rng))]
        frame = photograph(pages if printed is not None else [], (1280, 720), rng, quality=95)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()

    out = tmp_path / "live"
    assert main(["live", "--camera", str(video), "--manifest", str(tmp_path / "manifest.json"), "--model", "digits",
                 "--device", "cpu", "--headless", "--out", str(out)]) == 0
    record = json.loads((out / "live.json").read_text())
    assert record["frames"] == len(shown)
    reports = record["reports"]
    seen = [bool(report["pages"]) for report in reports]
    assert sum(seen[:8]) >= 7 and all(seen[8:10]) and not any(seen[10:])
    for report in reports:
        assert len(report["top5"]) == 5
        assert len(report["cells"]) == 12 * len(report["pages"])
    for report in reports[:8]:
        assert all(cell["refused"] is None for cell in report["cells"])
        assert all(cell["fooled"] == (cell["kind"] == "adversarial" and cell["predicted"] != cell["label"])
                   for cell in report["cells"])
    for report in reports[8:10]:  # wrong pictures: refused, never classified
        assert all(cell["refused"] == "content mismatch" and cell["predicted"] is None for cell in report["cells"])
    annotated = cv2.VideoCapture(str(out / "live.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == len(shown)
    annotated.release()
    assert main(["live", "--camera", str(tmp_path / "none.mp4"), "--model", "digits", "--headless",
                 "--out", str(out)]) == 2
    # Without its attack folder no crop could be checked: one clear line, not an unchecked display.
    write_manifest(make_manifest("run-live"), tmp_path / "bare.json")
    assert main(["live", "--camera", str(video), "--manifest", str(tmp_path / "bare.json"), "--model", "digits",
                 "--headless", "--out", str(out)]) == 2
