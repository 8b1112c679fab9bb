"""Calibration chart → virtual camera with known parameters → physadv calibrate recovers them."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from physadv.capture import calibrate as calibration
from physadv.capture.calibrate import calibrate, profile_distribution
from physadv.errors import InputError
from physadv.images import write_png
from physadv.printouts.camera import apply_colour_response, photograph
from physadv.printouts.chart import CHART_FILE, chart_design, write_chart
from physadv.printouts.manifest import read_manifest
from physadv.printouts.pdf import open_pdf, render_page
from physadv.printouts.profiles import (MeasuredChannel, load_profile, profile_from_mapping, profile_to_toml,
                                        with_measured)

# Tolerances of a calibration (stated in docs/how-to/calibrate.md): tone curve RMS in 0-255 levels, relative error
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
    with pytest.raises(InputError, match="no photo of this chart .* could be used.*no markers.*unreadable.*unknown run"):
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
    """The chart's flat greys printed through a clustered-dot screen (300 dpi, 75 lpi: 17 levels per cell)
    keep their reflectance to within half a step of the cell, and the screen is still there."""
    from physadv.printouts.printer import DevicePrint, levels_to_linear, print_on_device
    from physadv.printouts.pdf import page_size_mm, render_page

    chart_dir, manifest = chart
    document = open_pdf(chart_dir / CHART_FILE)
    size = page_size_mm(document, 0)
    device = render_page(document, 0, 300.0, smooth_images=False)
    document.close()
    linear = print_on_device(device, 2, DevicePrint(300.0, halftone_lpi=75.0), (0.0,) * 3, (255.0,) * 3, 1.0)
    per_mm = linear.shape[1] / size[0]
    flats = [p for p in manifest.extra["chart"]["patches"] if p["kind"] == "flat"]
    for patch in flats:
        x, y, w, h = (v * per_mm for v in patch["box_mm"])
        inner = linear[int(y + h / 4):int(y + 3 * h / 4), int(x + w / 4):int(x + 3 * w / 4)].astype(float) / 65535
        target = levels_to_linear(np.array([[patch["rgb"][0]]], np.uint8))[0, 0] / 65535
        assert abs(inner.mean() - target) <= 0.5 / 16 + 0.01, (patch["rgb"], inner.mean(), target)
        if target > 1 / 16:  # darker than the cell's last step, every dot is solid
            assert inner.std() > 0.01  # the screen (period 0.34 mm, 2 px of 0.17 mm) is still visible


# --- review 9: bad photos, bad charts, bad profiles ---------------------------------------------------------


@pytest.fixture(scope="module")
def lab_photos(chart, tmp_path_factory):
    """Two 12-MP photos of the chart by the lab profile's virtual camera: (folder, truths)."""
    chart_dir, manifest = chart
    folder = tmp_path_factory.mktemp("lab-photos")
    return folder, photograph(chart_dir / CHART_FILE, manifest, folder, 2, "12mp", seed=3, profile="lab")


def painted(lab_photos, index: int, box_mm, tmp_path, rgb=(40, 200, 40)):
    """Photo ``index`` with an opaque box over the page-mm ``box_mm`` (x, y, w, h), saved as PNG."""
    import cv2

    from physadv.images import read_rgb

    folder, truths = lab_photos
    image = read_rgb(folder / truths[index].file).copy()
    x, y, w, h = box_mm
    corners = cv2.perspectiveTransform(np.array([[[x, y], [x + w, y], [x + w, y + h], [x, y + h]]], dtype=np.float64),
                                       np.array(truths[index].homography))[0]
    cv2.fillConvexPoly(image, np.round(corners).astype(np.int32), rgb)
    path = tmp_path / f"painted-{index}.png"
    write_png(path, image)
    return path


def chart_boxes(manifest, kind):
    return [p["box_mm"] for p in manifest.extra["chart"]["patches"] if p["kind"] == kind]


