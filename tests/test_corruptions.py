"""ImageNet-C: the registry, seeding without global state, mCE arithmetic, and the experiment's rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from physadv.channel import IMAGENET_C, TRANSFORMS, ChannelTransform, expand_transforms
from physadv.cli.main import main
from physadv.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from physadv.errors import InputError
from physadv.metrics import corruption_errors

HENDRYCKS_2019 = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
                  "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
                  "jpeg_compression"]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((6, 6, 1), dtype=np.uint8))


def test_registry_is_the_papers_15_corruptions_at_5_severities():
    assert list(CORRUPTIONS) == HENDRYCKS_2019 and SEVERITIES == (1, 2, 3, 4, 5)
    names = expand_transforms(["jpeg", IMAGENET_C, f"{IMAGENET_C}:fog"])
    assert names == ["jpeg"] + [f"{IMAGENET_C}:{name}" for name in HENDRYCKS_2019]
    assert all(TRANSFORMS[name].default_strengths == (1, 2, 3, 4, 5) for name in names[1:])
    for bad in (0, 6, 2.5):
        with pytest.raises(InputError, match="severity"):
            ChannelTransform(f"{IMAGENET_C}:fog", bad)


def test_seeded_by_the_caller_and_the_global_rng_untouched(image):
    np.random.seed(123)
    state = np.random.get_state()
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "frost", "fog"):
        first = corrupt(image, name, 2, seed=7)
        assert np.array_equal(first, corrupt(image, name, 2, seed=7))
        assert not np.array_equal(first, corrupt(image, name, 2, seed=8))
        assert first.shape == image.shape and first.dtype == np.uint8
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    batch = torch.from_numpy(np.stack([image, image])).permute(0, 3, 1, 2).float() / 255
    out = ChannelTransform(f"{IMAGENET_C}:shot_noise", 5)(batch, torch.Generator().manual_seed(0))
    again = ChannelTransform(f"{IMAGENET_C}:shot_noise", 5)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and not torch.equal(out[0], out[1])  # one seed per image
    with pytest.raises(InputError, match="at least 32"):
        corrupt(image[:16, :16], "fog", 1, seed=0)


def test_corruption_errors_by_hand():
    errors = {"fog": {1: 0.2, 2: 0.4}, "snow": {1: 0.5, 2: 0.5}}
    baseline = {"fog": {1: 0.4, 2: 0.8}, "snow": {1: 0.25, 2: 0.25}, "frost": {1: 0.9}}
    ce, mce = corruption_errors(errors, baseline)
    assert ce == pytest.approx({"fog": 0.6 / 1.2, "snow": 1.0 / 0.5}) and mce == pytest.approx((0.5 + 2.0) / 2)
    assert corruption_errors({"fog": {1: 0.3}}, {"fog": {1: 0.0}}) == ({"fog": None}, None)
    with pytest.raises(InputError, match="severity 2"):
        corruption_errors(errors, {"fog": {1: 0.4}, "snow": {1: 0.2, 2: 0.2}})


def test_experiment_imagenet_c_rows_and_mce_against_itself(tmp_path, digits_classifier, capsys):
    common = ["--model", "digits", "--images", "digits", "--limit", "8", "--eps", "16",
              "--transforms", "imagenet-c:fog,imagenet-c:contrast,jpeg", "--strengths", "imagenet-c:fog=1,5",
              "--strengths", "imagenet-c:contrast=5", "--strengths", "jpeg=50"]
    assert main(["experiment", *common, "--methods", "none", "--out", str(tmp_path / "base")]) == 0
    assert main(["experiment", *common, "--methods", "fgsm", "--baseline", str(tmp_path / "base" / "results.json"),
                 "--out", str(tmp_path / "model")]) == 0
    assert "mCE 1.000 relative to digits" in capsys.readouterr().out
    results = json.loads((tmp_path / "model" / "results.json").read_text())
    keys = {(r["method"], r["transform"], r["strength"]) for r in results["rows"] if r["case"] == "average"}
    for method in ("none", "fgsm"):
        assert {(method, "imagenet-c:fog", 1.0), (method, "imagenet-c:fog", 5.0),
                (method, "imagenet-c:contrast", 5.0), (method, "jpeg", 50.0)} <= keys
    clean = {r["transform"] + str(r["strength"]): r["top1_transformed"] for r in results["rows"]
             if r["method"] == "none" and r["case"] == "average"}
    summary = results["corruptions"]
    assert summary["per_corruption"]["fog"]["accuracy"] == pytest.approx(
        (clean["imagenet-c:fog1.0"] + clean["imagenet-c:fog5.0"]) / 2)
    assert summary["mce"] == pytest.approx(1.0) and summary["baseline"]["model"] == "digits"
    assert main(["experiment", *common[:4], "4", *common[5:], "--baseline", str(tmp_path / "base" / "results.json"),
                 "--out", str(tmp_path / "other")]) == 2  # measured on other images
    capsys.readouterr()
    uncovered = [arg.replace("imagenet-c:contrast=5", "imagenet-c:contrast=4,5") for arg in common]
    assert main(["experiment", *uncovered, "--methods", "fgsm", "--baseline", str(tmp_path / "base" / "results.json"),
                 "--out", str(tmp_path / "uncovered")]) == 2
    assert "no imagenet-c:contrast error at severity 4" in capsys.readouterr().err
    assert not (tmp_path / "uncovered" / ".parts").exists()  # refused before any batch was attacked
    from physadv.report import ReportData, write_report
    from physadv.metrics import format_fraction as rate_text
    from physadv.results import read_rows

    rows = read_rows(results["rows"], "results.json")
    html = write_report(ReportData("c", "digits", "now", rows, [], {}), tmp_path / "report").html.read_text()
    section = html[html.index("Common corruptions (ImageNet-C)"):html.index("Adversariality: EOT")]
    fog5 = next(r for r in results["rows"] if (r["method"], r["transform"], r["strength"], r["case"])
                == ("none", "imagenet-c:fog", 5.0, "average"))
    assert "<td>fog</td><td class=\"num\">" in section and rate_text(fog5["top1_transformed"], 8) in section
