"""capture/: sheets found, identified, rectified and cropped in synthetic photos; the folder pipeline.

The photos are made here, straight from a Manifest: markers from cv2.aruco, a QR code from segno and
the cell images pasted at their boxes on a page rendered at PX_PER_MM, then warped into a cluttered
frame with a known page-mm → photo-pixel homography, blurred, noised and JPEG-compressed.
"""

from __future__ import annotations

import csv
import json
import math
import shutil

import cv2
import numpy as np
import pytest
import segno
import torch

import torch.nn.functional as F
from PIL import Image
from torch import nn

from physadv.capture.crops import cell_corners_mm, crop_cells
from physadv.capture.detect import find_pages, project
from physadv.capture.pipeline import STATE_DIR, capture_folder
from physadv.attackset import AttackedImage, AttackSet, AttackSettings, Guess, write_attack_set
from physadv.classifiers import Classifier
from physadv.cli.main import main
from physadv.images import write_png
from physadv.labels import label_space
from physadv.printouts.manifest import (CORNERS, Cell, IdentityBlock, Manifest, Marker, Page, QRCode, identity_bits,
                                       identity_modules, marker_ids, qr_payload, write_manifest)

PAGE_MM = (210.0, 297.0)
MARKER_MM, MARGIN_MM = 20.0, 10.0
PX_PER_MM = 10
CELL_MM, CELL_PX = 40.0, 64


