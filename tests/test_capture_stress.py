"""Capture under stress: identity codes, the content check, curled pages, glare and motion blur.

Synthetic photos come from tests/test_capture.py's renderer (fast, exact geometry) and, for the
pages with reference dots (curled or flat), from the virtual camera with :mod:`physadv.printouts.stress`
at 1080p.
"""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from physadv.capture.crops import cell_to_page, density
from physadv.capture.detect import find_pages, project
from physadv.capture.pipeline import process_photo
from physadv.classifiers import Classifier
from physadv.labels import label_space
from physadv.capture.verify import (GLARE_MAX_FRACTION, MAX_CELL_BLUR_PX, MAX_RESIDUAL_PX, check_page)
from physadv.images import write_png
from physadv.printouts.manifest import ManifestError, Manifest, identity_bits
from test_capture import TemplateNet, cell_images, make_manifest, page_homography, photograph, render_page


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
    # A 3-marker fit 4 and 6 mm off (6.4 and 9.6 source px: beyond 10 % of the 64-px cell), with no control
    # point of its own to refit through: no cell is accepted. The photo is dimmed so that the gutter the
    # shifted crops take in (the renderer's paper is pure white) does not read as glare instead.
    dimmed = (photo * 0.85).round().astype(np.uint8)
    [detection] = find_pages(dimmed, manifest).pages
    for offset_mm in (4.0, 6.0):
        shifted = replace(detection, homography=detection.homography @ np.array([[1, 0, offset_mm], [0, 1, 0],
                                                                                 [0, 0, 1]]),
                          marker_ids=detection.marker_ids[:3], marker_corners_px={}, model=None)
        checks = [check for _, check in check_page(dimmed, shifted, page, sources(images))]
        assert {check.reason for check in checks} <= {"misaligned", "content mismatch"}
        if offset_mm == 4.0:  # mostly still recognised, but where the geometry does not put it
            assert sum(check.reason == "misaligned" for check in checks) >= 3


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


def test_a_blurred_cell_is_flagged(scene):
    manifest, images, photo, truth = scene
    page = manifest.pages[0]
    cell = page.cells[4]
    x, y, width, height = cell.box_mm
    (left, top), (right, bottom) = project(truth, np.array([[x - 3, y - 3], [x + width + 3, y + height + 3]])).round()
    blurred = photo.copy()
    window = np.s_[int(top):int(bottom), int(left):int(right)]
    blurred[window] = cv2.GaussianBlur(photo, (0, 0), 6.0)[window]  # σ 6 photo px, over one cell only
    [detection] = find_pages(blurred, manifest).pages
    checks = dict((check.cell, check) for _, check in check_page(blurred, detection, page, sources(images)))
    assert checks[4].reason == "too blurry" and checks[4].blur_px > MAX_CELL_BLUR_PX
    assert all(check.reason is None for index, check in checks.items() if index != 4)


@pytest.mark.parametrize("length_px", [15, 41])  # 0.8 % and 2 % of the frame width
def test_motion_blurred_photo_is_rejected_as_blurry(scene, length_px):
    manifest, _, photo, _ = scene
    kernel = np.full((1, length_px), 1 / length_px, np.float32)  # a horizontal shake
    blurred = cv2.filter2D(photo, -1, kernel)
    found = find_pages(blurred, manifest)
    assert not found.pages and [r.reason for r in found.rejections] == ["too blurry"]


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """Real sheets (6 cells of 64 px at 40 mm, with reference dots) and their source images."""
    from physadv.printouts.sheets import SheetImage, SheetLayout, write_sheets

    root = tmp_path_factory.mktemp("printed")
    images = cell_images(6, seed=9)
    sheet_images = []
    for index, image in enumerate(images):
        write_png(root / f"{index}.png", image)
        sheet_images.append(SheetImage(path=root / f"{index}.png", image_id=str(index), label=index))
    manifest = write_sheets(sheet_images, root / "sheets", run_id="curl0001", layout=SheetLayout(cell_mm=40.0))
    return root / "sheets" / "sheets.pdf", manifest, images


def shoot(pdf, page, condition: str, seed: int, **stress_changes):
    """A 1080p virtual-camera photo of ``page`` under a stress condition; returns the photo and the
    ground truth (page mm → photo px)."""
    from physadv.printouts.camera import RESOLUTIONS, simulate_photo
    from physadv.printouts.pdf import open_pdf, page_size_mm
    from printouts_stress import StressEffects, photo_points, stressed_shot

    document = open_pdf(pdf)
    frame = RESOLUTIONS["1080p"]
    page_mm = page_size_mm(document, page.index)
    shot, stress = stressed_shot(np.random.default_rng([0, seed, 1]), condition, page, page_mm, frame)
    stress = replace(stress, **stress_changes)
    photo, _ = simulate_photo(document, shot, frame, effects=StressEffects(shot, stress, page_mm, frame))
    document.close()
    return photo, lambda points_mm: photo_points(shot, stress, page_mm, frame, points_mm)


