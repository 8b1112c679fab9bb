"""Issue 23, item 5: inputs that gave wrong results (or silently ignored the user) now give the right
result or one clear line. Each test failed on the code before the fix."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_fixtures import DIGITS, copy_of, error_line, run_cli
from physadv.errors import InputError
from physadv.images import read_rgb, write_png
from physadv.lab.store import LOCK_FILE, STORE_FILE

TOO_LARGE_SEEDS = [str(2**64), str(2**63), "-1", "1" + "0" * 5000]


def files_in(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


# --- --out '' ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["attack", "digits", *DIGITS, "--limit", "1", "--out", ""],
    ["experiment", *DIGITS, "--images", "digits", "--limit", "2", "--out", ""],
    ["print", "adv", "--out", ""],
    ["photograph", "sheets.pdf", "--out", ""],
    ["capture", "photos", "--manifest", "manifest.json", "--out", ""],
    ["chart", "--out", ""],
    ["compare", *DIGITS, "--out", ""],
    ["compare-models", "digits", "--out", ""],
    ["demo", "--out", ""],
    ["run", "new", ""],
    ["report", ""],
    ["live", "--headless", "--out", ""],
], ids=lambda argv: argv[0])
def test_an_empty_out_is_refused_rather_than_the_current_folder(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(argv, capsys)
    assert code == 2 and "empty path" in error_line(argv[0], err)
    assert not files_in(tmp_path)


# --- seeds ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["attack", "digits", *DIGITS, "--out", "o"], ["experiment", "--out", "o"], ["photograph", "x.pdf", "--out", "o"],
    ["train-defence", *DIGITS, "--defence", "pgd", "--out", "o.pt"], ["compare", "--out", "o"],
    ["compare-models", "digits", "--out", "o"], ["demo", "--out", "o"], ["run", "new", "o"],
], ids=lambda argv: argv[0])
@pytest.mark.parametrize("seed", TOO_LARGE_SEEDS, ids=lambda seed: seed[:24])
def test_every_verb_takes_seeds_in_0_to_2_63_only(tmp_path, monkeypatch, capsys, argv, seed):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli([*argv, "--seed", seed], capsys)
    line = error_line(argv[0], err)
    assert code == 2 and "--seed: must be a whole number in 0..2**63 - 1" in line and len(line) < 300
    assert not files_in(tmp_path)


def test_an_attack_folder_reads_back_the_largest_seed(tmp_path, capsys, digits_classifier):
    argv = ["attack", "digits", *DIGITS, "--method", "fgsm", "--limit", "1", "--seed", str(2**63 - 1),
            "--out", str(tmp_path / "o")]
    assert run_cli(argv, capsys)[0] == 0
    assert run_cli(argv, capsys)[0] == 0  # the re-run resumes from the record the first one wrote


# --- run ids ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["../../x", "a b/c", "", "/abs", "x" * 5000, ".hidden"])
def test_print_refuses_a_run_id_that_capture_would_refuse(tiny_lab, tmp_path, capsys, run_id):
    out = tmp_path / "sheets"
    code, err = run_cli(["print", str(tiny_lab["adv"]), "--run-id", run_id, "--out", str(out)], capsys)
    assert code == 2 and "not a plain name" in error_line("print", err)
    assert not (out / "sheets.pdf").exists() and not (tmp_path / "x").exists()


# --- models: NaN, logits and labels, sys.exit, repeated labels --------------------------------------------

def digits_weights_with_nan(path: Path) -> Path:
    from physadv.classifiers import load_classifier

    state = load_classifier("digits").model.state_dict()
    first = next(key for key, value in state.items() if value.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    torch.save(state, path)
    return path


FACTORY = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    from physadv.classifiers.external import ModelBundle

    class Net(nn.Module):
        def __init__(self, outputs, fill=None):
            super().__init__()
            self.linear = nn.Linear(3, outputs)
            self.fill = fill

        def forward(self, x):
            logits = self.linear(x.mean(dim=(2, 3)))
            return logits if self.fill is None else torch.full_like(logits, self.fill)

    def nan_logits():
        return ModelBundle(Net(10, float("nan")), input_size=16)

    def five_logits_ten_labels():
        return ModelBundle(Net(5), input_size=16, labels=[str(d) for d in range(10)])

    def exits():
        sys.exit(0)

    def repeated_labels():
        return ModelBundle(Net(3), input_size=16, labels=["cat", "dog", "Cat"])
""")