def cell_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour images: detail at the scale the printed cells resolve."""
    rng = np.random.default_rng(seed)
    return [cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (CELL_PX, CELL_PX),
                       interpolation=cv2.INTER_CUBIC) for _ in range(count)]


def make_manifest(run_id: str, pages: int = 1, labels: list[int] | None = None) -> Manifest:
    """A run of A4 pages: four corner markers, a QR code, a 3×4 grid of cells (clean, adversarial alternating)."""
    width, height = PAGE_MM
    far_x, far_y = width - MARGIN_MM - MARKER_MM, height - MARGIN_MM - MARKER_MM
    result = []
    for index in range(pages):
        markers = tuple(Marker(marker_id, name, ((x, y), (x + MARKER_MM, y), (x + MARKER_MM, y + MARKER_MM),
                                                 (x, y + MARKER_MM)))
                        for marker_id, name, (x, y) in zip(marker_ids(run_id, index), CORNERS,
                                                           [(MARGIN_MM, MARGIN_MM), (far_x, MARGIN_MM),
                                                            (far_x, far_y), (MARGIN_MM, far_y)]))
        cells = []
        for slot in range(12):
            row, col = divmod(slot, 3)
            kind = "clean" if slot % 2 == 0 else "adversarial"
            image_id = f"img{slot // 2}"
            cells.append(Cell(index=slot, row=row, col=col, box_mm=(25.0 + 55 * col, 50.0 + 55 * row, CELL_MM, CELL_MM),
                              size_px=(CELL_PX, CELL_PX), image_id=image_id, kind=kind,
                              file=f"{'clean' if kind == 'clean' else 'adv'}/{image_id}.png", source=image_id,
                              label=None if labels is None else labels[slot // 2], label_name=None,
                              method="fgsm", eps=16.0, model="fake", sha256=""))
        identity = (IdentityBlock((width - MARGIN_MM - MARKER_MM - 44.0, MARGIN_MM, 40.0, 20.0), 10, 5),
                    IdentityBlock((MARGIN_MM + MARKER_MM + 4.0, far_y, 40.0, 20.0), 10, 5))
        result.append(Page(index, markers, (QRCode(qr_payload(run_id, index), (92.5, 10.0, 25.0, 25.0)),),
                           tuple(cells), identity))
    return Manifest(run_id=run_id, created="2025-01-01T00:00:00", paper="A4", page_size_mm=PAGE_MM,
                    layout_dpi=300.0, marker_size_mm=MARKER_MM, pages=tuple(result), model="fake")


def render_page(manifest: Manifest, page: Page, images: list[np.ndarray], qr: bool = True) -> np.ndarray:
    """The page as printed, RGB uint8 at PX_PER_MM (cell ``i`` shows ``images[i]``); ``qr=False``
    leaves the QR codes out (unreadable)."""
    canvas = np.full((int(PAGE_MM[1] * PX_PER_MM), int(PAGE_MM[0] * PX_PER_MM), 3), 255, np.uint8)
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_1000)

    def paste(picture: np.ndarray, x: float, y: float, w: float, h: float) -> None:
        left, top, right, bottom = (round(v * PX_PER_MM) for v in (x, y, x + w, y + h))
        canvas[top:bottom, left:right] = cv2.resize(picture, (right - left, bottom - top),
                                                    interpolation=cv2.INTER_NEAREST)

    for marker in page.markers:
        (x, y), side = marker.corners_mm[0], manifest.marker_size_mm
        paste(cv2.cvtColor(cv2.aruco.generateImageMarker(dictionary, marker.id, 6 * 40), cv2.COLOR_GRAY2RGB),
              x, y, side, side)
    for code in page.qr_codes if qr else ():
        modules = np.array(segno.make(code.payload, error="m").matrix, dtype=np.uint8)
        paste(np.repeat(((1 - modules) * 255)[..., None], 3, axis=2), *code.box_mm)
    bits = iter(identity_bits(manifest.run_id, page.index))
    for block in page.identity:
        dark = np.array(identity_modules(tuple(next(bits) for _ in range(block.bits)), block.columns, block.rows))
        paste(np.repeat(((1 - dark) * 255).astype(np.uint8)[..., None], 3, axis=2), *block.box_mm)
    for cell in page.cells:
        x, y, w, h = cell.box_mm
        left, top, right, bottom = (round(v * PX_PER_MM) for v in (x, y, x + w, y + h))
        canvas[top:bottom, left:right] = cv2.resize(images[cell.index], (right - left, bottom - top),
                                                    interpolation=cv2.INTER_CUBIC)
    return canvas


def page_homography(frame: tuple[int, int], fill: float, angle: float, tilt: float, rng: np.random.Generator,
                    centre: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """Page mm → photo px: the page fills ``fill`` of the frame height, turned by ``angle`` degrees,
    corners jittered by up to ``tilt`` of the page size (perspective)."""
    width, height = frame
    corners = np.array([[0, 0], [PAGE_MM[0], 0], [PAGE_MM[0], PAGE_MM[1]], [0, PAGE_MM[1]]])
    scale = fill * height / PAGE_MM[1]
    placed = (corners - np.array(PAGE_MM) / 2) * scale
    placed += rng.uniform(-tilt, tilt, placed.shape) * PAGE_MM[1] * scale
    turn = math.radians(angle)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    placed = placed @ rotation.T + np.array([centre[0] * width, centre[1] * height])
    return cv2.getPerspectiveTransform(corners.astype(np.float32), placed.astype(np.float32)).astype(np.float64)


def photograph(pages: list[tuple[np.ndarray, np.ndarray]], frame: tuple[int, int], rng: np.random.Generator,
               blur: float = 0.8, noise: float = 3.0, quality: int = 90) -> np.ndarray:
    """Warp rendered pages (image, page-mm → photo-px homography) into a cluttered frame; RGB uint8."""
    width, height = frame
    photo = cv2.resize(rng.integers(40, 200, (height // 60 + 1, width // 60 + 1, 3), dtype=np.uint8),
                       (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        start, end = rng.integers(0, (width, height), (2, 2))
        cv2.line(photo, tuple(map(int, start)), tuple(map(int, end)), tuple(map(int, rng.integers(0, 255, 3))),
                 int(rng.integers(2, max(3, width // 200))))
    for image, homography in pages:
        mm_to_px = np.array([[PX_PER_MM, 0, -0.5], [0, PX_PER_MM, -0.5], [0, 0, 1]])
        to_photo = homography @ np.linalg.inv(mm_to_px)
        warped = cv2.warpPerspective(image, to_photo, frame, flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.full(image.shape[:2], 255, np.uint8), to_photo, frame, flags=cv2.INTER_LINEAR)
        photo = np.where(mask[..., None] > 127, warped, photo)
    photo = cv2.GaussianBlur(photo, (0, 0), blur) if blur > 0 else photo
    photo = np.clip(photo + rng.normal(0, noise, photo.shape), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


def cell_corner_errors(manifest: Manifest, detection, truth: np.ndarray) -> np.ndarray:
    """Distances (px) between detected and true photo positions of every cell corner of the page."""
    page = manifest.pages[detection.page]
    points = np.concatenate([cell_corners_mm(cell) for cell in page.cells])
    return np.linalg.norm(project(detection.homography, points) - project(truth, points), axis=1)


@pytest.fixture(scope="module")
def run() -> tuple[Manifest, list[np.ndarray]]:
    return make_manifest("run-a", pages=2), cell_images(12)


@pytest.mark.parametrize("frame,fill,angle,limit", [((4000, 3000), 0.7, 12.0, 1.0), ((1280, 720), 0.85, -20.0, 2.0)])
def test_round_trip_geometry_and_crops(run, frame, fill, angle, limit):
    manifest, images = run
    rng = np.random.default_rng(1)
    truth = page_homography(frame, fill, angle, 0.06, rng)
    photo = photograph([(render_page(manifest, manifest.pages[1], images), truth)], frame, rng)
    found = find_pages(photo, manifest)
    assert [d.page for d in found.pages] == [1] and not found.rejections
    assert cell_corner_errors(manifest, found.pages[0], truth).max() <= limit
    crops = crop_cells(photo, found.pages[0], manifest.pages[1])
    for crop, image in zip(crops, images):
        assert crop.shape == image.shape
        # Within the blur the camera adds: compare both at the camera's effective resolution.
        difference = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2) - cv2.GaussianBlur(image.astype(np.float32), (0, 0), 2)
        assert np.abs(difference).mean() < 12


def test_one_marker_covered_rotations_and_two_sheets(run):
    manifest, images = run
    rng = np.random.default_rng(2)
    frame = (4000, 3000)
    truth = page_homography(frame, 0.75, 30.0, 0.05, rng)
    photo = photograph([(render_page(manifest, manifest.pages[0], images), truth)], frame, rng)
    covered = photo.copy()
    corners = project(truth, manifest.pages[0].markers[2].corners_mm).round().astype(np.int32)
    cv2.fillConvexPoly(covered, (corners.mean(axis=0) + 1.3 * (corners - corners.mean(axis=0))).astype(np.int32),
                       (90, 60, 30))
    found = find_pages(covered, manifest)
    assert [d.page for d in found.pages] == [0] and len(found.pages[0].marker_ids) == 3
    assert np.percentile(cell_corner_errors(manifest, found.pages[0], truth), 95) <= 2.0
    for turns in (1, 2):
        rotated = find_pages(np.ascontiguousarray(np.rot90(photo, turns)), manifest)
        assert [d.page for d in rotated.pages] == [0]
    left = page_homography(frame, 0.45, 5.0, 0.03, rng, centre=(0.3, 0.5))
    right = page_homography(frame, 0.45, -95.0, 0.03, rng, centre=(0.72, 0.5))
    both = photograph([(render_page(manifest, page, images), h) for page, h in zip(manifest.pages, (left, right))],
                      frame, rng)
    found = find_pages(both, manifest)
    assert sorted(d.page for d in found.pages) == [0, 1]
    for detection in found.pages:
        assert cell_corner_errors(manifest, detection, (left, right)[detection.page]).max() <= 1.0


def offset_neighbour(run_id: str) -> str:
    """A run id whose page 0 has the marker ids of ``run_id``'s page 1: only the QR code tells them apart."""
    from physadv.printouts.manifest import marker_ids as ids
    return next(f"other-{k}" for k in range(100000) if ids(f"other-{k}", 0) == ids(run_id, 1))


