import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from physadv.attackset import read_attack_set
from physadv.cli.main import main
from physadv.images import read_rgb, write_png

REQUIRED_ROW_KEYS = {"method", "eps", "transform", "strength", "n_images", "top1_clean", "top1_adv",
                     "top1_transformed", "destruction_top1", "destruction_top5", "destruction_top1_n",
                     "destruction_top5_n", "case"}


def test_attack_writes_clean_and_adversarial_pngs_and_resumes(tmp_path, digits_classifier, capsys):
    out = tmp_path / "adv"
    args = ["attack", "digits", "--model", "digits", "--method", "bim", "--eps", "16", "--limit", "6",
            "--batch-size", "4", "--out", str(out)]
    assert main(args) == 0
    record = read_attack_set(out)
    assert len(record.images) == 6 and record.settings.iterations == 20
    for image in record.images:
        clean, adversarial = read_rgb(out / "clean" / image.file), read_rgb(out / "adv" / image.file)
        assert clean.shape == adversarial.shape == (64, 64, 3)
        assert np.abs(clean.astype(int) - adversarial.astype(int)).max() <= 16
        assert image.label_name == str(image.label) and len(image.adv_top5) == 5
    per_image = json.loads((out / "attack.json").read_text())["images"][0]
    assert {"file", "label", "clean_top5", "adv_top5", "method", "eps", "iterations", "model"} <= set(per_image)
    # Interrupted run: drop the last images from the record; a re-run attacks only those again.
    (out / "adv" / record.images[-1].file).unlink()
    from physadv.attackset import write_attack_set
    write_attack_set(out, record.with_images(record.images[:4]))
    finished = [out / folder / image.file for image in record.images[:4] for folder in ("clean", "adv")]
    before = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in finished}
    assert main(args) == 0
    assert read_attack_set(out) == record
    assert (out / "adv" / record.images[-1].file).is_file()
    # Batch 0 was finished: its PNGs are the very files it wrote (a rewrite is a new inode), not written again.
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in finished} == before
    # Different settings into the same folder are refused, not mixed.
    assert main(args[:-2] + ["--eps", "8", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err


def test_classify_json_reports_accuracy(tmp_path, digits_classifier, capsys):
    assert main(["classify", "digits", "--model", "digits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"top1", "top5", "n", "images"} <= set(data)
    assert data["n"] == 450 and data["top1"] >= 0.97 and data["top5"] >= data["top1"]


def test_experiment_writes_the_contract_rows_and_resumes(tmp_path, digits_classifier, capsys):
    out = tmp_path / "exp"
    args = ["experiment", "--model", "digits", "--images", "digits", "--limit", "16", "--methods", "fgsm,bim",
            "--eps", "16", "--transforms", "brightness,jpeg", "--strengths", "jpeg=50", "--out", str(out)]
    assert main(args) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 2 * (4 + 1) * 2  # methods × strengths × cases
    for row in rows:
        assert REQUIRED_ROW_KEYS <= set(row)
        for key in ("top1_clean", "top1_adv", "top1_transformed", "destruction_top1"):
            assert row[key] is None or 0 <= row[key] <= 1
    with open(out / "results.csv") as stream:
        assert len(list(csv.DictReader(stream))) == len(rows)
    # An interrupted run kept only the first attack's rows: the re-run adds the rest, no duplicates.
    data = json.loads((out / "results.json").read_text())
    data["rows"] = [r for r in rows if r["method"] == "fgsm"]
    (out / "results.json").write_text(json.dumps(data))
    assert main(args) == 0
    resumed = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(map(json.dumps, resumed)) == sorted(map(json.dumps, rows))


@pytest.mark.parametrize("args, message", [
    (["classify", "/no/such/folder"], "no such file or folder"),
    (["attack", "samples", "--eps", "-3", "--out", "x"], "eps must be"),
    (["attack", "samples", "--method", "target", "--out", "x"], "needs --target"),
    (["experiment", "--methods", "fgsm,pgd"], "unknown method"),
    (["experiment", "--strengths", "fog=1"], "not among --transforms"),
    (["classify", "samples", "--model", "nope"], "unknown model"),
    (["classify", "samples", "--label", "unicorn"], "unknown class"),
    (["classify", "samples", "--device", "cuda:7"], "CUDA is not available|cuda:7"),
])
def test_user_mistakes_are_one_line_errors_with_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert __import__("re").search(message, err)


def test_unreadable_image_is_named(tmp_path, capsys):
    (tmp_path / "cat.jpg").write_bytes(b"garbage")
    assert main(["classify", str(tmp_path)]) == 2
    assert "cat.jpg: not a readable image" in capsys.readouterr().err


def test_python_dash_m_and_every_verb_have_help(capsys):
    out = subprocess.run([sys.executable, "-m", "physadv", "--help"], capture_output=True, text=True, check=True).stdout
    verbs = ["models", "classify", "attack", "experiment", "compare", "print", "photograph", "capture", "live",
             "evaluate", "report", "status", "demo", "run"]
    assert all(v in out for v in verbs)
    for verb in verbs:
        with pytest.raises(SystemExit) as exit_:
            main([verb, "--help"])
        assert exit_.value.code == 0 and "example" in capsys.readouterr().out


def test_models_lists_offline_availability(capsys):
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert models["efficientnet_lite0"]["usable"] and models["digits"]["usable"]
    assert {"inception_v3", "vgg16", "resnet50"} <= set(models)


def test_images_without_labels_are_refused_for_untargeted_attacks(tmp_path, capsys):
    write_png(tmp_path / "holiday.png", np.zeros((30, 30, 3), np.uint8))
    assert main(["attack", str(tmp_path), "--method", "fgsm", "--out", str(tmp_path / "o")]) == 2
    assert "no label for holiday" in capsys.readouterr().err


def test_eot_options_of_attack_and_experiment(tmp_path, digits_classifier):
    out = tmp_path / "adv-eot"
    assert main(["attack", "digits", "--model", "digits", "--limit", "3", "--eps", "32", "--iterations", "3",
                 "--eot", "athalye2018", "--eot-samples", "2", "--out", str(out)]) == 0
    record = read_attack_set(out)
    assert record.settings.method == "bim+eot" and record.settings.eot == {"distribution": "athalye2018",
                                                                           "samples": 2}
    exp = tmp_path / "exp-eot"
    assert main(["experiment", "--model", "digits", "--images", "digits", "--limit", "4", "--methods", "bim",
                 "--eps", "32", "--iterations", "3", "--transforms", "noise", "--strengths", "noise=10",
                 "--eot", "photo", "--eot-samples", "2", "--adversariality-samples", "5", "--out", str(exp)]) == 0
    rows = json.loads((exp / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"bim", "bim+eot"}
    assert all(0 <= r["adversariality"] <= 1 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["experiment", "--strengths", "blur=-1"], "must be ≥ 0"),
    (["experiment", "--transforms", "noise", "--strengths", "noise=inf"], "finite"),
    (["experiment", "--transforms", "jpeg", "--strengths", "jpeg=0"], "1..100"),
])
def test_bad_strengths_are_refused_before_any_work(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--limit", "--batch-size"])
def test_counts_below_one_are_usage_errors(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["attack", "samples", option, "0", "--out", "x"])
    assert exit_.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_resuming_an_attack_with_another_target_is_refused(tmp_path, digits_classifier, capsys):
    out = tmp_path / "adv"
    base = ["attack", "digits", "--model", "digits", "--method", "target", "--eps", "16", "--iterations", "2",
            "--limit", "2", "--out", str(out)]
    assert main(base + ["--target", "3"]) == 0
    assert main(base + ["--target", "5"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_experiment_refuses_a_folder_of_another_configuration(tmp_path, digits_classifier, capsys):
    args = ["experiment", "--model", "digits", "--images", "digits", "--limit", "4", "--methods", "fgsm",
            "--eps", "16", "--out", str(tmp_path)]
    assert main(args + ["--transforms", "noise", "--strengths", "noise=5"]) == 0
    assert main(args + ["--transforms", "blur", "--strengths", "blur=1"]) == 2
    assert "another configuration" in capsys.readouterr().err