@pytest.fixture
def factory(tmp_path) -> Path:
    path = tmp_path / "factory.py"
    path.write_text(FACTORY)
    return path


def test_nan_weights_do_not_classify(tmp_path, capsys, digits_classifier):
    weights = digits_weights_with_nan(tmp_path / "nan.pt")
    code, err = run_cli(["classify", "digits", *DIGITS, "--weights", str(weights), "--limit", "2"], capsys)
    assert code == 2 and "not finite" in error_line("classify", err)
    code, err = run_cli(["attack", "digits", *DIGITS, "--weights", str(weights), "--limit", "2",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "not finite" in error_line("attack", err)


@pytest.mark.parametrize("function, expected", [
    ("nan_logits", "not finite"),
    ("five_logits_ten_labels", "shape (2, 5)"),
    ("exits", "sys.exit(0)"),
    ("repeated_labels", "repeats class 0"),
])
def test_a_factory_must_give_one_finite_logit_per_distinct_label(factory, capsys, function, expected):
    code, err = run_cli(["classify", "digits", "--model", f"{factory}:{function}", "--limit", "2"], capsys)
    assert code == 2 and expected in error_line("classify", err)


def test_a_factory_file_calling_sys_exit_is_an_error(tmp_path, capsys):
    path = tmp_path / "quits.py"
    path.write_text("import sys\nsys.exit(0)\n")
    code, err = run_cli(["classify", "digits", "--model", f"{path}:f", "--limit", "2"], capsys)
    assert code == 2 and "sys.exit(0)" in error_line("classify", err)


@pytest.mark.parametrize("names", [["zero", "one", "zero"], ["Zero", "one", "zero"], ["tabby cat", "x", "tabby_Cat"]])
def test_a_label_file_naming_a_class_twice_is_refused(tmp_path, capsys, digits_classifier, names):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(names + [str(d) for d in range(3, 10)]) + "\n")
    code, err = run_cli(["classify", "digits", *DIGITS, "--labels", str(labels), "--limit", "2"], capsys)
    assert code == 2 and "repeats class" in error_line("classify", err)


def test_a_label_file_of_imagenet_names_keeps_imagenet(tmp_path):
    from physadv.classifiers.external import read_label_file
    from physadv.labels import imagenet_labels

    path = tmp_path / "imagenet.txt"
    path.write_text("\n".join(imagenet_labels().names))  # 'cardigan' twice: a dog and a sweater
    assert read_label_file(path, 1000) is imagenet_labels()


# --- --target with an untargeted method -------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["attack", "digits", *DIGITS, "--method", "fgsm", "--target", "3", "--limit", "2"],
    ["attack", "digits", *DIGITS, "--method", "ll", "--target", "3", "--limit", "2"],
    ["experiment", *DIGITS, "--images", "digits", "--methods", "fgsm,bim", "--target", "3", "--limit", "2"],
], ids=["attack fgsm", "attack ll", "experiment fgsm,bim"])
def test_a_target_for_an_untargeted_method_is_refused(tmp_path, capsys, digits_classifier, argv):
    out = tmp_path / "o"
    code, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 2 and "target class goes with the targeted method only" in error_line(argv[0], err)
    assert not out.exists()