@pytest.mark.parametrize("region", ["ramp", "one ramp step", "colours", "flat"])
def test_a_photo_with_part_of_the_chart_covered_is_skipped_and_spoils_nothing(chart, lab_photos, tmp_path, region):
    _, manifest = chart
    folder, truths = lab_photos
    greys, colours, flats = (chart_boxes(manifest, kind) for kind in ("grey", "colour", "flat"))
    box = {"ramp": [greys[6][0], greys[6][1] - 2, 4 * greys[6][2], greys[6][3] + 4],
           "one ramp step": [greys[12][0] + 1, greys[12][1] + 1, greys[12][2] - 2, greys[12][3] - 2],
           "colours": [colours[3][0], colours[3][1], 3 * colours[3][2], colours[3][3]],
           "flat": [flats[0][0] - 2, flats[0][1] - 2, flats[0][2] + 4, flats[0][3] + 4]}[region]
    covered = painted(lab_photos, 0, box, tmp_path)
    good = folder / truths[1].file
    alone = calibrate([good], manifest)
    result = calibrate([covered, good], manifest)
    assert not result.photos[0].accepted and result.photos[0].reason == "implausible chart measurement"
    assert "covering or shading" in result.photos[0].summary()
    assert result.photos[1].accepted and result.profile.measured.photos == 1
    assert result.photos[1].blur_sigma_mm == alone.photos[0].blur_sigma_mm
    assert result.profile.measured == alone.profile.measured


def test_the_tone_rms_of_one_photo_is_not_a_fit_quality(chart, lab_photos):
    _, manifest = chart
    folder, truths = lab_photos
    one = calibrate([folder / truths[0].file], manifest).photos[0]
    assert math.isnan(one.tone_rms) and "tone RMS n/a (needs 2+ photos)" in one.summary()
    both = calibrate([folder / t.file for t in truths], manifest).photos
    assert all(math.isfinite(p.tone_rms) and p.tone_rms > 0 and "tone RMS n/a" not in p.summary() for p in both)


def test_a_pooled_fit_worse_than_the_limit_writes_no_profile(chart, lab_photos, tmp_path, capsys, monkeypatch):
    from physadv.cli.main import main

    chart_dir, _ = chart
    folder, truths = lab_photos
    monkeypatch.setattr(calibration, "POOLED_DELTA_E_MAX", 0.01)  # any real fit is worse: the refusal itself is tested
    code = main(["calibrate", str(folder / truths[0].file), str(folder / truths[1].file), "--manifest",
                 str(chart_dir / "manifest.json"), "--out", str(tmp_path / "p.toml")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "calibrating" not in line]
    assert code == 2 and len(lines) == 1 and "do not make one channel" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "p.toml").exists()


