"""physadv patch (Brown et al. 2017) on the digits CNN: held-out success against controls, printability,
resume after a kill, the patch's sheets through photograph → capture → evaluate, and refused input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from physadv.cli.main import main
from physadv.images import read_rgb
from physadv.results import PHOTO, PatchRow

PATCH_ARGS = ["patch", "digits", "--model", "digits", "--target", "3", "--limit", "100", "--holdout", "24",
              "--iterations", "150", "--area", "0.15,0.3", "--eval-areas", "0.3", "--seed", "1"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def patch_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("patch") / "p"
    assert main([*PATCH_ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def tiny_patch_dir(tmp_path_factory) -> Path:
    """A patch of 3 steps: enough for what reads and checks a patch folder."""
    out = tmp_path_factory.mktemp("tiny") / "p"
    assert main(["patch", "digits", "--model", "digits", "--target", "3", "--iterations", "3", "--limit", "16",
                 "--holdout", "5", "--eval-areas", "0.2", "--out", str(out)]) == 0
    return out


def rows_by(record_rows: list[dict]) -> dict[str, dict]:
    return {row["control"] or row["kind"]: row for row in record_rows}


@pytest.mark.slow
def test_a_targeted_patch_succeeds_far_above_its_controls(patch_dir):
    from physadv.patch.folder import read_patch_record

    record = read_patch_record(patch_dir)
    rows = rows_by(record.results)
    assert record.target == 3 and record.excluded_of_target_class > 0 and rows["patch"]["n"] == len(record.held_out)
    # Measured (seed 1): patch 0.8, noise 0.0, crop 0.35, clean 0.0 of 20 held-out images at area 0.3.
    assert rows["patch"]["target_success"] >= 0.6
    assert rows["patch"]["target_success"] >= max(rows["noise"]["target_success"], rows["crop"]["target_success"]) + 0.3
    assert rows["clean"]["target_success"] == 0.0  # images of the target class are left out
    assert {entry.id for entry in record.held_out}.isdisjoint(entry.id for entry in record.training)
    patch = read_rgb(patch_dir / "patch.png")
    assert patch.shape == (35, 35, 3) and record.delta_e00 > 0
    # The recorded placements reproduce the saved scenes.
    from physadv.images import to_tensor
    from physadv.patch.geometry import composite, shape_mask
    from physadv.images import quantise, to_uint8

    scene = record.scenes[0]
    clean = to_tensor(read_rgb(patch_dir / scene.files["clean"]))
    made = composite(clean, to_tensor(patch)[0], shape_mask("square", 35), torch.tensor([scene.corners]))
    assert np.abs(to_uint8(quantise(made))[0].astype(int) - read_rgb(patch_dir / scene.files["patch"])).max() <= 1


@pytest.mark.slow
def test_nps_lowers_the_delta_e_to_the_simulated_print(digits_classifier):
    from physadv.capture.calibrate import measured_channel
    from physadv.datasets import load_image_set, prepare
    from physadv.eot import identity
    from physadv.images import to_tensor, to_uint8
    from physadv.patch.printability import (PRINTABLE_GRID_LEVELS, SIMULATED_PRINT_GRID_LEVELS, mean_delta_e00,
                                            rgb_grid, simulated_print)
    from physadv.patch.train import PatchConfig, TrainingSet, train_patch
    from physadv.printouts.camera import apply_colour_response

    measured = measured_channel("lab")
    printable = torch.from_numpy(apply_colour_response(rgb_grid(PRINTABLE_GRID_LEVELS).numpy() * 255, measured) / 255)
    gamut = apply_colour_response(rgb_grid(SIMULATED_PRINT_GRID_LEVELS).numpy() * 255, measured)
    images = prepare(load_image_set(["digits"], digits_classifier.labels, limit=64), digits_classifier.image_size)
    data = TrainingSet(to_tensor([i.image for i in images]), torch.tensor([i.label for i in images]))
    delta_e = {}
    for weight in (0.0, 10.0):
        config = PatchConfig(target=3, patch_px=24, iterations=60, batch=8, nps_weight=weight, tv_weight=0.0)
        levels = to_uint8(train_patch(digits_classifier, data, config, identity(), printable.float()).patch[None])[0]
        delta_e[weight] = mean_delta_e00(levels.astype(float), simulated_print(levels, gamut))
    # Measured: 4.6 without NPS, 1.7 with weight 10 (the lab printer's gamut).
    assert delta_e[10.0] < 0.6 * delta_e[0.0], delta_e


@pytest.mark.slow
def test_a_killed_patch_run_resumes_to_the_same_patch(tmp_path):
    # Checkpoints every 25 steps: killed after the first, 75 steps before the end.
    args = ["-m", "physadv", "patch", "digits", "--model", "digits", "--target", "5", "--limit", "24",
            "--holdout", "4", "--iterations", "100", "--batch", "4", "--eval-areas", "0.25", "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, *args, str(killed)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint = killed / ".patch-state" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / "patch.json").exists(), "the run was not killed mid-training"
    steps = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < steps < 100
    assert main([*args[2:], str(killed)]) == 0
    assert main([*args[2:], str(tmp_path / "whole")]) == 0
    assert np.array_equal(read_rgb(killed / "patch.png"), read_rgb(tmp_path / "whole" / "patch.png"))
    first, second = (json.loads((tmp_path / name / "patch.json").read_text()) for name in ("killed", "whole"))
    assert first["results"] == second["results"] and first["fingerprint"] == second["fingerprint"]
    assert not checkpoint.parent.exists()


@pytest.mark.slow
def test_the_patch_sheet_is_found_and_verified_by_capture(patch_dir, tmp_path, capsys):
    assert main(["print", str(patch_dir), "--out", str(tmp_path / "sheets"), "--size-mm", "60"]) == 0
    sheet = tmp_path / "sheets" / "patch"
    assert main(["photograph", str(sheet / "sheets.pdf"), "--out", str(tmp_path / "photos"), "--n", "3",
                 "--resolution", "1080p"]) == 0
    capsys.readouterr()
    assert main(["capture", str(tmp_path / "photos"), "--manifest", str(sheet / "manifest.json"),
                 "--out", str(tmp_path / "captured")]) == 0
    assert "a patch sheet" in capsys.readouterr().err
    with open(tmp_path / "captured" / "predictions.csv") as stream:
        observed = list(csv.DictReader(stream))
    # One patch per page, each page photographed once: the patch and both controls found and checked.
    assert sorted((row["image_id"], row["kind"]) for row in observed) == [
        ("crop", "control"), ("noise", "control"), ("patch", "patch")]
    manifest = json.loads((sheet / "manifest.json").read_text())
    side = manifest["pages"][0]["cells"][0]["box_mm"][2]
    assert abs(side - 60) < 3  # the pixel rule snaps the size to a whole number of quarter points


@pytest.mark.slow
def test_scene_sheets_go_through_photograph_capture_and_evaluate(patch_dir, tmp_path, capsys):
    assert main(["print", str(patch_dir), "--out", str(tmp_path / "sheets")]) == 0
    scenes = tmp_path / "sheets" / "scenes"
    assert main(["photograph", str(scenes / "sheets.pdf"), "--out", str(tmp_path / "photos"), "--n", "2",
                 "--resolution", "1080p"]) == 0
    assert main(["capture", str(tmp_path / "photos"), "--manifest", str(scenes / "manifest.json"),
                 "--out", str(tmp_path / "captured")]) == 0
    results = json.loads((tmp_path / "captured" / "results.json").read_text())
    rows = rows_by(results["rows"])
    assert set(rows) == {"patch", "noise", "crop", "clean"}
    for row in rows.values():
        assert row["area"] == 0.3 and row["n"] == 8 and row["transform"] == "photo"  # 4 scenes a page, 2 photos
        assert row["kind"] in ("patch", "control", "clean")
        assert 0 <= row["target_success_digital"] <= 1 and 0 <= row["target_success_photo"] <= 1
    assert rows["patch"]["target_success_digital"] > rows["noise"]["target_success_digital"]
    capsys.readouterr()
    assert main(["evaluate", str(patch_dir)]) == 0
    table = capsys.readouterr().out
    assert "control:crop" in table and "area 0.3" in table and "photo" in table
    assert main(["report", str(patch_dir)]) == 0
    assert "Adversarial patch" in (patch_dir / "report" / "report.html").read_text()


@pytest.mark.slow
def test_classify_and_live_report_the_target(patch_dir, tmp_path, capsys):
    import cv2

    scenes = sorted((patch_dir / "scenes" / "patch" / "a0.3").glob("*.png"))
    assert main(["classify", str(patch_dir / "scenes" / "patch" / "a0.3"), "--model", "digits", "--target", "3",
                 "--workers", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    from physadv.patch.folder import read_patch_record

    success = rows_by(read_patch_record(patch_dir).results)["patch"]["target_success"]
    assert data["target"]["n"] == len(scenes) and data["target"]["hit_rate"] == pytest.approx(success)
    assert all(0 <= image["target_probability"] <= 1 for image in data["images"])
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (256, 256))
    for path in scenes[:6]:
        writer.write(cv2.resize(cv2.imread(str(path)), (256, 256), interpolation=cv2.INTER_NEAREST))
    writer.release()
    assert main(["live", "--camera", str(video), "--model", "digits", "--target", "3", "--headless",
                 "--out", str(tmp_path / "live")]) == 0
    summary = json.loads((tmp_path / "live" / "live.json").read_text())["target"]
    assert summary["frames"] == 6 and 0 <= summary["hits"] <= 6 and "top-1 in" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--area", "0,0.3"], "strictly between 0 and 1"),
    (["--area", "0.1,1.5"], "strictly between 0 and 1"),
    (["--eval-areas", "1"], "strictly between 0 and 1"),
    (["--target", "toaster"], "unknown class 'toaster'"),
])
def test_bad_patch_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    args = ["patch", "digits", "--model", "digits", "--target", "3", "--iterations", "2", "--limit", "8"]
    if extra[0] == "--target":
        args = args[:4] + args[6:]
    assert main([*args, *extra, "--out", str(tmp_path / "out")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def tampered(patch_dir: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(patch_dir, copy, ignore=shutil.ignore_patterns("report", ".lock"))
    record = json.loads((copy / "patch.json").read_text())
    change(record, copy)
    (copy / "patch.json").write_text(json.dumps(record))
    return copy


def _set(path: list, value):
    def change(record: dict, _folder: Path) -> None:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _repaint_scene(record: dict, folder: Path) -> None:
    scene = folder / record["scenes"][0]["files"]["patch"]
    pixels = read_rgb(scene)
    pixels[0, 0] = 255 - pixels[0, 0]
    from physadv.images import write_png

    write_png(scene, pixels)


@pytest.mark.parametrize("change, message", [
    (_set(["parameters", "area"], [0.1, 1.5]), "parameters.area[1]: 1.5 is outside"),
    (_set(["parameters", "area"], [0.0, 0.5]), "strictly between 0 and 1"),
    (_set(["parameters", "shape"], "star"), "is not one of"),
    (_set(["surprise"], 1), "unknown key"),
    (_set(["patches", 0, "print_file"], "../../etc/passwd"), "not a plain relative path"),
    (_set(["scenes", 0, "files", "patch"], "/tmp/x.png"), "not a plain relative path"),
    (_set(["scenes", 0, "sha256", "clean"], "0" * 64), "pixel hash differs"),
    (_set(["scenes", 0, "top1", "patch"], "3"), "expected a whole number"),
    (_set(["target"], 4), "differs from parameters.target"),
    (_set(["results", 0, "n"], -1), "outside"),
    (_set(["model"], "evil.py:make"), "a patch folder from another model"),
    (_repaint_scene, "pixel hash differs"),
])
def test_a_tampered_patch_json_is_refused_by_print(tiny_patch_dir, tmp_path, capsys, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)  # where a model named "evil.py:make" would be imported from, were it ever
    (tmp_path / "evil.py").write_text("open('IMPORTED', 'w').close()\ndef make():\n    pass\n")
    folder = tampered(tiny_patch_dir, tmp_path, change)
    assert main(["print", str(folder), "--out", str(tmp_path / "sheets")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "sheets").exists() and not (tmp_path / "IMPORTED").exists()


def test_a_patch_folder_for_another_model_is_refused_by_print(tiny_patch_dir, tmp_path, capsys):
    assert main(["print", str(tiny_patch_dir), "--model", "efficientnet_lite0", "--out", str(tmp_path / "sheets")]) == 2
    assert "made for digits, not efficientnet_lite0" in one_error_line(capsys)
    assert not (tmp_path / "sheets").exists()


def test_placements_keep_the_asked_area_and_stay_in_the_image():
    from physadv.patch.geometry import composite, sample_corners, shape_mask

    for shape in ("square", "circle"):
        mask = shape_mask(shape, 32)
        corners = sample_corners(64, (64, 64), (0.2, 0.2), 30.0, 0.0, float(mask.mean()),
                                 torch.Generator().manual_seed(0))
        assert corners.min() >= -1e-4 and corners.max() <= 64 + 1e-4
        # A white patch on black images: the lit fraction is the area the placement covers.
        covered = composite(torch.zeros(64, 3, 64, 64), torch.ones(3, 32, 32), mask, corners).mean(dim=(1, 2, 3))
        assert covered == pytest.approx(torch.full((64,), 0.2), abs=0.01)


def test_an_untargeted_circle_patch_is_rgba_and_prints_on_white(tmp_path):
    from PIL import Image

    from physadv.patch.folder import read_patch_record

    out = tmp_path / "circle"
    assert main(["patch", "digits", "--model", "digits", "--untargeted", "--shape", "circle", "--iterations", "3",
                 "--limit", "12", "--holdout", "4", "--eval-areas", "0.2", "--out", str(out)]) == 0
    record = read_patch_record(out)
    assert record.target is None and {row["kind"] for row in record.results} == {"clean", "patch", "control"}
    with Image.open(out / "patch.png") as image:
        assert image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
    side = alpha.shape[0]
    assert alpha[0, 0] == 0 and alpha[side // 2, side // 2] == 255
    on_paper = read_rgb(out / record.patch("patch").print_file)
    assert (on_paper[0, 0] == 255).all()  # outside the circle: white paper
    assert main(["print", str(out), "--out", str(tmp_path / "sheets")]) == 0
    cells = json.loads((tmp_path / "sheets" / "patch" / "manifest.json").read_text())["pages"]
    assert [page["cells"][0]["file"] for page in cells] == [f"print/{name}" for name in (
        "patch.png", "control-noise.png", "control-crop.png")]


def test_an_unfinished_patch_of_other_settings_is_not_overwritten(tmp_path, capsys):
    from physadv.patch.train import _save_checkpoint

    out = tmp_path / "p"
    patch = torch.full((3, 32, 32), 0.5, requires_grad=True)
    _save_checkpoint(out / ".patch-state" / "checkpoint.pt", "another run", 25, patch, torch.optim.Adam([patch]), {})
    before = (out / ".patch-state" / "checkpoint.pt").read_bytes()
    assert main(["patch", "digits", "--model", "digits", "--target", "3", "--iterations", "2", "--limit", "8",
                 "--out", str(out)]) == 2
    assert "unfinished patch made with other images or settings" in one_error_line(capsys)
    assert (out / ".patch-state" / "checkpoint.pt").read_bytes() == before and not (out / "patch.png").exists()


# --- typed patch rows ----------------------------------------------------------------------------------------

def make_patch_row(**change) -> PatchRow:
    row = dict(variant="noise", transform=PHOTO, area=0.3, target=3, target_name="3", n=8,
               target_success_digital=0.25, target_success_photo=0.125, top1_digital=0.5, top1_photo=0.375,
               top1_n=8, model="digits")
    return PatchRow(**(row | change))


@pytest.mark.parametrize("change, message", [
    ({"kind": "patch"}, "kind: 'patch' contradicts the row's other keys (expected 'control')"),
    ({"control": "crop"}, "control: 'crop' contradicts"),
    ({"goal": "untargeted"}, "goal: 'untargeted' contradicts"),
    ({"strength": 0.5}, "strength: 0.5 contradicts"),
    ({"eps": 8.0}, "eps: 8.0 contradicts"),
    ({"method": "control:paint"}, "method: 'control:paint' is not one of"),
    ({"area": 0}, "area: a patch covers more than none"),
    ({"n": -1}, "n: -1 is outside"),
    ({"target_success_photo": 1.5}, "target_success_photo: 1.5 is outside [0, 1]"),
    ({"target": "3"}, "target: expected a whole number"),
    ({"transform": "digital"}, "transform: a digital row has no photo measurement"),
    ({"destruction_top1": 0.5}, "unknown patch row key(s) 'destruction_top1'"),
])
def test_a_patch_row_read_from_a_file_is_checked(change, message):
    import re

    from physadv.errors import InputError
    from physadv.results import ResultRow, row_from_json

    row = make_patch_row()
    assert row_from_json(json.loads(json.dumps(row.to_json())), "r.json") == row
    assert (row.method, row.kind, row.control, row.goal, row.case, row.strength) == (
        "control:noise", "control", "noise", "target", "patch", 0.3)
    with pytest.raises(InputError, match=re.escape(message)):
        PatchRow.from_json(row.to_json() | change, "r.json")
    with pytest.raises(InputError, match="unknown row key"):  # a Kurakin row is never read from a patch row
        ResultRow.from_json(row.to_json(), "r.json")


def test_the_store_keeps_patch_rows_typed_beside_kurakin_rows(tmp_path):
    from physadv.errors import InputError
    from physadv.lab.session import headline
    from physadv.lab.store import RunStore
    from physadv.results import Case, ResultKind, ResultRow

    kurakin = ResultRow(method="bim", eps=16.0, transform="photo", strength=None, case=Case.AVERAGE, n_images=1,
                        top1_clean=1.0, top1_adv=0.0, top1_transformed=1.0, top5_clean=1.0, top5_adv=1.0,
                        top5_transformed=1.0, destruction_top1=1.0, destruction_top5=None, destruction_top1_n=1,
                        destruction_top5_n=0)
    patch = [make_patch_row(variant=variant) for variant in ("clean", "patch", "noise", "crop")]
    with RunStore(tmp_path) as store:
        store.record_results(ResultKind.CAPTURE, "bim-eps16", [kurakin])
        store.record_results(ResultKind.CAPTURE, "patch", patch)
        store.record_results(ResultKind.CAPTURE, "patch", patch)  # replaced, never duplicated
        assert store.rows(ResultKind.CAPTURE, "bim-eps16") == [kurakin]
        read = store.rows(ResultKind.CAPTURE, "patch")
        assert sorted(read, key=lambda r: r.variant) == sorted(patch, key=lambda r: r.variant)
        assert all(isinstance(r, PatchRow) for r in read)
        text = headline(store.rows(ResultKind.CAPTURE))
        assert "destruction top-1" in text and "target success = top-1 is 3" in text
        table = text[text.index("adversarial patch ("):].splitlines()[1:]
        assert [line.split()[0] for line in table] == ["patch", "control:noise", "control:crop", "clean"]
        with store.transaction() as db:  # a tampered row is refused on read, in one line
            db.execute("UPDATE results SET row = replace(row, '\"kind\": \"control\"', '\"kind\": \"patch\"') "
                       "WHERE attack = 'patch'")
        with pytest.raises(InputError, match="result row of capture patch.*kind: 'patch' contradicts"):
            store.rows(ResultKind.CAPTURE, "patch")


def test_a_patch_run_records_its_held_out_rows_in_its_store(tiny_patch_dir):
    from physadv.lab.store import RunStore
    from physadv.patch.folder import read_patch_record
    from physadv.results import DIGITAL, ResultKind

    record = read_patch_record(tiny_patch_dir)
    with RunStore(tiny_patch_dir, create=False) as store:
        rows = store.rows(ResultKind.PATCH, "patch")
        assert store.attack_names() == ["patch"] and store.attack_folder("patch") == "."
    assert all(isinstance(r, PatchRow) and r.transform == DIGITAL and r.target == 3 for r in rows)
    assert {(r.variant, r.area, r.n, r.target_success_digital) for r in rows} == {
        (row["control"] or row["kind"], row["area"], row["n"], row["target_success"]) for row in record.results}


def test_classify_images_gives_the_target_class_probabilities(digits_classifier):
    from physadv.classify import classify_images
    from physadv.datasets import index_image_set
    from physadv.errors import InputError

    images = index_image_set(["digits"], digits_classifier.labels, None, 12)
    plain = classify_images(digits_classifier, images, batch_size=5, progress=False)
    result = classify_images(digits_classifier, images, batch_size=5, progress=False, target=3)
    assert plain.target is None and plain.target_probabilities is None
    assert "target_probability" not in next(plain.records())
    # Where 3 is among an image's top-5, its probability there is the target's; elsewhere it is below the 5th.
    predictions, probabilities = result.predictions, result.target_probabilities
    assert probabilities.shape == (12,) and ((0 <= probabilities) & (probabilities <= 1)).all()
    for classes, top5, chosen in zip(predictions.classes, predictions.probabilities, probabilities):
        assert chosen == pytest.approx(top5[list(classes).index(3)]) if 3 in classes else chosen <= top5[-1]
    assert (predictions.classes == 3).any()  # the check above met the target at least once
    hits = int((result.predictions.top1 == 3).sum())
    assert result.target.to_json() == {"index": 3, "name": "3", "n": 12, "hits": hits, "hit_rate": hits / 12,
                                       "mean_probability": pytest.approx(float(probabilities.mean()))}
    assert [r["target_probability"] for r in result.records()] == pytest.approx(list(probabilities), abs=1e-5)
    with pytest.raises(InputError, match="target class 10 is not a class of digits"):
        classify_images(digits_classifier, images, progress=False, target=10)
    with pytest.raises(InputError, match="unknown class 'toaster'"):
        digits_classifier.labels.target("toaster")