def sharp_photo_without_sheet(size: tuple[int, int]) -> np.ndarray:
    """A real photograph (scikit-image's coffee) at ``size``: no sheet, and sharp. (This module's renderer
    draws a background blurred on purpose; a photo of only that may read as "too blurry", which is
    also a refusal, but not the one these tests check.)"""
    from skimage import data

    return cv2.resize(data.coffee(), size, interpolation=cv2.INTER_CUBIC)


def test_wrong_run_no_sheet_and_blur_are_rejected(run):
    manifest, images = run
    rng = np.random.default_rng(3)
    frame = (1920, 1080)
    truth = page_homography(frame, 0.8, 10.0, 0.04, rng)
    stranger = make_manifest("run-zz-unrelated")
    photo = photograph([(render_page(stranger, stranger.pages[0], images), truth)], frame, rng)
    assert [r.reason for r in find_pages(photo, manifest).rejections] == ["unknown run"]
    # Same marker ids as our page 1, QR code unreadable: the identity code alone must refuse it.
    twin = make_manifest(offset_neighbour("run-a"))
    assert twin.pages[0].markers == manifest.pages[1].markers
    photo = photograph([(render_page(twin, twin.pages[0], images, qr=False), truth)], frame, rng)
    found = find_pages(photo, manifest)
    assert not found.pages and [r.reason for r in found.rejections] == ["another run"]
    assert "identity code" in found.rejections[0].detail
    empty = sharp_photo_without_sheet(frame)
    assert [r.reason for r in find_pages(empty, manifest).rejections] == ["no markers"]
    assert not find_pages(photograph([], frame, rng), manifest).pages
    own = render_page(manifest, manifest.pages[0], images)
    blurred = photograph([(own, truth)], frame, rng, blur=5.0)
    found = find_pages(blurred, manifest)
    assert not found.pages and found.rejections[0].reason in ("too blurry", "no markers", "too few markers")


