"""Sheets: lossless embedding, pixel-exact rendering, manifest, QR codes, markers, errors, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image

from physadv.cli.main import main
from physadv.errors import InputError
from physadv.images import read_rgb, square_resize, write_png
from physadv.printouts.manifest import marker_ids, qr_payload, read_manifest
from physadv.printouts.pdf import MM_PER_PT, open_pdf, render_page
from physadv.printouts.sheets import (PAPERS_MM, SheetImage, SheetLayout, layout_sheets, pixel_sha256, print_attack_set,
                              write_sheets)

from printouts_fixtures import SOURCES, make_attack_dir


def _boxes_px(box_mm, dpi: float) -> tuple[int, int, int, int]:
    """A cell box in device pixels at ``dpi``, asserting that it lies on whole pixels."""
    values = [v * dpi / 25.4 for v in box_mm]
    assert all(abs(v - round(v)) < 1e-6 for v in values), f"{box_mm} mm is not on the {dpi}-dpi pixel grid"
    return tuple(round(v) for v in values)


def test_images_are_embedded_bit_identically(printed, attack_dir):
    out, manifest = printed
    document = pdfium.PdfDocument(out / "sheets.pdf")
    for page in manifest.pages:
        objects = list(document[page.index].get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)))
        assert len(objects) == len(page.cells)
        height_pt = manifest.page_size_mm[1] / MM_PER_PT
        by_position = {}
        for image in objects:
            left, _, _, top = image.get_bounds()
            width, height = image.get_px_size()
            data = np.frombuffer(image.get_data(decode_simple=True), dtype=np.uint8).reshape(height, width, 3)
            by_position[(round(left * 4), round((height_pt - top) * 4))] = data
        for cell in page.cells:
            key = (round(cell.box_mm[0] / MM_PER_PT * 4), round(cell.box_mm[1] / MM_PER_PT * 4))
            np.testing.assert_array_equal(by_position[key], read_rgb(attack_dir / cell.file))


@pytest.mark.parametrize("size, paper, layout_kwargs", [
    (224, "a4", {}),
    (224, "letter", {"dpi": 144, "columns": 2, "rows": 4}),
    (64, "a4", {"cell_mm": 45, "columns": 2, "rows": 3}),
    (64, "letter", {"cell_mm": 33, "columns": 4, "rows": 4}),
])
def test_render_at_layout_dpi_reproduces_every_cell(tmp_path, size, paper, layout_kwargs):
    root = make_attack_dir(tmp_path / "attack", ["chelsea", "coffee", "rocket"], size=size)
    layout = SheetLayout(paper=paper, **layout_kwargs)
    manifest = print_attack_set(root, tmp_path / "sheets", layout, run_id="0badcafe")
    document = open_pdf(tmp_path / "sheets" / "sheets.pdf")
    dpi = manifest.layout_dpi
    assert math.isclose(size * 25.4 / dpi, manifest.pages[0].cells[0].box_mm[2])
    if "cell_mm" in layout_kwargs or not layout_kwargs.get("dpi"):
        # the chosen pitch is a whole number of quarter points within half a quarter point of the ideal
        assert abs(manifest.pages[0].cells[0].box_mm[2] / size - layout.cell_mm / size) <= MM_PER_PT / 8 + 1e-9
    expected_paper = PAPERS_MM[paper]
    assert all(abs(a - b) <= 25.4 / dpi / 2 + 1e-9 for a, b in zip(manifest.page_size_mm, expected_paper))
    for page in manifest.pages:
        render = render_page(document, page.index, dpi)
        assert render.shape[:2] == (round(manifest.page_size_mm[1] * dpi / 25.4),
                                    round(manifest.page_size_mm[0] * dpi / 25.4))
        for cell in page.cells:
            x, y, w, h = _boxes_px(cell.box_mm, dpi)
            assert (w, h) == cell.size_px
            np.testing.assert_array_equal(render[y:y + h, x:x + w], read_rgb(root / cell.file), err_msg=cell.file)


def test_manifest_round_trip_and_content(printed, attack_dir):
    out, manifest = printed
    assert read_manifest(out / "manifest.json") == manifest
    assert manifest.run_id == "cafe0123" and manifest.model == "efficientnet_lite0"
    cells = manifest.cells()
    assert [cell.index for _, cell in cells] == list(range(2 * len(SOURCES)))
    width, height = manifest.page_size_mm
    for page in manifest.pages:
        assert tuple(marker.id for marker in page.markers) == marker_ids(manifest.run_id, page.index)
        assert {code.payload for code in page.qr_codes} == {qr_payload(manifest.run_id, page.index)}
        clean, adversarial = page.cells[0::2], page.cells[1::2]
        for left, right in zip(clean, adversarial):  # pairs side by side, same image
            assert (left.kind, right.kind) == ("clean", "adversarial")
            assert left.image_id == right.image_id and left.row == right.row and right.col == left.col + 1
            assert right.box_mm[0] > left.box_mm[0] + left.box_mm[2]
        boxes = [cell.box_mm for cell in page.cells]
        boxes += [(*m.corners_mm[0], manifest.marker_size_mm, manifest.marker_size_mm) for m in page.markers]
        boxes += [code.box_mm for code in page.qr_codes]
        for i, (x, y, w, h) in enumerate(boxes):
            assert 0 < x and x + w < width and 0 < y and y + h < height
            for (x2, y2, w2, h2) in boxes[i + 1:]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "overlapping page elements"
    for _, cell in cells:
        assert cell.sha256 == pixel_sha256(read_rgb(attack_dir / cell.file))
        assert cell.method == "bim" and cell.eps == 16.0 and cell.label_name == "tabby"
        assert cell.file == f"{'clean' if cell.kind == 'clean' else 'adv'}/{cell.image_id}.png"


@pytest.mark.parametrize("paper, layout_kwargs", [("a4", {"cell_mm": 45}), ("letter", {"cell_mm": 33, "columns": 4,
                                                                                      "rows": 4})])
def test_reference_dots_are_printed_where_the_manifest_says(tmp_path, paper, layout_kwargs):
    """At 300 dpi each dot's ink is a disc of its diameter centred on its manifest position, alone in
    its white zone (no cell, marker, code or label reaches into it); the read-back manifest validates."""
    root = make_attack_dir(tmp_path / "attack", ["chelsea", "coffee", "rocket"], size=64)
    print_attack_set(root, tmp_path / "sheets", SheetLayout(paper=paper, **layout_kwargs), run_id="0badcafe")
    manifest = read_manifest(tmp_path / "sheets" / "manifest.json")
    document = open_pdf(tmp_path / "sheets" / "sheets.pdf")
    for page in manifest.pages:
        assert len(page.reference_dots) >= 2 * len(page.cells)
        ink = 255 - render_page(document, page.index, 300).min(axis=2).astype(np.float64)
        # The bitmap is a whole number of pixels: its own pixels per mm on each axis.
        per_mm = np.array([ink.shape[1], ink.shape[0]]) / np.array(manifest.page_size_mm)
        for dot in page.reference_dots:
            low = np.floor((np.array(dot.centre_mm) - dot.clear_mm) * per_mm).astype(int)
            high = np.ceil((np.array(dot.centre_mm) + dot.clear_mm) * per_mm).astype(int)
            ys, xs = np.mgrid[low[1]:high[1], low[0]:high[0]]
            # Pixel centres at (i + 0.5) / per_mm mm.
            distance = np.hypot((xs + 0.5) / per_mm[0] - dot.centre_mm[0], (ys + 0.5) / per_mm[1] - dot.centre_mm[1])
            zone = distance <= dot.clear_mm - 0.1
            mass = ink[low[1]:high[1], low[0]:high[0]] * zone
            centroid = np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
            assert np.abs((centroid + 0.5) / per_mm - dot.centre_mm).max() < 0.05
            assert mass.sum() / 255 / per_mm.prod() == pytest.approx(math.pi * dot.diameter_mm ** 2 / 4, rel=0.05)
            assert mass[distance > dot.diameter_mm / 2 + 0.15].max() <= 5, "something printed in the white zone"


def test_qr_codes_decode_to_run_and_page(printed):
    out, manifest = printed
    document = open_pdf(out / "sheets.pdf")
    dpi = 150
    for page in manifest.pages:
        results = zxingcpp.read_barcodes(render_page(document, page.index, dpi))
        assert sorted(r.text for r in results) == [qr_payload(manifest.run_id, page.index)] * len(page.qr_codes)
        for result in results:  # each decoded code is where the manifest says
            position = result.position
            centre = np.mean([[p.x, p.y] for p in (position.top_left, position.top_right, position.bottom_right,
                                                   position.bottom_left)], axis=0) * 25.4 / dpi
            assert any(abs(centre[0] - (x + w / 2)) < 1 and abs(centre[1] - (y + h / 2)) < 1
                       for x, y, w, h in (code.box_mm for code in page.qr_codes))


@pytest.mark.parametrize("dpi", [40, 150])
def test_markers_detected_on_clean_render(printed, dpi):
    out, manifest = printed
    document = open_pdf(out / "sheets.pdf")
    detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_1000))
    for page in manifest.pages:
        render = render_page(document, page.index, dpi)
        corners, ids, _ = detector.detectMarkers(cv2.cvtColor(render, cv2.COLOR_RGB2GRAY))
        found = {int(i): c[0] for i, c in zip(ids.ravel(), corners)}
        assert sorted(found) == sorted(marker_ids(manifest.run_id, page.index))
        scale = np.array([render.shape[1] / manifest.page_size_mm[0], render.shape[0] / manifest.page_size_mm[1]])
        for marker in page.markers:
            # OpenCV puts the corner of a pixel-aligned square at the edge pixel's centre: ≤ 0.5 px off.
            expected = np.asarray(marker.corners_mm) * scale - 0.5
            assert np.abs(found[marker.id] - expected).max() <= 1.0, marker.corner


def test_many_images_make_many_pages_with_distinct_markers(tmp_path):
    images = []
    for index in range(7):
        path = tmp_path / f"img{index}.png"
        write_png(path, np.full((32, 48, 3), index * 30, dtype=np.uint8))
        images.append(SheetImage(path=path, image_id=f"img{index}"))
    manifest = write_sheets(images, tmp_path / "out", "feed", SheetLayout(columns=3, rows=1, cell_mm=30))
    assert [len(page.cells) for page in manifest.pages] == [3, 3, 1]
    ids = [marker.id for page in manifest.pages for marker in page.markers]
    assert len(set(ids)) == len(ids) == 12
    assert len(pdfium.PdfDocument(tmp_path / "out" / "sheets.pdf")) == 3
    cell = manifest.pages[0].cells[0]  # a non-square image keeps its shape, centred in its slot
    assert cell.size_px == (48, 32) and math.isclose(cell.box_mm[3] / cell.box_mm[2], 32 / 48)


def _image(path: Path, array: np.ndarray, mode: str | None = None) -> SheetImage:
    Image.fromarray(array, mode).save(path)
    return SheetImage(path=path, image_id=path.stem)


def test_bad_input_raises_clear_errors(tmp_path, attack_dir):
    rgb = square_resize(SOURCES["chelsea"](), 64)
    good = _image(tmp_path / "good.png", rgb)
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    cases = {
        "nothing to print": ([], SheetLayout()),
        "expected 8-bit RGB": ([_image(tmp_path / "grey.png", rgb[..., 0])], SheetLayout()),
        "mode RGBA": ([_image(tmp_path / "rgba.png", np.dstack([rgb, rgb[..., :1]]))], SheetLayout()),
        "not a readable image": ([SheetImage(path=broken, image_id="broken")], SheetLayout()),
        "no such image": ([SheetImage(path=tmp_path / "missing.png", image_id="missing")], SheetLayout()),
        "choose a smaller --cell-mm": ([good], SheetLayout(cell_mm=400)),
        "unknown paper": ([good], SheetLayout(paper="a3")),
        "positive length": ([good], SheetLayout(margin_mm=-1)),
        "one run's marker ids cover 250 pages": ([good] * 251, SheetLayout(columns=1, rows=1)),
    }
    for message, (images, layout) in cases.items():
        with pytest.raises(InputError, match=message):
            layout_sheets(images, "run", layout)
    with pytest.raises(InputError, match="number of columns must be even"):
        print_attack_set(attack_dir, tmp_path / "odd", SheetLayout(columns=3))
    with pytest.raises(InputError, match="not an attack folder"):
        print_attack_set(tmp_path, tmp_path / "none")


def test_cli_print(tmp_path, attack_dir, capsys):
    out = tmp_path / "sheets"
    assert main(["print", str(attack_dir), "--out", str(out), "--grid", "2x2", "--run-id", "beef", "--paper",
                 "letter"]) == 0
    manifest = read_manifest(out / "manifest.json")
    assert manifest.run_id == "beef" and manifest.paper == "letter"
    assert [len(page.cells) for page in manifest.pages] == [4, 4]
    assert str(out / "sheets.pdf") in capsys.readouterr().out
    assert main(["print", str(attack_dir), "--out", str(out), "--cell-mm", "500"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("physadv print: error:") and error.count("\n") == 1 and "Traceback" not in error
    # A plain image folder prints too, one cell per image.
    assert main(["print", str(attack_dir / "clean"), "--out", str(tmp_path / "plain"), "--grid", "3x3"]) == 0
    plain = read_manifest(tmp_path / "plain" / "manifest.json")
    assert {cell.kind for _, cell in plain.cells()} == {"clean"} and len(plain.cells()) == len(SOURCES)