def crop_errors(page, checks, truth) -> list[float]:
    """Per accepted cell: the largest distance of its crop's corners from the truth, in source px."""
    errors = []
    for cell, check in zip(page.cells, checks):
        if check.reason is None:
            width, height = cell.size_px
            corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
            error = np.linalg.norm(project(check.cell_to_photo, corners) - truth(project(cell_to_page(cell), corners)),
                                   axis=1).max()
            errors.append(error / density(check.cell_to_photo, cell.size_px))
    return errors


def without_dots(manifest: Manifest) -> Manifest:
    """The manifest as written before reference dots existed (no ``reference_dots`` key at all)."""
    data = manifest.to_dict()
    for page in data["pages"]:
        del page["reference_dots"]
    return Manifest.from_dict(json.loads(json.dumps(data)))


def test_curled_page_is_recovered_by_its_reference_dots(printed):
    """A 10-mm curl the flat fit of the markers refuses: the dots give a local model, and every cell
    crops within a source pixel, where the page homography alone is several pixels off."""
    pdf, manifest, images = printed
    page = manifest.pages[0]
    photo, truth = shoot(pdf, page, "curl", seed=1, curl_sag_mm=10.0, curl_axis="x")
    assert [r.reason for r in find_pages(photo, without_dots(manifest)).rejections] == ["inconsistent geometry"]
    [detection] = find_pages(photo, manifest).pages
    assert not detection.page_model.flat and len(detection.dots) >= len(page.reference_dots) - 2
    assert max(detection.held_out_px.values()) <= 1.0
    for dot in detection.dots:
        assert np.linalg.norm(np.array(dot.photo_px) - truth(np.array([dot.centre_mm]))[0]) < 0.5
    checks = [check for _, check in check_page(photo, detection, page, sources(images))]
    errors = crop_errors(page, checks, truth)
    assert len(errors) >= 5 and max(errors) <= 1.0
    homography_alone = [replace(check, reason=None, cell_to_photo=detection.homography @ cell_to_page(cell))
                        for cell, check in zip(page.cells, checks)]
    assert max(crop_errors(page, homography_alone, truth)) > 2.0
    # capture.json names the model and every dot used, page mm and photo px.
    classifier = Classifier(TemplateNet(images), name="templates", labels=label_space([str(k) for k in range(6)]),
                            input_size=(64, 64))
    *_, audit = process_photo(photo, manifest, classifier, "curl.jpg", None,
                              {(0, cell.index): images[cell.index] for cell in page.cells})
    [recorded] = audit["pages"]
    assert recorded["model"].startswith("thin-plate spline") and recorded["reference_dots"]["printed"] == len(
        page.reference_dots)
    assert [(d["mm"], d["px"]) for d in recorded["reference_dots"]["found"]] == [
        ([round(v, 3) for v in dot.centre_mm], [round(v, 3) for v in dot.photo_px]) for dot in detection.dots]


def test_dots_that_no_smooth_page_explains_reject_the_page(printed):
    """A dot printed 1.5 mm from where the manifest says (as a crease would move it): the model fitted
    without it misses it, and the page is rejected rather than cropped."""
    pdf, manifest, _ = printed
    page = manifest.pages[0]
    photo, _ = shoot(pdf, page, "flat", seed=2)
    assert find_pages(photo, manifest).pages[0].page_model.flat
    dots = list(page.reference_dots)
    middle = len(dots) // 2
    dots[middle] = replace(dots[middle], centre_mm=(dots[middle].centre_mm[0], dots[middle].centre_mm[1] + 1.5))
    moved = replace(manifest, pages=(replace(page, reference_dots=tuple(dots)), *manifest.pages[1:]))
    found = find_pages(photo, moved)
    assert not found.pages and [r.reason for r in found.rejections] == ["unexplained warp"]


def test_manifest_without_reference_dots_still_captures(scene):
    manifest, images, photo, _ = scene
    old = without_dots(manifest)
    [detection] = find_pages(photo, old).pages
    assert detection.page_model.flat and not detection.dots
    assert all(check.reason is None for _, check in check_page(photo, detection, old.pages[0], sources(images)))


@pytest.mark.parametrize("change,message", [
    ({"diameter_mm": -1}, "diameter_mm"),
    ({"centre_mm": [1e6, 5]}, "centre_mm"),
    ({"clear_mm": "wide"}, "expected a number"),
    ({"centre_mm": [60.0, 70.0]}, "overlaps a cell"),
    ({"shape": "star"}, "shape"),
])
def test_reference_dot_fields_are_validated_on_read(printed, change, message):
    data = printed[1].to_dict()
    data["pages"][0]["reference_dots"][0].update(change)
    with pytest.raises(ManifestError, match=message) as error:
        Manifest.from_dict(json.loads(json.dumps(data)))
    assert "\n" not in str(error.value)


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