class TemplateNet(nn.Module):
    """Nearest of six templates at 8×8, pushed to the next class by a pixel-level checkerboard:
    a stand-in for an attack that works digitally and that a photo's blur destroys."""

    def __init__(self, templates: list[np.ndarray]) -> None:
        super().__init__()
        stacked = torch.tensor(np.stack(templates), dtype=torch.float32).permute(0, 3, 1, 2) / 255
        self.register_buffer("templates", self.normalise(F.avg_pool2d(stacked, 8)))
        self.register_buffer("checker", torch.tensor((np.indices((64, 64)).sum(0) % 2) * 2.0 - 1, dtype=torch.float32))

    @staticmethod
    def normalise(small: torch.Tensor) -> torch.Tensor:
        flat = small.flatten(1)
        return (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        small = self.normalise(F.avg_pool2d(images, 8))
        logits = -torch.cdist(small, self.templates) ** 2 / 10
        attacked = (images.mean(1) * self.checker).mean((1, 2)).abs() > 0.05
        return torch.where(attacked[:, None], logits.roll(1, dims=1), logits)


def checkerboard(image: np.ndarray) -> np.ndarray:
    pattern = (np.indices(image.shape[:2]).sum(0) % 2) * 100 - 50
    return np.clip(image.astype(int) + pattern[..., None], 0, 255).astype(np.uint8)


def test_capture_folder_contract_metrics_and_resume(tmp_path, monkeypatch):
    """Adversarial images 0–2 carry a checkerboard the photo blurs away (destroyed), 3–5 show another
    class's template (survive): Kurakin's destruction rate is 3/6 per photo."""
    templates = cell_images(6, seed=5)
    adversarial = [checkerboard(t) if k < 3 else templates[(k + 1) % 6] for k, t in enumerate(templates)]
    classifier = Classifier(TemplateNet(templates), name="templates", labels=label_space([str(k) for k in range(6)]),
                            input_size=(64, 64))
    attack = tmp_path / "attack"
    for k in range(6):
        write_png(attack / "clean" / f"img{k}.png", templates[k])
        write_png(attack / "adv" / f"img{k}.png", adversarial[k])
    guess = (Guess(0, "0", 1.0),)
    write_attack_set(attack, AttackSet(AttackSettings("other-model", "fgsm", 16.0, 1.0, 1, 64, 0), "none", tuple(
        AttackedImage(f"img{k}", f"img{k}.png", "", k, str(k), None, guess, guess, None, True, False) for k in range(6))))
    manifest = make_manifest("run-p", labels=list(range(6)))
    manifest = Manifest(**{**manifest.__dict__, "attack_dir": "../attack"})
    write_manifest(manifest, tmp_path / "sheets" / "manifest.json")
    printed = render_page(manifest, manifest.pages[0], [templates[k // 2] if k % 2 == 0 else adversarial[k // 2]
                                                        for k in range(12)])
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, angle in enumerate((0.0, 90.0)):
        rng = np.random.default_rng(10 + index)
        photo = photograph([(printed, page_homography((1280, 720), 0.9, angle, 0.04, rng))], (1280, 720), rng)
        cv2.imwrite(str(photos / f"sheet{index}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    # The same photo stored sideways with an EXIF orientation tag: read upright, found all the same.
    upright = Image.open(photos / "sheet0.jpg")
    exif = upright.getexif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(photos / "exif.jpg", exif=exif)
    (photos / "corrupt.jpg").write_bytes((photos / "sheet0.jpg").read_bytes()[:4000])
    cv2.imwrite(str(photos / "empty.png"), sharp_photo_without_sheet((640, 480)))
    out = tmp_path / "out"
    result = capture_folder(photos, tmp_path / "sheets" / "manifest.json", classifier, out, progress=False)

    with open(out / "predictions.csv", newline="") as stream:
        table = list(csv.DictReader(stream))
    assert len(table) == 3 * 12 and {row["photo"] for row in table} == {"sheet0.jpg", "sheet1.jpg", "exif.jpg"}
    assert all(int(row["class1"]) == int(row["label"]) for row in table if row["kind"] == "clean")
    assert all((out / row["crop"]).is_file() for row in table)
    with open(out / "rejected.csv", newline="") as stream:
        assert {(row["photo"], row["reason"]) for row in csv.DictReader(stream)} == {
            ("corrupt.jpg", "unreadable"), ("empty.png", "no markers")}
    results = json.loads((out / "results.json").read_text())
    average = next(row for row in results["rows"] if row["case"] == "average")
    assert (average["method"], average["eps"], average["transform"], average["strength"]) == ("fgsm", 16.0, "photo", None)
    assert average["n_images"] == 18 and average["destruction_top1_n"] == 18
    assert average["destruction_top1"] == pytest.approx(0.5)
    assert results["photo_clean"] == {"n": 18, "top1": 1.0, "top5": 1.0, "digital_top1": 1.0, "digital_top5": 1.0}
    assert results["channel_severity"]["change_top1_points"] == 0.0 and not results["channel_severity"]["severe"]
    assert len(result.observations) == 36
    # capture.json: enough to re-derive every crop from the photo, bit for bit.
    from physadv.capture.crops import warp_cell
    from physadv.capture.pipeline import photo_key
    from physadv.images import read_rgb
    audit = json.loads((out / "crops" / photo_key("sheet0.jpg") / "capture.json").read_text())
    [page] = audit["pages"]
    assert page["identity_bits_read"] >= 40 and len(page["markers"]) >= 3 and len(page["cells"]) == 12
    assert all(c["accepted"] and c["score"] >= 0.8 for c in page["cells"])
    cell = page["cells"][5]
    saved = read_rgb(out / "crops" / photo_key("sheet0.jpg") / "p0_c005_adversarial.png")
    assert np.array_equal(warp_cell(read_rgb(photos / "sheet0.jpg"), np.array(cell["cell_to_photo"]), (64, 64)), saved)

    import physadv.capture.pipeline as pipeline
    original, processed = pipeline.process_photo, []
    monkeypatch.setattr(pipeline, "process_photo", lambda *args: processed.append(args[3]) or original(*args))
    shutil.copy(photos / "sheet1.jpg", photos / "again.jpg")
    again = capture_folder(photos, tmp_path / "sheets" / "manifest.json", classifier, out, progress=False)
    assert processed == ["again.jpg"] and len(again.observations) == 48


def test_cli_user_mistakes_exit_2(tmp_path, capsys):
    write_manifest(make_manifest("run-c"), tmp_path / "manifest.json")
    assert main(["capture", str(tmp_path / "missing"), "--manifest", str(tmp_path / "manifest.json"),
                 "--model", "digits", "--out", str(tmp_path / "out")]) == 2
    assert main(["capture", str(tmp_path), "--manifest", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("error:") == 2


@pytest.mark.parametrize("resolution,limit", [("12mp", 1.0), ("720p", 2.0)])
def test_round_trip_on_the_virtual_camera(tmp_path, resolution, limit):
    from physadv.printouts.camera import photograph as camera_photograph
    from physadv.printouts.sheets import SheetImage, SheetLayout, write_sheets
    from physadv.images import read_rgb

    images = cell_images(6, seed=7)
    sheet_images = []
    for index, image in enumerate(images):
        write_png(tmp_path / f"{index}.png", image)
        sheet_images.append(SheetImage(path=tmp_path / f"{index}.png", image_id=str(index), label=index))
    manifest = write_sheets(sheet_images, tmp_path / "sheets", run_id="cam00001", layout=SheetLayout(cell_mm=40.0))
    truth = camera_photograph(tmp_path / "sheets" / "sheets.pdf", manifest, tmp_path / "photos", 1, resolution)[0]
    photo = read_rgb(tmp_path / "photos" / truth.file)
    found = find_pages(photo, manifest)
    assert [d.page for d in found.pages] == [truth.page]
    page = manifest.pages[truth.page]
    assert cell_corner_errors(manifest, found.pages[0], np.array(truth.homography)).max() <= limit
    # A flat page keeps its homography: its reference dots, found, agree with it.
    assert found.pages[0].page_model.flat and 2 * len(found.pages[0].dots) >= len(page.reference_dots)
    for cell, crop in zip(page.cells, crop_cells(photo, found.pages[0], page)):
        printed, seen = (cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2).reshape(-1, 3)
                         for x in (images[int(cell.image_id)], crop))
        # Light and ink change tone per channel: compare after the best affine tone map.
        fitted = np.linalg.lstsq(np.c_[printed, np.ones(len(printed))], seen, rcond=None)[0]
        residual = seen - np.c_[printed, np.ones(len(printed))] @ fitted
        assert np.abs(residual).mean() < 10
        assert np.corrcoef(printed.ravel(), seen.ravel())[0, 1] > 0.8


def test_parallel_capture_writes_what_the_serial_run_writes(tmp_path):
    """Two workers: byte-identical predictions.csv, rejected.csv, results.json and crops."""
    templates = cell_images(6, seed=3)
    classifier = Classifier(TemplateNet(templates), name="templates", labels=label_space([str(k) for k in range(6)]),
                            input_size=(64, 64))
    attack = tmp_path / "attack"
    for k in range(6):
        write_png(attack / "clean" / f"img{k}.png", templates[k])
        write_png(attack / "adv" / f"img{k}.png", checkerboard(templates[k]))
    guess = (Guess(0, "0", 1.0),)
    write_attack_set(attack, AttackSet(AttackSettings("other-model", "fgsm", 16.0, 1.0, 1, 64, 0), "none", tuple(
        AttackedImage(f"img{k}", f"img{k}.png", "", k, str(k), None, guess, guess, None, True, False) for k in range(6))))
    manifest = Manifest(**{**make_manifest("run-w", labels=list(range(6))).__dict__, "attack_dir": "../attack"})
    write_manifest(manifest, tmp_path / "sheets" / "manifest.json")
    printed = render_page(manifest, manifest.pages[0], [templates[k // 2] if k % 2 == 0
                                                        else checkerboard(templates[k // 2]) for k in range(12)])
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(5):
        rng = np.random.default_rng(20 + index)
        photo = photograph([(printed, page_homography((960, 720), 0.8, 70.0 * index, 0.05, rng))], (960, 720), rng)
        cv2.imwrite(str(photos / f"sheet{index}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(photos / "empty.png"), photograph([], (640, 480), np.random.default_rng(1)))
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        capture_folder(photos, tmp_path / "sheets" / "manifest.json", classifier, out, progress=False, workers=workers)
        outputs[workers] = {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(out.rglob("*"))
                            if path.is_file() and STATE_DIR not in path.parts}
    assert sum(name.startswith("crops/") and name.endswith(".png") for name in outputs[1]) == 5 * 12
    assert outputs[2] == outputs[1]