def test_a_session_plan_with_a_target_for_fgsm_is_refused(tmp_path, capsys, digits_classifier):
    config = tmp_path / "lab.toml"
    config.write_text('model = "digits"\nimages = ["digits"]\nlimit = 2\ntransforms = {}\n'
                      '[[attacks]]\nmethod = "fgsm"\neps = 8\ntarget = "3"\n')
    code, err = run_cli(["run", "new", str(tmp_path / "run"), "--config", str(config)], capsys)
    assert code == 2 and "targeted method only" in error_line("run", err)
    assert not (tmp_path / "run" / "config.json").exists()


# --- float TIFFs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_a_float_tiff_is_read_in_its_range(tmp_path, scale):
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = tmp_path / "float.tif"
    Image.fromarray(ramp * np.float32(scale), mode="F").save(path)
    pixels = read_rgb(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    np.testing.assert_array_equal(pixels[..., 0], np.round(ramp * 255).astype(np.uint8))


@pytest.mark.parametrize("values", [[-1.0, 0.5], [0.0, 300.0], [0.0, float("nan")], [0.0, float("inf")]])
def test_a_float_tiff_outside_both_ranges_is_refused(tmp_path, values):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([values] * 2, dtype=np.float32), mode="F").save(path)
    with pytest.raises(InputError, match="float images are read in"):
        read_rgb(path)


# --- print checks the attack record's pixel hashes --------------------------------------------------------

@pytest.mark.parametrize("folder", ["clean", "adv"])
def test_print_refuses_an_image_other_than_the_attack_record_says(tiny_lab, tmp_path, capsys, folder):
    lab = copy_of(tiny_lab, tmp_path)
    png = sorted((lab["adv"] / folder).glob("*.png"))[0]
    pixels = read_rgb(png)
    pixels[0, 0] ^= 1  # one level in one pixel
    write_png(png, pixels)
    out = tmp_path / "sheets2"
    code, err = run_cli(["print", str(lab["adv"]), "--out", str(out)], capsys)
    assert code == 2 and "pixel hash differs from the attack record" in error_line("print", err)
    assert not (out / "sheets.pdf").exists()


# --- capture state records --------------------------------------------------------------------------------

def edit_state(capture: Path, edit) -> Path:
    [path] = sorted((capture / ".state").glob("*.json"))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("edit", [
    lambda d: d["observations"][0].update(label=(d["observations"][0]["label"] + 1) % 10),
    lambda d: d["observations"][0].update(image_id="someone-else"),
    lambda d: d["observations"][0].update(kind="clean" if d["observations"][0]["kind"] != "clean" else "adversarial"),
    lambda d: d["observations"][0].update(classes=[0, 0, 0, 0, 0]),
    lambda d: d["observations"][0].update(classes=[9, 8, 7, 6, 15]),
    lambda d: d["observations"][0].update(probabilities=[0.1, 0.9, 0, 0, 0]),
    lambda d: d["observations"].append(d["observations"][0]),
    lambda d: d["observations"][0].update(colour="red"),
], ids=["label", "image", "kind", "repeated classes", "class beyond the model", "unsorted", "twice", "unknown key"])
def test_a_forged_capture_state_is_not_reused(tiny_lab, tmp_path, capsys, edit):
    lab = copy_of(tiny_lab, tmp_path)
    before = (lab["capture"] / "predictions.csv").read_text()
    state = edit_state(lab["capture"], edit)
    code, err = run_cli(["capture", str(lab["photos"]), "--manifest", str(lab["sheets"] / "manifest.json"),
                         "--out", str(lab["capture"])], capsys)
    assert code == 0 and "captured again" in err
    assert (lab["capture"] / "predictions.csv").read_text() == before
    assert "someone-else" not in state.read_text() and "colour" not in state.read_text()


def test_a_capture_state_whose_crop_is_gone_is_not_reused(tiny_lab, tmp_path, capsys):
    lab = copy_of(tiny_lab, tmp_path)
    crop = sorted((lab["capture"] / "crops").rglob("*.png"))[0]
    crop.unlink()
    code, err = run_cli(["capture", str(lab["photos"]), "--manifest", str(lab["sheets"] / "manifest.json"),
                         "--out", str(lab["capture"])], capsys)
    assert code == 0 and "captured again" in err and crop.is_file()