def test_a_chart_too_small_for_its_edges_or_patches_skips_that_photo(chart, lab_photos, tmp_path, monkeypatch):
    import cv2

    from physadv.images import read_rgb

    _, manifest = chart
    folder, truths = lab_photos
    image = read_rgb(folder / truths[0].file)
    small = tmp_path / "small.png"  # 1/6 of 12 MP: about 1.3 photo px per mm, as a far-off webcam
    write_png(small, cv2.resize(image, (image.shape[1] // 6, image.shape[0] // 6), interpolation=cv2.INTER_AREA))
    result = calibrate([small, folder / truths[1].file], manifest)
    assert [p.accepted for p in result.photos] == [False, True]
    assert result.photos[0].reason == "no slanted edge measurable" and "photograph the chart larger" in result.photos[0].detail
    monkeypatch.setattr(calibration, "MIN_PATCH_PIXELS", 10**9)  # every patch too small: each photo skipped, none aborts
    with pytest.raises(InputError, match="could be used.*chart too small in the photo.*chart too small in the photo"):
        calibrate([folder / t.file for t in truths], manifest)


def test_no_fitted_edge_is_no_blur_figure_and_no_profile(chart, lab_photos, tmp_path, capsys, monkeypatch):
    from physadv.cli.main import main

    chart_dir, _ = chart
    folder, truths = lab_photos
    monkeypatch.setattr(calibration, "_erf_fit", lambda *args: (math.nan, math.nan))
    code = main(["calibrate", str(folder / truths[0].file), "--manifest", str(chart_dir / "manifest.json"),
                 "--out", str(tmp_path / "p.toml")])
    err = capsys.readouterr().err
    assert code == 2 and "no slanted edge measurable" in err and "Traceback" not in err
    assert not (tmp_path / "p.toml").exists()


def test_photos_of_one_name_in_two_folders_are_two_records(chart, lab_photos, tmp_path):
    _, manifest = chart
    folder, truths = lab_photos
    for sub, truth in zip("ab", truths):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "photo_0000.jpg").write_bytes((folder / truth.file).read_bytes())
    result = calibrate([tmp_path / "a" / "photo_0000.jpg", tmp_path / "b" / "photo_0000.jpg"], manifest)
    first, second = result.photos
    assert first.photo.endswith("a/photo_0000.jpg") and second.photo.endswith("b/photo_0000.jpg")
    assert first.white_rgb != second.white_rgb and first.marker_rms_px != second.marker_rms_px


CHART_DAMAGE = {
    "no grey patch": (lambda c: c.update(patches=[p for p in c["patches"] if p["kind"] != "grey"]), "grey ramp"),
    "one grey level": (lambda c: [p.update(rgb=[128] * 3) for p in c["patches"] if p["kind"] == "grey"], "repeat"),
    "no white": (lambda c: c.update(patches=[p for p in c["patches"] if p["rgb"] != [255] * 3]), "paper white"),
    "no colour patch": (lambda c: c.update(patches=[p for p in c["patches"] if p["kind"] != "colour"]), "no colour"),
    "no flat patch": (lambda c: c.update(patches=[p for p in c["patches"] if p["kind"] != "flat"]), "no flat"),
    "no edge": (lambda c: c.update(edges=[]), "edges"),
    "unknown chart key": (lambda c: c.update(out="../x"), "'out'"),
    "unknown patch key": (lambda c: c["patches"][0].update(file="../../etc/passwd"), "patches[0]: unknown"),
    "edge off the page": (lambda c: c["edges"][0].update(centre_mm=[205.0, 290.0]), "edges[0].centre_mm"),
    "tinted grey": (lambda c: c["patches"][0].update(rgb=[0, 0, 9]), "patches[0].rgb"),
    "tiny patch": (lambda c: c["patches"][0].update(box_mm=[20, 60, 1e-9, 1e-9]), "patches[0].box_mm"),
}


@pytest.mark.parametrize("damage", [*CHART_DAMAGE, "zero-size marker"])
def test_a_damaged_chart_manifest_is_one_line_naming_the_field(chart, tmp_path, capsys, damage):
    import json

    from physadv.cli.main import main

    chart_dir, _ = chart
    data = json.loads((chart_dir / "manifest.json").read_text())
    if damage == "zero-size marker":
        data["pages"][0]["markers"][0]["corners_mm"] = [[10, 10]] * 4
        expected = "markers[0].corners_mm"
    else:
        mutate, expected = CHART_DAMAGE[damage]
        mutate(data["extra"]["chart"])
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    write_png(tmp_path / "photo.png", np.full((300, 400, 3), 128, np.uint8))
    code = main(["calibrate", str(tmp_path / "photo.png"), "--manifest", str(tmp_path / "manifest.json"),
                 "--out", str(tmp_path / "p.toml")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "calibrating" not in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "p.toml").exists()


def test_chart_refuses_a_folder_that_holds_a_manifest(chart, tmp_path, capsys):
    from physadv.cli.main import main

    chart_dir, _ = chart
    (tmp_path / "manifest.json").write_bytes((chart_dir / "manifest.json").read_bytes())
    (tmp_path / "sheets.pdf").write_bytes(b"%PDF- the sheets this manifest describes")
    before = (tmp_path / "manifest.json").read_bytes()
    code = main(["chart", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already holds a manifest.json" in err
    assert (tmp_path / "manifest.json").read_bytes() == before and not (tmp_path / "chart.pdf").exists()


@pytest.mark.parametrize("name", ["../../../../tmp/escaped", "/tmp/abs", "a/b", "a\x01b", ".hidden", ""])
def test_a_profile_name_is_a_plain_name(name):
    import tomllib

    from physadv.printouts.profiles import _builtin_text

    data = {**tomllib.loads(_builtin_text("lab")), "name": name}
    with pytest.raises(InputError, match=r"\bname\b"):
        profile_from_mapping(data, "t.toml")


def test_a_profile_named_like_a_path_attacks_nothing_outside(tmp_path, capsys, monkeypatch):
    from physadv.cli.main import main
    from physadv.printouts.profiles import _builtin_text

    monkeypatch.setenv("PHYSADV_HOME", str(tmp_path / "home"))
    escaped = tmp_path / "escaped"
    profile = tmp_path / "t.toml"
    profile.write_text(_builtin_text("lab").replace('name = "lab"', f'name = "../../{escaped.name}"'))
    monkeypatch.chdir(tmp_path)
    code = main(["attack", "digits", "--model", "digits", "--limit", "1", "--eot", f"profile:{profile}",
                 "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "not a plain name" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("escaped*")) and not (tmp_path / "a").exists()
    code = main(["calibrate", str(profile), "--manifest", "m.json", "--out", str(tmp_path / "p.toml"),
                 "--name", "../p"])
    assert code == 2 and "--name '../p' is not a plain profile name" in capsys.readouterr().err


def test_the_virtual_calibration_cache_is_named_by_hash_inside_the_cache(tmp_path, monkeypatch):
    from physadv.capture.calibrate import Calibration, measured_channel
    from physadv.printouts import camera

    monkeypatch.setenv("PHYSADV_HOME", str(tmp_path / "home" / "cache"))
    truth = known_channel(*CHANNELS["sharp-quiet"])
    # The virtual photos and their calibration are replaced: only where the result is cached is tested.
    monkeypatch.setattr(camera, "photograph", lambda *args, **kwargs: [])
    monkeypatch.setattr(calibration, "calibrate", lambda *args, **kwargs: Calibration(
        with_measured(load_profile("lab"), "virtual", "stub", truth), ()))
    hostile = replace(load_profile("lab"), name="../../escaped")  # a profile built in Python: never checked
    assert measured_channel(hostile) == truth
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*.toml")]
    assert len(written) == 1 and written[0].parent.as_posix() == "home/cache/profiles", written
    assert len(written[0].stem) == 16 and "escaped" not in written[0].name


def test_measured_profiles_hold_no_parametric_keys(tmp_path):
    measured = with_measured(load_profile("lab"), "mine", "known", known_channel(*CHANNELS["soft-noisy"]))
    text = profile_to_toml(measured)
    for extra, key in (('[print.blur_mm]\nrange = "garbage"\nunit = "mm"\nsource = "x"\n', "print.blur_mm"),
                       ('[light.exposure]\nvalue = 99\nunit = "gain"\nsource = "x"\n', "light.exposure"),
                       ('[sensor.read_noise]\nvalue = 1.0\nunit = "σ"\nsource = "x"\n', "sensor.read_noise")):
        path = tmp_path / "m.toml"
        path.write_text(text + "\n" + extra, encoding="utf-8")
        with pytest.raises(InputError, match=f"{key} is not a key of a measured profile"):
            load_profile(path)


def test_measured_profiles_state_units_and_photos(tmp_path):
    from dataclasses import fields

    from physadv.printouts.profiles import MEASURED_UNITS

    assert list(MEASURED_UNITS) == [f.name for f in fields(MeasuredChannel)]
    measured = with_measured(load_profile("lab"), "mine", "known", replace(known_channel(*CHANNELS["soft-noisy"]),
                                                                            photos=7))
    text = profile_to_toml(measured)
    assert "# measured by physadv calibrate on 7 photo(s)" in text
    assert "#   blur_sigma_mm: page mm" in text and "without the chart's pixel box" in text
    assert "#   mtf50_cycles_per_mm: cycles per page mm" in text and "includes the chart's" in text
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    again = load_profile(path).measured  # comments are comments: the figures read back (to the 6 digits written)
    assert again.photos == 7 and again.blur_sigma_mm == pytest.approx(measured.measured.blur_sigma_mm)
    assert np.allclose(again.tone_curve, measured.measured.tone_curve, atol=1e-5)
