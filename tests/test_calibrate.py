"""Calibration chart → virtual camera with known parameters → physadv calibrate recovers them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from physadv.capture.calibrate import calibrate, profile_distribution
from physadv.errors import InputError
from physadv.images import write_png
from physadv.printouts.camera import apply_colour_response, photograph
from physadv.printouts.chart import CHART_FILE, chart_design, write_chart
from physadv.printouts.manifest import read_manifest
from physadv.printouts.pdf import open_pdf, render_page
from physadv.printouts.profiles import (MeasuredChannel, load_profile, profile_from_mapping, profile_to_toml,
                                        with_measured)

# Tolerances of a calibration (stated in the README): tone curve RMS in 0-255 levels, relative error
# of blur σ and of noise σ, mean CIEDE2000 of the colour response on the ColorChecker patches.
TONE_RMS, BLUR_REL, NOISE_REL, DELTA_E = 3.0, 0.2, 0.2, 2.0

# (gamma of the tone curve, black, white, blur σ mm, noise σ at black and at white, colour-matrix mixing).
# Blur σ ≥ 0.1 mm: below that, at 12 MP with the chart filling 70-90 % (≈ 8 photo px/mm), the
# virtual camera's own resampling (≈ 0.4 px, 0.05 mm) is no longer small against the channel's blur.
# Noise σ ≥ 1.5: below that, the rounding of the JPEG codec's colour conversion and DCT (≈ 0.3-0.4
# levels) is no longer small against it.
CHANNELS = {
    "sharp-quiet": (1.0, 20, 235, 0.11, 1.5, 2.5, 0.05),
    "soft-noisy": (1.3, 35, 220, 0.2, 2.0, 4.0, 0.12),
    "dark-contrasty": (0.8, 10, 245, 0.15, 1.5, 3.0, 0.0),
}


def known_channel(gamma, black, white, blur, noise_black, noise_white, mixing) -> MeasuredChannel:
    levels = np.linspace(0, 255, 12)
    tint = np.array([1.0, 0.97, 0.94])
    curve = tuple((float(v), *(float(c) for c in black + (white - black) * (v / 255) ** gamma * tint)) for v in levels)
    matrix = (1 - 2 * mixing) * np.eye(3) + mixing * (np.ones((3, 3)) - np.eye(3))
    return MeasuredChannel(curve, tuple(map(tuple, matrix)), blur, 0.0,
                           ((0.0, noise_black, noise_black, noise_black), (255.0, noise_white, noise_white, noise_white)),
                           (0.97, 1.03), (0.98, 1.02), (0.98, 1.02), 8.0, 1, 0.0)


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chart")
    return folder, write_chart(folder, run_id="chart0001")


def shoot_and_calibrate(chart, folder, profile, n=1, seed=0):
    chart_dir, manifest = chart
    photograph(chart_dir / CHART_FILE, manifest, folder, n, "12mp", seed=seed, profile=profile)
    return calibrate(sorted(folder.glob("*.jpg")), manifest)


def assert_recovers(truth: MeasuredChannel, measured: MeasuredChannel) -> None:
    levels = np.arange(0, 256, 5.0)
    rms = np.sqrt(np.mean([(np.interp(levels, np.array(measured.tone_curve)[:, 0], np.array(measured.tone_curve)[:, c])
                            - np.interp(levels, np.array(truth.tone_curve)[:, 0], np.array(truth.tone_curve)[:, c])) ** 2
                           for c in (1, 2, 3)]))
    assert rms < TONE_RMS, rms
    assert abs(measured.blur_sigma_mm / truth.blur_sigma_mm - 1) < BLUR_REL, (measured.blur_sigma_mm, truth.blur_sigma_mm)
    for level in (60.0, 128.0, 200.0):
        got = measured.noise_sigma(np.full(3, level)).mean()
        want = truth.noise_sigma(np.full(3, level)).mean()
        assert abs(got / want - 1) < NOISE_REL, (level, got, want)
    from physadv.capture.calibrate import _delta_e

    colours = np.array([p["rgb"] for p in chart_design()["patches"] if p["kind"] == "colour"], dtype=np.float64)
    delta_e = _delta_e(apply_colour_response(colours, measured), apply_colour_response(colours, truth)).mean()
    assert delta_e < DELTA_E, delta_e


@pytest.mark.parametrize("name", CHANNELS)
def test_calibrate_recovers_known_channel(chart, tmp_path, name):
    truth = known_channel(*CHANNELS[name])
    result = shoot_and_calibrate(chart, tmp_path, with_measured(load_profile("lab"), name, "known", truth))
    assert [p.accepted for p in result.photos] == [True]
    assert_recovers(truth, result.profile.measured)


def test_measured_profile_plays_back_and_recalibrates(chart, tmp_path):
    first = shoot_and_calibrate(chart, tmp_path / "a", with_measured(load_profile("lab"), "t", "known",
                                                                      known_channel(*CHANNELS["soft-noisy"])), n=2)
    path = tmp_path / "mine.toml"
    path.write_text(profile_to_toml(first.profile), encoding="utf-8")
    measured = load_profile(path)
    assert measured.parameters == first.profile.parameters
    assert measured.measured.blur_sigma_mm == pytest.approx(first.profile.measured.blur_sigma_mm, rel=1e-5)
    again = shoot_and_calibrate(chart, tmp_path / "b", path, n=2, seed=5)
    assert_recovers(measured.measured, again.profile.measured)


def test_photos_without_this_chart_are_skipped_with_a_reason(chart, tmp_path):
    chart_dir, manifest = chart
    other = write_chart(tmp_path / "other", run_id="otherrun")
    document = open_pdf(tmp_path / "other" / CHART_FILE)
    write_png(tmp_path / "photos" / "other.png", render_page(document, 0, 60))
    document.close()
    write_png(tmp_path / "photos" / "blank.png", np.full((400, 300, 3), 200, np.uint8))
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="no photo shows this chart.*no markers.*unreadable.*unknown run"):
        calibrate(sorted((tmp_path / "photos").iterdir()), manifest)
    assert other.run_id != manifest.run_id
    attack_sheet = replace(read_manifest(chart_dir / "manifest.json"), extra={})
    with pytest.raises(InputError, match="not a calibration chart"):
        calibrate([], attack_sheet)


def test_profile_errors_name_the_key(tmp_path):
    import tomllib

    from physadv.printouts.profiles import _builtin_text

    data = tomllib.loads(_builtin_text("lab"))
    missing = {**data, "sensor": {k: v for k, v in data["sensor"].items() if k != "read_noise"}}
    with pytest.raises(InputError, match="sensor.read_noise is missing"):
        profile_from_mapping(missing, "bad.toml")
    wide = {**data, "scene": {**data["scene"], "tilt_deg": {**data["scene"]["tilt_deg"], "range": [-5, 95]}}}
    with pytest.raises(InputError, match=r"scene.tilt_deg.range = 95 is outside \[-80, 80\]"):
        profile_from_mapping(wide, "bad.toml")
    unsourced = {**data, "print": {**data["print"], "blur_mm": {"range": [0.02, 0.05], "unit": "mm"}}}
    with pytest.raises(InputError, match="print.blur_mm.source is missing"):
        profile_from_mapping(unsourced, "bad.toml")
    with pytest.raises(InputError, match="no such file"):
        load_profile(tmp_path / "none.toml")
    with pytest.raises(InputError, match="built-in"):
        load_profile("studio")


def test_profile_eot_is_differentiable_and_adversariality_uses_held_out_draws(digits_classifier):
    from physadv.attacks import Attack
    from physadv.datasets import load_image_set, prepare
    from physadv.eot import EOTGradient, adversariality, eot_gradient, held_out
    from physadv.images import to_tensor

    distribution = profile_distribution("profile:lab")
    classifier = digits_classifier
    images = prepare(load_image_set(["digits"], classifier.labels, limit=4), classifier.image_size)
    x = to_tensor([i.image for i in images], classifier.device)
    y = torch.tensor([i.label for i in images])
    gradient = eot_gradient(distribution, samples=2)
    result = Attack("bim", eps=32, iterations=3).with_gradient(gradient, eot="profile:lab")(classifier, x, y)
    shape = tuple(x.shape[1:])
    held = held_out(distribution, 6, shape)
    steps = [distribution.sample(2, shape, EOTGradient.step_seed(gradient, k)) for k in range(3)]
    held_gains = held.params[-1].data["gains"]
    assert not any(torch.allclose(held_gains[:2], step.params[-1].data["gains"]) for step in steps)
    scores = adversariality(classifier, result.adversarial, result.goal, False, distribution, n=6)
    index = torch.arange(6).repeat(len(x))
    transformed = distribution(result.adversarial.repeat_interleave(6, 0), held.select(index))
    expected = (classifier(transformed).argmax(-1) != result.goal.repeat_interleave(6)).float().view(-1, 6).mean(1)
    assert torch.equal(scores.cpu(), expected.cpu())
    x.requires_grad_(True)
    distribution(x, distribution.sample(len(x), shape, 1).select(torch.arange(len(x)))).sum().backward()
    assert x.grad.abs().sum() > 0


def test_cli_chart_and_calibrate_report_a_photo_without_the_chart(tmp_path, capsys):
    from physadv.cli.main import main

    assert main(["chart", "--out", str(tmp_path / "chart")]) == 0
    write_png(tmp_path / "photos" / "blank.png", np.full((300, 400, 3), 128, np.uint8))
    code = main(["calibrate", str(tmp_path / "photos"), "--manifest", str(tmp_path / "chart" / "manifest.json"),
                 "--out", str(tmp_path / "mine.toml")])
    assert code == 2 and "blank.png: skipped, no markers" in capsys.readouterr().err
    assert not (tmp_path / "mine.toml").exists()


def test_halftone_screen_keeps_the_mean_tone(chart):
    from physadv.printouts.camera import halftone
    from physadv.printouts.pdf import page_size_mm

    chart_dir, manifest = chart
    document = open_pdf(chart_dir / CHART_FILE)
    size = page_size_mm(document, 0)
    shape = (round(size[1] * 4), round(size[0] * 4))  # 4 px/mm
    screened = halftone(document, 0, shape, size, lpi=50)
    document.close()
    assert set(np.unique(screened[::7, ::7])) - {0, 255}  # area-averaged, not binary any more
    flats = [p for p in manifest.extra["chart"]["patches"] if p["kind"] == "flat"]
    for patch in flats:
        x, y, w, h = (v * 4 for v in patch["box_mm"])
        inner = screened[int(y + h / 4):int(y + 3 * h / 4), int(x + w / 4):int(x + 3 * w / 4)].astype(float)
        assert abs(inner.mean() - patch["rgb"][0]) < 20, (patch["rgb"], inner.mean())
        assert inner.std() > 1  # the screen (period 0.51 mm, 2 px at 4 px/mm) is still visible
