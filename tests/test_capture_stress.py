"""Capture under stress: identity codes, the content check, curled pages, glare and motion blur.

Synthetic photos come from tests/test_capture.py's renderer (fast, exact geometry) and, for the
curled page, from the virtual camera with :mod:`physadv.printouts.stress` at 1080p.
"""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from physadv.capture.crops import cell_to_page, density
from physadv.capture.detect import find_pages, project
from physadv.capture.verify import GLARE_MAX_FRACTION, MAX_RESIDUAL_PX, MAX_SHIFT_FRACTION, MIN_SCORE, check_page
from physadv.images import write_png
from physadv.printouts.manifest import ManifestError, Manifest, identity_bits
from test_capture import cell_images, make_manifest, page_homography, photograph, render_page


@pytest.fixture(scope="module")
def scene():
    """One 1080p photo of page 0 and its truth."""
    manifest, images = make_manifest("run-s", pages=1), cell_images(12, seed=3)
    rng = np.random.default_rng(4)
    frame = (1920, 1080)
    truth = page_homography(frame, 0.85, 8.0, 0.04, rng)
    photo = photograph([(render_page(manifest, manifest.pages[0], images), truth)], frame, rng)
    return manifest, images, photo, truth


def sources(images):
    return dict(enumerate(images))


def test_identity_bits_differ_between_runs_and_pages():
    ours = identity_bits("run-a", 0)
    assert len(ours) == 50 and set(ours) == {0, 1}
    assert identity_bits("run-a", 1) != ours and identity_bits("run-b", 0) != ours
    assert identity_bits("run-a", 0) == ours


def test_content_check_accepts_the_right_crops_and_rejects_wrong_pictures_and_a_bad_fit(scene):
    manifest, images, photo, truth = scene
    page = manifest.pages[0]
    [detection] = find_pages(photo, manifest).pages
    checks = check_page(photo, detection, page, sources(images))
    assert all(check.reason is None for _, check in checks), [c.detail for _, c in checks]
    assert all(check.score > 0.9 and check.residual_px <= MAX_RESIDUAL_PX for _, check in checks)
    # Every cell checked against another cell's image: all refused.
    swapped = {k: images[(k + 3) % 12] for k in range(12)}
    assert {check.reason for _, check in check_page(photo, detection, page, swapped)} == {"content mismatch"}
    # A 3-marker fit 6 mm off (10 source px, beyond 10 % of the 64-px cell): no cell is accepted.
    shifted = replace(detection, homography=detection.homography @ np.array([[1, 0, 6.0], [0, 1, 0], [0, 0, 1]]),
                      marker_ids=detection.marker_ids[:3],
                      marker_corners_px={}, model=None)
    checks = [check for _, check in check_page(photo, shifted, page, sources(images))]
    # (The renderer's paper is pure white, so the shifted crops also read as glare.)
    assert all(check.reason is not None and (check.shift_px > MAX_SHIFT_FRACTION * 64 or check.score < MIN_SCORE)
               for check in checks)


def test_glare_on_a_cell_is_flagged(scene):
    manifest, images, photo, truth = scene
    page = manifest.pages[0]
    cell = page.cells[4]
    glared = photo.copy()
    centre = project(truth, np.array([[cell.box_mm[0] + 20, cell.box_mm[1] + 20]]))[0]
    radius = int(0.3 * np.linalg.norm(project(truth, np.array([[0, 0], [cell.box_mm[2], 0]]))[1]
                                      - project(truth, np.array([[0, 0]]))[0]))
    cv2.circle(glared, tuple(int(v) for v in centre), radius, (255, 255, 255), -1)
    [detection] = find_pages(glared, manifest).pages
    checks = dict((check.cell, check) for _, check in check_page(glared, detection, page, sources(images)))
    assert checks[4].reason == "glare" and checks[4].glare > GLARE_MAX_FRACTION
    assert all(check.reason is None for index, check in checks.items() if index != 4)


def test_motion_blurred_photo_is_rejected_as_blurry(scene):
    manifest, _, photo, _ = scene
    kernel = np.zeros((1, 41), np.float32)
    kernel[0] = 1 / 41  # a 41-px horizontal shake (2 % of the frame width)
    blurred = cv2.filter2D(photo, -1, kernel)
    found = find_pages(blurred, manifest)
    assert not found.pages and [r.reason for r in found.rejections] == ["too blurry"]


def test_curled_page_crops_within_a_source_pixel_or_is_rejected(tmp_path):
    from physadv.printouts.camera import RESOLUTIONS, simulate_photo
    from physadv.printouts.pdf import open_pdf, page_size_mm
    from physadv.printouts.sheets import SheetImage, SheetLayout, write_sheets
    from physadv.printouts.stress import StressEffects, photo_points, stressed_shot

    images = cell_images(6, seed=9)
    sheet_images = []
    for index, image in enumerate(images):
        write_png(tmp_path / f"{index}.png", image)
        sheet_images.append(SheetImage(path=tmp_path / f"{index}.png", image_id=str(index), label=index))
    manifest = write_sheets(sheet_images, tmp_path / "sheets", run_id="curl0001", layout=SheetLayout(cell_mm=40.0))
    document = open_pdf(tmp_path / "sheets" / "sheets.pdf")
    frame, page = RESOLUTIONS["1080p"], manifest.pages[0]
    page_mm = page_size_mm(document, 0)
    shot, stress = stressed_shot(np.random.default_rng([0, 0, 1]), "curl", page, page_mm, frame)
    stress = replace(stress, curl_sag_mm=6.0, curl_axis="x")
    photo, _ = simulate_photo(document, shot, frame, effects=StressEffects(shot, stress, page_mm, frame))
    document.close()
    [detection] = find_pages(photo, manifest).pages
    checks = check_page(photo, detection, page, sources(images))
    accepted = [(cell, check) for cell, (_, check) in zip(page.cells, checks) if check.reason is None]
    assert len(accepted) >= 4 and any(check.refined for _, check in accepted)
    for cell, check in accepted:
        width, height = cell.size_px
        points = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
        truth = photo_points(shot, stress, page_mm, frame, project(cell_to_page(cell), points))
        error = np.linalg.norm(project(check.cell_to_photo, points) - truth, axis=1).max()
        assert error / density(check.cell_to_photo, cell.size_px) <= 1.0
    # The page homography alone is further off than that: the mesh did the work.
    flat = [np.linalg.norm(project(detection.homography @ cell_to_page(cell), points)
                           - photo_points(shot, stress, page_mm, frame, project(cell_to_page(cell), points)), axis=1).max()
            / density(check.cell_to_photo, cell.size_px) for cell, check in accepted]
    assert max(flat) > 1.0


@pytest.mark.parametrize("change,message", [
    ({"box_mm": [0, 0, 1e9, 20]}, "box_mm"),
    ({"box_mm": [0, 0, "x", 20]}, "expected a number"),
    ({"columns": 3}, "even number"),
    ({"rows": 10_000}, "identity"),
])
def test_identity_fields_are_validated_on_read(change, message):
    data = make_manifest("run-v").to_dict()
    data["pages"][0]["identity"][0].update(change)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(json.loads(json.dumps(data)))