# --- repeated methods and ε -------------------------------------------------------------------------------

def test_repeated_methods_and_eps_give_each_row_once(tmp_path, capsys, digits_classifier):
    base = ["experiment", *DIGITS, "--images", "digits", "--limit", "4", "--transforms", "blur",
            "--strengths", "blur=1", "--json"]
    assert run_cli([*base, "--methods", "fgsm,bim,fgsm", "--eps", "16,8,16.0", "--out", str(tmp_path / "a")],
                   capsys)[0] == 0
    assert run_cli([*base, "--methods", "fgsm,bim", "--eps", "16,8", "--out", str(tmp_path / "b")], capsys)[0] == 0
    repeated, once = (json.loads((tmp_path / name / "results.json").read_text())["rows"] for name in "ab")
    assert repeated == once and len(once) == 2 * 2 * 2  # methods × ε × cases


# --- parts of the model's classes only --------------------------------------------------------------------

def test_an_experiment_part_with_a_class_the_model_lacks_is_refused(tmp_path, capsys, monkeypatch, digits_classifier):
    out = tmp_path / "exp"
    argv = ["experiment", *DIGITS, "--images", "digits", "--limit", "4", "--batch-size", "4", "--methods", "fgsm",
            "--eps", "16", "--transforms", "blur", "--strengths", "blur=1", "--out", str(out)]

    def interrupted(*_):
        raise KeyboardInterrupt  # once the parts are written, before they become rows

    with monkeypatch.context() as patch:
        patch.setattr("physadv.experiment._attack_rows", interrupted)
        assert run_cli(argv, capsys)[0] == 130
    [part] = sorted(out.rglob("*.npz"))
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["adv_classes"][0, 0] = 999  # a class of ImageNet, not of the 10 digits
    np.savez(part.with_suffix(""), **arrays)
    code, err = run_cli(argv, capsys)
    assert code == 2 and "'adv_classes'" in error_line("experiment", err)
    assert json.loads((out / "results.json").read_text())["rows"] == []


@pytest.mark.parametrize("edit, expected", [
    (lambda image: image["adv_top5"][0].update(index=999), "class 999 of a model with 10 classes"),
    (lambda image: image.update(label=(image["label"] + 1) % 10, label_name=str((image["label"] + 1) % 10)),
     "where the images have"),
    (lambda image: image["clean_top5"][0].update(name="cat"), "which the model names"),
], ids=["class beyond the model", "another label", "another class name"])
def test_an_attack_part_that_does_not_fit_the_images_is_refused(tmp_path, capsys, monkeypatch, digits_classifier,
                                                                edit, expected):
    out = tmp_path / "adv"
    argv = ["attack", "digits", *DIGITS, "--method", "fgsm", "--limit", "4", "--batch-size", "2", "--out", str(out)]

    def interrupted(*_):
        raise KeyboardInterrupt  # once every batch has its part, before they are merged

    with monkeypatch.context() as patch:
        patch.setattr("physadv.attackset._merge", interrupted)
        assert run_cli(argv, capsys)[0] == 130
    part = sorted((out / ".parts").glob("*.json"))[0]
    images = json.loads(part.read_text())
    edit(images[0])
    part.write_text(json.dumps(images))
    code, err = run_cli(argv, capsys)
    assert code == 2 and expected in error_line("attack", err)


# --- a lock whose holder was killed -----------------------------------------------------------------------

def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def hold_lock(run: Path, holder: str) -> subprocess.Popen:
    """A process holding ``RUN/.lock`` as an image-reading worker of a killed command does, the file
    naming ``holder``."""
    (run / LOCK_FILE).write_text(holder)
    script = ("import fcntl, sys, time\nf = open(sys.argv[1], 'a+')\nfcntl.flock(f, fcntl.LOCK_EX)\n"
              "print('held', flush=True)\ntime.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(run / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_lock_whose_holder_was_killed_does_not_refuse_a_re_run(tiny_lab, tmp_path, capsys):
    lab = copy_of(tiny_lab, tmp_path)
    worker = hold_lock(lab["adv"], f"`physadv attack` (pid {dead_pid()} on {socket.gethostname()})")
    try:
        code, err = run_cli(["status", str(lab["adv"])], capsys)  # status reads without the lock: a writer
        code, err = run_cli(["report", str(lab["adv"])], capsys)
        assert code == 0, err
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("holder", ["alive", "elsewhere", "older physadv"])
def test_a_lock_whose_holder_may_be_alive_still_refuses(tiny_lab, tmp_path, capsys, holder):
    lab = copy_of(tiny_lab, tmp_path)
    text = {"alive": f"`physadv attack` (pid {os.getpid()} on {socket.gethostname()})",
            "elsewhere": f"`physadv attack` (pid {dead_pid()} on another-{socket.gethostname()})",
            "older physadv": f"`physadv attack` (pid {dead_pid()})"}[holder]
    worker = hold_lock(lab["adv"], text)
    try:
        code, err = run_cli(["report", str(lab["adv"])], capsys)
        assert code == 1 and "is in use by `physadv attack`" in error_line("report", err)
    finally:
        worker.kill()
        worker.wait()


# --- attack names in a run store --------------------------------------------------------------------------

def rename_attack(store: Path, name: str, tables=("attacks", "images", "pages", "cells", "photos", "predictions")):
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA foreign_keys=OFF")
        old = db.execute("SELECT name FROM attacks").fetchone()[0]
        for table in tables:
            db.execute(f"UPDATE {table} SET {'name' if table == 'attacks' else 'attack'} = ? WHERE "
                       f"{'name' if table == 'attacks' else 'attack'} = ?", (name, old))
        db.execute("UPDATE results SET attack = ? WHERE kind = 'capture' AND attack = ?", (name, old))


@pytest.mark.parametrize("verb", ["status", "evaluate", "report"])
@pytest.mark.parametrize("name, tables", [
    ("../../../x", ("attacks", "images", "pages", "cells", "photos", "predictions")),
    ("/etc", ("attacks", "images", "pages", "cells", "photos", "predictions")),
    ("x", ("predictions",)),  # a plain name, but of no recorded attack: its rows would count twice
])
def test_a_run_store_naming_an_attack_out_of_the_rules_is_refused(tiny_lab, tmp_path, capsys, verb, name, tables):
    lab = copy_of(tiny_lab, tmp_path)
    rename_attack(lab["adv"] / STORE_FILE, name, tables)
    code, err = run_cli([verb, str(lab["adv"])], capsys)
    assert code == 2 and "the store is damaged or was edited" in error_line(verb, err)
    assert not (lab["adv"] / "report").exists()


def test_run_continue_refuses_a_store_recording_an_attack_it_did_not_plan(tmp_path, capsys, digits_classifier):
    config = tmp_path / "lab.toml"
    config.write_text('model = "digits"\nimages = ["digits"]\nlimit = 2\nphotos_per_page = 0\ntransforms = {}\n'
                      'adversariality_samples = 2\n[[attacks]]\nmethod = "fgsm"\neps = 32\n')
    run = tmp_path / "run"
    assert run_cli(["run", "new", str(run), "--config", str(config)], capsys)[0] == 0
    with sqlite3.connect(run / STORE_FILE) as db:  # a copy of the attack under another (plain) name
        db.execute("INSERT INTO attacks SELECT 'fgsm-eps33', method, eps, alpha, iterations, eot, model, weights, "
                   "weights_sha256, folder, adversariality FROM attacks")
    code, err = run_cli(["run", "continue", str(run)], capsys)
    assert code == 2 and "fgsm-eps33" in error_line("run", err) and "does not plan" in err
